//! What the agent checks in a job's images before CRIU (or recode) sees them: CRIU runs as
//! root and restores whatever its images say, so images from the network are held to three
//! rules.
//!
//! 1. Every file of the images directory (and of the pre-copy directories its `parent` link
//!    chain leads to, all inside the job) is a CRIU image hcontainer knows by name or one of
//!    the few files a dump leaves beside them (its log, CRIU's statistics, hcontainer's
//!    timings); every image with entries decodes with hcontainer's codec
//!    (`hcontainer-criu-image`), and the process and thread images (`core-*`, `mm-*`,
//!    `pagemap-*`) name only pids of the tree the `pstree` image lists.
//! 2. The credentials of every thread (`core-*.img`) stay within what the agent permits:
//!    no capability outside the agent's own bounding set (a restore never gives a process
//!    more privilege than the agent could itself hold), and user and group ids inside
//!    [`CredsPolicy::ids`].
//! 3. Page contents (`pages-*.img`) are raw: they are never interpreted by the agent.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use hcontainer_criu_image::{magic, pb, ImageFile, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, INVENTORY_MAGIC};

/// Deepest pre-copy chain followed.
const MAX_CHAIN: usize = 64;

/// What the agent permits in the credentials of the trees it restores.
#[derive(Clone, Debug)]
pub struct CredsPolicy {
    /// Allowed user and group ids (real, effective, saved, file system, supplementary).
    pub ids: Vec<RangeInclusive<u32>>,
    /// Capabilities a thread may hold (effective, permitted, inheritable, ambient, bounding),
    /// as a 64-bit mask; default: the agent's own bounding set.
    pub caps: u64,
}

impl Default for CredsPolicy {
    fn default() -> Self {
        CredsPolicy { ids: vec![0..=u32::MAX], caps: own_bounding_set() }
    }
}

/// The bounding capability set of this process (`CapBnd` in `/proc/self/status`); 0 when
/// it cannot be read.
pub fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Parses `0-65535,100000-165535` into id ranges.
pub fn parse_ids(s: &str) -> Result<Vec<RangeInclusive<u32>>, String> {
    s.split(',')
        .map(|part| {
            let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("{t:?} is not a user or group id"));
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(format!("range {part:?} is empty"));
                    }
                    Ok(a..=b)
                }
                None => num(part).map(|a| a..=a),
            }
        })
        .collect()
}

/// Why images were refused.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A file that is not part of a CRIU dump.
    #[error("{}: not a CRIU image this agent restores", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// An image that does not decode.
    #[error("{0}")]
    Decode(String),
    /// Images of processes the tree does not list.
    #[error("{}: names pid {pid}, which the tree's pstree image does not list", path.display())]
    Stranger {
        /// The file.
        path: PathBuf,
        /// The pid.
        pid: u32,
    },
    /// Credentials the agent does not permit.
    #[error("{}: {what} — not permitted on this agent ({why})", path.display())]
    Creds {
        /// The core image.
        path: PathBuf,
        /// What it asks for.
        what: String,
        /// The rule.
        why: String,
    },
    /// The directory structure is not a job's.
    #[error("{}: {why}", path.display())]
    Layout {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Files a dump directory may hold besides images.
fn is_companion(name: &str) -> bool {
    matches!(name, "dump.log" | "pre-dump.log" | "restore.log" | "stats-dump" | "stats-restore")
        || (name.starts_with("hcontainer-") && name.ends_with(".json"))
}

/// Checks the images directory `dir` of the job in `job_dir` and its `parent` chain.
pub fn check(job_dir: &Path, dir: &Path, policy: &CredsPolicy) -> Result<(), ValidateError> {
    let mut seen = HashSet::new();
    let mut at = dir.to_path_buf();
    let mut first = true;
    for _ in 0..MAX_CHAIN {
        if !seen.insert(at.clone()) {
            return Err(ValidateError::Layout { path: at, why: "the parent links make a loop".into() });
        }
        let parent = check_dir(&at, policy, first)?;
        first = false;
        match parent {
            None => return Ok(()),
            Some(p) => {
                // The agent made the link and checked it is `../<dir of the job>`.
                if p.parent() != Some(job_dir) {
                    return Err(ValidateError::Layout { path: p, why: "a parent outside the job".into() });
                }
                at = p;
            }
        }
    }
    Err(ValidateError::Layout { path: dir.to_path_buf(), why: format!("a pre-copy chain deeper than {MAX_CHAIN}") })
}

/// Pids that name the per-process images: `core-12.img` → 12.
fn id_of(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.strip_suffix(".img")?.parse().ok()
}

/// Checks one directory; returns the directory its `parent` link leads to.
fn check_dir(dir: &Path, policy: &CredsPolicy, is_restored: bool) -> Result<Option<PathBuf>, ValidateError> {
    let io = |path: &Path, e: std::io::Error| ValidateError::Layout { path: path.to_path_buf(), why: e.to_string() };
    let mut parent = None;
    let mut images = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type().map_err(|e| io(&path, e))?;
        if ft.is_symlink() {
            if name != "parent" {
                return Err(ValidateError::Foreign { path });
            }
            let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
            parent = Some(dir.parent().unwrap_or(dir).join(target.strip_prefix("..").unwrap_or(&target)));
            continue;
        }
        if !ft.is_file() {
            return Err(ValidateError::Foreign { path });
        }
        if is_companion(&name) || magic::is_raw_name(&name) {
            continue;
        }
        images.push((name, path));
    }
    images.sort();
    let mut pids: Option<HashSet<u32>> = None;
    let mut decoded = Vec::new();
    for (name, path) in images {
        let file = ImageFile::read(&path).map_err(|e| ValidateError::Decode(e.to_string()))?;
        // A CRIU image starts with one of CRIU's magics (the codec checks the rest);
        // anything else is no part of a dump.
        let head = std::fs::File::open(&path).and_then(|mut f| {
            let mut b = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut b).map(|()| u32::from_le_bytes(b))
        });
        let is_image = matches!(head, Ok(m) if m == INVENTORY_MAGIC || m == IMG_COMMON_MAGIC || m == IMG_SERVICE_MAGIC);
        if !is_image {
            return Err(ValidateError::Foreign { path });
        }
        if name == "pstree.img" {
            let entries: Vec<pb::PstreeEntry> = file.decode_all().map_err(|e| ValidateError::Decode(e.to_string()))?;
            let mut set = HashSet::new();
            for e in &entries {
                set.insert(e.pid);
                set.extend(e.threads.iter().copied());
            }
            pids = Some(set);
        }
        decoded.push((name, path, file));
    }
    if is_restored && pids.is_none() {
        return Err(ValidateError::Layout { path: dir.to_path_buf(), why: "no pstree.img: not a dump".into() });
    }
    for (name, path, file) in &decoded {
        let pid = ["core-", "mm-", "pagemap-"].iter().find_map(|p| id_of(name, p));
        if let (Some(pid), Some(pids)) = (pid, &pids) {
            if !pids.contains(&pid) {
                return Err(ValidateError::Stranger { path: path.clone(), pid });
            }
        }
        if name.starts_with("core-") {
            let cores: Vec<pb::CoreEntry> = file.decode_all().map_err(|e| ValidateError::Decode(e.to_string()))?;
            for core in cores {
                if let Some(creds) = core.thread_core.and_then(|t| t.creds) {
                    check_creds(path, &creds, policy)?;
                }
            }
        }
    }
    Ok(parent)
}

