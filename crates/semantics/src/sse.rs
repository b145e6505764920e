//! Out-of-line SSE/SSE2 packed operations (and 128-by-64-bit division), called through
//! `Helper::Sse`.
//!
//! Arguments: `a0` = [`SseOp`] number in bits 0..16, destination xmm register in bits 16..20,
//! an instruction immediate in bits 24..32; `a1`/`a2` = the low/high 64 bits of the source
//! operand (the lifter loads memory operands and reads source registers itself, so no guest
//! memory is accessed here). The destination register is read and written in the state.
//! Ops that produce a general-purpose value (`pmovmskb`, `movmskps`, `pextrw`) return it and
//! leave the state alone; the lifter writes the register.
//!
//! [`SseOp::Div128U`] / [`SseOp::Div128S`] divide `rdx:rax` by `a1`, write the quotient to
//! rax and the remainder to rdx, and return 0; on a divide error they change nothing and
//! return 1.

use crate::float::{sse_f32, sse_f64};
use hcontainer_abi::{GuestState, Gpr};

macro_rules! sse_ops {
    ($($name:ident = $n:expr,)*) => {
        /// Operation numbers (part of the translated-code ABI: append only).
        #[allow(missing_docs)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum SseOp { $($name = $n,)* }
        impl SseOp {
            /// The op with number `n`, if any.
            pub const fn from_u32(n: u32) -> Option<SseOp> {
                match n { $($n => Some(SseOp::$name),)* _ => None }
            }
        }
    };
}

sse_ops! {
    Paddb = 1, Paddw = 2, Paddd = 3, Paddq = 4,
    Psubb = 5, Psubw = 6, Psubd = 7, Psubq = 8,
    Paddsb = 9, Paddsw = 10, Paddusb = 11, Paddusw = 12,
    Psubsb = 13, Psubsw = 14, Psubusb = 15, Psubusw = 16,
    Pcmpeqb = 17, Pcmpeqw = 18, Pcmpeqd = 19,
    Pcmpgtb = 20, Pcmpgtw = 21, Pcmpgtd = 22,
    Pminub = 23, Pmaxub = 24, Pminsw = 25, Pmaxsw = 26,
    Pavgb = 27, Pavgw = 28,
    Pmullw = 29, Pmulhw = 30, Pmulhuw = 31, Pmuludq = 32, Pmaddwd = 33, Psadbw = 34,
    Psllw = 35, Pslld = 36, Psllq = 37, Psrlw = 38, Psrld = 39, Psrlq = 40, Psraw = 41, Psrad = 42,
    PsllwI = 43, PslldI = 44, PsllqI = 45, PsrlwI = 46, PsrldI = 47, PsrlqI = 48, PsrawI = 49, PsradI = 50,
    Pslldq = 51, Psrldq = 52,
    Punpcklbw = 53, Punpcklwd = 54, Punpckldq = 55, Punpcklqdq = 56,
    Punpckhbw = 57, Punpckhwd = 58, Punpckhdq = 59, Punpckhqdq = 60,
    Packsswb = 61, Packssdw = 62, Packuswb = 63,
    Pshufd = 64, Pshuflw = 65, Pshufhw = 66,
    Pmovmskb = 67, Pextrw = 68, Pinsrw = 69,
    Addps = 70, Subps = 71, Mulps = 72, Divps = 73, Minps = 74, Maxps = 75,
    Addpd = 76, Subpd = 77, Mulpd = 78, Divpd = 79, Minpd = 80, Maxpd = 81,
    Cmpps = 82, Cmppd = 83,
    Shufps = 84, Shufpd = 85,
    Unpcklps = 86, Unpckhps = 87, Unpcklpd = 88, Unpckhpd = 89,
    Movmskps = 90, Movmskpd = 91,
    Cvtdq2ps = 92, Cvtdq2pd = 93, Cvtps2pd = 94, Cvtpd2ps = 95,
    Cvttps2dq = 96, Cvtps2dq = 97, Cvttpd2dq = 98, Cvtpd2dq = 99,
    Div128U = 100, Div128S = 101,
}

