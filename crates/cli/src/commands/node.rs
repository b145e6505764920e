//! `hcontainer node init|join|show`: this node's key pair and certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hcontainer_node::tls::{self, NodeDir};

/// `hcontainer node …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Make this node's key pair and the request a CA signs (`NAME.req`, also kept as
    /// `<dir>/node.req`). The private key never leaves the node folder.
    Init {
        /// The node's name (its certificate's subject; `--to NAME@HOST:PORT` checks it).
        #[arg(long)]
        name: String,
        /// Node folder (default: $HCONTAINER_NODE_DIR, else /etc/hcontainer).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Where to write the request (default: NAME.req in the current folder).
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace an existing key (its certificate is removed: the node must join again).
        #[arg(long)]
        force: bool,
    },
    /// Install the bundle `hcontainer ca sign` made for this node (its certificate and the
    /// CA's), after checking that it certifies this node's key.
    Join {
        /// The bundle (`NAME.crt`).
        bundle: PathBuf,
        /// Node folder (default: $HCONTAINER_NODE_DIR, else /etc/hcontainer).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Refuse unless the CA certificate has this fingerprint (`SHA256:…`, as `hcontainer
        /// ca init` printed it).
        #[arg(long, value_name = "FINGERPRINT")]
        ca_fingerprint: Option<String>,
    },
    /// Print this node's name, role, certificate and CA fingerprints.
    Show {
        /// Node folder (default: $HCONTAINER_NODE_DIR, else /etc/hcontainer).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Run the subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Init { name, dir, out, force } => {
            let nd = NodeDir::resolve(dir.as_deref());
            let req = tls::node_init(&nd, &name, force)?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.req")));
            std::fs::write(&out, req.to_text()).with_context(|| format!("writing {}", out.display()))?;
            println!("node {name}: key {} (private, stays here), request {}", nd.key().display(), out.display());
            println!("next: hcontainer ca sign {} (where the CA lives), then hcontainer node join {name}.crt here", out.display());
        }
        Command::Join { bundle, dir, ca_fingerprint } => {
            let nd = NodeDir::resolve(dir.as_deref());
            let j = tls::node_join(&nd, &bundle, ca_fingerprint.as_deref())?;
            println!(
                "node {} joined as {} until {}; it trusts {} ({})",
                j.name, j.role, j.not_after, j.ca, j.ca_fingerprint
            );
            if ca_fingerprint.is_none() {
                println!("(check that fingerprint against the one `hcontainer ca init` printed)");
            }
        }
        Command::Show { dir } => {
            let id = super::agent::identity(dir.as_deref())?;
            println!("node {} ({}), certificate {}; trusts CA {}", id.me.name, id.me.role, id.me.fingerprint, id.ca_fingerprint);
        }
    }
    Ok(ExitCode::SUCCESS)
}
