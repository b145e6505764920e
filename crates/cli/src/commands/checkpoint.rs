//! `hcontainer checkpoint`: dump a running process tree with CRIU.
//!
//! With `--to`, the dump is a migration checkpoint: every thread is first brought to a
//! migration point (`hcontainer_recode::notify`), CRIU dumps the tree (ending it, so that
//! established TCP connections stay frozen behind the network lock; with `--leave-running`
//! it keeps running), and the images are recoded for the target in a temporary sibling
//! directory that is renamed into `-D DIR` only when everything succeeded. On a failure
//! before the dump the source runs on; on one after a dump that ended it, the source is
//! restored from that dump; `-D DIR` receives nothing either way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hcontainer_criu::{Criu, DumpOptions, RestoreOptions, Timings, DEFAULT_NETWORK_LOCK, TIMINGS_DUMP_FILE};
use hcontainer_recode::notify::{self, Kind, NativeOptions, Notified, Process};
use hcontainer_recode::store::Store;
use hcontainer_recode::{HostIsa, Target};

/// Where the checkpointed process will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    /// The original binary, natively on x86-64.
    Native,
    /// The translation for x86-64 hosts.
    #[value(name = "x86_64")]
    X86_64,
    /// The translation for arm64 hosts.
    Aarch64,
    /// The translation for riscv64 hosts.
    Riscv64,
}

impl To {
    fn target(self) -> Target {
        match self {
            To::Native => Target::Native,
            To::X86_64 => Target::Translated(HostIsa::X86_64),
            To::Aarch64 => Target::Translated(HostIsa::Aarch64),
            To::Riscv64 => Target::Translated(HostIsa::Riscv64),
        }
    }
}

/// Arguments of `hcontainer checkpoint`.
#[derive(clap::Args)]
pub struct Args {
    /// Root of the process tree to dump.
    #[arg(long)]
    pub pid: u32,
    /// Images directory (created if missing, must be empty).
    #[arg(short = 'D', long = "images-dir")]
    pub dir: PathBuf,
    /// Bring every thread to a migration point first and write images for this target
    /// (the original binary natively, or its translation for a host ISA).
    #[arg(long, value_enum)]
    pub to: Option<To>,
    /// Keep the tree running after the dump.
    #[arg(long)]
    pub leave_running: bool,
    /// Translation store (default: $HCONTAINER_STORE, ~/.cache/hcontainer/store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Single-steps allowed per native thread to reach a migration point.
    #[arg(long, default_value_t = 100_000)]
    pub notify_steps: u64,
    /// Time allowed for the notify (all threads), in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub notify_timeout_ms: u64,
    /// The tree was started from a shell and belongs to its session (CRIU's --shell-job).
    #[arg(long)]
    pub shell_job: bool,
    /// CRIU's --network-lock method (iptables needs the iptables program).
    #[arg(long, default_value = DEFAULT_NETWORK_LOCK)]
    pub network_lock: String,
    /// Print nothing on success (the timings are still written into the directory).
    #[arg(short, long)]
    pub quiet: bool,
    /// The CRIU to use (default: $HCONTAINER_CRIU, .cache/criu, PATH).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let criu = Criu::locate(args.criu.as_deref())?;
    let Some(to) = args.to else {
        let mut opts = DumpOptions::new(args.pid, &args.dir);
        opts.leave_running = args.leave_running;
        opts.shell_job = args.shell_job;
        opts.network_lock = args.network_lock.clone();
        let timings = criu.dump(&opts)?;
        report(&args, &timings, None);
        return Ok(ExitCode::SUCCESS);
    };
    let (timings, notified) = migration_checkpoint(&criu, &args, to)?;
    report(&args, &timings, Some(&notified));
    Ok(ExitCode::SUCCESS)
}

