//! The files a dynamically linked program loads, found as the guest's own `ld.so` finds them:
//! its interpreter, then every `DT_NEEDED` library, breadth first, searched in `DT_RPATH`
//! (of the loading object and of its loaders, when the loading object has no `DT_RUNPATH`),
//! `LD_LIBRARY_PATH`, `DT_RUNPATH` (of the loading object only), `/etc/ld.so.cache` and the
//! default directories of an x86-64 Debian (glibc's `elf/dl-load.c`, `_dl_map_object`). Names
//! with a slash are paths. `$ORIGIN`, `$LIB` and `$PLATFORM` are expanded in search paths.
//!
//! What cannot be found is reported with the file that needs it, as `ld.so` would report it
//! when the program starts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

pub use hcontainer_x86::guest::{Dynamic, ElfKind};

use crate::{inspect_guest, TranslateError};

/// Default library directories of Debian's x86-64 `ld.so` (multiarch first).
pub const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// The cache `ldconfig` writes.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// How [`Member::needed_by`] names the interpreter.
pub const INTERPRETER: &str = "its interpreter";

/// One file of a closure.
#[derive(Clone, Debug)]
pub struct Member {
    /// Where it was found (as the search made it, not canonicalized).
    pub path: PathBuf,
    /// What kind of file it is.
    pub kind: ElfKind,
    /// Its loading facts.
    pub dynamic: Dynamic,
    /// The member that first needed it (`None` for the roots), and by which name.
    pub needed_by: Option<(PathBuf, String)>,
}

/// Why a closure could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    /// A needed library was found nowhere.
    #[error("{needed}, needed by {}, was not found (searched {})", by.display(), searched.join(":"))]
    NotFound {
        /// The name in `DT_NEEDED`.
        needed: String,
        /// The file that needs it.
        by: PathBuf,
        /// The directories searched.
        searched: Vec<String>,
    },
    /// A file of the closure cannot be translated.
    #[error(transparent)]
    Guest(#[from] TranslateError),
    /// An executable's interpreter is no dynamic loader.
    #[error("{}: its interpreter {} is not a dynamic loader (ld.so is a shared object; this is {what})", by.display(), interp.display())]
    BadInterpreter {
        /// The executable.
        by: PathBuf,
        /// Its `PT_INTERP`.
        interp: PathBuf,
        /// What the interpreter is instead.
        what: String,
    },
}

/// Where libraries are searched besides the objects' own paths.
#[derive(Clone, Debug, Default)]
pub struct SearchEnv {
    /// `LD_LIBRARY_PATH` directories.
    pub library_path: Vec<String>,
    /// The `ld.so.cache` entries for x86-64 libraries: soname → path.
    pub cache: HashMap<String, PathBuf>,
    /// The name service modules glibc loads for the services `/etc/nsswitch.conf` names
    /// (`libnss_<service>.so.2`): part of every closure that has glibc's libc.
    pub nss_modules: Vec<String>,
}

