//! Guest signal bookkeeping: the guest's `rt_sigaction` table (x86-64 `struct sigaction`
//! layout: handler, flags, restorer, mask) and its alternate signal stack. Guest handlers are
//! not delivered yet; `SIG_DFL`/`SIG_IGN` are applied to the host as well.
//!
//! The notify signals (`NOTIFY_SIGNAL`, `RESUME_SIGNAL`) belong to the runtime: the guest's
//! actions for them are only recorded, and every signal mask the guest hands to the kernel
//! (`rt_sigprocmask`, `rt_sigsuspend`, `ppoll`, `pselect6`, `epoll_pwait`, `epoll_pwait2`,
//! `io_pgetevents`, `rt_sigtimedwait`, `signalfd`) reaches the host without them, so nothing
//! the guest does blocks, consumes or replaces them. `rt_sigprocmask` still reports the
//! guest's own view of those two bits.

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::calls::{NOTIFY_SIGNAL, RESUME_SIGNAL};

use crate::arch::nr;
use crate::sys::{self, Errno};
use crate::thread;

/// Signal mask bits (bit `n - 1` for signal `n`) the runtime keeps for itself.
pub const RESERVED_MASK: u64 = (1 << (NOTIFY_SIGNAL - 1)) | (1 << (RESUME_SIGNAL - 1));

/// True for the runtime's own signals.
fn reserved(sig: u64) -> bool {
    sig == NOTIFY_SIGNAL as u64 || sig == RESUME_SIGNAL as u64
}

const NSIG: usize = 64;
const SIGKILL: u64 = 9;
const SIGSTOP: u64 = 19;
const SIG_IGN: u64 = 1;
const SA_NOCLDSTOP: u64 = 1;
const SA_NOCLDWAIT: u64 = 2;
const SA_RESTART: u64 = 0x1000_0000;

/// Per signal (index = number): handler, flags, restorer, mask, as the guest set them.
static ACTIONS: [[AtomicU64; 4]; NSIG + 1] = [const { [const { AtomicU64::new(0) }; 4] }; NSIG + 1];

/// `rt_sigaction(sig, act, oact, sigsetsize)` with x86-64 structures.
pub fn rt_sigaction(sig: u64, act: u64, oact: u64, size: u64) -> Result<u64, Errno> {
    if size != 8 || sig == 0 || sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    if act != 0 && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let slot = &ACTIONS[sig as usize];
    let new = if act != 0 {
        let mut v = [0u64; 4];
        // SAFETY: the guest passes a 32-byte x86-64 `struct sigaction`; guest addresses are
        // host addresses.
        unsafe { core::ptr::copy_nonoverlapping(act as *const u64, v.as_mut_ptr(), 4) };
        Some(v)
    } else {
        None
    };
    if oact != 0 {
        let old: [u64; 4] = core::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
        // SAFETY: the guest passes room for a 32-byte `struct sigaction`.
        unsafe { core::ptr::copy_nonoverlapping(old.as_ptr(), oact as *mut u64, 4) };
    }
    if let Some(v) = new {
        if v[0] <= SIG_IGN && !reserved(sig) {
            set_host_disposition(sig, v[0], v[1] & (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_RESTART), v[3])?;
        }
        for (a, x) in slot.iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }
    Ok(0)
}

/// Apply `SIG_DFL` or `SIG_IGN` to the host.
fn set_host_disposition(sig: u64, handler: u64, flags: u64, mask: u64) -> Result<(), Errno> {
    // Host `struct sigaction`: riscv64 has no sa_restorer.
    #[cfg(target_arch = "riscv64")]
    let act: [u64; 4] = [handler, flags, mask, 0];
    #[cfg(not(target_arch = "riscv64"))]
    let act: [u64; 4] = [handler, flags, 0, mask];
    // SAFETY: `act` is a valid host sigaction without handler code; no old action is read.
    unsafe { sys::syscall(nr::RT_SIGACTION, [sig as usize, act.as_ptr() as usize, 0, 8, 0, 0]) }
        .map(|_| ())
}

/// x86-64 `stack_t`: ss_sp, ss_flags (+pad), ss_size.
static ALTSTACK: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(SS_DISABLE), AtomicU64::new(0)];
const SS_ONSTACK: u64 = 1;
const SS_DISABLE: u64 = 2;
const SS_AUTODISARM: u64 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;

