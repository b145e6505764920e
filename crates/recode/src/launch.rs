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
//! * No vDSO: a C library that finds the kernel's x86-64 vDSO (`AT_SYSINFO_EHDR`) keeps
//!   pointers into it and calls it for the time of day, and no other ISA has that code
//!   (translated processes get no vDSO and make the system calls). A tracer of ours watches
//!   the `execve` and turns the program's `AT_SYSINFO_EHDR` into `AT_IGNORE` before its
//!   first instruction ([`hide_vdso_at_exec`]), so the library makes system calls from the
//!   start, natively too.
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
    // SAFETY: the hooks run in the forked child (or the process itself, for `exec`) before
    // exec and only make system calls, which are async-signal-safe; they allocate nothing.
    unsafe {
        command.pre_exec(no_randomize);
        command.pre_exec(|| {
            hide_vdso_at_exec();
            Ok(())
        });
    }
    Ok(Plan { command, glibc_tunables: tunables, warnings })
}

/// `AT_SYSINFO_EHDR` and `AT_IGNORE` of the auxiliary vector (rewritten by the x86-64 tracer).
#[cfg(target_arch = "x86_64")]
const AT_SYSINFO_EHDR: u64 = 33;
#[cfg(target_arch = "x86_64")]
const AT_IGNORE: u64 = 1;

/// Arrange for the program this process is about to `execve` to start without the vDSO: a
/// tracer (a grandchild, so that no child of the program is left behind) seizes this process,
/// stops it at the exec and marks `AT_SYSINFO_EHDR` on the new stack `AT_IGNORE`, then lets
/// go. Returns false (and the program gets its vDSO) when the tracer cannot attach.
///
/// Only async-signal-safe system calls are made, without allocation: this runs between fork
/// and exec of a possibly multi-threaded parent.
pub fn hide_vdso_at_exec() -> bool {
    // SAFETY: plain system calls on integers and local buffers; the forked children only make
    // such calls and end with `_exit`.
    unsafe {
        let me = libc::getpid();
        // Allow a non-descendant to trace us (Yama's ptrace_scope 1).
        libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0);
        let mut fds = [0i32; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return false;
        }
        let c1 = libc::fork();
        if c1 < 0 {
            libc::close(fds[0]);
            libc::close(fds[1]);
            return false;
        }
        if c1 == 0 {
            libc::close(fds[0]);
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            // Out of the program's session and process group: whoever reaps this tracer
            // (init), its pid must not keep the program's session id in use (a restore
            // gives the program its pid back).
            libc::setsid();
            trace_exec(me, fds[1]);
        }
        libc::close(fds[1]);
        let mut st = 0;
        libc::waitpid(c1, &mut st, 0);
        let mut b = 0u8;
        let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
        libc::close(fds[0]);
        n == 1 && b == b'S'
    }
}

/// The tracer: seize `pid`, report on `ready`, wait for its exec, hide the vDSO, detach.
///
/// # Safety
/// Only for the forked tracer process of [`hide_vdso_at_exec`].
unsafe fn trace_exec(pid: libc::pid_t, ready: i32) -> ! {
    // SAFETY: system calls on integers and local memory only (see the caller).
    unsafe {
        let seize = libc::PTRACE_SEIZE as libc::c_uint;
        if libc::ptrace(seize as _, pid, 0, libc::PTRACE_O_TRACEEXEC as usize) < 0 {
            libc::write(ready, b"E".as_ptr().cast(), 1);
            libc::_exit(1);
        }
        libc::write(ready, b"S".as_ptr().cast(), 1);
        libc::close(ready);
        loop {
            let mut st = 0;
            if libc::waitpid(pid, &mut st, libc::__WALL) < 0 || !libc::WIFSTOPPED(st) {
                libc::_exit(0);
            }
            let sig = libc::WSTOPSIG(st);
            let event = st >> 16;
            if sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_EXEC {
                hide_in_auxv(pid);
                libc::ptrace(libc::PTRACE_DETACH as _, pid, 0, 0);
                libc::_exit(0);
            }
            // Anything else before the exec: let it go on (signals delivered as they came).
            let pass = if event == 0 { sig as usize } else { 0 };
            libc::ptrace(libc::PTRACE_CONT as _, pid, 0, pass);
        }
    }
}

/// In `pid`, stopped right after its exec: mark `AT_SYSINFO_EHDR` `AT_IGNORE` in the
/// auxiliary vector on its stack (argc, argv, NULL, envp, NULL, then the pairs).
#[cfg(target_arch = "x86_64")]
unsafe fn hide_in_auxv(pid: libc::pid_t) {
    // SAFETY: ptrace requests on a stopped tracee with local buffers (see the caller).
    unsafe {
        let mut regs: libc::user_regs_struct = std::mem::zeroed();
        if libc::ptrace(libc::PTRACE_GETREGS as _, pid, 0, std::ptr::addr_of_mut!(regs)) < 0 {
            return;
        }
        let peek = |a: u64| -> Option<u64> {
            *libc::__errno_location() = 0;
            let v = libc::ptrace(libc::PTRACE_PEEKDATA as _, pid, a as usize, 0);
            (v != -1 || *libc::__errno_location() == 0).then_some(v as u64)
        };
        let mut at = regs.rsp;
        let Some(argc) = peek(at) else { return };
        at += 8 * (argc + 2);
        // The environment, to its NULL.
        for _ in 0..1 << 20 {
            match peek(at) {
                Some(0) => break,
                Some(_) => at += 8,
                None => return,
            }
        }
        at += 8;
        for _ in 0..64 {
            match peek(at) {
                Some(0) | None => return,
                Some(AT_SYSINFO_EHDR) => {
                    libc::ptrace(libc::PTRACE_POKEDATA as _, pid, at as usize, AT_IGNORE as usize);
                    return;
                }
                Some(_) => at += 16,
            }
        }
    }
}

/// Native x86-64 programs start on x86-64 hosts only.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn hide_in_auxv(_pid: libc::pid_t) {}

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
