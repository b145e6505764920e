//! `cpuid` of the CPU every translated program sees: a baseline x86-64 processor (SSE2,
//! nothing newer), so C libraries pick their SSE2 routines on every host and never
//! AVX/EVEX ones, and a migrated program keeps the code paths it chose at start-up.

/// XCR0 as `xgetbv(0)` reports it: x87 and SSE state.
pub const XCR0: u64 = 0b11;

/// Highest basic leaf.
pub const MAX_BASIC_LEAF: u32 = 0xd;
/// Highest extended leaf.
pub const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;

/// The brand string of leaves 0x80000002..=0x80000004 (48 bytes, NUL padded).
pub const BRAND: &[u8; 48] = b"hcontainer baseline x86-64\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// Leaf 1 EDX: FPU, TSC, CX8, CMOV, MMX, FXSR, SSE, SSE2.
pub const LEAF1_EDX: u32 = (1 << 0) | (1 << 4) | (1 << 8) | (1 << 15) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26);
/// Leaf 1 EAX: family 6, model 0x0f (a generic Core 2 era core), stepping 1.
pub const LEAF1_EAX: u32 = (6 << 8) | (0xf << 4) | 1;
/// Leaf 0x80000001 ECX: LAHF/SAHF in 64-bit mode.
pub const EXT1_ECX: u32 = 1 << 0;
/// Leaf 0x80000001 EDX: SYSCALL, NX, LM.
pub const EXT1_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 29);

fn brand_word(i: usize) -> u32 {
    let b = BRAND;
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Deterministic cache parameters for leaf 4, subleaf `sub` (type, level, geometry).
fn leaf4(sub: u32) -> [u32; 4] {
    // (type: 1 data, 2 instruction, 3 unified; level; ways; sets), 64-byte lines.
    let (ty, level, ways, sets): (u32, u32, u32, u32) = match sub {
        0 => (1, 1, 8, 64),    // L1d 32 KiB
        1 => (2, 1, 8, 64),    // L1i 32 KiB
        2 => (3, 2, 8, 512),   // L2 256 KiB
        3 => (3, 3, 16, 8192), // L3 8 MiB, shared
        _ => return [0; 4],
    };
    let self_init = 1 << 8;
    let eax = ty | (level << 5) | self_init;
    let ebx = 63 | ((ways - 1) << 22);
    [eax, ebx, sets - 1, 0]
}

/// The registers `[eax, ebx, ecx, edx]` of `cpuid` with `eax = leaf`, `ecx = sub`.
/// Unknown leaves return zeros.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    match leaf {
        // "GenuineIntel" in ebx, edx, ecx.
        0 => [MAX_BASIC_LEAF, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
        // ebx: CLFLUSH line 8 * 8 bytes, one logical processor, APIC id 0.
        1 => [LEAF1_EAX, (8 << 8) | (1 << 16), 0, LEAF1_EDX],
        // One descriptor byte 0xff: "use leaf 4 for cache parameters".
        2 => [0x0000_ff01, 0, 0, 0],
        4 => leaf4(sub),
        0x8000_0000 => [MAX_EXTENDED_LEAF, 0, 0, 0],
        0x8000_0001 => [0, 0, EXT1_ECX, EXT1_EDX],
        0x8000_0002..=0x8000_0004 => {
            let base = ((leaf - 0x8000_0002) * 4) as usize;
            [brand_word(base), brand_word(base + 1), brand_word(base + 2), brand_word(base + 3)]
        }
        // L2: 256 KiB, 8-way, 64-byte lines.
        0x8000_0006 => [0, 0, (256 << 16) | (6 << 12) | 64, 0],
        // 48-bit physical and virtual addresses.
        0x8000_0008 => [0x3030, 0, 0, 0],
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_features() {
        let [max, b, c, d] = cpuid(0, 0);
        assert_eq!(max, MAX_BASIC_LEAF);
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&b.to_le_bytes());
        v[4..8].copy_from_slice(&d.to_le_bytes());
        v[8..].copy_from_slice(&c.to_le_bytes());
        assert_eq!(&v, b"GenuineIntel");
        let [_, _, ecx, edx] = cpuid(1, 0);
        assert_eq!(ecx, 0, "no SSE3 and later");
        assert_ne!(edx & (1 << 26), 0, "SSE2");
        assert_eq!(edx & (1 << 28), 0, "no HTT");
        assert_eq!(cpuid(7, 0), [0; 4]);
        assert_eq!(cpuid(0x4000_0000, 0), [0; 4]);
    }

    #[test]
    fn brand_string() {
        let mut s = [0u8; 48];
        for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
            for (j, w) in cpuid(leaf, 0).iter().enumerate() {
                s[16 * i + 4 * j..16 * i + 4 * j + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        assert!(s.starts_with(b"hcontainer baseline x86-64\0"));
    }
}
