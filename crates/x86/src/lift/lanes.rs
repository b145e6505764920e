//! Packed SSE/SSE2 operations lifted inline, lane by lane, with the existing scalar IR ops.
//!
//! An xmm value (`I128`) is split into its two 64-bit halves; integer lanes of 8, 16 and 32
//! bits are processed inside each half at once with SWAR arithmetic (masks keep carries and
//! shifted bits inside their lanes), float lanes one by one as `F32`/`F64` values (so their
//! NaN results follow the scalar rules), and the halves are joined again. This avoids a call
//! to the out-of-line `Helper::Sse` (which makes a code generator write back and reload the
//! guest state) for the forms that hot loops and glibc's string functions use.

use super::builder::Lifter;
use hcontainer_ir::{BinOp, ConvOp, FloatCC, IntCC, Op, Type, UnOp, Value};

/// All-ones in a lane of `w` bits.
pub(crate) fn lane_mask(w: u32) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// `lane` repeated in every `w`-bit lane of 64 bits.
pub(crate) fn rep(lane: u64, w: u32) -> u64 {
    let lane = lane & lane_mask(w);
    let mut r = 0u64;
    let mut i = 0;
    while i < 64 {
        r |= lane << i;
        i += w;
    }
    r
}

/// The top bit of every `w`-bit lane.
fn high(w: u32) -> u64 {
    rep(1 << (w - 1), w)
}

/// The two 64-bit halves (low, high) of an `I128`.
pub(crate) fn halves(l: &mut Lifter, v: Value) -> [Value; 2] {
    if let Some(h) = l.split.get(&v) {
        return *h;
    }
    let h = match l.def(v) {
        Some(Op::Const { bits, .. }) => {
            let b = *bits;
            [l.c64(b as u64), l.c64((b >> 64) as u64)]
        }
        Some(Op::Conv(ConvOp::Zext, _, x)) => {
            let x = *x;
            [l.zext(x, Type::I64), l.c64(0)]
        }
        _ => {
            let lo = l.zext(v, Type::I64);
            let s = l.bin_imm(BinOp::LShr, v, 64);
            let hi = l.zext(s, Type::I64);
            [lo, hi]
        }
    };
    l.split.insert(v, h);
    h
}

/// Whether [`halves`] of `v` costs no `I128` shift (known halves, a constant, an extension).
pub(crate) fn cheap_halves(l: &Lifter, v: Value) -> bool {
    l.split.contains_key(&v) || matches!(l.def(v), Some(Op::Const { .. } | Op::Conv(ConvOp::Zext, _, _)))
}

/// The `I128` with halves `lo` and `hi`.
pub(crate) fn join(l: &mut Lifter, lo: Value, hi: Value) -> Value {
    let wide_lo = l.zext(lo, Type::I128);
    let v = if is_zero(l, hi) {
        wide_lo
    } else {
        let h = l.zext(hi, Type::I128);
        let h = l.bin_imm(BinOp::Shl, h, 64);
        l.or(wide_lo, h)
    };
    l.split.insert(v, [lo, hi]);
    v
}

/// Whether `v` is a zero constant.
fn is_zero(l: &Lifter, v: Value) -> bool {
    matches!(l.def(v), Some(Op::Const { bits: 0, .. }))
}

/// Apply `f` to the corresponding halves of `a` and `b` and join the results.
pub(crate) fn per_half(
    l: &mut Lifter,
    a: Value,
    b: Value,
    f: impl Fn(&mut Lifter, Value, Value) -> Value,
) -> Value {
    let [alo, ahi] = halves(l, a);
    let [blo, bhi] = halves(l, b);
    let lo = f(l, alo, blo);
    let hi = f(l, ahi, bhi);
    join(l, lo, hi)
}

fn and_imm(l: &mut Lifter, a: Value, m: u64) -> Value {
    l.bin_imm(BinOp::And, a, u128::from(m))
}

/// Lane-wise wrapping `a + b`.
pub(crate) fn add(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    if w == 64 {
        return l.add(a, b);
    }
    let h = high(w);
    let na = and_imm(l, a, !h);
    let nb = and_imm(l, b, !h);
    let s = l.add(na, nb);
    let x = l.xor(a, b);
    let x = and_imm(l, x, h);
    l.xor(s, x)
}

