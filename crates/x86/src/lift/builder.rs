//! The per-block lifting context: an IR [`Block`] under construction, typed helpers to emit
//! ops, guest register and memory operand access, and the lazy-flags tracker that lets a
//! flag consumer in the same block as its producer compute its condition directly.

use hcontainer_abi::flags::{bits, CcOp};
use hcontainer_abi::offsets;
use hcontainer_ir::{BinOp, Block, ConvOp, FloatCC, IntCC, Loc, Op, Type, UnOp, Value};
use iced_x86::{Instruction, OpKind, Register};
use std::collections::HashMap;

/// The last flag producer of the current block, with its operands as IR values of type `ty`
/// (for [`CcOp::Eflags`], `dst` is the `I64` of materialized flags).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flags {
    pub op: CcOp,
    pub ty: Type,
    pub dst: Value,
    pub src1: Value,
    pub src2: Value,
}

/// What the lifter knows about `rdx` relative to `rax` (lets `div`/`idiv` use a single-width
/// division when the dividend's high half is a plain extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RdxKnown {
    Nothing,
    /// `rdx` is zero.
    Zero,
    /// `rdx` is the sign extension of `rax` (after `cqo`), for this operand size in bytes.
    SignOfRax(u32),
}

/// The block under construction.
pub(crate) struct Lifter {
    pub b: Block,
    /// Last flag producer in this block, or `None` when flags come from an earlier block or
    /// were changed in a way the lifter does not track (then consumers use `EvalCond`).
    pub flags: Option<Flags>,
    /// Extra blocks created at addresses inside an instruction (trap targets, `rep` bodies).
    pub extra: Vec<Block>,
    pub rdx: RdxKnown,
    /// Arithmetic flags (RFLAGS bit positions) that may be read after the current
    /// instruction before being overwritten; computed for the instructions that can save
    /// work when some of their flag outputs are dead (all flags otherwise).
    pub live_after: u64,
    /// The current instruction's memory operand address, once computed (an instruction
    /// computes its address once, before any of its register writes).
    pub addr_cache: Option<Value>,
    /// When the current flags are the materialized result of a `(u)comisd`/`(u)comiss` of
    /// `a` and `b`: (flags value, a, b), so conditions become one float comparison.
    pub fcmp: Option<(Value, Value, Value)>,
    /// The current value of each xmm register in this block, once read or written (reset
    /// by helper calls, which may write xmm registers through the state).
    xmm_vals: [Option<Value>; 16],
    /// The 64-bit halves (low, high) of `I128` values built or split in this block.
    pub split: HashMap<Value, [Value; 2]>,
    /// The low 64 bits (`I64`) of other `I128` values built in this block.
    pub low: HashMap<Value, Value>,
}

/// An integer type of `bytes` bytes (1, 2, 4, 8, 16; anything else is treated as 8).
pub(crate) fn ity(bytes: u32) -> Type {
    Type::int_of_bytes(bytes).unwrap_or(Type::I64)
}

pub(crate) fn mask_of(ty: Type) -> u128 {
    if ty.bits() >= 128 {
        u128::MAX
    } else {
        (1u128 << ty.bits()) - 1
    }
}

fn gpr_loc(i: u8) -> Loc {
    Loc { offset: offsets::gpr(i), ty: Type::I64 }
}

pub(crate) fn xmm_loc(i: u8) -> Loc {
    Loc { offset: offsets::xmm(i), ty: Type::I128 }
}

pub(crate) const CC_OP: Loc = Loc { offset: offsets::CC_OP, ty: Type::I64 };
pub(crate) const CC_DST: Loc = Loc { offset: offsets::CC_DST, ty: Type::I64 };
pub(crate) const CC_SRC1: Loc = Loc { offset: offsets::CC_SRC1, ty: Type::I64 };
pub(crate) const CC_SRC2: Loc = Loc { offset: offsets::CC_SRC2, ty: Type::I64 };
pub(crate) const RFLAGS_OTHER: Loc = Loc { offset: offsets::RFLAGS_OTHER, ty: Type::I64 };
pub(crate) const MXCSR: Loc = Loc { offset: offsets::MXCSR, ty: Type::I32 };

