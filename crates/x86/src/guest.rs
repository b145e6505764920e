//! The guest executable as the translator sees it: loadable segments at their (biased)
//! guest addresses, entry point, program headers, and the hints code discovery uses
//! (`.eh_frame` function ranges, symbols, code pointers from init arrays and relocations).
//!
//! [`GuestBinary::parse`] accepts only what hcontainer can translate — a little-endian ELF64
//! x86-64 executable that is statically linked (`ET_EXEC`, or a static-pie `ET_DYN` without
//! interpreter and without needed libraries) — and checks every offset it reads: malformed
//! input gives a [`GuestError`], never a panic.

use std::collections::HashSet;
use std::ops::Range;

use gimli::UnwindSection;
use object::elf;
use object::read::elf::{Dyn as _, FileHeader, ProgramHeader as _, Rela as _, SectionHeader as _, Sym as _};
use object::LittleEndian as LE;
use sha2::Digest;

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
    #[error("wrong architecture: {0} (only x86-64 programs and libraries can be translated)")]
    WrongMachine(String),
    /// Has an interpreter or needs shared libraries, where a static executable is required.
    #[error("dynamically linked (needs {0}); translate it as a dynamically linked program")]
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

impl Segment {
    /// Guest addresses backed by file bytes: `vaddr .. vaddr + filesz`.
    pub fn file_backed(&self) -> Range<u64> {
        self.vaddr..self.vaddr + self.file_range.len() as u64
    }

    /// Guest addresses the segment occupies in memory: `vaddr .. vaddr + memsz`.
    pub fn mem_range(&self) -> Range<u64> {
        self.vaddr..self.vaddr + self.memsz
    }
}

/// The `PT_TLS` initialization image (biased address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsTemplate {
    /// Guest address of the initialized part.
    pub vaddr: u64,
    /// Bytes of initialized data.
    pub filesz: u64,
    /// Total size (the rest is zero).
    pub memsz: u64,
    /// Required alignment.
    pub align: u64,
}

/// What kind of ELF file a guest is, which decides how it is translated and loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// A static executable (`ET_EXEC` without interpreter).
    Static,
    /// A static-pie (`ET_DYN` with `DF_1_PIE`, no interpreter, no needed libraries): translated
    /// at [`hcontainer_abi::layout::PIE_GUEST_BASE`] like a static executable.
    StaticPie,
    /// A dynamically linked executable (`PT_INTERP`; `ET_EXEC`, or a PIE): translated as a unit
    /// (`hcontainer_abi::unit`) that the launcher maps with its interpreter.
    Executable,
    /// A shared object (`ET_DYN` that is no executable): a library, a plugin, or `ld.so`
    /// itself; translated as a unit at link-time addresses.
    SharedObject,
}

impl ElfKind {
    /// Translated as a unit (loaded by the runtime where the guest maps it).
    pub fn is_unit(self) -> bool {
        matches!(self, ElfKind::Executable | ElfKind::SharedObject)
    }
}

/// What the dynamic section of a dynamically linked file says about loading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `PT_INTERP`, if any.
    pub interp: Option<String>,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// `DT_RPATH` (colon-separated, unexpanded).
    pub rpath: Option<String>,
    /// `DT_RUNPATH` (colon-separated, unexpanded).
    pub runpath: Option<String>,
}

/// A parsed, validated x86-64 ELF file: a static executable, or (through
/// [`GuestBinary::parse_any`]) any dynamically linked executable or shared object.
#[derive(Clone, Debug)]
pub struct GuestBinary {
    /// Name used in messages (usually the path).
    pub name: String,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Entry point (biased).
    pub entry: u64,
    /// Position independent (`ET_DYN`).
    pub is_pie: bool,
    /// What kind of file it is.
    pub kind: ElfKind,
    /// Loading facts of a dynamically linked file (default for static ones).
    pub dynamic: Dynamic,
    /// Added to every file address: `hcontainer_abi::layout::PIE_GUEST_BASE` for a static-pie,
    /// else 0 (units are translated at their link-time addresses).
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
    /// The thread-local storage template (`PT_TLS`), if any.
    pub tls: Option<TlsTemplate>,
    /// Guest address range of `.eh_frame` when found (biased).
    pub eh_frame: Option<Range<u64>>,
    /// Where code is (biased, sorted): the executable sections when the file has section
    /// headers, else the file-backed parts of the executable segments.
    pub code_ranges: Vec<Range<u64>>,
    /// Exception landing pads from the FDEs' language-specific data (`.gcc_except_table`),
    /// biased, sorted, deduplicated: the unwinder jumps to them.
    pub landing_pads: Vec<u64>,
}

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const R_X86_64_64: u32 = 1;
const R_X86_64_GLOB_DAT: u32 = 6;
const R_X86_64_JUMP_SLOT: u32 = 7;
const R_X86_64_RELATIVE: u32 = 8;
const R_X86_64_IRELATIVE: u32 = 37;

