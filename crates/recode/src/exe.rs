//! What recode needs to know about an executable: the original x86-64 binary (its `PT_LOAD`
//! segments, placed at the load bias a PIE gets) or a translated one (its metadata, the
//! runtime segments in hcontainer's range, where each guest segment lies in the file, the
//! resume entry and the runtime's guest signal table).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hcontainer_abi::calls::{GUEST_SEGMENTS, GUEST_SEGMENTS_LEN, RESUME};
use hcontainer_abi::layout::{self, GUEST_PAGE_SIZE as PAGE};
use hcontainer_abi::meta::{self, HostIsa};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, SectionHeader};
use object::{elf, Endian, Endianness, Object, ObjectSection, ReadCache, ReadRef};

use crate::image::RecodeError;

/// A loadable piece of an executable: `filesz` bytes at file offset `offset` appear at
/// `vaddr`, zero up to `memsz`, with protection `prot` (`PROT_*` bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First byte in memory.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// File offset of the first byte.
    pub offset: u64,
    /// Bytes from the file.
    pub filesz: u64,
    /// `PROT_READ` 1, `PROT_WRITE` 2, `PROT_EXEC` 4.
    pub prot: u32,
}

impl Segment {
    /// The file offset of the page at `addr` (page aligned, inside the segment's file part).
    pub fn file_offset_of(&self, addr: u64) -> Option<u64> {
        let start = self.vaddr & !(PAGE - 1);
        let file_end = self.vaddr + self.filesz;
        (addr >= start && addr < file_end).then(|| (self.offset & !(PAGE - 1)) + (addr - start))
    }
}

/// An executable recode maps into an image.
#[derive(Debug)]
pub struct Exe {
    /// Absolute path (CRIU opens it by name at restore).
    pub path: PathBuf,
    /// File size (CRIU checks it).
    pub size: u64,
    /// File mode.
    pub mode: u32,
    /// The open file: only the parts recode needs are read (headers, metadata, symbols,
    /// runtime pages), never the whole executable.
    pub(crate) file: Option<fs::File>,
    /// The metadata of a translated executable; `None` for the original.
    pub meta: Option<meta::Header>,
    /// `hc_resume` (translated only).
    pub resume: u64,
    /// `PT_LOAD`s in hcontainer's range (translated only).
    pub runtime: Vec<Segment>,
    /// Where the guest's segments are in this file, at their guest addresses.
    pub guest: Vec<Segment>,
    /// Address of the runtime's guest signal table (65 × handler, flags, restorer, mask).
    pub actions: Option<u64>,
    /// Entry point in memory (`AT_ENTRY`).
    pub entry: u64,
    /// Address of the program headers in memory (`AT_PHDR`; 0 when no segment maps them).
    pub phdr: u64,
    /// Number of program headers (`AT_PHNUM`).
    pub phnum: u64,
    /// For the launcher of a dynamically linked program: the program it starts (the guest's
    /// executable, which a recode back to native execution runs).
    pub launches: Option<PathBuf>,
    /// The file has an interpreter (a dynamically linked program).
    pub dynamic: bool,
}

fn prot_of(flags: u32) -> u32 {
    (if flags & elf::PF_R != 0 { 1 } else { 0 })
        | (if flags & elf::PF_W != 0 { 2 } else { 0 })
        | (if flags & elf::PF_X != 0 { 4 } else { 0 })
}

