//! Floating point: x86's NaN results on hosts whose NaN rules differ (checked on a cold path,
//! deferred through chains of float arithmetic), rounding and float-to-integer conversion.

use super::*;

/// Whether `op` is float arithmetic whose NaN result is made x86's (see `Tr::x86_nan`).
pub(super) fn nan_fixed(op: &Op) -> bool {
    matches!(op, Op::Bin(BinOp::FAdd | BinOp::FSub | BinOp::FMul | BinOp::FDiv, ..) | Op::Un(UnOp::FSqrt, _))
}

/// Per instruction of `blk`: whether its NaN fix-up may be left to the instructions using
/// it. True for float arithmetic whose result only feeds other NaN-fixed float arithmetic,
/// directly or through bit casts and widenings that end in `Set`s the block overwrites before
/// anything reads the location. A NaN result makes every consumer's result NaN, whose cold
/// fix-up then computes x86's NaN of the deferred operand first (see `Tr::x86_value`).
pub(super) fn deferrable(blk: &Block) -> Vec<bool> {
    let n = blk.insts.len();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, inst) in blk.insts.iter().enumerate() {
        for v in operands(&inst.op) {
            if let Some(u) = users.get_mut(v.0 as usize) {
                u.push(k);
            }
        }
    }
    let mut escapes = vec![false; n];
    let term_uses: Vec<Value> = match &blk.term {
        Terminator::Branch { cond, .. } => vec![*cond],
        Terminator::JumpIndirect(v) | Terminator::Return(v) => vec![*v],
        Terminator::Call { target: CallTarget::Indirect(v), .. } => vec![*v],
        _ => Vec::new(),
    };
    for v in term_uses {
        if let Some(e) = escapes.get_mut(v.0 as usize) {
            *e = true;
        }
    }
    // A `Set` the block overwrites before reading the location or calling a helper.
    let dead_set = |k: usize| -> bool {
        let Op::Set(loc, _) = &blk.insts[k].op else { return false };
        for inst in &blk.insts[k + 1..] {
            match &inst.op {
                Op::Set(l, _) if l.offset == loc.offset => return true,
                Op::Get(l) if l.offset == loc.offset => return false,
                Op::Helper(..) | Op::EvalCond(_) | Op::Rflags => return false,
                _ => {}
            }
        }
        false
    };
    // Whether value `k` only reaches dead `Set`s, through bit casts and widenings.
    fn sinks(blk: &Block, users: &[Vec<usize>], escapes: &[bool], k: usize, dead_set: &dyn Fn(usize) -> bool) -> bool {
        !escapes[k]
            && users[k].iter().all(|&u| match &blk.insts[u].op {
                Op::Conv(ConvOp::Bitcast | ConvOp::Zext, _, _) => sinks(blk, users, escapes, u, dead_set),
                Op::Set(..) => dead_set(u),
                _ => false,
            })
    }
    (0..n)
        .map(|k| {
            nan_fixed(&blk.insts[k].op)
                && !escapes[k]
                && !users[k].is_empty()
                && users[k].iter().all(|&u| {
                    let op = &blk.insts[u].op;
                    nan_fixed(op)
                        || matches!(op, Op::Conv(ConvOp::Bitcast | ConvOp::Zext, _, _))
                            && sinks(blk, &users, &escapes, u, &dead_set)
                })
        })
        .collect()
}

pub(super) fn float_cc(cc: FloatCC) -> CFloatCC {
    match cc {
        FloatCC::Eq => CFloatCC::Equal,
        FloatCC::Lt => CFloatCC::LessThan,
        FloatCC::Le => CFloatCC::LessThanOrEqual,
        FloatCC::Uno => CFloatCC::Unordered,
        FloatCC::Une => CFloatCC::NotEqual,
        FloatCC::Unlt => CFloatCC::UnorderedOrGreaterThanOrEqual,
        FloatCC::Unle => CFloatCC::UnorderedOrGreaterThan,
        FloatCC::Ord => CFloatCC::Ordered,
    }
}

