//! One module per subcommand: clap arguments and a `run` that calls the libraries.

pub mod checkpoint;
pub mod doctor;
pub mod image;
pub mod inspect;
pub mod recode;
pub mod restore;
pub mod run;
pub mod translate;
pub mod agent;
pub mod migrate;
pub mod ca;
pub mod node;
