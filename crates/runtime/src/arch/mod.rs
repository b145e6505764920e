//! Per-host-ISA primitives: the raw system call instruction, the process entry point and
//! the stack switch. Everything above this module is ISA-neutral except the choice of host
//! system call numbers ([`nr`]).

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub use aarch64::*;
#[cfg(target_arch = "riscv64")]
pub use riscv64::*;
#[cfg(target_arch = "x86_64")]
pub use x86_64::*;

extern "C" {
    fn hc_rt_guest_syscall(args: *const [usize; 8]) -> isize;
    static hc_rt_sc_check: u8;
    static hc_rt_sc_done: u8;
    static hc_rt_sc_cancel: u8;
    #[cfg(not(target_arch = "riscv64"))]
    static hc_rt_sigreturn: u8;
}

/// Issue host system call `nr` unless `*poll` is non-zero when the call is about to start;
/// returns the raw result, `-EINTR` when it did not start. A notify handler that interrupts
/// the thread between the check and the system call instruction moves it to the `-EINTR`
/// exit ([`syscall_window`], [`cancel_pc`]), so a request is never slept through.
///
/// # Safety
/// As [`raw_syscall`]; `poll` must stay readable during the call.
pub unsafe fn guest_syscall(nr: usize, a: [usize; 6], poll: *const u64) -> isize {
    let args = [nr, a[0], a[1], a[2], a[3], a[4], a[5], poll as usize];
    // SAFETY: the routine reads `args` and `*poll` and issues the call; forwarded contract.
    unsafe { hc_rt_guest_syscall(&args) }
}

/// Host pcs `[start, end)` at which [`guest_syscall`] has not issued its system call (or is
/// being restarted at it).
pub fn syscall_window() -> (usize, usize) {
    (core::ptr::addr_of!(hc_rt_sc_check) as usize, core::ptr::addr_of!(hc_rt_sc_done) as usize)
}

/// Host pc of [`guest_syscall`]'s `-EINTR` exit.
pub fn cancel_pc() -> usize {
    core::ptr::addr_of!(hc_rt_sc_cancel) as usize
}

/// The `sa_restorer` of the runtime's host signal handlers (`rt_sigreturn`), where the host
/// `struct sigaction` has one.
#[cfg(not(target_arch = "riscv64"))]
pub fn sigreturn_trampoline() -> usize {
    core::ptr::addr_of!(hc_rt_sigreturn) as usize
}

/// Host system call numbers the runtime issues itself.
#[cfg(target_arch = "x86_64")]
#[allow(missing_docs, dead_code)]
pub mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const FSTAT: usize = 5;
    pub const MMAP: usize = 9;
    pub const MPROTECT: usize = 10;
    pub const MUNMAP: usize = 11;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const MREMAP: usize = 25;
    pub const MINCORE: usize = 27;
    pub const MADVISE: usize = 28;
    pub const GETPID: usize = 39;
    pub const CLONE: usize = 56;
    pub const EXIT: usize = 60;
    pub const UNAME: usize = 63;
    pub const FCNTL: usize = 72;
    pub const GETTID: usize = 186;
    pub const FUTEX: usize = 202;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const TGKILL: usize = 234;
    pub const NEWFSTATAT: usize = 262;
    pub const OPENAT: usize = 257;
    pub const PREAD64: usize = 17;
    pub const EXECVE: usize = 59;
    pub const READLINKAT: usize = 267;
    pub const MEMFD_CREATE: usize = 319;
    pub const LSEEK: usize = 8;
    pub const PPOLL: usize = 271;
    pub const EPOLL_CTL: usize = 233;
    pub const EPOLL_PWAIT: usize = 281;
}

/// Host system call numbers the runtime issues itself (asm-generic numbering, shared by
/// arm64 and riscv64).
#[cfg(not(target_arch = "x86_64"))]
#[allow(missing_docs, dead_code)]
pub mod nr {
    pub const GETCWD: usize = 17;
    pub const PREAD64: usize = 67;
    pub const EXECVE: usize = 221;
    pub const MEMFD_CREATE: usize = 279;
    pub const LSEEK: usize = 62;
    pub const EPOLL_CREATE1: usize = 20;
    pub const EPOLL_CTL: usize = 21;
    pub const EPOLL_PWAIT: usize = 22;
    pub const DUP3: usize = 24;
    pub const FCNTL: usize = 25;
    pub const INOTIFY_INIT1: usize = 26;
    pub const MKNODAT: usize = 33;
    pub const MKDIRAT: usize = 34;
    pub const UNLINKAT: usize = 35;
    pub const SYMLINKAT: usize = 36;
    pub const LINKAT: usize = 37;
    pub const FACCESSAT: usize = 48;
    pub const FCHMODAT: usize = 53;
    pub const FCHOWNAT: usize = 54;
    pub const OPENAT: usize = 56;
    pub const CLOSE: usize = 57;
    pub const PIPE2: usize = 59;
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const PSELECT6: usize = 72;
    pub const PPOLL: usize = 73;
    pub const SIGNALFD4: usize = 74;
    pub const READLINKAT: usize = 78;
    pub const NEWFSTATAT: usize = 79;
    pub const FSTAT: usize = 80;
    pub const UTIMENSAT: usize = 88;
    pub const EXIT: usize = 93;
    pub const EXIT_GROUP: usize = 94;
    pub const GETITIMER: usize = 102;
    pub const SETITIMER: usize = 103;
    pub const CLOCK_GETTIME: usize = 113;
    pub const TGKILL: usize = 131;
    pub const RT_SIGACTION: usize = 134;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const FUTEX: usize = 98;
    pub const GETPGID: usize = 155;
    pub const UNAME: usize = 160;
    pub const GETPID: usize = 172;
    pub const GETTID: usize = 178;
    pub const MUNMAP: usize = 215;
    pub const MREMAP: usize = 216;
    pub const CLONE: usize = 220;
    pub const MMAP: usize = 222;
    pub const MPROTECT: usize = 226;
    pub const MINCORE: usize = 232;
    pub const MADVISE: usize = 233;
    pub const RENAMEAT2: usize = 276;
    pub const EVENTFD2: usize = 19;
    pub const EPOLL_PWAIT2: usize = 441;
}
