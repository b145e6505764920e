//! SSE/SSE2 instructions (legacy encodings only; AVX forms are not handled here).
//!
//! Scalar float arithmetic, conversions, moves and bitwise operations are lifted inline on
//! the `I128` register value, and so are the common packed operations (lane by lane, see
//! [`lanes`]); the remaining packed operations (saturating arithmetic, multiplies
//! other than `pmuludq`, shifts by a register count) call the `Helper::Sse` helper
//! (`hcontainer_semantics::sse`) with the source operand's value.

use super::builder::{xmm_loc, xmm_num, Lifter, MXCSR};
use super::lanes;
use super::int::Unsupported;
use super::Step;
use hcontainer_abi::flags::bits;
use hcontainer_ir::{BinOp, ConvOp, FloatCC, Loc, Op, Type, UnOp, Value};
use hcontainer_semantics::sse::SseOp;
use hcontainer_semantics::Helper;
use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind, Register};

type R = Result<Step, Unsupported>;

const LO64: u128 = u64::MAX as u128;
const LO32: u128 = u32::MAX as u128;

fn is_xmm_op(ins: &Instruction, i: u32) -> bool {
    ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_xmm()
}

fn dst_xmm(ins: &Instruction) -> Result<u8, Unsupported> {
    if is_xmm_op(ins, 0) {
        Ok(xmm_num(ins.op_register(0)))
    } else {
        Err(Unsupported(String::from("unexpected operand form")))
    }
}

/// Source operand `i` as an `I128` (memory operands load their own size, zero-extended).
fn src128(l: &mut Lifter, ins: &Instruction, i: u32) -> Value {
    match ins.op_kind(i) {
        OpKind::Register if ins.op_register(i).is_xmm() => l.xmm(xmm_num(ins.op_register(i))),
        OpKind::Register => {
            let v = l.read_reg(ins.op_register(i));
            l.zext(v, Type::I128)
        }
        OpKind::Memory => {
            let sz = ins.memory_size().size() as u32;
            let ty = Type::int_of_bytes(sz).unwrap_or(Type::I128);
            let a = l.mem_addr(ins);
            let v = l.load(ty, a);
            l.zext(v, Type::I128)
        }
        _ => {
            let imm = ins.immediate(i);
            l.cst(Type::I128, u128::from(imm))
        }
    }
}

/// Scalar source operand `i` as a float of type `fty` (low lane of an xmm, or memory).
fn src_float(l: &mut Lifter, ins: &Instruction, i: u32, fty: Type) -> Value {
    let ity = if fty == Type::F64 { Type::I64 } else { Type::I32 };
    let v = match ins.op_kind(i) {
        OpKind::Memory => {
            let a = l.mem_addr(ins);
            l.load(ity, a)
        }
        _ => {
            let x = src128(l, ins, i);
            l.zext(x, ity)
        }
    };
    l.bitcast(v, fty)
}

/// `old` with its low `fty`-sized lane replaced by float `f`.
fn merge_low(l: &mut Lifter, old: Value, f: Value) -> Value {
    let fty = l.ty(f);
    let (ity, m) = if fty == Type::F64 || fty == Type::I64 { (Type::I64, LO64) } else { (Type::I32, LO32) };
    let bitsv = l.bitcast(f, ity);
    let w = l.zext(bitsv, Type::I128);
    if upper_zero(l, old, ity.bits()) {
        // Nothing to keep above the lane (a value loaded by movsd/movss, or zeroed).
        return w;
    }
    let kept = l.bin_imm(BinOp::And, old, !m);
    let v = l.or(kept, w);
    if ity == Type::I64 {
        match l.split.get(&old).map(|h| h[1]) {
            Some(hi) => {
                l.split.insert(v, [bitsv, hi]);
            }
            None => {
                l.low.insert(v, bitsv);
            }
        }
    }
    v
}

