//! riscv64 host: `ecall`, `_start`, stack switch.

use core::arch::{asm, global_asm};

/// Issue host system call `nr` with six arguments; returns the raw result (`-errno` on error).
///
/// # Safety
/// The call must be valid for the host kernel with these arguments: any pointer argument
/// must satisfy what the kernel does with it.
#[inline(always)]
pub unsafe fn raw_syscall(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the call's memory effects are valid; `ecall` clobbers
    // only a0 on riscv64 Linux.
    unsafe {
        asm!(
            "ecall",
            in("a7") nr,
            inlateout("a0") a[0] as isize => ret,
            in("a1") a[1], in("a2") a[2], in("a3") a[3], in("a4") a[4], in("a5") a[5],
            options(nostack),
        );
    }
    ret
}

// Process entry: hand the kernel's initial stack pointer to Rust on an aligned stack.
global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "    mv a0, sp",
    "    andi sp, sp, -16",
    "    li ra, 0",
    "    li s0, 0",
    "    call {entry}",
    "    unimp",
    entry = sym crate::start::start_rust,
);

// Resume entry of a recoded image (`hcontainer_abi::calls::RESUME`): a0 holds the
// `ResumeRecord`, sp the host stack below it.
global_asm!(
    ".globl hc_resume",
    ".type hc_resume,@function",
    "hc_resume:",
    "    andi sp, sp, -16",
    "    li ra, 0",
    "    li s0, 0",
    "    call {entry}",
    "    unimp",
    entry = sym crate::resume::resume_rust,
);

// The cancellable system call (`crate::arch::guest_syscall`): `a0` points at
// `[nr, a0..a5, poll address]`; between `hc_rt_sc_check` and `hc_rt_sc_done` a notify
// handler may move the pc to `hc_rt_sc_cancel`, so a request raised just before the `ecall`
// is never slept through. (riscv64 signal handlers return through the kernel's vDSO
// trampoline: its `struct sigaction` has no restorer.)
global_asm!(
    ".globl hc_rt_guest_syscall",
    ".hidden hc_rt_guest_syscall",
    ".type hc_rt_guest_syscall,@function",
    "hc_rt_guest_syscall:",
    "    mv t0, a0",
    "    ld a7, 0(t0)",
    "    ld a0, 8(t0)",
    "    ld a1, 16(t0)",
    "    ld a2, 24(t0)",
    "    ld a3, 32(t0)",
    "    ld a4, 40(t0)",
    "    ld a5, 48(t0)",
    "    ld t1, 56(t0)",
    ".globl hc_rt_sc_check",
    ".hidden hc_rt_sc_check",
    "hc_rt_sc_check:",
    "    ld t2, 0(t1)",
    "    bnez t2, hc_rt_sc_cancel",
    "    ecall",
    ".globl hc_rt_sc_done",
    ".hidden hc_rt_sc_done",
    "hc_rt_sc_done:",
    "    ret",
    ".globl hc_rt_sc_cancel",
    ".hidden hc_rt_sc_cancel",
    "hc_rt_sc_cancel:",
    "    li a0, -4",
    "    ret",
);

/// Offset of the interrupted pc (`uc_mcontext.__gregs[0]`) in the host `ucontext_t`.
pub const UC_PC_OFFSET: usize = 176;

/// The current host stack pointer (approximately: of the caller's frame).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register only.
    unsafe { asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Continue on the stack whose top is `top`, calling `f(arg)`; never returns.
///
/// # Safety
/// `top` must be the 16-byte aligned end of a writable region large enough for `f`.
pub unsafe fn switch_stack(top: usize, f: extern "C" fn(usize) -> !, arg: usize) -> ! {
    // SAFETY: the caller provides a valid stack; nothing of the old stack is used after
    // the switch and `f` never returns.
    unsafe {
        asm!(
            "mv sp, t1",
            "li s0, 0",
            "li ra, 0",
            "jalr t0",
            "unimp",
            in("t1") top,
            in("t0") f,
            in("a0") arg,
            options(noreturn),
        )
    }
}

/// `clone` for a new thread whose host stack ends at `stack_top`: in the child, calls
/// `entry(arg)` on that stack (never returning); in the parent, returns the raw result.
/// Host argument order (asm-generic): flags, stack, parent_tid, tls (unused, 0), child_tid.
///
/// # Safety
/// `stack_top` must be the 16-byte aligned end of a fresh writable stack used by nothing
/// else; `flags` must include `CLONE_VM`; `ptid`/`ctid` as the kernel requires for `flags`.
pub unsafe fn clone_thread(
    flags: usize,
    stack_top: usize,
    ptid: usize,
    ctid: usize,
    entry: extern "C" fn(usize) -> !,
    arg: usize,
) -> isize {
    let ret: isize;
    // SAFETY: the parent continues with only a0 changed; the child runs on its own stack
    // and never returns into this frame.
    unsafe {
        asm!(
            "ecall",
            "bnez a0, 2f",
            "li s0, 0",
            "li ra, 0",
            "mv a0, t1",
            "jalr t0",
            "unimp",
            "2:",
            in("a7") 220usize,
            inlateout("a0") flags as isize => ret,
            in("a1") stack_top, in("a2") ptid, in("a3") 0usize, in("a4") ctid,
            in("t0") entry, in("t1") arg,
        );
    }
    ret
}

/// Unmap `[base, base + len)` — the calling thread's own stack — and end the thread with
/// `status`, touching no stack in between.
///
/// # Safety
/// Nothing may use the range afterwards; the caller is a thread created by
/// [`clone_thread`] whose stack it is.
pub unsafe fn exit_thread_unmap(base: usize, len: usize, status: usize) -> ! {
    // SAFETY: after munmap only registers are used until the thread is gone.
    unsafe {
        asm!(
            "li a7, 215",
            "ecall",
            "mv a0, a2",
            "li a7, 93",
            "ecall",
            "unimp",
            in("a0") base, in("a1") len, in("a2") status,
            options(noreturn),
        )
    }
}
