//! Recode of a CRIU images directory of one of our process trees — native x86-64, or
//! translated for x86-64, arm64 or riscv64 hosts — into the images of the same tree running
//! as another executable: the original binary or a translation (see [`crate::recode`]).
//!
//! The output directory restores with unmodified CRIU:
//!
//! * every file that does not change is a hard link to the input's;
//! * `core-<tid>.img`, for every thread: the guest registers come from the x86-64 registers
//!   (native input) or from the thread's `ResumeRecord` (translated input: the main thread's
//!   at `layout::MAIN_RESUME_RECORD`, the others' in their thread slots, paired with the core
//!   by `tid`; a thread must be parked at a migration point). Going translated they are
//!   written into a record per thread and the host registers (x86-64, arm64 or riscv64
//!   `thread_info`) enter the runtime's `hc_resume` with the stack pointer and first
//!   argument at the record; going native they become x86-64 registers (rflags
//!   materialized from the lazy flags, SSE and x87 into the FXSAVE/XSAVE area). Guest
//!   signal handlers and the alternate signal stack move between the kernel's view (core
//!   image) and the runtime's tables; tasks are marked alive;
//! * `mm-<pid>.img`: hcontainer's range is dropped and, going translated, rebuilt from the
//!   target executable (runtime segments as an ELF loader maps them, host stack, one slot per
//!   extra thread); the guest's mappings of the executable are laid over the target's copy
//!   of each guest segment; another ISA's vDSO/vvar/vsyscall are dropped; going native the
//!   program break and code/data bounds are the guest's; the saved auxv names the target
//!   executable; `exe_file_id` names a new `files.img` entry (with the size CRIU checks);
//! * `pagemap-<pid>.img`: every page of the input stays where it is, flagged as being in the
//!   parent images (`parent` is a symlink to the input directory, as for an incremental
//!   dump), but for dropped mappings; a new `pages-<id>.img` holds only the pages recode
//!   writes: the records, runtime tables and the last file page of each runtime segment.
//!   Page data is never copied: the cost is O(threads + VMAs), whatever the memory size.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hcontainer_abi::calls::{
    ResumeRecord, RECORD_ALTSTACK_OFFSET, RECORD_EXTRA_OFFSET, RESERVED_SIGNALS, RESUME_MAGIC, THREAD_PARKED, THREAD_RUNNING,
};
use hcontainer_abi::layout::{self, GUEST_PAGE_SIZE as PAGE};
use hcontainer_abi::meta::HostIsa;
use hcontainer_abi::{GuestState, GUEST_STATE_VERSION};
use hcontainer_criu_image::pb::{
    CoreEntry, FileEntry, FownEntry, MmEntry, PagemapEntry, PstreeEntry, RegFileEntry, SaEntry, ThreadSasEntry,
    ThreadInfoAarch64, ThreadInfoRiscv64, UserAarch64FpsimdContextEntry, UserAarch64RegsEntry, UserRiscv64DExtEntry,
    UserRiscv64RegsEntry, VmaEntry,
};
use hcontainer_criu_image::{pagemap_flags, Content, DecodeError, Entry, ImageFile};
use crate::exe::Exe;
use crate::pages::Pages;
use crate::regs;

/// CRIU's VMA status bits (`criu/include/image.h`).
mod vma_status {
    pub const REGULAR: u32 = 1 << 0;
    pub const VSYSCALL: u32 = 1 << 2;
    pub const VDSO: u32 = 1 << 3;
    pub const FILE_PRIVATE: u32 = 1 << 6;
    pub const FILE_SHARED: u32 = 1 << 7;
    pub const ANON_PRIVATE: u32 = 1 << 9;
    pub const VVAR: u32 = 1 << 12;
}
const MAP_PRIVATE: u32 = 0x02;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_NORESERVE: u32 = 0x4000;
const FD_TYPE_REG: i32 = 1;
const AT_IGNORE: u64 = 1;
/// Words of saved auxiliary vector x86-64 CRIU restores (its `AT_VECTOR_SIZE`).
const X86_64_CRIU_AUXV_WORDS: usize = 44;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_ENTRY: u64 = 9;
const AT_SYSINFO_EHDR: u64 = 33;
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
    #[error("no {target} executable in the store: {} does not exist; make it with `{command}`", store_path.display())]
    NoTranslation {
        /// The target asked for.
        target: crate::Target,
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
    /// Wall-clock time of each phase of the recode, in order: (phase, microseconds).
    pub phases: Vec<(&'static str, u64)>,
}

/// The clock behind [`Report::phases`]: each [`Phases::mark`] records the time since the
/// previous one.
pub(crate) struct Phases {
    last: std::time::Instant,
}

impl Phases {
    pub(crate) fn start() -> Phases {
        Phases { last: std::time::Instant::now() }
    }

    /// Records the time since the last mark as `phase` in `to`.
    pub(crate) fn mark(&mut self, to: &mut Vec<(&'static str, u64)>, phase: &'static str) {
        let now = std::time::Instant::now();
        let us = u64::try_from(now.duration_since(self.last).as_micros()).unwrap_or(u64::MAX);
        self.last = now;
        match to.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, t)) => *t = t.saturating_add(us),
            None => to.push((phase, us)),
        }
    }
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

/// The translated executable of a native → translated recode (kept for callers that pick
/// the executable themselves; [`crate::recode`] finds it in the store).
#[derive(Debug)]
pub struct TranslatedExe(Exe);

