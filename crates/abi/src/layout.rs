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
