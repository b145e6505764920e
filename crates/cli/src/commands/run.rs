//! `hcontainer run`: start a program natively in a migratable configuration.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `hcontainer run`.
#[derive(clap::Args)]
pub struct Args {
    /// The x86-64 executable.
    pub program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Run the subcommand: the program's exit status becomes ours (128 + signal number when a
/// signal ended it, as a shell reports it).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut plan = hcontainer_recode::launch::plan(&args.program, &args.args)?;
    for w in &plan.warnings {
        eprintln!("hcontainer: warning: {w}");
    }
    let status = plan
        .command
        .status()
        .with_context(|| format!("starting {}", args.program.display()))?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)))
}