/// Human-readable name of an ELF `e_machine` value.
fn machine_name(machine: u16) -> String {
    let name = match machine {
        elf::EM_386 => "x86 (i386)",
        elf::EM_X86_64 => "x86-64",
        elf::EM_AARCH64 => "AArch64",
        elf::EM_ARM => "ARM",
        elf::EM_RISCV => "RISC-V",
        elf::EM_MIPS => "MIPS",
        elf::EM_PPC => "PowerPC",
        elf::EM_PPC64 => "PowerPC64",
        elf::EM_S390 => "s390",
        elf::EM_SPARC => "SPARC",
        elf::EM_SPARCV9 => "SPARC V9",
        elf::EM_LOONGARCH => "LoongArch",
        elf::EM_IA_64 => "IA-64",
        _ => return format!("unknown machine {machine}"),
    };
    name.to_string()
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u64_le(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// A slice of `bytes` at file offset `off`, `len` long, or a `Truncated` error naming `what`.
fn file_slice<'a>(bytes: &'a [u8], off: u64, len: u64, what: &str) -> Result<&'a [u8], GuestError> {
    let end = off.checked_add(len).ok_or_else(|| {
        GuestError::Malformed(format!("{what}: offset {off:#x} + size {len:#x} overflows"))
    })?;
    let (Ok(s), Ok(e)) = (usize::try_from(off), usize::try_from(end)) else {
        return Err(GuestError::Truncated(format!("{what} at offset {off:#x} beyond the file")));
    };
    bytes.get(s..e).ok_or_else(|| {
        GuestError::Truncated(format!(
            "{what} at file offset {off:#x}..{end:#x} but the file has {} bytes",
            bytes.len()
        ))
    })
}

/// Dynamic-section values hcontainer cares about (unbiased addresses).
#[derive(Default)]
struct DynInfo {
    needed: Vec<u64>,
    strtab: Option<u64>,
    strsz: Option<u64>,
    rela: Option<u64>,
    relasz: u64,
    jmprel: Option<u64>,
    pltrelsz: u64,
    relr: Option<u64>,
    relrsz: u64,
    arrays: Vec<(u64, u64)>,
    init_fini: Vec<u64>,
    soname: Option<u64>,
    rpath: Option<u64>,
    runpath: Option<u64>,
    flags_1: u64,
    symtab: Option<u64>,
}

impl GuestBinary {
    /// Parse and validate a static executable (or static-pie): `bytes` is the content of file
    /// `name`. A dynamically linked file is refused with [`GuestError::Dynamic`].
    pub fn parse(name: &str, bytes: Vec<u8>) -> Result<GuestBinary, GuestError> {
        let bin = Self::parse_any(name, bytes)?;
        if bin.kind.is_unit() {
            let what = match (&bin.dynamic.interp, bin.dynamic.needed.is_empty()) {
                (Some(i), _) => format!("interpreter {i}"),
                (None, false) => bin.dynamic.needed.join(", "),
                (None, true) => "a shared object".to_string(),
            };
            return Err(GuestError::Dynamic(what));
        }
        Ok(bin)
    }

