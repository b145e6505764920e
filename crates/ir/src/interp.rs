//! Reference interpreter of the IR: the executable definition of what every [`Op`] means.
//!
//! [`run_block`] executes one [`Block`] on a [`GuestState`] and a [`Memory`] and says where
//! the guest continues ([`Exit`]); [`run_program`] follows exits through a [`Program`] until
//! a `syscall`, a trap, a missing block or a step limit. Helpers ([`Op::Helper`]) run the
//! shared semantics of `hcontainer_semantics`, the same code the runtime runs.
//!
//! Ill-typed IR (operand types that do not match, an undefined value, a state location out
//! of range, a division the front end should have guarded) is reported as an
//! [`InterpError`], never a panic. Float operations follow x86 SSE exactly, including NaN
//! results (first NaN operand quieted, or the negative default NaN), independent of the host.

use std::collections::HashMap;
use std::fmt;

use hcontainer_abi::flags;
use hcontainer_abi::GuestState;

use crate::{BinOp, Block, CallTarget, ConvOp, FloatCC, IntCC, Op, Program, Terminator, Type, UnOp, Value};

/// A guest memory access that cannot be performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// First byte of the access.
    pub addr: u64,
    /// Its length.
    pub len: usize,
    /// True for a write.
    pub write: bool,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.write { "write" } else { "read" };
        write!(f, "{what} of {} bytes at {:#x} faults", self.len, self.addr)
    }
}

/// Guest memory as the interpreter sees it.
pub trait Memory {
    /// Read `buf.len()` bytes at `addr`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// Write `buf` at `addr`.
    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), Fault>;
}

const PAGE: u64 = 4096;

/// A sparse guest memory of 4 KiB pages for tests; accessing an unmapped page faults.
#[derive(Clone, Debug, Default)]
pub struct SparseMemory {
    pages: HashMap<u64, Box<[u8; PAGE as usize]>>,
}

impl SparseMemory {
    /// An empty memory (nothing mapped).
    pub fn new() -> SparseMemory {
        SparseMemory::default()
    }

    /// Map zero-filled pages covering `addr .. addr + len` (pages already mapped stay as
    /// they are).
    pub fn map(&mut self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = addr / PAGE;
        let last = addr.saturating_add(len - 1) / PAGE;
        for p in first..=last {
            self.pages.entry(p).or_insert_with(|| Box::new([0; PAGE as usize]));
        }
    }

    /// True when every byte of `addr .. addr + len` is mapped.
    pub fn is_mapped(&self, addr: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = addr.checked_add(len - 1) else {
            return false;
        };
        (addr / PAGE..=end / PAGE).all(|p| self.pages.contains_key(&p))
    }

    fn check(&self, addr: u64, len: usize, write: bool) -> Result<(), Fault> {
        if self.is_mapped(addr, len as u64) {
            Ok(())
        } else {
            Err(Fault { addr, len, write })
        }
    }
}

impl Memory for SparseMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.check(addr, buf.len(), false)?;
        let mut done = 0;
        while done < buf.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(buf.len() - done);
            let page = self.pages.get(&(a / PAGE)).ok_or(Fault { addr, len: buf.len(), write: false })?;
            buf[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        self.check(addr, buf.len(), true)?;
        let mut done = 0;
        while done < buf.len() {
            let a = addr + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(buf.len() - done);
            let page = self.pages.get_mut(&(a / PAGE)).ok_or(Fault { addr, len: buf.len(), write: true })?;
            page[off..off + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

/// What helpers need besides memory: a time-stamp counter.
pub trait HelperHost {
    /// A monotonically increasing counter for `rdtsc`.
    fn ticks(&mut self) -> u64;
}

/// A [`HelperHost`] whose counter advances by a fixed step per read (deterministic tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepClock {
    /// The next value returned.
    pub now: u64,
}

impl HelperHost for StepClock {
    fn ticks(&mut self) -> u64 {
        self.now += 1000;
        self.now
    }
}

/// Where the guest continues after a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// At a guest address (jump, taken or not-taken branch, indirect jump).
    Jump(u64),
    /// A guest call (the return address is already pushed).
    Call {
        /// The callee.
        target: u64,
        /// The guest return address.
        ret: u64,
    },
    /// A guest return to this address.
    Return(u64),
    /// The `syscall` instruction; continue at `next` after it.
    Syscall {
        /// Address after the `syscall`.
        next: u64,
    },
    /// An instruction that cannot execute.
    Trap {
        /// Its address.
        addr: u64,
        /// What it is.
        what: String,
    },
}

impl Exit {
    /// The guest address execution continues at, if it continues.
    pub fn next_pc(&self) -> Option<u64> {
        match self {
            Exit::Jump(a) | Exit::Return(a) => Some(*a),
            Exit::Call { target, .. } => Some(*target),
            Exit::Syscall { next } => Some(*next),
            Exit::Trap { .. } => None,
        }
    }
}

/// Why the interpreter could not run a block: malformed IR or a memory fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// A guest memory access faulted.
    #[error("block {block:#x}, inst {inst}: {fault}")]
    Fault {
        /// Block address.
        block: u64,
        /// Instruction index.
        inst: usize,
        /// The access.
        fault: Fault,
    },
    /// An operand has the wrong type, refers to an undefined value, or is out of range.
    #[error("block {block:#x}, inst {inst}: ill-typed IR: {what}")]
    Type {
        /// Block address.
        block: u64,
        /// Instruction index (the terminator is `insts.len()`).
        inst: usize,
        /// What is wrong.
        what: String,
    },
    /// Integer division by zero or `MIN / -1`, which the front end must guard.
    #[error("block {block:#x}, inst {inst}: unguarded division ({what})")]
    Division {
        /// Block address.
        block: u64,
        /// Instruction index.
        inst: usize,
        /// The operands.
        what: String,
    },
    /// A helper number or op id that the semantics crate does not define.
    #[error("block {block:#x}, inst {inst}: unknown helper {helper} (op {a0:#x})")]
    UnknownHelper {
        /// Block address.
        block: u64,
        /// Instruction index.
        inst: usize,
        /// Helper number.
        helper: u32,
        /// Its first argument.
        a0: u64,
    },
    /// [`run_program`] reached an address with no block.
    #[error("no translated block at guest address {0:#x}")]
    NoBlock(u64),
    /// [`run_program`] ran its step limit out.
    #[error("step limit of {0} blocks reached")]
    StepLimit(u64),
}

