//! Integer instructions, lifted and interpreted, against native execution on random inputs.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod native;

use hcontainer_abi::flags::bits;
use native::{check, check_branch, layout, random_machine, Compare, Layout, Machine, Rng};

/// Inputs per instruction form.
const N: usize = 2000;

type Setup = fn(&mut Machine, &mut Rng, Layout);

fn none(_: &mut Machine, _: &mut Rng, _: Layout) {}

/// rsi points into the data page (memory operands are `[rsi]`).
fn mem(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    m.gpr[6] = lay.data + 0x800 + rng.below(64);
}

/// Counts in cl are usually small (0..=70) so every count class is covered.
fn small_cl(m: &mut Machine, rng: &mut Rng, _: Layout) {
    if rng.below(4) != 0 {
        m.gpr[1] = (m.gpr[1] & !0xff) | rng.below(71);
    }
}

/// Run `N` random inputs of `bytes`; `extra_undef` gives input-dependent undefined flags;
/// `skip` rejects inputs (e.g. faulting divisions).
fn run_form(name: &str, bytes: &[u8], setup: Setup, skip: fn(&Machine) -> bool, extra_undef: fn(&Machine) -> u64) -> usize {
    match try_form(name, bytes, setup, skip, extra_undef) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    }
}

fn try_form(
    name: &str,
    bytes: &[u8],
    setup: Setup,
    skip: fn(&Machine) -> bool,
    extra_undef: fn(&Machine) -> u64,
) -> Result<usize, String> {
    let lay = layout();
    let mut rng = Rng::new(bytes.iter().fold(0x1234_5678u64, |h, b| h.rotate_left(7) ^ u64::from(*b)));
    let mut done = 0;
    let mut tries = 0;
    while done < N && tries < N * 20 {
        tries += 1;
        let mut m = random_machine(&mut rng, lay);
        setup(&mut m, &mut rng, lay);
        if skip(&m) {
            continue;
        }
        if let Err(e) = check(bytes, &m, Compare::default(), extra_undef(&m)) {
            return Err(format!("{name} ({bytes:02x?}) differs from native:\n{e}"));
        }
        done += 1;
    }
    assert!(done >= N / 2, "{name}: only {done} usable inputs");
    Ok(done)
}

fn never(_: &Machine) -> bool {
    false
}
fn no_extra(_: &Machine) -> u64 {
    0
}

/// Run every form; fail at the end with the first difference of each failing form.
fn forms(list: &[(&str, Vec<u8>, Setup)]) -> usize {
    let mut total = 0;
    let mut errors = Vec::new();
    for (name, bytes, setup) in list {
        match try_form(name, bytes, *setup, never, no_extra) {
            Ok(n) => total += n,
            Err(e) => errors.push(e),
        }
    }
    assert!(errors.is_empty(), "{} forms differ:\n{}", errors.len(), errors.join("\n\n"));
    total
}

/// `op r/m, reg` and `op reg, r/m` in all widths, immediate forms, a memory form and the
/// high-byte registers.
fn alu_forms(base: u8, n: u8) -> Vec<(&'static str, Vec<u8>, Setup)> {
    vec![
        ("r8,r8", vec![base, 0xd8], none as Setup),
        ("ah,bh", vec![base, 0xfc], none),
        ("r16,r16", vec![0x66, base + 1, 0xd8], none),
        ("r32,r32", vec![base + 1, 0xd8], none),
        ("r64,r64", vec![0x48, base + 1, 0xd8], none),
        ("r64,r/m64", vec![0x48, base + 3, 0xd8], none),
        ("r8,imm8", vec![0x80, 0xc0 | (n << 3), 0x85], none),
        ("r16,imm16", vec![0x66, 0x81, 0xc0 | (n << 3), 0x34, 0x92], none),
        ("r32,imm8", vec![0x83, 0xc0 | (n << 3), 0xff], none),
        ("r64,imm32", vec![0x48, 0x81, 0xc0 | (n << 3), 0x00, 0x00, 0x00, 0x80], none),
        ("al,imm8", vec![base + 4, 0x7f], none),
        ("rax,imm32", vec![0x48, base + 5, 0x01, 0x00, 0x00, 0x00], none),
        ("m32,r32", vec![base + 1, 0x1e], mem),
        ("r64,m64", vec![0x48, base + 3, 0x1e], mem),
        ("m8,imm8", vec![0x80, 0x06 | (n << 3), 0x01], mem),
    ]
}