/// Lane-wise wrapping `a - b`.
pub(crate) fn sub(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    if w == 64 {
        return l.sub(a, b);
    }
    let h = high(w);
    let ha = l.bin_imm(BinOp::Or, a, u128::from(h));
    let nb = and_imm(l, b, !h);
    let d = l.sub(ha, nb);
    let nb = l.un(UnOp::Not, b);
    let x = l.xor(a, nb);
    let x = and_imm(l, x, h);
    l.xor(d, x)
}

/// Lanes whose top bit is set in `hb` become all ones, the others zero.
pub(crate) fn expand(l: &mut Lifter, hb: Value, w: u32) -> Value {
    let m = l.bin_imm(BinOp::LShr, hb, u128::from(w - 1));
    l.bin_imm(BinOp::Mul, m, u128::from(lane_mask(w)))
}

/// Top bit of each lane set where the lanes of `a` and `b` are equal.
fn eq_high(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let h = high(w);
    let x = l.xor(a, b);
    let lowx = and_imm(l, x, !h);
    let t = l.bin_imm(BinOp::Add, lowx, u128::from(!h));
    let t = l.or(t, x);
    let t = and_imm(l, t, h);
    l.bin_imm(BinOp::Xor, t, u128::from(h))
}

/// Lane-wise `a == b` as all-ones / zero lanes.
pub(crate) fn cmp_eq(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    if w == 64 {
        let c = l.icmp(IntCC::Eq, a, b);
        let ones = l.c64(u64::MAX);
        let zero = l.c64(0);
        return l.select(c, ones, zero);
    }
    let e = eq_high(l, a, b, w);
    expand(l, e, w)
}

/// Top bit of each lane set where `a < b` (unsigned).
fn ult_high(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let h = high(w);
    // Per lane: low bits of a minus low bits of b, with the top bit as a borrow guard.
    let ha = l.bin_imm(BinOp::Or, a, u128::from(h));
    let nb = and_imm(l, b, !h);
    let d = l.sub(ha, nb);
    let na = l.un(UnOp::Not, a);
    // Top bits differ: a < b when b's is set. Equal: when the low part borrowed.
    let t1 = l.and(na, b);
    let x = l.xor(a, b);
    let nx = l.un(UnOp::Not, x);
    let nd = l.un(UnOp::Not, d);
    let t2 = l.and(nx, nd);
    let t = l.or(t1, t2);
    and_imm(l, t, h)
}

/// Top bit of each lane set where `a < b` (signed).
fn slt_high(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let h = u128::from(high(w));
    let fa = l.bin_imm(BinOp::Xor, a, h);
    let fb = l.bin_imm(BinOp::Xor, b, h);
    ult_high(l, fa, fb, w)
}

/// Lane-wise signed `a > b` as all-ones / zero lanes.
pub(crate) fn cmp_gt_signed(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let t = slt_high(l, b, a, w);
    expand(l, t, w)
}

/// Lane-wise minimum (`max` false) or maximum, unsigned or signed.
pub(crate) fn min_max(l: &mut Lifter, a: Value, b: Value, w: u32, signed: bool, max: bool) -> Value {
    let lt = if signed { slt_high(l, a, b, w) } else { ult_high(l, a, b, w) };
    let m = expand(l, lt, w);
    // m: lanes where a < b.
    let nm = l.un(UnOp::Not, m);
    let (x, y) = if max { (b, a) } else { (a, b) };
    let p = l.and(x, m);
    let q = l.and(y, nm);
    l.or(p, q)
}

/// Lane-wise rounded average `(a + b + 1) >> 1` (unsigned).
pub(crate) fn avg(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let o = l.or(a, b);
    let x = l.xor(a, b);
    let x = l.bin_imm(BinOp::LShr, x, 1);
    let x = and_imm(l, x, !high(w));
    l.sub(o, x)
}

/// The low 32 bits of each 64-bit lane multiplied, unsigned, into 64 bits.
pub(crate) fn mul_u32(l: &mut Lifter, a: Value, b: Value) -> Value {
    let a = and_imm(l, a, 0xffff_ffff);
    let b = and_imm(l, b, 0xffff_ffff);
    l.bin(BinOp::Mul, a, b)
}