/// Whether the bits of the `I128` value `v` from bit `from` up are known to be zero.
fn upper_zero(l: &Lifter, v: Value, from: u32) -> bool {
    match l.def(v) {
        Some(Op::Conv(ConvOp::Zext, _, x)) => l.ty(*x).bits() <= from,
        Some(Op::Const { bits, .. }) => bits >> from == 0,
        _ => false,
    }
}

fn helper(l: &mut Lifter, op: SseOp, dst: u8, imm: u32, src: Value) -> Value {
    let a0 = l.c64(op as u64 | (u64::from(dst) << 16) | (u64::from(imm & 0xff) << 24));
    let lo = l.zext(src, Type::I64);
    let h = l.bin_imm(BinOp::LShr, src, 64);
    let hi = l.zext(h, Type::I64);
    // Ops that return a value leave the registers alone; the others write xmm `dst`.
    let writes: &[Loc] = if returns_value(op) { &[] } else { &[xmm_loc(dst)] };
    l.call_helper(Helper::Sse as u32, vec![a0, lo, hi], writes)
}

fn returns_value(op: SseOp) -> bool {
    matches!(op, SseOp::Pmovmskb | SseOp::Movmskps | SseOp::Movmskpd | SseOp::Pextrw)
}

/// Packed operation through the helper: `dst = op(dst, src)`.
fn packed(l: &mut Lifter, ins: &Instruction, op: SseOp) -> R {
    let d = dst_xmm(ins)?;
    let imm = if ins.op_count() > 2 { ins.immediate(2) as u32 } else { 0 };
    let s = src128(l, ins, 1);
    helper(l, op, d, imm, s);
    Ok(Step::Continue)
}

/// Packed shift by an xmm/memory count (through the helper) or by an immediate (inline).
fn packed_shift(l: &mut Lifter, ins: &Instruction, reg_op: SseOp, w: u32, kind: BinOp) -> R {
    let d = dst_xmm(ins)?;
    if matches!(ins.op_kind(1), OpKind::Register | OpKind::Memory) {
        let s = src128(l, ins, 1);
        helper(l, reg_op, d, 0, s);
    } else {
        let n = (ins.immediate(1) & 0xff) as u32;
        let old = l.xmm(d);
        let v = lanes::per_half(l, old, old, |l, x, _| match kind {
            BinOp::Shl => lanes::shl(l, x, w, n),
            BinOp::LShr => lanes::lshr(l, x, w, n),
            _ => lanes::ashr(l, x, w, n),
        });
        l.set_xmm(d, v);
    }
    Ok(Step::Continue)
}

