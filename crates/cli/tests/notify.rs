//! `hcontainer checkpoint --to` with real CRIU: notify brings every thread of a native
//! program to a migration point of its translation before the dump, the images restore
//! (natively, or as the translation) and the program's result is that of an uninterrupted
//! run; a notify that cannot succeed, or a binary without a translation, fails with an error
//! naming the cause and leaves the program running.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hcontainer_criu_image::{pb, ImageFile};
use hcontainer_recode::notify;

/// Four threads compute, one is blocked in `read` on a FIFO, the main thread joins them.
const THREADS: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static unsigned long results[4];
static int fifo;
static char line[64];

static void *work(void *arg) {
    long i = (long)arg;
    unsigned long x = 0x9e3779b97f4a7c15ul * (i + 1);
    for (unsigned long k = 0; k < 400000000ul; k++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        x += k * (i + 3);
    }
    results[i] = x;
    return 0;
}

static void *reader(void *arg) {
    (void)arg;
    ssize_t n = read(fifo, line, sizeof line - 1);
    line[n < 0 ? 0 : n] = 0;
    return 0;
}

int main(int argc, char **argv) {
    FILE *out = fopen(argv[1], "w");
    fifo = open(argv[2], O_RDWR);
    fprintf(out, "start\n");
    fflush(out);
    pthread_t t[5];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, work, (void *)i);
    pthread_create(&t[4], 0, reader, 0);
    for (int i = 0; i < 5; i++) pthread_join(t[i], 0);
    for (int i = 0; i < 4; i++) fprintf(out, "thread %d: %lu\n", i, results[i]);
    fprintf(out, "read: %s", line);
    fclose(out);
    return 0;
}
"#;

/// Counts into a file, one line every few milliseconds (`SEED` makes distinct binaries).
const COUNTER: &str = r#"
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    setvbuf(f, NULL, _IONBF, 0);
    for (unsigned long i = SEED;; i++) {
        fprintf(f, "%lu\n", i);
        for (volatile int k = 0; k < 200000; k++);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
"#;

/// Counts like [`COUNTER`], while a second thread spins in code it generated at run time
/// (an anonymous executable page holding `jmp .`): code no translation knows, so no
/// single-step ever reaches a migration point.
const JIT_SPIN: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
static void *spin(void *arg) {
    (void)arg;
    unsigned char *p = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 0xeb; p[1] = 0xfe;
    ((void (*)(void))p)();
    return 0;
}
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    setvbuf(f, NULL, _IONBF, 0);
    pthread_t t;
    pthread_create(&t, 0, spin, 0);
    for (unsigned long i = 0;; i++) {
        fprintf(f, "%lu\n", i);
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
"#;

/// Counts into a file like [`COUNTER`], through glibc's string functions (which glibc
/// picks at start-up for the CPU it finds).
const STRINGS: &str = r#"
#include <stdio.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    setvbuf(f, NULL, _IONBF, 0);
    char buf[256];
    for (unsigned long i = 0;; i++) {
        snprintf(buf, sizeof buf, "line %lu of a string long enough for vector code", i);
        fprintf(f, "%lu %zu\n", i, strlen(buf));
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
"#;

/// A fresh directory for one test.
fn fresh(name: &str) -> PathBuf {
    let d = common::work_dir("hct-notify").join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d).unwrap_or_else(|e| panic!("removing {}: {e}", d.display()));
    }
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

fn musl(dir: &Path, name: &str, src: &str, defines: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).expect("write source");
    let exe = dir.join(name);
    let o = Command::new("musl-gcc")
        .args(["-static", "-O2", "-pthread"])
        .args(defines)
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .expect("musl-gcc (cargo xtask setup installs musl-tools)");
    assert!(o.status.success(), "musl-gcc: {}", String::from_utf8_lossy(&o.stderr));
    exe
}

fn glibc(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).expect("write source");
    let exe = dir.join(name);
    let o = Command::new("gcc").args(["-static", "-O2"]).arg("-o").arg(&exe).arg(&c).output().expect("gcc");
    assert!(o.status.success(), "gcc: {}", String::from_utf8_lossy(&o.stderr));
    exe
}

fn hc(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::hcontainer()).args(args).output().expect("run hcontainer")
}

