//! Linker: turns a translated object (from `hcontainer-codegen`), the no_std runtime and the
//! guest's own segments into one static ELF executable for a host ISA.
//!
//! Guest segments keep their exact addresses and permissions (one `PT_LOAD` each, their
//! zero-filled tail as `NOBITS`); the runtime, translated code, tables and runtime data live at
//! [`hcontainer_abi::layout::RUNTIME_BASE`], code and read-only data on separate pages. The
//! layout is written as a linker script and linked with `rust-lld -flavor gnu` (see
//! [`find_lld`]). The runtime archives are built by `build.rs` and embedded ([`runtime`]).
#![deny(missing_docs)]

pub mod runtime;
mod script;
mod target;

use std::path::{Path, PathBuf};
use std::process::Command;

use hcontainer_abi::layout;
use hcontainer_abi::meta::HostIsa;
use object::write::Object;
use object::{BinaryFormat, Endianness, SectionFlags, SectionKind};

/// One guest `PT_LOAD` segment to place at its original address.
#[derive(Clone, Copy, Debug)]
pub struct GuestSegment<'a> {
    /// Guest virtual address (already relocated for a PIE).
    pub vaddr: u64,
    /// Size in memory; bytes past `data` are zero.
    pub memsz: u64,
    /// The file-backed bytes (`p_filesz` long).
    pub data: &'a [u8],
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// Why an executable could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// `build.rs` could not build the runtime for this ISA.
    #[error("runtime for {0} not built (the hcontainer build could not compile crates/runtime for this target)")]
    RuntimeMissing(&'static str),
    /// No usable lld.
    #[error("no lld found: set HCONTAINER_LLD, install the Rust toolchain's rust-lld (rustup component llvm-tools or the default toolchain), or put ld.lld on PATH")]
    NoLld,
    /// A guest segment is malformed or collides with another or with the runtime range.
    #[error("guest segment at {vaddr:#x} (size {memsz:#x}): {what}")]
    BadSegment {
        /// Its address.
        vaddr: u64,
        /// Its size in memory.
        memsz: u64,
        /// What is wrong.
        what: String,
    },
    /// Writing a temporary or output file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Writing the guest object failed.
    #[error("writing the guest segment object: {0}")]
    Object(String),
    /// lld failed.
    #[error("{lld} failed ({status}) linking {out}:\n{stderr}")]
    Lld {
        /// The lld used.
        lld: String,
        /// Its exit status.
        status: String,
        /// The output being linked.
        out: String,
        /// What it printed.
        stderr: String,
    },
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> LinkError + 'p {
    move |source| LinkError::Io { what, path: path.to_path_buf(), source }
}

/// An lld to run: program and leading arguments.
#[derive(Clone, Debug)]
pub struct Lld {
    /// The executable.
    pub program: PathBuf,
    /// Arguments before ours (`-flavor gnu` for rust-lld).
    pub prefix: Vec<String>,
}

fn lld_at(path: PathBuf) -> Lld {
    let is_rust_lld = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rust-lld"));
    let prefix = if is_rust_lld { vec!["-flavor".into(), "gnu".into()] } else { Vec::new() };
    Lld { program: path, prefix }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Find lld: `$HCONTAINER_LLD`, then the toolchain's `rust-lld` (sysroot of `rustc` on PATH,
/// then of the rustc that built hcontainer), then `ld.lld` or `rust-lld` on PATH.
pub fn find_lld() -> Result<Lld, LinkError> {
    if let Some(p) = std::env::var_os("HCONTAINER_LLD") {
        return Ok(lld_at(PathBuf::from(p)));
    }
    let host = env!("HC_HOST_TRIPLE");
    let mut sysroots = Vec::new();
    if let Ok(o) = Command::new("rustc").args(["--print", "sysroot"]).output() {
        if o.status.success() {
            sysroots.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
    }
    sysroots.push(PathBuf::from(env!("HC_BUILD_SYSROOT")));
    for s in sysroots {
        let p = s.join("lib/rustlib").join(host).join("bin/rust-lld");
        if p.is_file() {
            return Ok(lld_at(p));
        }
    }
    for name in ["ld.lld", "rust-lld"] {
        if let Some(p) = on_path(name) {
            return Ok(lld_at(p));
        }
    }
    Err(LinkError::NoLld)
}

fn check_segments<'a>(guest: &[GuestSegment<'a>]) -> Result<Vec<GuestSegment<'a>>, LinkError> {
    let mut segs = guest.to_vec();
    segs.sort_by_key(|s| s.vaddr);
    let mut prev_end = 0u64;
    for s in &segs {
        let bad = |what: &str| LinkError::BadSegment { vaddr: s.vaddr, memsz: s.memsz, what: what.into() };
        let end = s.vaddr.checked_add(s.memsz).ok_or_else(|| bad("wraps around the address space"))?;
        if (s.data.len() as u64) > s.memsz {
            return Err(bad("has more file bytes than its memory size"));
        }
        if s.vaddr < prev_end {
            return Err(bad("overlaps the previous segment"));
        }
        if s.vaddr < layout::RUNTIME_BASE + layout::RUNTIME_SIZE && end > layout::RUNTIME_BASE {
            return Err(bad("overlaps hcontainer's runtime range"));
        }
        prev_end = end;
    }
    Ok(segs)
}

