//! One migration hop, source side: connect to the destination agent, optional pre-copy rounds
//! streamed while the process runs, the final dump (source left stopped), recode at the
//! origin or the destination, transfer, remote restore, commit — and only then the end of
//! the source. Any failure before the commit resumes the source and names the cause.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcontainer_criu::Criu;
use serde::Serialize;

use crate::client::{self, Client, ClientError, ClientSecurity};
use crate::delta::{self, DeltaError};
use crate::dump::{self, DumpError, Round, RoundKind};
use crate::recode::{self, RecodeError, RunAs};
use hcontainer_recode::notify::{self, NativeOptions};
use hcontainer_recode::store::Store;
use hcontainer_recode::{Kind, Target};

/// Where recode runs when the destination needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecodeAt {
    /// On the source machine, before the transfer.
    Origin,
    /// On the destination, by its agent.
    Destination,
}

/// What to migrate and how.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// Root of the process tree.
    pub pid: u32,
    /// Destination agent (`host:port`, or `name@host:port` to require its certificate to
    /// name it).
    pub to: String,
    /// How this side and the agent authenticate.
    pub security: ClientSecurity,
    /// Where recode runs.
    pub recode_at: RecodeAt,
    /// Pre-copy rounds before the final dump.
    pub pre_dumps: u32,
    /// How the program should run on the destination.
    pub run_as: RunAs,
    /// Local folder for the images (a fresh sub-folder per migration).
    pub work: PathBuf,
    /// The CRIU to use.
    pub criu: Option<PathBuf>,
    /// Translation store for recode at the origin.
    pub store: Option<PathBuf>,
    /// CRIU's `--shell-job`.
    pub shell_job: bool,
    /// CRIU's `--tcp-established`.
    pub tcp_established: bool,
    /// Keep the local images afterwards.
    pub keep_images: bool,
}

impl MigrateOptions {
    /// Options with defaults: recode at the destination, no pre-copy, images under the
    /// system's temporary folder.
    pub fn new(pid: u32, to: impl Into<String>, security: ClientSecurity) -> MigrateOptions {
        MigrateOptions {
            pid,
            to: to.into(),
            security,
            recode_at: RecodeAt::Destination,
            pre_dumps: 0,
            run_as: RunAs::Auto,
            work: std::env::temp_dir().join("hcontainer-migrate"),
            criu: None,
            store: None,
            shell_job: false,
            tcp_established: false,
            keep_images: false,
        }
    }
}

/// Why a migration failed. Unless said otherwise, the source still runs.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The agent could not be reached, refused, or failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No usable CRIU.
    #[error(transparent)]
    Criu(#[from] hcontainer_criu::LocateError),
    /// A dump failed.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// An incremental image could not be made.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// Recode at the origin failed.
    #[error(transparent)]
    Recode(#[from] RecodeError),
    /// Notify failed (the process runs on).
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    /// The store objects the destination needs could not be listed.
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectError),
    /// The dumped images could not be fixed up.
    #[error(transparent)]
    Images(#[from] hcontainer_criu::CriuError),
    /// Local file system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io { path: path.to_path_buf(), source }
}

/// Progress of a migration, for a user interface.
pub trait Progress {
    /// A new stage begins.
    fn stage(&mut self, _what: &str) {}
    /// A transfer of `total` file bytes begins.
    fn transfer_start(&mut self, _what: &str, _total: u64) {}
    /// `bytes` more were sent.
    fn transfer_advance(&mut self, _bytes: u64) {}
    /// The transfer ended.
    fn transfer_end(&mut self) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// One dump and its transfer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundReport {
    /// Name of the images directory on the destination.
    pub name: String,
    /// Wall clock of the dump.
    pub dump_us: u64,
    /// Time the process was frozen (CRIU's statistics).
    pub frozen_us: Option<u64>,
    /// Time to make the incremental image by content (0 with dirty tracking).
    pub delta_us: u64,
    /// Page bytes CRIU wrote locally.
    pub dumped_page_bytes: u64,
    /// Page bytes sent (after the incremental step).
    pub sent_page_bytes: u64,
    /// All file bytes sent.
    pub sent_bytes: u64,
    /// Bytes on the wire (compressed, framed).
    pub wire_bytes: u64,
    /// Transfer time.
    pub transfer_us: u64,
}

/// Time per phase of a hop, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HopTimings {
    /// Bringing threads to migration points (0 for a native source).
    pub notify_us: u64,
    /// The final dump.
    pub dump_us: u64,
    /// Recode, at whichever end ran it (0 when none ran).
    pub recode_us: u64,
    /// Transfer of the final images, until the agent has read them all.
    pub transfer_us: u64,
    /// Restore on the destination (CRIU's run as the agent timed it).
    pub restore_us: u64,
    /// From the start of the final dump (the last freeze) to the destination's report that
    /// the process runs; besides the phases above it holds the final dump's incremental step
    /// (`final_round.delta_us`) and the agent's checks after the restore.
    pub downtime_us: u64,
    /// Pre-copy rounds, dumps and transfers, while the process ran.
    pub pre_copy_us: u64,
}

