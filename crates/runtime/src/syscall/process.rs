//! `clone`, `fork`, `vfork` and thread `exit` for the guest.
//!
//! A new process continues in a copy of the runtime (host stack included), so a shared
//! address space without a new thread (`CLONE_VM`, `vfork`) is turned into a copy.
//!
//! A new thread (`CLONE_THREAD`) gets a thread slot (`hcontainer_abi::layout`): a guard, then
//! a `MAP_NORESERVE` host stack whose top page holds the thread's `ResumeRecord` (its
//! `GuestState` at offset 64). The child's state is the parent's after the `syscall` (rax = 0,
//! rcx = rip, r11 = rflags, the new guest stack, TLS from `CLONE_SETTLS`), and it starts in a
//! dispatcher loop at `rip` (the address after the `syscall`, a resume point), after writing
//! its host thread id into the record. Its guest `exit` unmaps the slot and ends the host
//! thread.

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::{layout, GuestState, Gpr};

use super::{guest_rflags, host_raw, Args};
use crate::arch::{self, nr};
use crate::sys::{self, Errno};
use crate::{resume, thread};

const SIGCHLD: u64 = 17;
const CLONE_VM: u64 = 0x100;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_THREAD: u64 = 0x1_0000;

/// Where the search for a free slot starts next.
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

/// Map a free thread slot; returns its index.
fn map_slot() -> Result<u64, Errno> {
    for _ in 0..layout::THREAD_SLOTS {
        let i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % layout::THREAD_SLOTS;
        let base = layout::thread_slot_base(i);
        let prot = sys::PROT_READ | sys::PROT_WRITE;
        match sys::map_anon_at(base as usize, layout::THREAD_SLOT_LEN as usize, prot, sys::MAP_NORESERVE) {
            Ok(()) => {
                // SAFETY: the guard lies inside the mapping just made, unused so far.
                let _ = unsafe { sys::mprotect(base as usize, layout::STACK_GUARD_SIZE as usize, sys::PROT_NONE) };
                thread::mark_slot(i);
                return Ok(i);
            }
            // A live thread's slot (possibly of a restored process whose bookkeeping is new).
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno(11)) // EAGAIN, as pthread_create reports it
}

/// Unmap slot `i` (no thread uses it).
fn unmap_slot(i: u64) {
    thread::unmark_slot(i);
    // SAFETY: the caller guarantees nothing runs on or refers to the slot.
    let _ = unsafe { sys::munmap(layout::thread_slot_base(i) as usize, layout::THREAD_SLOT_LEN as usize) };
}

/// A new guest thread for `clone(flags, stack, ptid, ctid, tls)` with `CLONE_THREAD`.
fn thread(st: &GuestState, a: Args) -> i64 {
    let [flags, stack, ptid, ctid, tls, _] = a;
    if flags & CLONE_VM == 0 {
        return Errno::EINVAL.neg();
    }
    let slot = match map_slot() {
        Ok(i) => i,
        Err(e) => return e.neg(),
    };
    let rec = layout::thread_resume_record(slot);
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
    child.runtime = layout::thread_slot_base(slot);
    // SAFETY: `rec` is the fresh slot's record page (mapped, writable, page aligned).
    unsafe { (rec as *mut hcontainer_abi::calls::ResumeRecord).write(resume::new_record(child)) };
    let state_addr = rec + thread::STATE_OFFSET as u64;
    let host_flags = (flags & !CLONE_SETTLS) as usize;
    // SAFETY: the slot's stack ends at its record (page aligned) and belongs to the new
    // thread only; `CLONE_VM` is set; the tid pointers are the guest's, as it asked.
    let r = unsafe {
        arch::clone_thread(
            host_flags,
            rec as usize,
            ptid as usize,
            ctid as usize,
            crate::dispatch::run_thread,
            state_addr as usize,
        )
    };
    if r < 0 {
        // No thread was created; the slot is unused.
        unmap_slot(slot);
    }
    r as i64
}

/// Guest `exit`: ends the calling thread; a thread on a slot also frees the slot.
pub fn exit(st: &GuestState, status: u64) -> i64 {
    if st.runtime != 0 {
        if let Some(i) = layout::thread_slot_at(st.runtime) {
            thread::unmark_slot(i);
            // No handler may run on the stack once it is unmapped.
            let all = u64::MAX;
            // SAFETY: blocks every signal of the calling thread; `all` is an 8-byte sigset.
            let _ = unsafe { sys::syscall(nr::RT_SIGPROCMASK, [0, &all as *const u64 as usize, 0, 8, 0, 0]) };
            // SAFETY: `runtime` is the base of this thread's own slot; nothing else uses it
            // and nothing runs on it after the unmap.
            unsafe { arch::exit_thread_unmap(st.runtime as usize, layout::THREAD_SLOT_LEN as usize, status as usize) }
        }
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

/// In a new process: only the calling thread exists (see [`thread::after_fork`]).
fn in_child(r: i64) -> i64 {
    if r == 0 {
        if let Some(rec) = thread::current_record() {
            thread::after_fork(rec, sys::gettid() as u64);
        }
    }
    r
}

/// `fork` and `vfork`.
pub fn fork() -> i64 {
    in_child(host_clone(SIGCHLD, 0, 0))
}

/// `clone(flags, stack, ptid, ctid, tls)` in x86-64 argument order.
pub fn clone(st: &mut GuestState, a: Args) -> i64 {
    let [flags, stack, ptid, ctid, tls, _] = a;
    if flags & CLONE_THREAD != 0 {
        return thread(st, a);
    }
    let r = in_child(host_clone(flags & !(CLONE_VM | CLONE_SETTLS), ptid, ctid));
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