impl TranslatedExe {
    /// Reads the translated executable at `path`.
    pub fn open(path: &Path) -> Result<TranslatedExe, RecodeError> {
        let exe = Exe::open(path)?;
        if exe.meta.is_none() {
            return Err(RecodeError::Translated { path: exe.path, why: "no hcontainer metadata: not a translated executable".into() });
        }
        Ok(TranslatedExe(exe))
    }
}

/// Recodes the native images in `input` into images of the process running as the
/// translated executable `exe`, written to `output` (created; must not exist or be empty).
pub fn native_to_translated(input: &Path, exe: &TranslatedExe, output: &Path) -> Result<Report, RecodeError> {
    let isa = exe.0.host_isa().unwrap_or(HostIsa::X86_64);
    convert(input, &crate::Kind::Native, None, crate::Target::Translated(isa), &exe.0, output)
}

/// CRIU's `TASK_ALIVE` and `TASK_STOPPED` (`criu/include/task-state.h` values in images).
const TASK_ALIVE: u32 = 1;
const TASK_STOPPED: u32 = 3;
/// `sigaltstack` flags.
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
/// `SA_RESTORER`.
const SA_RESTORER: u64 = 0x0400_0000;

/// One thread of the process: its core image and its guest registers.
struct Thread {
    /// The guest's view of the reserved signals in its blocked mask (a translated thread's
    /// record keeps them; the kernel's mask of a native one holds them).
    blocked_reserved: u64,
    tid: u32,
    file: ImageFile,
    core: CoreEntry,
    state: GuestState,
    /// The guest's alternate signal stack (`ss_flags` without `SS_ONSTACK`), if it has one.
    sas: Option<ThreadSasEntry>,
}

fn machine_of(isa: HostIsa) -> i32 {
    match isa {
        HostIsa::X86_64 => 1,
        HostIsa::Aarch64 => 3,
        HostIsa::Riscv64 => 8,
    }
}

/// The host program counter of a core image.
fn host_pc(core: &CoreEntry) -> Option<u64> {
    match core.mtype {
        1 => core.thread_info.as_ref().map(|t| t.gpregs.ip),
        3 => core.ti_aarch64.as_ref().map(|t| t.gpregs.pc),
        8 => core.ti_riscv64.as_ref().map(|t| t.gpregs.pc),
        _ => None,
    }
}

fn clear_tid_of(core: &CoreEntry) -> u64 {
    core.thread_info
        .as_ref()
        .map(|t| t.clear_tid_addr)
        .or(core.ti_aarch64.as_ref().map(|t| t.clear_tid_addr))
        .or(core.ti_riscv64.as_ref().map(|t| t.clear_tid_addr))
        .unwrap_or(0)
}

fn record_bytes(r: &ResumeRecord) -> Vec<u8> {
    let mut page = vec![0u8; PAGE as usize];
    // SAFETY: `ResumeRecord` is plain old data (integers and byte arrays, `repr(C)`) no
    // larger than a page (checked at compile time in the ABI crate).
    let b = unsafe { std::slice::from_raw_parts((r as *const ResumeRecord).cast::<u8>(), std::mem::size_of::<ResumeRecord>()) };
    page[..b.len()].copy_from_slice(b);
    page
}

/// The alternate signal stack a record page holds (`RECORD_ALTSTACK_OFFSET`), if any.
/// The reserved-signal bits of the guest's blocked mask in a record page.
fn record_blocked_reserved(page: &[u8]) -> u64 {
    let at = RECORD_EXTRA_OFFSET as usize;
    page.get(at..at + 8).map_or(0, |w| words(w)[0] & RESERVED_SIGNALS)
}

fn record_altstack(page: &[u8]) -> Option<ThreadSasEntry> {
    let at = RECORD_ALTSTACK_OFFSET as usize;
    let w = words(page.get(at..at + 24)?);
    (w[2] != 0).then(|| ThreadSasEntry { ss_sp: w[0], ss_flags: (w[1] & 0xffff_ffff) as u32 & !SS_ONSTACK, ss_size: w[2] })
}

fn record_from(page: &[u8], addr: u64) -> Result<ResumeRecord, RecodeError> {
    let n = std::mem::size_of::<ResumeRecord>();
    if page.len() < n {
        return Err(RecodeError::Corrupt { file: "pages".into(), what: format!("short record page at {addr:#x}") });
    }
    // SAFETY: `page` holds at least `size_of::<ResumeRecord>()` bytes; every bit pattern is a
    // valid `ResumeRecord` (integers and byte arrays only); the read is unaligned.
    let r = unsafe { std::ptr::read_unaligned(page.as_ptr().cast::<ResumeRecord>()) };
    if r.magic != RESUME_MAGIC {
        return Err(RecodeError::Corrupt {
            file: "pages".into(),
            what: format!("no resume record at {addr:#x} (magic {:#018x})", r.magic),
        });
    }
    if r.version != u64::from(GUEST_STATE_VERSION) {
        return Err(RecodeError::Unsupported(format!(
            "the resume record at {addr:#x} has guest state version {}, this recode knows {GUEST_STATE_VERSION}",
            r.version
        )));
    }
    Ok(r)
}

