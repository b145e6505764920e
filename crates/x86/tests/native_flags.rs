//! The lazy-flags encoding (`hcontainer_abi::flags::materialize`) against the flags real
//! hardware computes, for every `CcOp` kind and operand width, independent of the lifter.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod native;

use hcontainer_abi::flags::{bits, materialize, CcOp};
use native::{layout, random_machine, run_native, Rng};

const N: usize = 3000;

fn mask(w: u32) -> u64 {
    if w == 64 {
        u64::MAX
    } else {
        (1 << w) - 1
    }
}

fn sext(v: u64, w: u32) -> i64 {
    ((v << (64 - w)) as i64) >> (64 - w)
}

/// Encoding of `op rax, rbx` style instructions for width `w`: (prefix, opcode+1 for w>8).
fn sized(w: u32, op8: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = match w {
        16 => vec![0x66],
        64 => vec![0x48],
        _ => vec![],
    };
    v.push(if w == 8 { op8 } else { op8 + 1 });
    v.extend_from_slice(rest);
    v
}

#[test]
fn every_cc_op_and_width_matches_hardware() {
    let lay = layout();
    let mut rng = Rng::new(4242);
    let mut checked = 0;
    for op in CcOp::ALL {
        for w in [8u32, 16, 32, 64] {
            let m = mask(w);
            // (instruction, needs count in cl)
            let insn: Vec<u8> = match op {
                CcOp::Eflags => vec![0x9e], // sahf: flags from ah, materialized directly
                CcOp::Add => sized(w, 0x00, &[0xd8]),
                CcOp::Adc => sized(w, 0x10, &[0xd8]),
                CcOp::Sub => sized(w, 0x28, &[0xd8]),
                CcOp::Sbb => sized(w, 0x18, &[0xd8]),
                CcOp::Logic => sized(w, 0x20, &[0xd8]),
                CcOp::Inc => sized(w, 0xfe, &[0xc0]),
                CcOp::Dec => sized(w, 0xfe, &[0xc8]),
                CcOp::Shl => sized(w, 0xd2, &[0xe0]),
                CcOp::Shr => sized(w, 0xd2, &[0xe8]),
                CcOp::Sar => sized(w, 0xd2, &[0xf8]),
                CcOp::Mul => sized(w, 0xf6, &[0xeb]), // imul rbx (one operand)
            };
            let mut done = 0;
            while done < N {
                let mut inp = random_machine(&mut rng, lay);
                if rng.below(3) == 0 {
                    inp.gpr[1] = rng.below(70);
                }
                let (a, b) = (inp.gpr[0] & m, inp.gpr[3] & m);
                let cin = inp.rflags & 1;
                let cmask = if w == 64 { 63 } else { 31 };
                let count = inp.gpr[1] & cmask;
                if matches!(op, CcOp::Shl | CcOp::Shr | CcOp::Sar) && (count == 0 || count >= u64::from(w)) {
                    continue; // count 0 leaves flags alone; counts >= width are not this record
                }
                let out = run_native(&insn, &inp);
                let (dst, s1, s2, undef) = match op {
                    CcOp::Eflags => {
                        let ah = (inp.gpr[0] >> 8) & 0xd5;
                        (ah, 0, 0, bits::OF)
                    }
                    CcOp::Add => (a.wrapping_add(b) & m, a, b, 0),
                    CcOp::Adc => (a.wrapping_add(b).wrapping_add(cin) & m, a, b, 0),
                    CcOp::Sub => (a.wrapping_sub(b) & m, a, b, 0),
                    CcOp::Sbb => (a.wrapping_sub(b).wrapping_sub(cin) & m, a, b, 0),
                    CcOp::Logic => (a & b, 0, 0, bits::AF),
                    CcOp::Inc => (a.wrapping_add(1) & m, a, cin, 0),
                    CcOp::Dec => (a.wrapping_sub(1) & m, a, cin, 0),
                    CcOp::Shl => ((a << count) & m, (a << (count - 1)) & m, 0, bits::AF | if count == 1 { 0 } else { bits::OF }),
                    CcOp::Shr => (a >> count, a >> (count - 1), a, bits::AF | if count == 1 { 0 } else { bits::OF }),
                    CcOp::Sar => {
                        let s = sext(a, w);
                        ((s >> count) as u64 & m, (s >> (count - 1)) as u64 & m, 0, bits::AF | if count == 1 { 0 } else { bits::OF })
                    }
                    CcOp::Mul => {
                        let p = i128::from(sext(a, w)) * i128::from(sext(b, w));
                        let lo = (p as u64) & m;
                        let over = i128::from(sext(lo, w)) != p;
                        (lo, u64::from(over), 0, bits::SF | bits::ZF | bits::PF | bits::AF)
                    }
                };
                let want = out.rflags & bits::ARITH & !undef;
                let got = materialize(op.with_size(w / 8), dst, s1, s2) & !undef;
                assert_eq!(
                    got, want,
                    "{op:?}/{w}: a {a:#x} b {b:#x} cin {cin} count {count}: materialized {got:#x}, hardware {want:#x}"
                );
                done += 1;
            }
            checked += done;
        }
    }
    eprintln!("lazy flags: {checked} records checked");
}
