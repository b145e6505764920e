//! Text form of the IR, for golden tests and `--dump-ir`.
//!
//! ```text
//! block 0x401000 (5 bytes, 2 insts)
//!   v0 = get.i64 rsp
//!   v1 = const.i64 0x8
//!   v2 = sub.i64 v0, v1
//!   set.i64 rsp, v2
//!   store.i64 [v2], v0
//!   jump 0x401005
//! ```
//! State locations are named after the `GuestState` field they fall in (`rax`, `xmm3+8`,
//! `cc_op`, `st_r2`…), falling back to `state+OFFSET`.

use std::fmt::{self, Display, Formatter};

use hcontainer_abi::offsets;

use crate::{BinOp, Block, CallTarget, ConvOp, FloatCC, Function, IntCC, Loc, Op, Program, RmwOp, Terminator, Type, UnOp, Value};

const GPR_NAMES: [&str; 16] =
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

impl Display for Type {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::I8 => "i8",
            Type::I16 => "i16",
            Type::I32 => "i32",
            Type::I64 => "i64",
            Type::I128 => "i128",
            Type::F32 => "f32",
            Type::F64 => "f64",
        })
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The name of the state location at byte `offset`.
pub fn loc_name(offset: u32) -> String {
    let named: [(u32, u32, &str); 16] = [
        (offsets::RIP, 8, "rip"),
        (offsets::CC_OP, 8, "cc_op"),
        (offsets::CC_DST, 8, "cc_dst"),
        (offsets::CC_SRC1, 8, "cc_src1"),
        (offsets::CC_SRC2, 8, "cc_src2"),
        (offsets::RFLAGS_OTHER, 8, "rflags_other"),
        (offsets::FS_BASE, 8, "fs_base"),
        (offsets::GS_BASE, 8, "gs_base"),
        (offsets::MXCSR, 4, "mxcsr"),
        (offsets::FPU_CW, 2, "fpu_cw"),
        (offsets::FPU_SW, 2, "fpu_sw"),
        (offsets::FPU_TOP, 4, "fpu_top"),
        (offsets::FPU_TAG, 4, "fpu_tag"),
        (offsets::POLL, 8, "poll"),
        (offsets::ORIG_RAX, 8, "orig_rax"),
        (offsets::gpr(0), 0, ""),
    ];
    let with_sub = |name: &str, base: u32| {
        if offset == base {
            name.to_string()
        } else {
            format!("{name}+{}", offset - base)
        }
    };
    for i in 0..16u8 {
        let base = offsets::gpr(i);
        if (base..base + 8).contains(&offset) {
            return with_sub(GPR_NAMES[i as usize], base);
        }
        let base = offsets::xmm(i);
        if (base..base + 16).contains(&offset) {
            return with_sub(&format!("xmm{i}"), base);
        }
    }
    for i in 0..8u8 {
        let base = offsets::fpu_reg(i);
        if (base..base + 16).contains(&offset) {
            return with_sub(&format!("st_r{i}"), base);
        }
    }
    for (base, len, name) in named {
        if len > 0 && (base..base + len).contains(&offset) {
            return with_sub(name, base);
        }
    }
    format!("state+{offset}")
}

impl Display for Loc {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&loc_name(self.offset))
    }
}

fn bin_name(op: BinOp) -> &'static str {
    use BinOp::*;
    match op {
        Add => "add",
        Sub => "sub",
        Mul => "mul",
        UMulHi => "umulhi",
        SMulHi => "smulhi",
        UDiv => "udiv",
        SDiv => "sdiv",
        URem => "urem",
        SRem => "srem",
        And => "and",
        Or => "or",
        Xor => "xor",
        Shl => "shl",
        LShr => "lshr",
        AShr => "ashr",
        Rotl => "rotl",
        Rotr => "rotr",
        FAdd => "fadd",
        FSub => "fsub",
        FMul => "fmul",
        FDiv => "fdiv",
        FMinX86 => "fmin_x86",
        FMaxX86 => "fmax_x86",
    }
}

fn un_name(op: UnOp) -> &'static str {
    use UnOp::*;
    match op {
        Not => "not",
        Neg => "neg",
        Clz => "clz",
        Ctz => "ctz",
        Popcnt => "popcnt",
        Bswap => "bswap",
        FNeg => "fneg",
        FAbs => "fabs",
        FSqrt => "fsqrt",
    }
}

fn icc_name(cc: IntCC) -> &'static str {
    use IntCC::*;
    match cc {
        Eq => "eq",
        Ne => "ne",
        Ult => "ult",
        Ule => "ule",
        Ugt => "ugt",
        Uge => "uge",
        Slt => "slt",
        Sle => "sle",
        Sgt => "sgt",
        Sge => "sge",
    }
}

fn fcc_name(cc: FloatCC) -> &'static str {
    use FloatCC::*;
    match cc {
        Eq => "eq",
        Lt => "lt",
        Le => "le",
        Uno => "uno",
        Une => "une",
        Unlt => "unlt",
        Unle => "unle",
        Ord => "ord",
    }
}

fn conv_name(op: ConvOp) -> &'static str {
    use ConvOp::*;
    match op {
        Zext => "zext",
        Sext => "sext",
        Trunc => "trunc",
        Bitcast => "bitcast",
        SIntToFloat => "sint_to_float",
        FloatToSIntTrunc => "float_to_sint_trunc",
        FloatToSIntRound => "float_to_sint_round",
        FPromote => "fpromote",
        FDemote => "fdemote",
    }
}

