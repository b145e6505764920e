//! Migration between native and translated execution of one program.
//!
//! * [`store`]: translated executables kept by the content hash of the original binary, so
//!   recode finds the translation for a target ISA without manual copying.
//! * [`launch`]: starting a native program in a migratable configuration (the C library's
//!   CPU feature choice capped to what the translator covers, the translated address layout).
//! * [`regs`]: home-ISA registers in CRIU's core image ⇄ [`hcontainer_abi::GuestState`].
#![deny(missing_docs)]

pub mod image;
pub mod launch;
pub mod regs;
pub mod store;