/// Run SSE helper op `a0` (see the module docs). Returns `None` for an unknown op.
pub fn execute(state: &mut GuestState, a0: u64, a1: u64, a2: u64) -> Option<u64> {
    let op = SseOp::from_u32((a0 & 0xffff) as u32)?;
    let d = ((a0 >> 16) & 15) as usize;
    let imm = ((a0 >> 24) & 0xff) as u32;
    let src = (u128::from(a2) << 64) | u128::from(a1);
    let dst = u128::from_le_bytes(state.xmm[d]);
    use SseOp::*;
    let r: u128 = match op {
        Div128U | Div128S => return Some(div128(state, op == Div128S, a1)),
        Pmovmskb => return Some(movmsk(src, 8)),
        Movmskps => return Some(movmsk(src, 32)),
        Movmskpd => return Some(movmsk(src, 64)),
        Pextrw => return Some(((src >> (16 * (imm & 7))) & 0xffff) as u64),
        Paddb => lanes(dst, src, 8, |a, b| a.wrapping_add(b)),
        Paddw => lanes(dst, src, 16, |a, b| a.wrapping_add(b)),
        Paddd => lanes(dst, src, 32, |a, b| a.wrapping_add(b)),
        Paddq => lanes(dst, src, 64, |a, b| a.wrapping_add(b)),
        Psubb => lanes(dst, src, 8, |a, b| a.wrapping_sub(b)),
        Psubw => lanes(dst, src, 16, |a, b| a.wrapping_sub(b)),
        Psubd => lanes(dst, src, 32, |a, b| a.wrapping_sub(b)),
        Psubq => lanes(dst, src, 64, |a, b| a.wrapping_sub(b)),
        Paddsb => lanes(dst, src, 8, |a, b| sat_s(sx(a, 8) + sx(b, 8), 8)),
        Paddsw => lanes(dst, src, 16, |a, b| sat_s(sx(a, 16) + sx(b, 16), 16)),
        Psubsb => lanes(dst, src, 8, |a, b| sat_s(sx(a, 8) - sx(b, 8), 8)),
        Psubsw => lanes(dst, src, 16, |a, b| sat_s(sx(a, 16) - sx(b, 16), 16)),
        Paddusb => lanes(dst, src, 8, |a, b| (a + b).min(0xff)),
        Paddusw => lanes(dst, src, 16, |a, b| (a + b).min(0xffff)),
        Psubusb | Psubusw => lanes(dst, src, if op == Psubusb { 8 } else { 16 }, |a, b| a.saturating_sub(b)),
        Pcmpeqb => lanes(dst, src, 8, |a, b| if a == b { 0xff } else { 0 }),
        Pcmpeqw => lanes(dst, src, 16, |a, b| if a == b { 0xffff } else { 0 }),
        Pcmpeqd => lanes(dst, src, 32, |a, b| if a == b { 0xffff_ffff } else { 0 }),
        Pcmpgtb => lanes(dst, src, 8, |a, b| if sx(a, 8) > sx(b, 8) { 0xff } else { 0 }),
        Pcmpgtw => lanes(dst, src, 16, |a, b| if sx(a, 16) > sx(b, 16) { 0xffff } else { 0 }),
        Pcmpgtd => lanes(dst, src, 32, |a, b| if sx(a, 32) > sx(b, 32) { 0xffff_ffff } else { 0 }),
        Pminub => lanes(dst, src, 8, |a, b| a.min(b)),
        Pmaxub => lanes(dst, src, 8, |a, b| a.max(b)),
        Pminsw => lanes(dst, src, 16, |a, b| if sx(a, 16) < sx(b, 16) { a } else { b }),
        Pmaxsw => lanes(dst, src, 16, |a, b| if sx(a, 16) > sx(b, 16) { a } else { b }),
        Pavgb => lanes(dst, src, 8, |a, b| (a + b + 1) >> 1),
        Pavgw => lanes(dst, src, 16, |a, b| (a + b + 1) >> 1),
        Pmullw => lanes(dst, src, 16, |a, b| a.wrapping_mul(b)),
        Pmulhw => lanes(dst, src, 16, |a, b| ((sx(a, 16) * sx(b, 16)) >> 16) as u64),
        Pmulhuw => lanes(dst, src, 16, |a, b| (a * b) >> 16),
        Pmuludq => lanes(dst, src, 64, |a, b| (a & 0xffff_ffff) * (b & 0xffff_ffff)),
        Pmaddwd => {
            let mut out = 0u128;
            for i in 0..4 {
                let p = |k: u32| -> i64 { sx(lane(dst, 16, 2 * i + k), 16) * sx(lane(src, 16, 2 * i + k), 16) };
                let s = (p(0) + p(1)) as u64 & 0xffff_ffff;
                out |= u128::from(s) << (32 * i);
            }
            out
        }
        Psadbw => {
            let mut out = 0u128;
            for h in 0..2 {
                let mut s = 0u64;
                for i in 0..8 {
                    let a = lane(dst, 8, 8 * h + i);
                    let b = lane(src, 8, 8 * h + i);
                    s += a.abs_diff(b);
                }
                out |= u128::from(s) << (64 * h);
            }
            out
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            let n = u64::try_from(src & u128::from(u64::MAX)).unwrap_or(u64::MAX);
            shift(op, dst, n)
        }
        PsllwI | PslldI | PsllqI | PsrlwI | PsrldI | PsrlqI | PsrawI | PsradI => {
            let base = match op {
                PsllwI => Psllw,
                PslldI => Pslld,
                PsllqI => Psllq,
                PsrlwI => Psrlw,
                PsrldI => Psrld,
                PsrlqI => Psrlq,
                PsrawI => Psraw,
                _ => Psrad,
            };
            shift(base, dst, u64::from(imm))
        }
        Pslldq => if imm > 15 { 0 } else { dst << (8 * imm) },
        Psrldq => if imm > 15 { 0 } else { dst >> (8 * imm) },
        Punpcklbw => interleave(dst, src, 8, 0),
        Punpcklwd => interleave(dst, src, 16, 0),
        Punpckldq | Unpcklps => interleave(dst, src, 32, 0),
        Punpcklqdq | Unpcklpd => interleave(dst, src, 64, 0),
        Punpckhbw => interleave(dst, src, 8, 1),
        Punpckhwd => interleave(dst, src, 16, 1),
        Punpckhdq | Unpckhps => interleave(dst, src, 32, 1),
        Punpckhqdq | Unpckhpd => interleave(dst, src, 64, 1),
        Packsswb => pack(dst, src, 16, |v| sat_s(sx(v, 16), 8)),
        Packssdw => pack(dst, src, 32, |v| sat_s(sx(v, 32), 16)),
        Packuswb => pack(dst, src, 16, |v| sx(v, 16).clamp(0, 255) as u64),
        Pshufd => {
            let mut out = 0u128;
            for i in 0..4 {
                out |= u128::from(lane(src, 32, (imm >> (2 * i)) & 3)) << (32 * i);
            }
            out
        }
        Pshuflw | Pshufhw => {
            let half = if op == Pshuflw { 0 } else { 4 };
            let mut out = src;
            for i in 0..4 {
                let v = lane(src, 16, half + ((imm >> (2 * i)) & 3));
                out = set_lane(out, 16, half + i, v);
            }
            out
        }
        Pinsrw => set_lane(dst, 16, imm & 7, a1 & 0xffff),
        Addps => lanes(dst, src, 32, |a, b| u64::from(sse_f32(a as u32, b as u32, |x, y| x + y))),
        Subps => lanes(dst, src, 32, |a, b| u64::from(sse_f32(a as u32, b as u32, |x, y| x - y))),
        Mulps => lanes(dst, src, 32, |a, b| u64::from(sse_f32(a as u32, b as u32, |x, y| x * y))),
        Divps => lanes(dst, src, 32, |a, b| u64::from(sse_f32(a as u32, b as u32, |x, y| x / y))),
        Minps => lanes(dst, src, 32, |a, b| f32op(a, b, |x, y| if x < y { x } else { y })),
        Maxps => lanes(dst, src, 32, |a, b| f32op(a, b, |x, y| if x > y { x } else { y })),
        Addpd => lanes(dst, src, 64, |a, b| sse_f64(a, b, |x, y| x + y)),
        Subpd => lanes(dst, src, 64, |a, b| sse_f64(a, b, |x, y| x - y)),
        Mulpd => lanes(dst, src, 64, |a, b| sse_f64(a, b, |x, y| x * y)),
        Divpd => lanes(dst, src, 64, |a, b| sse_f64(a, b, |x, y| x / y)),
        Minpd => lanes(dst, src, 64, |a, b| f64op(a, b, |x, y| if x < y { x } else { y })),
        Maxpd => lanes(dst, src, 64, |a, b| f64op(a, b, |x, y| if x > y { x } else { y })),
        Cmpps => lanes(dst, src, 32, |a, b| {
            let (x, y) = (f64::from(f32::from_bits(a as u32)), f64::from(f32::from_bits(b as u32)));
            if fcmp(imm, x, y) { 0xffff_ffff } else { 0 }
        }),
        Cmppd => lanes(dst, src, 64, |a, b| if fcmp(imm, f64::from_bits(a), f64::from_bits(b)) { u64::MAX } else { 0 }),
        Shufps => {
            let mut out = 0u128;
            for i in 0..4 {
                let from = if i < 2 { dst } else { src };
                out |= u128::from(lane(from, 32, (imm >> (2 * i)) & 3)) << (32 * i);
            }
            out
        }
        Shufpd => {
            let lo = lane(dst, 64, imm & 1);
            let hi = lane(src, 64, (imm >> 1) & 1);
            (u128::from(hi) << 64) | u128::from(lo)
        }
        Cvtdq2ps => lanes(src, 0, 32, |a, _| u64::from((sx(a, 32) as f32).to_bits())),
        Cvtdq2pd => {
            let lo = (sx(lane(src, 32, 0), 32) as f64).to_bits();
            let hi = (sx(lane(src, 32, 1), 32) as f64).to_bits();
            (u128::from(hi) << 64) | u128::from(lo)
        }
        Cvtps2pd => {
            let lo = f64::from(f32::from_bits(lane(src, 32, 0) as u32)).to_bits();
            let hi = f64::from(f32::from_bits(lane(src, 32, 1) as u32)).to_bits();
            (u128::from(hi) << 64) | u128::from(lo)
        }
        Cvtpd2ps => {
            let lo = (f64::from_bits(lane(src, 64, 0)) as f32).to_bits();
            let hi = (f64::from_bits(lane(src, 64, 1)) as f32).to_bits();
            (u128::from(hi) << 32) | u128::from(lo)
        }
        Cvttps2dq | Cvtps2dq => lanes(src, 0, 32, |a, _| {
            let x = f64::from(f32::from_bits(a as u32));
            u64::from(to_i32(x, op == Cvtps2dq) as u32)
        }),
        Cvttpd2dq | Cvtpd2dq => {
            let round = op == Cvtpd2dq;
            let lo = to_i32(f64::from_bits(lane(src, 64, 0)), round) as u32;
            let hi = to_i32(f64::from_bits(lane(src, 64, 1)), round) as u32;
            (u128::from(hi) << 32) | u128::from(lo)
        }
    };
    state.xmm[d] = r.to_le_bytes();
    Some(0)
}

