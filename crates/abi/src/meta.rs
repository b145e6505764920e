//! The `.hcontainer.meta` section of a translated executable.
//!
//! Layout (all little-endian), versioned by [`META_VERSION`]:
//!
//! ```text
//! 0   magic            [u8; 8]  = META_MAGIC
//! 8   meta_version     u32
//! 12  state_version    u32      GuestState layout (crate::GUEST_STATE_VERSION)
//! 16  host_isa         u32      HostIsa
//! 20  flags            u32      bit 0: guest is PIE
//! 24  guest_entry      u64
//! 32  load_bias        u64
//! 40  guest_sha256     [u8; 32] of the original executable file
//! 72  guest_size       u64      size of the original executable file
//! 80  n_points         u64      number of migration points
//! 88  n_traps          u64      instructions left as traps
//! 96  points           [u64; n_points], sorted ascending
//! ```
//!
//! Compatible changes append fields before `points` and bump [`META_VERSION`]; readers check
//! magic, version and that `points` fits in the section.

/// Name of the section.
pub const SECTION: &str = ".hcontainer.meta";
/// Section magic.
pub const META_MAGIC: [u8; 8] = *b"HCMETA\0\x01";
/// Version of this layout.
pub const META_VERSION: u32 = 1;
/// Size of the fixed header before the points array.
pub const HEADER_SIZE: usize = 96;

/// Host instruction set a translated executable is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum HostIsa {
    /// x86-64 (the home ISA translated to itself).
    X86_64 = 1,
    /// arm64.
    Aarch64 = 2,
    /// riscv64 (RV64GC).
    Riscv64 = 3,
}

impl HostIsa {
    /// Decode from the header field.
    pub fn from_u32(v: u32) -> Option<HostIsa> {
        match v {
            1 => Some(HostIsa::X86_64),
            2 => Some(HostIsa::Aarch64),
            3 => Some(HostIsa::Riscv64),
            _ => None,
        }
    }
    /// Lower-case name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HostIsa::X86_64 => "x86_64",
            HostIsa::Aarch64 => "aarch64",
            HostIsa::Riscv64 => "riscv64",
        }
    }
}
