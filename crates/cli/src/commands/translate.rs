//! `hcontainer translate`.

use std::process::ExitCode;

/// Arguments of `hcontainer translate`.
#[derive(clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("translate is not implemented yet")
}