fn mask(words: &[u32]) -> u64 {
    words.iter().take(2).enumerate().fold(0, |m, (i, w)| m | (u64::from(*w) << (32 * i)))
        | if words.iter().skip(2).any(|w| *w != 0) { u64::MAX } else { 0 }
}

fn check_creds(path: &Path, c: &pb::CredsEntry, policy: &CredsPolicy) -> Result<(), ValidateError> {
    let ids = [
        ("uid", c.uid),
        ("gid", c.gid),
        ("euid", c.euid),
        ("egid", c.egid),
        ("suid", c.suid),
        ("sgid", c.sgid),
        ("fsuid", c.fsuid),
        ("fsgid", c.fsgid),
    ];
    for (what, id) in ids.into_iter().chain(c.groups.iter().map(|g| ("supplementary group", *g))) {
        if !policy.ids.iter().any(|r| r.contains(&id)) {
            return Err(ValidateError::Creds {
                path: path.to_path_buf(),
                what: format!("{what} {id}"),
                why: format!("ids allowed: {}", show_ranges(&policy.ids)),
            });
        }
    }
    let sets = [("effective", &c.cap_eff), ("permitted", &c.cap_prm), ("inheritable", &c.cap_inh), ("ambient", &c.cap_amb), ("bounding", &c.cap_bnd)];
    for (what, set) in sets {
        let extra = mask(set) & !policy.caps;
        if extra != 0 {
            return Err(ValidateError::Creds {
                path: path.to_path_buf(),
                what: format!("{what} capabilities {extra:#x}"),
                why: format!("beyond the agent's own bounding set {:#x}", policy.caps),
            });
        }
    }
    Ok(())
}

fn show_ranges(r: &[RangeInclusive<u32>]) -> String {
    r.iter().map(|r| format!("{}-{}", r.start(), r.end())).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_parse() {
        assert_eq!(parse_ids("0-10,1000").unwrap(), vec![0..=10, 1000..=1000]);
        assert!(parse_ids("5-1").is_err());
        assert!(parse_ids("x").is_err());
    }

    #[test]
    fn credentials_outside_the_policy_are_refused() {
        let p = Path::new("core-1.img");
        let mut c = pb::CredsEntry { cap_eff: vec![0x1, 0], cap_bnd: vec![0xffff_ffff, 0x1ff], ..Default::default() };
        let policy = CredsPolicy { ids: vec![0..=0], caps: 0x1ff_ffff_ffff };
        assert!(check_creds(p, &c, &policy).is_ok());
        c.cap_bnd = vec![0xffff_ffff, 0xffff_ffff];
        let e = check_creds(p, &c, &policy).unwrap_err().to_string();
        assert!(e.contains("bounding capabilities"), "{e}");
        c.cap_bnd = vec![];
        c.euid = 1000;
        let e = check_creds(p, &c, &policy).unwrap_err().to_string();
        assert!(e.contains("euid 1000"), "{e}");
    }

    #[test]
    fn foreign_files_and_strangers_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let job = d.path();
        let dir = job.join("final");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("evil.sh"), b"#!/bin/sh").unwrap();
        let e = check(job, &dir, &CredsPolicy::default()).unwrap_err();
        assert!(matches!(e, ValidateError::Foreign { .. }), "{e}");
        std::fs::remove_file(dir.join("evil.sh")).unwrap();
        let e = check(job, &dir, &CredsPolicy::default()).unwrap_err().to_string();
        assert!(e.contains("no pstree.img"), "{e}");
        std::fs::write(dir.join("core-1.img"), b"garbage").unwrap();
        std::fs::write(dir.join("pstree.img"), b"garbage").unwrap();
        assert!(matches!(check(job, &dir, &CredsPolicy::default()), Err(ValidateError::Decode(_))));
    }
}