fn lane(v: u128, bits: u32, i: u32) -> u64 {
    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    ((v >> (bits * i)) as u64) & m
}

fn set_lane(v: u128, bits: u32, i: u32, x: u64) -> u128 {
    let m: u128 = if bits == 64 { u128::from(u64::MAX) } else { (1u128 << bits) - 1 };
    (v & !(m << (bits * i))) | ((u128::from(x) & m) << (bits * i))
}

/// Apply `f` lane by lane (lanes zero-extended to u64; the result is masked to the lane).
fn lanes(a: u128, b: u128, bits: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let mut out = 0u128;
    for i in 0..128 / bits {
        out = set_lane(out, bits, i, f(lane(a, bits, i), lane(b, bits, i)));
    }
    out
}

fn sx(v: u64, bits: u32) -> i64 {
    let sh = 64 - bits;
    ((v << sh) as i64) >> sh
}

fn sat_s(v: i64, bits: u32) -> u64 {
    let max = (1i64 << (bits - 1)) - 1;
    let min = -(1i64 << (bits - 1));
    v.clamp(min, max) as u64
}

fn movmsk(v: u128, bits: u32) -> u64 {
    let mut m = 0u64;
    for i in 0..128 / bits {
        m |= ((v >> (bits * i + bits - 1)) as u64 & 1) << i;
    }
    m
}

