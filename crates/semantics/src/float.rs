//! x86 SSE results of IEEE operations, independent of the host: when the result is a NaN,
//! x86 returns the first operand if it is a NaN, else the second, quieted; an invalid
//! operation on non-NaN operands gives the negative "default NaN". Host float units differ
//! (arm64 and riscv64 return a positive canonical NaN; a compiler may swap the operands of a
//! commutative operation), so every SSE result goes through these.

/// The x86 result of an f64 operation `op(a, b)` whose host result is `r`.
pub fn fix_nan_f64(a: u64, b: u64, r: f64) -> u64 {
    if !r.is_nan() {
        r.to_bits()
    } else if f64::from_bits(a).is_nan() {
        a | (1 << 51)
    } else if f64::from_bits(b).is_nan() {
        b | (1 << 51)
    } else {
        0xfff8_0000_0000_0000
    }
}

/// The x86 result of an f32 operation `op(a, b)` whose host result is `r`.
pub fn fix_nan_f32(a: u32, b: u32, r: f32) -> u32 {
    if !r.is_nan() {
        r.to_bits()
    } else if f32::from_bits(a).is_nan() {
        a | (1 << 22)
    } else if f32::from_bits(b).is_nan() {
        b | (1 << 22)
    } else {
        0xffc0_0000
    }
}

/// `f(a, b)` on f64 bits with x86 NaN results.
pub fn sse_f64(a: u64, b: u64, f: impl Fn(f64, f64) -> f64) -> u64 {
    fix_nan_f64(a, b, f(f64::from_bits(a), f64::from_bits(b)))
}

/// `f(a, b)` on f32 bits with x86 NaN results.
pub fn sse_f32(a: u32, b: u32, f: impl Fn(f32, f32) -> f32) -> u32 {
    fix_nan_f32(a, b, f(f32::from_bits(a), f32::from_bits(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nan_operand_wins() {
        let (qa, qb) = (0x7ff8_0000_0000_0001u64, 0xfff8_0000_0000_0002u64);
        assert_eq!(sse_f64(qa, qb, |x, y| y + x), qa);
        assert_eq!(sse_f64(1f64.to_bits(), 0x7ff0_0000_0000_0003, |x, y| x * y), 0x7ff8_0000_0000_0003);
        let inf = f64::INFINITY.to_bits();
        assert_eq!(sse_f64(inf, inf, |x, y| x - y), 0xfff8_0000_0000_0000);
        assert_eq!(sse_f32(0x7f80_0001, 0x7fc0_0000, |x, y| x + y), 0x7fc0_0001);
    }
}
