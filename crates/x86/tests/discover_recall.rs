//! Code discovery on real static executables built at test time: every function of the
//! symbol table of an unstripped build must be found in the stripped build, and a switch
//! statement's jump-table targets must be leaders.

mod discover_util;

use std::collections::HashSet;
use std::time::Instant;

use discover_util::*;
use hcontainer_x86::{discover, GuestBinary};

struct Config {
    cc: &'static str,
    flags: &'static [&'static str],
    label: &'static str,
}

const CONFIGS: &[Config] = &[
    Config { cc: "gcc", flags: &["-static", "-no-pie", "-fno-pie", "-O0"], label: "gcc-static-O0" },
    Config { cc: "gcc", flags: &["-static", "-no-pie", "-fno-pie", "-O2"], label: "gcc-static-O2" },
    Config { cc: "gcc", flags: &["-static-pie", "-O0"], label: "gcc-static-pie-O0" },
    Config { cc: "gcc", flags: &["-static-pie", "-O2"], label: "gcc-static-pie-O2" },
    Config { cc: "musl-gcc", flags: &["-static", "-O0"], label: "musl-static-O0" },
    Config { cc: "musl-gcc", flags: &["-static", "-O2"], label: "musl-static-O2" },
];

fn load(path: &std::path::Path) -> GuestBinary {
    let bytes = std::fs::read(path).expect("read test binary");
    GuestBinary::parse(&path.display().to_string(), bytes).expect("parse test binary")
}

/// Returns (found, total, missed names).
fn recall(cfg: &Config) -> (usize, usize, Vec<String>) {
    let exe = build(cfg.cc, cfg.flags, SWITCH_C, &format!("recall-{}", cfg.label));
    let stripped = strip(&exe);
    let full = load(&exe);
    let bin = load(&stripped);
    assert!(bin.symbols.is_empty(), "{}: stripped binary still has symbols", cfg.label);
    assert!(!bin.fdes.is_empty(), "{}: no FDEs found in the stripped binary", cfg.label);
    let t = Instant::now();
    let map = discover(&bin).expect("discover");
    let took = t.elapsed();
    let entries: HashSet<u64> = map.functions.iter().map(|f| f.entry).collect();
    let funcs: Vec<(u64, String)> = readelf_functions(&exe)
        .into_iter()
        .map(|(a, n)| (a + full.load_bias, n))
        .filter(|(a, _)| full.is_code(*a))
        .collect();
    assert!(funcs.len() > 50, "{}: only {} symbols", cfg.label, funcs.len());
    let missed: Vec<String> =
        funcs.iter().filter(|(a, _)| !entries.contains(a)).map(|(a, n)| format!("{n}@{a:#x}")).collect();
    let found = funcs.len() - missed.len();
    let leaders: usize = map.functions.iter().map(|f| f.leaders.len()).sum();
    println!(
        "{:20} recall {found}/{} = {:.2}%  functions {} leaders {} tables {} swept {} ({:?})",
        cfg.label,
        funcs.len(),
        100.0 * found as f64 / funcs.len() as f64,
        map.functions.len(),
        leaders,
        map.jump_tables.len(),
        map.swept.len(),
        took
    );
    if !missed.is_empty() {
        println!("  missed: {}", missed.join(" "));
    }
    check_switch(cfg, &full, &map);
    check_boundaries(cfg, &exe, full.load_bias, &map);
    check_map_invariants(&bin, &map);
    (found, funcs.len(), missed)
}

/// The jump table of `sw` is recognized and its targets are leaders of `sw` (unless `sw`
/// was compiled without a table, at -O0 gcc still uses one for 10 dense cases).
fn check_switch(cfg: &Config, full: &GuestBinary, map: &hcontainer_x86::CodeMap) {
    let (sw, size, _) = full.symbols.iter().find(|s| s.2 == "sw").expect("symbol sw").clone();
    let f = map.function(sw).unwrap_or_else(|| panic!("{}: sw@{sw:#x} not a function", cfg.label));
    let table = map
        .jump_tables
        .iter()
        .find(|t| (sw..sw + size).contains(&t.site))
        .unwrap_or_else(|| panic!("{}: no jump table recognized in sw@{sw:#x}", cfg.label));
    assert_eq!(table.targets.len(), 10, "{}: cases 0..=9", cfg.label);
    let distinct: HashSet<u64> = table.targets.iter().copied().collect();
    assert!(distinct.len() >= 9, "{}: {} distinct targets", cfg.label, distinct.len());
    for t in &distinct {
        assert!(f.leaders.binary_search(t).is_ok(), "{}: case target {t:#x} not a leader of sw", cfg.label);
    }
    assert!(!map.swept.contains(&sw), "{}: sw was swept although its table is recognized", cfg.label);
}

