//! The `.hcontainer.meta` section of a translated executable.
//!
//! Layout (all little-endian), versioned by [`META_VERSION`]:
//!
//! ```text
//! 0   magic            [u8; 8]  = META_MAGIC
//! 8   meta_version     u32
//! 12  state_version    u32      GuestState layout (crate::GUEST_STATE_VERSION)
//! 16  host_isa         u32      HostIsa
//! 20  flags            u32      bit 0: guest is PIE; bit 1: a translation unit; bit 2: a launcher;
//!                               bit 3: plain guest loads and stores keep x86-TSO order
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
/// [`Header::flags`]: the guest is position independent.
pub const FLAG_PIE: u32 = 1;
/// [`Header::flags`]: a translation unit (`crate::unit`): points are link-time addresses of
/// the guest file, which runs at them plus its load bias.
pub const FLAG_UNIT: u32 = 2;
/// [`Header::flags`]: the launcher of a dynamically linked program (`crate::unit`): no guest
/// code of its own; `guest_sha256` and `guest_size` are the program's, whose file it maps
/// from the path in its `hc_loader_config`.
pub const FLAG_LAUNCHER: u32 = 4;
/// [`Header::flags`]: translated for x86's total store order ([`MemoryModel::Tso`]): on hosts
/// with a weaker memory model (arm64, riscv64) every plain guest load and store outside the
/// thread's own stack is ordered. Clear in translations made with `--memory-model relaxed`
/// and in those of writers that predate the flag, which were relaxed too.
pub const FLAG_TSO: u32 = 8;

/// The order translated code gives plain guest loads and stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryModel {
    /// x86's total store order, as the guest was written for: on arm64 acquire loads and
    /// release stores, on riscv64 fences; accesses through `rsp` (the thread's own stack)
    /// stay plain. On x86-64 hosts the hardware gives it.
    #[default]
    Tso,
    /// The host's own order for plain accesses: faster on arm64 and riscv64, correct only
    /// for programs that synchronise through locked instructions and fences alone.
    Relaxed,
}

impl MemoryModel {
    /// Lower-case name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MemoryModel::Tso => "tso",
            MemoryModel::Relaxed => "relaxed",
        }
    }
}

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

/// The fixed header of the metadata section, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`META_VERSION`] of the writer.
    pub meta_version: u32,
    /// GuestState layout version of the translated code.
    pub state_version: u32,
    /// Host ISA of the executable.
    pub host_isa: HostIsa,
    /// [`FLAG_PIE`], [`FLAG_UNIT`], [`FLAG_LAUNCHER`], [`FLAG_TSO`].
    pub flags: u32,
    /// Guest entry point.
    pub guest_entry: u64,
    /// Load bias applied to the guest.
    pub load_bias: u64,
    /// SHA-256 of the original executable.
    pub guest_sha256: [u8; 32],
    /// Size of the original executable.
    pub guest_size: u64,
    /// Number of migration points following the header.
    pub n_points: u64,
    /// Instructions translated as traps.
    pub n_traps: u64,
}

/// Why a metadata section could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// Shorter than the header or than the points it announces.
    Truncated,
    /// Magic bytes differ.
    BadMagic,
    /// Written by an incompatible version (the value found).
    Version(u32),
    /// Unknown host ISA number.
    BadIsa(u32),
}

impl core::fmt::Display for MetaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MetaError::Truncated => write!(f, "metadata section is truncated"),
            MetaError::BadMagic => write!(f, "metadata section has a bad magic"),
            MetaError::Version(v) => {
                write!(f, "metadata version {v} is not supported (expected {META_VERSION})")
            }
            MetaError::BadIsa(v) => write!(f, "metadata names unknown host ISA {v}"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Header {
    /// The memory model the translated code was built for (see [`FLAG_TSO`]).
    pub fn memory_model(&self) -> MemoryModel {
        if self.flags & FLAG_TSO != 0 {
            MemoryModel::Tso
        } else {
            MemoryModel::Relaxed
        }
    }

    /// Encode the header (exactly [`HEADER_SIZE`] bytes); the points follow it.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&META_MAGIC);
        b[8..12].copy_from_slice(&self.meta_version.to_le_bytes());
        b[12..16].copy_from_slice(&self.state_version.to_le_bytes());
        b[16..20].copy_from_slice(&(self.host_isa as u32).to_le_bytes());
        b[20..24].copy_from_slice(&self.flags.to_le_bytes());
        b[24..32].copy_from_slice(&self.guest_entry.to_le_bytes());
        b[32..40].copy_from_slice(&self.load_bias.to_le_bytes());
        b[40..72].copy_from_slice(&self.guest_sha256);
        b[72..80].copy_from_slice(&self.guest_size.to_le_bytes());
        b[80..88].copy_from_slice(&self.n_points.to_le_bytes());
        b[88..96].copy_from_slice(&self.n_traps.to_le_bytes());
        b
    }

    /// Decode and validate a whole section: the header, and the points slice (still
    /// little-endian bytes, `8 * n_points` long).
    pub fn decode(section: &[u8]) -> Result<(Header, &[u8]), MetaError> {
        if section.len() < HEADER_SIZE {
            return Err(MetaError::Truncated);
        }
        if section[0..8] != META_MAGIC {
            return Err(MetaError::BadMagic);
        }
        let meta_version = u32_at(section, 8);
        if meta_version != META_VERSION {
            return Err(MetaError::Version(meta_version));
        }
        let isa = u32_at(section, 16);
        let host_isa = HostIsa::from_u32(isa).ok_or(MetaError::BadIsa(isa))?;
        let mut guest_sha256 = [0; 32];
        guest_sha256.copy_from_slice(&section[40..72]);
        let header = Header {
            meta_version,
            state_version: u32_at(section, 12),
            host_isa,
            flags: u32_at(section, 20),
            guest_entry: u64_at(section, 24),
            load_bias: u64_at(section, 32),
            guest_sha256,
            guest_size: u64_at(section, 72),
            n_points: u64_at(section, 80),
            n_traps: u64_at(section, 88),
        };
        let len = usize::try_from(header.n_points)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .ok_or(MetaError::Truncated)?;
        let points = section
            .get(HEADER_SIZE..)
            .and_then(|rest| rest.get(..len))
            .ok_or(MetaError::Truncated)?;
        Ok((header, points))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = Header {
            meta_version: META_VERSION,
            state_version: crate::GUEST_STATE_VERSION,
            host_isa: HostIsa::Aarch64,
            flags: 1,
            guest_entry: 0x401000,
            load_bias: 0,
            guest_sha256: [7; 32],
            guest_size: 12345,
            n_points: 2,
            n_traps: 3,
        };
        let mut sec = h.encode().to_vec();
        sec.extend_from_slice(&0x401000u64.to_le_bytes());
        sec.extend_from_slice(&0x401010u64.to_le_bytes());
        let (back, points) = Header::decode(&sec).expect("valid section");
        assert_eq!(back, h);
        assert_eq!(points.len(), 16);
        assert_eq!(Header::decode(&sec[..sec.len() - 1]), Err(MetaError::Truncated));
        let mut bad = sec.clone();
        bad[0] ^= 1;
        assert_eq!(Header::decode(&bad), Err(MetaError::BadMagic));
        let mut bad = sec.clone();
        bad[16] = 9;
        assert_eq!(Header::decode(&bad), Err(MetaError::BadIsa(9)));
    }
}