/// Packed operations lifted inline (see [`lanes`]); `None` for the forms left to the helper.
fn inline_packed(l: &mut Lifter, ins: &Instruction) -> Option<R> {
    use lanes::Cvt;
    use Mnemonic as M;
    let m = ins.mnemonic();
    // Integer lane operations on the halves: (lane width, operation).
    type Int = fn(&mut Lifter, Value, Value, u32) -> Value;
    let int: Option<(u32, Int)> = match m {
        M::Paddb => Some((8, lanes::add)),
        M::Paddw => Some((16, lanes::add)),
        M::Paddd => Some((32, lanes::add)),
        M::Paddq => Some((64, lanes::add)),
        M::Psubb => Some((8, lanes::sub)),
        M::Psubw => Some((16, lanes::sub)),
        M::Psubd => Some((32, lanes::sub)),
        M::Psubq => Some((64, lanes::sub)),
        M::Pcmpeqb => Some((8, lanes::cmp_eq)),
        M::Pcmpeqw => Some((16, lanes::cmp_eq)),
        M::Pcmpeqd => Some((32, lanes::cmp_eq)),
        M::Pcmpgtb => Some((8, lanes::cmp_gt_signed)),
        M::Pcmpgtw => Some((16, lanes::cmp_gt_signed)),
        M::Pcmpgtd => Some((32, lanes::cmp_gt_signed)),
        M::Pminub => Some((8, |l, a, b, w| lanes::min_max(l, a, b, w, false, false))),
        M::Pmaxub => Some((8, |l, a, b, w| lanes::min_max(l, a, b, w, false, true))),
        M::Pminsw => Some((16, |l, a, b, w| lanes::min_max(l, a, b, w, true, false))),
        M::Pmaxsw => Some((16, |l, a, b, w| lanes::min_max(l, a, b, w, true, true))),
        M::Pavgb => Some((8, lanes::avg)),
        M::Pavgw => Some((16, lanes::avg)),
        M::Pmuludq => Some((64, |l, a, b, _| lanes::mul_u32(l, a, b))),
        _ => None,
    };
    let fty = |m: M| if matches!(m, M::Addpd | M::Subpd | M::Mulpd | M::Divpd | M::Minpd | M::Maxpd | M::Cmppd) { Type::F64 } else { Type::F32 };
    let fop = match m {
        M::Addps | M::Addpd => Some(BinOp::FAdd),
        M::Subps | M::Subpd => Some(BinOp::FSub),
        M::Mulps | M::Mulpd => Some(BinOp::FMul),
        M::Divps | M::Divpd => Some(BinOp::FDiv),
        M::Minps | M::Minpd => Some(BinOp::FMinX86),
        M::Maxps | M::Maxpd => Some(BinOp::FMaxX86),
        _ => None,
    };
    let cvt = match m {
        M::Cvtdq2ps => Some(Cvt::Dq2Ps),
        M::Cvtdq2pd => Some(Cvt::Dq2Pd),
        M::Cvtps2pd => Some(Cvt::Ps2Pd),
        M::Cvtpd2ps => Some(Cvt::Pd2Ps),
        M::Cvttps2dq => Some(Cvt::Ps2Dq(true)),
        M::Cvtps2dq => Some(Cvt::Ps2Dq(false)),
        M::Cvttpd2dq => Some(Cvt::Pd2Dq(true)),
        M::Cvtpd2dq => Some(Cvt::Pd2Dq(false)),
        _ => None,
    };
    let unpack = match m {
        M::Punpcklbw => Some((8, false)),
        M::Punpcklwd => Some((16, false)),
        M::Punpckldq | M::Unpcklps => Some((32, false)),
        M::Punpckhbw => Some((8, true)),
        M::Punpckhwd => Some((16, true)),
        M::Punpckhdq | M::Unpckhps => Some((32, true)),
        _ => None,
    };
    let pack = match m {
        M::Packsswb => Some((16, true)),
        M::Packuswb => Some((16, false)),
        M::Packssdw => Some((32, true)),
        _ => None,
    };
    let known = int.is_some()
        || pack.is_some()
        || fop.is_some()
        || cvt.is_some()
        || unpack.is_some()
        || matches!(m, M::Cmpps | M::Cmppd | M::Pshufd | M::Pshuflw | M::Pshufhw | M::Shufps | M::Shufpd);
    if !known {
        return None;
    }
    let d = match dst_xmm(ins) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let imm = if ins.op_count() > 2 { (ins.immediate(2) & 0xff) as u32 } else { 0 };
    let s = src128(l, ins, 1);
    let v = if let Some((w, f)) = int {
        let a = l.xmm(d);
        lanes::per_half(l, a, s, |l, x, y| f(l, x, y, w))
    } else if let Some(op) = fop {
        let a = l.xmm(d);
        lanes::float_op(l, a, s, fty(m), |l, x, y| l.bin(op, x, y))
    } else if let Some((w, signed)) = pack {
        let a = l.xmm(d);
        lanes::pack(l, a, s, w, signed)
    } else if let Some(c) = cvt {
        lanes::convert(l, s, c)
    } else if let Some((w, high_half)) = unpack {
        let a = l.xmm(d);
        lanes::unpack(l, a, s, w, high_half)
    } else {
        match m {
            M::Cmpps | M::Cmppd => {
                let a = l.xmm(d);
                lanes::float_cmp(l, a, s, fty(m), imm)
            }
            M::Pshufd => lanes::shuffle32(l, s, s, imm),
            M::Shufps => {
                let a = l.xmm(d);
                lanes::shuffle32(l, a, s, imm)
            }
            M::Shufpd => {
                let a = l.xmm(d);
                let [alo, ahi] = lanes::halves(l, a);
                let [slo, shi] = lanes::halves(l, s);
                let lo = if imm & 1 == 0 { alo } else { ahi };
                let hi = if imm & 2 == 0 { slo } else { shi };
                lanes::join(l, lo, hi)
            }
            _ => lanes::shuffle16(l, s, imm, m == M::Pshufhw),
        }
    };
    l.set_xmm(d, v);
    Some(Ok(Step::Continue))
}