impl Exe {
    /// Reads and describes the executable at `path` (its headers, metadata and symbols).
    pub fn open(path: &Path) -> Result<Exe, RecodeError> {
        let path = fs::canonicalize(path).map_err(|source| RecodeError::Io { path: path.to_path_buf(), source })?;
        let opened = fs::File::open(&path).map_err(|source| RecodeError::Io { path: path.clone(), source })?;
        let md = opened.metadata().map_err(|source| RecodeError::Io { path: path.clone(), source })?;
        // Positioned reads (symbols, runtime pages) use their own handle; the cache reads
        // the ELF structures through the other.
        let reader = opened.try_clone().map_err(|source| RecodeError::Io { path: path.clone(), source })?;
        let cache = ReadCache::new(opened);
        let data = &cache;
        let bad = |why: String| RecodeError::Translated { path: path.clone(), why };
        let file = ElfFile64::<Endianness, _>::parse(data).map_err(|e| bad(format!("not a 64-bit ELF file: {e}")))?;
        let e = file.endian();
        let hdr = file.elf_header();
        let meta = match file.section_by_name(meta::SECTION) {
            Some(sec) => {
                let bytes = sec.data().map_err(|e| bad(e.to_string()))?;
                Some(meta::Header::decode(bytes).map_err(|e| bad(e.to_string()))?.0)
            }
            None => None,
        };
        if meta.is_none() && hdr.e_machine(e) != elf::EM_X86_64 {
            return Err(bad(format!("e_machine {} without hcontainer metadata: not a program of ours", hdr.e_machine(e))));
        }
        let mut runtime = Vec::new();
        let mut guest = Vec::new();
        let bias = match (&meta, hdr.e_type(e)) {
            (Some(_), _) => 0,
            (None, elf::ET_DYN) => layout::PIE_GUEST_BASE,
            (None, _) => 0,
        };
        let phoff = hdr.e_phoff(e);
        let mut phdr = 0;
        let phdrs = hdr.program_headers(e, data).map_err(|e| bad(e.to_string()))?;
        let dynamic = phdrs.iter().any(|p| p.p_type(e) == elf::PT_INTERP);
        for p in phdrs {
            if p.p_type(e) != elf::PT_LOAD {
                continue;
            }
            if phoff >= p.p_offset(e) && phoff < p.p_offset(e) + p.p_filesz(e) {
                phdr = p.p_vaddr(e) + bias + (phoff - p.p_offset(e));
            }
            let s = Segment {
                vaddr: p.p_vaddr(e) + bias,
                memsz: p.p_memsz(e),
                offset: p.p_offset(e),
                filesz: p.p_filesz(e),
                prot: prot_of(p.p_flags(e)),
            };
            if s.vaddr % PAGE != s.offset % PAGE || s.filesz > s.memsz {
                return Err(bad(format!("segment at {:#x}: file offset {:#x} not congruent", s.vaddr, s.offset)));
            }
            if meta.is_some() && layout::is_runtime_addr(s.vaddr) {
                runtime.push(s);
            } else {
                guest.push(s);
            }
        }
        let mut resume = 0;
        let mut actions = None;
        let mut launches = None;
        if meta.is_some() {
            // One pass over the symbol table for every symbol recode needs.
            let (mut resume_sym, mut table_sym, mut len_sym, mut config_sym) = (None, None, None, None);
            for (name, address) in symbols(&file, &reader).map_err(|e| bad(format!("symbol table: {e}")))? {
                match name.as_slice() {
                    n if n == RESUME.as_bytes() => resume_sym = resume_sym.or(Some(address)),
                    n if n == GUEST_SEGMENTS.as_bytes() => table_sym = table_sym.or(Some(address)),
                    n if n == GUEST_SEGMENTS_LEN.as_bytes() => len_sym = len_sym.or(Some(address)),
                    n if n == hcontainer_abi::unit::LOADER_CONFIG.as_bytes() => config_sym = config_sym.or(Some(address)),
                    n if n.starts_with(b"_ZN18hcontainer_runtime6signal7ACTIONS") => actions = actions.or(Some(address)),
                    _ => {}
                }
            }
            resume = resume_sym
                .ok_or_else(|| bad(format!("no {RESUME} symbol: not linked with a runtime that can resume")))?;
            if meta.is_some_and(|m| m.flags & meta::FLAG_LAUNCHER != 0) {
                use hcontainer_abi::unit::PATH_MAX;
                let at = config_sym.ok_or_else(|| bad("a launcher without hc_loader_config".into()))?;
                let raw = read_bytes(&file, data, at + 8, PATH_MAX as u64)
                    .ok_or_else(|| bad("hc_loader_config is not in the file".into()))?;
                let name = raw.split(|&b| b == 0).next().unwrap_or_default();
                if !name.is_empty() {
                    use std::os::unix::ffi::OsStrExt;
                    launches = Some(PathBuf::from(std::ffi::OsStr::from_bytes(name)));
                }
            }
            if runtime.is_empty() {
                return Err(bad("no segments in hcontainer's address range".into()));
            }
            if let (Some(table), Some(len)) = (table_sym, len_sym) {
                let n = read_u64(&file, data, len).ok_or_else(|| bad(format!("{GUEST_SEGMENTS_LEN} is not in the file")))?;
                for i in 0..n.min(4096) {
                    let f = |k: u64| read_u64(&file, data, table + 40 * i + 8 * k);
                    let (Some(vaddr), Some(memsz), Some(offset), Some(filesz), Some(flags)) = (f(0), f(1), f(2), f(3), f(4))
                    else {
                        return Err(bad(format!("{GUEST_SEGMENTS} entry {i} is not in the file")));
                    };
                    // p_flags: 4 = read, 2 = write, 1 = execute.
                    let prot = (if flags & 4 != 0 { 1 } else { 0 })
                        | (if flags & 2 != 0 { 2 } else { 0 })
                        | (if flags & 1 != 0 { 4 } else { 0 });
                    guest.push(Segment { vaddr, memsz, offset, filesz, prot });
                }
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let entry = hdr.e_entry(e) + bias;
        let phnum = phdrs.len() as u64;
        Ok(Exe {
            size: md.len(),
            mode: md.permissions().mode(),
            path,
            file: Some(reader),
            meta,
            resume,
            runtime,
            guest,
            actions,
            entry,
            phdr,
            phnum,
            launches,
            dynamic,
        })
    }

    /// Whether this is the launcher of a dynamically linked program (whose guest code is in
    /// the units of the files the process maps, not in this file).
    pub fn is_launcher(&self) -> bool {
        self.meta.is_some_and(|m| m.flags & meta::FLAG_LAUNCHER != 0)
    }

    /// The host ISA of a translated executable; `None` for the original.
    pub fn host_isa(&self) -> Option<HostIsa> {
        self.meta.map(|m| m.host_isa)
    }

    /// The guest segment holding the file page mapped at guest address `addr`.
    pub fn guest_segment_at(&self, addr: u64) -> Option<&Segment> {
        self.guest.iter().find(|s| s.file_offset_of(addr).is_some())
    }

    /// The content of the page at `addr` as this executable's loader leaves it in a runtime
    /// segment: file bytes, zero after the segment's file part. `Ok(None)` outside the
    /// runtime segments.
    pub fn runtime_page(&self, addr: u64) -> Result<Option<Vec<u8>>, RecodeError> {
        let Some(s) = self.runtime.iter().find(|s| addr >= s.vaddr & !(PAGE - 1) && addr < s.vaddr + s.memsz) else {
            return Ok(None);
        };
        let mut page = vec![0u8; PAGE as usize];
        // The bytes of the page that come from the file: [from, to) of the page.
        let from = s.vaddr.max(addr);
        let to = (s.vaddr + s.filesz).min(addr + PAGE);
        if from < to {
            let file = self.file.as_ref().ok_or_else(|| RecodeError::Translated {
                path: self.path.clone(),
                why: "the executable is not open".into(),
            })?;
            let at = s.offset + (from - s.vaddr);
            let dest = &mut page[(from - addr) as usize..(to - addr) as usize];
            file.read_exact_at(dest, at).map_err(|e| RecodeError::Translated {
                path: self.path.clone(),
                why: format!("reading {} bytes at file offset {at:#x}: {e}", to - from),
            })?;
        }
        Ok(Some(page))
    }

    /// Whether the file at `other` has the very same content as this executable.
    pub fn same_content(&self, other: &Path) -> bool {
        let Some(file) = self.file.as_ref() else { return false };
        if fs::metadata(other).map(|m| m.len()).ok() != Some(self.size) {
            return false;
        }
        let (Ok(theirs), Ok(len)) = (fs::read(other), usize::try_from(self.size)) else { return false };
        let mut ours = vec![0u8; len];
        file.read_exact_at(&mut ours, 0).is_ok() && ours == theirs
    }
}

/// Every symbol of the `.symtab` of `elf`: (name, value). The symbol and string tables are
/// read from `file` in one piece each (not name by name).
fn symbols<'d, R: ReadRef<'d>>(elf: &ElfFile64<'d, Endianness, R>, file: &fs::File) -> Result<Vec<(Vec<u8>, u64)>, String> {
    let e = elf.endian();
    let sections = elf.elf_section_table();
    let Some(symtab) = sections.iter().find(|sh| sh.sh_type(e) == elf::SHT_SYMTAB) else { return Ok(Vec::new()) };
    let strtab = sections.section(object::SectionIndex(symtab.sh_link(e) as usize)).map_err(|e| e.to_string())?;
    let read = |offset: u64, size: u64| -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; usize::try_from(size).map_err(|e| e.to_string())?];
        file.read_exact_at(&mut buf, offset).map_err(|err| format!("{size} bytes at offset {offset:#x}: {err}"))?;
        Ok(buf)
    };
    let syms = read(symtab.sh_offset(e), symtab.sh_size(e))?;
    let strs = read(strtab.sh_offset(e), strtab.sh_size(e))?;
    // Elf64_Sym: st_name (u32) at 0, st_value (u64) at 8, 24 bytes each.
    let mut out = Vec::with_capacity(syms.len() / 24);
    for sym in syms.chunks_exact(24) {
        let name_at = e.read_u32([sym[0], sym[1], sym[2], sym[3]]) as usize;
        let value = e.read_u64([sym[8], sym[9], sym[10], sym[11], sym[12], sym[13], sym[14], sym[15]]);
        let Some(tail) = strs.get(name_at..) else { continue };
        let name = tail.split(|&b| b == 0).next().unwrap_or_default();
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

/// `len` bytes at virtual address `addr` of the file, from the section holding them.
fn read_bytes<'d, R: ReadRef<'d>>(file: &ElfFile64<'d, Endianness, R>, data: R, addr: u64, len: u64) -> Option<Vec<u8>> {
    for sec in file.sections() {
        let (start, size) = (sec.address(), sec.size());
        if addr >= start && addr + len <= start + size {
            let (off, _) = sec.file_range()?;
            return data.read_bytes_at(off + (addr - start), len).ok().map(<[u8]>::to_vec);
        }
    }
    None
}

/// The little-endian `u64` at virtual address `addr` of the file, from the section holding it.
fn read_u64<'d, R: ReadRef<'d>>(file: &ElfFile64<'d, Endianness, R>, data: R, addr: u64) -> Option<u64> {
    for sec in file.sections() {
        let (start, size) = (sec.address(), sec.size());
        if addr >= start && addr + 8 <= start + size {
            let (off, _) = sec.file_range()?;
            let b = data.read_bytes_at(off + (addr - start), 8).ok()?;
            return Some(u64::from_le_bytes(b.try_into().ok()?));
        }
    }
    None
}
