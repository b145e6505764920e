//! The runtime static archives built by `build.rs`, one per host ISA, embedded so the
//! `hcontainer` binary is self-contained.

use hcontainer_abi::meta::HostIsa;

static X86_64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runtime-x86_64.a"));
static AARCH64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runtime-aarch64.a"));
static RISCV64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/runtime-riscv64.a"));

/// The runtime archive for `isa`, or `None` when it was not built.
pub fn archive(isa: HostIsa) -> Option<&'static [u8]> {
    let a = match isa {
        HostIsa::X86_64 => X86_64,
        HostIsa::Aarch64 => AARCH64,
        HostIsa::Riscv64 => RISCV64,
    };
    (!a.is_empty()).then_some(a)
}
