//! `lock`-prefixed instructions and `xchg` with a memory operand. Each becomes one atomic
//! operation on guest memory ([`Op::AtomicRmw`] or [`Op::AtomicCas`]), so that the threads of
//! a translated program update shared words as they do on x86 hardware (a plain load and
//! store would lose concurrent updates of a lock or a counter); registers and flags are set
//! as by the plain forms in `int.rs`.

use super::builder::{ity, Lifter};
use super::int::{pair, Unsupported, R};
use super::Step;
use hcontainer_abi::flags::{bits, CcOp};
use hcontainer_ir::{BinOp, IntCC, Op, RmwOp, Type, Value};
use iced_x86::{Instruction, Mnemonic, OpKind};

const RAX: u8 = 0;
const RDX: u8 = 2;
const RCX: u8 = 1;
const RBX: u8 = 3;

/// Whether `ins` accesses memory atomically: a `lock` prefix, or `xchg` with memory (locked
/// without the prefix).
pub(crate) fn is_atomic(ins: &Instruction) -> bool {
    ins.has_lock_prefix()
        || (ins.mnemonic() == Mnemonic::Xchg
            && (ins.op_kind(0) == OpKind::Memory || ins.op_kind(1) == OpKind::Memory))
}

fn unsup(why: String) -> R {
    Err(Unsupported(why))
}

fn rmw(l: &mut Lifter, op: RmwOp, addr: Value, val: Value) -> Value {
    l.push(Op::AtomicRmw { op, addr, val })
}

fn cas(l: &mut Lifter, addr: Value, expected: Value, new: Value) -> Value {
    l.push(Op::AtomicCas { addr, expected, new })
}