    /// Parse and validate any x86-64 ELF executable or shared object.
    pub fn parse_any(name: &str, bytes: Vec<u8>) -> Result<GuestBinary, GuestError> {
        if bytes.len() < 4 || bytes[..4] != elf::ELFMAG {
            return Err(GuestError::NotElf);
        }
        if bytes.len() < EHDR_SIZE {
            return Err(GuestError::Truncated(format!(
                "ELF header needs {EHDR_SIZE} bytes, file has {}",
                bytes.len()
            )));
        }
        let class = bytes[4];
        let data = bytes[5];
        let machine_le = u16_at(&bytes, 18);
        let machine_be = u16::from_be_bytes([bytes[18], bytes[19]]);
        if data == elf::ELFDATA2MSB {
            return Err(GuestError::WrongMachine(format!(
                "big-endian {}",
                machine_name(machine_be)
            )));
        }
        if data != elf::ELFDATA2LSB {
            return Err(GuestError::Malformed(format!("unknown data encoding {data}")));
        }
        if class == elf::ELFCLASS32 {
            return Err(GuestError::WrongMachine(format!("32-bit {}", machine_name(machine_le))));
        }
        if class != elf::ELFCLASS64 {
            return Err(GuestError::Malformed(format!("unknown ELF class {class}")));
        }
        if machine_le != elf::EM_X86_64 {
            return Err(GuestError::WrongMachine(machine_name(machine_le)));
        }
        let hdr = elf::FileHeader64::<LE>::parse(&*bytes)
            .map_err(|e| GuestError::Malformed(format!("ELF header: {e}")))?;
        let e = LE;
        let is_pie = match hdr.e_type(e) {
            elf::ET_EXEC => false,
            elf::ET_DYN => true,
            elf::ET_REL => {
                return Err(GuestError::Malformed("a relocatable object, not an executable".into()))
            }
            elf::ET_CORE => return Err(GuestError::Malformed("a core dump, not an executable".into())),
            t => return Err(GuestError::Malformed(format!("unknown ELF type {t}"))),
        };
        let e_type_dyn = is_pie;

        // Program headers.
        let phoff = hdr.e_phoff(e);
        let phnum = hdr.e_phnum(e);
        let phent = hdr.e_phentsize(e);
        if phnum == 0 || phoff == 0 {
            return Err(GuestError::Malformed("no program headers".into()));
        }
        if usize::from(phent) != PHDR_SIZE {
            return Err(GuestError::Malformed(format!(
                "program header size {phent}, expected {PHDR_SIZE}"
            )));
        }
        file_slice(&bytes, phoff, u64::from(phnum) * PHDR_SIZE as u64, "program header table")?;
        let phdrs = hdr
            .program_headers(e, &*bytes)
            .map_err(|err| GuestError::Malformed(format!("program headers: {err}")))?;

        // The kind decides the bias: the interpreter and the dynamic section first.
        let mut interp = None;
        let mut dyn_raw: Option<std::ops::Range<usize>> = None;
        for ph in phdrs {
            let (off, filesz) = (ph.p_offset(e), ph.p_filesz(e));
            match ph.p_type(e) {
                elf::PT_INTERP => {
                    let raw = file_slice(&bytes, off, filesz, "PT_INTERP")?;
                    let path = raw.split(|&b| b == 0).next().unwrap_or_default();
                    interp = Some(String::from_utf8_lossy(path).into_owned());
                }
                elf::PT_DYNAMIC => {
                    let raw = file_slice(&bytes, off, filesz, "PT_DYNAMIC")?;
                    // Checked by file_slice.
                    dyn_raw = Some(off as usize..off as usize + raw.len());
                }
                _ => {}
            }
        }
        let dyninfo = dyn_raw.clone().map(|r| parse_dynamic(&bytes[r])).unwrap_or_default();
        const DF_1_PIE: u64 = 0x0800_0000;
        let kind = match (e_type_dyn, interp.is_some()) {
            (false, false) => ElfKind::Static,
            (false, true) => ElfKind::Executable,
            (true, true) if dyninfo.flags_1 & DF_1_PIE != 0 => ElfKind::Executable,
            (true, false) if dyninfo.needed.is_empty() && dyninfo.flags_1 & DF_1_PIE != 0 => ElfKind::StaticPie,
            (true, _) => ElfKind::SharedObject,
        };
        if kind == ElfKind::Static && !dyninfo.needed.is_empty() {
            return Err(GuestError::Malformed("an executable that needs libraries but has no interpreter".into()));
        }
        let load_bias = if kind == ElfKind::StaticPie { hcontainer_abi::layout::PIE_GUEST_BASE } else { 0 };

        // Section headers are optional, but if declared they must be inside the file.
        let shoff = hdr.e_shoff(e);
        if shoff != 0 {
            let shent = hdr.e_shentsize(e);
            if usize::from(shent) != SHDR_SIZE {
                return Err(GuestError::Malformed(format!(
                    "section header size {shent}, expected {SHDR_SIZE}"
                )));
            }
            let shnum = match hdr.e_shnum(e) {
                0 => {
                    // Real count in section 0's sh_size.
                    let s0 = file_slice(&bytes, shoff, SHDR_SIZE as u64, "section header 0")?;
                    u64_le(&s0[32..]).unwrap_or(0)
                }
                n => u64::from(n),
            };
            let size = shnum.checked_mul(SHDR_SIZE as u64).ok_or_else(|| {
                GuestError::Malformed(format!("section header count {shnum} overflows"))
            })?;
            file_slice(&bytes, shoff, size, "section header table")?;
        }

        let mut segments = Vec::new();
        let mut phdr_seg = None;
        let mut eh_frame_hdr = None;
        let mut tls = None;
        for ph in phdrs {
            let (off, filesz) = (ph.p_offset(e), ph.p_filesz(e));
            let (vaddr, memsz) = (ph.p_vaddr(e), ph.p_memsz(e));
            match ph.p_type(e) {
                elf::PT_LOAD => {
                    if memsz == 0 {
                        continue;
                    }
                    file_slice(&bytes, off, filesz, &format!("PT_LOAD segment at {vaddr:#x}"))?;
                    if memsz < filesz {
                        return Err(GuestError::Malformed(format!(
                            "PT_LOAD at {vaddr:#x}: memsz {memsz:#x} < filesz {filesz:#x}"
                        )));
                    }
                    let gvaddr = vaddr
                        .checked_add(load_bias)
                        .filter(|v| v.checked_add(memsz).is_some_and(|end| end <= 1 << 47))
                        .ok_or_else(|| {
                            GuestError::Malformed(format!(
                                "PT_LOAD at {vaddr:#x} size {memsz:#x} outside the user address space"
                            ))
                        })?;
                    let flags = ph.p_flags(e);
                    // Checked by file_slice above.
                    let start = off as usize;
                    segments.push(Segment {
                        vaddr: gvaddr,
                        memsz,
                        file_range: start..start + filesz as usize,
                        read: flags & elf::PF_R != 0,
                        write: flags & elf::PF_W != 0,
                        exec: flags & elf::PF_X != 0,
                    });
                }
                elf::PT_PHDR => phdr_seg = Some(vaddr),
                elf::PT_GNU_EH_FRAME => eh_frame_hdr = Some((vaddr, memsz)),
                elf::PT_TLS => {
                    tls = Some(TlsTemplate {
                        vaddr: vaddr.wrapping_add(load_bias),
                        filesz,
                        memsz,
                        align: ph.p_align(e),
                    })
                }
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(GuestError::Malformed("no loadable segments".into()));
        }
        segments.sort_by_key(|s| s.vaddr);
        for w in segments.windows(2) {
            if w[0].vaddr + w[0].memsz > w[1].vaddr {
                return Err(GuestError::Malformed(format!(
                    "PT_LOAD segments at {:#x} and {:#x} overlap",
                    w[0].vaddr, w[1].vaddr
                )));
            }
        }

        let mut bin = GuestBinary {
            name: name.to_string(),
            bytes: Vec::new(),
            entry: hdr.e_entry(e).wrapping_add(load_bias),
            is_pie,
            kind,
            dynamic: Dynamic { interp, ..Dynamic::default() },
            load_bias,
            segments,
            phdr_addr: 0,
            phnum,
            phent,
            fdes: Vec::new(),
            symbols: Vec::new(),
            code_pointers: Vec::new(),
            tls,
            eh_frame: None,
            code_ranges: Vec::new(),
            landing_pads: Vec::new(),
        };

        // Program header table address: PT_PHDR, else the PT_LOAD that maps e_phoff.
        bin.phdr_addr = match phdr_seg {
            Some(v) => v.wrapping_add(load_bias),
            None => {
                let ph_end = phoff + u64::from(phnum) * PHDR_SIZE as u64;
                bin.segments
                    .iter()
                    .find(|s| s.file_range.start as u64 <= phoff && ph_end <= s.file_range.end as u64)
                    .map(|s| s.vaddr + (phoff - s.file_range.start as u64))
                    .ok_or_else(|| {
                        GuestError::Malformed(
                            "program headers are not in a loadable segment (no PT_PHDR either)".into(),
                        )
                    })?
            }
        };

        // Dynamic section: names, and the relocation tables discovery reads.
        bin.bytes = bytes;
        let name_of = |bin: &GuestBinary, off: u64| bin.dyn_string(&dyninfo, off);
        bin.dynamic.needed = dyninfo
            .needed
            .iter()
            .map(|&off| name_of(&bin, off).unwrap_or_else(|| format!("library #{off}")))
            .collect();
        bin.dynamic.soname = dyninfo.soname.and_then(|o| name_of(&bin, o));
        bin.dynamic.rpath = dyninfo.rpath.and_then(|o| name_of(&bin, o));
        bin.dynamic.runpath = dyninfo.runpath.and_then(|o| name_of(&bin, o));

        // A shared library's `e_entry` is often 0 (none): only executables need one.
        let needs_entry = kind != ElfKind::SharedObject || bin.entry != 0;
        if needs_entry && bin.exec_range_of(bin.entry).is_none() {
            return Err(GuestError::Malformed(format!(
                "entry point {:#x} is not in an executable segment",
                bin.entry
            )));
        }

        let sections = bin.section_headers();
        bin.find_code_ranges(&sections);
        bin.find_eh_frame(&sections, eh_frame_hdr);
        bin.collect_symbols();
        bin.collect_code_pointers(&sections, &dyninfo);
        Ok(bin)
    }

    /// SHA-256 of the whole file.
    pub fn sha256(&self) -> [u8; 32] {
        sha2::Sha256::digest(&self.bytes).into()
    }

    /// The segment whose memory range contains `addr`.
    pub fn segment_at(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.vaddr <= addr).checked_sub(1)?;
        let s = &self.segments[i];
        (addr < s.vaddr + s.memsz).then_some(s)
    }

