//! The contract between translated code (emitted by `hcontainer-codegen`) and the runtime
//! (`crates/runtime`). Symbol names here are the link-time names on every host ISA; all
//! functions use the host's C calling convention.
//!
//! ## Translated functions
//! Each translated guest function is a host function
//! `extern "C" fn(state: *mut GuestState, entry: u64) -> u64`. `entry` selects which of the
//! function's resume points to start at (0 is the function's entry); the function returns
//! the guest address to continue at, with every guest register written back to `state`
//! and `state.rip` equal to the returned address.
//!
//! ## Dispatch table
//! [`DISPATCH_TABLE`] is an array of [`DispatchEntry`] sorted by guest address, one per resume
//! point (every translated block start), [`DISPATCH_LEN`] long. The runtime's dispatcher
//! looks a guest address up there and calls `func(state, entry)`.
//!
//! ## Runtime entry points called by translated code
//! [`SYSCALL`], [`HELPER`], [`EVAL_COND`], [`RFLAGS`], [`LOOKUP`], [`UNSUPPORTED`].
//! Before calling [`SYSCALL`], [`HELPER`] or [`UNSUPPORTED`] translated code writes every guest
//! register back to `state`, and reloads them afterwards.

use crate::GuestState;

/// Signature of a translated function.
pub type TranslatedFn = unsafe extern "C" fn(state: *mut GuestState, entry: u64) -> u64;

/// One resume point: a guest block address and how to enter its translation.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct DispatchEntry {
    /// Guest address of the block.
    pub guest: u64,
    /// Host address of the translated function containing the block.
    pub func: u64,
    /// Entry index to pass to that function.
    pub entry: u64,
}

/// Facts about the guest image the runtime needs at start-up.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct GuestInfo {
    /// Guest entry point (`e_entry`, relocated for a PIE).
    pub entry: u64,
    /// Guest address of the program headers (for `AT_PHDR`).
    pub phdr: u64,
    /// Number of program headers (`AT_PHNUM`).
    pub phnum: u64,
    /// Size of one program header (`AT_PHENT`).
    pub phent: u64,
    /// First byte after the highest guest segment, page aligned: the initial program break.
    pub brk_start: u64,
    /// Load bias applied to the guest (0 for non-PIE).
    pub load_bias: u64,
    /// [`crate::GUEST_STATE_VERSION`] the code was generated for.
    pub state_version: u64,
}

/// `[DispatchEntry; DISPATCH_LEN]`, sorted by `guest`.
pub const DISPATCH_TABLE: &str = "hc_dispatch_table";
/// `u64`: number of entries in [`DISPATCH_TABLE`].
pub const DISPATCH_LEN: &str = "hc_dispatch_len";
/// [`GuestInfo`] of the translated guest.
pub const GUEST_INFO: &str = "hc_guest_info";

/// `fn(state: *mut GuestState)`: perform the guest `syscall` described by `state`
/// (number in rax, arguments in rdi, rsi, rdx, r10, r8, r9), set rax, rcx and r11 as the
/// instruction does. Does not return for `exit`/`exit_group`.
pub const SYSCALL: &str = "hc_syscall";
/// `fn(state: *mut GuestState, helper: u64, a0: u64, a1: u64, a2: u64) -> u64`: run a
/// complex guest operation (cpuid, rdtsc, x87, rare SSE); `helper` is a
/// `hcontainer_semantics::Helper` number. Reads and writes `state`.
pub const HELPER: &str = "hc_helper";
/// `fn(cc: u64, cc_op: u64, dst: u64, src1: u64, src2: u64) -> u64`: 1 if x86 condition
/// `cc` (0..=15) holds for the lazy flags given, else 0. Pure.
pub const EVAL_COND: &str = "hc_eval_cond";
/// `fn(cc_op: u64, dst: u64, src1: u64, src2: u64, other: u64) -> u64`: the architectural
/// RFLAGS for lazy flags plus the non-arithmetic bits `other`. Pure.
pub const RFLAGS: &str = "hc_rflags";
/// `fn(guest: u64) -> *const DispatchEntry`: the resume point at `guest`, or null.
pub const LOOKUP: &str = "hc_lookup";
/// `fn(state: *mut GuestState, addr: u64, what: *const u8) -> !`: the guest reached an
/// instruction that was not translated; `what` is a NUL-terminated description (mnemonic
/// and bytes). Prints it and ends the process with status 132 (as SIGILL would).
pub const UNSUPPORTED: &str = "hc_unsupported";

/// A guest segment the runtime maps at start-up from the translated executable itself
/// (`/proc/self/exe`), for executables that carry guest segments without `PT_LOAD` headers.
/// An ELF whose `PT_LOAD`s span from the guest image (e.g. 0x400000) up to
/// [`crate::layout::RUNTIME_BASE`] makes qemu-user reserve that whole span: 7.2 takes minutes
/// to start, 10.0 keeps the gap reserved so the guest's `brk` cannot grow.
///
/// Like an ELF loader: `filesz` bytes at file offset `offset` appear at `vaddr` (private,
/// copy-on-write), the rest up to `memsz` is zero. `vaddr - offset` must be a multiple of
/// [`crate::layout::GUEST_PAGE_SIZE`].
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct GuestSegment {
    /// Guest address of the segment's first byte.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// Offset of the segment's bytes in the translated executable file.
    pub offset: u64,
    /// Bytes taken from the file (≤ `memsz`).
    pub filesz: u64,
    /// `p_flags` of the guest's program header: 4 = read, 2 = write, 1 = execute.
    pub flags: u64,
}

