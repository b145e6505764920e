//! Guest memory management: the emulated program break and the guard that keeps guest
//! `mmap`/`munmap`/`mprotect`/`mremap` away from hcontainer's own range.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hcontainer_abi::calls::ResumeRecord;

use hcontainer_abi::layout::{self, GUEST_PAGE_SIZE};

use crate::sys::{self, Errno};

/// Initial break (page aligned).
static BRK_START: AtomicU64 = AtomicU64::new(0);
/// Current break as the guest sees it.
static BRK_CUR: AtomicU64 = AtomicU64::new(0);
/// End of the memory mapped for the heap (page aligned, ≥ `BRK_CUR`).
static BRK_MAPPED: AtomicU64 = AtomicU64::new(0);

/// Whether the main thread's record is mapped (set at start-up and by a resume that found it):
/// its `brk_start`/`brk_cur` always hold the guest's program break once it is.
static RECORD_READY: AtomicBool = AtomicBool::new(false);

/// The main record is mapped: keep its program break current.
pub fn set_record_ready() {
    RECORD_READY.store(true, Ordering::Release);
    publish_brk();
}

/// Copy the program break into the main record, if it is mapped.
fn publish_brk() {
    if RECORD_READY.load(Ordering::Acquire) {
        let rec = hcontainer_abi::layout::MAIN_RESUME_RECORD as *mut ResumeRecord;
        // SAFETY: the main record page is mapped for the life of the process (set_record_ready).
        unsafe {
            core::ptr::addr_of_mut!((*rec).brk_start).write_volatile(BRK_START.load(Ordering::Relaxed));
            core::ptr::addr_of_mut!((*rec).brk_cur).write_volatile(BRK_CUR.load(Ordering::Relaxed));
        }
    }
}

/// Round `v` up to a guest page.
pub const fn page_up(v: u64) -> u64 {
    (v + GUEST_PAGE_SIZE - 1) & !(GUEST_PAGE_SIZE - 1)
}

/// Set the initial program break (from `hc_guest_info.brk_start`).
pub fn init_brk(start: u64) {
    let start = page_up(start);
    BRK_START.store(start, Ordering::Relaxed);
    BRK_CUR.store(start, Ordering::Relaxed);
    BRK_MAPPED.store(start, Ordering::Relaxed);
}

/// Adopt a program break the kernel managed (a process restored from a native image):
/// the heap `[start, page_up(cur))` is already mapped.
pub fn adopt_brk(start: u64, cur: u64) {
    BRK_START.store(page_up(start), Ordering::Relaxed);
    BRK_CUR.store(cur, Ordering::Relaxed);
    BRK_MAPPED.store(page_up(cur).max(page_up(start)), Ordering::Relaxed);
    publish_brk();
}

/// True when `[addr, addr + len)` overlaps hcontainer's range (or wraps).
pub fn overlaps_runtime(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return true;
    };
    let (lo, hi) = (layout::RUNTIME_BASE, layout::RUNTIME_BASE + layout::RUNTIME_SIZE);
    addr < hi && end > lo
}

/// `brk(new)`: Linux semantics — returns the new break, or the unchanged current break when
/// the request cannot be met (below the start, into hcontainer's range, or no memory).
pub fn brk(new: u64) -> u64 {
    let start = BRK_START.load(Ordering::Relaxed);
    let cur = BRK_CUR.load(Ordering::Relaxed);
    let mapped = BRK_MAPPED.load(Ordering::Relaxed);
    if start == 0 || new < start {
        return cur;
    }
    let want = page_up(new);
    if want > mapped {
        if overlaps_runtime(mapped, want - mapped) {
            return cur;
        }
        let r = sys::map_anon_at(
            mapped as usize,
            (want - mapped) as usize,
            sys::PROT_READ | sys::PROT_WRITE,
            0,
        );
        if r.is_err() {
            return cur;
        }
        BRK_MAPPED.store(want, Ordering::Relaxed);
    } else if want < mapped {
        // SAFETY: `[want, mapped)` is heap memory this module mapped; the guest gave it up.
        if unsafe { sys::munmap(want as usize, (mapped - want) as usize) }.is_err() {
            return cur;
        }
        BRK_MAPPED.store(want, Ordering::Relaxed);
    }
    BRK_CUR.store(new, Ordering::Relaxed);
    publish_brk();
    new
}

/// Check a guest memory-management request against hcontainer's range: `Err(EINVAL)` if
/// the guest names an address range inside it. `fixed` says whether the address is binding.
pub fn check_guest_range(addr: u64, len: u64) -> Result<(), Errno> {
    if overlaps_runtime(addr, len) {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