fn shift(op: SseOp, v: u128, n: u64) -> u128 {
    use SseOp::*;
    let (bits, kind) = match op {
        Psllw => (16, 0),
        Pslld => (32, 0),
        Psllq => (64, 0),
        Psrlw => (16, 1),
        Psrld => (32, 1),
        Psrlq => (64, 1),
        Psraw => (16, 2),
        _ => (32, 2),
    };
    if n >= u64::from(bits) {
        return match kind {
            2 => lanes(v, 0, bits, |a, _| if sx(a, bits) < 0 { u64::MAX } else { 0 }),
            _ => 0,
        };
    }
    let n = n as u32;
    match kind {
        0 => lanes(v, 0, bits, |a, _| a << n),
        1 => lanes(v, 0, bits, |a, _| a >> n),
        _ => lanes(v, 0, bits, |a, _| (sx(a, bits) >> n) as u64),
    }
}

/// Interleave the low (`half` 0) or high (`half` 1) lanes of `a` and `b`: a0 b0 a1 b1 ...
fn interleave(a: u128, b: u128, bits: u32, half: u32) -> u128 {
    let n = 64 / bits;
    let mut out = 0u128;
    for i in 0..n {
        out = set_lane(out, bits, 2 * i, lane(a, bits, half * n + i));
        out = set_lane(out, bits, 2 * i + 1, lane(b, bits, half * n + i));
    }
    out
}