#[test]
fn alu_add_or_adc_sbb_and_sub_xor_cmp() {
    let mut total = 0;
    for (n, name) in ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"].iter().enumerate() {
        for (w, bytes, setup) in alu_forms((n as u8) << 3, n as u8) {
            total += run_form(&format!("{name} {w}"), &bytes, setup, never, no_extra);
        }
    }
    eprintln!("alu: {total} inputs");
}

#[test]
fn unary_neg_not_inc_dec_test() {
    let mut list: Vec<(&str, Vec<u8>, Setup)> = Vec::new();
    for (name, n8, n) in [("not", 0xf6u8, 2u8), ("neg", 0xf6, 3)] {
        let _ = name;
        list.push(("r8", vec![n8, 0xc3 | (n << 3)], none));
        list.push(("r16", vec![0x66, n8 + 1, 0xc3 | (n << 3)], none));
        list.push(("r32", vec![n8 + 1, 0xc3 | (n << 3)], none));
        list.push(("r64", vec![0x48, n8 + 1, 0xc3 | (n << 3)], none));
        list.push(("m64", vec![0x48, n8 + 1, 0x06 | (n << 3)], mem));
    }
    for n in [0u8, 1] {
        // inc/dec
        list.push(("incdec r8", vec![0xfe, 0xc3 | (n << 3)], none));
        list.push(("incdec r16", vec![0x66, 0xff, 0xc3 | (n << 3)], none));
        list.push(("incdec r32", vec![0xff, 0xc3 | (n << 3)], none));
        list.push(("incdec r64", vec![0x48, 0xff, 0xc3 | (n << 3)], none));
        list.push(("incdec m16", vec![0x66, 0xff, 0x06 | (n << 3)], mem));
    }
    // test
    list.push(("test r8", vec![0x84, 0xd8], none));
    list.push(("test r16", vec![0x66, 0x85, 0xd8], none));
    list.push(("test r32", vec![0x85, 0xd8], none));
    list.push(("test r64", vec![0x48, 0x85, 0xd8], none));
    list.push(("test al,imm", vec![0xa8, 0x81], none));
    list.push(("test r64,imm", vec![0x48, 0xf7, 0xc3, 0x00, 0xff, 0x00, 0x80], none));
    eprintln!("unary: {} inputs", forms(&list));
}

fn shift_undef(m: &Machine, width: u32, count: u64) -> u64 {
    let _ = m;
    let mask = if width == 64 { 63 } else { 31 };
    let c = count & mask;
    // OF is defined only for 1-bit shifts; AF is always undefined when count != 0.
    if c == 1 {
        0
    } else {
        bits::OF
    }
}