fn translate(exe: &Path, store: &Path) -> PathBuf {
    let out = exe.with_extension("x86_64");
    let o = hc(&[
        "translate".as_ref(),
        exe.as_os_str(),
        "--target".as_ref(),
        "x86_64".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
        "-q".as_ref(),
    ]);
    assert!(o.status.success(), "translate: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Starts `exe args…` in its own session (CRIU dumps a whole session's leader).
fn start(exe: &Path, args: &[&Path]) -> Child {
    Command::new("setsid")
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start program")
}

/// Polls `cond` every few milliseconds for up to `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn lines(path: &Path) -> usize {
    read(path).lines().count()
}

/// True while `pid` exists and none of its threads is stopped or a zombie.
fn running(pid: u32) -> bool {
    match notify::threads(pid) {
        Ok(tids) if !tids.is_empty() => tids.iter().all(|&t| matches!(notify::thread_state(pid, t), Some('R' | 'S' | 'D'))),
        _ => false,
    }
}

/// The pid of the process running `exe` (setsid may fork).
fn pid_of(child: &Child, exe: &Path) -> u32 {
    let want = std::fs::canonicalize(exe).expect("exe path");
    let mut found = None;
    wait_for(Duration::from_secs(10), "the program to start", || {
        for pid in [child.id()].into_iter().chain(notify::tree(child.id()).unwrap_or_default()) {
            if std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() == Some(want.as_path()) {
                found = Some(pid);
            }
        }
        found.is_some()
    });
    found.unwrap_or(0)
}

fn checkpoint(pid: u32, dir: &Path, to: &str, store: &Path, extra: &[&str]) -> Output {
    let pid = pid.to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "checkpoint".as_ref(),
        "--pid".as_ref(),
        pid.as_ref(),
        "-D".as_ref(),
        dir.as_os_str(),
        "--to".as_ref(),
        to.as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    hc(&args)
}

fn restore(dir: &Path) -> u32 {
    let o = hc(&["restore".as_ref(), "-D".as_ref(), dir.as_os_str(), "-d".as_ref()]);
    assert!(o.status.success(), "restore: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    text.split("running as pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text}"))
}

/// Every thread's instruction pointer in the images of `dir` (`core-<tid>.img`).
fn dumped_ips(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("images dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("core-") {
            continue;
        }
        let core = ImageFile::read(&e.path()).expect("core image").decode_all::<pb::CoreEntry>().expect("decode core");
        let ip = core.first().and_then(|c| c.thread_info.as_ref()).map(|t| t.gpregs.ip).expect("x86-64 registers");
        out.push((name, ip));
    }
    out.sort();
    out
}

