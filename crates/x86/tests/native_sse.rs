//! SSE/SSE2 instructions, lifted and interpreted, against native execution on random inputs
//! rich in float edge values (NaN, ±inf, ±0, denormals, huge, integers).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod native;

use native::{check, layout, random_machine, Compare, Layout, Machine, Rng};

/// Inputs per instruction form.
const N: usize = 1500;

type Setup = fn(&mut Machine, &mut Rng, Layout);

fn f64_edge(rng: &mut Rng) -> u64 {
    const E: [f64; 16] = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        9.223372036854775807e18,
        -9.223372036854775808e18,
        2147483647.5,
        -2147483648.75,
        0.5,
        2.5,
        1e300,
    ];
    match rng.below(6) {
        0 => E[rng.below(16) as usize].to_bits(),
        1 => 0x7ff8_0000_0000_0000 | (rng.next() & 0x000f_ffff_ffff_ffff) | (rng.next() & (1 << 63)), // qNaN
        2 => 0x7ff0_0000_0000_0001 | (rng.next() & 0x0007_ffff_ffff_ffff), // sNaN
        3 => (rng.below(2000) as f64 - 1000.0).to_bits(),
        _ => rng.next(),
    }
}

fn f32_edge(rng: &mut Rng) -> u32 {
    const E: [f32; 14] = [
        0.0,
        -0.0,
        1.0,
        -1.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        2147483520.0,
        -2147483648.0,
        9.223372e18,
        0.5,
        2.5,
    ];
    match rng.below(6) {
        0 => E[rng.below(14) as usize].to_bits(),
        1 => 0x7fc0_0000 | (rng.next() as u32 & 0x003f_ffff) | (rng.next() as u32 & (1 << 31)),
        2 => 0x7f80_0001 | (rng.next() as u32 & 0x003f_ffff),
        3 => (rng.below(2000) as f32 - 1000.0).to_bits(),
        _ => rng.next() as u32,
    }
}

/// xmm0..xmm2 get float edge values (f64 or f32 lanes, whichever the form uses; both mixes).
fn floats(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    for r in 0..3 {
        let mut x = [0u8; 16];
        if rng.below(2) == 0 {
            x[..8].copy_from_slice(&f64_edge(rng).to_le_bytes());
            x[8..].copy_from_slice(&f64_edge(rng).to_le_bytes());
        } else {
            for k in 0..4 {
                x[4 * k..4 * k + 4].copy_from_slice(&f32_edge(rng).to_le_bytes());
            }
        }
        m.set_xmm(r, x);
    }
    m.gpr[0] = match rng.below(3) {
        0 => rng.value(),
        1 => (rng.below(2000) as i64 - 1000) as u64,
        _ => rng.next(),
    };
    mem16(m, rng, lay);
    let off = (m.gpr[6] - lay.data) as usize;
    let x = m.xmm(2);
    m.data[off..off + 16].copy_from_slice(&x);
}

