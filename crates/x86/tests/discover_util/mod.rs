//! Helpers shared by the discovery tests: build C programs with the system compilers and
//! read facts about them with binutils.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Directory for files built by the tests.
pub fn tmp_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("discover");
    std::fs::create_dir_all(&d).expect("create test tmp dir");
    d
}

/// Compile `src` (C source text) with `cc` and `flags` into `tmp_dir()/out`; returns the path.
pub fn build(cc: &str, flags: &[&str], src: &str, out: &str) -> PathBuf {
    let dir = tmp_dir();
    let c = dir.join(format!("{out}.c"));
    std::fs::write(&c, src).expect("write C source");
    let exe = dir.join(out);
    let st = Command::new(cc)
        .args(flags)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(st.success(), "{cc} {flags:?} failed");
    exe
}

/// `strip` a copy of `exe` to `exe.stripped`.
pub fn strip(exe: &Path) -> PathBuf {
    let out = exe.with_extension("stripped");
    let st = Command::new("strip").arg("-o").arg(&out).arg(exe).status().expect("run strip");
    assert!(st.success());
    out
}

/// Run a command and return its stdout.
pub fn output(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {args:?} failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Entry point and `PT_LOAD` segments `(vaddr, filesz, memsz, flags)` according to readelf.
pub fn readelf_facts(exe: &Path) -> (u64, Vec<(u64, u64, u64, String)>) {
    let p = exe.to_str().expect("utf-8 path");
    let text = output("readelf", &["-hlW", p]);
    let mut entry = None;
    let mut loads = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Entry point address:") {
            entry = Some(hex(v.trim()));
        }
        if line.starts_with("LOAD ") {
            let f: Vec<&str> = line.split_whitespace().collect();
            // LOAD off vaddr paddr filesz memsz flags... align
            let flags = f[6..f.len() - 1].concat();
            loads.push((hex(f[2]), hex(f[4]), hex(f[5]), flags));
        }
    }
    (entry.expect("entry in readelf output"), loads)
}

/// Function symbols `(address, name)` according to readelf (defined, non-zero).
pub fn readelf_functions(exe: &Path) -> Vec<(u64, String)> {
    let p = exe.to_str().expect("utf-8 path");
    let text = output("readelf", &["-sW", p]);
    let mut out = Vec::new();
    let mut in_symtab = false;
    for line in text.lines() {
        if line.starts_with("Symbol table '.symtab'") {
            in_symtab = true;
            continue;
        }
        if line.starts_with("Symbol table") {
            in_symtab = false;
        }
        if !in_symtab {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || !(f[3] == "FUNC" || f[3] == "IFUNC") || f[6] == "UND" {
            continue;
        }
        let addr = hex(f[1]);
        if addr != 0 {
            out.push((addr, f[7].to_string()));
        }
    }
    out.sort();
    out.dedup_by_key(|s| s.0);
    out
}

pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("hex {s}"))
}

/// Whether a compiler is installed.
pub fn have(cc: &str) -> bool {
    Command::new(cc).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Test program with a switch that gcc compiles to a jump table; `sw` is its function.
pub const SWITCH_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
volatile int sink;
__attribute__((noinline)) int sw(int x, int y) {
  switch (x) {
  case 0: sink = y * 3; break;
  case 1: puts("one"); break;
  case 2: sink = y + 7; return y ^ 5;
  case 3: sink = y << 2; break;
  case 4: y = y * y - 1; sink = y; break;
  case 5: puts("five"); return 9;
  case 6: sink = 6 / (y | 1); break;
  case 7: exit(3);
  case 9: sink = y - 99; break;
  default: return -1;
  }
  return y + 1;
}
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(int argc, char **argv) {
  int s = 0, v[4] = {3, 1, 2, argc};
  qsort(v, 4, sizeof v[0], cmp);
  for (int i = 0; i < argc + 10; i++) s += sw(i, argc);
  printf("%d %d\n", s, v[0]);
  return 0;
}
"#;
