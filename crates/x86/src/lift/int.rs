//! Integer, control-flow, string and system instructions.

use super::builder::{ity, Lifter, RdxKnown, CC_DST, CC_OP, CC_SRC1, CC_SRC2, RFLAGS_OTHER};
use super::Step;
use hcontainer_abi::flags::{bits, CcOp};
use hcontainer_ir::{BinOp, Block, CallTarget, IntCC, Op, Terminator, Type, UnOp, Value};
use hcontainer_semantics::sse::SseOp;
use hcontainer_semantics::Helper;
use iced_x86::{ConditionCode, Instruction, Mnemonic, OpKind, Register};

/// Why an instruction was not lifted.
pub(crate) struct Unsupported(pub String);

pub(crate) type R = Result<Step, Unsupported>;

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RSP: u8 = 4;
const RBP: u8 = 5;
const RSI: u8 = 6;
const RDI: u8 = 7;

/// Condition number 0..=15 of a jcc/setcc/cmovcc.
pub(crate) fn cc_num(ins: &Instruction) -> u8 {
    let c = ins.condition_code();
    if c == ConditionCode::None {
        return 0;
    }
    (c as u8).wrapping_sub(1) & 15
}

fn is_imm(k: OpKind) -> bool {
    !matches!(
        k,
        OpKind::Register
            | OpKind::Memory
            | OpKind::NearBranch16
            | OpKind::NearBranch32
            | OpKind::NearBranch64
            | OpKind::FarBranch16
            | OpKind::FarBranch32
            | OpKind::MemorySegSI
            | OpKind::MemorySegESI
            | OpKind::MemorySegRSI
            | OpKind::MemorySegDI
            | OpKind::MemorySegEDI
            | OpKind::MemorySegRDI
            | OpKind::MemoryESDI
            | OpKind::MemoryESEDI
            | OpKind::MemoryESRDI
    )
}

/// Push a 64-bit value on the guest stack.
pub(crate) fn push64(l: &mut Lifter, v: Value) {
    let sp = l.gpr64(RSP);
    let nsp = l.bin_imm(BinOp::Sub, sp, 8);
    l.store(nsp, v);
    l.set_gpr64(RSP, nsp);
}

/// Pop a 64-bit value from the guest stack.
pub(crate) fn pop64(l: &mut Lifter) -> Value {
    let sp = l.gpr64(RSP);
    let v = l.load(Type::I64, sp);
    let nsp = l.bin_imm(BinOp::Add, sp, 8);
    l.set_gpr64(RSP, nsp);
    v
}

