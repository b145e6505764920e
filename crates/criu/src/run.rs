//! Running `criu dump` and `criu restore`, timing them and explaining their failures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hcontainer_criu_image::{pb, ImageFile};
use serde::Serialize;

use crate::Criu;

/// File in the images directory holding the dump's [`Timings`] as JSON.
pub const TIMINGS_DUMP_FILE: &str = "hcontainer-timings-dump.json";
/// File in the images directory holding the restore's [`Timings`] as JSON.
pub const TIMINGS_RESTORE_FILE: &str = "hcontainer-timings-restore.json";

/// Why a dump or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    /// No process has that pid.
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    /// CRIU needs root (CAP_SYS_ADMIN and friends).
    #[error("checkpoint and restore need root (effective uid is {0}); run as root")]
    NotRoot(u32),
    /// The images directory already holds files.
    #[error("{0} is not empty; give an empty or new directory")]
    DirNotEmpty(PathBuf),
    /// The images directory has no dump.
    #[error("{0} holds no CRIU dump (no inventory.img)")]
    NoImages(PathBuf),
    /// File system trouble around the images directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// CRIU ran and failed.
    #[error("criu {action} failed ({status}): {last_error}\n  full log: {}", log.display())]
    Failed {
        /// `dump` or `restore`.
        action: &'static str,
        /// Exit status.
        status: String,
        /// The last error line of CRIU's log.
        last_error: String,
        /// CRIU's log file.
        log: PathBuf,
    },
    /// A process of this machine holds a pid the images restore.
    #[error("pid {pid}, which the images restore, belongs to a running process ({comm}); end it or restore elsewhere")]
    PidTaken {
        /// The pid (or thread id).
        pid: u32,
        /// The holder's command name.
        comm: String,
    },
    /// An exited process that its parent has not reaped still holds a pid the images restore.
    #[error("pid {pid}, which the images restore, is still held by an exited process its parent has not reaped ({waited_ms} ms waited)")]
    PidNotReaped {
        /// The pid (or thread id).
        pid: u32,
        /// How long the restore waited for it.
        waited_ms: u64,
    },
    /// The timing images CRIU writes could not be read.
    #[error("reading CRIU statistics: {0}")]
    Stats(#[from] hcontainer_criu_image::DecodeError),
}

/// The `--network-lock` method hcontainer uses unless told otherwise.
pub const DEFAULT_NETWORK_LOCK: &str = "nftables";

/// What `criu dump` should do.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// Root of the process tree.
    pub pid: u32,
    /// Images directory (created if missing; must be empty).
    pub dir: PathBuf,
    /// Keep the tree running after the dump.
    pub leave_running: bool,
    /// Dump established TCP connections (`--tcp-established`).
    pub tcp_established: bool,
    /// The tree belongs to a shell session outside it (`--shell-job`).
    pub shell_job: bool,
    /// How CRIU blocks the network while sockets are dumped (`--network-lock`); CRIU's
    /// default, iptables, needs the iptables program, nftables only the library.
    pub network_lock: String,
}

/// What `criu restore` should do.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Images directory.
    pub dir: PathBuf,
    /// Return once the tree runs (`--restore-detached`) instead of waiting for it to exit.
    pub detach: bool,
    /// Restore established TCP connections.
    pub tcp_established: bool,
    /// Restore as a shell job.
    pub shell_job: bool,
    /// `--network-lock` method, as for the dump.
    pub network_lock: String,
}

/// Result of a restore.
#[derive(Clone, Debug)]
pub struct RestoreOutcome {
    /// Pid of the restored root task.
    pub pid: u32,
    /// The time breakdown.
    pub timings: Timings,
}

impl DumpOptions {
    /// Dump of `pid` into `dir` with hcontainer's defaults: stop the tree, dump established
    /// TCP connections, nftables network lock.
    pub fn new(pid: u32, dir: impl Into<PathBuf>) -> Self {
        DumpOptions {
            pid,
            dir: dir.into(),
            leave_running: false,
            tcp_established: true,
            shell_job: false,
            network_lock: DEFAULT_NETWORK_LOCK.into(),
        }
    }
}

impl RestoreOptions {
    /// Restore from `dir` with hcontainer's defaults (matching [`DumpOptions::new`]).
    pub fn new(dir: impl Into<PathBuf>, detach: bool) -> Self {
        RestoreOptions {
            dir: dir.into(),
            detach,
            tcp_established: true,
            shell_job: false,
            network_lock: DEFAULT_NETWORK_LOCK.into(),
        }
    }
}