    /// `len` file-backed bytes at guest address `addr`, if they all lie in the file part of
    /// one segment.
    pub fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let s = self.segment_at(addr)?;
        let off = usize::try_from(addr - s.vaddr).ok()?;
        let start = s.file_range.start.checked_add(off)?;
        let end = start.checked_add(len)?;
        if end > s.file_range.end {
            return None;
        }
        self.bytes.get(start..end)
    }

    /// A little-endian 64-bit value at guest address `addr` (file-backed bytes only).
    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        u64_le(self.read(addr, 8)?)
    }

    /// A little-endian 32-bit value at guest address `addr` (file-backed bytes only).
    pub fn read_u32(&self, addr: u64) -> Option<u32> {
        Some(u32::from_le_bytes(self.read(addr, 4)?.try_into().ok()?))
    }

    /// The file-backed range of the executable segment containing `addr`.
    pub fn exec_range_of(&self, addr: u64) -> Option<Range<u64>> {
        let s = self.segment_at(addr)?;
        let r = s.file_backed();
        (s.exec && r.contains(&addr)).then_some(r)
    }

    /// True when `addr` is file-backed code.
    pub fn is_code(&self, addr: u64) -> bool {
        self.exec_range_of(addr).is_some()
    }

    /// Code bytes from `addr` to the end of its executable segment.
    pub fn code_at(&self, addr: u64) -> Option<&[u8]> {
        let r = self.exec_range_of(addr)?;
        self.read(addr, usize::try_from(r.end - addr).ok()?)
    }

    /// The FDE range containing `addr` (the innermost one when FDEs nest).
    pub fn fde_containing(&self, addr: u64) -> Option<Range<u64>> {
        let i = self.fdes.partition_point(|f| f.start <= addr);
        self.fdes[..i].iter().rev().take(8).find(|f| f.contains(&addr)).cloned()
    }

    /// Reads a NUL-terminated string at offset `off` of the dynamic string table.
    fn dyn_string(&self, d: &DynInfo, off: u64) -> Option<String> {
        let strtab = d.strtab?.wrapping_add(self.load_bias);
        let max = d.strsz.unwrap_or(4096).checked_sub(off)?.min(4096);
        let addr = strtab.checked_add(off)?;
        let s = self.segment_at(addr)?;
        let avail = s.file_backed().end.checked_sub(addr)?.min(max);
        let raw = self.read(addr, usize::try_from(avail).ok()?)?;
        let end = raw.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// The section header table, if present and well formed (bounds were checked in `parse`).
    fn section_headers(&self) -> Vec<elf::SectionHeader64<LE>> {
        let Ok(hdr) = elf::FileHeader64::<LE>::parse(&*self.bytes) else { return Vec::new() };
        match hdr.section_headers(LE, &*self.bytes) {
            Ok(s) => s.to_vec(),
            Err(_) => Vec::new(),
        }
    }

    fn find_eh_frame(&mut self, sections: &[elf::SectionHeader64<LE>], hdr_seg: Option<(u64, u64)>) {
        let names = elf::FileHeader64::<LE>::parse(&*self.bytes)
            .ok()
            .and_then(|h| h.section_strings(LE, &*self.bytes, sections).ok());
        // 1. The `.eh_frame` section header, when present.
        let mut range = None;
        if let Some(names) = names {
            for sh in sections {
                if sh.sh_type(LE) == elf::SHT_PROGBITS
                    && sh.name(LE, names).ok() == Some(b".eh_frame".as_slice())
                    && sh.sh_addr(LE) != 0
                {
                    let start = sh.sh_addr(LE).wrapping_add(self.load_bias);
                    range = Some(start..start.saturating_add(sh.sh_size(LE)));
                }
            }
        }
        // 2. Through PT_GNU_EH_FRAME (`.eh_frame_hdr`): its `eh_frame_ptr` says where `.eh_frame`
        //    starts; it runs to its zero terminator or the end of the segment.
        if range.is_none() {
            if let Some((vaddr, memsz)) = hdr_seg {
                let addr = vaddr.wrapping_add(self.load_bias);
                let len = usize::try_from(memsz).unwrap_or(0).min(1 << 24);
                if let Some(raw) = self.read(addr, len) {
                    let bases = gimli::BaseAddresses::default().set_eh_frame_hdr(addr);
                    let hdr = gimli::EhFrameHdr::new(raw, gimli::LittleEndian);
                    if let Ok(parsed) = hdr.parse(&bases, 8) {
                        if let gimli::Pointer::Direct(p) = parsed.eh_frame_ptr() {
                            // Absolute pointers in a PIE are unrelocated link-time addresses.
                            let p = if p < self.load_bias { p.wrapping_add(self.load_bias) } else { p };
                            if let Some(seg) = self.segment_at(p) {
                                range = Some(p..seg.file_backed().end);
                            }
                        }
                    }
                }
            }
        }
        let Some(range) = range else { return };
        let Some(len) = usize::try_from(range.end.saturating_sub(range.start)).ok() else { return };
        let Some(raw) = self.read(range.start, len) else { return };
        let mut eh = gimli::EhFrame::new(raw, gimli::LittleEndian);
        eh.set_address_size(8);
        let bases = gimli::BaseAddresses::default().set_eh_frame(range.start);
        let mut fdes = Vec::new();
        let mut pads = Vec::new();
        let mut entries = eh.entries(&bases);
        let mut cies = std::collections::HashMap::new();
        while let Ok(Some(entry)) = entries.next() {
            let gimli::CieOrFde::Fde(partial) = entry else { continue };
            let fde = partial.parse(|sect, b, off| {
                if let Some(c) = cies.get(&off) {
                    return Ok(Clone::clone(c));
                }
                let c = sect.cie_from_offset(b, off)?;
                cies.insert(off, c.clone());
                Ok(c)
            });
            let Ok(fde) = fde else { continue };
            let start = fde.initial_address();
            let Some(end) = start.checked_add(fde.len()) else { continue };
            if fde.len() == 0 || !self.is_code(start) {
                continue;
            }
            if let Some(gimli::Pointer::Direct(lsda)) = fde.lsda() {
                self.landing_pads_of(start, lsda, &mut pads);
            }
            fdes.push(start..end);
        }
        pads.sort_unstable();
        pads.dedup();
        pads.retain(|&p| self.is_code(p));
        fdes.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
        fdes.dedup_by_key(|r| r.start);
        self.eh_frame = Some(range);
        self.fdes = fdes;
        self.landing_pads = pads;
    }

    fn find_code_ranges(&mut self, sections: &[elf::SectionHeader64<LE>]) {
        let mut ranges = Vec::new();
        for sh in sections {
            let flags = sh.sh_flags(LE);
            if flags & u64::from(elf::SHF_EXECINSTR) == 0
                || flags & u64::from(elf::SHF_ALLOC) == 0
                || sh.sh_type(LE) == elf::SHT_NOBITS
            {
                continue;
            }
            let start = sh.sh_addr(LE).wrapping_add(self.load_bias);
            let Some(r) = self.exec_range_of(start) else { continue };
            let end = start.saturating_add(sh.sh_size(LE)).min(r.end);
            if start < end {
                ranges.push(start..end);
            }
        }
        if ranges.is_empty() {
            ranges = self.segments.iter().filter(|s| s.exec).map(Segment::file_backed).collect();
        }
        ranges.sort_by_key(|r| r.start);
        self.code_ranges = ranges;
    }

    fn collect_symbols(&mut self) {
        let Ok(hdr) = elf::FileHeader64::<LE>::parse(&*self.bytes) else { return };
        let Ok(table) = hdr.sections(LE, &*self.bytes) else { return };
        let mut out = Vec::new();
        // The static symbol table when the file is not stripped, and always the dynamic one:
        // a shared object's exported functions are entries whoever calls them.
        for kind in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
            let Ok(symtab) = table.symbols(LE, &*self.bytes, kind) else { continue };
            self.symbols_of(&symtab, &mut out);
        }
        out.sort();
        out.dedup();
        self.symbols = out;
    }

    fn symbols_of(
        &self,
        symtab: &object::read::elf::SymbolTable<'_, elf::FileHeader64<LE>>,
        out: &mut Vec<(u64, u64, String)>,
    ) {
        let strings = symtab.strings();
        for sym in symtab.iter() {
            let t = sym.st_type();
            if (t != elf::STT_FUNC && t != elf::STT_GNU_IFUNC) || sym.st_shndx(LE) == elf::SHN_UNDEF {
                continue;
            }
            let addr = sym.st_value(LE).wrapping_add(self.load_bias);
            if !self.is_code(addr) {
                continue;
            }
            let name = sym.name(LE, strings).map(String::from_utf8_lossy).unwrap_or_default();
            out.push((addr, sym.st_size(LE), name.into_owned()));
        }
    }

    fn collect_code_pointers(&mut self, sections: &[elf::SectionHeader64<LE>], d: &DynInfo) {
        let bias = self.load_bias;
        let mut ptrs = HashSet::new();
        let mut relocs: Vec<&[u8]> = Vec::new();
        let mut arrays: Vec<(u64, u64)> = d.arrays.clone();
        for sh in sections {
            let alloc = sh.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0;
            match sh.sh_type(LE) {
                elf::SHT_RELA if alloc => {
                    if let Ok(raw) = file_slice(&self.bytes, sh.sh_offset(LE), sh.sh_size(LE), "") {
                        relocs.push(raw);
                    }
                }
                elf::SHT_INIT_ARRAY | elf::SHT_FINI_ARRAY | elf::SHT_PREINIT_ARRAY if alloc => {
                    arrays.push((sh.sh_addr(LE), sh.sh_size(LE)));
                }
                _ => {}
            }
        }
        let mut dyn_tables = vec![(d.rela, d.relasz), (d.jmprel, d.pltrelsz)];
        dyn_tables.retain(|t| t.0.is_some());
        for (addr, size) in dyn_tables {
            let Some(addr) = addr else { continue };
            if let Some(raw) = usize::try_from(size).ok().and_then(|n| self.read(addr.wrapping_add(bias), n)) {
                relocs.push(raw);
            }
        }
        // Symbol values of the dynamic symbol table, for relocations against symbols the file
        // defines itself (a shared object's pointers to its own exported functions).
        let dynsym: Vec<u64> = elf::FileHeader64::<LE>::parse(&*self.bytes)
            .ok()
            .and_then(|h| h.sections(LE, &*self.bytes).ok())
            .and_then(|t| t.symbols(LE, &*self.bytes, elf::SHT_DYNSYM).ok())
            .map(|t| {
                t.iter()
                    .map(|s| if s.st_shndx(LE) == elf::SHN_UNDEF { 0 } else { s.st_value(LE) })
                    .collect()
            })
            .unwrap_or_default();
        for raw in relocs {
            for chunk in raw.chunks_exact(24) {
                let Ok(rela) = object::pod::from_bytes::<elf::Rela64<LE>>(chunk) else { continue };
                let rtype = rela.0.r_type(LE, false);
                if rtype == R_X86_64_RELATIVE || rtype == R_X86_64_IRELATIVE {
                    ptrs.insert((rela.0.r_addend(LE) as u64).wrapping_add(bias));
                } else if matches!(rtype, R_X86_64_64 | R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT) {
                    let sym = rela.0.r_sym(LE, false) as usize;
                    if let Some(&v) = dynsym.get(sym).filter(|&&v| v != 0) {
                        ptrs.insert(v.wrapping_add(rela.0.r_addend(LE) as u64).wrapping_add(bias));
                    }
                    // A lazily bound PLT slot starts out pointing back into its PLT entry
                    // (the `push; jmp` to the resolver), plus the load bias at run time.
                    if rtype == R_X86_64_JUMP_SLOT {
                        if let Some(v) = self.read_u64(rela.0.r_offset(LE).wrapping_add(bias)) {
                            ptrs.insert(v.wrapping_add(bias));
                        }
                    }
                }
            }
        }
        // RELR: every listed slot holds its link-time value.
        if let Some(relr) = d.relr {
            if let Some(raw) = usize::try_from(d.relrsz).ok().and_then(|n| self.read(relr.wrapping_add(bias), n)) {
                let mut base = 0u64;
                let mut slots = Vec::new();
                for w in raw.chunks_exact(8) {
                    let Some(w) = u64_le(w) else { continue };
                    if w & 1 == 0 {
                        slots.push(w);
                        base = w.wrapping_add(8);
                    } else {
                        for bit in 1..64 {
                            if (w >> bit) & 1 != 0 {
                                slots.push(base.wrapping_add((bit - 1) * 8));
                            }
                        }
                        base = base.wrapping_add(63 * 8);
                    }
                }
                for s in slots {
                    if let Some(v) = self.read_u64(s.wrapping_add(bias)) {
                        ptrs.insert(v.wrapping_add(bias));
                    }
                }
            }
        }
        for (addr, size) in arrays {
            let n = (size / 8).min(1 << 20);
            for i in 0..n {
                if let Some(v) = self.read_u64(addr.wrapping_add(bias).wrapping_add(i * 8)) {
                    if v != 0 && v != u64::MAX {
                        ptrs.insert(v.wrapping_add(bias));
                    }
                }
            }
        }
        for v in &d.init_fini {
            ptrs.insert(v.wrapping_add(bias));
        }
        let mut out: Vec<u64> = ptrs.into_iter().filter(|&p| self.is_code(p)).collect();
        out.sort_unstable();
        self.code_pointers = out;
    }
}