/// Lift one integer/control instruction. `Ok(Step::End)` when it set the terminator.
pub(crate) fn lift_int(l: &mut Lifter, ins: &Instruction) -> R {
    use Mnemonic as M;
    if super::atomic::is_atomic(ins) {
        return super::atomic::lift_atomic(l, ins);
    }
    let next = ins.next_ip();
    match ins.mnemonic() {
        M::Nop | M::Endbr64 | M::Endbr32 | M::Pause | M::Lfence | M::Sfence
        | M::Prefetchnta | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 | M::Prefetchw
        | M::Prefetch | M::Wait | M::Clflush | M::Clflushopt => {}
        // Orders earlier stores before later loads. `lfence` and `sfence` add nothing to
        // x86's ordering of ordinary loads and stores (they order non-temporal stores and
        // speculation).
        M::Mfence => {
            l.push(Op::Fence);
        }
        // A no-op while shadow stacks are disabled, which they always are for the guest.
        M::Rdsspd | M::Rdsspq => {}
        M::Mov => {
            if ins.op_kind(0) == OpKind::Register && !ins.op_register(0).is_gpr() {
                return unsup("mov to a non-general register");
            }
            if ins.op_kind(1) == OpKind::Register && !ins.op_register(1).is_gpr() {
                return unsup("mov from a non-general register");
            }
            let sz = l.op_size(ins, 0);
            let v = l.read_op(ins, 1, ity(sz));
            l.write_op(ins, 0, v);
            if ins.op_kind(0) == OpKind::Register
                && is_imm(ins.op_kind(1))
                && ins.immediate(1) == 0
                && ins.op_register(0).full_register() == Register::RDX
                && sz >= 4
            {
                l.rdx = RdxKnown::Zero;
            }
        }
        M::Movzx | M::Movsx | M::Movsxd => {
            let dsz = l.op_size(ins, 0);
            let ssz = l.op_size(ins, 1);
            let v = l.read_op(ins, 1, ity(ssz));
            let v = if ins.mnemonic() == M::Movzx { l.zext(v, ity(dsz)) } else { l.sext(v, ity(dsz)) };
            l.write_op(ins, 0, v);
        }
        M::Lea => {
            let a = lea_addr(l, ins);
            let sz = l.op_size(ins, 0);
            let v = l.zext(a, ity(sz));
            l.write_op(ins, 0, v);
        }
        M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
            alu(l, ins)?;
        }
        M::Inc | M::Dec => {
            let ty = ity(l.op_size(ins, 0));
            // The preserved CF is only computed when something may read it.
            let cf = if l.live_after & bits::CF != 0 { l.carry() } else { l.c8(0) };
            let cf = l.zext(cf, ty);
            let a = l.read_op(ins, 0, ty);
            let (d, op) = if ins.mnemonic() == M::Inc {
                (l.bin_imm(BinOp::Add, a, 1), CcOp::Inc)
            } else {
                (l.bin_imm(BinOp::Sub, a, 1), CcOp::Dec)
            };
            l.write_op(ins, 0, d);
            l.set_flags(op, d, a, cf);
        }
        M::Neg => {
            let ty = ity(l.op_size(ins, 0));
            let a = l.read_op(ins, 0, ty);
            let z = l.cst(ty, 0);
            let d = l.sub(z, a);
            l.write_op(ins, 0, d);
            l.set_flags(CcOp::Sub, d, z, a);
        }
        M::Not => {
            let ty = ity(l.op_size(ins, 0));
            let a = l.read_op(ins, 0, ty);
            let d = l.un(UnOp::Not, a);
            l.write_op(ins, 0, d);
        }
        M::Shl | M::Sal | M::Shr | M::Sar => shift(l, ins),
        M::Rol | M::Ror => rotate(l, ins),
        M::Rcl | M::Rcr => rotate_carry(l, ins),
        M::Shld | M::Shrd => double_shift(l, ins),
        M::Imul => imul(l, ins),
        M::Mul => mul1(l, ins, false),
        M::Div | M::Idiv => return div(l, ins),
        M::Bt | M::Bts | M::Btr | M::Btc => bit_test(l, ins),
        M::Bsf | M::Bsr => {
            let ty = ity(l.op_size(ins, 0));
            let s = l.read_op(ins, 1, ty);
            let zf = l.icmp_imm(IntCC::Eq, s, 0);
            let r = if ins.mnemonic() == M::Bsf {
                l.un(UnOp::Ctz, s)
            } else {
                let c = l.un(UnOp::Clz, s);
                let w = l.cst(ty, u128::from(ty.bits() - 1));
                l.sub(w, c)
            };
            // A zero source leaves the destination unchanged.
            match super::builder::gpr_index(ins.op_register(0)) {
                Some(i) if ty.bytes() >= 4 => {
                    let old = l.gpr64(i);
                    let r64 = l.zext(r, Type::I64);
                    let v = l.select(zf, old, r64);
                    l.set_gpr64(i, v);
                }
                _ => {
                    let old = l.read_op(ins, 0, ty);
                    let v = l.select(zf, old, r);
                    l.write_op(ins, 0, v);
                }
            }
            let f = l.pack_flags(&[(Some(zf), bits::ZF)]);
            l.set_eflags(f);
        }
        M::Tzcnt | M::Lzcnt | M::Popcnt => {
            let ty = ity(l.op_size(ins, 0));
            let s = l.read_op(ins, 1, ty);
            let zs = l.icmp_imm(IntCC::Eq, s, 0);
            let r = match ins.mnemonic() {
                M::Tzcnt => l.un(UnOp::Ctz, s),
                M::Lzcnt => l.un(UnOp::Clz, s),
                _ => l.un(UnOp::Popcnt, s),
            };
            l.write_op(ins, 0, r);
            let f = if ins.mnemonic() == M::Popcnt {
                l.pack_flags(&[(Some(zs), bits::ZF)])
            } else {
                let zr = l.icmp_imm(IntCC::Eq, r, 0);
                l.pack_flags(&[(Some(zs), bits::CF), (Some(zr), bits::ZF)])
            };
            l.set_eflags(f);
        }
        M::Bswap => {
            let ty = ity(l.op_size(ins, 0));
            let v = l.read_op(ins, 0, ty);
            let r = if ty == Type::I16 { l.cst(Type::I16, 0) } else { l.un(UnOp::Bswap, v) };
            l.write_op(ins, 0, r);
        }
        M::Movbe => {
            let ty = ity(l.op_size(ins, 0));
            let v = l.read_op(ins, 1, ty);
            let r = l.un(UnOp::Bswap, v);
            l.write_op(ins, 0, r);
        }
        M::Xchg => {
            let ty = ity(l.op_size(ins, 0));
            let a = l.read_op(ins, 0, ty);
            let b = l.read_op(ins, 1, ty);
            l.write_op(ins, 0, b);
            l.write_op(ins, 1, a);
        }
        M::Xadd => {
            let ty = ity(l.op_size(ins, 0));
            let a = l.read_op(ins, 0, ty);
            let b = l.read_op(ins, 1, ty);
            let d = l.add(a, b);
            l.write_op(ins, 1, a);
            l.write_op(ins, 0, d);
            l.set_flags(CcOp::Add, d, a, b);
        }
        M::Cmpxchg => {
            let sz = l.op_size(ins, 0);
            let ty = ity(sz);
            let acc = l.gpr64(RAX);
            let acc_t = l.zext(acc, ty);
            let old = l.read_op(ins, 0, ty);
            let src = l.read_op(ins, 1, ty);
            let eq = l.icmp(IntCC::Eq, acc_t, old);
            let d = l.sub(acc_t, old);
            let newv = l.select(eq, src, old);
            // The accumulator is written only when the comparison fails.
            let acc_new = match sz {
                8 => old,
                4 => l.zext(old, Type::I64),
                _ => {
                    let m = if sz == 1 { 0xffu128 } else { 0xffff };
                    let kept = l.bin_imm(BinOp::And, acc, !m);
                    let o = l.zext(old, Type::I64);
                    l.or(kept, o)
                }
            };
            let acc_v = l.select(eq, acc, acc_new);
            // A register destination is written only on success; memory is always written.
            let dst_reg = if ins.op_kind(0) == OpKind::Register { super::builder::gpr_index(ins.op_register(0)) } else { None };
            match dst_reg {
                Some(i) => {
                    l.set_gpr64(RAX, acc_v);
                    let before = l.gpr64(i);
                    l.write_op(ins, 0, src);
                    let after = l.gpr64(i);
                    let v = l.select(eq, after, before);
                    l.set_gpr64(i, v);
                }
                None => {
                    l.set_gpr64(RAX, acc_v);
                    l.write_op(ins, 0, newv);
                }
            }
            l.set_flags(CcOp::Sub, d, acc_t, old);
        }
        M::Cmpxchg16b | M::Cmpxchg8b => {
            let wide = ins.mnemonic() == M::Cmpxchg16b;
            let (h, ty) = if wide { (Type::I128, Type::I64) } else { (Type::I64, Type::I32) };
            let addr = l.mem_addr(ins);
            let m = l.load(h, addr);
            let rax = l.gpr64(RAX);
            let rdx = l.gpr64(RDX);
            let rbx = l.gpr64(3);
            let rcx = l.gpr64(RCX);
            let cmpv = pair(l, rdx, rax, ty, h);
            let newv = pair(l, rcx, rbx, ty, h);
            let eq = l.icmp(IntCC::Eq, m, cmpv);
            let st = l.select(eq, newv, m);
            l.store(addr, st);
            let lo = l.zext(m, ty);
            let hs = l.bin_imm(BinOp::LShr, m, u128::from(ty.bits()));
            let hi = l.zext(hs, ty);
            let lo64 = l.zext(lo, Type::I64);
            let hi64 = l.zext(hi, Type::I64);
            let nrax = l.select(eq, rax, lo64);
            let nrdx = l.select(eq, rdx, hi64);
            l.set_gpr64(RAX, nrax);
            l.set_gpr64(RDX, nrdx);
            let old = l.old_eflags_except(bits::ZF);
            let kept = l.bin_imm(BinOp::And, old, u128::from(!bits::ZF));
            let z = l.pack_flags(&[(Some(eq), bits::ZF)]);
            let f = l.or(kept, z);
            l.set_eflags(f);
        }
        M::Cbw | M::Cwde | M::Cdqe => {
            let (from, to) = match ins.mnemonic() {
                M::Cbw => (Register::AL, Register::AX),
                M::Cwde => (Register::AX, Register::EAX),
                _ => (Register::EAX, Register::RAX),
            };
            let v = l.read_reg(from);
            let v = l.sext(v, ity(to.size() as u32));
            l.write_reg(to, v);
        }
        M::Cwd | M::Cdq | M::Cqo => {
            let (a, d) = match ins.mnemonic() {
                M::Cwd => (Register::AX, Register::DX),
                M::Cdq => (Register::EAX, Register::EDX),
                _ => (Register::RAX, Register::RDX),
            };
            let v = l.read_reg(a);
            let s = l.bin_imm(BinOp::AShr, v, u128::from(l.ty(v).bits() - 1));
            l.write_reg(d, s);
            l.rdx = RdxKnown::SignOfRax(a.size() as u32);
        }
        M::Setb | M::Setae | M::Sete | M::Setne | M::Setbe | M::Seta | M::Sets | M::Setns
        | M::Setp | M::Setnp | M::Setl | M::Setge | M::Setle | M::Setg | M::Seto | M::Setno => {
            let c = l.cond(cc_num(ins));
            l.write_op(ins, 0, c);
        }
        M::Cmovb | M::Cmovae | M::Cmove | M::Cmovne | M::Cmovbe | M::Cmova | M::Cmovs
        | M::Cmovns | M::Cmovp | M::Cmovnp | M::Cmovl | M::Cmovge | M::Cmovle | M::Cmovg
        | M::Cmovo | M::Cmovno => {
            let ty = ity(l.op_size(ins, 0));
            let c = l.cond(cc_num(ins));
            let s = l.read_op(ins, 1, ty);
            let d = l.read_op(ins, 0, ty);
            let v = l.select(c, s, d);
            l.write_op(ins, 0, v);
        }
        M::Push => {
            let sz = l.op_size(ins, 0);
            if is_imm(ins.op_kind(0)) {
                let v = l.c64(ins.immediate(0));
                push64(l, v);
            } else if sz == 8 {
                let v = l.read_op(ins, 0, Type::I64);
                push64(l, v);
            } else {
                return unsup("16-bit push");
            }
        }
        M::Pop => {
            if l.op_size(ins, 0) != 8 {
                return unsup("16-bit pop");
            }
            let v = pop64(l);
            // A memory destination's address uses the incremented rsp.
            l.addr_cache = None;
            l.write_op(ins, 0, v);
        }
        M::Pushfq => {
            let f = l.push(Op::Rflags);
            let f = l.bin_imm(BinOp::And, f, !0x30000u128);
            push64(l, f);
        }
        M::Popfq => {
            let v = pop64(l);
            write_rflags(l, v);
        }
        M::Lahf => {
            let f = l.cur_eflags();
            let f = l.bin_imm(BinOp::And, f, 0xd5);
            let f = l.bin_imm(BinOp::Or, f, 2);
            let f = l.zext(f, Type::I8);
            l.write_reg(Register::AH, f);
        }
        M::Sahf => {
            let ah = l.read_reg(Register::AH);
            let ah = l.zext(ah, Type::I64);
            let ah = l.bin_imm(BinOp::And, ah, 0xd5);
            let old = l.cur_eflags();
            let of = l.bin_imm(BinOp::And, old, u128::from(bits::OF));
            let f = l.or(of, ah);
            l.set_eflags(f);
        }
        M::Clc | M::Stc | M::Cmc => {
            let old = if ins.mnemonic() == M::Cmc { l.cur_eflags() } else { l.old_eflags_except(bits::CF) };
            let f = match ins.mnemonic() {
                M::Clc => l.bin_imm(BinOp::And, old, u128::from(!bits::CF)),
                M::Stc => l.bin_imm(BinOp::Or, old, u128::from(bits::CF)),
                _ => l.bin_imm(BinOp::Xor, old, u128::from(bits::CF)),
            };
            l.set_eflags(f);
        }
        M::Cld | M::Std => {
            let o = l.get(RFLAGS_OTHER);
            let v = if ins.mnemonic() == M::Cld {
                l.bin_imm(BinOp::And, o, u128::from(!bits::DF))
            } else {
                l.bin_imm(BinOp::Or, o, u128::from(bits::DF))
            };
            l.set(RFLAGS_OTHER, v);
        }
        M::Leave => {
            let bp = l.gpr64(RBP);
            l.set_gpr64(RSP, bp);
            let v = pop64(l);
            l.set_gpr64(RBP, v);
        }
        M::Enter => {
            if ins.immediate(1) & 31 != 0 {
                return unsup("enter with a nesting level");
            }
            let bp = l.gpr64(RBP);
            push64(l, bp);
            let sp = l.gpr64(RSP);
            l.set_gpr64(RBP, sp);
            let nsp = l.bin_imm(BinOp::Sub, sp, u128::from(ins.immediate(0) & 0xffff));
            l.set_gpr64(RSP, nsp);
        }
        M::Jmp => {
            if ins.op_kind(0) == OpKind::NearBranch64 {
                l.b.term = Terminator::Jump(ins.near_branch_target());
            } else if matches!(ins.op_kind(0), OpKind::Register | OpKind::Memory) && l.op_size(ins, 0) == 8 {
                let t = l.read_op(ins, 0, Type::I64);
                l.b.term = Terminator::JumpIndirect(t);
            } else {
                return unsup("far or 16/32-bit jmp");
            }
            return Ok(Step::End);
        }
        M::Jo | M::Jno | M::Jb | M::Jae | M::Je | M::Jne | M::Jbe | M::Ja | M::Js | M::Jns
        | M::Jp | M::Jnp | M::Jl | M::Jge | M::Jle | M::Jg => {
            let c = l.cond(cc_num(ins));
            l.b.term = Terminator::Branch { cond: c, taken: ins.near_branch_target(), fallthrough: next };
            return Ok(Step::End);
        }
        M::Jrcxz | M::Jecxz => {
            let r = if ins.mnemonic() == M::Jrcxz { Register::RCX } else { Register::ECX };
            let v = l.read_reg(r);
            let c = l.icmp_imm(IntCC::Eq, v, 0);
            l.b.term = Terminator::Branch { cond: c, taken: ins.near_branch_target(), fallthrough: next };
            return Ok(Step::End);
        }
        M::Loop | M::Loope | M::Loopne => {
            let rc = l.gpr64(RCX);
            let nrc = l.bin_imm(BinOp::Sub, rc, 1);
            let ne = l.icmp_imm(IntCC::Ne, nrc, 0);
            let c = match ins.mnemonic() {
                M::Loop => ne,
                M::Loope => {
                    let z = l.cond(4);
                    l.and(ne, z)
                }
                _ => {
                    let z = l.cond(5);
                    l.and(ne, z)
                }
            };
            l.set_gpr64(RCX, nrc);
            l.b.term = Terminator::Branch { cond: c, taken: ins.near_branch_target(), fallthrough: next };
            return Ok(Step::End);
        }
        M::Call => {
            let target = if ins.op_kind(0) == OpKind::NearBranch64 {
                CallTarget::Direct(ins.near_branch_target())
            } else if matches!(ins.op_kind(0), OpKind::Register | OpKind::Memory) && l.op_size(ins, 0) == 8 {
                CallTarget::Indirect(l.read_op(ins, 0, Type::I64))
            } else {
                return unsup("far or 16/32-bit call");
            };
            let r = l.pc(next);
            push64(l, r);
            l.b.term = Terminator::Call { target, ret: next };
            return Ok(Step::End);
        }
        M::Ret => {
            let sp = l.gpr64(RSP);
            let v = l.load(Type::I64, sp);
            let extra = if ins.op_count() > 0 { ins.immediate(0) & 0xffff } else { 0 };
            let nsp = l.bin_imm(BinOp::Add, sp, u128::from(8 + extra));
            l.set_gpr64(RSP, nsp);
            l.b.term = Terminator::Return(v);
            return Ok(Step::End);
        }
        M::Syscall => {
            l.b.term = Terminator::Syscall { next };
            return Ok(Step::End);
        }
        M::Cpuid => {
            l.call_helper(Helper::Cpuid as u32, Vec::new(), &Lifter::gpr_locs(&[RAX, 3, RCX, RDX]));
        }
        M::Rdtsc => {
            l.call_helper(Helper::Rdtsc as u32, Vec::new(), &Lifter::gpr_locs(&[RAX, RDX]));
        }
        M::Rdtscp => {
            l.call_helper(Helper::Rdtsc as u32, Vec::new(), &Lifter::gpr_locs(&[RAX, RDX]));
            let z = l.c64(0);
            l.set_gpr64(RCX, z);
        }
        M::Xgetbv => {
            l.call_helper(Helper::Xgetbv as u32, Vec::new(), &Lifter::gpr_locs(&[RAX, RDX]));
        }
        M::Ud2 | M::Ud0 | M::Ud1 | M::Hlt | M::Int3 | M::Int | M::Int1 | M::Into => {
            l.b.term = Terminator::Trap {
                addr: ins.ip(),
                what: format!("{} instruction reached", mnemonic_name(ins)),
            };
            return Ok(Step::End);
        }
        M::Movsb | M::Movsw | M::Movsd | M::Movsq | M::Stosb | M::Stosw | M::Stosd | M::Stosq
        | M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq | M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq
        | M::Scasb | M::Scasw | M::Scasd | M::Scasq
            if ins.is_string_instruction() =>
        {
            if ins.has_rep_prefix() || ins.has_repne_prefix() {
                return rep_string(l, ins);
            }
            string_element(l, ins);
        }
        _ => return unsup("unsupported instruction"),
    }
    Ok(Step::Continue)
}