fn report(args: &Args, timings: &Timings, notified: Option<&Notified>) {
    if args.quiet {
        return;
    }
    print!("{}", timings.to_text());
    if let Some(n) = notified {
        let stepped = n.threads.iter().filter(|t| t.steps > 0).count();
        let in_syscall = n.threads.iter().filter(|t| t.in_syscall).count();
        let steps: u64 = n.threads.iter().map(|t| t.steps).sum();
        println!(
            "notify: {} threads at migration points ({in_syscall} in a system call, {stepped} single-stepped, {steps} steps)",
            n.threads.len()
        );
    }
    println!(
        "checkpoint of pid {} in {} (timings: {})",
        args.pid,
        args.dir.display(),
        args.dir.join(TIMINGS_DUMP_FILE).display()
    );
}

/// A temporary directory beside the final one, removed on drop unless kept.
struct Scratch {
    path: PathBuf,
    keep: std::cell::Cell<bool>,
}

impl Scratch {
    /// Keeps the directory (images that are the only copy of a process) and returns it.
    fn keep(&self) -> PathBuf {
        self.keep.set(true);
        self.path.clone()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep.get() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn scratch_for(dir: &Path) -> anyhow::Result<Scratch> {
    if dir.exists() {
        let mut it = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if it.next().is_some() {
            bail!("{} is not empty; give an empty or new directory", dir.display());
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "images".into());
    let path = parent.join(format!(".{name}.hcontainer-tmp-{}", std::process::id()));
    if path.exists() {
        std::fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Scratch { path, keep: std::cell::Cell::new(false) })
}

/// The kind and ISA an images directory is for, as a target.
fn source_target(procs: &[Process]) -> Target {
    match procs.first() {
        Some(p) if p.kind == Kind::Translated => Target::Translated(p.meta.header.host_isa),
        _ => Target::Native,
    }
}

fn migration_checkpoint(criu: &Criu, args: &Args, to: To) -> anyhow::Result<(Timings, Notified)> {
    let store = Store::open(args.store.as_deref())?;
    let target = to.target();
    let prefer = match target {
        Target::Translated(isa) => Some(isa.name()),
        Target::Native => None,
    };
    let procs = notify::classify_tree(args.pid, &store, prefer)?;
    let kind = procs.first().map(|p| p.kind).unwrap_or(Kind::Native);
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let scratch = scratch_for(&args.dir)?;
    let threads: u64 = pids.iter().map(|&p| notify::threads(p).map(|t| t.len() as u64).unwrap_or(0)).sum();
    let rss_kib: u64 = pids.iter().map(|&p| notify::rss_kib(p)).sum();

    let start = Instant::now();
    let opts = NativeOptions { max_steps: args.notify_steps, timeout: Duration::from_millis(args.notify_timeout_ms) };
    let notified = notify::notify(&procs, opts).with_context(|| format!("notify of pid {}", args.pid))?;
    let notify_us = micros(start.elapsed());

    // From here on the tree is held at migration points. Unless it is to keep running, CRIU
    // ends it itself: established TCP connections then stay in repair mode behind the
    // network lock until the restore, where a dump that leaves the tree running and a kill
    // afterwards would reset them. A failure before the dump is complete lets the tree run
    // on; a failure after a dump that ended it restores it from that dump.
    let dump_dir = scratch.path.join("dump");
    let mut opts = DumpOptions::new(args.pid, &dump_dir);
    opts.leave_running = args.leave_running;
    opts.shell_job = args.shell_job;
    opts.network_lock = args.network_lock.clone();
    let mut timings = match criu.dump(&opts) {
        Ok(t) => t,
        Err(e) => {
            notify::resume(kind, &pids);
            return Err(anyhow::Error::new(e)
                .context(format!("checkpoint of pid {} abandoned; the process runs on", args.pid)));
        }
    };
    let after_dump = (|| -> anyhow::Result<PathBuf> {
        if kind == Kind::Native {
            hcontainer_criu::mark_stopped_alive(&dump_dir)?;
        }
        let (recode_us, final_src) = recode_dump(&dump_dir, &store, &scratch, target, source_target(&procs))?;
        timings.recode_us = recode_us;
        timings.notify_us = Some(notify_us);
        timings.threads = Some(threads);
        timings.rss_kib = Some(rss_kib);
        hcontainer_criu::write_timings(&final_src.join(TIMINGS_DUMP_FILE), &timings)?;
        if args.dir.exists() {
            std::fs::remove_dir(&args.dir).with_context(|| format!("replacing {}", args.dir.display()))?;
        }
        std::fs::rename(&final_src, &args.dir)
            .with_context(|| format!("moving {} to {}", final_src.display(), args.dir.display()))?;
        Ok(final_src)
    })();
    if let Err(e) = after_dump {
        if args.leave_running {
            notify::resume(kind, &pids);
            return Err(e.context(format!("checkpoint of pid {} abandoned; the process runs on", args.pid)));
        }
        // The dump ended the tree: bring it back from its own images (the restore waits for
        // its pids to be free: CRIU restores the same pids).
        notify::kill(&pids, Duration::from_secs(10));
        let restored = roll_back(criu, args, &dump_dir, kind);
        return Err(match restored {
            Ok(pid) => e.context(format!(
                "checkpoint of pid {} abandoned; the process was restored from its dump and runs on as pid {pid}",
                args.pid
            )),
            Err(r) => e.context(format!(
                "checkpoint of pid {} failed after CRIU ended it, and restoring it from {} failed too ({r:#}); \
                 its images are kept there",
                args.pid,
                scratch.keep().display()
            )),
        });
    }
    drop(scratch);
    if args.leave_running {
        notify::resume(kind, &pids);
    } else if !notify::kill(&pids, Duration::from_secs(10)) {
        eprintln!("hcontainer: warning: pid {} was sent SIGKILL but has not ended yet", args.pid);
    }
    Ok((timings, notified))
}

/// Restores the tree a killing dump ended from that dump (detached), resuming parked
/// translated threads; returns the restored root pid.
fn roll_back(criu: &Criu, args: &Args, dump_dir: &Path, kind: Kind) -> anyhow::Result<u32> {
    let mut opts = RestoreOptions::new(dump_dir, true);
    opts.shell_job = args.shell_job;
    opts.network_lock = args.network_lock.clone();
    let outcome = criu.restore(&opts)?;
    if kind == Kind::Translated {
        let pids = notify::tree(outcome.pid).unwrap_or_else(|_| vec![outcome.pid]);
        notify::resume_translated(&pids);
    }
    Ok(outcome.pid)
}

/// When the target differs from the source, recodes the dump into `scratch/image` with the
/// dump moved inside it as its CRIU parent (`native/` or `source/`). Returns the recode time
/// and the directory to publish.
fn recode_dump(
    dump_dir: &Path,
    store: &Store,
    scratch: &Scratch,
    target: Target,
    source: Target,
) -> anyhow::Result<(Option<u64>, PathBuf)> {
    if target == source {
        return Ok((None, dump_dir.to_path_buf()));
    }
    let out = scratch.path.join("image");
    let start = Instant::now();
    hcontainer_recode::recode(dump_dir, target, store, &out)
        .with_context(|| format!("recoding the {source} images for {target}"))?;
    let recode_us = Some(micros(start.elapsed()));
    // The recoded images name the dump as their parent (its pages stay there): keep it
    // inside the published directory, linked by a relative path that survives the rename.
    let inner = out.join(source.name());
    std::fs::rename(dump_dir, &inner).with_context(|| format!("moving the dump into {}", out.display()))?;
    let parent = out.join("parent");
    if parent.symlink_metadata().is_ok() {
        std::fs::remove_file(&parent).with_context(|| format!("replacing {}", parent.display()))?;
        std::os::unix::fs::symlink(source.name(), &parent).with_context(|| format!("linking {}", parent.display()))?;
    }
    Ok((recode_us, out))
}
