//! Reference semantics of guest operations too complex for IR ops (cpuid, x87, some SSE),
//! run by the runtime's `hc_helper` and by the IR interpreter alike, so both agree by
//! construction. `no_std`, no allocation.
#![no_std]

/// Helper numbers passed as the first argument of `ir::Op::Helper` / `hc_helper`.
/// Append only; numbers are part of the translated-code ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Helper {
    /// `cpuid`: reads eax/ecx from the state, writes eax, ebx, ecx, edx (baseline x86-64 CPU).
    Cpuid = 1,
    /// `rdtsc`: writes edx:eax with a monotonically increasing counter.
    Rdtsc = 2,
    /// `xgetbv`: reads ecx, writes edx:eax.
    Xgetbv = 3,
    /// An x87 instruction: a0 = x87 op id (see `x87`), a1 = memory operand address (or 0).
    X87 = 4,
    /// An SSE operation done out of line: a0 = SSE op id (see `sse`), a1/a2 per op.
    Sse = 5,
}
