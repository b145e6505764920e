//! Where each thread's [`ResumeRecord`] lives (`hcontainer_abi::layout`): the main thread's
//! at `MAIN_RESUME_RECORD` on top of the main host stack, every other thread's at the top of
//! its thread slot's host stack. A thread finds its own record from its host stack pointer
//! (signal handlers included, which run on that stack), so no thread-local register is
//! needed. Also the set of slots this process uses, and a little per-thread runtime data
//! kept in the record's page after the record.

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::calls::{ResumeRecord, RECORD_ALTSTACK_OFFSET};
use hcontainer_abi::{layout, GuestState};

use crate::arch;

/// Offset of a `GuestState` inside its record.
pub const STATE_OFFSET: usize = core::mem::offset_of!(ResumeRecord, state);

/// Offset of [`Extra`] in a record's page (after the record, before the page end).
const EXTRA_OFFSET: u64 = hcontainer_abi::calls::RECORD_EXTRA_OFFSET;

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
        && EXTRA_OFFSET + core::mem::size_of::<Extra>() as u64 <= RECORD_ALTSTACK_OFFSET
);

/// A live thread record: a [`ResumeRecord`] at the start of a mapped page of this process
/// (the main record or a thread slot's), with the thread's [`Extra`] later in that page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record(*mut ResumeRecord);

impl Record {
    /// # Safety
    /// `p` must be the first byte of a mapped, writable record page of this process that stays
    /// mapped while the value (or anything obtained from it) is used.
    pub const unsafe fn from_raw(p: *mut ResumeRecord) -> Self {
        Record(p)
    }

    /// The record's address.
    pub fn as_ptr(self) -> *mut ResumeRecord {
        self.0
    }

    /// The guest state inside the record.
    pub fn state(self) -> *mut GuestState {
        (self.0 as usize + STATE_OFFSET) as *mut GuestState
    }
}

/// One past the last byte of the slot area.
const SLOTS_END: u64 = layout::thread_slot_base(layout::THREAD_SLOTS);
/// Lowest address of the main host stack.
const MAIN_STACK_LOW: u64 = layout::HOST_STACK_TOP - layout::HOST_STACK_SIZE;

/// The record of the thread whose host stack holds `sp`, if `sp` lies on a runtime host
/// stack (main or a slot's).
///
/// Only meaningful for the caller's own stack pointer: the stack it runs on is mapped, and
/// so is the record page on top of it.
pub fn record_for_sp(sp: u64) -> Option<Record> {
    if (MAIN_STACK_LOW..layout::MAIN_RESUME_RECORD).contains(&sp) {
        // SAFETY: the caller runs on the main host stack, whose mapping ends with the record page.
        return Some(unsafe { Record::from_raw(layout::MAIN_RESUME_RECORD as *mut ResumeRecord) });
    }
    if (layout::THREAD_SLOTS_BASE..SLOTS_END).contains(&sp) {
        let i = (sp - layout::THREAD_SLOTS_BASE) / layout::THREAD_SLOT_STRIDE;
        let rec = layout::thread_resume_record(i);
        if sp >= layout::thread_slot_base(i) + layout::STACK_GUARD_SIZE && sp < rec {
            // SAFETY: the caller runs on slot i's host stack, whose mapping ends with the record.
            return Some(unsafe { Record::from_raw(rec as *mut ResumeRecord) });
        }
    }
    None
}

/// The calling thread's record (None while on a stack that is not a runtime host stack,
/// i.e. before start-up switched stacks).
#[inline]
pub fn current_record() -> Option<Record> {
    record_for_sp(arch::stack_pointer() as u64)
}

/// The record holding `state`.
///
/// # Safety
/// `state` must be the `GuestState` of a live thread record (every state the runtime hands
/// to translated code is).
pub unsafe fn record_of(state: *mut GuestState) -> Record {
    // SAFETY: forwarded contract.
    unsafe { Record::from_raw((state as usize - STATE_OFFSET) as *mut ResumeRecord) }
}

/// True when the page at `addr` is mapped.
pub fn mapped(addr: u64) -> bool {
    let mut v = 0u8;
    // SAFETY: mincore writes one byte for one page into `v`; it fails with ENOMEM when the
    // page is not mapped.
    unsafe {
        crate::sys::syscall(
            arch::nr::MINCORE,
            [addr as usize, layout::GUEST_PAGE_SIZE as usize, &mut v as *mut u8 as usize, 0, 0, 0],
        )
    }
    .is_ok()
}

/// The slot index whose record is `rec`, if it is a slot record.
pub fn slot_of_record(rec: Record) -> Option<u64> {
    let a = rec.as_ptr() as u64;
    if !(layout::THREAD_SLOTS_BASE..SLOTS_END).contains(&a) {
        return None;
    }
    let i = (a - layout::THREAD_SLOTS_BASE) / layout::THREAD_SLOT_STRIDE;
    (layout::thread_resume_record(i) == a).then_some(i)
}

/// The per-thread data next to record `rec`.
pub fn extra(rec: Record) -> &'static Extra {
    // SAFETY: a record is the first bytes of a mapped page (`Record`); `Extra` lies in the
    // same page, is made of atomics only, and is valid when zero.
    unsafe { &*((rec.as_ptr() as u64 + EXTRA_OFFSET) as *const Extra) }
}

/// The guest alternate signal stack of the thread of record `rec` (`ss_sp`, `ss_flags`,
/// `ss_size`; see `hcontainer_abi::calls::RECORD_ALTSTACK_OFFSET`).
pub fn altstack_words(rec: Record) -> &'static [AtomicU64; 3] {
    // SAFETY: the words lie in the record's page (checked at compile time in the ABI crate),
    // 8-byte aligned, are only accessed atomically, and are valid when zero.
    unsafe { &*((rec.as_ptr() as u64 + RECORD_ALTSTACK_OFFSET) as *const [AtomicU64; 3]) }
}

/// `state.poll` of record `rec`, for access from several contexts (signal handlers).
pub fn poll_word(rec: Record) -> &'static AtomicU64 {
    // SAFETY: the field is 8-byte aligned inside a live record; every concurrent access to
    // it goes through atomics (translated code only reads it).
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec.as_ptr()).state.poll)) }
}

/// `status` of record `rec`, a futex word while parked.
pub fn status_word(rec: Record) -> &'static AtomicU64 {
    // SAFETY: as for `poll_word`: aligned, inside a live record, accessed atomically.
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec.as_ptr()).status)) }
}

/// `tid` of record `rec`.
pub fn tid_word(rec: Record) -> &'static AtomicU64 {
    // SAFETY: as for `poll_word`.
    unsafe { AtomicU64::from_ptr(core::ptr::addr_of_mut!((*rec.as_ptr()).tid)) }
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
pub fn after_fork(own: Record, tid: u64) {
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
    if own_slot.is_some() && mapped(layout::MAIN_RESUME_RECORD) {
        // SAFETY: the main record page is mapped (checked) and stays so.
        let main = unsafe { Record::from_raw(layout::MAIN_RESUME_RECORD as *mut ResumeRecord) };
        tid_word(main).store(0, Ordering::Release);
    }
    tid_word(own).store(tid, Ordering::Release);
    poll_word(own).store(0, Ordering::SeqCst);
    status_word(own).store(hcontainer_abi::calls::THREAD_RUNNING, Ordering::SeqCst);
}
