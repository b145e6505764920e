//! Shared machinery of the migration tests (`crates/cli/tests/hops.rs`, `kv.rs`): compiling
//! the C programs of `tests/migrate` (static, glibc or musl), translating them into a private
//! translation store, starting them with `hcontainer run`, moving a running process between
//! native and translated execution with `hcontainer checkpoint` + `hcontainer restore`, and
//! waiting for it with bounded polls.
//!
//! A migrated process is not a child of the test: CRIU restores it detached, so it is
//! followed through `/proc/PID` (CRIU keeps the pid across every hop).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The original x86-64 executable, natively.
    Native,
    /// Its translation for x86-64 hosts.
    X86_64,
}

impl Side {
    /// The name `--to` takes.
    pub fn name(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::X86_64 => "x86_64",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Native => Side::X86_64,
            Side::X86_64 => Side::Native,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The C library a test program is linked with.
pub use hcontainer_testbed::cc::Libc;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `hcontainer` binary under test.
pub fn hcontainer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hcontainer"))
}

/// `target/migrate`, where compiled programs, translations and the store live.
pub fn migrate_dir() -> PathBuf {
    let dir = repo_root().join("target/migrate");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// A fresh, empty scratch directory `target/migrate/runs/<name>.<pid of the test>` (unique,
/// so that concurrent runs of a test do not share images or output files); remove it with
/// [`done`] when the test passed, to keep it for inspection when it failed.
pub fn scratch(name: &str) -> PathBuf {
    let dir = migrate_dir().join("runs").join(format!("{name}.{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("emptying {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Removes a passed test's scratch directory (images can be large).
pub fn done(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// The translation store the tests use (`--store` / `HCONTAINER_STORE`).
pub fn store_dir() -> PathBuf {
    migrate_dir().join("store")
}

/// Compiles `tests/migrate/<name>.c` statically with `libc` into [`migrate_dir`]; cached by
/// source hash (see [`hcontainer_testbed::cc::compile_cached`]).
pub fn compile(name: &str, libc: Libc) -> PathBuf {
    let src = repo_root().join("tests/migrate").join(format!("{name}.c"));
    hcontainer_testbed::cc::compile_cached(libc, &src, &[], &migrate_dir()).unwrap_or_else(|e| panic!("{e}"))
}

/// Held while a program is translated (see [`translate_into_store`]): tests of one binary
/// run in parallel and may want the same translation at once.
static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Translates `exe` for x86-64 hosts with `hcontainer translate --store`, so that a
/// checkpoint of `exe` finds its translation. Returns the translated executable.
pub fn translate_into_store(exe: &Path) -> PathBuf {
    let out = PathBuf::from(format!("{}.x86_64", exe.display()));
    let _one = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    static DONE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if done.contains(&out) {
        return out;
    }
    let o = Command::new(hcontainer())
        .arg("translate")
        .arg(exe)
        .args(["--target", "x86_64", "-q", "--store"])
        .arg(store_dir())
        .arg("-o")
        .arg(&out)
        .output()
        .expect("hcontainer translate");
    assert!(
        o.status.success(),
        "hcontainer translate {}: {}{}",
        exe.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    done.push(out.clone());
    out
}

/// A program's run: the `hcontainer run` child (until the first checkpoint ends it) and the
/// program's pid, which every restore keeps.
pub struct Running {
    pub pid: u32,
    launcher: Child,
    /// The program's native executable (what `/proc/PID/exe` shows while native).
    pub exe: PathBuf,
    pub dir: PathBuf,
}

/// Starts `exe args…` with `hcontainer run` in `dir`, stdout into `dir/stdout.txt` and stderr
/// into `dir/stderr.txt`, and waits until the program itself runs.
pub fn start(exe: &Path, args: &[&str], dir: &Path) -> Running {
    let stdout = std::fs::File::create(dir.join("stdout.txt")).expect("stdout file");
    let stderr = std::fs::File::create(dir.join("stderr.txt")).expect("stderr file");
    // A session of its own: CRIU cannot dump a process whose session leader lies outside
    // its pid namespace, as the test runner's does inside a container. `setsid` execs in
    // place (a spawned child leads no process group), so the launcher keeps its pid.
    let launcher = Command::new("setsid")
        .arg(hcontainer())
        .arg("run")
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .env("HCONTAINER_STORE", store_dir())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("hcontainer run");
    // `hcontainer run` replaces itself with the program: same pid, once it runs the program.
    let want = std::fs::canonicalize(exe).expect("canonical exe");
    let pid = launcher.id();
    poll(Duration::from_secs(20), || (std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() == Some(want.as_path())).then_some(()))
        .unwrap_or_else(|| panic!("{} did not start under hcontainer run", exe.display()));
    Running { pid, launcher, exe: exe.to_path_buf(), dir: dir.to_path_buf() }
}

/// Calls `f` every 10 ms until it returns `Some` or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// The executable `pid` runs.
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// A description of `pid` for a failure message: its executable and, per thread, its state,
/// kernel wait channel and `/proc/…/syscall` line.
pub fn describe(pid: u32) -> String {
    let mut text = format!("pid {pid} runs {:?}", exe_of(pid));
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return text;
    };
    let mut tids: Vec<u32> = tasks.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    for tid in tids {
        let base = format!("/proc/{pid}/task/{tid}");
        let state = std::fs::read_to_string(format!("{base}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')))
            .unwrap_or('?');
        let wchan = std::fs::read_to_string(format!("{base}/wchan")).unwrap_or_default();
        let syscall = std::fs::read_to_string(format!("{base}/syscall")).unwrap_or_default();
        text.push_str(&format!("\n  tid {tid}: state {state}, wchan {wchan}, syscall {}", syscall.trim()));
    }
    text
}

/// What one hop did and how long each step took.
#[derive(Clone, Debug)]
pub struct Hop {
    pub to: Side,
    pub checkpoint: Duration,
    pub restore: Duration,
    /// The images directory that was restored.
    pub images: PathBuf,
}

fn run_cli(args: &[&std::ffi::OsStr]) -> Result<(Duration, String), String> {
    let start = Instant::now();
    let o = Command::new(hcontainer())
        .args(args)
        .env("HCONTAINER_STORE", store_dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("hcontainer: {e}"))?;
    let took = start.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let line: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    if !o.status.success() {
        return Err(format!("`hcontainer {}` failed ({}): {}", line.join(" "), o.status, text.trim()));
    }
    Ok((took, text))
}

/// Reaps `pid` if it is a dead child of this process.
fn reap_if_ours(pid: u32) {
    let _ = poll(Duration::from_secs(10), || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
        let Some(status) = status else { return Some(()) };
        let ppid: Option<u32> = status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok());
        if ppid != Some(std::process::id()) {
            return Some(());
        }
        let mut st = 0;
        // SAFETY: waitpid on our own child, the status into a local.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut st, libc::WNOHANG) };
        (r == pid as libc::pid_t).then_some(())
    });
}

/// Moves the running process `pid` to `to`: `hcontainer checkpoint --to` (notify, dump,
/// recode) into `images` (a new directory), then `hcontainer restore --detach` of it.
pub fn hop(pid: u32, images: &Path, to: Side) -> Result<Hop, String> {
    let pid_s = pid.to_string();
    let (checkpoint, _) = run_cli(&[
        "checkpoint".as_ref(),
        "--pid".as_ref(),
        pid_s.as_ref(),
        "-D".as_ref(),
        images.as_os_str(),
        "--to".as_ref(),
        to.name().as_ref(),
        "--store".as_ref(),
        store_dir().as_os_str(),
        "--shell-job".as_ref(),
        "-q".as_ref(),
    ])?;
    // The checkpoint killed the source; its pid must be free (gone, reaped) before CRIU
    // restores the process under the same pid. Until its first restore the program is our
    // child (`hcontainer run` replaced itself with it): reaping it is ours.
    reap_if_ours(pid);
    if poll(Duration::from_secs(10), || (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())).is_none() {
        return Err(format!("pid {pid} still exists 10 s after `hcontainer checkpoint --to {to}`"));
    }
    let (restore, _) = run_cli(&[
        "restore".as_ref(),
        "-D".as_ref(),
        images.as_os_str(),
        "--detach".as_ref(),
        "--shell-job".as_ref(),
        "-q".as_ref(),
    ])?;
    Ok(Hop { to, checkpoint, restore, images: images.to_path_buf() })
}

/// Moves the running native process `pid` to its x86-64 translation in three commands:
/// `hcontainer checkpoint` (plain CRIU dump, no notify) into `images/dump`, `hcontainer
/// recode --to x86_64` into `images/x86_64`, `hcontainer restore --detach`. Without notify
/// this holds only for a process stopped in a system call (a migration point).
pub fn hop_two_step(pid: u32, images: &Path) -> Result<Hop, String> {
    let pid_s = pid.to_string();
    let dump = images.join("dump");
    let recoded = images.join("x86_64");
    let (dumped, _) = run_cli(&[
        "checkpoint".as_ref(),
        "--pid".as_ref(),
        pid_s.as_ref(),
        "-D".as_ref(),
        dump.as_os_str(),
        "--shell-job".as_ref(),
        "-q".as_ref(),
    ])?;
    reap_if_ours(pid);
    let (recode, _) = run_cli(&[
        "recode".as_ref(),
        "-D".as_ref(),
        dump.as_os_str(),
        "--to".as_ref(),
        "x86_64".as_ref(),
        "-o".as_ref(),
        recoded.as_os_str(),
        "--store".as_ref(),
        store_dir().as_os_str(),
    ])?;
    let (restore, _) = run_cli(&[
        "restore".as_ref(),
        "-D".as_ref(),
        recoded.as_os_str(),
        "--detach".as_ref(),
        "--shell-job".as_ref(),
        "-q".as_ref(),
    ])?;
    Ok(Hop { to: Side::X86_64, checkpoint: dumped + recode, restore, images: recoded })
}

impl Running {
    /// Waits until the program has exited (it is no child of ours once restored, so only its
    /// disappearance is seen), at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let pid = self.pid;
        let gone = poll(limit, || (!alive(pid)).then_some(())).is_some();
        let _ = self.launcher.try_wait();
        gone
    }

    /// Kills the program (whatever it runs as now) and reaps the launcher.
    pub fn kill(&mut self) {
        if alive(self.pid) {
            let _ = Command::new("kill").args(["-9", &self.pid.to_string()]).status();
        }
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// splitmix64: the seeded generator for the moments of the hops.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from `HCT_SEED` if set, else from the clock; prints the seed.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("HCT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("{what}: seed {seed} (rerun with HCT_SEED={seed})");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// A duration uniformly in `[lo, hi)`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_micros().max(1) as u64;
        lo + Duration::from_micros(self.next() % span)
    }
}

/// Runs `exe args…` natively in `dir` (uninterrupted reference run), stdout into
/// `dir/stdout.txt`, at most `limit`.
pub fn reference_run(exe: &Path, args: &[&str], dir: &Path, limit: Duration) {
    let stdout = std::fs::File::create(dir.join("stdout.txt")).expect("stdout file");
    let mut child = Command::new(hcontainer())
        .arg("run")
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hcontainer run");
    let status = poll(limit, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("reference run of {} took more than {limit:?}", exe.display());
    };
    assert!(status.success(), "reference run of {}: {status}", exe.display());
}

/// Every regular file directly in `dir` (name → contents), except the test's own.
pub fn files_of(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_ok_and(|t| t.is_file()) && name != "stderr.txt" {
            files.insert(name, std::fs::read(e.path()).expect("read file"));
        }
    }
    files
}
