//! Every guest `syscall` instruction is a migration point: on real static executables built
//! at test time (a corpus program, with glibc and with musl), each `syscall` that discovery
//! reaches starts a lifted block of its own that ends right after it (in
//! `Terminator::Syscall`), and the address after it is a block start too. A thread blocked
//! in a system call resumes at the `syscall` instruction's own address (with rax = orig_rax),
//! which is also where CRIU leaves a native thread interrupted in a restartable call.

mod discover_util;

use std::collections::{BTreeSet, HashMap};

use discover_util::*;
use hcontainer_ir::{Block, Terminator};
use hcontainer_x86::{discover, lift_program, GuestBinary};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic};

fn load(path: &std::path::Path) -> GuestBinary {
    let bytes = std::fs::read(path).expect("read test binary");
    GuestBinary::parse(&path.display().to_string(), bytes).expect("parse test binary")
}

/// File bytes of executable code at `addr` up to the end of its segment's file data.
fn code_at(bin: &GuestBinary, addr: u64) -> &[u8] {
    for s in &bin.segments {
        if !s.exec || addr < s.vaddr {
            continue;
        }
        let off = addr - s.vaddr;
        let flen = (s.file_range.end - s.file_range.start) as u64;
        if off < flen {
            return &bin.bytes[s.file_range.start + off as usize..s.file_range.end];
        }
    }
    &[]
}

/// `syscall` instructions found by decoding straight on from every leader discovery reports
/// (function entries and block leaders) until an instruction that does not fall through.
fn syscalls_from_leaders(bin: &GuestBinary, leaders: &[u64]) -> BTreeSet<u64> {
    let mut found = BTreeSet::new();
    let mut ins = Instruction::default();
    for &a in leaders {
        let code = code_at(bin, a);
        let mut dec = Decoder::with_ip(64, code, a, DecoderOptions::NONE);
        while dec.can_decode() {
            dec.decode_out(&mut ins);
            if ins.is_invalid() {
                break;
            }
            if ins.mnemonic() == Mnemonic::Syscall {
                found.insert(ins.ip());
            }
            if !matches!(ins.flow_control(), FlowControl::Next | FlowControl::ConditionalBranch | FlowControl::Call) {
                break;
            }
        }
    }
    found
}

/// `syscall` instructions inside the bytes a lifted block covers, with their offsets.
fn syscalls_inside(bin: &GuestBinary, b: &Block) -> Vec<(u64, u64)> {
    let code = code_at(bin, b.addr);
    let code = &code[..(b.guest_len as usize).min(code.len())];
    let mut dec = Decoder::with_ip(64, code, b.addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut v = Vec::new();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.mnemonic() == Mnemonic::Syscall {
            v.push((ins.ip(), ins.ip() - b.addr));
        }
    }
    v
}

fn check(cc: &str, label: &str) {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/corpus/fileio.c"))
        .expect("read tests/corpus/fileio.c");
    let exe = build(cc, &["-static", "-O2", "-w"], &src, &format!("syscall-points-{label}"));
    let bin = load(&exe);
    let map = discover(&bin).expect("discover");
    let (prog, _) = lift_program(&bin, &map).expect("lift");
    let blocks: HashMap<u64, &Block> =
        prog.functions.iter().flat_map(|f| f.blocks.iter()).map(|b| (b.addr, b)).collect();

    let syscalls = syscalls_from_leaders(&bin, &map.all_leaders());
    // open, read, write, lseek, stat, rename, unlink, exit_group... each has its own site in
    // libc, and the raw `syscall()` wrapper one more.
    assert!(syscalls.len() >= 10, "{label}: only {} syscall instructions found: {syscalls:x?}", syscalls.len());
    let mut missing = Vec::new();
    for &s in &syscalls {
        match blocks.get(&s) {
            Some(b) => {
                assert_eq!(b.guest_insts, 1, "{label}: block {s:#x} holds more than its syscall");
                assert_eq!(b.term, Terminator::Syscall { next: s + 2 }, "{label}: block {s:#x} does not end in its syscall");
                assert!(blocks.contains_key(&(s + 2)), "{label}: address {:#x} after syscall {s:#x} is no block start", s + 2);
            }
            None => missing.push(format!("{s:#x}")),
        }
    }
    assert!(missing.is_empty(), "{label}: syscall instructions that start no block: {}", missing.join(" "));
    // And no lifted block runs through a syscall that is not its first instruction.
    for b in blocks.values() {
        for (at, off) in syscalls_inside(&bin, b) {
            assert_eq!(off, 0, "{label}: block {:#x} contains syscall {at:#x} past its start", b.addr);
        }
    }
    println!("{label}: {} syscall instructions, each a block start with its successor", syscalls.len());
}

#[test]
fn glibc_syscalls_are_block_starts() {
    check("gcc", "glibc-O2");
}

#[test]
fn musl_syscalls_are_block_starts() {
    check("musl-gcc", "musl-O2");
}
