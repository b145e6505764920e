//! A software x87 FPU: 80-bit extended-precision arithmetic with the exact results of the
//! hardware (IEEE extended format, rounding control of the control word, x87 NaN rules and
//! the x87 register stack), on the x87 fields of [`GuestState`].
//!
//! Every x87 instruction is one helper call (`Helper::X87`) with an *op id*
//! ([`X87Op::encode`]) and, for memory forms, the operand's guest address. The lifter maps
//! `iced_x86` codes to op ids (`hcontainer_x86::lift::x87::x87_op`).
//!
//! Arithmetic on finite values uses `rustc_apfloat`'s IEEE extended type; NaN propagation,
//! invalid-operation results (the "real indefinite"), unsupported encodings, stack faults and
//! condition codes follow the Intel SDM. Precision control below 64 bits (fadd, fsub, fmul,
//! fdiv, fsqrt) computes with round-to-odd at 64 bits and rounds once to 24 or 53 bits,
//! keeping the extended exponent range. C1 reports rounding away from zero, as hardware does.
//! Exceptions are always treated as masked: flags are recorded in the status word, no
//! floating-point exception is delivered.

use core::cmp::Ordering;

use hcontainer_abi::flags::{self, CcOp};
use hcontainer_abi::{GuestState, X87Reg};
use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status};

use crate::Host;

mod transcendental;
use transcendental::{Trig, TrigResult};

/// The operation of an x87 instruction.
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opc {
    // Arithmetic: `dst = dst op src` (`Sub`/`Div`) or `dst = src op dst` (`SubR`/`DivR`).
    Add = 0,
    Mul = 1,
    Sub = 2,
    SubR = 3,
    Div = 4,
    DivR = 5,
    // Comparisons of st(0) with the operand: condition codes, or ZF/PF/CF for the *I forms.
    Com = 6,
    ComP = 7,
    ComPP = 8,
    UCom = 9,
    UComP = 10,
    UComPP = 11,
    ComI = 12,
    ComIP = 13,
    UComI = 14,
    UComIP = 15,
    Tst = 16,
    Xam = 17,
    // Loads (push): fld m32/m64/m80/st(i), fild m16/m32/m64, constants.
    Ld = 18,
    Ld1 = 19,
    LdZ = 20,
    LdL2T = 21,
    LdL2E = 22,
    LdPi = 23,
    LdLg2 = 24,
    LdLn2 = 25,
    // Stores: fst/fstp m32/m64/m80/st(i), fist/fistp/fisttp m16/m32/m64.
    St = 26,
    StP = 27,
    Ist = 28,
    IstP = 29,
    IsttP = 30,
    // One-operand operations on st(0).
    Chs = 31,
    Abs = 32,
    Sqrt = 33,
    Rndint = 34,
    Scale = 35,
    Prem = 36,
    Prem1 = 37,
    Xtract = 38,
    // Stack and control.
    Xch = 39,
    Free = 40,
    FreeP = 41,
    IncStp = 42,
    DecStp = 43,
    Init = 44,
    Clex = 45,
    Nop = 46,
    Stsw = 47,
    Stcw = 48,
    Ldcw = 49,
    // fcmovcc st(0), st(i).
    CmovB = 50,
    CmovE = 51,
    CmovBe = 52,
    CmovU = 53,
    CmovNb = 54,
    CmovNe = 55,
    CmovNbe = 56,
    CmovNu = 57,
    // fnstenv/fldenv m28 (the 64-bit mode 28-byte environment).
    Stenv = 58,
    Ldenv = 59,
    // Transcendental functions of st(0) (and st(1)).
    F2xm1 = 60,
    Yl2x = 61,
    Yl2xp1 = 62,
    Patan = 63,
    Sin = 64,
    Cos = 65,
    SinCos = 66,
    Ptan = 67,
    // fnsave/frstor m108 (environment and the eight registers), fbld/fbstp m80bcd.
    Save = 68,
    Rstor = 69,
    Bld = 70,
    Bstp = 71,
    // fxsave/fxrstor m512 (x87, MXCSR and the sixteen xmm registers; 64-bit layout).
    Fxsave = 72,
    Fxrstor = 73,
    // xsave/xsaveopt, xsavec, xrstor with the state components of edx:eax (x87 and SSE are
    // the only ones the guest CPU has; see `cpuid::XCR0`).
    Xsave = 74,
    Xsavec = 75,
    Xrstor = 76,
}

impl Opc {
    const ALL: [Opc; 77] = [
        Opc::Add,
        Opc::Mul,
        Opc::Sub,
        Opc::SubR,
        Opc::Div,
        Opc::DivR,
        Opc::Com,
        Opc::ComP,
        Opc::ComPP,
        Opc::UCom,
        Opc::UComP,
        Opc::UComPP,
        Opc::ComI,
        Opc::ComIP,
        Opc::UComI,
        Opc::UComIP,
        Opc::Tst,
        Opc::Xam,
        Opc::Ld,
        Opc::Ld1,
        Opc::LdZ,
        Opc::LdL2T,
        Opc::LdL2E,
        Opc::LdPi,
        Opc::LdLg2,
        Opc::LdLn2,
        Opc::St,
        Opc::StP,
        Opc::Ist,
        Opc::IstP,
        Opc::IsttP,
        Opc::Chs,
        Opc::Abs,
        Opc::Sqrt,
        Opc::Rndint,
        Opc::Scale,
        Opc::Prem,
        Opc::Prem1,
        Opc::Xtract,
        Opc::Xch,
        Opc::Free,
        Opc::FreeP,
        Opc::IncStp,
        Opc::DecStp,
        Opc::Init,
        Opc::Clex,
        Opc::Nop,
        Opc::Stsw,
        Opc::Stcw,
        Opc::Ldcw,
        Opc::CmovB,
        Opc::CmovE,
        Opc::CmovBe,
        Opc::CmovU,
        Opc::CmovNb,
        Opc::CmovNe,
        Opc::CmovNbe,
        Opc::CmovNu,
        Opc::Stenv,
        Opc::Ldenv,
        Opc::F2xm1,
        Opc::Yl2x,
        Opc::Yl2xp1,
        Opc::Patan,
        Opc::Sin,
        Opc::Cos,
        Opc::SinCos,
        Opc::Ptan,
        Opc::Save,
        Opc::Rstor,
        Opc::Bld,
        Opc::Bstp,
        Opc::Fxsave,
        Opc::Fxrstor,
        Opc::Xsave,
        Opc::Xsavec,
        Opc::Xrstor,
    ];
}

/// The operand of an x87 instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// No explicit operand (or the implicit st(1) of `fcompp`, `fucompp`).
    None = 0,
    /// 32-bit float in memory.
    M32 = 1,
    /// 64-bit float in memory.
    M64 = 2,
    /// 80-bit extended float in memory.
    M80 = 3,
    /// 16-bit integer in memory.
    I16 = 4,
    /// 32-bit integer in memory.
    I32 = 5,
    /// 64-bit integer in memory.
    I64 = 6,
    /// st(i): `st(0) op st(i) → st(0)` for arithmetic; the register for the others.
    St = 7,
    /// `st(i) op st(0) → st(i)`.
    StRev = 8,
    /// `st(i) op st(0) → st(i)`, then pop.
    StPop = 9,
    /// 16-bit word in memory (status and control word).
    M16 = 10,
    /// The `ax` register (`fnstsw ax`).
    Ax = 11,
}

impl Kind {
    const ALL: [Kind; 12] = [
        Kind::None,
        Kind::M32,
        Kind::M64,
        Kind::M80,
        Kind::I16,
        Kind::I32,
        Kind::I64,
        Kind::St,
        Kind::StRev,
        Kind::StPop,
        Kind::M16,
        Kind::Ax,
    ];
}

/// One x87 instruction form: operation, operand kind, and register index `i` of st(i).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X87Op {
    /// The operation.
    pub opc: Opc,
    /// The operand kind.
    pub kind: Kind,
    /// `i` of st(i) (0..=7) for the register forms, else 0.
    pub sti: u8,
}

impl X87Op {
    /// A form.
    pub const fn new(opc: Opc, kind: Kind, sti: u8) -> X87Op {
        X87Op { opc, kind, sti: sti & 7 }
    }

    /// The op id: `opc << 8 | kind << 4 | sti`. Part of the translated-code ABI.
    pub const fn encode(self) -> u32 {
        ((self.opc as u32) << 8) | ((self.kind as u32) << 4) | self.sti as u32
    }