/// Lift an SSE instruction, or `None` if `ins` is not one this module handles.
pub(crate) fn lift_sse(l: &mut Lifter, ins: &Instruction) -> Option<R> {
    if ins.encoding() != EncodingKind::Legacy {
        return None;
    }
    let has_xmm = (0..ins.op_count()).any(|i| is_xmm_op(ins, i));
    let has_mm = (0..ins.op_count())
        .any(|i| ins.op_kind(i) == OpKind::Register && (Register::MM0..=Register::MM7).contains(&ins.op_register(i)));
    let m = ins.mnemonic();
    if has_mm {
        return Some(Err(Unsupported(String::from("MMX instruction not supported"))));
    }
    if matches!(m, Mnemonic::Stmxcsr | Mnemonic::Ldmxcsr) {
        let a = l.mem_addr(ins);
        if m == Mnemonic::Stmxcsr {
            let v = l.get(MXCSR);
            l.store(a, v);
        } else {
            let v = l.load(Type::I32, a);
            l.set(MXCSR, v);
        }
        return Some(Ok(Step::Continue));
    }
    if m == Mnemonic::Movnti {
        let v = l.read_op(ins, 1, super::builder::ity(l.op_size(ins, 1)));
        l.write_op(ins, 0, v);
        return Some(Ok(Step::Continue));
    }
    // Scalar conversions to an integer may have a memory source and no xmm operand.
    let cvt_to_int = matches!(m, Mnemonic::Cvttsd2si | Mnemonic::Cvtsd2si | Mnemonic::Cvttss2si | Mnemonic::Cvtss2si);
    if !has_xmm && !cvt_to_int {
        return None;
    }
    Some(lift_xmm(l, ins))
}