impl Tr<'_, '_> {
    /// Branch to a cold block when `nan_of` is NaN; there `fix` computes the replacement for
    /// `r`, which is what the join block receives. The common, non-NaN path costs one compare
    /// and one branch.
    pub(super) fn on_nan(&mut self, r: CValue, nan_of: CValue, fix: impl FnOnce(&mut Self) -> CValue) -> CValue {
        let ty = self.b.func.dfg.value_type(r);
        let is_nan = self.b.ins().fcmp(CFloatCC::Unordered, nan_of, nan_of);
        let cold = self.b.create_block();
        let join = self.b.create_block();
        self.b.set_cold_block(cold);
        let out = self.b.append_block_param(join, ty);
        self.b.ins().brif(is_nan, cold, &[], join, &[ir::BlockArg::Value(r)]);
        self.b.switch_to_block(cold);
        self.b.seal_block(cold);
        let fixed = fix(self);
        self.b.ins().jump(join, &[ir::BlockArg::Value(fixed)]);
        self.b.switch_to_block(join);
        self.b.seal_block(join);
        out
    }

    /// x86's NaN result for an arithmetic result `r` of operands `a` (and `b`): the first NaN
    /// operand made quiet, else the default NaN (negative, quiet). Only on hosts that differ.
    /// The operand of `v`'s defining instruction when that is a bit cast.
    pub(super) fn bitcast_source(&self, v: CValue) -> Option<CValue> {
        let dfg = &self.b.func.dfg;
        let ir::ValueDef::Result(inst, 0) = dfg.value_def(v) else { return None };
        match dfg.insts[inst] {
            ir::InstructionData::LoadNoOffset { opcode: ir::Opcode::Bitcast, arg, .. } => Some(arg),
            _ => None,
        }
    }

    pub(super) fn x86_nan(&mut self, r: CValue, a: CValue, b: Option<CValue>) -> CValue {
        if !self.sh.fix_nans {
            return r;
        }
        let ty = self.b.func.dfg.value_type(r);
        if (ty == types::F32 || ty == types::F64) && self.defer.get(self.inst_index) == Some(&true) {
            self.deferred.insert(r, (a, b));
            return r;
        }
        self.on_nan(r, r, |t| {
            let a = t.x86_value(a);
            let b = b.map(|b| t.x86_value(b));
            t.x86_pick(ty, a, b)
        })
    }

    /// x86's NaN for an operation on `a` (and `b`) that produced a NaN: the first NaN operand
    /// made quiet, else the default NaN (negative, quiet).
    pub(super) fn x86_pick(&mut self, ty: ir::Type, a: CValue, b: Option<CValue>) -> CValue {
        let it = ty.as_int();
        let (quiet, default) = if ty == types::F32 {
            (0x0040_0000i64, 0xffc0_0000u32 as i32 as i64)
        } else {
            (0x0008_0000_0000_0000i64, 0xfff8_0000_0000_0000u64 as i64)
        };
        let quiet = self.b.ins().iconst(it, quiet);
        let mut pick = self.b.ins().iconst(it, default);
        for op in [b, Some(a)].into_iter().flatten() {
            let bits = self.b.ins().bitcast(it, MemFlagsData::new(), op);
            let q = self.b.ins().bor(bits, quiet);
            let is_nan = self.b.ins().fcmp(CFloatCC::Unordered, op, op);
            pick = self.b.ins().select(is_nan, q, pick);
        }
        self.b.ins().bitcast(ty, MemFlagsData::new(), pick)
    }

    /// Value `v` as x86 computes it: a result whose NaN fix-up was deferred gets it here
    /// (branch-free, on a cold path).
    pub(super) fn x86_value(&mut self, v: CValue) -> CValue {
        let Some((a, b)) = self.deferred.get(&v).copied() else { return v };
        let a = self.x86_value(a);
        let b = b.map(|b| self.x86_value(b));
        let ty = self.b.func.dfg.value_type(v);
        let pick = self.x86_pick(ty, a, b);
        let is_nan = self.b.ins().fcmp(CFloatCC::Unordered, v, v);
        self.b.ins().select(is_nan, pick, v)
    }

