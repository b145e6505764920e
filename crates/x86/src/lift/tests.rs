//! Lifter unit tests: the IR shape of chosen instruction sequences, and whole-program
//! lifting of real static executables (closure of the result).

use super::*;
use hcontainer_abi::flags::CcOp;
use hcontainer_abi::offsets;
use hcontainer_ir::{BinOp, CallTarget, IntCC, Loc, Op, Type};

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
        assert_eq!(b.insts[val.0 as usize].op, Op::Pc(0x1005));
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

fn sse_helpers(b: &Block) -> usize {
    ops(b).iter().filter(|o| matches!(o, Op::Helper(h, _) if *h == Helper::Sse as u32)).count()
}

#[test]
fn common_packed_operations_are_inline() {
    // pcmpeqb xmm0, xmm1 ; pmovmskb eax, xmm0 ; paddd xmm2, xmm3 ; psrld xmm2, 7 ;
    // pshufd xmm4, xmm2, 0x1b ; punpcklbw xmm5, xmm0 ; mulpd xmm6, xmm7 ; pminub xmm0, [rsi]
    let b = lift(&[
        0x66, 0x0f, 0x74, 0xc1, 0x66, 0x0f, 0xd7, 0xc0, 0x66, 0x0f, 0xfe, 0xd3, 0x66, 0x0f, 0x72, 0xd2, 0x07, 0x66,
        0x0f, 0x70, 0xe2, 0x1b, 0x66, 0x0f, 0x60, 0xe8, 0x66, 0x0f, 0x59, 0xf7, 0x66, 0x0f, 0xda, 0x06,
    ]);
    assert_eq!(b.guest_insts, 8);
    assert_eq!(sse_helpers(&b), 0);
    assert_eq!(sets(&b, offsets::gpr(0)).len(), 1);
    assert!(ops(&b).iter().any(|o| matches!(o, Op::Bin(BinOp::FMul, _, _))));
}

#[test]
fn rarer_packed_operations_use_the_sse_helper() {
    // pmaddwd xmm0, xmm1 ; paddusb xmm0, xmm1 ; pslld xmm0, xmm1
    let b = lift(&[0x66, 0x0f, 0xf5, 0xc1, 0x66, 0x0f, 0xdc, 0xc1, 0x66, 0x0f, 0xf2, 0xc1]);
    assert_eq!(sse_helpers(&b), 3);
}

#[test]
fn rotate_with_dead_carry_and_overflow_keeps_the_lazy_flags() {
    // cmp rdi, rsi ; ror eax, 3 ; sete cl ; add edx, 1 ; jz: sete reads cmp's ZF, which ror
    // does not change, and add overwrites ror's CF and OF before anything reads them.
    let b = lift(&[0x48, 0x39, 0xf7, 0xc1, 0xc8, 0x03, 0x0f, 0x94, 0xc1, 0x83, 0xc2, 0x01, 0x74, 0x10]);
    assert!(!ops(&b).iter().any(|o| matches!(o, Op::Rflags)));
    assert!(ops(&b).iter().any(|o| matches!(o, Op::Icmp(IntCC::Eq, _, _))));
    // Lazy flags written by cmp and add only.
    assert_eq!(sets(&b, offsets::CC_OP).len(), 2);
    // With jc in place of sete, CF comes from the rotate: its flags are materialized.
    let b = lift(&[0x48, 0x39, 0xf7, 0xc1, 0xc8, 0x03, 0x72, 0x10]);
    assert_eq!(sets(&b, offsets::CC_OP).len(), 2);
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
    let bad = unexpected_traps(&prog);
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(prog.functions.iter().map(|f| f.blocks.len()).sum::<usize>() == stats.blocks);
}

/// Compile a hello world with `cc` (static, -O2) into a temporary file.
fn hello_with(cc: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hc-lift-{}-{cc}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("hello.c");
    std::fs::write(&src, "#include <stdio.h>\nint main(void){printf(\"hello %d\\n\", 42);return 0;}\n")
        .expect("write source");
    let out = dir.join("hello");
    let st = std::process::Command::new(cc)
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("{cc} not runnable: {e}"));
    assert!(st.success(), "{cc} failed");
    out
}

