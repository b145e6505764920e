//! The notify protocol (`hcontainer_abi::calls`: `NOTIFY_SIGNAL`, `RESUME_SIGNAL`,
//! `THREAD_PARKED`): host handlers for both signals, and parking a thread at a migration
//! point.
//!
//! * `NOTIFY_SIGNAL` (installed without `SA_RESTART`): raises [`POLL_NOTIFY`] in the
//!   interrupted thread's `state.poll`; a blocking host system call then ends with `-EINTR`,
//!   and one that was about to start is cancelled (see `arch::guest_syscall`).
//! * At the next migration point (the dispatcher loop, or right in `hc_syscall`) the thread
//!   [`park`]s: its whole state is in its record, `status` becomes `THREAD_PARKED` and it
//!   waits on that word (a futex, rechecked every [`PARK_RECHECK_NS`] so a status written by
//!   another process is noticed too).
//! * `RESUME_SIGNAL`: sets the receiving thread's status to `THREAD_RUNNING`, drops its poll
//!   request and lets every parked thread of the process continue (one signal to the
//!   process is enough; one per thread works as well).

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::calls::{NOTIFY_SIGNAL, RESUME_SIGNAL, THREAD_PARKED, THREAD_RUNNING};

use crate::arch::{self, nr};
use crate::{sys, thread};

/// `state.poll` bit: a notify asks the thread to park.
pub const POLL_NOTIFY: u64 = 1;
/// `state.poll` bit: a guest signal is pending.
pub const POLL_SIGNAL: u64 = 2;
/// How often a parked thread rechecks its status without being woken (ns).
pub const PARK_RECHECK_NS: i64 = 20_000_000;

/// Counts `RESUME_SIGNAL`s received by the process: a parked thread continues when it moves.
static RESUME_EPOCH: AtomicU64 = AtomicU64::new(0);

const SA_SIGINFO: u64 = 4;
const SA_RESTORER: u64 = 0x0400_0000;
const FUTEX_WAIT_PRIVATE: usize = 128;
const FUTEX_WAKE_PRIVATE: usize = 129;

/// Install the host handlers of `NOTIFY_SIGNAL` and `RESUME_SIGNAL` (process-wide; at
/// start-up and on every resume). Neither uses `SA_RESTART`, so a blocking system call they
/// interrupt returns `-EINTR`.
pub fn install_handlers() -> Result<(), sys::Errno> {
    let notify: extern "C" fn(i32, usize, usize) = on_notify;
    let resume: extern "C" fn(i32, usize, usize) = on_resume;
    for (sig, handler) in [(NOTIFY_SIGNAL, notify as usize), (RESUME_SIGNAL, resume as usize)] {
        set_handler(sig as usize, handler)?;
    }
    Ok(())
}

/// Host `rt_sigaction(sig, {handler, SA_SIGINFO, empty mask})`.
fn set_handler(sig: usize, handler: usize) -> Result<(), sys::Errno> {
    set_host_handler(sig, handler, 0)
}

/// Host `rt_sigaction(sig, {handler, SA_SIGINFO | flags, empty mask})` for a handler of
/// this runtime.
pub fn set_host_handler(sig: usize, handler: usize, flags: u64) -> Result<(), sys::Errno> {
    #[cfg(target_arch = "riscv64")]
    let act: [u64; 4] = [handler as u64, SA_SIGINFO | flags, 0, 0];
    #[cfg(not(target_arch = "riscv64"))]
    let act: [u64; 4] = [handler as u64, SA_SIGINFO | SA_RESTORER | flags, arch::sigreturn_trampoline() as u64, 0];
    #[cfg(target_arch = "riscv64")]
    let _ = SA_RESTORER;
    // SAFETY: `act` is a valid host `struct sigaction` whose handler is a function of this
    // runtime that only touches atomics and the interrupted context; no old action is read.
    unsafe { sys::syscall(nr::RT_SIGACTION, [sig, act.as_ptr() as usize, 0, 8, 0, 0]) }.map(|_| ())
}