fn unsup(why: &str) -> R {
    Err(Unsupported(why.to_string()))
}

pub(crate) fn mnemonic_name(ins: &Instruction) -> String {
    format!("{:?}", ins.mnemonic()).to_lowercase()
}

/// `hi:lo` as one value of type `h` (twice `ty`).
pub(crate) fn pair(l: &mut Lifter, hi: Value, lo: Value, ty: Type, h: Type) -> Value {
    let lo = l.zext(lo, ty);
    let lo = l.zext(lo, h);
    let hi = l.zext(hi, ty);
    let hi = l.zext(hi, h);
    let hi = l.bin_imm(BinOp::Shl, hi, u128::from(ty.bits()));
    l.or(hi, lo)
}

/// Effective address without a segment base (for `lea`).
fn lea_addr(l: &mut Lifter, ins: &Instruction) -> Value {
    let base = ins.memory_base();
    let index = ins.memory_index();
    let disp = ins.memory_displacement64();
    if base == Register::RIP || base == Register::EIP {
        return l.pc(disp);
    }
    let mut acc: Option<Value> = None;
    if base != Register::None {
        let b = l.read_reg(base);
        acc = Some(l.zext(b, Type::I64));
    }
    if index != Register::None {
        let x = l.read_reg(index);
        let x = l.zext(x, Type::I64);
        let scale = ins.memory_index_scale();
        let x = if scale > 1 { l.bin_imm(BinOp::Shl, x, u128::from(scale.trailing_zeros())) } else { x };
        acc = Some(match acc {
            Some(a) => l.add(a, x),
            None => x,
        });
    }
    let a = match acc {
        Some(a) if disp != 0 => l.bin_imm(BinOp::Add, a, u128::from(disp)),
        Some(a) => a,
        None => l.c64(disp),
    };
    // 32-bit address size (0x67 prefix): the address wraps at 4 GiB.
    if base.size() == 4 || index.size() == 4 {
        l.bin_imm(BinOp::And, a, 0xffff_ffff)
    } else {
        a
    }
}

