//! The semantic IR: what a block of guest code does, independent of the guest's encoding
//! and of the host that will run it.
//!
//! A [`Block`] is a straight-line list of [`Inst`]s ending in one [`Terminator`]. Instruction
//! `i` of a block defines the SSA value [`Value`]`(i)` (if its op produces one); values are
//! local to their block. Guest registers and lazy flags are not values: they are *state
//! locations* ([`Loc`], a byte offset and type inside [`hcontainer_abi::GuestState`]) read with
//! [`Op::Get`] and written with [`Op::Set`]. Guest memory is accessed with [`Op::Load`] and
//! [`Op::Store`] at guest addresses, which are host addresses.
//!
//! The front end (`hcontainer-x86`) produces it, the code generator (`hcontainer-codegen`)
//! compiles it, and [`interp`] executes it as the reference for both.
#![deny(missing_docs)]

pub mod interp;
mod display;

use serde::{Deserialize, Serialize};

/// The type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Type {
    /// 8-bit integer. Also the type of booleans (0 or 1).
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 128-bit integer: an xmm register seen as bits.
    I128,
    /// IEEE single.
    F32,
    /// IEEE double.
    F64,
}

impl Type {
    /// Size in bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            Type::I8 => 1,
            Type::I16 => 2,
            Type::I32 | Type::F32 => 4,
            Type::I64 | Type::F64 => 8,
            Type::I128 => 16,
        }
    }
    /// Size in bits.
    pub const fn bits(self) -> u32 {
        self.bytes() * 8
    }
    /// True for `F32` and `F64`.
    pub const fn is_float(self) -> bool {
        matches!(self, Type::F32 | Type::F64)
    }
    /// The integer type of `bytes` bytes (1, 2, 4, 8 or 16).
    pub const fn int_of_bytes(bytes: u32) -> Option<Type> {
        match bytes {
            1 => Some(Type::I8),
            2 => Some(Type::I16),
            4 => Some(Type::I32),
            8 => Some(Type::I64),
            16 => Some(Type::I128),
            _ => None,
        }
    }
}

/// An SSA value: the result of instruction `.0` of the same block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Value(pub u32);

/// A location in the guest state: byte offset into `GuestState` and the type read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Loc {
    /// Byte offset in [`hcontainer_abi::GuestState`].
    pub offset: u32,
    /// Type of the access.
    pub ty: Type,
}

/// Two-operand operations. Integer operations wrap; both operands and the result have the
/// same type, except shifts and rotates, whose amount may be any integer type and is taken
/// modulo the bit width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// High half of the unsigned double-width product.
    UMulHi,
    /// High half of the signed double-width product.
    SMulHi,
    /// Unsigned division; the divisor is never zero (the front end checks first).
    UDiv,
    /// Signed division; never by zero nor `MIN / -1` (the front end checks first).
    SDiv,
    URem,
    SRem,
    And,
    Or,
    Xor,
    Shl,
    LShr,
    AShr,
    Rotl,
    Rotr,
    /// Float add/sub/mul/div with IEEE round-to-nearest.
    FAdd,
    FSub,
    FMul,
    FDiv,
    /// x86 `minss`/`minsd` semantics: `if a < b { a } else { b }` (second operand on NaN or equal).
    FMinX86,
    /// x86 `maxss`/`maxsd` semantics: `if a > b { a } else { b }`.
    FMaxX86,
}

/// One-operand operations; result type equals the operand's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum UnOp {
    Not,
    Neg,
    /// Count leading zeros (width if zero).
    Clz,
    /// Count trailing zeros (width if zero).
    Ctz,
    Popcnt,
    Bswap,
    FNeg,
    FAbs,
    FSqrt,
}

/// Integer comparisons, producing an `I8` 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum IntCC {
    Eq,
    Ne,
    Ult,
    Ule,
    Ugt,
    Uge,
    Slt,
    Sle,
    Sgt,
    Sge,
}

/// Float comparisons, producing an `I8` 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum FloatCC {
    /// Ordered and equal.
    Eq,
    /// Ordered and less than.
    Lt,
    /// Ordered and less than or equal.
    Le,
    /// Unordered (either is NaN).
    Uno,
    /// Unordered or not equal.
    Une,
    /// Unordered or not less than (`!(a < b)`).
    Unlt,
    /// Unordered or not less or equal (`!(a <= b)`).
    Unle,
    /// Ordered (neither is NaN).
    Ord,
}

