//! `hcontainer agent`: the migration agent of a node (receives images, recodes them for this
//! node's ISA when needed, restores them), or `--status ADDR` to ask a running agent what it
//! runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hcontainer_node::{Agent, AgentConfig, Client};

/// Environment variable holding the token when `--token` is not given.
pub const TOKEN_ENV: &str = "HCONTAINER_TOKEN";

/// Arguments of `hcontainer agent`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (`0.0.0.0:7070`; port 0 picks a free port, printed on start).
    #[arg(long, default_value = "0.0.0.0:7070")]
    pub listen: String,
    /// Token clients must present (default: $HCONTAINER_TOKEN; none accepts every client).
    #[arg(long)]
    pub token: Option<String>,
    /// Work folder for received images (one sub-folder per job, removed when done).
    #[arg(long, default_value = "/var/lib/hcontainer/agent")]
    pub work: PathBuf,
    /// Keep the images of committed jobs.
    #[arg(long)]
    pub keep_images: bool,
    /// Translation store for recode on this node (default: $HCONTAINER_STORE or ~/.cache/hcontainer/store).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The CRIU to use (default: $HCONTAINER_CRIU, .cache/criu, PATH).
    #[arg(long, value_name = "PATH")]
    pub criu: Option<PathBuf>,
    /// Instead of serving, ask the agent at ADDR what it runs.
    #[arg(long, value_name = "ADDR")]
    pub status: Option<String>,
    /// With --status: print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The token from the argument or the environment.
pub fn token(arg: Option<String>) -> Option<String> {
    arg.or_else(|| std::env::var(TOKEN_ENV).ok()).filter(|t| !t.is_empty())
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = token(args.token);
    if let Some(addr) = args.status {
        let mut client = Client::connect(&addr, token.as_deref())?;
        let (isa, processes) = client.status()?;
        if args.json {
            let v = serde_json::json!({ "agent": addr, "host": client.host, "isa": isa, "processes": processes });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("agent {addr} ({}, {isa}): {} process(es)", client.host, processes.len());
            for p in processes {
                println!(
                    "  pid {:<8} {:<8} {:<11} {:<10} {} [{}] {}",
                    p.pid,
                    p.isa,
                    p.mode,
                    if p.running { "running" } else { "gone" },
                    p.exe,
                    p.job,
                    p.label
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = AgentConfig::new(&args.listen, &args.work);
    config.token = token;
    config.criu = args.criu;
    config.store = args.store;
    config.keep_images = args.keep_images;
    let open = config.token.is_none();
    let agent = Agent::bind(config).with_context(|| format!("starting the agent on {}", args.listen))?;
    let addr = agent.local_addr()?;
    println!(
        "hcontainer agent listening on {addr} (isa {}, work {}{})",
        std::env::consts::ARCH,
        args.work.display(),
        if open { ", no token: every client accepted" } else { "" }
    );
    std::io::stdout().flush()?;
    agent.serve()?;
    Ok(ExitCode::SUCCESS)
}