/// Lift an instruction for which [`is_atomic`] holds.
pub(crate) fn lift_atomic(l: &mut Lifter, ins: &Instruction) -> R {
    use Mnemonic as M;
    let m = ins.mnemonic();
    let mem0 = ins.op_kind(0) == OpKind::Memory;
    if !mem0 && !(m == M::Xchg && ins.op_kind(1) == OpKind::Memory) {
        // The CPU raises #UD for `lock` on a register destination.
        return unsup(format!("lock prefix on {m:?} without a memory destination"));
    }
    match m {
        M::Add | M::Sub | M::And | M::Or | M::Xor => {
            let ty = ity(l.op_size(ins, 0));
            let addr = l.mem_addr(ins);
            let b = l.read_op(ins, 1, ty);
            let (op, bin) = match m {
                M::Add => (RmwOp::Add, BinOp::Add),
                M::Sub => (RmwOp::Sub, BinOp::Sub),
                M::And => (RmwOp::And, BinOp::And),
                M::Or => (RmwOp::Or, BinOp::Or),
                _ => (RmwOp::Xor, BinOp::Xor),
            };
            let old = rmw(l, op, addr, b);
            let d = l.bin(bin, old, b);
            match m {
                M::Add => l.set_flags(CcOp::Add, d, old, b),
                M::Sub => l.set_flags(CcOp::Sub, d, old, b),
                _ => l.set_flags(CcOp::Logic, d, d, d),
            }
        }
        M::Inc | M::Dec => {
            let ty = ity(l.op_size(ins, 0));
            let cf = if l.live_after & bits::CF != 0 { l.carry() } else { l.c8(0) };
            let cf = l.zext(cf, ty);
            let addr = l.mem_addr(ins);
            let one = l.cst(ty, 1);
            let (op, bin, cc) = if m == M::Inc {
                (RmwOp::Add, BinOp::Add, CcOp::Inc)
            } else {
                (RmwOp::Sub, BinOp::Sub, CcOp::Dec)
            };
            let old = rmw(l, op, addr, one);
            let d = l.bin(bin, old, one);
            l.set_flags(cc, d, old, cf);
        }
        M::Not => {
            let ty = ity(l.op_size(ins, 0));
            let addr = l.mem_addr(ins);
            let ones = l.cst(ty, u128::MAX >> (128 - ty.bits()));
            rmw(l, RmwOp::Xor, addr, ones);
        }
        M::Xadd => {
            let ty = ity(l.op_size(ins, 0));
            let addr = l.mem_addr(ins);
            let b = l.read_op(ins, 1, ty);
            let old = rmw(l, RmwOp::Add, addr, b);
            let d = l.add(old, b);
            l.write_op(ins, 1, old);
            l.set_flags(CcOp::Add, d, old, b);
        }
        M::Xchg => {
            let reg = if mem0 { 1 } else { 0 };
            let ty = ity(l.op_size(ins, reg));
            let v = l.read_op(ins, reg, ty);
            // The one memory operand of the instruction.
            let addr = l.mem_addr(ins);
            let old = rmw(l, RmwOp::Xchg, addr, v);
            l.write_op(ins, reg, old);
        }
        M::Cmpxchg => {
            let sz = l.op_size(ins, 0);
            let ty = ity(sz);
            let addr = l.mem_addr(ins);
            let acc = l.gpr64(RAX);
            let acc_t = l.zext(acc, ty);
            let src = l.read_op(ins, 1, ty);
            let old = cas(l, addr, acc_t, src);
            let eq = l.icmp(IntCC::Eq, acc_t, old);
            let d = l.sub(acc_t, old);
            // The accumulator is written only when the comparison fails.
            let acc_new = match sz {
                8 => old,
                4 => l.zext(old, Type::I64),
                _ => {
                    let mask = if sz == 1 { 0xffu128 } else { 0xffff };
                    let kept = l.bin_imm(BinOp::And, acc, !mask);
                    let o = l.zext(old, Type::I64);
                    l.or(kept, o)
                }
            };
            let acc_v = l.select(eq, acc, acc_new);
            l.set_gpr64(RAX, acc_v);
            l.set_flags(CcOp::Sub, d, acc_t, old);
        }
        M::Cmpxchg8b | M::Cmpxchg16b => {
            let (h, ty) = if m == M::Cmpxchg16b { (Type::I128, Type::I64) } else { (Type::I64, Type::I32) };
            let addr = l.mem_addr(ins);
            let rax = l.gpr64(RAX);
            let rdx = l.gpr64(RDX);
            let rbx = l.gpr64(RBX);
            let rcx = l.gpr64(RCX);
            let expected = pair(l, rdx, rax, ty, h);
            let new = pair(l, rcx, rbx, ty, h);
            let old = cas(l, addr, expected, new);
            let eq = l.icmp(IntCC::Eq, old, expected);
            let lo = l.zext(old, ty);
            let hs = l.bin_imm(BinOp::LShr, old, u128::from(ty.bits()));
            let hi = l.zext(hs, ty);
            let lo64 = l.zext(lo, Type::I64);
            let hi64 = l.zext(hi, Type::I64);
            let nrax = l.select(eq, rax, lo64);
            let nrdx = l.select(eq, rdx, hi64);
            l.set_gpr64(RAX, nrax);
            l.set_gpr64(RDX, nrdx);
            let flags = l.old_eflags_except(bits::ZF);
            let kept = l.bin_imm(BinOp::And, flags, u128::from(!bits::ZF));
            let z = l.pack_flags(&[(Some(eq), bits::ZF)]);
            let f = l.or(kept, z);
            l.set_eflags(f);
        }
        M::Bts | M::Btr | M::Btc => {
            let ty = ity(l.op_size(ins, 0));
            let w = ty.bits();
            let base = l.mem_addr(ins);
            let (bit, addr) = if ins.op_kind(1) == OpKind::Register {
                // A register bit offset addresses memory beyond the operand (signed).
                let b = l.read_op(ins, 1, ty);
                let bit = l.bin_imm(BinOp::And, b, u128::from(w - 1));
                let b64 = l.sext(b, Type::I64);
                let q = l.bin_imm(BinOp::AShr, b64, u128::from(w.trailing_zeros()));
                let adj = l.bin_imm(BinOp::Shl, q, u128::from((w / 8).trailing_zeros()));
                (bit, l.add(base, adj))
            } else {
                let n = (ins.immediate(1) as u32) & (w - 1);
                (l.cst(ty, u128::from(n)), base)
            };
            let one = l.cst(ty, 1);
            let mask = l.bin(BinOp::Shl, one, bit);
            let old = match m {
                M::Bts => rmw(l, RmwOp::Or, addr, mask),
                M::Btr => {
                    let keep = l.un(hcontainer_ir::UnOp::Not, mask);
                    rmw(l, RmwOp::And, addr, keep)
                }
                _ => rmw(l, RmwOp::Xor, addr, mask),
            };
            let sh = l.bin(BinOp::LShr, old, bit);
            let lo = l.bin_imm(BinOp::And, sh, 1);
            let cf = l.icmp_imm(IntCC::Ne, lo, 0);
            let flags = l.old_eflags_except(bits::CF);
            let kept = l.bin_imm(BinOp::And, flags, u128::from(!bits::CF));
            let c = l.zext(cf, Type::I64);
            let f = l.or(kept, c);
            l.set_eflags(f);
        }
        // Compilers and libcs do not emit these with `lock`; each would need a
        // compare-and-swap loop.
        _ => return unsup(format!("lock-prefixed {m:?} not implemented")),
    }
    Ok(Step::Continue)
}