fn lift_xmm(l: &mut Lifter, ins: &Instruction) -> R {
    use Mnemonic as M;
    use SseOp as S;
    let m = ins.mnemonic();
    match m {
        M::Movd | M::Movq => {
            if is_xmm_op(ins, 0) {
                let d = dst_xmm(ins)?;
                let sz = if is_xmm_op(ins, 1) { 8 } else { l.op_size(ins, 1) };
                let s = src128(l, ins, 1);
                let m = if sz == 4 { LO32 } else { LO64 };
                let v = l.bin_imm(BinOp::And, s, m);
                l.set_xmm(d, v);
            } else {
                let sz = l.op_size(ins, 0);
                let s = src128(l, ins, 1);
                let v = l.zext(s, super::builder::ity(sz));
                l.write_op(ins, 0, v);
            }
        }
        M::Movaps | M::Movups | M::Movapd | M::Movupd | M::Movdqa | M::Movdqu | M::Movntdq | M::Movntps
        | M::Movntpd | M::Lddqu => {
            let s = src128(l, ins, 1);
            if is_xmm_op(ins, 0) {
                l.set_xmm(xmm_num(ins.op_register(0)), s);
            } else {
                let a = l.mem_addr(ins);
                l.store(a, s);
            }
        }
        M::Movss | M::Movsd => {
            let (ity, mask) = if m == M::Movsd { (Type::I64, LO64) } else { (Type::I32, LO32) };
            if is_xmm_op(ins, 0) {
                let d = dst_xmm(ins)?;
                if is_xmm_op(ins, 1) {
                    let s = src128(l, ins, 1);
                    let old = l.xmm(d);
                    let lo = l.bin_imm(BinOp::And, s, mask);
                    let hi = l.bin_imm(BinOp::And, old, !mask);
                    let v = l.or(hi, lo);
                    l.set_xmm(d, v);
                } else {
                    let a = l.mem_addr(ins);
                    let v = l.load(ity, a);
                    let v = l.zext(v, Type::I128);
                    l.set_xmm(d, v);
                }
            } else {
                let s = src128(l, ins, 1);
                let v = l.zext(s, ity);
                let a = l.mem_addr(ins);
                l.store(a, v);
            }
        }
        M::Movlps | M::Movlpd | M::Movhps | M::Movhpd | M::Movhlps | M::Movlhps => {
            let high_dst = matches!(m, M::Movhps | M::Movhpd | M::Movlhps);
            if is_xmm_op(ins, 0) {
                let d = dst_xmm(ins)?;
                let s = src128(l, ins, 1);
                // The 64 bits taken from the source.
                let part = if m == M::Movhlps { l.bin_imm(BinOp::LShr, s, 64) } else { s };
                let part = l.bin_imm(BinOp::And, part, LO64);
                let old = l.xmm(d);
                let v = if high_dst {
                    let kept = l.bin_imm(BinOp::And, old, LO64);
                    let p = l.bin_imm(BinOp::Shl, part, 64);
                    l.or(kept, p)
                } else {
                    let kept = l.bin_imm(BinOp::And, old, !LO64);
                    l.or(kept, part)
                };
                l.set_xmm(d, v);
            } else {
                let s = src128(l, ins, 1);
                let s = if high_dst { l.bin_imm(BinOp::LShr, s, 64) } else { s };
                let v = l.zext(s, Type::I64);
                let a = l.mem_addr(ins);
                l.store(a, v);
            }
        }
        M::Addsd | M::Subsd | M::Mulsd | M::Divsd | M::Minsd | M::Maxsd | M::Addss | M::Subss | M::Mulss
        | M::Divss | M::Minss | M::Maxss => {
            let fty = if matches!(m, M::Addss | M::Subss | M::Mulss | M::Divss | M::Minss | M::Maxss) {
                Type::F32
            } else {
                Type::F64
            };
            let op = match m {
                M::Addsd | M::Addss => BinOp::FAdd,
                M::Subsd | M::Subss => BinOp::FSub,
                M::Mulsd | M::Mulss => BinOp::FMul,
                M::Divsd | M::Divss => BinOp::FDiv,
                M::Minsd | M::Minss => BinOp::FMinX86,
                _ => BinOp::FMaxX86,
            };
            let d = dst_xmm(ins)?;
            let old = l.xmm(d);
            let a = l.zext(old, if fty == Type::F64 { Type::I64 } else { Type::I32 });
            let a = l.bitcast(a, fty);
            let b = src_float(l, ins, 1, fty);
            let r = l.bin(op, a, b);
            let v = merge_low(l, old, r);
            l.set_xmm(d, v);
        }
        M::Sqrtsd | M::Sqrtss => {
            let fty = if m == M::Sqrtsd { Type::F64 } else { Type::F32 };
            let d = dst_xmm(ins)?;
            let b = src_float(l, ins, 1, fty);
            let r = l.un(UnOp::FSqrt, b);
            let old = l.xmm(d);
            let v = merge_low(l, old, r);
            l.set_xmm(d, v);
        }
        M::Sqrtpd | M::Sqrtps => {
            let d = dst_xmm(ins)?;
            let s = src128(l, ins, 1);
            let fty = if m == M::Sqrtpd { Type::F64 } else { Type::F32 };
            let v = lanes::float_op(l, s, s, fty, |l, x, _| l.un(UnOp::FSqrt, x));
            l.set_xmm(d, v);
        }
        M::Comisd | M::Ucomisd | M::Comiss | M::Ucomiss => {
            let fty = if matches!(m, M::Comisd | M::Ucomisd) { Type::F64 } else { Type::F32 };
            let a = src_float(l, ins, 0, fty);
            let b = src_float(l, ins, 1, fty);
            let uno = l.push(Op::Fcmp(FloatCC::Uno, a, b));
            let lt = l.push(Op::Fcmp(FloatCC::Lt, a, b));
            let eq = l.push(Op::Fcmp(FloatCC::Eq, a, b));
            let cf = l.or(uno, lt);
            let zf = l.or(uno, eq);
            let f = l.pack_flags(&[(Some(cf), bits::CF), (Some(zf), bits::ZF), (Some(uno), bits::PF)]);
            l.set_eflags(f);
            if let Some(fl) = l.flags {
                l.fcmp = Some((fl.dst, a, b));
            }
        }
        M::Cvtsi2sd | M::Cvtsi2ss => {
            let fty = if m == M::Cvtsi2sd { Type::F64 } else { Type::F32 };
            let d = dst_xmm(ins)?;
            let sz = l.op_size(ins, 1);
            let v = l.read_op(ins, 1, super::builder::ity(sz));
            let f = l.push(Op::Conv(ConvOp::SIntToFloat, fty, v));
            let old = l.xmm(d);
            let v = merge_low(l, old, f);
            l.set_xmm(d, v);
        }
        M::Cvttsd2si | M::Cvtsd2si | M::Cvttss2si | M::Cvtss2si => {
            let fty = if matches!(m, M::Cvttsd2si | M::Cvtsd2si) { Type::F64 } else { Type::F32 };
            let conv = if matches!(m, M::Cvttsd2si | M::Cvttss2si) {
                ConvOp::FloatToSIntTrunc
            } else {
                ConvOp::FloatToSIntRound
            };
            let sz = l.op_size(ins, 0);
            let f = src_float(l, ins, 1, fty);
            let v = l.push(Op::Conv(conv, super::builder::ity(sz), f));
            l.write_op(ins, 0, v);
        }
        M::Cvtss2sd | M::Cvtsd2ss => {
            let (from, to, conv) = if m == M::Cvtss2sd {
                (Type::F32, Type::F64, ConvOp::FPromote)
            } else {
                (Type::F64, Type::F32, ConvOp::FDemote)
            };
            let d = dst_xmm(ins)?;
            let f = src_float(l, ins, 1, from);
            let r = l.push(Op::Conv(conv, to, f));
            let old = l.xmm(d);
            let v = merge_low(l, old, r);
            l.set_xmm(d, v);
        }
        M::Andps | M::Andpd | M::Pand | M::Orps | M::Orpd | M::Por | M::Xorps | M::Xorpd | M::Pxor
        | M::Andnps | M::Andnpd | M::Pandn => {
            let d = dst_xmm(ins)?;
            let same = is_xmm_op(ins, 1) && ins.op_register(1) == ins.op_register(0);
            let v = if same && matches!(m, M::Xorps | M::Xorpd | M::Pxor) {
                l.cst(Type::I128, 0)
            } else {
                let a = l.xmm(d);
                let b = src128(l, ins, 1);
                let op = |l: &mut Lifter, a: Value, b: Value| match m {
                    M::Andps | M::Andpd | M::Pand => l.and(a, b),
                    M::Orps | M::Orpd | M::Por => l.or(a, b),
                    M::Xorps | M::Xorpd | M::Pxor => l.xor(a, b),
                    _ => {
                        let na = l.un(UnOp::Not, a);
                        l.and(na, b)
                    }
                };
                if lanes::cheap_halves(l, a) && lanes::cheap_halves(l, b) {
                    // Keep working on the halves the operands were built from.
                    lanes::per_half(l, a, b, op)
                } else {
                    op(l, a, b)
                }
            };
            l.set_xmm(d, v);
        }
        M::Cmpsd | M::Cmpss => {
            let fty = if m == M::Cmpsd { Type::F64 } else { Type::F32 };
            let d = dst_xmm(ins)?;
            let old = l.xmm(d);
            let ity = if fty == Type::F64 { Type::I64 } else { Type::I32 };
            let a = l.zext(old, ity);
            let a = l.bitcast(a, fty);
            let b = src_float(l, ins, 1, fty);
            let pred = ins.immediate(2) & 7;
            let (cc, swap) = match pred {
                0 => (FloatCC::Eq, false),
                1 => (FloatCC::Lt, false),
                2 => (FloatCC::Le, false),
                3 => (FloatCC::Uno, false),
                4 => (FloatCC::Une, false),
                5 => (FloatCC::Unlt, false),
                6 => (FloatCC::Unle, false),
                _ => (FloatCC::Ord, false),
            };
            let c = if swap { l.push(Op::Fcmp(cc, b, a)) } else { l.push(Op::Fcmp(cc, a, b)) };
            let ones = l.cst(ity, u128::MAX);
            let zero = l.cst(ity, 0);
            let mask = l.select(c, ones, zero);
            let v = merge_low(l, old, mask);
            l.set_xmm(d, v);
        }
        M::Pslldq | M::Psrldq => {
            let d = dst_xmm(ins)?;
            let n = ins.immediate(1) & 0xff;
            let v = if n > 15 {
                l.cst(Type::I128, 0)
            } else {
                let old = l.xmm(d);
                let op = if m == M::Pslldq { BinOp::Shl } else { BinOp::LShr };
                l.bin_imm(op, old, u128::from(n * 8))
            };
            l.set_xmm(d, v);
        }
        M::Punpcklqdq | M::Unpcklpd | M::Punpckhqdq | M::Unpckhpd => {
            let d = dst_xmm(ins)?;
            let a = l.xmm(d);
            let b = src128(l, ins, 1);
            let v = lanes::unpack(l, a, b, 64, matches!(m, M::Punpckhqdq | M::Unpckhpd));
            l.set_xmm(d, v);
        }
        M::Pmovmskb | M::Movmskps | M::Movmskpd | M::Pextrw => {
            if !matches!(ins.op_kind(0), OpKind::Register) || !is_xmm_op(ins, 1) {
                return Err(Unsupported(String::from("unexpected operand form")));
            }
            let s = src128(l, ins, 1);
            let r = match m {
                M::Pmovmskb => lanes::movmsk8(l, s),
                M::Movmskps => lanes::movmsk_float(l, s, 32),
                M::Movmskpd => lanes::movmsk_float(l, s, 64),
                _ => {
                    let k = (ins.immediate(2) & 7) as u32;
                    let [lo, hi] = lanes::halves(l, s);
                    let h = if k < 4 { lo } else { hi };
                    let w = l.bin_imm(BinOp::LShr, h, u128::from(16 * (k & 3)));
                    l.bin_imm(BinOp::And, w, 0xffff)
                }
            };
            let sz = l.op_size(ins, 0);
            let v = l.zext(r, super::builder::ity(sz));
            l.write_op(ins, 0, v);
        }
        M::Pinsrw => {
            let d = dst_xmm(ins)?;
            let v = match ins.op_kind(1) {
                OpKind::Memory => {
                    let a = l.mem_addr(ins);
                    l.load(Type::I16, a)
                }
                _ => {
                    let r = l.read_reg(ins.op_register(1));
                    l.zext(r, Type::I16)
                }
            };
            let k = (ins.immediate(2) & 7) as u32;
            let old = l.xmm(d);
            let w = l.zext(v, Type::I128);
            let w = l.bin_imm(BinOp::Shl, w, u128::from(16 * k));
            let kept = l.bin_imm(BinOp::And, old, !(0xffffu128 << (16 * k)));
            let v = l.or(kept, w);
            l.set_xmm(d, v);
        }
        M::Psllw => return packed_shift(l, ins, S::Psllw, 16, BinOp::Shl),
        M::Pslld => return packed_shift(l, ins, S::Pslld, 32, BinOp::Shl),
        M::Psllq => return packed_shift(l, ins, S::Psllq, 64, BinOp::Shl),
        M::Psrlw => return packed_shift(l, ins, S::Psrlw, 16, BinOp::LShr),
        M::Psrld => return packed_shift(l, ins, S::Psrld, 32, BinOp::LShr),
        M::Psrlq => return packed_shift(l, ins, S::Psrlq, 64, BinOp::LShr),
        M::Psraw => return packed_shift(l, ins, S::Psraw, 16, BinOp::AShr),
        M::Psrad => return packed_shift(l, ins, S::Psrad, 32, BinOp::AShr),
        _ => {
            if let Some(r) = inline_packed(l, ins) {
                return r;
            }
            let op = match m {
                M::Paddb => S::Paddb,
                M::Paddw => S::Paddw,
                M::Paddd => S::Paddd,
                M::Paddq => S::Paddq,
                M::Psubb => S::Psubb,
                M::Psubw => S::Psubw,
                M::Psubd => S::Psubd,
                M::Psubq => S::Psubq,
                M::Paddsb => S::Paddsb,
                M::Paddsw => S::Paddsw,
                M::Paddusb => S::Paddusb,
                M::Paddusw => S::Paddusw,
                M::Psubsb => S::Psubsb,
                M::Psubsw => S::Psubsw,
                M::Psubusb => S::Psubusb,
                M::Psubusw => S::Psubusw,
                M::Pcmpeqb => S::Pcmpeqb,
                M::Pcmpeqw => S::Pcmpeqw,
                M::Pcmpeqd => S::Pcmpeqd,
                M::Pcmpgtb => S::Pcmpgtb,
                M::Pcmpgtw => S::Pcmpgtw,
                M::Pcmpgtd => S::Pcmpgtd,
                M::Pminub => S::Pminub,
                M::Pmaxub => S::Pmaxub,
                M::Pminsw => S::Pminsw,
                M::Pmaxsw => S::Pmaxsw,
                M::Pavgb => S::Pavgb,
                M::Pavgw => S::Pavgw,
                M::Pmullw => S::Pmullw,
                M::Pmulhw => S::Pmulhw,
                M::Pmulhuw => S::Pmulhuw,
                M::Pmuludq => S::Pmuludq,
                M::Pmaddwd => S::Pmaddwd,
                M::Psadbw => S::Psadbw,
                M::Punpcklbw => S::Punpcklbw,
                M::Punpcklwd => S::Punpcklwd,
                M::Punpckldq => S::Punpckldq,
                M::Punpckhbw => S::Punpckhbw,
                M::Punpckhwd => S::Punpckhwd,
                M::Punpckhdq => S::Punpckhdq,
                M::Packsswb => S::Packsswb,
                M::Packssdw => S::Packssdw,
                M::Packuswb => S::Packuswb,
                M::Pshufd => S::Pshufd,
                M::Pshuflw => S::Pshuflw,
                M::Pshufhw => S::Pshufhw,
                M::Addps => S::Addps,
                M::Subps => S::Subps,
                M::Mulps => S::Mulps,
                M::Divps => S::Divps,
                M::Minps => S::Minps,
                M::Maxps => S::Maxps,
                M::Addpd => S::Addpd,
                M::Subpd => S::Subpd,
                M::Mulpd => S::Mulpd,
                M::Divpd => S::Divpd,
                M::Minpd => S::Minpd,
                M::Maxpd => S::Maxpd,
                M::Cmpps => S::Cmpps,
                M::Cmppd => S::Cmppd,
                M::Shufps => S::Shufps,
                M::Shufpd => S::Shufpd,
                M::Unpcklps => S::Unpcklps,
                M::Unpckhps => S::Unpckhps,
                M::Cvtdq2ps => S::Cvtdq2ps,
                M::Cvtdq2pd => S::Cvtdq2pd,
                M::Cvtps2pd => S::Cvtps2pd,
                M::Cvtpd2ps => S::Cvtpd2ps,
                M::Cvttps2dq => S::Cvttps2dq,
                M::Cvtps2dq => S::Cvtps2dq,
                M::Cvttpd2dq => S::Cvttpd2dq,
                M::Cvtpd2dq => S::Cvtpd2dq,
                _ => return Err(Unsupported(String::from("unsupported SSE instruction"))),
            };
            return packed(l, ins, op);
        }
    }
    Ok(Step::Continue)
}