/// A value during interpretation: its type and bits (zero-extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V {
    ty: Type,
    bits: u128,
}

fn mask(ty: Type) -> u128 {
    if ty == Type::I128 {
        u128::MAX
    } else {
        (1u128 << ty.bits()) - 1
    }
}

fn v(ty: Type, bits: u128) -> V {
    V { ty, bits: bits & mask(ty) }
}

fn sext(x: V) -> i128 {
    let b = x.ty.bits();
    if b == 128 {
        x.bits as i128
    } else {
        let s = 128 - b;
        ((x.bits << s) as i128) >> s
    }
}

fn is_int(ty: Type) -> bool {
    !ty.is_float()
}

fn nan_fix64(a: f64, b: f64, r: f64) -> u64 {
    hcontainer_semantics::float::fix_nan_f64(a.to_bits(), b.to_bits(), r)
}

fn nan_fix32(a: f32, b: f32, r: f32) -> u32 {
    hcontainer_semantics::float::fix_nan_f32(a.to_bits(), b.to_bits(), r)
}

/// Adapts [`Memory`] + [`HelperHost`] to the semantics crate's infallible [`hcontainer_semantics::Host`],
/// remembering the first fault.
struct HostAdapter<'a> {
    mem: &'a mut dyn Memory,
    clock: &'a mut dyn HelperHost,
    fault: Option<Fault>,
}

impl hcontainer_semantics::Host for HostAdapter<'_> {
    fn read(&mut self, addr: u64, buf: &mut [u8]) {
        if let Err(f) = self.mem.read(addr, buf) {
            self.fault.get_or_insert(f);
            buf.fill(0);
        }
    }
    fn write(&mut self, addr: u64, buf: &[u8]) {
        if self.fault.is_some() {
            return;
        }
        if let Err(f) = self.mem.write(addr, buf) {
            self.fault = Some(f);
        }
    }
    fn ticks(&mut self) -> u64 {
        self.clock.ticks()
    }
}

struct Ctx<'b> {
    block: &'b Block,
    inst: usize,
    vals: Vec<Option<V>>,
}

impl Ctx<'_> {
    fn ty_err(&self, what: impl Into<String>) -> InterpError {
        InterpError::Type { block: self.block.addr, inst: self.inst, what: what.into() }
    }
    fn get(&self, val: Value) -> Result<V, InterpError> {
        let i = val.0 as usize;
        if i >= self.inst {
            return Err(self.ty_err(format!("{val:?} used before it is defined")));
        }
        self.vals
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| self.ty_err(format!("{val:?} is defined by an op without a result")))
    }
    fn int(&self, val: Value) -> Result<V, InterpError> {
        let x = self.get(val)?;
        if x.ty.is_float() {
            return Err(self.ty_err(format!("{val:?} is {:?}, an integer is required", x.ty)));
        }
        Ok(x)
    }
    fn i64(&self, val: Value) -> Result<u64, InterpError> {
        let x = self.get(val)?;
        if x.ty != Type::I64 {
            return Err(self.ty_err(format!("{val:?} is {:?}, I64 is required", x.ty)));
        }
        Ok(x.bits as u64)
    }
}

