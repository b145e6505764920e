//! The arm64 node test: boots the emulated arm64 node (crates/testbed: Debian's arm64 kernel,
//! busybox and CRIU under `qemu-system-aarch64`) and checks, inside it, that
//! - the aarch64 build of hcontainer runs and `hcontainer doctor` finds a working CRIU;
//! - an aarch64 translation of a glibc -O2 corpus program, made on this host, prints and
//!   exits exactly like the native program here;
//! - CRIU dumps a running aarch64 translation and restores it, and it carries on from where
//!   it was dumped (every state value of a recurrence is printed and checked);
//! - `hcontainer migrate` moves a native x86-64 program running on this host to
//!   `hcontainer agent` in the node, as its aarch64 translation, and it carries on there; the
//!   node's hcontainer moves it back to an agent on this host, as the original program.
//!
//! The aarch64 hcontainer comes from `cargo xtask vm build`
//! (`target/aarch64-unknown-linux-musl/release/hcontainer`); the node image is built on first
//! use under `.cache/vm`.

mod common;
mod node_support;

use node_support::{arm_hcontainer, lock, node_image, sh, to_host, HopOptions, KillOnDrop, Subject, JOB};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hcontainer_testbed::cc::{self, Libc};
use hcontainer_testbed::{BootOptions, Node};

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

/// The migration subject: writes `i sum` (same recurrence, fixed width) at offset 0 of the
/// file `argv[1]` every 20 ms. The file keeps one size, so CRIU's size check of open files
/// holds on the node too.
const MIGCOUNTER_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) return 1;
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return 1;
    uint64_t sum = 1;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (uint64_t i = 0;; i++) {
        sum = sum * 6364136223846793005ULL + i;
        char line[64];
        int len = snprintf(line, sizeof line, "%20llu %20llu\n", (unsigned long long)i, (unsigned long long)sum);
        if (pwrite(fd, line, len, 0) != len) return 2;
        nanosleep(&ts, NULL);
    }
}
"#;

fn compile(src: &Path, out: &Path) {
    cc::compile(Libc::Glibc, src, &[], out).unwrap_or_else(|e| panic!("{e}"));
}

fn translate(input: &Path) -> PathBuf {
    let out = input.with_extension("aarch64");
    common::translate(input, "aarch64", &out, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("translating {}: {e}", input.display()));
    out
}

/// Polls `cmd`'s output in the node until `done` holds, for at most `limit`.
fn wait_for(node: &Node, cmd: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = sh(node, cmd);
        if done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for `{cmd}`; last output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The recurrence's value after step `i`.
fn recurrence(i: u64) -> u64 {
    (0..=i).fold(1u64, |sum, n| {
        sum.wrapping_mul(6364136223846793005).wrapping_add(n)
    })
}

/// `i sum` of the migration subject's file, checked against the recurrence.
fn check_migcounter(text: &str) -> u64 {
    let mut f = text.split_whitespace().map(|w| w.parse::<u64>());
    let (Some(Ok(i)), Some(Ok(sum))) = (f.next(), f.next()) else {
        panic!("migration counter file unreadable: {text:?}");
    };
    assert_eq!(
        sum,
        recurrence(i),
        "state of the migrated counter at step {i}"
    );
    i
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
        assert_eq!(
            (i, s),
            (n, sum),
            "counter line {line_no} breaks the sequence:\n{log}"
        );
        n += 1;
    }
    n
}

