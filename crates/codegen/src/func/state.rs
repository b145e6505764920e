//! Guest-state locations in Cranelift variables: which locations a function uses, which may
//! differ from memory (dirty) or be read later (live) at each block in whole-function mode, and
//! their loads and write-backs.

use super::*;

/// One guest-state location's variables. A 128-bit location is two `I64` variables (low and
/// high half): Cranelift's `i128` shifts and masks are long sequences, while the lifted code
/// mostly moves 64-bit halves in and out of xmm registers.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    pub(super) ty: Type,
    /// The variable (the low half of a 128-bit location).
    pub(super) var: Variable,
    /// The high half of a 128-bit location.
    pub(super) hi: Option<Variable>,
}

/// The guest-state locations a function uses, each with one type and its variables.
pub(super) struct Locations {
    /// Offset → slot; every location used.
    pub(super) all: BTreeMap<u32, Slot>,
    /// Offsets assigned somewhere in the function (written back at exits).
    pub(super) assigned: Vec<u32>,
}

/// Functions with more blocks than this are compiled in block-local mode (see `Tr::local`):
/// the SSA variables of whole-function mode make compile time grow faster than linearly.
pub(super) const LOCAL_MODE_BLOCKS: usize = 150;

/// Locations a block reads (state offsets).
pub(super) fn block_reads(b: &Block) -> Vec<u32> {
    let mut r = std::collections::BTreeSet::new();
    for inst in &b.insts {
        match &inst.op {
            Op::Get(loc) if loc.offset != offsets::POLL => {
                r.insert(loc.offset);
            }
            Op::EvalCond(_) => r.extend(FLAG_LOCS),
            Op::Rflags => {
                r.extend(FLAG_LOCS);
                r.insert(offsets::RFLAGS_OTHER);
            }
            _ => {}
        }
    }
    r.into_iter().collect()
}

pub(super) fn collect_locations(f: &Function) -> Result<Locations, CodegenError> {
    let mut types: BTreeMap<u32, Type> = BTreeMap::new();
    let mut assigned = std::collections::BTreeSet::new();
    let mut add = |off: u32, ty: Type| -> Result<(), CodegenError> {
        match types.get(&off) {
            Some(&t) if t != ty => Err(CodegenError::MixedLocation {
                func: f.entry,
                offset: off,
                first: format!("{t:?}"),
                second: format!("{ty:?}"),
            }),
            Some(_) => Ok(()),
            None => {
                types.insert(off, ty);
                Ok(())
            }
        }
    };
    for b in &f.blocks {
        for inst in &b.insts {
            match &inst.op {
                // The runtime raises `poll` asynchronously: always accessed in memory.
                Op::Get(loc) | Op::Set(loc, _) if loc.offset == offsets::POLL => {}
                Op::Get(loc) => add(loc.offset, loc.ty)?,
                Op::Set(loc, _) => {
                    add(loc.offset, loc.ty)?;
                    assigned.insert(loc.offset);
                }
                Op::EvalCond(_) => {
                    for off in FLAG_LOCS {
                        add(off, Type::I64)?;
                    }
                }
                Op::Rflags => {
                    for off in FLAG_LOCS.into_iter().chain([offsets::RFLAGS_OTHER]) {
                        add(off, Type::I64)?;
                    }
                }
                _ => {}
            }
        }
    }
    // Locations must not overlap: each byte of the state belongs to one variable.
    let mut end = 0u32;
    let mut prev: Option<(u32, Type)> = None;
    for (&off, &ty) in &types {
        if let Some((poff, pty)) = prev {
            if off < end {
                return Err(CodegenError::MixedLocation {
                    func: f.entry,
                    offset: off,
                    first: format!("{pty:?} at offset {poff}"),
                    second: format!("{ty:?}"),
                });
            }
        }
        if off.checked_add(ty.bytes()).is_none_or(|e| e > offsets::SIZE) {
            return Err(CodegenError::BadIr {
                func: f.entry,
                block: f.entry,
                what: format!("state location {off} ({ty:?}) lies outside GuestState"),
            });
        }
        end = off + ty.bytes();
        prev = Some((off, ty));
    }
    let mut next = 0u32;
    let mut var = || {
        next += 1;
        Variable::from_u32(next - 1)
    };
    let all = types
        .into_iter()
        .map(|(off, ty)| {
            let v = var();
            let hi = (ty == Type::I128).then(&mut var);
            (off, Slot { ty, var: v, hi })
        })
        .collect();
    Ok(Locations { all, assigned: assigned.into_iter().collect() })
}

