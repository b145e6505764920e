//! `hcontainer migrate`: move a running process to the node whose agent listens at `--to`:
//! checkpoint (with optional pre-copy rounds), recode at the origin or the destination,
//! stream the images, restore there, and end the source only once the destination runs it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use hcontainer_node::{migrate, MigrateOptions, Progress, RecodeAt, RunAs};
use indicatif::{ProgressBar, ProgressStyle};

/// Where recode runs.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Where {
    /// On this machine, before the transfer.
    Origin,
    /// On the destination node.
    Destination,
}

/// How the program runs on the destination.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Form {
    /// As it is when the destination can run it; else native on x86-64, translated elsewhere.
    Auto,
    /// The original x86-64 program.
    Native,
    /// Its translation for the destination's ISA.
    Translated,
}

/// Arguments of `hcontainer migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// Root of the process tree to move.
    #[arg(long)]
    pub pid: u32,
    /// The destination agent: `host:port` (any node the CA certified), or `name@host:port`
    /// (its certificate must name it).
    #[arg(long)]
    pub to: String,
    /// This node's key, certificate and CA certificate (default: $HCONTAINER_NODE_DIR, else
    /// /etc/hcontainer).
    #[arg(long, value_name = "DIR")]
    pub node_dir: Option<PathBuf>,
    /// INSECURE: no TLS, for an agent started with --insecure-plaintext on loopback.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Where recode runs when the destination needs another form of the program.
    #[arg(long, value_enum, default_value = "destination")]
    pub recode_at: Where,
    /// Pre-copy rounds streamed while the process runs, before the final dump.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub pre_dump: u32,
    /// How the program runs on the destination: `auto` (as it is when the destination can
    /// run it, else native on x86-64 and translated elsewhere), `native` or `translated`.
    #[arg(long, value_enum, default_value = "auto")]
    pub run_as: Form,
    /// Local folder for the images (default: the system's temporary folder).
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Keep the local images afterwards.
    #[arg(long)]
    pub keep_images: bool,
    /// Translation store for recode at the origin.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The tree belongs to a shell session outside it (CRIU's --shell-job).
    #[arg(long)]
    pub shell_job: bool,
    /// Move established TCP connections (CRIU's --tcp-established).
    #[arg(long)]
    pub tcp_established: bool,
    /// The CRIU to use (default: $HCONTAINER_CRIU, .cache/criu, PATH).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
    /// Also write the report (timings per phase and per round) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
}

struct Bars {
    quiet: bool,
    stage: Option<ProgressBar>,
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn stage(&mut self, what: &str) {
        if self.quiet {
            return;
        }
        if let Some(s) = self.stage.take() {
            s.finish_and_clear();
        }
        let s = ProgressBar::new_spinner();
        s.enable_steady_tick(Duration::from_millis(120));
        s.set_message(what.to_string());
        self.stage = Some(s);
    }
    fn transfer_start(&mut self, what: &str, total: u64) {
        if self.quiet {
            return;
        }
        let b = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:16} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style.progress_chars("=> "));
        }
        b.set_message(what.to_string());
        self.bar = Some(b);
    }
    fn transfer_advance(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
    fn transfer_end(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let security = super::agent::client_security(args.node_dir.as_deref(), args.insecure_plaintext)?;
    let mut opts = MigrateOptions::new(args.pid, &args.to, security);
    opts.recode_at = match args.recode_at {
        Where::Origin => RecodeAt::Origin,
        Where::Destination => RecodeAt::Destination,
    };
    opts.pre_dumps = args.pre_dump;
    opts.run_as = match args.run_as {
        Form::Auto => RunAs::Auto,
        Form::Native => RunAs::Native,
        Form::Translated => RunAs::Translated,
    };
    if let Some(w) = args.work {
        opts.work = w;
    }
    opts.keep_images = args.keep_images;
    opts.store = args.store;
    opts.shell_job = args.shell_job;
    opts.tcp_established = args.tcp_established;
    opts.criu = args.criu;
    let mut bars = Bars { quiet: args.quiet, stage: None, bar: None };
    let result = migrate(&opts, &mut bars);
    if let Some(s) = bars.stage.take() {
        s.finish_and_clear();
    }
    let report = result.map_err(|e| anyhow::anyhow!("{e}\n(pid {} keeps running here)", args.pid))?;
    print!("{}", report.to_text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