/// Write RFLAGS from a popped value: arithmetic flags to the lazy state, DF/AC/ID to
/// `rflags_other` (IF and bit 1 always set).
pub(crate) fn write_rflags(l: &mut Lifter, v: Value) {
    l.set_eflags(v);
    let keep = bits::DF | (1 << 18) | (1 << 21);
    let o = l.bin_imm(BinOp::And, v, u128::from(keep));
    let o = l.bin_imm(BinOp::Or, o, 0x202);
    l.set(RFLAGS_OTHER, o);
}

fn alu(l: &mut Lifter, ins: &Instruction) -> Result<(), Unsupported> {
    use Mnemonic as M;
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let m = ins.mnemonic();
    // Zero idioms: `xor r, r` / `sub r, r` do not depend on the register.
    let same_reg = ins.op_kind(0) == OpKind::Register
        && ins.op_kind(1) == OpKind::Register
        && ins.op_register(0) == ins.op_register(1);
    if same_reg && (m == M::Xor || m == M::Sub) {
        let z = l.cst(ty, 0);
        l.write_op(ins, 0, z);
        if m == M::Xor {
            l.set_flags(CcOp::Logic, z, z, z);
        } else {
            l.set_flags(CcOp::Sub, z, z, z);
        }
        if ins.op_register(0).full_register() == Register::RDX && sz >= 4 {
            l.rdx = RdxKnown::Zero;
        }
        return Ok(());
    }
    let cin = if m == M::Adc || m == M::Sbb {
        let c = l.carry();
        Some(l.zext(c, ty))
    } else {
        None
    };
    let a = l.read_op(ins, 0, ty);
    let b = l.read_op(ins, 1, ty);
    let (d, op) = match m {
        M::Add => (l.add(a, b), CcOp::Add),
        M::Adc => {
            let s = l.add(a, b);
            let c = cin.unwrap_or(s);
            (l.add(s, c), CcOp::Adc)
        }
        M::Sub | M::Cmp => (l.sub(a, b), CcOp::Sub),
        M::Sbb => {
            let s = l.sub(a, b);
            let c = cin.unwrap_or(s);
            (l.sub(s, c), CcOp::Sbb)
        }
        M::And | M::Test => (l.and(a, b), CcOp::Logic),
        M::Or => (l.or(a, b), CcOp::Logic),
        _ => (l.xor(a, b), CcOp::Logic),
    };
    if m != M::Cmp && m != M::Test {
        l.write_op(ins, 0, d);
    }
    if op == CcOp::Logic {
        l.set_flags(op, d, d, d);
    } else {
        l.set_flags(op, d, a, b);
    }
    Ok(())
}