/// Whole-function mode: per block, the locations whose variables may differ from the state in
/// memory on entry (assigned since the state was last loaded or stored), which write-backs
/// store. A backward edge (a loop, checked for `poll`) or an indirect jump inside the function
/// carries its dirty set into the target; a forward edge stores, just before it jumps, what is
/// dirty at its end but not on every forward path into the target (see `Tr::goto`), so a
/// location assigned before a loop does not stay dirty (stored at every call, reloaded after
/// it) through the loop; except locations the target assigns before it writes anything back,
/// which stay dirty. Function entry and the return from a guest call are clean forward
/// paths into their blocks; a resume entry loads every location, so it constrains nothing.
pub(super) fn dirty_in(f: &Function) -> Vec<Vec<u32>> {
    use std::collections::BTreeSet;
    let n = f.blocks.len();
    let index: HashMap<u64, usize> = f.blocks.iter().enumerate().map(|(i, b)| (b.addr, i)).collect();
    // Per block: forward predecessors (`None`: a clean implicit path), backward predecessors.
    let mut fwd: Vec<Vec<Option<usize>>> = vec![Vec::new(); n];
    let mut back: Vec<Vec<usize>> = vec![Vec::new(); n];
    fwd[0].push(None);
    for (i, b) in f.blocks.iter().enumerate() {
        let mut edge = |t: u64| {
            if let Some(&j) = index.get(&t) {
                if t > b.addr {
                    fwd[j].push(Some(i));
                } else {
                    back[j].push(i);
                }
            }
        };
        match &b.term {
            Terminator::Jump(t) => edge(*t),
            Terminator::Branch { taken, fallthrough, .. } => {
                edge(*taken);
                edge(*fallthrough);
            }
            Terminator::JumpIndirect(_) => (0..n).for_each(|j| back[j].push(i)),
            // The syscall reloads before going on: its successor starts clean.
            Terminator::Call { ret: t, .. } | Terminator::Syscall { next: t } => {
                if let Some(&j) = index.get(t) {
                    fwd[j].push(None);
                }
            }
            Terminator::Return(_) | Terminator::Trap { .. } => {}
        }
    }
    // Per block: the locations it assigns before its first helper call (its first write-back).
    let early: Vec<BTreeSet<u32>> = f
        .blocks
        .iter()
        .map(|b| {
            let mut e = BTreeSet::new();
            for inst in &b.insts {
                match &inst.op {
                    Op::Set(loc, _) if loc.offset != offsets::POLL => {
                        e.insert(loc.offset);
                    }
                    Op::Helper(..) => break,
                    _ => {}
                }
            }
            e
        })
        .collect();
    // Dirty at the end of each block given its dirty set at the start.
    let out = |i: usize, d: &BTreeSet<u32>| -> BTreeSet<u32> {
        let mut d = d.clone();
        for inst in &f.blocks[i].insts {
            match &inst.op {
                Op::Set(loc, _) if loc.offset != offsets::POLL => {
                    d.insert(loc.offset);
                }
                Op::Helper(..) => d.clear(),
                _ => {}
            }
        }
        if matches!(f.blocks[i].term, Terminator::Call { .. } | Terminator::Syscall { .. }) {
            d.clear();
        }
        d
    };
    // Forward edges go up in address: in address order every forward predecessor comes
    // first, and the backward edges' contributions only grow until nothing changes.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| f.blocks[i].addr);
    let mut dirty: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let mut outs: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let mut changed = true;
    while changed {
        changed = false;
        for &j in &order {
            let mut d: Option<BTreeSet<u32>> = None;
            for p in &fwd[j] {
                let o = p.map(|p| outs[p].clone()).unwrap_or_default();
                d = Some(match d {
                    None => o,
                    Some(d) => d.intersection(&o).copied().collect(),
                });
            }
            let mut d = d.unwrap_or_default();
            for &p in &back[j] {
                d.extend(outs[p].iter().copied());
            }
            // A location the block assigns before it can write anything back stays dirty
            // rather than being stored on the way in (the store would be overwritten).
            for p in fwd[j].iter().flatten() {
                d.extend(outs[*p].intersection(&early[j]).copied());
            }
            let o = out(j, &d);
            if d != dirty[j] || o != outs[j] {
                changed = true;
                dirty[j] = d;
                outs[j] = o;
            }
        }
    }
    dirty.into_iter().map(|d| d.into_iter().collect()).collect()
}

