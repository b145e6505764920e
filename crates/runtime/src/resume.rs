//! Resuming a thread from a [`ResumeRecord`]: the entry (`hc_resume`) a recoded image's
//! thread continues at, and the main thread's record that start-up fills.
//!
//! A translated process dumped by CRIU restores with the runtime's data as it was and its
//! threads wherever they were. A process recoded from a native image has the runtime's
//! segments freshly mapped from the executable file (initial data, zero bss): `hc_resume`
//! then initializes the runtime from the record (dispatch table check, the program break the
//! kernel kept for the native process) before it continues the guest at `state.rip` on an
//! empty host stack.

use core::sync::atomic::{AtomicBool, Ordering};

use hcontainer_abi::calls::{ResumeRecord, RESUME_MAGIC};
use hcontainer_abi::{layout, GuestState, GUEST_STATE_VERSION};

use crate::{dispatch, eprintln, mem, start::EXIT_STARTUP_FAILED, sys};

/// Set once the runtime's globals are initialized (by start-up or by a resume).
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Mark the runtime initialized (start-up does it).
pub fn set_initialized() {
    INITIALIZED.store(true, Ordering::Release);
}

/// The main thread's record: the top page of the host stack mapping.
pub fn main_record() -> *mut ResumeRecord {
    layout::MAIN_RESUME_RECORD as *mut ResumeRecord
}

/// Fill the main thread's record at start-up and return its guest state.
///
/// # Safety
/// The host stack mapping (with its top page) must be mapped and unused.
pub unsafe fn init_main_record() -> *mut GuestState {
    let rec = main_record();
    // SAFETY: the page is mapped, writable and nothing else refers to it yet.
    unsafe {
        rec.write(ResumeRecord {
            magic: RESUME_MAGIC,
            version: u64::from(GUEST_STATE_VERSION),
            brk_start: 0,
            brk_cur: 0,
            tid: 0,
            status: 0,
            reserved: [0; 2],
            state: GuestState::new(),
        });
        core::ptr::addr_of_mut!((*rec).state)
    }
}

/// Rust side of `hc_resume`.
///
/// # Safety
/// Only `hc_resume` calls this, with the record recode prepared, on the host stack.
pub unsafe extern "C" fn resume_rust(rec: *mut ResumeRecord) -> ! {
    // SAFETY: recode placed a record at `rec` (a mapped page of the image); only the
    // header is read here.
    let (magic, version, brk_start, brk_cur) =
        unsafe { ((*rec).magic, (*rec).version, (*rec).brk_start, (*rec).brk_cur) };
    if magic != RESUME_MAGIC || version != u64::from(GUEST_STATE_VERSION) {
        eprintln!(
            "hcontainer: no valid resume record at {:#x} (magic {:#x}, version {}; this runtime: version {})",
            rec as u64, magic, version, GUEST_STATE_VERSION
        );
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    if !INITIALIZED.load(Ordering::Acquire) {
        if let Err(i) = dispatch::check_sorted() {
            eprintln!("hcontainer: dispatch table is not sorted by guest address at entry {}", i);
            sys::exit_group(EXIT_STARTUP_FAILED);
        }
        if brk_start != 0 {
            mem::adopt_brk(brk_start, brk_cur);
        }
        set_initialized();
    }
    // SAFETY: the record's state is this thread's from now on.
    let state = unsafe { core::ptr::addr_of_mut!((*rec).state) };
    dispatch::run_main(state as usize)
}
