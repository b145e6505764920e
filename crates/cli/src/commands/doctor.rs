//! `hcontainer doctor`: report whether this machine can checkpoint and restore.

use std::path::PathBuf;
use std::process::ExitCode;

use hcontainer_criu::Criu;

/// Arguments of `hcontainer doctor`.
#[derive(clap::Args)]
pub struct Args {
    /// The CRIU to use (default: $HCONTAINER_CRIU, .cache/criu, PATH).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("kernel:       {}", kernel.trim());
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false);
    println!("root:         {}", if root { "yes" } else { "no (CRIU needs root)" });
    let criu = match Criu::locate(args.criu.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            println!("criu:         not usable");
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("criu:         {}", criu.path().display());
    println!("criu version: {}", criu.version());
    match criu.check() {
        Ok(out) => {
            println!("criu check:   passed");
            for l in out.lines().filter(|l| !l.trim().is_empty()) {
                println!("  {l}");
            }
            Ok(if root { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Err(out) => {
            println!("criu check:   FAILED");
            for l in out.lines().filter(|l| !l.trim().is_empty()) {
                println!("  {l}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