/// What a migration did.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationReport {
    /// Pid on the source.
    pub source_pid: u32,
    /// Pid on the destination.
    pub dest_pid: u32,
    /// Destination agent address.
    pub dest_addr: String,
    /// Destination host name.
    pub dest_host: String,
    /// Destination ISA.
    pub dest_isa: String,
    /// The destination's node name, as its certificate says (`None` in clear).
    pub dest_name: Option<String>,
    /// The TLS cipher suite of the transfer (`None` in clear).
    pub cipher: Option<String>,
    /// How the process runs there: `native` or `translated`.
    pub dest_mode: String,
    /// What the dump held (`native`, `translated-<isa>`).
    pub image: String,
    /// Where recode ran, if it did.
    pub recoded_at: Option<RecodeAt>,
    /// What it recoded to (`native`, or the ISA of the translation).
    pub recoded_to: Option<String>,
    /// Whether the pre-copy rounds used CRIU's dirty-memory tracking.
    pub dirty_tracking: bool,
    /// Pre-copy rounds.
    pub pre_rounds: Vec<RoundReport>,
    /// The final round.
    pub final_round: RoundReport,
    /// Phase times.
    pub timings: HopTimings,
    /// Bytes of translation store objects (launcher, units) the destination lacked and got
    /// before the first dump.
    pub objects_bytes: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// How the source is held after the final dump.
enum Held {
    /// Still running (before the final dump).
    Running,
    /// Left stopped by CRIU (`--leave-stopped`).
    Stopped,
    /// Held at migration points by notify.
    Notified(notify::Kind, Vec<u32>),
}

/// The source process: let go on drop unless the hop committed, ended by [`Source::end`].
struct Source {
    pid: u32,
    held: Held,
}