    /// x86's result of converting NaN `x` between f32 and f64: sign and leading payload bits
    /// kept, made quiet. Only on hosts that differ.
    pub(super) fn x86_nan_convert(&mut self, r: CValue, x: CValue) -> CValue {
        if !self.sh.fix_nans {
            return r;
        }
        self.on_nan(r, x, |t| {
            let from = t.b.func.dfg.value_type(x);
            let to = t.b.func.dfg.value_type(r);
            let bits = t.b.ins().bitcast(from.as_int(), MemFlagsData::new(), x);
            let nan_bits = if from == types::F32 {
                let w = t.b.ins().uextend(types::I64, bits);
                let sign = t.b.ins().ushr_imm_u(w, 31);
                let sign = t.b.ins().ishl_imm_u(sign, 63);
                let payload = t.b.ins().band_imm_u(w, 0x003f_ffff);
                let payload = t.b.ins().ishl_imm_u(payload, 29);
                let v = t.b.ins().bor(sign, payload);
                t.b.ins().bor_imm_u(v, 0x7ff8_0000_0000_0000)
            } else {
                let sign = t.b.ins().ushr_imm_u(bits, 63);
                let sign = t.b.ins().ishl_imm_u(sign, 31);
                let payload = t.b.ins().ushr_imm_u(bits, 29);
                let payload = t.b.ins().band_imm_u(payload, 0x003f_ffff);
                let v = t.b.ins().bor(sign, payload);
                let v = t.b.ins().bor_imm_u(v, 0x7fc0_0000);
                t.b.ins().ireduce(types::I32, v)
            };
            t.b.ins().bitcast(to, MemFlagsData::new(), nan_bits)
        })
    }

    pub(super) fn fconst(&mut self, ty: ir::Type, v: f64) -> CValue {
        if ty == types::F32 {
            self.b.ins().f32const(v as f32)
        } else {
            self.b.ins().f64const(v)
        }
    }

    /// Round to the nearest integer, ties to even, as x86 does under the default MXCSR,
    /// without relying on a host rounding instruction: for |x| < 2^(mantissa bits) adding and
    /// subtracting 2^(mantissa bits) rounds; larger values (and NaN) are integral already.
    pub(super) fn round_even(&mut self, x: CValue) -> CValue {
        let ty = self.b.func.dfg.value_type(x);
        let big = if ty == types::F32 { 8388608.0 } else { 4503599627370496.0 };
        let big = self.fconst(ty, big);
        let ax = self.b.ins().fabs(x);
        let s = self.b.ins().fadd(ax, big);
        let r = self.b.ins().fsub(s, big);
        let r = self.b.ins().fcopysign(r, x);
        let small = self.b.ins().fcmp(CFloatCC::LessThan, ax, big);
        self.b.ins().select(small, r, x)
    }

    /// Truncating float → signed integer with the x86 "integer indefinite" result (MIN) for
    /// NaN and out-of-range inputs. Saturating conversion already gives MIN for too-negative
    /// inputs; NaN and too-large ones are patched.
    pub(super) fn float_to_sint(&mut self, x: CValue, to: ir::Type) -> CValue {
        let ty = self.b.func.dfg.value_type(x);
        let limit = if to == types::I32 { 2147483648.0 } else { 9223372036854775808.0 };
        let limit = self.fconst(ty, limit);
        let sat = self.b.ins().fcvt_to_sint_sat(to, x);
        let bad = self.b.ins().fcmp(CFloatCC::UnorderedOrGreaterThanOrEqual, x, limit);
        let min = if to == types::I32 { i64::from(i32::MIN) } else { i64::MIN };
        let min = self.b.ins().iconst(to, min);
        self.b.ins().select(bad, min, sat)
    }
}