fn no_scratch_left(dir: &Path) {
    let parent = dir.parent().expect("parent");
    let left: Vec<String> = std::fs::read_dir(parent)
        .expect("parent dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("hcontainer-tmp"))
        .collect();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs [`THREADS`] uninterrupted, then again with a checkpoint and restore for each target
/// of `hops` in turn (the first while its threads compute and one waits in `read`), and
/// compares the results.
fn threads_case(name: &str, hops: &[&str]) {
    let d = fresh(name);
    let store = d.join("store");
    let exe = musl(&d, "threads", THREADS, &[]);
    let translated = translate(&exe, &store);
    let meta = notify::read_meta(&translated).expect("read metadata").expect("a translation has metadata");
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());

    // The uninterrupted run.
    let reference = d.join("reference.txt");
    let mut child = start(&exe, &[&reference, &fifo]);
    wait_for(Duration::from_secs(10), "the reference run to start", || read(&reference).starts_with("start"));
    std::fs::write(&fifo, "hello\n").expect("write fifo");
    assert!(child.wait().expect("wait").success());
    let expected = read(&reference);
    assert!(expected.contains("read: hello") && expected.lines().count() == 6, "{expected}");

    let out = d.join("out.txt");
    let child = start(&exe, &[&out, &fifo]);
    let mut pid = pid_of(&child, &exe);
    wait_for(Duration::from_secs(10), "six threads", || notify::threads(pid).map(|t| t.len()).ok() == Some(6));
    wait_for(Duration::from_secs(10), "the output file", || read(&out).starts_with("start"));
    // Reap the source as soon as the checkpoint ends it (the restore needs its pid).
    let reaper = std::thread::spawn(move || { let mut child = child; child.wait() });
    let mut from = "native";
    for (i, to) in hops.iter().enumerate() {
        let images = d.join(format!("images-{i}-{to}"));
        let o = checkpoint(pid, &images, to, &store, &[]);
        assert!(o.status.success(), "checkpoint {from} -> {to}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("notify: 6 threads at migration points"), "hop {i} {from} -> {to}: {text}");
        wait_for(Duration::from_secs(10), "the source to end", || !running(pid));
        no_scratch_left(&images);
        let timings: serde_json::Value =
            serde_json::from_str(&read(&images.join("hcontainer-timings-dump.json"))).expect("timings JSON");
        assert_eq!(timings["threads"], 6, "{timings}");
        assert!(timings["notify_us"].as_u64().is_some() && timings["rss_kib"].as_u64().is_some(), "{timings}");
        assert_eq!(timings["recode_us"].as_u64().is_some(), *to != from, "{timings}");

        if from == "native" {
            // The native dump: in the directory itself, or kept inside as the recoded images'
            // parent.
            let dump = if *to == "native" { images.clone() } else { images.join("native") };
            let ips = dumped_ips(&dump);
            assert_eq!(ips.len(), 6, "{ips:?}");
            for (name, ip) in &ips {
                assert!(meta.is_point(*ip), "{name}: rip {ip:#x} is no migration point of {}", translated.display());
            }
            let main = ImageFile::read(&dump.join(format!("core-{pid}.img")))
                .expect("main core")
                .decode_all::<pb::CoreEntry>()
                .expect("decode");
            assert_eq!(main[0].tc.as_ref().map(|tc| tc.task_state), Some(1), "the task is recorded alive");
        }
        assert_eq!(read(&out), "start\n", "the results came before the last restore");
        pid = restore(&images);
        from = to;
        // Let the restored process compute a little before the next hop.
        std::thread::sleep(Duration::from_millis(200));
        assert!(running(pid), "the process restored for {to} is not running");
    }
    std::fs::write(&fifo, "hello\n").expect("write fifo");
    wait_for(Duration::from_secs(120), "the restored run to finish", || read(&out).contains("read:"));
    wait_for(Duration::from_secs(10), "the restored process to exit", || !running(pid));
    assert_eq!(read(&out), expected);
    assert!(reaper.join().is_ok());
}

#[test]
fn threads_reach_migration_points_and_restore_natively() {
    threads_case("threads-native", &["native"]);
}

/// native → x86_64 (recode), x86_64 → x86_64 (the image of parked threads as it is: the
/// restore resumes them), x86_64 → native (translated notify, recode back).
#[test]
fn threads_go_native_to_x86_64_and_back() {
    threads_case("threads-x86_64", &["x86_64", "x86_64", "native"]);
}

#[test]
fn native_counter_continues_as_its_x86_64_translation() {
    let d = fresh("to-x86_64");
    let store = d.join("store");
    let exe = musl(&d, "counter", COUNTER, &["-DSEED=0"]);
    let translated = translate(&exe, &store);
    let out = d.join("out.txt");
    let child = start(&exe, &[&out]);
    let pid = pid_of(&child, &exe);
    wait_for(Duration::from_secs(10), "some counting", || lines(&out) > 5);
    let images = d.join("images");
    let reaper = std::thread::spawn(move || { let mut child = child; child.wait() });
    let o = checkpoint(pid, &images, "x86_64", &store, &[]);
    assert!(o.status.success(), "checkpoint: {}", stderr(&o));
    assert!(reaper.join().is_ok());
    no_scratch_left(&images);
    // The native dump is kept inside, as the CRIU parent of the recoded images.
    assert_eq!(std::fs::read_link(images.join("parent")).expect("parent link"), Path::new("native"));
    assert!(images.join("native/inventory.img").exists());
    let timings: serde_json::Value =
        serde_json::from_str(&read(&images.join("hcontainer-timings-dump.json"))).expect("timings JSON");
    assert!(timings["recode_us"].as_u64().is_some(), "{timings}");

    let before = lines(&out);
    let restored = restore(&images);
    wait_for(Duration::from_secs(20), "counting after the restore", || lines(&out) >= before + 10);
    let exe_link = std::fs::read_link(format!("/proc/{restored}/exe"));
    notify::kill(&[restored], Duration::from_secs(5));
    let stored = store.join(hcontainer_recode::store::sha256_file(&exe).expect("hash")).join("x86_64");
    assert_eq!(exe_link.expect("exe link"), std::fs::canonicalize(&stored).expect("stored path"));
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).expect("size");
    assert_eq!(size(&stored), size(&translated), "the store holds the translation made above");
    let numbers: Vec<u64> = read(&out).lines().map(|l| l.parse().expect("a number")).collect();
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i}: no gap or repeat across the migration");
    }
}

