//! `launch::plan` starts real programs: glibc honors the feature mask, and a PIE lands at
//! the translated layout's address.

use std::ffi::OsString;
use std::path::Path;

use hcontainer_recode::launch;

const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";

/// `x86.cpu_features.features[leaf].active[reg]` from glibc's `--list-diagnostics`.
fn active(diag: &str, leaf: u32, reg: u32) -> u64 {
    let key = format!("x86.cpu_features.features[{leaf:#x}].active[{reg:#x}]=");
    let line = diag.lines().find_map(|l| l.strip_prefix(&key)).unwrap_or_else(|| panic!("{key} missing"));
    u64::from_str_radix(line.trim_start_matches("0x"), 16).expect("hex value")
}

#[test]
fn glibc_feature_choice_is_capped_to_the_baseline() {
    let diag_arg = vec![OsString::from("--list-diagnostics")];
    let native = std::process::Command::new(LD_SO).args(&diag_arg).env_remove("GLIBC_TUNABLES").output().expect("run ld.so");
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    // Leaf 1 ECX: SSSE3 9, SSE4.2 20, AVX 28. Leaf 7 EBX: AVX2 5, AVX512F 16.
    const AVX: u64 = 1 << 28;
    const AVX2: u64 = 1 << 5;
    assert_ne!(active(&native, 1, 1) & AVX2, 0, "this test needs a machine with AVX2");

    let mut plan = launch::plan(Path::new(LD_SO), &diag_arg).expect("plan");
    let out = plan.command.output().expect("run ld.so under the plan");
    assert!(out.status.success());
    let capped = String::from_utf8_lossy(&out.stdout);
    assert_eq!(active(&capped, 0, 2) & (AVX | (1 << 20) | (1 << 9)), 0, "AVX/SSE4.2/SSSE3 still active");
    assert_eq!(active(&capped, 1, 1) & (AVX2 | (1 << 16)), 0, "AVX2/AVX-512 still active");
    // SSE2 (leaf 1 EDX bit 26) is baseline and stays.
    assert_ne!(active(&capped, 0, 3) & (1 << 26), 0);
}

#[test]
fn a_pie_is_placed_at_the_translated_base() {
    let mut plan = launch::plan(Path::new("/bin/cat"), &[OsString::from("/proc/self/maps")]).expect("plan");
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let out = plan.command.output().expect("run cat");
    let maps = String::from_utf8_lossy(&out.stdout);
    let first = maps.lines().next().expect("a mapping");
    let start = u64::from_str_radix(first.split('-').next().expect("range"), 16).expect("hex");
    assert_eq!(start, hcontainer_abi::layout::PIE_GUEST_BASE, "{maps}");
    assert!(first.ends_with("/cat"), "{first}");
}

#[test]
fn a_static_pie_without_interpreter_gets_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("p.c");
    let exe = dir.path().join("p");
    std::fs::write(&src, "int main(void){return 0;}\n").expect("write");
    let st = std::process::Command::new("gcc").arg("-static-pie").arg("-o").arg(&exe).arg(&src).status().expect("gcc");
    assert!(st.success());
    let plan = launch::plan(&exe, &[]).expect("plan");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(plan.warnings[0].contains("static-pie"));
    assert!(matches!(launch::plan(Path::new("/etc/passwd"), &[]), Err(launch::LaunchError::NotElf { .. })));
}