/// Trap descriptions that are expected: instructions of CPU features our cpuid does not
/// report (code paths glibc and busybox select at run time), x87 instructions the x87 helper
/// does not map, save/restore instructions used only by dynamic-linking trampolines,
/// intended traps, and calls through null weak symbols.
const EXPECTED: [&str; 16] = [
    "needs [avx",
    "needs [bmi",
    "needs [ssse3",
    "needs [sse4",
    "needs [rtm",
    "needs [hle_or_rtm",
    "needs [cet_ss",
    "needs [xsave",
    "needs [fxsr",
    "needs [adx",
    "needs [rdrand",
    "needs [movbe",
    "x87 instruction not implemented",
    "instruction reached",
    "divide error",
    "no guest code at this address",
];

/// Traps of a program other than AVX/AVX2/AVX-512 and BMI (glibc and busybox pick those code
/// paths only when cpuid reports them, and our cpuid does not) and x87 instructions the x87
/// helper does not map: `(address, description)`.
fn unexpected_traps(prog: &Program) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = prog
        .functions
        .iter()
        .flat_map(|f| f.blocks.iter())
        .filter_map(|b| match &b.term {
            Terminator::Trap { addr, what } => Some((*addr, what.clone())),
            _ => None,
        })
        .filter(|(_, w)| !EXPECTED.iter().any(|e| w.contains(e)))
        .collect();
    v.sort();
    v.dedup();
    // Summarize by mnemonic for the log.
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for (_, w) in &v {
        *by.entry(w.split(' ').next().unwrap_or("").to_string()).or_default() += 1;
    }
    eprintln!("unexpected traps by mnemonic: {by:?}");
    v
}

