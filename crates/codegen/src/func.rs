//! Translation of one IR function into one Cranelift function
//! `fn(state: *mut GuestState, entry: u64) -> u64`.
//!
//! Guest state locations live in Cranelift `Variable`s: loaded in the prologue (entry 0: only
//! those live at the function's entry; resume entry i: those live at block i, in
//! whole-function mode), written back (those possibly
//! assigned since the last load) at every exit and before every runtime call that may read
//! the state, and reloaded after every call that may change it (whole-function mode: only
//! those live afterwards, see `liveness`). Resume entries
//! then `br_table` on `entry` to the block to resume at; entry 0 first polls `state.poll`.

use std::collections::{BTreeMap, HashMap};

use cranelift_codegen::ir::condcodes::{FloatCC as CFloatCC, IntCC as CIntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, types, AtomicRmwOp, ExtFuncData, ExternalName, FuncRef, InstBuilder, JumpTableData,
    MemFlagsData, TrapCode, UserExternalName, UserFuncName, Value as CValue,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{DataId, FuncId};
use hcontainer_abi::flags::{CcOp, Cond};
use hcontainer_abi::offsets;
use hcontainer_ir::{
    BinOp, Block, CallTarget, ConvOp, FloatCC, Function, IntCC, Op, RmwOp, Terminator, Type, UnOp, Value,
};

use hcontainer_abi::unit::{Import, BIAS_OFFSET, IMPORTS_OFFSET};

use crate::target::Ordering;
use crate::{runtime_sig, translated_sig, CodegenError, Shared};

/// Cranelift type of an IR type.
fn cl_type(t: Type) -> ir::Type {
    match t {
        Type::I8 => types::I8,
        Type::I16 => types::I16,
        Type::I32 => types::I32,
        Type::I64 => types::I64,
        Type::I128 => types::I128,
        Type::F32 => types::F32,
        Type::F64 => types::F64,
    }
}

/// Memory flags for guest state accesses: aligned, never trapping (the state pointer is valid).
fn state_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Memory flags for guest memory: possibly unaligned, little-endian.
fn guest_flags() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    f.set_endianness(ir::Endianness::Little);
    f
}

/// One guest-state location's variables. A 128-bit location is two `I64` variables (low and
/// high half): Cranelift's `i128` shifts and masks are long sequences, while the lifted code
/// mostly moves 64-bit halves in and out of xmm registers.
#[derive(Clone, Copy)]
struct Slot {
    ty: Type,
    /// The variable (the low half of a 128-bit location).
    var: Variable,
    /// The high half of a 128-bit location.
    hi: Option<Variable>,
}

/// The guest-state locations a function uses, each with one type and its variables.
struct Locations {
    /// Offset → slot; every location used.
    all: BTreeMap<u32, Slot>,
    /// Offsets assigned somewhere in the function (written back at exits).
    assigned: Vec<u32>,
}

/// Functions with more blocks than this are compiled in block-local mode (see `Tr::local`):
/// the SSA variables of whole-function mode make compile time grow faster than linearly.
const LOCAL_MODE_BLOCKS: usize = 150;

