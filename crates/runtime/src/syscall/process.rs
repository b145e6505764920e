//! `clone`, `fork`, `vfork` for the guest: processes only. The child continues in a copy of
//! the runtime (host stack included), so a shared address space (`CLONE_VM`, `vfork`) is
//! turned into a copy, and guest threads (`CLONE_THREAD`) are refused with `-ENOSYS`.

use core::sync::atomic::{AtomicBool, Ordering};

use hcontainer_abi::{GuestState, Gpr};

use super::{host_raw, Args};
use crate::arch::nr;
use crate::eprintln;
use crate::sys::Errno;

const SIGCHLD: u64 = 17;
const CLONE_VM: u64 = 0x100;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_THREAD: u64 = 0x1_0000;

static WARNED_THREADS: AtomicBool = AtomicBool::new(false);

/// Host `clone` for a new process with `flags`, parent/child tid pointers.
fn host_clone(flags: u64, ptid: u64, ctid: u64) -> i64 {
    let (f, p, c) = (flags as usize, ptid as usize, ctid as usize);
    // x86-64: (flags, stack, ptid, ctid, tls); asm-generic: (flags, stack, ptid, tls, ctid).
    if cfg!(target_arch = "x86_64") {
        host_raw(nr::CLONE, [f, 0, p, c, 0, 0])
    } else {
        host_raw(nr::CLONE, [f, 0, p, 0, c, 0])
    }
}

/// `fork` and `vfork`.
pub fn fork() -> i64 {
    host_clone(SIGCHLD, 0, 0)
}

/// `clone(flags, stack, ptid, ctid, tls)` in x86-64 argument order.
pub fn clone(st: &mut GuestState, a: Args) -> i64 {
    let [flags, stack, ptid, ctid, tls, _] = a;
    if flags & CLONE_THREAD != 0 {
        if !WARNED_THREADS.swap(true, Ordering::Relaxed) {
            eprintln!("hcontainer: guest threads (clone with CLONE_THREAD) are not supported yet");
        }
        return Errno::ENOSYS.neg();
    }
    let r = host_clone(flags & !(CLONE_VM | CLONE_SETTLS), ptid, ctid);
    if r == 0 {
        if stack != 0 {
            st.gpr[Gpr::Rsp as usize] = stack;
        }
        if flags & CLONE_SETTLS != 0 {
            st.fs_base = tls;
        }
    }
    r
}