#[test]
fn musl_hello_lifts_without_traps() {
    let p = hello_with("musl-gcc");
    let (prog, _) = lift_file(p.to_str().expect("utf-8 path")).expect("musl hello lifts");
    let bad = unexpected_traps(&prog);
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn glibc_hello_lifts_with_only_avx_traps() {
    let p = hello_with("gcc");
    let (prog, _) = lift_file(p.to_str().expect("utf-8 path")).expect("gcc hello lifts");
    let bad = unexpected_traps(&prog);
    assert!(bad.is_empty(), "{bad:#?}");
}

mod consistency {
    //! A flag consumer in the producer's block computes its condition directly; in a later
    //! block it evaluates the lazy flags the producer stored. Both must agree, for every
    //! condition code, on many operand values.
    use super::*;
    use hcontainer_abi::GuestState;
    use hcontainer_ir::interp::{run_block, SparseMemory, StepClock};

    const VALUES: [u64; 12] = [
        0,
        1,
        2,
        0x7f,
        0x80,
        0xff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        u64::MAX,
    ];

    fn run(code: &[u8], st: &mut GuestState) {
        let mut mem = SparseMemory::new();
        let mut clock = StepClock::default();
        let b = lift_block(code, 0x1000, &|_| false);
        run_block(&b, st, &mut mem, &mut clock).unwrap_or_else(|e| panic!("{code:02x?}: {e}"));
    }

    fn check(op: &[u8]) {
        for cc in 0..16u8 {
            let setcc = [0x0f, 0x90 + cc, 0xc2]; // setcc dl
            let mut one = op.to_vec();
            one.extend_from_slice(&setcc);
            for (i, &a) in VALUES.iter().enumerate() {
                for (j, &b) in VALUES.iter().enumerate() {
                    for &count in &[0u64, 1, 3, 63] {
                        let mut st = GuestState::new();
                        st.gpr[0] = a;
                        st.gpr[3] = b;
                        st.gpr[1] = count;
                        st.cc_dst = ((i * 7 + j) as u64 & 1) | if j % 3 == 0 { 0x40 } else { 0 } | (0x800 * ((i % 2) as u64));
                        let mut st2 = st;
                        run(&one, &mut st);
                        run(op, &mut st2);
                        run(&setcc, &mut st2);
                        assert_eq!(
                            st.gpr[2] & 0xff,
                            st2.gpr[2] & 0xff,
                            "op {op:02x?} cc {cc} rax {a:#x} rbx {b:#x} cl {count}"
                        );
                        assert_eq!(st.gpr[0], st2.gpr[0]);
                    }
                }
            }
        }
    }

    #[test]
    fn float_compare() {
        let vals = [0.0f64, -0.0, 1.0, -1.0, 2.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        for op in [&[0x66, 0x0f, 0x2e, 0xc1][..], &[0x66, 0x0f, 0x2f, 0xc1], &[0x0f, 0x2e, 0xc1]] {
            for cc in 0..16u8 {
                let setcc = [0x0f, 0x90 + cc, 0xc2];
                let mut one = op.to_vec();
                one.extend_from_slice(&setcc);
                for &a in &vals {
                    for &b in &vals {
                        let mut st = GuestState::new();
                        let (xa, xb) = if op.len() == 3 {
                            (u128::from((a as f32).to_bits()), u128::from((b as f32).to_bits()))
                        } else {
                            (u128::from(a.to_bits()), u128::from(b.to_bits()))
                        };
                        st.xmm[0] = xa.to_le_bytes();
                        st.xmm[1] = xb.to_le_bytes();
                        let mut st2 = st;
                        run(&one, &mut st);
                        run(op, &mut st2);
                        run(&setcc, &mut st2);
                        assert_eq!(st.gpr[2] & 0xff, st2.gpr[2] & 0xff, "op {op:02x?} cc {cc} {a} {b}");
                        // And against the comparison itself for the unsigned conditions.
                        let want = match cc {
                            2 => Some(a.is_nan() || b.is_nan() || a < b),
                            3 => Some(a >= b),
                            4 => Some(a.is_nan() || b.is_nan() || a == b),
                            6 => Some(a.is_nan() || b.is_nan() || a <= b),
                            7 => Some(a > b),
                            10 => Some(a.is_nan() || b.is_nan()),
                            _ => None,
                        };
                        if let Some(w) = want {
                            assert_eq!(st.gpr[2] & 0xff, u64::from(w), "op {op:02x?} cc {cc} {a} {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn arithmetic_64() {
        for op in [
            &[0x48, 0x01, 0xd8][..], // add rax, rbx
            &[0x48, 0x29, 0xd8],     // sub rax, rbx
            &[0x48, 0x39, 0xd8],     // cmp rax, rbx
            &[0x48, 0x11, 0xd8],     // adc rax, rbx
            &[0x48, 0x19, 0xd8],     // sbb rax, rbx
            &[0x48, 0x21, 0xd8],     // and rax, rbx
            &[0x48, 0x85, 0xd8],     // test rax, rbx
            &[0x48, 0xff, 0xc0],     // inc rax
            &[0x48, 0xff, 0xc8],     // dec rax
            &[0x48, 0xf7, 0xd8],     // neg rax
            &[0x48, 0x0f, 0xaf, 0xc3], // imul rax, rbx
            &[0x48, 0xf7, 0xe3],     // mul rbx
        ] {
            check(op);
        }
    }

    #[test]
    fn arithmetic_32_and_8() {
        for op in [
            &[0x01, 0xd8][..], // add eax, ebx
            &[0x29, 0xd8],     // sub eax, ebx
            &[0x19, 0xd8],     // sbb eax, ebx
            &[0xff, 0xc0],     // inc eax
            &[0x00, 0xd8],     // add al, bl
            &[0x28, 0xd8],     // sub al, bl
            &[0x38, 0xd8],     // cmp al, bl
            &[0x10, 0xd8],     // adc al, bl
            &[0xfe, 0xc8],     // dec al
            &[0x66, 0x39, 0xd8], // cmp ax, bx
        ] {
            check(op);
        }
    }

    #[test]
    fn shifts_rotates_bits() {
        for op in [
            &[0x48, 0xd3, 0xe0][..], // shl rax, cl
            &[0x48, 0xd3, 0xe8],     // shr rax, cl
            &[0x48, 0xd3, 0xf8],     // sar rax, cl
            &[0x48, 0xc1, 0xe0, 0x03], // shl rax, 3
            &[0x48, 0xc1, 0xe8, 0x01], // shr rax, 1
            &[0xc1, 0xf8, 0x05],     // sar eax, 5
            &[0xd2, 0xe0],           // shl al, cl
            &[0x48, 0xd3, 0xc0],     // rol rax, cl
            &[0x48, 0xd1, 0xc8],     // ror rax, 1
            &[0x48, 0x0f, 0xa3, 0xd8], // bt rax, rbx
            &[0x48, 0x0f, 0xbc, 0xc3], // bsf rax, rbx
            &[0x48, 0x0f, 0xa5, 0xd8], // shld rax, rbx, cl
            &[0x48, 0x0f, 0xad, 0xd8], // shrd rax, rbx, cl
        ] {
            check(op);
        }
    }
}

mod golden {
    //! Golden text dumps of lifted blocks: `src/lift/golden/<name>.ir`. Re-record with
    //! `HCONTAINER_BLESS=1 cargo test -p hcontainer-x86 --lib golden` and review the diff.
    use super::*;

    fn check(name: &str, code: &[u8]) {
        let text: String = lift_blocks(code, 0x401000, &|_| false).iter().map(|b| format!("{b}\n")).collect();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lift/golden").join(format!("{name}.ir"));
        if std::env::var_os("HCONTAINER_BLESS").is_some() {
            std::fs::write(&path, &text).expect("write golden file");
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (bless to create)", path.display()));
        assert_eq!(text, want, "{name}: lifted IR differs from {}", path.display());
    }

    #[test]
    fn cmp_jl() {
        // cmp rdi, rsi ; jl +0x10
        check("cmp_jl", &[0x48, 0x39, 0xf7, 0x7c, 0x10]);
    }

    #[test]
    fn add_mem_imm_setcc() {
        // add dword [rbx+rcx*4+8], 5 ; setb al
        check("add_mem_imm_setcc", &[0x83, 0x44, 0x8b, 0x08, 0x05, 0x0f, 0x92, 0xc0]);
    }

    #[test]
    fn div_r32() {
        // xor edx, edx ; div ecx
        check("div_r32", &[0x31, 0xd2, 0xf7, 0xf1]);
    }

    #[test]
    fn rep_stosq() {
        check("rep_stosq", &[0xf3, 0x48, 0xab]);
    }

    #[test]
    fn scalar_double() {
        // mulsd xmm0, [rip+0x100] ; ucomisd xmm0, xmm1 ; jbe +0
        check("scalar_double", &[0xf2, 0x0f, 0x59, 0x05, 0x00, 0x01, 0x00, 0x00, 0x66, 0x0f, 0x2e, 0xc1, 0x76, 0x00]);
    }

    #[test]
    fn push_call_indirect() {
        // push rbx ; call [rax+8]
        check("push_call_indirect", &[0x53, 0xff, 0x50, 0x08]);
    }

    #[test]
    fn shl_cl_then_jz() {
        // shl eax, cl ; jz +0
        check("shl_cl_then_jz", &[0xd3, 0xe0, 0x74, 0x00]);
    }
}

mod sse_values {
    //! SSE instructions lifted and interpreted on known values.
    use super::*;
    use hcontainer_abi::GuestState;
    use hcontainer_ir::interp::{run_block, Memory, SparseMemory, StepClock};

    const DATA: u64 = 0x10_0000;

    fn run(code: &[u8], st: &mut GuestState, mem: &mut SparseMemory) {
        let mut clock = StepClock::default();
        let b = lift_block(code, 0x1000, &|_| false);
        run_block(&b, st, mem, &mut clock).unwrap_or_else(|e| panic!("{code:02x?}: {e}"));
    }

    fn xmm(st: &GuestState, i: usize) -> u128 {
        u128::from_le_bytes(st.xmm[i])
    }

    #[test]
    fn strlen_kernel() {
        let mut mem = SparseMemory::new();
        mem.map(DATA, 0x1000);
        mem.write(DATA, b"hello, world\0xyz").expect("mapped");
        let mut st = GuestState::new();
        st.gpr[7] = DATA;
        st.xmm[1] = [0xaa; 16];
        // movdqu xmm0, [rdi] ; pxor xmm1, xmm1 ; pcmpeqb xmm0, xmm1 ; pmovmskb eax, xmm0 ; bsf eax, eax
        let code = [0xf3, 0x0f, 0x6f, 0x07, 0x66, 0x0f, 0xef, 0xc9, 0x66, 0x0f, 0x74, 0xc1, 0x66, 0x0f, 0xd7, 0xc0, 0x0f, 0xbc, 0xc0];
        run(&code, &mut st, &mut mem);
        assert_eq!(xmm(&st, 1), 0);
        assert_eq!(st.gpr[0], 12);
    }

    #[test]
    fn conversions() {
        let mut mem = SparseMemory::new();
        let mut st = GuestState::new();
        st.xmm[0] = (u128::from(1e30f64.to_bits()) | (7u128 << 64)).to_le_bytes();
        st.xmm[1] = u128::from((-3.7f64).to_bits()).to_le_bytes();
        st.gpr[3] = (-5i64) as u64;
        // cvttsd2si rax, xmm0 ; cvttsd2si ecx, xmm1 ; cvtsi2sd xmm0, rbx ; cvtsd2si rdx, xmm1
        let code = [0xf2, 0x48, 0x0f, 0x2c, 0xc0, 0xf2, 0x0f, 0x2c, 0xc9, 0xf2, 0x48, 0x0f, 0x2a, 0xc3, 0xf2, 0x48, 0x0f, 0x2d, 0xd1];
        run(&code, &mut st, &mut mem);
        assert_eq!(st.gpr[0], 0x8000_0000_0000_0000);
        assert_eq!(st.gpr[1], 0xffff_fffd);
        assert_eq!(xmm(&st, 0), u128::from((-5.0f64).to_bits()) | (7u128 << 64));
        assert_eq!(st.gpr[2], (-4i64) as u64);
    }

    #[test]
    fn moves_and_lanes() {
        let mut mem = SparseMemory::new();
        let mut st = GuestState::new();
        st.gpr[0] = 0x1122_3344_5566_7788;
        st.xmm[0] = [0xff; 16];
        st.xmm[1] = (0xaaaa_u128 | (0xbbbb_u128 << 64)).to_le_bytes();
        st.xmm[2] = (0xcccc_u128 | (0xdddd_u128 << 64)).to_le_bytes();
        st.xmm[3] = (0xcccc_u128 | (0xdddd_u128 << 64)).to_le_bytes();
        // movq xmm0, rax ; unpcklpd xmm1, xmm2 ; movhlps xmm3, xmm1 ; pshufd xmm4, xmm0, 0x1b
        let code = [0x66, 0x48, 0x0f, 0x6e, 0xc0, 0x66, 0x0f, 0x14, 0xca, 0x0f, 0x12, 0xd9, 0x66, 0x0f, 0x70, 0xe0, 0x1b];
        run(&code, &mut st, &mut mem);
        assert_eq!(xmm(&st, 0), 0x1122_3344_5566_7788);
        assert_eq!(xmm(&st, 1), 0xaaaa | (0xcccc << 64));
        assert_eq!(xmm(&st, 3), 0xcccc | (0xdddd << 64));
        assert_eq!(xmm(&st, 4), (0x5566_7788u128 << 96) | (0x1122_3344u128 << 64));
    }

    #[test]
    fn arithmetic_keeps_upper_lane() {
        let mut mem = SparseMemory::new();
        let mut st = GuestState::new();
        st.xmm[0] = (u128::from(9.0f64.to_bits()) | (0x1234u128 << 64)).to_le_bytes();
        st.xmm[1] = u128::from(2.0f64.to_bits()).to_le_bytes();
        // divsd xmm0, xmm1 ; sqrtsd xmm2, xmm0 ; maxsd xmm2, xmm1
        let code = [0xf2, 0x0f, 0x5e, 0xc1, 0xf2, 0x0f, 0x51, 0xd0, 0xf2, 0x0f, 0x5f, 0xd1];
        run(&code, &mut st, &mut mem);
        assert_eq!(xmm(&st, 0), u128::from(4.5f64.to_bits()) | (0x1234u128 << 64));
        assert_eq!(xmm(&st, 2) as u64, 4.5f64.sqrt().to_bits());
    }
}

mod whole_programs {
    //! Whole static programs lifted and run on the IR interpreter (with a minimal system
    //! call layer) print what the native program prints.
    use super::*;
    use hcontainer_abi::GuestState;
    use hcontainer_ir::interp::{run_program, Memory, SparseMemory, StepClock, Stop};

    const SOURCE: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    const char *xs[] = {"3.5", "0.5", "35e-1", "12345678901234567890", "1e300", ".25", "-7.125e-3"};
    for (int i = 0; i < 7; i++) printf("%s -> %.17g\n", xs[i], strtod(xs[i], 0));
    volatile double a = 1763.57, b = 7.0;
    volatile long l = -123456789;
    printf("%g %.3f %e %ld %lu\n", a / b, a * b, a - 1e9, l / 7, (unsigned long)l % 1000003);
    char buf[64];
    snprintf(buf, sizeof buf, "%s-%d-%x", "abc", 42, 0xbeef);
    printf("%s %zu %d %s\n", buf, strlen(buf), strcmp(buf, "abc-42"), strchr(buf, '-'));
    return 0;
}
"#;

    fn compile(cc: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hc-lift-run-{}-{cc}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let src = dir.join("p.c");
        std::fs::write(&src, SOURCE).expect("write source");
        let out = dir.join("p");
        let st = std::process::Command::new(cc)
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .unwrap_or_else(|e| panic!("{cc} not runnable: {e}"));
        assert!(st.success(), "{cc} failed");
        out
    }

    /// Run `path` on the interpreter; returns what it wrote to stdout and its exit status.
    fn interpret(path: &std::path::Path) -> (Vec<u8>, u64) {
        let bytes = std::fs::read(path).expect("read program");
        let bin = crate::guest::GuestBinary::parse(&path.display().to_string(), bytes).expect("parse");
        let map = crate::discover::discover(&bin).expect("discover");
        let (prog, _) = lift_program(&bin, &map).expect("lift");
        let mut mem = SparseMemory::new();
        let mut end = 0;
        for s in &bin.segments {
            let a = s.vaddr & !0xfff;
            let e = (s.vaddr + s.memsz + 0xfff) & !0xfff;
            mem.map(a, e - a);
            mem.write(s.vaddr, &bin.bytes[s.file_range.clone()]).expect("segment mapped");
            end = end.max(e);
        }
        let (brk0, heap) = (end, 16u64 << 20);
        mem.map(brk0, heap);
        let mut brk = brk0;
        let mut mmap_next = 0x7000_0000_0000u64;
        mem.map(mmap_next, 64 << 20);
        let top = 0x7ff0_0000_0000u64;
        mem.map(top - (1 << 20), 1 << 20);
        let name = top - 0x100;
        mem.write(name, b"p\0").expect("stack mapped");
        let random = top - 0x80;
        let sp = (top - 0x1000) & !15;
        let words = [
            1, name, 0, 0, 3, bin.phdr_addr, 4, u64::from(bin.phent), 5, u64::from(bin.phnum), 6, 4096, 9, bin.entry, 25,
            random, 0, 0,
        ];
        for (i, w) in words.iter().enumerate() {
            mem.write(sp + 8 * i as u64, &w.to_le_bytes()).expect("stack mapped");
        }
        let mut st = GuestState::new();
        st.gpr[4] = sp;
        st.rip = bin.entry;
        let mut out = Vec::new();
        let mut clock = StepClock::default();
        loop {
            let (stop, _) = run_program(&prog, &mut st, &mut mem, &mut clock, 50_000_000)
                .unwrap_or_else(|e| panic!("{}: {e} (rip {:#x})", path.display(), st.rip));
            let next = match stop {
                Stop::Syscall { next } => next,
                Stop::Trap { addr, what } => panic!("{}: trap at {addr:#x}: {what}", path.display()),
            };
            let (a0, a1, a2) = (st.gpr[7], st.gpr[6], st.gpr[2]);
            let r: i64 = match st.gpr[0] {
                12 => {
                    if a0 >= brk0 && a0 < brk0 + heap {
                        brk = a0;
                    }
                    brk as i64
                }
                158 if a0 == 0x1002 => {
                    st.fs_base = a1;
                    0
                }
                218 => 1,
                10 | 11 | 13 | 14 | 273 => 0,
                9 => {
                    let r = mmap_next;
                    mmap_next += (a1 + 0xfff) & !0xfff;
                    r as i64
                }
                318 => {
                    mem.write(a0, &vec![0u8; a1 as usize]).expect("getrandom buffer");
                    a1 as i64
                }
                1 => {
                    let mut b = vec![0u8; a2 as usize];
                    mem.read(a1, &mut b).expect("write buffer");
                    out.extend_from_slice(&b);
                    a2 as i64
                }
                20 => {
                    let mut total = 0;
                    for i in 0..a2 {
                        let mut iov = [0u8; 16];
                        mem.read(a1 + 16 * i, &mut iov).expect("iovec");
                        let base = u64::from_le_bytes(iov[..8].try_into().expect("8 bytes"));
                        let len = u64::from_le_bytes(iov[8..].try_into().expect("8 bytes"));
                        let mut b = vec![0u8; len as usize];
                        mem.read(base, &mut b).expect("writev buffer");
                        out.extend_from_slice(&b);
                        total += len;
                    }
                    total as i64
                }
                60 | 231 => return (out, a0),
                _ => -38,
            };
            st.gpr[0] = r as u64;
            st.gpr[1] = next;
            st.rip = next;
        }
    }

    fn check(cc: &str) {
        let p = compile(cc);
        let native = std::process::Command::new(&p).output().expect("run native");
        let (out, status) = interpret(&p);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&native.stdout), "{cc}");
        assert_eq!(Some(status as i32), native.status.code());
    }

    #[test]
    fn glibc_program_matches_native() {
        check("gcc");
    }

    #[test]
    fn musl_program_matches_native() {
        check("musl-gcc");
    }
}
