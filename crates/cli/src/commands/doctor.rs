//! `hcontainer doctor`.

use std::process::ExitCode;

/// Arguments of `hcontainer doctor`.
#[derive(clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("doctor is not implemented yet")
}