impl GuestBinary {
    /// Landing pads of the GCC LSDA at `lsda` for the function starting at `func`.
    fn landing_pads_of(&self, func: u64, lsda: u64, out: &mut Vec<u64>) {
        let Some(seg) = self.segment_at(lsda) else { return };
        let avail = seg.file_backed().end.saturating_sub(lsda).min(1 << 20);
        let Some(raw) = usize::try_from(avail).ok().and_then(|n| self.read(lsda, n)) else { return };
        let mut r = EhReader { raw, pos: 0, base: lsda };
        let Some(lp_enc) = r.u8() else { return };
        let lp_start = if lp_enc == DW_EH_PE_OMIT {
            func
        } else {
            match r.encoded(lp_enc) {
                Some(v) => v,
                None => return,
            }
        };
        let Some(tt_enc) = r.u8() else { return };
        if tt_enc != DW_EH_PE_OMIT && r.uleb().is_none() {
            return;
        }
        let Some(cs_enc) = r.u8() else { return };
        let Some(cs_len) = r.uleb() else { return };
        let Some(end) = usize::try_from(cs_len).ok().and_then(|n| r.pos.checked_add(n)) else { return };
        while r.pos < end {
            let (Some(_start), Some(_len), Some(lp), Some(_action)) =
                (r.encoded(cs_enc), r.encoded(cs_enc), r.encoded(cs_enc), r.uleb())
            else {
                return;
            };
            if lp != 0 {
                out.push(lp_start.wrapping_add(lp));
            }
        }
    }
}

