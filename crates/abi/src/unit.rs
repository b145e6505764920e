//! Translation units: the host code of one guest ELF file — a dynamically linked executable,
//! its interpreter (`ld.so`) or a shared library — which the runtime loads when the guest maps
//! the file, wherever the guest's own `ld.so` put it.
//!
//! A unit is a host ELF shared object (`ET_DYN` for the host ISA) linked from one translated
//! object. It is position independent twice over: its host code may be mapped at any address
//! (its only dynamic relocations are relative ones, so loading needs no symbol lookup), and the
//! guest addresses it computes are the guest file's link-time addresses plus the file's load
//! bias, which the code reads from [`UnitHeader::bias`]. The ELF header's `e_entry` is the
//! address of the [`UnitHeader`], in the unit's writable data.
//!
//! Before any of its code runs, the runtime writes the bias and the runtime entry points
//! translated code calls ([`UnitHeader::imports`], in [`Import`] order). The unit's dispatch
//! table ([`crate::calls::DispatchEntry`]s sorted by guest address) is keyed by link-time
//! guest addresses; the runtime adds the bias when it looks an address up.
//!
//! The store keeps units by the SHA-256 of the guest file (`<sha256>/<isa>.unit`); the unit
//! repeats the hash and the file's size so the runtime can check it loaded the right one.
//! Compatible changes append fields and bump [`UNIT_VERSION`].

/// [`UnitHeader::magic`].
pub const UNIT_MAGIC: [u8; 8] = *b"HCUNIT\0\x01";
/// Version of the header layout, of the unit conventions and of what the translator
/// produces: bump it whenever a change of the lifter or the code generator makes earlier units
/// wrong or incomplete (an instruction lifted that used to be a trap). The runtime loads only
/// units of its own version, and `translate` translates again instead of reusing others.
pub const UNIT_VERSION: u32 = 4;

/// Runtime entry points a unit calls, by index in [`UnitHeader::imports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Import {
    /// [`crate::calls::SYSCALL`].
    Syscall = 0,
    /// [`crate::calls::HELPER`].
    Helper = 1,
    /// [`crate::calls::EVAL_COND`].
    EvalCond = 2,
    /// [`crate::calls::RFLAGS`].
    Rflags = 3,
    /// [`crate::calls::LOOKUP`].
    Lookup = 4,
    /// [`crate::calls::UNSUPPORTED`].
    Unsupported = 5,
}

/// Slots in [`UnitHeader::imports`] (some reserved for later entry points).
pub const N_IMPORTS: usize = 8;

/// The header every unit starts its data with, found through `e_entry`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct UnitHeader {
    /// [`UNIT_MAGIC`].
    pub magic: [u8; 8],
    /// [`UNIT_VERSION`].
    pub version: u32,
    /// [`crate::GUEST_STATE_VERSION`] of the code.
    pub state_version: u32,
    /// The guest file's load bias (run-time address minus link-time address); written by the
    /// runtime before the code runs, read by the code at every function entry.
    pub bias: u64,
    /// Runtime entry points (host addresses), written by the runtime, in [`Import`] order.
    pub imports: [u64; N_IMPORTS],
    /// Host address (relocated) of the dispatch table.
    pub dispatch_table: u64,
    /// Entries in the dispatch table.
    pub dispatch_len: u64,
    /// SHA-256 of the guest file this unit translates.
    pub guest_sha256: [u8; 32],
    /// Size of that file.
    pub guest_size: u64,
    /// Guest instructions translated as traps.
    pub n_traps: u64,
}

/// Byte offset of [`UnitHeader::bias`].
pub const BIAS_OFFSET: u32 = 16;
/// Byte offset of [`UnitHeader::imports`].
pub const IMPORTS_OFFSET: u32 = 24;
/// Byte offset of [`UnitHeader::dispatch_table`].
pub const DISPATCH_TABLE_OFFSET: u32 = IMPORTS_OFFSET + 8 * N_IMPORTS as u32;
/// Size of the header.
pub const HEADER_SIZE: usize = core::mem::size_of::<UnitHeader>();

const _: () = assert!(core::mem::offset_of!(UnitHeader, bias) == BIAS_OFFSET as usize);
const _: () = assert!(core::mem::offset_of!(UnitHeader, imports) == IMPORTS_OFFSET as usize);
const _: () = assert!(core::mem::offset_of!(UnitHeader, dispatch_table) == DISPATCH_TABLE_OFFSET as usize);
const _: () = assert!(HEADER_SIZE == 152);

/// Name of the header's symbol in a unit (the linker's entry symbol).
pub const HEADER_SYMBOL: &str = "hc_unit";

/// A unit's file name in its store entry is the host ISA's name (`HostIsa::name()`) with
/// this suffix: `<sha256>/aarch64.unit`.
pub const FILE_SUFFIX: &str = ".unit";

/// What a dynamically linked program's launcher (the runtime linked without guest code) is
/// told about the program it starts: the `hc_loader_config` symbol.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct LoaderConfig {
    /// [`LOADER_MAGIC`] when the executable is a launcher.
    pub magic: [u8; 8],
    /// Absolute path of the guest executable, NUL-terminated (empty: the program is named
    /// at run time by [`EXEC_ENV`]).
    pub guest_path: [u8; PATH_MAX],
    /// Absolute path of the translation store the units were put in, NUL-terminated.
    pub store_root: [u8; PATH_MAX],
}

/// Longest path a [`LoaderConfig`] holds, NUL included.
pub const PATH_MAX: usize = 4096;
/// [`LoaderConfig::magic`].
pub const LOADER_MAGIC: [u8; 8] = *b"HCLOADR\x01";
/// Name of the launcher configuration symbol.
pub const LOADER_CONFIG: &str = "hc_loader_config";
/// Environment variable naming the guest program a launcher starts instead of the one in its
/// configuration (set by the runtime's `execve` of another x86-64 program, removed from the
/// guest's environment at start-up).
pub const EXEC_ENV: &str = "HCONTAINER_EXEC";
/// Environment variable naming the translation store (as for the command line).
pub const STORE_ENV: &str = "HCONTAINER_STORE";
