//! Shared machinery of the end-to-end tests: compiling C programs into a cache keyed by source
//! hash, running programs natively or under qemu-user in a fresh directory with a fixed
//! environment and a time limit, translating with `hcontainer translate`, and comparing what
//! two runs did (stdout, stderr, exit status, files left in the working directory).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Host ISAs that `hcontainer translate` targets.
pub const TARGETS: [&str; 3] = ["x86_64", "aarch64", "riscv64"];

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A directory under `target/` for this test binary's artefacts.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target").join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The `hcontainer` binary under test.
pub fn hcontainer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hcontainer"))
}

/// FNV-1a, 64 bits: cache keys of compiled programs.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for &b in *p {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100000001b3);
    }
    h
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Exit(i32),
    Signal(i32),
    Timeout,
    /// Killed for using more resident memory than the limit (bytes).
    MemoryLimit(u64),
    /// The program could not be started at all.
    NotStarted(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exit(c) => write!(f, "exit {c}"),
            Status::Signal(s) => write!(f, "signal {s}"),
            Status::Timeout => write!(f, "timeout"),
            Status::MemoryLimit(b) => write!(f, "killed above {} MiB resident", b >> 20),
            Status::NotStarted(e) => write!(f, "not started: {e}"),
        }
    }
}

/// Everything a run did that the tests compare.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Status,
    /// Files in the working directory after the run (relative path → contents).
    pub files: BTreeMap<String, Vec<u8>>,
    pub elapsed: Duration,
}

/// How to start a program.
#[derive(Clone, Debug)]
pub struct RunSpec<'a> {
    pub exe: &'a Path,
    /// `None`: run directly; `Some("qemu-aarch64")`: under that emulator.
    pub emulator: Option<&'a str>,
    pub argv0: &'a str,
    pub args: &'a [String],
    pub stdin: &'a [u8],
    /// Files created in the working directory before the run.
    pub input_files: &'a [(&'a str, &'a [u8])],
    pub timeout: Duration,
}

