//! `hcontainer checkpoint`: dump a running process tree with CRIU.

use std::path::PathBuf;
use std::process::ExitCode;

use hcontainer_criu::{Criu, DumpOptions, DEFAULT_NETWORK_LOCK, TIMINGS_DUMP_FILE};

/// Arguments of `hcontainer checkpoint`.
#[derive(clap::Args)]
pub struct Args {
    /// Root of the process tree to dump.
    #[arg(long)]
    pub pid: u32,
    /// Images directory (created if missing, must be empty).
    #[arg(short = 'D', long = "images-dir")]
    pub dir: PathBuf,
    /// Keep the tree running after the dump.
    #[arg(long)]
    pub leave_running: bool,
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

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let criu = Criu::locate(args.criu.as_deref())?;
    let mut opts = DumpOptions::new(args.pid, &args.dir);
    opts.leave_running = args.leave_running;
    opts.shell_job = args.shell_job;
    opts.network_lock = args.network_lock;
    let timings = criu.dump(&opts)?;
    if !args.quiet {
        print!("{}", timings.to_text());
        println!(
            "checkpoint of pid {} in {} (timings: {})",
            args.pid,
            args.dir.display(),
            args.dir.join(TIMINGS_DUMP_FILE).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