/// Shift count operand: `Ok(n)` for a constant, `Err(v)` (an I8 value) for `cl`.
fn shift_count(l: &mut Lifter, ins: &Instruction, i: u32, sz: u32) -> Result<u32, Value> {
    let m: u32 = if sz == 8 { 63 } else { 31 };
    if ins.op_kind(i) == OpKind::Register {
        let c = l.read_reg(Register::CL);
        Err(l.bin_imm(BinOp::And, c, u128::from(m)))
    } else {
        Ok((ins.immediate(i) as u32) & m)
    }
}

/// Set the lazy flags to `new` when `n != 0`, else keep the old ones.
fn set_flags_if(l: &mut Lifter, n: Value, op: CcOp, d: Value, s1: Value, s2: Value) {
    let ty = l.ty(d);
    let nz = l.icmp_imm(IntCC::Ne, n, 0);
    let o_op = l.get(CC_OP);
    let o_d = l.get(CC_DST);
    let o_1 = l.get(CC_SRC1);
    let o_2 = l.get(CC_SRC2);
    let n_op = l.c64(op.with_size(ty.bytes()));
    let n_d = l.zext(d, Type::I64);
    let n_1 = l.zext(s1, Type::I64);
    let n_2 = l.zext(s2, Type::I64);
    let v = l.select(nz, n_op, o_op);
    l.set(CC_OP, v);
    let v = l.select(nz, n_d, o_d);
    l.set(CC_DST, v);
    let v = l.select(nz, n_1, o_1);
    l.set(CC_SRC1, v);
    let v = l.select(nz, n_2, o_2);
    l.set(CC_SRC2, v);
    l.flags = None;
}

fn shift(l: &mut Lifter, ins: &Instruction) {
    use Mnemonic as M;
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let wty = if sz < 4 { Type::I32 } else { ty };
    let v = l.read_op(ins, 0, ty);
    let count = shift_count(l, ins, 1, sz);
    let (kind, bop) = match ins.mnemonic() {
        M::Shl | M::Sal => (CcOp::Shl, BinOp::Shl),
        M::Shr => (CcOp::Shr, BinOp::LShr),
        _ => (CcOp::Sar, BinOp::AShr),
    };
    let vw = if kind == CcOp::Sar { l.sext(v, wty) } else { l.zext(v, wty) };
    match count {
        Ok(0) => {
            l.write_op(ins, 0, v);
        }
        Ok(n) => {
            let r = l.bin_imm(bop, vw, u128::from(n));
            let r = l.zext(r, ty);
            let s1 = l.bin_imm(bop, vw, u128::from(n - 1));
            let s1 = l.zext(s1, ty);
            l.write_op(ins, 0, r);
            l.set_flags(kind, r, s1, v);
        }
        Err(n) => {
            let r = l.bin(bop, vw, n);
            let r = l.zext(r, ty);
            let n1 = l.bin_imm(BinOp::Sub, n, 1);
            let s1 = l.bin(bop, vw, n1);
            let s1 = l.zext(s1, ty);
            l.write_op(ins, 0, r);
            // With all flags dead after it, the count-dependent choice of flags is moot.
            if l.live_after & bits::ARITH != 0 {
                set_flags_if(l, n, kind, r, s1, v);
            }
        }
    }
}

fn rotate(l: &mut Lifter, ins: &Instruction) {
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let v = l.read_op(ins, 0, ty);
    let count = shift_count(l, ins, 1, sz);
    let left = ins.mnemonic() == Mnemonic::Rol;
    let bop = if left { BinOp::Rotl } else { BinOp::Rotr };
    let n = match count {
        Ok(0) => {
            l.write_op(ins, 0, v);
            return;
        }
        Ok(n) => l.c8(n as u8),
        Err(n) => n,
    };
    let r = l.bin(bop, v, n);
    l.write_op(ins, 0, r);
    if (count.is_ok() && l.live_after & (bits::CF | bits::OF) == 0) || l.live_after & bits::ARITH == 0 {
        // Nothing reads the CF and OF this rotate writes (and with a constant count it leaves
        // the other flags alone), or no flag at all is read before being overwritten: the
        // lazy flags keep describing the previous producer.
        return;
    }
    let msb = l.icmp_imm(IntCC::Slt, r, 0);
    let (cf, of) = if left {
        let lo = l.bin_imm(BinOp::And, r, 1);
        let cf = l.icmp_imm(IntCC::Ne, lo, 0);
        (cf, l.xor(msb, cf))
    } else {
        let sh = l.bin_imm(BinOp::Shl, r, 1);
        let m2 = l.icmp_imm(IntCC::Slt, sh, 0);
        (msb, l.xor(msb, m2))
    };
    rotate_flags(l, count, cf, of);
}

