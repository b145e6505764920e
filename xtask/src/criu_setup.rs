//! Installs CRIU (≥ 4.2, Debian packages) into a private prefix.
//!
//! Debian bookworm's CRIU 3.17 fails on current kernels ("vdso: Unexpected rt vDSO area
//! bounds"); trixie's 4.1.1 passes `criu check` but cannot dump any TCP socket on kernels
//! ≥ 6.16 (`getsockopt(SO_PASSCRED)` on an inet socket now fails with EOPNOTSUPP; CRIU 4.2
//! only asks unix and netlink sockets). So the set-up takes Debian testing's (forky) `criu`
//! 4.2 and its library closure, extracts them with
//! `dpkg -x` into `<cache>/criu` (or `<cache>/criu-arm64`) and writes a launcher script
//! `<prefix>/bin/criu` that runs the packages' own dynamic loader with `--library-path`, so the
//! system's libc is never touched. apt runs with a private configuration (own source list,
//! lists and cache directories, empty dpkg status) and the system's Debian keyring: the
//! system's apt sources and installed packages stay as they are.
//!
//! For the agreement tests it also installs the same release's `python3-pycriu` (`crit`) with
//! bookworm's pure-Python protobuf runtime next to it, launched by `<prefix>/bin/crit`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Target architecture of a private CRIU installation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64 (`amd64`), runnable on this host.
    X86_64,
    /// arm64, for the emulated arm64 node.
    Aarch64,
}

impl Arch {
    fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
    fn multiarch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }
    fn loader(self) -> &'static str {
        match self {
            Arch::X86_64 => "ld-linux-x86-64.so.2",
            Arch::Aarch64 => "ld-linux-aarch64.so.1",
        }
    }
    fn prefix_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "criu",
            Arch::Aarch64 => "criu-arm64",
        }
    }
}

/// Version stamp written once an installation is complete; bump it to force a reinstall.
const STAMP: &str = "forky criu 4.2 + crit 4.2, layout 3\n";

/// Installs x86-64 CRIU under `<cache_dir>/criu` unless already there; returns the launcher
/// `<cache_dir>/criu/bin/criu`. `<cache_dir>/criu/bin/crit` is installed beside it.
pub fn ensure(cache_dir: &Path) -> Result<PathBuf> {
    ensure_arch(cache_dir, Arch::X86_64)
}

