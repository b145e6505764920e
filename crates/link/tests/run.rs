//! End to end: hand-built IR programs compiled for every host ISA, linked with the runtime,
//! run natively (x86-64) or under qemu-user (arm64, riscv64); the exit status tells whether
//! the translated code computed the right thing.

use std::path::Path;

use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::flags::{CcOp, Cond};
use hcontainer_abi::meta::{Header, HostIsa};
use hcontainer_abi::{offsets, Gpr};
use hcontainer_codegen::{compile, GuestDescription};
use hcontainer_ir::{BinOp, Block, CallTarget, Function, Loc, Op, Program, Terminator, Type, Value};
use hcontainer_link::{link_with, GuestMapping, GuestSegment};

mod common;
use common::run;

const ISAS: [HostIsa; 3] = [HostIsa::X86_64, HostIsa::Aarch64, HostIsa::Riscv64];

fn gpr(r: Gpr) -> Loc {
    Loc { offset: offsets::gpr(r as u8), ty: Type::I64 }
}

fn c64(b: &mut Block, v: u64) -> Value {
    b.push(Op::Const { ty: Type::I64, bits: u128::from(v) })
}

fn flag(off: u32) -> Loc {
    Loc { offset: off, ty: Type::I64 }
}

/// Push the guest return address as a `call` does.
fn push_ret(b: &mut Block, ret: u64) {
    let sp = b.push(Op::Get(gpr(Gpr::Rsp)));
    let eight = c64(b, 8);
    let sp2 = b.push(Op::Bin(BinOp::Sub, sp, eight));
    b.push(Op::Set(gpr(Gpr::Rsp), sp2));
    let r = c64(b, ret);
    b.push(Op::Store { addr: sp2, val: r });
}

/// Pop the return address and return, as `ret` does.
fn pop_ret(b: &mut Block) {
    let sp = b.push(Op::Get(gpr(Gpr::Rsp)));
    let ret = b.push(Op::Load { ty: Type::I64, addr: sp });
    let eight = c64(b, 8);
    let sp2 = b.push(Op::Bin(BinOp::Add, sp, eight));
    b.push(Op::Set(gpr(Gpr::Rsp), sp2));
    b.term = Terminator::Return(ret);
}

/// Loop sum 10..=1 (55), a direct call doubling it (110), an indirect call subtracting 3
/// (107), plus the zero flag of the loop's last `sub` read through the runtime (1): exit 108.
fn program() -> Program {
    let mut b0 = Block::new(0x401000);
    let z = c64(&mut b0, 0);
    b0.push(Op::Set(gpr(Gpr::Rax), z));
    let ten = c64(&mut b0, 10);
    b0.push(Op::Set(gpr(Gpr::Rcx), ten));
    b0.term = Terminator::Jump(0x401010);

    let mut b1 = Block::new(0x401010);
    let a = b1.push(Op::Get(gpr(Gpr::Rax)));
    let c = b1.push(Op::Get(gpr(Gpr::Rcx)));
    let s = b1.push(Op::Bin(BinOp::Add, a, c));
    b1.push(Op::Set(gpr(Gpr::Rax), s));
    let one = c64(&mut b1, 1);
    let d = b1.push(Op::Bin(BinOp::Sub, c, one));
    b1.push(Op::Set(gpr(Gpr::Rcx), d));
    let op = c64(&mut b1, CcOp::Sub.with_size(8));
    b1.push(Op::Set(flag(offsets::CC_OP), op));
    b1.push(Op::Set(flag(offsets::CC_DST), d));
    b1.push(Op::Set(flag(offsets::CC_SRC1), c));
    b1.push(Op::Set(flag(offsets::CC_SRC2), one));
    let ne = b1.push(Op::EvalCond(Cond::Ne as u8));
    b1.term = Terminator::Branch { cond: ne, taken: 0x401010, fallthrough: 0x401020 };

    let mut b2 = Block::new(0x401020);
    push_ret(&mut b2, 0x401030);
    b2.term = Terminator::Call { target: CallTarget::Direct(0x402000), ret: 0x401030 };

    let mut b3 = Block::new(0x401030);
    push_ret(&mut b3, 0x401040);
    let t = c64(&mut b3, 0x403000);
    b3.term = Terminator::Call { target: CallTarget::Indirect(t), ret: 0x401040 };

    let mut b4 = Block::new(0x401040);
    let a = b4.push(Op::Get(gpr(Gpr::Rax)));
    let m = c64(&mut b4, 255);
    let r = b4.push(Op::Bin(BinOp::And, a, m));
    let e = b4.push(Op::EvalCond(Cond::E as u8));
    let e = b4.push(Op::Conv(hcontainer_ir::ConvOp::Zext, Type::I64, e));
    let r = b4.push(Op::Bin(BinOp::Add, r, e));
    b4.push(Op::Set(gpr(Gpr::Rdi), r));
    let n = c64(&mut b4, 60);
    b4.push(Op::Set(gpr(Gpr::Rax), n));
    b4.term = Terminator::Syscall { next: 0x401050 };

    let mut b5 = Block::new(0x401050);
    b5.term = Terminator::Trap { addr: 0x401050, what: "ud2 (0f 0b)".into() };

    let mut f1 = Block::new(0x402000);
    let a = f1.push(Op::Get(gpr(Gpr::Rax)));
    let two = c64(&mut f1, 2);
    let p = f1.push(Op::Bin(BinOp::Mul, a, two));
    f1.push(Op::Set(gpr(Gpr::Rax), p));
    pop_ret(&mut f1);

    let mut f2 = Block::new(0x403000);
    let a = f2.push(Op::Get(gpr(Gpr::Rax)));
    let three = c64(&mut f2, 3);
    let p = f2.push(Op::Bin(BinOp::Sub, a, three));
    f2.push(Op::Set(gpr(Gpr::Rax), p));
    pop_ret(&mut f2);

    Program {
        functions: vec![
            Function { entry: 0x401000, blocks: vec![b0, b1, b2, b3, b4, b5] },
            Function { entry: 0x402000, blocks: vec![f1] },
            Function { entry: 0x403000, blocks: vec![f2] },
        ],
        ..Default::default()
    }
}

