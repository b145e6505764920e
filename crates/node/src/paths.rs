//! Paths a peer sends: relative, made of plain names, resolved inside one folder without ever
//! following a symbolic link, so nothing a client sends can reach outside the agent's job
//! folder.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Longest relative path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Deepest relative path accepted, in components.
pub const MAX_DEPTH: usize = 8;

/// Why a path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path does not stay inside the job folder or is not a plain relative path.
    #[error("path {path:?} refused: {why}")]
    Refused {
        /// The path as sent.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path on disk.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn refused(path: &str, why: &'static str) -> PathError {
    PathError::Refused { path: path.to_string(), why }
}

/// A checked relative path: non-empty, at most [`MAX_DEPTH`] plain names, no `.`/`..`, not
/// absolute, no NUL, no empty component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelPath {
    names: Vec<String>,
}

impl RelPath {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<RelPath, PathError> {
        if s.is_empty() {
            return Err(refused(s, "empty"));
        }
        if s.len() > MAX_PATH_LEN {
            return Err(refused(s, "too long"));
        }
        if s.contains('\0') {
            return Err(refused(s, "contains NUL"));
        }
        if s.starts_with('/') {
            return Err(refused(s, "absolute"));
        }
        let mut names = Vec::new();
        for part in s.split('/') {
            match part {
                "" => return Err(refused(s, "empty component")),
                "." | ".." => return Err(refused(s, "contains . or ..")),
                name => names.push(name.to_string()),
            }
        }
        if names.len() > MAX_DEPTH {
            return Err(refused(s, "too deep"));
        }
        Ok(RelPath { names })
    }

    /// The components.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The path as sent.
    pub fn as_string(&self) -> String {
        self.names.join("/")
    }

    /// `root/<path>`, after checking that every directory on the way (below `root`) is a
    /// real directory, not a symbolic link. The last component is not checked (it may not
    /// exist yet).
    pub fn resolve(&self, root: &Path) -> Result<PathBuf, PathError> {
        let mut p = root.to_path_buf();
        let (last, dirs) = self.names.split_last().ok_or_else(|| refused("", "empty"))?;
        for name in dirs {
            p.push(name);
            let meta = fs::symlink_metadata(&p).map_err(|source| PathError::Io { path: p.clone(), source })?;
            if meta.file_type().is_symlink() {
                return Err(refused(&self.as_string(), "goes through a symbolic link"));
            }
            if !meta.is_dir() {
                return Err(refused(&self.as_string(), "goes through something that is not a directory"));
            }
        }
        p.push(last);
        Ok(p)
    }

    /// Creates the directory `root/<path>` (its parent must exist; it must not).
    pub fn create_dir(&self, root: &Path) -> Result<PathBuf, PathError> {
        let p = self.resolve(root)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(|source| PathError::Io { path: p.clone(), source })?;
        Ok(p)
    }

    /// Creates the new file `root/<path>` for writing: never an existing file, never through
    /// a symbolic link (`O_EXCL | O_NOFOLLOW`).
    pub fn create_file(&self, root: &Path, mode: u32) -> Result<(File, PathBuf), PathError> {
        let p = self.resolve(root)?;
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&p)
            .map_err(|source| PathError::Io { path: p.clone(), source })?;
        Ok((f, p))
    }
}

/// Checks a link target: exactly `../<name>` with a plain name. Returns the name.
pub fn parent_link_target(target: &str) -> Result<&str, PathError> {
    let mut comps = Path::new(target).components();
    match (comps.next(), comps.next(), comps.next()) {
        (Some(Component::ParentDir), Some(Component::Normal(n)), None) => {
            let name = n.to_str().ok_or_else(|| refused(target, "not UTF-8"))?;
            RelPath::parse(name)?;
            Ok(name)
        }
        _ => Err(refused(target, "a link target must be ../<directory of the job>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_and_escapes_fail() {
        assert_eq!(RelPath::parse("final/core-1.img").unwrap().names(), ["final", "core-1.img"]);
        for bad in ["", "/etc/passwd", "..", "a/../b", "a/./b", "a//b", "a/", "./a", "a\0b", &"x/".repeat(20)] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parent_link_target("../pre-1").unwrap(), "pre-1");
        for bad in ["/tmp", "pre-1", "../../x", "../a/b", "..", "../.."] {
            assert!(parent_link_target(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn symlinks_on_the_way_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        let p = RelPath::parse("d/x").unwrap();
        assert!(matches!(p.create_file(root.path(), 0o644), Err(PathError::Refused { .. })));
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        // A symlink as the last component is not followed either.
        std::os::unix::fs::symlink(outside.path().join("y"), root.path().join("y")).unwrap();
        assert!(RelPath::parse("y").unwrap().create_file(root.path(), 0o644).is_err());
        assert!(!outside.path().join("y").exists());
    }
}
