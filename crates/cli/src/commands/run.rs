//! `hcontainer run`: start a program natively in a migratable configuration, replacing this
//! process (as `setarch`, `env` and `nohup` do), so that the pid the caller sees (`$!`) is
//! the program's.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use anyhow::Context;

/// Arguments of `hcontainer run`.
#[derive(clap::Args)]
pub struct Args {
    /// Start the program in a new session, without a controlling terminal (as CRIU wants a
    /// service: a dump needs no `--shell-job`). If this process leads its process group (a
    /// shell's job), it forks first and waits for the program.
    #[arg(long)]
    pub setsid: bool,
    /// Standard output and error go to FILE (appended), standard input is /dev/null.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The x86-64 executable.
    pub program: PathBuf,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Run the subcommand: only returns when the program cannot be started (or, with
/// `--setsid` from a process group leader, with the program's exit status).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut plan = hcontainer_recode::launch::plan(&args.program, &args.args)?;
    for w in &plan.warnings {
        eprintln!("hcontainer: warning: {w}");
    }
    if let Some(log) = &args.log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the log {}", log.display()))?;
        let g = f.try_clone().with_context(|| format!("opening the log {}", log.display()))?;
        plan.command.stdin(Stdio::null()).stdout(f).stderr(g);
    }
    if args.setsid {
        // SAFETY: setsid(2) takes no arguments.
        if unsafe { libc::setsid() } < 0 {
            // A process group leader cannot start a session: the program runs in a child.
            // SAFETY: the CLI is single-threaded here; the child only continues to exec.
            match unsafe { libc::fork() } {
                -1 => return Err(std::io::Error::last_os_error()).context("fork"),
                0 => {
                    // SAFETY: as above; the child is no group leader.
                    if unsafe { libc::setsid() } < 0 {
                        return Err(std::io::Error::last_os_error()).context("setsid");
                    }
                }
                child => {
                    eprintln!("hcontainer: {} runs as pid {child} in a new session", args.program.display());
                    let mut st = 0;
                    // SAFETY: waitpid writes the local status.
                    unsafe { libc::waitpid(child, &mut st, 0) };
                    let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
                    return Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)));
                }
            }
        }
    }
    let err = plan.command.exec();
    Err(err).with_context(|| format!("starting {}", args.program.display()))
}
