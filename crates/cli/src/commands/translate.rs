//! `hcontainer translate`: a static x86-64 executable → a standalone executable for a host ISA;
//! a dynamically linked program or library → a translation unit per file of its closure, in
//! the store, and for a program its launcher.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hcontainer_translate::{translate_file_with, HostIsa, MemoryModel, Options, Stage};

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

/// Memory models accepted on the command line.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Model {
    /// x86's total store order: on arm64 and riscv64 every guest load and store outside the
    /// thread's own stack is ordered (acquire loads and release stores, or fences).
    #[default]
    Tso,
    /// The host's own order for plain loads and stores: faster on arm64 and riscv64, correct
    /// only for programs that synchronise through locked instructions and fences alone.
    Relaxed,
}

impl From<Model> for MemoryModel {
    fn from(m: Model) -> MemoryModel {
        match m {
            Model::Tso => MemoryModel::Tso,
            Model::Relaxed => MemoryModel::Relaxed,
        }
    }
}

/// Arguments of `hcontainer translate`.
#[derive(clap::Args)]
pub struct Args {
    /// The x86-64 program or shared library to translate: a static executable becomes one
    /// standalone executable; a dynamically linked one (or a library) becomes a unit per file
    /// of its closure (the program, its interpreter, every library it needs) in the store.
    input: PathBuf,
    /// Host ISA the output runs on.
    #[arg(long, short)]
    target: Target,
    /// Where to write the translated executable (required for a static executable; for a
    /// dynamically linked one, its launcher: `OUT args…` runs the program with the units from
    /// the store).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also translate this library, or every shared object under this directory, with its
    /// closure: what the program loads with `dlopen` (plugins, NSS and gconv modules, Python
    /// extension modules). Repeatable.
    #[arg(long = "with", value_name = "FILE_OR_DIR")]
    with: Vec<PathBuf>,
    /// Translation store to record the result in (default: `$HCONTAINER_STORE`, else
    /// `~/.cache/hcontainer/store`), where `recode` finds it.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Order of plain guest loads and stores on the host (recorded in the translation,
    /// shown by `inspect`). x86-64 hosts give x86's order either way.
    #[arg(long, value_enum, default_value_t = Model::Tso)]
    memory_model: Model,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let guest = hcontainer_translate::inspect_guest(&args.input)?;
    if guest.kind.is_unit() || !args.with.is_empty() {
        drop(guest);
        if matches!(args.memory_model, Model::Relaxed) {
            anyhow::bail!(
                "{}: --memory-model relaxed is supported for static executables only (the units of a dynamically linked program are shared in the store and always use x86-TSO)",
                args.input.display()
            );
        }
        return run_dynamic(args);
    }
    let Some(output) = args.output.clone() else {
        anyhow::bail!("{} is a static executable: name the translated executable with -o OUT", args.input.display());
    };
    let isa = HostIsa::from(args.target);
    let spinner = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    let options = Options { memory_model: args.memory_model.into() };
    let report = translate_file_with(&args.input, isa, &options, &output, &mut |stage: Stage| {
        spinner.set_message(format!("{}: {}", args.input.display(), stage.name()));
    });
    spinner.finish_and_clear();
    let report = report?;
    make_executable(&output).with_context(|| format!("cannot make {} executable", output.display()))?;
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
        store.put(&sha, isa.name(), &output)
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
            "{} -> {} ({}, memory model {}): {} functions, {} blocks, {} instructions in {:.2}s ({})",
            args.input.display(),
            output.display(),
            isa.name(),
            options.memory_model.name(),
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

/// A dynamically linked program or library: its closure as units in the store.
fn run_dynamic(args: Args) -> anyhow::Result<ExitCode> {
    use hcontainer_recode::store::Store;
    use hcontainer_translate::closure::SearchEnv;
    use hcontainer_translate::program::{self, Outcome, Progress};
    let isa = HostIsa::from(args.target);
    let store = Store::open(args.store.as_deref())?;
    let mut roots = vec![args.input.clone()];
    for w in &args.with {
        if w.is_dir() {
            roots.extend(program::shared_objects_under(w).with_context(|| format!("reading {}", w.display()))?);
        } else {
            roots.push(w.clone());
        }
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    let mut current = String::new();
    let started = std::time::Instant::now();
    let results = program::translate_closure(&store, &roots, &SearchEnv::from_system(), isa, &mut |p| match p {
        Progress::File { index, total, path } => {
            current = format!("[{}/{}] {}", index + 1, total, path.display());
            bar.set_message(current.clone());
        }
        Progress::Stage(s) => bar.set_message(format!("{current}: {}", s.name())),
    });
    bar.finish_and_clear();
    let results = results?;
    let (mut translated, mut reused) = (0, 0);
    for r in &results {
        let short = &r.sha256[..12];
        match &r.outcome {
            Outcome::Reused => {
                reused += 1;
                if !args.quiet {
                    println!("reused     {} ({short}, {} unit in the store)", r.member.path.display(), isa.name());
                }
            }
            Outcome::Translated(rep) => {
                translated += 1;
                if !args.quiet {
                    let l = &rep.lift;
                    let traps = if l.traps > 0 { format!(", {} left as traps", l.traps) } else { String::new() };
                    let stages: Vec<String> =
                        rep.timings.iter().map(|(s, d)| format!("{} {:.2}s", s.name(), d.as_secs_f64())).collect();
                    println!(
                        "translated {} ({short}): {} functions, {} blocks, {} instructions{traps} in {:.2}s ({})",
                        r.member.path.display(),
                        l.functions,
                        l.blocks,
                        l.instructions,
                        rep.total().as_secs_f64(),
                        stages.join(", ")
                    );
                }
            }
        }
    }
    let main = &results[0];
    let launcher = if main.member.kind == hcontainer_translate::closure::ElfKind::Executable {
        let stored = program::install_launcher(&store, &main.member.path, &main.sha256, isa)?;
        if let Some(out) = &args.output {
            // Through a new file and a rename: the old one may be running.
            let tmp = out.with_file_name(format!(".{}.tmp{}", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), std::process::id()));
            std::fs::copy(&stored, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
            make_executable(&tmp).with_context(|| format!("cannot make {} executable", tmp.display()))?;
            std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
        }
        Some(stored)
    } else {
        if let Some(out) = &args.output {
            anyhow::bail!("{} is a shared library: its units are in the store, there is no program to write to {}", args.input.display(), out.display());
        }
        None
    };
    if !args.quiet {
        println!(
            "{}: {} files for {} ({translated} translated, {reused} reused) in {:.2}s; store {}",
            args.input.display(),
            results.len(),
            isa.name(),
            started.elapsed().as_secs_f64(),
            store.root().display()
        );
        if let Some(l) = launcher {
            let out = args.output.as_ref().unwrap_or(&l);
            println!("launcher: {} (run it as the program: {} ARGS...)", out.display(), out.display());
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