    /// Decode an op id; `None` for ids [`X87Op::encode`] never produces.
    pub fn decode(id: u32) -> Option<X87Op> {
        let opc = *Opc::ALL.get(usize::try_from(id >> 8).ok()?)?;
        let kind = *Kind::ALL.get(((id >> 4) & 0xf) as usize)?;
        let sti = (id & 0xf) as u8;
        if sti > 7 {
            return None;
        }
        Some(X87Op { opc, kind, sti })
    }
}

/// Status word bits.
pub mod sw {
    #![allow(missing_docs)]
    pub const IE: u16 = 1 << 0;
    pub const DE: u16 = 1 << 1;
    pub const ZE: u16 = 1 << 2;
    pub const OE: u16 = 1 << 3;
    pub const UE: u16 = 1 << 4;
    pub const PE: u16 = 1 << 5;
    pub const SF: u16 = 1 << 6;
    pub const ES: u16 = 1 << 7;
    pub const C0: u16 = 1 << 8;
    pub const C1: u16 = 1 << 9;
    pub const C2: u16 = 1 << 10;
    pub const TOP: u16 = 7 << 11;
    pub const C3: u16 = 1 << 14;
    pub const B: u16 = 1 << 15;
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// An 80-bit extended value, unpacked: sign, biased 15-bit exponent, 64-bit significand
/// with its explicit integer bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F80 {
    /// Sign (true = negative).
    pub sign: bool,
    /// Biased exponent (0..=0x7fff).
    pub exp: u16,
    /// Significand, integer bit at bit 63.
    pub mant: u64,
}

const QUIET: u64 = 1 << 62;
const INT_BIT: u64 = 1 << 63;

impl F80 {
    /// The "real indefinite" QNaN produced by invalid operations.
    pub const INDEFINITE: F80 = F80 { sign: true, exp: 0x7fff, mant: 0xc000_0000_0000_0000 };
    /// +0.0
    pub const ZERO: F80 = F80 { sign: false, exp: 0, mant: 0 };

    /// From the 10-byte memory format.
    pub fn from_bytes(b: &[u8; 10]) -> F80 {
        let mut m = [0u8; 8];
        m.copy_from_slice(&b[..8]);
        let se = u16::from_le_bytes([b[8], b[9]]);
        F80 { sign: se & 0x8000 != 0, exp: se & 0x7fff, mant: u64::from_le_bytes(m) }
    }

    /// To the 10-byte memory format.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&self.mant.to_le_bytes());
        let se = self.exp | if self.sign { 0x8000 } else { 0 };
        b[8..].copy_from_slice(&se.to_le_bytes());
        b
    }

    /// As the 80 low bits of a `u128` (apfloat's layout).
    pub fn to_bits(self) -> u128 {
        u128::from(self.mant) | (u128::from(self.exp) << 64) | (u128::from(self.sign) << 79)
    }

    /// From the 80 low bits of a `u128`.
    pub fn from_bits(b: u128) -> F80 {
        F80 { sign: (b >> 79) & 1 != 0, exp: ((b >> 64) & 0x7fff) as u16, mant: b as u64 }
    }

    fn is_nan(self) -> bool {
        self.exp == 0x7fff && self.mant & !INT_BIT != 0 && self.mant & INT_BIT != 0
    }
    fn is_snan(self) -> bool {
        self.is_nan() && self.mant & QUIET == 0
    }
    fn is_inf(self) -> bool {
        self.exp == 0x7fff && self.mant == INT_BIT
    }
    fn is_zero(self) -> bool {
        self.exp == 0 && self.mant == 0
    }
    /// Encodings the 387 and later reject: pseudo-NaN, pseudo-infinity, unnormal.
    fn is_unsupported(self) -> bool {
        self.exp != 0 && self.mant & INT_BIT == 0
    }
    fn is_denormal(self) -> bool {
        self.exp == 0 && self.mant != 0
    }
    fn quiet(self) -> F80 {
        F80 { mant: self.mant | QUIET, ..self }
    }
    fn neg(self) -> F80 {
        F80 { sign: !self.sign, ..self }
    }
    fn apf(self) -> Ext {
        Ext::from_bits(self.to_bits())
    }
    fn of_apf(v: Ext) -> F80 {
        F80::from_bits(v.to_bits())
    }

    /// Exact conversion from an IEEE double (a signalling NaN stays signalling).
    pub fn from_f64(bits: u64) -> F80 {
        let sign = bits >> 63 != 0;
        let e = ((bits >> 52) & 0x7ff) as u16;
        let f = bits & ((1 << 52) - 1);
        match e {
            0 if f == 0 => F80 { sign, exp: 0, mant: 0 },
            0 => {
                // Denormal: normalize.
                let lz = f.leading_zeros(); // >= 12
                let mant = f << lz;
                // value = f * 2^-1074 = mant * 2^(-1074 - lz); exponent of bit 63.
                let exp = (16383 - 1074 + 63) - lz as i32;
                F80 { sign, exp: exp as u16, mant }
            }
            0x7ff => F80 { sign, exp: 0x7fff, mant: INT_BIT | (f << 11) },
            _ => F80 { sign, exp: e + (16383 - 1023), mant: INT_BIT | (f << 11) },
        }
    }

    /// Exact conversion from an IEEE single.
    pub fn from_f32(bits: u32) -> F80 {
        let sign = bits >> 31 != 0;
        let e = ((bits >> 23) & 0xff) as u16;
        let f = u64::from(bits & ((1 << 23) - 1));
        match e {
            0 if f == 0 => F80 { sign, exp: 0, mant: 0 },
            0 => {
                let lz = f.leading_zeros();
                let mant = f << lz;
                let exp = (16383 - 149 + 63) - lz as i32;
                F80 { sign, exp: exp as u16, mant }
            }
            0xff => F80 { sign, exp: 0x7fff, mant: INT_BIT | (f << 40) },
            _ => F80 { sign, exp: e + (16383 - 127), mant: INT_BIT | (f << 40) },
        }
    }

    /// Exact conversion from a signed integer.
    pub fn from_i64(v: i64) -> F80 {
        if v == 0 {
            return F80::ZERO;
        }
        let mag = v.unsigned_abs();
        let lz = mag.leading_zeros();
        F80 { sign: v < 0, exp: (16383 + 63 - lz) as u16, mant: mag << lz }
    }
}

/// Accumulated exception flags and the C1 bit of one operation.
type Flags = u16;

fn round_of(cw: u16) -> Round {
    match (cw >> 10) & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    }
}

fn status_flags(s: Status) -> Flags {
    let mut f = 0;
    if s.contains(Status::INVALID_OP) {
        f |= sw::IE;
    }
    if s.contains(Status::DIV_BY_ZERO) {
        f |= sw::ZE;
    }
    if s.contains(Status::OVERFLOW) {
        f |= sw::OE;
    }
    if s.contains(Status::UNDERFLOW) {
        f |= sw::UE;
    }
    if s.contains(Status::INEXACT) {
        f |= sw::PE;
    }
    f
}

/// x87 NaN propagation for a two-operand operation where at least one operand is a NaN.
fn pick_nan(a: F80, b: F80) -> (F80, Flags) {
    let ie = if a.is_snan() || b.is_snan() { sw::IE } else { 0 };
    let r = match (a.is_nan(), b.is_nan()) {
        (true, false) => a,
        (false, true) => b,
        _ => {
            if a.is_snan() != b.is_snan() {
                // One signalling, one quiet: the quiet one.
                if a.is_snan() {
                    b
                } else {
                    a
                }
            } else {
                let (ma, mb) = (a.mant & !INT_BIT & !QUIET, b.mant & !INT_BIT & !QUIET);
                match ma.cmp(&mb) {
                    Ordering::Greater => a,
                    Ordering::Less => b,
                    Ordering::Equal => {
                        if !a.sign {
                            a
                        } else {
                            b
                        }
                    }
                }
            }
        }
    };
    (r.quiet(), ie)
}

/// Round a finite result to `bits` significant bits (precision control), in place.
fn round_precision(v: F80, bits: u32, rc: Round) -> (F80, Flags) {
    if v.exp == 0x7fff || v.mant == 0 || bits >= 64 {
        return (v, 0);
    }
    let drop = 64 - bits;
    let low = v.mant & ((1u64 << drop) - 1);
    if low == 0 {
        return (v, 0);
    }
    let kept = v.mant >> drop;
    let half = 1u64 << (drop - 1);
    let up = match rc {
        Round::NearestTiesToEven => low > half || (low == half && kept & 1 == 1),
        Round::NearestTiesToAway => low >= half,
        Round::TowardZero => false,
        Round::TowardPositive => !v.sign,
        Round::TowardNegative => v.sign,
    };
    let mut kept = kept + u64::from(up);
    let mut exp = v.exp;
    if kept >> bits != 0 {
        kept >>= 1;
        exp += 1;
    }
    let mut flags = sw::PE;
    if up {
        flags |= sw::C1;
    }
    if v.exp == 0 {
        // A tiny result that is inexact at this precision underflows.
        flags |= sw::UE;
    }
    if exp >= 0x7fff {
        // Overflow: infinity or the largest value at this precision.
        let to_inf = matches!(rc, Round::NearestTiesToEven | Round::NearestTiesToAway)
            || (rc == Round::TowardPositive && !v.sign)
            || (rc == Round::TowardNegative && v.sign);
        let r = if to_inf {
            F80 { sign: v.sign, exp: 0x7fff, mant: INT_BIT }
        } else {
            F80 { sign: v.sign, exp: 0x7ffe, mant: !0u64 << drop }
        };
        return (r, flags | sw::OE);
    }
    (F80 { sign: v.sign, exp, mant: kept << drop }, flags)
}