impl SearchEnv {
    /// The search environment of this machine: `LD_LIBRARY_PATH` and `/etc/ld.so.cache`.
    pub fn from_system() -> SearchEnv {
        let library_path = std::env::var("LD_LIBRARY_PATH")
            .map(|v| {
                v.split([':', ';'])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let cache = std::fs::read(LD_SO_CACHE)
            .map(|b| parse_ld_so_cache(&b))
            .unwrap_or_default();
        let nss_modules = std::fs::read_to_string(NSSWITCH)
            .map(|s| nss_modules(&s))
            .unwrap_or_default();
        SearchEnv {
            library_path,
            cache,
            nss_modules,
        }
    }
}

/// glibc's name service configuration.
pub const NSSWITCH: &str = "/etc/nsswitch.conf";

/// The module files of the services an `nsswitch.conf` names, except those built into
/// glibc's libc (files, dns) and the action words in brackets.
pub fn nss_modules(conf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((_, services)) = line.split_once(':') else {
            continue;
        };
        let mut in_action = false;
        for w in services.split_whitespace() {
            if w.starts_with('[') {
                in_action = !w.ends_with(']');
                continue;
            }
            if in_action {
                in_action = !w.ends_with(']');
                continue;
            }
            if matches!(w, "files" | "dns") {
                continue;
            }
            let m = format!("libnss_{w}.so.2");
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// The x86-64 entries of an `ld.so.cache` in glibc's format `glibc-ld.so.cache1.1` (also when
/// it follows the old `ld.so-1.7.0` format): soname → path, the first entry of each name
/// winning as in `ld.so`. Malformed caches give what could be read.
pub fn parse_ld_so_cache(b: &[u8]) -> HashMap<String, PathBuf> {
    const NEW: &[u8] = b"glibc-ld.so.cache1.1";
    const OLD: &[u8] = b"ld.so-1.7.0";
    // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 (glibc's `elf/cache.h`).
    const X86_64_LIBC6: i32 = 0x0303;
    let mut out = HashMap::new();
    let start = if b.starts_with(NEW) {
        0
    } else if b.starts_with(OLD) {
        // Old header (12 bytes + nlibs u32), 12-byte entries, then the new cache, aligned.
        let Some(n) = b
            .get(12..16)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize)
        else {
            return out;
        };
        let after = 16 + n * 12;
        let aligned = after.div_ceil(8) * 8;
        match (after..=aligned).find(|&o| b.get(o..).is_some_and(|r| r.starts_with(NEW))) {
            Some(o) => o,
            None => return out,
        }
    } else {
        return out;
    };
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    let Some(nlibs) = u32_at(start + 20) else {
        return out;
    };
    let header = 20 + 4 + 4 + 4 + 4 + 12;
    let cstr = |o: usize| -> Option<String> {
        let rest = b.get(o..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    for i in 0..nlibs as usize {
        let e = start + header + i * 24;
        let (Some(flags), Some(key), Some(value)) = (u32_at(e), u32_at(e + 4), u32_at(e + 8))
        else {
            break;
        };
        if flags as i32 != X86_64_LIBC6 {
            continue;
        }
        // String offsets of the new format are from the start of the file part it heads.
        let (Some(k), Some(v)) = (cstr(start + key as usize), cstr(start + value as usize)) else {
            continue;
        };
        out.entry(k).or_insert_with(|| PathBuf::from(v));
    }
    out
}

/// `$ORIGIN`, `$LIB` and `$PLATFORM` (also as `${…}`) in one search path entry.
fn expand(entry: &str, origin: &Path) -> String {
    let origin = origin.display().to_string();
    let mut s = entry.to_string();
    for (k, v) in [
        ("ORIGIN", origin.as_str()),
        ("LIB", "lib/x86_64-linux-gnu"),
        ("PLATFORM", "x86_64"),
    ] {
        s = s
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    s
}

fn split_path(p: &Option<String>, origin: &Path) -> Vec<String> {
    p.as_deref()
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(|s| expand(s, origin))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `path` is an x86-64 ELF object (not another ISA's library on the search path).
fn is_x86_64_elf(path: &Path) -> bool {
    let mut h = [0u8; 20];
    match std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut h)) {
        Ok(()) => h[..4] == *b"\x7fELF" && h[4] == 2 && u16::from_le_bytes([h[18], h[19]]) == 62,
        Err(_) => false,
    }
}

/// The closure of `roots`: each root, the interpreter of each executable, and every library
/// they need, transitively, each file once (by canonical path), roots first.
pub fn closure(roots: &[PathBuf], env: &SearchEnv) -> Result<Vec<Member>, ClosureError> {
    let mut out: Vec<Member> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    // (path, needed_by, rpath chain of the loaders)
    let mut queue: VecDeque<(PathBuf, Option<(PathBuf, String)>, Vec<String>)> = VecDeque::new();
    for r in roots {
        queue.push_back((r.clone(), None, Vec::new()));
    }
    // Sonames already loaded satisfy later needs by name, as in ld.so.
    let mut by_soname: HashMap<String, PathBuf> = HashMap::new();
    let mut nss_added = false;
    loop {
        let Some((path, needed_by, loader_rpaths)) = queue.pop_front() else {
            // glibc loads the name service modules the configuration names (getpwnam in every
            // daemon that drops privileges): with its libc in the closure, they belong to it.
            let has_libc = out
                .iter()
                .any(|m| m.dynamic.soname.as_deref() == Some("libc.so.6"));
            if nss_added || !has_libc {
                break;
            }
            nss_added = true;
            let libc = out
                .iter()
                .find(|m| m.dynamic.soname.as_deref() == Some("libc.so.6"))
                .map(|m| m.path.clone());
            for m in &env.nss_modules {
                if let Some(p) = find_library(m, &[], &[], env) {
                    queue.push_back((
                        p,
                        libc.clone().map(|l| (l, format!("{m} (nsswitch.conf)"))),
                        Vec::new(),
                    ));
                }
            }
            continue;
        };
        let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(canon.clone()) {
            continue;
        }
        let bin = inspect_guest(&path)?;
        if let Some((by, why)) = &needed_by {
            if why == INTERPRETER && bin.kind != ElfKind::SharedObject {
                let what = match bin.kind {
                    ElfKind::Static | ElfKind::StaticPie => "a static executable".to_string(),
                    ElfKind::Executable => "a dynamically linked executable".to_string(),
                    ElfKind::SharedObject => unreachable!(),
                };
                return Err(ClosureError::BadInterpreter {
                    by: by.clone(),
                    interp: path.clone(),
                    what,
                });
            }
        }
        let origin = canon.parent().map(Path::to_path_buf).unwrap_or_default();
        let own_rpath = split_path(&bin.dynamic.rpath, &origin);
        let runpath = split_path(&bin.dynamic.runpath, &origin);
        // DT_RPATH counts only while no DT_RUNPATH is present; it is inherited by what this
        // object loads.
        let mut rpaths = loader_rpaths.clone();
        if runpath.is_empty() {
            rpaths.splice(0..0, own_rpath);
        }
        if let Some(so) = &bin.dynamic.soname {
            by_soname.entry(so.clone()).or_insert_with(|| path.clone());
        }
        if let Some(interp) = bin
            .dynamic
            .interp
            .clone()
            .filter(|_| bin.kind == ElfKind::Executable)
        {
            queue.push_back((
                PathBuf::from(interp),
                Some((path.clone(), INTERPRETER.into())),
                Vec::new(),
            ));
        }
        for name in &bin.dynamic.needed {
            if let Some(p) = by_soname.get(name) {
                queue.push_back((
                    p.clone(),
                    Some((path.clone(), name.clone())),
                    rpaths.clone(),
                ));
                continue;
            }
            let found = if name.contains('/') {
                let p = PathBuf::from(name);
                p.is_file().then_some(p)
            } else {
                find_library(name, &rpaths, &runpath, env)
            };
            match found {
                Some(p) => queue.push_back((p, Some((path.clone(), name.clone())), rpaths.clone())),
                None => {
                    let mut searched: Vec<String> = rpaths.clone();
                    searched.extend(env.library_path.iter().cloned());
                    searched.extend(runpath.iter().cloned());
                    searched.push(LD_SO_CACHE.into());
                    searched.extend(DEFAULT_DIRS.iter().map(|s| s.to_string()));
                    return Err(ClosureError::NotFound {
                        needed: name.clone(),
                        by: path.clone(),
                        searched,
                    });
                }
            }
        }
        out.push(Member {
            path,
            kind: bin.kind,
            dynamic: bin.dynamic,
            needed_by,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod nss_tests {
    #[test]
    fn modules_of_an_nsswitch_conf() {
        let conf = "passwd: files systemd\nhosts: files mdns4_minimal [NOTFOUND=return] dns\n# x: ldap\nnetgroup: nis\n";
        assert_eq!(
            super::nss_modules(conf),
            [
                "libnss_systemd.so.2",
                "libnss_mdns4_minimal.so.2",
                "libnss_nis.so.2"
            ]
        );
    }
}

/// Search `name` as `ld.so` does for an object with these rpaths and runpath.
fn find_library(
    name: &str,
    rpaths: &[String],
    runpath: &[String],
    env: &SearchEnv,
) -> Option<PathBuf> {
    let in_dirs = |dirs: &mut dyn Iterator<Item = &str>| {
        dirs.map(|d| Path::new(d).join(name))
            .find(|p| p.is_file() && is_x86_64_elf(p))
    };
    if let Some(p) = in_dirs(&mut rpaths.iter().map(String::as_str)) {
        return Some(p);
    }
    if let Some(p) = in_dirs(&mut env.library_path.iter().map(String::as_str)) {
        return Some(p);
    }
    if let Some(p) = in_dirs(&mut runpath.iter().map(String::as_str)) {
        return Some(p);
    }
    if let Some(p) = env.cache.get(name).filter(|p| p.is_file()) {
        return Some(p.clone());
    }
    in_dirs(&mut DEFAULT_DIRS.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_lib_are_expanded() {
        let o = Path::new("/opt/app/bin");
        assert_eq!(expand("$ORIGIN/../lib", o), "/opt/app/bin/../lib");
        assert_eq!(
            expand("${ORIGIN}/x:$LIB", o),
            "/opt/app/bin/x:lib/x86_64-linux-gnu"
        );
        assert_eq!(expand("/usr/$PLATFORM", o), "/usr/x86_64");
    }

    #[test]
    fn this_machines_cache_names_libc() {
        let Ok(b) = std::fs::read(LD_SO_CACHE) else {
            return;
        };
        let c = parse_ld_so_cache(&b);
        let libc = c.get("libc.so.6").expect("libc.so.6 in /etc/ld.so.cache");
        assert!(
            libc.to_string_lossy().contains("x86_64-linux-gnu"),
            "{libc:?}"
        );
        // Damaged caches give what could be read, never a panic.
        for cut in [0, 10, 30, b.len() / 2] {
            let _ = parse_ld_so_cache(&b[..cut]);
        }
    }
}
