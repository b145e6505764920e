//! The emulated arm64 edge node: a real arm64 Linux kernel with real CRIU, run by
//! `qemu-system-aarch64` on an x86-64 machine, so that the aarch64 build of hcontainer, its
//! translations and CRIU dumps and restores can be tested on arm64 without arm64 hardware.
//!
//! Everything comes from Debian packages: the kernel and `busybox-static` (bookworm, arm64),
//! CRIU 4.2 and its libraries (Debian testing, arm64, run through their own dynamic loader).
//! [`NodeImage::build`] downloads and assembles them once into `<cache>/vm` (idempotent,
//! reused while its stamp matches); [`NodeImage::boot`] starts a node; [`Node::run`] runs a
//! shell command inside it and returns its output and exit status. Commands travel as job
//! files through a 9p shared folder (host directory [`Node::shared_dir`], mounted at
//! [`GUEST_SHARED_DIR`] in the node); the node's `/init` runs each job under `setsid` with a
//! time limit and writes the output and status back. TCP ports of the node are reachable from
//! the host through QEMU's user-network forwards ([`Node::host_port`]). Dropping a [`Node`]
//! kills the virtual machine.
//!
//! [`cross`] builds the statically linked aarch64 `hcontainer` that runs inside the node;
//! [`migrate`] moves a running program between this host and the node with `hcontainer
//! migrate` (agents on both sides, the translation installed in the node, the two hops), for
//! the node tests and `cargo xtask bench-node` alike.
//!
//! [`cc`] builds the static x86-64 C programs that the tests and benchmarks run (glibc or
//! musl, optionally cached by source hash).

#![deny(missing_docs)]

pub mod apt;
pub mod binfmt;
pub mod cc;
mod cpio;
pub mod cross;
mod image;
pub mod migrate;
mod modules;
mod node;

// The arm64 CRIU installation is the one `cargo xtask setup` makes (same code, same prefix
// `<cache>/criu-arm64`), so both share one stamp and one download.
#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../../xtask/src/criu_setup.rs"]
mod criu_setup;

use std::path::{Path, PathBuf};

pub use image::{NodeImage, SUITE};
pub use node::{BootOptions, Node, Output, GUEST_SHARED_DIR};

/// What went wrong while building or driving the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A host command (apt-get, dpkg, cargo…) failed.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(":\n{stderr}") })]
    Command {
        /// The command line.
        command: String,
        /// Its exit status, or why it could not start.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A program the node needs is not installed on the host.
    #[error("{tool} not found on the host: {hint}")]
    MissingTool {
        /// The program.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// A Debian package did not have the expected contents.
    #[error("package {package}: {reason}")]
    Package {
        /// The package.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// A kernel module cannot be used or placed in the load order.
    #[error("kernel module {module}: {reason}")]
    Module {
        /// The module name or file.
        module: String,
        /// What is wrong.
        reason: String,
    },
    /// Installing arm64 CRIU failed.
    #[error("installing arm64 CRIU: {0}")]
    Criu(String),
    /// QEMU stopped before or while the node was in use.
    #[error("qemu-system-aarch64 exited ({status}); the console ends with:\n{console}")]
    QemuExited {
        /// Its exit status.
        status: String,
        /// The last lines of the serial console.
        console: String,
    },
    /// The node did not report ready in time.
    #[error("the node was not ready after {secs} s; the console ends with:\n{console}")]
    BootTimeout {
        /// The time limit in seconds.
        secs: u64,
        /// The last lines of the serial console.
        console: String,
    },
    /// A command in the node did not finish in time.
    #[error("`{command}` did not finish within {secs} s in the node")]
    RunTimeout {
        /// The command.
        command: String,
        /// The time limit in seconds.
        secs: u64,
    },
    /// An `hcontainer agent` did not report that it listens.
    #[error("the hcontainer agent {place} did not start listening (waited {secs} s); it wrote:\n{output}")]
    AgentNotReady {
        /// `in the node` or `on this host`.
        place: &'static str,
        /// How long it was given, in seconds (0: it ended at once).
        secs: u64,
        /// What it wrote.
        output: String,
    },
    /// `hcontainer migrate` failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    Migration {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote, and the destination agent's log where there is one.
        output: String,
    },
    /// A migrate report names no destination pid.
    #[error("no destination pid (`as pid N`) in the migrate report:\n{report}")]
    Report {
        /// The report.
        report: String,
    },
    /// A guest port is not forwarded to the host (the node was booted without it).
    #[error("guest port {guest_port} of the node is not forwarded to this host")]
    NotForwarded {
        /// The guest port.
        guest_port: u16,
    },
    /// No host port could be reserved for a forward.
    #[error("reserving a host port for guest port {guest_port}: {source}")]
    Port {
        /// The guest port to forward.
        guest_port: u16,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Runs `cmd` to completion with captured output; fails unless it exits with status 0.
fn run_captured(cmd: &mut std::process::Command) -> Result<std::process::Output, Error> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Command {
        command: command.clone(),
        status: e.to_string(),
        stderr: String::new(),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            status: out.status.to_string(),
            stderr: tail(&out.stderr, 40),
        });
    }
    Ok(out)
}

/// The last `lines` lines of `bytes`, as text.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