/// The significand precision selected by the control word's PC field.
fn precision_bits(cw: u16) -> u32 {
    match (cw >> 8) & 3 {
        0 => 24,
        2 => 53,
        _ => 64,
    }
}

/// Finish an arithmetic result: map apfloat's status, apply precision control.
/// The rounding an operation is computed with: the control word's, or round-to-odd
/// (truncate, then set the last bit when inexact) when precision control asks for fewer
/// than 64 bits, so that [`finish`] rounds exactly once to the final precision.
fn op_round(cw: u16) -> Round {
    if precision_bits(cw) < 64 {
        Round::TowardZero
    } else {
        round_of(cw)
    }
}

fn finish(r: rustc_apfloat::StatusAnd<Ext>, cw: u16) -> (F80, Flags) {
    if r.status.contains(Status::INVALID_OP) {
        return (F80::INDEFINITE, sw::IE);
    }
    let mut v = F80::of_apf(r.value);
    if precision_bits(cw) < 64 && r.status.contains(Status::INEXACT) && v.exp != 0x7fff {
        v.mant |= 1;
    }
    let f = status_flags(r.status);
    let (v, pf) = round_precision(v, precision_bits(cw), round_of(cw));
    (v, f | pf)
}

/// Common screening of operands: NaNs, unsupported encodings, denormal flag.
fn screen2(a: F80, b: F80) -> Result<Flags, (F80, Flags)> {
    if a.is_unsupported() || b.is_unsupported() {
        return Err((F80::INDEFINITE, sw::IE));
    }
    if a.is_nan() || b.is_nan() {
        return Err(pick_nan(a, b));
    }
    Ok(if a.is_denormal() || b.is_denormal() { sw::DE } else { 0 })
}

/// `a op b` for the four basic operations (`Sub`: a - b, `Div`: a / b).
pub fn arith(opc: Opc, a: F80, b: F80, cw: u16) -> (F80, Flags) {
    let de = match screen2(a, b) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let rc0 = op_round(cw);
    let (x, y) = (a.apf(), b.apf());
    let op_r = |x: Ext, y: Ext, rc: Round| match opc {
        Opc::Add => x.add_r(y, rc),
        Opc::Sub => x.sub_r(y, rc),
        Opc::SubR => y.sub_r(x, rc),
        Opc::Mul => x.mul_r(y, rc),
        Opc::Div => x.div_r(y, rc),
        _ => y.div_r(x, rc),
    };
    if !matches!(opc, Opc::Add | Opc::Sub | Opc::SubR | Opc::Mul | Opc::Div | Opc::DivR) {
        return (F80::INDEFINITE, sw::IE);
    }
    let op = |x: Ext, y: Ext| op_r(x, y, rc0);
    let mut r = op(x, y);
    if r.value.is_zero() {
        // The sign of an exact zero depends on the real rounding mode.
        r = op_r(x, y, round_of(cw));
    }
    if missed_overflow(&r) {
        // Redo the operation at half the result's scale (exactly, as the operands involved
        // are huge or tiny): an overflow iff that result exceeds half the largest value.
        let half = match opc {
            Opc::Add | Opc::Sub | Opc::SubR => op(x.scalbn(-1), y.scalbn(-1)),
            Opc::Mul if x.abs() >= y.abs() => op(x.scalbn(-1), y),
            Opc::Mul => op(x, y.scalbn(-1)),
            Opc::Div => op(x, y.scalbn(1)),
            _ => op(x.scalbn(1), y),
        };
        if half.value.abs() > Ext::largest().scalbn(-1) {
            r.status |= Status::OVERFLOW;
        }
    }
    // C1: the result was rounded away from zero.
    let away = precision_bits(cw) == 64
        && r.status.contains(Status::INEXACT)
        && !r.value.bitwise_eq(op_r(x, y, Round::TowardZero).value);
    let (v, f) = finish(r, cw);
    (v, no_de_after_ie_ze(f | de | if away { sw::C1 } else { 0 }))
}

/// apfloat reports no overflow when directed rounding yields the largest finite value.
fn missed_overflow<T: Float>(r: &rustc_apfloat::StatusAnd<T>) -> bool {
    r.status == Status::INEXACT && r.value.abs().bitwise_eq(T::largest())
}

/// The denormal-operand exception is not reported together with invalid or divide-by-zero.
fn no_de_after_ie_ze(f: Flags) -> Flags {
    if f & (sw::IE | sw::ZE) != 0 {
        f & !sw::DE
    } else {
        f
    }
}

/// Square root, correctly rounded.
pub fn sqrt(a: F80, cw: u16) -> (F80, Flags) {
    if a.is_unsupported() {
        return (F80::INDEFINITE, sw::IE);
    }
    if a.is_nan() {
        return (a.quiet(), if a.is_snan() { sw::IE } else { 0 });
    }
    if a.is_zero() {
        return (a, 0);
    }
    if a.sign {
        return (F80::INDEFINITE, sw::IE);
    }
    if a.is_inf() {
        return (a, 0);
    }
    let de = if a.is_denormal() { sw::DE } else { 0 };
    // a = mant * 2^(e - 63), with mant normalized to bit 63.
    let (mut mant, mut e) = (a.mant, i32::from(a.exp.max(1)) - 16383);
    let lz = mant.leading_zeros();
    mant <<= lz;
    e -= lz as i32;
    // value = mant * 2^(e - 63); radicand N = mant << s with (e - 63 - s) even.
    let s: u32 = if (e - 63 - 63).rem_euclid(2) == 0 { 63 } else { 64 };
    let n = u128::from(mant) << s;
    let r = isqrt(n);
    let rem = n - r * r;
    // Two extra bits for rounding: half bit and sticky bit.
    let q = (r << 2) | if rem > r { 3 } else if rem != 0 { 1 } else { 0 };
    let half_exp = (e - 63 - s as i32) / 2 - 2;
    let rc = op_round(cw);
    let v = Ext::from_u128_r(q, rc);
    let status = v.status;
    let away = precision_bits(cw) == 64
        && status.contains(Status::INEXACT)
        && !v.value.bitwise_eq(Ext::from_u128_r(q, Round::TowardZero).value);
    let v = v.value.scalbn_r(half_exp, rc);
    let (v, f) = finish(rustc_apfloat::StatusAnd { status, value: v }, cw);
    (v, f | de | if away { sw::C1 } else { 0 })
}

