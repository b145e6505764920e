//! Recode of a CRIU images directory: native x86-64 process → translated process.
//!
//! The output directory restores with unmodified CRIU:
//!
//! * every file that does not change is a hard link to the input's;
//! * `core-<pid>.img`: the thread's native registers become a [`ResumeRecord`] in a page of
//!   the image, and the thread's host registers enter the runtime's resume entry
//!   (`hc_resume`) with the host stack below that page and the record's address in rdi;
//! * `mm-<pid>.img`: VMAs for the translated executable's runtime segments (file-backed
//!   private mappings, as an ELF loader makes them, plus zero-fill), and the host stack;
//!   `exe_file_id` names a new `files.img` entry for the translated executable (with the
//!   size CRIU checks);
//! * `pagemap-<pid>.img`: every page of the native image stays where it is, flagged as
//!   being in the parent images (`parent` is a symlink to the input directory, as for an
//!   incremental dump), and a new `pages-<id>.img` holds only the pages recode writes: the
//!   record and the last file page of each runtime segment with zero-fill after it. Page
//!   data is never copied: the cost is O(threads + VMAs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hcontainer_abi::calls::{ResumeRecord, RESUME, RESUME_MAGIC};
use hcontainer_abi::layout::{self, GUEST_PAGE_SIZE as PAGE};
use hcontainer_abi::meta::HostIsa;
use hcontainer_abi::GUEST_STATE_VERSION;
use hcontainer_criu_image::pb::{
    CoreEntry, FileEntry, FownEntry, MmEntry, PagemapEntry, PagemapHead, PstreeEntry, RegFileEntry, VmaEntry,
};
use hcontainer_criu_image::{pagemap_flags, Content, DecodeError, Entry, ImageFile};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{elf, Endianness, Object, ObjectSymbol};

use crate::regs;

/// CRIU's VMA status bits (`criu/include/image.h`).
mod vma_status {
    pub const REGULAR: u32 = 1 << 0;
    pub const FILE_PRIVATE: u32 = 1 << 6;
    pub const ANON_PRIVATE: u32 = 1 << 9;
}
const MAP_PRIVATE: u32 = 0x02;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_NORESERVE: u32 = 0x4000;
const FD_TYPE_REG: i32 = 1;
const SIG_IGN: u64 = 1;

