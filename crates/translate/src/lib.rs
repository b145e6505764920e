//! The translation pipeline: a static x86-64 executable in, a standalone static executable
//! for a host ISA out (see `docs/architecture.md`).
//!
//! Each stage lives in its own crate; this one runs them in order, attaches the input's name
//! to every error and measures each stage, so the CLI, the tests and the benchmarks share one
//! path from ELF file to executable.

pub mod closure;
pub mod program;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::layout::GUEST_PAGE_SIZE;
pub use hcontainer_abi::meta::{HostIsa, MemoryModel};
use hcontainer_codegen::GuestDescription;
use hcontainer_link::GuestSegment;
use hcontainer_x86::{GuestBinary, LiftStats};

/// Why a translation failed. Every variant names the input file; the cause is the error's
/// `source()` (printed after it by `anyhow`'s `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The input could not be read.
    #[error("{}", path.display())]
    Read {
        /// Input path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not a translatable executable.
    #[error("{}", path.display())]
    Guest {
        /// Input path.
        path: PathBuf,
        /// What is wrong with it.
        source: hcontainer_x86::GuestError,
    },
    /// Code generation failed.
    #[error("{}: code generation for {isa} failed", path.display(), isa = isa.name())]
    Codegen {
        /// Input path.
        path: PathBuf,
        /// Target host.
        isa: HostIsa,
        /// The code generator's error.
        source: hcontainer_codegen::CodegenError,
    },
    /// Linking failed.
    #[error("{}: linking the {isa} executable failed", path.display(), isa = isa.name())]
    Link {
        /// Input path.
        path: PathBuf,
        /// Target host.
        isa: HostIsa,
        /// The linker's error.
        source: hcontainer_link::LinkError,
    },
}

/// A pipeline stage, for progress reports and timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading and validating the ELF file.
    Parse,
    /// Finding functions and blocks.
    Discover,
    /// Lifting x86-64 to IR.
    Lift,
    /// Compiling IR to host code.
    Codegen,
    /// Linking the executable.
    Link,
}

impl Stage {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Discover => "discover",
            Stage::Lift => "lift",
            Stage::Codegen => "codegen",
            Stage::Link => "link",
        }
    }
}

/// What a successful translation did.
#[derive(Clone, Debug)]
pub struct Report {
    /// Host ISA of the output.
    pub isa: HostIsa,
    /// Lifting counts, including instructions left as traps.
    pub lift: LiftStats,
    /// Time spent in each stage, in order.
    pub timings: Vec<(Stage, Duration)>,
    /// SHA-256 of the input file.
    pub guest_sha256: [u8; 32],
}

impl Report {
    /// Total time over all stages.
    pub fn total(&self) -> Duration {
        self.timings.iter().map(|(_, d)| *d).sum()
    }
}

/// Choices a translation can be given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The order of plain guest loads and stores (default: x86-TSO).
    pub memory_model: MemoryModel,
}

/// Translate the executable at `input` for `isa`, writing the result to `output`.
/// `progress` is told when each stage starts.
pub fn translate_file(
    input: &Path,
    isa: HostIsa,
    output: &Path,
    progress: &mut dyn FnMut(Stage),
) -> Result<Report, TranslateError> {
    translate_file_with(input, isa, &Options::default(), output, progress)
}

/// [`translate_file`] with `options`.
pub fn translate_file_with(
    input: &Path,
    isa: HostIsa,
    options: &Options,
    output: &Path,
    progress: &mut dyn FnMut(Stage),
) -> Result<Report, TranslateError> {
    let memory_model = options.memory_model;
    let path = input.to_path_buf();
    let mut timings = Vec::new();
    let timed = |stage: Stage, progress: &mut dyn FnMut(Stage)| {
        progress(stage);
        let start = Instant::now();
        move |timings: &mut Vec<(Stage, Duration)>| timings.push((stage, start.elapsed()))
    };

    let done = timed(Stage::Parse, progress);
    let bytes = std::fs::read(input).map_err(|source| TranslateError::Read {
        path: path.clone(),
        source,
    })?;
    let guest_err = |source| TranslateError::Guest {
        path: path.clone(),
        source,
    };
    let bin = GuestBinary::parse(&input.display().to_string(), bytes).map_err(guest_err)?;
    done(&mut timings);

    let done = timed(Stage::Discover, progress);
    let map = hcontainer_x86::discover(&bin).map_err(guest_err)?;
    done(&mut timings);

    let done = timed(Stage::Lift, progress);
    let (program, lift) = hcontainer_x86::lift_program(&bin, &map).map_err(guest_err)?;
    done(&mut timings);

    let done = timed(Stage::Codegen, progress);
    let sha256 = bin.sha256();
    let desc = GuestDescription {
        output: hcontainer_codegen::Output::Executable,
        info: guest_info(&bin),
        sha256,
        file_size: bin.bytes.len() as u64,
        is_pie: bin.is_pie,
        n_traps: lift.traps as u64,
        memory_model,
    };
    let object = hcontainer_codegen::compile(&program, &desc, isa).map_err(|source| {
        TranslateError::Codegen {
            path: path.clone(),
            isa,
            source,
        }
    })?;
    done(&mut timings);

    let done = timed(Stage::Link, progress);
    let segments: Vec<GuestSegment<'_>> = bin
        .segments
        .iter()
        .map(|s| GuestSegment {
            vaddr: s.vaddr,
            memsz: s.memsz,
            data: &bin.bytes[s.file_range.clone()],
            read: s.read,
            write: s.write,
            exec: s.exec,
        })
        .collect();
    hcontainer_link::link(isa, &object, &segments, output).map_err(|source| {
        TranslateError::Link {
            path: path.clone(),
            isa,
            source,
        }
    })?;
    done(&mut timings);

    Ok(Report {
        isa,
        lift,
        timings,
        guest_sha256: sha256,
    })
}