const DW_EH_PE_OMIT: u8 = 0xff;

/// A cursor over exception-handling data with DWARF pointer encodings.
struct EhReader<'a> {
    raw: &'a [u8],
    pos: usize,
    /// Guest address of `raw[0]`.
    base: u64,
}

impl EhReader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let b = self.raw.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn sleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= u64::MAX << shift;
                }
                return Some(v);
            }
            if shift >= 70 {
                return None;
            }
        }
    }

    /// A value in DWARF exception-header encoding `enc` (absolute or pc-relative only).
    fn encoded(&mut self, enc: u8) -> Option<u64> {
        let at = self.base.wrapping_add(self.pos as u64);
        let le = |b: &[u8]| b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x));
        let v = match enc & 0x0f {
            0x00 | 0x04 => le(self.bytes(8)?),
            0x01 => self.uleb()?,
            0x02 => le(self.bytes(2)?),
            0x03 => le(self.bytes(4)?),
            0x09 => self.sleb()?,
            0x0a => le(self.bytes(2)?) as i16 as u64,
            0x0b => le(self.bytes(4)?) as i32 as u64,
            0x0c => le(self.bytes(8)?),
            _ => return None,
        };
        match enc & 0x70 {
            0x00 => Some(v),
            0x10 => Some(at.wrapping_add(v)),
            _ => None,
        }
    }
}

