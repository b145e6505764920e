//! `hcontainer agent`: the migration agent of a node (authenticates peers by certificate
//! over TLS, receives images, checks them, recodes them for this node's ISA when needed,
//! restores them), or `--status ADDR` to ask a running agent what it runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use hcontainer_node::tls::{Identity, NodeDir};
use hcontainer_node::{Agent, AgentConfig, Client, ClientSecurity, Security};

/// This node's identity from `dir` (default: $HCONTAINER_NODE_DIR, /etc/hcontainer).
pub fn identity(dir: Option<&Path>) -> anyhow::Result<Identity> {
    let nd = NodeDir::resolve(dir);
    Identity::load(&nd).with_context(|| format!("loading this node's certificate from {}", nd.0.display()))
}

/// How a client side authenticates: this node's certificate, or nothing with
/// `--insecure-plaintext`.
pub fn client_security(dir: Option<&Path>, insecure: bool) -> anyhow::Result<ClientSecurity> {
    if insecure {
        Ok(ClientSecurity::InsecurePlaintext)
    } else {
        Ok(ClientSecurity::Tls(identity(dir)?))
    }
}

/// Arguments of `hcontainer agent`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (`0.0.0.0:7070`; port 0 picks a free port, printed on start).
    #[arg(long, default_value = "0.0.0.0:7070")]
    pub listen: String,
    /// This node's key, certificate and CA certificate (`hcontainer node init` / `join`;
    /// default: $HCONTAINER_NODE_DIR, else /etc/hcontainer).
    #[arg(long, value_name = "DIR")]
    pub node_dir: Option<PathBuf>,
    /// Only these nodes (names in their certificates, comma-separated) may push jobs here
    /// (default: every node the CA certified; observers never).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub push_from: Option<Vec<String>>,
    /// User and group ids a restored tree may have (`0-65535,100000-165535`; default: any).
    #[arg(long, value_name = "RANGES")]
    pub allow_ids: Option<String>,
    /// INSECURE: no TLS, no authentication, every local client accepted; refused on any
    /// address but loopback. For tests and measurements on one machine.
    #[arg(long)]
    pub insecure_plaintext: bool,
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

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = args.status {
        let security = client_security(args.node_dir.as_deref(), args.insecure_plaintext)?;
        let mut client = Client::connect(&addr, &security)?;
        let (isa, processes) = client.status()?;
        if args.json {
            let v = serde_json::json!({ "agent": addr, "host": client.host, "isa": isa, "processes": processes });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            let who = client.peer.as_ref().map(|p| format!("certified as {}, ", p.name)).unwrap_or_else(|| "in clear, ".into());
            println!("agent {addr} ({who}{}, {isa}): {} process(es)", client.host, processes.len());
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
    let security = if args.insecure_plaintext {
        Security::InsecurePlaintext
    } else {
        Security::Tls { identity: identity(args.node_dir.as_deref())?, push_from: args.push_from.clone() }
    };
    let who = match &security {
        Security::Tls { identity, push_from } => format!(
            "TLS as {}, CA {}, push from {}",
            identity.me.name,
            identity.ca_fingerprint,
            push_from.as_ref().map(|n| n.join(",")).unwrap_or_else(|| "every certified node".into())
        ),
        Security::InsecurePlaintext => "INSECURE: in clear, every local client accepted".into(),
    };
    let mut config = AgentConfig::new(&args.listen, &args.work, security);
    if let Some(ids) = &args.allow_ids {
        config.creds.ids = hcontainer_node::validate::parse_ids(ids).map_err(|e| anyhow::anyhow!("--allow-ids: {e}"))?;
    }
    config.criu = args.criu;
    config.store = args.store;
    config.keep_images = args.keep_images;
    let agent = Agent::bind(config).with_context(|| format!("starting the agent on {}", args.listen))?;
    let addr = agent.local_addr()?;
    println!("hcontainer agent listening on {addr} (isa {}, work {}; {who})", std::env::consts::ARCH, args.work.display());
    std::io::stdout().flush()?;
    agent.serve()?;
    Ok(ExitCode::SUCCESS)
}
