//! `cargo xtask setup`: Debian packages, Rust targets and CRIU. Idempotent: each step checks
//! first and prints one line saying what it found or did.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cache_dir, run_checked, step};

/// Debian packages the build, the tests and the benchmarks use.
pub const PACKAGES: &[&str] = &[
    "gcc",
    "g++",
    "binutils",
    "qemu-user",
    "musl-tools",
    "busybox-static",
    "gcc-aarch64-linux-gnu",
    "gcc-riscv64-linux-gnu",
    "qemu-system-arm",
    "libc6-dev-arm64-cross",
    "libc6-dev-riscv64-cross",
    // CRIU's private installation verifies Debian's archive with it.
    "debian-archive-keyring",
    // crit (CRIU's image tool) is a Python program.
    "python3",
    // Debian's own dynamically linked programs the tests translate and run beside the
    // originals, and the services the migration tests and the evaluation move.
    "coreutils",
    "grep",
    "sed",
    "gawk",
    "gzip",
    "xz-utils",
    "sqlite3",
    "python3.11",
    "lua5.4",
    "perl",
    "bash",
    "openssl",
    "redis-server",
    "redis-tools",
    "nginx",
    "curl",
];

/// Rust targets of the runtime and of the arm64 node's static hcontainer (also listed in
/// rust-toolchain.toml).
pub const RUST_TARGETS: &[&str] =
    &["x86_64-unknown-none", "aarch64-unknown-none", "riscv64gc-unknown-none-elf", "aarch64-unknown-linux-musl"];

/// Runs every set-up step.
pub fn run() -> Result<()> {
    apt()?;
    rust_targets()?;
    let criu = crate::criu_setup::ensure(&cache_dir()).context("installing CRIU")?;
    step(&format!("criu: {}", criu.display()));
    let qemu = crate::criu_setup::ensure_qemu(&cache_dir()).context("installing qemu-user")?;
    step(&format!("qemu-user (current): {}", qemu.display()));
    // Tests that need a qemu-user newer than bookworm's find it here.
    std::env::set_var("HCONTAINER_QEMU_DIR", &qemu);
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        step(&format!("apt: all {} packages present", PACKAGES.len()));
        return Ok(());
    }
    step(&format!("apt: installing {}", missing.join(" ")));
    run_checked(Command::new("apt-get").args(["-qq", "update"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    run_checked(
        Command::new("apt-get")
            .args(["-qq", "install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still: Vec<&str> = missing.into_iter().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt-get did not install {}", still.join(" "));
    }
    Ok(())
}

fn rust_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(crate::util::repo_root())
        .output()
        .context("running rustup target list --installed")?;
    let have = String::from_utf8_lossy(&out.stdout).to_string();
    let missing: Vec<&str> = RUST_TARGETS.iter().copied().filter(|t| !have.lines().any(|l| l.trim() == *t)).collect();
    if missing.is_empty() {
        step(&format!("rustup: targets present ({})", RUST_TARGETS.join(", ")));
        return Ok(());
    }
    step(&format!("rustup: adding {}", missing.join(" ")));
    run_checked(Command::new("rustup").args(["target", "add"]).args(&missing).current_dir(crate::util::repo_root()))
}