/// xmm0..xmm2 get 16-bit or 32-bit lanes near the saturation and comparison boundaries
/// (0, ±1, 0x7f/0x80, 0xff/0x100, 0x7fff/0x8000, 0xffff, …), the rest as `floats` does.
fn boundaries(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    floats(m, rng, lay);
    const E: [i64; 16] = [0, 1, -1, 0x7f, 0x80, -0x80, -0x81, 0xff, 0x100, 0x7fff, 0x8000, -0x8000, -0x8001, 0xffff, 0x1_0000, -2];
    for r in 0..3 {
        let mut x = [0u8; 16];
        if rng.below(2) == 0 {
            for k in 0..8 {
                let v = E[rng.below(16) as usize] as u16;
                x[2 * k..2 * k + 2].copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for k in 0..4 {
                let v = E[rng.below(16) as usize] as u32;
                x[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        m.set_xmm(r, x);
    }
}

/// rsi: a 16-byte aligned address in the data page.
fn mem16(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    m.gpr[6] = lay.data + 0x800 + 16 * rng.below(8);
}

/// Shift counts in xmm1 are usually small.
fn shift_count(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    mem16(m, rng, lay);
    if rng.below(4) != 0 {
        let mut x = m.xmm(1);
        x[..8].copy_from_slice(&rng.below(70).to_le_bytes());
        m.set_xmm(1, x);
    }
}

fn run(list: &[(String, Vec<u8>, Setup)]) -> usize {
    let lay = layout();
    let mut total = 0;
    let cmp = Compare { xmm: true, ..Compare::default() };
    let mut errors = Vec::new();
    'forms: for (name, bytes, setup) in list {
        let mut rng = Rng::new(bytes.iter().fold(0x5eed_u64, |h, b| h.rotate_left(9) ^ u64::from(*b)));
        for _ in 0..N {
            let mut m = random_machine(&mut rng, lay);
            setup(&mut m, &mut rng, lay);
            if let Err(e) = check(bytes, &m, cmp, 0) {
                errors.push(format!("{name} ({bytes:02x?}) differs from native:\n{e}"));
                continue 'forms;
            }
            total += 1;
        }
    }
    assert!(errors.is_empty(), "{} forms differ:\n{}", errors.len(), errors.join("\n\n"));
    total
}

fn form(name: &str, bytes: &[u8], setup: Setup) -> (String, Vec<u8>, Setup) {
    (name.to_string(), bytes.to_vec(), setup)
}

#[test]
fn float_arithmetic() {
    let mut list = Vec::new();
    for (name, op) in [("add", 0x58u8), ("mul", 0x59), ("sub", 0x5c), ("min", 0x5d), ("div", 0x5e), ("max", 0x5f), ("sqrt", 0x51)] {
        for (suffix, prefix) in [("ps", None), ("pd", Some(0x66u8)), ("ss", Some(0xf3)), ("sd", Some(0xf2))] {
            let mut b: Vec<u8> = prefix.into_iter().collect();
            b.extend_from_slice(&[0x0f, op, 0xc1]);
            list.push(form(&format!("{name}{suffix} xmm0,xmm1"), &b, floats));
            let mut b: Vec<u8> = prefix.into_iter().collect();
            b.extend_from_slice(&[0x0f, op, 0x06]);
            list.push(form(&format!("{name}{suffix} xmm0,[rsi]"), &b, floats));
        }
    }
    for (name, op) in [("and", 0x54u8), ("andn", 0x55), ("or", 0x56), ("xor", 0x57)] {
        list.push(form(&format!("{name}ps"), &[0x0f, op, 0xc1], floats));
        list.push(form(&format!("{name}pd"), &[0x66, 0x0f, op, 0xc1], floats));
    }
    eprintln!("float arithmetic: {} inputs", run(&list));
}

#[test]
fn float_compare() {
    let mut list = Vec::new();
    for imm in 0..8u8 {
        list.push(form("cmpps", &[0x0f, 0xc2, 0xc1, imm], floats));
        list.push(form("cmppd", &[0x66, 0x0f, 0xc2, 0xc1, imm], floats));
        list.push(form("cmpss", &[0xf3, 0x0f, 0xc2, 0xc1, imm], floats));
        list.push(form("cmpsd", &[0xf2, 0x0f, 0xc2, 0xc1, imm], floats));
    }
    list.push(form("comiss", &[0x0f, 0x2f, 0xc1], floats));
    list.push(form("comisd", &[0x66, 0x0f, 0x2f, 0xc1], floats));
    list.push(form("ucomiss", &[0x0f, 0x2e, 0xc1], floats));
    list.push(form("ucomisd", &[0x66, 0x0f, 0x2e, 0xc1], floats));
    list.push(form("ucomisd [rsi]", &[0x66, 0x0f, 0x2e, 0x06], floats));
    eprintln!("float compare: {} inputs", run(&list));
}

#[test]
fn conversions() {
    let list = vec![
        form("cvtsi2sd xmm0,rax", &[0xf2, 0x48, 0x0f, 0x2a, 0xc0], floats),
        form("cvtsi2sd xmm0,eax", &[0xf2, 0x0f, 0x2a, 0xc0], floats),
        form("cvtsi2ss xmm0,rax", &[0xf3, 0x48, 0x0f, 0x2a, 0xc0], floats),
        form("cvtsi2ss xmm0,eax", &[0xf3, 0x0f, 0x2a, 0xc0], floats),
        form("cvttsd2si rax,xmm1", &[0xf2, 0x48, 0x0f, 0x2c, 0xc1], floats),
        form("cvttsd2si eax,xmm1", &[0xf2, 0x0f, 0x2c, 0xc1], floats),
        form("cvtsd2si rax,xmm1", &[0xf2, 0x48, 0x0f, 0x2d, 0xc1], floats),
        form("cvtsd2si eax,xmm1", &[0xf2, 0x0f, 0x2d, 0xc1], floats),
        form("cvttss2si rax,xmm1", &[0xf3, 0x48, 0x0f, 0x2c, 0xc1], floats),
        form("cvttss2si eax,xmm1", &[0xf3, 0x0f, 0x2c, 0xc1], floats),
        form("cvtss2si rax,xmm1", &[0xf3, 0x48, 0x0f, 0x2d, 0xc1], floats),
        form("cvtss2si eax,xmm1", &[0xf3, 0x0f, 0x2d, 0xc1], floats),
        form("cvttsd2si rax,[rsi]", &[0xf2, 0x48, 0x0f, 0x2c, 0x06], floats),
        form("cvtsd2ss", &[0xf2, 0x0f, 0x5a, 0xc1], floats),
        form("cvtss2sd", &[0xf3, 0x0f, 0x5a, 0xc1], floats),
        form("cvtps2pd", &[0x0f, 0x5a, 0xc1], floats),
        form("cvtpd2ps", &[0x66, 0x0f, 0x5a, 0xc1], floats),
        form("cvtdq2ps", &[0x0f, 0x5b, 0xc1], floats),
        form("cvtps2dq", &[0x66, 0x0f, 0x5b, 0xc1], floats),
        form("cvttps2dq", &[0xf3, 0x0f, 0x5b, 0xc1], floats),
        form("cvtdq2pd", &[0xf3, 0x0f, 0xe6, 0xc1], floats),
        form("cvtpd2dq", &[0xf2, 0x0f, 0xe6, 0xc1], floats),
        form("cvttpd2dq", &[0x66, 0x0f, 0xe6, 0xc1], floats),
    ];
    eprintln!("conversions: {} inputs", run(&list));
}

#[test]
fn moves_and_shuffles() {
    let list = vec![
        form("movaps", &[0x0f, 0x28, 0xc1], floats),
        form("movups [rsi]", &[0x0f, 0x10, 0x06], floats),
        form("movups store", &[0x0f, 0x11, 0x06], floats),
        form("movaps [rsi]", &[0x0f, 0x28, 0x06], floats),
        form("movss reg", &[0xf3, 0x0f, 0x10, 0xc1], floats),
        form("movss load", &[0xf3, 0x0f, 0x10, 0x06], floats),
        form("movss store", &[0xf3, 0x0f, 0x11, 0x06], floats),
        form("movsd reg", &[0xf2, 0x0f, 0x10, 0xc1], floats),
        form("movsd load", &[0xf2, 0x0f, 0x10, 0x06], floats),
        form("movsd store", &[0xf2, 0x0f, 0x11, 0x06], floats),
        form("movd xmm0,eax", &[0x66, 0x0f, 0x6e, 0xc0], floats),
        form("movq xmm0,rax", &[0x66, 0x48, 0x0f, 0x6e, 0xc0], floats),
        form("movd eax,xmm1", &[0x66, 0x0f, 0x7e, 0xc8], floats),
        form("movq rax,xmm1", &[0x66, 0x48, 0x0f, 0x7e, 0xc8], floats),
        form("movq xmm0,xmm1", &[0xf3, 0x0f, 0x7e, 0xc1], floats),
        form("movq xmm0,[rsi]", &[0xf3, 0x0f, 0x7e, 0x06], floats),
        form("movq [rsi],xmm0", &[0x66, 0x0f, 0xd6, 0x06], floats),
        form("movdqa", &[0x66, 0x0f, 0x6f, 0xc1], floats),
        form("movdqu load", &[0xf3, 0x0f, 0x6f, 0x06], floats),
        form("movdqu store", &[0xf3, 0x0f, 0x7f, 0x06], floats),
        form("movdqa store", &[0x66, 0x0f, 0x7f, 0x06], floats),
        form("movhlps", &[0x0f, 0x12, 0xc1], floats),
        form("movlhps", &[0x0f, 0x16, 0xc1], floats),
        form("movhps load", &[0x0f, 0x16, 0x06], floats),
        form("movlps load", &[0x0f, 0x12, 0x06], floats),
        form("movhps store", &[0x0f, 0x17, 0x06], floats),
        form("movlps store", &[0x0f, 0x13, 0x06], floats),
        form("movhpd load", &[0x66, 0x0f, 0x16, 0x06], floats),
        form("movlpd load", &[0x66, 0x0f, 0x12, 0x06], floats),
        form("movmskps", &[0x0f, 0x50, 0xc1], floats),
        form("movmskpd", &[0x66, 0x0f, 0x50, 0xc1], floats),
        form("pmovmskb", &[0x66, 0x0f, 0xd7, 0xc1], floats),
        form("unpcklps", &[0x0f, 0x14, 0xc1], floats),
        form("unpckhps", &[0x0f, 0x15, 0xc1], floats),
        form("unpcklpd", &[0x66, 0x0f, 0x14, 0xc1], floats),
        form("unpckhpd", &[0x66, 0x0f, 0x15, 0xc1], floats),
        form("shufps 0x1b", &[0x0f, 0xc6, 0xc1, 0x1b], floats),
        form("shufps 0xe4", &[0x0f, 0xc6, 0xc1, 0xe4], floats),
        form("shufpd 1", &[0x66, 0x0f, 0xc6, 0xc1, 0x01], floats),
        form("shufpd 2", &[0x66, 0x0f, 0xc6, 0xc1, 0x02], floats),
        form("pshufd 0x1b", &[0x66, 0x0f, 0x70, 0xc1, 0x1b], floats),
        form("pshuflw 0x4e", &[0xf2, 0x0f, 0x70, 0xc1, 0x4e], floats),
        form("pshufhw 0xb1", &[0xf3, 0x0f, 0x70, 0xc1, 0xb1], floats),
        form("pextrw 5", &[0x66, 0x0f, 0xc5, 0xc1, 0x05], floats),
        form("pinsrw 3", &[0x66, 0x0f, 0xc4, 0xc0, 0x03], floats),
        form("stmxcsr", &[0x0f, 0xae, 0x1e], floats),
    ];
    eprintln!("moves and shuffles: {} inputs", run(&list));
}

#[test]
fn packed_integer() {
    let ops: [(&str, u8); 47] = [
        ("paddb", 0xfc),
        ("paddw", 0xfd),
        ("paddd", 0xfe),
        ("paddq", 0xd4),
        ("psubb", 0xf8),
        ("psubw", 0xf9),
        ("psubd", 0xfa),
        ("psubq", 0xfb),
        ("paddsb", 0xec),
        ("paddsw", 0xed),
        ("paddusb", 0xdc),
        ("paddusw", 0xdd),
        ("psubsb", 0xe8),
        ("psubsw", 0xe9),
        ("psubusb", 0xd8),
        ("psubusw", 0xd9),
        ("pcmpeqb", 0x74),
        ("pcmpeqw", 0x75),
        ("pcmpeqd", 0x76),
        ("pcmpgtb", 0x64),
        ("pcmpgtw", 0x65),
        ("pcmpgtd", 0x66),
        ("pminub", 0xda),
        ("pmaxub", 0xde),
        ("pminsw", 0xea),
        ("pmaxsw", 0xee),
        ("pavgb", 0xe0),
        ("pavgw", 0xe3),
        ("pmullw", 0xd5),
        ("pmulhw", 0xe5),
        ("pmulhuw", 0xe4),
        ("pmuludq", 0xf4),
        ("pmaddwd", 0xf5),
        ("psadbw", 0xf6),
        ("pand", 0xdb),
        ("pandn", 0xdf),
        ("por", 0xeb),
        ("pxor", 0xef),
        ("punpcklbw", 0x60),
        ("punpcklwd", 0x61),
        ("punpckldq", 0x62),
        ("punpcklqdq", 0x6c),
        ("punpckhbw", 0x68),
        ("punpckhwd", 0x69),
        ("punpckhdq", 0x6a),
        ("punpckhqdq", 0x6d),
        ("packsswb", 0x63),
    ];
    let mut list = Vec::new();
    for (name, op) in ops {
        list.push(form(name, &[0x66, 0x0f, op, 0xc1], floats));
    }
    for (name, op) in ops {
        list.push(form(&format!("{name} (boundary lanes)"), &[0x66, 0x0f, op, 0xc1], boundaries));
    }
    list.push(form("packssdw (boundary lanes)", &[0x66, 0x0f, 0x6b, 0xc1], boundaries));
    list.push(form("packuswb (boundary lanes)", &[0x66, 0x0f, 0x67, 0xc1], boundaries));
    list.push(form("pcmpeqb [rsi]", &[0x66, 0x0f, 0x74, 0x06], floats));
    list.push(form("packssdw", &[0x66, 0x0f, 0x6b, 0xc1], floats));
    list.push(form("packuswb", &[0x66, 0x0f, 0x67, 0xc1], floats));
    for (name, op) in [("psllw", 0xf1u8), ("pslld", 0xf2), ("psllq", 0xf3), ("psrlw", 0xd1), ("psrld", 0xd2), ("psrlq", 0xd3), ("psraw", 0xe1), ("psrad", 0xe2)] {
        list.push(form(name, &[0x66, 0x0f, op, 0xc1], shift_count));
    }
    for (name, op, n) in [
        ("psrlw imm", 0x71u8, 2u8),
        ("psraw imm", 0x71, 4),
        ("psllw imm", 0x71, 6),
        ("psrld imm", 0x72, 2),
        ("psrad imm", 0x72, 4),
        ("pslld imm", 0x72, 6),
        ("psrlq imm", 0x73, 2),
        ("psrldq imm", 0x73, 3),
        ("psllq imm", 0x73, 6),
        ("pslldq imm", 0x73, 7),
    ] {
        for imm in [0u8, 1, 7, 15, 16, 31, 33, 63, 64, 200] {
            list.push(form(name, &[0x66, 0x0f, op, 0xc0 | (n << 3), imm], floats));
        }
    }
    eprintln!("packed integer: {} inputs", run(&list));
}

/// Chains of packed and scalar operations in one block: values passed between instructions
/// inside the block (halves, low lanes, register values) and a helper call in the middle,
/// whose result later instructions must read.
#[test]
fn sequences() {
    #[rustfmt::skip]
    let chain: &[u8] = &[
        0x66, 0x0f, 0x6f, 0xc8, // movdqa xmm1, xmm0
        0x66, 0x0f, 0x72, 0xd1, 0x07, // psrld xmm1, 7
        0x66, 0x0f, 0x72, 0xf0, 0x19, // pslld xmm0, 25
        0x66, 0x0f, 0xeb, 0xc1, // por xmm0, xmm1
        0x66, 0x0f, 0xfe, 0xc2, // paddd xmm0, xmm2
        0x66, 0x0f, 0x70, 0xd8, 0x1b, // pshufd xmm3, xmm0, 0x1b
        0x66, 0x0f, 0x60, 0xda, // punpcklbw xmm3, xmm2
        0xf2, 0x0f, 0x58, 0xd9, // addsd xmm3, xmm1
        0xf2, 0x0f, 0x59, 0xda, // mulsd xmm3, xmm2
        0x66, 0x48, 0x0f, 0x7e, 0xd8, // movq rax, xmm3
        0x66, 0x0f, 0xd7, 0xc8, // pmovmskb ecx, xmm0
        0xf2, 0x0f, 0x10, 0x26, // movsd xmm4, [rsi]
        0xf2, 0x0f, 0x59, 0xe4, // mulsd xmm4, xmm4
        0xf2, 0x0f, 0x58, 0xe3, // addsd xmm4, xmm3
        0x66, 0x0f, 0x14, 0xe4, // unpcklpd xmm4, xmm4
        0x66, 0x0f, 0x5c, 0xe0, // subpd xmm4, xmm0
        0x66, 0x0f, 0x67, 0xe3, // packuswb xmm4, xmm3
        0x66, 0x0f, 0xda, 0x26, // pminub xmm4, [rsi]
        0x66, 0x0f, 0x2e, 0xe1, // ucomisd xmm4, xmm1
    ];
    #[rustfmt::skip]
    let helper_between: &[u8] = &[
        0x66, 0x0f, 0x6f, 0xc2, // movdqa xmm0, xmm2
        0x66, 0x0f, 0xfe, 0xc1, // paddd xmm0, xmm1
        0x66, 0x0f, 0xdc, 0xc1, // paddusb xmm0, xmm1 (out of line)
        0x66, 0x0f, 0xfe, 0xc0, // paddd xmm0, xmm0
        0x66, 0x48, 0x0f, 0x7e, 0xc2, // movq rdx, xmm0
        0x66, 0x0f, 0xc5, 0xc0, 0x06, // pextrw eax, xmm0, 6
    ];
    let list = vec![
        form("chain", chain, floats),
        form("chain (boundary lanes)", chain, boundaries),
        form("helper between", helper_between, floats),
        form("helper between (boundary lanes)", helper_between, boundaries),
    ];
    eprintln!("sequences: {} inputs", run(&list));
}
