//! Control flow and dispatch: block terminators, jumps inside and between translated functions,
//! polls at loop heads, and indirect jumps through the dispatch caches.

use super::*;

/// Largest host jump table [`Tr::switch`] builds (entries of 4 bytes).
const SWITCH_MAX_SLOTS: u64 = 1024;

/// Host stack a chain of nested transfers to other translated functions (tail jumps, which
/// return only when the callee does) may use before it leaves to the dispatcher instead. The
/// guest state sits at the top of the host stack (`hcontainer_abi::layout`), so
/// `state - sp` is the depth; anywhere else the difference is out of range and the jump
/// leaves to the dispatcher, as it always may.
///
/// Just under 16 MiB: a multiple of 4096 below 2^24, which an arm64 compare takes as an
/// immediate (`cmp x, #0xfff, lsl #12`) instead of materializing it first.
pub(super) const NEST_LIMIT: i64 = (16 << 20) - (1 << 12);

impl Tr<'_, '_> {
    /// Write back, set `rip`, return `addr` to the caller.
    pub(super) fn exit(&mut self, addr: CValue) {
        self.write_back();
        self.b.ins().store(state_flags(), addr, self.state, offsets::RIP as i32);
        self.b.ins().return_(&[addr]);
    }

    pub(super) fn exit_const(&mut self, addr: u64) {
        let a = self.gaddr(addr);
        self.exit(a);
    }

    /// In the current (unterminated) block: if `state.poll != 0` leave to the runtime so it
    /// resumes at `addr`, else jump to `target`.
    ///
    /// The load is never merged with an earlier one by Cranelift's redundant-load elimination:
    /// every block is a `br_table` target of the entry block, so no poll load outside a loop
    /// dominates the loop's own.
    pub(super) fn poll_then_jump(&mut self, addr: u64, target: ir::Block) {
        let poll = self.b.ins().load(types::I64, state_flags(), self.state, offsets::POLL as i32);
        let leave = self.b.create_block();
        self.b.ins().brif(poll, leave, &[], target, &[]);
        self.b.set_cold_block(leave);
        self.b.switch_to_block(leave);
        self.b.seal_block(leave);
        self.exit_const(addr);
    }

    /// Continue at guest address `to` from block `from`, in the current block.
    pub(super) fn goto(&mut self, from: u64, to: u64) {
        match self.block_of(to) {
            Some((_, cb)) if to <= from => {
                self.flush_local();
                self.poll_then_jump(to, cb)
            }
            Some((i, cb)) => {
                self.flush_local();
                if !self.local {
                    // Store what is dirty here but not on every forward path into `to`.
                    let into = self.dirty_in.get(i).cloned().unwrap_or_default();
                    let keep = std::mem::take(&mut self.dirty);
                    self.dirty = keep.iter().copied().filter(|o| !into.contains(o)).collect();
                    self.write_back();
                    self.dirty = keep;
                }
                self.b.ins().jump(cb, &[]);
            }
            None => match self.sh.points.get(&to) {
                // A tail jump to another function (its entry or a block inside it): run it
                // here, its result is ours.
                Some(&(id, entry)) => {
                    let callee = self.callee(id);
                    let (nest, leave) = (self.b.create_block(), self.b.create_block());
                    let room = self.stack_room();
                    self.b.ins().brif(room, nest, &[], leave, &[]);
                    self.b.set_cold_block(leave);
                    self.b.switch_to_block(leave);
                    self.b.seal_block(leave);
                    self.exit_const(to);
                    self.b.switch_to_block(nest);
                    self.b.seal_block(nest);
                    self.write_back();
                    let entry = self.iconst(entry);
                    let call = self.b.ins().call(callee, &[self.state, entry]);
                    let r = self.b.inst_results(call)[0];
                    self.b.ins().return_(&[r]);
                }
                None => self.exit_const(to),
            },
        }
    }

    /// Whether the host stack has room for one more nested transfer (see [`NEST_LIMIT`]).
    pub(super) fn stack_room(&mut self) -> CValue {
        let sp = self.b.ins().get_stack_pointer(types::I64);
        let used = self.b.ins().isub(self.state, sp);
        self.b.ins().icmp_imm_u(CIntCC::UnsignedLessThan, used, NEST_LIMIT)
    }

