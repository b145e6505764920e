//! Flag liveness across blocks: a `dec` starting a block keeps the carry of the block before
//! it (it leaves CF alone) only when some successor may read that carry. Built at test time
//! from hand-written assembly so the block layout is fixed: in `dec_then_shr` every path
//! after the `dec` block overwrites CF, in `dec_then_adc` the exit reads it with `adc`.

mod discover_util;

use discover_util::*;
use hcontainer_ir::interp::{run_block, Exit, SparseMemory, StepClock};
use hcontainer_ir::{Function, Op};
use hcontainer_x86::{discover, lift_program, GuestBinary};

const SRC: &str = r#"
#include <stdio.h>
#include <stdlib.h>
unsigned dec_then_shr(unsigned n);
unsigned dec_then_adc(unsigned n);
__asm__(
    ".text\n"
    ".globl dec_then_shr\n.type dec_then_shr,@function\n"
    "dec_then_shr:\n mov %edi, %edx\n xor %eax, %eax\n stc\n jmp 2f\n"
    "1: add $3, %eax\n"
    "2: dec %edx\n jg 1b\n"
    " shr $1, %eax\n ret\n"
    ".size dec_then_shr, .-dec_then_shr\n"
    ".globl dec_then_adc\n.type dec_then_adc,@function\n"
    "dec_then_adc:\n mov %edi, %edx\n xor %eax, %eax\n stc\n jmp 2f\n"
    "1: add $0x7fffffff, %eax\n"
    "2: dec %edx\n jg 1b\n"
    " adc $0, %eax\n ret\n"
    ".size dec_then_adc, .-dec_then_adc\n");
int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 5;
    printf("%u %u\n", dec_then_shr(n), dec_then_adc(n));
    return 0;
}
"#;

fn function(funcs: &[Function], entry: u64) -> &Function {
    funcs.iter().find(|f| f.entry == entry).expect("function lifted")
}

/// The block starting with the `dec`: the one whose first instruction is 2 bytes (`dec edx`
/// is `ff ca`) and that branches back.
fn dec_block(f: &Function) -> &hcontainer_ir::Block {
    f.blocks
        .iter()
        .find(|b| b.guest_insts == 2 && b.guest_len == 4 && matches!(b.term, hcontainer_ir::Terminator::Branch { .. }))
        .expect("dec/jg block")
}

/// Whether `b` reads the flags left by the block before it.
fn reads_old_flags(b: &hcontainer_ir::Block) -> bool {
    use hcontainer_abi::offsets as o;
    b.insts.iter().any(|i| match i.op {
        Op::EvalCond(_) | Op::Rflags => true,
        Op::Get(l) => [o::CC_OP, o::CC_DST, o::CC_SRC1, o::CC_SRC2].contains(&l.offset),
        _ => false,
    })
}

/// Run function `f` on the interpreter with edi = `n`; returns eax.
fn run(f: &Function, n: u64) -> u64 {
    let mut st = hcontainer_abi::GuestState::new();
    st.gpr[7] = n;
    st.gpr[4] = 0x7000_0800;
    let mut mem = SparseMemory::new();
    mem.map(0x7000_0000, 0x1000);
    let mut pc = f.entry;
    for _ in 0..10_000 {
        let b = f.blocks.iter().find(|b| b.addr == pc).expect("block of the function");
        match run_block(b, &mut st, &mut mem, &mut StepClock::default()).expect("block runs") {
            Exit::Jump(a) => pc = a,
            Exit::Return(_) => return st.gpr[0] & 0xffff_ffff,
            e => panic!("unexpected exit {e:?}"),
        }
    }
    panic!("no return");
}

#[test]
fn dec_keeps_the_carry_only_when_a_successor_reads_it() {
    let exe = build("gcc", &["-static", "-O2"], SRC, "flag_liveness");
    let bytes = std::fs::read(&exe).expect("read test binary");
    let bin = GuestBinary::parse(&exe.display().to_string(), bytes).expect("parse");
    let map = discover(&bin).expect("discover");
    let (prog, _) = lift_program(&bin, &map).expect("lift");
    let syms = readelf_functions(&exe);
    let addr = |name: &str| syms.iter().find(|s| s.1 == name).map(|s| s.0).expect("symbol");
    let shr = function(&prog.functions, addr("dec_then_shr"));
    let adc = function(&prog.functions, addr("dec_then_adc"));
    assert!(!reads_old_flags(dec_block(shr)), "carry kept although every successor overwrites it");
    assert!(reads_old_flags(dec_block(adc)), "carry dropped although adc reads it");
    // Results as the native semantics give them.
    for n in 0..8u64 {
        let iters = n.saturating_sub(1);
        assert_eq!(run(shr, n), (3 * iters) >> 1, "dec_then_shr({n})");
        let mut eax: u32 = 0;
        let mut cf = true;
        for _ in 0..iters {
            let (v, c) = eax.overflowing_add(0x7fff_ffff);
            eax = v;
            cf = c;
        }
        assert_eq!(run(adc, n), u64::from(eax.wrapping_add(u32::from(cf))), "dec_then_adc({n})");
    }
    // And natively.
    let out = std::process::Command::new(&exe).arg("5").output().expect("run test binary");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{} {}\n", run(shr, 5), run(adc, 5)));
}

/// A shift by `cl` keeps the old flags for a zero count: it reads them only when something
/// reads its own flags before they are overwritten (`test` leaves AF undefined, which counts
/// as overwritten).
#[test]
fn shift_by_cl_reads_old_flags_only_when_its_flags_are_live() {
    let no_leader = |_: u64| false;
    // sar rdx, cl ; test rdx, rdx ; jz +0x10
    let dead = hcontainer_x86::lift_block(&[0x48, 0xd3, 0xfa, 0x48, 0x85, 0xd2, 0x74, 0x10], 0x1000, &no_leader);
    assert!(!reads_old_flags(&dead));
    // sar rdx, cl ; jz +0x10
    let live = hcontainer_x86::lift_block(&[0x48, 0xd3, 0xfa, 0x74, 0x10], 0x1000, &no_leader);
    assert!(reads_old_flags(&live));
    // bts rdx, rsi ; sar rdx, cl ; test rdx, rdx ; jz: bts keeps no older flags either.
    let bts = hcontainer_x86::lift_block(
        &[0x48, 0x0f, 0xab, 0xf2, 0x48, 0xd3, 0xfa, 0x48, 0x85, 0xd2, 0x74, 0x10],
        0x1000,
        &no_leader,
    );
    assert!(!reads_old_flags(&bts));
}
