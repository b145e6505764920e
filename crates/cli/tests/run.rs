//! `hcontainer run`: the program replaces the command (its pid is the one the caller sees,
//! `$!` in a shell), keeps its exit status, gets no vDSO (the C library makes the system
//! calls a translated process makes), and `--setsid` / `--log FILE` start it as a service.

mod common;

use std::process::Command;

const PROBE: &str = r#"#include <stdio.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    printf("pid %d sid %d vdso %lx t %d\n", (int)getpid(), (int)getsid(0), getauxval(AT_SYSINFO_EHDR), t.tv_sec > 1000000000);
    return argc > 1 ? 9 : 0;
}
"#;

fn probe() -> std::path::PathBuf {
    let dir = common::work_dir("hct-run");
    let src = dir.join("probe.c");
    std::fs::write(&src, PROBE).expect("write");
    let exe = dir.join("probe");
    let st = Command::new("gcc").args(["-O2", "-o"]).arg(&exe).arg(&src).status().expect("gcc");
    assert!(st.success());
    exe
}

fn fields(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn run_replaces_itself_with_the_program_without_a_vdso() {
    let exe = probe();
    let hc = common::hcontainer();
    // Natively, the program has a vDSO.
    let native = String::from_utf8_lossy(&Command::new(&exe).output().expect("probe").stdout).into_owned();
    assert_ne!(fields(&native)[5], "0", "{native}");
    // `$!` is the program's pid; its status is the command's.
    let script = format!("{} run {} x & p=$!; wait $p; echo status $? bg $p", hc.display(), exe.display());
    let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (p, last) = (fields(lines[0]), fields(lines[1]));
    assert_eq!(p[1], last[3], "the program's pid is $!: {out}");
    assert_eq!(last[1], "9", "the program's exit status: {out}");
    assert_eq!(p[5], "0", "no vDSO under hcontainer run: {out}");
    assert_eq!(p[7], "1", "the time of day through the system call: {out}");

    // --setsid --log: a session of its own, the output in the log.
    let dir = common::work_dir("hct-run");
    let log = dir.join("probe.log");
    let _ = std::fs::remove_file(&log);
    let script = format!("{} run --setsid --log {} {} & wait $!; echo status $?", hc.display(), log.display(), exe.display());
    let o = Command::new("sh").args(["-c", &script]).output().expect("sh");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "status 0");
    let logged = std::fs::read_to_string(&log).expect("the log");
    let f = fields(&logged);
    assert_eq!(f[1], f[3], "the program leads its own session: {logged}");
}

#[test]
fn run_of_a_missing_program_names_it() {
    let o = Command::new(common::hcontainer()).args(["run", "/nonexistent/prog"]).output().expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/prog") && err.lines().count() == 1, "{err}");
}