fn state_bytes(state: &mut GuestState) -> &mut [u8] {
    // SAFETY: GuestState is `repr(C)`, made only of integers and byte arrays with no padding
    // (its size, 656, is the sum of its fields; see the layout assertion in hcontainer-abi),
    // so every byte is initialized and any byte pattern is a valid value. The slice borrows
    // `state` mutably for its whole lifetime.
    unsafe { std::slice::from_raw_parts_mut((state as *mut GuestState).cast::<u8>(), std::mem::size_of::<GuestState>()) }
}

/// Execute `block` on `state` and `mem`. On success the state holds the guest registers at
/// the block's exit and `state.rip` the address the guest continues at (for a trap, the
/// trapping instruction).
pub fn run_block(
    block: &Block,
    state: &mut GuestState,
    mem: &mut dyn Memory,
    helpers: &mut dyn HelperHost,
) -> Result<Exit, InterpError> {
    let mut cx = Ctx { block, inst: 0, vals: Vec::with_capacity(block.insts.len()) };
    for (i, inst) in block.insts.iter().enumerate() {
        cx.inst = i;
        let r = exec(&mut cx, &inst.op, state, mem, helpers)?;
        cx.vals.push(r);
    }
    cx.inst = block.insts.len();
    let exit = match &block.term {
        Terminator::Jump(a) => Exit::Jump(*a),
        Terminator::Branch { cond, taken, fallthrough } => {
            if cx.int(*cond)?.bits != 0 {
                Exit::Jump(*taken)
            } else {
                Exit::Jump(*fallthrough)
            }
        }
        Terminator::JumpIndirect(t) => Exit::Jump(cx.i64(*t)?),
        Terminator::Call { target, ret } => {
            let target = match target {
                CallTarget::Direct(a) => *a,
                CallTarget::Indirect(t) => cx.i64(*t)?,
            };
            Exit::Call { target, ret: *ret }
        }
        Terminator::Return(t) => Exit::Return(cx.i64(*t)?),
        Terminator::Syscall { next } => Exit::Syscall { next: *next },
        Terminator::Trap { addr, what } => Exit::Trap { addr: *addr, what: what.clone() },
    };
    state.rip = match &exit {
        Exit::Trap { addr, .. } => *addr,
        e => e.next_pc().unwrap_or(state.rip),
    };
    Ok(exit)
}