/// Conversions between types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ConvOp {
    /// Zero-extend to a wider integer type.
    Zext,
    /// Sign-extend to a wider integer type.
    Sext,
    /// Keep the low bits in a narrower integer type.
    Trunc,
    /// Reinterpret bits between same-size int and float types.
    Bitcast,
    /// Signed integer to float, rounding to nearest.
    SIntToFloat,
    /// Float to signed integer with x86 semantics: truncate toward zero, and the "integer
    /// indefinite" value (`MIN`) for NaN or out of range.
    FloatToSIntTrunc,
    /// As `FloatToSIntTrunc`, but rounding to nearest even (x86 `cvtsd2si` under default MXCSR).
    FloatToSIntRound,
    /// f32 to f64.
    FPromote,
    /// f64 to f32, rounding to nearest.
    FDemote,
}

/// An operation. The type of the produced value (if any) follows from the op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A constant of an integer or float type (bits, little end).
    Const {
        /// Type of the constant.
        ty: Type,
        /// Its bits, zero-extended.
        bits: u128,
    },
    /// A guest code or data address of the translated ELF file (an `I64`): `addr` is its
    /// link-time address; the value is `addr` plus the file's load bias, which a unit (a
    /// position-independent library or executable, see `hcontainer_abi::unit`) learns only
    /// when the guest maps it. Static executables are translated at their final addresses,
    /// where the bias is 0. Terminator addresses and block addresses are link-time addresses
    /// in the same way.
    Pc(u64),
    /// Read a guest state location.
    Get(Loc),
    /// Write a guest state location. Produces no value.
    Set(Loc, Value),
    /// Load from guest memory at an `I64` address (unaligned allowed).
    Load {
        /// Type loaded.
        ty: Type,
        /// Guest address.
        addr: Value,
    },
    /// Store to guest memory. Produces no value.
    Store {
        /// Guest address.
        addr: Value,
        /// Value stored (its type gives the width).
        val: Value,
    },
    /// Binary operation.
    Bin(BinOp, Value, Value),
    /// Unary operation.
    Un(UnOp, Value),
    /// Integer comparison → `I8`.
    Icmp(IntCC, Value, Value),
    /// Float comparison → `I8`.
    Fcmp(FloatCC, Value, Value),
    /// `if c != 0 { a } else { b }`; `c` is any integer, `a` and `b` have one type.
    Select(Value, Value, Value),
    /// Conversion to `ty`.
    Conv(ConvOp, Type, Value),
    /// Evaluate x86 condition code `cc` (0..=15) against the lazy flags in the state → `I8`.
    EvalCond(u8),
    /// The architectural RFLAGS (`I64`) from the lazy flags and `rflags_other`.
    Rflags,
    /// Call a runtime helper (`hcontainer_abi::calls::HELPER`) with up to three `I64`
    /// arguments; the helper may read and write the whole state. Produces an `I64`.
    Helper(u32, Vec<Value>),
    /// Atomic read-modify-write of guest memory (a `lock`-prefixed instruction or `xchg`
    /// with memory): stores `op(old, val)` at the naturally aligned `addr` and produces `old`
    /// (the type of `val`, 8 to 64 bits). Sequentially consistent, a full barrier like x86's
    /// locked instructions.
    AtomicRmw {
        /// The update.
        op: RmwOp,
        /// Guest address.
        addr: Value,
        /// Operand.
        val: Value,
    },
    /// Atomic compare-and-swap (`lock cmpxchg`, `lock cmpxchg8b/16b`): if the memory at `addr`
    /// equals `expected`, stores `new`; produces the old memory value either way (the type of
    /// `expected`, 8 to 128 bits). Sequentially consistent.
    AtomicCas {
        /// Guest address.
        addr: Value,
        /// Value compared with memory.
        expected: Value,
        /// Value stored on a match.
        new: Value,
    },
    /// A full memory barrier (`mfence`). Produces no value.
    Fence,
}

/// The update of an [`Op::AtomicRmw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RmwOp {
    /// `old + val`
    Add,
    /// `old - val`
    Sub,
    /// `old & val`
    And,
    /// `old | val`
    Or,
    /// `old ^ val`
    Xor,
    /// `val`
    Xchg,
}

impl RmwOp {
    /// The value stored for `old` and `val` (integers of one width, zero-extended).
    pub fn apply(self, old: u128, val: u128) -> u128 {
        match self {
            RmwOp::Add => old.wrapping_add(val),
            RmwOp::Sub => old.wrapping_sub(val),
            RmwOp::And => old & val,
            RmwOp::Or => old | val,
            RmwOp::Xor => old ^ val,
            RmwOp::Xchg => val,
        }
    }
}

/// One instruction: an op, and the guest instruction address it came from (for messages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inst {
    /// The operation.
    pub op: Op,
}

