//! The guest's signal handlers survive native → translated → native: recode writes them
//! into the runtime's guest signal table going translated (the host keeps the default
//! action meanwhile) and reads them back from the translated process's memory going native,
//! where the handler then runs on a real signal (on the guest's alternate stack, carried
//! the same way). Each thread's alternate stack is its own: the program's two threads check
//! theirs all along, native and translated.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use hcontainer_abi::meta::HostIsa;
use hcontainer_criu_image::pb::CoreEntry;
use hcontainer_criu_image::ImageFile;
use hcontainer_recode::notify;
use hcontainer_recode::{recode, Target};

const HANDLER: &str = r#"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_usr1(int sig) { (void)sig; got = 1; }
static char alt[65536], alt2[32768];
static volatile int bad;
static int same(const char *sp, size_t size) {
    stack_t cur;
    sigaltstack(NULL, &cur);
    return cur.ss_sp == sp && cur.ss_size == size && cur.ss_flags == 0;
}
static void *worker(void *arg) {
    (void)arg;
    stack_t ss = {.ss_sp = alt2, .ss_size = sizeof alt2, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    for (;;) {
        if (!same(alt2, sizeof alt2)) bad = 2;
        struct timespec ts = {0, 3 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
int main(int argc, char **argv) {
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    FILE *f = fopen(argv[1], "w");
    setvbuf(f, NULL, _IONBF, 0);
    for (unsigned long i = 0; i < 3000; i++) {
        if (got) { fprintf(f, "signal\n"); got = 0; }
        if (!same(alt, sizeof alt)) bad = 1;
        if (bad) { fprintf(f, "bad altstack in thread %d\n", bad); bad = 0; }
        fprintf(f, "%lu\n", i);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
"#;

const SIGUSR1: usize = 10;

fn handler_of(dir: &Path, pid: u32) -> u64 {
    let f = ImageFile::read(&dir.join(format!("core-{pid}.img"))).expect("core image");
    let c: CoreEntry = f.entries()[0].decode().expect("core");
    // CRIU leaves out SIGKILL (9): SIGUSR1 (10) is entry 8.
    c.tc.expect("task core").sigactions[SIGUSR1 - 2].sigaction
}

/// A thread's alternate signal stack in the image: (sp, size, flags).
fn altstack_of(dir: &Path, tid: u32) -> (u64, u64, u32) {
    let f = ImageFile::read(&dir.join(format!("core-{tid}.img"))).expect("core image");
    let c: CoreEntry = f.entries()[0].decode().expect("core");
    let s = c.thread_core.expect("thread core").sas.expect("sigaltstack");
    (s.ss_sp, s.ss_size, s.ss_flags)
}

/// The thread id of the image's other thread.
fn worker_of(dir: &Path, pid: u32) -> u32 {
    let tids: Vec<u32> = std::fs::read_dir(dir)
        .expect("images dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("core-")?.strip_suffix(".img")?.parse().ok())
        .filter(|&t| t != pid)
        .collect();
    assert_eq!(tids.len(), 1, "two threads: {tids:?}");
    tids[0]
}

fn hop(env: &Env, pid: u32, name: &str, to: Target) -> std::path::PathBuf {
    let procs = notify::classify_tree(pid, &env.store, None).expect("classify");
    notify::notify(&procs, Default::default()).expect("notify");
    let dump = env.dir.join(format!("{name}.dump"));
    let mut opts = hcontainer_criu::DumpOptions::new(pid, &dump);
    opts.tcp_established = false;
    env.criu.dump(&opts).expect("criu dump");
    wait_gone(pid);
    let out = env.dir.join(name);
    recode(&dump, to, &env.store, &out).expect("recode");
    let mut ro = hcontainer_criu::RestoreOptions::new(&out, true);
    ro.tcp_established = false;
    assert_eq!(env.criu.restore(&ro).expect("criu restore").pid, pid);
    out
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn wait_for(p: &Path, what: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    while !what(&lines(p)) {
        assert!(start.elapsed() < Duration::from_secs(30), "output {:?}", lines(p).last());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn guest_signal_handler_survives_a_round_trip() {
    let env = Env::with_source(Libc::Musl, HANDLER, false);
    let out = env.dir.join("run");
    let mut child = env.start(&out, 0);
    let pid = child.id();
    let out0 = std::path::PathBuf::from(format!("{}", out.display()));
    wait_for(&out0, |l| l.len() >= 5);
    let procs = notify::classify_tree(pid, &env.store, None).expect("classify");
    notify::notify(&procs, Default::default()).expect("notify");
    let dump = env.dir.join("first.dump");
    let mut opts = hcontainer_criu::DumpOptions::new(pid, &dump);
    opts.tcp_established = false;
    env.criu.dump(&opts).expect("criu dump");
    let _ = child.wait();
    wait_gone(pid);
    let handler = handler_of(&dump, pid);
    assert!(handler > 1, "the native image has the guest handler");
    let t = env.dir.join("translated");
    recode(&dump, Target::Translated(HostIsa::X86_64), &env.store, &t).expect("recode");
    assert_eq!(handler_of(&t, pid), 0, "the host keeps the default action while translated");
    let alt = altstack_of(&dump, pid);
    assert_eq!((alt.1, alt.2), (65536, 0), "the native image has the guest's alternate stack");
    assert_eq!(altstack_of(&t, pid).2, 2, "the host has none while translated (SS_DISABLE)");
    let worker = worker_of(&dump, pid);
    let alt2 = altstack_of(&dump, worker);
    assert_eq!((alt2.1, alt2.2), (32768, 0), "the second thread's own alternate stack");
    assert_ne!(alt2.0, alt.0);
    assert_eq!(altstack_of(&t, worker).2, 2, "none on the host for the second thread either");
    let mut ro = hcontainer_criu::RestoreOptions::new(&t, true);
    ro.tcp_established = false;
    assert_eq!(env.criu.restore(&ro).expect("criu restore").pid, pid);
    let n = lines(&out0).len();
    wait_for(&out0, |l| l.len() >= n + 5);
    let back = hop(&env, pid, "native", Target::Native);
    assert_eq!(handler_of(&back, pid), handler, "the guest handler read back from the runtime");
    assert_eq!(altstack_of(&back, pid), alt, "the guest's alternate stack read back from the runtime");
    assert_eq!(altstack_of(&back, worker), alt2, "the second thread's, read back from its record");
    let n = lines(&out0).len();
    wait_for(&out0, |l| l.len() >= n + 3);
    // SAFETY: kill(2) with a pid this test started and a plain signal number.
    assert_eq!(unsafe { libc::kill(pid as i32, SIGUSR1 as i32) }, 0);
    wait_for(&out0, |l| l.iter().any(|x| x == "signal"));
    let n = lines(&out0).len();
    wait_for(&out0, |l| l.len() >= n + 3);
    // SAFETY: as above, SIGKILL.
    let _ = unsafe { libc::kill(pid as i32, 9) };
    wait_exit(pid, Duration::from_secs(10));
    let bad: Vec<String> = lines(&out0).into_iter().filter(|l| l.starts_with("bad")).collect();
    assert!(bad.is_empty(), "a thread saw another alternate stack than it set: {bad:?}");
    let numbers: Vec<u64> = lines(&out0).iter().filter(|l| *l != "signal").map(|l| l.parse().expect("number")).collect();
    for (i, n) in numbers.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i}");
    }
}
