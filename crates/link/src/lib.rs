//! Linker.