fn rmw_name(op: RmwOp) -> &'static str {
    match op {
        RmwOp::Add => "add",
        RmwOp::Sub => "sub",
        RmwOp::And => "and",
        RmwOp::Or => "or",
        RmwOp::Xor => "xor",
        RmwOp::Xchg => "xchg",
    }
}

const COND_NAMES: [&str; 16] = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];

/// Writes one instruction of `block` (index `i`) without indentation or newline.
fn write_inst(f: &mut Formatter<'_>, block: &Block, i: usize, op: &Op) -> fmt::Result {
    let val = Value(i as u32);
    let ty = block.type_of(val).map_or_else(|| "?".to_string(), |t| t.to_string());
    match op {
        Op::Set(loc, x) => return write!(f, "set.{} {loc}, {x}", loc.ty),
        Op::Store { addr, val: x } => {
            let t = block.type_of(*x).map_or_else(|| "?".to_string(), |t| t.to_string());
            return write!(f, "store.{t} [{addr}], {x}");
        }
        Op::Fence => return write!(f, "fence"),
        _ => {}
    }
    write!(f, "{val} = ")?;
    match op {
        Op::Const { ty, bits } => write!(f, "const.{ty} {bits:#x}"),
        Op::Pc(a) => write!(f, "pc {a:#x}"),
        Op::Get(loc) => write!(f, "get.{} {loc}", loc.ty),
        Op::Load { ty, addr } => write!(f, "load.{ty} [{addr}]"),
        Op::Bin(b, x, y) => write!(f, "{}.{ty} {x}, {y}", bin_name(*b)),
        Op::Un(u, x) => write!(f, "{}.{ty} {x}", un_name(*u)),
        Op::Icmp(cc, x, y) => write!(f, "icmp.{} {x}, {y}", icc_name(*cc)),
        Op::Fcmp(cc, x, y) => write!(f, "fcmp.{} {x}, {y}", fcc_name(*cc)),
        Op::Select(c, x, y) => write!(f, "select.{ty} {c}, {x}, {y}"),
        Op::Conv(c, to, x) => write!(f, "{}.{to} {x}", conv_name(*c)),
        Op::EvalCond(cc) => write!(f, "eval_cond {}", COND_NAMES.get(*cc as usize).copied().unwrap_or("?")),
        Op::Rflags => write!(f, "rflags"),
        Op::Helper(h, args) => {
            write!(f, "helper {h}(")?;
            for (k, a) in args.iter().enumerate() {
                if k > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{a}")?;
            }
            write!(f, ")")
        }
        Op::AtomicRmw { op, addr, val: x } => write!(f, "atomic_{}.{ty} [{addr}], {x}", rmw_name(*op)),
        Op::AtomicCas { addr, expected, new } => write!(f, "atomic_cas.{ty} [{addr}], {expected}, {new}"),
        Op::Set(..) | Op::Store { .. } | Op::Fence => Ok(()),
    }
}

impl Display for Terminator {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Terminator::Jump(a) => write!(f, "jump {a:#x}"),
            Terminator::Branch { cond, taken, fallthrough } => write!(f, "branch {cond}, {taken:#x}, {fallthrough:#x}"),
            Terminator::JumpIndirect(v) => write!(f, "jump_indirect {v}"),
            Terminator::Call { target: CallTarget::Direct(t), ret } => write!(f, "call {t:#x}, ret {ret:#x}"),
            Terminator::Call { target: CallTarget::Indirect(v), ret } => write!(f, "call_indirect {v}, ret {ret:#x}"),
            Terminator::Return(v) => write!(f, "return {v}"),
            Terminator::Syscall { next } => write!(f, "syscall, next {next:#x}"),
            Terminator::Trap { addr, what } => write!(f, "trap {addr:#x} {what:?}"),
        }
    }
}

impl Display for Block {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "block {:#x} ({} bytes, {} insts)", self.addr, self.guest_len, self.guest_insts)?;
        for (i, inst) in self.insts.iter().enumerate() {
            write!(f, "  ")?;
            write_inst(f, self, i, &inst.op)?;
            writeln!(f)?;
        }
        writeln!(f, "  {}", self.term)
    }
}

impl Display for Function {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "function {:#x} ({} blocks)", self.entry, self.blocks.len())?;
        for b in &self.blocks {
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

impl Display for Program {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, func) in self.functions.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{func}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_text() {
        let mut b = Block::new(0x401000);
        b.guest_len = 5;
        b.guest_insts = 2;
        let rsp = Loc { offset: offsets::gpr(4), ty: Type::I64 };
        let v0 = b.push(Op::Get(rsp));
        let v1 = b.push(Op::Const { ty: Type::I64, bits: 8 });
        let v2 = b.push(Op::Bin(BinOp::Sub, v0, v1));
        b.push(Op::Set(rsp, v2));
        b.push(Op::Store { addr: v2, val: v0 });
        b.push(Op::Get(Loc { offset: offsets::xmm(3) + 8, ty: Type::I64 }));
        b.push(Op::EvalCond(4));
        b.term = Terminator::Jump(0x401005);
        let expected = "block 0x401000 (5 bytes, 2 insts)\n  v0 = get.i64 rsp\n  v1 = const.i64 0x8\n  \
                        v2 = sub.i64 v0, v1\n  set.i64 rsp, v2\n  store.i64 [v2], v0\n  v5 = get.i64 xmm3+8\n  \
                        v6 = eval_cond e\n  jump 0x401005\n";
        assert_eq!(b.to_string(), expected);
    }
}
