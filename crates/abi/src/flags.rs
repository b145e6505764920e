//! Lazy x86 condition flags.
//!
//! Translated code does not compute RFLAGS after every instruction. It records which
//! operation last set the flags (`cc_op`, a [`CcOp`] plus an operand size) and that
//! operation's result and operands (`cc_dst`, `cc_src1`, `cc_src2`); a consumer derives the one
//! flag or condition it needs. Most consumers sit in the same block as the producer, where the
//! lifter computes the condition directly; these functions serve the rest (the runtime, the
//! IR interpreter, recode).
//!
//! `cc_op` = `kind << 2 | size`, with `size` 0..=3 for 8/16/32/64-bit operands.

/// RFLAGS bit masks.
pub mod bits {
    #![allow(missing_docs)]
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    /// The six arithmetic flags.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Which operation last set the flags, and how to read them back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CcOp {
    /// `cc_dst` holds the arithmetic flags already materialized (RFLAGS bit positions).
    Eflags = 0,
    /// `dst = src1 + src2`.
    Add = 1,
    /// `dst = src1 + src2 + carry_in`.
    Adc = 2,
    /// `dst = src1 - src2` (also `cmp`, `neg` with src1 = 0).
    Sub = 3,
    /// `dst = src1 - src2 - borrow_in`.
    Sbb = 4,
    /// Logical operation: CF = OF = AF = 0.
    Logic = 5,
    /// `dst = src1 + 1`; `src2` holds the preserved CF (0 or 1).
    Inc = 6,
    /// `dst = src1 - 1`; `src2` holds the preserved CF (0 or 1).
    Dec = 7,
    /// Left shift by a non-zero count: `src1` is the operand shifted by `count - 1`.
    Shl = 8,
    /// Logical right shift by a non-zero count: `src1` is the operand shifted by `count - 1`,
    /// `src2` the original operand.
    Shr = 9,
    /// Arithmetic right shift by a non-zero count: `src1` is the operand shifted by `count - 1`.
    Sar = 10,
    /// Multiplication: CF = OF = (`src1` != 0); SF/ZF/PF from `dst`.
    Mul = 11,
}

impl CcOp {
    /// All kinds, indexed by their value.
    pub const ALL: [CcOp; 12] = [
        CcOp::Eflags,
        CcOp::Add,
        CcOp::Adc,
        CcOp::Sub,
        CcOp::Sbb,
        CcOp::Logic,
        CcOp::Inc,
        CcOp::Dec,
        CcOp::Shl,
        CcOp::Shr,
        CcOp::Sar,
        CcOp::Mul,
    ];

    /// Encode with an operand size in bytes (1, 2, 4 or 8).
    pub const fn with_size(self, bytes: u32) -> u64 {
        let log = match bytes {
            1 => 0,
            2 => 1,
            4 => 2,
            _ => 3,
        };
        ((self as u64) << 2) | log
    }

    /// Decode a `cc_op` value into kind and operand size in bits, or `None` if invalid.
    pub fn decode(cc_op: u64) -> Option<(CcOp, u32)> {
        let kind = usize::try_from(cc_op >> 2).ok()?;
        let op = *Self::ALL.get(kind)?;
        Some((op, 8u32 << (cc_op & 3)))
    }
}

/// The sixteen x86 condition codes, numbered as in `Jcc`/`SETcc`/`CMOVcc` encodings.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cond {
    O = 0,
    No = 1,
    B = 2,
    Ae = 3,
    E = 4,
    Ne = 5,
    Be = 6,
    A = 7,
    S = 8,
    Ns = 9,
    P = 10,
    Np = 11,
    L = 12,
    Ge = 13,
    Le = 14,
    G = 15,
}

impl Cond {
    /// Condition from its 4-bit encoding.
    pub const fn from_u8(n: u8) -> Cond {
        match n & 15 {
            0 => Cond::O,
            1 => Cond::No,
            2 => Cond::B,
            3 => Cond::Ae,
            4 => Cond::E,
            5 => Cond::Ne,
            6 => Cond::Be,
            7 => Cond::A,
            8 => Cond::S,
            9 => Cond::Ns,
            10 => Cond::P,
            11 => Cond::Np,
            12 => Cond::L,
            13 => Cond::Ge,
            14 => Cond::Le,
            _ => Cond::G,
        }
    }
}

#[inline]
fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[inline]
fn msb(v: u64, bits: u32) -> u64 {
    (v >> (bits - 1)) & 1
}

/// Parity flag of a result: set when its low byte has an even number of one bits.
#[inline]
pub fn parity(v: u64) -> bool {
    (v as u8).count_ones() % 2 == 0
}