/// Shift every `w`-bit lane left by `n` (0 when `n >= w`).
pub(crate) fn shl(l: &mut Lifter, a: Value, w: u32, n: u32) -> Value {
    if n >= w {
        return l.c64(0);
    }
    let s = l.bin_imm(BinOp::Shl, a, u128::from(n));
    if w == 64 {
        return s;
    }
    and_imm(l, s, rep(lane_mask(w) << n, w))
}

/// Shift every `w`-bit lane right by `n`, logically (0 when `n >= w`).
pub(crate) fn lshr(l: &mut Lifter, a: Value, w: u32, n: u32) -> Value {
    if n >= w {
        return l.c64(0);
    }
    let s = l.bin_imm(BinOp::LShr, a, u128::from(n));
    if w == 64 {
        return s;
    }
    and_imm(l, s, rep(lane_mask(w) >> n, w))
}

/// Shift every `w`-bit lane right by `n`, arithmetically (counts of `w` or more act as `w - 1`).
pub(crate) fn ashr(l: &mut Lifter, a: Value, w: u32, n: u32) -> Value {
    let n = n.min(w - 1);
    if n == 0 {
        return a;
    }
    let s = lshr(l, a, w, n);
    let sign = and_imm(l, a, high(w));
    let fill = expand(l, sign, w);
    let top = and_imm(l, fill, rep(!(lane_mask(w) >> n), w));
    l.or(s, top)
}

/// The 32-bit value `x` (zero above) spread into lanes of twice the width `w` (8, 16 or 32):
/// element `i` moves to bits `2·w·i ..`, with zeros between.
fn spread(l: &mut Lifter, x: Value, w: u32) -> Value {
    let mut x = x;
    if w <= 16 {
        let s = l.bin_imm(BinOp::Shl, x, 16);
        let o = l.or(x, s);
        x = and_imm(l, o, 0x0000_ffff_0000_ffff);
    }
    if w == 8 {
        let s = l.bin_imm(BinOp::Shl, x, 8);
        let o = l.or(x, s);
        x = and_imm(l, o, 0x00ff_00ff_00ff_00ff);
    }
    x
}

/// Interleave the `w`-bit elements of the 32-bit values `a` and `b` (zero above): a0 b0 a1 b1…
fn interleave32(l: &mut Lifter, a: Value, b: Value, w: u32) -> Value {
    let sa = spread(l, a, w);
    let sb = spread(l, b, w);
    let sb = l.bin_imm(BinOp::Shl, sb, u128::from(w));
    l.or(sa, sb)
}

/// `punpckl*` (`high_half` false) or `punpckh*` of `w`-bit elements of the `I128`s `a`, `b`.
pub(crate) fn unpack(l: &mut Lifter, a: Value, b: Value, w: u32, high_half: bool) -> Value {
    let [alo, ahi] = halves(l, a);
    let [blo, bhi] = halves(l, b);
    let (x, y) = if high_half { (ahi, bhi) } else { (alo, blo) };
    if w == 64 {
        return join(l, x, y);
    }
    let xl = and_imm(l, x, 0xffff_ffff);
    let yl = and_imm(l, y, 0xffff_ffff);
    let xh = l.bin_imm(BinOp::LShr, x, 32);
    let yh = l.bin_imm(BinOp::LShr, y, 32);
    let lo = interleave32(l, xl, yl, w);
    let hi = interleave32(l, xh, yh, w);
    join(l, lo, hi)
}

/// Top bit set in the lanes of `x` that are non-zero, for `x` whose lane top bits are clear.
fn nonzero_high(l: &mut Lifter, x: Value, w: u32) -> Value {
    let t = l.bin_imm(BinOp::Add, x, u128::from(rep(lane_mask(w) >> 1, w)));
    and_imm(l, t, high(w))
}