/// The emulator that runs a translation for `target` on this x86-64 machine.
pub fn emulator_for(target: &str) -> Option<&'static str> {
    match target {
        "aarch64" => Some("qemu-aarch64"),
        "riscv64" => Some("qemu-riscv64"),
        _ => None,
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs a program in a fresh working directory under `scratch` with a fixed environment,
/// captures what it did and removes the directory.
pub fn run(spec: &RunSpec<'_>, scratch: &Path) -> Outcome {
    run_env(spec, scratch, &[])
}

/// As [`run`], with `env` added to the fixed environment.
pub fn run_env(spec: &RunSpec<'_>, scratch: &Path, env: &[(&str, &str)]) -> Outcome {
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let cwd = scratch.join(format!("run-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).unwrap_or_else(|e| panic!("creating {}: {e}", cwd.display()));
    for (name, data) in spec.input_files {
        std::fs::write(cwd.join(name), data).unwrap_or_else(|e| panic!("writing input {name}: {e}"));
    }
    let exe = std::fs::canonicalize(spec.exe).unwrap_or_else(|_| spec.exe.to_path_buf());
    let mut cmd = match spec.emulator {
        None => {
            use std::os::unix::process::CommandExt;
            let mut c = Command::new(&exe);
            c.arg0(spec.argv0);
            c
        }
        Some(q) => {
            let mut c = Command::new(q);
            c.args(["-0", spec.argv0]);
            // The emulator itself is a program of this host: LD_PRELOAD and friends are for
            // the guest only.
            for (k, v) in env {
                c.arg("-E").arg(format!("{k}={v}"));
            }
            c.arg(&exe);
            c
        }
    };
    let env: &[(&str, &str)] = if spec.emulator.is_some() { &[] } else { env };
    cmd.args(spec.args)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("HCT_TEST_VAR", "hello-from-the-harness")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let (stdout, stderr, status) = match cmd.spawn() {
        Err(e) => (Vec::new(), Vec::new(), Status::NotStarted(format!("{}: {e}", exe.display()))),
        Ok(mut child) => {
            let input = spec.stdin.to_vec();
            let mut stdin = child.stdin.take();
            let writer = std::thread::spawn(move || {
                if let Some(s) = stdin.as_mut() {
                    use std::io::Write;
                    let _ = s.write_all(&input);
                }
                drop(stdin);
            });
            let mut out_pipe = child.stdout.take();
            let mut err_pipe = child.stderr.take();
            let out_reader = std::thread::spawn(move || {
                let mut v = Vec::new();
                if let Some(p) = out_pipe.as_mut() {
                    let _ = p.read_to_end(&mut v);
                }
                v
            });
            let err_reader = std::thread::spawn(move || {
                let mut v = Vec::new();
                if let Some(p) = err_pipe.as_mut() {
                    let _ = p.read_to_end(&mut v);
                }
                v
            });
            let status = loop {
                match child.try_wait() {
                    Ok(Some(st)) => {
                        use std::os::unix::process::ExitStatusExt;
                        break match (st.code(), st.signal()) {
                            (Some(c), _) => Status::Exit(c),
                            (None, Some(s)) => Status::Signal(s),
                            (None, None) => Status::NotStarted("no status".into()),
                        };
                    }
                    Ok(None) if start.elapsed() > spec.timeout => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Status::Timeout;
                    }
                    Ok(None) if resident_bytes(child.id()) > memory_limit() => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Status::MemoryLimit(memory_limit());
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => break Status::NotStarted(e.to_string()),
                }
            };
            let _ = writer.join();
            (out_reader.join().unwrap_or_default(), err_reader.join().unwrap_or_default(), status)
        }
    };
    let elapsed = start.elapsed();
    let mut files = BTreeMap::new();
    collect_files(&cwd, &cwd, &mut files);
    let _ = std::fs::remove_dir_all(&cwd);
    Outcome { stdout, stderr, status, files, elapsed }
}

/// Resident memory allowed to one run (`HCT_MEM_LIMIT_MB`, default 4096): two runs in
/// parallel must not exhaust the machine.
fn memory_limit() -> u64 {
    std::env::var("HCT_MEM_LIMIT_MB").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(4096) << 20
}

/// Resident set size of process `pid`, from /proc (0 when unreadable).
fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap_or(&p).to_string_lossy().into_owned();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                out.insert(format!("{rel}/"), Vec::new());
                collect_files(base, &p, out);
            }
            _ => {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
}

/// The translation store of the end-to-end tests (`target/hct-store`): units of shared
/// libraries are translated once and reused by every test and later run.
pub fn store_dir() -> PathBuf {
    work_dir("hct-store")
}

/// Translates `input` for `target` into `output`; `Err` carries hcontainer's message.
pub fn translate(input: &Path, target: &str, output: &Path, timeout: Duration) -> Result<Duration, String> {
    let _ = std::fs::remove_file(output);
    let spec_args: Vec<String> = vec![
        "translate".into(),
        input.to_string_lossy().into_owned(),
        "--target".into(),
        target.into(),
        "-o".into(),
        output.to_string_lossy().into_owned(),
        "--store".into(),
        store_dir().to_string_lossy().into_owned(),
    ];
    let scratch = output.parent().unwrap_or(Path::new("."));
    let o = run(
        &RunSpec {
            exe: &hcontainer(),
            emulator: None,
            argv0: "hcontainer",
            args: &spec_args,
            stdin: b"",
            input_files: &[],
            timeout,
        },
        scratch,
    );
    match o.status {
        Status::Exit(0) if output.exists() => Ok(o.elapsed),
        Status::Exit(0) => Err(format!("exit 0 but {} was not written", output.display())),
        st => Err(format!("{st}: {}", first_line(&o.stderr))),
    }
}

/// The first non-empty line of some output, shortened.
pub fn first_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    shorten(line, 160)
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// A diff excerpt: the first differing line with two lines of context from each side.
pub fn diff_excerpt(expected: &[u8], got: &[u8]) -> String {
    let a = String::from_utf8_lossy(expected);
    let b = String::from_utf8_lossy(got);
    let la: Vec<&str> = a.split_inclusive('\n').collect();
    let lb: Vec<&str> = b.split_inclusive('\n').collect();
    let first = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i)).unwrap_or(0);
    let from = first.saturating_sub(2);
    let mut s = format!(
        "      first difference at line {} ({} vs {} bytes, {} vs {} lines)\n",
        first + 1,
        expected.len(),
        got.len(),
        la.len(),
        lb.len()
    );
    for i in from..first {
        s += &format!("        {}\n", shorten(la[i].trim_end_matches('\n'), 150));
    }
    for i in first..(first + 3).min(la.len()) {
        s += &format!("      - {:?}\n", shorten(la[i], 150));
    }
    for i in first..(first + 3).min(lb.len()) {
        s += &format!("      + {:?}\n", shorten(lb[i], 150));
    }
    s
}

/// Differences between a reference run and another one; empty when they behaved alike.
pub fn compare(reference: &Outcome, other: &Outcome) -> Vec<String> {
    let mut d = Vec::new();
    if reference.status != other.status {
        d.push(format!("    status: native {} vs {}", reference.status, other.status));
    }
    if reference.stdout != other.stdout {
        d.push(format!("    stdout differs:\n{}", diff_excerpt(&reference.stdout, &other.stdout)));
    }
    if reference.stderr != other.stderr {
        d.push(format!("    stderr differs:\n{}", diff_excerpt(&reference.stderr, &other.stderr)));
    }
    if reference.files != other.files {
        for (name, data) in &reference.files {
            match other.files.get(name) {
                None => d.push(format!("    file {name}: missing")),
                Some(o) if o != data => {
                    d.push(format!("    file {name} differs:\n{}", diff_excerpt(data, o)))
                }
                Some(_) => {}
            }
        }
        for name in other.files.keys().filter(|n| !reference.files.contains_key(*n)) {
            d.push(format!("    file {name}: not written natively"));
        }
    }
    d
}

/// Splits a `// RUN:` line's arguments: whitespace-separated, double quotes group words.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// True when the ELF file at `path` has a PT_INTERP program header (needs a dynamic loader).
pub fn has_interp(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else { return false };
    let rd16 = |o: usize| b.get(o..o + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let rd64 = |o: usize| {
        b.get(o..o + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])) as usize)
    };
    if b.get(..4) != Some(b"\x7fELF") {
        return false;
    }
    let (phoff, phentsize, phnum) = (rd64(0x20), rd16(0x36), rd16(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        b.get(o..o + 4) == Some(&3u32.to_le_bytes())
    })
}
