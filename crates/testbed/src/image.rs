//! Building the node's boot files: Debian's arm64 kernel, the modules the node loads,
//! `busybox-static`, arm64 CRIU and an initramfs holding them with the node's `/init`.
//!
//! Layout under `<cache>/vm`: `apt/` (private apt state), `parts/` (kernel image, busybox, the
//! selected modules and their load order, complete once `parts/stamp` is written) and
//! `image/` (`vmlinuz`, `initrd.cpio`, `stamp`). Downloads happen only when `parts/` is
//! incomplete; the initramfs is reassembled (well under a second) when its inputs change.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cpio::Writer;
use crate::node::{BootOptions, Node};
use crate::{apt, criu_setup, modules, Error};

/// The node's `/init`.
const INIT: &str = include_str!("init.sh");

/// Version of the `parts/` layout; bump it to force a new download.
const PARTS_STAMP: &str = "bookworm arm64 kernel + busybox-static, parts layout 1";

/// The Debian suite of kernel and busybox.
/// The Debian release the node and the arm64 package sets come from.
pub const SUITE: &str = "bookworm";

/// Debian's amd64 packages whose files the node carries at their usual paths (multiarch: an
/// arm64 Debian installs `libc6:amd64` and friends exactly there), so that CRIU finds every
/// file a migrated x86-64 program maps and the program's own ld.so finds its libraries: the C
/// library and the closure of `redis-server`.
pub const AMD64_PACKAGES: &[&str] = &[
    "libc6",
    "libc-bin",
    "libgcc-s1",
    "libstdc++6",
    "libssl3",
    "libsystemd0",
    "libjemalloc2",
    "liblzf1",
    "libatomic1",
    "libcap2",
    "libgcrypt20",
    "liblz4-1",
    "liblzma5",
    "libzstd1",
    "libgpg-error0",
    "redis-tools",
    "redis-server",
];

/// A built node: kernel and initramfs, ready to boot.
#[derive(Clone, Debug)]
pub struct NodeImage {
    kernel: PathBuf,
    initrd: PathBuf,
    release: String,
}

impl NodeImage {
    /// Builds the node's files under `<cache>/vm` (`cache` is the repository's `.cache`),
    /// downloading what is missing; a complete earlier build is reused.
    pub fn build(cache: &Path) -> Result<NodeImage, Error> {
        let vm = cache.join("vm");
        let criu = criu_setup::ensure_arch(cache, criu_setup::Arch::Aarch64)
            .map_err(|e| Error::Criu(format!("{e:#}")))?;
        let criu_prefix = criu
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| Error::Criu(format!("unexpected launcher path {}", criu.display())))?;
        let criu_root = criu_prefix.join("root");
        let parts = Parts::ensure(&vm)?;
        let image = vm.join("image");
        mkdir(&image)?;
        let kernel = image.join("vmlinuz");
        let initrd = image.join("initrd.cpio");
        let criu_stamp =
            std::fs::read_to_string(criu_prefix.join(".installed")).unwrap_or_default();
        let amd64 = amd64_versions()?;
        let stamp = format!(
            "{PARTS_STAMP}\n{}\ncriu: {criu_stamp}\namd64: {amd64}\n{INIT}",
            parts.release
        );
        let stamp_path = image.join("stamp");
        if kernel.exists()
            && initrd.exists()
            && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp)
        {
            return Ok(NodeImage {
                kernel,
                initrd,
                release: parts.release,
            });
        }
        let _ = std::fs::remove_file(&stamp_path);
        copy(&parts.dir.join("vmlinuz"), &kernel)?;
        let tmp = image.join("initrd.cpio.tmp");
        write_initrd(&parts, &criu_root, &tmp)?;
        std::fs::rename(&tmp, &initrd).map_err(|e| Error::io(&initrd, e))?;
        std::fs::write(&stamp_path, &stamp).map_err(|e| Error::io(&stamp_path, e))?;
        Ok(NodeImage {
            kernel,
            initrd,
            release: parts.release,
        })
    }

    /// Boots a node from this image.
    pub fn boot(&self, options: &BootOptions) -> Result<Node, Error> {
        Node::boot(&self.kernel, &self.initrd, options)
    }

    /// The kernel image (raw arm64 `Image`).
    pub fn kernel(&self) -> &Path {
        &self.kernel
    }

    /// The initramfs (uncompressed `newc` cpio).
    pub fn initrd(&self) -> &Path {
        &self.initrd
    }

    /// The kernel release, e.g. `6.1.0-50-arm64`.
    pub fn release(&self) -> &str {
        &self.release
    }
}

