//! x86-TSO on weak hosts, checked in the emitted code: a set of guest memory instructions is
//! lifted, compiled for arm64 and riscv64 with and without x86-TSO ordering, and the host
//! instructions of each translated function are counted by their encodings (as FEX's
//! instruction-count tests do). qemu-user on an x86-64 host runs arm64 and riscv64 code with
//! the host's own order, so no litmus run could show a missing barrier: this is the check.
//!
//! Expected: every plain guest load becomes an acquire load (arm64 `LDAR*`; a misaligned
//! address takes a cold path with a plain load and `DMB ISH`) or a load followed by a fence
//! (riscv64 `fence iorw,iorw`, Cranelift's only fence instruction: it has no `fence r,rw`); every store a release store
//! (`STLR*`) or `fence rw,w` before it; accesses through `rsp` (pushes, pops, the return
//! address, stack slots) stay plain; with `MemoryModel::Relaxed` nothing is ordered.

use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::meta::HostIsa;
use hcontainer_codegen::{compile, GuestDescription, MemoryModel};
use hcontainer_ir::{Function, Program};
use object::{Object, ObjectSection, ObjectSymbol};

/// A guest instruction (each followed by `ret`, whose pop of the return address goes
/// through `rsp`) and the ordered accesses it makes: (loads, stores, of which wider than a
/// byte, so with an alignment test on arm64).
struct Case {
    name: &'static str,
    code: &'static [u8],
    loads: usize,
    stores: usize,
    /// Ordered accesses wider than a byte (arm64 tests their alignment: a cold `DMB ISH` each).
    wide: usize,
}

const CASES: &[Case] = &[
    Case { name: "mov rax, [rbx]", code: &[0x48, 0x8b, 0x03], loads: 1, stores: 0, wide: 1 },
    Case { name: "mov [rbx], rax", code: &[0x48, 0x89, 0x03], loads: 0, stores: 1, wide: 1 },
    Case { name: "mov eax, [rbx+8]", code: &[0x8b, 0x43, 0x08], loads: 1, stores: 0, wide: 1 },
    Case { name: "mov word [rdi+rcx*2], ax", code: &[0x66, 0x89, 0x04, 0x4f], loads: 0, stores: 1, wide: 1 },
    Case { name: "mov [rbx], al", code: &[0x88, 0x03], loads: 0, stores: 1, wide: 0 },
    Case { name: "movzx eax, byte [rsi]", code: &[0x0f, 0xb6, 0x06], loads: 1, stores: 0, wide: 0 },
    Case { name: "add [rbx], rax", code: &[0x48, 0x01, 0x03], loads: 1, stores: 1, wide: 2 },
    // Two 64-bit halves, one alignment test.
    Case { name: "movdqu xmm0, [rbx]", code: &[0xf3, 0x0f, 0x6f, 0x03], loads: 2, stores: 0, wide: 1 },
    Case { name: "movups [rdi], xmm1", code: &[0x0f, 0x11, 0x0f], loads: 0, stores: 2, wide: 1 },
    Case { name: "movsd xmm0, [rax]", code: &[0xf2, 0x0f, 0x10, 0x00], loads: 1, stores: 0, wide: 1 },
    // The thread's own stack: exempt.
    Case { name: "mov rax, [rsp+8]", code: &[0x48, 0x8b, 0x44, 0x24, 0x08], loads: 0, stores: 0, wide: 0 },
    Case { name: "mov [rsp+16], rax", code: &[0x48, 0x89, 0x44, 0x24, 0x10], loads: 0, stores: 0, wide: 0 },
    Case { name: "push rbx", code: &[0x53], loads: 0, stores: 0, wide: 0 },
    Case { name: "pop rbx", code: &[0x5b], loads: 0, stores: 0, wide: 0 },
    Case { name: "sub rsp, 24; mov [rsp], rdi", code: &[0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x3c, 0x24], loads: 0, stores: 0, wide: 0 },
];

fn addr(i: usize) -> u64 {
    0x401000 + 0x100 * i as u64
}

fn program() -> Program {
    let functions = CASES
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut code = c.code.to_vec();
            code.push(0xc3);
            let block = hcontainer_x86::lift_block(&code, addr(i), &|_| false);
            assert!(
                matches!(block.term, hcontainer_ir::Terminator::Return(_)),
                "{}: lifted as one block ending in ret",
                c.name
            );
            Function { entry: addr(i), blocks: vec![block] }
        })
        .collect();
    Program { functions, ..Default::default() }
}

fn guest(memory_model: MemoryModel) -> GuestDescription {
    GuestDescription {
        output: hcontainer_codegen::Output::Executable,
        info: GuestInfo {
            entry: addr(0),
            phdr: 0x400040,
            phnum: 1,
            phent: 56,
            brk_start: 0x500000,
            load_bias: 0,
            state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
        },
        sha256: [0; 32],
        file_size: 0,
        is_pie: false,
        n_traps: 0,
        memory_model,
    }
}