/// The same program with `state.poll` raised in the loop body: every back-edge leaves to the
/// runtime, which clears it and resumes the loop head through its dispatch entry.
/// A `state.poll` bit with no meaning to the runtime.
const ACKNOWLEDGED_REQUEST: u128 = 4;

fn program_with_poll() -> Program {
    let poll = Loc { offset: offsets::POLL, ty: Type::I64 };
    let mut p = program();
    // Loop body: r8 += poll (0 when the back-edge check handed the request to the runtime),
    // then raise it. The request is one the runtime only acknowledges: bit 1 (POLL_NOTIFY)
    // would park the thread until a resume signal, bit 2 (POLL_SIGNAL) delivers signals.
    let b1 = &mut p.functions[0].blocks[1];
    let seen = b1.push(Op::Get(poll));
    let r8 = b1.push(Op::Get(gpr(Gpr::R8)));
    let sum = b1.push(Op::Bin(BinOp::Add, r8, seen));
    b1.push(Op::Set(gpr(Gpr::R8), sum));
    let request = b1.push(Op::Const { ty: Type::I64, bits: ACKNOWLEDGED_REQUEST });
    b1.push(Op::Set(poll, request));
    // Before exiting: rdi += 2 * r8, and the request the last iteration raised is dropped
    // (leaf callees need not poll at entry, so it may still be up; a raised poll word
    // cancels a system call about to start).
    let b4 = &mut p.functions[0].blocks[4];
    let r8 = b4.push(Op::Get(gpr(Gpr::R8)));
    let two = b4.push(Op::Const { ty: Type::I64, bits: 2 });
    let a = b4.push(Op::Bin(BinOp::Mul, r8, two));
    let rdi = b4.push(Op::Get(gpr(Gpr::Rdi)));
    let rdi = b4.push(Op::Bin(BinOp::Add, rdi, a));
    let none = b4.push(Op::Const { ty: Type::I64, bits: 0 });
    b4.push(Op::Set(poll, none));
    b4.push(Op::Set(gpr(Gpr::Rdi), rdi));
    p
}

fn guest() -> GuestDescription {
    GuestDescription {
        output: hcontainer_codegen::Output::Executable,
        info: GuestInfo {
            entry: 0x401000,
            phdr: 0,
            phnum: 0,
            phent: 56,
            brk_start: 0x406000,
            load_bias: 0,
            state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
        },
        sha256: [1; 32],
        file_size: 0x3000,
        is_pie: false,
        n_traps: 1,
        memory_model: hcontainer_codegen::MemoryModel::Tso,
    }
}

fn build(isa: HostIsa, program: &Program, dir: &Path, mapping: GuestMapping) -> std::path::PathBuf {
    let obj = compile(program, &guest(), isa).expect("compiles");
    let code = vec![0xccu8; 0x3000];
    let data = [7u8; 16];
    let segs = [
        GuestSegment { vaddr: 0x401000, memsz: 0x3000, data: &code, read: true, write: false, exec: true },
        GuestSegment { vaddr: 0x404000, memsz: 0x2000, data: &data, read: true, write: true, exec: false },
    ];
    let exe = dir.join(format!("loop-{}-{mapping:?}", isa.name()));
    link_with(isa, &obj, &segs, &exe, mapping).unwrap_or_else(|e| panic!("{isa:?}: {e}"));
    exe
}

