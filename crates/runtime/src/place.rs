//! Placement of the guest's non-fixed mappings on hosts whose kernel would put them above
//! x86-64's 47-bit user space (an arm64 kernel with 48-bit addresses hands out
//! 0xffff_xxxx_xxxx): such a mapping could not exist after a migration to x86-64. Mappings
//! are placed top-down below the guest stack (as x86-64 Linux does below its stack), reusing
//! ranges the guest unmapped; `MAP_FIXED_NOREPLACE` guards every choice. When no range is
//! found the kernel's choice is taken.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use hcontainer_abi::layout;

/// Highest address (exclusive) handed out: 1 GiB below the guest stack's guard.
pub const TOP: u64 =
    layout::GUEST_STACK_TOP - layout::GUEST_STACK_SIZE - layout::STACK_GUARD_SIZE - (1 << 30);
/// Lowest address handed out: the end of hcontainer's range.
pub const FLOOR: u64 = layout::RUNTIME_BASE + layout::RUNTIME_SIZE;
const MAX_HOLES: usize = 64;

/// Where a candidate address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Hole `i` of the free list.
    Hole(usize),
    /// Just below the cursor.
    Cursor,
}

/// The placement state: everything in `[cursor, TOP)` was handed out at some point;
/// `holes` are ranges in there the guest gave back, as (start, length), disjoint.
pub struct Placer {
    cursor: u64,
    holes: [(u64, u64); MAX_HOLES],
    n: usize,
}

impl Placer {
    /// An empty placer.
    pub const fn new() -> Self {
        Placer { cursor: TOP, holes: [(0, 0); MAX_HOLES], n: 0 }
    }

    /// A free-looking range of `len` bytes (page multiple): first fit among the holes,
    /// else right below the cursor.
    pub fn candidate(&self, len: u64) -> Option<(u64, Source)> {
        if let Some(i) = self.holes[..self.n].iter().position(|h| h.1 >= len) {
            return Some((self.holes[i].0, Source::Hole(i)));
        }
        let addr = self.cursor.checked_sub(len)?;
        (addr >= FLOOR).then_some((addr, Source::Cursor))
    }

    /// The candidate was mapped.
    pub fn taken(&mut self, addr: u64, len: u64, src: Source) {
        match src {
            Source::Hole(i) => {
                self.holes[i].0 = addr + len;
                self.holes[i].1 -= len;
                if self.holes[i].1 == 0 {
                    self.remove(i);
                }
            }
            Source::Cursor => self.cursor = addr,
        }
    }

    /// Something unknown occupies the candidate: never offer it again.
    pub fn collided(&mut self, addr: u64, src: Source) {
        match src {
            Source::Hole(i) => self.remove(i),
            Source::Cursor => self.cursor = addr,
        }
    }

    fn remove(&mut self, i: usize) {
        self.holes.copy_within(i + 1..self.n, i);
        self.n -= 1;
    }

    /// The guest unmapped `[addr, addr + len)`.
    pub fn freed(&mut self, addr: u64, len: u64) {
        let mut lo = addr.max(self.cursor);
        let mut hi = addr.saturating_add(len).min(TOP);
        if lo >= hi {
            return;
        }
        // Merge with every hole it overlaps or touches.
        let mut i = 0;
        while i < self.n {
            let (s, l) = self.holes[i];
            if s <= hi && s + l >= lo {
                lo = lo.min(s);
                hi = hi.max(s + l);
                self.remove(i);
            } else {
                i += 1;
            }
        }
        if lo == self.cursor {
            self.cursor = hi;
            return;
        }
        if self.n == MAX_HOLES {
            // Forget the smallest hole if the new one is larger.
            let (j, &(_, l)) = match self.holes.iter().enumerate().min_by_key(|(_, h)| h.1) {
                Some(m) => m,
                None => return,
            };
            if l >= hi - lo {
                return;
            }
            self.remove(j);
        }
        self.holes[self.n] = (lo, hi - lo);
        self.n += 1;
    }
}

impl Default for Placer {
    fn default() -> Self {
        Self::new()
    }
}

struct Locked {
    busy: AtomicBool,
    placer: UnsafeCell<Placer>,
}
// SAFETY: `placer` is only reached through `with`, which holds `busy` exclusively.
unsafe impl Sync for Locked {}

static PLACER: Locked = Locked { busy: AtomicBool::new(false), placer: UnsafeCell::new(Placer::new()) };

/// Run `f` with exclusive access to the process's placer.
pub fn with<R>(f: impl FnOnce(&mut Placer) -> R) -> R {
    while PLACER.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    // SAFETY: `busy` is held, so this is the only reference.
    let r = f(unsafe { &mut *PLACER.placer.get() });
    PLACER.busy.store(false, Ordering::Release);
    r
}
