//! `hcontainer translate`: a static x86-64 executable → a standalone executable for a host ISA.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hcontainer_translate::{translate_file, HostIsa, Stage};

/// Host ISA names accepted on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Target {
    /// x86-64 (the home ISA, translated to itself).
    #[value(name = "x86_64", alias = "x86-64", alias = "amd64")]
    X86_64,
    /// arm64.
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
    /// riscv64 (RV64GC).
    #[value(name = "riscv64", alias = "riscv64gc")]
    Riscv64,
}

impl From<Target> for HostIsa {
    fn from(t: Target) -> HostIsa {
        match t {
            Target::X86_64 => HostIsa::X86_64,
            Target::Aarch64 => HostIsa::Aarch64,
            Target::Riscv64 => HostIsa::Riscv64,
        }
    }
}

/// Arguments of `hcontainer translate`.
#[derive(clap::Args)]
pub struct Args {
    /// The static x86-64 executable to translate.
    input: PathBuf,
    /// Host ISA the output runs on.
    #[arg(long, short)]
    target: Target,
    /// Where to write the translated executable.
    #[arg(long, short)]
    output: PathBuf,
    /// Translation store to record the result in (default: `$HCONTAINER_STORE`, else
    /// `~/.cache/hcontainer/store`), where `recode` finds it.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let isa = HostIsa::from(args.target);
    let spinner = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    let report = translate_file(&args.input, isa, &args.output, &mut |stage: Stage| {
        spinner.set_message(format!("{}: {}", args.input.display(), stage.name()));
    });
    spinner.finish_and_clear();
    let report = report?;
    make_executable(&args.output)
        .with_context(|| format!("cannot make {} executable", args.output.display()))?;
    // The output is complete at this point; recording it in the store is a convenience for
    // `recode`, so a store that cannot be used costs a warning, not the translation.
    let sha: String = report.guest_sha256.iter().map(|b| format!("{b:02x}")).collect();
    // The original goes in beside it: a translated process recoded back to native execution
    // needs it wherever it is.
    use hcontainer_recode::store::{Store, ORIGINAL};
    let stored = Store::open(args.store.as_deref()).and_then(|store| {
        if store.get(&sha, ORIGINAL)?.is_none() {
            store.put(&sha, ORIGINAL, &args.input)?;
        }
        store.put(&sha, isa.name(), &args.output)
    });
    match &stored {
        Ok(path) if !args.quiet => println!("store: {}", path.display()),
        Ok(_) => {}
        Err(e) => eprintln!("hcontainer: warning: translation not recorded in the store: {e}"),
    }
    if !args.quiet {
        let stages: Vec<String> = report
            .timings
            .iter()
            .map(|(s, d)| format!("{} {:.2}s", s.name(), d.as_secs_f64()))
            .collect();
        let l = &report.lift;
        println!(
            "{} -> {} ({}): {} functions, {} blocks, {} instructions in {:.2}s ({})",
            args.input.display(),
            args.output.display(),
            isa.name(),
            l.functions,
            l.blocks,
            l.instructions,
            report.total().as_secs_f64(),
            stages.join(", ")
        );
        match l.trap_examples.first() {
            None => println!("traps: 0 instructions left untranslated"),
            Some((addr, what)) => println!(
                "traps: {} instructions left as traps (they stop the program if reached), e.g. {addr:#x}: {what}",
                l.traps
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn make_executable(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut perm = std::fs::metadata(path)?.permissions();
    perm.set_mode(perm.mode() | 0o111);
    std::fs::set_permissions(path, perm)
}
