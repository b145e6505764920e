//! The dispatcher loop: look the guest address up in the translated object's dispatch table
//! and run its translation until it returns the next guest address.

use core::sync::atomic::{AtomicUsize, Ordering};
use hcontainer_abi::{calls::DispatchEntry, calls::TranslatedFn, GuestState};

use crate::{eprintln, notify, sys, thread};

/// Status when the guest jumps to an address that has no translation: the process ends by
/// `SIGSEGV` (as a native jump to unmapped or non-code memory would, shell status 139); if
/// the signal cannot be delivered it exits with 139 itself.
pub const SIGSEGV: usize = 11;

/// The translated object's dispatch table, sorted by guest address.
fn entries() -> &'static [DispatchEntry] {
    // SAFETY: the translated object defines `hc_dispatch_table` as `hc_dispatch_len`
    // entries that are never written.
    unsafe {
        let len = usize::try_from(crate::hc_dispatch_len).unwrap_or(0);
        core::slice::from_raw_parts(core::ptr::addr_of!(crate::hc_dispatch_table).cast(), len)
    }
}

/// Check that the dispatch table is strictly sorted by guest address (binary search relies
/// on it); returns the first index out of order.
pub fn check_sorted() -> Result<(), usize> {
    let t = entries();
    match t.windows(2).position(|w| w[0].guest >= w[1].guest) {
        Some(i) => Err(i + 1),
        None => Ok(()),
    }
}

/// The resume point at guest address `guest`, if translated: in the executable's own table
/// (a static translation), else in the units of the files the guest mapped. A unit's entry
/// holds its link-time guest address.
pub fn lookup(guest: u64) -> Option<&'static DispatchEntry> {
    let t = entries();
    if let Ok(i) = t.binary_search_by_key(&guest, |e| e.guest) {
        return Some(&t[i]);
    }
    crate::units::find(guest)
}

/// `hc_lookup`: the resume point at `guest` with `guest` as its address (what translated
/// code's dispatch caches compare), or null.
///
/// Answers come from a direct-mapped cache first: a site whose one-entry cache thrashes (a
/// function pointer, a virtual call, a switch through a table) then costs a hash and a compare
/// instead of searches of the executable's and a unit's tables.
#[no_mangle]
pub extern "C" fn hc_lookup(guest: u64) -> *const DispatchEntry {
    let slot = &LOOKUP_CACHE[lookup_slot(guest)];
    let hit = slot.load(Ordering::Acquire) as *const DispatchEntry;
    // SAFETY: the cache holds only null or entries that live as long as the process: the
    // executable's own table and unit records, which are never freed (a retired record's
    // guest address becomes u64::MAX, so it no longer matches).
    if !hit.is_null() && unsafe { (*hit).guest } == guest {
        return hit;
    }
    let t = entries();
    let found = if let Ok(i) = t.binary_search_by_key(&guest, |e| e.guest) {
        &t[i] as *const DispatchEntry
    } else {
        match crate::units::find(guest) {
            Some(e) => crate::units::records::get(guest, e),
            None => core::ptr::null(),
        }
    };
    if !found.is_null() {
        slot.store(found as usize, Ordering::Release);
    }
    found
}

/// Slots of [`hc_lookup`]'s cache (a power of two; 8 bytes each).
const LOOKUP_SLOTS: usize = 1 << 14;

/// [`hc_lookup`]'s cache: pointers to dispatch entries whose `guest` is the address looked up.
static LOOKUP_CACHE: [AtomicUsize; LOOKUP_SLOTS] = [const { AtomicUsize::new(0) }; LOOKUP_SLOTS];

fn lookup_slot(guest: u64) -> usize {
    // Fibonacci hashing: code addresses differ mostly in their low bits.
    (guest.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - LOOKUP_SLOTS.trailing_zeros())) as usize
}

/// Handle `state.poll` at a migration point (`state.rip`, about to be dispatched): park for
/// a notify, deliver a pending guest signal; other requests are acknowledged.
fn handle_poll(state: *mut GuestState) {
    // SAFETY: the dispatcher's state is always inside the thread's record.
    let rec = unsafe { thread::record_of(state) };
    // SAFETY: `state` is this thread's, inside its record; rip is read, nothing is kept.
    let rip = unsafe { (*state).rip };
    if notify::requested(rec) && lookup(rip).is_some() {
        notify::park(rec);
    }
    let poll = thread::poll_word(rec);
    if poll.load(core::sync::atomic::Ordering::SeqCst) & notify::POLL_SIGNAL != 0 {
        let old = crate::signal::guest_mask(rec);
        if let Some(sig) = crate::signal::take_deliverable(rec, old) {
            // SAFETY: the state is this thread's and complete at a migration point.
            crate::signal::deliver(unsafe { &mut *state }, rec, sig, old);
        }
    }
    poll.fetch_and(notify::POLL_NOTIFY | notify::POLL_SIGNAL, core::sync::atomic::Ordering::SeqCst);
}

/// Start of a guest thread's dispatcher loop on its slot: record the host thread id first.
pub extern "C" fn run_thread(state: usize) -> ! {
    // SAFETY: a new thread's state lies in its slot's record (`process::thread`).
    let rec = unsafe { thread::record_of(state as *mut GuestState) };
    thread::tid_word(rec).store(sys::gettid() as u64, core::sync::atomic::Ordering::Release);
    run_main(state)
}

/// The dispatcher loop of the main thread, on the host stack. `state` is a `*mut GuestState`.
pub extern "C" fn run_main(state: usize) -> ! {
    let state = state as *mut GuestState;
    loop {
        // SAFETY: `state` is this thread's GuestState; `poll` may be raised by a signal
        // handler at any time, so it is read volatile.
        let rip = unsafe {
            if core::ptr::addr_of!((*state).poll).read_volatile() != 0 {
                handle_poll(state);
            }
            (*state).rip
        };
        let cached = hc_lookup(rip);
        // SAFETY: a non-null answer of `hc_lookup` is an entry that lives as long as the process.
        let Some(e) = (if cached.is_null() { lookup(rip) } else { Some(unsafe { &*cached }) }) else {
            untranslated(rip);
        };
        // SAFETY: dispatch entries hold host addresses of translated functions with the
        // `TranslatedFn` signature (the ABI contract in `hcontainer_abi::calls`).
        let f: TranslatedFn = unsafe { core::mem::transmute::<usize, TranslatedFn>(e.func as usize) };
        // SAFETY: translated code gets exclusive use of the state for the call.
        unsafe {
            let next = f(state, e.entry);
            (*state).rip = next;
        }
    }
}

/// The guest continued at an address without translation: report it and end the process.
fn untranslated(rip: u64) -> ! {
    if crate::units::report_missing(rip) {
        // A file without a unit: the program cannot run here, as when a library is missing.
        sys::exit_group(crate::start::EXIT_STARTUP_FAILED);
    }
    eprintln!("hcontainer: guest jumped to {:#x} which was not translated", rip);
    sys::raise_default(SIGSEGV);
    sys::exit_group(128 + SIGSEGV as i32)
}