/// Executables go to `$HCONTAINER_TEST_OUT` when set (to inspect them), else a temp dir.
fn out_dir() -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    match std::env::var_os("HCONTAINER_TEST_OUT") {
        Some(d) => (None, d.into()),
        None => {
            let t = tempfile::tempdir().expect("temp dir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

#[test]
fn loop_calls_and_syscall_run_on_every_isa() {
    let (_keep, dir) = out_dir();
    for isa in ISAS {
        for mapping in [GuestMapping::RuntimeMapped, GuestMapping::ProgramHeaders] {
            let exe = build(isa, &program(), &dir, mapping);
            let out = run(isa, &exe);
            assert_eq!(
                out.status.code(),
                Some(108),
                "{isa:?} {mapping:?}: status {:?}, stderr {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn poll_exits_resume_at_the_loop_head() {
    let (_keep, dir) = out_dir();
    for isa in ISAS {
        let exe = build(isa, &program_with_poll(), &dir, GuestMapping::RuntimeMapped);
        let out = run(isa, &exe);
        assert_eq!(out.status.code(), Some(108), "{isa:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn executable_layout_keeps_guest_segments_and_metadata() {
    use object::{Object, ObjectSection, ObjectSegment};
    let dir = tempfile::tempdir().expect("temp dir");
    for isa in ISAS {
        let exe = build(isa, &program(), dir.path(), GuestMapping::ProgramHeaders);
        let bytes = std::fs::read(&exe).expect("read executable");
        let file = object::File::parse(&*bytes).expect("ELF");
        assert_eq!(file.kind(), object::ObjectKind::Executable, "{isa:?}: static, not PIE");
        let segs: Vec<(u64, u64, u64)> = file
            .segments()
            .map(|s| (s.address(), s.size(), s.data().map(|d| d.len() as u64).unwrap_or(0)))
            .collect();
        assert!(segs.contains(&(0x401000, 0x3000, 0x3000)), "{isa:?}: {segs:x?}");
        assert!(segs.contains(&(0x404000, 0x2000, 16)), "{isa:?}: {segs:x?}");
        let data = file
            .segments()
            .find(|s| s.address() == 0x404000)
            .and_then(|s| s.data().ok())
            .expect("guest data");
        assert_eq!(data, [7u8; 16]);
        assert!(
            segs.iter().any(|&(a, _, _)| a == hcontainer_abi::layout::RUNTIME_BASE),
            "{isa:?}: runtime code at RUNTIME_BASE: {segs:x?}"
        );
        let meta = file.section_by_name(".hcontainer.meta").expect("metadata kept");
        let (h, _) = Header::decode(meta.data().expect("data")).expect("valid");
        assert_eq!((h.host_isa, h.n_points), (isa, 8));
        assert!(file.section_by_name(".note.gnu.build-id").is_some(), "{isa:?}: build-id");
        // Program header flags: guest text R+X, guest data R+W, no executable stack.
        let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes).expect("ELF64");
        use object::read::elf::ProgramHeader;
        let e = elf.endian();
        let flags_at = |addr: u64| {
            elf.elf_program_headers()
                .iter()
                .find(|p| p.p_type(e) == object::elf::PT_LOAD && p.p_vaddr(e) == addr)
                .map(|p| p.p_flags(e))
        };
        assert_eq!(flags_at(0x401000), Some(object::elf::PF_R | object::elf::PF_X));
        assert_eq!(flags_at(0x404000), Some(object::elf::PF_R | object::elf::PF_W));
        let stack = elf
            .elf_program_headers()
            .iter()
            .find(|p| p.p_type(e) == object::elf::PT_GNU_STACK)
            .expect("PT_GNU_STACK");
        assert_eq!(stack.p_flags(e) & object::elf::PF_X, 0);
        assert!(elf.elf_program_headers().iter().all(|p| p.p_type(e) != object::elf::PT_DYNAMIC));
    }
}

#[test]
fn runtime_mapped_executable_has_only_runtime_segments_and_a_segment_table() {
    use object::{Object, ObjectSegment, ObjectSymbol};
    let dir = tempfile::tempdir().expect("temp dir");
    for isa in ISAS {
        let exe = build(isa, &program(), dir.path(), GuestMapping::RuntimeMapped);
        let bytes = std::fs::read(&exe).expect("read executable");
        let file = object::File::parse(&*bytes).expect("ELF");
        assert!(
            file.segments().all(|s| s.address() == 0 || hcontainer_abi::layout::is_runtime_addr(s.address())),
            "{isa:?}: a PT_LOAD outside the runtime range"
        );
        let table = file
            .symbols()
            .find(|s| s.name() == Ok(hcontainer_abi::calls::GUEST_SEGMENTS))
            .expect("hc_guest_segments");
        assert_eq!(table.size(), 2 * 40);
        let seg = file
            .segments()
            .find(|g| table.address() >= g.address() && table.address() < g.address() + g.size())
            .expect("table is loaded");
        let at = (seg.file_range().0 + table.address() - seg.address()) as usize;
        let word = |i: usize| u64::from_le_bytes(bytes[at + 8 * i..at + 8 * i + 8].try_into().expect("8 bytes"));
        // Record 1: the data segment; its file bytes must be at the recorded offset.
        assert_eq!((word(5), word(6), word(8), word(9)), (0x404000, 0x2000, 16, 6), "{isa:?}");
        let off = word(7) as usize;
        assert_eq!(off % 4096, 0x404000 % 4096);
        assert_eq!(&bytes[off..off + 16], &[7u8; 16], "{isa:?}: guest data at the recorded offset");
        let code_off = word(2) as usize;
        assert_eq!((word(0), word(3), word(4)), (0x401000, 0x3000, 5));
        assert_eq!(&bytes[code_off..code_off + 0x3000], &vec![0xccu8; 0x3000][..]);
    }
}
