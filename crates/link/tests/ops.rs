//! Differential test of every IR operation: one program computes many operations on inputs
//! loaded from guest memory (so nothing is constant-folded), stores the results and writes
//! them to stdout. The same program run by the IR interpreter (`hcontainer_ir::interp`, the
//! reference semantics) must produce the very same bytes on every host ISA.

mod common;

use hcontainer_abi::flags::CcOp;
use hcontainer_abi::{offsets, Gpr};
use hcontainer_ir::interp::{run_program, SparseMemory, Stop, StepClock};
use hcontainer_ir::{
    BinOp, Block, ConvOp, FloatCC, Function, IntCC, Loc, Op, Program, Terminator, Type, UnOp, Value,
};
use hcontainer_abi::meta::HostIsa;

const CODE: u64 = 0x401000;
const IN: u64 = 0x500000;
const IN_SIZE: u64 = 0x100000;
const OUT: u64 = 0x600000;
const OUT_SIZE: u64 = 0x80000;
/// Cases per translated function (a jump to the next one goes through the dispatcher).
const PER_FUNCTION: usize = 256;
/// Cases per function in the first half.
const SMALL_FUNCTION: usize = 24;

fn gpr(r: Gpr) -> Loc {
    Loc { offset: offsets::gpr(r as u8), ty: Type::I64 }
}

fn c64(b: &mut Block, v: u64) -> Value {
    b.push(Op::Const { ty: Type::I64, bits: u128::from(v) })
}

struct Gen {
    blocks: Vec<Block>,
    inputs: Vec<u8>,
    cases: Vec<String>,
}

impl Gen {
    fn next_addr(&self) -> u64 {
        CODE + 0x10 * self.blocks.len() as u64
    }

    /// One case: load `ins` from guest memory, compute with `f`, store the result.
    fn case(&mut self, name: String, ins: &[(Type, u128)], f: impl FnOnce(&mut Block, &[Value]) -> Value) {
        let mut b = Block::new(self.next_addr());
        let mut vals = Vec::new();
        for &(ty, bits) in ins {
            let off = self.inputs.len() as u64;
            self.inputs.extend_from_slice(&bits.to_le_bytes());
            let a = c64(&mut b, IN + off);
            vals.push(b.push(Op::Load { ty, addr: a }));
        }
        let r = f(&mut b, &vals);
        let out = c64(&mut b, OUT + 16 * self.cases.len() as u64);
        b.push(Op::Store { addr: out, val: r });
        b.term = Terminator::Jump(b.addr + 0x10);
        self.blocks.push(b);
        self.cases.push(name);
    }

    fn finish(mut self) -> (Program, Vec<u8>, Vec<String>) {
        let len = 16 * self.cases.len() as u64;
        let mut w = Block::new(self.next_addr());
        for (r, v) in [(Gpr::Rax, 1), (Gpr::Rdi, 1), (Gpr::Rsi, OUT), (Gpr::Rdx, len)] {
            let c = c64(&mut w, v);
            w.push(Op::Set(gpr(r), c));
        }
        w.term = Terminator::Syscall { next: w.addr + 0x10 };
        self.blocks.push(w);
        let mut e = Block::new(self.next_addr());
        for (r, v) in [(Gpr::Rax, 60), (Gpr::Rdi, 0)] {
            let c = c64(&mut e, v);
            e.push(Op::Set(gpr(r), c));
        }
        e.term = Terminator::Syscall { next: e.addr + 0x10 };
        self.blocks.push(e);
        let t = Block::new(self.next_addr());
        self.blocks.push(t);
        // The first half in small functions (values kept in registers across blocks), the
        // rest in large ones (compiled block by block): both code generator modes.
        let half = self.blocks.len() / 2;
        let functions = self.blocks[..half]
            .chunks(SMALL_FUNCTION)
            .chain(self.blocks[half..].chunks(PER_FUNCTION))
            .map(|c| Function { entry: c[0].addr, blocks: c.to_vec() })
            .collect();
        let prog = Program { functions, ..Default::default() };
        (prog, self.inputs, self.cases)
    }
}

fn mask(ty: Type) -> u128 {
    if ty.bits() >= 128 { u128::MAX } else { (1u128 << ty.bits()) - 1 }
}

fn int_values(ty: Type) -> Vec<u128> {
    let m = mask(ty);
    let sign = 1u128 << (ty.bits() - 1);
    vec![0, 1, 7, m, sign, sign - 1, 0x5a5a_5a5a_5a5a_5a5a_a5a5_a5a5_a5a5_a5a5 & m, 0x8000_0000_ffff_0001_0123_4567_89ab_cdef & m]
}

