//! Notify: bring every thread of a process tree to a migration point before a dump.
//!
//! * A **native** process (the original x86-64 binary on its home ISA) has no cooperation
//!   from its code. Every thread is seized and interrupted with ptrace; a thread already at a
//!   migration point (a guest block start listed in the metadata of one of the binary's
//!   translations, found in the [`Store`] by the binary's SHA-256) or blocked in a system call
//!   whose `syscall` instruction is one (CRIU rewinds restartable calls to it) stays where it
//!   is; every other thread is single-stepped until it reaches one, within a bound. Then every
//!   process is put into a group stop (SIGSTOP queued while its threads are still held by
//!   ptrace, then the threads detached: each enters the stop before running another
//!   instruction), so CRIU finds the tree stopped exactly there. CRIU records such tasks as
//!   stopped (`tc.task_state`) and a restore would stop them again: the caller marks them
//!   alive in the images (`hcontainer_criu::mark_stopped_alive`), so any restore by
//!   unmodified CRIU, on any machine, lets them run with no signal needed afterwards.
//! * A **translated** process (it has the `.hcontainer.meta` section) cooperates: every
//!   thread gets [`NOTIFY_SIGNAL`] and parks itself at its next migration point, which the
//!   checkpointer sees in the thread's [`ResumeRecord::status`] (read with
//!   `process_vm_readv` from the main thread's record and the thread slots listed in
//!   `/proc/PID/maps`). A thread that does not park in time aborts the notify: every thread
//!   gets [`RESUME_SIGNAL`].
//!
//! Whatever fails, the tree keeps running: ptrace is detached without a stop, parked
//! threads are resumed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcontainer_abi::calls::{ResumeRecord, NOTIFY_SIGNAL, RESUME_SIGNAL, THREAD_PARKED};
use hcontainer_abi::layout;
use hcontainer_abi::meta::{self, Header};
use object::{Object, ObjectSection};

use crate::store::{sha256_file, Store, StoreError, ISAS};

/// Why a notify (or what it needs) failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No process with that pid.
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    /// Reading `/proc` or an executable failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The translation store could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A native binary has no translation, so its migration points are unknown.
    #[error(
        "pid {pid} runs {} (sha256 {sha256}), which has no translation in the store {}: \
         its migration points are unknown; run `hcontainer translate {} --target x86_64` first",
        exe.display(),
        store.display(),
        exe.display()
    )]
    NoTranslation {
        /// The process.
        pid: u32,
        /// Its executable.
        exe: PathBuf,
        /// The executable's SHA-256.
        sha256: String,
        /// The store searched.
        store: PathBuf,
    },
    /// An executable's metadata section is damaged.
    #[error("{}: {why}", path.display())]
    BadMeta {
        /// The executable.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A ptrace request failed.
    #[error("ptrace {request} of pid {pid} thread {tid}: {source}")]
    Ptrace {
        /// The request's name.
        request: &'static str,
        /// The process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// The error.
        source: std::io::Error,
    },
    /// A thread did not reach a migration point within the bound.
    #[error(
        "pid {pid} thread {tid} reached no migration point within {steps} single-steps \
         ({elapsed_ms} ms); it stopped at rip {rip:#x}; the process was left running"
    )]
    NoPointReached {
        /// The process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// Where it was when the bound ran out.
        rip: u64,
        /// Steps taken.
        steps: u64,
        /// Time spent on it.
        elapsed_ms: u64,
    },
    /// A thread is blocked in a system call outside the guest's code (e.g. in the vDSO):
    /// stepping it would block too.
    #[error(
        "pid {pid} thread {tid} is blocked in a system call at {rip:#x}, which is no migration \
         point; the process was left running"
    )]
    SyscallNotAtPoint {
        /// The process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// The instruction after the `syscall`.
        rip: u64,
    },
    /// A thread ended up in an unexpected state.
    #[error("pid {pid} thread {tid}: {what}; the process was left running")]
    Unexpected {
        /// The process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// What happened.
        what: String,
    },
    /// Translated threads did not park in time.
    #[error(
        "pid {pid}: threads {tids:?} did not park at a migration point within {timeout_ms} ms \
         after {NOTIFY_SIGNAL}; all threads were sent signal {RESUME_SIGNAL} to continue"
    )]
    NotParked {
        /// The process.
        pid: u32,
        /// Threads that did not park.
        tids: Vec<u32>,
        /// The bound.
        timeout_ms: u64,
    },
    /// A translated process has no handler for the notify signal (its runtime has not
    /// started yet): the signal would end it.
    #[error("pid {pid} runs a translated executable but catches no signal {NOTIFY_SIGNAL} (its runtime is not initialized yet); nothing was sent, try again")]
    NoNotifyHandler {
        /// The process.
        pid: u32,
    },
    /// Processes of both kinds in one tree.
    #[error("the tree of pid {root} mixes native and translated processes ({native} is native, {translated} translated)")]
    MixedTree {
        /// The tree's root.
        root: u32,
        /// A native process.
        native: u32,
        /// A translated process.
        translated: u32,
    },
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NotifyError {
    let path = path.into();
    move |source| NotifyError::Io { path, source }
}

