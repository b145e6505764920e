//! `hcontainer inspect`.

use std::process::ExitCode;

/// Arguments of `hcontainer inspect`.
#[derive(clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("inspect is not implemented yet")
}