/// What the runtime needs to start the guest.
fn guest_info(bin: &GuestBinary) -> GuestInfo {
    let end = bin
        .segments
        .iter()
        .map(|s| s.vaddr.saturating_add(s.memsz))
        .max()
        .unwrap_or(0);
    GuestInfo {
        entry: bin.entry,
        phdr: bin.phdr_addr,
        phnum: u64::from(bin.phnum),
        phent: u64::from(bin.phent),
        brk_start: end.div_ceil(GUEST_PAGE_SIZE) * GUEST_PAGE_SIZE,
        load_bias: bin.load_bias,
        state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
    }
}

/// What a translated unit is made from and what came out.
#[derive(Clone, Debug)]
pub struct UnitReport {
    /// Host ISA of the unit.
    pub isa: HostIsa,
    /// What kind of guest file it was.
    pub kind: hcontainer_x86::guest::ElfKind,
    /// Loading facts of the guest file (interpreter, needed libraries, search paths).
    pub dynamic: hcontainer_x86::guest::Dynamic,
    /// Lifting counts, including instructions left as traps.
    pub lift: LiftStats,
    /// Time spent in each stage, in order.
    pub timings: Vec<(Stage, Duration)>,
    /// SHA-256 of the guest file.
    pub guest_sha256: [u8; 32],
}

impl UnitReport {
    /// Total time over all stages.
    pub fn total(&self) -> Duration {
        self.timings.iter().map(|(_, d)| *d).sum()
    }
}

/// Read and check a guest ELF file of any kind (what [`translate_unit`] accepts), for callers
/// that need its loading facts first (the closure of its libraries).
pub fn inspect_guest(input: &Path) -> Result<GuestBinary, TranslateError> {
    let path = input.to_path_buf();
    let bytes = std::fs::read(input).map_err(|source| TranslateError::Read { path: path.clone(), source })?;
    GuestBinary::parse_any(&input.display().to_string(), bytes).map_err(|source| TranslateError::Guest { path, source })
}

/// Translate the ELF file at `input` — a dynamically linked executable, an interpreter or a
/// shared library — into a translation unit for `isa` (a host shared object, see
/// `hcontainer_abi::unit`) at `output`.
pub fn translate_unit(
    input: &Path,
    isa: HostIsa,
    output: &Path,
    progress: &mut dyn FnMut(Stage),
) -> Result<UnitReport, TranslateError> {
    let memory_model = MemoryModel::default();
    let path = input.to_path_buf();
    let mut timings = Vec::new();
    let timed = |stage: Stage, progress: &mut dyn FnMut(Stage)| {
        progress(stage);
        let start = Instant::now();
        move |timings: &mut Vec<(Stage, Duration)>| timings.push((stage, start.elapsed()))
    };
    let guest_err = |source| TranslateError::Guest { path: path.clone(), source };

    let done = timed(Stage::Parse, progress);
    let bin = inspect_guest(input)?;
    done(&mut timings);

    let done = timed(Stage::Discover, progress);
    let map = hcontainer_x86::discover(&bin).map_err(guest_err)?;
    done(&mut timings);

    let done = timed(Stage::Lift, progress);
    let (program, lift) = hcontainer_x86::lift_program(&bin, &map).map_err(guest_err)?;
    done(&mut timings);

    let done = timed(Stage::Codegen, progress);
    let sha256 = bin.sha256();
    let desc = GuestDescription {
        output: hcontainer_codegen::Output::Unit,
        info: guest_info(&bin),
        sha256,
        file_size: bin.bytes.len() as u64,
        is_pie: bin.is_pie,
        n_traps: lift.traps as u64,
        memory_model,
    };
    let object = hcontainer_codegen::compile(&program, &desc, isa)
        .map_err(|source| TranslateError::Codegen { path: path.clone(), isa, source })?;
    done(&mut timings);

    let done = timed(Stage::Link, progress);
    hcontainer_link::link_unit(isa, &object, output)
        .map_err(|source| TranslateError::Link { path: path.clone(), isa, source })?;
    done(&mut timings);

    Ok(UnitReport { isa, kind: bin.kind, dynamic: bin.dynamic.clone(), lift, timings, guest_sha256: sha256 })
}

/// Write the launcher of a dynamically linked program for `isa` at `output`: the runtime,
/// told to start `guest` (an absolute path, with content hash `sha256` and size `size`; an
/// empty path for a launcher that is told its program at run time) and to find its units in
/// the store at `store_root`.
pub fn write_launcher(
    isa: HostIsa,
    guest: &Path,
    sha256: [u8; 32],
    size: u64,
    store_root: &Path,
    output: &Path,
) -> Result<(), TranslateError> {
    use std::os::unix::ffi::OsStrExt;
    let memory_model = MemoryModel::default();
    let desc = GuestDescription {
        output: hcontainer_codegen::Output::Launcher,
        info: GuestInfo {
            entry: 0,
            phdr: 0,
            phnum: 0,
            phent: 0,
            brk_start: 0,
            load_bias: 0,
            state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
        },
        sha256,
        file_size: size,
        is_pie: false,
        n_traps: 0,
        memory_model,
    };
    let object = hcontainer_codegen::compile(&hcontainer_ir::Program::default(), &desc, isa)
        .map_err(|source| TranslateError::Codegen { path: guest.to_path_buf(), isa, source })?;
    hcontainer_link::link_launcher(isa, &object, guest.as_os_str().as_bytes(), store_root.as_os_str().as_bytes(), output)
        .map_err(|source| TranslateError::Link { path: guest.to_path_buf(), isa, source })
}
