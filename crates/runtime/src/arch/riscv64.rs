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
