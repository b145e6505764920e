//! Guest memory accesses and their order: plain, or x86-TSO on weak hosts (see
//! `target::Ordering`), with accesses through `rsp` exempt.

use super::*;

/// Memory flags for guest memory: possibly unaligned, little-endian.
pub(super) fn guest_flags() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    f.set_endianness(ir::Endianness::Little);
    f
}

/// Per instruction of `blk`: whether it is an integer load some user bit-casts to a float
/// (then loaded as the float: the integer is the bit cast, often unused).
pub(super) fn float_loads(blk: &Block) -> Vec<bool> {
    let mut r = vec![false; blk.insts.len()];
    for inst in &blk.insts {
        if let Op::Conv(ConvOp::Bitcast, Type::F32 | Type::F64, v) = &inst.op {
            if let Some(Op::Load { ty: Type::I32 | Type::I64, .. }) = blk.insts.get(v.0 as usize).map(|i| &i.op) {
                r[v.0 as usize] = true;
            }
        }
    }
    r
}

/// Per instruction of `blk`: whether its value is an address through the guest's `rsp`, the
/// thread's own stack, whose accesses x86-TSO ordering leaves plain (as FEX and Lasagne do:
/// other threads rarely look into it). The value of `rsp` is a `Get` of it or anything the
/// block sets it to (a push stores through the new `rsp` before it sets it); an address
/// through it is that value, plus anything (base `rsp` with an index or displacement), or
/// minus a constant.
pub(super) fn stack_addrs(blk: &Block) -> Vec<bool> {
    let rsp = offsets::gpr(hcontainer_abi::Gpr::Rsp as u8);
    let n = blk.insts.len();
    let mut stack = vec![false; n];
    for (k, inst) in blk.insts.iter().enumerate() {
        match &inst.op {
            Op::Get(loc) if loc.offset == rsp => stack[k] = true,
            Op::Set(loc, v) if loc.offset == rsp => {
                if let Some(s) = stack.get_mut(v.0 as usize) {
                    *s = true;
                }
            }
            _ => {}
        }
    }
    let is_const = |v: &Value| matches!(blk.insts.get(v.0 as usize).map(|i| &i.op), Some(Op::Const { .. }));
    for (k, inst) in blk.insts.iter().enumerate() {
        let at = |v: &Value| stack.get(v.0 as usize).copied().unwrap_or(false);
        let derived = match &inst.op {
            Op::Bin(BinOp::Add, a, b) => at(a) || at(b),
            Op::Bin(BinOp::Sub, a, b) => at(a) && is_const(b),
            Op::Conv(ConvOp::Zext, Type::I64, a) => at(a),
            _ => false,
        };
        if derived {
            stack[k] = true;
        }
    }
    stack
}

/// Helper number of the x87 helper (`hcontainer_semantics::Helper::X87`), the one helper
/// that reads and writes guest memory (its second argument is the memory operand's address,
/// or 0).
pub(super) const X87_HELPER: u32 = 4;

/// Whether `op` is a helper call that may access guest memory.
pub(super) fn helper_touches_memory(blk: &Block, op: &Op) -> bool {
    match op {
        Op::Helper(X87_HELPER, args) => !matches!(
            args.get(1).and_then(|v| blk.insts.get(v.0 as usize)).map(|i| &i.op),
            Some(Op::Const { bits: 0, .. })
        ),
        _ => false,
    }
}

impl Tr<'_, '_> {
    /// How the guest access through IR value `addr` of the current block is ordered: plain
    /// through `rsp` (see [`stack_addrs`]), else as the translation's memory model says.
    pub(super) fn order_of(&self, addr: &Value) -> Ordering {
        if self.stack.get(addr.0 as usize) == Some(&true) {
            Ordering::Plain
        } else {
            self.sh.order
        }
    }

