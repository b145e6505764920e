//! 128-bit values (xmm registers, SSE loads and stores) carried as two 64-bit halves.

use super::*;

impl Tr<'_, '_> {
    /// 128-bit operations done on 64-bit halves; `None` when `op` is not one of them.
    #[allow(clippy::type_complexity)]
    pub(super) fn op_wide(
        &mut self,
        blk: &Block,
        op: &Op,
        vals: &[Option<Val>],
    ) -> Result<Option<Option<Val>>, CodegenError> {
        let wide = |lo, hi| Ok(Some(Some(Val::Wide(lo, hi))));
        match op {
            Op::Const { ty: Type::I128, bits } => {
                let lo = self.iconst(*bits as u64);
                let hi = self.iconst((*bits >> 64) as u64);
                wide(lo, hi)
            }
            Op::Get(loc) if loc.ty == Type::I128 => {
                let slot = self.locs.all[&loc.offset];
                let hi = slot.hi.ok_or_else(|| self.bad(blk, "128-bit location without halves"))?;
                let lo = self.b.use_var(slot.var);
                let hi = self.b.use_var(hi);
                wide(lo, hi)
            }
            Op::Set(loc, v) if loc.ty == Type::I128 => {
                let slot = self.locs.all[&loc.offset];
                let hi = slot.hi.ok_or_else(|| self.bad(blk, "128-bit location without halves"))?;
                let (l, h) = self.wide(blk, vals, v)?;
                self.b.def_var(slot.var, l);
                self.b.def_var(hi, h);
                if !self.dirty.contains(&loc.offset) {
                    self.dirty.push(loc.offset);
                }
                Ok(Some(None))
            }
            Op::Load { ty: Type::I128, addr } => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let (lo, hi) = self.guest_load_pair(self.order_of(addr), a);
                wide(lo, hi)
            }
            Op::Store { addr, val } if self.is_wide(blk, vals, val)? => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let (lo, hi) = self.wide(blk, vals, val)?;
                self.guest_store_pair(self.order_of(addr), lo, hi, a);
                Ok(Some(None))
            }
            Op::AtomicCas { addr, expected, new } if self.is_wide(blk, vals, expected)? => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let (el, eh) = self.wide(blk, vals, expected)?;
                let (nl, nh) = self.wide(blk, vals, new)?;
                if self.sh.cas_128 {
                    let e = self.b.ins().iconcat(el, eh);
                    let n = self.b.ins().iconcat(nl, nh);
                    let old = self.b.ins().atomic_cas(guest_flags(), a, e, n);
                    let (lo, hi) = self.b.ins().isplit(old);
                    return wide(lo, hi);
                }
                // Hosts without a 128-bit compare-and-swap: the same result, but not atomic
                // against other threads (`cmpxchg16b` is rare outside lock-free libraries).
                // Under x86-TSO it is still a full barrier, as a locked instruction is.
                if self.sh.order != Ordering::Plain {
                    self.b.ins().fence();
                }
                let lo = self.b.ins().load(types::I64, guest_flags(), a, 0);
                let hi = self.b.ins().load(types::I64, guest_flags(), a, 8);
                let dl = self.b.ins().bxor(lo, el);
                let dh = self.b.ins().bxor(hi, eh);
                let d = self.b.ins().bor(dl, dh);
                let eq = self.b.ins().icmp_imm_u(CIntCC::Equal, d, 0);
                let sl = self.b.ins().select(eq, nl, lo);
                let sh = self.b.ins().select(eq, nh, hi);
                self.b.ins().store(guest_flags(), sl, a, 0);
                self.b.ins().store(guest_flags(), sh, a, 8);
                wide(lo, hi)
            }
            Op::Bin(op @ (BinOp::And | BinOp::Or | BinOp::Xor), x, y)
                if self.is_wide(blk, vals, x)? && self.is_wide(blk, vals, y)? =>
            {
                let (xl, xh) = self.wide(blk, vals, x)?;
                let (yl, yh) = self.wide(blk, vals, y)?;
                let (lo, hi) = match op {
                    BinOp::And => (self.b.ins().band(xl, yl), self.b.ins().band(xh, yh)),
                    BinOp::Or => (self.b.ins().bor(xl, yl), self.b.ins().bor(xh, yh)),
                    _ => (self.b.ins().bxor(xl, yl), self.b.ins().bxor(xh, yh)),
                };
                wide(lo, hi)
            }
            Op::Bin(op @ (BinOp::Shl | BinOp::LShr | BinOp::AShr), x, amount)
                if self.is_wide(blk, vals, x)? =>
            {
                let Some(Op::Const { bits, .. }) = blk.insts.get(amount.0 as usize).map(|i| &i.op) else {
                    return Ok(None);
                };
                let k = (*bits % 128) as i64;
                let (lo, hi) = self.wide(blk, vals, x)?;
                let (lo, hi) = self.shift_wide(*op, lo, hi, k);
                wide(lo, hi)
            }
            Op::Un(UnOp::Not, x) if self.is_wide(blk, vals, x)? => {
                let (lo, hi) = self.wide(blk, vals, x)?;
                let lo = self.b.ins().bnot(lo);
                let hi = self.b.ins().bnot(hi);
                wide(lo, hi)
            }
            Op::Conv(c @ (ConvOp::Zext | ConvOp::Sext), Type::I128, x) if !self.is_wide(blk, vals, x)? => {
                let v = self.val(blk, vals, x)?;
                let from = self.b.func.dfg.value_type(v);
                if !from.is_int() {
                    return Ok(None);
                }
                let (lo, hi) = if *c == ConvOp::Zext {
                    let lo = if from == types::I64 { v } else { self.b.ins().uextend(types::I64, v) };
                    (lo, self.iconst(0))
                } else {
                    let lo = if from == types::I64 { v } else { self.b.ins().sextend(types::I64, v) };
                    (lo, self.b.ins().sshr_imm_u(lo, 63))
                };
                wide(lo, hi)
            }
            Op::Conv(ConvOp::Zext | ConvOp::Sext | ConvOp::Bitcast, Type::I128, x)
                if self.is_wide(blk, vals, x)? =>
            {
                let (lo, hi) = self.wide(blk, vals, x)?;
                wide(lo, hi)
            }
            Op::Conv(ConvOp::Trunc, to, x) if to.is_float() || !self.is_wide(blk, vals, x)? => Ok(None),
            Op::Conv(ConvOp::Trunc, to, x) => {
                let (lo, hi) = self.wide(blk, vals, x)?;
                let r = match to {
                    Type::I128 => return wide(lo, hi),
                    Type::I64 => lo,
                    _ => self.b.ins().ireduce(cl_type(*to), lo),
                };
                Ok(Some(Some(Val::One(r))))
            }
            Op::Select(c, x, y) if self.is_wide(blk, vals, x)? && self.is_wide(blk, vals, y)? => {
                let c = self.val(blk, vals, c)?;
                let c = self.truthy(c);
                let (xl, xh) = self.wide(blk, vals, x)?;
                let (yl, yh) = self.wide(blk, vals, y)?;
                let lo = self.b.ins().select(c, xl, yl);
                let hi = self.b.ins().select(c, xh, yh);
                wide(lo, hi)
            }
            Op::Icmp(cc @ (IntCC::Eq | IntCC::Ne), x, y)
                if self.is_wide(blk, vals, x)? && self.is_wide(blk, vals, y)? =>
            {
                let (xl, xh) = self.wide(blk, vals, x)?;
                let (yl, yh) = self.wide(blk, vals, y)?;
                let l = self.b.ins().bxor(xl, yl);
                let h = self.b.ins().bxor(xh, yh);
                let d = self.b.ins().bor(l, h);
                let r = self.b.ins().icmp_imm_u(int_cc(*cc), d, 0);
                Ok(Some(Some(Val::One(r))))
            }
            _ => Ok(None),
        }
    }

    /// `(lo, hi)` shifted by the constant `k` (0..128) bits.
    pub(super) fn shift_wide(&mut self, op: BinOp, lo: CValue, hi: CValue, k: i64) -> (CValue, CValue) {
        if k == 0 {
            return (lo, hi);
        }
        match op {
            BinOp::Shl if k >= 64 => {
                let h = if k == 64 { lo } else { self.b.ins().ishl_imm_u(lo, k - 64) };
                (self.iconst(0), h)
            }
            BinOp::Shl => {
                let l = self.b.ins().ishl_imm_u(lo, k);
                let h1 = self.b.ins().ishl_imm_u(hi, k);
                let h2 = self.b.ins().ushr_imm_u(lo, 64 - k);
                let h = self.b.ins().bor(h1, h2);
                (l, h)
            }
            BinOp::LShr if k >= 64 => {
                let l = if k == 64 { hi } else { self.b.ins().ushr_imm_u(hi, k - 64) };
                (l, self.iconst(0))
            }
            BinOp::AShr if k >= 64 => {
                let l = if k == 64 { hi } else { self.b.ins().sshr_imm_u(hi, k - 64) };
                (l, self.b.ins().sshr_imm_u(hi, 63))
            }
            _ => {
                let l1 = self.b.ins().ushr_imm_u(lo, k);
                let l2 = self.b.ins().ishl_imm_u(hi, 64 - k);
                let l = self.b.ins().bor(l1, l2);
                let h = if op == BinOp::AShr { self.b.ins().sshr_imm_u(hi, k) } else { self.b.ins().ushr_imm_u(hi, k) };
                (l, h)
            }
        }
    }
}