fn isqrt(n: u128) -> u128 {
    if n == 0 {
        return 0;
    }
    // Newton iteration from an over-estimate.
    let mut x: u128 = 1 << (128 - n.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + n / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Round to an integer value per the rounding control.
pub fn rndint(a: F80, cw: u16) -> (F80, Flags) {
    if a.is_unsupported() {
        return (F80::INDEFINITE, sw::IE);
    }
    if a.is_nan() {
        return (a.quiet(), if a.is_snan() { sw::IE } else { 0 });
    }
    if a.is_inf() || a.is_zero() {
        return (a, 0);
    }
    let r = a.apf().round_to_integral(round_of(cw));
    let de = if a.is_denormal() { sw::DE } else { 0 };
    let away = !r.value.bitwise_eq(a.apf().round_to_integral(Round::TowardZero).value);
    (F80::of_apf(r.value), status_flags(r.status) | de | if away { sw::C1 } else { 0 })
}

/// Integer conversion: round per `rc` (or truncate), `None` when out of `bits` range or NaN.
pub fn to_int(a: F80, bits: u32, rc: Round) -> (Option<i64>, Flags) {
    if a.is_unsupported() || a.is_nan() || a.is_inf() {
        return (None, sw::IE);
    }
    if a.is_zero() {
        return (Some(0), 0);
    }
    let r = a.apf().round_to_integral(rc);
    let v = F80::of_apf(r.value);
    let away = !r.value.bitwise_eq(a.apf().round_to_integral(Round::TowardZero).value);
    let flags = status_flags(r.status) | if away { sw::C1 } else { 0 };
    if v.is_zero() {
        return (Some(0), flags);
    }
    let ue = i32::from(v.exp) - 16383;
    if ue > 63 {
        return (None, sw::IE);
    }
    let mag = i128::from(v.mant >> (63 - ue));
    let val = if v.sign { -mag } else { mag };
    let (lo, hi) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    if val < lo || val > hi {
        return (None, sw::IE);
    }
    (Some(val as i64), flags)
}

/// Convert to an IEEE double (bits) per the rounding control.
pub fn to_f64(a: F80, cw: u16) -> (u64, Flags) {
    if a.is_unsupported() {
        return (0xfff8_0000_0000_0000, sw::IE);
    }
    if a.is_nan() {
        let bits = (u64::from(a.sign) << 63) | (0x7ff << 52) | ((a.mant & !INT_BIT) >> 11) | (1 << 51);
        return (bits, if a.is_snan() { sw::IE } else { 0 });
    }
    let mut loses = false;
    let mut r: rustc_apfloat::StatusAnd<Double> = a.apf().convert_r(round_of(cw), &mut loses);
    if missed_overflow(&r) {
        let half: rustc_apfloat::StatusAnd<Double> = a.apf().scalbn(-1).convert_r(round_of(cw), &mut loses);
        if half.value.abs() > Double::largest().scalbn(-1) {
            r.status |= Status::OVERFLOW;
        }
    }
    // Stores do not report denormal operands.
    let de = 0;
    let away = r.status.contains(Status::INEXACT) && {
        let t: rustc_apfloat::StatusAnd<Double> = a.apf().convert_r(Round::TowardZero, &mut loses);
        !t.value.bitwise_eq(r.value)
    };
    (r.value.to_bits() as u64, status_flags(r.status) | de | if away { sw::C1 } else { 0 })
}

/// Convert to an IEEE single (bits) per the rounding control.
pub fn to_f32(a: F80, cw: u16) -> (u32, Flags) {
    if a.is_unsupported() {
        return (0xffc0_0000, sw::IE);
    }
    if a.is_nan() {
        let bits = (u32::from(a.sign) << 31) | (0xff << 23) | (((a.mant & !INT_BIT) >> 40) as u32) | (1 << 22);
        return (bits, if a.is_snan() { sw::IE } else { 0 });
    }
    let mut loses = false;
    let mut r: rustc_apfloat::StatusAnd<Single> = a.apf().convert_r(round_of(cw), &mut loses);
    if missed_overflow(&r) {
        let half: rustc_apfloat::StatusAnd<Single> = a.apf().scalbn(-1).convert_r(round_of(cw), &mut loses);
        if half.value.abs() > Single::largest().scalbn(-1) {
            r.status |= Status::OVERFLOW;
        }
    }
    // Stores do not report denormal operands.
    let de = 0;
    let away = r.status.contains(Status::INEXACT) && {
        let t: rustc_apfloat::StatusAnd<Single> = a.apf().convert_r(Round::TowardZero, &mut loses);
        !t.value.bitwise_eq(r.value)
    };
    (r.value.to_bits() as u32, status_flags(r.status) | de | if away { sw::C1 } else { 0 })
}

/// Compare: `None` when unordered. Flags: IE for any NaN (`quiet == false`) or for a
/// signalling NaN only (`quiet == true`, the fucom forms).
pub fn compare(a: F80, b: F80, quiet: bool) -> (Option<Ordering>, Flags) {
    if a.is_unsupported() || b.is_unsupported() {
        return (None, sw::IE);
    }
    if a.is_nan() || b.is_nan() {
        let ie = if !quiet || a.is_snan() || b.is_snan() { sw::IE } else { 0 };
        return (None, ie);
    }
    let de = if a.is_denormal() || b.is_denormal() { sw::DE } else { 0 };
    (a.apf().partial_cmp(&b.apf()), de)
}

/// `fscale`: `a * 2^trunc(b)`.
pub fn scale(a: F80, b: F80, cw: u16) -> (F80, Flags) {
    let de = match screen2(a, b) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if b.is_inf() {
        return match (b.sign, a.is_zero(), a.is_inf()) {
            (false, true, _) | (true, _, true) => (F80::INDEFINITE, sw::IE),
            (false, false, _) => (F80 { sign: a.sign, exp: 0x7fff, mant: INT_BIT }, de),
            (true, _, false) => (F80 { sign: a.sign, exp: 0, mant: 0 }, de),
        };
    }
    if a.is_zero() || a.is_inf() {
        return (a, de);
    }
    let t = b.apf().round_to_integral(Round::TowardZero).value;
    let tb = F80::of_apf(t);
    let n: i32 = if tb.is_zero() {
        0
    } else {
        let ue = i32::from(tb.exp) - 16383;
        let mag = if ue > 20 { 1 << 20 } else { (tb.mant >> (63 - ue)) as i32 };
        if tb.sign {
            -mag
        } else {
            mag
        }
    };
    let rc = round_of(cw);
    let x = a.apf();
    let r = x.scalbn_r(n, rc);
    let away = !r.bitwise_eq(x.scalbn_r(n, Round::TowardZero));
    // scalbn does not report status; derive overflow/underflow/inexact from the result.
    let back = r.scalbn_r(-n, rc);
    let mut f = 0;
    if r.is_infinite() || back.to_bits() != x.to_bits() {
        f |= if n > 0 { sw::OE | sw::PE } else { sw::UE | sw::PE };
    }
    // Precision control does not apply to fscale.
    (F80::of_apf(r), f | de | if away { sw::C1 } else { 0 })
}

/// `fprem` (`round == false`, truncated quotient) and `fprem1` (quotient rounded to nearest):
/// the remainder, the low three quotient bits, and whether the reduction is incomplete.
pub fn prem(a: F80, b: F80, nearest: bool) -> (F80, u64, bool, Flags) {
    let de = match screen2(a, b) {
        Ok(f) => f,
        Err((r, f)) => return (r, 0, false, f),
    };
    if a.is_inf() || b.is_zero() {
        return (F80::INDEFINITE, 0, false, sw::IE);
    }
    if a.is_zero() || b.is_inf() {
        return (a, 0, false, de);
    }
    // Normalize both: value = m * 2^(e - 63).
    let norm = |v: F80| {
        let lz = v.mant.leading_zeros();
        (v.mant << lz, i32::from(v.exp.max(1)) - lz as i32)
    };
    let (ma, ea) = norm(a);
    let (mb, mut eb) = norm(b);
    let d = ea - eb;
    let mut partial = false;
    if d >= 64 {
        // Partial reduction by b * 2^(d - n), n in 32..=63.
        let n = 32 + (d - 64) % 32;
        eb += d - n;
        partial = true;
    }
    let d = ea - eb;
    if d < -1 {
        return (a, 0, false, de);
    }
    let (num, den, e_unit) = if d >= 0 {
        (u128::from(ma) << d, u128::from(mb), eb)
    } else {
        (u128::from(ma), u128::from(mb) << 1, ea)
    };
    let mut q = num / den;
    let mut r = (num % den) as i128;
    if nearest && !partial {
        let twice = 2 * r as u128;
        if twice > den || (twice == den && q & 1 == 1) {
            q += 1;
            r -= den as i128;
        }
    }
    // remainder = sign(a) * r * 2^(e_unit - 63 - 16383 + ...): build from integer and scale.
    let mag = Ext::from_i128(r).value;
    let mag = mag.scalbn(e_unit - 16383 - 63);
    let mut v = F80::of_apf(mag);
    if a.sign {
        v = v.neg();
    }
    if v.is_zero() {
        v.sign = a.sign;
    }
    (v, (q & 7) as u64, partial, de)
}

/// The rounding-aware constants of `fld1` … `fldln2`.
fn constant(opc: Opc, cw: u16) -> F80 {
    let rc = (cw >> 10) & 3;
    let down = rc == 1 || rc == 3;
    let up = rc == 2;
    let (exp, mant) = match opc {
        Opc::Ld1 => (0x3fff, INT_BIT),
        Opc::LdZ => (0, 0),
        Opc::LdL2T => (0x4000, if up { 0xd49a_784b_cd1b_8aff } else { 0xd49a_784b_cd1b_8afe }),
        Opc::LdL2E => (0x3fff, if down { 0xb8aa_3b29_5c17_f0bb } else { 0xb8aa_3b29_5c17_f0bc }),
        Opc::LdPi => (0x4000, if down { 0xc90f_daa2_2168_c234 } else { 0xc90f_daa2_2168_c235 }),
        Opc::LdLg2 => (0x3ffd, if down { 0x9a20_9a84_fbcf_f798 } else { 0x9a20_9a84_fbcf_f799 }),
        Opc::LdLn2 => (0x3ffe, if down { 0xb172_17f7_d1cf_79ab } else { 0xb172_17f7_d1cf_79ac }),
        _ => (0, 0),
    };
    F80 { sign: false, exp, mant }
}

/// The x87 register file of a [`GuestState`], with the operations instructions compose.
struct Fpu<'a> {
    s: &'a mut GuestState,
    /// Exception flags and condition codes raised by the current instruction.
    flags: Flags,
    /// The memory operand was a denormal in its source format (reported as DE unless a
    /// NaN, invalid or divide-by-zero takes precedence).
    src_den: bool,
}

impl Fpu<'_> {
    fn top(&self) -> u32 {
        self.s.fpu_top & 7
    }
    fn phys(&self, i: u8) -> usize {
        ((self.top() + u32::from(i)) & 7) as usize
    }
    fn is_empty(&self, i: u8) -> bool {
        self.s.fpu_tag & (1 << self.phys(i)) == 0
    }
    fn raw(&self, i: u8) -> F80 {
        let r = &self.s.fpu_regs[self.phys(i)].bytes;
        let mut b = [0u8; 10];
        b.copy_from_slice(&r[..10]);
        F80::from_bytes(&b)
    }
    /// st(i), or `None` after signalling a stack underflow.
    fn get(&mut self, i: u8) -> Option<F80> {
        if self.is_empty(i) {
            self.flags |= sw::IE | sw::SF;
            self.flags &= !sw::C1;
            None
        } else {
            Some(self.raw(i))
        }
    }
    fn set(&mut self, i: u8, v: F80) {
        let p = self.phys(i);
        let mut reg = X87Reg::default();
        reg.bytes[..10].copy_from_slice(&v.to_bytes());
        self.s.fpu_regs[p] = reg;
        self.s.fpu_tag |= 1 << p;
    }
    fn push(&mut self, v: F80) {
        self.s.fpu_top = (self.top() + 7) & 7;
        if !self.is_empty(0) {
            // Stack overflow: the masked response loads the indefinite.
            self.flags |= sw::IE | sw::SF | sw::C1;
            self.set(0, F80::INDEFINITE);
        } else {
            self.set(0, v);
        }
    }
    fn pop(&mut self) {
        let p = self.phys(0);
        self.s.fpu_tag &= !(1 << p);
        self.s.fpu_top = (self.top() + 1) & 7;
    }
    fn cw(&self) -> u16 {
        self.s.fpu_cw
    }
    fn set_cc(&mut self, c3: bool, c2: bool, c0: bool) {
        self.flags &= !(sw::C0 | sw::C2 | sw::C3);
        if c3 {
            self.flags |= sw::C3;
        }
        if c2 {
            self.flags |= sw::C2;
        }
        if c0 {
            self.flags |= sw::C0;
        }
    }
}

