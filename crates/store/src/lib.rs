//! The translation store: translated executables kept by the SHA-256 of the original
//! (native) binary and the host ISA they were built for.
//!
//! Layout, per guest file, under `<root>/<sha256 hex>/`:
//! * `<isa>`: a runnable translation (mode 0755) — a static executable's translation, or the
//!   launcher of a dynamically linked program;
//! * `<isa>.unit`: the translation unit of a dynamically linked file (`hcontainer_abi::unit`),
//!   shared by every program that maps the same file;
//! * `native`: the original of a static executable (what a translated process returns to);
//! * `source`: the path the file was translated from, for messages.
//!
//! Every file is written through a temporary file and a rename so a reader never sees half a
//! file. The root is `--store DIR`, else `$HCONTAINER_STORE`, else `~/.cache/hcontainer/store`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable naming the store directory.
pub const STORE_ENV: &str = "HCONTAINER_STORE";

/// Host ISA names a store entry may have (`HostIsa::name()` of the translator), and
/// [`ORIGINAL`].
pub const ISAS: &[&str] = &["x86_64", "aarch64", "riscv64", ORIGINAL];

/// The entry name of the original binary itself (what a translated process returns to).
pub const ORIGINAL: &str = "native";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Neither `$HCONTAINER_STORE` nor `$HOME` is set.
    #[error("no store directory: set ${STORE_ENV} or $HOME, or pass --store DIR")]
    NoDefault,
    /// The ISA name is not one of [`ISAS`].
    #[error("unknown ISA {0:?} (expected one of x86_64, aarch64, riscv64, or native for the original)")]
    UnknownIsa(String),
    /// The key is not 64 lowercase hex digits.
    #[error("bad content hash {0:?}: expected 64 lowercase hex digits (SHA-256)")]
    BadHash(String),
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// SHA-256 of a file's content, as 64 lowercase hex digits.
pub fn sha256_file(path: &Path) -> Result<String, StoreError> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A translation store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `dir`, or the default one (`$HCONTAINER_STORE`, then
    /// `~/.cache/hcontainer/store`). The directory is created on the first [`Store::put`].
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        let root = match dir {
            Some(d) => d.to_path_buf(),
            None => match std::env::var_os(STORE_ENV).filter(|v| !v.is_empty()) {
                Some(d) => PathBuf::from(d),
                None => {
                    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or(StoreError::NoDefault)?;
                    PathBuf::from(home).join(".cache/hcontainer/store")
                }
            },
        };
        Ok(Store { root })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry(&self, sha256: &str, isa: &str) -> Result<PathBuf, StoreError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(StoreError::BadHash(sha256.to_string()));
        }
        if !ISAS.contains(&isa) {
            return Err(StoreError::UnknownIsa(isa.to_string()));
        }
        Ok(self.root.join(sha256).join(isa))
    }

    /// Records `translated` as the translation for `isa` of the binary whose content hash is
    /// `sha256`; copies the file into the store (replacing an older entry) and returns the
    /// stored path.
    pub fn put(&self, sha256: &str, isa: &str, translated: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.entry(sha256, isa)?;
        let dir = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = dir.join(format!(".{isa}.tmp{}", std::process::id()));
        fs::copy(translated, &tmp).map_err(io(translated))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        Ok(dest)
    }

    /// The stored translation for `isa` of the binary with content hash `sha256`.
    pub fn get(&self, sha256: &str, isa: &str) -> Result<Option<PathBuf>, StoreError> {
        let p = self.entry(sha256, isa)?;
        Ok(p.is_file().then_some(p))
    }

    /// Where the unit for `isa` of the guest file with content hash `sha256` is (or would be).
    pub fn unit_path(&self, sha256: &str, isa: &str) -> Result<PathBuf, StoreError> {
        let p = self.entry(sha256, isa)?;
        if isa == ORIGINAL {
            return Err(StoreError::UnknownIsa(isa.to_string()));
        }
        Ok(p.with_file_name(format!("{isa}{}", hcontainer_abi::unit::FILE_SUFFIX)))
    }

    /// The stored unit for `isa` of the guest file with content hash `sha256`.
    pub fn get_unit(&self, sha256: &str, isa: &str) -> Result<Option<PathBuf>, StoreError> {
        let p = self.unit_path(sha256, isa)?;
        Ok(p.is_file().then_some(p))
    }

    /// Records `unit` as the unit for `isa` of the guest file with content hash `sha256`,
    /// translated from `source`; returns the stored path.
    pub fn put_unit(&self, sha256: &str, isa: &str, unit: &Path, source: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.unit_path(sha256, isa)?;
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{isa}.unit.tmp{}", std::process::id()));
        fs::copy(unit, &tmp).map_err(io(unit))?;
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        let src = dir.join("source");
        let tmp = dir.join(format!(".source.tmp{}", std::process::id()));
        use std::os::unix::ffi::OsStrExt;
        fs::write(&tmp, source.as_os_str().as_bytes()).map_err(io(&tmp))?;
        fs::rename(&tmp, &src).map_err(io(&src))?;
        Ok(dest)
    }

    /// The path the guest file with content hash `sha256` was translated from, if recorded.
    pub fn source_of(&self, sha256: &str) -> Option<PathBuf> {
        let p = self.entry(sha256, ORIGINAL).ok()?.with_file_name("source");
        use std::os::unix::ffi::OsStringExt;
        fs::read(p).ok().map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
    }

    /// The launcher any dynamically linked program can be started with for `isa` (the program
    /// named at run time): `<root>/launcher/<isa>`, what a translated process's `execve` of
    /// another x86-64 program runs.
    pub fn launcher_path(&self, isa: &str) -> Result<PathBuf, StoreError> {
        if !ISAS.contains(&isa) || isa == ORIGINAL {
            return Err(StoreError::UnknownIsa(isa.to_string()));
        }
        Ok(self.root.join("launcher").join(isa))
    }

    /// Records `launcher` as the generic launcher for `isa`; returns the stored path.
    pub fn put_launcher(&self, isa: &str, launcher: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.launcher_path(isa)?;
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{isa}.tmp{}", std::process::id()));
        fs::copy(launcher, &tmp).map_err(io(launcher))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        Ok(dest)
    }

    /// The stored translation for `isa` of the binary at `original`.
    pub fn get_for(&self, original: &Path, isa: &str) -> Result<Option<PathBuf>, StoreError> {
        self.get(&sha256_file(original)?, isa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get_by_content_hash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let orig = dir.path().join("prog");
        let trans = dir.path().join("prog.x86_64");
        fs::write(&orig, b"original binary").expect("write");
        fs::write(&trans, b"translated binary").expect("write");
        let store = Store::open(Some(&dir.path().join("store"))).expect("open");
        let sha = sha256_file(&orig).expect("hash");
        assert_eq!(sha, hex::encode(Sha256::digest(b"original binary")));
        assert_eq!(store.get(&sha, "x86_64").expect("get"), None);
        let stored = store.put(&sha, "x86_64", &trans).expect("put");
        assert_eq!(store.get_for(&orig, "x86_64").expect("get"), Some(stored.clone()));
        assert_eq!(fs::read(&stored).expect("read"), b"translated binary");
        assert_eq!(store.get(&sha, "aarch64").expect("get"), None);
        // A changed original has another hash: no stale translation is found.
        fs::write(&orig, b"original binary v2").expect("write");
        assert_eq!(store.get_for(&orig, "x86_64").expect("get"), None);
    }

    #[test]
    fn bad_keys_are_refused() {
        let store = Store::open(Some(Path::new("/nonexistent"))).expect("open");
        assert!(matches!(store.get("abc", "x86_64"), Err(StoreError::BadHash(_))));
        let sha = "0".repeat(64);
        assert!(matches!(store.get(&sha, "mips"), Err(StoreError::UnknownIsa(_))));
        assert!(matches!(store.get(&"../".repeat(16), "x86_64"), Err(StoreError::BadHash(_))));
    }
}
