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
//!
//! This module sets a function up (`translate`) and lowers the IR's value operations; the
//! rest is split by concern, each an `impl Tr` of its own:
//! - `state`: guest-state locations, their dirty/live analysis, loads and write-backs;
//! - `control`: terminators, jumps inside and between functions, polls, indirect dispatch;
//! - `calls`: runtime calls, native calls of translated functions, the return check;
//! - `memory`: guest loads and stores, and their x86-TSO ordering on weak hosts;
//! - `flags`: lazy-flag conditions;
//! - `fpu`: x86 NaN rules, rounding, float-to-integer conversion;
//! - `simd`: 128-bit values as two 64-bit halves.

mod calls;
mod control;
mod flags;
mod fpu;
mod memory;
mod simd;
mod state;

use calls::*;
use flags::*;
use fpu::*;
use memory::*;
use state::*;

pub(crate) use state::describe_analysis;

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
