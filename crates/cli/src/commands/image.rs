//! `hcontainer image …`.

use std::process::ExitCode;

/// `hcontainer image` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print image files.
    Show {},
}

/// Run the subcommand.
pub fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("image is not implemented yet")
}
