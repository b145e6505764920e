//! ISA names: the host's (from the build target, so an aarch64 build of the agent reports
//! aarch64) and that of a dumped process (from CRIU's `core-<pid>.img`).

use std::path::Path;

use hcontainer_criu_image::pb::{CoreEntry, PstreeEntry};
use hcontainer_criu_image::ImageFile;

/// The ISA this program was built for: `x86_64`, `aarch64` or `riscv64`.
pub fn host_isa() -> &'static str {
    std::env::consts::ARCH
}

/// The ISA name of CRIU's `core_entry.mtype`.
pub fn isa_of_mtype(mtype: i32) -> Option<&'static str> {
    match mtype {
        1 => Some("x86_64"),
        3 => Some("aarch64"),
        8 => Some("riscv64"),
        _ => None,
    }
}

/// Why an image's ISA could not be told.
#[derive(Debug, thiserror::Error)]
pub enum IsaError {
    /// An image file could not be read.
    #[error(transparent)]
    Image(#[from] hcontainer_criu_image::DecodeError),
    /// The image holds no process or no core.
    #[error("{}: {what}", dir.display())]
    Missing {
        /// Images directory.
        dir: std::path::PathBuf,
        /// What is missing.
        what: String,
    },
}

/// The ISA of the root process dumped in `dir`.
pub fn image_isa(dir: &Path) -> Result<String, IsaError> {
    let missing = |what: String| IsaError::Missing { dir: dir.to_path_buf(), what };
    let procs: Vec<PstreeEntry> = ImageFile::read(&dir.join("pstree.img"))?.decode_all()?;
    let pid = procs.first().map(|p| p.pid).ok_or_else(|| missing("pstree.img holds no process".into()))?;
    let core_name = format!("core-{pid}.img");
    let cores: Vec<CoreEntry> = ImageFile::read(&dir.join(&core_name))?.decode_all()?;
    let mtype = cores.first().map(|c| c.mtype).ok_or_else(|| missing(format!("{core_name} holds no entry")))?;
    isa_of_mtype(mtype)
        .map(str::to_string)
        .ok_or_else(|| missing(format!("{core_name}: unknown machine type {mtype}")))
}

/// Whether a running process executes a translation made by hcontainer (its executable
/// carries the `.hcontainer.meta` section) — `translated` — or its own code — `native`.
pub fn process_mode(pid: u32) -> &'static str {
    let Ok(data) = std::fs::read(format!("/proc/{pid}/exe")) else {
        return "unknown";
    };
    let needle = b".hcontainer.meta";
    if data.windows(needle.len()).any(|w| w == needle) {
        "translated"
    } else {
        "native"
    }
}
