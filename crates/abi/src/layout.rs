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
