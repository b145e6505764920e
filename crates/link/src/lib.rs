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

/// How the guest segments reach memory when the executable starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GuestMapping {
    /// The runtime maps them from the executable file at start-up, as listed in
    /// `hc_guest_segments` (`hcontainer_abi::calls::GUEST_SEGMENTS`); the executable's
    /// `PT_LOAD`s cover only the runtime range. Works under every qemu-user (whose loader
    /// reserves the whole span between the lowest and highest `PT_LOAD`) and leaves the
    /// guest's `brk` room to grow.
    #[default]
    RuntimeMapped,
    /// Each guest segment is a `PT_LOAD` of its own, mapped by the kernel's ELF loader.
    ProgramHeaders,
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
    /// The linked executable is not what the script asked for.
    #[error("linked executable {path}: {what}")]
    Output {
        /// The executable.
        path: String,
        /// What is wrong.
        what: String,
    },
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

/// Size of one `hcontainer_abi::calls::GuestSegment` record.
const SEGMENT_RECORD: usize = std::mem::size_of::<hcontainer_abi::calls::GuestSegment>();
const _: () = assert!(SEGMENT_RECORD == 40);

/// Offset of the guest page that holds `vaddr`, i.e. `vaddr % page`.
fn page_offset(vaddr: u64) -> u64 {
    vaddr % layout::GUEST_PAGE_SIZE
}

/// An object for [`GuestMapping::RuntimeMapped`]: each segment's bytes in a non-allocated,
/// page-aligned section `.hcguest.<i>` (preceded by zeros up to the segment's offset in its
/// page, so file offset and address agree modulo the page size), and the
/// `hc_guest_segments` table with file offsets still zero (see [`patch_segment_table`]).
fn guest_table_object(isa: HostIsa, segs: &[GuestSegment<'_>]) -> Result<Vec<u8>, LinkError> {
    use object::elf;
    use object::write::{Symbol, SymbolSection};
    let t = target::link_target(isa);
    let mut obj = Object::new(BinaryFormat::Elf, t.arch, Endianness::Little);
    obj.flags = object::FileFlags::Elf { os_abi: elf::ELFOSABI_NONE, abi_version: 0, e_flags: t.e_flags };
    let mut table = Vec::with_capacity(segs.len() * SEGMENT_RECORD);
    for (i, s) in segs.iter().enumerate() {
        if !s.data.is_empty() {
            let (name, _) = guest_section_names(i);
            let id = obj.add_section(Vec::new(), name.into_bytes(), SectionKind::Elf(elf::SHT_PROGBITS));
            obj.section_mut(id).flags = SectionFlags::Elf { sh_flags: 0 };
            let pad = vec![0u8; page_offset(s.vaddr) as usize];
            obj.append_section_data(id, &pad, layout::GUEST_PAGE_SIZE);
            obj.append_section_data(id, s.data, 1);
        }
        let flags = (u64::from(s.read) << 2) | (u64::from(s.write) << 1) | u64::from(s.exec);
        // The offset is patched after linking; until then it only has the right page offset.
        for v in [s.vaddr, s.memsz, page_offset(s.vaddr), s.data.len() as u64, flags] {
            table.extend_from_slice(&v.to_le_bytes());
        }
    }
    let sec = obj.add_section(Vec::new(), b".rodata.hc_guest_segments".to_vec(), SectionKind::ReadOnlyData);
    let mut define = |name: &str, bytes: &[u8]| {
        let off = obj.append_section_data(sec, bytes, 8);
        obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: off,
            size: bytes.len() as u64,
            kind: object::SymbolKind::Data,
            scope: object::SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(sec),
            flags: object::SymbolFlags::None,
        });
    };
    define(hcontainer_abi::calls::GUEST_SEGMENTS, &table);
    define(hcontainer_abi::calls::GUEST_SEGMENTS_LEN, &(segs.len() as u64).to_le_bytes());
    obj.write().map_err(|e| LinkError::Object(e.to_string()))
}

