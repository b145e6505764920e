//! `cargo xtask vm`: the emulated arm64 node (crates/testbed) for humans.
//!
//! - `vm build`: build (or reuse) the node image under `.cache/vm` and the aarch64
//!   `hcontainer` (`target/aarch64-unknown-linux-musl/release/hcontainer`).
//! - `vm boot`: boot a node with `hcontainer` installed and run each line read from standard
//!   input as a shell command inside it (end with end-of-file).
//! - `vm run -- CMD…`: boot, run one command, print its output, exit with its status.
//!
//! In the node, `hcontainer` and `criu` are on `PATH`; the host folder printed at boot is
//! mounted at `/mnt/host`.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args as ClapArgs, Subcommand};
use hcontainer_testbed::{cross, BootOptions, Node, NodeImage};

use crate::util::{cache_dir, repo_root, step};

/// Arguments of `cargo xtask vm`.
#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: VmCommand,
}

#[derive(Subcommand)]
enum VmCommand {
    /// Build the node image and the aarch64 hcontainer (idempotent).
    Build,
    /// Boot a node and run standard input's lines in it, one command each.
    Boot(BootArgs),
    /// Boot a node, run one command in it and print its output.
    Run {
        #[command(flatten)]
        boot: BootArgs,
        /// Time limit of the command in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// The command (joined with spaces, run by sh).
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(ClapArgs)]
struct BootArgs {
    /// Guest TCP port to forward from a free host port (repeatable).
    #[arg(long = "forward", value_name = "GUEST_PORT")]
    forward: Vec<u16>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
}

/// Runs `cargo xtask vm …`; `Ok(false)` when a command in the node failed.
pub fn run(args: &Args) -> Result<bool> {
    match &args.command {
        VmCommand::Build => {
            build()?;
            Ok(true)
        }
        VmCommand::Boot(boot_args) => {
            let node = boot(boot_args)?;
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let line = line.context("reading standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                print_output(&node.run(&line, Duration::from_secs(600))?);
            }
            Ok(true)
        }
        VmCommand::Run {
            boot: boot_args,
            timeout,
            command,
        } => {
            let node = boot(boot_args)?;
            let out = node.run(&command.join(" "), Duration::from_secs(*timeout))?;
            print_output(&out);
            Ok(out.success())
        }
    }
}

/// Builds the node image and the aarch64 hcontainer (`cargo xtask vm build`; what the node
/// tests in crates/cli/tests/node.rs need before `cargo test`); returns both.
pub fn build() -> Result<(NodeImage, PathBuf)> {
    let image = build_image()?;
    let hcontainer = build_hcontainer()?;
    Ok((image, hcontainer))
}

/// Builds (or reuses) the node image under `.cache/vm`.
fn build_image() -> Result<NodeImage> {
    let started = Instant::now();
    let image = NodeImage::build(&cache_dir()).context("building the arm64 node image")?;
    step(&format!(
        "node image: {} + {} (kernel {}, {:.1} s)",
        image.kernel().display(),
        image.initrd().display(),
        image.release(),
        started.elapsed().as_secs_f64()
    ));
    Ok(image)
}

/// Builds the aarch64 hcontainer.
fn build_hcontainer() -> Result<PathBuf> {
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let exe = cross::build_hcontainer_aarch64(&repo_root(), &cargo)
        .context("building the aarch64 hcontainer")?;
    step(&format!(
        "aarch64 hcontainer: {} ({:.1} s)",
        exe.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(exe)
}

/// Builds, boots and installs `hcontainer` as `/usr/bin/hcontainer` in the node; when the
/// aarch64 build fails the node still boots, without it.
fn boot(args: &BootArgs) -> Result<Node> {
    let image = build_image()?;
    let hcontainer = match build_hcontainer() {
        Ok(exe) => Some(exe),
        Err(err) => {
            step(&format!(
                "warning: the node runs without hcontainer: {err:#}"
            ));
            None
        }
    };
    let options = BootOptions {
        forward: args.forward.clone(),
        memory_mib: args.memory,
        ..BootOptions::default()
    };
    let node = image.boot(&options).context("booting the arm64 node")?;
    step(&format!(
        "node up in {:.1} s; shared folder {} = /mnt/host",
        node.boot_time().as_secs_f64(),
        node.shared_dir().display()
    ));
    for port in &args.forward {
        if let Some(host) = node.host_port(*port) {
            step(&format!("guest port {port} = 127.0.0.1:{host}"));
        }
    }
    if let Some(exe) = hcontainer {
        node.install(&exe, "/usr/bin/hcontainer", Duration::from_secs(120))
            .context("installing hcontainer in the node")?;
    }
    Ok(node)
}

fn print_output(out: &hcontainer_testbed::Output) {
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    if !out.success() {
        eprintln!("xtask: exit status {}", out.status);
    }
}
