//! `GuestBinary::parse` on real executables (facts checked against readelf) and on bad
//! input (each gives the right error, none panics).

mod discover_util;

use discover_util::*;
use hcontainer_x86::{discover, GuestBinary, GuestError};

const HELLO_C: &str = r#"
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
"#;

fn parse_file(path: &std::path::Path) -> Result<GuestBinary, GuestError> {
    GuestBinary::parse(&path.display().to_string(), std::fs::read(path).expect("read"))
}

fn check_facts(exe: &std::path::Path, pie: bool) {
    let bin = parse_file(exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let (entry, loads) = readelf_facts(exe);
    assert_eq!(bin.is_pie, pie);
    let bias = if pie { hcontainer_abi::layout::PIE_GUEST_BASE } else { 0 };
    assert_eq!(bin.load_bias, bias);
    assert_eq!(bin.entry, entry + bias, "{}", exe.display());
    let loads: Vec<_> = loads.into_iter().filter(|l| l.2 != 0).collect();
    assert_eq!(bin.segments.len(), loads.len());
    for (s, (vaddr, filesz, memsz, flags)) in bin.segments.iter().zip(&loads) {
        assert_eq!(s.vaddr, vaddr + bias);
        assert_eq!(s.file_range.len() as u64, *filesz);
        assert_eq!(s.memsz, *memsz);
        assert_eq!(s.read, flags.contains('R'));
        assert_eq!(s.write, flags.contains('W'));
        assert_eq!(s.exec, flags.contains('E'));
    }
    // The program headers are readable at phdr_addr and are the file's.
    let bytes = std::fs::read(exe).expect("read");
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().expect("8 bytes")) as usize;
    let n = usize::from(bin.phnum) * usize::from(bin.phent);
    assert_eq!(bin.read(bin.phdr_addr, n), Some(&bytes[phoff..phoff + n]));
    // Entry code is readable; bss is not file-backed.
    assert!(bin.read(bin.entry, 16).is_some());
    assert!(bin.exec_range_of(bin.entry).is_some());
    let bss = bin.segments.iter().find(|s| s.memsz > s.file_range.len() as u64).expect("a bss");
    assert_eq!(bin.read(bss.vaddr + bss.file_range.len() as u64, 1), None);
    assert!(!bin.fdes.is_empty());
    assert!(bin.fdes.windows(2).all(|w| w[0].start <= w[1].start));
    assert!(bin.fdes.iter().all(|f| bin.is_code(f.start)));
    // IRELATIVE resolvers (glibc ifuncs) are code pointers, in PIE and non-PIE alike.
    let relocs = output("readelf", &["-rW", exe.to_str().expect("utf-8")]);
    let mut irel = 0;
    for line in relocs.lines().filter(|l| l.contains("R_X86_64_IRELATIV")) {
        let addend = hex(line.split_whitespace().last().expect("addend"));
        assert!(bin.code_pointers.contains(&(addend + bias)), "IRELATIVE resolver {addend:#x}");
        irel += 1;
    }
    assert!(irel > 0, "{}: glibc static binaries have IRELATIVE relocations", exe.display());
    // sha256 matches sha256sum.
    let sum = output("sha256sum", &[exe.to_str().expect("utf-8")]);
    let hex_sum: String = bin.sha256().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sum.split_whitespace().next(), Some(hex_sum.as_str()));
}

#[test]
fn parse_matches_readelf() {
    let np = build("gcc", &["-static", "-no-pie", "-fno-pie", "-O2"], HELLO_C, "parse-np");
    check_facts(&np, false);
    check_facts(&strip(&np), false);
    let pie = build("gcc", &["-static-pie", "-O2"], HELLO_C, "parse-pie");
    check_facts(&pie, true);
    check_facts(&strip(&pie), true);
    let bin = parse_file(&np).expect("parse");
    assert!(bin.symbols.iter().any(|s| s.2 == "main"));
    assert!(bin.tls.is_some(), "glibc has a TLS segment");
    let stripped = parse_file(&strip(&np)).expect("parse");
    assert!(stripped.symbols.is_empty());
    assert_eq!(stripped.fdes, bin.fdes, "FDEs do not depend on the symbol table");
}