/// Signed (`signed`) or unsigned saturation of the signed `w`-bit lanes of `h` to `w / 2`
/// bits, each result zero-extended in its lane.
fn saturate(l: &mut Lifter, h: Value, w: u32, signed: bool) -> Value {
    let half = w / 2;
    let hb = and_imm(l, h, high(w));
    let neg = expand(l, hb, w);
    if signed {
        // Saturated where the bits from `half - 1` up differ from the sign.
        let y = l.xor(h, neg);
        let range = (lane_mask(w) >> 1) & !(lane_mask(half) >> 1);
        let t = and_imm(l, y, rep(range, w));
        let nz = nonzero_high(l, t, w);
        let sat = expand(l, nz, w);
        // 0x7f… for positive lanes, 0x80… for negative ones.
        let negbits = and_imm(l, neg, rep(lane_mask(half), w));
        let satval = l.bin_imm(BinOp::Xor, negbits, u128::from(rep(lane_mask(half) >> 1, w)));
        let nsat = l.un(UnOp::Not, sat);
        let keep = l.and(h, nsat);
        let put = l.and(satval, sat);
        let r = l.or(keep, put);
        and_imm(l, r, rep(lane_mask(half), w))
    } else {
        // Negative lanes become 0, lanes above the unsigned maximum all ones.
        let t = and_imm(l, h, rep((lane_mask(w) >> 1) & !lane_mask(half), w));
        let nz = nonzero_high(l, t, w);
        let big = expand(l, nz, w);
        let nneg = l.un(UnOp::Not, neg);
        let big = l.and(big, nneg);
        let keep = l.and(h, nneg);
        let r = l.or(keep, big);
        and_imm(l, r, rep(lane_mask(half), w))
    }
}

/// The `w`-bit lanes of `x`, each below `2^(w/2)`, packed into its low 32 bits.
fn compress(l: &mut Lifter, x: Value, w: u32) -> Value {
    let mut x = x;
    if w == 16 {
        let s = l.bin_imm(BinOp::LShr, x, 8);
        let o = l.or(x, s);
        x = and_imm(l, o, 0x0000_ffff_0000_ffff);
    }
    let s = l.bin_imm(BinOp::LShr, x, 16);
    let o = l.or(x, s);
    and_imm(l, o, 0xffff_ffff)
}

/// `packsswb` (`w` 16, signed), `packuswb` (16, unsigned), `packssdw` (32, signed): the
/// saturated lanes of `a` in the low half of the result, those of `b` in the high half.
pub(crate) fn pack(l: &mut Lifter, a: Value, b: Value, w: u32, signed: bool) -> Value {
    let mut out = Vec::with_capacity(2);
    for v in [a, b] {
        let [lo, hi] = halves(l, v);
        let sl = saturate(l, lo, w, signed);
        let cl = compress(l, sl, w);
        let sh = saturate(l, hi, w, signed);
        let ch = compress(l, sh, w);
        out.push(pair(l, cl, ch));
    }
    join(l, out[0], out[1])
}

/// The four 32-bit elements of an `I128`, each zero-extended to `I64`.
pub(crate) fn dwords(l: &mut Lifter, v: Value) -> [Value; 4] {
    let [lo, hi] = halves(l, v);
    let d0 = and_imm(l, lo, 0xffff_ffff);
    let d1 = l.bin_imm(BinOp::LShr, lo, 32);
    let d2 = and_imm(l, hi, 0xffff_ffff);
    let d3 = l.bin_imm(BinOp::LShr, hi, 32);
    [d0, d1, d2, d3]
}

/// 64 bits from two 32-bit elements (zero above).
fn pair(l: &mut Lifter, lo: Value, hi: Value) -> Value {
    let h = l.bin_imm(BinOp::Shl, hi, 32);
    l.or(lo, h)
}

/// `pshufd`/`shufps`: result elements 0 and 1 chosen from `first`, 2 and 3 from `second`,
/// by the 2-bit fields of `imm`.
pub(crate) fn shuffle32(l: &mut Lifter, first: Value, second: Value, imm: u32) -> Value {
    let f = dwords(l, first);
    let s = if first == second { f } else { dwords(l, second) };
    let pick = |i: u32| ((imm >> (2 * i)) & 3) as usize;
    let lo = pair(l, f[pick(0)], f[pick(1)]);
    let hi = pair(l, s[pick(2)], s[pick(3)]);
    join(l, lo, hi)
}

