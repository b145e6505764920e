//! `hcontainer restore`: restore a process tree dumped by `hcontainer checkpoint`.
//!
//! Images of either kind restore as running processes: native images written by
//! `checkpoint --to` already record their stopped tasks as alive; translated threads dumped
//! parked at a migration point are sent `RESUME_SIGNAL` once CRIU has restored them.

use std::path::PathBuf;
use std::process::ExitCode;

use hcontainer_recode::notify;
use hcontainer_criu::{Criu, RestoreOptions, DEFAULT_NETWORK_LOCK, TIMINGS_RESTORE_FILE};

/// Arguments of `hcontainer restore`.
#[derive(clap::Args)]
pub struct Args {
    /// Images directory written by `hcontainer checkpoint`.
    #[arg(short = 'D', long = "images-dir")]
    pub dir: PathBuf,
    /// Return once the tree runs instead of waiting for it to exit.
    #[arg(short, long)]
    pub detach: bool,
    /// Restore into the calling shell's session (CRIU's --shell-job).
    #[arg(long)]
    pub shell_job: bool,
    /// CRIU's --network-lock method (as for the checkpoint).
    #[arg(long, default_value = DEFAULT_NETWORK_LOCK)]
    pub network_lock: String,
    /// Print nothing on success (the timings are still written into the directory).
    #[arg(short, long)]
    pub quiet: bool,
    /// The CRIU to use (default: $HCONTAINER_CRIU, .cache/criu, PATH).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let criu = Criu::locate(args.criu.as_deref())?;
    let mut opts = RestoreOptions::new(&args.dir, args.detach);
    opts.shell_job = args.shell_job;
    opts.network_lock = args.network_lock;
    let outcome = if args.detach {
        let outcome = criu.restore(&opts)?;
        resume_if_translated(outcome.pid);
        outcome
    } else {
        // CRIU waits for the tree to end: resume it from here once its pid file appears.
        let dir = std::fs::canonicalize(&args.dir).map_err(|e| anyhow::anyhow!("{}: {e}", args.dir.display()))?;
        let pidfile = dir.join("restore.pid");
        if pidfile.exists() {
            std::fs::remove_file(&pidfile).map_err(|e| anyhow::anyhow!("{}: {e}", pidfile.display()))?;
        }
        let waiter = std::thread::spawn(move || criu.restore(&opts));
        while !waiter.is_finished() {
            let pid = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                resume_if_translated(pid);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        waiter.join().map_err(|_| anyhow::anyhow!("the restore thread panicked"))??
    };
    if !args.quiet {
        print!("{}", outcome.timings.to_text());
        let how = if args.detach { "running as pid" } else { "ran as pid" };
        println!(
            "restored from {}, {how} {} (timings: {})",
            args.dir.display(),
            outcome.pid,
            args.dir.join(TIMINGS_RESTORE_FILE).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends `RESUME_SIGNAL` to every thread of the tree rooted at `pid` when it runs a
/// translated executable (its threads may have been dumped parked), and waits until every
/// thread has taken it: the tree then runs, and can be checkpointed again at once.
fn resume_if_translated(pid: u32) {
    if pid == 0 {
        return;
    }
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    if let Ok(Some(_)) = notify::read_meta(&exe) {
        if let Ok(pids) = notify::tree(pid) {
            notify::resume_translated(&pids);
            let still = notify::wait_resumed(&pids, RESUME_WAIT);
            if !still.is_empty() {
                eprintln!(
                    "hcontainer: warning: threads {still:?} (pid, tid) of the restored tree were still parked {} ms after the resume signal",
                    RESUME_WAIT.as_millis()
                );
            }
        }
    }
}

/// How long a restore waits for restored translated threads to take their resume signal.
const RESUME_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