/// Kernel, busybox and modules extracted from the Debian packages.
struct Parts {
    dir: PathBuf,
    release: String,
}

impl Parts {
    fn ensure(vm: &Path) -> Result<Parts, Error> {
        let dir = vm.join("parts");
        let stamp = dir.join("stamp");
        if let Ok(text) = std::fs::read_to_string(&stamp) {
            let mut lines = text.lines();
            if lines.next() == Some(PARTS_STAMP) {
                if let Some(release) = lines.next() {
                    return Ok(Parts {
                        dir,
                        release: release.to_string(),
                    });
                }
            }
        }
        let started = Instant::now();
        remove_dir(&dir)?;
        let debs = vm.join("debs");
        let root = vm.join("root");
        remove_dir(&debs)?;
        remove_dir(&root)?;
        let apt = apt::Apt::new(&vm.join("apt"), SUITE, "arm64")?;
        apt.update()?;
        let kernel_package = apt.dependency("linux-image-arm64", "linux-image-")?;
        for deb in apt.download(
            &[kernel_package.clone(), "busybox-static".to_string()],
            &debs,
        )? {
            apt::extract(&deb, &root)?;
        }
        mkdir(&dir.join("modules"))?;
        let boot = root.join("boot");
        let vmlinuz = find_prefixed(&boot, "vmlinuz-").ok_or_else(|| Error::Package {
            package: kernel_package.clone(),
            reason: format!("no vmlinuz-* in {}", boot.display()),
        })?;
        let release = vmlinuz
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            .unwrap_or_default()
            .to_string();
        copy(&vmlinuz, &dir.join("vmlinuz"))?;
        copy(&root.join("bin/busybox"), &dir.join("busybox"))?;
        let order = modules::load_order(
            &root.join("lib/modules").join(&release).join("kernel"),
            modules::WANTED,
        )?;
        let mut names = String::new();
        for module in &order {
            let name = module
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            copy(module, &dir.join("modules").join(name))?;
            names.push_str(name);
            names.push('\n');
        }
        let order_file = dir.join("modules.order");
        std::fs::write(&order_file, names).map_err(|e| Error::io(&order_file, e))?;
        // The unpacked packages (about 350 MB) are not needed any more.
        remove_dir(&root)?;
        remove_dir(&debs)?;
        std::fs::write(&stamp, format!("{PARTS_STAMP}\n{release}\n"))
            .map_err(|e| Error::io(&stamp, e))?;
        eprintln!(
            "testbed: node parts ({release}) downloaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Parts { dir, release })
    }
}

/// Writes the initramfs: busybox, `/init`, the modules and CRIU under `/opt/criu` with a
/// launcher `/usr/bin/criu`.
fn write_initrd(parts: &Parts, criu_root: &Path, out: &Path) -> Result<(), Error> {
    let file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut w = Writer::new(std::io::BufWriter::new(file));
    let io = |e| Error::io(out, e);
    for d in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "mnt",
        "mnt/host",
        "opt",
        "proc",
        "root",
        "run",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "usr/bin",
        "usr/sbin",
    ] {
        w.dir(d, 0o755).map_err(io)?;
    }
    w.char_device("dev/console", 0o600, 5, 1).map_err(io)?;
    w.file("bin/busybox", 0o755, &read(&parts.dir.join("busybox"))?)
        .map_err(io)?;
    w.file("init", 0o755, INIT.as_bytes()).map_err(io)?;
    w.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .map_err(io)?;
    w.file("etc/group", 0o644, b"root:x:0:\n").map_err(io)?;
    w.file(
        "etc/modules",
        0o644,
        &read(&parts.dir.join("modules.order"))?,
    )
    .map_err(io)?;
    let order = String::from_utf8_lossy(&read(&parts.dir.join("modules.order"))?).to_string();
    for name in order.lines() {
        w.file(
            &format!("lib/modules/{name}"),
            0o644,
            &read(&parts.dir.join("modules").join(name))?,
        )
        .map_err(io)?;
    }
    w.dir("opt/criu", 0o755).map_err(io)?;
    add_tree(&mut w, criu_root, "opt/criu", out)?;
    let lib = "/opt/criu/usr/lib/aarch64-linux-gnu";
    let launcher = format!(
        "#!/bin/sh\n# CRIU from Debian, run with its own loader and libraries.\n\
         exec {lib}/ld-linux-aarch64.so.1 --library-path {lib} /opt/criu/usr/sbin/criu \"$@\"\n"
    );
    w.file("usr/bin/criu", 0o755, launcher.as_bytes())
        .map_err(io)?;
    amd64_layer(&mut w, out)?;
    w.finish().map_err(io)?;
    Ok(())
}