fn exec(
    cx: &mut Ctx<'_>,
    op: &Op,
    state: &mut GuestState,
    mem: &mut dyn Memory,
    helpers: &mut dyn HelperHost,
) -> Result<Option<V>, InterpError> {
    let fault = |cx: &Ctx<'_>, f: Fault| InterpError::Fault { block: cx.block.addr, inst: cx.inst, fault: f };
    Ok(Some(match op {
        Op::Const { ty, bits } => v(*ty, *bits),
        // The interpreter runs every program at its link-time addresses.
        Op::Pc(a) => v(Type::I64, u128::from(*a)),
        Op::Get(loc) => {
            let bytes = state_bytes(state);
            let (o, n) = (loc.offset as usize, loc.ty.bytes() as usize);
            let Some(src) = bytes.get(o..o + n) else {
                return Err(cx.ty_err(format!("state offset {} + {n} is outside GuestState", loc.offset)));
            };
            let mut b = [0u8; 16];
            b[..n].copy_from_slice(src);
            v(loc.ty, u128::from_le_bytes(b))
        }
        Op::Set(loc, val) => {
            let x = cx.get(*val)?;
            if x.ty != loc.ty {
                return Err(cx.ty_err(format!("Set of {:?} value to a {:?} location", x.ty, loc.ty)));
            }
            let bytes = state_bytes(state);
            let (o, n) = (loc.offset as usize, loc.ty.bytes() as usize);
            let Some(dst) = bytes.get_mut(o..o + n) else {
                return Err(cx.ty_err(format!("state offset {} + {n} is outside GuestState", loc.offset)));
            };
            dst.copy_from_slice(&x.bits.to_le_bytes()[..n]);
            return Ok(None);
        }
        Op::Load { ty, addr } => {
            let a = cx.i64(*addr)?;
            let n = ty.bytes() as usize;
            let mut b = [0u8; 16];
            mem.read(a, &mut b[..n]).map_err(|f| fault(cx, f))?;
            v(*ty, u128::from_le_bytes(b))
        }
        Op::Store { addr, val } => {
            let a = cx.i64(*addr)?;
            let x = cx.get(*val)?;
            let n = x.ty.bytes() as usize;
            mem.write(a, &x.bits.to_le_bytes()[..n]).map_err(|f| fault(cx, f))?;
            return Ok(None);
        }
        // One guest thread at a time: an atomic update is a load and a store.
        Op::AtomicRmw { op, addr, val } => {
            let a = cx.i64(*addr)?;
            let x = cx.get(*val)?;
            let n = x.ty.bytes() as usize;
            let mut b = [0u8; 16];
            mem.read(a, &mut b[..n]).map_err(|f| fault(cx, f))?;
            let old = u128::from_le_bytes(b);
            let new = op.apply(old, x.bits) & mask(x.ty);
            mem.write(a, &new.to_le_bytes()[..n]).map_err(|f| fault(cx, f))?;
            v(x.ty, old)
        }
        Op::AtomicCas { addr, expected, new } => {
            let a = cx.i64(*addr)?;
            let (e, n_val) = (cx.get(*expected)?, cx.get(*new)?);
            let n = e.ty.bytes() as usize;
            let mut b = [0u8; 16];
            mem.read(a, &mut b[..n]).map_err(|f| fault(cx, f))?;
            let old = u128::from_le_bytes(b);
            if old == e.bits {
                mem.write(a, &n_val.bits.to_le_bytes()[..n]).map_err(|f| fault(cx, f))?;
            }
            v(e.ty, old)
        }
        Op::Fence => return Ok(None),
        Op::Bin(bop, a, b) => bin(cx, *bop, cx.get(*a)?, cx.get(*b)?)?,
        Op::Un(uop, a) => un(cx, *uop, cx.get(*a)?)?,
        Op::Icmp(cc, a, b) => {
            let (x, y) = (cx.int(*a)?, cx.int(*b)?);
            if x.ty != y.ty {
                return Err(cx.ty_err(format!("icmp of {:?} and {:?}", x.ty, y.ty)));
            }
            let (sx, sy) = (sext(x), sext(y));
            let r = match cc {
                IntCC::Eq => x.bits == y.bits,
                IntCC::Ne => x.bits != y.bits,
                IntCC::Ult => x.bits < y.bits,
                IntCC::Ule => x.bits <= y.bits,
                IntCC::Ugt => x.bits > y.bits,
                IntCC::Uge => x.bits >= y.bits,
                IntCC::Slt => sx < sy,
                IntCC::Sle => sx <= sy,
                IntCC::Sgt => sx > sy,
                IntCC::Sge => sx >= sy,
            };
            v(Type::I8, u128::from(r))
        }
        Op::Fcmp(cc, a, b) => {
            let (x, y) = (cx.get(*a)?, cx.get(*b)?);
            let (fx, fy) = match (x.ty, y.ty) {
                (Type::F64, Type::F64) => (f64::from_bits(x.bits as u64), f64::from_bits(y.bits as u64)),
                (Type::F32, Type::F32) => (
                    f64::from(f32::from_bits(x.bits as u32)),
                    f64::from(f32::from_bits(y.bits as u32)),
                ),
                (tx, ty) => return Err(cx.ty_err(format!("fcmp of {tx:?} and {ty:?}"))),
            };
            let uno = fx.is_nan() || fy.is_nan();
            let r = match cc {
                FloatCC::Eq => fx == fy,
                FloatCC::Lt => fx < fy,
                FloatCC::Le => fx <= fy,
                FloatCC::Uno => uno,
                FloatCC::Une => uno || fx != fy,
                FloatCC::Unlt => uno || fx >= fy,
                FloatCC::Unle => uno || fx > fy,
                FloatCC::Ord => !uno,
            };
            v(Type::I8, u128::from(r))
        }
        Op::Select(c, a, b) => {
            let c = cx.int(*c)?;
            let (x, y) = (cx.get(*a)?, cx.get(*b)?);
            if x.ty != y.ty {
                return Err(cx.ty_err(format!("select between {:?} and {:?}", x.ty, y.ty)));
            }
            if c.bits != 0 {
                x
            } else {
                y
            }
        }
        Op::Conv(cop, ty, a) => conv(cx, *cop, *ty, cx.get(*a)?)?,
        Op::EvalCond(cc) => {
            if *cc > 15 {
                return Err(cx.ty_err(format!("condition code {cc} > 15")));
            }
            let r = flags::eval_cond(*cc, state.cc_op, state.cc_dst, state.cc_src1, state.cc_src2);
            v(Type::I8, u128::from(r))
        }
        Op::Rflags => {
            let f = flags::materialize(state.cc_op, state.cc_dst, state.cc_src1, state.cc_src2) | state.rflags_other;
            v(Type::I64, u128::from(f))
        }
        Op::Helper(h, args) => {
            if args.len() > 3 {
                return Err(cx.ty_err(format!("helper {h} with {} arguments (at most 3)", args.len())));
            }
            let mut a = [0u64; 3];
            for (slot, arg) in a.iter_mut().zip(args) {
                *slot = cx.i64(*arg)?;
            }
            let mut host = HostAdapter { mem, clock: helpers, fault: None };
            let r = hcontainer_semantics::call(state, *h, a[0], a[1], a[2], &mut host);
            if let Some(f) = host.fault {
                return Err(fault(cx, f));
            }
            if r == hcontainer_semantics::UNKNOWN && hcontainer_semantics::Helper::from_u32(*h).is_none_or(|h| {
                matches!(h, hcontainer_semantics::Helper::X87 | hcontainer_semantics::Helper::Sse)
            }) {
                return Err(InterpError::UnknownHelper { block: cx.block.addr, inst: cx.inst, helper: *h, a0: a[0] });
            }
            v(Type::I64, u128::from(r))
        }
    }))
}