/// Index (encoding order) of a 64-bit GPR.
pub(crate) fn gpr_index(reg: Register) -> Option<u8> {
    let full = reg.full_register();
    if !full.is_gpr64() {
        return None;
    }
    u8::try_from(full.number()).ok()
}

pub(crate) fn is_high_byte(reg: Register) -> bool {
    matches!(reg, Register::AH | Register::BH | Register::CH | Register::DH)
}

impl Lifter {
    pub fn new(addr: u64) -> Lifter {
        Lifter {
            b: Block::new(addr),
            flags: None,
            extra: Vec::new(),
            rdx: RdxKnown::Nothing,
            live_after: bits::ARITH,
            addr_cache: None,
            fcmp: None,
            xmm_vals: [None; 16],
            split: HashMap::new(),
            low: HashMap::new(),
        }
    }

    pub fn push(&mut self, op: Op) -> Value {
        if matches!(op, Op::Helper(..)) {
            // Helpers may write rax/rdx and xmm registers through the state.
            self.rdx = RdxKnown::Nothing;
            self.xmm_vals = [None; 16];
        }
        self.b.push(op)
    }

    /// Call helper `id` with `args`; `writes` are the state locations the helper may change.
    /// They are read first, so that the block's IR names every location whose value the
    /// helper replaces (a code generator that reloads only locations a block touches still
    /// sees the helper's results).
    pub fn call_helper(&mut self, id: u32, args: Vec<Value>, writes: &[Loc]) -> Value {
        for loc in writes {
            self.get(*loc);
        }
        self.push(Op::Helper(id, args))
    }

    /// Locations of the lazy flags.
    pub const FLAG_LOCS: [Loc; 4] = [CC_OP, CC_DST, CC_SRC1, CC_SRC2];

    pub fn gpr_locs(idx: &[u8]) -> Vec<Loc> {
        idx.iter().map(|i| gpr_loc(*i)).collect()
    }

    pub fn ty(&self, v: Value) -> Type {
        self.b.type_of(v).unwrap_or(Type::I64)
    }

    pub fn cst(&mut self, ty: Type, bits: u128) -> Value {
        self.push(Op::Const { ty, bits: bits & mask_of(ty) })
    }

    /// A guest address of this file (rip-relative operands, return addresses): link-time
    /// `addr` plus the load bias the file gets when it is mapped (`Op::Pc`).
    pub fn pc(&mut self, addr: u64) -> Value {
        self.push(Op::Pc(addr))
    }

    pub fn c64(&mut self, v: u64) -> Value {
        self.cst(Type::I64, u128::from(v))
    }

    pub fn c8(&mut self, v: u8) -> Value {
        self.cst(Type::I8, u128::from(v))
    }

    pub fn get(&mut self, loc: Loc) -> Value {
        self.push(Op::Get(loc))
    }

    pub fn set(&mut self, loc: Loc, v: Value) {
        self.push(Op::Set(loc, v));
    }

    pub fn bin(&mut self, op: BinOp, a: Value, b: Value) -> Value {
        self.push(Op::Bin(op, a, b))
    }

    pub fn un(&mut self, op: UnOp, a: Value) -> Value {
        self.push(Op::Un(op, a))
    }

    pub fn icmp(&mut self, cc: IntCC, a: Value, b: Value) -> Value {
        self.push(Op::Icmp(cc, a, b))
    }

