//! The aarch64 build of `hcontainer` that runs inside the node: `hcontainer-cli` compiled for
//! `aarch64-unknown-linux-musl`, statically linked (Rust's musl targets bring their own C
//! library and start files; Debian's `aarch64-linux-gnu-gcc` drives the link and compiles
//! the C and assembly parts of `ring`, the TLS crypto provider, whose code needs no C
//! library headers beyond the compiler's own). The translation runtime inside it is built by
//! `crates/link`'s build script on the host, as for the host build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_captured, Error};

/// The Rust target of the node's `hcontainer`.
pub const AARCH64_TARGET: &str = "aarch64-unknown-linux-musl";

/// The linker driver used for [`AARCH64_TARGET`], also the C compiler of `ring`.
pub const AARCH64_LINKER: &str = "aarch64-linux-gnu-gcc";

/// The archiver of `ring`'s C objects for [`AARCH64_TARGET`].
pub const AARCH64_AR: &str = "aarch64-linux-gnu-ar";

/// Where the release build for [`AARCH64_TARGET`] puts `hcontainer` in the repository `repo`.
pub fn hcontainer_aarch64(repo: &Path) -> PathBuf {
    repo.join("target")
        .join(AARCH64_TARGET)
        .join("release/hcontainer")
}

/// Builds the aarch64 `hcontainer` with `cargo` (the one running the caller) in `repo`,
/// adding the Rust target first if rustup lacks it; returns the binary's path. Output of
/// cargo goes to the caller's standard error.
pub fn build_hcontainer_aarch64(repo: &Path, cargo: &OsStr) -> Result<PathBuf, Error> {
    let installed = run_captured(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(repo),
    )?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == AARCH64_TARGET)
    {
        run_captured(
            Command::new("rustup")
                .args(["target", "add", AARCH64_TARGET])
                .current_dir(repo),
        )?;
    }
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        AARCH64_TARGET,
        "-p",
        "hcontainer-cli",
        "--bin",
        "hcontainer",
    ])
    .env(
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
        AARCH64_LINKER,
    )
    .env("CC_aarch64_unknown_linux_musl", AARCH64_LINKER)
    .env("AR_aarch64_unknown_linux_musl", AARCH64_AR)
    .current_dir(repo);
    let status = cmd.status().map_err(|e| Error::Command {
        command: format!("{cmd:?}"),
        status: e.to_string(),
        stderr: String::new(),
    })?;
    if !status.success() {
        return Err(Error::Command {
            command: format!("{cmd:?}"),
            status: status.to_string(),
            stderr: String::new(),
        });
    }
    let exe = hcontainer_aarch64(repo);
    if !exe.exists() {
        return Err(Error::Package {
            package: "hcontainer-cli".to_string(),
            reason: format!("{} is missing after the build", exe.display()),
        });
    }
    Ok(exe)
}