/// `[GuestSegment; GUEST_SEGMENTS_LEN]`: guest segments to map at start-up. Optional: the
/// runtime provides weak empty defaults, so executables whose guest segments are `PT_LOAD`s
/// need not define it.
pub const GUEST_SEGMENTS: &str = "hc_guest_segments";
/// `u64`: number of entries in [`GUEST_SEGMENTS`].
pub const GUEST_SEGMENTS_LEN: &str = "hc_guest_segments_len";

/// `hc_resume`: the entry a restored thread continues at when its image was recoded from a
/// native one. Entered (not called) with the host stack pointer at
/// [`crate::layout::MAIN_RESUME_RECORD`] (the host stack below the record) and the first
/// argument register (rdi, x0, a0) holding the address of a [`ResumeRecord`]. The runtime
/// initializes itself if its data is fresh (the image's runtime segments come from the
/// executable file) and continues the guest at `state.rip` with an empty host stack.
pub const RESUME: &str = "hc_resume";

/// [`ResumeRecord::magic`]: "HCRESUME" little-endian.
pub const RESUME_MAGIC: u64 = u64::from_le_bytes(*b"HCRESUME");

/// What a thread needs to continue as a translated thread: written by the runtime at
/// start-up for the main thread and by recode for a native image.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct ResumeRecord {
    /// [`RESUME_MAGIC`].
    pub magic: u64,
    /// [`crate::GUEST_STATE_VERSION`] of `state`.
    pub version: u64,
    /// The guest's initial program break (CRIU's `mm_start_brk`); 0 when the runtime's
    /// own start-up set it.
    pub brk_start: u64,
    /// The guest's current program break (`mm_brk`).
    pub brk_cur: u64,
    /// Host thread id of the thread this record belongs to (0 before the thread starts).
    /// Recode pairs CRIU's per-thread core images with records through it.
    pub tid: u64,
    /// [`THREAD_RUNNING`] or [`THREAD_PARKED`]; a futex word (its low 32 bits) while parked.
    pub status: u64,
    /// Reserved, zero.
    pub reserved: [u64; 2],
    /// The thread's registers.
    pub state: crate::GuestState,
}

const _: () = assert!(core::mem::offset_of!(ResumeRecord, state) == 64);
const _: () =
    assert!(core::mem::size_of::<ResumeRecord>() <= crate::layout::GUEST_PAGE_SIZE as usize);

/// [`ResumeRecord::status`]: the thread runs guest code or the runtime.
pub const THREAD_RUNNING: u64 = 0;
/// [`ResumeRecord::status`]: the thread stopped at a migration point after a notify: its
/// whole register state is in the record, `state.rip` is a migration point (a block start
/// listed in the metadata, or the guest `syscall` instruction it was blocked in, with
/// `rax = orig_rax` so that resuming there reissues the call), and it waits until the status
/// changes or [`RESUME_SIGNAL`] arrives.
pub const THREAD_PARKED: u64 = 1;

/// Host signal that asks a translated thread to stop at its next migration point (notify).
/// The checkpointer sends it to every thread (`tgkill`); the runtime's handler raises the
/// thread's `state.poll`, and a blocking host syscall it interrupts is rewound to the guest
/// `syscall` instruction. The same number on every host ISA (x86-64, arm64 and riscv64 share
/// the generic real-time signal numbers).
pub const NOTIFY_SIGNAL: i32 = 60;
/// Host signal that lets parked threads continue where they are: a notify abandoned (the
/// dump failed, or `--leave-running`).
pub const RESUME_SIGNAL: i32 = 61;

/// Byte offset, in a thread's record page, of the runtime's per-thread data; its first word
/// is the guest's view of the host-reserved signals ([`NOTIFY_SIGNAL`], [`RESUME_SIGNAL`]) in
/// its blocked mask, which the host mask never holds (recode moves those bits between the
/// kernel's mask in the images and this word).
pub const RECORD_EXTRA_OFFSET: u64 = 2048;

/// The signals the runtime reserves on the host, as a mask (bit `n - 1` for signal `n`).
pub const RESERVED_SIGNALS: u64 = (1 << (NOTIFY_SIGNAL - 1)) | (1 << (RESUME_SIGNAL - 1));

/// Byte offset, in a thread's record page (the page starting with its [`ResumeRecord`]), of
/// the thread's guest alternate signal stack (`sigaltstack`): the x86-64 `stack_t` words
/// `ss_sp`, `ss_flags`, `ss_size`. `ss_size` 0 means none (so a fresh, zero page is a thread
/// without one); `ss_flags` never holds `SS_ONSTACK`.
pub const RECORD_ALTSTACK_OFFSET: u64 = crate::layout::GUEST_PAGE_SIZE - 32;

const _: () = assert!(
    core::mem::size_of::<ResumeRecord>() as u64 <= RECORD_ALTSTACK_OFFSET
        && RECORD_ALTSTACK_OFFSET + 24 <= crate::layout::GUEST_PAGE_SIZE
);
