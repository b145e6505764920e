//! `hcontainer recode`: turn a CRIU images directory of a native process into one of its
//! translated executable (found in the translation store), restorable by unmodified CRIU.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use hcontainer_recode::image::{exe_of, native_to_translated, TranslatedExe};
use hcontainer_recode::store::Store;

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
    /// Use this translated executable instead of looking in the store.
    #[arg(long, value_name = "PATH")]
    pub exe: Option<PathBuf>,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let isa = match args.to {
        To::X86_64 => "x86_64",
        To::Native => bail!("recode to native (translated → native images) is not implemented yet"),
        To::Aarch64 | To::Riscv64 => {
            bail!("recode for {:?} hosts is not implemented yet (only translated x86_64 targets)", args.to)
        }
    };
    let exe_path = match args.exe {
        Some(p) => p,
        None => {
            let original = exe_of(&args.dir)?;
            let store = Store::open(args.store.as_deref())?;
            store.get_for(&original, isa)?.with_context(|| {
                format!(
                    "no {isa} translation of {} in the store {}; run `hcontainer translate {} --target {isa}` first",
                    original.display(),
                    store.root().display(),
                    original.display()
                )
            })?
        }
    };
    let output = args.output.unwrap_or_else(|| {
        let mut s = args.dir.clone().into_os_string();
        s.push(format!(".{isa}"));
        PathBuf::from(s)
    });
    let start = Instant::now();
    let exe = TranslatedExe::open(&exe_path)?;
    let report = native_to_translated(&args.dir, &exe, &output)
        .with_context(|| format!("recoding {} into {}", args.dir.display(), output.display()))?;
    println!(
        "recoded {} -> {} for {} in {:.1} ms: {} files linked, {} rewritten, {} VMAs added, {} pages written, {} pages left in the parent",
        args.dir.display(),
        output.display(),
        exe_path.display(),
        start.elapsed().as_secs_f64() * 1e3,
        report.linked,
        report.rewritten,
        report.vmas_added,
        report.pages_written,
        report.pages_kept
    );
    Ok(ExitCode::SUCCESS)
}