#[test]
fn arm64_node_runs_hcontainer_translations_and_criu() {
    let _l = lock();
    let repo = common::repo_root();
    let arm_hcontainer = arm_hcontainer(&repo);
    let work = common::work_dir("node-test");

    // Host side: the corpus program natively, and the translations.
    let hashtable = work.join("hashtable");
    compile(&repo.join("tests/corpus/hashtable.c"), &hashtable);
    let native = Command::new(&hashtable)
        .output()
        .expect("running the native hashtable");
    let hashtable_arm = translate(&hashtable);
    let counter_src = work.join("counter.c");
    std::fs::write(&counter_src, COUNTER_C).expect("writing counter.c");
    let counter = work.join("counter");
    compile(&counter_src, &counter);
    let counter_arm = translate(&counter);

    let started = Instant::now();
    let image = node_image(&repo);
    eprintln!("node image: {:.1} s", started.elapsed().as_secs_f64());
    let node = image
        .boot(&BootOptions::default())
        .unwrap_or_else(|e| panic!("booting the node: {e}"));
    eprintln!("node boot: {:.1} s", node.boot_time().as_secs_f64());
    let started = Instant::now();
    for (from, to) in [
        (&arm_hcontainer, "/usr/bin/hcontainer"),
        (&hashtable_arm, "/root/hashtable"),
        (&counter_arm, "/root/counter"),
    ] {
        node.install(from, to, JOB)
            .unwrap_or_else(|e| panic!("installing {}: {e}", from.display()));
    }
    eprintln!("node install: {:.1} s", started.elapsed().as_secs_f64());

    // hcontainer itself on arm64, and CRIU as it sees it.
    let doctor = sh(&node, "hcontainer doctor");
    assert!(doctor.contains("criu version: 4."), "{doctor}");
    assert!(doctor.contains("criu check:   passed"), "{doctor}");
    assert!(doctor.contains("root:         yes"), "{doctor}");

    // The translated corpus program against the native run.
    let out = node
        .run("/root/hashtable", JOB)
        .expect("running the translated hashtable");
    assert_eq!(
        out.stdout,
        String::from_utf8_lossy(&native.stdout),
        "stdout of the aarch64 translation"
    );
    assert_eq!(
        out.stderr,
        String::from_utf8_lossy(&native.stderr),
        "stderr of the aarch64 translation"
    );
    assert_eq!(
        Some(out.status),
        native.status.code(),
        "exit status of the aarch64 translation"
    );

    // CRIU: dump a running translation, restore it, and it continues.
    let pid = sh(
        &node,
        "setsid /root/counter >/root/counter.log 2>/dev/null </dev/null & echo $!",
    );
    let pid = pid.trim();
    wait_for(
        &node,
        "wc -l < /root/counter.log",
        Duration::from_secs(60),
        |n| n.trim().parse::<u32>().is_ok_and(|n| n >= 5),
    );
    let started = Instant::now();
    let dump = node
        .run(
            &format!("mkdir -p /root/img && criu dump -t {pid} -D /root/img -o dump.log -v4"),
            JOB,
        )
        .expect("criu dump");
    let dump_time = started.elapsed();
    assert!(
        dump.success(),
        "criu dump exited {}:\n{}",
        dump.status,
        sh(&node, "tail -n 30 /root/img/dump.log")
    );
    let gone = node.run(&format!("kill -0 {pid}"), JOB).expect("kill -0");
    assert!(!gone.success(), "the dumped counter still runs");
    let before = check_counter(&sh(&node, "cat /root/counter.log"));
    let started = Instant::now();
    // Restore hangs on CPUs with pointer authentication; the time limit turns that into a failure.
    let restore = node
        .run(
            "timeout -s KILL 60 criu restore -D /root/img -d -o restore.log -v4",
            JOB,
        )
        .expect("criu restore");
    let restore_time = started.elapsed();
    assert!(
        restore.success(),
        "criu restore exited {}:\n{}",
        restore.status,
        sh(&node, "tail -n 30 /root/img/restore.log")
    );
    let log = wait_for(
        &node,
        "cat /root/counter.log",
        Duration::from_secs(60),
        |log| log.lines().count() as u64 >= before + 5,
    );
    let after = check_counter(&log);
    assert!(after >= before + 5);
    sh(&node, &format!("kill {pid}"));
    eprintln!(
        "criu in the node: dump {:.2} s, restore {:.2} s (job round trips included); {before} lines before the dump, {after} after the restore",
        dump_time.as_secs_f64(),
        restore_time.as_secs_f64()
    );
}