#[test]
fn unreachable_migration_point_fails_and_the_program_runs_on() {
    let d = fresh("unreachable");
    let store = d.join("store");
    let exe = musl(&d, "jit", JIT_SPIN, &[]);
    translate(&exe, &store);
    let out = d.join("out.txt");
    let mut child = start(&exe, &[&out]);
    let pid = pid_of(&child, &exe);
    wait_for(Duration::from_secs(10), "two threads and some counting", || {
        notify::threads(pid).map(|t| t.len()).ok() == Some(2) && lines(&out) > 3
    });
    let spinner = *notify::threads(pid).expect("threads").iter().find(|&&t| t != pid).expect("second thread");
    let images = d.join("images");
    let o = checkpoint(pid, &images, "native", &store, &["--notify-steps", "2000"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "a checkpoint succeeded: {}", String::from_utf8_lossy(&o.stdout));
    assert!(err.contains(&format!("pid {pid} thread {spinner} reached no migration point within 2000 single-steps")), "{err}");
    assert!(err.contains("stopped at rip 0x") && err.contains("left running"), "{err}");
    assert!(!images.exists(), "an images directory was made");
    no_scratch_left(&images);
    assert!(running(pid), "the program was not left running");
    let n = lines(&out);
    wait_for(Duration::from_secs(10), "the program to go on counting", || lines(&out) > n + 3);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn binary_without_translation_fails_clearly_and_runs_on() {
    let d = fresh("untranslated");
    let store = d.join("store");
    let exe = musl(&d, "counter", COUNTER, &["-DSEED=7"]);
    let out = d.join("out.txt");
    let mut child = start(&exe, &[&out]);
    let pid = pid_of(&child, &exe);
    wait_for(Duration::from_secs(10), "some counting", || lines(&out) > 3);
    let images = d.join("images");
    let o = checkpoint(pid, &images, "native", &store, &[]);
    let err = stderr(&o);
    assert!(!o.status.success());
    let sha = hcontainer_recode::store::sha256_file(&exe).expect("hash");
    assert!(err.contains("has no translation in the store") && err.contains(&sha), "{err}");
    assert!(err.contains(&format!("hcontainer translate {}", std::fs::canonicalize(&exe).expect("path").display())), "{err}");
    assert!(!images.exists());
    assert!(running(pid));
    let n = lines(&out);
    wait_for(Duration::from_secs(10), "the program to go on counting", || lines(&out) > n + 3);
    let _ = child.kill();
    let _ = child.wait();
    let seen: BTreeSet<u64> = read(&out).lines().filter_map(|l| l.parse().ok()).collect();
    assert!(seen.contains(&7));
}

/// A glibc program started natively without `hcontainer run` chose its string routines for
/// this CPU. On a CPU with AVX2 those are outside what the translation covers: after a hop
/// the translated process stops at the first one, saying why and how to start it instead.
/// On a CPU without AVX2 glibc picked the baseline routines and the program counts on.
#[test]
fn native_start_without_run_reports_uncovered_cpu_features_after_a_hop() {
    let d = fresh("without-run");
    let store = d.join("store");
    let exe = glibc(&d, "strings", STRINGS);
    translate(&exe, &store);
    let out = d.join("out.txt");
    let err = d.join("err.txt");
    let child = Command::new("setsid")
        .arg(&exe)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start program");
    let pid = pid_of(&child, &exe);
    wait_for(Duration::from_secs(10), "some counting", || lines(&out) > 5);
    let reaper = std::thread::spawn(move || { let mut child = child; child.wait() });
    let images = d.join("images");
    let o = checkpoint(pid, &images, "x86_64", &store, &[]);
    assert!(o.status.success(), "checkpoint: {}", stderr(&o));
    assert!(reaper.join().is_ok());
    let before = lines(&out);
    let restored = restore(&images);
    let avx2 = read(Path::new("/proc/cpuinfo")).split_whitespace().any(|w| w == "avx2");
    if avx2 {
        wait_for(Duration::from_secs(20), "the translated process to stop", || !running(restored));
        let text = read(&err);
        assert!(text.contains("hcontainer: unsupported instruction at 0x"), "{text}");
        assert!(text.contains("migrated from a native run") && text.contains("hcontainer run"), "{text}");
        assert!(lines(&out) <= before + 1, "it went on counting past an uncovered routine");
    } else {
        wait_for(Duration::from_secs(20), "counting after the restore", || lines(&out) >= before + 10);
        notify::kill(&[restored], Duration::from_secs(5));
        assert_eq!(read(&err), "");
    }
}
