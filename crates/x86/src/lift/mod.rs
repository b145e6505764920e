//! Lifting x86-64 instructions to the semantic IR.