/// Time breakdown of a dump or a restore, in microseconds (CRIU's own statistics plus the
/// wall clock of the whole `criu` run).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Timings {
    /// `dump` or `restore`.
    pub action: String,
    /// Time to freeze the tree (dump).
    pub freeze_us: Option<u64>,
    /// Time the tree stayed frozen (dump).
    pub frozen_us: Option<u64>,
    /// Time to collect memory pages (dump).
    pub memdump_us: Option<u64>,
    /// Time to write pages into images (dump).
    pub memwrite_us: Option<u64>,
    /// Pages scanned / written (dump).
    pub pages_scanned: Option<u64>,
    /// Pages written into `pages-*.img` (dump).
    pub pages_written: Option<u64>,
    /// Time to fork the tree (restore).
    pub forking_us: Option<u64>,
    /// Time to restore the tree (restore).
    pub restore_us: Option<u64>,
    /// Pages restored (restore).
    pub pages_restored: Option<u64>,
    /// Wall clock of the whole `criu` run, as hcontainer measured it.
    pub total_us: u64,
    /// Time to bring every thread to a migration point before the dump (checkpoint with
    /// `--to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_us: Option<u64>,
    /// Time to recode the images for the target (checkpoint with `--to` another kind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recode_us: Option<u64>,
    /// Threads in the dumped tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Resident memory of the dumped tree (`VmRSS` summed), in KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
}

impl Timings {
    /// A human-readable breakdown, one line per phase.
    pub fn to_text(&self) -> String {
        let ms = |us: u64| format!("{:9.3} ms", us as f64 / 1000.0);
        let mut lines = Vec::new();
        let mut add = |name: &str, v: Option<u64>| {
            if let Some(v) = v {
                lines.push(format!("  {name:<14}{}", ms(v)));
            }
        };
        add("notify", self.notify_us);
        add("freeze", self.freeze_us);
        add("frozen", self.frozen_us);
        add("memory dump", self.memdump_us);
        add("image write", self.memwrite_us);
        add("fork", self.forking_us);
        add("restore", self.restore_us);
        let mut text = format!("{} timings:\n", self.action);
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        if let (Some(s), Some(w)) = (self.pages_scanned, self.pages_written) {
            text.push_str(&format!("  pages         {s} scanned, {w} written\n"));
        }
        if let Some(r) = self.pages_restored {
            text.push_str(&format!("  pages         {r} restored\n"));
        }
        text.push_str(&format!("  {:<14}{}\n", "total (criu)", ms(self.total_us)));
        if let Some(r) = self.recode_us {
            text.push_str(&format!("  {:<14}{}\n", "recode", ms(r)));
        }
        if let (Some(t), Some(k)) = (self.threads, self.rss_kib) {
            text.push_str(&format!("  tree          {t} threads, {:.1} MB resident\n", k as f64 / 1024.0));
        }
        text
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CriuError + '_ {
    move |source| CriuError::Io { path: path.to_path_buf(), source }
}

fn require_root() -> Result<(), CriuError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Err(CriuError::NotRoot(uid));
    }
    Ok(())
}

/// The error lines of CRIU's log worth quoting: the last one, preceded by the first one
/// when they differ (the first usually names the cause, the last what gave up). CRIU's
/// harmless complaint about RLIMIT_NOFILE and its closing "FAILED." summaries are skipped.
pub fn last_error_line(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return format!("(no log at {})", log.display());
    };
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error (") || l.contains("Error:"))
        .filter(|l| !l.contains("RLIMIT_NOFILE") && !l.trim_end().ends_with("FAILED."))
        .map(str::trim)
        .collect();
    let quoted = match errors.as_slice() {
        [] => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "(empty log)".to_string()),
        [one] => one.to_string(),
        [first, .., last] => format!("{last}\n  first error: {first}"),
    };
    match hint_for(&text) {
        Some(hint) => format!("{quoted}\n  hint: {hint}"),
        None => quoted,
    }
}

/// What to do about a CRIU failure whose cause CRIU's own message leaves implicit.
fn hint_for(log: &str) -> Option<&'static str> {
    if log.contains("is outside of its pid namespace") {
        // getsid() answers 0 inside a pid namespace that does not hold the session leader,
        // as for any program started from a container's shell or CI job.
        return Some(
            "the process belongs to a session whose leader is outside this pid namespace; \
             start it in a session of its own (`setsid PROG`, or `unshare --pid --fork setsid PROG`)",
        );
    }
    None
}

impl Criu {
    fn run_logged(
        &self,
        action: &'static str,
        args: &[String],
        log: &Path,
    ) -> Result<Duration, CriuError> {
        self.run_logged_in(action, args, log, false)
    }