    /// Find the dispatch entry of guest address `a` (an indirect transfer of block `blk`):
    /// first in the word of the block's cache that `a` hashes to (a pointer to the entry the
    /// runtime's lookup returned last for an address with that hash, whose run-time guest
    /// address is checked, so a stale or colliding entry only misses), else with the lookup,
    /// which that word then keeps. Without a translation the function exits with
    /// `a`. Returns the entry's (host function, entry index), in the current block.
    pub(super) fn resolve(&mut self, blk: &Block, a: CValue) -> Result<(CValue, CValue), CodegenError> {
        let slot = *self
            .sh
            .dispatch_caches
            .get(&(self.fi, self.blocks[&blk.addr].0))
            .ok_or_else(|| self.bad(blk, "indirect transfer without a dispatch cache"))?;
        // The word for `a`: (a ^ a >> 4) mod ways. Functions start 16-byte aligned, so the
        // shifted bits tell them apart; blocks inside a function differ in the low ones.
        let table = self.data_addr(slot);
        let h = self.b.ins().ushr_imm_u(a, 4);
        let h = self.b.ins().bxor(h, a);
        let h = self.b.ins().ishl_imm_u(h, 3);
        let h = self.b.ins().band_imm_u(h, 8 * (crate::DISPATCH_CACHE_WAYS as i64 - 1));
        let cache = self.b.ins().iadd(table, h);
        let cached = self.b.ins().load(types::I64, state_flags(), cache, 0);
        let (check, miss, refill, missing, found) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        let e = self.b.append_block_param(found, types::I64);
        self.b.ins().brif(cached, check, &[], miss, &[]);

        self.b.switch_to_block(check);
        self.b.seal_block(check);
        let guest = self.b.ins().load(types::I64, state_flags(), cached, 0);
        let hit = self.b.ins().icmp(CIntCC::Equal, guest, a);
        let cached_arg = ir::BlockArg::Value(cached);
        self.b.ins().brif(hit, found, &[cached_arg], miss, &[]);

        self.b.switch_to_block(miss);
        self.b.seal_block(miss);
        self.b.set_cold_block(miss);
        let call = self.call_rt(Import::Lookup, &[a]);
        let looked = self.b.inst_results(call)[0];
        self.b.ins().brif(looked, refill, &[], missing, &[]);

        self.b.switch_to_block(missing);
        self.b.seal_block(missing);
        self.b.set_cold_block(missing);
        self.exit(a);

        self.b.switch_to_block(refill);
        self.b.seal_block(refill);
        self.b.set_cold_block(refill);
        self.b.ins().store(state_flags(), looked, cache, 0);
        let looked_arg = ir::BlockArg::Value(looked);
        self.b.ins().jump(found, &[looked_arg]);

        self.b.switch_to_block(found);
        self.b.seal_block(found);
        let fptr = self.b.ins().load(types::I64, state_flags(), e, 8);
        let ent = self.b.ins().load(types::I64, state_flags(), e, 16);
        Ok((fptr, ent))
    }

    /// An indirect jump of block `blk` to `a`: inside this function through its resume table,
    /// to another translated function by running it here (its result is ours), else (no
    /// translation, or no stack room) back to the dispatcher.
    pub(super) fn jump_indirect(&mut self, blk: &Block, a: CValue) -> Result<(), CodegenError> {
        self.switch(blk, a);
        let (fptr, ent) = self.resolve(blk, a)?;
        // A function of one block (a PLT slot's `jmp *got`) has no loop to keep inside it: a
        // jump to itself nests like a jump anywhere else.
        let inside = if self.f.blocks.len() > 1 {
            let me = self.callee(self.id);
            let me = self.b.ins().func_addr(types::I64, me);
            let (inside, other) = (self.b.create_block(), self.b.create_block());
            let is_me = self.b.ins().icmp(CIntCC::Equal, fptr, me);
            self.b.ins().brif(is_me, inside, &[], other, &[]);
            self.b.switch_to_block(other);
            self.b.seal_block(other);
            Some(inside)
        } else {
            None
        };
        let (nest, leave) = (self.b.create_block(), self.b.create_block());
        let room = self.stack_room();
        self.b.ins().brif(room, nest, &[], leave, &[]);

        self.b.switch_to_block(leave);
        self.b.seal_block(leave);
        self.b.set_cold_block(leave);
        self.exit(a);

        self.b.switch_to_block(nest);
        self.b.seal_block(nest);
        self.write_back();
        let call = self.b.ins().call_indirect(self.refs.translated_sig, fptr, &[self.state, ent]);
        let r = self.b.inst_results(call)[0];
        self.b.ins().return_(&[r]);

        let Some(inside) = inside else { return Ok(()) };
        // Last: in block-local mode this writes back and forgets what the block assigned.
        self.b.switch_to_block(inside);
        self.b.seal_block(inside);
        self.flush_local();
        let poll = self.b.ins().load(types::I64, state_flags(), self.state, offsets::POLL as i32);
        let (go, stop) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(poll, stop, &[], go, &[]);
        self.b.switch_to_block(stop);
        self.b.seal_block(stop);
        self.b.set_cold_block(stop);
        self.exit(a);
        self.b.switch_to_block(go);
        self.b.seal_block(go);
        let shared = self.inside_dispatch(blk)?;
        self.b.ins().jump(shared, &[ir::BlockArg::Value(ent)]);
        Ok(())
    }