fn bin(cx: &Ctx<'_>, op: BinOp, x: V, y: V) -> Result<V, InterpError> {
    use BinOp::*;
    let ty = x.ty;
    let is_shift = matches!(op, Shl | LShr | AShr | Rotl | Rotr);
    let is_float_op = matches!(op, FAdd | FSub | FMul | FDiv | FMinX86 | FMaxX86);
    if is_float_op {
        if x.ty != y.ty || !x.ty.is_float() {
            return Err(cx.ty_err(format!("{op:?} of {:?} and {:?}", x.ty, y.ty)));
        }
        let bits = if ty == Type::F64 {
            let (a, b) = (f64::from_bits(x.bits as u64), f64::from_bits(y.bits as u64));
            u128::from(match op {
                FAdd => nan_fix64(a, b, a + b),
                FSub => nan_fix64(a, b, a - b),
                FMul => nan_fix64(a, b, a * b),
                FDiv => nan_fix64(a, b, a / b),
                FMinX86 => if a < b { a } else { b }.to_bits(),
                _ => if a > b { a } else { b }.to_bits(),
            })
        } else {
            let (a, b) = (f32::from_bits(x.bits as u32), f32::from_bits(y.bits as u32));
            u128::from(match op {
                FAdd => nan_fix32(a, b, a + b),
                FSub => nan_fix32(a, b, a - b),
                FMul => nan_fix32(a, b, a * b),
                FDiv => nan_fix32(a, b, a / b),
                FMinX86 => if a < b { a } else { b }.to_bits(),
                _ => if a > b { a } else { b }.to_bits(),
            })
        };
        return Ok(v(ty, bits));
    }
    if !is_int(x.ty) || !is_int(y.ty) || (!is_shift && x.ty != y.ty) {
        return Err(cx.ty_err(format!("{op:?} of {:?} and {:?}", x.ty, y.ty)));
    }
    let w = ty.bits();
    let (a, b) = (x.bits, y.bits);
    let div_err = |what: &str| InterpError::Division {
        block: cx.block.addr,
        inst: cx.inst,
        what: format!("{what}: {a:#x} / {b:#x} as {ty:?}"),
    };
    let r = match op {
        Add => a.wrapping_add(b),
        Sub => a.wrapping_sub(b),
        Mul => a.wrapping_mul(b),
        UMulHi | SMulHi => {
            if w > 64 {
                return Err(cx.ty_err(format!("{op:?} of I128")));
            }
            let p = if op == UMulHi { a.wrapping_mul(b) } else { sext(x).wrapping_mul(sext(y)) as u128 };
            p >> w
        }
        UDiv | URem => {
            if b == 0 {
                return Err(div_err("division by zero"));
            }
            if op == UDiv {
                a / b
            } else {
                a % b
            }
        }
        SDiv | SRem => {
            let (sa, sb) = (sext(x), sext(y));
            if sb == 0 {
                return Err(div_err("division by zero"));
            }
            let min = if w == 128 { i128::MIN } else { -(1i128 << (w - 1)) };
            if sa == min && sb == -1 {
                return Err(div_err("MIN / -1"));
            }
            (if op == SDiv { sa / sb } else { sa % sb }) as u128
        }
        And => a & b,
        Or => a | b,
        Xor => a ^ b,
        Shl | LShr | AShr | Rotl | Rotr => {
            let n = (b % u128::from(w)) as u32;
            match op {
                Shl => a << n,
                LShr => a >> n,
                AShr => (sext(x) >> n) as u128,
                Rotl if n == 0 => a,
                Rotl => (a << n) | (a >> (w - n)),
                Rotr if n == 0 => a,
                _ => (a >> n) | (a << (w - n)),
            }
        }
        _ => return Err(cx.ty_err(format!("{op:?} is not an integer operation"))),
    };
    Ok(v(ty, r))
}

