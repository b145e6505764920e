//! Just enough ELF64 for the runtime's two loaders: the guest's x86-64 files (program and
//! interpreter, mapped as Linux maps them) and the host's translation units. Everything is
//! read from a file descriptor with `pread` and checked before use: a malformed file gives an
//! error, never a wild access.

use crate::sys::{self, Errno};

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_DYNAMIC`.
pub const PT_DYNAMIC: u32 = 2;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// `PT_GNU_RELRO`.
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
/// `ET_EXEC`.
pub const ET_EXEC: u16 = 2;
/// `ET_DYN`.
pub const ET_DYN: u16 = 3;
/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `PF_X`.
pub const PF_X: u32 = 1;
/// `PF_W`.
pub const PF_W: u32 = 2;
/// `PF_R`.
pub const PF_R: u32 = 4;

/// Most program headers read.
pub const MAX_PHDRS: usize = 32;

/// Why a file is not a loadable ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Reading failed.
    Io(Errno),
    /// Not ELF64 little-endian.
    NotElf,
    /// Another machine than expected (the value found).
    Machine(u16),
    /// Structurally invalid (what).
    Malformed(&'static str),
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ElfError::Io(e) => write!(f, "cannot read it (errno {})", e.0),
            ElfError::NotElf => write!(f, "not a 64-bit little-endian ELF file"),
            ElfError::Machine(m) => write!(f, "ELF for machine {} where another was expected", m),
            ElfError::Malformed(w) => write!(f, "malformed ELF: {}", w),
        }
    }
}

impl From<Errno> for ElfError {
    fn from(e: Errno) -> Self {
        ElfError::Io(e)
    }
}

/// One program header.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phdr {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

/// The headers of an ELF file.
#[derive(Clone, Copy, Debug)]
pub struct Headers {
    /// `e_type`.
    pub kind: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_entry`.
    pub entry: u64,
    /// `e_phoff`.
    pub phoff: u64,
    /// Program headers (the first `phnum`).
    pub phdrs: [Phdr; MAX_PHDRS],
    /// Number of program headers.
    pub phnum: usize,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// A little-endian `u64` at `o` of `b` (the caller checked the bounds).
pub fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(w)
}

impl Headers {
    /// Read and check the ELF and program headers of `fd`, which must be for `machine`
    /// (any when `None`).
    pub fn read(fd: i32, machine: Option<u16>) -> Result<Headers, ElfError> {
        let mut eh = [0u8; 64];
        sys::pread_exact(fd, &mut eh, 0).map_err(|e| if e == Errno::EINVAL { ElfError::NotElf } else { ElfError::Io(e) })?;
        if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
            return Err(ElfError::NotElf);
        }
        let m = u16_at(&eh, 18);
        if machine.is_some_and(|want| want != m) {
            return Err(ElfError::Machine(m));
        }
        let phoff = u64_at(&eh, 32);
        let phentsize = u16_at(&eh, 54);
        let phnum = usize::from(u16_at(&eh, 56));
        if phentsize != 56 {
            return Err(ElfError::Malformed("program header size is not 56"));
        }
        if phnum == 0 || phnum > MAX_PHDRS {
            return Err(ElfError::Malformed("no program headers, or too many"));
        }
        let mut raw = [0u8; 56 * MAX_PHDRS];
        sys::pread_exact(fd, &mut raw[..56 * phnum], phoff).map_err(|_| ElfError::Malformed("program headers beyond the file"))?;
        let mut h = Headers { kind: u16_at(&eh, 16), machine: m, entry: u64_at(&eh, 24), phoff, phdrs: [Phdr::default(); MAX_PHDRS], phnum };
        for i in 0..phnum {
            let p = &raw[56 * i..56 * i + 56];
            let ph = Phdr {
                kind: u32_at(p, 0),
                flags: u32_at(p, 4),
                offset: u64_at(p, 8),
                vaddr: u64_at(p, 16),
                filesz: u64_at(p, 32),
                memsz: u64_at(p, 40),
            };
            if ph.kind == PT_LOAD && (ph.filesz > ph.memsz || ph.vaddr.checked_add(ph.memsz).is_none()) {
                return Err(ElfError::Malformed("a PT_LOAD segment is larger in the file than in memory"));
            }
            h.phdrs[i] = ph;
        }
        Ok(h)
    }

    /// The program headers.
    pub fn phdrs(&self) -> &[Phdr] {
        &self.phdrs[..self.phnum]
    }

    /// The `PT_LOAD` segments.
    pub fn loads(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs().iter().filter(|p| p.kind == PT_LOAD)
    }

    /// Lowest and end (exclusive) link-time address of the `PT_LOAD` segments.
    pub fn span(&self) -> Option<(u64, u64)> {
        let lo = self.loads().map(|p| p.vaddr).min()?;
        let hi = self.loads().map(|p| p.vaddr + p.memsz).max()?;
        Some((lo, hi))
    }

    /// The first program header of `kind`.
    pub fn find(&self, kind: u32) -> Option<&Phdr> {
        self.phdrs().iter().find(|p| p.kind == kind)
    }

    /// Link-time address of the program header table: `PT_PHDR`, else where the `PT_LOAD`
    /// that holds `e_phoff` maps it.
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(p) = self.find(PT_PHDR) {
            return Some(p.vaddr);
        }
        let end = self.phoff + 56 * self.phnum as u64;
        self.loads()
            .find(|p| p.offset <= self.phoff && end <= p.offset + p.filesz)
            .map(|p| p.vaddr + (self.phoff - p.offset))
    }
}
