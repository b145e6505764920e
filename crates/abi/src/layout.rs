//! The address-space layout of a translated executable.
//!
//! Guest segments keep their original addresses; everything hcontainer adds lives in a
//! range that x86-64 Linux never hands to a process on its own (neither the kernel's mmap
//! base, nor its stack, nor a non-PIE or PIE image). The same numbers hold on every host:
//! x86-64 and arm64 (48-bit VA) and riscv64 with Sv48.

/// Start of the runtime's and translated code's range in every translated executable.
pub const RUNTIME_BASE: u64 = 0x2000_0000_0000;
/// Size reserved for runtime, translated code, tables and runtime data.
pub const RUNTIME_SIZE: u64 = 0x0100_0000_0000;
/// Where the runtime maps translation units (`crate::unit`): the second eighth of
/// hcontainer's range, above the executable's own image.
pub const UNITS_BASE: u64 = RUNTIME_BASE + RUNTIME_SIZE / 8;
/// Size of the units' range.
pub const UNITS_SIZE: u64 = RUNTIME_SIZE / 8;
/// Where the runtime keeps the lookup records of units' resume points (guest address → host
/// function), right after the units' range.
pub const LOOKUP_BASE: u64 = UNITS_BASE + UNITS_SIZE;
/// Size of the lookup records' range.
pub const LOOKUP_SIZE: u64 = 1 << 32;

const _: () = assert!(LOOKUP_BASE + LOOKUP_SIZE <= THREAD_SLOTS_BASE);

/// Where a position-independent guest (static-pie) is placed: the address x86-64 Linux
/// loads a PIE at with address randomization off, so a native run under `setarch -R`
/// (or `hcontainer run`) has exactly the translated layout.
pub const PIE_GUEST_BASE: u64 = 0x5555_5555_4000;
/// Guest page size (x86-64).
pub const GUEST_PAGE_SIZE: u64 = 4096;

/// True when `addr` lies in hcontainer's own range.
pub const fn is_runtime_addr(addr: u64) -> bool {
    addr >= RUNTIME_BASE && addr < RUNTIME_BASE + RUNTIME_SIZE
}

/// Top (exclusive end) of the guest's main-thread stack mapped by the runtime. Below every
/// mapping x86-64 Linux makes on its own (its stack sits at 0x7ffX_XXXX_XXXX and its mmap
/// base at least 1 TiB lower only after a terabyte of mappings), and valid on 48-bit hosts.
pub const GUEST_STACK_TOP: u64 = 0x7e00_0000_0000;
/// Size of the guest's main-thread stack (as a default `ulimit -s` of 8 MiB).
pub const GUEST_STACK_SIZE: u64 = 8 << 20;
/// Inaccessible guard below the guest stack (and below the host stack).
pub const STACK_GUARD_SIZE: u64 = 64 << 10;
/// Top (exclusive end) of the host stack translated code runs on: the end of the runtime
/// range. Guest recursion nests host frames, so it is large and `MAP_NORESERVE`.
pub const HOST_STACK_TOP: u64 = RUNTIME_BASE + RUNTIME_SIZE;
/// Size of the host stack.
pub const HOST_STACK_SIZE: u64 = 256 << 20;
/// The page holding the main thread's [`crate::calls::ResumeRecord`] (its `GuestState`
/// included): the top page of the host stack mapping. The dispatcher's host stack ends
/// below it; recode reads and writes the guest state there.
pub const MAIN_RESUME_RECORD: u64 = HOST_STACK_TOP - GUEST_PAGE_SIZE;

/// Threads other than the main one each own a slot in the upper half of hcontainer's range:
/// an inaccessible guard of [`STACK_GUARD_SIZE`], then the thread's host stack, whose top page
/// holds the thread's [`crate::calls::ResumeRecord`] (its `GuestState` included). Slots are
/// found from the mappings alone (by the checkpointer in `/proc/PID/maps`, by recode in the
/// image's VMAs): every mapping that starts at [`thread_slot_base`] of some index is a thread.
pub const THREAD_SLOTS_BASE: u64 = RUNTIME_BASE + RUNTIME_SIZE / 2;
/// Host stack of a thread slot (record page included), `MAP_NORESERVE`.
pub const THREAD_HOST_STACK_SIZE: u64 = 64 << 20;
/// Distance between consecutive slots.
pub const THREAD_SLOT_STRIDE: u64 = THREAD_HOST_STACK_SIZE + (1 << 20);
/// Number of thread slots.
pub const THREAD_SLOTS: u64 = 4096;
/// Bytes mapped per slot: guard plus host stack.
pub const THREAD_SLOT_LEN: u64 = STACK_GUARD_SIZE + THREAD_HOST_STACK_SIZE;

/// Start (the guard's first byte) of thread slot `index`.
pub const fn thread_slot_base(index: u64) -> u64 {
    THREAD_SLOTS_BASE + index * THREAD_SLOT_STRIDE
}

/// The [`crate::calls::ResumeRecord`] of thread slot `index`: the top page of its host
/// stack; the host stack pointer starts just below it.
pub const fn thread_resume_record(index: u64) -> u64 {
    thread_slot_base(index) + THREAD_SLOT_LEN - GUEST_PAGE_SIZE
}

/// The slot index whose mapping starts at `addr`, if any.
pub const fn thread_slot_at(addr: u64) -> Option<u64> {
    if addr < THREAD_SLOTS_BASE || (addr - THREAD_SLOTS_BASE) % THREAD_SLOT_STRIDE != 0 {
        return None;
    }
    let i = (addr - THREAD_SLOTS_BASE) / THREAD_SLOT_STRIDE;
    if i < THREAD_SLOTS {
        Some(i)
    } else {
        None
    }
}

const _: () = assert!(thread_slot_base(THREAD_SLOTS) <= MAIN_RESUME_RECORD - HOST_STACK_SIZE);