/// Migration points and facts read from a translated executable's metadata section.
#[derive(Clone, Debug)]
pub struct Meta {
    /// The decoded header.
    pub header: Header,
    /// Migration points (guest block starts), sorted ascending.
    pub points: Vec<u64>,
}

impl Meta {
    /// True when `addr` is a migration point.
    pub fn is_point(&self, addr: u64) -> bool {
        self.points.binary_search(&addr).is_ok()
    }
}

/// The `.hcontainer.meta` section of the executable at `path`, or `None` when it has none
/// (a native binary).
pub fn read_meta(path: &Path) -> Result<Option<Meta>, NotifyError> {
    // Only the headers and the section are read (units are tens of megabytes).
    let f = fs::File::open(path).map_err(io(path))?;
    let cache = object::ReadCache::new(f);
    let data = &cache;
    let bad = |why: String| NotifyError::BadMeta { path: path.to_path_buf(), why };
    let file = object::File::parse(data).map_err(|e| bad(format!("not an ELF file: {e}")))?;
    let Some(section) = file.section_by_name(meta::SECTION) else {
        return Ok(None);
    };
    let bytes = section.data().map_err(|e| bad(format!("{}: {e}", meta::SECTION)))?;
    let (header, raw) = Header::decode(bytes).map_err(|e| bad(e.to_string()))?;
    let mut points: Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    points.sort_unstable();
    Ok(Some(Meta { header, points }))
}

/// How a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The original binary on its home ISA.
    Native,
    /// A translated executable (it runs hcontainer's runtime).
    Translated,
}

/// One process of the tree, classified.
#[derive(Clone, Debug)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// `/proc/PID/exe`.
    pub exe: PathBuf,
    /// Native or translated.
    pub kind: Kind,
    /// SHA-256 of the original binary: of `exe` when native, from the metadata when
    /// translated.
    pub original_sha256: String,
    /// The migration points: of `exe` when translated, of the store entry `points_from`
    /// when native.
    pub meta: Meta,
    /// The translated executable the points were read from.
    pub points_from: PathBuf,
}

/// Pids of the tree rooted at `root` (root first, then children depth-first), from every
/// thread's `/proc/PID/task/TID/children`.
pub fn tree(root: u32) -> Result<Vec<u32>, NotifyError> {
    if !Path::new(&format!("/proc/{root}")).exists() {
        return Err(NotifyError::NoSuchProcess(root));
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    let mut seen = BTreeSet::new();
    while let Some(pid) = todo.pop() {
        if !seen.insert(pid) {
            continue;
        }
        out.push(pid);
        let mut kids = Vec::new();
        for tid in threads(pid).unwrap_or_default() {
            if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/children")) {
                kids.extend(s.split_whitespace().filter_map(|w| w.parse::<u32>().ok()));
            }
        }
        kids.sort_unstable();
        todo.extend(kids.into_iter().rev());
    }
    Ok(out)
}

