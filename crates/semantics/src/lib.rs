//! Reference semantics of guest operations too complex for IR ops, run by the runtime (`hc_helper`) and by the IR interpreter alike.
#![no_std]