    /// Runs CRIU; with `new_session`, in a session of its own (setsid in the child).
    fn run_logged_in(
        &self,
        action: &'static str,
        args: &[String],
        log: &Path,
        new_session: bool,
    ) -> Result<Duration, CriuError> {
        let start = Instant::now();
        let mut cmd = Command::new(self.path());
        cmd.arg(action).args(args);
        if new_session {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(std::io::Error::from));
            }
        }
        let out = cmd.output().map_err(io(self.path()))?;
        let elapsed = start.elapsed();
        if !out.status.success() {
            let mut last_error = last_error_line(log);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !log.exists() && !stderr.trim().is_empty() {
                last_error = stderr.trim().to_string();
            }
            return Err(CriuError::Failed {
                action,
                status: out.status.to_string(),
                last_error,
                log: log.to_path_buf(),
            });
        }
        Ok(elapsed)
    }

    /// Dumps the tree rooted at `opts.pid` into `opts.dir`; writes the timings there too.
    pub fn dump(&self, opts: &DumpOptions) -> Result<Timings, CriuError> {
        require_root()?;
        if !Path::new(&format!("/proc/{}", opts.pid)).exists() {
            return Err(CriuError::NoSuchProcess(opts.pid));
        }
        std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
        if std::fs::read_dir(&opts.dir).map_err(io(&opts.dir))?.next().is_some() {
            return Err(CriuError::DirNotEmpty(opts.dir.clone()));
        }
        let dir = std::fs::canonicalize(&opts.dir).map_err(io(&opts.dir))?;
        let log = dir.join("dump.log");
        let mut args = vec![
            "-t".to_string(),
            opts.pid.to_string(),
            "-D".to_string(),
            dir.display().to_string(),
            "-o".to_string(),
            log.display().to_string(),
            "-v4".to_string(),
        ];
        if opts.leave_running {
            args.push("--leave-running".into());
        }
        if opts.tcp_established {
            args.push("--tcp-established".into());
        }
        if opts.shell_job {
            args.push("--shell-job".into());
        }
        args.push("--network-lock".into());
        args.push(opts.network_lock.clone());
        let elapsed = self.run_logged("dump", &args, &log)?;
        let mut t = Timings { action: "dump".into(), total_us: micros(elapsed), ..Timings::default() };
        let stats = dir.join("stats-dump");
        if stats.exists() {
            let file = ImageFile::read(&stats)?;
            if let Some(d) = file.decode_all::<pb::StatsEntry>()?.into_iter().find_map(|s| s.dump) {
                t.freeze_us = Some(d.freezing_time.into());
                t.frozen_us = Some(d.frozen_time.into());
                t.memdump_us = Some(d.memdump_time.into());
                t.memwrite_us = Some(d.memwrite_time.into());
                t.pages_scanned = Some(d.pages_scanned);
                t.pages_written = Some(d.pages_written);
            }
        }
        write_timings(&dir.join(TIMINGS_DUMP_FILE), &t)?;
        Ok(t)
    }

    /// Restores the tree dumped in `opts.dir`. With `detach`, returns once it runs; without,
    /// waits until the restored root task exits.
    pub fn restore(&self, opts: &RestoreOptions) -> Result<RestoreOutcome, CriuError> {
        require_root()?;
        let dir = std::fs::canonicalize(&opts.dir).map_err(io(&opts.dir))?;
        if !dir.join("inventory.img").exists() {
            return Err(CriuError::NoImages(dir));
        }
        wait_pids_free(&dir)?;
        let log = dir.join("restore.log");
        let pidfile = dir.join("restore.pid");
        // Files of an earlier restore would be mistaken for this one's.
        for f in [&pidfile, &dir.join("stats-restore")] {
            if f.exists() {
                std::fs::remove_file(f).map_err(io(f))?;
            }
        }
        let mut args = vec![
            "-D".to_string(),
            dir.display().to_string(),
            "-o".to_string(),
            log.display().to_string(),
            "-v4".to_string(),
            "--pidfile".to_string(),
            pidfile.display().to_string(),
        ];
        if opts.detach {
            args.push("--restore-detached".into());
        }
        if opts.tcp_established {
            args.push("--tcp-established".into());
        }
        if opts.shell_job {
            args.push("--shell-job".into());
        }
        args.push("--network-lock".into());
        args.push(opts.network_lock.clone());
        // A detached shell job would otherwise join the caller's session, whose leader may
        // lie outside the pid namespace (a container's shell); the next dump of the tree
        // would then fail. Its own session also keeps it clear of the caller's terminal.
        let new_session = opts.detach && opts.shell_job;
        let elapsed = self.run_logged_in("restore", &args, &log, new_session)?;
        let mut t =
            Timings { action: "restore".into(), total_us: micros(elapsed), ..Timings::default() };
        let stats = dir.join("stats-restore");
        if stats.exists() {
            let file = ImageFile::read(&stats)?;
            if let Some(r) = file.decode_all::<pb::StatsEntry>()?.into_iter().find_map(|s| s.restore)
            {
                t.forking_us = Some(r.forking_time.into());
                t.restore_us = Some(r.restore_time.into());
                t.pages_restored = r.pages_restored;
            }
        }
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        write_timings(&dir.join(TIMINGS_RESTORE_FILE), &t)?;
        Ok(RestoreOutcome { pid, timings: t })
    }
}