/// Thread ids of process `pid`, ascending.
pub fn threads(pid: u32) -> Result<Vec<u32>, NotifyError> {
    let dir = format!("/proc/{pid}/task");
    let mut tids: Vec<u32> = fs::read_dir(&dir)
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { NotifyError::NoSuchProcess(pid) } else { io(&dir)(e) })?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The id thread `tid` of `pid` has in its own (innermost) pid namespace: the last field of
/// `NSpid` in its status; `None` when the kernel does not say.
pub fn ns_tid(pid: u32, tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Resident memory of `pid` in KiB (`VmRSS`), 0 when the kernel does not say.
pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Classifies process `pid`. A native process's points come from its translation for
/// `prefer_isa` if the store has one, else from any stored translation (the points are guest
/// addresses, the same for every host ISA).
pub fn classify(pid: u32, store: &Store, prefer_isa: Option<&str>) -> Result<Process, NotifyError> {
    let link = format!("/proc/{pid}/exe");
    let exe = fs::read_link(&link).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            NotifyError::NoSuchProcess(pid)
        } else {
            io(&link)(e)
        }
    })?;
    // Read through /proc: the path may have been replaced since the process started.
    if let Some(meta) = read_meta(Path::new(&link))? {
        return Ok(Process {
            pid,
            kind: Kind::Translated,
            original_sha256: hex::encode(meta.header.guest_sha256),
            points_from: exe.clone(),
            exe,
            meta,
        });
    }
    let sha = sha256_file(Path::new(&link))?;
    let order = prefer_isa.into_iter().chain(ISAS.iter().copied());
    for isa in order {
        let Some(path) = store.get(&sha, isa)? else { continue };
        let meta = read_meta(&path)?.ok_or_else(|| NotifyError::BadMeta {
            path: path.clone(),
            why: format!("stored as a translation but has no {} section", meta::SECTION),
        })?;
        if meta.header.flags & meta::FLAG_LAUNCHER != 0 {
            // A dynamically linked program: the points of every file it maps, where it is.
            let meta = mapped_points(pid, store, prefer_isa)?;
            return Ok(Process { pid, exe, kind: Kind::Native, original_sha256: sha, meta, points_from: path });
        }
        return Ok(Process { pid, exe, kind: Kind::Native, original_sha256: sha, meta, points_from: path });
    }
    Err(NotifyError::NoTranslation { pid, exe, sha256: sha, store: store.root().to_path_buf() })
}

/// The migration points of a dynamically linked native process: for every executable file
/// mapping in `/proc/PID/maps`, the points of that file's unit (any ISA's: points are guest
/// addresses) moved by the file's load bias there. Its header is the program's.
pub fn mapped_points(pid: u32, store: &Store, prefer_isa: Option<&str>) -> Result<Meta, NotifyError> {
    let maps_path = format!("/proc/{pid}/maps");
    let maps = fs::read_to_string(&maps_path).map_err(io(&maps_path))?;
    let mut points = Vec::new();
    let mut header = None;
    let mut done: BTreeSet<(String, u64)> = BTreeSet::new();
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || !f[1].contains('x') || !f[5].starts_with('/') {
            continue;
        }
        let (Some((lo, _)), Ok(off)) = (f[0].split_once('-'), u64::from_str_radix(f[2], 16)) else { continue };
        let Ok(start) = u64::from_str_radix(lo, 16) else { continue };
        // The path is the rest of the line from its first slash (no field before has one).
        let path = line.find('/').map_or(f[5], |i| &line[i..]);
        // Read through the process's view of the file (it may have been replaced since).
        let via = format!("/proc/{pid}/map_files/{}", f[0]);
        let file = if Path::new(&via).exists() { PathBuf::from(&via) } else { PathBuf::from(path) };
        let Some(bias) = elf_bias(&file, start, off) else { continue };
        if !done.insert((path.to_string(), bias)) {
            continue;
        }
        let sha = sha256_file(&file)?;
        let order = prefer_isa.into_iter().chain(ISAS.iter().copied()).filter(|i| *i != crate::store::ORIGINAL);
        let mut found = None;
        for isa in order {
            if let Some(u) = store.get_unit(&sha, isa)? {
                found = Some(u);
                break;
            }
        }
        let Some(unit) = found else {
            return Err(NotifyError::NoTranslation { pid, exe: PathBuf::from(path), sha256: sha, store: store.root().to_path_buf() });
        };
        let m = read_meta(&unit)?.ok_or_else(|| NotifyError::BadMeta {
            path: unit.clone(),
            why: format!("a unit without a {} section", meta::SECTION),
        })?;
        header.get_or_insert(m.header);
        points.extend(m.points.iter().map(|p| p.wrapping_add(bias)));
    }
    points.sort_unstable();
    points.dedup();
    let header = header.ok_or_else(|| NotifyError::BadMeta { path: PathBuf::from(maps_path), why: "no code mapping".into() })?;
    Ok(Meta { header, points })
}

/// The load bias of the ELF file `path` mapped from file offset `off` at `start`: where the
/// `PT_LOAD` holding `off` puts its link-time addresses. `None` for files that are no x86-64
/// ELF.
fn elf_bias(path: &Path, start: u64, off: u64) -> Option<u64> {
    use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
    let f = fs::File::open(path).ok()?;
    let cache = object::ReadCache::new(f);
    let elf = ElfFile64::<object::Endianness, _>::parse(&cache).ok()?;
    let e = elf.endian();
    if elf.elf_header().e_machine(e) != object::elf::EM_X86_64 {
        return None;
    }
    let page = layout::GUEST_PAGE_SIZE;
    elf.elf_program_headers().iter().find_map(|p| {
        let (po, pv, fs) = (p.p_offset(e), p.p_vaddr(e), p.p_filesz(e));
        (p.p_type(e) == object::elf::PT_LOAD && off >= po & !(page - 1) && off < po + fs.max(1))
            .then(|| start.wrapping_sub(off).wrapping_sub(pv).wrapping_add(po))
    })
}