/// `NOTIFY_SIGNAL` handler.
extern "C" fn on_notify(_sig: i32, _info: usize, uc: usize) {
    let Some(rec) = thread::current_record() else {
        return;
    };
    thread::extra(rec).runtime_hit.store(1, Ordering::SeqCst);
    thread::poll_word(rec).fetch_or(POLL_NOTIFY, Ordering::SeqCst);
    cancel_syscall(uc);
}

/// In a handler: a guest system call that has not started yet does not start, it returns
/// `-EINTR` (`uc` is the handler's `ucontext_t`).
pub fn cancel_syscall(uc: usize) {
    let (lo, hi) = arch::syscall_window();
    let pc = (uc + arch::UC_PC_OFFSET) as *mut usize;
    // SAFETY: the kernel passes the interrupted thread's `ucontext_t`; the pc slot lies at
    // `UC_PC_OFFSET` on this host, and writing it changes where the thread continues.
    unsafe {
        let at = pc.read_volatile();
        if (lo..hi).contains(&at) {
            pc.write_volatile(arch::cancel_pc());
        }
    }
}

/// `RESUME_SIGNAL` handler.
extern "C" fn on_resume(_sig: i32, _info: usize, _uc: usize) {
    RESUME_EPOCH.fetch_add(1, Ordering::SeqCst);
    if let Some(rec) = thread::current_record() {
        thread::extra(rec).runtime_hit.store(1, Ordering::SeqCst);
        thread::poll_word(rec).fetch_and(!POLL_NOTIFY, Ordering::SeqCst);
        thread::status_word(rec).store(THREAD_RUNNING, Ordering::SeqCst);
        futex_wake(rec);
    }
}

/// True when the thread of record `rec` has been asked to park.
pub fn requested(rec: thread::Record) -> bool {
    thread::poll_word(rec).load(Ordering::SeqCst) & POLL_NOTIFY != 0
}

/// Park the thread of record `rec` if a notify asks for it: its guest state (in the record)
/// must be complete with `state.rip` a migration point. Returns once resumed, with the
/// request dropped and the status `THREAD_RUNNING`.
pub fn park(rec: thread::Record) {
    let epoch = RESUME_EPOCH.load(Ordering::SeqCst);
    if !requested(rec) {
        return;
    }
    let status = thread::status_word(rec);
    // Release: the state written before is visible to whoever sees PARKED.
    status.store(THREAD_PARKED, Ordering::SeqCst);
    while status.load(Ordering::SeqCst) == THREAD_PARKED && RESUME_EPOCH.load(Ordering::SeqCst) == epoch {
        futex_wait(rec, THREAD_PARKED as u32);
    }
    thread::poll_word(rec).fetch_and(!POLL_NOTIFY, Ordering::SeqCst);
    status.store(THREAD_RUNNING, Ordering::SeqCst);
}

/// Wait (bounded) while the low 32 bits of `rec.status` equal `val`.
fn futex_wait(rec: thread::Record, val: u32) {
    let ts = sys::Timespec { sec: 0, nsec: PARK_RECHECK_NS };
    let word = thread::status_word(rec).as_ptr() as usize;
    // SAFETY: the status word is a live, aligned u64 whose low half (little-endian hosts) is
    // the futex; the timeout is a valid timespec; an error (EINTR, EAGAIN, ETIMEDOUT) only
    // makes the caller recheck.
    let _ = unsafe {
        sys::syscall(nr::FUTEX, [word, FUTEX_WAIT_PRIVATE, val as usize, &ts as *const sys::Timespec as usize, 0, 0])
    };
}

/// Wake the thread waiting on `rec.status`.
fn futex_wake(rec: thread::Record) {
    let word = thread::status_word(rec).as_ptr() as usize;
    // SAFETY: waking touches no memory.
    let _ = unsafe { sys::syscall(nr::FUTEX, [word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0]) };
}