/// Why a recode failed.
#[derive(Debug, thiserror::Error)]
pub enum RecodeError {
    /// An image file could not be read or decoded.
    #[error(transparent)]
    Image(#[from] DecodeError),
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An image lacks something recode needs.
    #[error("{file}: {what}")]
    Missing {
        /// The image file.
        file: String,
        /// What is missing.
        what: String,
    },
    /// The translated executable cannot be used.
    #[error("{}: {why}", path.display())]
    Translated {
        /// The executable.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The process uses something recode does not handle yet.
    #[error("cannot recode: {0}")]
    Unsupported(String),
    /// Register conversion failed.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// The translation store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The images are already of the process running as the target.
    #[error("{}: the images are already of a {target} process; nothing to recode", dir.display())]
    AlreadyTarget {
        /// The images directory.
        dir: PathBuf,
        /// The target asked for.
        target: crate::Target,
    },
    /// The store has no executable for the target.
    #[error("no translation in the store: {} does not exist; make it with `{command}`", store_path.display())]
    NoTranslation {
        /// The store entry that would hold it.
        store_path: PathBuf,
        /// The command that makes it.
        command: String,
    },
    /// The executable found for the target is not of the program the images hold.
    #[error("{}: {why}: the images are of another binary", path.display())]
    WrongBinary {
        /// The executable.
        path: PathBuf,
        /// The mismatch.
        why: String,
    },
    /// The images are damaged or inconsistent.
    #[error("corrupted image {file}: {what}")]
    Corrupt {
        /// The image file.
        file: String,
        /// What is wrong.
        what: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecodeError + '_ {
    move |source| RecodeError::Io { path: path.to_path_buf(), source }
}

/// A `PT_LOAD` of the translated executable in hcontainer's own range.
#[derive(Clone, Debug)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    prot: u32,
}

/// What recode needs from a translated executable.
#[derive(Debug)]
pub struct TranslatedExe {
    path: PathBuf,
    size: u64,
    mode: u32,
    resume: u64,
    segments: Vec<Segment>,
    data: Vec<u8>,
}

impl TranslatedExe {
    /// Reads the executable at `path` (made absolute: CRIU opens it by name at restore).
    pub fn open(path: &Path) -> Result<TranslatedExe, RecodeError> {
        let path = fs::canonicalize(path).map_err(io(path))?;
        let data = fs::read(&path).map_err(io(&path))?;
        let meta = fs::metadata(&path).map_err(io(&path))?;
        let bad = |why: String| RecodeError::Translated { path: path.clone(), why };
        let file = ElfFile64::<Endianness>::parse(&*data).map_err(|e| bad(e.to_string()))?;
        let resume = file
            .symbols()
            .find(|s| s.name() == Ok(RESUME))
            .map(|s| s.address())
            .ok_or_else(|| bad(format!("no {RESUME} symbol: not linked with a runtime that can resume")))?;
        let e = file.endian();
        let mut segments = Vec::new();
        for p in file.elf_header().program_headers(e, &*data).map_err(|e| bad(e.to_string()))? {
            if p.p_type(e) != elf::PT_LOAD || !layout::is_runtime_addr(p.p_vaddr(e)) {
                continue;
            }
            let f = p.p_flags(e);
            let prot = (if f & elf::PF_R != 0 { 1 } else { 0 })
                | (if f & elf::PF_W != 0 { 2 } else { 0 })
                | (if f & elf::PF_X != 0 { 4 } else { 0 });
            let s = Segment { vaddr: p.p_vaddr(e), memsz: p.p_memsz(e), offset: p.p_offset(e), filesz: p.p_filesz(e), prot };
            if s.vaddr % PAGE != s.offset % PAGE || s.filesz > s.memsz {
                return Err(bad(format!("segment at {:#x}: file offset {:#x} not congruent", s.vaddr, s.offset)));
            }
            segments.push(s);
        }
        if segments.is_empty() {
            return Err(bad("no segments in hcontainer's address range".into()));
        }
        use std::os::unix::fs::PermissionsExt;
        Ok(TranslatedExe { size: meta.len(), mode: meta.permissions().mode(), path, resume, segments, data })
    }
}

/// What a recode did.
#[derive(Debug, Default)]
pub struct Report {
    /// What the input was (`native`, `x86_64`, …).
    pub from: String,
    /// The executable the output runs.
    pub exe: PathBuf,
    /// Threads recoded.
    pub threads: usize,
    /// VMAs dropped (runtime, vDSO of another ISA).
    pub vmas_dropped: usize,
    /// What the output loses or leaves to the runtime (one sentence each).
    pub warnings: Vec<String>,
    /// Files hard-linked from the input.
    pub linked: usize,
    /// Files rewritten.
    pub rewritten: usize,
    /// VMAs added.
    pub vmas_added: usize,
    /// Pages written (the rest stay in the input directory).
    pub pages_written: usize,
    /// Pages left in the input directory.
    pub pages_kept: u64,
}

fn page_down(v: u64) -> u64 {
    v & !(PAGE - 1)
}
fn page_up(v: u64) -> u64 {
    (v + PAGE - 1) & !(PAGE - 1)
}

fn entries_mut(f: &mut ImageFile) -> &mut Vec<Entry> {
    match &mut f.content {
        Content::Entries { entries, .. } => entries,
        Content::Raw(_) => unreachable!("checked by the caller: protobuf images only"),
    }
}

fn read(dir: &Path, name: &str) -> Result<ImageFile, RecodeError> {
    let f = ImageFile::read(&dir.join(name))?;
    if matches!(f.content, Content::Raw(_)) {
        return Err(RecodeError::Missing { file: name.into(), what: "not a protobuf image".into() });
    }
    Ok(f)
}

fn first<M: prost::Message + Default>(f: &ImageFile) -> Result<M, RecodeError> {
    f.decode_all::<M>()?
        .into_iter()
        .next()
        .ok_or_else(|| RecodeError::Missing { file: f.name.clone(), what: "no entries".into() })
}

/// Recodes the native images in `input` into images of the process running as the
/// translated executable `exe`, written to `output` (created; must not exist or be empty).
pub fn native_to_translated(input: &Path, exe: &TranslatedExe, output: &Path) -> Result<Report, RecodeError> {
    let input = fs::canonicalize(input).map_err(io(input))?;
    fs::create_dir_all(output).map_err(io(output))?;
    if fs::read_dir(output).map_err(io(output))?.next().is_some() {
        return Err(RecodeError::Io {
            path: output.to_path_buf(),
            source: std::io::Error::other("output directory is not empty"),
        });
    }
    let pstree = read(&input, "pstree.img")?;
    let procs: Vec<PstreeEntry> = pstree.decode_all()?;
    if procs.len() != 1 {
        return Err(RecodeError::Unsupported(format!("{} processes in the tree (one is handled)", procs.len())));
    }
    let pid = procs[0].pid;
    if procs[0].threads.len() != 1 {
        return Err(RecodeError::Unsupported(format!("pid {pid} has {} threads (one is handled)", procs[0].threads.len())));
    }
    let core_name = format!("core-{pid}.img");
    let mm_name = format!("mm-{pid}.img");
    let pagemap_name = format!("pagemap-{pid}.img");
    let mut report = Report::default();

    // Registers → resume record.
    let mut core_file = read(&input, &core_name)?;
    let mut core: CoreEntry = first(&core_file)?;
    if core.mtype != 1 {
        return Err(RecodeError::Unsupported(format!("{core_name}: machine type {} is not x86-64", core.mtype)));
    }
    if let Some(tc) = &core.tc {
        if let Some((sig, _)) = tc.sigactions.iter().enumerate().find(|(_, sa)| sa.sigaction > SIG_IGN) {
            return Err(RecodeError::Unsupported(format!(
                "{core_name}: the guest has a handler for signal {}; handlers are not recoded yet",
                sig + 1
            )));
        }
    }
    let ti = core
        .thread_info
        .as_mut()
        .ok_or_else(|| RecodeError::Missing { file: core_name.clone(), what: "no x86-64 thread_info".into() })?;
    let state = regs::guest_state_from_core(ti)?;
    let mut mm_file = read(&input, &mm_name)?;
    let mut mm: MmEntry = first(&mm_file)?;
    let record = ResumeRecord {
        magic: RESUME_MAGIC,
        version: u64::from(GUEST_STATE_VERSION),
        brk_start: mm.mm_start_brk,
        brk_cur: mm.mm_brk,
        tid: 0,
        status: 0,
        reserved: [0; 2],
        state,
    };
    let r = &mut ti.gpregs;
    let (cs, ss) = (r.cs, r.ss);
    *r = Default::default();
    r.cs = cs;
    r.ss = ss;
    r.ip = exe.resume;
    r.sp = layout::MAIN_RESUME_RECORD;
    r.di = layout::MAIN_RESUME_RECORD;
    r.flags = 0x202;
    r.orig_ax = u64::MAX;
    r.mode = Some(1);
    regs::core_from_guest_state(&hcontainer_abi::GuestState::new(), ti);
    // core_from_guest_state wrote the fresh state's registers; restore the entry registers.
    let r = &mut ti.gpregs;
    r.ip = exe.resume;
    r.sp = layout::MAIN_RESUME_RECORD;
    r.di = layout::MAIN_RESUME_RECORD;
    r.orig_ax = u64::MAX;
    r.fs_base = 0;
    entries_mut(&mut core_file)[0].replace(&core);
    core_file.write(output).map_err(io(output))?;
    report.rewritten += 1;

    // The translated executable as a new file.
    let mut files = read(&input, "files.img")?;
    let all: Vec<FileEntry> = files.decode_all()?;
    let exe_id = all.iter().map(|f| f.id).max().unwrap_or(0) + 1;
    let reg = RegFileEntry {
        id: exe_id,
        flags: 0,
        pos: 0,
        fown: FownEntry::default(),
        name: exe.path.to_string_lossy().into_owned(),
        size: Some(exe.size),
        mode: Some(exe.mode),
        ..Default::default()
    };
    let fe = FileEntry { r#type: FD_TYPE_REG, id: exe_id, reg: Some(reg), ..Default::default() };
    entries_mut(&mut files).push(Entry::new(&fe, Vec::new()));
    files.write(output).map_err(io(output))?;
    report.rewritten += 1;

    // VMAs and the pages recode writes (sorted by address).
    let mut new_pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut added = Vec::new();
    for s in &exe.segments {
        let start = page_down(s.vaddr);
        let file_end = page_up(s.vaddr + s.filesz);
        let mem_end = page_up(s.vaddr + s.memsz);
        if s.filesz > 0 {
            added.push(VmaEntry {
                start,
                end: file_end,
                pgoff: page_down(s.offset),
                shmid: u64::from(exe_id),
                prot: s.prot,
                flags: MAP_PRIVATE,
                status: vma_status::REGULAR | vma_status::FILE_PRIVATE,
                fd: -1,
                ..Default::default()
            });
            // The loader zeroes the rest of the last file page; CRIU maps the file as it is.
            let tail = s.vaddr + s.filesz;
            if s.memsz > s.filesz && tail % PAGE != 0 {
                let page = page_down(tail);
                let off = usize::try_from(s.offset + (page - s.vaddr)).unwrap_or(usize::MAX);
                let n = usize::try_from(tail - page).unwrap_or(0);
                let bytes = exe.data.get(off..off + n).ok_or_else(|| RecodeError::Translated {
                    path: exe.path.clone(),
                    why: format!("segment at {:#x} extends past the end of the file", s.vaddr),
                })?;
                let mut p = vec![0u8; PAGE as usize];
                p[..n].copy_from_slice(bytes);
                new_pages.insert(page, p);
            }
        }
        let zero_start = if s.filesz > 0 { file_end } else { start };
        if mem_end > zero_start {
            added.push(anon(zero_start, mem_end, s.prot, 0));
        }
    }
    let stack_lo = layout::HOST_STACK_TOP - layout::HOST_STACK_SIZE;
    added.push(anon(stack_lo - layout::STACK_GUARD_SIZE, stack_lo, 0, MAP_NORESERVE));
    added.push(anon(stack_lo, layout::HOST_STACK_TOP, 3, MAP_NORESERVE));
    for v in &added {
        if let Some(o) = mm.vmas.iter().find(|o| o.start < v.end && v.start < o.end) {
            return Err(RecodeError::Unsupported(format!(
                "the process has a mapping at {:#x}-{:#x} where the runtime goes ({:#x}-{:#x})",
                o.start, o.end, v.start, v.end
            )));
        }
    }
    report.vmas_added = added.len();
    mm.vmas.extend(added);
    mm.vmas.sort_by_key(|v| v.start);
    mm.exe_file_id = exe_id;
    entries_mut(&mut mm_file)[0].replace(&mm);
    mm_file.write(output).map_err(io(output))?;
    report.rewritten += 1;

    let mut rec_page = vec![0u8; PAGE as usize];
    // SAFETY: `ResumeRecord` is plain old data (integers and byte arrays, `repr(C)`) no
    // larger than a page (checked at compile time in the ABI crate).
    let rec_bytes = unsafe {
        std::slice::from_raw_parts((&record as *const ResumeRecord).cast::<u8>(), std::mem::size_of::<ResumeRecord>())
    };
    rec_page[..rec_bytes.len()].copy_from_slice(rec_bytes);
    new_pages.insert(layout::MAIN_RESUME_RECORD, rec_page);

    // Pagemap: old entries from the parent, new ones present here.
    let mut pagemap = read(&input, &pagemap_name)?;
    let head: PagemapHead = first(&pagemap)?;
    let old: Vec<PagemapEntry> =
        pagemap.entries().iter().skip(1).map(|e| e.decode()).collect::<Result<_, _>>().map_err(|source| {
            DecodeError::BadMessage { file: pagemap_name.clone().into(), index: 0, offset: 0, message: "PagemapEntry", source }
        })?;
    let mut all_pages: Vec<(u64, Option<&Vec<u8>>, PagemapEntry)> = Vec::new();
    for mut e in old {
        if e.is_in_parent() || e.is_present() {
            report.pages_kept += e.pages();
            e.flags = Some(pagemap_flags::PARENT);
            e.in_parent = None;
        }
        all_pages.push((e.vaddr, None, e));
    }
    for (addr, bytes) in &new_pages {
        let e = PagemapEntry { vaddr: *addr, flags: Some(pagemap_flags::PRESENT), nr_pages: Some(1), ..Default::default() };
        all_pages.push((*addr, Some(bytes), e));
    }
    all_pages.sort_by_key(|(a, _, _)| *a);
    let mut data = Vec::new();
    let entries = entries_mut(&mut pagemap);
    entries.truncate(1);
    for (_, bytes, e) in &all_pages {
        if let Some(b) = bytes {
            data.extend_from_slice(b);
        }
        entries.push(Entry::new(e, Vec::new()));
    }
    pagemap.write(output).map_err(io(output))?;
    report.rewritten += 1;
    let pages_name = format!("pages-{}.img", head.pages_id);
    fs::write(output.join(&pages_name), &data).map_err(io(output))?;
    report.pages_written = new_pages.len();

    // Everything else: hard links. The native pages stay in the parent.
    let skip = [core_name.as_str(), mm_name.as_str(), pagemap_name.as_str(), "files.img", pages_name.as_str()];
    for entry in fs::read_dir(&input).map_err(io(&input))? {
        let entry = entry.map_err(io(&input))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ty = entry.file_type().map_err(io(&entry.path()))?;
        if !ty.is_file() || skip.contains(&name.as_str()) || name.starts_with("pages-") || !name.ends_with(".img") {
            continue;
        }
        let dest = output.join(&name);
        fs::hard_link(entry.path(), &dest).map_err(io(&dest))?;
        report.linked += 1;
    }
    std::os::unix::fs::symlink(&input, output.join("parent")).map_err(io(output))?;
    Ok(report)
}

/// The executable of the (single) process in the images directory `dir`: the name of the
/// `files.img` entry its `mm-<pid>.img` names as `exe_file_id`.
pub fn exe_of(dir: &Path) -> Result<PathBuf, RecodeError> {
    let procs: Vec<PstreeEntry> = read(dir, "pstree.img")?.decode_all()?;
    let pid = procs
        .first()
        .map(|p| p.pid)
        .ok_or_else(|| RecodeError::Missing { file: "pstree.img".into(), what: "no process".into() })?;
    let mm_name = format!("mm-{pid}.img");
    let mm: MmEntry = first(&read(dir, &mm_name)?)?;
    let files: Vec<FileEntry> = read(dir, "files.img")?.decode_all()?;
    files
        .iter()
        .find(|f| f.id == mm.exe_file_id)
        .and_then(|f| f.reg.as_ref())
        .map(|r| PathBuf::from(&r.name))
        .ok_or_else(|| RecodeError::Missing {
            file: "files.img".into(),
            what: format!("no regular file with id {} (the exe_file_id of {mm_name})", mm.exe_file_id),
        })
}

fn anon(start: u64, end: u64, prot: u32, extra: u32) -> VmaEntry {
    VmaEntry {
        start,
        end,
        pgoff: 0,
        shmid: 0,
        prot,
        flags: MAP_PRIVATE | MAP_ANONYMOUS | extra,
        status: vma_status::REGULAR | vma_status::ANON_PRIVATE,
        fd: -1,
        ..Default::default()
    }
}

/// The `.hcontainer.meta` header of the ELF file `data`, if it has one.
pub fn meta_of(path: &Path, data: &[u8]) -> Result<Option<hcontainer_abi::meta::Header>, RecodeError> {
    use object::ObjectSection;
    let bad = |why: String| RecodeError::Translated { path: path.to_path_buf(), why };
    let file = object::File::parse(data).map_err(|e| bad(format!("not an ELF file: {e}")))?;
    let Some(sec) = file.section_by_name(hcontainer_abi::meta::SECTION) else { return Ok(None) };
    let bytes = sec.data().map_err(|e| bad(e.to_string()))?;
    let (h, _) = hcontainer_abi::meta::Header::decode(bytes).map_err(|e| bad(e.to_string()))?;
    Ok(Some(h))
}

/// Whether the images in `dir` are of a native or a translated process, and for which host.
pub fn kind_of(dir: &Path) -> Result<crate::Kind, RecodeError> {
    let procs: Vec<PstreeEntry> = read(dir, "pstree.img")?.decode_all()?;
    let pid = procs
        .first()
        .map(|p| p.pid)
        .ok_or_else(|| RecodeError::Missing { file: "pstree.img".into(), what: "no process".into() })?;
    let core_name = format!("core-{pid}.img");
    let core: CoreEntry = first(&read(dir, &core_name)?)?;
    let host = match core.mtype {
        1 => HostIsa::X86_64,
        3 => HostIsa::Aarch64,
        8 => HostIsa::Riscv64,
        m => return Err(RecodeError::Unsupported(format!("{core_name}: machine type {m} is not x86-64, aarch64 or riscv64"))),
    };
    let exe = exe_of(dir)?;
    let translated = match fs::read(&exe) {
        Ok(data) => match meta_of(&exe, &data)? {
            Some(h) if h.host_isa != host => {
                return Err(RecodeError::Corrupt {
                    file: core_name,
                    what: format!("machine type {} but {} is translated for {}", core.mtype, exe.display(), h.host_isa.name()),
                })
            }
            Some(_) => true,
            None => false,
        },
        // Not on this machine: decide from the address space.
        Err(_) => {
            let mm: MmEntry = first(&read(dir, &format!("mm-{pid}.img"))?)?;
            mm.vmas.iter().any(|v| layout::is_runtime_addr(v.start))
        }
    };
    if !translated && host != HostIsa::X86_64 {
        return Err(RecodeError::Corrupt {
            file: core_name,
            what: format!("machine type {} without hcontainer's runtime: not a process of ours", core.mtype),
        });
    }
    Ok(if translated { crate::Kind::Translated(host) } else { crate::Kind::Native })
}