/// Installs CRIU for `arch` under `<cache_dir>/criu` (x86-64) or `<cache_dir>/criu-arm64`
/// and returns its launcher script. Idempotent: a complete installation is reused.
pub fn ensure_arch(cache_dir: &Path, arch: Arch) -> Result<PathBuf> {
    let prefix = cache_dir.join(arch.prefix_name());
    let launcher = prefix.join("bin/criu");
    let stamp = prefix.join(".installed");
    if launcher.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(STAMP) {
        return Ok(launcher);
    }
    // Start from scratch: files of an older installation must not linger.
    for old in ["root", "debs", "bin"] {
        let dir = prefix.join(old);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(&prefix)
        .with_context(|| format!("creating {}", prefix.display()))?;
    let apt = AptConfig::new(&prefix.join("apt"), arch)?;
    apt.update()?;

    // criu's dependency closure, computed against an empty dpkg status so that every
    // library (libc6 included) comes from the same Debian release.
    let packages = apt.closure("criu")?;
    if arch == Arch::X86_64 {
    }
    let debs_dir = prefix.join("debs");
    std::fs::create_dir_all(&debs_dir)?;
    let mut specs: Vec<String> =
        packages.iter().map(|p| format!("{p}:{}", arch.debian())).collect();
    if arch == Arch::X86_64 {
        // crit needs google.protobuf; bookworm's pure-Python runtime fits the system python3.
        specs.push("python3-pycriu".to_string());
        specs.push("python3-protobuf/bookworm".to_string());
    }
    apt.download(&specs, &debs_dir)?;
    let root = prefix.join("root");
    for entry in std::fs::read_dir(&debs_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&path).arg(&root))?;
        }
    }
    write_launchers(&prefix, arch)?;
    if arch == Arch::X86_64 {
        let out = Command::new(&launcher)
            .arg("--version")
            .output()
            .with_context(|| format!("running {}", launcher.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed: {}",
                launcher.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    std::fs::write(&stamp, STAMP)?;
    Ok(launcher)
}

/// Writes `<prefix>/bin/criu` (and `bin/crit` for x86-64); both find the prefix from their
/// own location, so the tree may be moved.
fn write_launchers(prefix: &Path, arch: Arch) -> Result<()> {
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin)?;
    let lib = format!("usr/lib/{}", arch.multiarch());
    let criu = format!(
        "#!/bin/sh\n\
         # CRIU from Debian (forky), run with its own loader and libraries.\n\
         P=\"$(cd \"$(dirname \"$0\")/../root\" && pwd)\"\n\
         exec \"$P/{lib}/{loader}\" --library-path \"$P/{lib}\" \"$P/usr/sbin/criu\" \"$@\"\n",
        loader = arch.loader()
    );
    write_executable(&bin.join("criu"), &criu)?;
    if arch == Arch::X86_64 {
        let crit = "#!/bin/sh\n\
             # crit from Debian's python3-pycriu with a pure-Python protobuf runtime.\n\
             P=\"$(cd \"$(dirname \"$0\")/../root\" && pwd)\"\n\
             export PYTHONPATH=\"$P/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}\"\n\
             export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python\n\
             exec python3 \"$P/usr/bin/crit\" \"$@\"\n";
        write_executable(&bin.join("crit"), crit)?;
    }
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// apt with a private source list, lists, cache and an empty dpkg status.
struct AptConfig {
    options: Vec<String>,
}

impl AptConfig {
    fn new(dir: &Path, arch: Arch) -> Result<Self> {
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        std::fs::create_dir_all(lists.join("partial"))?;
        std::fs::create_dir_all(cache.join("archives/partial"))?;
        let sources = dir.join("sources.list");
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        if !Path::new(keyring).exists() {
            bail!("{keyring} is missing: install debian-archive-keyring");
        }
        std::fs::write(
            &sources,
            format!(
                "deb [signed-by={keyring}] http://deb.debian.org/debian forky main\n\
                 deb [signed-by={keyring}] http://deb.debian.org/debian trixie main\n\
                 deb [signed-by={keyring}] http://deb.debian.org/debian bookworm main\n"
            ),
        )?;
        let status = dir.join("status");
        std::fs::write(&status, "")?;
        let options = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            format!("Dir::State::status={}", status.display()),
            format!("APT::Architecture={}", arch.debian()),
            format!("APT::Architectures={}", arch.debian()),
            "APT::Install-Recommends=false".to_string(),
            "APT::Default-Release=forky".to_string(),
            // Downloads land in a root-owned directory the `_apt` user cannot write.
            "APT::Sandbox::User=root".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect();
        Ok(AptConfig { options })
    }

    fn update(&self) -> Result<()> {
        run(Command::new("apt-get").args(&self.options).args(["-qq", "update"]))
    }

    /// Names of `package` and everything it depends on.
    fn closure(&self, package: &str) -> Result<Vec<String>> {
        let out = Command::new("apt-get")
            .args(&self.options)
            .args(["-qq", "-y", "--print-uris", "install", package])
            .env("LC_ALL", "C")
            .output()
            .context("running apt-get --print-uris")?;
        if !out.status.success() {
            bail!(
                "apt-get could not resolve {package}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|file| file.split('_').next())
            .map(str::to_string)
            .collect();
        if !names.iter().any(|n| n == package) {
            bail!("apt-get did not list {package} in its own closure");
        }
        Ok(names)
    }

    fn download(&self, specs: &[String], into: &Path) -> Result<()> {
        run(Command::new("apt-get")
            .current_dir(into)
            .args(&self.options)
            .args(["-qq", "download"])
            .args(specs))
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Version stamp of the private qemu-user installation.
const QEMU_STAMP: &str = "forky qemu-user, layout 1\n";

/// Installs a current qemu-user (Debian testing's, statically linked) under
/// `<cache_dir>/qemu` with the same private apt configuration as CRIU, and returns the
/// directory holding `qemu-aarch64` and `qemu-riscv64`. bookworm's qemu-user 7.2 reserves
/// the whole span between the lowest and highest `PT_LOAD` of an executable at start-up, so
/// tests of executables with guest segments as program headers need a newer one.
pub fn ensure_qemu(cache_dir: &Path) -> Result<PathBuf> {
    let prefix = cache_dir.join("qemu");
    let bin = prefix.join("root/usr/bin");
    let stamp = prefix.join(".installed");
    if bin.join("qemu-aarch64").exists()
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(QEMU_STAMP)
    {
        return Ok(bin);
    }
    for old in ["root", "debs"] {
        let dir = prefix.join(old);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    let apt = AptConfig::new(&prefix.join("apt"), Arch::X86_64)?;
    apt.update()?;
    let debs = prefix.join("debs");
    std::fs::create_dir_all(&debs)?;
    apt.download(&["qemu-user".to_string()], &debs)?;
    let root = prefix.join("root");
    for entry in std::fs::read_dir(&debs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&path).arg(&root))?;
        }
    }
    let out = Command::new(bin.join("qemu-aarch64"))
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", bin.join("qemu-aarch64").display()))?;
    if !out.status.success() {
        bail!("{}/qemu-aarch64 --version failed", bin.display());
    }
    std::fs::write(&stamp, QEMU_STAMP)?;
    Ok(bin)
}