#[test]
fn native_program_on_this_host_migrates_to_the_arm64_node_as_its_translation() {
    let _l = lock();
    let repo = common::repo_root();
    let subject = Subject::build("node-test/migrate", "migcounter", MIGCOUNTER_C, &[]);
    let (node, host_agent) = subject.boot(&repo, &[]);
    let out_file = subject.work.join("count.txt");
    let out_str = out_file.to_str().expect("UTF-8 work path");
    // The node's copy of the output file, of the same size (42 bytes: two 20-digit fields).
    sh(&node, &format!("head -c 42 /dev/zero > {out_str}"));

    // The native program here, without address randomization (the layout its translation
    // keeps), in a session of its own, with no descriptors but 0-2 and its own: whatever the
    // test runner leaves open (CLOEXEC or not) is not part of the program.
    let mut child = subject.start(&[out_str]);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&out_file)
        .map(|t| {
            t.split_whitespace()
                .next()
                .and_then(|i| i.parse::<u64>().ok())
                .unwrap_or(0)
                < 10
        })
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the native counter did not count"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hop = subject
        .to_node(pid, &node, &HopOptions::default())
        .unwrap_or_else(|e| panic!("migrate failed: {e}"));
    let (report, dest_pid, migrate_time) = (hop.report, hop.dest_pid, hop.wall);
    assert!(report.contains("aarch64 translated"), "{report}");

    // The source is gone; its last state is in the host's file.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting for the source").is_none() {
        assert!(
            Instant::now() < deadline,
            "the source still runs after the migration"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let last_here =
        check_migcounter(&std::fs::read_to_string(&out_file).expect("reading the host's count"));

    // In the node: the translation runs and counts on from that state.
    let exe_link = sh(&node, &format!("readlink /proc/{dest_pid}/exe"));
    assert_eq!(
        exe_link.trim(),
        subject.stored_str(),
        "executable of the restored process"
    );
    let text = wait_for(
        &node,
        &format!("cat {out_str}"),
        Duration::from_secs(60),
        |t| {
            t.split_whitespace()
                .next()
                .and_then(|i| i.parse::<u64>().ok())
                .is_some_and(|i| i >= last_here + 20)
        },
    );
    let there = check_migcounter(&text);
    assert!(there > last_here);
    // The node's agent answers status, from this host: it runs the process it restored.
    let port = node
        .host_port(hcontainer_testbed::migrate::AGENT_PORT)
        .expect("forwarded agent port");
    let out = std::process::Command::new(common::hcontainer())
        .args(["agent", "--status", &format!("arm64-node@127.0.0.1:{port}"), "--json", "--node-dir"])
        .arg(subject.pki.host_dir())
        .output()
        .expect("running hcontainer agent --status");
    assert!(out.status.success(), "agent --status: {}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("agent --status --json prints JSON");
    assert_eq!(status["isa"], "aarch64", "{status}");
    let restored = status["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pid"] == dest_pid))
        .unwrap_or_else(|| panic!("pid {dest_pid} not in the node agent's status: {status}"));
    assert_eq!(restored["running"], true, "{status}");
    assert_eq!(restored["mode"], "translated", "{status}");
    assert_eq!(restored["exe"], subject.stored_str(), "{status}");
    // And back: from the node to an agent on this host (10.0.2.2 from inside the node), which
    // recodes the translated images to the original program and restores it natively.
    let back = to_host(&node, dest_pid, &host_agent, &HopOptions::default())
        .unwrap_or_else(|e| panic!("migrate back failed: {e}"));
    let (back_report, home_pid, back_time) = (back.report, back.dest_pid, back.wall);
    assert!(back_report.contains("x86_64 native"), "{back_report}");
    let _home = KillOnDrop(home_pid);
    let gone = node.run(&format!("kill -0 {dest_pid}"), JOB).expect("kill -0 in the node");
    assert!(!gone.success(), "the translated source still runs in the node");
    let there = check_migcounter(&sh(&node, &format!("cat {out_str}")));
    // And this host's agent answers status from the node.
    let status = sh(
        &node,
        &format!("hcontainer agent --status 10.0.2.2:{}", host_agent.port()),
    );
    assert!(
        status.contains("x86_64") && status.contains(&format!("pid {home_pid} ")),
        "this host's agent status, asked from the node: {status}"
    );
    // It runs the original program (the store's copy of it, found by content).
    assert_eq!(
        std::fs::read(format!("/proc/{home_pid}/exe")).expect("exe of the process back home"),
        std::fs::read(&subject.exe).expect("reading the original program"),
        "the process back on this host runs the original program"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let home = loop {
        let text = std::fs::read_to_string(&out_file).expect("reading the host's count");
        let i = check_migcounter(&text);
        if i >= there + 20 {
            break i;
        }
        assert!(Instant::now() < deadline, "the native program back home does not count on from {there}: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!(
        "migration node (aarch64 translated) -> host (x86-64 native): {:.2} s; at step {there} there, {home} back here\n{}",
        back_time.as_secs_f64(),
        back_report
    );
    eprintln!("migration host (x86-64 native) -> node (aarch64 translated): {:.2} s; at step {last_here} here, {there} there\n{report}", migrate_time.as_secs_f64());
}