/// Classifies every process of the tree rooted at `root`; all must be of one kind.
pub fn classify_tree(root: u32, store: &Store, prefer_isa: Option<&str>) -> Result<Vec<Process>, NotifyError> {
    let mut out: Vec<Process> = Vec::new();
    let mut by_exe: HashMap<(u64, u64), Process> = HashMap::new();
    for pid in tree(root)? {
        // Processes sharing an executable (forks) share the classification.
        let key = fs::metadata(format!("/proc/{pid}/exe")).map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
        let p = match key.as_ref().ok().and_then(|k| by_exe.get(k)) {
            Some(p) => Process { pid, ..p.clone() },
            None => {
                let p = classify(pid, store, prefer_isa)?;
                if let Ok(k) = key {
                    by_exe.insert(k, p.clone());
                }
                p
            }
        };
        if let Some(first) = out.first() {
            if first.kind != p.kind {
                let (native, translated) = if first.kind == Kind::Native { (first.pid, pid) } else { (pid, first.pid) };
                return Err(NotifyError::MixedTree { root, native, translated });
            }
        }
        out.push(p);
    }
    Ok(out)
}

/// Bounds of a native notify.
#[derive(Clone, Copy, Debug)]
pub struct NativeOptions {
    /// Single-steps allowed per thread.
    pub max_steps: u64,
    /// Time allowed for the whole notify.
    pub timeout: Duration,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions { max_steps: 100_000, timeout: Duration::from_secs(10) }
    }
}

/// Where one thread was brought to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadStop {
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its instruction pointer now.
    pub rip: u64,
    /// Single-steps it took.
    pub steps: u64,
    /// Blocked in a restartable system call whose `syscall` instruction (at `rip - 2`) is the
    /// migration point CRIU rewinds it to.
    pub in_syscall: bool,
}

/// The outcome of a notify: the tree is stopped at migration points.
#[derive(Clone, Debug, Default)]
pub struct Notified {
    /// Pids of the tree.
    pub pids: Vec<u32>,
    /// Every thread and where it stopped (for translated threads: the record's guest rip).
    pub threads: Vec<ThreadStop>,
    /// Signals taken from threads while they were held (re-sent once they are stopped, so
    /// that CRIU dumps them as pending).
    pub deferred_signals: Vec<(u32, u32, i32)>,
}

const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;

fn last_os(request: &'static str, pid: u32, tid: u32) -> NotifyError {
    NotifyError::Ptrace { request, pid, tid, source: std::io::Error::last_os_error() }
}

// glibc declares the request `c_uint`, musl `c_int`: callers pass libc's constants and the
// cast below adapts them.
fn ptrace(req: impl TryInto<u32>, tid: u32, addr: usize, data: usize) -> libc::c_long {
    let req = req.try_into().unwrap_or(u32::MAX);
    // SAFETY: the requests used here (SEIZE, INTERRUPT, SINGLESTEP, DETACH, GETREGS) either
    // take integer arguments or, for GETREGS, `data` pointing at a live `user_regs_struct`
    // owned by the caller; the kernel validates the tid.
    unsafe { libc::ptrace(req as _, tid as libc::pid_t, addr as *mut libc::c_void, data as *mut libc::c_void) }
}

/// The x86-64 registers the native notify looks at.
struct NativeRegs {
    rax: u64,
    orig_rax: u64,
    rip: u64,
}

#[cfg(target_arch = "x86_64")]
fn getregs(pid: u32, tid: u32) -> Result<NativeRegs, NotifyError> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    if ptrace(libc::PTRACE_GETREGS, tid, 0, std::ptr::addr_of_mut!(regs) as usize) < 0 {
        return Err(last_os("GETREGS", pid, tid));
    }
    Ok(NativeRegs { rax: regs.rax, orig_rax: regs.orig_rax, rip: regs.rip })
}

/// Native x86-64 processes run on x86-64 hosts only: elsewhere there is no such thread.
#[cfg(not(target_arch = "x86_64"))]
fn getregs(pid: u32, tid: u32) -> Result<NativeRegs, NotifyError> {
    Err(NotifyError::Ptrace {
        request: "GETREGS",
        pid,
        tid,
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "a native x86-64 thread cannot run on this host ISA",
        ),
    })
}

/// What `waitpid` saw.
enum Wait {
    /// A ptrace stop: the signal and the event (status >> 16).
    Stopped { sig: i32, event: i32 },
    /// The thread is gone.
    Gone,
}