#[test]
fn shifts_and_rotates() {
    let mut total = 0;
    // rcl/rcr may lift to an explicit unsupported-instruction trap; all else must match.
    let mut unsupported: Vec<String> = Vec::new();
    for (name, n) in [("rol", 0u8), ("ror", 1), ("rcl", 2), ("rcr", 3), ("shl", 4), ("shr", 5), ("sar", 7)] {
        let forms: [(&str, Vec<u8>, u32); 12] = [
            ("r8,cl", vec![0xd2, 0xc0 | (n << 3)], 8),
            ("r16,cl", vec![0x66, 0xd3, 0xc0 | (n << 3)], 16),
            ("r32,cl", vec![0xd3, 0xc0 | (n << 3)], 32),
            ("r64,cl", vec![0x48, 0xd3, 0xc0 | (n << 3)], 64),
            ("r8,1", vec![0xd0, 0xc0 | (n << 3)], 8),
            ("r32,1", vec![0xd1, 0xc0 | (n << 3)], 32),
            ("r64,1", vec![0x48, 0xd1, 0xc0 | (n << 3)], 64),
            ("r8,imm", vec![0xc0, 0xc0 | (n << 3), 0x05], 8),
            ("r16,imm", vec![0x66, 0xc1, 0xc0 | (n << 3), 0x11], 16),
            ("r32,imm0", vec![0xc1, 0xc0 | (n << 3), 0x00], 32),
            ("r64,imm", vec![0x48, 0xc1, 0xc0 | (n << 3), 0x3f], 64),
            ("m64,cl", vec![0x48, 0xd3, 0x06 | (n << 3)], 64),
        ];
        for (w, bytes, width) in forms {
            let name = format!("{name} {w}");
            let imm = if w.contains("imm") { bytes.last().map(|b| u64::from(*b)) } else { None };
            // By the form's name, not its bytes: rcl's ModRM byte is 0xd0, the by-one opcode.
            let by_one = w.ends_with(",1");
            let setup: Setup = if w.ends_with("m64,cl") {
                |m, r, l| {
                    mem(m, r, l);
                    small_cl(m, r, l);
                }
            } else {
                small_cl
            };
            let lay = layout();
            let mut rng = Rng::new(u64::from(n) * 1000 + u64::from(width) + bytes.len() as u64);
            for _ in 0..N {
                let mut m = random_machine(&mut rng, lay);
                setup(&mut m, &mut rng, lay);
                let count = if by_one { 1 } else { imm.unwrap_or(m.gpr[1] & 0xff) };
                let undef = shift_undef(&m, width, count);
                let cmp = Compare { allow_unsupported: n == 2 || n == 3, ..Compare::default() };
                match check(&bytes, &m, cmp, undef) {
                    Ok(()) => total += 1,
                    Err(e) if e.starts_with(native::UNSUPPORTED) => {
                        eprintln!("{e}");
                        unsupported.push(name.clone());
                        break;
                    }
                    Err(e) => panic!("{name} ({bytes:02x?}) differs from native:\n{e}"),
                }
            }
        }
    }
    eprintln!("shifts: {total} inputs; unsupported: {unsupported:?}");
    assert!(unsupported.iter().all(|n| n.starts_with("rc")), "{unsupported:?}");
}

#[test]
fn double_shifts() {
    let mut total = 0;
    // shld/shrd r/m, reg, imm8 / cl
    for (name, op) in [("shld", 0xa4u8), ("shrd", 0xac)] {
        for (w, prefix, width) in [("16", vec![0x66u8], 16u32), ("32", vec![], 32), ("64", vec![0x48], 64)] {
            for by_cl in [false, true] {
                let mut bytes = prefix.clone();
                bytes.extend_from_slice(&[0x0f, op + u8::from(by_cl), 0xd8]);
                let imm = if by_cl { None } else { Some(if width == 16 { 7u64 } else { 13 }) };
                if let Some(i) = imm {
                    bytes.push(i as u8);
                }
                let lay = layout();
                let mut rng = Rng::new(u64::from(op) * 7 + u64::from(width) + u64::from(by_cl));
                let mut done = 0;
                while done < N {
                    let mut m = random_machine(&mut rng, lay);
                    small_cl(&mut m, &mut rng, lay);
                    let count = imm.unwrap_or(m.gpr[1] & 0xff) & if width == 64 { 63 } else { 31 };
                    if width == 16 && count > 16 {
                        continue; // result undefined
                    }
                    let undef = if count == 1 { 0 } else { bits::OF };
                    if let Err(e) = check(&bytes, &m, Compare::default(), undef) {
                        panic!("{name} r{w} ({bytes:02x?}) differs from native:\n{e}");
                    }
                    done += 1;
                }
                total += done;
            }
        }
    }
    eprintln!("double shifts: {total} inputs");
}

