//! The hcontainer runtime: `no_std` code linked into every translated executable, for
//! x86-64, arm64 and riscv64 hosts.
//!
//! It provides the process entry point (`_start`, [`start`]), the dispatcher loop
//! ([`dispatch`]), and the runtime entry points translated code calls (see
//! `hcontainer_abi::calls`): `hc_syscall` ([`syscall`]), `hc_helper`, `hc_eval_cond`,
//! `hc_rflags`, `hc_lookup` and `hc_unsupported`. It uses the translated object's
//! `hc_dispatch_table`, `hc_dispatch_len` and `hc_guest_info`.
//!
//! Layers, bottom up: [`arch`] (raw system call instruction, cancellable guest system call,
//! entry, stack switch per host ISA), [`sys`] (typed host calls), then [`print`], [`mem`],
//! [`thread`] (where each thread's `ResumeRecord` lives), [`notify`] (parking threads at
//! migration points for a checkpointer), [`signal`] (guest signal actions, masks and
//! delivery), [`syscall`] (guest x86-64 system calls → host), [`start`], [`resume`] and
//! [`dispatch`].
//!
//! ## Addresses (see `hcontainer_abi::layout`)
//! The guest's main stack ends at `GUEST_STACK_TOP` (0x7e00_0000_0000, 8 MiB + 64 KiB guard);
//! translated code runs on a 256 MiB `MAP_NORESERVE` host stack ending at `HOST_STACK_TOP`
//! (the end of the runtime range); the runtime's small heap is the 1 GiB below that stack's
//! guard. Each further guest thread gets a 64 MiB host stack slot (with its `ResumeRecord`,
//! `GuestState` included, on top) in the upper half of the runtime range. All are mapped with `MAP_FIXED_NOREPLACE`
//! (and checked, as qemu-user 7.2 treats the flag as a hint). On arm64 and riscv64 hosts the
//! guest's non-fixed mappings are placed top-down below the guest stack ([`place`]), so they
//! stay inside x86-64's 47-bit user space. Guest segments listed in the optional
//! `hc_guest_segments` table are mapped from `/proc/self/exe` at start-up.
//!
//! ## Exit statuses and diagnostics
//! * 127: start-up failed (a stack cannot be mapped, `GuestState` version mismatch, unsorted
//!   dispatch table, a program or interpreter that cannot be loaded), or the guest reached
//!   the code of a mapped file whose unit is not in the store, with a message on stderr
//!   naming the file and the command that translates it.
//! * `SIGSEGV` (shell status 139): the guest continued at an address without translation
//!   (`hcontainer: guest jumped to 0x… which was not translated`), as a native wild jump ends.
//! * `SIGILL` (132): an instruction or helper that was not translated
//!   (`hcontainer: unsupported instruction at 0x…: …`).
//! * 134: internal error of the runtime (a panic), with its message.
//!
//! Environment: `HCONTAINER_WARN_SYSCALLS` (non-empty) reports each unsupported system call
//! once; `HCONTAINER_TRACE_SYSCALLS` (non-empty) prints every guest system call and result.
#![no_std]
#![no_main]

pub mod alloc;
pub mod arch;
pub mod dispatch;
pub mod elf;
pub mod loader;
pub mod mem;
pub mod notify;
pub mod place;
pub mod print;
pub mod resume;
pub mod signal;
pub mod start;
pub mod sys;
pub mod syscall;
pub mod thread;
pub mod units;

use hcontainer_abi::{calls::DispatchEntry, calls::GuestInfo, calls::GuestSegment, flags, GuestState};

extern "C" {
    /// Resume points of the translated guest, sorted by guest address.
    static hc_dispatch_table: [DispatchEntry; 0];
    /// Number of entries in `hc_dispatch_table`.
    static hc_dispatch_len: u64;
    /// Facts about the guest image.
    static hc_guest_info: GuestInfo;
}

extern "C" {
    /// Guest segments to map from the executable at start-up (weak default: none).
    static hc_guest_segments: [GuestSegment; 0];
    /// Number of entries in `hc_guest_segments` (weak default: 0).
    static hc_guest_segments_len: u64;
}

// Weak empty defaults for the optional guest segment table; a translated object that
// defines the symbols overrides them.
core::arch::global_asm!(
    ".pushsection .rodata.hc_guest_segments_default,\"a\"",
    ".p2align 3",
    ".weak hc_guest_segments_len",
    "hc_guest_segments_len:",
    "    .quad 0",
    ".weak hc_guest_segments",
    "hc_guest_segments:",
    ".popsection",
);

/// The guest segments the runtime maps itself (usually none).
pub fn guest_segments() -> &'static [GuestSegment] {
    // SAFETY: the symbols are the translated object's table of `hc_guest_segments_len`
    // entries, or the empty defaults above; never written.
    unsafe {
        let len = usize::try_from(core::ptr::addr_of!(hc_guest_segments_len).read()).unwrap_or(0);
        core::slice::from_raw_parts(core::ptr::addr_of!(hc_guest_segments).cast(), len)
    }
}

