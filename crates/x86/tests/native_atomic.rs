//! `lock`-prefixed instructions and `xchg` with memory (lifted to atomic IR operations),
//! lifted and interpreted, against native execution on random inputs: registers, flags and
//! the data page must match.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod native;

use native::{check, layout, random_machine, Compare, Layout, Machine, Rng};

/// Inputs per instruction form.
const N: usize = 1000;

type Setup = fn(&mut Machine, &mut Rng, Layout);

/// rsi points at an aligned word of the data page (a misaligned locked access would be a
/// split lock, which the kernel may slow down on purpose).
fn mem(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    m.gpr[6] = lay.data + 0x800 + 16 * rng.below(16);
}

/// Half the time the accumulator (rdx:rax) equals memory, so both outcomes of a
/// compare-and-swap are covered.
fn cas(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    mem(m, rng, lay);
    if rng.below(2) == 0 {
        let off = (m.gpr[6] - lay.data) as usize;
        let (rax, rdx) = (m.gpr[0].to_le_bytes(), m.gpr[2].to_le_bytes());
        m.data[off..off + 8].copy_from_slice(&rax);
        m.data[off + 8..off + 16].copy_from_slice(&rdx);
    }
}

/// Bit offsets in rbx stay within ±64 bytes of rsi.
fn bit_offset(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    mem(m, rng, lay);
    m.gpr[3] = (rng.below(1024) as i64 - 512) as u64;
}

fn forms(list: &[(&str, Vec<u8>, Setup)]) -> usize {
    let lay = layout();
    let mut total = 0;
    let mut errors = Vec::new();
    for (name, bytes, setup) in list {
        let mut rng = Rng::new(bytes.iter().fold(0x5eed_1234u64, |h, b| h.rotate_left(7) ^ u64::from(*b)));
        for _ in 0..N {
            let mut m = random_machine(&mut rng, lay);
            setup(&mut m, &mut rng, lay);
            if let Err(e) = check(bytes, &m, Compare::default(), 0) {
                errors.push(format!("{name} ({bytes:02x?}) differs from native:\n{e}"));
                break;
            }
            total += 1;
        }
    }
    assert!(errors.is_empty(), "{} forms differ:\n{}", errors.len(), errors.join("\n\n"));
    total
}

#[test]
fn locked_arithmetic() {
    let mut list: Vec<(&str, Vec<u8>, Setup)> = Vec::new();
    // add, or, and, sub, xor: `lock op m, r` in four widths and `lock op m, imm`.
    for (name, n) in [("add", 0u8), ("or", 1), ("and", 4), ("sub", 5), ("xor", 6)] {
        let base = n << 3;
        let _ = name;
        list.push(("lock op m8,r8", vec![0xf0, base, 0x1e], mem));
        list.push(("lock op m16,r16", vec![0xf0, 0x66, base + 1, 0x1e], mem));
        list.push(("lock op m32,r32", vec![0xf0, base + 1, 0x1e], mem));
        list.push(("lock op m64,r64", vec![0xf0, 0x48, base + 1, 0x1e], mem));
        list.push(("lock op m32,imm8", vec![0xf0, 0x83, 0x06 | base, 0xff], mem));
        list.push(("lock op m64,imm32", vec![0xf0, 0x48, 0x81, 0x06 | base, 0x01, 0x00, 0x00, 0x80], mem));
    }
    for n in [0u8, 1] {
        // inc, dec
        list.push(("lock incdec m8", vec![0xf0, 0xfe, 0x06 | (n << 3)], mem));
        list.push(("lock incdec m32", vec![0xf0, 0xff, 0x06 | (n << 3)], mem));
        list.push(("lock incdec m64", vec![0xf0, 0x48, 0xff, 0x06 | (n << 3)], mem));
    }
    list.push(("lock not m64", vec![0xf0, 0x48, 0xf7, 0x16], mem));
    list.push(("lock not m16", vec![0xf0, 0x66, 0xf7, 0x16], mem));
    eprintln!("locked arithmetic: {} inputs", forms(&list));
}

#[test]
fn exchanges() {
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![
        ("lock xadd m8,r8", vec![0xf0, 0x0f, 0xc0, 0x1e], mem),
        ("lock xadd m16,r16", vec![0xf0, 0x66, 0x0f, 0xc1, 0x1e], mem),
        ("lock xadd m64,r64", vec![0xf0, 0x48, 0x0f, 0xc1, 0x1e], mem),
        ("xchg m32,r32", vec![0x87, 0x1e], mem),
        ("xchg m64,r64", vec![0x48, 0x87, 0x1e], mem),
        ("xchg m8,bh", vec![0x86, 0x3e], mem),
        ("lock xchg m16,r16", vec![0xf0, 0x66, 0x87, 0x1e], mem),
        ("lock cmpxchg m8,r8", vec![0xf0, 0x0f, 0xb0, 0x1e], cas),
        ("lock cmpxchg m16,r16", vec![0xf0, 0x66, 0x0f, 0xb1, 0x1e], cas),
        ("lock cmpxchg m32,r32", vec![0xf0, 0x0f, 0xb1, 0x1e], cas),
        ("lock cmpxchg m64,r64", vec![0xf0, 0x48, 0x0f, 0xb1, 0x1e], cas),
        ("lock cmpxchg8b m64", vec![0xf0, 0x0f, 0xc7, 0x0e], cas),
        ("lock cmpxchg16b m128", vec![0xf0, 0x48, 0x0f, 0xc7, 0x0e], cas),
    ];
    eprintln!("exchanges: {} inputs", forms(&list));
}

#[test]
fn locked_bit_test_and_modify() {
    let mut list: Vec<(&str, Vec<u8>, Setup)> = Vec::new();
    for (op, n) in [(0xabu8, 5u8), (0xb3, 6), (0xbb, 7)] {
        list.push(("lock bt* m16,r16", vec![0xf0, 0x66, 0x0f, op, 0x1e], bit_offset));
        list.push(("lock bt* m32,r32", vec![0xf0, 0x0f, op, 0x1e], bit_offset));
        list.push(("lock bt* m64,r64", vec![0xf0, 0x48, 0x0f, op, 0x1e], bit_offset));
        list.push(("lock bt* m32,imm", vec![0xf0, 0x0f, 0xba, 0x06 | (n << 3), 0x1d], mem));
        list.push(("lock bt* m64,imm", vec![0xf0, 0x48, 0x0f, 0xba, 0x06 | (n << 3), 0x3d], mem));
    }
    eprintln!("locked bit test: {} inputs", forms(&list));
}
