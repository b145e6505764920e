//! The one entry point of image recode: [`recode`] turns a CRIU images directory of one of
//! our processes — native x86-64 or translated for any host ISA — into the images of the same
//! process for a [`Target`], finding the executables it needs in the translation [`Store`].
//!
//! The program is identified by the SHA-256 of the original binary: the dumped executable's
//! own hash for a native image, the hash its metadata records for a translated one. The
//! target executable comes from the store under that hash (`<sha>/<isa>` for translations,
//! `<sha>/native` for the original, which a native → translated recode records there).

use std::fs;
use std::path::{Path, PathBuf};

use hcontainer_abi::meta::HostIsa;

use crate::exe::Exe;
use crate::image::{self, RecodeError, Report};
use crate::store::{sha256_file, Store, ORIGINAL};

/// Where the recoded process will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The original binary, natively on x86-64.
    Native,
    /// The translated binary for a host ISA.
    Translated(HostIsa),
}

impl Target {
    /// The name used on the command line and in the store (`native`, `x86_64`, …).
    pub fn name(self) -> &'static str {
        match self {
            Target::Native => ORIGINAL,
            Target::Translated(isa) => isa.name(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of process an images directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The original binary running natively.
    Native,
    /// A translated binary for this host ISA.
    Translated(HostIsa),
}

/// Recodes the images in `input` into images of the same process running as `to`, written
/// to `output` (created; must be new or empty). Page data is never copied: unchanged files
/// are hard links and the memory pages stay in `input`, which the output names as its CRIU
/// parent. Cost: O(threads + VMAs + executable size).
///
/// Translated → translated for the same ISA swaps in the store's executable when it differs
/// from the image's (a newer translation of the same program); images already of the
/// target's executable, and native images recoded to native, are errors
/// ([`RecodeError::AlreadyTarget`]).
pub fn recode(input: &Path, to: Target, store: &Store, output: &Path) -> Result<Report, RecodeError> {
    let mut clock = image::Phases::start();
    let mut phases = Vec::new();
    let exe_path = image::exe_of(input)?;
    // The images' executable is read once, for the kind and as the source.
    let opened = Exe::open(&exe_path);
    let kind = image::kind_with(input, opened.as_ref().ok())?;
    clock.mark(&mut phases, "source executable, kind");
    if kind == Kind::Native && to == Target::Native {
        return Err(RecodeError::AlreadyTarget { dir: input.to_path_buf(), target: to });
    }
    let mut warnings = Vec::new();
    let (sha, src) = match kind {
        Kind::Native => {
            let src = opened?;
            if let Some(want) = image::exe_size_of(input)? {
                if want != src.size {
                    return Err(RecodeError::WrongBinary {
                        path: exe_path,
                        why: format!("the dumped executable had {want} bytes, this file has {}", src.size),
                    });
                }
            }
            let sha = sha256_file(&exe_path)?;
            // Remember the original, so that the process can come back to it (a dynamically
            // linked one comes back to its own file, which its launcher names).
            if !src.dynamic && store.get(&sha, ORIGINAL)?.is_none() {
                if let Err(e) = store.put(&sha, ORIGINAL, &exe_path) {
                    warnings.push(format!("the original binary was not recorded in the store: {e}"));
                }
            }
            (sha, Some(src))
        }
        Kind::Translated(_) => match opened {
            Ok(src) => {
                let sha = src.meta.map(|m| hex::encode(m.guest_sha256)).unwrap_or_default();
                (sha, Some(src))
            }
            // Not on this machine: a store path names the hash.
            Err(e) => {
                let sha = exe_path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or(e)?;
                warnings.push(format!(
                    "{} is not readable here: the runtime's state (guest signal handlers) is not carried over",
                    exe_path.display()
                ));
                (sha, None)
            }
        },
    };
    clock.mark(&mut phases, "program hash, store");
    // The original binary, for the hint when a translation is missing.
    let original = match kind {
        Kind::Native => exe_path.clone(),
        Kind::Translated(_) => match store.get(&sha, ORIGINAL) {
            Ok(Some(p)) => p,
            _ => PathBuf::from(format!("<the original binary, SHA-256 {sha}>")),
        },
    };
    // A dynamically linked program returns to its own file, which its launcher names (this
    // machine's launcher when the image's is not readable here).
    let launched = |s: &Exe| s.launches.clone();
    let program = match (&kind, to) {
        (Kind::Translated(isa), Target::Native) => src.as_ref().and_then(launched).or_else(|| {
            store.get(&sha, isa.name()).ok().flatten().and_then(|p| Exe::open(&p).ok()).and_then(|e| e.launches)
        }),
        _ => None,
    };
    let dst_path = match program {
        Some(p) => p,
        None => lookup(store, &sha, &original, to)?,
    };
    // Translated for the same ISA: only a different executable (a newer translation) is a
    // recode; the very same one is the image as it is.
    if matches!((&kind, to), (Kind::Translated(a), Target::Translated(b)) if *a == b) {
        let same = fs::canonicalize(&exe_path).ok().is_some_and(|p| p == dst_path)
            || src.as_ref().is_some_and(|s| s.same_content(&dst_path));
        if same {
            return Err(RecodeError::AlreadyTarget { dir: input.to_path_buf(), target: to });
        }
    }
    let dst = Exe::open(&dst_path)?;
    match (to, dst.meta) {
        (Target::Native, Some(_)) => {
            return Err(RecodeError::WrongBinary { path: dst_path, why: "the stored original is a translated executable".into() })
        }
        (Target::Native, None) => {
            let got = sha256_file(&dst_path)?;
            if got != sha {
                return Err(RecodeError::WrongBinary {
                    path: dst_path,
                    why: format!("its SHA-256 is {got}, the translated process is of {sha}"),
                });
            }
        }
        (Target::Translated(_), None) => {
            return Err(RecodeError::WrongBinary { path: dst_path, why: "no hcontainer metadata: not a translation".into() })
        }
        (Target::Translated(isa), Some(m)) => {
            if hex::encode(m.guest_sha256) != sha {
                return Err(RecodeError::WrongBinary {
                    path: dst_path,
                    why: format!("it translates the binary with SHA-256 {}, the image is of {sha}", hex::encode(m.guest_sha256)),
                });
            }
            if m.host_isa != isa {
                return Err(RecodeError::WrongBinary {
                    path: dst_path,
                    why: format!("it is translated for {}, not {}", m.host_isa.name(), isa.name()),
                });
            }
        }
    }
    clock.mark(&mut phases, "target executable");
    let mut report = image::convert(input, &kind, src.as_ref(), to, &dst, output)?;
    report.warnings.splice(0..0, warnings);
    phases.append(&mut report.phases);
    report.phases = phases;
    if let Some(path) = std::env::var_os(PHASES_ENV).filter(|v| !v.is_empty()) {
        append_phases(Path::new(&path), &report.phases);
    }
    Ok(report)
}

/// Environment variable naming a file [`recode`] appends its phase timings to (one JSON
/// object per line: `{"phase": microseconds, ...}`), for benchmarks that run it inside
/// another command.
pub const PHASES_ENV: &str = "HCONTAINER_RECODE_PHASES";

/// Appends one line of phase timings to `path`; failures are ignored (measurement only).
fn append_phases(path: &Path, phases: &[(&'static str, u64)]) {
    use std::io::Write;
    let body: Vec<String> = phases.iter().map(|(p, us)| format!("{p:?}: {us}")).collect();
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{{{}}}", body.join(", "));
    }
}

/// The store entry for `to` of the binary with hash `sha` (originally at `original`).
fn lookup(store: &Store, sha: &str, original: &Path, to: Target) -> Result<PathBuf, RecodeError> {
    match store.get(sha, to.name())? {
        Some(p) => Ok(fs::canonicalize(&p).unwrap_or(p)),
        None => Err(RecodeError::NoTranslation {
            target: to,
            store_path: store.root().join(sha).join(to.name()),
            command: match to {
                Target::Native => format!(
                    "hcontainer translate <the original binary, SHA-256 {sha}> --target x86_64 -o <output> --store {}` \
                     (which records the original too) or `cp <the original binary> {}",
                    store.root().display(),
                    store.root().join(sha).join(ORIGINAL).display()
                ),
                Target::Translated(isa) => format!(
                    "hcontainer translate {} --target {} -o <output> --store {}",
                    original.display(),
                    isa.name(),
                    store.root().display()
                ),
            },
        }),
    }
}