    /// An indirect jump through a recovered jump table whose targets are blocks of this
    /// function: a host jump table on the target address, no dispatch. The distinct targets,
    /// less the lowest, shifted right by the fewest bits that keep them apart, index a
    /// `br_table`; each slot checks the address is its target's (any address maps to some
    /// slot) and continues there as a direct jump would, polling on backward edges. Every
    /// other address continues, in the current block, to the dispatch path.
    fn switch(&mut self, blk: &Block, a: CValue) {
        let end = blk.addr.saturating_add(u64::from(blk.guest_len));
        let Some((_, targets)) = self.sh.jump_tables.range(blk.addr..end).next_back() else { return };
        let targets: Vec<u64> = targets.iter().copied().filter(|t| self.blocks.contains_key(t)).collect();
        let (Some(&lo), Some(&hi)) = (targets.first(), targets.last()) else { return };
        let Some((shift, slots)) = (0..8u32).find_map(|k| {
            let mut idx: Vec<u64> = targets.iter().map(|t| (t - lo) >> k).collect();
            idx.dedup();
            let slots = ((hi - lo) >> k) + 1;
            (idx.len() == targets.len()).then_some((k, slots))
        }) else {
            return;
        };
        if slots > SWITCH_MAX_SLOTS {
            return;
        }
        // Written back once here (block-local mode); the edges below add nothing to store.
        self.flush_local();
        let default = self.b.create_block();
        let base = self.gaddr(lo);
        let d = self.b.ins().isub(a, base);
        let idx = self.b.ins().ushr_imm_u(d, i64::from(shift));
        let n = self.iconst(slots);
        let in_range = self.b.ins().icmp(CIntCC::UnsignedLessThan, idx, n);
        let idx = self.b.ins().select(in_range, idx, n);
        let idx = self.b.ins().ireduce(types::I32, idx);
        let mut checks = Vec::with_capacity(targets.len());
        let mut slot_blocks = vec![default; slots as usize];
        for &t in &targets {
            let c = self.b.create_block();
            slot_blocks[((t - lo) >> shift) as usize] = c;
            checks.push((c, t));
        }
        let calls: Vec<ir::BlockCall> = slot_blocks.iter().map(|&b| self.b.func.dfg.block_call(b, &[])).collect();
        let dflt = self.b.func.dfg.block_call(default, &[]);
        let jt = self.b.create_jump_table(JumpTableData::new(dflt, &calls));
        self.b.ins().br_table(idx, jt);
        for (c, t) in checks {
            self.b.switch_to_block(c);
            self.b.seal_block(c);
            let want = self.gaddr(t);
            let hit = self.b.ins().icmp(CIntCC::Equal, a, want);
            let (go, miss) = (self.b.create_block(), self.b.create_block());
            self.b.ins().brif(hit, go, &[], miss, &[]);
            self.b.switch_to_block(miss);
            self.b.seal_block(miss);
            self.b.ins().jump(default, &[]);
            self.b.switch_to_block(go);
            self.b.seal_block(go);
            self.goto(blk.addr, t);
        }
        self.b.switch_to_block(default);
        self.b.seal_block(default);
    }

    /// The block every indirect jump that lands in this function continues at: one
    /// `br_table` on the entry index to the function's blocks, shared by all sites (a table
    /// per site makes the edges, and Cranelift's work, quadratic in the blocks).
    pub(super) fn inside_dispatch(&mut self, blk: &Block) -> Result<ir::Block, CodegenError> {
        if let Some(b) = self.inside {
            return Ok(b);
        }
        let here = self.b.current_block();
        let shared = self.b.create_block();
        let ent = self.b.append_block_param(shared, types::I64);
        self.b.switch_to_block(shared);
        let mut targets = Vec::with_capacity(self.f.blocks.len());
        for b in &self.f.blocks {
            let cb = self.blocks[&b.addr].1;
            targets.push(self.b.func.dfg.block_call(cb, &[]));
        }
        let bad = self.b.create_block();
        let default = self.b.func.dfg.block_call(bad, &[]);
        let jt = self.b.create_jump_table(JumpTableData::new(default, &targets));
        let n = self.iconst(self.f.blocks.len() as u64);
        let in_range = self.b.ins().icmp(CIntCC::UnsignedLessThan, ent, n);
        let index = self.b.ins().select(in_range, ent, n);
        let index = self.b.ins().ireduce(types::I32, index);
        self.b.ins().br_table(index, jt);
        self.b.switch_to_block(bad);
        self.b.seal_block(bad);
        let code = TrapCode::user(1).ok_or_else(|| self.bad(blk, "no trap code"))?;
        self.b.ins().trap(code);
        if let Some(h) = here {
            self.b.switch_to_block(h);
        }
        self.inside = Some(shared);
        Ok(shared)
    }

