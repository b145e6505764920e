//! Where each thread's [`ResumeRecord`] lives (`hcontainer_abi::layout`): the main thread's
//! at `MAIN_RESUME_RECORD` on top of the main host stack, every other thread's at the top of
//! its thread slot's host stack. A thread finds its own record from its host stack pointer
//! (signal handlers included, which run on that stack), so no thread-local register is
//! needed. Also the set of slots this process uses, and a little per-thread runtime data
//! kept in the record's page after the record.

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::calls::ResumeRecord;
use hcontainer_abi::{layout, GuestState};

use crate::arch;

/// Offset of a `GuestState` inside its record.
pub const STATE_OFFSET: usize = core::mem::offset_of!(ResumeRecord, state);

/// Offset of [`Extra`] in a record's page (after the record, before the page end).
const EXTRA_OFFSET: u64 = 2048;

/// Runtime data of one thread, in its record's page after the record. Zero in a fresh page
/// (a recoded image), which is every field's default.
#[repr(C)]
pub struct Extra {
    /// The guest's view of the host-reserved signals in its blocked mask (bits of
    /// [`crate::signal::RESERVED_MASK`]): the host never blocks them.
    pub guest_blocked_reserved: AtomicU64,
    /// Guest signals received by the host handler and not delivered yet (bit `n - 1`).
    pub pending: AtomicU64,
    /// Set by the runtime's own signal handlers: a host call that fails with `-EINTR`
    /// while it is set was interrupted by the runtime, not by a guest signal.
    pub runtime_hit: AtomicU64,
    /// First 48 bytes of the `siginfo_t` of pending signal `n` (1..=31).
    pub info: [[AtomicU64; 6]; 32],
}

const _: () = assert!(
    core::mem::size_of::<ResumeRecord>() as u64 <= EXTRA_OFFSET
        && EXTRA_OFFSET + core::mem::size_of::<Extra>() as u64 <= layout::GUEST_PAGE_SIZE
);

/// One past the last byte of the slot area.
const SLOTS_END: u64 = layout::thread_slot_base(layout::THREAD_SLOTS);
/// Lowest address of the main host stack.
const MAIN_STACK_LOW: u64 = layout::HOST_STACK_TOP - layout::HOST_STACK_SIZE;

/// The record of the thread whose host stack holds `sp`, if `sp` lies on a runtime host
/// stack (main or a slot's).
pub fn record_for_sp(sp: u64) -> Option<*mut ResumeRecord> {
    if (MAIN_STACK_LOW..layout::MAIN_RESUME_RECORD).contains(&sp) {
        return Some(layout::MAIN_RESUME_RECORD as *mut ResumeRecord);
    }
    if (layout::THREAD_SLOTS_BASE..SLOTS_END).contains(&sp) {
        let i = (sp - layout::THREAD_SLOTS_BASE) / layout::THREAD_SLOT_STRIDE;
        let rec = layout::thread_resume_record(i);
        if sp >= layout::thread_slot_base(i) + layout::STACK_GUARD_SIZE && sp < rec {
            return Some(rec as *mut ResumeRecord);
        }
    }
    None
}

/// The calling thread's record (None while on a stack that is not a runtime host stack,
/// i.e. before start-up switched stacks).
#[inline]
pub fn current_record() -> Option<*mut ResumeRecord> {
    record_for_sp(arch::stack_pointer() as u64)
}

/// The record holding `state`.
pub fn record_of(state: *mut GuestState) -> *mut ResumeRecord {
    (state as usize - STATE_OFFSET) as *mut ResumeRecord
}

/// The slot index whose record is `rec`, if it is a slot record.
pub fn slot_of_record(rec: *mut ResumeRecord) -> Option<u64> {
    let a = rec as u64;
    if !(layout::THREAD_SLOTS_BASE..SLOTS_END).contains(&a) {
        return None;
    }
    let i = (a - layout::THREAD_SLOTS_BASE) / layout::THREAD_SLOT_STRIDE;
    (layout::thread_resume_record(i) == a).then_some(i)
}

/// The per-thread data next to record `rec`.
pub fn extra(rec: *mut ResumeRecord) -> &'static Extra {
    // SAFETY: a record is the first bytes of a mapped page the thread owns; `Extra` lies in
    // the same page, is made of atomics only, and is valid when zero.
    unsafe { &*((rec as u64 + EXTRA_OFFSET) as *const Extra) }
}

/// `state.poll` of record `rec`, for access from several contexts (signal handlers).
pub fn poll_word(rec: *mut ResumeRecord) -> &'static AtomicU64 {
    // SAFETY: the field is 8-byte aligned inside a live record; every concurrent access to
    // it goes through atomics (translated code only reads it).
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec).state.poll)) }
}

/// `status` of record `rec`, a futex word while parked.
pub fn status_word(rec: *mut ResumeRecord) -> &'static AtomicU64 {
    // SAFETY: as for `poll_word`: aligned, inside a live record, accessed atomically.
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec).status)) }
}

/// `tid` of record `rec`.
pub fn tid_word(rec: *mut ResumeRecord) -> &'static AtomicU64 {
    // SAFETY: as for `poll_word`.
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec).tid)) }
}

/// Slots mapped by this process, one bit each.
static SLOTS_USED: [AtomicU64; (layout::THREAD_SLOTS as usize).div_ceil(64)] =
    [const { AtomicU64::new(0) }; (layout::THREAD_SLOTS as usize).div_ceil(64)];

/// Remember that slot `i` is in use by a thread of this process.
pub fn mark_slot(i: u64) {
    if i < layout::THREAD_SLOTS {
        SLOTS_USED[(i / 64) as usize].fetch_or(1 << (i % 64), Ordering::AcqRel);
    }
}

/// Slot `i` is free again.
pub fn unmark_slot(i: u64) {
    if i < layout::THREAD_SLOTS {
        SLOTS_USED[(i / 64) as usize].fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
    }
}

/// In a new process (fork) whose only thread runs on record `own`: unmap the slots of the
/// parent's other threads (their threads do not exist here, and the mappings would look like
/// threads to a checkpointer), mark the main record thread-less (`tid` 0) unless it is
/// `own`, record the new thread id, and drop a notify request the parent had (it was meant
/// for the parent's threads).
pub fn after_fork(own: *mut ResumeRecord, tid: u64) {
    let own_slot = slot_of_record(own);
    for (w, word) in SLOTS_USED.iter().enumerate() {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let b = u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            let i = w as u64 * 64 + b;
            if Some(i) == own_slot {
                continue;
            }
            // SAFETY: slot `i` belonged to a thread of the parent that does not exist in this
            // process; nothing here runs on or refers to it.
            let _ = unsafe { crate::sys::munmap(layout::thread_slot_base(i) as usize, layout::THREAD_SLOT_LEN as usize) };
            unmark_slot(i);
        }
    }
    if own_slot.is_some() {
        tid_word(layout::MAIN_RESUME_RECORD as *mut ResumeRecord).store(0, Ordering::Release);
    }
    tid_word(own).store(tid, Ordering::Release);
    poll_word(own).store(0, Ordering::SeqCst);
    status_word(own).store(hcontainer_abi::calls::THREAD_RUNNING, Ordering::SeqCst);
}
