//! apt with a private configuration for Debian arm64 packages: own source list, lists, cache
//! and an empty dpkg status, the system's Debian keyring. The host's apt sources, its
//! architectures and its installed packages are never touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_captured, Error};

/// A private apt for one Debian suite and architecture.
pub struct Apt {
    options: Vec<String>,
}

impl Apt {
    /// Configuration under `dir` for `suite` (e.g. `bookworm`) and Debian architecture `arch`.
    pub fn new(dir: &Path, suite: &str, arch: &str) -> Result<Apt, Error> {
        let lists = dir.join("lists");
        let cache = dir.join("cache");
        for d in [lists.join("partial"), cache.join("archives/partial")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        if !keyring.exists() {
            return Err(Error::MissingTool {
                tool: keyring.display().to_string(),
                hint: "apt-get install debian-archive-keyring".to_string(),
            });
        }
        let sources = dir.join("sources.list");
        let text = format!(
            "deb [signed-by={}] http://deb.debian.org/debian {suite} main\n",
            keyring.display()
        );
        std::fs::write(&sources, text).map_err(|e| Error::io(&sources, e))?;
        let status = dir.join("status");
        std::fs::write(&status, "").map_err(|e| Error::io(&status, e))?;
        let options = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            format!("Dir::State::status={}", status.display()),
            format!("APT::Architecture={arch}"),
            format!("APT::Architectures={arch}"),
            "APT::Install-Recommends=false".to_string(),
            // Downloads land in a root-owned directory the `_apt` user cannot write.
            "APT::Sandbox::User=root".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect();
        Ok(Apt { options })
    }

    /// `apt-get update` of the private lists.
    pub fn update(&self) -> Result<(), Error> {
        run_captured(
            Command::new("apt-get")
                .args(&self.options)
                .args(["-qq", "update"]),
        )?;
        Ok(())
    }

    /// The first package `package` depends on whose name starts with `prefix` (how the
    /// `linux-image-arm64` meta-package names the current kernel).
    pub fn dependency(&self, package: &str, prefix: &str) -> Result<String, Error> {
        let out = run_captured(
            Command::new("apt-cache")
                .args(&self.options)
                .args(["show", "--no-all-versions", package])
                .env("LC_ALL", "C"),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| l.strip_prefix("Depends:"))
            .flat_map(|deps| deps.split(','))
            .filter_map(|d| d.split_whitespace().next())
            .find(|name| name.starts_with(prefix))
            .map(str::to_string)
            .ok_or_else(|| Error::Package {
                package: package.to_string(),
                reason: format!("depends on no package named {prefix}*"),
            })
    }

    /// `packages` and everything they depend on (not recommends), as apt would install them
    /// into an empty system.
    pub fn closure(&self, packages: &[String]) -> Result<Vec<String>, Error> {
        let out = run_captured(
            Command::new("apt-get")
                .args(&self.options)
                .args(["-s", "-qq", "install"])
                .args(packages)
                .env("LC_ALL", "C"),
        )?;
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(Error::Package {
                package: packages.join(" "),
                reason: "apt-get install --simulate listed nothing to install".to_string(),
            });
        }
        Ok(names)
    }

    /// Downloads `packages` into `into` and returns the `.deb` files there.
    pub fn download(&self, packages: &[String], into: &Path) -> Result<Vec<PathBuf>, Error> {
        std::fs::create_dir_all(into).map_err(|e| Error::io(into, e))?;
        run_captured(
            Command::new("apt-get")
                .current_dir(into)
                .args(&self.options)
                .args(["-qq", "download"])
                .args(packages),
        )?;
        let mut debs = Vec::new();
        for entry in std::fs::read_dir(into).map_err(|e| Error::io(into, e))? {
            let path = entry.map_err(|e| Error::io(into, e))?.path();
            if path.extension().is_some_and(|e| e == "deb") {
                debs.push(path);
            }
        }
        debs.sort();
        Ok(debs)
    }
}

/// Unpacks `deb` into `root` with `dpkg -x`.
pub fn extract(deb: &Path, root: &Path) -> Result<(), Error> {
    run_captured(Command::new("dpkg").arg("-x").arg(deb).arg(root))?;
    Ok(())
}