    pub(super) fn block(&mut self, blk: &Block) -> Result<(), CodegenError> {
        let mut vals: Vec<Option<Val>> = Vec::with_capacity(blk.insts.len());
        let mut know = FlagKnowledge::default();
        self.defer = if self.sh.fix_nans { deferrable(blk) } else { Vec::new() };
        self.deferred.clear();
        self.float_load = float_loads(blk);
        self.stack = if self.sh.order == Ordering::Plain { Vec::new() } else { stack_addrs(blk) };
        if self.local {
            self.reads = block_reads(blk);
            self.dirty.clear();
            self.reload_all();
        } else {
            let i = self.blocks[&blk.addr].0;
            self.dirty = self.dirty_in.get(i).cloned().unwrap_or_else(|| self.locs.assigned.clone());
        }
        for (k, inst) in blk.insts.iter().enumerate() {
            self.inst_index = k;
            let v = self.op(blk, &inst.op, &vals, &mut know)?;
            vals.push(v);
        }
        match &blk.term {
            Terminator::Jump(to) => self.goto(blk.addr, *to),
            Terminator::Branch { cond, taken, fallthrough } => {
                let c = self.val(blk, &vals, cond)?;
                let c = self.truthy(c);
                self.flush_local();
                let (t, e) = (self.b.create_block(), self.b.create_block());
                self.b.ins().brif(c, t, &[], e, &[]);
                for (cb, to) in [(t, *taken), (e, *fallthrough)] {
                    self.b.switch_to_block(cb);
                    self.b.seal_block(cb);
                    self.goto(blk.addr, to);
                }
            }
            Terminator::Return(v) => {
                let a = self.val(blk, &vals, v)?;
                let a = self.as_i64(blk, a)?;
                self.exit(a);
            }
            Terminator::JumpIndirect(v) => {
                let a = self.val(blk, &vals, v)?;
                let a = self.as_i64(blk, a)?;
                self.jump_indirect(blk, a)?;
            }
            Terminator::Call { target, ret } => {
                self.write_back();
                match target {
                    CallTarget::Direct(t) => match self.sh.funcs.get(t) {
                        Some(&id) => {
                            let callee = self.callee(id);
                            let zero = self.iconst(0);
                            let call = self.b.ins().call(callee, &[self.state, zero]);
                            let r = self.b.inst_results(call)[0];
                            self.after_call(r, *ret);
                        }
                        None => {
                            let a = self.gaddr(*t);
                            self.b.ins().store(state_flags(), a, self.state, offsets::RIP as i32);
                            self.b.ins().return_(&[a]);
                        }
                    },
                    CallTarget::Indirect(v) => {
                        let a = self.val(blk, &vals, v)?;
                        let a = self.as_i64(blk, a)?;
                        let (fptr, ent) = self.resolve(blk, a)?;
                        let call = self.b.ins().call_indirect(
                            self.refs.translated_sig,
                            fptr,
                            &[self.state, ent],
                        );
                        let r = self.b.inst_results(call)[0];
                        self.after_call(r, *ret);
                    }
                }
            }
            Terminator::Syscall { next } => {
                self.write_back();
                let n = self.gaddr(*next);
                self.b.ins().store(state_flags(), n, self.state, offsets::RIP as i32);
                self.call_rt(Import::Syscall, &[self.state]);
                if !self.local {
                    let live = self.live.as_ref().map(|l| l.at(&self.blocks, *next).unwrap_or_default());
                    self.reload(live);
                }
                self.dirty.clear();
                self.goto(blk.addr, *next);
            }
            Terminator::Trap { addr, .. } => {
                let data = *self
                    .sh
                    .trap_strings
                    .get(&(self.fi, self.blocks[&blk.addr].0))
                    .ok_or_else(|| self.bad(blk, "trap without message"))?;
                let msg = self.data_addr(data);
                self.write_back();
                let a = self.gaddr(*addr);
                self.b.ins().store(state_flags(), a, self.state, offsets::RIP as i32);
                self.call_rt(Import::Unsupported, &[self.state, a, msg]);
                self.b.ins().return_(&[a]);
            }
        }
        Ok(())
    }
}