/// The installed versions of [`AMD64_PACKAGES`] on this host (`dpkg-query`), for the stamp.
fn amd64_versions() -> Result<String, Error> {
    let out = crate::run_captured(
        std::process::Command::new("dpkg-query").args(["-W", "-f", "${Package}=${Version} "]).args(AMD64_PACKAGES),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The files of [`AMD64_PACKAGES`] as this host has them installed (`dpkg -L`), each at its
/// canonical path (`/lib` is `/usr/lib` on a merged-/usr Debian), without documentation;
/// `/lib/x86_64-linux-gnu` and `/lib64` lead to them as on the host.
fn amd64_layer<W: std::io::Write>(w: &mut Writer<W>, out: &Path) -> Result<(), Error> {
    let io = |e| Error::io(out, e);
    let mut done = std::collections::BTreeSet::new();
    for d in ["usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64"] {
        w.dir(d, 0o755).map_err(io)?;
        done.insert(d.to_string());
    }
    w.symlink("lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu").map_err(io)?;
    w.symlink("lib64", "usr/lib64").map_err(io)?;
    for pkg in AMD64_PACKAGES {
        let listed = crate::run_captured(std::process::Command::new("dpkg").args(["-L", pkg]))?;
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            let p = Path::new(line.trim());
            if !p.is_absolute() || p.starts_with("/usr/share") || p.starts_with("/etc") || p.starts_with("/lib/systemd") {
                continue;
            }
            let meta = match std::fs::symlink_metadata(p) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.is_dir() {
                continue;
            }
            // The canonical place: the real directory, the entry's own name.
            let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else { continue };
            let Ok(dir) = std::fs::canonicalize(parent) else { continue };
            let rel_dir = dir.strip_prefix("/").unwrap_or(&dir).to_string_lossy().into_owned();
            // Its directories, outermost first.
            let mut acc = String::new();
            for part in rel_dir.split('/').filter(|x| !x.is_empty()) {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(part);
                if done.insert(acc.clone()) && !matches!(acc.as_str(), "usr" | "usr/bin" | "usr/sbin" | "lib" | "bin" | "sbin") {
                    w.dir(&acc, 0o755).map_err(io)?;
                }
            }
            let inner = format!("{rel_dir}/{}", name.to_string_lossy());
            if !done.insert(inner.clone()) {
                continue;
            }
            use std::os::unix::fs::PermissionsExt;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(p).map_err(|e| Error::io(p, e))?;
                w.symlink(&inner, &target.to_string_lossy()).map_err(io)?;
            } else if meta.is_file() {
                w.file(&inner, meta.permissions().mode() & 0o7777, &read(p)?).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Adds the tree under `dir` as `prefix/...`, keeping symbolic links; documentation is left out.
fn add_tree<W: std::io::Write>(
    w: &mut Writer<W>,
    dir: &Path,
    prefix: &str,
    out: &Path,
) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let inner = format!("{prefix}/{name}");
        if inner.ends_with("usr/share") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        use std::os::unix::fs::PermissionsExt;
        let perm = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            w.symlink(&inner, &target.to_string_lossy())
                .map_err(|e| Error::io(out, e))?;
        } else if meta.is_dir() {
            w.dir(&inner, perm).map_err(|e| Error::io(out, e))?;
            add_tree(w, &path, &inner, out)?;
        } else if meta.is_file() {
            w.file(&inner, perm, &read(&path)?)
                .map_err(|e| Error::io(out, e))?;
        }
    }
    Ok(())
}

fn find_prefixed(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

fn copy(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io(from, e))
}

fn mkdir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn remove_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}