/// Whole-function mode: which locations must be loaded again after a runtime call (helper,
/// guest call, syscall) and on entry 0. A location needs a reload only if it is live there: a
/// later read, or a later write-back storing it (a write-back stores the locations possibly
/// assigned since the last reload, see [`dirty_in`]), may observe it before the function
/// assigns it. The others keep a stale variable that nothing ever reads or stores.
pub(super) struct Liveness {
    /// Per block: locations live at its start.
    pub(super) live_in: Vec<std::collections::BTreeSet<u32>>,
    /// (block index, instruction index of a helper call) → locations live after the call.
    pub(super) after_helper: HashMap<(usize, usize), Vec<u32>>,
}

impl Liveness {
    /// Locations live at the start of the block at `addr`, if this function has one.
    pub(super) fn at(&self, index: &HashMap<u64, (usize, ir::Block)>, addr: u64) -> Option<Vec<u32>> {
        let &(i, _) = index.get(&addr)?;
        self.live_in.get(i).map(|s| s.iter().copied().collect())
    }
}

pub(super) fn liveness(f: &Function, dirty_in: &[Vec<u32>]) -> Liveness {
    use std::collections::BTreeSet;
    let index: HashMap<u64, usize> = f.blocks.iter().enumerate().map(|(i, b)| (b.addr, i)).collect();
    // Per block: the dirty set before each helper call and at the end (forward).
    let dirty: Vec<(Vec<BTreeSet<u32>>, BTreeSet<u32>)> = f
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut d: BTreeSet<u32> = dirty_in.get(i).map(|v| v.iter().copied().collect()).unwrap_or_default();
            let mut before = Vec::new();
            for inst in &b.insts {
                match &inst.op {
                    Op::Set(loc, _) if loc.offset != offsets::POLL => {
                        d.insert(loc.offset);
                    }
                    Op::Helper(..) => before.push(std::mem::take(&mut d)),
                    _ => {}
                }
            }
            (before, d)
        })
        .collect();
    let n = f.blocks.len();
    let mut live_in: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n];
    let mut after_helper = HashMap::new();
    let mut changed = true;
    while changed {
        changed = false;
        for i in (0..n).rev() {
            let b = &f.blocks[i];
            let (before, end) = &dirty[i];
            // Live after the terminator's own uses (see `Tr::block` and `Tr::goto`).
            let mut live: BTreeSet<u32> = BTreeSet::new();
            let to = |live: &mut BTreeSet<u32>, t: u64| match index.get(&t) {
                Some(&j) => {
                    if t <= b.addr {
                        live.extend(end.iter().copied()); // the poll exit writes back
                    } else {
                        // What the forward edge stores (see `dirty_in`).
                        let into: BTreeSet<u32> = dirty_in[j].iter().copied().collect();
                        live.extend(end.difference(&into).copied());
                    }
                    live.extend(live_in[j].iter().copied());
                }
                None => live.extend(end.iter().copied()),
            };
            match &b.term {
                Terminator::Jump(t) => to(&mut live, *t),
                Terminator::Branch { taken, fallthrough, .. } => {
                    to(&mut live, *taken);
                    to(&mut live, *fallthrough);
                }
                Terminator::JumpIndirect(_) => {
                    live.extend(end.iter().copied());
                    for s in &live_in {
                        live.extend(s.iter().copied());
                    }
                }
                Terminator::Call { .. }
                | Terminator::Syscall { .. }
                | Terminator::Return(_)
                | Terminator::Trap { .. } => live.extend(end.iter().copied()),
            }
            let mut h = before.len();
            for (k, inst) in b.insts.iter().enumerate().rev() {
                match &inst.op {
                    Op::Get(loc) if loc.offset != offsets::POLL => {
                        live.insert(loc.offset);
                    }
                    Op::Set(loc, _) if loc.offset != offsets::POLL => {
                        live.remove(&loc.offset);
                    }
                    Op::EvalCond(_) => live.extend(FLAG_LOCS),
                    Op::Rflags => live.extend(FLAG_LOCS.into_iter().chain([offsets::RFLAGS_OTHER])),
                    Op::Helper(..) => {
                        h = h.saturating_sub(1);
                        after_helper.insert((i, k), live.iter().copied().collect::<Vec<u32>>());
                        live = before.get(h).cloned().unwrap_or_else(|| end.clone());
                    }
                    _ => {}
                }
            }
            if live != live_in[i] {
                live_in[i] = live;
                changed = true;
            }
        }
    }
    Liveness { live_in, after_helper }
}