/// `pshuflw` (`high_half` false) / `pshufhw`: shuffle the four words of one half of `v`.
pub(crate) fn shuffle16(l: &mut Lifter, v: Value, imm: u32, high_half: bool) -> Value {
    let [lo, hi] = halves(l, v);
    let src = if high_half { hi } else { lo };
    let mut words = Vec::with_capacity(4);
    for k in 0..4u32 {
        let s = if k == 0 { src } else { l.bin_imm(BinOp::LShr, src, u128::from(16 * k)) };
        words.push(and_imm(l, s, 0xffff));
    }
    let mut acc: Option<Value> = None;
    for i in 0..4u32 {
        let w = words[((imm >> (2 * i)) & 3) as usize];
        let w = if i == 0 { w } else { l.bin_imm(BinOp::Shl, w, u128::from(16 * i)) };
        acc = Some(match acc {
            Some(a) => l.or(a, w),
            None => w,
        });
    }
    let r = acc.unwrap_or(src);
    if high_half {
        join(l, lo, r)
    } else {
        join(l, r, hi)
    }
}

/// `pmovmskb`: the top bit of each of the 16 bytes, as an `I64`.
pub(crate) fn movmsk8(l: &mut Lifter, v: Value) -> Value {
    let [lo, hi] = halves(l, v);
    let mut out = Vec::with_capacity(2);
    for h in [lo, hi] {
        // Each byte's top bit (8i + 7) lands at 56 + i; no two partial products overlap.
        let m = and_imm(l, h, 0x8080_8080_8080_8080);
        let p = l.bin_imm(BinOp::Mul, m, 0x0002_0408_1020_4081);
        out.push(l.bin_imm(BinOp::LShr, p, 56));
    }
    let hi8 = l.bin_imm(BinOp::Shl, out[1], 8);
    l.or(out[0], hi8)
}

/// `movmskps` (`w` 32) / `movmskpd` (`w` 64): the sign bit of each lane, as an `I64`.
pub(crate) fn movmsk_float(l: &mut Lifter, v: Value, w: u32) -> Value {
    let [lo, hi] = halves(l, v);
    let mut acc = l.c64(0);
    let mut bit = 0u32;
    for h in [lo, hi] {
        for top in (w - 1..64).step_by(w as usize) {
            let s = l.bin_imm(BinOp::LShr, h, u128::from(top));
            let s = and_imm(l, s, 1);
            let s = if bit == 0 { s } else { l.bin_imm(BinOp::Shl, s, u128::from(bit)) };
            acc = l.or(acc, s);
            bit += 1;
        }
    }
    acc
}

/// Float lanes of `fty` (`F32` or `F64`) of 64 bits `h`, in order.
fn float_lanes(l: &mut Lifter, h: Value, fty: Type) -> Vec<Value> {
    if fty == Type::F64 {
        return vec![l.bitcast(h, Type::F64)];
    }
    let lo = l.zext(h, Type::I32);
    let s = l.bin_imm(BinOp::LShr, h, 32);
    let hi = l.zext(s, Type::I32);
    vec![l.bitcast(lo, Type::F32), l.bitcast(hi, Type::F32)]
}

/// 64 bits from the results of [`float_lanes`] (floats, or integers of the lane width).
fn from_lanes(l: &mut Lifter, v: &[Value]) -> Value {
    let ity = if v.len() == 1 { Type::I64 } else { Type::I32 };
    let mut acc: Option<Value> = None;
    for (i, x) in v.iter().enumerate() {
        let b = l.bitcast(*x, ity);
        let b = l.zext(b, Type::I64);
        let b = if i == 0 { b } else { l.bin_imm(BinOp::Shl, b, 32) };
        acc = Some(match acc {
            Some(a) => l.or(a, b),
            None => b,
        });
    }
    acc.unwrap_or_else(|| l.c64(0))
}

/// A packed float operation `f(a_lane, b_lane)` on lanes of `fty`.
pub(crate) fn float_op(
    l: &mut Lifter,
    a: Value,
    b: Value,
    fty: Type,
    f: impl Fn(&mut Lifter, Value, Value) -> Value,
) -> Value {
    per_half(l, a, b, |l, x, y| {
        let xs = float_lanes(l, x, fty);
        let ys = float_lanes(l, y, fty);
        let rs: Vec<Value> = xs.iter().zip(&ys).map(|(p, q)| f(l, *p, *q)).collect();
        from_lanes(l, &rs)
    })
}