/// The full (two bits per register) tag word: 00 valid, 01 zero, 10 special, 11 empty.
fn full_tag_word(s: &GuestState) -> u16 {
    let mut tw = 0u16;
    for phys in 0..8 {
        let tag = if s.fpu_tag & (1 << phys) == 0 {
            3
        } else {
            let mut b = [0u8; 10];
            b.copy_from_slice(&s.fpu_regs[phys].bytes[..10]);
            let v = F80::from_bytes(&b);
            if v.is_zero() {
                1
            } else if v.exp == 0x7fff || v.exp == 0 || v.mant & INT_BIT == 0 {
                2
            } else {
                0
            }
        };
        tw |= tag << (2 * phys);
    }
    tw
}

/// The fxsave image of the state (see `Opc::Fxsave`).
fn fxsave_image(f: &mut Fpu<'_>) -> [u8; 512] {
    let mut a = [0u8; 512];
    a[0..2].copy_from_slice(&f.s.fpu_cw.to_le_bytes());
    let swv = (f.s.fpu_sw & !sw::TOP) | ((f.top() as u16) << 11);
    a[2..4].copy_from_slice(&swv.to_le_bytes());
    a[4] = (f.s.fpu_tag & 0xff) as u8;
    a[24..28].copy_from_slice(&f.s.mxcsr.to_le_bytes());
    a[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    for i in 0..8u8 {
        let at = 32 + 16 * usize::from(i);
        a[at..at + 10].copy_from_slice(&f.raw(i).to_bytes());
    }
    for (i, x) in f.s.xmm.iter().enumerate() {
        a[160 + 16 * i..176 + 16 * i].copy_from_slice(x);
    }
    a
}

/// The x87 part of an fxsave image into the state.
fn load_fxsave_x87(f: &mut Fpu<'_>, a: &[u8; 512]) {
    f.s.fpu_cw = (u16::from_le_bytes([a[0], a[1]]) & 0x1f3f) | 0x0040;
    let swv = u16::from_le_bytes([a[2], a[3]]);
    f.s.fpu_top = u32::from((swv >> 11) & 7);
    f.s.fpu_sw = swv & !sw::TOP;
    f.s.fpu_tag = u32::from(a[4]);
    for i in 0..8u8 {
        let at = 32 + 16 * usize::from(i);
        let p = f.phys(i);
        f.s.fpu_regs[p] = X87Reg::default();
        f.s.fpu_regs[p].bytes[..10].copy_from_slice(&a[at..at + 10]);
    }
}

/// The components an xsave-family instruction works on: edx:eax masked by XCR0.
fn requested_components(f: &Fpu<'_>) -> u64 {
    let mask = (f.s.gpr[2] << 32) | (f.s.gpr[0] & 0xffff_ffff);
    mask & crate::cpuid::XCR0
}

/// MXCSR bits fxsave reports as writable (and fxrstor keeps): all but the reserved ones,
/// DAZ included, as on every x86-64 CPU since the Pentium 4.
const MXCSR_MASK: u32 = 0xffff;

/// fnstenv's 28-byte environment (the 32-bit format): fcw, fsw, full tag word, then the
/// instruction and operand pointers (not tracked: stored as zero), each in a 4-byte slot.
fn store_env(f: &mut Fpu<'_>, addr: u64, host: &mut dyn Host) {
    let mut env = [0u8; 28];
    env[0..2].copy_from_slice(&f.s.fpu_cw.to_le_bytes());
    env[2..4].copy_from_slice(&0xffffu16.to_le_bytes());
    let swv = (f.s.fpu_sw & !sw::TOP) | ((f.top() as u16) << 11);
    env[4..6].copy_from_slice(&swv.to_le_bytes());
    env[6..8].copy_from_slice(&0xffffu16.to_le_bytes());
    env[8..10].copy_from_slice(&full_tag_word(f.s).to_le_bytes());
    env[10..12].copy_from_slice(&0xffffu16.to_le_bytes());
    host.write(addr, &env);
}

/// fldenv: control word, status word (with TOP) and which registers are empty.
fn load_env(f: &mut Fpu<'_>, addr: u64, host: &mut dyn Host) {
    let env: [u8; 28] = read_mem(host, addr);
    f.s.fpu_cw = (u16::from_le_bytes([env[0], env[1]]) & 0x1f3f) | 0x0040;
    let swv = u16::from_le_bytes([env[4], env[5]]);
    f.s.fpu_top = u32::from((swv >> 11) & 7);
    f.s.fpu_sw = swv & !sw::TOP;
    let tw = u16::from_le_bytes([env[8], env[9]]);
    f.s.fpu_tag = (0..8).filter(|i| (tw >> (2 * i)) & 3 != 3).fold(0, |t, i| t | (1 << i));
}

fn read_mem<const N: usize>(host: &mut dyn Host, addr: u64) -> [u8; N] {
    let mut b = [0u8; N];
    host.read(addr, &mut b);
    b
}

/// Load a memory operand of `kind` as an extended value (with the flags of the conversion).
fn load_operand(kind: Kind, addr: u64, host: &mut dyn Host) -> Option<(F80, Flags)> {
    let v = match kind {
        Kind::M32 => {
            let v = F80::from_f32(u32::from_le_bytes(read_mem(host, addr)));
            let bits = u32::from_le_bytes(read_mem(host, addr));
            let snan = (bits >> 23) & 0xff == 0xff && bits & 0x7f_ffff != 0 && bits & (1 << 22) == 0;
            let den = (bits >> 23) & 0xff == 0 && bits & 0x7f_ffff != 0;
            return Some((v, if snan { sw::IE } else if den { sw::DE } else { 0 }));
        }
        Kind::M64 => {
            let bits = u64::from_le_bytes(read_mem(host, addr));
            let v = F80::from_f64(bits);
            let e = (bits >> 52) & 0x7ff;
            let f = bits & ((1 << 52) - 1);
            let snan = e == 0x7ff && f != 0 && f & (1 << 51) == 0;
            let den = e == 0 && f != 0;
            return Some((v, if snan { sw::IE } else if den { sw::DE } else { 0 }));
        }
        Kind::M80 => F80::from_bytes(&read_mem(host, addr)),
        Kind::I16 => F80::from_i64(i64::from(i16::from_le_bytes(read_mem(host, addr)))),
        Kind::I32 => F80::from_i64(i64::from(i32::from_le_bytes(read_mem(host, addr)))),
        Kind::I64 => F80::from_i64(i64::from_le_bytes(read_mem(host, addr))),
        _ => return None,
    };
    Some((v, 0))
}

/// Store st(0) to memory as `kind`. Returns false for kinds that are not memory stores.
fn store_operand(f: &mut Fpu<'_>, kind: Kind, v: F80, addr: u64, trunc: bool, host: &mut dyn Host) -> bool {
    let cw = f.cw();
    let rc = if trunc { Round::TowardZero } else { round_of(cw) };
    match kind {
        Kind::M32 => {
            let (b, fl) = to_f32(v, cw);
            f.flags |= fl;
            host.write(addr, &b.to_le_bytes());
        }
        Kind::M64 => {
            let (b, fl) = to_f64(v, cw);
            f.flags |= fl;
            host.write(addr, &b.to_le_bytes());
        }
        Kind::M80 => host.write(addr, &v.to_bytes()),
        Kind::I16 | Kind::I32 | Kind::I64 => {
            let bits = match kind {
                Kind::I16 => 16,
                Kind::I32 => 32,
                _ => 64,
            };
            let (r, fl) = to_int(v, bits, rc);
            f.flags |= fl;
            let val = r.unwrap_or(i64::MIN);
            match kind {
                Kind::I16 => host.write(addr, &(if r.is_some() { val as i16 } else { i16::MIN }).to_le_bytes()),
                Kind::I32 => host.write(addr, &(if r.is_some() { val as i32 } else { i32::MIN }).to_le_bytes()),
                _ => host.write(addr, &val.to_le_bytes()),
            }
        }
        _ => return false,
    }
    true
}

/// The second operand of a two-operand instruction: memory or st(i).
fn operand(f: &mut Fpu<'_>, op: X87Op, addr: u64, host: &mut dyn Host) -> Option<F80> {
    match op.kind {
        Kind::St | Kind::StRev | Kind::StPop => f.get(op.sti),
        Kind::None => f.get(1),
        k => {
            let (v, fl) = load_operand(k, addr, host)?;
            f.src_den = fl & sw::DE != 0;
            f.flags |= fl & !sw::DE;
            Some(v)
        }
    }
}

/// Execute one x87 instruction. Returns 0, or [`crate::UNKNOWN`] for a form that does not
/// exist (e.g. `fadd` with an 80-bit memory operand).
pub fn execute(state: &mut GuestState, op: X87Op, addr: u64, host: &mut dyn Host) -> u64 {
    let mut f = Fpu { s: state, flags: 0, src_den: false };
    let ok = step(&mut f, op, addr, host);
    // Condition codes written by this instruction replace the old ones; exception flags
    // are sticky.
    let cc_written = f.flags & sw::CC;
    let touches_cc = !matches!(
        op.opc,
        Opc::Stsw
            | Opc::Stcw
            | Opc::Ldcw
            | Opc::Nop
            | Opc::Init
            | Opc::Clex
            | Opc::Stenv
            | Opc::Ldenv
            | Opc::Save
            | Opc::Rstor
            | Opc::Fxsave
            | Opc::Fxrstor
            | Opc::Xsave
            | Opc::Xsavec
            | Opc::Xrstor
    );
    let mut swv = f.s.fpu_sw & !sw::TOP;
    if touches_cc {
        swv = (swv & !sw::CC) | cc_written;
    }
    if matches!(op.opc, Opc::Init | Opc::Save) {
        swv = 0;
    }
    if matches!(op.opc, Opc::Clex) {
        swv &= !(0x00ff | sw::B);
    }
    swv |= f.flags & 0x7f;
    // Summary bits: ES (and B) set while an unmasked exception is flagged.
    if swv & !f.s.fpu_cw & 0x3f != 0 {
        swv |= sw::ES | sw::B;
    } else {
        swv &= !(sw::ES | sw::B);
    }
    f.s.fpu_sw = swv;
    if ok {
        0
    } else {
        crate::UNKNOWN
    }
}

fn step(f: &mut Fpu<'_>, op: X87Op, addr: u64, host: &mut dyn Host) -> bool {
    let cw = f.cw();
    match op.opc {
        Opc::Add | Opc::Mul | Opc::Sub | Opc::SubR | Opc::Div | Opc::DivR => {
            let (dst, pop) = match op.kind {
                Kind::StRev => (op.sti, false),
                Kind::StPop => (op.sti, true),
                Kind::M32 | Kind::M64 | Kind::I16 | Kind::I32 | Kind::St => (0, false),
                _ => return false,
            };
            // For the st(i) destination forms the "destination" operand is st(i), the
            // source st(0); for the others st(0) is the destination.
            let (d, s) = if matches!(op.kind, Kind::StRev | Kind::StPop) {
                (f.get(op.sti), f.get(0))
            } else {
                let d = f.get(0);
                (d, operand(f, op, addr, host))
            };
            let r = match (d, s) {
                (Some(d), Some(s)) => {
                    let (v, mut fl) = arith(op.opc, d, s, cw);
                    if f.src_den && !d.is_nan() && !s.is_nan() {
                        fl = no_de_after_ie_ze(fl | sw::DE);
                    }
                    f.flags |= fl;
                    v
                }
                _ => F80::INDEFINITE,
            };
            f.set(dst, r);
            if pop {
                f.pop();
            }
        }
        Opc::Com | Opc::ComP | Opc::ComPP | Opc::UCom | Opc::UComP | Opc::UComPP => {
            let quiet = matches!(op.opc, Opc::UCom | Opc::UComP | Opc::UComPP);
            let a = f.get(0);
            let b = if matches!(op.opc, Opc::ComPP | Opc::UComPP) { f.get(1) } else { operand(f, op, addr, host) };
            let ord = match (a, b) {
                (Some(a), Some(b)) => {
                    let (o, mut fl) = compare(a, b, quiet);
                    if f.src_den && !a.is_nan() && !b.is_nan() {
                        fl = no_de_after_ie_ze(fl | sw::DE);
                    }
                    f.flags |= fl;
                    o
                }
                _ => None,
            };
            match ord {
                Some(Ordering::Greater) => f.set_cc(false, false, false),
                Some(Ordering::Less) => f.set_cc(false, false, true),
                Some(Ordering::Equal) => f.set_cc(true, false, false),
                None => f.set_cc(true, true, true),
            }
            match op.opc {
                Opc::ComP | Opc::UComP => f.pop(),
                Opc::ComPP | Opc::UComPP => {
                    f.pop();
                    f.pop();
                }
                _ => {}
            }
        }
        Opc::ComI | Opc::ComIP | Opc::UComI | Opc::UComIP => {
            let quiet = matches!(op.opc, Opc::UComI | Opc::UComIP);
            let a = f.get(0);
            let b = f.get(op.sti);
            let ord = match (a, b) {
                (Some(a), Some(b)) => {
                    let (o, fl) = compare(a, b, quiet);
                    f.flags |= fl;
                    o
                }
                _ => None,
            };
            let e = match ord {
                Some(Ordering::Greater) => 0,
                Some(Ordering::Less) => flags::bits::CF,
                Some(Ordering::Equal) => flags::bits::ZF,
                None => flags::bits::ZF | flags::bits::PF | flags::bits::CF,
            };
            f.s.cc_op = CcOp::Eflags.with_size(8);
            f.s.cc_dst = e;
            f.s.cc_src1 = 0;
            f.s.cc_src2 = 0;
            f.flags &= !sw::C1;
            if matches!(op.opc, Opc::ComIP | Opc::UComIP) {
                f.pop();
            }
        }
        Opc::Tst => {
            let ord = match f.get(0) {
                Some(a) => {
                    let (o, fl) = compare(a, F80::ZERO, false);
                    f.flags |= fl;
                    o
                }
                None => None,
            };
            match ord {
                Some(Ordering::Greater) => f.set_cc(false, false, false),
                Some(Ordering::Less) => f.set_cc(false, false, true),
                Some(Ordering::Equal) => f.set_cc(true, false, false),
                None => f.set_cc(true, true, true),
            }
        }
        Opc::Xam => {
            let v = f.raw(0);
            let (c3, c2, c0) = if f.is_empty(0) {
                (true, false, true)
            } else if v.is_unsupported() {
                (false, false, false)
            } else if v.is_nan() {
                (false, false, true)
            } else if v.is_inf() {
                (false, true, true)
            } else if v.is_zero() {
                (true, false, false)
            } else if v.is_denormal() {
                (true, true, false)
            } else {
                (false, true, false)
            };
            f.set_cc(c3, c2, c0);
            if v.sign {
                f.flags |= sw::C1;
            }
        }
        Opc::Ld => {
            let v = match op.kind {
                Kind::St => match f.get(op.sti) {
                    Some(v) => v,
                    None => {
                        // Underflow takes precedence over an overflow of the push.
                        f.push(F80::INDEFINITE);
                        f.flags &= !sw::C1;
                        return true;
                    }
                },
                k => match load_operand(k, addr, host) {
                    Some((v, fl)) => {
                        f.flags |= if f.is_empty(7) { fl } else { fl & !sw::DE };
                        // A signalling NaN is quieted by the conversion.
                        if v.is_nan() && matches!(k, Kind::M32 | Kind::M64) {
                            v.quiet()
                        } else {
                            v
                        }
                    }
                    None => return false,
                },
            };
            f.push(v);
        }
        Opc::Ld1 | Opc::LdZ | Opc::LdL2T | Opc::LdL2E | Opc::LdPi | Opc::LdLg2 | Opc::LdLn2 => {
            f.push(constant(op.opc, cw));
        }
        Opc::St | Opc::StP | Opc::Ist | Opc::IstP | Opc::IsttP => {
            let v = f.get(0);
            let trunc = op.opc == Opc::IsttP;
            match (op.kind, v) {
                (Kind::St, v) => {
                    let v = v.unwrap_or(F80::INDEFINITE);
                    f.set(op.sti, v);
                }
                (k, Some(v)) => {
                    if !store_operand(f, k, v, addr, trunc, host) {
                        return false;
                    }
                }
                (k, None) => {
                    // Underflow: the masked response stores the indefinite.
                    let ind = F80::INDEFINITE;
                    if !store_operand(f, k, ind, addr, trunc, host) {
                        return false;
                    }
                    f.flags |= sw::IE | sw::SF;
                }
            }
            if matches!(op.opc, Opc::StP | Opc::IstP | Opc::IsttP) {
                f.pop();
            }
        }
        Opc::Chs | Opc::Abs => {
            if let Some(v) = f.get(0) {
                let r = if op.opc == Opc::Chs { v.neg() } else { F80 { sign: false, ..v } };
                f.set(0, r);
            } else {
                f.set(0, F80::INDEFINITE);
            }
        }
        Opc::Sqrt | Opc::Rndint => {
            let r = match f.get(0) {
                Some(v) => {
                    let (r, fl) = if op.opc == Opc::Sqrt { sqrt(v, cw) } else { rndint(v, cw) };
                    f.flags |= fl;
                    r
                }
                None => F80::INDEFINITE,
            };
            f.set(0, r);
        }
        Opc::Scale => {
            let r = match (f.get(0), f.get(1)) {
                (Some(a), Some(b)) => {
                    let (r, fl) = scale(a, b, cw);
                    f.flags |= fl;
                    r
                }
                _ => F80::INDEFINITE,
            };
            f.set(0, r);
        }
        Opc::Prem | Opc::Prem1 => {
            match (f.get(0), f.get(1)) {
                (Some(a), Some(b)) => {
                    let (r, q, partial, fl) = prem(a, b, op.opc == Opc::Prem1);
                    f.flags |= fl;
                    f.set(0, r);
                    f.flags &= !sw::CC;
                    if partial {
                        f.flags |= sw::C2;
                    } else if fl & sw::IE == 0 {
                        if q & 4 != 0 {
                            f.flags |= sw::C0;
                        }
                        if q & 2 != 0 {
                            f.flags |= sw::C3;
                        }
                        if q & 1 != 0 {
                            f.flags |= sw::C1;
                        }
                    }
                }
                _ => f.set(0, F80::INDEFINITE),
            };
        }
        Opc::Xtract => match f.get(0) {
            Some(_) if !f.is_empty(7) => {
                // Stack overflow: both results are the indefinite.
                f.set(0, F80::INDEFINITE);
                f.push(F80::INDEFINITE);
            }
            Some(v) => {
                if v.is_unsupported() {
                    f.flags |= sw::IE;
                    f.set(0, F80::INDEFINITE);
                    f.push(F80::INDEFINITE);
                } else if v.is_nan() {
                    if v.is_snan() {
                        f.flags |= sw::IE;
                    }
                    f.set(0, v.quiet());
                    f.push(v.quiet());
                } else if v.is_zero() {
                    f.flags |= sw::ZE;
                    f.set(0, F80 { sign: true, exp: 0x7fff, mant: INT_BIT });
                    f.push(v);
                } else if v.is_inf() {
                    f.set(0, F80 { sign: false, exp: 0x7fff, mant: INT_BIT });
                    f.push(v);
                } else {
                    let lz = v.mant.leading_zeros();
                    if v.is_denormal() {
                        f.flags |= sw::DE;
                    }
                    let e = i64::from(v.exp.max(1)) - 16383 - i64::from(lz);
                    f.set(0, F80::from_i64(e));
                    f.push(F80 { sign: v.sign, exp: 0x3fff, mant: v.mant << lz });
                }
            }
            None => {
                f.set(0, F80::INDEFINITE);
                f.push(F80::INDEFINITE);
                f.flags &= !sw::C1;
            }
        },
        Opc::F2xm1 => {
            let r = match f.get(0) {
                Some(v) => {
                    let (r, fl) = transcendental::f2xm1(v, cw);
                    f.flags |= fl;
                    r
                }
                None => F80::INDEFINITE,
            };
            f.set(0, r);
        }
        Opc::Yl2x | Opc::Yl2xp1 | Opc::Patan => {
            // st(1) = fn(st(1), st(0)), then pop.
            let r = match (f.get(0), f.get(1)) {
                (Some(x), Some(y)) => {
                    let (r, fl) = match op.opc {
                        Opc::Yl2x => transcendental::fyl2x(y, x, cw),
                        Opc::Yl2xp1 => transcendental::fyl2xp1(y, x, cw),
                        _ => transcendental::fpatan(y, x, cw),
                    };
                    f.flags |= no_de_after_ie_ze(fl);
                    r
                }
                _ => F80::INDEFINITE,
            };
            f.set(1, r);
            f.pop();
        }
        Opc::Sin | Opc::Cos | Opc::SinCos | Opc::Ptan => {
            let which = match op.opc {
                Opc::Sin => Trig::Sin,
                Opc::Cos => Trig::Cos,
                Opc::SinCos => Trig::SinCos,
                _ => Trig::Tan,
            };
            let pushes = matches!(which, Trig::SinCos | Trig::Tan);
            match f.get(0) {
                Some(_) if pushes && !f.is_empty(7) => {
                    // Stack overflow: both results are the indefinite.
                    f.set(0, F80::INDEFINITE);
                    f.push(F80::INDEFINITE);
                }
                Some(v) => match transcendental::trig(which, v, cw) {
                    TrigResult::Values(first, second, fl) => {
                        f.flags |= fl;
                        f.set(0, first);
                        if let Some(second) = second {
                            f.push(second);
                        }
                    }
                    TrigResult::OutOfRange(fl) => f.flags |= fl,
                },
                None => {
                    f.set(0, F80::INDEFINITE);
                    if pushes {
                        f.push(F80::INDEFINITE);
                    }
                    f.flags &= !sw::C1;
                }
            }
        }
        Opc::Xch => {
            let a = f.get(0).unwrap_or(F80::INDEFINITE);
            let b = f.get(op.sti).unwrap_or(F80::INDEFINITE);
            f.set(0, b);
            f.set(op.sti, a);
        }
        Opc::Free | Opc::FreeP => {
            let p = f.phys(op.sti);
            f.s.fpu_tag &= !(1 << p);
            if op.opc == Opc::FreeP {
                f.pop();
            }
        }
        Opc::IncStp => f.s.fpu_top = (f.top() + 1) & 7,
        Opc::DecStp => f.s.fpu_top = (f.top() + 7) & 7,
        Opc::Init => {
            f.s.fpu_cw = 0x037f;
            f.s.fpu_sw = 0;
            f.s.fpu_top = 0;
            f.s.fpu_tag = 0;
        }
        Opc::Clex | Opc::Nop => {}
        Opc::Stsw => {
            let v = (f.s.fpu_sw & !sw::TOP) | ((f.top() as u16) << 11);
            match op.kind {
                Kind::Ax => {
                    let rax = &mut f.s.gpr[0];
                    *rax = (*rax & !0xffff) | u64::from(v);
                }
                Kind::M16 => host.write(addr, &v.to_le_bytes()),
                _ => return false,
            }
        }
        Opc::Stcw => host.write(addr, &f.s.fpu_cw.to_le_bytes()),
        Opc::Stenv => {
            store_env(f, addr, host);
            // Afterwards all exceptions are masked.
            f.s.fpu_cw |= 0x3f;
        }
        Opc::Ldenv => load_env(f, addr, host),
        Opc::Save => {
            // The environment, st(0)..st(7) in stack order (empty ones too), then as fninit.
            store_env(f, addr, host);
            for i in 0..8u8 {
                host.write(addr + 28 + 10 * u64::from(i), &f.raw(i).to_bytes());
            }
            f.s.fpu_cw = 0x037f;
            f.s.fpu_sw = 0;
            f.s.fpu_top = 0;
            f.s.fpu_tag = 0;
        }
        Opc::Xsave | Opc::Xsavec => {
            // The legacy region (the fxsave image) for the components asked for and present,
            // then the header's XSTATE_BV (and XCOMP_BV for the compacted form).
            let rfbm = requested_components(f);
            let mut a: [u8; 512] = read_mem(host, addr);
            let image = fxsave_image(f);
            if rfbm & 1 != 0 {
                a[..32].copy_from_slice(&image[..32]);
                a[32..160].copy_from_slice(&image[32..160]);
            }
            if rfbm & 2 != 0 {
                a[24..32].copy_from_slice(&image[24..32]);
                a[160..416].copy_from_slice(&image[160..416]);
            }
            host.write(addr, &a);
            let hdr: [u8; 16] = read_mem(host, addr + 512);
            let old_bv = u64::from_le_bytes(hdr[..8].try_into().unwrap_or([0; 8]));
            let bv = if op.opc == Opc::Xsavec { rfbm } else { (old_bv & !rfbm) | rfbm };
            host.write(addr + 512, &bv.to_le_bytes());
            if op.opc == Opc::Xsavec {
                host.write(addr + 520, &((1u64 << 63) | rfbm).to_le_bytes());
            }
        }
        Opc::Xrstor => {
            let rfbm = requested_components(f);
            let a: [u8; 512] = read_mem(host, addr);
            let hdr: [u8; 8] = read_mem(host, addr + 512);
            let bv = u64::from_le_bytes(hdr);
            if rfbm & 1 != 0 {
                if bv & 1 != 0 {
                    load_fxsave_x87(f, &a);
                } else {
                    f.s.fpu_cw = 0x037f;
                    f.s.fpu_sw = 0;
                    f.s.fpu_top = 0;
                    f.s.fpu_tag = 0;
                }
            }
            if rfbm & 2 != 0 {
                f.s.mxcsr = u32::from_le_bytes([a[24], a[25], a[26], a[27]]) & MXCSR_MASK;
                for (i, x) in f.s.xmm.iter_mut().enumerate() {
                    if bv & 2 != 0 {
                        x.copy_from_slice(&a[160 + 16 * i..176 + 16 * i]);
                    } else {
                        *x = [0; 16];
                    }
                }
            }
        }
        Opc::Fxsave => {
            // The 512-byte area of the 64-bit form: fcw, fsw, abridged tag (a bit per
            // non-empty physical register), fop, fip and fdp (not tracked: zero), mxcsr and
            // its mask, st(0)..st(7) in 16-byte slots, xmm0..xmm15. Nothing is reset.
            host.write(addr, &fxsave_image(f));
        }
        Opc::Fxrstor => {
            let a: [u8; 512] = read_mem(host, addr);
            load_fxsave_x87(f, &a);
            f.s.mxcsr = u32::from_le_bytes([a[24], a[25], a[26], a[27]]) & MXCSR_MASK;
            for (i, x) in f.s.xmm.iter_mut().enumerate() {
                x.copy_from_slice(&a[160 + 16 * i..176 + 16 * i]);
            }
        }
        Opc::Rstor => {
            load_env(f, addr, host);
            for i in 0..8u8 {
                let b: [u8; 10] = read_mem(host, addr + 28 + 10 * u64::from(i));
                let p = f.phys(i);
                f.s.fpu_regs[p] = X87Reg::default();
                f.s.fpu_regs[p].bytes[..10].copy_from_slice(&b);
            }
        }
        Opc::Bld => {
            let b: [u8; 10] = read_mem(host, addr);
            let mut v: i64 = 0;
            for byte in b[..9].iter().rev() {
                v = v * 100 + i64::from(byte >> 4) * 10 + i64::from(byte & 0xf);
            }
            let sign = b[9] & 0x80 != 0;
            let r = if v == 0 { F80 { sign, ..F80::ZERO } } else { F80::from_i64(if sign { -v } else { v }) };
            f.push(r);
        }
        Opc::Bstp => {
            // The integer of st(0) under the rounding control, 18 decimal digits and a
            // sign; NaNs, infinities and larger values store the BCD indefinite.
            const INDEFINITE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff];
            let out = match f.get(0) {
                Some(v) => {
                    let (r, fl) = to_int(v, 64, round_of(cw));
                    match r {
                        Some(n) if n.unsigned_abs() < 1_000_000_000_000_000_000 => {
                            f.flags |= fl;
                            let mut mag = n.unsigned_abs();
                            let mut b = [0u8; 10];
                            for byte in &mut b[..9] {
                                *byte = ((mag / 10 % 10) << 4 | mag % 10) as u8;
                                mag /= 100;
                            }
                            b[9] = if v.sign { 0x80 } else { 0 };
                            b
                        }
                        _ => {
                            f.flags |= sw::IE;
                            INDEFINITE
                        }
                    }
                }
                None => INDEFINITE,
            };
            host.write(addr, &out);
            f.pop();
        }
        Opc::Ldcw => {
            let b: [u8; 2] = read_mem(host, addr);
            // Bits 6, 7 and 13..15 are reserved: bit 6 reads as one on every modern CPU.
            f.s.fpu_cw = (u16::from_le_bytes(b) & 0x1f3f) | 0x0040;
        }
        Opc::CmovB | Opc::CmovE | Opc::CmovBe | Opc::CmovU | Opc::CmovNb | Opc::CmovNe | Opc::CmovNbe | Opc::CmovNu => {
            let cc = match op.opc {
                Opc::CmovB => 2,
                Opc::CmovE => 4,
                Opc::CmovBe => 6,
                Opc::CmovU => 10,
                Opc::CmovNb => 3,
                Opc::CmovNe => 5,
                Opc::CmovNbe => 7,
                _ => 11,
            };
            let s = &*f.s;
            let holds = flags::eval_cond(cc, s.cc_op, s.cc_dst, s.cc_src1, s.cc_src2);
            if f.is_empty(0) || f.is_empty(op.sti) {
                // Stack underflow, whatever the condition.
                f.flags |= sw::IE | sw::SF;
                f.flags &= !sw::C1;
                f.set(0, F80::INDEFINITE);
            } else if holds {
                let v = f.raw(op.sti);
                f.set(0, v);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for (i, &opc) in Opc::ALL.iter().enumerate() {
            assert_eq!(opc as usize, i);
            for &kind in &Kind::ALL {
                for sti in 0..8 {
                    let op = X87Op::new(opc, kind, sti);
                    assert_eq!(X87Op::decode(op.encode()), Some(op));
                }
            }
        }
        assert_eq!(X87Op::decode(0xffff_ff00), None);
    }

    #[test]
    fn f64_conversions_are_exact() {
        for x in [1.0f64, -2.5, 1e300, 5e-324, f64::MIN_POSITIVE, 0.1, -0.0, f64::INFINITY] {
            let e = F80::from_f64(x.to_bits());
            let (back, fl) = to_f64(e, 0x037f);
            assert_eq!(back, x.to_bits(), "{x}");
            assert_eq!(fl & sw::PE, 0);
        }
    }

    #[test]
    fn sqrt_of_two() {
        let two = F80::from_i64(2);
        let (r, _) = sqrt(two, 0x037f);
        // sqrt(2) * 2^63 = 0xB504F333F9DE6484.597D...: rounds down.
        assert_eq!(r, F80 { sign: false, exp: 0x3fff, mant: 0xb504_f333_f9de_6484 });
        let (r, _) = sqrt(F80::from_i64(16), 0x037f);
        assert_eq!(r, F80::from_i64(4));
    }
}
