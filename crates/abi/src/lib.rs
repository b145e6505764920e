//! The one definition of every fact that translated code, the no_std runtime, the
//! translator and recode must agree on:
//!
//! * [`GuestState`]: the home-ISA (x86-64) register file of one guest thread, as translated
//!   code and the runtime see it in memory, and as recode writes it into images.
//! * [`flags`]: the lazy condition-flag encoding and its evaluation.
//! * [`layout`]: where the runtime and translated code live in the address space.
//! * [`calls`]: the calling convention and symbols between translated code and the runtime.
//! * [`meta`]: the metadata section that every translated executable carries.
//! * [`unit`]: translation units of dynamically linked programs and their launcher.
//!
//! This crate is `no_std` so the runtime can use it; it has no dependencies.
#![no_std]
#![deny(missing_docs)]

pub mod calls;
pub mod flags;
pub mod layout;
pub mod meta;
mod state;
pub mod unit;

pub use state::*;
