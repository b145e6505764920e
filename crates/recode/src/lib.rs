//! Migration between native and translated execution of one program.
//!
//! * [`store`]: translated executables kept by the content hash of the original binary, so
//!   recode finds the translation for a target ISA without manual copying.
//! * [`launch`]: starting a native program in a migratable configuration (the C library's
//!   CPU feature choice capped to what the translator covers, the translated address layout).
//! * [`regs`]: home-ISA registers in CRIU's core image ⇄ [`hcontainer_abi::GuestState`].
//! * [`recode`]: the entry point: any of our CRIU images → the image of the same process for
//!   a [`Target`] (native, or translated for a host ISA).
#![deny(missing_docs)]

mod convert;
pub mod exe;
pub mod image;
pub mod pages;
pub mod launch;
pub mod notify;
pub mod regs;
/// The translation store (`hcontainer-store`).
pub mod store {
    pub use hcontainer_store::*;
}

pub use convert::{recode, Kind, Target, PHASES_ENV};
pub use hcontainer_abi::meta::HostIsa;
pub use image::{RecodeError, Report};
