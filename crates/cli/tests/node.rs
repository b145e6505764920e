//! The arm64 node test: boots the emulated arm64 node (crates/testbed: Debian's arm64 kernel,
//! busybox and CRIU under `qemu-system-aarch64`) and checks, inside it, that
//! - the aarch64 build of hcontainer runs and `hcontainer doctor` finds a working CRIU;
//! - an aarch64 translation of a glibc -O2 corpus program, made on this host, prints and
//!   exits exactly like the native program here;
//! - CRIU dumps a running aarch64 translation and restores it, and it carries on from where
//!   it was dumped (every state value of a recurrence is printed and checked).
//!
//! The aarch64 hcontainer comes from `cargo xtask vm build`
//! (`target/aarch64-unknown-linux-musl/release/hcontainer`); the node image is built on first
//! use under `.cache/vm`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hcontainer_testbed::{cross, BootOptions, Node, NodeImage};

/// A counter whose every step depends on all earlier ones: after a restore it must continue
/// with the very next step. Prints `i sum` per line, flushed, every 20 ms.
const COUNTER_C: &str = r#"
#include <stdio.h>
#include <stdint.h>
#include <time.h>
int main(void) {
    uint64_t sum = 1;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (uint64_t i = 0;; i++) {
        sum = sum * 6364136223846793005ULL + i;
        printf("%llu %llu\n", (unsigned long long)i, (unsigned long long)sum);
        fflush(stdout);
        nanosleep(&ts, NULL);
    }
}
"#;

const JOB: Duration = Duration::from_secs(120);

fn compile(src: &Path, out: &Path) {
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(src)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("running gcc: {e}"));
    assert!(o.status.success(), "gcc {}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
}

fn translate(input: &Path) -> PathBuf {
    let out = input.with_extension("aarch64");
    common::translate(input, "aarch64", &out, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("translating {}: {e}", input.display()));
    out
}

/// Runs `cmd` in the node and fails the test unless it exits 0.
fn sh(node: &Node, cmd: &str) -> String {
    let out = node.run(cmd, JOB).unwrap_or_else(|e| panic!("{cmd}: {e}\nconsole:\n{}", node.console_tail(30)));
    assert!(out.success(), "`{cmd}` exited {}:\n{}{}", out.status, out.stdout, out.stderr);
    out.stdout
}

/// Polls `cmd`'s output in the node until `done` holds, for at most `limit`.
fn wait_for(node: &Node, cmd: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = sh(node, cmd);
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "waited {limit:?} for `{cmd}`; last output:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The counter's lines as (i, sum), checked against the recurrence from the start.
fn check_counter(log: &str) -> u64 {
    let mut sum: u64 = 1;
    let mut n = 0u64;
    for (line_no, line) in log.lines().enumerate() {
        let mut f = line.split_whitespace().map(|w| w.parse::<u64>());
        let (Some(Ok(i)), Some(Ok(s))) = (f.next(), f.next()) else {
            panic!("counter line {line_no} unreadable: {line:?}\n{log}");
        };
        sum = sum.wrapping_mul(6364136223846793005).wrapping_add(n);
        assert_eq!((i, s), (n, sum), "counter line {line_no} breaks the sequence:\n{log}");
        n += 1;
    }
    n
}

#[test]
fn arm64_node_runs_hcontainer_translations_and_criu() {
    let repo = common::repo_root();
    let arm_hcontainer = cross::hcontainer_aarch64(&repo);
    assert!(
        arm_hcontainer.exists(),
        "{} is missing: build it with `cargo xtask vm build`",
        arm_hcontainer.display()
    );
    let work = common::work_dir("node-test");

    // Host side: the corpus program natively, and the translations.
    let hashtable = work.join("hashtable");
    compile(&repo.join("tests/corpus/hashtable.c"), &hashtable);
    let native = Command::new(&hashtable).output().expect("running the native hashtable");
    let hashtable_arm = translate(&hashtable);
    let counter_src = work.join("counter.c");
    std::fs::write(&counter_src, COUNTER_C).expect("writing counter.c");
    let counter = work.join("counter");
    compile(&counter_src, &counter);
    let counter_arm = translate(&counter);

    let started = Instant::now();
    let image = NodeImage::build(&repo.join(".cache")).unwrap_or_else(|e| panic!("building the node: {e}"));
    eprintln!("node image: {:.1} s", started.elapsed().as_secs_f64());
    let node = image.boot(&BootOptions::default()).unwrap_or_else(|e| panic!("booting the node: {e}"));
    eprintln!("node boot: {:.1} s", node.boot_time().as_secs_f64());
    let started = Instant::now();
    for (from, to) in [(&arm_hcontainer, "/usr/bin/hcontainer"), (&hashtable_arm, "/root/hashtable"), (&counter_arm, "/root/counter")] {
        node.install(from, to, JOB).unwrap_or_else(|e| panic!("installing {}: {e}", from.display()));
    }
    eprintln!("node install: {:.1} s", started.elapsed().as_secs_f64());

    // hcontainer itself on arm64, and CRIU as it sees it.
    let doctor = sh(&node, "hcontainer doctor");
    assert!(doctor.contains("criu version: 4."), "{doctor}");
    assert!(doctor.contains("criu check:   passed"), "{doctor}");
    assert!(doctor.contains("root:         yes"), "{doctor}");

    // The translated corpus program against the native run.
    let out = node.run("/root/hashtable", JOB).expect("running the translated hashtable");
    assert_eq!(out.stdout, String::from_utf8_lossy(&native.stdout), "stdout of the aarch64 translation");
    assert_eq!(out.stderr, String::from_utf8_lossy(&native.stderr), "stderr of the aarch64 translation");
    assert_eq!(Some(out.status), native.status.code(), "exit status of the aarch64 translation");

    // CRIU: dump a running translation, restore it, and it continues.
    let pid = sh(&node, "setsid /root/counter >/root/counter.log 2>/dev/null </dev/null & echo $!");
    let pid = pid.trim();
    wait_for(&node, "wc -l < /root/counter.log", Duration::from_secs(60), |n| n.trim().parse::<u32>().is_ok_and(|n| n >= 5));
    let started = Instant::now();
    let dump = node.run(&format!("mkdir -p /root/img && criu dump -t {pid} -D /root/img -o dump.log -v4"), JOB).expect("criu dump");
    let dump_time = started.elapsed();
    assert!(dump.success(), "criu dump exited {}:\n{}", dump.status, sh(&node, "tail -n 30 /root/img/dump.log"));
    let gone = node.run(&format!("kill -0 {pid}"), JOB).expect("kill -0");
    assert!(!gone.success(), "the dumped counter still runs");
    let before = check_counter(&sh(&node, "cat /root/counter.log"));
    let started = Instant::now();
    // Restore hangs on CPUs with pointer authentication; the time limit turns that into a failure.
    let restore = node
        .run("timeout -s KILL 60 criu restore -D /root/img -d -o restore.log -v4", JOB)
        .expect("criu restore");
    let restore_time = started.elapsed();
    assert!(restore.success(), "criu restore exited {}:\n{}", restore.status, sh(&node, "tail -n 30 /root/img/restore.log"));
    let log = wait_for(&node, "cat /root/counter.log", Duration::from_secs(60), |log| log.lines().count() as u64 >= before + 5);
    let after = check_counter(&log);
    assert!(after >= before + 5);
    sh(&node, &format!("kill {pid}"));
    eprintln!(
        "criu in the node: dump {:.2} s, restore {:.2} s (job round trips included); {before} lines before the dump, {after} after the restore",
        dump_time.as_secs_f64(),
        restore_time.as_secs_f64()
    );
}
