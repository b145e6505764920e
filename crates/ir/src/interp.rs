//! Reference interpreter of the IR (see the crate documentation).
