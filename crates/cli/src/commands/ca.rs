//! `hcontainer ca init|sign`: the small certificate authority of a group of nodes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use hcontainer_node::tls::{self, Ca, Role};

fn ca_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| PathBuf::from(tls::DEFAULT_CA_DIR))
}

/// `hcontainer ca …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Make a new CA: its key (keep it safe: whoever holds it can add nodes) and certificate.
    Init {
        /// A name for the group of nodes.
        #[arg(long)]
        name: String,
        /// CA folder (default: /etc/hcontainer/ca).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = tls::CA_DAYS)]
        days: u32,
    },
    /// Sign a node's request (`hcontainer node init` wrote it): writes the bundle the node
    /// installs with `hcontainer node join`.
    Sign {
        /// The request (`NAME.req`).
        request: PathBuf,
        /// `node` (may push jobs and serve as an agent) or `observer` (may only ask
        /// `agent --status`).
        #[arg(long, default_value = "node")]
        role: Role,
        /// Validity in days.
        #[arg(long, default_value_t = tls::NODE_DAYS)]
        days: u32,
        /// CA folder (default: /etc/hcontainer/ca).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Where to write the bundle (default: NAME.crt in the current folder).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Run the subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Init { name, dir, days } => {
            let dir = ca_dir(dir);
            let ca = Ca::init(&dir, &name, days)?;
            println!("CA {name} in {}: certificate fingerprint {}", dir.display(), ca.fingerprint());
        }
        Command::Sign { request, role, days, dir, out } => {
            let ca = Ca::open(&ca_dir(dir))?;
            let text = std::fs::read_to_string(&request).with_context(|| format!("reading {}", request.display()))?;
            let req = tls::Request::parse(Path::new(&request), &text)?;
            let bundle = ca.sign(&req, role, days)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{}.crt", req.name)));
            std::fs::write(&out, bundle).with_context(|| format!("writing {}", out.display()))?;
            println!("signed {} as {role} for {days} days: {} (CA {})", req.name, out.display(), ca.fingerprint());
        }
    }
    Ok(ExitCode::SUCCESS)
}