/// The flags after a rotate (`rol`, `ror`, `rcl`, `rcr`): CF and OF become `cf` and `of`
/// (I8 booleans), the other flags are kept. `count` is the constant count, or the run-time
/// count `Err(n)`, for which a zero count leaves all flags unchanged.
fn rotate_flags(l: &mut Lifter, count: Result<u32, Value>, cf: Value, of: Value) {
    let old = match count {
        Ok(_) => l.old_eflags_except(bits::CF | bits::OF),
        Err(_) => l.cur_eflags(),
    };
    let kept = l.bin_imm(BinOp::And, old, u128::from(!(bits::CF | bits::OF)));
    let nf = l.pack_flags(&[(Some(cf), bits::CF), (Some(of), bits::OF)]);
    let nf = l.or(kept, nf);
    let f = match count {
        Ok(_) => nf,
        Err(n) => {
            let nz = l.icmp_imm(IntCC::Ne, n, 0);
            l.select(nz, nf, old)
        }
    };
    l.set_eflags(f);
}

/// `rcl`/`rcr`: a rotation of the (w+1)-bit value CF:operand, done in 128 bits.
fn rotate_carry(l: &mut Lifter, ins: &Instruction) {
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let w = ty.bits();
    let v = l.read_op(ins, 0, ty);
    let count = shift_count(l, ins, 1, sz);
    let left = ins.mnemonic() == Mnemonic::Rcl;
    let n = match count {
        Ok(0) => {
            l.write_op(ins, 0, v);
            return;
        }
        Ok(n) => l.c8((n % (w + 1)) as u8),
        Err(n) if w < 32 => l.bin_imm(BinOp::URem, n, u128::from(w + 1)),
        Err(n) => n,
    };
    let cf = l.carry();
    let c128 = l.zext(cf, Type::I128);
    let c128 = l.bin_imm(BinOp::Shl, c128, u128::from(w));
    let v128 = l.zext(v, Type::I128);
    let x = l.or(c128, v128);
    let n128 = l.zext(n, Type::I128);
    let wn = l.cst(Type::I128, u128::from(w + 1));
    let back = l.sub(wn, n128);
    let (a, b) = if left {
        (l.bin(BinOp::Shl, x, n128), l.bin(BinOp::LShr, x, back))
    } else {
        (l.bin(BinOp::LShr, x, n128), l.bin(BinOp::Shl, x, back))
    };
    let r = l.or(a, b);
    let r = l.bin_imm(BinOp::And, r, (1u128 << (w + 1)) - 1);
    let res = l.zext(r, ty);
    l.write_op(ins, 0, res);
    let top = l.bin_imm(BinOp::LShr, r, u128::from(w));
    let ncf = l.zext(top, Type::I8);
    let msb = l.icmp_imm(IntCC::Slt, res, 0);
    let of = if left {
        l.xor(msb, ncf)
    } else {
        let sh = l.bin_imm(BinOp::Shl, res, 1);
        let m2 = l.icmp_imm(IntCC::Slt, sh, 0);
        l.xor(msb, m2)
    };
    rotate_flags(l, count, ncf, of);
}

fn double_shift(l: &mut Lifter, ins: &Instruction) {
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let h = ity(sz * 2);
    let d = l.read_op(ins, 0, ty);
    let s = l.read_op(ins, 1, ty);
    let count = shift_count(l, ins, 2, sz);
    let left = ins.mnemonic() == Mnemonic::Shld;
    let n = match count {
        Ok(0) => {
            l.write_op(ins, 0, d);
            return;
        }
        Ok(n) => l.c8(n as u8),
        Err(n) => n,
    };
    let w = u128::from(ty.bits());
    // Concatenate so that a single double-width shift gives the result in one half.
    let cat = if left { pair(l, d, s, ty, h) } else { pair(l, s, d, ty, h) };
    let n1 = l.bin_imm(BinOp::Sub, n, 1);
    let (r, r1) = if left {
        let a = l.bin(BinOp::Shl, cat, n);
        let a = l.bin_imm(BinOp::LShr, a, w);
        let b = l.bin(BinOp::Shl, cat, n1);
        let b = l.bin_imm(BinOp::LShr, b, w);
        (l.zext(a, ty), l.zext(b, ty))
    } else {
        let a = l.bin(BinOp::LShr, cat, n);
        let b = l.bin(BinOp::LShr, cat, n1);
        (l.zext(a, ty), l.zext(b, ty))
    };
    l.write_op(ins, 0, r);
    if l.live_after & bits::ARITH == 0 {
        // No flag this instruction may write is read before being overwritten.
        return;
    }
    let cf = if left {
        l.icmp_imm(IntCC::Slt, r1, 0)
    } else {
        let lo = l.bin_imm(BinOp::And, r1, 1);
        l.icmp_imm(IntCC::Ne, lo, 0)
    };
    let ms_r = l.icmp_imm(IntCC::Slt, r, 0);
    let ms_d = l.icmp_imm(IntCC::Slt, d, 0);
    let of = l.xor(ms_r, ms_d);
    let zf = l.icmp_imm(IntCC::Eq, r, 0);
    let pf = l.parity(r);
    let nf = l.pack_flags(&[
        (Some(cf), bits::CF),
        (Some(pf), bits::PF),
        (Some(zf), bits::ZF),
        (Some(ms_r), bits::SF),
        (Some(of), bits::OF),
    ]);
    let f = match count {
        Ok(_) => nf,
        Err(n) => {
            let old = l.cur_eflags();
            let nz = l.icmp_imm(IntCC::Ne, n, 0);
            l.select(nz, nf, old)
        }
    };
    l.set_eflags(f);
}

fn imul(l: &mut Lifter, ins: &Instruction) {
    if ins.op_count() == 1 {
        mul1(l, ins, true);
        return;
    }
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let (a, b) = if ins.op_count() == 3 {
        (l.read_op(ins, 1, ty), l.read_op(ins, 2, ty))
    } else {
        (l.read_op(ins, 0, ty), l.read_op(ins, 1, ty))
    };
    let r = l.bin(BinOp::Mul, a, b);
    let hi = l.bin(BinOp::SMulHi, a, b);
    let sign = l.bin_imm(BinOp::AShr, r, u128::from(ty.bits() - 1));
    let ovf = l.xor(hi, sign);
    l.write_op(ins, 0, r);
    l.set_flags(CcOp::Mul, r, ovf, ovf);
}