/// `cmpps`/`cmppd` predicate `imm & 7` as all-ones / zero lanes.
pub(crate) fn float_cmp(l: &mut Lifter, a: Value, b: Value, fty: Type, imm: u32) -> Value {
    let cc = match imm & 7 {
        0 => FloatCC::Eq,
        1 => FloatCC::Lt,
        2 => FloatCC::Le,
        3 => FloatCC::Uno,
        4 => FloatCC::Une,
        5 => FloatCC::Unlt,
        6 => FloatCC::Unle,
        _ => FloatCC::Ord,
    };
    let ity = if fty == Type::F64 { Type::I64 } else { Type::I32 };
    float_op(l, a, b, fty, |l, x, y| {
        let c = l.push(Op::Fcmp(cc, x, y));
        let ones = l.cst(ity, u128::MAX);
        let zero = l.cst(ity, 0);
        l.select(c, ones, zero)
    })
}

/// Packed conversions between the float lanes and 32-bit integer lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cvt {
    /// `cvtdq2ps`: four i32 → four f32.
    Dq2Ps,
    /// `cvtdq2pd`: low two i32 → two f64.
    Dq2Pd,
    /// `cvtps2pd`: low two f32 → two f64.
    Ps2Pd,
    /// `cvtpd2ps`: two f64 → low two f32, high half zero.
    Pd2Ps,
    /// `cvt(t)ps2dq`: four f32 → four i32, truncating or rounding.
    Ps2Dq(bool),
    /// `cvt(t)pd2dq`: two f64 → low two i32, high half zero; truncating or rounding.
    Pd2Dq(bool),
}

/// A packed conversion of the `I128` source `s`.
pub(crate) fn convert(l: &mut Lifter, s: Value, cvt: Cvt) -> Value {
    let to_int = |l: &mut Lifter, f: Value, trunc: bool| {
        let op = if trunc { ConvOp::FloatToSIntTrunc } else { ConvOp::FloatToSIntRound };
        l.push(Op::Conv(op, Type::I32, f))
    };
    match cvt {
        Cvt::Dq2Ps | Cvt::Ps2Dq(_) => {
            let z = l.cst(Type::I128, 0);
            per_half(l, s, z, |l, h, _| {
                let lanes = float_lanes(l, h, Type::F32);
                let out: Vec<Value> = lanes
                    .iter()
                    .map(|x| match cvt {
                        Cvt::Dq2Ps => {
                            let i = l.bitcast(*x, Type::I32);
                            l.push(Op::Conv(ConvOp::SIntToFloat, Type::F32, i))
                        }
                        Cvt::Ps2Dq(trunc) => to_int(l, *x, trunc),
                        _ => *x,
                    })
                    .collect();
                from_lanes(l, &out)
            })
        }
        Cvt::Dq2Pd | Cvt::Ps2Pd => {
            let [lo, _] = halves(l, s);
            let lanes = float_lanes(l, lo, Type::F32);
            let out: Vec<Value> = lanes
                .iter()
                .map(|x| {
                    if cvt == Cvt::Dq2Pd {
                        let i = l.bitcast(*x, Type::I32);
                        l.push(Op::Conv(ConvOp::SIntToFloat, Type::F64, i))
                    } else {
                        l.push(Op::Conv(ConvOp::FPromote, Type::F64, *x))
                    }
                })
                .collect();
            let a = l.bitcast(out[0], Type::I64);
            let b = l.bitcast(out[1], Type::I64);
            join(l, a, b)
        }
        Cvt::Pd2Ps | Cvt::Pd2Dq(_) => {
            let [lo, hi] = halves(l, s);
            let mut out = Vec::with_capacity(2);
            for h in [lo, hi] {
                let f = l.bitcast(h, Type::F64);
                out.push(match cvt {
                    Cvt::Pd2Dq(trunc) => to_int(l, f, trunc),
                    _ => l.push(Op::Conv(ConvOp::FDemote, Type::F32, f)),
                });
            }
            let lo = from_lanes(l, &out);
            let z = l.c64(0);
            join(l, lo, z)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(rep(0x80, 8), 0x8080_8080_8080_8080);
        assert_eq!(high(16), 0x8000_8000_8000_8000);
        assert_eq!(high(32), 0x8000_0000_8000_0000);
        assert_eq!(rep(lane_mask(32) << 7, 32), 0xffff_ff80_ffff_ff80);
        assert_eq!(lane_mask(64), u64::MAX);
    }
}
