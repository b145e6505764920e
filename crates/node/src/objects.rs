//! Translation store objects that travel with a job: a dynamically linked program runs on a
//! translating destination from its launcher and the units of the files it maps, which the
//! destination may not have yet. They are content addressed, as image layers are: the client
//! names what the program needs (`<sha256>/<isa>` for the launcher, `<sha256>/<isa>.unit` for
//! each mapped file), the agent answers with what its store lacks, and only those travel.
//! The agent checks each object (its metadata names the file hash and ISA of its store name)
//! before it enters the store.

use std::path::{Path, PathBuf};

use hcontainer_abi::meta::{FLAG_LAUNCHER, FLAG_UNIT};
use hcontainer_recode::notify;
use hcontainer_recode::store::{sha256_file, Store};

/// Why the objects of a program could not be listed or one was refused.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A name that is not `<64 hex>/<isa>` or `<64 hex>/<isa>.unit`.
    #[error("{0:?} is not the name of a translation store object")]
    BadName(String),
    /// The local store lacks an object the destination needs.
    #[error("the store {} has no {isa} {what} for {}: run `hcontainer translate {} --target {isa} --store {}`", store.display(), file.display(), file.display(), store.display())]
    Missing {
        /// The store.
        store: PathBuf,
        /// The ISA.
        isa: String,
        /// `unit` or `launcher`.
        what: &'static str,
        /// The guest file.
        file: PathBuf,
    },
    /// An object is not what its name says.
    #[error("{name}: {why}")]
    Mismatch {
        /// The store name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Reading the process or a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The store or metadata could not be read.
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] hcontainer_recode::store::StoreError),
}

/// A store object's name, checked: (content hash, ISA, whether a unit).
pub fn parse_name(name: &str) -> Result<(String, String, bool), ObjectError> {
    let bad = || ObjectError::BadName(name.chars().take(200).collect());
    let (sha, file) = name.split_once('/').ok_or_else(bad)?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(bad());
    }
    let (isa, unit) = match file.strip_suffix(hcontainer_abi::unit::FILE_SUFFIX) {
        Some(isa) => (isa, true),
        None => (file, false),
    };
    if !matches!(isa, "x86_64" | "aarch64" | "riscv64") {
        return Err(bad());
    }
    Ok((sha.to_string(), isa.to_string(), unit))
}

/// Where object `name` is in `store`.
pub fn path_in(store: &Store, name: &str) -> Result<PathBuf, ObjectError> {
    let (sha, isa, unit) = parse_name(name)?;
    Ok(if unit { store.unit_path(&sha, &isa)? } else { store.root().join(&sha).join(&isa) })
}

/// Checks that the file at `path` is the object `name`: a unit (or launcher) whose metadata
/// records the content hash and ISA of its name.
pub fn check(path: &Path, name: &str) -> Result<(), ObjectError> {
    let (sha, isa, unit) = parse_name(name)?;
    let mismatch = |why: String| ObjectError::Mismatch { name: name.to_string(), why };
    let meta = notify::read_meta(path)
        .map_err(|e| mismatch(e.to_string()))?
        .ok_or_else(|| mismatch("no hcontainer metadata".into()))?;
    let h = meta.header;
    let flag = if unit { FLAG_UNIT } else { FLAG_LAUNCHER };
    if h.flags & flag == 0 {
        return Err(mismatch(format!("not a {}", if unit { "translation unit" } else { "launcher" })));
    }
    if hex::encode(h.guest_sha256) != sha {
        return Err(mismatch(format!("it translates the file with SHA-256 {}", hex::encode(h.guest_sha256))));
    }
    if h.host_isa.name() != isa {
        return Err(mismatch(format!("it is for {}", h.host_isa.name())));
    }
    Ok(())
}

/// Whether process `pid` runs a dynamically linked program (natively, or through its
/// launcher).
pub fn is_dynamic(pid: u32) -> Result<bool, ObjectError> {
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    if let Some(m) = notify::read_meta(&exe)? {
        return Ok(m.header.flags & FLAG_LAUNCHER != 0);
    }
    let f = std::fs::read(&exe).map_err(|source| ObjectError::Io { path: exe.clone(), source })?;
    Ok(has_interp(&f))
}

fn has_interp(elf: &[u8]) -> bool {
    use object::read::elf::{FileHeader as _, ProgramHeader as _};
    let Ok(h) = object::elf::FileHeader64::<object::Endianness>::parse(elf) else { return false };
    let Ok(e) = h.endian() else { return false };
    h.program_headers(e, elf).is_ok_and(|ph| ph.iter().any(|p| p.p_type(e) == object::elf::PT_INTERP))
}

/// The store objects process `pid` (a dynamically linked program) needs to run translated for
/// `isa`: its launcher and the unit of every file it maps with execute permission, each with
/// its path in `store`.
pub fn needed(pid: u32, store: &Store, isa: &str) -> Result<Vec<(String, PathBuf)>, ObjectError> {
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let program_sha = match notify::read_meta(&exe)? {
        Some(m) => hex::encode(m.header.guest_sha256),
        None => sha256_file(&exe)?,
    };
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let launcher = format!("{program_sha}/{isa}");
    let lpath = path_in(store, &launcher)?;
    let program_path = std::fs::read_link(&exe).unwrap_or(exe.clone());
    if !lpath.is_file() {
        return Err(ObjectError::Missing { store: store.root().to_path_buf(), isa: isa.into(), what: "launcher", file: program_path });
    }
    out.push((launcher, lpath));
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path).map_err(|source| ObjectError::Io { path: maps_path.clone().into(), source })?;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || !f[1].contains('x') {
            continue;
        }
        let Some(i) = line.find('/') else { continue };
        let path = PathBuf::from(&line[i..]);
        let Some(start) = f[0].split_once('-').and_then(|(a, _)| u64::from_str_radix(a, 16).ok()) else { continue };
        if hcontainer_abi::layout::is_runtime_addr(start) {
            continue;
        }
        let via = PathBuf::from(format!("/proc/{pid}/map_files/{}", f[0]));
        let file = if via.exists() { via } else { path.clone() };
        let sha = sha256_file(&file)?;
        let name = format!("{sha}/{isa}{}", hcontainer_abi::unit::FILE_SUFFIX);
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let p = path_in(store, &name)?;
        if !p.is_file() {
            return Err(ObjectError::Missing { store: store.root().to_path_buf(), isa: isa.into(), what: "unit", file: path });
        }
        out.push((name, p));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let sha = "a".repeat(64);
        assert_eq!(parse_name(&format!("{sha}/aarch64.unit")).unwrap(), (sha.clone(), "aarch64".into(), true));
        assert_eq!(parse_name(&format!("{sha}/x86_64")).unwrap(), (sha.clone(), "x86_64".into(), false));
        for bad in ["", "x/aarch64", &format!("{sha}/mips"), &format!("{sha}/../x"), &format!("../{sha}/aarch64"), &format!("{}/aarch64", "A".repeat(64))] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