/// One-operand `mul`/`imul`: rdx:rax (or ax) = acc * src.
fn mul1(l: &mut Lifter, ins: &Instruction, signed: bool) {
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let s = l.read_op(ins, 0, ty);
    let acc = l.gpr64(RAX);
    let a = l.zext(acc, ty);
    let lo = l.bin(BinOp::Mul, a, s);
    let hi = l.bin(if signed { BinOp::SMulHi } else { BinOp::UMulHi }, a, s);
    let ovf = if signed {
        let sign = l.bin_imm(BinOp::AShr, lo, u128::from(ty.bits() - 1));
        l.xor(hi, sign)
    } else {
        hi
    };
    if sz == 1 {
        let v = pair(l, hi, lo, Type::I8, Type::I16);
        l.write_reg(Register::AX, v);
    } else {
        let (ra, rd) = match sz {
            2 => (Register::AX, Register::DX),
            4 => (Register::EAX, Register::EDX),
            _ => (Register::RAX, Register::RDX),
        };
        l.write_reg(ra, lo);
        l.write_reg(rd, hi);
    }
    l.set_flags(CcOp::Mul, lo, ovf, ovf);
}

/// `div`/`idiv`: the block ends here; a divide error branches to a trap block at the
/// address one byte into the instruction (never an instruction boundary) with the state
/// unchanged.
fn div(l: &mut Lifter, ins: &Instruction) -> R {
    let signed = ins.mnemonic() == Mnemonic::Idiv;
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let s = l.read_op(ins, 0, ty);
    // Dividend width: double, unless rdx is known to be a plain extension of rax.
    let single = match l.rdx {
        RdxKnown::Zero => !signed && sz >= 4,
        RdxKnown::SignOfRax(k) => signed && k == sz,
        RdxKnown::Nothing => false,
    };
    let trap_at = ins.ip() + 1;
    let mut tb = Block::new(trap_at);
    tb.term = Terminator::Trap { addr: ins.ip(), what: String::from("divide error") };
    l.extra.push(tb);
    if sz == 8 && !single {
        // 128-by-64-bit division out of line; the helper leaves the state alone on error.
        let op = if signed { SseOp::Div128S } else { SseOp::Div128U };
        let a0 = l.c64(op as u64);
        let r = l.call_helper(Helper::Sse as u32, vec![a0, s], &Lifter::gpr_locs(&[RAX, RDX]));
        let bad = l.icmp_imm(IntCC::Ne, r, 0);
        l.b.term = Terminator::Branch { cond: bad, taken: trap_at, fallthrough: ins.next_ip() };
        return Ok(Step::End);
    }
    let rax = l.gpr64(RAX);
    let rdx = l.gpr64(RDX);
    let w = ty.bits();
    let (n, dty) = if sz == 1 {
        let ax = l.zext(rax, Type::I16);
        (ax, Type::I16)
    } else if single {
        (l.zext(rax, ty), ty)
    } else {
        let h = ity(sz * 2);
        (pair(l, rdx, rax, ty, h), h)
    };
    let d = if sz == 1 {
        if signed { l.sext(s, Type::I16) } else { l.zext(s, Type::I16) }
    } else if signed {
        l.sext(s, dty)
    } else {
        l.zext(s, dty)
    };
    // Divide error: zero divisor, MIN / -1 in the dividend width, or a quotient that does
    // not fit in the operand width.
    let dz = l.icmp_imm(IntCC::Eq, d, 0);
    let bad = if signed {
        let min = l.cst(dty, 1u128 << (dty.bits() - 1));
        let nmin = l.icmp(IntCC::Eq, n, min);
        let m1 = l.icmp_imm(IntCC::Eq, d, u128::MAX);
        let ov = l.and(nmin, m1);
        l.or(dz, ov)
    } else {
        dz
    };
    let one = l.cst(dty, 1);
    let dsafe = l.select(bad, one, d);
    let (q, r) = if signed {
        (l.bin(BinOp::SDiv, n, dsafe), l.bin(BinOp::SRem, n, dsafe))
    } else {
        (l.bin(BinOp::UDiv, n, dsafe), l.bin(BinOp::URem, n, dsafe))
    };
    let qt = l.zext(q, ty);
    let bad = if dty.bits() > w {
        // The quotient must fit.
        let back = if signed { l.sext(qt, dty) } else { l.zext(qt, dty) };
        let nf = l.icmp(IntCC::Ne, back, q);
        l.or(bad, nf)
    } else {
        bad
    };
    let rt = l.zext(r, ty);
    if sz == 1 {
        let v = pair(l, rt, qt, Type::I8, Type::I16);
        let kept = l.bin_imm(BinOp::And, rax, !0xffffu128);
        let v64 = l.zext(v, Type::I64);
        let nv = l.or(kept, v64);
        let fin = l.select(bad, rax, nv);
        l.set_gpr64(RAX, fin);
    } else {
        let (qa, ra) = if sz == 2 {
            let k1 = l.bin_imm(BinOp::And, rax, !0xffffu128);
            let q64 = l.zext(qt, Type::I64);
            let k2 = l.bin_imm(BinOp::And, rdx, !0xffffu128);
            let r64 = l.zext(rt, Type::I64);
            (l.or(k1, q64), l.or(k2, r64))
        } else {
            (l.zext(qt, Type::I64), l.zext(rt, Type::I64))
        };
        let fa = l.select(bad, rax, qa);
        let fd = l.select(bad, rdx, ra);
        l.set_gpr64(RAX, fa);
        l.set_gpr64(RDX, fd);
    }
    l.b.term = Terminator::Branch { cond: bad, taken: trap_at, fallthrough: ins.next_ip() };
    // Flags are undefined after div; leave the lazy state as it was.
    Ok(Step::End)
}