/// Host registers entering `hc_resume` of `exe` for the record at `record`.
fn enter_resume(core: &mut CoreEntry, isa: HostIsa, resume: u64, record: u64) {
    let clear_tid = clear_tid_of(core);
    core.mtype = machine_of(isa);
    match isa {
        HostIsa::X86_64 => {
            let mut ti = core.thread_info.take().unwrap_or_else(regs::fresh_x86);
            regs::core_from_guest_state(&GuestState::new(), &mut ti);
            let r = &mut ti.gpregs;
            let (cs, ss) = (r.cs, r.ss);
            *r = Default::default();
            r.cs = cs;
            r.ss = ss;
            r.ip = resume;
            r.sp = record;
            r.di = record;
            r.flags = 0x202;
            r.orig_ax = u64::MAX;
            r.mode = Some(1);
            ti.clear_tid_addr = clear_tid;
            core.thread_info = Some(ti);
            core.ti_aarch64 = None;
            core.ti_riscv64 = None;
        }
        HostIsa::Aarch64 => {
            let mut regs = vec![0u64; 31];
            regs[0] = record;
            core.ti_aarch64 = Some(ThreadInfoAarch64 {
                clear_tid_addr: clear_tid,
                tls: 0,
                gpregs: UserAarch64RegsEntry { regs, sp: record, pc: resume, pstate: 0 },
                fpsimd: UserAarch64FpsimdContextEntry { vregs: vec![0; 64], fpsr: 0, fpcr: 0 },
                pac_keys: None,
            });
            core.thread_info = None;
            core.ti_riscv64 = None;
        }
        HostIsa::Riscv64 => {
            let gpregs = UserRiscv64RegsEntry { pc: resume, sp: record, a0: record, ..Default::default() };
            core.ti_riscv64 = Some(ThreadInfoRiscv64 {
                clear_tid_addr: clear_tid,
                tls: 0,
                gpregs,
                fpsimd: UserRiscv64DExtEntry { f: vec![0; 32], fcsr: 0 },
            });
            core.thread_info = None;
            core.ti_aarch64 = None;
        }
    }
}

/// The mapping `v` of the source executable as mappings of the target executable `dst`
/// (file id `exe_id`): each piece inside the file part of one of its guest segments maps the
/// file there, the rest is zero-fill. The source may have one mapping where the target has
/// several (a translation stores the guest segments back to back, so the kernel merges the
/// mappings of neighbouring segments with equal protection) or the reverse.
fn retarget(v: &VmaEntry, dst: &Exe, exe_id: u32) -> Result<Vec<VmaEntry>, RecodeError> {
    let mut out = Vec::new();
    let mut a = v.start;
    while a < v.end {
        // The last segment whose file pages hold `a` (a later segment maps over a shared page).
        let seg = dst.guest.iter().filter(|s| s.file_offset_of(a).is_some()).max_by_key(|s| s.vaddr);
        let next_start = dst.guest.iter().map(|s| page_down(s.vaddr)).filter(|&x| x > a).min().unwrap_or(u64::MAX);
        let mut piece = *v;
        piece.start = a;
        match seg {
            Some(s) => {
                piece.end = v.end.min(page_up(s.vaddr + s.filesz)).min(next_start);
                piece.pgoff = s.file_offset_of(a).unwrap_or(0);
                piece.shmid = u64::from(exe_id);
            }
            None => {
                piece = anon(a, v.end.min(next_start), v.prot, v.flags & MAP_NORESERVE);
                piece.madv = v.madv;
            }
        }
        if piece.end <= a {
            return Err(RecodeError::Unsupported(format!(
                "the mapping {:#x}-{:#x} of the executable cannot be laid over the guest segments of {}",
                v.start,
                v.end,
                dst.path.display()
            )));
        }
        a = piece.end;
        out.push(piece);
    }
    if !out.iter().any(|p| p.shmid == u64::from(exe_id)) {
        return Err(RecodeError::Unsupported(format!(
            "the mapping {:#x}-{:#x} of the executable is no guest segment of {}",
            v.start,
            v.end,
            dst.path.display()
        )));
    }
    Ok(out)
}

/// The signal number of entry `index` of CRIU's `sigactions` (signals 1 to 64 without
/// SIGKILL and SIGSTOP, whose actions cannot change).
fn sig_of(index: usize) -> usize {
    let mut s = index + 1;
    if s >= 9 {
        s += 1;
    }
    if s >= 19 {
        s += 1;
    }
    s
}

/// `len` bytes of the runtime's memory at `addr` in the dumped process: from its pages, or
/// as the executable `exe` loads them where the process never wrote.
fn read_runtime(pages: &Pages, exe: &Exe, addr: u64, len: usize) -> Result<Vec<u8>, RecodeError> {
    let mut bytes = Vec::with_capacity(len);
    let mut a = addr;
    while bytes.len() < len {
        let page = page_down(a);
        let data = match pages.read(page)? {
            Some(d) => d,
            None => exe.runtime_page(page)?.ok_or_else(|| RecodeError::Translated {
                path: exe.path.clone(),
                why: format!("runtime data at {addr:#x} is outside the runtime segments"),
            })?,
        };
        let from = (a - page) as usize;
        let take = (PAGE as usize - from).min(len - bytes.len());
        bytes.extend_from_slice(&data[from..from + take]);
        a += take as u64;
    }
    Ok(bytes)
}

