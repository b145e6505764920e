//! Finding a CRIU binary and learning its version.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the CRIU to use.
pub const CRIU_ENV: &str = "HCONTAINER_CRIU";

/// The oldest CRIU major version that works on current kernels (3.17 fails with
/// "vdso: Unexpected rt vDSO area bounds").
pub const MIN_MAJOR: u32 = 4;

/// A CRIU that ran and reported a usable version.
#[derive(Clone, Debug)]
pub struct Criu {
    path: PathBuf,
    version: String,
}

/// Why no usable CRIU was found.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// Nothing usable at any of the places looked at.
    #[error(
        "no usable CRIU (≥ {MIN_MAJOR}.0) found; tried:\n{tried}\n\
         install it with `cargo xtask setup` (private copy in .cache/criu), or name one with \
         --criu PATH or {CRIU_ENV}=PATH"
    )]
    NotFound {
        /// One line per candidate with the reason it was refused.
        tried: String,
    },
    /// The CRIU named explicitly cannot be used.
    #[error("CRIU at {path} is not usable: {reason}")]
    Unusable {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Criu {
    /// Finds CRIU: `explicit` (from `--criu`), else `$HCONTAINER_CRIU`, else
    /// `.cache/criu/bin/criu` in the current directory or an ancestor of it or of the running
    /// executable, else `criu` on `PATH`. Each candidate must run `--version` and be ≥ 4.0.
    pub fn locate(explicit: Option<&Path>) -> Result<Criu, LocateError> {
        if let Some(path) = explicit {
            return Criu::probe(path)
                .map_err(|reason| LocateError::Unusable { path: path.to_path_buf(), reason });
        }
        if let Some(path) = std::env::var_os(CRIU_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return Criu::probe(&path).map_err(|reason| LocateError::Unusable {
                path,
                reason: format!("{reason} (from {CRIU_ENV})"),
            });
        }
        let mut tried = Vec::new();
        for candidate in candidates() {
            match Criu::probe(&candidate) {
                Ok(criu) => return Ok(criu),
                Err(reason) => tried.push(format!("  {}: {reason}", candidate.display())),
            }
        }
        Err(LocateError::NotFound { tried: tried.join("\n") })
    }

    /// Runs `path --version` and checks the version.
    pub fn probe(path: &Path) -> Result<Criu, String> {
        if !path.exists() {
            return Err("does not exist".into());
        }
        let out = Command::new(path)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "`--version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| format!("unexpected `--version` output {:?}", text.trim()))?;
        let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        if major < MIN_MAJOR {
            return Err(format!("version {version} is older than {MIN_MAJOR}.0"));
        }
        Ok(Criu { path: path.to_path_buf(), version })
    }

    /// The binary (or launcher script).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// CRIU's version string, e.g. `4.1.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs `criu check`: `Ok(output)` when CRIU says the kernel is fine, else `Err(output)`.
    pub fn check(&self) -> Result<String, String> {
        let out = Command::new(&self.path)
            .arg("check")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.path.display()))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
}

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut roots = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.push(exe);
    }
    for root in roots {
        for dir in root.ancestors() {
            let c = dir.join(".cache/criu/bin/criu");
            if !out.contains(&c) && c.exists() {
                out.push(c);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join("criu");
            if c.exists() && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        out.push(PathBuf::from(".cache/criu/bin/criu"));
    }
    out
}