fn f32_values() -> Vec<u128> {
    [0.0f32, -0.0, 1.5, -2.5, 3.0, f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e10, 1e-40, 2.5, 0.5, -0.5, 2147483648.0, -2147483648.0, 8388609.0, 16777217.0]
        .iter()
        .map(|v| u128::from(v.to_bits()))
        .chain([0x7fa0_0001u128, 0xffc0_1234])
        .collect()
}

fn f64_values() -> Vec<u128> {
    [0.0f64, -0.0, 1.5, -2.5, 3.0, f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e20, -1e20, 1e-310, 2.5, 0.5, -0.5,
        0.49999999999999994, 2147483647.5, 2147483648.0, -2147483648.5, -2147483649.0, 9.2e18, 9.3e18, -9.3e18, 4503599627370497.0, -9223372036854775808.0]
        .iter()
        .map(|v| u128::from(v.to_bits()))
        .chain([0x7ff4_0000_0000_0001u128, 0xfff8_0000_dead_beef])
        .collect()
}

fn program() -> (Program, Vec<u8>, Vec<String>) {
    let mut g = Gen { blocks: Vec::new(), inputs: Vec::new(), cases: Vec::new() };
    use BinOp::*;
    for ty in [Type::I8, Type::I16, Type::I32, Type::I64, Type::I128] {
        let vals = int_values(ty);
        let bins: &[BinOp] = if ty == Type::I128 {
            &[Add, Sub, And, Or, Xor]
        } else {
            &[Add, Sub, Mul, UMulHi, SMulHi, UDiv, SDiv, URem, SRem, And, Or, Xor]
        };
        for &a in &vals {
            for &b in &vals {
                for &op in bins {
                    let sign = 1u128 << (ty.bits() - 1);
                    let div = matches!(op, UDiv | SDiv | URem | SRem);
                    if div && (b == 0 || (matches!(op, SDiv | SRem) && a == sign && b == mask(ty))) {
                        continue;
                    }
                    if ty == Type::I8 && matches!(op, UMulHi | SMulHi) {
                        continue;
                    }
                    g.case(format!("{op:?} {ty:?} {a:#x} {b:#x}"), &[(ty, a), (ty, b)], |bl, v| bl.push(Op::Bin(op, v[0], v[1])));
                }
                for cc in [IntCC::Eq, IntCC::Ne, IntCC::Ult, IntCC::Ule, IntCC::Ugt, IntCC::Uge, IntCC::Slt, IntCC::Sle, IntCC::Sgt, IntCC::Sge] {
                    g.case(format!("icmp {cc:?} {ty:?} {a:#x} {b:#x}"), &[(ty, a), (ty, b)], |bl, v| bl.push(Op::Icmp(cc, v[0], v[1])));
                }
            }
            for amt in [0u128, 1, 7, 8, 31, 33, 63, 64, 65, 127, 200] {
                for op in [Shl, LShr, AShr, Rotl, Rotr] {
                    if ty == Type::I128 && matches!(op, Rotl | Rotr) {
                        continue;
                    }
                    g.case(format!("{op:?} {ty:?} {a:#x} by {amt}"), &[(ty, a), (Type::I8, amt)], |bl, v| bl.push(Op::Bin(op, v[0], v[1])));
                }
            }
            let uns: &[UnOp] = if ty == Type::I128 { &[UnOp::Not, UnOp::Neg] } else { &[UnOp::Not, UnOp::Neg, UnOp::Clz, UnOp::Ctz, UnOp::Popcnt, UnOp::Bswap] };
            for &op in uns {
                g.case(format!("{op:?} {ty:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Un(op, v[0])));
            }
            for to in [Type::I8, Type::I16, Type::I32, Type::I64, Type::I128] {
                let conv = if to.bits() < ty.bits() { vec![ConvOp::Trunc] } else if to.bits() > ty.bits() { vec![ConvOp::Zext, ConvOp::Sext] } else { vec![] };
                for op in conv {
                    g.case(format!("{op:?} {ty:?}->{to:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Conv(op, to, v[0])));
                }
            }
            if ty != Type::I128 {
                for to in [Type::F32, Type::F64] {
                    g.case(format!("sitofp {ty:?}->{to:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Conv(ConvOp::SIntToFloat, to, v[0])));
                }
            }
            g.case(format!("select {ty:?} {a:#x}"), &[(Type::I64, a & 1), (ty, a), (ty, vals[6])], |bl, v| bl.push(Op::Select(v[0], v[1], v[2])));
        }
    }
    for (ty, vals) in [(Type::F32, f32_values()), (Type::F64, f64_values())] {
        for &a in &vals {
            for &b in vals.iter().step_by(3) {
                for op in [FAdd, FSub, FMul, FDiv, FMinX86, FMaxX86] {
                    g.case(format!("{op:?} {ty:?} {a:#x} {b:#x}"), &[(ty, a), (ty, b)], |bl, v| bl.push(Op::Bin(op, v[0], v[1])));
                }
                for cc in [FloatCC::Eq, FloatCC::Lt, FloatCC::Le, FloatCC::Uno, FloatCC::Une, FloatCC::Unlt, FloatCC::Unle, FloatCC::Ord] {
                    g.case(format!("fcmp {cc:?} {ty:?} {a:#x} {b:#x}"), &[(ty, a), (ty, b)], |bl, v| bl.push(Op::Fcmp(cc, v[0], v[1])));
                }
            }
            for op in [UnOp::FNeg, UnOp::FAbs, UnOp::FSqrt] {
                g.case(format!("{op:?} {ty:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Un(op, v[0])));
            }
            for to in [Type::I32, Type::I64] {
                for op in [ConvOp::FloatToSIntTrunc, ConvOp::FloatToSIntRound] {
                    g.case(format!("{op:?} {ty:?}->{to:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Conv(op, to, v[0])));
                }
            }
            let (op, to) = if ty == Type::F32 { (ConvOp::FPromote, Type::F64) } else { (ConvOp::FDemote, Type::F32) };
            g.case(format!("{op:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Conv(op, to, v[0])));
            let it = if ty == Type::F32 { Type::I32 } else { Type::I64 };
            g.case(format!("bitcast {ty:?} {a:#x}"), &[(ty, a)], |bl, v| bl.push(Op::Conv(ConvOp::Bitcast, it, v[0])));
        }
    }
    // Lazy flags: conditions through the runtime (cc_op loaded, unknown to the code generator)
    // and inlined (cc_op a constant in the block).
    for kind in [CcOp::Add, CcOp::Sub, CcOp::Logic, CcOp::Inc, CcOp::Dec, CcOp::Shl, CcOp::Sar] {
        for size in [1u32, 4, 8] {
            for (s1, s2) in [(5u64, 7u64), (7, 5), (0x80, 1), (u64::MAX, 1), (0, 0), (0x7fff_ffff, 1)] {
                let m = if size == 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
                let d = match kind {
                    CcOp::Add => s1.wrapping_add(s2),
                    CcOp::Sub => s1.wrapping_sub(s2),
                    CcOp::Logic => s1 & s2,
                    CcOp::Inc => s1.wrapping_add(1),
                    CcOp::Dec => s1.wrapping_sub(1),
                    CcOp::Shl => s1 << 1,
                    _ => ((s1 as i64) >> 1) as u64,
                } & m;
                let op = kind.with_size(size);
                for cc in 0u8..16 {
                    for inline in [false, true] {
                        let ins = [(Type::I64, u128::from(op)), (Type::I64, u128::from(d)), (Type::I64, u128::from(s1)), (Type::I64, u128::from(s2))];
                        g.case(format!("cond {cc} {kind:?}/{size} {s1:#x} {s2:#x} inline={inline}"), &ins, |bl, v| {
                            let cc_op = if inline { bl.push(Op::Const { ty: Type::I64, bits: u128::from(op) }) } else { v[0] };
                            for (off, val) in [(offsets::CC_OP, cc_op), (offsets::CC_DST, v[1]), (offsets::CC_SRC1, v[2]), (offsets::CC_SRC2, v[3])] {
                                bl.push(Op::Set(Loc { offset: off, ty: Type::I64 }, val));
                            }
                            bl.push(Op::EvalCond(cc))
                        });
                    }
                }
            }
        }
    }
    // Architectural RFLAGS from lazy flags plus the other bits.
    for (op, d, s1, s2) in [(CcOp::Sub.with_size(4), 0xffff_fffeu64, 5, 7), (CcOp::Add.with_size(1), 0, 0x80, 0x80), (CcOp::Logic.with_size(8), 0, 3, 4)] {
        let ins = [op, d, s1, s2, 0x602].map(|v| (Type::I64, u128::from(v)));
        g.case(format!("rflags {op:#x} {d:#x} {s1:#x} {s2:#x}"), &ins, |bl, v| {
            for (off, val) in [(offsets::CC_OP, v[0]), (offsets::CC_DST, v[1]), (offsets::CC_SRC1, v[2]), (offsets::CC_SRC2, v[3]), (offsets::RFLAGS_OTHER, v[4])] {
                bl.push(Op::Set(Loc { offset: off, ty: Type::I64 }, val));
            }
            bl.push(Op::Rflags)
        });
    }
    // A runtime helper reads registers set in the block (write-back) and its results are seen
    // afterwards (reload): cpuid leaves 0 and 1.
    for leaf in [0u128, 1] {
        for out in [Gpr::Rax, Gpr::Rbx, Gpr::Rcx, Gpr::Rdx] {
            g.case(format!("cpuid {leaf} {out:?}"), &[(Type::I64, leaf), (Type::I64, 0)], |bl, v| {
                bl.push(Op::Set(gpr(Gpr::Rax), v[0]));
                bl.push(Op::Set(gpr(Gpr::Rcx), v[1]));
                bl.push(Op::Helper(hcontainer_semantics::Helper::Cpuid as u32, vec![]));
                bl.push(Op::Get(gpr(out)))
            });
        }
    }
    g.finish()
}

#[test]
fn every_op_matches_the_interpreter_on_every_isa() {
    let (prog, inputs, cases) = program();
    assert!(inputs.len() as u64 <= IN_SIZE && 16 * cases.len() as u64 <= OUT_SIZE, "{} cases", cases.len());

    // Reference: the interpreter.
    let mut mem = SparseMemory::new();
    mem.map(IN, IN_SIZE);
    mem.map(OUT, OUT_SIZE);
    use hcontainer_ir::interp::Memory;
    mem.write(IN, &inputs).expect("inputs");
    let mut state = hcontainer_abi::GuestState::new();
    state.rip = CODE;
    let (stop, _) = run_program(&prog, &mut state, &mut mem, &mut StepClock::default(), 1 << 20).expect("interpreter runs");
    assert!(matches!(stop, Stop::Syscall { .. }), "{stop:?}");
    let mut want = vec![0u8; 16 * cases.len()];
    mem.read(OUT, &mut want).expect("outputs");

    // A few results checked against x86 facts directly, so the oracle itself is held honest.
    let at = |name: &str| {
        let i = cases.iter().position(|c| c == name).unwrap_or_else(|| panic!("no case {name}"));
        u128::from_le_bytes(want[16 * i..16 * i + 16].try_into().expect("16 bytes"))
    };
    assert_eq!(at(&format!("FloatToSIntTrunc F64->I64 {:#x}", f64::NAN.to_bits())), 1u128 << 63);
    assert_eq!(at(&format!("FloatToSIntRound F64->I32 {:#x}", 2.5f64.to_bits())), 2);
    assert_eq!(at(&format!("FloatToSIntTrunc F64->I32 {:#x}", 2147483648.0f64.to_bits())), 0x8000_0000);
    assert_eq!(at("Shl I32 0x1 by 33"), 2);
    assert_eq!(at("cpuid 0 Rbx"), u128::from(u32::from_le_bytes(*b"Genu")));

    for isa in [HostIsa::X86_64, HostIsa::Aarch64, HostIsa::Riscv64] {
        let n_blocks: usize = prog.functions.iter().map(|f| f.blocks.len()).sum();
        let code = vec![0xccu8; n_blocks * 0x10];
        let out = common::build_and_run(isa, &prog, &[
            (CODE, code.len() as u64, &code[..], 5),
            (IN, IN_SIZE, &inputs[..], 4),
            (OUT, OUT_SIZE, &[][..], 6),
        ]);
        assert_eq!(out.status.code(), Some(0), "{isa:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len(), want.len(), "{isa:?}: output length");
        let mut bad = Vec::new();
        for (i, name) in cases.iter().enumerate() {
            let (g, w) = (&out.stdout[16 * i..16 * i + 16], &want[16 * i..16 * i + 16]);
            if g != w {
                bad.push(format!("{name}: got {:x?} want {:x?}", u128::from_le_bytes(g.try_into().expect("16")), u128::from_le_bytes(w.try_into().expect("16"))));
            }
        }
        assert!(bad.is_empty(), "{isa:?}: {} of {} cases differ:\n{}", bad.len(), cases.len(), bad[..bad.len().min(40)].join("\n"));
    }
}