fn wait_tid(pid: u32, tid: u32) -> Result<Wait, NotifyError> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the local integer.
        let r = unsafe { libc::waitpid(tid as libc::pid_t, &mut status, libc::__WALL) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if e.raw_os_error() == Some(libc::ECHILD) {
                return Ok(Wait::Gone);
            }
            return Err(NotifyError::Ptrace { request: "waitpid", pid, tid, source: e });
        }
        break;
    }
    if libc::WIFSTOPPED(status) {
        Ok(Wait::Stopped { sig: libc::WSTOPSIG(status), event: status >> 16 })
    } else {
        Ok(Wait::Gone)
    }
}

/// One seized thread.
struct Held {
    pid: u32,
    tid: u32,
}

/// Threads held by ptrace; dropping it without [`Tracer::stop_all`] lets them run on.
struct Tracer {
    held: Vec<Held>,
    deferred: Vec<(u32, u32, i32)>,
}

impl Tracer {
    /// Seizes and interrupts every thread of `pids`, repeating until no new thread appears.
    fn seize(pids: &[u32]) -> Result<Tracer, NotifyError> {
        let mut t = Tracer { held: Vec::new(), deferred: Vec::new() };
        let mut known: BTreeSet<u32> = BTreeSet::new();
        loop {
            let mut new = Vec::new();
            for &pid in pids {
                for tid in threads(pid).unwrap_or_default() {
                    if known.insert(tid) {
                        new.push((pid, tid));
                    }
                }
            }
            if new.is_empty() {
                break;
            }
            let mut seized = Vec::new();
            for (pid, tid) in new {
                if ptrace(libc::PTRACE_SEIZE, tid, 0, 0) < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::ESRCH) {
                        continue; // exited meanwhile
                    }
                    return Err(NotifyError::Ptrace { request: "SEIZE", pid, tid, source: e });
                }
                t.held.push(Held { pid, tid });
                if ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) < 0 {
                    return Err(last_os("INTERRUPT", pid, tid));
                }
                seized.push((pid, tid));
            }
            for (pid, tid) in seized {
                t.wait_trap(pid, tid)?;
            }
        }
        Ok(t)
    }

    /// Waits until `tid` is in a ptrace stop that is not a signal delivery; signals that
    /// arrive first are suppressed and kept for later.
    fn wait_trap(&mut self, pid: u32, tid: u32) -> Result<bool, NotifyError> {
        loop {
            match wait_tid(pid, tid)? {
                Wait::Gone => {
                    self.held.retain(|h| h.tid != tid);
                    return Ok(false);
                }
                Wait::Stopped { sig, event } => {
                    if event != 0 || sig == libc::SIGTRAP {
                        return Ok(true);
                    }
                    // A signal-delivery stop: keep the signal, let the thread reach the trap.
                    self.deferred.push((pid, tid, sig));
                    if ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) < 0 || ptrace(libc::PTRACE_CONT, tid, 0, 0) < 0 {
                        return Err(last_os("CONT", pid, tid));
                    }
                }
            }
        }
    }

    /// Single-steps `tid` once; false when it exited.
    fn step(&mut self, pid: u32, tid: u32) -> Result<bool, NotifyError> {
        if ptrace(libc::PTRACE_SINGLESTEP, tid, 0, 0) < 0 {
            return Err(last_os("SINGLESTEP", pid, tid));
        }
        self.wait_trap(pid, tid)
    }

    /// Detaches every thread and lets it run (failure path).
    fn release(&mut self) {
        for h in self.held.drain(..) {
            ptrace(libc::PTRACE_DETACH, h.tid, 0, 0);
        }
        resend(&self.deferred);
        self.deferred.clear();
    }

    /// Puts every process into a group stop without letting a thread run an instruction:
    /// SIGSTOP is queued while the threads are held, then they are detached.
    fn stop_all(&mut self, pids: &[u32], timeout: Duration) -> Result<(), NotifyError> {
        for &pid in pids {
            // SAFETY: kill(2) with a pid and a signal number touches no memory.
            if unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) } < 0 {
                return Err(NotifyError::Unexpected {
                    pid,
                    tid: pid,
                    what: format!("SIGSTOP: {}", std::io::Error::last_os_error()),
                });
            }
        }
        for h in self.held.drain(..) {
            ptrace(libc::PTRACE_DETACH, h.tid, 0, 0);
        }
        let start = Instant::now();
        for &pid in pids {
            for tid in threads(pid).unwrap_or_default() {
                loop {
                    match thread_state(pid, tid) {
                        Some('T') | None => break,
                        Some(_) if start.elapsed() > timeout => {
                            return Err(NotifyError::Unexpected {
                                pid,
                                tid,
                                what: "did not enter the group stop".into(),
                            })
                        }
                        Some(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            }
        }
        resend(&self.deferred);
        self.deferred.clear();
        Ok(())
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.release();
    }
}

fn resend(signals: &[(u32, u32, i32)]) {
    for &(pid, tid, sig) in signals {
        // SAFETY: tgkill with integer arguments touches no memory.
        unsafe { libc::syscall(libc::SYS_tgkill, pid as libc::c_long, tid as libc::c_long, sig as libc::c_long) };
    }
}

/// The state letter of `/proc/PID/task/TID/stat` (R, S, D, T, t, Z…).
pub fn thread_state(pid: u32, tid: u32) -> Option<char> {
    hcontainer_criu::proc::thread_state(pid, tid)
}

/// Brings every thread of the native processes `procs` to a migration point and leaves the
/// tree in a group stop there (see the module header). On error every thread runs on.
pub fn notify_native(procs: &[Process], opts: NativeOptions) -> Result<Notified, NotifyError> {
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let metas: BTreeMap<u32, &Meta> = procs.iter().map(|p| (p.pid, &p.meta)).collect();
    let start = Instant::now();
    let mut tracer = Tracer::seize(&pids)?;
    let mut out = Notified { pids: pids.clone(), ..Notified::default() };
    let held: Vec<(u32, u32)> = tracer.held.iter().map(|h| (h.pid, h.tid)).collect();
    for (pid, tid) in held {
        let meta = metas.get(&pid).copied().ok_or(NotifyError::NoSuchProcess(pid))?;
        let thread_start = Instant::now();
        let mut regs = getregs(pid, tid)?;
        let ax = regs.rax as i64;
        let restartable = matches!(ax, ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK);
        if (regs.orig_rax as i64) >= 0 && restartable {
            if meta.is_point(regs.rip.wrapping_sub(2)) || meta.is_point(regs.rip) {
                out.threads.push(ThreadStop { pid, tid, rip: regs.rip, steps: 0, in_syscall: true });
                continue;
            }
            return Err(NotifyError::SyscallNotAtPoint { pid, tid, rip: regs.rip });
        }
        let mut steps = 0;
        let mut gone = false;
        while !meta.is_point(regs.rip) {
            if steps >= opts.max_steps || start.elapsed() > opts.timeout {
                return Err(NotifyError::NoPointReached {
                    pid,
                    tid,
                    rip: regs.rip,
                    steps,
                    elapsed_ms: u64::try_from(thread_start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            if !tracer.step(pid, tid)? {
                gone = true;
                break;
            }
            steps += 1;
            regs = getregs(pid, tid)?;
        }
        if !gone {
            out.threads.push(ThreadStop { pid, tid, rip: regs.rip, steps, in_syscall: false });
        }
    }
    out.deferred_signals = tracer.deferred.clone();
    tracer.stop_all(&pids, opts.timeout)?;
    Ok(out)
}

/// Ends every process of `pids` (SIGKILL), children first, and waits up to `timeout` until
/// each is [`dead`]. Reaping is their parents' business (a restore on this machine waits for
/// the pids to be free). Returns false when some still ran at the end.
pub fn kill(pids: &[u32], timeout: Duration) -> bool {
    for &pid in pids.iter().rev() {
        // SAFETY: kill(2) with integer arguments touches no memory.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    let start = Instant::now();
    loop {
        if pids.iter().all(|&p| dead(p)) {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// True when process `pid` has ended: gone, or a zombie its parent has not reaped yet (a
/// restore of its images on this machine waits for the pid to be free).
pub fn dead(pid: u32) -> bool {
    hcontainer_criu::proc::is_dead(pid)
}

/// Lets a tree stopped by [`notify_native`] run again.
pub fn resume_native(pids: &[u32]) {
    for &pid in pids {
        // SAFETY: kill(2) with integer arguments touches no memory.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    }
}

/// Byte offset of `tid` in a [`ResumeRecord`].
const RECORD_TID: usize = std::mem::offset_of!(ResumeRecord, tid);
/// Byte offset of `status` in a [`ResumeRecord`].
const RECORD_STATUS: usize = std::mem::offset_of!(ResumeRecord, status);
/// Byte offset of the guest rip in a [`ResumeRecord`].
const RECORD_RIP: usize = std::mem::offset_of!(ResumeRecord, state) + std::mem::offset_of!(hcontainer_abi::GuestState, rip);

/// Addresses of every [`ResumeRecord`] of translated process `pid`: the main thread's and
/// one per thread slot mapped (from `/proc/PID/maps`).
pub fn resume_records(pid: u32) -> Result<Vec<u64>, NotifyError> {
    let path = format!("/proc/{pid}/maps");
    let maps = fs::read_to_string(&path).map_err(io(&path))?;
    let mut out = vec![layout::MAIN_RESUME_RECORD];
    for line in maps.lines() {
        let Some((range, _)) = line.split_once(' ') else { continue };
        let Some((lo, _)) = range.split_once('-') else { continue };
        let Ok(lo) = u64::from_str_radix(lo, 16) else { continue };
        if let Some(i) = layout::thread_slot_at(lo) {
            out.push(layout::thread_resume_record(i));
        }
    }
    Ok(out)
}

/// Reads `len` bytes at `addr` of process `pid`.
fn read_remote(pid: u32, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` describes `buf`, which lives for the call; the remote range is only
    // read by the kernel on the other process's side.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if usize::try_from(n).ok() != Some(buf.len()) {
        return Err(std::io::Error::other(format!("short read of {n} bytes at {addr:#x}")));
    }
    Ok(())
}

/// (tid, status, guest rip) of the record at `addr`.
fn read_record(pid: u32, addr: u64) -> std::io::Result<(u64, u64, u64)> {
    let mut buf = [0u8; RECORD_RIP + 8];
    read_remote(pid, addr, &mut buf)?;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[at..at + 8]);
        u64::from_le_bytes(w)
    };
    Ok((word(RECORD_TID), word(RECORD_STATUS), word(RECORD_RIP)))
}

fn tgkill_all(pids: &[u32], sig: i32) {
    for &pid in pids {
        for tid in threads(pid).unwrap_or_default() {
            resend(&[(pid, tid, sig)]);
        }
    }
}

/// The threads of translated process `pid` and, for each whose resume record says it is
/// parked, the guest rip it parked at (keyed by the thread id the runtime sees: inside a pid
/// namespace that is not the host's tid).
fn parked_threads(pid: u32) -> Result<(Vec<u32>, BTreeMap<u32, u64>), NotifyError> {
    let tids = threads(pid)?;
    let mut parked: BTreeMap<u32, u64> = BTreeMap::new();
    for addr in resume_records(pid)? {
        if let Ok((tid, status, rip)) = read_record(pid, addr) {
            if status == THREAD_PARKED {
                if let Ok(tid) = u32::try_from(tid) {
                    parked.insert(tid, rip);
                }
            }
        }
    }
    Ok((tids, parked))
}

/// Waits, up to `timeout`, until no thread of the translated processes `pids` is parked or
/// has a `RESUME_SIGNAL` pending, that is until each has handled the one sent to it. A
/// thread scheduled late could otherwise still hold that signal when the next notify comes:
/// its parked status would be taken for the new park, or the resume would drop the new
/// request. Returns the threads still parked at the end (empty when all run).
pub fn wait_resumed(pids: &[u32], timeout: Duration) -> Vec<(u32, u32)> {
    let start = Instant::now();
    loop {
        let mut still = Vec::new();
        for &pid in pids {
            let Ok((tids, parked)) = parked_threads(pid) else { continue };
            still.extend(
                tids.into_iter()
                    .filter(|&t| parked.contains_key(&ns_tid(pid, t).unwrap_or(t)) || resume_pending(pid, t))
                    .map(|t| (pid, t)),
            );
        }
        if still.is_empty() || start.elapsed() > timeout {
            return still;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// How long a notify waits for a translated process to install the runtime's signal handlers.
const HANDLER_WAIT: Duration = Duration::from_secs(2);

/// Asks every thread of the translated processes `procs` to park at its next migration
/// point and waits, up to `timeout`, until all have. On error every thread is resumed.
pub fn notify_translated(procs: &[Process], timeout: Duration) -> Result<Notified, NotifyError> {
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    // A process restored from a recoded image installs the runtime's handlers as its
    // threads start: give it a moment before concluding it has none.
    let handlers_by = Instant::now() + timeout.min(HANDLER_WAIT);
    while let Some(&pid) = pids.iter().find(|&&p| !catches(p, NOTIFY_SIGNAL) || !catches(p, RESUME_SIGNAL)) {
        if Instant::now() >= handlers_by {
            return Err(NotifyError::NoNotifyHandler { pid });
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    // A resume sent just before (a restore, a rolled-back checkpoint) must have reached
    // every thread before the request goes out. A thread still parked after that really is
    // parked, with its whole state in its record.
    wait_resumed(&pids, timeout.min(Duration::from_secs(2)));
    tgkill_all(&pids, NOTIFY_SIGNAL);
    let start = Instant::now();
    let mut out = Notified { pids: pids.clone(), ..Notified::default() };
    for &pid in &pids {
        loop {
            let (tids, parked) = parked_threads(pid)?;
            let seen = |tid: u32| ns_tid(pid, tid).unwrap_or(tid);
            let missing: Vec<u32> = tids.iter().copied().filter(|&t| !parked.contains_key(&seen(t))).collect();
            if missing.is_empty() {
                out.threads.extend(tids.iter().map(|&tid| ThreadStop {
                    pid,
                    tid,
                    rip: parked[&seen(tid)],
                    steps: 0,
                    in_syscall: false,
                }));
                break;
            }
            if start.elapsed() > timeout {
                resume_translated(&pids);
                return Err(NotifyError::NotParked {
                    pid,
                    tids: missing,
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(out)
}

/// Lets parked translated threads continue: [`RESUME_SIGNAL`] to every thread of each
/// process that has a handler for it. A process without one cannot have parked threads (a
/// freshly restored image of a native process may not have installed the runtime's handlers
/// yet), and the signal's default action would end it.
pub fn resume_translated(pids: &[u32]) {
    let ready: Vec<u32> = pids.iter().copied().filter(|&p| catches(p, RESUME_SIGNAL)).collect();
    tgkill_all(&ready, RESUME_SIGNAL);
}

/// True when thread `tid` of `pid` has a [`RESUME_SIGNAL`] pending (sent to it or to the
/// process, not yet handled).
fn resume_pending(pid: u32, tid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else { return false };
    let bit = 1u64 << (RESUME_SIGNAL - 1);
    status
        .lines()
        .filter_map(|l| l.strip_prefix("SigPnd:").or_else(|| l.strip_prefix("ShdPnd:")))
        .filter_map(|v| u64::from_str_radix(v.trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

/// True when process `pid` has a handler installed for signal `sig` (`SigCgt` of
/// `/proc/PID/status`).
pub fn catches(pid: u32, sig: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&sig) && mask & (1u64 << (sig - 1)) != 0
}

/// Notifies a classified tree of either kind.
pub fn notify(procs: &[Process], native: NativeOptions) -> Result<Notified, NotifyError> {
    match procs.first().map(|p| p.kind) {
        Some(Kind::Translated) => notify_translated(procs, native.timeout),
        _ => notify_native(procs, native),
    }
}

/// Lets a notified tree of either kind run on.
pub fn resume(kind: Kind, pids: &[u32]) {
    match kind {
        Kind::Native => resume_native(pids),
        Kind::Translated => resume_translated(pids),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_binary_without_translation_is_named_with_the_command_to_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(Some(dir.path())).expect("store");
        let me = std::process::id();
        let err = classify(me, &store, Some("x86_64")).expect_err("no translation in an empty store");
        let text = err.to_string();
        let exe = fs::read_link("/proc/self/exe").expect("exe");
        assert!(matches!(err, NotifyError::NoTranslation { pid, .. } if pid == me), "{text}");
        assert!(text.contains(&format!("hcontainer translate {}", exe.display())), "{text}");
        assert!(text.contains(&sha256_file(&exe).expect("hash")), "{text}");
    }

    #[test]
    fn bad_inputs_give_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk");
        fs::write(&junk, b"not an elf").expect("write");
        assert!(matches!(read_meta(&junk), Err(NotifyError::BadMeta { .. })));
        assert!(matches!(read_meta(&dir.path().join("missing")), Err(NotifyError::Io { .. })));
        assert!(read_meta(Path::new("/proc/self/exe")).expect("an ELF").is_none(), "a native binary has no metadata");
        assert!(matches!(tree(u32::MAX), Err(NotifyError::NoSuchProcess(_))));
        assert!(matches!(threads(u32::MAX), Err(NotifyError::NoSuchProcess(_))));
    }

    #[test]
    fn own_threads_and_records() {
        let me = std::process::id();
        assert!(threads(me).expect("threads").contains(&me));
        assert_eq!(tree(me).expect("tree")[0], me);
        assert!(rss_kib(me) > 0);
        // A native process maps no thread slot: only the main record's address is listed.
        assert_eq!(resume_records(me).expect("records"), vec![layout::MAIN_RESUME_RECORD]);
        // SAFETY: gettid(2) takes no arguments and touches no memory.
        let tid = unsafe { libc::gettid() } as u32;
        assert_eq!(thread_state(me, tid), Some('R'), "the thread reading its own state runs");
        assert!(!catches(me, RESUME_SIGNAL), "the test binary has no runtime handlers");
    }
}
