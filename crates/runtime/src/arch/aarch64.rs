//! arm64 host: `svc 0`, `_start`, stack switch.

use core::arch::{asm, global_asm};

/// Issue host system call `nr` with six arguments; returns the raw result (`-errno` on error).
///
/// # Safety
/// The call must be valid for the host kernel with these arguments: any pointer argument
/// must satisfy what the kernel does with it.
#[inline(always)]
pub unsafe fn raw_syscall(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the call's memory effects are valid; `svc 0` clobbers
    // only x0 on arm64 Linux.
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

// Process entry: hand the kernel's initial stack pointer to Rust (sp is 16-byte aligned).
global_asm!(
    ".globl _start",
    ".type _start,%function",
    "_start:",
    "    mov x0, sp",
    "    mov x29, #0",
    "    mov x30, #0",
    "    bl {entry}",
    "    brk #0",
    entry = sym crate::start::start_rust,
);

// Resume entry of a recoded image (`hcontainer_abi::calls::RESUME`): x0 holds the
// `ResumeRecord`, sp the host stack below it.
global_asm!(
    ".globl hc_resume",
    ".type hc_resume,%function",
    "hc_resume:",
    "    mov x9, sp",
    "    and x9, x9, #-16",
    "    mov sp, x9",
    "    mov x29, #0",
    "    mov x30, #0",
    "    bl {entry}",
    "    brk #0",
    entry = sym crate::resume::resume_rust,
);

// Host signal return for the runtime's handlers (`SA_RESTORER`), and the cancellable system
// call (`crate::arch::guest_syscall`): `x0` points at `[nr, a0..a5, poll address]`; between
// `hc_rt_sc_check` and `hc_rt_sc_done` a notify handler may move the pc to
// `hc_rt_sc_cancel`, so a request raised just before the `svc` is never slept through.
global_asm!(
    ".globl hc_rt_sigreturn",
    ".hidden hc_rt_sigreturn",
    ".type hc_rt_sigreturn,%function",
    "hc_rt_sigreturn:",
    "    mov x8, #139",
    "    svc 0",
    "    brk #0",
    ".globl hc_rt_guest_syscall",
    ".hidden hc_rt_guest_syscall",
    ".type hc_rt_guest_syscall,%function",
    "hc_rt_guest_syscall:",
    "    mov x9, x0",
    "    ldr x8, [x9]",
    "    ldp x0, x1, [x9, #8]",
    "    ldp x2, x3, [x9, #24]",
    "    ldp x4, x5, [x9, #40]",
    "    ldr x10, [x9, #56]",
    ".globl hc_rt_sc_check",
    ".hidden hc_rt_sc_check",
    "hc_rt_sc_check:",
    "    ldr x11, [x10]",
    "    cbnz x11, hc_rt_sc_cancel",
    "    svc 0",
    ".globl hc_rt_sc_done",
    ".hidden hc_rt_sc_done",
    "hc_rt_sc_done:",
    "    ret",
    ".globl hc_rt_sc_cancel",
    ".hidden hc_rt_sc_cancel",
    "hc_rt_sc_cancel:",
    "    mov x0, #-4",
    "    ret",
);

/// Offset of the interrupted pc (`uc_mcontext.pc`) in the host `ucontext_t`.
pub const UC_PC_OFFSET: usize = 440;

/// The current host stack pointer (approximately: of the caller's frame).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register only.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
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
            "mov sp, x10",
            "mov x29, #0",
            "mov x30, #0",
            "blr x9",
            "brk #0",
            in("x10") top,
            in("x9") f,
            in("x0") arg,
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
    // SAFETY: the parent continues with only x0 changed; the child runs on its own stack
    // and never returns into this frame.
    unsafe {
        asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x29, #0",
            "mov x30, #0",
            "mov x0, x10",
            "blr x9",
            "brk #0",
            "2:",
            in("x8") 220usize,
            inlateout("x0") flags as isize => ret,
            in("x1") stack_top, in("x2") ptid, in("x3") 0usize, in("x4") ctid,
            in("x9") entry, in("x10") arg,
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
            "mov x8, #215",
            "svc 0",
            "mov x0, x2",
            "mov x8, #93",
            "svc 0",
            "brk #0",
            in("x0") base, in("x1") len, in("x2") status,
            options(noreturn),
        )
    }
}