/// Narrow the lanes of `a` (low half of the result) and `b` (high half) with saturation `f`.
fn pack(a: u128, b: u128, bits: u32, f: impl Fn(u64) -> u64) -> u128 {
    let n = 128 / bits;
    let nb = bits / 2;
    let mut out = 0u128;
    for i in 0..n {
        out = set_lane(out, nb, i, f(lane(a, bits, i)));
        out = set_lane(out, nb, n + i, f(lane(b, bits, i)));
    }
    out
}

fn f32op(a: u64, b: u64, f: impl Fn(f32, f32) -> f32) -> u64 {
    u64::from(f(f32::from_bits(a as u32), f32::from_bits(b as u32)).to_bits())
}

fn f64op(a: u64, b: u64, f: impl Fn(f64, f64) -> f64) -> u64 {
    f(f64::from_bits(a), f64::from_bits(b)).to_bits()
}

/// `cmpps`/`cmppd` predicate `imm & 7`.
fn fcmp(imm: u32, x: f64, y: f64) -> bool {
    let uno = x.is_nan() || y.is_nan();
    match imm & 7 {
        0 => x == y,
        1 => x < y,
        2 => x <= y,
        3 => uno,
        4 => uno || x != y,
        5 => uno || x >= y,
        6 => uno || x > y,
        _ => !uno,
    }
}

/// Round half to even (for |x| < 2^52; larger values are already integers).
fn round_even(x: f64) -> f64 {
    const BIG: f64 = 4_503_599_627_370_496.0; // 2^52
    // Larger magnitudes (and NaN, infinities) are returned unchanged.
    if x.is_nan() || x.abs() >= BIG {
        return x;
    }
    if x >= 0.0 {
        (x + BIG) - BIG
    } else {
        (x - BIG) + BIG
    }
}

/// x86 conversion to i32: truncating or rounding to nearest even; NaN and out-of-range
/// give the integer indefinite `i32::MIN`.
fn to_i32(x: f64, round: bool) -> i32 {
    let x = if round { round_even(x) } else { x };
    if x.is_nan() || x >= 2_147_483_648.0 || x <= -2_147_483_649.0 {
        return i32::MIN;
    }
    x as i32
}