/// `sigaltstack(ss, old_ss)`: recorded for the guest (there is no host handler to use it).
pub fn sigaltstack(ss: u64, old: u64) -> Result<u64, Errno> {
    let new = if ss != 0 {
        let mut v = [0u64; 3];
        // SAFETY: the guest passes a 24-byte x86-64 `stack_t`.
        unsafe { core::ptr::copy_nonoverlapping(ss as *const u64, v.as_mut_ptr(), 3) };
        let flags = v[1] & 0xffff_ffff;
        if flags & !(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & SS_DISABLE == 0 && v[2] < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        v[1] = flags;
        Some(v)
    } else {
        None
    };
    if old != 0 {
        let v: [u64; 3] = core::array::from_fn(|i| ALTSTACK[i].load(Ordering::Relaxed));
        // SAFETY: the guest passes room for a 24-byte `stack_t`.
        unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), old as *mut u64, 3) };
    }
    if let Some(v) = new {
        for (a, x) in ALTSTACK.iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }
    Ok(0)
}

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`: the host mask never holds the runtime's
/// signals; the guest's wish for them is kept per thread and shown in `oldset`.
pub fn rt_sigprocmask(how: u64, set: u64, old: u64, size: u64) -> Result<u64, Errno> {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let new = if set != 0 {
        // SAFETY: the guest passes an 8-byte sigset.
        Some(unsafe { (set as *const u64).read_unaligned() })
    } else {
        None
    };
    let host_new = new.map(|m| m & !RESERVED_MASK);
    let mut host_old = 0u64;
    let p = host_new.as_ref().map_or(0, |m| m as *const u64 as usize);
    // SAFETY: `p` is null or an 8-byte sigset; `host_old` receives the old host mask.
    unsafe { sys::syscall(nr::RT_SIGPROCMASK, [how as usize, p, &mut host_old as *mut u64 as usize, 8, 0, 0])? };
    let extra = thread::current_record().map(thread::extra);
    let view = extra.map_or(0, |e| e.guest_blocked_reserved.load(Ordering::Relaxed));
    if old != 0 {
        // SAFETY: the guest passes room for an 8-byte sigset.
        unsafe { (old as *mut u64).write_unaligned((host_old & !RESERVED_MASK) | view) };
    }
    if let (Some(m), Some(e)) = (new, extra) {
        let v = match how & 0xffff_ffff {
            SIG_BLOCK => view | (m & RESERVED_MASK),
            SIG_UNBLOCK => view & !m,
            SIG_SETMASK => m & RESERVED_MASK,
            _ => view,
        };
        e.guest_blocked_reserved.store(v, Ordering::Relaxed);
    }
    Ok(0)
}

/// Copies of guest signal sets with the runtime's signals removed, for one call.
#[derive(Default)]
pub struct MaskScratch {
    set: u64,
    pair: [u64; 2],
}

/// Make the guest's signal-set arguments of call `nr` point at copies without the runtime's
/// signals (`scratch` holds them for the call's duration).
pub fn strip_reserved(nr: u64, mut a: [u64; 6], scratch: &mut MaskScratch) -> [u64; 6] {
    // (argument index, whether it points at a { set, size } pair)
    let (idx, pair) = match nr {
        130 | 128 => (0, false),
        271 => (3, false),
        281 | 441 => (4, false),
        282 | 289 => (1, false),
        270 | 333 => (5, true),
        _ => return a,
    };
    let p = a[idx];
    if p == 0 {
        return a;
    }
    if pair {
        // { const sigset_t *ss; size_t ss_len }
        // SAFETY: the guest passes a 16-byte pair for this argument.
        let v = unsafe { (p as *const [u64; 2]).read_unaligned() };
        if v[0] == 0 {
            return a;
        }
        // SAFETY: the pair names an 8-byte sigset.
        scratch.set = unsafe { (v[0] as *const u64).read_unaligned() } & !RESERVED_MASK;
        scratch.pair = [&scratch.set as *const u64 as u64, v[1]];
        a[idx] = scratch.pair.as_ptr() as u64;
    } else {
        // SAFETY: the guest passes an 8-byte sigset for this argument.
        scratch.set = unsafe { (p as *const u64).read_unaligned() } & !RESERVED_MASK;
        a[idx] = &scratch.set as *const u64 as u64;
    }
    a
}