/// Writes `bytes` at `addr` of the target runtime's data: into the pages recode writes,
/// which start as the executable `dst` loads them.
fn patch_runtime(new_pages: &mut BTreeMap<u64, Vec<u8>>, dst: &Exe, addr: u64, bytes: &[u8]) -> Result<(), RecodeError> {
    let mut a = addr;
    let mut done = 0;
    while done < bytes.len() {
        let page = page_down(a);
        let mut data = match new_pages.remove(&page) {
            Some(d) => d,
            None => dst.runtime_page(page)?.ok_or_else(|| RecodeError::Translated {
                path: dst.path.clone(),
                why: format!("runtime data at {addr:#x} is outside the runtime segments"),
            })?,
        };
        let from = (a - page) as usize;
        let take = (PAGE as usize - from).min(bytes.len() - done);
        data[from..from + take].copy_from_slice(&bytes[done..done + take]);
        new_pages.insert(page, data);
        done += take;
        a += take as u64;
    }
    Ok(())
}

fn words(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

/// Recodes the images of a `kind` process in `input` (its executable `src`, when readable)
/// into images of the process running as `dst` for `to`, written to `output`.
pub(crate) fn convert(
    input: &Path,
    kind: &crate::Kind,
    src: Option<&Exe>,
    to: crate::Target,
    dst: &Exe,
    output: &Path,
) -> Result<Report, RecodeError> {
    let mut clock = Phases::start();
    let mut phases = Vec::new();
    let input = fs::canonicalize(input).map_err(io(input))?;
    fs::create_dir_all(output).map_err(io(output))?;
    if fs::read_dir(output).map_err(io(output))?.next().is_some() {
        return Err(RecodeError::Io {
            path: output.to_path_buf(),
            source: std::io::Error::other("output directory is not empty"),
        });
    }
    let mut report = Report {
        from: match kind {
            crate::Kind::Native => "native".into(),
            crate::Kind::Translated(i) => i.name().into(),
        },
        exe: dst.path.clone(),
        ..Default::default()
    };
    let procs: Vec<PstreeEntry> = read(&input, "pstree.img")?.decode_all()?;
    if procs.is_empty() {
        return Err(RecodeError::Corrupt { file: "pstree.img".into(), what: "no process".into() });
    }
    // The target executable as a new file.
    let mut files = read(&input, "files.img")?;
    let all: Vec<FileEntry> = files.decode_all()?;
    let exe_id = all.iter().map(|f| f.id).max().unwrap_or(0) + 1;
    let reg = RegFileEntry {
        id: exe_id,
        flags: 0,
        pos: 0,
        fown: FownEntry::default(),
        name: dst.path.to_string_lossy().into_owned(),
        size: Some(dst.size),
        mode: Some(dst.mode),
        ..Default::default()
    };
    let fe = FileEntry { r#type: FD_TYPE_REG, id: exe_id, reg: Some(reg), ..Default::default() };
    entries_mut(&mut files).push(Entry::new(&fe, Vec::new()));
    files.write(output).map_err(io(output))?;
    report.rewritten += 1;
    clock.mark(&mut phases, "output dir, pstree, files");

    let mut ours = vec!["files.img".to_string()];
    for p in &procs {
        ours.extend(convert_process(&input, kind, src, to, dst, output, exe_id, p, &mut report, &mut clock, &mut phases)?);
    }

    // Everything else: hard links. The pages stay in the parent.
    for entry in fs::read_dir(&input).map_err(io(&input))? {
        let entry = entry.map_err(io(&input))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ty = entry.file_type().map_err(io(&entry.path()))?;
        if !ty.is_file() || ours.contains(&name) || name.starts_with("pages-") || !name.ends_with(".img") {
            continue;
        }
        let dest = output.join(&name);
        fs::hard_link(entry.path(), &dest).map_err(io(&dest))?;
        report.linked += 1;
    }
    std::os::unix::fs::symlink(&input, output.join("parent")).map_err(io(output))?;
    clock.mark(&mut phases, "hard links, parent");
    report.phases = phases;
    Ok(report)
}

/// Recodes one process `proc` of the tree (its cores, mm and pagemap images) into `output`;
/// returns the names of the files written.
#[allow(clippy::too_many_arguments)]
fn convert_process(
    input: &Path,
    kind: &crate::Kind,
    src: Option<&Exe>,
    to: crate::Target,
    dst: &Exe,
    output: &Path,
    exe_id: u32,
    proc: &PstreeEntry,
    report: &mut Report,
    clock: &mut Phases,
    phases: &mut Vec<(&'static str, u64)>,
) -> Result<Vec<String>, RecodeError> {
    let pid = proc.pid;
    let mut tids = proc.threads.clone();
    if tids.is_empty() {
        tids.push(pid);
    }
    // The main thread first.
    tids.sort_by_key(|t| (*t != pid, *t));
    let mm_name = format!("mm-{pid}.img");
    let pagemap_name = format!("pagemap-{pid}.img");
    let mut mm_file = read(input, &mm_name)?;
    let mut mm: MmEntry = first(&mm_file)?;
    let src_isa = match kind {
        crate::Kind::Native => HostIsa::X86_64,
        crate::Kind::Translated(i) => *i,
    };

    // Every thread's guest registers.
    let mut threads = Vec::new();
    let mut main_record: Option<ResumeRecord> = None;
    clock.mark(phases, "mm read");
    let (pages, mut pagemap, head, old) = Pages::open_full(input, pid)?;
    clock.mark(phases, "pagemap read");
    let mut records = Vec::new();
    if let crate::Kind::Translated(_) = kind {
        let mut addrs = vec![layout::MAIN_RESUME_RECORD];
        addrs.extend(mm.vmas.iter().filter_map(|v| layout::thread_slot_at(v.start)).map(layout::thread_resume_record));
        for a in addrs {
            match pages.read(a)? {
                Some(p) => records.push((a, record_from(&p, a)?, (record_altstack(&p), record_blocked_reserved(&p)))),
                None if a == layout::MAIN_RESUME_RECORD => {
                    return Err(RecodeError::Corrupt {
                        file: pagemap_name.clone(),
                        what: format!("no page at the main resume record {a:#x}"),
                    })
                }
                None => {}
            }
        }
    }
    for &tid in &tids {
        let name = format!("core-{tid}.img");
        let file = read(input, &name)?;
        let core: CoreEntry = first(&file)?;
        if core.mtype != machine_of(src_isa) {
            return Err(RecodeError::Corrupt {
                file: name,
                what: format!("machine type {} in a {} process", core.mtype, src_isa.name()),
            });
        }
        let (state, sas, blocked_reserved) = match kind {
            crate::Kind::Native => {
                let ti = core
                    .thread_info
                    .as_ref()
                    .ok_or_else(|| RecodeError::Missing { file: name.clone(), what: "no x86-64 thread_info".into() })?;
                let sas = core
                    .thread_core
                    .as_ref()
                    .and_then(|t| t.sas)
                    .filter(|s| s.ss_flags & SS_DISABLE == 0 && s.ss_size != 0)
                    .map(|s| ThreadSasEntry { ss_flags: s.ss_flags & !SS_ONSTACK, ..s });
                let mask = core.thread_core.as_ref().and_then(|t| t.blk_sigset).or(core.tc.as_ref().map(|t| t.blk_sigset)).unwrap_or(0);
                (regs::guest_state_from_core(ti)?, sas, mask & RESERVED_SIGNALS)
            }
            crate::Kind::Translated(_) => {
                let found = records
                    .iter()
                    .find(|(_, r, _)| r.tid == u64::from(tid))
                    .or_else(|| {
                        (tid == pid)
                            .then(|| records.iter().find(|(a, r, _)| *a == layout::MAIN_RESUME_RECORD && r.tid == 0))
                            .flatten()
                    })
                    .copied();
                let Some((addr, rec, (sas, reserved))) = found else {
                    return Err(RecodeError::Corrupt {
                        file: name,
                        what: format!("thread {tid} has no resume record (records at {:x?})", records.iter().map(|r| r.0).collect::<Vec<_>>()),
                    });
                };
                let fresh = src.is_some_and(|s| host_pc(&core) == Some(s.resume));
                if rec.status != THREAD_PARKED && !fresh {
                    return Err(RecodeError::Unsupported(format!(
                        "thread {tid} was not stopped at a migration point (its record at {addr:#x} has status {}); \
                         checkpoint translated processes with `hcontainer checkpoint`, which notifies the runtime first",
                        rec.status
                    )));
                }
                if addr == layout::MAIN_RESUME_RECORD {
                    main_record = Some(rec);
                }
                (rec.state, sas, reserved)
            }
        };
        threads.push(Thread { blocked_reserved, tid, file, core, state, sas });
    }
    report.threads += threads.len();
    clock.mark(phases, "cores read, resume records");
    let (brk_start, brk_cur) = match &main_record {
        Some(r) if r.brk_start != 0 => (r.brk_start, r.brk_cur),
        _ => (mm.mm_start_brk, mm.mm_brk),
    };

    // Signal handlers: the guest's, as the kernel (native) or the runtime (translated) keeps them.
    let main_tc = threads[0].core.tc.clone().unwrap_or_default();
    let mut guest_actions: Vec<SaEntry> = main_tc.sigactions.clone();
    if let crate::Kind::Translated(_) = kind {
        match src.and_then(|s| s.actions.map(|a| (s, a))) {
            Some((src, addr)) => {
                let table = words(&read_runtime(&pages, src, addr, 65 * 32)?);
                for (i, sa) in guest_actions.iter_mut().enumerate() {
                    let at = 4 * sig_of(i);
                    let [handler, flags, restorer, mask] =
                        table.get(at..at + 4).map(|w| [w[0], w[1], w[2], w[3]]).unwrap_or_default();
                    sa.sigaction = handler;
                    sa.flags = flags;
                    sa.restorer = restorer;
                    sa.mask = mask;
                }
            }
            None => report.warnings.push(
                "the runtime's guest signal table was not found (translated executable not readable here or without symbols): \
                 guest signal handlers are lost, dispositions default/ignore are kept"
                    .into(),
            ),
        }
    }

    let new_isa = match to {
        crate::Target::Native => HostIsa::X86_64,
        crate::Target::Translated(i) => i,
    };
    let to_translated = matches!(to, crate::Target::Translated(_));
    let mut new_pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    if to_translated {
        if let Some((sig, _)) = guest_actions.iter().enumerate().find(|(_, sa)| sa.sigaction > SIG_IGN) {
            if dst.actions.is_none() {
                return Err(RecodeError::Unsupported(format!(
                    "the guest has a handler for signal {} and {} has no runtime signal table symbol",
                    sig_of(sig),
                    dst.path.display()
                )));
            }
        }
        if let Some(addr) = dst.actions.filter(|_| guest_actions.iter().any(|sa| sa.sigaction > SIG_IGN)) {
            // The runtime's table, in the runtime's fresh data pages.
            let mut table = vec![0u8; 65 * 32];
            for (i, sa) in guest_actions.iter().enumerate().filter(|(i, _)| sig_of(*i) <= 64) {
                let at = sig_of(i) * 32;
                for (k, v) in [sa.sigaction, sa.flags, sa.restorer, sa.mask].iter().enumerate() {
                    table[at + 8 * k..at + 8 * k + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            patch_runtime(&mut new_pages, dst, addr, &table)?;
        }
    }

    // Cores.
    for (i, t) in threads.iter_mut().enumerate() {
        let core = &mut t.core;
        if let Some(tc) = core.tc.as_mut() {
            if tc.task_state == TASK_STOPPED {
                tc.task_state = TASK_ALIVE;
            }
            tc.sigactions = guest_actions.clone();
            if to_translated {
                // Guest handlers run through the runtime; the host keeps the default.
                for sa in tc.sigactions.iter_mut().filter(|sa| sa.sigaction > SIG_IGN) {
                    sa.sigaction = 0;
                    sa.flags = 0;
                    sa.restorer = 0;
                    sa.mask = 0;
                }
            }
            if new_isa != HostIsa::X86_64 {
                for sa in &mut tc.sigactions {
                    sa.flags &= !SA_RESTORER;
                    sa.restorer = 0;
                }
            }
        }
        if let Some(tcore) = core.thread_core.as_mut() {
            // The host never blocks the runtime's signals; the guest's wish is in the record.
            let fix = |m: u64| if to_translated { m & !RESERVED_SIGNALS } else { (m & !RESERVED_SIGNALS) | t.blocked_reserved };
            tcore.blk_sigset = tcore.blk_sigset.map(fix);
            if let Some(tc) = core.tc.as_mut() {
                tc.blk_sigset = fix(tc.blk_sigset);
            }
            let disabled = ThreadSasEntry { ss_sp: 0, ss_size: 0, ss_flags: SS_DISABLE };
            // The runtime's host handlers run on the host stack; the guest's is in the record.
            tcore.sas = Some(if to_translated { disabled } else { t.sas.unwrap_or(disabled) });
        }
        match to {
            crate::Target::Native => {
                let clear_tid = clear_tid_of(core);
                let mut ti = core.thread_info.take().unwrap_or_else(regs::fresh_x86);
                regs::core_from_guest_state(&t.state, &mut ti);
                ti.clear_tid_addr = clear_tid;
                core.mtype = 1;
                core.thread_info = Some(ti);
                core.ti_aarch64 = None;
                core.ti_riscv64 = None;
            }
            crate::Target::Translated(isa) => {
                let record = if i == 0 { layout::MAIN_RESUME_RECORD } else { layout::thread_resume_record(i as u64 - 1) };
                let (bs, bc) = if i == 0 { (brk_start, brk_cur) } else { (0, 0) };
                // The poll word carries runtime requests of the dumped process (the notify
                // that parked it), not guest state: the restored thread starts with none.
                let mut state = t.state;
                state.poll = 0;
                let rec = ResumeRecord {
                    magic: RESUME_MAGIC,
                    version: u64::from(GUEST_STATE_VERSION),
                    brk_start: bs,
                    brk_cur: bc,
                    tid: u64::from(t.tid),
                    status: THREAD_RUNNING,
                    reserved: [0; 2],
                    state,
                };
                let mut page = record_bytes(&rec);
                let at = RECORD_EXTRA_OFFSET as usize;
                page[at..at + 8].copy_from_slice(&t.blocked_reserved.to_le_bytes());
                if let Some(sas) = t.sas {
                    let at = RECORD_ALTSTACK_OFFSET as usize;
                    for (k, v) in [sas.ss_sp, u64::from(sas.ss_flags), sas.ss_size].into_iter().enumerate() {
                        page[at + 8 * k..at + 8 * k + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
                new_pages.insert(record, page);
                enter_resume(core, isa, dst.resume, record);
            }
        }
        entries_mut(&mut t.file)[0].replace(&t.core);
        t.file.write(output).map_err(io(output))?;
        report.rewritten += 1;
    }

    clock.mark(phases, "signals, cores written");
    let src_exe_id = mm.exe_file_id;

    // VMAs: drop the runtime's and another ISA's vDSO, point the guest's file mappings of
    // the executable at the target's, add the target runtime's.
    let cross = src_isa != new_isa;
    // A dynamically linked program maps its own files on both sides (the runtime maps them
    // where ld.so would): its mappings stay as they are, only the executable changes.
    let dynamic = dst.is_launcher() || src.is_some_and(Exe::is_launcher);
    let mut dropped: Vec<(u64, u64)> = Vec::new();
    let mut kept = Vec::new();
    for v in std::mem::take(&mut mm.vmas) {
        let special = v.status & (vma_status::VDSO | vma_status::VVAR | vma_status::VSYSCALL) != 0;
        if layout::is_runtime_addr(v.start) || (cross && special) {
            dropped.push((v.start, v.end));
            continue;
        }
        if !dynamic && v.shmid == u64::from(src_exe_id) && v.status & (vma_status::FILE_PRIVATE | vma_status::FILE_SHARED) != 0 {
            let pieces = retarget(&v, dst, exe_id)?;
            report.vmas_added += pieces.len() - 1;
            kept.extend(pieces);
            continue;
        }
        kept.push(v);
    }
    report.vmas_dropped += dropped.len();
    let mut added = Vec::new();
    if to_translated {
        for s in &dst.runtime {
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
                if s.memsz > s.filesz && tail % PAGE != 0 && !new_pages.contains_key(&page_down(tail)) {
                    if let Some(p) = dst.runtime_page(page_down(tail))? {
                        new_pages.insert(page_down(tail), p);
                    }
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
        for i in 0..threads.len().saturating_sub(1) as u64 {
            let base = layout::thread_slot_base(i);
            added.push(anon(base, base + layout::STACK_GUARD_SIZE, 0, MAP_NORESERVE));
            added.push(anon(base + layout::STACK_GUARD_SIZE, base + layout::THREAD_SLOT_LEN, 3, MAP_NORESERVE));
        }
        for v in &added {
            if let Some(o) = kept.iter().find(|o| o.start < v.end && v.start < o.end) {
                return Err(RecodeError::Unsupported(format!(
                    "the process has a mapping at {:#x}-{:#x} where the runtime goes ({:#x}-{:#x})",
                    o.start, o.end, v.start, v.end
                )));
            }
        }
    } else {
        mm.mm_start_brk = brk_start;
        mm.mm_brk = brk_cur;
        let code = dst.guest.iter().find(|s| s.prot & 4 != 0);
        let data = dst.guest.iter().rev().find(|s| s.prot & 2 != 0);
        if let (Some(c), Some(d)) = (code, data) {
            mm.mm_start_code = c.vaddr;
            mm.mm_end_code = c.vaddr + c.filesz;
            mm.mm_start_data = d.vaddr;
            mm.mm_end_data = d.vaddr + d.filesz;
        }
    }
    report.vmas_added += added.len();
    kept.extend(added);
    kept.sort_by_key(|v| v.start);
    // The kernel's copy of the auxiliary vector (the guest reads its own, on its stack): the
    // target executable's headers and entry, and the vDSO the image keeps.
    let vdso = kept.iter().find(|v| v.status & vma_status::VDSO != 0).map(|v| v.start);
    // A launcher's process keeps the program's values (its own are not the guest's).
    let program_auxv = !dst.is_launcher();
    for pair in mm.mm_saved_auxv.chunks_exact_mut(2) {
        match pair[0] {
            AT_PHDR if dst.phdr != 0 && program_auxv => pair[1] = dst.phdr,
            AT_PHENT if program_auxv => pair[1] = 56,
            AT_PHNUM if program_auxv => pair[1] = dst.phnum,
            AT_ENTRY if program_auxv => pair[1] = dst.entry,
            AT_SYSINFO_EHDR => match vdso {
                Some(a) => pair[1] = a,
                None => {
                    pair[0] = AT_IGNORE;
                    pair[1] = 0;
                }
            },
            _ => {}
        }
    }
    // CRIU checks the saved vector against its own bound for the restoring host; another
    // kernel's vector may hold more entries (x86-64 CRIU accepts 44 words). Only
    // `/proc/PID/auxv` readers see this copy, so entries beyond the bound are dropped,
    // after the ones that mean nothing.
    let dst_isa = match to {
        crate::Target::Native => HostIsa::X86_64,
        crate::Target::Translated(i) => i,
    };
    if dst_isa == HostIsa::X86_64 && src_isa != HostIsa::X86_64 {
        let pairs: Vec<u64> = mm
            .mm_saved_auxv
            .chunks_exact(2)
            .filter(|p| p[0] != AT_IGNORE && p[0] != 0)
            .flatten()
            .copied()
            .collect();
        let mut auxv = pairs;
        auxv.truncate(X86_64_CRIU_AUXV_WORDS);
        if auxv.len() < mm.mm_saved_auxv.len() {
            mm.mm_saved_auxv = auxv;
        }
    }
    mm.vmas = kept;
    mm.exe_file_id = exe_id;
    entries_mut(&mut mm_file)[0].replace(&mm);
    mm_file.write(output).map_err(io(output))?;
    report.rewritten += 1;
    clock.mark(phases, "mm written");

    // Pagemap: the input's pages stay there (parent), but for dropped mappings; the pages
    // recode writes are here.
    if matches!(pagemap.content, Content::Raw(_)) {
        return Err(RecodeError::Missing { file: pagemap_name, what: "not a protobuf image".into() });
    }
    let mut all_pages: Vec<(u64, Option<&Vec<u8>>, PagemapEntry)> = Vec::new();
    for mut e in old {
        if dropped.iter().any(|(s, x)| e.vaddr >= *s && e.vaddr < *x) {
            continue;
        }
        if e.is_in_parent() || e.is_present() {
            report.pages_kept += e.pages();
            e.flags = Some(pagemap_flags::PARENT);
            e.in_parent = None;
        }
        all_pages.push((e.vaddr, None, e));
    }
    for (addr, bytes) in &new_pages {
        if let Some((_, _, e)) = all_pages.iter().find(|(_, b, e)| b.is_none() && *addr >= e.vaddr && *addr < e.vaddr + e.pages() * PAGE) {
            return Err(RecodeError::Corrupt {
                file: pagemap_name,
                what: format!("page {addr:#x} recode writes is already in the image ({:#x}, {} pages)", e.vaddr, e.pages()),
            });
        }
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
    report.pages_written += new_pages.len();
    clock.mark(phases, "pagemap, pages written");

    let mut names: Vec<String> = tids.iter().map(|t| format!("core-{t}.img")).collect();
    names.push(mm_name);
    names.push(pagemap_name);
    Ok(names)
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
    use object::{Object, ObjectSection};
    let bad = |why: String| RecodeError::Translated { path: path.to_path_buf(), why };
    let file = object::File::parse(data).map_err(|e| bad(format!("not an ELF file: {e}")))?;
    let Some(sec) = file.section_by_name(hcontainer_abi::meta::SECTION) else { return Ok(None) };
    let bytes = sec.data().map_err(|e| bad(e.to_string()))?;
    let (h, _) = hcontainer_abi::meta::Header::decode(bytes).map_err(|e| bad(e.to_string()))?;
    Ok(Some(h))
}

/// Whether the images in `dir` are of a native or a translated process, and for which host.
pub fn kind_of(dir: &Path) -> Result<crate::Kind, RecodeError> {
    kind_with(dir, None)
}

/// [`kind_of`], given the images' executable when the caller has it open already (then it
/// is not read again).
pub(crate) fn kind_with(dir: &Path, opened: Option<&Exe>) -> Result<crate::Kind, RecodeError> {
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
    let meta_read = match opened {
        Some(e) => Ok(Ok(e.meta)),
        None => fs::read(&exe).map(|data| meta_of(&exe, &data)),
    };
    let translated = match meta_read {
        Ok(meta) => match meta? {
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

/// The size CRIU recorded for the executable of the images in `dir`, if it did.
pub fn exe_size_of(dir: &Path) -> Result<Option<u64>, RecodeError> {
    let procs: Vec<PstreeEntry> = read(dir, "pstree.img")?.decode_all()?;
    let Some(pid) = procs.first().map(|p| p.pid) else { return Ok(None) };
    let mm: MmEntry = first(&read(dir, &format!("mm-{pid}.img"))?)?;
    let files: Vec<FileEntry> = read(dir, "files.img")?.decode_all()?;
    Ok(files.iter().find(|f| f.id == mm.exe_file_id).and_then(|f| f.reg.as_ref()).and_then(|r| r.size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exe::Segment;

    fn exe(guest: Vec<Segment>) -> Exe {
        Exe {
            path: PathBuf::from("/t"),
            size: 0,
            mode: 0o755,
            file: None,
            meta: None,
            resume: 0,
            runtime: Vec::new(),
            guest,
            actions: None,
            entry: 0,
            phdr: 0,
            phnum: 0,
            launches: None,
            dynamic: false,
        }
    }

    #[test]
    fn criu_sigaction_entries_skip_kill_and_stop() {
        assert_eq!(sig_of(0), 1);
        assert_eq!(sig_of(7), 8);
        assert_eq!(sig_of(8), 10);
        assert_eq!(sig_of(16), 18);
        assert_eq!(sig_of(17), 20);
        assert_eq!(sig_of(61), 64);
    }

    #[test]
    fn a_merged_mapping_splits_over_the_target_segments() {
        // The original: rodata ends inside page 0x4b4000, the data segment (RELRO first)
        // starts at 0x4b56b0 with its bss after 0x4bb2b0.
        let dst = exe(vec![
            Segment { vaddr: 0x48b000, memsz: 0x2986b, offset: 0x8b000, filesz: 0x2986b, prot: 1 },
            Segment { vaddr: 0x4b56b0, memsz: 0xb738, offset: 0xb56b0, filesz: 0x5c00, prot: 3 },
        ]);
        // One read-only mapping of a translation spanning rodata and the RELRO part.
        let v = VmaEntry {
            start: 0x48b000,
            end: 0x4b9000,
            pgoff: 0x3000,
            shmid: 7,
            prot: 1,
            flags: MAP_PRIVATE,
            status: vma_status::REGULAR | vma_status::FILE_PRIVATE,
            fd: -1,
            ..Default::default()
        };
        let p = retarget(&v, &dst, 9).expect("retarget");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].start, p[0].end, p[0].pgoff, p[0].shmid), (0x48b000, 0x4b5000, 0x8b000, 9));
        assert_eq!((p[1].start, p[1].end, p[1].pgoff, p[1].shmid), (0x4b5000, 0x4b9000, 0xb5000, 9));
        assert!(p.iter().all(|x| x.prot == 1));
        // A mapping running past the file part: zero-fill after it.
        let v = VmaEntry { start: 0x4b9000, end: 0x4c1000, prot: 3, ..v };
        let p = retarget(&v, &dst, 9).expect("retarget");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].end, p[0].pgoff), (0x4bc000, 0xb9000));
        assert_eq!((p[1].start, p[1].end, p[1].shmid), (0x4bc000, 0x4c1000, 0));
        assert_eq!(p[1].flags & MAP_ANONYMOUS, MAP_ANONYMOUS);
        assert_eq!(p[1].status, vma_status::REGULAR | vma_status::ANON_PRIVATE);
        // Nothing of the target's segments there.
        let v = VmaEntry { start: 0x600000, end: 0x601000, ..v };
        assert!(matches!(retarget(&v, &dst, 9), Err(RecodeError::Unsupported(_))));
    }
}
