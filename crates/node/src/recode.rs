//! Deciding whether an images directory needs recode before it can run on a host, and running
//! it (through [`hcontainer_recode::recode`]) on whichever side the migration chose.
//!
//! The plan depends on what the images hold ([`Kind`]: the native x86-64 program, or its
//! translation for some ISA), the host's ISA and what the user asked for ([`RunAs`]):
//!
//! | asked | image runnable on the host as it is | otherwise |
//! |---|---|---|
//! | `auto` | restore as it is | native on x86-64, translated elsewhere |
//! | `native` | recode unless native already (x86-64 hosts only) | recode to native |
//! | `translated` | recode unless translated for the host already | recode to translated |

use std::path::Path;

use hcontainer_recode::store::Store;
use hcontainer_recode::{HostIsa, Kind, Target};
use serde::{Deserialize, Serialize};

/// How the user wants the program to run on the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunAs {
    /// As it is when the host can run it, else native on x86-64 and translated elsewhere.
    #[default]
    Auto,
    /// The original binary (x86-64 hosts only).
    Native,
    /// The translation for the host's ISA.
    Translated,
}

/// Why a recode could not be planned or run.
#[derive(Debug, thiserror::Error)]
pub enum RecodeError {
    /// The recode itself failed, or the images could not be read.
    #[error(transparent)]
    Recode(#[from] hcontainer_recode::RecodeError),
    /// The translation store could not be used.
    #[error(transparent)]
    Store(#[from] hcontainer_recode::store::StoreError),
    /// A host ISA hcontainer does not know.
    #[error("unknown host ISA {0:?}")]
    UnknownIsa(String),
    /// Native execution asked for on a host that is not x86-64.
    #[error("the native program runs only on x86_64, not on {0}")]
    NativeElsewhere(String),
}

/// The [`HostIsa`] of an ISA name.
pub fn host_isa_of(name: &str) -> Result<HostIsa, RecodeError> {
    match name {
        "x86_64" => Ok(HostIsa::X86_64),
        "aarch64" => Ok(HostIsa::Aarch64),
        "riscv64" => Ok(HostIsa::Riscv64),
        other => Err(RecodeError::UnknownIsa(other.to_string())),
    }
}

/// What the images in `dir` hold.
pub fn kind(dir: &Path) -> Result<Kind, RecodeError> {
    Ok(hcontainer_recode::image::kind_of(dir)?)
}

/// The recode needed to run an image of `kind` on a `host` machine as asked, or `None` when
/// it restores as it is.
pub fn plan(kind: &Kind, host: &str, run_as: RunAs) -> Result<Option<Target>, RecodeError> {
    let isa = host_isa_of(host)?;
    let runnable = match kind {
        Kind::Native => isa == HostIsa::X86_64,
        Kind::Translated(t) => *t == isa,
    };
    let target = match run_as {
        RunAs::Auto if runnable => return Ok(None),
        RunAs::Auto if isa == HostIsa::X86_64 => Target::Native,
        RunAs::Auto => Target::Translated(isa),
        RunAs::Native if isa != HostIsa::X86_64 => return Err(RecodeError::NativeElsewhere(host.to_string())),
        RunAs::Native => Target::Native,
        RunAs::Translated => Target::Translated(isa),
    };
    let already = match (kind, target) {
        (Kind::Native, Target::Native) => true,
        (Kind::Translated(a), Target::Translated(b)) => *a == b,
        _ => false,
    };
    Ok((!already).then_some(target))
}

/// Recodes `input` into `output` (created) for `target`, finding executables in the store
/// at `store` (or the default store).
pub fn run(input: &Path, target: Target, store: Option<&Path>, output: &Path) -> Result<(), RecodeError> {
    let store = Store::open(store)?;
    hcontainer_recode::recode(input, target, &store, output)?;
    Ok(())
}

/// The name of a [`Kind`] for reports: `native` or `translated-<isa>`.
pub fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Native => "native".into(),
        Kind::Translated(isa) => format!("translated-{}", isa.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let t = |k: &Kind, h: &str, r: RunAs| plan(k, h, r).unwrap();
        assert_eq!(t(&Kind::Native, "x86_64", RunAs::Auto), None);
        assert_eq!(t(&Kind::Native, "x86_64", RunAs::Translated), Some(Target::Translated(HostIsa::X86_64)));
        assert_eq!(t(&Kind::Native, "aarch64", RunAs::Auto), Some(Target::Translated(HostIsa::Aarch64)));
        assert_eq!(t(&Kind::Translated(HostIsa::Aarch64), "aarch64", RunAs::Auto), None);
        assert_eq!(t(&Kind::Translated(HostIsa::Aarch64), "x86_64", RunAs::Auto), Some(Target::Native));
        assert_eq!(t(&Kind::Translated(HostIsa::X86_64), "x86_64", RunAs::Auto), None);
        assert_eq!(t(&Kind::Translated(HostIsa::X86_64), "x86_64", RunAs::Native), Some(Target::Native));
        assert_eq!(
            t(&Kind::Translated(HostIsa::X86_64), "aarch64", RunAs::Auto),
            Some(Target::Translated(HostIsa::Aarch64))
        );
        assert!(plan(&Kind::Native, "aarch64", RunAs::Native).is_err());
        assert!(plan(&Kind::Native, "mips", RunAs::Auto).is_err());
    }
}