#[test]
fn multiply() {
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![
        ("mul r8", vec![0xf6, 0xe3], none),
        ("mul r16", vec![0x66, 0xf7, 0xe3], none),
        ("mul r32", vec![0xf7, 0xe3], none),
        ("mul r64", vec![0x48, 0xf7, 0xe3], none),
        ("imul r8", vec![0xf6, 0xeb], none),
        ("imul r16", vec![0x66, 0xf7, 0xeb], none),
        ("imul r32", vec![0xf7, 0xeb], none),
        ("imul r64", vec![0x48, 0xf7, 0xeb], none),
        ("imul r16,r16", vec![0x66, 0x0f, 0xaf, 0xc3], none),
        ("imul r32,r32", vec![0x0f, 0xaf, 0xc3], none),
        ("imul r64,r64", vec![0x48, 0x0f, 0xaf, 0xc3], none),
        ("imul r64,m64", vec![0x48, 0x0f, 0xaf, 0x06], mem),
        ("imul r16,r16,imm8", vec![0x66, 0x6b, 0xc3, 0x85], none),
        ("imul r32,r32,imm32", vec![0x69, 0xc3, 0x78, 0x56, 0x34, 0x12], none),
        ("imul r64,r64,imm8", vec![0x48, 0x6b, 0xc3, 0x7f], none),
        ("imul r64,r64,imm32", vec![0x48, 0x69, 0xc3, 0x01, 0x00, 0x00, 0x80], none),
    ];
    eprintln!("multiply: {} inputs", forms(&list));
}

fn div_faults(m: &Machine, width: u32, signed: bool) -> bool {
    let (a, d, b) = (m.gpr[0], m.gpr[2], m.gpr[3]);
    match (width, signed) {
        (8, false) => {
            let (n, dv) = (a & 0xffff, b & 0xff);
            dv == 0 || n / dv > 0xff
        }
        (8, true) => {
            let (n, dv) = (i64::from(a as u16 as i16), i64::from(b as u8 as i8));
            dv == 0 || !(-128..=127).contains(&(n / dv))
        }
        (16, false) => {
            let (n, dv) = (((d & 0xffff) << 16) | (a & 0xffff), b & 0xffff);
            dv == 0 || n / dv > 0xffff
        }
        (16, true) => {
            let n = i64::from((((d & 0xffff) << 16) | (a & 0xffff)) as u32 as i32);
            let dv = i64::from(b as u16 as i16);
            dv == 0 || !(-32768..=32767).contains(&(n / dv))
        }
        (32, false) => {
            let (n, dv) = (((d & 0xffff_ffff) << 32) | (a & 0xffff_ffff), b & 0xffff_ffff);
            dv == 0 || n / dv > 0xffff_ffff
        }
        (32, true) => {
            let n = i128::from((((d & 0xffff_ffff) << 32) | (a & 0xffff_ffff)) as i64);
            let dv = i128::from(b as u32 as i32);
            dv == 0 || !(i128::from(i32::MIN)..=i128::from(i32::MAX)).contains(&(n / dv))
        }
        (_, false) => {
            let n = (u128::from(d) << 64) | u128::from(a);
            b == 0 || n / u128::from(b) > u128::from(u64::MAX)
        }
        (_, true) => {
            let n = ((u128::from(d) << 64) | u128::from(a)) as i128;
            let dv = i128::from(b as i64);
            dv == 0 || n.checked_div(dv).is_none_or(|q| q < i128::from(i64::MIN) || q > i128::from(i64::MAX))
        }
    }
}

/// Make most divisions not fault: a small high half of the dividend.
fn div_setup(m: &mut Machine, rng: &mut Rng, _: Layout) {
    if rng.below(2) == 0 {
        m.gpr[2] = if rng.below(2) == 0 { 0 } else { u64::MAX };
    }
    if rng.below(4) == 0 {
        m.gpr[3] = m.gpr[3].rotate_left(32);
    }
}

