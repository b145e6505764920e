//! Translating a dynamically linked program: every file of its closure (see [`closure`])
//! becomes a unit in the translation store, unless the store already has one for that file's
//! content; an executable also gets its launcher.

use std::path::{Path, PathBuf};

use hcontainer_store::{sha256_file, Store, StoreError};

use crate::closure::{self, ClosureError, Member, SearchEnv};
use crate::{translate_unit, HostIsa, Stage, TranslateError, UnitReport};

/// Why a program could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Its closure is incomplete or a file of it is not translatable.
    #[error(transparent)]
    Closure(#[from] ClosureError),
    /// Translating one file failed.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A scratch file could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What happened to one file of the closure.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Translated now.
    Translated(UnitReport),
    /// The store already had its unit.
    Reused,
}

/// One file of a translated program.
#[derive(Clone, Debug)]
pub struct FileResult {
    /// The file and how it was found.
    pub member: Member,
    /// SHA-256 of its content (hex).
    pub sha256: String,
    /// Its unit in the store.
    pub unit: PathBuf,
    /// Whether it was translated or reused.
    pub outcome: Outcome,
}

/// Progress of [`translate_closure`].
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// File `index` of `total` (from 0) begins.
    File {
        /// Its position.
        index: usize,
        /// Files in the closure.
        total: usize,
        /// The file.
        path: &'a Path,
    },
    /// A stage of the current file's translation begins.
    Stage(Stage),
}

/// Every `.so` file (ELF shared objects by name: `*.so` and `*.so.*`) under `dir`, sorted.
pub fn shared_objects_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".so") || name.contains(".so.") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Translate the closure of `roots` for `isa` into `store`, reusing the units it has.
pub fn translate_closure(
    store: &Store,
    roots: &[PathBuf],
    env: &SearchEnv,
    isa: HostIsa,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<FileResult>, ProgramError> {
    let members = closure::closure(roots, env)?;
    let total = members.len();
    let mut out = Vec::with_capacity(total);
    for (index, member) in members.into_iter().enumerate() {
        progress(Progress::File { index, total, path: &member.path });
        let sha256 = sha256_file(&member.path)?;
        if let Some(unit) = store.get_unit(&sha256, isa.name())?.filter(|u| unit_is_current(u)) {
            out.push(FileResult { member, sha256, unit, outcome: Outcome::Reused });
            continue;
        }
        let dest = store.unit_path(&sha256, isa.name())?;
        let dir = dest.parent().unwrap_or(store.root()).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| ProgramError::Io { path: dir.clone(), source })?;
        let tmp = tempfile::Builder::new()
            .prefix(".unit")
            .tempfile_in(&dir)
            .map_err(|source| ProgramError::Io { path: dir.clone(), source })?;
        let report = translate_unit(&member.path, isa, tmp.path(), &mut |s| progress(Progress::Stage(s)))?;
        let unit = store.put_unit(&sha256, isa.name(), tmp.path(), &member.path)?;
        out.push(FileResult { member, sha256, unit, outcome: Outcome::Translated(report) });
    }
    Ok(out)
}

/// Whether the unit at `path` was made by this translator (its header's
/// `hcontainer_abi::unit::UNIT_VERSION` and `GuestState` version are ours).
pub fn unit_is_current(path: &Path) -> bool {
    use hcontainer_abi::unit::{UNIT_MAGIC, UNIT_VERSION};
    use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
    let Ok(f) = std::fs::File::open(path) else { return false };
    let cache = object::ReadCache::new(f);
    let Ok(elf) = ElfFile64::<object::Endianness, _>::parse(&cache) else { return false };
    let e = elf.endian();
    let entry = elf.elf_header().e_entry(e);
    let Some(off) = elf.elf_program_headers().iter().find_map(|p| {
        let (v, sz) = (p.p_vaddr(e), p.p_filesz(e));
        (p.p_type(e) == object::elf::PT_LOAD && entry >= v && entry + 16 <= v + sz).then(|| p.p_offset(e) + (entry - v))
    }) else {
        return false;
    };
    use object::ReadRef as _;
    let Ok(h) = (&cache).read_bytes_at(off, 16) else { return false };
    h[..8] == UNIT_MAGIC
        && u32::from_le_bytes([h[8], h[9], h[10], h[11]]) == UNIT_VERSION
        && u32::from_le_bytes([h[12], h[13], h[14], h[15]]) == u32::from(hcontainer_abi::GUEST_STATE_VERSION)
}

/// Write the launcher of the dynamically linked executable `program` (content hash `sha256`)
/// for `isa` into `store` (`<sha256>/<isa>`, where recode finds it) and return its path.
pub fn install_launcher(store: &Store, program: &Path, sha256: &str, isa: HostIsa) -> Result<PathBuf, ProgramError> {
    let abs = std::fs::canonicalize(program).map_err(|source| ProgramError::Io { path: program.to_path_buf(), source })?;
    std::fs::create_dir_all(store.root()).map_err(|source| ProgramError::Io { path: store.root().to_path_buf(), source })?;
    let root = std::fs::canonicalize(store.root())
        .map_err(|source| ProgramError::Io { path: store.root().to_path_buf(), source })?;
    let tmp = tempfile::Builder::new()
        .prefix(".launcher")
        .tempfile_in(&root)
        .map_err(|source| ProgramError::Io { path: root.clone(), source })?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(sha256, &mut sha).map_err(|_| StoreError::BadHash(sha256.to_string()))?;
    let size = std::fs::metadata(&abs).map_err(|source| ProgramError::Io { path: abs.clone(), source })?.len();
    crate::write_launcher(isa, &abs, sha, size, &root, tmp.path())?;
    let stored = store.put(sha256, isa.name(), tmp.path())?;
    // The generic launcher, for programs a translated one executes.
    crate::write_launcher(isa, Path::new(""), [0; 32], 0, &root, tmp.path())?;
    store.put_launcher(isa.name(), tmp.path())?;
    Ok(stored)
}
