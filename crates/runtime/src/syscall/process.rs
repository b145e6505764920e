//! `clone`, `fork`, `vfork` and thread `exit` for the guest.
//!
//! A new process continues in a copy of the runtime (host stack included), so a shared
//! address space without a new thread (`CLONE_VM`, `vfork`) is turned into a copy.
//!
//! A new thread (`CLONE_THREAD`) gets a slot in hcontainer's range: a `MAP_NORESERVE` host
//! stack with a guard below and its `GuestState` at the top. The child's state is the
//! parent's after the `syscall` (rax = 0, rcx = rip, r11 = rflags, the new guest stack, TLS
//! from `CLONE_SETTLS`), and it starts in a dispatcher loop at `rip` (the address after the
//! `syscall`, a resume point). Its guest `exit` unmaps the slot and ends the host thread.

use core::sync::atomic::{AtomicUsize, Ordering};

use hcontainer_abi::{layout, GuestState, Gpr};

use super::{guest_rflags, host_raw, Args};
use crate::arch::{self, nr};
use crate::sys::{self, Errno};

const SIGCHLD: u64 = 17;
const CLONE_VM: u64 = 0x100;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_THREAD: u64 = 0x1_0000;


/// Host stack of a guest thread.
const THREAD_STACK: u64 = 64 << 20;
/// A slot: guard, stack (with the `GuestState` at its top), rounded to 1 MiB steps.
const SLOT_STRIDE: u64 = THREAD_STACK + (1 << 20);
/// Thread slots fill the upper half of hcontainer's range, below the runtime heap.
const SLOTS_BASE: u64 = layout::RUNTIME_BASE + layout::RUNTIME_SIZE / 2;
const SLOTS: u64 = (crate::alloc::HEAP_BASE - SLOTS_BASE) / SLOT_STRIDE;
/// Bytes at the top of a slot kept for the thread's `GuestState`.
const STATE_RESERVE: u64 = 1024;
/// Slots tried before a thread creation fails with `EAGAIN`.
const SLOT_TRIES: usize = 64;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Map a free thread slot; returns its base (the guard's start).
fn map_slot() -> Result<u64, Errno> {
    let total = layout::STACK_GUARD_SIZE + THREAD_STACK;
    for _ in 0..SLOT_TRIES {
        let i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) as u64 % SLOTS;
        let base = SLOTS_BASE + i * SLOT_STRIDE;
        let prot = sys::PROT_READ | sys::PROT_WRITE;
        match sys::map_anon_at(base as usize, total as usize, prot, sys::MAP_NORESERVE) {
            Ok(()) => {
                // SAFETY: the guard lies inside the mapping just made, unused so far.
                let _ = unsafe { sys::mprotect(base as usize, layout::STACK_GUARD_SIZE as usize, sys::PROT_NONE) };
                return Ok(base);
            }
            // A live thread's slot.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno(11)) // EAGAIN, as pthread_create reports it
}

/// Size of a mapped slot.
const fn slot_len() -> u64 {
    layout::STACK_GUARD_SIZE + THREAD_STACK
}

/// A new guest thread for `clone(flags, stack, ptid, ctid, tls)` with `CLONE_THREAD`.
fn thread(st: &GuestState, a: Args) -> i64 {
    let [flags, stack, ptid, ctid, tls, _] = a;
    if flags & CLONE_VM == 0 {
        return Errno::EINVAL.neg();
    }
    let base = match map_slot() {
        Ok(b) => b,
        Err(e) => return e.neg(),
    };
    let state_addr = base + slot_len() - STATE_RESERVE;
    let mut child = *st;
    child.gpr[Gpr::Rax as usize] = 0;
    child.gpr[Gpr::Rcx as usize] = st.rip;
    child.gpr[Gpr::R11 as usize] = guest_rflags(st);
    if stack != 0 {
        child.gpr[Gpr::Rsp as usize] = stack;
    }
    if flags & CLONE_SETTLS != 0 {
        child.fs_base = tls;
    }
    child.orig_rax = u64::MAX;
    child.poll = 0;
    child.runtime = base;
    // SAFETY: `state_addr` is inside the fresh slot, 16-byte aligned, with room for the state.
    unsafe { (state_addr as *mut GuestState).write(child) };
    let host_flags = (flags & !CLONE_SETTLS) as usize;
    // SAFETY: the slot's stack ends at `state_addr` (16-byte aligned) and belongs to the new
    // thread only; `CLONE_VM` is set; the tid pointers are the guest's, as it asked.
    let r = unsafe {
        arch::clone_thread(
            host_flags,
            state_addr as usize,
            ptid as usize,
            ctid as usize,
            crate::dispatch::run_main,
            state_addr as usize,
        )
    };
    if r < 0 {
        // SAFETY: no thread was created; the slot is unused.
        let _ = unsafe { sys::munmap(base as usize, slot_len() as usize) };
    }
    r as i64
}

/// Guest `exit`: ends the calling thread; a thread created by [`thread`] also frees its slot.
pub fn exit(st: &GuestState, status: u64) -> i64 {
    if st.runtime != 0 {
        // SAFETY: `runtime` is the base of this thread's own slot; nothing else uses it
        // and nothing runs on it after the unmap.
        unsafe { arch::exit_thread_unmap(st.runtime as usize, slot_len() as usize, status as usize) }
    }
    host_raw(nr::EXIT, [status as usize, 0, 0, 0, 0, 0])
}

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
        return thread(st, a);
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
