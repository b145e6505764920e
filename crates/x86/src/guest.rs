//! The guest executable as the translator sees it: loadable segments at their (biased)
//! guest addresses, entry point, program headers, and the hints code discovery uses.

use std::ops::Range;

/// Why an input file cannot be translated.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// Not an ELF file at all.
    #[error("not an ELF file (bad magic)")]
    NotElf,
    /// Ends before a structure it declares.
    #[error("truncated ELF: {0}")]
    Truncated(String),
    /// ELF for another machine or class.
    #[error("wrong architecture: {0} (only x86-64 executables can be translated)")]
    WrongMachine(String),
    /// Has an interpreter or needs shared libraries.
    #[error("dynamically linked executable (needs {0}); only static executables are supported")]
    Dynamic(String),
    /// Structurally invalid.
    #[error("malformed ELF: {0}")]
    Malformed(String),
}

/// One `PT_LOAD` segment, at its guest address (load bias applied).
#[derive(Clone, Debug)]
pub struct Segment {
    /// Guest virtual address of the first byte.
    pub vaddr: u64,
    /// Size in memory (≥ `file_range.len()`; the rest is zero).
    pub memsz: u64,
    /// The segment's bytes in the file.
    pub file_range: Range<usize>,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// A parsed, validated static x86-64 executable.
#[derive(Clone, Debug)]
pub struct GuestBinary {
    /// Name used in messages (usually the path).
    pub name: String,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Entry point (biased).
    pub entry: u64,
    /// Position independent (`ET_DYN`, static-pie).
    pub is_pie: bool,
    /// Added to every file address: `hcontainer_abi::layout::PIE_GUEST_BASE` for a PIE, else 0.
    pub load_bias: u64,
    /// Loadable segments, sorted by address.
    pub segments: Vec<Segment>,
    /// Guest address of the program header table (for `AT_PHDR`).
    pub phdr_addr: u64,
    /// Number of program headers.
    pub phnum: u16,
    /// Size of one program header.
    pub phent: u16,
    /// Function ranges from `.eh_frame` FDEs (biased), sorted by start.
    pub fdes: Vec<Range<u64>>,
    /// Function symbols `(address, size, name)` if the file has a symbol table (biased).
    pub symbols: Vec<(u64, u64, String)>,
    /// Code pointers from init/fini arrays and relocations (biased), sorted, deduplicated.
    pub code_pointers: Vec<u64>,
}