/// How a block ends. Addresses are guest addresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Terminator {
    /// Continue at a known address.
    Jump(u64),
    /// If `cond != 0` continue at `taken`, else at `fallthrough`.
    Branch {
        /// Integer condition value.
        cond: Value,
        /// Target when true.
        taken: u64,
        /// Target when false.
        fallthrough: u64,
    },
    /// Continue at a computed address (`jmp reg/mem`).
    JumpIndirect(Value),
    /// A guest call: the block already pushed `ret` on the guest stack. The code generator
    /// may call the callee's translation directly and continue at `ret` when it returns there.
    Call {
        /// Callee: `Ok(addr)` for a direct call, `Err(value)` for an indirect one.
        target: CallTarget,
        /// Guest return address (the instruction after the call).
        ret: u64,
    },
    /// A guest return to the (already popped) address `Value`.
    Return(Value),
    /// The `syscall` instruction at this block's address; continue at `next` afterwards.
    Syscall {
        /// Address after the `syscall` instruction.
        next: u64,
    },
    /// An instruction that cannot execute (unsupported, invalid or `ud2`/`hlt`): stop the
    /// program with a message.
    Trap {
        /// Guest address of the instruction.
        addr: u64,
        /// What it is: mnemonic, bytes and reason.
        what: String,
    },
}

/// The callee of a [`Terminator::Call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallTarget {
    /// A call to a known guest address.
    Direct(u64),
    /// A call through a register or memory.
    Indirect(Value),
}

/// A basic block of guest code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Guest address of its first instruction: a resume and migration point.
    pub addr: u64,
    /// Number of guest bytes it covers.
    pub guest_len: u32,
    /// Number of guest instructions it covers.
    pub guest_insts: u32,
    /// Its instructions.
    pub insts: Vec<Inst>,
    /// How it ends.
    pub term: Terminator,
}

impl Block {
    /// An empty block at `addr` that traps (placeholder while building).
    pub fn new(addr: u64) -> Block {
        Block {
            addr,
            guest_len: 0,
            guest_insts: 0,
            insts: Vec::new(),
            term: Terminator::Trap {
                addr,
                what: String::from("block without terminator"),
            },
        }
    }

    /// Append `op`; returns the value it defines (meaningless for ops that define none).
    pub fn push(&mut self, op: Op) -> Value {
        let v = Value(u32::try_from(self.insts.len()).expect("block has fewer than 2^32 instructions"));
        self.insts.push(Inst { op });
        v
    }

    /// The type of value `v`, or `None` if its op produces no value or `v` is out of range.
    pub fn type_of(&self, v: Value) -> Option<Type> {
        let inst = self.insts.get(v.0 as usize)?;
        Some(match &inst.op {
            Op::Const { ty, .. } => *ty,
            Op::Pc(_) => Type::I64,
            Op::Get(loc) => loc.ty,
            Op::Set(..) | Op::Store { .. } | Op::Fence => return None,
            Op::Load { ty, .. } => *ty,
            Op::Bin(_, a, _) | Op::Un(_, a) => self.type_of(*a)?,
            Op::Icmp(..) | Op::Fcmp(..) | Op::EvalCond(_) => Type::I8,
            Op::Select(_, a, _) => self.type_of(*a)?,
            Op::Conv(_, ty, _) => *ty,
            Op::Rflags | Op::Helper(..) => Type::I64,
            Op::AtomicRmw { val, .. } => self.type_of(*val)?,
            Op::AtomicCas { expected, .. } => self.type_of(*expected)?,
        })
    }

    /// Guest addresses this block may continue at directly (not via a computed address).
    pub fn successors(&self) -> Vec<u64> {
        match &self.term {
            Terminator::Jump(a) => vec![*a],
            Terminator::Branch { taken, fallthrough, .. } => vec![*taken, *fallthrough],
            Terminator::Call { target, ret } => match target {
                CallTarget::Direct(t) => vec![*t, *ret],
                CallTarget::Indirect(_) => vec![*ret],
            },
            Terminator::Syscall { next } => vec![*next],
            Terminator::JumpIndirect(_) | Terminator::Return(_) | Terminator::Trap { .. } => vec![],
        }
    }
}

/// A guest function: the blocks reachable from `entry` without following calls, translated
/// together into one host function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Guest address of the function's entry.
    pub entry: u64,
    /// Its blocks, sorted by address; `blocks[0].addr == entry`.
    pub blocks: Vec<Block>,
}

/// A whole translated program.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Functions, sorted by entry address.
    pub functions: Vec<Function>,
    /// Jump tables code discovery recovered: the address of each indirect `jmp` through one
    /// → the guest addresses the table holds (distinct, sorted). A hint for the code
    /// generator, which may switch on them inside the function; the jump itself stays a
    /// `JumpIndirect` whose other targets still reach their code.
    #[serde(default)]
    pub jump_tables: std::collections::BTreeMap<u64, Vec<u64>>,
}
