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