/// Writes `t` as JSON to `path` (what [`Criu::dump`] and [`Criu::restore`] do with their
/// own timings; a checkpoint that adds notify and recode times rewrites the file).
pub fn write_timings(path: &Path, t: &Timings) -> Result<(), CriuError> {
    let text = serde_json::to_string_pretty(t).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(io(path))
}

/// CRIU's `task_state` of a live task (`criu/include/pstree.h`).
const TASK_ALIVE: u32 = 0x1;
/// CRIU's `task_state` of a task dumped in a group stop.
const TASK_STOPPED: u32 = 0x3;

/// How long a restore waits for exited, unreaped processes to free the pids it needs (a
/// checkpoint on this machine returns once its source is dead; reaping is its parent's job).
const PID_FREE_WAIT: Duration = Duration::from_secs(10);

/// Waits until no process of this pid namespace holds a pid or thread id that the dump in
/// `dir` restores: CRIU restores the same ids. A live holder is an error at once; an exited
/// one (a zombie) is waited for, up to [`PID_FREE_WAIT`].
fn wait_pids_free(dir: &Path) -> Result<(), CriuError> {
    let path = dir.join("pstree.img");
    if !path.exists() {
        // CRIU itself explains an incomplete dump.
        return Ok(());
    }
    let ids: Vec<u32> = ImageFile::read(&path)?
        .decode_all::<pb::PstreeEntry>()?
        .into_iter()
        .flat_map(|e| std::iter::once(e.pid).chain(e.threads))
        .collect();
    // A tree whose root is pid 1 was dumped with its own pid namespace, and CRIU restores
    // it into a new one: its ids cannot clash with this namespace's.
    if ids.first() == Some(&1) {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let mut exited = None;
        for &id in &ids {
            match crate::proc::task_state(id) {
                None => {}
                Some((state, _)) if crate::proc::is_exited(state) => exited = exited.or(Some(id)),
                Some((_, comm)) => return Err(CriuError::PidTaken { pid: id, comm }),
            }
        }
        let Some(pid) = exited else { return Ok(()) };
        if start.elapsed() >= PID_FREE_WAIT {
            return Err(CriuError::PidNotReaped { pid, waited_ms: micros(start.elapsed()) / 1000 });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}


/// Marks every task CRIU recorded as stopped (`tc.task_state` = STOPPED in its
/// `core-<pid>.img`) as alive, so a restore lets it run instead of stopping it again.
/// Returns how many tasks were changed.
///
/// hcontainer's native notify dumps the tree in a group stop at migration points; the
/// stop is a means of holding the threads there, not part of the program's state.
pub fn mark_stopped_alive(dir: &Path) -> Result<usize, CriuError> {
    let mut changed = 0;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("core-") || !name.ends_with(".img") {
            continue;
        }
        let mut file = ImageFile::read(&entry.path())?;
        let Some(first) = file.decode_all::<pb::CoreEntry>()?.into_iter().next() else { continue };
        let mut core = first;
        let Some(tc) = core.tc.as_mut() else { continue };
        if tc.task_state != TASK_STOPPED {
            continue;
        }
        tc.task_state = TASK_ALIVE;
        tc.stop_signo = None;
        if let hcontainer_criu_image::Content::Entries { entries, .. } = &mut file.content {
            if let Some(e) = entries.first_mut() {
                e.replace(&core);
            }
        }
        file.write(dir).map_err(io(dir))?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::last_error_line;

    fn quoted(log: &str) -> String {
        let dir = std::env::temp_dir().join(format!("hc-criu-log-{}-{}", std::process::id(), log.len()));
        std::fs::write(&dir, log).unwrap();
        let line = last_error_line(&dir);
        std::fs::remove_file(&dir).unwrap();
        line
    }

    #[test]
    fn session_outside_the_pid_namespace_gets_a_hint() {
        let line = quoted(
            "(00.1) sid=0 pgid=0 pid=5085\n(00.12) Error (criu/cr-dump.c:1528): A session leader of 5085(5085) is outside of its pid namespace\n",
        );
        assert!(line.starts_with("(00.12) Error (criu/cr-dump.c:1528): A session leader"), "{line}");
        assert!(line.contains("hint: ") && line.contains("setsid PROG"), "{line}");
    }

    #[test]
    fn first_and_last_errors_are_quoted_without_a_hint() {
        let line = quoted("Error (a.c:1): cause\nError (b.c:2): gave up\nError (c.c:3): Dumping FAILED.\n");
        assert_eq!(line, "Error (b.c:2): gave up\n  first error: Error (a.c:1): cause");
    }
}