/// The arithmetic flags (CF, PF, AF, ZF, SF, OF in their RFLAGS positions) described by a
/// lazy-flags record. An invalid `cc_op` yields 0.
pub fn materialize(cc_op: u64, dst: u64, src1: u64, src2: u64) -> u64 {
    use bits::*;
    let Some((op, bits)) = CcOp::decode(cc_op) else {
        return 0;
    };
    if op == CcOp::Eflags {
        return dst & ARITH;
    }
    let m = mask(bits);
    let (d, a, b) = (dst & m, src1 & m, src2 & m);
    let (cf, of, af) = match op {
        CcOp::Eflags => unreachable!("handled above"),
        CcOp::Add => (d < a, msb(!(a ^ b) & (a ^ d), bits) != 0, (a ^ b ^ d) & 0x10 != 0),
        CcOp::Adc => {
            let cin = d.wrapping_sub(a).wrapping_sub(b) & m;
            let cf = if cin != 0 { d <= a } else { d < a };
            (cf, msb(!(a ^ b) & (a ^ d), bits) != 0, (a ^ b ^ d) & 0x10 != 0)
        }
        CcOp::Sub => (a < b, msb((a ^ b) & (a ^ d), bits) != 0, (a ^ b ^ d) & 0x10 != 0),
        CcOp::Sbb => {
            let cin = a.wrapping_sub(b).wrapping_sub(d) & m;
            let cf = if cin != 0 { a <= b } else { a < b };
            (cf, msb((a ^ b) & (a ^ d), bits) != 0, (a ^ b ^ d) & 0x10 != 0)
        }
        CcOp::Logic => (false, false, false),
        CcOp::Inc => (b & 1 != 0, d == 1u64 << (bits - 1), d & 0xf == 0),
        CcOp::Dec => (b & 1 != 0, d == (m >> 1), d & 0xf == 0xf),
        CcOp::Shl => {
            let cf = msb(a, bits) != 0;
            (cf, (msb(d, bits) != 0) != cf, false)
        }
        CcOp::Shr => (a & 1 != 0, msb(b, bits) != 0, false),
        CcOp::Sar => (a & 1 != 0, false, false),
        CcOp::Mul => (a != 0, a != 0, false),
    };
    let mut f = 0;
    if cf {
        f |= CF;
    }
    if parity(d) {
        f |= PF;
    }
    if af {
        f |= AF;
    }
    if d == 0 {
        f |= ZF;
    }
    if msb(d, bits) != 0 {
        f |= SF;
    }
    if of {
        f |= OF;
    }
    f
}

/// Evaluate condition `cc` against materialized flags.
pub fn cond_holds(cc: Cond, flags: u64) -> bool {
    use bits::*;
    let cf = flags & CF != 0;
    let zf = flags & ZF != 0;
    let sf = flags & SF != 0;
    let of = flags & OF != 0;
    let pf = flags & PF != 0;
    match cc {
        Cond::O => of,
        Cond::No => !of,
        Cond::B => cf,
        Cond::Ae => !cf,
        Cond::E => zf,
        Cond::Ne => !zf,
        Cond::Be => cf || zf,
        Cond::A => !cf && !zf,
        Cond::S => sf,
        Cond::Ns => !sf,
        Cond::P => pf,
        Cond::Np => !pf,
        Cond::L => sf != of,
        Cond::Ge => sf == of,
        Cond::Le => zf || sf != of,
        Cond::G => !zf && sf == of,
    }
}

/// Evaluate condition `cc` (0..=15) for a lazy-flags record.
pub fn eval_cond(cc: u8, cc_op: u64, dst: u64, src1: u64, src2: u64) -> bool {
    cond_holds(Cond::from_u8(cc), materialize(cc_op, dst, src1, src2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_flags_match_cmp() {
        let op = CcOp::Sub.with_size(8);
        // 1 - 2: borrow, negative, not overflow.
        let f = materialize(op, 1u64.wrapping_sub(2), 1, 2);
        assert!(cond_holds(Cond::B, f));
        assert!(cond_holds(Cond::L, f));
        assert!(!cond_holds(Cond::E, f));
        // i64::MIN - 1 overflows.
        let a = i64::MIN as u64;
        let f = materialize(op, a.wrapping_sub(1), a, 1);
        assert!(cond_holds(Cond::O, f));
        assert!(cond_holds(Cond::L, f));
    }

    #[test]
    fn adc_carry_in_is_recovered() {
        let op = CcOp::Adc.with_size(1);
        // 0xff + 0 + 1 = 0x100: carry out, zero result.
        let f = materialize(op, 0, 0xff, 0);
        assert!(f & bits::CF != 0 && f & bits::ZF != 0);
        // 0x7f + 0 + 0: no carry.
        let f = materialize(op, 0x7f, 0x7f, 0);
        assert_eq!(f & bits::CF, 0);
    }
}
