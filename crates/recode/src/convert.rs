//! The one entry point of image recode: [`recode`] turns a CRIU images directory of one of
//! our processes — native x86-64 or translated for any host ISA — into the images of the same
//! process for a [`Target`], finding the executables it needs in the translation [`Store`].

use std::fs;
use std::path::{Path, PathBuf};

use hcontainer_abi::meta::HostIsa;

use crate::image::{self, RecodeError, Report, TranslatedExe};
use crate::store::Store;

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
            Target::Native => "native",
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
/// parent.
pub fn recode(input: &Path, to: Target, store: &Store, output: &Path) -> Result<Report, RecodeError> {
    let exe = image::exe_of(input)?;
    let kind = image::kind_of(input)?;
    match (&kind, to) {
        (Kind::Native, Target::Native) => Err(RecodeError::AlreadyTarget { dir: input.to_path_buf(), target: to }),
        (Kind::Translated(a), Target::Translated(b)) if *a == b => {
            Err(RecodeError::AlreadyTarget { dir: input.to_path_buf(), target: to })
        }
        (Kind::Native, Target::Translated(isa)) => {
            let sha = crate::store::sha256_file(&exe)?;
            let path = translation(store, &sha, &exe, isa)?;
            let t = TranslatedExe::open(&path)?;
            if isa != HostIsa::X86_64 {
                return Err(RecodeError::Unsupported(format!("native → {} is not supported yet", isa.name())));
            }
            let mut r = image::native_to_translated(input, &t, output)?;
            r.from = "native".into();
            r.exe = path;
            r.threads = 1;
            Ok(r)
        }
        (Kind::Translated(_), _) => {
            Err(RecodeError::Unsupported(format!("recode of a translated image to {to} is not supported yet")))
        }
    }
}

/// The stored translation for `isa` of the binary with hash `sha` (originally at `original`).
fn translation(store: &Store, sha: &str, original: &Path, isa: HostIsa) -> Result<PathBuf, RecodeError> {
    match store.get(sha, isa.name())? {
        Some(p) => Ok(fs::canonicalize(&p).unwrap_or(p)),
        None => Err(RecodeError::NoTranslation {
            store_path: store.root().join(sha).join(isa.name()),
            command: format!(
                "hcontainer translate {} --target {} --store {}",
                original.display(),
                isa.name(),
                store.root().display()
            ),
        }),
    }
}
