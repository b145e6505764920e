//! Lifter unit tests: the IR shape of chosen instruction sequences, and whole-program
//! lifting of real static executables (closure of the result).

use super::*;
use hcontainer_abi::flags::CcOp;
use hcontainer_abi::offsets;
use hcontainer_ir::{BinOp, CallTarget, IntCC, Loc, Type};

fn no_leader(_: u64) -> bool {
    false
}

fn lift(code: &[u8]) -> Block {
    lift_block(code, 0x1000, &no_leader)
}

fn ops(b: &Block) -> Vec<&Op> {
    b.insts.iter().map(|i| &i.op).collect()
}

fn has_eval_cond(b: &Block) -> bool {
    ops(b).iter().any(|o| matches!(o, Op::EvalCond(_)))
}

fn sets(b: &Block, offset: u32) -> Vec<Value> {
    b.insts
        .iter()
        .filter_map(|i| match i.op {
            Op::Set(Loc { offset: o, .. }, v) if o == offset => Some(v),
            _ => None,
        })
        .collect()
}

use hcontainer_ir::Value;

fn cond_op(b: &Block) -> &Op {
    match b.term {
        Terminator::Branch { cond, .. } => &b.insts[cond.0 as usize].op,
        ref t => panic!("not a branch: {t:?}"),
    }
}

#[test]
fn cmp_jl_in_one_block_uses_icmp() {
    // cmp rdi, rsi ; jl +0x10
    let b = lift(&[0x48, 0x39, 0xf7, 0x7c, 0x10]);
    assert!(!has_eval_cond(&b));
    assert!(matches!(cond_op(&b), Op::Icmp(IntCC::Slt, _, _)));
    match b.term {
        Terminator::Branch { taken, fallthrough, .. } => {
            assert_eq!(taken, 0x1015);
            assert_eq!(fallthrough, 0x1005);
        }
        _ => unreachable!(),
    }
    assert_eq!(b.guest_insts, 2);
    assert_eq!(b.guest_len, 5);
    // The lazy flags are written for later blocks: CC_OP = Sub, 64-bit.
    let op = sets(&b, offsets::CC_OP)[0];
    assert_eq!(b.insts[op.0 as usize].op, Op::Const { ty: Type::I64, bits: u128::from(CcOp::Sub.with_size(8)) });
}