    pub fn select(&mut self, c: Value, a: Value, b: Value) -> Value {
        self.push(Op::Select(c, a, b))
    }

    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinOp::Add, a, b)
    }
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinOp::Sub, a, b)
    }
    pub fn and(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinOp::And, a, b)
    }
    pub fn or(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinOp::Or, a, b)
    }
    pub fn xor(&mut self, a: Value, b: Value) -> Value {
        self.bin(BinOp::Xor, a, b)
    }

    /// `a op imm` with the constant in `a`'s type.
    pub fn bin_imm(&mut self, op: BinOp, a: Value, imm: u128) -> Value {
        let ty = self.ty(a);
        let c = self.cst(ty, imm);
        self.bin(op, a, c)
    }

    /// Compare `a` with a constant of its own type.
    pub fn icmp_imm(&mut self, cc: IntCC, a: Value, imm: u128) -> Value {
        let ty = self.ty(a);
        let c = self.cst(ty, imm);
        self.icmp(cc, a, c)
    }

    /// Convert `v` to type `to` (zero-extending, truncating, or nothing).
    pub fn zext(&mut self, v: Value, to: Type) -> Value {
        let from = self.ty(v);
        if from == to {
            return v;
        }
        // An extension keeps the low bits of the extended value: convert that one instead.
        if let Some(Op::Conv(ConvOp::Zext, _, x)) = self.def(v) {
            let x = *x;
            return self.zext(x, to);
        }
        if from == Type::I128 && to.bits() <= 64 {
            if let Some(lo) = self.split.get(&v).map(|h| h[0]).or_else(|| self.low.get(&v).copied()) {
                return self.zext(lo, to);
            }
        }
        if from.bits() < to.bits() {
            self.push(Op::Conv(ConvOp::Zext, to, v))
        } else {
            self.push(Op::Conv(ConvOp::Trunc, to, v))
        }
    }

    /// Convert `v` to type `to` (sign-extending, truncating, or nothing).
    pub fn sext(&mut self, v: Value, to: Type) -> Value {
        let from = self.ty(v);
        if from == to {
            v
        } else if from.bits() < to.bits() {
            self.push(Op::Conv(ConvOp::Sext, to, v))
        } else {
            self.push(Op::Conv(ConvOp::Trunc, to, v))
        }
    }

    pub fn bitcast(&mut self, v: Value, to: Type) -> Value {
        if self.ty(v) == to {
            return v;
        }
        if let Some(Op::Conv(ConvOp::Bitcast, _, x)) = self.def(v) {
            let x = *x;
            if self.ty(x) == to {
                return x;
            }
        }
        self.push(Op::Conv(ConvOp::Bitcast, to, v))
    }

    pub fn load(&mut self, ty: Type, addr: Value) -> Value {
        self.push(Op::Load { ty, addr })
    }

    pub fn store(&mut self, addr: Value, val: Value) {
        self.push(Op::Store { addr, val });
    }

    /// Not of an `I8` boolean.
    pub fn not1(&mut self, v: Value) -> Value {
        self.bin_imm(BinOp::Xor, v, 1)
    }

    // ---- registers ----

    pub fn gpr64(&mut self, i: u8) -> Value {
        self.get(gpr_loc(i))
    }

    pub fn set_gpr64(&mut self, i: u8, v: Value) {
        if i == 2 {
            self.rdx = RdxKnown::Nothing;
        } else if i == 0 {
            if let RdxKnown::SignOfRax(_) = self.rdx {
                self.rdx = RdxKnown::Nothing;
            }
        }
        self.set(gpr_loc(i), v);
    }

    /// Read a GPR of any width, typed by its width.
    pub fn read_reg(&mut self, reg: Register) -> Value {
        let Some(i) = gpr_index(reg) else {
            return self.c64(0);
        };
        let full = self.gpr64(i);
        let ty = ity(reg.size() as u32);
        if is_high_byte(reg) {
            let s = self.bin_imm(BinOp::LShr, full, 8);
            return self.zext(s, Type::I8);
        }
        self.zext(full, ty)
    }

    /// Write a GPR of any width with x86-64 semantics (8/16-bit merge, 32-bit zero-extend).
    pub fn write_reg(&mut self, reg: Register, v: Value) {
        let Some(i) = gpr_index(reg) else {
            return;
        };
        let size = reg.size() as u32;
        let new = match size {
            8 => self.zext(v, Type::I64),
            4 => self.zext(v, Type::I64),
            _ => {
                let old = self.gpr64(i);
                let (m, sh) = if is_high_byte(reg) {
                    (0xff00u128, 8u128)
                } else if size == 1 {
                    (0xff, 0)
                } else {
                    (0xffff, 0)
                };
                let kept = self.bin_imm(BinOp::And, old, !m);
                let w = self.zext(v, Type::I64);
                let w = if sh != 0 { self.bin_imm(BinOp::Shl, w, sh) } else { w };
                self.or(kept, w)
            }
        };
        self.set_gpr64(i, new);
    }

    pub fn xmm(&mut self, i: u8) -> Value {
        let k = usize::from(i & 15);
        if let Some(v) = self.xmm_vals[k] {
            return v;
        }
        let v = self.get(xmm_loc(i));
        self.xmm_vals[k] = Some(v);
        v
    }

    pub fn set_xmm(&mut self, i: u8, v: Value) {
        self.set(xmm_loc(i), v);
        self.xmm_vals[usize::from(i & 15)] = Some(v);
    }

    /// Forget values cached for instructions that were removed from the block (from
    /// instruction index `mark` on).
    pub fn truncate(&mut self, mark: usize) {
        self.b.insts.truncate(mark);
        let gone = |v: &Value| v.0 as usize >= mark;
        for x in &mut self.xmm_vals {
            if x.as_ref().is_some_and(gone) {
                *x = None;
            }
        }
        self.split.retain(|k, h| !gone(k) && !h.iter().any(gone));
        self.low.retain(|k, x| !gone(k) && !gone(x));
    }

    /// The defining op of `v` in this block.
    pub fn def(&self, v: Value) -> Option<&Op> {
        self.b.insts.get(v.0 as usize).map(|i| &i.op)
    }

    // ---- memory operands ----

    /// Effective address of the instruction's memory operand (segment base included).
    pub fn mem_addr(&mut self, ins: &Instruction) -> Value {
        if let Some(a) = self.addr_cache {
            return a;
        }
        let a = self.compute_mem_addr(ins);
        self.addr_cache = Some(a);
        a
    }

    fn compute_mem_addr(&mut self, ins: &Instruction) -> Value {
        let base = ins.memory_base();
        let index = ins.memory_index();
        let disp = ins.memory_displacement64();
        let mut acc: Option<Value> = None;
        if base == Register::RIP || base == Register::EIP {
            acc = Some(self.pc(disp));
        } else {
            if base != Register::None {
                let b = self.read_reg(base);
                acc = Some(self.zext(b, Type::I64));
            }
            if index != Register::None {
                let x = self.read_reg(index);
                let x = self.zext(x, Type::I64);
                let scale = ins.memory_index_scale();
                let x = if scale > 1 {
                    self.bin_imm(BinOp::Shl, x, u128::from(scale.trailing_zeros()))
                } else {
                    x
                };
                acc = Some(match acc {
                    Some(a) => self.add(a, x),
                    None => x,
                });
            }
            if disp != 0 || acc.is_none() {
                acc = Some(match acc {
                    Some(a) => self.bin_imm(BinOp::Add, a, u128::from(disp)),
                    None => self.c64(disp),
                });
            }
        }
        let mut a = match acc {
            Some(a) => a,
            None => self.c64(0),
        };
        if ins.memory_base().size() == 4 || ins.memory_index().size() == 4 {
            a = self.bin_imm(BinOp::And, a, 0xffff_ffff);
        }
        match ins.memory_segment() {
            Register::FS => {
                let fs = self.get(Loc { offset: offsets::FS_BASE, ty: Type::I64 });
                a = self.add(a, fs);
            }
            Register::GS => {
                let gs = self.get(Loc { offset: offsets::GS_BASE, ty: Type::I64 });
                a = self.add(a, gs);
            }
            _ => {}
        }
        a
    }

    /// Read operand `i` as a value of type `ty` (immediates are truncated / sign-extended by
    /// the decoder to the operand size).
    pub fn read_op(&mut self, ins: &Instruction, i: u32, ty: Type) -> Value {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                if r.is_xmm() {
                    let x = self.xmm(xmm_num(r));
                    return self.zext(x, ty);
                }
                let v = self.read_reg(r);
                self.zext(v, ty)
            }
            OpKind::Memory => {
                let a = self.mem_addr(ins);
                self.load(ty, a)
            }
            _ => {
                let imm = ins.immediate(i);
                self.cst(ty, u128::from(imm))
            }
        }
    }

    /// Write `v` to operand `i` (register or memory).
    pub fn write_op(&mut self, ins: &Instruction, i: u32, v: Value) {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                self.write_reg(r, v);
            }
            OpKind::Memory => {
                let a = self.mem_addr(ins);
                self.store(a, v);
            }
            _ => {}
        }
    }

    /// Operand size in bytes of operand `i` (register or memory).
    pub fn op_size(&self, ins: &Instruction, i: u32) -> u32 {
        match ins.op_kind(i) {
            OpKind::Register => ins.op_register(i).size() as u32,
            OpKind::Memory => ins.memory_size().size() as u32,
            OpKind::Immediate8 => 1,
            OpKind::Immediate16 => 2,
            OpKind::Immediate32 => 4,
            _ => 8,
        }
    }

    // ---- lazy flags ----

    /// Record a flag producer: write the lazy-flags state and remember it for consumers.
    pub fn set_flags(&mut self, op: CcOp, dst: Value, src1: Value, src2: Value) {
        let ty = self.ty(dst);
        let size = ty.bytes();
        let o = self.c64(op.with_size(size));
        self.set(CC_OP, o);
        let d = self.zext(dst, Type::I64);
        self.set(CC_DST, d);
        let s1 = self.zext(src1, Type::I64);
        self.set(CC_SRC1, s1);
        let s2 = self.zext(src2, Type::I64);
        self.set(CC_SRC2, s2);
        self.flags = Some(Flags { op, ty, dst, src1, src2 });
    }

    /// Record materialized arithmetic flags (`I64`, RFLAGS bit positions).
    pub fn set_eflags(&mut self, f: Value) {
        let f = self.bin_imm(BinOp::And, f, u128::from(bits::ARITH));
        let zero = self.c64(0);
        let o = self.c64(CcOp::Eflags.with_size(8));
        self.set(CC_OP, o);
        self.set(CC_DST, f);
        self.set(CC_SRC1, zero);
        self.set(CC_SRC2, zero);
        self.flags = Some(Flags { op: CcOp::Eflags, ty: Type::I64, dst: f, src1: zero, src2: zero });
    }

    /// The current arithmetic flags, materialized (`I64`, only ARITH bits meaningful), when
    /// any flag outside `replaced` may still be read; else a zero constant.
    pub fn old_eflags_except(&mut self, replaced: u64) -> Value {
        if self.live_after & bits::ARITH & !replaced == 0 {
            return self.c64(0);
        }
        self.cur_eflags()
    }

    /// The current arithmetic flags, materialized (`I64`, only ARITH bits meaningful).
    pub fn cur_eflags(&mut self) -> Value {
        if let Some(f) = self.flags {
            if f.op == CcOp::Eflags {
                return f.dst;
            }
        }
        let r = self.push(Op::Rflags);
        self.bin_imm(BinOp::And, r, u128::from(bits::ARITH))
    }

    /// Build materialized flags from I8 booleans (None = 0).
    pub fn pack_flags(&mut self, parts: &[(Option<Value>, u64)]) -> Value {
        let mut acc = self.c64(0);
        for (v, bit) in parts {
            if let Some(v) = v {
                let w = self.zext(*v, Type::I64);
                let sh = bit.trailing_zeros();
                let w = if sh != 0 { self.bin_imm(BinOp::Shl, w, u128::from(sh)) } else { w };
                acc = self.or(acc, w);
            }
        }
        acc
    }

    /// Parity flag (I8) of the low byte of `v`.
    pub fn parity(&mut self, v: Value) -> Value {
        let b = self.zext(v, Type::I8);
        let p = self.un(UnOp::Popcnt, b);
        let p = self.bin_imm(BinOp::And, p, 1);
        self.icmp_imm(IntCC::Eq, p, 0)
    }

    fn msb(&mut self, v: Value) -> Value {
        self.icmp_imm(IntCC::Slt, v, 0)
    }

    fn eflag_bit(&mut self, d: Value, bit: u64) -> Value {
        let s = self.bin_imm(BinOp::LShr, d, u128::from(bit.trailing_zeros()));
        let s = self.zext(s, Type::I8);
        self.bin_imm(BinOp::And, s, 1)
    }

    fn flag_cf(&mut self, f: Flags) -> Value {
        let (d, a, b) = (f.dst, f.src1, f.src2);
        match f.op {
            CcOp::Eflags => self.eflag_bit(d, bits::CF),
            CcOp::Add => self.icmp(IntCC::Ult, d, a),
            CcOp::Sub => self.icmp(IntCC::Ult, a, b),
            CcOp::Adc => {
                let t = self.sub(d, a);
                let cin = self.sub(t, b);
                let le = self.icmp(IntCC::Ule, d, a);
                let lt = self.icmp(IntCC::Ult, d, a);
                self.select(cin, le, lt)
            }
            CcOp::Sbb => {
                let t = self.sub(a, b);
                let cin = self.sub(t, d);
                let le = self.icmp(IntCC::Ule, a, b);
                let lt = self.icmp(IntCC::Ult, a, b);
                self.select(cin, le, lt)
            }
            CcOp::Logic => self.c8(0),
            CcOp::Inc | CcOp::Dec => {
                let x = self.bin_imm(BinOp::And, b, 1);
                self.icmp_imm(IntCC::Ne, x, 0)
            }
            CcOp::Shl => self.msb(a),
            CcOp::Shr | CcOp::Sar => {
                let x = self.bin_imm(BinOp::And, a, 1);
                self.icmp_imm(IntCC::Ne, x, 0)
            }
            CcOp::Mul => self.icmp_imm(IntCC::Ne, a, 0),
        }
    }

    fn flag_of(&mut self, f: Flags) -> Value {
        let (d, a, b) = (f.dst, f.src1, f.src2);
        match f.op {
            CcOp::Eflags => self.eflag_bit(d, bits::OF),
            CcOp::Add | CcOp::Adc => {
                let x = self.xor(a, b);
                let nx = self.un(UnOp::Not, x);
                let y = self.xor(a, d);
                let z = self.and(nx, y);
                self.msb(z)
            }
            CcOp::Sub | CcOp::Sbb => {
                let x = self.xor(a, b);
                let y = self.xor(a, d);
                let z = self.and(x, y);
                self.msb(z)
            }
            CcOp::Logic | CcOp::Sar => self.c8(0),
            CcOp::Inc => {
                let m = 1u128 << (f.ty.bits() - 1);
                self.icmp_imm(IntCC::Eq, d, m)
            }
            CcOp::Dec => {
                let m = (1u128 << (f.ty.bits() - 1)) - 1;
                self.icmp_imm(IntCC::Eq, d, m)
            }
            CcOp::Shl => {
                let cf = self.msb(a);
                let s = self.msb(d);
                self.xor(cf, s)
            }
            CcOp::Shr => self.msb(b),
            CcOp::Mul => self.icmp_imm(IntCC::Ne, a, 0),
        }
    }

    fn flag_zf(&mut self, f: Flags) -> Value {
        if f.op == CcOp::Eflags {
            return self.eflag_bit(f.dst, bits::ZF);
        }
        self.icmp_imm(IntCC::Eq, f.dst, 0)
    }

    fn flag_sf(&mut self, f: Flags) -> Value {
        if f.op == CcOp::Eflags {
            return self.eflag_bit(f.dst, bits::SF);
        }
        self.msb(f.dst)
    }

    fn flag_pf(&mut self, f: Flags) -> Value {
        if f.op == CcOp::Eflags {
            return self.eflag_bit(f.dst, bits::PF);
        }
        self.parity(f.dst)
    }

    /// CF as an I8 0/1.
    pub fn carry(&mut self) -> Value {
        self.cond(2)
    }

    /// Evaluate x86 condition `cc` (0..=15) → I8 0/1.
    pub fn cond(&mut self, cc: u8) -> Value {
        let Some(f) = self.flags else {
            return self.push(Op::EvalCond(cc & 15));
        };
        let cc = cc & 15;
        if let Some((fl, a, b)) = self.fcmp {
            if f.dst == fl {
                // ZF = unordered or equal, CF = unordered or less, PF = unordered.
                let direct = match cc {
                    2 => Some((FloatCC::Unle, b, a)),
                    3 => Some((FloatCC::Le, b, a)),
                    6 => Some((FloatCC::Unlt, b, a)),
                    7 => Some((FloatCC::Lt, b, a)),
                    10 => Some((FloatCC::Uno, a, b)),
                    11 => Some((FloatCC::Ord, a, b)),
                    _ => None,
                };
                if let Some((c, x, y)) = direct {
                    return self.push(Op::Fcmp(c, x, y));
                }
            }
        }
        // Direct comparisons for the common producers.
        if f.op == CcOp::Sub {
            let (a, b) = (f.src1, f.src2);
            let direct = match cc {
                2 => Some(IntCC::Ult),
                3 => Some(IntCC::Uge),
                4 => Some(IntCC::Eq),
                5 => Some(IntCC::Ne),
                6 => Some(IntCC::Ule),
                7 => Some(IntCC::Ugt),
                12 => Some(IntCC::Slt),
                13 => Some(IntCC::Sge),
                14 => Some(IntCC::Sle),
                15 => Some(IntCC::Sgt),
                _ => None,
            };
            if let Some(c) = direct {
                return self.icmp(c, a, b);
            }
        }
        if f.op == CcOp::Logic {
            let d = f.dst;
            let direct = match cc {
                4 | 6 => Some(IntCC::Eq),
                5 | 7 => Some(IntCC::Ne),
                8 | 12 => Some(IntCC::Slt),
                9 | 13 => Some(IntCC::Sge),
                14 => Some(IntCC::Sle),
                15 => Some(IntCC::Sgt),
                _ => None,
            };
            if let Some(c) = direct {
                return self.icmp_imm(c, d, 0);
            }
            match cc {
                0 | 2 => return self.c8(0),
                1 | 3 => return self.c8(1),
                _ => {}
            }
        }
        let base = match cc >> 1 {
            0 => self.flag_of(f),
            1 => self.flag_cf(f),
            2 => self.flag_zf(f),
            3 => {
                let c = self.flag_cf(f);
                let z = self.flag_zf(f);
                self.or(c, z)
            }
            4 => self.flag_sf(f),
            5 => self.flag_pf(f),
            6 => {
                let s = self.flag_sf(f);
                let o = self.flag_of(f);
                self.xor(s, o)
            }
            _ => {
                let s = self.flag_sf(f);
                let o = self.flag_of(f);
                let l = self.xor(s, o);
                let z = self.flag_zf(f);
                self.or(z, l)
            }
        };
        if cc & 1 == 1 {
            self.not1(base)
        } else {
            base
        }
    }

    /// Direction flag as an I8 0/1.
    pub fn df(&mut self) -> Value {
        let o = self.get(RFLAGS_OTHER);
        let s = self.bin_imm(BinOp::LShr, o, 10);
        let s = self.zext(s, Type::I8);
        self.bin_imm(BinOp::And, s, 1)
    }
}

/// Number of an xmm register (0..=15).
pub(crate) fn xmm_num(r: Register) -> u8 {
    u8::try_from(r.number() & 15).unwrap_or(0)
}
