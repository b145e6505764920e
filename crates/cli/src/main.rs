//! `hcontainer`: translate native x86-64 programs for other ISAs, checkpoint and restore
//! them with CRIU, and migrate them between machines. Each subcommand is a thin layer over a
//! library crate (see `docs/architecture.md`).

mod commands;

use clap::{Parser, Subcommand};

/// Migrate running native Linux programs between machines of different instruction sets.
#[derive(Parser)]
#[command(name = "hcontainer", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Translate a static x86-64 executable into a standalone executable for a host ISA.
    Translate(commands::translate::Args),
    /// Summarize a translated executable's metadata.
    Inspect(commands::inspect::Args),
    /// Checkpoint a running process tree with CRIU.
    Checkpoint(commands::checkpoint::Args),
    /// Restore a checkpointed process tree with CRIU.
    Restore(commands::restore::Args),
    /// Read and print CRIU image files.
    #[command(subcommand)]
    Image(commands::image::Command),
    /// Check this machine: CRIU, its version and `criu check`.
    Doctor(commands::doctor::Args),
    /// Start a program natively in a migratable configuration.
    Run(commands::run::Args),
    /// Recode a CRIU images directory between native and translated execution.
    Recode(commands::recode::Args),
    /// Run the migration agent of this node, or ask one what it runs.
    Agent(commands::agent::Args),
    /// Move a running process to another node's agent.
    Migrate(commands::migrate::Args),
    /// This node's key pair and certificate: init, join, show.
    #[command(subcommand)]
    Node(commands::node::Command),
    /// The certificate authority of a group of nodes: init, sign.
    #[command(subcommand)]
    Ca(commands::ca::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Translate(args) => commands::translate::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Checkpoint(args) => commands::checkpoint::run(args),
        Command::Restore(args) => commands::restore::run(args),
        Command::Image(cmd) => commands::image::run(cmd),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Recode(args) => commands::recode::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Node(cmd) => commands::node::run(cmd),
        Command::Ca(cmd) => commands::ca::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hcontainer: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