fn parse_dynamic(raw: &[u8]) -> DynInfo {
    let mut d = DynInfo::default();
    let mut arrays: [(Option<u64>, u64); 3] = [(None, 0); 3];
    for chunk in raw.chunks_exact(16) {
        let Ok((dy, _)) = object::pod::from_bytes::<elf::Dyn64<LE>>(chunk) else { break };
        let tag = dy.d_tag(LE);
        let val = dy.d_val(LE);
        match tag {
            elf::DT_NULL => break,
            elf::DT_NEEDED => d.needed.push(val),
            elf::DT_STRTAB => d.strtab = Some(val),
            elf::DT_STRSZ => d.strsz = Some(val),
            elf::DT_RELA => d.rela = Some(val),
            elf::DT_RELASZ => d.relasz = val,
            elf::DT_JMPREL => d.jmprel = Some(val),
            elf::DT_PLTRELSZ => d.pltrelsz = val,
            elf::DT_RELR => d.relr = Some(val),
            elf::DT_RELRSZ => d.relrsz = val,
            elf::DT_INIT_ARRAY => arrays[0].0 = Some(val),
            elf::DT_INIT_ARRAYSZ => arrays[0].1 = val,
            elf::DT_FINI_ARRAY => arrays[1].0 = Some(val),
            elf::DT_FINI_ARRAYSZ => arrays[1].1 = val,
            elf::DT_PREINIT_ARRAY => arrays[2].0 = Some(val),
            elf::DT_PREINIT_ARRAYSZ => arrays[2].1 = val,
            elf::DT_INIT | elf::DT_FINI => d.init_fini.push(val),
            elf::DT_SONAME => d.soname = Some(val),
            elf::DT_RPATH => d.rpath = Some(val),
            elf::DT_RUNPATH => d.runpath = Some(val),
            elf::DT_FLAGS_1 => d.flags_1 = val,
            elf::DT_SYMTAB => d.symtab = Some(val),
            _ => {}
        }
    }
    d.arrays = arrays.iter().filter_map(|&(a, s)| Some((a?, s))).collect();
    d
}