#[test]
fn divide() {
    let mut total = 0;
    macro_rules! f {
        ($w:expr, $s:expr) => {
            |m: &Machine| div_faults(m, $w, $s)
        };
    }
    let list: [(&str, Vec<u8>, fn(&Machine) -> bool); 8] = [
        ("div r8", vec![0xf6, 0xf3], f!(8, false)),
        ("div r16", vec![0x66, 0xf7, 0xf3], f!(16, false)),
        ("div r32", vec![0xf7, 0xf3], f!(32, false)),
        ("div r64", vec![0x48, 0xf7, 0xf3], f!(64, false)),
        ("idiv r8", vec![0xf6, 0xfb], f!(8, true)),
        ("idiv r16", vec![0x66, 0xf7, 0xfb], f!(16, true)),
        ("idiv r32", vec![0xf7, 0xfb], f!(32, true)),
        ("idiv r64", vec![0x48, 0xf7, 0xfb], f!(64, true)),
    ];
    for (name, bytes, skip) in list {
        total += run_form(name, &bytes, div_setup, skip, no_extra);
    }
    eprintln!("divide: {total} inputs");
}

fn src_zero(m: &Machine) -> bool {
    m.gpr[3] == 0
}

#[test]
fn bit_scan_and_count() {
    let mut total = 0;
    for (name, bytes) in [
        ("bsf r16", vec![0x66, 0x0f, 0xbc, 0xc3]),
        ("bsf r32", vec![0x0f, 0xbc, 0xc3]),
        ("bsf r64", vec![0x48, 0x0f, 0xbc, 0xc3]),
        ("bsr r16", vec![0x66, 0x0f, 0xbd, 0xc3]),
        ("bsr r32", vec![0x0f, 0xbd, 0xc3]),
        ("bsr r64", vec![0x48, 0x0f, 0xbd, 0xc3]),
    ] {
        // With a zero source the destination is undefined.
        total += run_form(name, &bytes, none, src_zero, no_extra);
    }
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![
        ("tzcnt r16", vec![0x66, 0xf3, 0x0f, 0xbc, 0xc3], none),
        ("tzcnt r32", vec![0xf3, 0x0f, 0xbc, 0xc3], none),
        ("tzcnt r64", vec![0xf3, 0x48, 0x0f, 0xbc, 0xc3], none),
        ("lzcnt r16", vec![0x66, 0xf3, 0x0f, 0xbd, 0xc3], none),
        ("lzcnt r32", vec![0xf3, 0x0f, 0xbd, 0xc3], none),
        ("lzcnt r64", vec![0xf3, 0x48, 0x0f, 0xbd, 0xc3], none),
        ("popcnt r16", vec![0x66, 0xf3, 0x0f, 0xb8, 0xc3], none),
        ("popcnt r32", vec![0xf3, 0x0f, 0xb8, 0xc3], none),
        ("popcnt r64", vec![0xf3, 0x48, 0x0f, 0xb8, 0xc3], none),
        ("bswap r32", vec![0x0f, 0xc8], none),
        ("bswap r64", vec![0x48, 0x0f, 0xc8], none),
        ("bswap r11", vec![0x49, 0x0f, 0xcb], none),
    ];
    total += forms(&list);
    eprintln!("bit scan/count: {total} inputs");
}

/// Bit offsets for memory bt* stay within ±64 bytes of rsi.
fn bt_mem(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    mem(m, rng, lay);
    m.gpr[3] = (rng.below(1024) as i64 - 512) as u64;
}

