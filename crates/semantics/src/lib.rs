//! Reference semantics of guest operations too complex for IR ops (cpuid, x87, some SSE),
//! run by the runtime's `hc_helper` and by the IR interpreter alike, so both agree by
//! construction. `no_std`, no allocation.
//!
//! The one entry point is [`call`]: a helper number ([`Helper`]), three `u64` arguments and
//! a [`Host`] that gives access to guest memory and a clock.
#![no_std]

pub mod cpuid;
pub mod float;
pub mod sse;
pub mod x87;

use hcontainer_abi::{GuestState, Gpr};

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

impl Helper {
    /// The helper with number `n`, if any.
    pub const fn from_u32(n: u32) -> Option<Helper> {
        match n {
            1 => Some(Helper::Cpuid),
            2 => Some(Helper::Rdtsc),
            3 => Some(Helper::Xgetbv),
            4 => Some(Helper::X87),
            5 => Some(Helper::Sse),
            _ => None,
        }
    }
}

/// What a helper needs from its surroundings: guest memory and a clock.
///
/// The runtime implements it with raw pointers (guest addresses are host addresses) and the
/// host's monotonic clock; the IR interpreter with its sparse test memory. Accesses cannot
/// fail here: an implementation that can fault records the fault and reports it after the
/// helper returns.
pub trait Host {
    /// Read `buf.len()` bytes of guest memory at `addr`.
    fn read(&mut self, addr: u64, buf: &mut [u8]);
    /// Write `buf` to guest memory at `addr`.
    fn write(&mut self, addr: u64, buf: &[u8]);
    /// A monotonically increasing time-stamp counter (for `rdtsc`).
    fn ticks(&mut self) -> u64;
}

/// Value returned by [`call`] for an unknown helper number or an unknown op id.
pub const UNKNOWN: u64 = u64::MAX;

/// Run helper `helper` with arguments `a0..a2` on `state`.
///
/// Returns the helper's result (0 for helpers that only change the state), or [`UNKNOWN`]
/// when `helper` or the op id it was given is not defined.
pub fn call(state: &mut GuestState, helper: u32, a0: u64, a1: u64, a2: u64, host: &mut dyn Host) -> u64 {
    match Helper::from_u32(helper) {
        Some(Helper::Cpuid) => {
            let leaf = state.gpr[Gpr::Rax as usize] as u32;
            let sub = state.gpr[Gpr::Rcx as usize] as u32;
            let [a, b, c, d] = cpuid::cpuid(leaf, sub);
            state.gpr[Gpr::Rax as usize] = u64::from(a);
            state.gpr[Gpr::Rbx as usize] = u64::from(b);
            state.gpr[Gpr::Rcx as usize] = u64::from(c);
            state.gpr[Gpr::Rdx as usize] = u64::from(d);
            0
        }
        Some(Helper::Rdtsc) => {
            let t = host.ticks();
            state.gpr[Gpr::Rax as usize] = t & 0xffff_ffff;
            state.gpr[Gpr::Rdx as usize] = t >> 32;
            t
        }
        Some(Helper::Xgetbv) => {
            // XCR0: x87 and SSE state only (no AVX). Other XCRs read as zero.
            let xcr = if state.gpr[Gpr::Rcx as usize] as u32 == 0 { cpuid::XCR0 } else { 0 };
            state.gpr[Gpr::Rax as usize] = xcr & 0xffff_ffff;
            state.gpr[Gpr::Rdx as usize] = xcr >> 32;
            xcr
        }
        Some(Helper::X87) => match u32::try_from(a0).ok().and_then(x87::X87Op::decode) {
            Some(op) => x87::execute(state, op, a1, host),
            None => UNKNOWN,
        },
        Some(Helper::Sse) => sse::execute(state, a0, a1, a2).unwrap_or(UNKNOWN),
        None => UNKNOWN,
    }
}
