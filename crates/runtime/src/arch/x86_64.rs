//! x86-64 host: `syscall` instruction, `_start`, stack switch.

use core::arch::{asm, global_asm};

/// Issue host system call `nr` with six arguments; returns the raw result (`-errno` on error).
///
/// # Safety
/// The call must be valid for the host kernel with these arguments: any pointer argument
/// must satisfy what the kernel does with it.
#[inline(always)]
pub unsafe fn raw_syscall(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the call's memory effects are valid; `syscall` clobbers
    // rcx and r11 only, which are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
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
    "    xor ebp, ebp",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {entry}",
    "    ud2",
    entry = sym crate::start::start_rust,
);

// Resume entry of a recoded image (`hcontainer_abi::calls::RESUME`): rdi holds the
// `ResumeRecord`, rsp the host stack below it.
global_asm!(
    ".globl hc_resume",
    ".type hc_resume,@function",
    "hc_resume:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {entry}",
    "    ud2",
    entry = sym crate::resume::resume_rust,
);

// Host signal return for the runtime's handlers (`SA_RESTORER`), and the cancellable system
// call (`crate::arch::guest_syscall`): `rdi` points at `[nr, a0..a5, poll address]`; between
// `hc_rt_sc_check` and `hc_rt_sc_done` a notify handler may move the pc to
// `hc_rt_sc_cancel`, so a request raised just before the `syscall` is never slept through.
global_asm!(
    ".globl hc_rt_sigreturn",
    ".hidden hc_rt_sigreturn",
    ".type hc_rt_sigreturn,@function",
    "hc_rt_sigreturn:",
    "    mov eax, 15",
    "    syscall",
    "    ud2",
    ".globl hc_rt_guest_syscall",
    ".hidden hc_rt_guest_syscall",
    ".type hc_rt_guest_syscall,@function",
    "hc_rt_guest_syscall:",
    "    mov r11, rdi",
    "    mov rax, [r11]",
    "    mov rdi, [r11 + 8]",
    "    mov rsi, [r11 + 16]",
    "    mov rdx, [r11 + 24]",
    "    mov r10, [r11 + 32]",
    "    mov r8, [r11 + 40]",
    "    mov r9, [r11 + 48]",
    "    mov r11, [r11 + 56]",
    ".globl hc_rt_sc_check",
    ".hidden hc_rt_sc_check",
    "hc_rt_sc_check:",
    "    cmp qword ptr [r11], 0",
    "    jne hc_rt_sc_cancel",
    "    syscall",
    ".globl hc_rt_sc_done",
    ".hidden hc_rt_sc_done",
    "hc_rt_sc_done:",
    "    ret",
    ".globl hc_rt_sc_cancel",
    ".hidden hc_rt_sc_cancel",
    "hc_rt_sc_cancel:",
    "    mov rax, -4",
    "    ret",
);

/// Offset of the interrupted pc (`uc_mcontext.gregs[REG_RIP]`) in the host `ucontext_t`.
pub const UC_PC_OFFSET: usize = 168;

/// The current host stack pointer (approximately: of the caller's frame).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register only.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
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
            "mov rsp, rsi",
            "xor ebp, ebp",
            "call rax",
            "ud2",
            in("rsi") top,
            in("rax") f,
            in("rdi") arg,
            options(noreturn),
        )
    }
}

/// `clone` for a new thread whose host stack ends at `stack_top`: in the child, calls
/// `entry(arg)` on that stack (never returning); in the parent, returns the raw result.
/// Host argument order (x86-64): flags, stack, parent_tid, child_tid, tls (unused, 0).
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
    // SAFETY: the parent continues with only rax, rcx and r11 changed; the child runs on
    // its own stack and never returns into this frame.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") 56isize => ret,
            in("rdi") flags, in("rsi") stack_top, in("rdx") ptid, in("r10") ctid, in("r8") 0usize,
            in("r12") entry, in("r13") arg,
            lateout("rcx") _, lateout("r11") _,
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
            "mov eax, 11",
            "syscall",
            "mov rdi, rdx",
            "mov eax, 60",
            "syscall",
            "ud2",
            in("rdi") base, in("rsi") len, in("rdx") status,
            options(noreturn),
        )
    }
}