#[test]
fn test_je_and_unsigned_conditions() {
    // test eax, eax ; je
    let b = lift(&[0x85, 0xc0, 0x74, 0x00]);
    assert!(matches!(cond_op(&b), Op::Icmp(IntCC::Eq, _, _)));
    // cmp al, 5 ; ja
    let b = lift(&[0x3c, 0x05, 0x77, 0x00]);
    match cond_op(&b) {
        Op::Icmp(IntCC::Ugt, a, c) => {
            assert_eq!(b.type_of(*a), Some(Type::I8));
            assert_eq!(b.type_of(*c), Some(Type::I8));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn jcc_at_block_start_uses_eval_cond() {
    // jl +0
    let b = lift(&[0x7c, 0x00]);
    assert!(matches!(cond_op(&b), Op::EvalCond(12)));
}

#[test]
fn block_stops_at_leader() {
    // mov eax, 1 ; mov ebx, 2  with a leader at the second instruction
    let code = [0xb8, 1, 0, 0, 0, 0xbb, 2, 0, 0, 0];
    let b = lift_block(&code, 0x1000, &|a| a == 0x1005);
    assert_eq!(b.term, Terminator::Jump(0x1005));
    assert_eq!(b.guest_insts, 1);
}

#[test]
fn thirty_two_bit_write_zero_extends() {
    // mov eax, 0xffffffff
    let b = lift(&[0xb8, 0xff, 0xff, 0xff, 0xff, 0xc3]);
    let v = sets(&b, offsets::gpr(0))[0];
    let op = &b.insts[v.0 as usize].op;
    assert_eq!(b.type_of(v), Some(Type::I64));
    assert!(matches!(op, Op::Conv(hcontainer_ir::ConvOp::Zext, Type::I64, _)), "{op:?}");
}

#[test]
fn call_pushes_return_address() {
    // call +0x10
    let b = lift(&[0xe8, 0x10, 0, 0, 0]);
    assert_eq!(b.term, Terminator::Call { target: CallTarget::Direct(0x1015), ret: 0x1005 });
    let stored: Vec<&Op> = ops(&b).into_iter().filter(|o| matches!(o, Op::Store { .. })).collect();
    assert_eq!(stored.len(), 1);
    if let Op::Store { val, .. } = stored[0] {
        assert_eq!(b.insts[val.0 as usize].op, Op::Const { ty: Type::I64, bits: 0x1005 });
    }
    assert_eq!(sets(&b, offsets::gpr(4)).len(), 1);
}

#[test]
fn ret_pops_and_returns() {
    let b = lift(&[0xc3]);
    assert!(matches!(b.term, Terminator::Return(_)));
    assert_eq!(sets(&b, offsets::gpr(4)).len(), 1);
}

#[test]
fn syscall_is_alone_in_its_block() {
    // mov eax, 60 ; syscall
    let code = [0xb8, 60, 0, 0, 0, 0x0f, 0x05];
    let b = lift(&code);
    assert_eq!(b.term, Terminator::Jump(0x1005));
    let s = lift_block(&code[5..], 0x1005, &no_leader);
    assert_eq!(s.term, Terminator::Syscall { next: 0x1007 });
    assert!(s.insts.is_empty());
}

#[test]
fn div_branches_to_a_trap_block() {
    // div rcx after xor edx, edx: single-width division inline
    let v = lift_blocks(&[0x31, 0xd2, 0x48, 0xf7, 0xf1], 0x1000, &no_leader);
    assert_eq!(v.len(), 2);
    match v[0].term {
        Terminator::Branch { taken, fallthrough, .. } => {
            assert_eq!(taken, 0x1003);
            assert_eq!(fallthrough, 0x1005);
        }
        ref t => panic!("{t:?}"),
    }
    assert!(ops(&v[0]).iter().any(|o| matches!(o, Op::Bin(BinOp::UDiv, _, _))));
    assert!(matches!(&v[1].term, Terminator::Trap { addr: 0x1002, what } if what.contains("divide error")));
    // Without knowledge of rdx: 128-bit division through the helper.
    let v = lift_blocks(&[0x48, 0xf7, 0xf1], 0x1000, &no_leader);
    assert!(ops(&v[0]).iter().any(|o| matches!(o, Op::Helper(h, _) if *h == Helper::Sse as u32)));
    // 32-bit idiv: checks for MIN / -1 and quotient range, never divides by zero.
    let v = lift_blocks(&[0xf7, 0xf9], 0x1000, &no_leader);
    assert!(ops(&v[0]).iter().any(|o| matches!(o, Op::Bin(BinOp::SDiv, _, _))));
    assert!(ops(&v[0]).iter().any(|o| matches!(o, Op::Select(..))));
}

#[test]
fn rep_movsb_loops_one_element_per_iteration() {
    // rep movsb
    let v = lift_blocks(&[0xf3, 0xa4], 0x1000, &no_leader);
    assert_eq!(v.len(), 2);
    assert!(matches!(v[0].term, Terminator::Branch { taken: 0x1001, fallthrough: 0x1002, .. }));
    assert_eq!(v[1].addr, 0x1001);
    assert_eq!(v[1].term, Terminator::Jump(0x1000));
    // The element honours DF.
    assert!(ops(&v[1]).iter().any(|o| matches!(o, Op::Get(Loc { offset, .. }) if *offset == offsets::RFLAGS_OTHER)));
    // A rep instruction after others starts its own block.
    let b = lift(&[0x90, 0xf3, 0xa4]);
    assert_eq!(b.term, Terminator::Jump(0x1001));
}

#[test]
fn shift_by_cl_keeps_flags_when_count_is_zero() {
    // shl rax, cl ; jz
    let b = lift(&[0x48, 0xd3, 0xe0, 0x74, 0x00]);
    let cc_op = sets(&b, offsets::CC_OP);
    assert_eq!(cc_op.len(), 1);
    assert!(matches!(b.insts[cc_op[0].0 as usize].op, Op::Select(..)));
    // Flags are no longer statically known: the consumer evaluates the lazy state.
    assert!(matches!(cond_op(&b), Op::EvalCond(4)));
    // shl rax, 3 ; jz: known producer.
    let b = lift(&[0x48, 0xc1, 0xe0, 0x03, 0x74, 0x00]);
    assert!(!has_eval_cond(&b));
}

#[test]
fn unsupported_instruction_traps_with_bytes() {
    // nop ; vzeroupper
    let b = lift(&[0x90, 0xc5, 0xf8, 0x77]);
    match &b.term {
        Terminator::Trap { addr, what } => {
            assert_eq!(*addr, 0x1001);
            assert!(what.contains("c5 f8 77"), "{what}");
            assert!(what.contains("vzeroupper"), "{what}");
        }
        t => panic!("{t:?}"),
    }
    assert_eq!(b.guest_insts, 1);
}

#[test]
fn scalar_double_is_inline() {
    // addsd xmm0, xmm1 ; ucomisd xmm0, xmm2 ; ja
    let b = lift(&[0xf2, 0x0f, 0x58, 0xc1, 0x66, 0x0f, 0x2e, 0xc2, 0x77, 0x00]);
    assert!(ops(&b).iter().any(|o| matches!(o, Op::Bin(BinOp::FAdd, _, _))));
    assert!(!ops(&b).iter().any(|o| matches!(o, Op::Helper(..))));
    assert!(!has_eval_cond(&b));
}

#[test]
fn packed_integer_uses_the_sse_helper() {
    // pcmpeqb xmm0, xmm1 ; pmovmskb eax, xmm0
    let b = lift(&[0x66, 0x0f, 0x74, 0xc1, 0x66, 0x0f, 0xd7, 0xc0]);
    let helpers = ops(&b).iter().filter(|o| matches!(o, Op::Helper(h, _) if *h == Helper::Sse as u32)).count();
    assert_eq!(helpers, 2);
    assert_eq!(sets(&b, offsets::gpr(0)).len(), 1);
}

#[test]
fn fs_override_adds_fs_base() {
    // mov rax, fs:[0x28]
    let b = lift(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0]);
    assert!(ops(&b).iter().any(|o| matches!(o, Op::Get(Loc { offset, .. }) if *offset == offsets::FS_BASE)));
}

/// Lift a whole static executable and check the program is closed.
fn lift_file(path: &str) -> Option<(Program, LiftStats)> {
    let bytes = std::fs::read(path).ok()?;
    let bin = crate::guest::GuestBinary::parse(path, bytes).ok()?;
    let map = crate::discover::discover(&bin).ok()?;
    if map.functions.is_empty() {
        return None;
    }
    let t = std::time::Instant::now();
    let (prog, stats) = lift_program(&bin, &map).ok()?;
    eprintln!("{path}: {stats:?} in {:?}", t.elapsed());
    check_closed(&prog);
    Some((prog, stats))
}

fn check_closed(prog: &Program) {
    let starts: HashSet<u64> = prog.functions.iter().flat_map(|f| f.blocks.iter().map(|b| b.addr)).collect();
    let mut prev = None;
    for f in &prog.functions {
        assert!(prev < Some(f.entry), "functions sorted and unique");
        prev = Some(f.entry);
        assert_eq!(f.blocks[0].addr, f.entry);
        let own: HashSet<u64> = f.blocks.iter().map(|b| b.addr).collect();
        for b in &f.blocks {
            for s in b.successors() {
                assert!(starts.contains(&s), "successor {s:#x} of block {:#x} is no block", b.addr);
            }
            if let Terminator::Call { ret, .. } = b.term {
                assert!(own.contains(&ret), "return address {ret:#x} not in function {:#x}", f.entry);
            }
        }
    }
}

#[test]
fn busybox_lifts_closed() {
    // Debian's busybox-static is part of the build environment.
    let Some((prog, stats)) = lift_file("/bin/busybox") else {
        panic!("/bin/busybox could not be parsed and discovered");
    };
    assert!(stats.functions > 1000);
    assert!(prog.functions.iter().map(|f| f.blocks.len()).sum::<usize>() == stats.blocks);
}