/// Locations a block reads (state offsets).
fn block_reads(b: &Block) -> Vec<u32> {
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

/// Lazy-flag locations, with the type they are always accessed with.
const FLAG_LOCS: [u32; 4] = [offsets::CC_OP, offsets::CC_DST, offsets::CC_SRC1, offsets::CC_SRC2];

fn collect_locations(f: &Function) -> Result<Locations, CodegenError> {
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
fn dirty_in(f: &Function) -> Vec<Vec<u32>> {
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
struct Liveness {
    /// Per block: locations live at its start.
    live_in: Vec<std::collections::BTreeSet<u32>>,
    /// (block index, instruction index of a helper call) → locations live after the call.
    after_helper: HashMap<(usize, usize), Vec<u32>>,
}

impl Liveness {
    /// Locations live at the start of the block at `addr`, if this function has one.
    fn at(&self, index: &HashMap<u64, (usize, ir::Block)>, addr: u64) -> Option<Vec<u32>> {
        let &(i, _) = index.get(&addr)?;
        self.live_in.get(i).map(|s| s.iter().copied().collect())
    }
}

fn liveness(f: &Function, dirty_in: &[Vec<u32>]) -> Liveness {
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

/// IR values an op reads.
fn operands(op: &Op) -> Vec<Value> {
    match op {
        Op::Const { .. } | Op::Pc(_) | Op::Get(_) | Op::EvalCond(_) | Op::Rflags | Op::Fence => Vec::new(),
        Op::Set(_, v) | Op::Load { addr: v, .. } | Op::Un(_, v) | Op::Conv(_, _, v) => vec![*v],
        Op::Store { addr, val } | Op::AtomicRmw { addr, val, .. } => vec![*addr, *val],
        Op::AtomicCas { addr, expected, new } => vec![*addr, *expected, *new],
        Op::Bin(_, a, b) | Op::Icmp(_, a, b) | Op::Fcmp(_, a, b) => vec![*a, *b],
        Op::Select(c, a, b) => vec![*c, *a, *b],
        Op::Helper(_, args) => args.clone(),
    }
}

/// Per instruction of `blk`: whether it is an integer load some user bit-casts to a float
/// (then loaded as the float: the integer is the bit cast, often unused).
fn float_loads(blk: &Block) -> Vec<bool> {
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
fn stack_addrs(blk: &Block) -> Vec<bool> {
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
const X87_HELPER: u32 = 4;

/// Whether `op` is a helper call that may access guest memory.
fn helper_touches_memory(blk: &Block, op: &Op) -> bool {
    match op {
        Op::Helper(X87_HELPER, args) => !matches!(
            args.get(1).and_then(|v| blk.insts.get(v.0 as usize)).map(|i| &i.op),
            Some(Op::Const { bits: 0, .. })
        ),
        _ => false,
    }
}

/// Whether `op` is float arithmetic whose NaN result is made x86's (see `Tr::x86_nan`).
fn nan_fixed(op: &Op) -> bool {
    matches!(op, Op::Bin(BinOp::FAdd | BinOp::FSub | BinOp::FMul | BinOp::FDiv, ..) | Op::Un(UnOp::FSqrt, _))
}

/// Per instruction of `blk`: whether its NaN fix-up may be left to the instructions using
/// it. True for float arithmetic whose result only feeds other NaN-fixed float arithmetic,
/// directly or through bit casts and widenings that end in `Set`s the block overwrites before
/// anything reads the location. A NaN result makes every consumer's result NaN, whose cold
/// fix-up then computes x86's NaN of the deferred operand first (see `Tr::x86_value`).
fn deferrable(blk: &Block) -> Vec<bool> {
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

/// How the function being built reaches the runtime's entry points, in
/// `hcontainer_abi::unit::Import` order.
enum RtRefs {
    /// Direct calls, resolved when the executable is linked.
    Direct([FuncRef; 6]),
    /// Indirect calls through the unit header's import table (signatures).
    Imported([ir::SigRef; 6]),
}

/// Imported callees of the function being built.
struct Refs {
    rt: RtRefs,
    translated_sig: ir::SigRef,
}

/// Runtime entry points in `Import` order, with their symbols.
const RT_NAMES: [(Import, &str); 6] = [
    (Import::Syscall, hcontainer_abi::calls::SYSCALL),
    (Import::Helper, hcontainer_abi::calls::HELPER),
    (Import::EvalCond, hcontainer_abi::calls::EVAL_COND),
    (Import::Rflags, hcontainer_abi::calls::RFLAGS),
    (Import::Lookup, hcontainer_abi::calls::LOOKUP),
    (Import::Unsupported, hcontainer_abi::calls::UNSUPPORTED),
];

fn import(func: &mut ir::Function, id: FuncId, sig: ir::Signature) -> FuncRef {
    let sig = func.import_signature(sig);
    let name = func.declare_imported_user_function(UserExternalName { namespace: 0, index: id.as_u32() });
    func.import_function(ExtFuncData {
        name: ExternalName::user(name),
        signature: sig,
        // Runtime and translated code are linked into one range (hcontainer_abi::layout).
        colocated: true,
        patchable: false,
    })
}

struct Tr<'a, 'b> {
    b: FunctionBuilder<'b>,
    f: &'a Function,
    sh: &'a Shared<'a>,
    locs: Locations,
    /// Block-local mode (large functions): each block loads the locations it reads on entry
    /// and stores the ones it wrote before leaving, so no value crosses a block boundary in a
    /// host register. Compiles in linear time; small functions keep values in registers.
    local: bool,
    /// Local mode: locations the current block reads (loaded on entry and after runtime calls).
    reads: Vec<u32>,
    /// Locations that may differ from the state in memory: in local mode, those written since
    /// the last write-back; in whole-function mode, those possibly assigned since the last
    /// reload (on some path), which write-backs store.
    dirty: Vec<u32>,
    /// Whole-function mode: `dirty` at the start of each block (see [`dirty_in`]).
    dirty_in: Vec<Vec<u32>>,
    /// Whole-function mode: what to load again after runtime calls (see [`liveness`]).
    live: Option<Liveness>,
    /// Index of the instruction being translated in its block.
    inst_index: usize,
    /// Per instruction of the current block: NaN fix-up left to its users (see [`deferrable`]).
    defer: Vec<bool>,
    /// Results whose NaN fix-up was deferred, with their operands.
    deferred: HashMap<CValue, (CValue, Option<CValue>)>,
    /// Per instruction of the current block: an integer load done as a float load (see
    /// [`float_loads`]).
    float_load: Vec<bool>,
    /// Per instruction of the current block: an address through `rsp` (see [`stack_addrs`]).
    stack: Vec<bool>,
    refs: Refs,
    state: CValue,
    /// The guest file's load bias (a unit's header field, read at function entry); `None`
    /// in an executable, whose guest addresses are final.
    bias: Option<CValue>,
    /// Guest block address → (index in `f.blocks`, Cranelift block).
    blocks: HashMap<u64, (usize, ir::Block)>,
    /// Callees already imported into this function (translated functions).
    callees: HashMap<FuncId, FuncRef>,
    fi: usize,
    /// This function's own id (indirect jumps that land in it stay inside).
    id: FuncId,
    /// The shared target of indirect jumps inside this function (see `inside_dispatch`).
    inside: Option<ir::Block>,
}

/// Host stack a chain of nested transfers to other translated functions (tail jumps, which
/// return only when the callee does) may use before it leaves to the dispatcher instead. The
/// guest state sits at the top of the host stack (`hcontainer_abi::layout`), so
/// `state - sp` is the depth; anywhere else the difference is out of range and the jump
/// leaves to the dispatcher, as it always may.
///
/// Just under 16 MiB: a multiple of 4096 below 2^24, which an arm64 compare takes as an
/// immediate (`cmp x, #0xfff, lsl #12`) instead of materializing it first.
const NEST_LIMIT: i64 = (16 << 20) - (1 << 12);


/// Translate IR function `f` (index `fi` in the program, declared as `id`).
pub(crate) fn translate(
    f: &Function,
    fi: usize,
    id: FuncId,
    sh: &Shared<'_>,
) -> Result<ir::Function, CodegenError> {
    if f.blocks.first().map(|b| b.addr) != Some(f.entry) {
        return Err(CodegenError::BadIr {
            func: f.entry,
            block: f.entry,
            what: "the first block is not the function entry".into(),
        });
    }
    let locs = collect_locations(f)?;
    let mut func = ir::Function::with_name_signature(
        UserFuncName::user(0, id.as_u32()),
        translated_sig(sh.call_conv),
    );
    let cc = sh.call_conv;
    let rt = match sh.rt {
        Some(rt) => {
            let ids = [rt.syscall, rt.helper, rt.eval_cond, rt.rflags, rt.lookup, rt.unsupported];
            RtRefs::Direct(core::array::from_fn(|i| import(&mut func, ids[i], runtime_sig(cc, RT_NAMES[i].1))))
        }
        None => RtRefs::Imported(core::array::from_fn(|i| func.import_signature(runtime_sig(cc, RT_NAMES[i].1)))),
    };
    let refs = Refs { rt, translated_sig: func.import_signature(translated_sig(cc)) };
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut fctx);
    for slot in locs.all.values() {
        match slot.hi {
            Some(hi) => {
                let v = b.declare_var(types::I64);
                debug_assert_eq!(v, slot.var);
                let v = b.declare_var(types::I64);
                debug_assert_eq!(v, hi);
            }
            None => {
                let v = b.declare_var(cl_type(slot.ty));
                debug_assert_eq!(v, slot.var);
            }
        }
    }
    let entry_block = b.create_block();
    b.append_block_params_for_function_params(entry_block);
    b.switch_to_block(entry_block);
    b.seal_block(entry_block);
    let params = b.block_params(entry_block);
    let (state, entry) = (params[0], params[1]);

    let mut blocks = HashMap::new();
    for (i, blk) in f.blocks.iter().enumerate() {
        let cb = b.create_block();
        if blocks.insert(blk.addr, (i, cb)).is_some() {
            return Err(CodegenError::BadIr {
                func: f.entry,
                block: blk.addr,
                what: "two blocks start at this address".into(),
            });
        }
    }
    let mut t = Tr {
        b,
        f,
        sh,
        locs,
        refs,
        state,
        bias: None,
        blocks,
        callees: HashMap::new(),
        fi,
        id,
        inside: None,
        local: f.blocks.len() > LOCAL_MODE_BLOCKS,
        reads: Vec::new(),
        dirty: Vec::new(),
        dirty_in: Vec::new(),
        live: None,
        inst_index: 0,
        defer: Vec::new(),
        deferred: HashMap::new(),
        float_load: Vec::new(),
        stack: Vec::new(),
    };
    if !t.local {
        t.dirty_in = dirty_in(f);
        t.live = Some(liveness(f, &t.dirty_in));
    }
    // Entry 0 (a call) loads only the locations live at the function's entry and polls;
    // resume entry i > 0 enters block i (whole-function mode: after loading the locations
    // live there, which include those a write-back may store before the block assigns them).
    if let Some(header) = sh.unit {
        // Written by the runtime before any of the unit's code runs.
        let hdr = t.data_addr(header);
        let flags = state_flags().with_readonly();
        t.bias = Some(t.b.ins().load(types::I64, flags, hdr, BIAS_OFFSET as i32));
    }
    let poll_entry = t.b.create_block();
    let bad_entry = t.b.create_block();
    let (fast, resume) = (t.b.create_block(), t.b.create_block());
    t.b.ins().brif(entry, resume, &[], fast, &[]);
    t.b.switch_to_block(fast);
    t.b.seal_block(fast);
    let entry_live = t.live.as_ref().and_then(|l| l.at(&t.blocks, f.entry));
    if let Some(live) = entry_live {
        t.load(live.into_iter());
    }
    t.b.ins().jump(poll_entry, &[]);
    let mut targets = vec![t.b.func.dfg.block_call(poll_entry, &[])];
    for blk in &f.blocks[1..] {
        let cb = t.block_of(blk.addr).map(|(_, cb)| cb).ok_or_else(|| t.bad(blk, "lost block"))?;
        let live = t.live.as_ref().and_then(|l| l.at(&t.blocks, blk.addr));
        let target = match live {
            Some(live) if !t.local => {
                let load = t.b.create_block();
                t.b.switch_to_block(load);
                t.load(live.into_iter());
                t.b.ins().jump(cb, &[]);
                load
            }
            _ => cb,
        };
        targets.push(t.b.func.dfg.block_call(target, &[]));
    }
    t.b.switch_to_block(resume);
    t.b.seal_block(resume);
    let default = t.b.func.dfg.block_call(bad_entry, &[]);
    let jt = t.b.create_jump_table(JumpTableData::new(default, &targets));
    // Entries past the table (including ones that do not fit in 32 bits) go to `bad_entry`.
    let n = t.b.ins().iconst(types::I64, f.blocks.len() as i64);
    let in_range = t.b.ins().icmp(CIntCC::UnsignedLessThan, entry, n);
    let index = t.b.ins().select(in_range, entry, n);
    let index = t.b.ins().ireduce(types::I32, index);
    t.b.ins().br_table(index, jt);

    t.b.switch_to_block(bad_entry);
    t.b.seal_block(bad_entry);
    let code = TrapCode::user(1).ok_or_else(|| t.bad(&f.blocks[0], "no trap code"))?;
    t.b.ins().trap(code);

    t.b.switch_to_block(poll_entry);
    let first = t.blocks[&f.entry].1;
    // A function of one block that only jumps on (a PLT slot's `jmp *got`) does not poll: it
    // reaches another function's entry, which polls, or a block inside one; a chain of such
    // jumps ends at the nesting limit in the dispatcher, which polls too.
    let hop = f.blocks.len() == 1
        && matches!(f.blocks[0].term, Terminator::JumpIndirect(_))
        && f.blocks[0].insts.iter().all(|i| !matches!(i.op, Op::Helper(..)));
    // Nor does a leaf without loops (no calls, syscalls or indirect jumps, every jump to its
    // own blocks forward): it runs a bounded number of blocks and returns to a caller that
    // polls in its loops, or goes on to another function as above.
    let own = &t.blocks;
    let forward = |b: &Block, to: u64| to > b.addr || !own.contains_key(&to);
    let leaf = f.blocks.iter().all(|b| match &b.term {
        Terminator::Jump(to) => forward(b, *to),
        Terminator::Branch { taken, fallthrough, .. } => forward(b, *taken) && forward(b, *fallthrough),
        Terminator::Return(_) | Terminator::Trap { .. } => true,
        Terminator::JumpIndirect(_) | Terminator::Call { .. } | Terminator::Syscall { .. } => false,
    });
    if hop || leaf {
        t.b.ins().jump(first, &[]);
    } else {
        t.poll_then_jump(f.entry, first);
    }

    for blk in &f.blocks {
        let cb = t.blocks[&blk.addr].1;
        t.b.switch_to_block(cb);
        t.block(blk)?;
    }
    t.b.seal_all_blocks();
    t.b.finalize(sh.frontend);
    Ok(func)
}

/// A translated IR value: one Cranelift value, or a 128-bit value as two `I64` halves.
#[derive(Clone, Copy)]
enum Val {
    One(CValue),
    Wide(CValue, CValue),
}

/// Constant-folding knowledge of the lazy flags inside one block.
#[derive(Clone, Copy, Default)]
struct FlagKnowledge {
    /// `cc_op` when the block set it to a constant and nothing clobbered it since.
    cc_op: Option<u64>,
}

impl<'a> Tr<'a, '_> {
    fn bad(&self, blk: &Block, what: &str) -> CodegenError {
        CodegenError::BadIr { func: self.f.entry, block: blk.addr, what: what.into() }
    }

    fn get_val(&self, blk: &Block, vals: &[Option<Val>], v: &Value) -> Result<Val, CodegenError> {
        vals.get(v.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| self.bad(blk, &format!("use of undefined value v{}", v.0)))
    }

    /// Value `v` as one Cranelift value (a split 128-bit value is joined).
    fn val(&mut self, blk: &Block, vals: &[Option<Val>], v: &Value) -> Result<CValue, CodegenError> {
        Ok(match self.get_val(blk, vals, v)? {
            Val::One(x) => x,
            Val::Wide(lo, hi) => self.b.ins().iconcat(lo, hi),
        })
    }

    /// Whether value `v` is 128 bits wide.
    fn is_wide(&self, blk: &Block, vals: &[Option<Val>], v: &Value) -> Result<bool, CodegenError> {
        Ok(match self.get_val(blk, vals, v)? {
            Val::Wide(..) => true,
            Val::One(x) => self.b.func.dfg.value_type(x) == types::I128,
        })
    }

    /// 128-bit value `v` as its (low, high) halves.
    fn wide(&mut self, blk: &Block, vals: &[Option<Val>], v: &Value) -> Result<(CValue, CValue), CodegenError> {
        match self.get_val(blk, vals, v)? {
            Val::Wide(lo, hi) => Ok((lo, hi)),
            Val::One(x) if self.b.func.dfg.value_type(x) == types::I128 => {
                let (lo, hi) = self.b.ins().isplit(x);
                Ok((lo, hi))
            }
            Val::One(x) => Err(self.bad(
                blk,
                &format!("v{} is a {}, expected 128 bits", v.0, self.b.func.dfg.value_type(x)),
            )),
        }
    }

    fn block_of(&self, addr: u64) -> Option<(usize, ir::Block)> {
        self.blocks.get(&addr).copied()
    }

    fn iconst(&mut self, v: u64) -> CValue {
        self.b.ins().iconst(types::I64, v as i64)
    }

    /// The run-time value of link-time guest address `addr` (see `Op::Pc`).
    fn gaddr(&mut self, addr: u64) -> CValue {
        match self.bias {
            Some(bias) => self.b.ins().iadd_imm_s(bias, addr as i64),
            None => self.iconst(addr),
        }
    }

    /// Call runtime entry point `which` with `args`.
    fn call_rt(&mut self, which: Import, args: &[CValue]) -> ir::Inst {
        match &self.refs.rt {
            RtRefs::Direct(f) => {
                let f = f[which as usize];
                self.b.ins().call(f, args)
            }
            RtRefs::Imported(sigs) => {
                let sig = sigs[which as usize];
                let header = self.sh.unit.expect("imported runtime calls are made by units only");
                let hdr = self.data_addr(header);
                let flags = state_flags().with_readonly();
                let at = IMPORTS_OFFSET as i32 + 8 * which as i32;
                let f = self.b.ins().load(types::I64, flags, hdr, at);
                self.b.ins().call_indirect(sig, f, args)
            }
        }
    }

    /// Load every location into its variable (local mode: those the block reads).
    fn reload_all(&mut self) {
        let offs: Vec<u32> = if self.local { self.reads.clone() } else { self.locs.all.keys().copied().collect() };
        self.load(offs.into_iter());
    }

    /// After a runtime call: load what is live next (`live`, whole-function mode; `None`: all
    /// of them), or in local mode what the block reads.
    fn reload(&mut self, live: Option<Vec<u32>>) {
        match live {
            Some(offs) if !self.local => self.load(offs.into_iter()),
            _ => self.reload_all(),
        }
    }

    /// Load the locations at `offs` into their variables.
    fn load(&mut self, offs: impl Iterator<Item = u32>) {
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
    fn write_back(&mut self) {
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
    fn flush_local(&mut self) {
        if self.local {
            self.write_back();
            self.dirty.clear();
        }
    }

    /// Write back, set `rip`, return `addr` to the caller.
    fn exit(&mut self, addr: CValue) {
        self.write_back();
        self.b.ins().store(state_flags(), addr, self.state, offsets::RIP as i32);
        self.b.ins().return_(&[addr]);
    }

    fn exit_const(&mut self, addr: u64) {
        let a = self.gaddr(addr);
        self.exit(a);
    }

    /// In the current (unterminated) block: if `state.poll != 0` leave to the runtime so it
    /// resumes at `addr`, else jump to `target`.
    ///
    /// The load is never merged with an earlier one by Cranelift's redundant-load elimination:
    /// every block is a `br_table` target of the entry block, so no poll load outside a loop
    /// dominates the loop's own.
    fn poll_then_jump(&mut self, addr: u64, target: ir::Block) {
        let poll = self.b.ins().load(types::I64, state_flags(), self.state, offsets::POLL as i32);
        let leave = self.b.create_block();
        self.b.ins().brif(poll, leave, &[], target, &[]);
        self.b.set_cold_block(leave);
        self.b.switch_to_block(leave);
        self.b.seal_block(leave);
        self.exit_const(addr);
    }

    /// Continue at guest address `to` from block `from`, in the current block.
    fn goto(&mut self, from: u64, to: u64) {
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
    fn stack_room(&mut self) -> CValue {
        let sp = self.b.ins().get_stack_pointer(types::I64);
        let used = self.b.ins().isub(self.state, sp);
        self.b.ins().icmp_imm_u(CIntCC::UnsignedLessThan, used, NEST_LIMIT)
    }

    /// Find the dispatch entry of guest address `a` (an indirect transfer of block `blk`):
    /// first in the block's cache word (a pointer to the entry the runtime's lookup returned
    /// last, whose run-time guest address is checked, so a stale entry only misses), else with
    /// the lookup, which the cache then keeps. Without a translation the function exits with
    /// `a`. Returns the entry's (host function, entry index), in the current block.
    fn resolve(&mut self, blk: &Block, a: CValue) -> Result<(CValue, CValue), CodegenError> {
        let slot = *self
            .sh
            .dispatch_caches
            .get(&(self.fi, self.blocks[&blk.addr].0))
            .ok_or_else(|| self.bad(blk, "indirect transfer without a dispatch cache"))?;
        let cache = self.data_addr(slot);
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
    fn jump_indirect(&mut self, blk: &Block, a: CValue) -> Result<(), CodegenError> {
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

    /// The block every indirect jump that lands in this function continues at: one
    /// `br_table` on the entry index to the function's blocks, shared by all sites (a table
    /// per site makes the edges, and Cranelift's work, quadratic in the blocks).
    fn inside_dispatch(&mut self, blk: &Block) -> Result<ir::Block, CodegenError> {
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

    fn block(&mut self, blk: &Block) -> Result<(), CodegenError> {
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

    /// After a native call into translated code (state already written back by the callee):
    /// continue at `ret` if the callee returned there, else return what it returned.
    fn after_call(&mut self, r: CValue, ret: u64) {
        match self.block_of(ret) {
            Some((_, cb)) => {
                let is_ret = match self.bias {
                    None => self.b.ins().icmp_imm_u(CIntCC::Equal, r, ret as i64),
                    Some(_) => {
                        let expected = self.gaddr(ret);
                        self.b.ins().icmp(CIntCC::Equal, r, expected)
                    }
                };
                let (cont, out) = (self.b.create_block(), self.b.create_block());
                self.b.ins().brif(is_ret, cont, &[], out, &[]);
                self.b.switch_to_block(out);
                self.b.seal_block(out);
                self.b.ins().return_(&[r]);
                self.b.switch_to_block(cont);
                self.b.seal_block(cont);
                if !self.local {
                    let live = self.live.as_ref().and_then(|l| l.at(&self.blocks, ret));
                    self.reload(live);
                }
                self.b.ins().jump(cb, &[]);
            }
            None => {
                self.b.ins().return_(&[r]);
            }
        }
    }

    fn callee(&mut self, id: FuncId) -> FuncRef {
        if let Some(&r) = self.callees.get(&id) {
            return r;
        }
        let sig = translated_sig(self.sh.call_conv);
        let r = import(self.b.func, id, sig);
        self.callees.insert(id, r);
        r
    }

    fn data_addr(&mut self, id: DataId) -> CValue {
        let name = self
            .b
            .func
            .declare_imported_user_function(UserExternalName { namespace: 1, index: id.as_u32() });
        let gv = self.b.func.create_global_value(ir::GlobalValueData::Symbol {
            name: ExternalName::user(name),
            offset: ir::immediates::Imm64::new(0),
            colocated: true,
            tls: false,
        });
        self.b.ins().symbol_value(types::I64, gv)
    }

    /// An integer condition as something `brif`/`select` accept (non-zero is true).
    fn truthy(&mut self, c: CValue) -> CValue {
        if self.b.func.dfg.value_type(c) == types::I128 {
            self.b.ins().icmp_imm_u(CIntCC::NotEqual, c, 0)
        } else {
            c
        }
    }

    fn as_i64(&mut self, blk: &Block, v: CValue) -> Result<CValue, CodegenError> {
        let ty = self.b.func.dfg.value_type(v);
        match ty {
            types::I64 => Ok(v),
            types::I8 | types::I16 | types::I32 => Ok(self.b.ins().uextend(types::I64, v)),
            _ => Err(self.bad(blk, &format!("expected an integer address, found {ty}"))),
        }
    }

    fn op(
        &mut self,
        blk: &Block,
        op: &Op,
        vals: &[Option<Val>],
        know: &mut FlagKnowledge,
    ) -> Result<Option<Val>, CodegenError> {
        if let Some(r) = self.op_wide(blk, op, vals)? {
            return Ok(r);
        }
        Ok(self.op_scalar(blk, op, vals, know)?.map(Val::One))
    }

    /// 128-bit operations done on 64-bit halves; `None` when `op` is not one of them.
    #[allow(clippy::type_complexity)]
    fn op_wide(
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
    fn shift_wide(&mut self, op: BinOp, lo: CValue, hi: CValue, k: i64) -> (CValue, CValue) {
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

    fn op_scalar(
        &mut self,
        blk: &Block,
        op: &Op,
        vals: &[Option<Val>],
        know: &mut FlagKnowledge,
    ) -> Result<Option<CValue>, CodegenError> {
        let ins_ty = |this: &Self, v: CValue| this.b.func.dfg.value_type(v);
        Ok(Some(match op {
            Op::Const { ty, bits } => self.constant(*ty, *bits),
            Op::Pc(a) => self.gaddr(*a),
            Op::Get(loc) if loc.offset == offsets::POLL => {
                self.b.ins().load(cl_type(loc.ty), state_flags(), self.state, loc.offset as i32)
            }
            Op::Set(loc, v) if loc.offset == offsets::POLL => {
                let v = self.val(blk, vals, v)?;
                self.b.ins().store(state_flags(), v, self.state, loc.offset as i32);
                return Ok(None);
            }
            Op::Get(loc) => {
                let var = self.locs.all[&loc.offset].var;
                self.b.use_var(var)
            }
            Op::Set(loc, v) => {
                let v = self.val(blk, vals, v)?;
                if ins_ty(self, v) != cl_type(loc.ty) {
                    return Err(self.bad(
                        blk,
                        &format!("Set of {:?} at offset {} with a {}", loc.ty, loc.offset, ins_ty(self, v)),
                    ));
                }
                if loc.offset == offsets::CC_OP {
                    know.cc_op = self.b.func.dfg.value_def(v).inst().and_then(|i| {
                        match self.b.func.dfg.insts[i] {
                            ir::InstructionData::UnaryImm { imm, .. } => Some(imm.bits() as u64),
                            _ => None,
                        }
                    });
                }
                let var = self.locs.all[&loc.offset].var;
                self.b.def_var(var, v);
                if !self.dirty.contains(&loc.offset) {
                    self.dirty.push(loc.offset);
                }
                return Ok(None);
            }
            Op::Load { ty, addr } => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let float = match ty {
                    Type::I64 => Some(types::F64),
                    Type::I32 => Some(types::F32),
                    _ => None,
                };
                let order = self.order_of(addr);
                match float {
                    // Ordered loads are integer loads: keep the integer.
                    Some(ft) if self.float_load.get(self.inst_index) == Some(&true) && order == Ordering::Plain => {
                        let f = self.b.ins().load(ft, guest_flags(), a, 0);
                        self.b.ins().bitcast(cl_type(*ty), MemFlagsData::new(), f)
                    }
                    _ => self.guest_load(order, cl_type(*ty), a),
                }
            }
            Op::Store { addr, val } => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let v = self.val(blk, vals, val)?;
                let order = self.order_of(addr);
                // A bit-cast float is stored as it is (no move to an integer register);
                // ordered stores are integer stores.
                let v = if order == Ordering::Plain { self.bitcast_source(v).unwrap_or(v) } else { v };
                self.guest_store(order, v, a);
                return Ok(None);
            }
            Op::AtomicRmw { op, addr, val } => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let v = self.val(blk, vals, val)?;
                let ty = self.b.func.dfg.value_type(v);
                let op = match op {
                    RmwOp::Add => AtomicRmwOp::Add,
                    RmwOp::Sub => AtomicRmwOp::Sub,
                    RmwOp::And => AtomicRmwOp::And,
                    RmwOp::Or => AtomicRmwOp::Or,
                    RmwOp::Xor => AtomicRmwOp::Xor,
                    RmwOp::Xchg => AtomicRmwOp::Xchg,
                };
                let old = self.b.ins().atomic_rmw(ty, guest_flags(), op, a, v);
                if self.sh.atomic_fence {
                    self.b.ins().fence();
                }
                old
            }
            Op::AtomicCas { addr, expected, new } => {
                let a = self.val(blk, vals, addr)?;
                let a = self.as_i64(blk, a)?;
                let e = self.val(blk, vals, expected)?;
                let n = self.val(blk, vals, new)?;
                let old = self.b.ins().atomic_cas(guest_flags(), a, e, n);
                if self.sh.atomic_fence {
                    self.b.ins().fence();
                }
                old
            }
            Op::Fence => {
                self.b.ins().fence();
                return Ok(None);
            }
            Op::Bin(op, x, y) => {
                let (x, y) = (self.val(blk, vals, x)?, self.val(blk, vals, y)?);
                self.binary(blk, *op, x, y)?
            }
            Op::Un(op, x) => {
                let x = self.val(blk, vals, x)?;
                self.unary(*op, x)
            }
            Op::Icmp(cc, x, y) => {
                let (x, y) = (self.val(blk, vals, x)?, self.val(blk, vals, y)?);
                if ins_ty(self, x) != ins_ty(self, y) {
                    return Err(self.bad(blk, "icmp of two different types"));
                }
                self.b.ins().icmp(int_cc(*cc), x, y)
            }
            Op::Fcmp(cc, x, y) => {
                let (x, y) = (self.val(blk, vals, x)?, self.val(blk, vals, y)?);
                self.b.ins().fcmp(float_cc(*cc), x, y)
            }
            Op::Select(c, x, y) => {
                let c = self.val(blk, vals, c)?;
                let c = self.truthy(c);
                let (x, y) = (self.val(blk, vals, x)?, self.val(blk, vals, y)?);
                if ins_ty(self, x) != ins_ty(self, y) {
                    return Err(self.bad(blk, "select of two different types"));
                }
                self.b.ins().select(c, x, y)
            }
            Op::Conv(op, ty, x) => {
                let x = self.val(blk, vals, x)?;
                self.convert(blk, *op, cl_type(*ty), x)?
            }
            Op::EvalCond(cc) => self.eval_cond(*cc, know.cc_op),
            Op::Rflags => {
                let mut args = Vec::with_capacity(5);
                for off in FLAG_LOCS.into_iter().chain([offsets::RFLAGS_OTHER]) {
                    let var = self.locs.all[&off].var;
                    args.push(self.b.use_var(var));
                }
                let call = self.call_rt(Import::Rflags, &args);
                self.b.inst_results(call)[0]
            }
            Op::Helper(id, args) => {
                if args.len() > 3 {
                    return Err(self.bad(blk, "helper call with more than three arguments"));
                }
                let mut a = vec![self.state, self.iconst(u64::from(*id))];
                for v in args {
                    let v = self.val(blk, vals, v)?;
                    a.push(self.as_i64(blk, v)?);
                }
                while a.len() < 5 {
                    a.push(self.iconst(0));
                }
                // The helper may read and write any location: everything assigned so far is
                // stored first (and is clean afterwards, so a later write-back cannot undo
                // what the helper wrote); what the code reads later is loaded again.
                self.write_back();
                self.dirty.clear();
                // The x87 helper's plain memory accesses, ordered as one guest access.
                let fenced = self.sh.order != Ordering::Plain && helper_touches_memory(blk, op);
                if fenced {
                    self.b.ins().fence();
                }
                let call = self.call_rt(Import::Helper, &a);
                if fenced {
                    self.b.ins().fence();
                }
                let r = self.b.inst_results(call)[0];
                let key = (self.blocks[&blk.addr].0, self.inst_index);
                let live = self.live.as_ref().and_then(|l| l.after_helper.get(&key).cloned());
                self.reload(live);
                *know = FlagKnowledge::default();
                r
            }
        }))
    }

    /// How the guest access through IR value `addr` of the current block is ordered: plain
    /// through `rsp` (see [`stack_addrs`]), else as the translation's memory model says.
    fn order_of(&self, addr: &Value) -> Ordering {
        if self.stack.get(addr.0 as usize) == Some(&true) {
            Ordering::Plain
        } else {
            self.sh.order
        }
    }

    /// Run `fast` when the low bits of `a` selected by `mask` are zero, else `slow` (a cold
    /// path); both produce values of `tys`, which the returned join block receives.
    fn by_alignment(
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
    fn guest_load(&mut self, order: Ordering, ty: ir::Type, a: CValue) -> CValue {
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
    fn guest_store(&mut self, order: Ordering, v: CValue, a: CValue) {
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
    fn guest_load_pair(&mut self, order: Ordering, a: CValue) -> (CValue, CValue) {
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
    fn guest_store_pair(&mut self, order: Ordering, lo: CValue, hi: CValue, a: CValue) {
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

    fn constant(&mut self, ty: Type, bits: u128) -> CValue {
        match ty {
            Type::F32 => self.b.ins().f32const(Ieee32::with_bits(bits as u32)),
            Type::F64 => self.b.ins().f64const(Ieee64::with_bits(bits as u64)),
            Type::I128 => {
                let lo = self.iconst(bits as u64);
                let hi = self.iconst((bits >> 64) as u64);
                self.b.ins().iconcat(lo, hi)
            }
            _ => {
                let t = cl_type(ty);
                let m = if ty.bits() >= 64 { u64::MAX } else { (1u64 << ty.bits()) - 1 };
                self.b.ins().iconst(t, ((bits as u64) & m) as i64)
            }
        }
    }

    fn binary(&mut self, blk: &Block, op: BinOp, x: CValue, y: CValue) -> Result<CValue, CodegenError> {
        let tx = self.b.func.dfg.value_type(x);
        let ty = self.b.func.dfg.value_type(y);
        let shift = matches!(op, BinOp::Shl | BinOp::LShr | BinOp::AShr | BinOp::Rotl | BinOp::Rotr);
        if !shift && tx != ty {
            return Err(self.bad(blk, &format!("{op:?} of {tx} and {ty}")));
        }
        let i = self.b.ins();
        Ok(match op {
            BinOp::Add => i.iadd(x, y),
            BinOp::Sub => i.isub(x, y),
            BinOp::Mul => i.imul(x, y),
            BinOp::UMulHi => i.umulhi(x, y),
            BinOp::SMulHi => i.smulhi(x, y),
            BinOp::UDiv => i.udiv(x, y),
            BinOp::SDiv => i.sdiv(x, y),
            BinOp::URem => i.urem(x, y),
            BinOp::SRem => i.srem(x, y),
            BinOp::And | BinOp::Or | BinOp::Xor if tx.is_float() => {
                // Bitwise operations on floats (andps, xorpd…) act on the bits.
                let it = tx.as_int();
                let (a, b) = (i.bitcast(it, MemFlagsData::new(), x), self.b.ins().bitcast(it, MemFlagsData::new(), y));
                let r = match op {
                    BinOp::And => self.b.ins().band(a, b),
                    BinOp::Or => self.b.ins().bor(a, b),
                    _ => self.b.ins().bxor(a, b),
                };
                self.b.ins().bitcast(tx, MemFlagsData::new(), r)
            }
            BinOp::And => i.band(x, y),
            BinOp::Or => i.bor(x, y),
            BinOp::Xor => i.bxor(x, y),
            BinOp::Shl => i.ishl(x, y),
            BinOp::LShr => i.ushr(x, y),
            BinOp::AShr => i.sshr(x, y),
            BinOp::Rotl => i.rotl(x, y),
            BinOp::Rotr => i.rotr(x, y),
            BinOp::FAdd | BinOp::FSub | BinOp::FMul | BinOp::FDiv => {
                let r = match op {
                    BinOp::FAdd => i.fadd(x, y),
                    BinOp::FSub => i.fsub(x, y),
                    BinOp::FMul => i.fmul(x, y),
                    _ => i.fdiv(x, y),
                };
                // `x + x` and `x * x` are NaN only for a NaN `x`, which both hosts return made
                // quiet: nothing to fix unless `x` itself still awaits its fix-up.
                if x == y && matches!(op, BinOp::FAdd | BinOp::FMul) && !self.deferred.contains_key(&x) {
                    return Ok(r);
                }
                self.x86_nan(r, x, Some(y))
            }
            BinOp::FMinX86 => {
                let lt = i.fcmp(CFloatCC::LessThan, x, y);
                self.b.ins().select(lt, x, y)
            }
            BinOp::FMaxX86 => {
                let gt = i.fcmp(CFloatCC::GreaterThan, x, y);
                self.b.ins().select(gt, x, y)
            }
        })
    }

    fn unary(&mut self, op: UnOp, x: CValue) -> CValue {
        let ty = self.b.func.dfg.value_type(x);
        let i = self.b.ins();
        match op {
            UnOp::Not => i.bnot(x),
            UnOp::Neg => i.ineg(x),
            UnOp::Clz => i.clz(x),
            UnOp::Ctz => i.ctz(x),
            UnOp::Popcnt => i.popcnt(x),
            UnOp::Bswap if ty == types::I8 => x,
            UnOp::Bswap => i.bswap(x),
            UnOp::FNeg => i.fneg(x),
            UnOp::FAbs => i.fabs(x),
            UnOp::FSqrt => {
                let r = i.sqrt(x);
                self.x86_nan(r, x, None)
            }
        }
    }

    fn convert(&mut self, blk: &Block, op: ConvOp, to: ir::Type, x: CValue) -> Result<CValue, CodegenError> {
        let from = self.b.func.dfg.value_type(x);
        let bad = |what: &str| self.bad(blk, &format!("{op:?} from {from} to {to}: {what}"));
        Ok(match op {
            ConvOp::Zext | ConvOp::Sext | ConvOp::Trunc if from == to => x,
            ConvOp::Zext if to.bits() > from.bits() && to.is_int() => self.b.ins().uextend(to, x),
            ConvOp::Sext if to.bits() > from.bits() && to.is_int() => self.b.ins().sextend(to, x),
            ConvOp::Trunc if to.bits() < from.bits() && to.is_int() => self.b.ins().ireduce(to, x),
            ConvOp::Zext | ConvOp::Sext | ConvOp::Trunc => return Err(bad("bad widths")),
            ConvOp::Bitcast if from == to => x,
            ConvOp::Bitcast if from.bits() == to.bits() => match self.bitcast_source(x) {
                Some(y) if self.b.func.dfg.value_type(y) == to => y,
                _ => self.b.ins().bitcast(to, MemFlagsData::new(), x),
            },
            ConvOp::Bitcast => return Err(bad("sizes differ")),
            ConvOp::SIntToFloat if from.is_int() && to.is_float() => {
                let x = if from.bits() < 32 { self.b.ins().sextend(types::I32, x) } else { x };
                self.b.ins().fcvt_from_sint(to, x)
            }
            ConvOp::FloatToSIntTrunc | ConvOp::FloatToSIntRound
                if from.is_float() && (to == types::I32 || to == types::I64) =>
            {
                let x = if op == ConvOp::FloatToSIntRound { self.round_even(x) } else { x };
                self.float_to_sint(x, to)
            }
            ConvOp::FPromote if from == types::F32 && to == types::F64 => {
                let r = self.b.ins().fpromote(to, x);
                self.x86_nan_convert(r, x)
            }
            ConvOp::FDemote if from == types::F64 && to == types::F32 => {
                let r = self.b.ins().fdemote(to, x);
                self.x86_nan_convert(r, x)
            }
            _ => return Err(bad("unsupported conversion")),
        })
    }

    /// Branch to a cold block when `nan_of` is NaN; there `fix` computes the replacement for
    /// `r`, which is what the join block receives. The common, non-NaN path costs one compare
    /// and one branch.
    fn on_nan(&mut self, r: CValue, nan_of: CValue, fix: impl FnOnce(&mut Self) -> CValue) -> CValue {
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
    fn bitcast_source(&self, v: CValue) -> Option<CValue> {
        let dfg = &self.b.func.dfg;
        let ir::ValueDef::Result(inst, 0) = dfg.value_def(v) else { return None };
        match dfg.insts[inst] {
            ir::InstructionData::LoadNoOffset { opcode: ir::Opcode::Bitcast, arg, .. } => Some(arg),
            _ => None,
        }
    }

    fn x86_nan(&mut self, r: CValue, a: CValue, b: Option<CValue>) -> CValue {
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
    fn x86_pick(&mut self, ty: ir::Type, a: CValue, b: Option<CValue>) -> CValue {
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
    fn x86_value(&mut self, v: CValue) -> CValue {
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
    fn x86_nan_convert(&mut self, r: CValue, x: CValue) -> CValue {
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

    fn fconst(&mut self, ty: ir::Type, v: f64) -> CValue {
        if ty == types::F32 {
            self.b.ins().f32const(v as f32)
        } else {
            self.b.ins().f64const(v)
        }
    }

    /// Round to the nearest integer, ties to even, as x86 does under the default MXCSR,
    /// without relying on a host rounding instruction: for |x| < 2^(mantissa bits) adding and
    /// subtracting 2^(mantissa bits) rounds; larger values (and NaN) are integral already.
    fn round_even(&mut self, x: CValue) -> CValue {
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
    fn float_to_sint(&mut self, x: CValue, to: ir::Type) -> CValue {
        let ty = self.b.func.dfg.value_type(x);
        let limit = if to == types::I32 { 2147483648.0 } else { 9223372036854775808.0 };
        let limit = self.fconst(ty, limit);
        let sat = self.b.ins().fcvt_to_sint_sat(to, x);
        let bad = self.b.ins().fcmp(CFloatCC::UnorderedOrGreaterThanOrEqual, x, limit);
        let min = if to == types::I32 { i64::from(i32::MIN) } else { i64::MIN };
        let min = self.b.ins().iconst(to, min);
        self.b.ins().select(bad, min, sat)
    }

    /// `EvalCond(cc)`: inline when the block set `cc_op` to a known constant and the
    /// condition is simple for that operation, else ask the runtime.
    fn eval_cond(&mut self, cc: u8, cc_op: Option<u64>) -> CValue {
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

    fn flag_var(&mut self, off: u32, ty: ir::Type) -> CValue {
        let var = self.locs.all[&off].var;
        let v = self.b.use_var(var);
        if ty == types::I64 {
            v
        } else {
            self.b.ins().ireduce(ty, v)
        }
    }

    fn inline_cond(&mut self, cc: u8, cc_op: u64) -> Option<CValue> {
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

fn int_cc(cc: IntCC) -> CIntCC {
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

fn float_cc(cc: FloatCC) -> CFloatCC {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hcontainer_ir::Loc;

    const RAX: u32 = 0;
    const RBX: u32 = 24;

    fn loc(offset: u32, ty: Type) -> Loc {
        Loc { offset, ty }
    }

    fn block(addr: u64, term: Terminator) -> Block {
        let mut b = Block::new(addr);
        b.term = term;
        b
    }

    /// A location assigned on one forward path into a block but not on the other is stored on
    /// that edge, so it is clean in the block, and the calls before need not reload it.
    #[test]
    fn forward_merge_is_clean_and_nothing_is_reloaded_after_the_first_call() {
        let mut b0 = Block::new(0x1000);
        let c = b0.push(Op::Const { ty: Type::I64, bits: 7 });
        b0.push(Op::Set(loc(RBX, Type::I64), c));
        b0.term = Terminator::Branch { cond: c, taken: 0x1010, fallthrough: 0x1008 };
        let b1 = block(0x1008, Terminator::Call { target: CallTarget::Direct(0x9000), ret: 0x100c });
        let b2 = block(0x100c, Terminator::Jump(0x1010));
        let b3 = block(0x1010, Terminator::Call { target: CallTarget::Direct(0x9000), ret: 0x1020 });
        let mut b4 = Block::new(0x1020);
        let a = b4.push(Op::Get(loc(RAX, Type::I64)));
        b4.term = Terminator::Return(a);
        let f = Function { entry: 0x1000, blocks: vec![b0, b1, b2, b3, b4] };
        let dirty = dirty_in(&f);
        assert_eq!(dirty, vec![vec![], vec![RBX], vec![], vec![], vec![]]);
        let live = liveness(&f, &dirty);
        // After the first call (block 0x100c) nothing is live; after the second, rax.
        assert!(live.live_in[2].is_empty(), "{:?}", live.live_in[2]);
        assert_eq!(live.live_in[4].iter().copied().collect::<Vec<_>>(), vec![RAX]);
        // The first block's rbx store on the edge reads its variable, assigned there.
        assert!(live.live_in[0].is_empty(), "{:?}", live.live_in[0]);
    }

    /// A backward edge carries what is dirty at its end into the loop head.
    #[test]
    fn backward_edge_keeps_its_dirty_locations() {
        let mut b0 = Block::new(0x1000);
        let c = b0.push(Op::Const { ty: Type::I64, bits: 1 });
        b0.push(Op::Set(loc(RBX, Type::I64), c));
        b0.term = Terminator::Branch { cond: c, taken: 0x1000, fallthrough: 0x1010 };
        let mut b1 = Block::new(0x1010);
        let a = b1.push(Op::Get(loc(RAX, Type::I64)));
        b1.term = Terminator::Return(a);
        let f = Function { entry: 0x1000, blocks: vec![b0, b1] };
        let dirty = dirty_in(&f);
        assert_eq!(dirty, vec![vec![RBX], vec![RBX]]);
    }

    /// A product only added to something defers its NaN fix-up; the sum, stored to memory,
    /// does not; neither does a product left in a state location at the block's end.
    #[test]
    fn nan_fix_up_deferred_only_to_float_users() {
        let mut b = Block::new(0x1000);
        let x = b.push(Op::Const { ty: Type::F64, bits: 0 });
        let p = b.push(Op::Bin(BinOp::FMul, x, x));
        let pi = b.push(Op::Conv(ConvOp::Bitcast, Type::I64, p));
        b.push(Op::Set(loc(192, Type::I64), pi));
        let s = b.push(Op::Bin(BinOp::FAdd, p, x));
        let si = b.push(Op::Conv(ConvOp::Bitcast, Type::I64, s));
        b.push(Op::Set(loc(192, Type::I64), si));
        let addr = b.push(Op::Const { ty: Type::I64, bits: 0x5000 });
        b.push(Op::Store { addr, val: si });
        let q = b.push(Op::Bin(BinOp::FMul, s, x));
        let qi = b.push(Op::Conv(ConvOp::Bitcast, Type::I64, q));
        b.push(Op::Set(loc(200, Type::I64), qi));
        b.term = Terminator::Jump(0x2000);
        let d = deferrable(&b);
        assert!(d[p.0 as usize], "the product feeds only the sum");
        assert!(!d[s.0 as usize], "the sum is stored to memory");
        assert!(!d[q.0 as usize], "the last product stays in a state location");
    }
}