/// Host code of every case's function, in `CASES` order.
fn code(isa: HostIsa, model: MemoryModel) -> Vec<Vec<u8>> {
    let bytes = compile(&program(), &guest(model), isa).expect("compiles");
    let obj = object::File::parse(&*bytes).expect("valid object");
    (0..CASES.len())
        .map(|i| {
            let name = hcontainer_codegen::function_symbol(addr(i));
            let s = obj.symbols().find(|s| s.name() == Ok(name.as_str())).expect("function symbol");
            let sec = obj.section_by_index(s.section_index().expect("in a section")).expect("section");
            let data = sec.data().expect("code");
            let at = (s.address() - sec.address()) as usize;
            data[at..at + s.size() as usize].to_vec()
        })
        .collect()
}

/// Counts of ordering instructions in arm64 code: (LDAR*, STLR*, DMB ISH).
fn arm64_counts(code: &[u8]) -> (usize, usize, usize) {
    let words = code.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    let (mut ldar, mut stlr, mut dmb) = (0, 0, 0);
    for w in words {
        // LDAR/STLR of any size: size:001000:1:L:0:11111:1:11111:Rn:Rt.
        match w & 0x3fff_fc00 {
            0x08df_fc00 => ldar += 1,
            0x089f_fc00 => stlr += 1,
            _ => {}
        }
        if w == 0xd503_3bbf {
            dmb += 1;
        }
    }
    (ldar, stlr, dmb)
}

/// Counts of fences in riscv64 code (compressed code: at every 2-byte offset):
/// (`fence iorw,iorw`, Cranelift's `fence`; `fence rw,w`; any other fence).
fn riscv_counts(code: &[u8]) -> (usize, usize, usize) {
    let (mut full, mut before_store, mut other) = (0, 0, 0);
    let mut at = 0;
    while at + 4 <= code.len() {
        let w = u32::from_le_bytes([code[at], code[at + 1], code[at + 2], code[at + 3]]);
        // A 16-bit instruction has low bits other than 0b11.
        let len = if w & 3 == 3 { 4 } else { 2 };
        if len == 4 && w & 0xf00f_ffff == 0x0000_000f {
            match w {
                0x0ff0_000f => full += 1,
                0x0310_000f => before_store += 1,
                _ => other += 1,
            }
        }
        at += len;
    }
    (full, before_store, other)
}

#[test]
fn arm64_orders_guest_accesses_with_acquire_and_release() {
    let tso = code(HostIsa::Aarch64, MemoryModel::Tso);
    let relaxed = code(HostIsa::Aarch64, MemoryModel::Relaxed);
    for (i, c) in CASES.iter().enumerate() {
        assert_eq!(arm64_counts(&tso[i]), (c.loads, c.stores, c.wide), "{} (tso): (LDAR, STLR, DMB)", c.name);
        assert_eq!(arm64_counts(&relaxed[i]), (0, 0, 0), "{} (relaxed)", c.name);
    }
}

#[test]
fn riscv64_orders_guest_accesses_with_fences() {
    let tso = code(HostIsa::Riscv64, MemoryModel::Tso);
    let relaxed = code(HostIsa::Riscv64, MemoryModel::Relaxed);
    for (i, c) in CASES.iter().enumerate() {
        // One fence after a load (both halves of a 16-byte load share it); one before each
        // store (the high half of a 16-byte store shares its low half's).
        let halves = usize::from(c.name.starts_with("movdqu") || c.name.starts_with("movups"));
        let want = (c.loads - halves * usize::from(c.loads > 0), c.stores - halves * usize::from(c.stores > 0), 0);
        assert_eq!(riscv_counts(&tso[i]), want, "{} (tso): (fence iorw,iorw; fence rw,w; other)", c.name);
        assert_eq!(riscv_counts(&relaxed[i]), (0, 0, 0), "{} (relaxed)", c.name);
    }
}

#[test]
fn x86_64_hosts_need_no_barriers() {
    for code in code(HostIsa::X86_64, MemoryModel::Tso) {
        assert!(!code.windows(3).any(|w| w == [0x0f, 0xae, 0xf0]), "no mfence");
    }
}

/// The memory model is recorded in the metadata.
#[test]
fn metadata_records_the_memory_model() {
    for (model, want) in [(MemoryModel::Tso, MemoryModel::Tso), (MemoryModel::Relaxed, MemoryModel::Relaxed)] {
        let bytes = compile(&program(), &guest(model), HostIsa::Aarch64).expect("compiles");
        let obj = object::File::parse(&*bytes).expect("valid object");
        let sec = obj.section_by_name(hcontainer_abi::meta::SECTION).expect("metadata");
        let (h, _) = hcontainer_abi::meta::Header::decode(sec.data().expect("data")).expect("header");
        assert_eq!(h.memory_model(), want);
    }
}