fn div128(state: &mut GuestState, signed: bool, d: u64) -> u64 {
    let rax = state.gpr[Gpr::Rax as usize];
    let rdx = state.gpr[Gpr::Rdx as usize];
    let n = (u128::from(rdx) << 64) | u128::from(rax);
    if d == 0 {
        return 1;
    }
    let (q, r) = if signed {
        let n = n as i128;
        let d = i128::from(d as i64);
        // |n| < 2^127 and |d| >= 1: the only overflowing case is MIN / -1.
        if n == i128::MIN && d == -1 {
            return 1;
        }
        let q = n / d;
        if q < i128::from(i64::MIN) || q > i128::from(i64::MAX) {
            return 1;
        }
        (q as u64, (n % d) as u64)
    } else {
        let q = n / u128::from(d);
        if q > u128::from(u64::MAX) {
            return 1;
        }
        (q as u64, (n % u128::from(d)) as u64)
    };
    state.gpr[Gpr::Rax as usize] = q;
    state.gpr[Gpr::Rdx as usize] = r;
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: SseOp, dst: u128, src: u128, imm: u32) -> u128 {
        let mut st = GuestState::new();
        st.xmm[3] = dst.to_le_bytes();
        let a0 = op as u64 | (3 << 16) | (u64::from(imm) << 24);
        assert_eq!(execute(&mut st, a0, src as u64, (src >> 64) as u64), Some(0));
        u128::from_le_bytes(st.xmm[3])
    }

    #[test]
    fn pcmpeqb_and_movmsk() {
        let a = u128::from_le_bytes(*b"hello, world!\0ab");
        let b = u128::from_le_bytes([0; 16]);
        let r = run(SseOp::Pcmpeqb, a, b, 0);
        assert_eq!(movmsk(r, 8), 1 << 13);
    }

    #[test]
    fn pshufd_reverses() {
        let v = 0x0000_0003_0000_0002_0000_0001_0000_0000u128;
        let r = run(SseOp::Pshufd, 0, v, 0b00_01_10_11);
        assert_eq!(r, 0x0000_0000_0000_0001_0000_0002_0000_0003u128);
    }

    #[test]
    fn punpcklbw_interleaves() {
        let r = run(SseOp::Punpcklbw, 0x0201, 0x0b0a, 0);
        assert_eq!(r & 0xffff_ffff, 0x0b02_0a01);
    }

    #[test]
    fn packuswb_saturates() {
        let a = u128::from(0xffffu64) | (u128::from(0x0100u64) << 16) | (u128::from(0x0042u64) << 32);
        let r = run(SseOp::Packuswb, a, 0, 0);
        assert_eq!(r & 0xff_ffff, 0x42_ff_00);
    }

    #[test]
    fn packed_arithmetic_picks_the_first_nan_per_lane() {
        // Both operands NaN in every lane: x86 returns the destination's NaN, quieted.
        let d32 = 0x7f80_0001u128 | (0xffc0_0002u128 << 32) | (0x7fc0_0003u128 << 64) | (0xff80_0004u128 << 96);
        let s32 = 0x7fc0_0010u128 | (0x7f80_0020u128 << 32) | (0xffc0_0030u128 << 64) | (0x7fc0_0040u128 << 96);
        let want32 = 0x7fc0_0001u128 | (0xffc0_0002u128 << 32) | (0x7fc0_0003u128 << 64) | (0xffc0_0004u128 << 96);
        for op in [SseOp::Addps, SseOp::Subps, SseOp::Mulps, SseOp::Divps] {
            assert_eq!(run(op, d32, s32, 0), want32, "{op:?}");
        }
        let d64 = 0x7ff0_0000_0000_0001u128 | (0xfff8_0000_0000_0002u128 << 64);
        let s64 = 0x7ff8_0000_0000_0010u128 | (0x7ff0_0000_0000_0020u128 << 64);
        let want64 = 0x7ff8_0000_0000_0001u128 | (0xfff8_0000_0000_0002u128 << 64);
        for op in [SseOp::Addpd, SseOp::Subpd, SseOp::Mulpd, SseOp::Divpd] {
            assert_eq!(run(op, d64, s64, 0), want64, "{op:?}");
        }
        // Only the source NaN: it is returned, quieted; inf - inf gives the default NaN.
        let inf = f64::INFINITY.to_bits();
        let r = run(SseOp::Subpd, 1f64.to_bits().into(), 0x7ff0_0000_0000_0005u128 | (u128::from(inf) << 64), 0);
        assert_eq!(r & u128::from(u64::MAX), 0x7ff8_0000_0000_0005);
        let r = run(SseOp::Subpd, u128::from(inf) << 64, u128::from(inf) << 64, 0);
        assert_eq!(r >> 64, 0xfff8_0000_0000_0000);
    }

    #[test]
    fn div128_errors_leave_state() {
        let mut st = GuestState::new();
        st.gpr[0] = 5;
        st.gpr[2] = 1;
        assert_eq!(execute(&mut st, SseOp::Div128U as u64, 1, 0), Some(1));
        assert_eq!((st.gpr[0], st.gpr[2]), (5, 1));
        assert_eq!(execute(&mut st, SseOp::Div128U as u64, 2, 0), Some(0));
        assert_eq!((st.gpr[0], st.gpr[2]), (0x8000_0000_0000_0002, 1));
    }
}
