//! `hcontainer checkpoint`.

use std::process::ExitCode;

/// Arguments of `hcontainer checkpoint`.
#[derive(clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("checkpoint is not implemented yet")
}
