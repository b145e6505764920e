//! x86-64 front end: the guest binary model ([`guest`]), code discovery ([`discover`]) and
//! lifting of x86-64 instructions to the semantic IR ([`lift`]).

pub mod discover;
pub mod guest;
pub mod lift;

pub use discover::{discover, CodeMap, FunctionMap};
pub use guest::{GuestBinary, GuestError, Segment};
pub use lift::{lift_block, lift_blocks, lift_program, LiftStats};