impl Source {
    fn end(mut self) {
        match std::mem::replace(&mut self.held, Held::Running) {
            Held::Running => {}
            Held::Stopped => signal(self.pid, rustix::process::Signal::KILL),
            Held::Notified(_, pids) => {
                notify::kill(&pids, Duration::from_secs(5));
            }
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        match &self.held {
            Held::Running => {}
            Held::Stopped => signal(self.pid, rustix::process::Signal::CONT),
            Held::Notified(kind, pids) => notify::resume(*kind, pids),
        }
    }
}

/// What the live process `pid` runs: the native program or a translation (its executable
/// carries hcontainer's metadata).
fn live_kind(pid: u32) -> Result<Kind, MigrateError> {
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    Ok(match notify::read_meta(&exe)? {
        Some(meta) => Kind::Translated(meta.header.host_isa),
        None => Kind::Native,
    })
}

/// Removes the local images folder on drop unless told to keep it.
struct Session {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn upload(
    client: &mut Client,
    dirs: &[(PathBuf, String)],
    what: &str,
    progress: &mut dyn Progress,
    report: &mut RoundReport,
) -> Result<(), MigrateError> {
    let total = client::total_bytes(dirs);
    progress.transfer_start(what, total);
    let start = Instant::now();
    let sent = client.upload(dirs, &mut |n| progress.transfer_advance(n));
    progress.transfer_end();
    let sent = sent?;
    report.transfer_us += micros(start.elapsed());
    report.sent_bytes += sent.raw;
    report.wire_bytes += sent.wire;
    for (dir, _) in dirs {
        report.sent_page_bytes += dump::dir_sizes(dir)?.0;
    }
    Ok(())
}

/// Migrates `opts.pid` to the agent at `opts.to`. On success the source has been killed and
/// the process runs on the destination; on failure the source runs as before.
pub fn migrate(opts: &MigrateOptions, progress: &mut dyn Progress) -> Result<MigrationReport, MigrateError> {
    progress.stage(&format!("connecting to {}", opts.to));
    let mut client = Client::connect(&opts.to, &opts.security)?;
    let criu = Criu::locate(opts.criu.as_deref())?;
    if !Path::new(&format!("/proc/{}", opts.pid)).exists() {
        return Err(DumpError::NoSuchProcess(opts.pid).into());
    }
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    client.begin(&format!("pid {} from {host}", opts.pid))?;
    std::fs::create_dir_all(&opts.work).map_err(io(&opts.work))?;
    let session_dir = opts.work.join(format!("{}-{:08x}", opts.pid, rand::random::<u32>()));
    std::fs::create_dir(&session_dir).map_err(io(&session_dir))?;
    let session = Session { dir: std::fs::canonicalize(&session_dir).map_err(io(&session_dir))?, keep: opts.keep_images };
    let dir = session.dir.clone();

    // A dynamically linked program that will run translated there needs its launcher and the
    // units of the files it maps in the destination's store: what it lacks travels now,
    // before any dump, and the images are recoded there (its launcher is at its own path).
    let mut recode_at = opts.recode_at;
    let mut objects_bytes = 0u64;
    let planned = recode::plan(&live_kind(opts.pid)?, &client.isa, opts.run_as)?;
    if let Some(Target::Translated(isa)) = planned {
        if crate::objects::is_dynamic(opts.pid)? {
            let store = Store::open(opts.store.as_deref()).map_err(RecodeError::from)?;
            let needed = crate::objects::needed(opts.pid, &store, isa.name())?;
            let names: Vec<String> = needed.iter().map(|(n, _)| n.clone()).collect();
            let missing = client.have(&names)?;
            let sending: Vec<&(String, PathBuf)> = needed.iter().filter(|(n, _)| missing.contains(n)).collect();
            let total: u64 = sending.iter().filter_map(|(_, p)| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
            progress.stage(&format!("{} of {} store objects to {}", sending.len(), needed.len(), client.addr()));
            progress.transfer_start("store objects", total);
            for (name, path) in sending {
                objects_bytes += client.store_file(name, path, &mut |n| progress.transfer_advance(n))?;
            }
            progress.transfer_end();
            recode_at = RecodeAt::Destination;
        }
    }

    let tracking = opts.pre_dumps > 0 && dump::dirty_tracking(&criu);
    let round = |kind: RoundKind, path: PathBuf, prev: Option<String>| {
        let mut r = Round::new(opts.pid, path, kind);
        r.prev = prev;
        r.track_mem = tracking;
        r.shell_job = opts.shell_job;
        r.tcp_established = opts.tcp_established;
        r
    };

    // Pre-copy rounds while the process runs.
    let pre_start = Instant::now();
    let mut pre_rounds = Vec::new();
    let mut prev_full: Option<PathBuf> = None;
    for i in 1..=opts.pre_dumps {
        let name = format!("pre-{i}");
        progress.stage(&format!("pre-copy round {i} of {}", opts.pre_dumps));
        let prev_name = (i > 1).then(|| format!("../pre-{}", i - 1));
        let mut rep = RoundReport { name: name.clone(), ..RoundReport::default() };
        let sent_dir = if tracking {
            let d = dir.join(&name);
            let s = dump::run_round(&criu, &round(RoundKind::PreDump, d.clone(), prev_name))?;
            (rep.dump_us, rep.frozen_us, rep.dumped_page_bytes) = (micros(s.elapsed), s.frozen_us, s.page_bytes);
            d
        } else {
            // The first round is sent whole under its own name; later ones as deltas.
            let full = if i == 1 { dir.join(&name) } else { dir.join(format!("{name}.full")) };
            let s = dump::run_round(&criu, &round(RoundKind::RunningDump, full.clone(), None))?;
            (rep.dump_us, rep.frozen_us, rep.dumped_page_bytes) = (micros(s.elapsed), s.frozen_us, s.page_bytes);
            let sent = match (&prev_full, &prev_name) {
                (Some(prev), Some(link)) => {
                    let t = Instant::now();
                    let d = dir.join(&name);
                    delta::make_delta(prev, &full, &d, link)?;
                    rep.delta_us = micros(t.elapsed());
                    d
                }
                _ => full.clone(),
            };
            prev_full = Some(full);
            sent
        };
        upload(&mut client, &[(sent_dir, name)], &format!("pre-copy {i}"), progress, &mut rep)?;
        // The upload ends with its last bytes in this socket's buffers. A round trip behind
        // them ends when the agent has read them all, so the next round, and the final
        // one's downtime, never wait for this one's tail.
        let t = Instant::now();
        client.status()?;
        rep.transfer_us += micros(t.elapsed());
        pre_rounds.push(rep);
    }
    let pre_copy_us = micros(pre_start.elapsed());

    // The destination needs another form of the program: every thread must first be at a
    // migration point (notify), and stays held there through the final dump.
    let live = live_kind(opts.pid)?;
    let live_target = recode::plan(&live, &client.isa, opts.run_as)?;

    // Final dump: from here the source is held until the hop commits or fails.
    progress.stage("final dump");
    let last_pre = (opts.pre_dumps > 0).then(|| format!("../pre-{}", opts.pre_dumps));
    let mut final_round = RoundReport { name: "final".into(), ..RoundReport::default() };
    let freeze = Instant::now();
    let final_dir = dir.join("final");
    let mut notify_us = 0;
    let mut source = Source { pid: opts.pid, held: Held::Running };
    if let Some(target) = live_target {
        progress.stage(&format!("notify pid {}", opts.pid));
        let store = Store::open(opts.store.as_deref()).map_err(RecodeError::from)?;
        let prefer = match target {
            Target::Translated(isa) => Some(isa.name()),
            Target::Native => None,
        };
        let procs = notify::classify_tree(opts.pid, &store, prefer)?;
        let kind = procs.first().map(|p| p.kind).unwrap_or(notify::Kind::Native);
        let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        let t = Instant::now();
        notify::notify(&procs, NativeOptions::default())?;
        notify_us = micros(t.elapsed());
        source.held = Held::Notified(kind, pids);
        progress.stage("final dump");
    }
    let notified_native = matches!(source.held, Held::Notified(notify::Kind::Native, _));
    let final_kind = if live_target.is_some() { RoundKind::RunningDump } else { RoundKind::Final };
    let dump_dir = if tracking || opts.pre_dumps == 0 { final_dir.clone() } else { dir.join("final.full") };
    let prev = if tracking { last_pre.clone() } else { None };
    let s = dump::run_round(&criu, &round(final_kind, dump_dir.clone(), prev))?;
    if final_kind == RoundKind::Final {
        source.held = Held::Stopped;
    }
    (final_round.dump_us, final_round.frozen_us, final_round.dumped_page_bytes) =
        (micros(s.elapsed), s.frozen_us, s.page_bytes);
    if notified_native {
        // The group stop that held the threads is not part of the program's state.
        hcontainer_criu::mark_stopped_alive(&dump_dir)?;
    }
    if dump_dir != final_dir {
        let t = Instant::now();
        if let (Some(prev), Some(link)) = (&prev_full, &last_pre) {
            delta::make_delta(prev, &dump_dir, &final_dir, link)?;
        }
        final_round.delta_us = micros(t.elapsed());
    }

    // Recode where asked.
    let kind = recode::kind(&final_dir)?;
    let target = recode::plan(&kind, &client.isa, opts.run_as)?;
    let mut recode_us = 0;
    let mut recoded_at = None;
    let mut recoded_to = None;
    let mut dirs = vec![(final_dir.clone(), "final".to_string())];
    let mut restore_name = "final";
    let mut run_as = opts.run_as;
    if let (Some(target), RecodeAt::Origin) = (target, recode_at) {
        progress.stage(&format!("recode to {target} for {}", client.isa));
        let t = Instant::now();
        let out = dir.join("final.recoded");
        recode::run(&final_dir, target, opts.store.as_deref(), &out)?;
        recode_us = micros(t.elapsed());
        recoded_at = Some(RecodeAt::Origin);
        recoded_to = Some(target.to_string());
        dirs.push((out, "final.recoded".into()));
        restore_name = "final.recoded";
        // The recoded images run on the destination as they are.
        run_as = RunAs::Auto;
    }
    let sending = Instant::now();
    upload(&mut client, &dirs, "final images", progress, &mut final_round)?;

    progress.stage(&format!("restore on {}", client.addr()));
    let restored = client.restore(restore_name, run_as, opts.shell_job, opts.tcp_established)?;
    let downtime_us = micros(freeze.elapsed());
    if restored.times.total_us > 0 {
        // The upload ends when its last bytes are in this socket's buffers, before they
        // reach the agent, which reads them all before it takes the restore: all the time
        // from the upload's start to the reply but the agent's own work is the transfer.
        final_round.transfer_us = micros(sending.elapsed()).saturating_sub(restored.times.total_us);
    }
    if let Some(to) = &restored.recoded_to {
        recode_us = restored.times.recode_us;
        recoded_at = Some(RecodeAt::Destination);
        recoded_to = Some(to.clone());
    }
    client.commit()?;
    source.end();
    drop(session);

    Ok(MigrationReport {
        source_pid: opts.pid,
        dest_pid: restored.pid,
        dest_addr: opts.to.clone(),
        dest_host: client.host.clone(),
        dest_name: client.peer.as_ref().map(|p| p.name.clone()),
        cipher: client.cipher.clone(),
        dest_isa: restored.isa,
        dest_mode: restored.mode,
        image: recode::kind_name(&kind),
        recoded_at,
        recoded_to,
        dirty_tracking: tracking,
        pre_rounds,
        timings: HopTimings {
            notify_us,
            dump_us: final_round.dump_us,
            recode_us,
            transfer_us: final_round.transfer_us,
            restore_us: restored.times.restore_us,
            downtime_us,
            pre_copy_us,
        },
        final_round,
        objects_bytes,
    })
}

impl MigrationReport {
    /// The timing table, one line per phase, then the rounds.
    pub fn to_text(&self) -> String {
        let ms = |us: u64| format!("{:10.1} ms", us as f64 / 1000.0);
        let t = &self.timings;
        let mut s = format!(
            "pid {} → {} ({}, {} {}) as pid {}\n",
            self.source_pid, self.dest_addr, self.dest_host, self.dest_isa, self.dest_mode, self.dest_pid
        );
        match (&self.dest_name, &self.cipher) {
            (Some(name), Some(cipher)) => s.push_str(&format!("  TLS 1.3 {cipher}, agent certified as {name}\n")),
            _ => s.push_str("  in clear, no authentication (--insecure-plaintext)\n"),
        }
        if self.objects_bytes > 0 {
            s.push_str(&format!("  store objects the destination lacked: {:.1} MB, sent before the first dump\n", self.objects_bytes as f64 / 1e6));
        }
        s.push_str(&format!("  {:<10}{}\n", "notify", ms(t.notify_us)));
        s.push_str(&format!("  {:<10}{}\n", "dump", ms(t.dump_us)));
        let at = match self.recoded_at {
            Some(RecodeAt::Origin) => " (origin)",
            Some(RecodeAt::Destination) => " (destination)",
            None => " (none)",
        };
        s.push_str(&format!("  {:<10}{}{at}\n", "recode", ms(t.recode_us)));
        s.push_str(&format!("  {:<10}{}\n", "transfer", ms(t.transfer_us)));
        s.push_str(&format!("  {:<10}{}\n", "restore", ms(t.restore_us)));
        s.push_str(&format!("  {:<10}{}\n", "downtime", ms(t.downtime_us)));
        if !self.pre_rounds.is_empty() {
            s.push_str(&format!(
                "  pre-copy {} rounds in {} ({}):\n",
                self.pre_rounds.len(),
                ms(t.pre_copy_us).trim(),
                if self.dirty_tracking { "CRIU dirty tracking" } else { "incremental by page content" }
            ));
        }
        for r in self.pre_rounds.iter().chain(std::iter::once(&self.final_round)) {
            let mb = |b: u64| b as f64 / 1e6;
            let rate = if r.transfer_us > 0 { r.sent_bytes as f64 / r.transfer_us as f64 } else { 0.0 };
            s.push_str(&format!(
                "    {:<8} dump {:>9.1} ms, delta {:>7.1} ms, pages {:>8.2} MB dumped, {:>8.2} MB sent; {:>8.2} MB on the wire in {:>8.1} ms ({:.1} MB/s)\n",
                r.name,
                r.dump_us as f64 / 1000.0,
                r.delta_us as f64 / 1000.0,
                mb(r.dumped_page_bytes),
                mb(r.sent_page_bytes),
                mb(r.wire_bytes),
                r.transfer_us as f64 / 1000.0,
                rate
            ));
        }
        s
    }
}