/// Section names of guest segment `i`: file bytes and zero-filled tail.
pub(crate) fn guest_section_names(i: usize) -> (String, String) {
    (format!(".hcguest.{i}"), format!(".hcguest.{i}.bss"))
}

/// An object file holding each guest segment as sections to be placed by the script.
fn guest_object(isa: HostIsa, segs: &[GuestSegment<'_>]) -> Result<Vec<u8>, LinkError> {
    use object::elf;
    let t = target::link_target(isa);
    let mut obj = Object::new(BinaryFormat::Elf, t.arch, Endianness::Little);
    obj.flags = object::FileFlags::Elf { os_abi: elf::ELFOSABI_NONE, abi_version: 0, e_flags: t.e_flags };
    for (i, s) in segs.iter().enumerate() {
        let mut flags = u64::from(elf::SHF_ALLOC);
        if s.write {
            flags |= u64::from(elf::SHF_WRITE);
        }
        if s.exec {
            flags |= u64::from(elf::SHF_EXECINSTR);
        }
        let (data_name, bss_name) = guest_section_names(i);
        let tail = s.memsz - s.data.len() as u64;
        if !s.data.is_empty() || (!s.write && tail > 0) {
            let id = obj.add_section(Vec::new(), data_name.into_bytes(), SectionKind::Elf(elf::SHT_PROGBITS));
            obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: flags };
            obj.append_section_data(id, s.data, 1);
            if !s.write && tail > 0 {
                // Loaders differ on zero-filled tails of read-only segments (qemu-user refuses
                // them): store the zeros in the file instead.
                let zeros = vec![0u8; usize::try_from(tail).map_err(|_| LinkError::BadSegment {
                    vaddr: s.vaddr,
                    memsz: s.memsz,
                    what: "read-only zero-filled tail too large".into(),
                })?];
                obj.append_section_data(id, &zeros, 1);
            }
        }
        if tail > 0 && s.write {
            let id = obj.add_section(Vec::new(), bss_name.into_bytes(), SectionKind::UninitializedData);
            obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: flags | u64::from(elf::SHF_WRITE) };
            obj.append_section_bss(id, tail, 1);
        }
    }
    obj.write().map_err(|e| LinkError::Object(e.to_string()))
}

/// Link `translated` (an object from `hcontainer-codegen` for `isa`), the runtime for `isa`
/// and the guest segments into the static executable `out`.
pub fn link(isa: HostIsa, translated: &[u8], guest: &[GuestSegment<'_>], out: &Path) -> Result<(), LinkError> {
    let runtime = runtime::archive(isa).ok_or(LinkError::RuntimeMissing(isa.name()))?;
    let lld = find_lld()?;
    let segs = check_segments(guest)?;
    let dir = tempfile::Builder::new()
        .prefix("hcontainer-link")
        .tempdir()
        .map_err(io("creating a temporary directory in", &std::env::temp_dir()))?;
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, LinkError> {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(io("writing", &p))?;
        Ok(p)
    };
    let translated_o = write(script::TRANSLATED_OBJECT, translated)?;
    let guest_o = write("hc_guest.o", &guest_object(isa, &segs)?)?;
    let runtime_a = write("libhcontainer_runtime.a", runtime)?;
    let script_path = write("link.ld", script::linker_script(&segs).as_bytes())?;
    let t = target::link_target(isa);
    let mut cmd = Command::new(&lld.program);
    cmd.args(&lld.prefix)
        .args(["-m", t.emulation, "-static", "--no-pie", "-z", "noexecstack", "-z", "max-page-size=4096"])
        .args(["--build-id=sha1", "--gc-sections", "--no-undefined", "-u", "_start", "-T"])
        .arg(&script_path)
        .arg("-o")
        .arg(out)
        .arg(&translated_o)
        .arg(&guest_o)
        .arg(&runtime_a);
    let o = cmd.output().map_err(io("running", &lld.program))?;
    if !o.status.success() {
        return Err(LinkError::Lld {
            lld: lld.program.display().to_string(),
            status: o.status.to_string(),
            out: out.display().to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        });
    }
    Ok(())
}