#[test]
fn bad_input_gives_the_right_error() {
    assert!(matches!(GuestBinary::parse("empty", Vec::new()), Err(GuestError::NotElf)));
    assert!(matches!(GuestBinary::parse("text", b"#!/bin/sh\necho hi\n".to_vec()), Err(GuestError::NotElf)));

    let exe = build("gcc", &["-static", "-O0"], HELLO_C, "bad-base");
    let good = std::fs::read(&exe).expect("read");
    let mut magic = good.clone();
    magic[1] = b'F';
    assert!(matches!(GuestBinary::parse("magic", magic), Err(GuestError::NotElf)));

    for cut in [4usize, 20, 63, 64, 100, 500, 5000, good.len() / 2, good.len() - 1] {
        let r = GuestBinary::parse("cut", good[..cut].to_vec());
        assert!(matches!(r, Err(GuestError::Truncated(_))), "cut at {cut}: {r:?}");
    }

    let mut class32 = good.clone();
    class32[4] = 1;
    let r = GuestBinary::parse("class", class32);
    assert!(matches!(&r, Err(GuestError::WrongMachine(m)) if m.contains("32-bit")), "{r:?}");

    if have("aarch64-linux-gnu-gcc") {
        let arm = build("aarch64-linux-gnu-gcc", &["-static", "-O2"], HELLO_C, "bad-arm64");
        let r = parse_file(&arm);
        assert!(matches!(&r, Err(GuestError::WrongMachine(m)) if m == "AArch64"), "{r:?}");
        println!("aarch64: {}", r.err().map(|e| e.to_string()).unwrap_or_default());
    } else {
        panic!("aarch64-linux-gnu-gcc is not installed (Debian package gcc-aarch64-linux-gnu)");
    }
    if have("riscv64-linux-gnu-gcc") {
        let rv = build("riscv64-linux-gnu-gcc", &["-static", "-O2"], HELLO_C, "bad-riscv64");
        let r = parse_file(&rv);
        assert!(matches!(&r, Err(GuestError::WrongMachine(m)) if m == "RISC-V"), "{r:?}");
    }

    let dynamic = build("gcc", &["-O2"], HELLO_C, "bad-dynamic");
    let r = parse_file(&dynamic);
    assert!(matches!(&r, Err(GuestError::Dynamic(m)) if m.contains("ld-linux-x86-64.so.2")), "{r:?}");
    println!("dynamic: {}", r.err().map(|e| e.to_string()).unwrap_or_default());

    let so = tmp_dir().join("bad-lib.so");
    let c = tmp_dir().join("bad-lib.c");
    std::fs::write(&c, "#include <stdio.h>\nvoid f(void) { puts(\"x\"); }\n").expect("write");
    let st = std::process::Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&so).arg(&c).status().expect("gcc");
    assert!(st.success());
    let r = parse_file(&so);
    assert!(matches!(&r, Err(GuestError::Dynamic(m)) if m.contains("libc.so.6")), "{r:?}");

    let obj = tmp_dir().join("bad-obj.o");
    let c = tmp_dir().join("bad-obj.c");
    std::fs::write(&c, HELLO_C).expect("write");
    let st = std::process::Command::new("gcc").args(["-c", "-o"]).arg(&obj).arg(&c).status().expect("gcc");
    assert!(st.success());
    assert!(matches!(parse_file(&obj), Err(GuestError::Malformed(_))));
}

/// Deterministic byte corruption of headers and random offsets: parse and discovery return
/// errors or results, never panic.
#[test]
fn corrupted_input_never_panics() {
    let exe = build("musl-gcc", &["-static", "-O2"], HELLO_C, "fuzz-musl");
    let good = std::fs::read(&exe).expect("read");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ok = 0;
    for round in 0..600 {
        let mut bytes = good.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            let r = next();
            // Mostly the ELF header and program headers, sometimes anywhere.
            let at = if r % 4 == 0 { (r >> 8) as usize % bytes.len() } else { (r >> 8) as usize % (64 + 56 * 10) };
            bytes[at] = (next() & 0xff) as u8;
        }
        if round % 3 == 0 {
            let cut = (next() as usize) % bytes.len();
            bytes.truncate(cut.max(1));
        }
        if let Ok(bin) = GuestBinary::parse("fuzz", bytes) {
            ok += 1;
            if round % 4 == 0 {
                let _ = discover(&bin);
            }
        }
    }
    println!("{ok}/600 corrupted inputs still parsed");
}
