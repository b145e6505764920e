//! Resuming a thread from a [`ResumeRecord`]: the entry (`hc_resume`) a recoded image's
//! thread continues at, and the main thread's record that start-up fills.
//!
//! A translated process dumped by CRIU restores with the runtime's data as it was and its
//! threads wherever they were. A process recoded from a native image has the runtime's
//! segments freshly mapped from the executable file (initial data, zero bss): `hc_resume`
//! then initializes the runtime from the record (dispatch table check, the program break the
//! kernel kept for the native process) before it continues the guest at `state.rip` on an
//! empty host stack.

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use hcontainer_abi::calls::{ResumeRecord, RESUME_MAGIC, THREAD_RUNNING};
use hcontainer_abi::{layout, GuestState, GUEST_STATE_VERSION};

use crate::{dispatch, eprintln, mem, notify, start::EXIT_STARTUP_FAILED, sys, thread};

const FRESH: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;

/// Whether the runtime's globals are initialized (by start-up or by a resume).
static INIT: AtomicU8 = AtomicU8::new(FRESH);

/// Whether this process began with a restore from a recoded image (not the executable's
/// own start-up).
static FROM_IMAGE: AtomicBool = AtomicBool::new(false);

/// True when this process began with a restore from a recoded image: its guest state was
/// built by a run elsewhere (native, or another host's translation).
pub fn from_image() -> bool {
    FROM_IMAGE.load(Ordering::Relaxed)
}

/// Mark the runtime initialized (start-up does it).
pub fn set_initialized() {
    INIT.store(READY, Ordering::Release);
}

/// The main thread's record: the top page of the host stack mapping.
pub fn main_record() -> *mut ResumeRecord {
    layout::MAIN_RESUME_RECORD as *mut ResumeRecord
}

/// A fresh record for a thread about to start with `state`.
pub fn new_record(state: GuestState) -> ResumeRecord {
    ResumeRecord {
        magic: RESUME_MAGIC,
        version: u64::from(GUEST_STATE_VERSION),
        brk_start: 0,
        brk_cur: 0,
        tid: 0,
        status: THREAD_RUNNING,
        reserved: [0; 2],
        state,
    }
}

/// Fill the main thread's record at start-up and return its guest state.
///
/// # Safety
/// The host stack mapping (with its top page) must be mapped and unused.
pub unsafe fn init_main_record() -> *mut GuestState {
    let rec = main_record();
    let mut r = new_record(GuestState::new());
    r.tid = sys::gettid() as u64;
    // SAFETY: the page is mapped, writable and nothing else refers to it yet.
    unsafe {
        rec.write(r);
    }
    mem::set_record_ready();
    // SAFETY: the record was just written.
    unsafe { core::ptr::addr_of_mut!((*rec).state) }
}

/// One-time initialization of a runtime whose data came fresh from the executable (a
/// recoded image): dispatch table check, the program break from the main thread's record.
fn init_once(rec: thread::Record) {
    match INIT.compare_exchange(FRESH, INITIALIZING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(_) => {
            while INIT.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
            return;
        }
    }
    if let Err(i) = dispatch::check_sorted() {
        eprintln!("hcontainer: dispatch table is not sorted by guest address at entry {}", i);
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    // The break lives in the main thread's record; a thread's own record may carry it too.
    let main = main_record();
    let src = if thread::mapped(layout::MAIN_RESUME_RECORD) { main } else { rec.as_ptr() };
    // SAFETY: `src` is a mapped record page (checked, or the caller's own record).
    let (brk_start, brk_cur) = unsafe { ((*src).brk_start, (*src).brk_cur) };
    if brk_start != 0 {
        mem::adopt_brk(brk_start, brk_cur);
    }
    if src == main {
        mem::set_record_ready();
    }
    crate::signal::adopt_host_actions();
    if crate::loader::is_launcher() {
        // A dynamically linked guest: its files are mapped, their units not loaded yet.
        crate::loader::adopt_config();
        crate::units::rescan();
    }
    FROM_IMAGE.store(true, Ordering::Relaxed);
    set_initialized();
}

/// Rust side of `hc_resume`, for the main thread and slot threads alike.
///
/// # Safety
/// Only `hc_resume` calls this, with the record recode prepared, on the host stack below it.
pub unsafe extern "C" fn resume_rust(rec: *mut ResumeRecord) -> ! {
    // SAFETY: recode placed a record at `rec` (a mapped page of the image); only the
    // header is read here.
    let (magic, version) = unsafe { ((*rec).magic, (*rec).version) };
    if magic != RESUME_MAGIC || version != u64::from(GUEST_STATE_VERSION) {
        eprintln!(
            "hcontainer: no valid resume record at {:#x} (magic {:#x}, version {}; this runtime: version {})",
            rec as u64, magic, version, GUEST_STATE_VERSION
        );
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    let rec_raw = rec;
    // SAFETY: recode's record page, mapped for the life of the thread.
    let rec = unsafe { thread::Record::from_raw(rec_raw) };
    init_once(rec);
    let slot = thread::slot_of_record(rec);
    if let Some(i) = slot {
        thread::mark_slot(i);
    }
    // SAFETY: the record's state is this thread's from now on; nothing else writes it.
    unsafe {
        (*rec_raw).state.runtime = slot.map_or(0, layout::thread_slot_base);
    }
    thread::tid_word(rec).store(sys::gettid() as u64, Ordering::Release);
    // `state.poll` is left as it is: recode writes it clear, and a notify that arrived since
    // the restore (its handler runs on this stack, below the record) must still park us.
    thread::status_word(rec).store(THREAD_RUNNING, Ordering::SeqCst);
    if let Err(e) = notify::install_handlers() {
        eprintln!("hcontainer: cannot install the notify signal handlers: errno {}", e.0);
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    dispatch::run_main(rec.state() as usize)
}
