//! Shared machinery of the recode tests: a small C program (a main thread and optional worker
//! threads, each writing numbered lines with floating-point values to its own file, with a
//! 10 ms sleep between lines), built static with glibc or musl, translated into a private
//! store, started natively in the migratable configuration, and bounded polls on its output.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hcontainer_criu::Criu;
use hcontainer_recode::store::{sha256_file, Store};

pub const ITERATIONS: u32 = 500;

pub const WORKER: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static const char *prefix;
static int iters;
static void *work(void *arg) {
    long k = (long)arg;
    char path[4096];
    snprintf(path, sizeof path, "%s.%ld", prefix, k);
    FILE *f = fopen(path, "w");
    setvbuf(f, NULL, _IONBF, 0);
    double x = 1.0 + k;
    for (int i = 0; i < iters; i++) {
        x = x * 1.0001 + 0.5;
        fprintf(f, "%d %.6f\n", i, x);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fclose(f);
    return NULL;
}
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    prefix = argv[1];
    int n = atoi(argv[2]);
    iters = atoi(argv[3]);
    pthread_t t[16];
    for (long k = 1; k <= n && k <= 16; k++) pthread_create(&t[k - 1], NULL, work, (void *)k);
    work((void *)0);
    for (long k = 1; k <= n && k <= 16; k++) pthread_join(t[k - 1], NULL);
    return 0;
}
"#;

/// The C library the program is linked with.
pub use hcontainer_testbed::cc::Libc;

/// A built and translated test program with its store.
pub struct Env {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub native: PathBuf,
    pub sha: String,
    pub store: Store,
    pub criu: Criu,
    pub aarch64: Option<PathBuf>,
}

impl Env {
    /// Builds the program for `libc`, translates it for x86-64 (and for arm64 when `arm64`)
    /// into a fresh store.
    pub fn new(libc: Libc, arm64: bool) -> Env {
        Env::with_source(libc, WORKER, arm64)
    }

    /// As [`Env::new`], for the program `source`.
    pub fn with_source(libc: Libc, source: &str, arm64: bool) -> Env {
        let criu = Criu::locate(None).expect("CRIU (cargo xtask setup installs it)");
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let src = dir.join("worker.c");
        std::fs::write(&src, source).expect("write source");
        let native = dir.join(format!("worker-{}", libc.name()));
        hcontainer_testbed::cc::compile(libc, &src, &[], &native).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(Some(&dir.join("store"))).expect("store");
        let sha = sha256_file(&native).expect("hash");
        let mut isas = vec![hcontainer_translate::HostIsa::X86_64];
        if arm64 {
            isas.push(hcontainer_translate::HostIsa::Aarch64);
        }
        let mut aarch64 = None;
        for isa in isas {
            let out = dir.join(format!("worker.{}", isa.name()));
            hcontainer_translate::translate_file(&native, isa, &out, &mut |_| {}).expect("translate");
            let stored = store.put(&sha, isa.name(), &out).expect("store put");
            if isa == hcontainer_translate::HostIsa::Aarch64 {
                aarch64 = Some(stored);
            }
        }
        Env { _tmp: tmp, dir, native, sha, store, criu, aarch64 }
    }

    pub fn store_path(&self, name: &str) -> PathBuf {
        self.store.root().join(&self.sha).join(name)
    }

    /// Starts the program natively in the migratable configuration, as a session leader
    /// (what CRIU dumps without --shell-job), writing to `out.<k>`.
    pub fn start(&self, out: &Path, threads: u32) -> std::process::Child {
        let args = [out.as_os_str().to_owned(), threads.to_string().into(), ITERATIONS.to_string().into()];
        let mut plan = hcontainer_recode::launch::plan(&self.native, &args).expect("plan");
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) and close_range(2) are async-signal-safe and touch no memory.
        // Descriptors the test harness inherited (cargo's job server pipes) would be external
        // pipes to CRIU.
        unsafe {
            plan.command.pre_exec(|| {
                libc::setsid();
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            })
        };
        // Not reaped in the background: a wait from the test process would take the ptrace
        // stops the notify waits for. The caller reaps it after the dump.
        plan.command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the program")
    }

    /// The output of an uninterrupted native run.
    pub fn uninterrupted(&self, threads: u32) -> Vec<String> {
        let out = self.dir.join("reference");
        let ok = Command::new(&self.native)
            .arg(&out)
            .arg(threads.to_string())
            .arg(ITERATIONS.to_string())
            .status()
            .expect("reference run");
        assert!(ok.success());
        outputs(&out, threads)
    }
}

pub fn outputs(prefix: &Path, threads: u32) -> Vec<String> {
    (0..=threads)
        .map(|k| {
            let p = PathBuf::from(format!("{}.{k}", prefix.display()));
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// Lines written so far by all threads together.
pub fn total_lines(prefix: &Path, threads: u32) -> usize {
    (0..=threads)
        .map(|k| std::fs::read_to_string(format!("{}.{k}", prefix.display())).map(|s| s.lines().count()).unwrap_or(0))
        .sum()
}

/// Waits until every thread's file has at least `n` lines (or the total has when … ), 30 s at most.
pub fn wait_lines(prefix: &Path, threads: u32, n: usize) {
    let start = Instant::now();
    while total_lines(prefix, threads) < n {
        assert!(start.elapsed() < Duration::from_secs(30), "output stuck at {} lines", total_lines(prefix, threads));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `pid` is gone or a zombie.
pub fn wait_exit(pid: u32, limit: Duration) {
    let start = Instant::now();
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(s) if s.contains(") Z ") => return,
            Ok(_) => {}
        }
        if start.elapsed() > limit {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("pid {pid} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CRIU's `crit`, from the private CRIU prefix the set-up installs.
pub fn crit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/criu/bin/crit")
}

/// `crit decode` accepts the core, mm, pagemap and files images of `dir`.
pub fn crit_decodes(dir: &Path) {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("core-") || name.starts_with("mm-") || name.starts_with("pagemap-") || name == "files.img";
        if !ours {
            continue;
        }
        let out = Command::new(crit()).args(["decode", "-i"]).arg(e.path()).output().expect("run crit");
        assert!(out.status.success(), "crit decode {name}: {}", String::from_utf8_lossy(&out.stderr));
        n += 1;
    }
    assert!(n >= 4, "only {n} images decoded in {}", dir.display());
}

/// Waits until `pid` no longer exists (a dumped task is killed by CRIU and reaped by its
/// parent; a restore needs the pid free), 20 s at most.
pub fn wait_gone(pid: u32) {
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "pid {pid} still exists after its dump");
        std::thread::sleep(Duration::from_millis(10));
    }
}
