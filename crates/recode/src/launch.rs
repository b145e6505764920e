//! Starting a native program in a migratable configuration (`hcontainer run`).
//!
//! Two things must hold for a native process to be recodable into a translated one:
//!
//! * Whatever the program's libraries choose once from the CPU's features must also work
//!   translated. A static glibc resolves its string and memory routines (IFUNCs) at start-up
//!   from `cpuid`; on a machine with AVX-512 it picks EVEX routines that the translated side
//!   neither reports (its `cpuid` is a baseline x86-64) nor necessarily lifts. glibc's
//!   `glibc.cpu.hwcaps` tunable masks features before that choice: [`GLIBC_HWCAPS_MASK`]
//!   masks everything above the baseline, and the "preferred" flag `AVX_Fast_Unaligned_Load`
//!   that glibc derives from AVX2 before the mask applies (it alone selects the AVX
//!   `memmove`/`memcpy`).
//! * Addresses must be the translated layout's: address randomization off
//!   (`personality(ADDR_NO_RANDOMIZE)`), which puts a PIE with an interpreter at
//!   [`hcontainer_abi::layout::PIE_GUEST_BASE`]. Linux loads an `ET_DYN` executable without
//!   `PT_INTERP` (a true static-pie) like an ELF interpreter, in the mmap area instead
//!   (0x7ffff7…); [`Plan::warnings`] says so.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{elf, Endianness};

/// `glibc.cpu.hwcaps` value masking every CPU feature above the baseline x86-64 that the
/// translated side's `cpuid` reports (`hcontainer_semantics::cpuid`).
pub const GLIBC_HWCAPS_MASK: &str = "-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512ER,-AVX512PF,-AVX512VL,\
-AVX2,-AVX,-FMA,-FMA4,-F16C,-BMI1,-BMI2,-LZCNT,-MOVBE,-POPCNT,-SSE4_1,-SSE4_2,-SSSE3,-RTM,-XSAVEC,-ERMS,\
-AVX_Fast_Unaligned_Load";

/// `ADDR_NO_RANDOMIZE` of `personality(2)`.
const ADDR_NO_RANDOMIZE: libc::c_ulong = 0x0040000;

/// Why a program cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The program.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The program is not a 64-bit x86-64 ELF executable.
    #[error("{}: not an x86-64 ELF executable ({why})", path.display())]
    NotElf {
        /// The program.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// How a program will be started, with what may still keep it from being migratable.
#[derive(Debug)]
pub struct Plan {
    /// The command, ready to spawn (environment and personality applied on spawn).
    pub command: Command,
    /// The `GLIBC_TUNABLES` value it gets.
    pub glibc_tunables: OsString,
    /// Layout problems found in the executable (empty when none).
    pub warnings: Vec<String>,
}

/// `GLIBC_TUNABLES` for a migratable run: `existing` (the caller's value, if any) with the
/// hardware-capability mask appended, so later settings of the same tunable do not undo it.
pub fn glibc_tunables(existing: Option<&OsStr>) -> OsString {
    let mut v = OsString::new();
    if let Some(e) = existing.filter(|e| !e.is_empty()) {
        v.push(e);
        v.push(":");
    }
    v.push("glibc.cpu.hwcaps=");
    v.push(GLIBC_HWCAPS_MASK);
    v
}

/// Layout warnings for the ELF file at `path`.
fn check_elf(path: &Path) -> Result<Vec<String>, LaunchError> {
    let data = std::fs::read(path).map_err(|source| LaunchError::Io { path: path.to_path_buf(), source })?;
    let not_elf = |why: String| LaunchError::NotElf { path: path.to_path_buf(), why };
    let file = ElfFile64::<Endianness>::parse(&*data).map_err(|e| not_elf(e.to_string()))?;
    let hdr = file.elf_header();
    let e = file.endian();
    if hdr.e_machine(e) != elf::EM_X86_64 {
        return Err(not_elf(format!("e_machine {}", hdr.e_machine(e))));
    }
    let mut warnings = Vec::new();
    if hdr.e_type(e) == elf::ET_DYN {
        let phdrs = hdr.program_headers(e, &*data).map_err(|e| not_elf(e.to_string()))?;
        if !phdrs.iter().any(|p| p.p_type(e) == elf::PT_INTERP) {
            warnings.push(format!(
                "{} is a static-pie without PT_INTERP: Linux loads it in the mmap area, not at {:#x} \
                 where its translation places it",
                path.display(),
                hcontainer_abi::layout::PIE_GUEST_BASE
            ));
        }
    }
    Ok(warnings)
}

/// Turns address randomization off for the calling process (and what it executes).
fn no_randomize() -> std::io::Result<()> {
    // SAFETY: personality(2) takes a flags word and touches no memory; 0xffffffff queries.
    let cur = unsafe { libc::personality(0xffff_ffff) };
    if cur == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // `cur` is a non-negative flags word here.
    let want = (cur as libc::c_ulong) | ADDR_NO_RANDOMIZE;
    // SAFETY: as above.
    if unsafe { libc::personality(want) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Prepares `program args…` to run natively in a migratable configuration.
pub fn plan(program: &Path, args: &[OsString]) -> Result<Plan, LaunchError> {
    let warnings = check_elf(program)?;
    let tunables = glibc_tunables(std::env::var_os("GLIBC_TUNABLES").as_deref());
    let mut command = Command::new(program);
    command.args(args).env("GLIBC_TUNABLES", &tunables);
    // SAFETY: the hook runs in the forked child before exec and only makes system calls,
    // which are async-signal-safe; it allocates nothing.
    unsafe { command.pre_exec(no_randomize) };
    Ok(Plan { command, glibc_tunables: tunables, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunables_keep_callers_settings_first() {
        let t = glibc_tunables(Some(OsStr::new("glibc.malloc.check=3")));
        let s = t.to_str().expect("utf-8");
        assert!(s.starts_with("glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX512F,"), "{s}");
        assert_eq!(glibc_tunables(None).to_str().expect("utf-8"), format!("glibc.cpu.hwcaps={GLIBC_HWCAPS_MASK}"));
    }
}