/// Write the file offsets of the `.hcguest.<i>` sections into `hc_guest_segments` of the
/// linked executable `exe`.
fn patch_segment_table(exe: &Path, segs: &[GuestSegment<'_>]) -> Result<(), LinkError> {
    use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};
    let mut bytes = std::fs::read(exe).map_err(io("reading", exe))?;
    let bad = |what: String| LinkError::Output { path: exe.display().to_string(), what };
    let mut patches = Vec::new();
    {
        let file = object::File::parse(&*bytes).map_err(|e| bad(format!("cannot parse: {e}")))?;
        let table = file
            .symbols()
            .find(|s| s.name() == Ok(hcontainer_abi::calls::GUEST_SEGMENTS))
            .ok_or_else(|| bad("no hc_guest_segments symbol".into()))?;
        let seg = file
            .segments()
            .find(|g| table.address() >= g.address() && table.address() < g.address() + g.size())
            .ok_or_else(|| bad("hc_guest_segments is in no segment".into()))?;
        let table_off = seg.file_range().0 + (table.address() - seg.address());
        for (i, s) in segs.iter().enumerate() {
            if s.data.is_empty() {
                continue;
            }
            let (name, _) = guest_section_names(i);
            let sec = file.section_by_name(&name).ok_or_else(|| bad(format!("section {name} is missing")))?;
            let (off, _) = sec.file_range().ok_or_else(|| bad(format!("section {name} has no file bytes")))?;
            let at = table_off + (i * SEGMENT_RECORD + 16) as u64;
            patches.push((at, off + page_offset(s.vaddr)));
        }
    }
    for (at, v) in patches {
        let at = usize::try_from(at).map_err(|_| bad("table offset too large".into()))?;
        bytes
            .get_mut(at..at + 8)
            .ok_or_else(|| bad("table outside the file".into()))?
            .copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(exe, &bytes).map_err(io("writing", exe))
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
/// and the guest segments into the static executable `out`, the guest mapped by the runtime
/// ([`GuestMapping::RuntimeMapped`]).
pub fn link(isa: HostIsa, translated: &[u8], guest: &[GuestSegment<'_>], out: &Path) -> Result<(), LinkError> {
    link_with(isa, translated, guest, out, GuestMapping::default())
}

/// As [`link`], choosing how the guest segments are mapped.
pub fn link_with(
    isa: HostIsa,
    translated: &[u8],
    guest: &[GuestSegment<'_>],
    out: &Path,
    mapping: GuestMapping,
) -> Result<(), LinkError> {
    link_objects(isa, translated, guest, out, mapping, None)
}

/// Link the launcher of a dynamically linked program: the runtime for `isa`, `translated`
/// (an object from `hcontainer-codegen` for an empty program: the runtime's tables and guest
/// facts) and the `hc_loader_config` naming `guest` (absolute; empty for a launcher that
/// learns its program at run time) and the translation store `store_root` where the units
/// are. The runtime maps the program and its interpreter as Linux would and loads the units.
pub fn link_launcher(
    isa: HostIsa,
    translated: &[u8],
    guest: &[u8],
    store_root: &[u8],
    out: &Path,
) -> Result<(), LinkError> {
    let config = launcher_config_object(isa, guest, store_root)?;
    link_objects(isa, translated, &[], out, GuestMapping::RuntimeMapped, Some(&config))
}

/// An object defining `hc_loader_config` (`hcontainer_abi::unit::LoaderConfig`).
fn launcher_config_object(isa: HostIsa, guest: &[u8], store_root: &[u8]) -> Result<Vec<u8>, LinkError> {
    use hcontainer_abi::unit::{LOADER_CONFIG, LOADER_MAGIC, PATH_MAX};
    use object::elf;
    use object::write::{Symbol, SymbolSection};
    let too_long = |what: &str, p: &[u8]| LinkError::Object(format!("{what} {} is longer than {} bytes", String::from_utf8_lossy(p), PATH_MAX - 1));
    if guest.len() >= PATH_MAX || guest.contains(&0) {
        return Err(too_long("program path", guest));
    }
    if store_root.len() >= PATH_MAX || store_root.contains(&0) {
        return Err(too_long("store path", store_root));
    }
    let mut bytes = vec![0u8; 8 + 2 * PATH_MAX];
    bytes[..8].copy_from_slice(&LOADER_MAGIC);
    bytes[8..8 + guest.len()].copy_from_slice(guest);
    bytes[8 + PATH_MAX..8 + PATH_MAX + store_root.len()].copy_from_slice(store_root);
    let t = target::link_target(isa);
    let mut obj = Object::new(BinaryFormat::Elf, t.arch, Endianness::Little);
    obj.flags = object::FileFlags::Elf { os_abi: elf::ELFOSABI_NONE, abi_version: 0, e_flags: t.e_flags };
    let sec = obj.add_section(Vec::new(), b".rodata.hc_loader_config".to_vec(), SectionKind::ReadOnlyData);
    let off = obj.append_section_data(sec, &bytes, 8);
    obj.add_symbol(Symbol {
        name: LOADER_CONFIG.as_bytes().to_vec(),
        value: off,
        size: bytes.len() as u64,
        kind: object::SymbolKind::Data,
        scope: object::SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Section(sec),
        flags: object::SymbolFlags::None,
    });
    obj.write().map_err(|e| LinkError::Object(e.to_string()))
}

fn link_objects(
    isa: HostIsa,
    translated: &[u8],
    guest: &[GuestSegment<'_>],
    out: &Path,
    mapping: GuestMapping,
    extra: Option<&[u8]>,
) -> Result<(), LinkError> {
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
    let guest_o = match mapping {
        GuestMapping::RuntimeMapped => write(script::GUEST_OBJECT, &guest_table_object(isa, &segs)?)?,
        GuestMapping::ProgramHeaders => write(script::GUEST_OBJECT, &guest_object(isa, &segs)?)?,
    };
    let runtime_a = write("libhcontainer_runtime.a", runtime)?;
    let extra_o = extra.map(|b| write("hc_extra.o", b)).transpose()?;
    let script_path = write("link.ld", script::linker_script(&segs, mapping).as_bytes())?;
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
        .args(extra_o.iter())
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
    if mapping == GuestMapping::RuntimeMapped {
        patch_segment_table(out, &segs)?;
    }
    Ok(())
}

/// Link `translated` (a unit object from `hcontainer-codegen` for `isa`) into the host shared
/// object `out` (a translation unit, see `hcontainer_abi::unit`): position independent, with
/// no undefined symbols and only relative dynamic relocations, its `e_entry` the unit header.
pub fn link_unit(isa: HostIsa, translated: &[u8], out: &Path) -> Result<(), LinkError> {
    let lld = find_lld()?;
    let dir = tempfile::Builder::new()
        .prefix("hcontainer-link")
        .tempdir()
        .map_err(io("creating a temporary directory in", &std::env::temp_dir()))?;
    let obj = dir.path().join(script::TRANSLATED_OBJECT);
    std::fs::write(&obj, translated).map_err(io("writing", &obj))?;
    let t = target::link_target(isa);
    let mut cmd = Command::new(&lld.program);
    cmd.args(&lld.prefix)
        .args(["-m", t.emulation, "-shared", "-z", "noexecstack", "-z", "separate-code", "-z", "relro", "-z", "now"])
        .args(["--build-id=sha1", "--no-undefined", "--hash-style=gnu", "-e", hcontainer_abi::unit::HEADER_SYMBOL])
        .arg("-o")
        .arg(out)
        .arg(&obj);
    let o = cmd.output().map_err(io("running", &lld.program))?;
    if !o.status.success() {
        return Err(LinkError::Lld {
            lld: lld.program.display().to_string(),
            status: o.status.to_string(),
            out: out.display().to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        });
    }
    check_unit(out)
}

/// Check what the runtime's loader relies on: a shared object for the ISA whose dynamic
/// relocations are all relative ones.
fn check_unit(out: &Path) -> Result<(), LinkError> {
    use object::read::elf::{ElfFile64, FileHeader as _, SectionHeader as _};
    use object::elf;
    let bytes = std::fs::read(out).map_err(io("reading", out))?;
    let bad = |what: String| LinkError::Output { path: out.display().to_string(), what };
    let file = ElfFile64::<Endianness>::parse(&*bytes).map_err(|e| bad(format!("cannot parse: {e}")))?;
    let e = file.endian();
    let hdr = file.elf_header();
    if hdr.e_type(e) != elf::ET_DYN {
        return Err(bad("not a shared object".into()));
    }
    let relative = match hdr.e_machine(e) {
        elf::EM_X86_64 => elf::R_X86_64_RELATIVE,
        elf::EM_AARCH64 => elf::R_AARCH64_RELATIVE,
        elf::EM_RISCV => elf::R_RISCV_RELATIVE,
        m => return Err(bad(format!("unexpected machine {m}"))),
    };
    let sections = hdr.sections(e, &*bytes).map_err(|err| bad(format!("section headers: {err}")))?;
    for sh in sections.iter() {
        if sh.sh_type(e) != elf::SHT_RELA {
            continue;
        }
        let data = sh.data(e, &*bytes).map_err(|err| bad(format!("relocations: {err}")))?;
        for chunk in data.chunks_exact(24) {
            let Ok((r, _)) = object::pod::from_bytes::<elf::Rela64<Endianness>>(chunk) else { continue };
            let ty = r.r_type(e, false);
            if ty != relative {
                return Err(bad(format!("dynamic relocation of type {ty} (only relative ones are loadable)")));
            }
        }
    }
    Ok(())
}
