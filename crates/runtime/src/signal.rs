//! Guest signal bookkeeping: the guest's `rt_sigaction` table (x86-64 `struct sigaction`
//! layout: handler, flags, restorer, mask) and its alternate signal stack. Host handlers are
//! not installed yet; `SIG_DFL`/`SIG_IGN` are applied to the host as well.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::nr;
use crate::sys::{self, Errno};

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
        if v[0] <= SIG_IGN {
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