/// A copy of the translated object's `hc_guest_info`.
///
/// # Safety
/// The executable must be linked with a translated object defining `hc_guest_info`.
pub unsafe fn guest_info() -> GuestInfo {
    // SAFETY: per the contract the symbol is a `GuestInfo` that is never written.
    unsafe { core::ptr::addr_of!(hc_guest_info).read() }
}

/// Status of a native `SIGILL` death, used if raising the signal does not end the process.
const EXIT_SIGILL: i32 = 132;
const SIGILL: usize = 4;

/// `hc_unsupported`: the guest reached an instruction that was not translated.
///
/// # Safety
/// `what` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn hc_unsupported(_state: *mut GuestState, addr: u64, what: *const u8) -> ! {
    let what = if what.is_null() {
        &b"?"[..]
    } else {
        // SAFETY: the caller passes a NUL-terminated description.
        unsafe { print::cstr(what, 256) }
    };
    eprintln!("hcontainer: unsupported instruction at {:#x}: {}", addr, print::Lossy(what));
    if resume::from_image() {
        // A native run's libraries chose their routines for the CPU they started on.
        eprintln!(
            "hcontainer: this process was migrated from a native run whose libraries chose code for CPU features \
             the translation does not cover (glibc picks AVX2 and AVX-512 routines where the CPU has them); \
             start the program with `hcontainer run PROG ARGS...` so that it keeps to the baseline it covers"
        );
    }
    sys::raise_default(SIGILL);
    sys::exit_group(EXIT_SIGILL)
}

/// `hc_helper`: run helper `id` (a `hcontainer_semantics::Helper` number).
///
/// # Safety
/// `state` must be the calling thread's valid `GuestState`.
#[no_mangle]
pub unsafe extern "C" fn hc_helper(state: *mut GuestState, id: u64, a0: u64, a1: u64, a2: u64) -> u64 {
    // SAFETY: the caller hands over exclusive use of its state for the call.
    let st = unsafe { &mut *state };
    helper::call(st, id, a0, a1, a2)
}

mod helper {
    //! Bridge from `hc_helper` to the helper semantics (`hcontainer_semantics::call`).
    use super::*;
    use hcontainer_semantics::Host;

    /// Guest memory is host memory; the clock is the host's monotonic clock.
    struct RuntimeHost;

    impl Host for RuntimeHost {
        fn read(&mut self, addr: u64, buf: &mut [u8]) {
            // SAFETY: guest addresses are host addresses; the guest instruction accessing
            // them would fault natively just as this access faults here.
            unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        }
        fn write(&mut self, addr: u64, buf: &[u8]) {
            // SAFETY: as for `read`.
            unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), addr as *mut u8, buf.len()) };
        }
        fn ticks(&mut self) -> u64 {
            sys::clock_gettime(sys::CLOCK_MONOTONIC)
                .map_or(0, |t| (t.sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.nsec as u64))
        }
    }

    /// Run a helper; a helper or op id the semantics do not define ends the process as an
    /// unsupported instruction would.
    pub fn call(st: &mut GuestState, id: u64, a0: u64, a1: u64, a2: u64) -> u64 {
        let r = match u32::try_from(id) {
            Ok(id) => hcontainer_semantics::call(st, id, a0, a1, a2, &mut RuntimeHost),
            Err(_) => hcontainer_semantics::UNKNOWN,
        };
        if r != hcontainer_semantics::UNKNOWN {
            return r;
        }
        let rip = st.rip;
        let mut buf = print::Buf::new();
        let _ = core::fmt::write(&mut buf, format_args!("helper {} (op {:#x}) is not defined\0", id, a0));
        // SAFETY: `buf` holds a NUL-terminated description.
        unsafe { hc_unsupported(st, rip, buf.as_bytes().as_ptr()) }
    }
}

/// `hc_eval_cond`: 1 if x86 condition `cc` holds for the lazy flags given, else 0.
#[no_mangle]
pub extern "C" fn hc_eval_cond(cc: u64, cc_op: u64, dst: u64, src1: u64, src2: u64) -> u64 {
    u64::from(flags::eval_cond((cc & 15) as u8, cc_op, dst, src1, src2))
}

/// `hc_rflags`: architectural RFLAGS for lazy flags plus the non-arithmetic bits `other`.
#[no_mangle]
pub extern "C" fn hc_rflags(cc_op: u64, dst: u64, src1: u64, src2: u64, other: u64) -> u64 {
    flags::materialize(cc_op, dst, src1, src2) | (other & !flags::bits::ARITH)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    eprintln!("hcontainer: runtime internal error: {}", info);
    sys::exit_group(134)
}
