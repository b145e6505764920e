//! `hcontainer restore`.

use std::process::ExitCode;

/// Arguments of `hcontainer restore`.
#[derive(clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("restore is not implemented yet")
}