/// Per block of `f` (whole-function mode): its address, dirty set and live set on entry, for
/// `HCONTAINER_DUMP_FUNCS`.
pub(crate) fn describe_analysis(f: &Function) -> String {
    if f.blocks.len() > LOCAL_MODE_BLOCKS {
        return String::from("(block-local mode)\n");
    }
    let dirty = dirty_in(f);
    let live = liveness(f, &dirty);
    let mut out = String::new();
    for (i, b) in f.blocks.iter().enumerate() {
        out.push_str(&format!("{:#x}: dirty {:?} live {:?}\n", b.addr, dirty[i], live.live_in[i]));
    }
    out
}

impl Tr<'_, '_> {
    /// Load every location into its variable (local mode: those the block reads).
    pub(super) fn reload_all(&mut self) {
        let offs: Vec<u32> = if self.local { self.reads.clone() } else { self.locs.all.keys().copied().collect() };
        self.load(offs.into_iter());
    }

    /// After a runtime call: load what is live next (`live`, whole-function mode; `None`: all
    /// of them), or in local mode what the block reads.
    pub(super) fn reload(&mut self, live: Option<Vec<u32>>) {
        match live {
            Some(offs) if !self.local => self.load(offs.into_iter()),
            _ => self.reload_all(),
        }
    }

    /// Load the locations at `offs` into their variables.
    pub(super) fn load(&mut self, offs: impl Iterator<Item = u32>) {
        for off in offs {
            let slot = self.locs.all[&off];
            match slot.hi {
                Some(hi) => {
                    let lo = self.b.ins().load(types::I64, state_flags(), self.state, off as i32);
                    self.b.def_var(slot.var, lo);
                    let h = self.b.ins().load(types::I64, state_flags(), self.state, off as i32 + 8);
                    self.b.def_var(hi, h);
                }
                None => {
                    let v = self.b.ins().load(cl_type(slot.ty), state_flags(), self.state, off as i32);
                    self.b.def_var(slot.var, v);
                }
            }
        }
    }

    /// Store every assigned location back to the state (local mode: those written since the
    /// last write-back).
    pub(super) fn write_back(&mut self) {
        let offs = self.dirty.clone();
        for off in offs {
            let slot = self.locs.all[&off];
            let v = self.b.use_var(slot.var);
            self.b.ins().store(state_flags(), v, self.state, off as i32);
            if let Some(hi) = slot.hi {
                let h = self.b.use_var(hi);
                self.b.ins().store(state_flags(), h, self.state, off as i32 + 8);
            }
        }
    }

    /// Local mode: write back now, before control leaves the block on every path.
    pub(super) fn flush_local(&mut self) {
        if self.local {
            self.write_back();
            self.dirty.clear();
        }
    }
}