fn un(cx: &Ctx<'_>, op: UnOp, x: V) -> Result<V, InterpError> {
    use UnOp::*;
    let ty = x.ty;
    let w = ty.bits();
    let float = matches!(op, FNeg | FAbs | FSqrt);
    if float != ty.is_float() {
        return Err(cx.ty_err(format!("{op:?} of {ty:?}")));
    }
    let sign: u128 = if ty == Type::F64 { 1 << 63 } else { 1 << 31 };
    let r = match op {
        Not => !x.bits,
        Neg => x.bits.wrapping_neg(),
        Clz => u128::from(x.bits.leading_zeros() - (128 - w)),
        Ctz => u128::from(x.bits.trailing_zeros().min(w)),
        Popcnt => u128::from(x.bits.count_ones()),
        Bswap => x.bits.swap_bytes() >> (128 - w),
        FNeg => x.bits ^ sign,
        FAbs => x.bits & !sign,
        FSqrt => {
            if ty == Type::F64 {
                let a = f64::from_bits(x.bits as u64);
                u128::from(nan_fix64(a, a, a.sqrt()))
            } else {
                let a = f32::from_bits(x.bits as u32);
                u128::from(nan_fix32(a, a, a.sqrt()))
            }
        }
    };
    Ok(v(ty, r))
}

fn conv(cx: &Ctx<'_>, op: ConvOp, to: Type, x: V) -> Result<V, InterpError> {
    use ConvOp::*;
    let from = x.ty;
    let bad = || cx.ty_err(format!("{op:?} from {from:?} to {to:?}"));
    let r = match op {
        Zext | Sext => {
            if from.is_float() || to.is_float() || to.bits() < from.bits() {
                return Err(bad());
            }
            if op == Zext {
                x.bits
            } else {
                sext(x) as u128
            }
        }
        Trunc => {
            if from.is_float() || to.is_float() || to.bits() > from.bits() {
                return Err(bad());
            }
            x.bits
        }
        Bitcast => {
            if from.bits() != to.bits() {
                return Err(bad());
            }
            x.bits
        }
        SIntToFloat => {
            if from.is_float() || from == Type::I128 || !to.is_float() {
                return Err(bad());
            }
            let i = sext(x) as i64;
            if to == Type::F64 {
                u128::from((i as f64).to_bits())
            } else {
                u128::from((i as f32).to_bits())
            }
        }
        FloatToSIntTrunc | FloatToSIntRound => {
            if !from.is_float() || !matches!(to, Type::I32 | Type::I64) {
                return Err(bad());
            }
            let f = if from == Type::F64 {
                f64::from_bits(x.bits as u64)
            } else {
                f64::from(f32::from_bits(x.bits as u32))
            };
            let f = if op == FloatToSIntTrunc { f.trunc() } else { f.round_ties_even() };
            let (lo, hi) = if to == Type::I64 { (-(2f64.powi(63)), 2f64.powi(63)) } else { (-(2f64.powi(31)), 2f64.powi(31)) };
            if f.is_nan() || f < lo || f >= hi {
                1u128 << (to.bits() - 1)
            } else {
                (f as i64) as u128
            }
        }
        FPromote => {
            if from != Type::F32 || to != Type::F64 {
                return Err(bad());
            }
            let a = f32::from_bits(x.bits as u32);
            if a.is_nan() {
                let b = x.bits as u64;
                u128::from(((b >> 31) << 63) | (0x7ff << 52) | ((b & 0x7f_ffff) << 29) | (1 << 51))
            } else {
                u128::from(f64::from(a).to_bits())
            }
        }
        FDemote => {
            if from != Type::F64 || to != Type::F32 {
                return Err(bad());
            }
            let a = f64::from_bits(x.bits as u64);
            if a.is_nan() {
                let b = x.bits as u64;
                u128::from((((b >> 63) << 31) | (0xff << 23) | ((b >> 29) & 0x7f_ffff) | (1 << 22)) as u32)
            } else {
                u128::from((a as f32).to_bits())
            }
        }
    };
    Ok(v(to, r))
}

/// Why [`run_program`] stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// At a `syscall` (state.rip is the address after it; the caller performs it).
    Syscall {
        /// Address after the `syscall`.
        next: u64,
    },
    /// At a trapping instruction.
    Trap {
        /// Its address.
        addr: u64,
        /// What it is.
        what: String,
    },
}