    /// Run `fast` when the low bits of `a` selected by `mask` are zero, else `slow` (a cold
    /// path); both produce values of `tys`, which the returned join block receives.
    pub(super) fn by_alignment(
        &mut self,
        a: CValue,
        mask: i64,
        tys: &[ir::Type],
        fast: impl FnOnce(&mut Self) -> Vec<CValue>,
        slow: impl FnOnce(&mut Self) -> Vec<CValue>,
    ) -> Vec<CValue> {
        let low = self.b.ins().band_imm_u(a, mask);
        let (fast_b, slow_b, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        for &ty in tys {
            self.b.append_block_param(join, ty);
        }
        self.b.ins().brif(low, slow_b, &[], fast_b, &[]);
        self.b.set_cold_block(slow_b);
        self.b.switch_to_block(fast_b);
        self.b.seal_block(fast_b);
        let vals = fast(self);
        let args: Vec<ir::BlockArg> = vals.into_iter().map(ir::BlockArg::Value).collect();
        self.b.ins().jump(join, &args);
        self.b.switch_to_block(slow_b);
        self.b.seal_block(slow_b);
        let vals = slow(self);
        let args: Vec<ir::BlockArg> = vals.into_iter().map(ir::BlockArg::Value).collect();
        self.b.ins().jump(join, &args);
        self.b.switch_to_block(join);
        self.b.seal_block(join);
        self.b.block_params(join).to_vec()
    }

    /// A guest load of `ty` at `a`, ordered as `order` says. Ordered loads are integer loads
    /// (a float is loaded as its bits and bit-cast).
    pub(super) fn guest_load(&mut self, order: Ordering, ty: ir::Type, a: CValue) -> CValue {
        if order == Ordering::Plain {
            return self.b.ins().load(ty, guest_flags(), a, 0);
        }
        if ty.is_float() {
            let bits = self.guest_load(order, ty.as_int(), a);
            return self.b.ins().bitcast(ty, MemFlagsData::new(), bits);
        }
        match order {
            Ordering::Plain => unreachable!("handled above"),
            Ordering::Fences => {
                let v = self.b.ins().load(ty, guest_flags(), a, 0);
                self.b.ins().fence();
                v
            }
            Ordering::AcquireRelease if ty.bytes() == 1 => self.b.ins().atomic_load(ty, guest_flags(), a),
            Ordering::AcquireRelease => {
                let mask = i64::from(ty.bytes() - 1);
                self.by_alignment(
                    a,
                    mask,
                    &[ty],
                    |t| vec![t.b.ins().atomic_load(ty, guest_flags(), a)],
                    |t| {
                        let v = t.b.ins().load(ty, guest_flags(), a, 0);
                        t.b.ins().fence();
                        vec![v]
                    },
                )[0]
            }
        }
    }

    /// A guest store of `v` at `a`, ordered as `order` says.
    pub(super) fn guest_store(&mut self, order: Ordering, v: CValue, a: CValue) {
        if order == Ordering::Plain {
            self.b.ins().store(guest_flags(), v, a, 0);
            return;
        }
        let ty = self.b.func.dfg.value_type(v);
        if ty.is_float() {
            let bits = self.b.ins().bitcast(ty.as_int(), MemFlagsData::new(), v);
            return self.guest_store(order, bits, a);
        }
        match order {
            Ordering::Plain => unreachable!("handled above"),
            Ordering::Fences => {
                self.b.ins().atomic_store(guest_flags(), v, a);
            }
            Ordering::AcquireRelease if ty.bytes() == 1 => {
                self.b.ins().atomic_store(guest_flags(), v, a);
            }
            Ordering::AcquireRelease => {
                let mask = i64::from(ty.bytes() - 1);
                self.by_alignment(
                    a,
                    mask,
                    &[],
                    |t| {
                        t.b.ins().atomic_store(guest_flags(), v, a);
                        Vec::new()
                    },
                    |t| {
                        t.b.ins().fence();
                        t.b.ins().store(guest_flags(), v, a, 0);
                        Vec::new()
                    },
                );
            }
        }
    }

    /// A 128-bit guest load at `a` as two 64-bit halves, each ordered as `order` says (x86
    /// does not promise a 16-byte access is one, but orders its parts with other accesses).
    pub(super) fn guest_load_pair(&mut self, order: Ordering, a: CValue) -> (CValue, CValue) {
        let plain = |t: &mut Self| {
            let lo = t.b.ins().load(types::I64, guest_flags(), a, 0);
            let hi = t.b.ins().load(types::I64, guest_flags(), a, 8);
            (lo, hi)
        };
        match order {
            Ordering::Plain => plain(self),
            Ordering::Fences => {
                let (lo, hi) = plain(self);
                self.b.ins().fence();
                (lo, hi)
            }
            Ordering::AcquireRelease => {
                let v = self.by_alignment(
                    a,
                    7,
                    &[types::I64, types::I64],
                    |t| {
                        let lo = t.b.ins().atomic_load(types::I64, guest_flags(), a);
                        let a8 = t.b.ins().iadd_imm_s(a, 8);
                        let hi = t.b.ins().atomic_load(types::I64, guest_flags(), a8);
                        vec![lo, hi]
                    },
                    |t| {
                        let (lo, hi) = plain(t);
                        t.b.ins().fence();
                        vec![lo, hi]
                    },
                );
                (v[0], v[1])
            }
        }
    }

    /// A 128-bit guest store of `(lo, hi)` at `a`, ordered as `order` says.
    pub(super) fn guest_store_pair(&mut self, order: Ordering, lo: CValue, hi: CValue, a: CValue) {
        match order {
            Ordering::Plain => {
                self.b.ins().store(guest_flags(), lo, a, 0);
                self.b.ins().store(guest_flags(), hi, a, 8);
            }
            // One `fence rw,w` orders both halves after every earlier access; the next
            // store's fence orders them before it.
            Ordering::Fences => {
                self.b.ins().atomic_store(guest_flags(), lo, a);
                self.b.ins().store(guest_flags(), hi, a, 8);
            }
            Ordering::AcquireRelease => {
                self.by_alignment(
                    a,
                    7,
                    &[],
                    |t| {
                        t.b.ins().atomic_store(guest_flags(), lo, a);
                        let a8 = t.b.ins().iadd_imm_s(a, 8);
                        t.b.ins().atomic_store(guest_flags(), hi, a8);
                        Vec::new()
                    },
                    |t| {
                        t.b.ins().fence();
                        t.b.ins().store(guest_flags(), lo, a, 0);
                        t.b.ins().store(guest_flags(), hi, a, 8);
                        Vec::new()
                    },
                );
            }
        }
    }
}
