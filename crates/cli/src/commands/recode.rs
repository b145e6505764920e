//! `hcontainer recode`: turn a CRIU images directory of one of our processes (native or
//! translated for any host ISA) into the images of the same process for a target (the
//! original binary, or its translation for a host ISA found in the translation store),
//! restorable by unmodified CRIU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use hcontainer_recode::store::Store;
use hcontainer_recode::{HostIsa, Target};

/// Where the recoded process will run.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum To {
    /// The original binary, natively.
    Native,
    /// The translation for x86-64 hosts.
    #[value(name = "x86_64")]
    X86_64,
    /// The translation for arm64 hosts.
    Aarch64,
    /// The translation for riscv64 hosts.
    Riscv64,
}

impl From<To> for Target {
    fn from(t: To) -> Target {
        match t {
            To::Native => Target::Native,
            To::X86_64 => Target::Translated(HostIsa::X86_64),
            To::Aarch64 => Target::Translated(HostIsa::Aarch64),
            To::Riscv64 => Target::Translated(HostIsa::Riscv64),
        }
    }
}

/// Arguments of `hcontainer recode`.
#[derive(clap::Args)]
pub struct Args {
    /// Images directory of the dumped process.
    #[arg(short = 'D', long = "images-dir")]
    pub dir: PathBuf,
    /// Target of the recode.
    #[arg(long, value_enum)]
    pub to: To,
    /// Output images directory (new or empty; default: `<DIR>.<target>`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Translation store (default: $HCONTAINER_STORE, ~/.cache/hcontainer/store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Also print the wall-clock time of each phase of the recode.
    #[arg(long)]
    pub timings: bool,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = Target::from(args.to);
    let output = args.output.unwrap_or_else(|| {
        let mut s = args.dir.clone().into_os_string();
        s.push(format!(".{target}"));
        PathBuf::from(s)
    });
    let store = Store::open(args.store.as_deref())?;
    let start = Instant::now();
    let report = hcontainer_recode::recode(&args.dir, target, &store, &output)
        .with_context(|| format!("recoding {} into {}", args.dir.display(), output.display()))?;
    println!(
        "recoded {} ({}) -> {} ({target}, {}) in {:.1} ms: {} threads, {} files linked, {} rewritten, {} VMAs added, {} dropped, {} pages written, {} pages left in the parent",
        args.dir.display(),
        report.from,
        output.display(),
        report.exe.display(),
        start.elapsed().as_secs_f64() * 1e3,
        report.threads,
        report.linked,
        report.rewritten,
        report.vmas_added,
        report.vmas_dropped,
        report.pages_written,
        report.pages_kept
    );
    if args.timings {
        for (phase, us) in &report.phases {
            println!("  {:>9.3} ms  {phase}", *us as f64 / 1e3);
        }
    }
    for w in &report.warnings {
        eprintln!("hcontainer: warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}
