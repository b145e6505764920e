//! Host ISA choices: the one place where x86-64, arm64 and riscv64 differ for the code
//! generator. Each host is a [`HostTarget`]; the core asks it for its triple and its
//! Cranelift ISA flags and never tests which ISA it is compiling for.

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use hcontainer_abi::meta::HostIsa;

use crate::CodegenError;

/// How plain guest loads and stores are emitted so that they keep x86's total store order
/// (x86-TSO: no reordering but a store with a later load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ordering {
    /// Plain host loads and stores: on a TSO host (x86-64), or when the translation was
    /// asked for the host's own order (`MemoryModel::Relaxed`).
    Plain,
    /// Acquire loads and release stores (Cranelift's `atomic_load`/`atomic_store`, which the
    /// arm64 backend emits as `LDAR`/`STLR`; it has no `LDAPR`). They fault on a misaligned
    /// address, so an access wider than a byte first tests its alignment and a misaligned one
    /// takes a cold path: a plain load followed by a full fence, or a full fence before a
    /// plain store.
    AcquireRelease,
    /// Fences around plain accesses (riscv64 without Ztso, the RVWMO porting mapping): a
    /// fence after each load — Cranelift's `fence` is `fence iorw,iorw`, stronger than
    /// the `fence r,rw` the mapping needs, since Cranelift has no finer one — and `fence rw,w`
    /// before each store (Cranelift's riscv64 `atomic_store`).
    Fences,
}

/// What the code generator needs to know about one host ISA.
trait HostTarget {
    /// Target triple handed to `cranelift_codegen::isa::lookup`.
    fn triple(&self) -> &'static str;
    /// ISA-specific flags to enable (names of Cranelift `has_*` settings).
    fn features(&self) -> &'static [&'static str];
    /// Whether the host's float instructions already produce x86's NaN results (which NaN
    /// operand propagates, the negative default NaN); if not, the code generator adds fixups.
    fn x86_nans(&self) -> bool {
        false
    }
    /// Whether Cranelift has a 128-bit compare-and-swap for the host (`lock cmpxchg16b`).
    fn cas_128(&self) -> bool {
        false
    }
    /// Whether the host's atomic read-modify-write and compare-and-swap instructions are
    /// full barriers, as x86's locked instructions are. Where they are not (arm64's
    /// exclusive-access loops order only as acquire/release), each is followed by a fence.
    fn full_barrier_atomics(&self) -> bool {
        false
    }
    /// How plain accesses keep x86-TSO on this host.
    fn tso(&self) -> Ordering;
}

/// x86-64 hosts: x86-64-v2 (SSE4.2 and POPCNT), which every x86-64 server of the last
/// fifteen years has.
struct X86_64;
impl HostTarget for X86_64 {
    fn triple(&self) -> &'static str {
        "x86_64-unknown-linux-gnu"
    }
    fn features(&self) -> &'static [&'static str] {
        &["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt", "has_cmpxchg16b"]
    }
    fn x86_nans(&self) -> bool {
        true
    }
    fn cas_128(&self) -> bool {
        true
    }
    fn full_barrier_atomics(&self) -> bool {
        true
    }
    fn tso(&self) -> Ordering {
        Ordering::Plain
    }
}

/// arm64 hosts: ARMv8.0-A baseline.
struct Aarch64;
impl HostTarget for Aarch64 {
    fn triple(&self) -> &'static str {
        "aarch64-unknown-linux-gnu"
    }
    fn features(&self) -> &'static [&'static str] {
        &[]
    }
    fn tso(&self) -> Ordering {
        Ordering::AcquireRelease
    }
}

/// riscv64 hosts: RV64GC, no vector or bit-manipulation extensions.
struct Riscv64;
impl HostTarget for Riscv64 {
    fn triple(&self) -> &'static str {
        "riscv64gc-unknown-linux-gnu"
    }
    fn features(&self) -> &'static [&'static str] {
        &["has_m", "has_a", "has_f", "has_d", "has_c", "has_zicsr", "has_zifencei"]
    }
    fn tso(&self) -> Ordering {
        Ordering::Fences
    }
}

fn target_of(isa: HostIsa) -> &'static dyn HostTarget {
    match isa {
        HostIsa::X86_64 => &X86_64,
        HostIsa::Aarch64 => &Aarch64,
        HostIsa::Riscv64 => &Riscv64,
    }
}

/// Whether float results on `isa` need the x86 NaN fixups (see [`HostTarget::x86_nans`]).
pub(crate) fn needs_nan_fixups(isa: HostIsa) -> bool {
    !target_of(isa).x86_nans()
}

/// Whether `isa` has an atomic 128-bit compare-and-swap (see [`HostTarget::cas_128`]).
pub(crate) fn has_cas_128(isa: HostIsa) -> bool {
    target_of(isa).cas_128()
}

/// Whether atomics on `isa` need a trailing fence (see [`HostTarget::full_barrier_atomics`]).
pub(crate) fn needs_atomic_fence(isa: HostIsa) -> bool {
    !target_of(isa).full_barrier_atomics()
}

/// How plain accesses keep x86-TSO on `isa` (see [`HostTarget::tso`]).
pub(crate) fn tso_ordering(isa: HostIsa) -> Ordering {
    target_of(isa).tso()
}

/// Build the Cranelift target ISA for `isa`: optimizing for speed, non-PIC (the executable is
/// static and linked at fixed addresses).
pub(crate) fn build_isa(isa: HostIsa) -> Result<OwnedTargetIsa, CodegenError> {
    let t = target_of(isa);
    let err = |what: String| CodegenError::Isa { isa: isa.name(), what };
    let mut shared = settings::builder();
    let set = |b: &mut settings::Builder, k: &str, v: &str| {
        b.set(k, v).map_err(|e| err(format!("setting {k}={v}: {e}")))
    };
    set(&mut shared, "opt_level", "speed")?;
    set(&mut shared, "is_pic", "false")?;
    set(&mut shared, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    set(&mut shared, "preserve_frame_pointers", "true")?;
    let triple = t
        .triple()
        .parse()
        .map_err(|e| err(format!("triple {}: {e:?}", t.triple())))?;
    let mut b = isa::lookup(triple).map_err(|e| err(format!("lookup {}: {e}", t.triple())))?;
    for f in t.features() {
        b.enable(f).map_err(|e| err(format!("enabling {f}: {e}")))?;
    }
    b.finish(settings::Flags::new(shared))
        .map_err(|e| err(format!("finishing ISA flags: {e}")))
}
