//! The syscall table against the kernel headers of the cross toolchains: every x86-64 number
//! and every asm-generic number must be the one Linux defines for that name.

use std::collections::HashMap;
use std::process::Command;

use hcontainer_runtime_host_tests::table::{lookup, How, LEN, NONE, TABLE};

/// `__NR_*` numbers defined by `<asm/unistd.h>` for the given C compiler, aliases resolved.
fn kernel_numbers(cc: &str) -> HashMap<String, u64> {
    let dir = std::env::temp_dir().join(format!("hc-unistd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("u.c");
    std::fs::write(&src, "#include <asm/unistd.h>\n").unwrap();
    let out = Command::new(cc).args(["-E", "-dM"]).arg(&src).output().unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(out.status.success(), "{cc} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut raw = HashMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some("#define"), Some(name), Some(val)) = (it.next(), it.next(), it.next()) {
            raw.insert(name.to_string(), val.to_string());
        }
    }
    let mut out = HashMap::new();
    for name in raw.keys().filter(|n| n.starts_with("__NR_")) {
        let mut v = raw[name].clone();
        for _ in 0..4 {
            match raw.get(&v) {
                Some(next) => v = next.clone(),
                None => break,
            }
        }
        if let Ok(n) = v.parse::<u64>() {
            out.insert(name["__NR_".len()..].to_string(), n);
        }
    }
    out
}

#[test]
fn x86_64_numbers_match_kernel_headers() {
    let k = kernel_numbers("gcc");
    let mut checked = 0;
    for (nr, e) in TABLE.iter().enumerate() {
        if e.name.is_empty() {
            continue;
        }
        if let Some(&n) = k.get(e.name) {
            assert_eq!(n, nr as u64, "x86-64 number of {}", e.name);
            checked += 1;
        }
    }
    assert!(checked > 330, "only {checked} names found in the x86-64 headers");
    // Every call the headers know below LEN is in the table.
    for (name, &n) in &k {
        if (n as usize) < LEN && !name.starts_with("syscalls") {
            assert_eq!(lookup(n).map(|e| e.name), Some(name.as_str()), "x86-64 call {n} ({name}) missing");
        }
    }
}

fn check_generic(cc: &str) {
    let k = kernel_numbers(cc);
    let mut checked = 0;
    for e in TABLE.iter().filter(|e| !e.name.is_empty() && e.generic != NONE) {
        // Headers older than the call do not name it.
        if let Some(&n) = k.get(e.name) {
            assert_eq!(n, u64::from(e.generic), "{cc}: asm-generic number of {}", e.name);
            checked += 1;
        }
    }
    assert!(checked > 280, "only {checked} generic numbers checked");
    // A call forwarded on this host must exist there, and one without a number must not.
    for e in TABLE.iter().filter(|e| e.how == How::Pass && e.generic == NONE) {
        assert!(!k.contains_key(e.name), "{cc}: {} exists on asm-generic hosts; give its number", e.name);
    }
}

#[test]
fn aarch64_numbers_match_kernel_headers() {
    check_generic("aarch64-linux-gnu-gcc");
}

#[test]
fn riscv64_numbers_match_kernel_headers() {
    check_generic("riscv64-linux-gnu-gcc");
}

#[test]
fn unknown_numbers_have_no_entry() {
    assert!(lookup(335).is_none());
    assert!(lookup(LEN as u64).is_none());
    assert!(lookup(u64::MAX).is_none());
    assert_eq!(lookup(0).map(|e| e.name), Some("read"));
    assert_eq!(lookup(12).map(|e| e.how), Some(How::Emulate));
}
