//! `hcontainer restore`: restore a process tree dumped by `hcontainer checkpoint`.

use std::path::PathBuf;
use std::process::ExitCode;

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
    let outcome = criu.restore(&opts)?;
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
