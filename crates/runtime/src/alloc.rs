//! The runtime's global allocator: a bump allocator over a `MAP_NORESERVE` region inside
//! hcontainer's range, mapped on first use. Only rare paths allocate (the x87 semantics'
//! software float library for decimal conversions), so freed memory is reused only when it
//! was the last allocation.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use hcontainer_abi::layout;

use crate::sys;

/// Size of the heap region.
pub const HEAP_SIZE: u64 = 1 << 30;
/// Start of the heap region: just below the host stack's guard.
pub const HEAP_BASE: u64 =
    layout::HOST_STACK_TOP - layout::HOST_STACK_SIZE - layout::STACK_GUARD_SIZE - HEAP_SIZE;

const UNMAPPED: u8 = 0;
const MAPPING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

struct Bump {
    state: AtomicU8,
    /// Offset of the first free byte.
    next: AtomicU64,
}

impl Bump {
    fn ready(&self) -> bool {
        loop {
            match self.state.compare_exchange(UNMAPPED, MAPPING, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let prot = sys::PROT_READ | sys::PROT_WRITE;
                    let r = sys::map_anon_at(HEAP_BASE as usize, HEAP_SIZE as usize, prot, sys::MAP_NORESERVE);
                    let s = if r.is_ok() { READY } else { FAILED };
                    self.state.store(s, Ordering::Release);
                    return s == READY;
                }
                Err(READY) => return true,
                Err(FAILED) => return false,
                Err(_) => core::hint::spin_loop(),
            }
        }
    }
}

// SAFETY: allocations are disjoint ranges of the mapped region handed out by an atomic
// bump pointer, aligned as requested; `dealloc` only rolls back the most recent one.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !self.ready() {
            return core::ptr::null_mut();
        }
        let align = l.align() as u64;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (cur + align - 1) & !(align - 1);
            let end = start + l.size() as u64;
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match self.next.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (HEAP_BASE + start) as *mut u8,
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, l: Layout) {
        let start = ptr as u64 - HEAP_BASE;
        let _ = self.next.compare_exchange(start + l.size() as u64, start, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[global_allocator]
static HEAP: Bump = Bump { state: AtomicU8::new(UNMAPPED), next: AtomicU64::new(0) };
