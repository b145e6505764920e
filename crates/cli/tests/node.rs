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

use node_support::{arm_hcontainer, lock, sh, HostAgent, KillOnDrop, AGENT_PORT, CLEAN_EXEC, JOB};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hcontainer_testbed::{BootOptions, Node, NodeImage};

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
    compile_with("gcc", src, out);
}

fn compile_with(cc: &str, src: &Path, out: &Path) {
    let o = Command::new(cc)
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(src)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("running gcc: {e}"));
    assert!(
        o.status.success(),
        "{cc} {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
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
    let image =
        NodeImage::build(&repo.join(".cache")).unwrap_or_else(|e| panic!("building the node: {e}"));
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
    let arm_hcontainer = arm_hcontainer(&repo);
    // Paths the process uses must exist on both machines: everything lives under one work
    // folder whose absolute path is recreated in the node.
    let work = common::work_dir("node-test/migrate");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("creating the work folder");
    let work = work.canonicalize().expect("canonical work folder");
    let src = work.join("migcounter.c");
    std::fs::write(&src, MIGCOUNTER_C).expect("writing migcounter.c");
    let exe = work.join("migcounter");
    compile_with("musl-gcc", &src, &exe);
    let store = work.join("store");
    let o = Command::new(common::hcontainer())
        .arg("translate")
        .arg(&exe)
        .args(["--target", "aarch64", "-o"])
        .arg(work.join("migcounter.aarch64"))
        .env("HCONTAINER_STORE", &store)
        .output()
        .expect("running hcontainer translate");
    assert!(
        o.status.success(),
        "translate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stored = std::fs::read_dir(&store)
        .expect("reading the store")
        .filter_map(|e| e.ok().map(|e| e.path().join("aarch64")))
        .find(|p| p.exists())
        .expect("the aarch64 translation in the store");

    let image =
        NodeImage::build(&repo.join(".cache")).unwrap_or_else(|e| panic!("building the node: {e}"));
    let node = image
        .boot(&BootOptions {
            forward: vec![AGENT_PORT],
            ..BootOptions::default()
        })
        .unwrap_or_else(|e| panic!("booting the node: {e}"));
    node.install(&arm_hcontainer, "/usr/bin/hcontainer", JOB)
        .expect("installing hcontainer");
    let stored_str = stored.to_str().expect("UTF-8 store path");
    node.install(&stored, stored_str, JOB)
        .expect("installing the translation at its store path");
    let out_file = work.join("count.txt");
    let out_str = out_file.to_str().expect("UTF-8 work path");
    // The node's copy of the output file, of the same size (64 bytes: two 20-digit fields).
    sh(&node, &format!("head -c 42 /dev/zero > {out_str}"));
    sh(&node, &format!("setsid hcontainer agent --listen 0.0.0.0:{AGENT_PORT} --work /root/agent >/root/agent.log 2>&1 </dev/null &"));
    wait_for(
        &node,
        "cat /root/agent.log",
        Duration::from_secs(60),
        |log| log.contains("listening on"),
    );

    // The native program here, without address randomization (the layout its translation
    // keeps), in a session of its own, with no descriptors but 0-2 and its own: whatever the
    // test runner leaves open (CLOEXEC or not) is not part of the program.
    let mut child = Command::new("setsid")
        .args(["bash", "-c", CLEAN_EXEC, "migcounter"])
        .arg(&exe)
        .arg(&out_file)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the native counter");
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
    let port = node.host_port(AGENT_PORT).expect("forwarded agent port");
    let started = Instant::now();
    let o = Command::new(common::hcontainer())
        .args([
            "migrate",
            "--pid",
            &pid.to_string(),
            "--to",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--run-as", "translated", "--recode-at", "origin", "--store"])
        .arg(&store)
        .arg("-q")
        .output()
        .expect("running hcontainer migrate");
    let migrate_time = started.elapsed();
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "migrate failed: {report}{}\nagent log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        node.run("cat /root/agent.log", JOB)
            .map(|o| o.stdout)
            .unwrap_or_default()
    );
    assert!(report.contains("aarch64 translated"), "{report}");
    let dest_pid: u32 = report
        .split("as pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no destination pid in the report:\n{report}"));

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
        stored_str,
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
    // And back: from the node to an agent on this host (10.0.2.2 from inside the node), which
    // recodes the translated images to the original program and restores it natively.
    let host_agent = HostAgent::start(&work.join("host-agent"), &store);
    let started = Instant::now();
    let back = node
        .run(
            &format!(
                "hcontainer migrate --pid {dest_pid} --to 10.0.2.2:{} --run-as native --recode-at destination -q",
                host_agent.port
            ),
            JOB,
        )
        .expect("running hcontainer migrate in the node");
    let back_time = started.elapsed();
    assert!(back.success(), "migrate back failed: {}{}", back.stdout, back.stderr);
    assert!(back.stdout.contains("x86_64 native"), "{}", back.stdout);
    let home_pid: u32 = back
        .stdout
        .split("as pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no destination pid in the report:\n{}", back.stdout));
    let _home = KillOnDrop(home_pid);
    let gone = node.run(&format!("kill -0 {dest_pid}"), JOB).expect("kill -0 in the node");
    assert!(!gone.success(), "the translated source still runs in the node");
    let there = check_migcounter(&sh(&node, &format!("cat {out_str}")));
    // It runs the original program (the store's copy of it, found by content).
    assert_eq!(
        std::fs::read(format!("/proc/{home_pid}/exe")).expect("exe of the process back home"),
        std::fs::read(&exe).expect("reading the original program"),
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
        back.stdout
    );
    eprintln!("migration host (x86-64 native) -> node (aarch64 translated): {:.2} s; at step {last_here} here, {there} there\n{report}", migrate_time.as_secs_f64());
}
