//! Kernel modules of the node: which `.ko` files to load and in which order.
//!
//! Debian's kernel package ships no `modules.dep`, so instead of running `depmod` the order is
//! computed here from each module's own `.modinfo` section (`name=` and `depends=`): a
//! depth-first walk puts every dependency before its user.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};

use crate::Error;

/// Modules the node loads, in the order asked for (dependencies come first automatically).
///
/// `crc32c_generic` must precede `nf_tables` (through `libcrc32c`): that dependency is only a
/// soft one, not recorded in `depends=`. CRIU needs the socket-diag modules to dump sockets and
/// `nf_tables` for its kernel feature probe and network locking; `tun` and `veth` silence
/// non-fatal probe errors.
pub const WANTED: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_rng",
    "9pnet_virtio",
    "9p",
    "unix_diag",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    "af_packet_diag",
    "netlink_diag",
    "crc32c_generic",
    "nf_tables",
    "nft_ct",
    "nft_compat",
    "nft_chain_nat",
    "nft_reject_inet",
    "nft_fib_inet",
    "tun",
    "veth",
];

/// One module file and what it needs.
#[derive(Debug)]
struct Module {
    path: PathBuf,
    depends: Vec<String>,
}

/// Returns the `.ko` files under `modules_dir` needed for `wanted`, dependencies first.
pub fn load_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, Error> {
    let mut all = BTreeMap::new();
    scan(modules_dir, &mut all)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for name in wanted {
        visit(
            &normalize(name),
            &all,
            &mut seen,
            &mut order,
            &mut Vec::new(),
        )?;
    }
    Ok(order)
}

/// Module names use `_` where file names may use `-`.
fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn visit(
    name: &str,
    all: &BTreeMap<String, Module>,
    seen: &mut HashSet<String>,
    order: &mut Vec<PathBuf>,
    stack: &mut Vec<String>,
) -> Result<(), Error> {
    if seen.contains(name) {
        return Ok(());
    }
    if stack.iter().any(|s| s == name) {
        return Err(Error::Module {
            module: name.to_string(),
            reason: format!("dependency cycle {stack:?}"),
        });
    }
    let module = all.get(name).ok_or_else(|| Error::Module {
        module: name.to_string(),
        reason: match stack.last() {
            Some(user) => format!("needed by {user} but not in the kernel package"),
            None => "not in the kernel package".to_string(),
        },
    })?;
    stack.push(name.to_string());
    for dep in &module.depends {
        visit(dep, all, seen, order, stack)?;
    }
    stack.pop();
    seen.insert(name.to_string());
    order.push(module.path.clone());
    Ok(())
}

fn scan(dir: &Path, all: &mut BTreeMap<String, Module>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            scan(&path, all)?;
        } else if path.extension().is_some_and(|e| e == "ko") {
            let (name, depends) = modinfo(&path)?;
            all.insert(name, Module { path, depends });
        }
    }
    Ok(())
}

/// `name=` and `depends=` of a module's `.modinfo` section.
fn modinfo(path: &Path) -> Result<(String, Vec<String>), Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: String| Error::Module {
        module: path.display().to_string(),
        reason,
    };
    let file = object::File::parse(&*data).map_err(|e| bad(format!("not an ELF object: {e}")))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| bad("no .modinfo section".to_string()))?;
    let info = section
        .data()
        .map_err(|e| bad(format!("unreadable .modinfo: {e}")))?;
    let mut name = None;
    let mut depends = Vec::new();
    for field in info.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(value) = field.strip_prefix("name=") {
            name = Some(normalize(value));
        } else if let Some(value) = field.strip_prefix("depends=") {
            depends.extend(value.split(',').filter(|d| !d.is_empty()).map(normalize));
        }
    }
    let name = match name {
        Some(name) => name,
        // Older modules carry no name= field: the file name is the module name.
        None => normalize(
            path.file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| bad("file name is not UTF-8".to_string()))?,
        ),
    };
    Ok((name, depends))
}
