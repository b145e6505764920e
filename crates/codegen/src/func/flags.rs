//! Lazy x86 flags: conditions computed inline when the block's flag producer is known, else by
//! the runtime's `hc_eval_cond`.

use super::*;

/// Lazy-flag locations, with the type they are always accessed with.
pub(super) const FLAG_LOCS: [u32; 4] = [offsets::CC_OP, offsets::CC_DST, offsets::CC_SRC1, offsets::CC_SRC2];

/// Constant-folding knowledge of the lazy flags inside one block.
#[derive(Clone, Copy, Default)]
pub(super) struct FlagKnowledge {
    /// `cc_op` when the block set it to a constant and nothing clobbered it since.
    pub(super) cc_op: Option<u64>,
}

pub(super) fn int_cc(cc: IntCC) -> CIntCC {
    match cc {
        IntCC::Eq => CIntCC::Equal,
        IntCC::Ne => CIntCC::NotEqual,
        IntCC::Ult => CIntCC::UnsignedLessThan,
        IntCC::Ule => CIntCC::UnsignedLessThanOrEqual,
        IntCC::Ugt => CIntCC::UnsignedGreaterThan,
        IntCC::Uge => CIntCC::UnsignedGreaterThanOrEqual,
        IntCC::Slt => CIntCC::SignedLessThan,
        IntCC::Sle => CIntCC::SignedLessThanOrEqual,
        IntCC::Sgt => CIntCC::SignedGreaterThan,
        IntCC::Sge => CIntCC::SignedGreaterThanOrEqual,
    }
}

impl Tr<'_, '_> {
    /// `EvalCond(cc)`: inline when the block set `cc_op` to a known constant and the
    /// condition is simple for that operation, else ask the runtime.
    pub(super) fn eval_cond(&mut self, cc: u8, cc_op: Option<u64>) -> CValue {
        if let Some(v) = cc_op.and_then(|op| self.inline_cond(cc, op)) {
            return v;
        }
        let mut args = vec![self.b.ins().iconst(types::I64, i64::from(cc & 15))];
        for off in FLAG_LOCS {
            let var = self.locs.all[&off].var;
            args.push(self.b.use_var(var));
        }
        let call = self.call_rt(Import::EvalCond, &args);
        let r = self.b.inst_results(call)[0];
        self.b.ins().icmp_imm_u(CIntCC::NotEqual, r, 0)
    }

    pub(super) fn flag_var(&mut self, off: u32, ty: ir::Type) -> CValue {
        let var = self.locs.all[&off].var;
        let v = self.b.use_var(var);
        if ty == types::I64 {
            v
        } else {
            self.b.ins().ireduce(ty, v)
        }
    }

    pub(super) fn inline_cond(&mut self, cc: u8, cc_op: u64) -> Option<CValue> {
        let (kind, bits) = CcOp::decode(cc_op)?;
        let ty = ir::Type::int(u16::try_from(bits).ok()?)?;
        let cond = Cond::from_u8(cc);
        let icmp = |this: &mut Self, c: CIntCC, a: CValue, b: CValue| this.b.ins().icmp(c, a, b);
        match kind {
            CcOp::Sub => {
                let c = match cond {
                    Cond::B => CIntCC::UnsignedLessThan,
                    Cond::Ae => CIntCC::UnsignedGreaterThanOrEqual,
                    Cond::E => CIntCC::Equal,
                    Cond::Ne => CIntCC::NotEqual,
                    Cond::Be => CIntCC::UnsignedLessThanOrEqual,
                    Cond::A => CIntCC::UnsignedGreaterThan,
                    Cond::L => CIntCC::SignedLessThan,
                    Cond::Ge => CIntCC::SignedGreaterThanOrEqual,
                    Cond::Le => CIntCC::SignedLessThanOrEqual,
                    Cond::G => CIntCC::SignedGreaterThan,
                    _ => return None,
                };
                let a = self.flag_var(offsets::CC_SRC1, ty);
                let b = self.flag_var(offsets::CC_SRC2, ty);
                Some(icmp(self, c, a, b))
            }
            CcOp::Logic => {
                let d = self.flag_var(offsets::CC_DST, ty);
                let zero = self.b.ins().iconst(ty, 0);
                let c = match cond {
                    Cond::O | Cond::B => return Some(self.b.ins().iconst(types::I8, 0)),
                    Cond::No | Cond::Ae => return Some(self.b.ins().iconst(types::I8, 1)),
                    Cond::E | Cond::Be => CIntCC::Equal,
                    Cond::Ne | Cond::A => CIntCC::NotEqual,
                    Cond::S | Cond::L => CIntCC::SignedLessThan,
                    Cond::Ns | Cond::Ge => CIntCC::SignedGreaterThanOrEqual,
                    Cond::Le => CIntCC::SignedLessThanOrEqual,
                    Cond::G => CIntCC::SignedGreaterThan,
                    Cond::P | Cond::Np => return None,
                };
                Some(icmp(self, c, d, zero))
            }
            CcOp::Add | CcOp::Inc | CcOp::Dec => {
                let d = self.flag_var(offsets::CC_DST, ty);
                let zero = self.b.ins().iconst(ty, 0);
                let c = match cond {
                    Cond::E => CIntCC::Equal,
                    Cond::Ne => CIntCC::NotEqual,
                    Cond::S => CIntCC::SignedLessThan,
                    Cond::Ns => CIntCC::SignedGreaterThanOrEqual,
                    _ => return None,
                };
                Some(icmp(self, c, d, zero))
            }
            _ => None,
        }
    }
}