#[test]
fn bit_test() {
    let mut list: Vec<(&str, Vec<u8>, Setup)> = Vec::new();
    for (op, n) in [(0xa3u8, 4u8), (0xab, 5), (0xb3, 6), (0xbb, 7)] {
        list.push(("bt* r16,r16", vec![0x66, 0x0f, op, 0xd8], none));
        list.push(("bt* r32,r32", vec![0x0f, op, 0xd8], none));
        list.push(("bt* r64,r64", vec![0x48, 0x0f, op, 0xd8], none));
        list.push(("bt* r64,imm", vec![0x48, 0x0f, 0xba, 0xc0 | (n << 3), 0x2d], none));
        list.push(("bt* r32,imm", vec![0x0f, 0xba, 0xc0 | (n << 3), 0x45], none));
        list.push(("bt* m32,r32", vec![0x0f, op, 0x1e], bt_mem));
        list.push(("bt* m64,r64", vec![0x48, 0x0f, op, 0x1e], bt_mem));
        list.push(("bt* m16,imm", vec![0x66, 0x0f, 0xba, 0x06 | (n << 3), 0x1d], mem));
    }
    eprintln!("bit test: {} inputs", forms(&list));
}

#[test]
fn conditions_cmov_setcc_jcc() {
    let mut list: Vec<(&str, Vec<u8>, Setup)> = Vec::new();
    for cc in 0..16u8 {
        list.push(("cmov r64", vec![0x48, 0x0f, 0x40 | cc, 0xc3], none));
        list.push(("cmov r32", vec![0x0f, 0x40 | cc, 0xc3], none));
        list.push(("cmov r16", vec![0x66, 0x0f, 0x40 | cc, 0xc3], none));
        list.push(("setcc r8", vec![0x0f, 0x90 | cc, 0xc0], none));
        list.push(("setcc ah", vec![0x0f, 0x90 | cc, 0xc4], none));
    }
    let mut total = forms(&list);
    let lay = layout();
    let mut rng = Rng::new(77);
    for cc in 0..16u8 {
        let (mut taken, mut not) = (0, 0);
        for _ in 0..N {
            let m = random_machine(&mut rng, lay);
            match check_branch(cc, &m) {
                Ok(true) => taken += 1,
                Ok(false) => not += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(taken > 0 && not > 0, "jcc {cc}: both outcomes covered");
        total += N;
    }
    eprintln!("conditions: {total} inputs");
}

#[test]
fn moves_and_extensions() {
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![
        ("movzx r32,r8", vec![0x0f, 0xb6, 0xc3], none),
        ("movzx r32,ah", vec![0x0f, 0xb6, 0xc4], none),
        ("movzx r64,r8", vec![0x48, 0x0f, 0xb6, 0xc3], none),
        ("movzx r16,r8", vec![0x66, 0x0f, 0xb6, 0xc3], none),
        ("movzx r32,r16", vec![0x0f, 0xb7, 0xc3], none),
        ("movzx r64,m16", vec![0x48, 0x0f, 0xb7, 0x06], mem),
        ("movsx r32,r8", vec![0x0f, 0xbe, 0xc3], none),
        ("movsx r64,r8", vec![0x48, 0x0f, 0xbe, 0xc3], none),
        ("movsx r16,r8", vec![0x66, 0x0f, 0xbe, 0xc3], none),
        ("movsx r32,r16", vec![0x0f, 0xbf, 0xc3], none),
        ("movsx r64,r16", vec![0x48, 0x0f, 0xbf, 0xc3], none),
        ("movsxd r64,r32", vec![0x48, 0x63, 0xc3], none),
        ("movsxd r64,m32", vec![0x48, 0x63, 0x06], mem),
        ("cbw", vec![0x66, 0x98], none),
        ("cwde", vec![0x98], none),
        ("cdqe", vec![0x48, 0x98], none),
        ("cwd", vec![0x66, 0x99], none),
        ("cdq", vec![0x99], none),
        ("cqo", vec![0x48, 0x99], none),
        ("mov r8,r8", vec![0x88, 0xd8], none),
        ("mov ah,bl", vec![0x88, 0xdc], none),
        ("mov r16,r16", vec![0x66, 0x89, 0xd8], none),
        ("mov r32,r32", vec![0x89, 0xd8], none),
        ("mov r32,imm", vec![0xb8, 0x78, 0x56, 0x34, 0x92], none),
        ("mov r64,imm64", vec![0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 0x88], none),
        ("mov r64,simm32", vec![0x48, 0xc7, 0xc0, 0x00, 0x00, 0x00, 0x80], none),
        ("mov m64,r64", vec![0x48, 0x89, 0x1e], mem),
        ("mov m8,imm", vec![0xc6, 0x06, 0x5a], mem),
        ("xchg r64,r64", vec![0x48, 0x87, 0xd8], none),
        ("xchg r32,r32", vec![0x87, 0xd8], none),
        ("xchg r8,r8", vec![0x86, 0xd8], none),
        ("xchg eax,ebx", vec![0x93], none),
        ("xchg m64,r64", vec![0x48, 0x87, 0x1e], mem),
        ("xadd r64,r64", vec![0x48, 0x0f, 0xc1, 0xd8], none),
        ("xadd r32,r32", vec![0x0f, 0xc1, 0xd8], none),
        ("xadd r8,r8", vec![0x0f, 0xc0, 0xd8], none),
        ("lock xadd m32,r32", vec![0xf0, 0x0f, 0xc1, 0x1e], mem),
        ("lea r64,[rsi+rbx*2+16]", vec![0x48, 0x8d, 0x44, 0x5e, 0x10], none),
        ("lea r32,[rsi+rbx*2+16]", vec![0x8d, 0x44, 0x5e, 0x10], none),
        ("lea r16,[rsi+rbx*8-1]", vec![0x66, 0x8d, 0x44, 0xde, 0xff], none),
        ("lea r64,[ebx+esi]", vec![0x67, 0x48, 0x8d, 0x04, 0x33], none),
        ("lea r64,[rip+0x100]", vec![0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00], none),
        ("sahf", vec![0x9e], none),
        ("lahf", vec![0x9f], none),
        ("pushfq", vec![0x9c], none),
        ("push r64", vec![0x53], none),
        ("pop r64", vec![0x5b], none),
        ("push imm8", vec![0x6a, 0xf0], none),
    ];
    eprintln!("moves: {} inputs", forms(&list));
}

fn cmpxchg_setup(m: &mut Machine, rng: &mut Rng, lay: Layout) {
    if rng.below(2) == 0 {
        m.gpr[0] = m.gpr[1];
    }
    mem(m, rng, lay);
    if rng.below(2) == 0 {
        let v = m.gpr[0].to_le_bytes();
        let off = (m.gpr[6] - lay.data) as usize;
        m.data[off..off + 8].copy_from_slice(&v);
    }
}

#[test]
fn compare_exchange() {
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![
        ("cmpxchg r64,r64", vec![0x48, 0x0f, 0xb1, 0xd9], cmpxchg_setup),
        ("cmpxchg r32,r32", vec![0x0f, 0xb1, 0xd9], cmpxchg_setup),
        ("cmpxchg r16,r16", vec![0x66, 0x0f, 0xb1, 0xd9], cmpxchg_setup),
        ("cmpxchg r8,r8", vec![0x0f, 0xb0, 0xd9], cmpxchg_setup),
        ("lock cmpxchg m64,r64", vec![0xf0, 0x48, 0x0f, 0xb1, 0x1e], cmpxchg_setup),
        ("lock cmpxchg m32,r32", vec![0xf0, 0x0f, 0xb1, 0x1e], cmpxchg_setup),
    ];
    eprintln!("cmpxchg: {} inputs", forms(&list));
}

/// popf pops a value whose system bits (TF, AC, NT…) stay clear.
fn popf_setup(m: &mut Machine, rng: &mut Rng, _: Layout) {
    let v = 0x202 | (rng.next() & (bits::ARITH | bits::DF));
    let off = native::STACK_OFF as usize;
    m.stack[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn popf() {
    let list: Vec<(&str, Vec<u8>, Setup)> = vec![("popfq", vec![0x9d], popf_setup)];
    eprintln!("popf: {} inputs", forms(&list));
}