/// Run `program` from `state.rip`, following exits block by block, until a syscall or trap,
/// or at most `max_blocks` blocks. Returns the stop and the number of blocks run.
pub fn run_program(
    program: &Program,
    state: &mut GuestState,
    mem: &mut dyn Memory,
    helpers: &mut dyn HelperHost,
    max_blocks: u64,
) -> Result<(Stop, u64), InterpError> {
    let index: HashMap<u64, &Block> =
        program.functions.iter().flat_map(|f| f.blocks.iter()).map(|b| (b.addr, b)).collect();
    let mut steps = 0;
    loop {
        if steps >= max_blocks {
            return Err(InterpError::StepLimit(max_blocks));
        }
        let pc = state.rip;
        let block = index.get(&pc).ok_or(InterpError::NoBlock(pc))?;
        steps += 1;
        match run_block(block, state, mem, helpers)? {
            Exit::Syscall { next } => return Ok((Stop::Syscall { next }, steps)),
            Exit::Trap { addr, what } => return Ok((Stop::Trap { addr, what }, steps)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Function, Loc};
    use hcontainer_abi::offsets;

    fn gpr(i: u8) -> Loc {
        Loc { offset: offsets::gpr(i), ty: Type::I64 }
    }

    fn run(b: &Block, s: &mut GuestState, m: &mut SparseMemory) -> Result<Exit, InterpError> {
        run_block(b, s, m, &mut StepClock::default())
    }

    #[test]
    fn integer_ops_wrap_and_shift_modulo() {
        let mut b = Block::new(0x1000);
        let x = b.push(Op::Const { ty: Type::I8, bits: 0xf0 });
        let y = b.push(Op::Const { ty: Type::I8, bits: 0x20 });
        let s = b.push(Op::Bin(BinOp::Add, x, y)); // 0x10
        let n = b.push(Op::Const { ty: Type::I64, bits: 9 });
        let sh = b.push(Op::Bin(BinOp::Shl, y, n)); // 0x20 << (9 % 8) = 0x40
        let sa = b.push(Op::Bin(BinOp::AShr, x, n)); // 0xf0 >> 1 arith = 0xf8
        let r = b.push(Op::Bin(BinOp::Rotl, x, n)); // rotl(0xf0, 1) = 0xe1
        let z = b.push(Op::Conv(ConvOp::Zext, Type::I64, s));
        b.push(Op::Set(gpr(0), z));
        for (i, v) in [(1, sh), (2, sa), (3, r)] {
            let z = b.push(Op::Conv(ConvOp::Zext, Type::I64, v));
            b.push(Op::Set(gpr(i), z));
        }
        b.term = Terminator::Jump(0x2000);
        let mut st = GuestState::new();
        let exit = run(&b, &mut st, &mut SparseMemory::new()).expect("runs");
        assert_eq!(exit, Exit::Jump(0x2000));
        assert_eq!(st.rip, 0x2000);
        assert_eq!(&st.gpr[..4], &[0x10, 0x40, 0xf8, 0xe1]);
    }

    #[test]
    fn memory_and_faults() {
        let mut m = SparseMemory::new();
        m.map(0x7000, 0x1000);
        let mut b = Block::new(0x1000);
        let a = b.push(Op::Const { ty: Type::I64, bits: 0x7ffc });
        let v = b.push(Op::Const { ty: Type::I32, bits: 0xdead_beef });
        b.push(Op::Store { addr: a, val: v });
        let l = b.push(Op::Load { ty: Type::I16, addr: a });
        let z = b.push(Op::Conv(ConvOp::Zext, Type::I64, l));
        b.push(Op::Set(gpr(0), z));
        b.term = Terminator::Return(a);
        let mut st = GuestState::new();
        assert_eq!(run(&b, &mut st, &mut m), Ok(Exit::Return(0x7ffc)));
        assert_eq!(st.gpr[0], 0xbeef);
        // A store crossing into an unmapped page faults.
        let mut b2 = Block::new(0x1000);
        let a = b2.push(Op::Const { ty: Type::I64, bits: 0x7ffe });
        let v = b2.push(Op::Const { ty: Type::I32, bits: 1 });
        b2.push(Op::Store { addr: a, val: v });
        let e = run(&b2, &mut st, &mut m).expect_err("faults");
        assert!(matches!(e, InterpError::Fault { fault: Fault { addr: 0x7ffe, len: 4, write: true }, .. }), "{e}");
    }

    #[test]
    fn type_errors_are_errors() {
        let mut b = Block::new(0x1000);
        let x = b.push(Op::Const { ty: Type::I8, bits: 1 });
        let y = b.push(Op::Const { ty: Type::I64, bits: 1 });
        b.push(Op::Bin(BinOp::Add, x, y));
        assert!(matches!(run(&b, &mut GuestState::new(), &mut SparseMemory::new()), Err(InterpError::Type { inst: 2, .. })));
        let mut b = Block::new(0x1000);
        b.push(Op::Bin(BinOp::Add, Value(5), Value(0)));
        assert!(matches!(run(&b, &mut GuestState::new(), &mut SparseMemory::new()), Err(InterpError::Type { .. })));
        let mut b = Block::new(0x1000);
        let x = b.push(Op::Const { ty: Type::I32, bits: 1 });
        let z = b.push(Op::Const { ty: Type::I32, bits: 0 });
        b.push(Op::Bin(BinOp::UDiv, x, z));
        assert!(matches!(run(&b, &mut GuestState::new(), &mut SparseMemory::new()), Err(InterpError::Division { .. })));
        let mut b = Block::new(0x1000);
        b.push(Op::Get(Loc { offset: 650, ty: Type::I64 }));
        assert!(matches!(run(&b, &mut GuestState::new(), &mut SparseMemory::new()), Err(InterpError::Type { .. })));
    }

    #[test]
    fn float_x86_semantics() {
        let mut b = Block::new(0x1000);
        let nan = b.push(Op::Const { ty: Type::F64, bits: u128::from(f64::NAN.to_bits()) });
        let one = b.push(Op::Const { ty: Type::F64, bits: u128::from(1f64.to_bits()) });
        let inf = b.push(Op::Const { ty: Type::F64, bits: u128::from(f64::INFINITY.to_bits()) });
        let mn = b.push(Op::Bin(BinOp::FMinX86, nan, one)); // second operand: 1.0
        let mx = b.push(Op::Bin(BinOp::FMaxX86, one, nan)); // second operand: NaN
        let ii = b.push(Op::Bin(BinOp::FSub, inf, inf)); // default NaN (negative)
        let cv = b.push(Op::Conv(ConvOp::FloatToSIntTrunc, Type::I32, inf)); // MIN
        let big = b.push(Op::Const { ty: Type::F64, bits: u128::from(2.5f64.to_bits()) });
        let rd = b.push(Op::Conv(ConvOp::FloatToSIntRound, Type::I64, big)); // 2
        for (i, val) in [(0u8, mn), (1, mx), (2, ii)] {
            let c = b.push(Op::Conv(ConvOp::Bitcast, Type::I64, val));
            b.push(Op::Set(gpr(i), c));
        }
        let c = b.push(Op::Conv(ConvOp::Zext, Type::I64, cv));
        b.push(Op::Set(gpr(3), c));
        b.push(Op::Set(gpr(4), rd));
        b.term = Terminator::Jump(0);
        let mut st = GuestState::new();
        run(&b, &mut st, &mut SparseMemory::new()).expect("runs");
        assert_eq!(st.gpr[0], 1f64.to_bits());
        assert!(f64::from_bits(st.gpr[1]).is_nan());
        assert_eq!(st.gpr[2], 0xfff8_0000_0000_0000);
        assert_eq!(st.gpr[3], 0x8000_0000);
        assert_eq!(st.gpr[4], 2);
    }

    #[test]
    fn helpers_and_program_loop() {
        // Block A: rax = 0; cpuid; jump B.  Block B: branch on ebx != 0 to C else trap.
        let mut a = Block::new(0x100);
        let z = a.push(Op::Const { ty: Type::I64, bits: 0 });
        a.push(Op::Set(gpr(0), z));
        a.push(Op::Helper(hcontainer_semantics::Helper::Cpuid as u32, vec![]));
        a.term = Terminator::Jump(0x200);
        let mut b = Block::new(0x200);
        let ebx = b.push(Op::Get(gpr(3)));
        let zero = b.push(Op::Const { ty: Type::I64, bits: 0 });
        let c = b.push(Op::Icmp(IntCC::Ne, ebx, zero));
        b.term = Terminator::Branch { cond: c, taken: 0x300, fallthrough: 0x400 };
        let mut c = Block::new(0x300);
        c.term = Terminator::Syscall { next: 0x302 };
        let p = Program { functions: vec![Function { entry: 0x100, blocks: vec![a, b, c] }], ..Default::default() };
        let mut st = GuestState::new();
        st.rip = 0x100;
        let (stop, n) = run_program(&p, &mut st, &mut SparseMemory::new(), &mut StepClock::default(), 10).expect("runs");
        assert_eq!(stop, Stop::Syscall { next: 0x302 });
        assert_eq!(n, 3);
        assert_eq!(st.gpr[3], 0x756e_6547, "Genu");
        assert_eq!(st.rip, 0x302);
        st.rip = 0x999;
        assert_eq!(
            run_program(&p, &mut st, &mut SparseMemory::new(), &mut StepClock::default(), 10),
            Err(InterpError::NoBlock(0x999))
        );
    }
}