/// Leaders must be instruction starts of objdump's linear disassembly (gcc puts no data in
/// code, so a linear sweep of `.text` is the truth there), except for the few real targets
/// inside an instruction: glibc's `je 1f; lock; 1: cmpxchg` skips a `lock` prefix.
fn check_boundaries(cfg: &Config, exe: &std::path::Path, bias: u64, map: &hcontainer_x86::CodeMap) {
    let text = output("objdump", &["-d", "--no-show-raw-insn", exe.to_str().expect("utf-8")]);
    let starts: HashSet<u64> = text
        .lines()
        .filter_map(|l| {
            let (a, rest) = l.trim_start().split_once(":\t")?;
            (!rest.is_empty()).then(|| u64::from_str_radix(a, 16).ok()).flatten()
        })
        .map(|a| a + bias)
        .collect();
    let leaders = map.all_leaders();
    let bad: Vec<String> = leaders.iter().filter(|l| !starts.contains(l)).map(|l| format!("{l:#x}")).collect();
    println!("  {} leaders, {} not at objdump instruction starts {:?}", leaders.len(), bad.len(), &bad[..bad.len().min(10)]);
    assert!(bad.len() * 1000 <= leaders.len(), "{}: {} misaligned leaders", cfg.label, bad.len());
}

fn check_map_invariants(bin: &GuestBinary, map: &hcontainer_x86::CodeMap) {
    assert!(map.functions.windows(2).all(|w| w[0].entry < w[1].entry), "functions sorted, unique");
    for f in &map.functions {
        assert!(bin.is_code(f.entry));
        assert!(f.leaders.windows(2).all(|w| w[0] < w[1]), "leaders sorted, unique");
        assert!(f.leaders.binary_search(&f.entry).is_ok(), "entry {:#x} is a leader", f.entry);
        if let Some(end) = f.end {
            assert!(f.leaders.iter().all(|l| (f.entry..end).contains(l)), "leaders of {:#x} in its extent", f.entry);
        }
    }
    assert!(map.function(bin.entry).is_some(), "entry point is a function");
}

#[test]
fn recall_glibc_and_musl() {
    let mut worst = 100.0f64;
    for cfg in CONFIGS {
        if cfg.cc == "musl-gcc" && !have("musl-gcc") {
            panic!("musl-gcc is not installed (Debian package musl-tools)");
        }
        let (found, total, _) = recall(cfg);
        let pct = 100.0 * found as f64 / total as f64;
        worst = worst.min(pct);
        assert!(pct >= 99.0, "{}: recall {pct:.2}% < 99%", cfg.label);
    }
    println!("worst recall {worst:.2}%");
}

/// Nanoseconds this thread has run on a CPU (from /proc, so other load does not count).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("read schedstat");
    s.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat run time")
}

#[test]
fn busybox_discovery_is_fast() {
    let path = std::path::Path::new("/bin/busybox");
    let bin = load(path);
    let t = Instant::now();
    let cpu0 = thread_cpu_ns();
    let map = discover(&bin).expect("discover busybox");
    let cpu = std::time::Duration::from_nanos(thread_cpu_ns() - cpu0);
    let took = t.elapsed();
    let leaders: usize = map.functions.iter().map(|f| f.leaders.len()).sum();
    println!(
        "busybox: {} FDEs, {} symbols, {} code pointers; {} functions, {} leaders, {} jump tables, {} swept; discover {:?} wall, {:?} cpu",
        bin.fdes.len(),
        bin.symbols.len(),
        bin.code_pointers.len(),
        map.functions.len(),
        leaders,
        map.jump_tables.len(),
        map.swept.len(),
        took,
        cpu
    );
    check_map_invariants(&bin, &map);
    assert!(map.functions.len() >= bin.fdes.len() / 2);
    assert!(!map.jump_tables.is_empty());
    assert!(cpu.as_secs_f64() < 5.0, "discovery took {cpu:?} of CPU time");
}

const EH_CC: &str = r#"
#include <cstdio>
#include <stdexcept>
__attribute__((noinline)) int may_throw(int x) { if (x > 2) throw std::runtime_error("big"); return x * 2; }
int main(int argc, char **argv) {
  int s = 0;
  for (int i = 0; i < argc + 3; i++) {
    try { s += may_throw(i); } catch (const std::exception &e) { s += 100; }
  }
  std::printf("%d\n", s);
  return 0;
}
"#;

/// C++ landing pads (reached only by the unwinder) are found from the LSDAs and are leaders.
#[test]
fn cxx_landing_pads_are_leaders() {
    let exe = build("g++", &["-static", "-O2", "-x", "c++"], EH_CC, "eh-cxx");
    let full = load(&exe);
    let bin = load(&strip(&exe));
    assert_eq!(bin.landing_pads, full.landing_pads);
    let (main, size, _) = full.symbols.iter().find(|s| s.2 == "main").expect("main").clone();
    let in_main: Vec<u64> = bin.landing_pads.iter().copied().filter(|p| (main..main + size).contains(p)).collect();
    assert!(!in_main.is_empty(), "main's catch handler is a landing pad");
    let map = discover(&bin).expect("discover");
    let f = map.function(main).expect("main is a function");
    for p in &in_main {
        assert!(f.leaders.binary_search(p).is_ok(), "landing pad {p:#x} is a leader of main");
    }
    for p in &bin.landing_pads {
        assert!(map.is_leader(*p), "landing pad {p:#x} is a leader");
    }
    println!("{} landing pads, {} in main", bin.landing_pads.len(), in_main.len());
    check_map_invariants(&bin, &map);
}