fn bit_test(l: &mut Lifter, ins: &Instruction) {
    use Mnemonic as M;
    let sz = l.op_size(ins, 0);
    let ty = ity(sz);
    let w = ty.bits();
    let (bit, mem_adj) = if ins.op_kind(1) == OpKind::Register {
        let b = l.read_op(ins, 1, ty);
        let bit = l.bin_imm(BinOp::And, b, u128::from(w - 1));
        // A register bit offset addresses memory beyond the operand (signed).
        let adj = if ins.op_kind(0) == OpKind::Memory {
            let b64 = l.sext(b, Type::I64);
            let q = l.bin_imm(BinOp::AShr, b64, u128::from(w.trailing_zeros()));
            Some(l.bin_imm(BinOp::Shl, q, u128::from((w / 8).trailing_zeros())))
        } else {
            None
        };
        (bit, adj)
    } else {
        let n = (ins.immediate(1) as u32) & (w - 1);
        (l.cst(ty, u128::from(n)), None)
    };
    let addr = if ins.op_kind(0) == OpKind::Memory {
        let a = l.mem_addr(ins);
        Some(match mem_adj {
            Some(adj) => l.add(a, adj),
            None => a,
        })
    } else {
        None
    };
    let v = match addr {
        Some(a) => l.load(ty, a),
        None => l.read_op(ins, 0, ty),
    };
    let sh = l.bin(BinOp::LShr, v, bit);
    let lo = l.bin_imm(BinOp::And, sh, 1);
    let cf = l.icmp_imm(IntCC::Ne, lo, 0);
    let one = l.cst(ty, 1);
    let m = l.bin(BinOp::Shl, one, bit);
    let nv = match ins.mnemonic() {
        M::Bts => Some(l.or(v, m)),
        M::Btr => {
            let nm = l.un(UnOp::Not, m);
            Some(l.and(v, nm))
        }
        M::Btc => Some(l.xor(v, m)),
        _ => None,
    };
    if let Some(nv) = nv {
        match addr {
            Some(a) => l.store(a, nv),
            None => l.write_op(ins, 0, nv),
        }
    }
    let old = l.old_eflags_except(bits::CF);
    let kept = l.bin_imm(BinOp::And, old, u128::from(!bits::CF));
    let c = l.zext(cf, Type::I64);
    let f = l.or(kept, c);
    l.set_eflags(f);
}

/// Element size in bytes of a string instruction.
fn string_size(ins: &Instruction) -> u32 {
    use Mnemonic as M;
    match ins.mnemonic() {
        M::Movsb | M::Stosb | M::Lodsb | M::Cmpsb | M::Scasb => 1,
        M::Movsw | M::Stosw | M::Lodsw | M::Cmpsw | M::Scasw => 2,
        M::Movsd | M::Stosd | M::Lodsd | M::Cmpsd | M::Scasd => 4,
        _ => 8,
    }
}

/// One element of a string instruction (DF-aware), updating rsi/rdi.
fn string_element(l: &mut Lifter, ins: &Instruction) {
    use Mnemonic as M;
    let sz = string_size(ins);
    let ty = ity(sz);
    let df = l.df();
    let plus = l.c64(u64::from(sz));
    let minus = l.c64(u64::from(sz).wrapping_neg());
    let delta = l.select(df, minus, plus);
    let src_seg = match ins.segment_prefix() {
        Register::FS => Some(hcontainer_abi::offsets::FS_BASE),
        Register::GS => Some(hcontainer_abi::offsets::GS_BASE),
        _ => None,
    };
    let m = ins.mnemonic();
    let uses_si = matches!(m, M::Movsb | M::Movsw | M::Movsd | M::Movsq | M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq | M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq);
    let uses_di = !matches!(m, M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq);
    let si = l.gpr64(RSI);
    let di = l.gpr64(RDI);
    let si_addr = match src_seg {
        Some(off) => {
            let b = l.get(hcontainer_ir::Loc { offset: off, ty: Type::I64 });
            l.add(si, b)
        }
        None => si,
    };
    match m {
        M::Movsb | M::Movsw | M::Movsd | M::Movsq => {
            let v = l.load(ty, si_addr);
            l.store(di, v);
        }
        M::Stosb | M::Stosw | M::Stosd | M::Stosq => {
            let a = l.gpr64(RAX);
            let v = l.zext(a, ty);
            l.store(di, v);
        }
        M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => {
            let v = l.load(ty, si_addr);
            let r = match sz {
                1 => Register::AL,
                2 => Register::AX,
                4 => Register::EAX,
                _ => Register::RAX,
            };
            l.write_reg(r, v);
        }
        M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => {
            let a = l.load(ty, si_addr);
            let b = l.load(ty, di);
            let d = l.sub(a, b);
            l.set_flags(CcOp::Sub, d, a, b);
        }
        _ => {
            let a = l.gpr64(RAX);
            let a = l.zext(a, ty);
            let b = l.load(ty, di);
            let d = l.sub(a, b);
            l.set_flags(CcOp::Sub, d, a, b);
        }
    }
    if uses_si {
        let n = l.add(si, delta);
        l.set_gpr64(RSI, n);
    }
    if uses_di {
        let n = l.add(di, delta);
        l.set_gpr64(RDI, n);
    }
}

/// A `rep`-prefixed string instruction at the start of its block: the block tests rcx and
/// branches to a body block (one byte into the instruction) that does one element and
/// loops back.
fn rep_string(l: &mut Lifter, ins: &Instruction) -> R {
    use Mnemonic as M;
    let addr = ins.ip();
    if l.b.addr != addr || !l.b.insts.is_empty() {
        return Err(Unsupported(String::from("rep string instruction not at block start")));
    }
    let body = addr + 1;
    let rc = l.gpr64(RCX);
    let nz = l.icmp_imm(IntCC::Ne, rc, 0);
    l.b.term = Terminator::Branch { cond: nz, taken: body, fallthrough: ins.next_ip() };

    let mut bl = Lifter::new(body);
    string_element(&mut bl, ins);
    let rc = bl.gpr64(RCX);
    let nrc = bl.bin_imm(BinOp::Sub, rc, 1);
    bl.set_gpr64(RCX, nrc);
    let compares = matches!(ins.mnemonic(), M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq | M::Scasb | M::Scasw | M::Scasd | M::Scasq);
    bl.b.term = if compares {
        // repe: continue while equal; repne: while not equal.
        let cc = if ins.has_repne_prefix() { 5 } else { 4 };
        let c = bl.cond(cc);
        Terminator::Branch { cond: c, taken: addr, fallthrough: ins.next_ip() }
    } else {
        Terminator::Jump(addr)
    };
    bl.b.guest_len = 0;
    bl.b.guest_insts = 0;
    l.extra.push(bl.b);
    Ok(Step::End)
}
