//! Small helpers shared by the xtask commands: locating the repository, running commands,
//! compiling C programs, timed runs with captured output.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The repository root (the parent of the `xtask` package).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// `<repo>/.cache`: everything downloaded or built outside `target/`.
pub fn cache_dir() -> PathBuf {
    repo_root().join(".cache")
}

/// Prints one progress line.
pub fn step(msg: &str) {
    println!("xtask: {msg}");
}

/// Runs `cmd`, inheriting stdio; fails on a non-zero exit.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs cargo (the one that runs us) with `args` in `root`.
pub fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step(&format!("cargo {}", args.join(" ")));
    run_checked(Command::new(cargo).args(args).current_dir(root))
}

/// The release `hcontainer` binary, built on demand.
pub fn hcontainer(root: &Path) -> Result<PathBuf> {
    cargo(root, &["build", "--release", "--bin", "hcontainer"])?;
    let exe = root.join("target/release/hcontainer");
    if !exe.exists() {
        bail!("{} is missing after the build", exe.display());
    }
    Ok(exe)
}

/// Compiles the C file `src` with `cc` and `flags` into `out` (static, -lm appended).
pub fn compile(cc: &str, flags: &[&str], src: &Path, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let output = Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(src)
        .arg("-lm")
        .output()
        .with_context(|| format!("running {cc}"))?;
    if !output.status.success() {
        bail!(
            "{cc} {} {} failed:\n{}",
            flags.join(" "),
            src.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Translates `input` for `target` into `out` with `hcontainer translate`.
pub fn translate(hcontainer: &Path, input: &Path, target: &str, out: &Path) -> Result<Duration> {
    translate_with(hcontainer, input, target, &[], out)
}

/// [`translate`] with extra arguments of `hcontainer translate` (e.g. `--memory-model relaxed`).
pub fn translate_with(hcontainer: &Path, input: &Path, target: &str, extra: &[&str], out: &Path) -> Result<Duration> {
    let start = Instant::now();
    let output = Command::new(hcontainer)
        .arg("translate")
        .arg(input)
        .args(extra)
        .args(["--target", target, "-o"])
        .arg(out)
        .output()
        .with_context(|| format!("running {}", hcontainer.display()))?;
    if !output.status.success() {
        bail!(
            "hcontainer translate {} --target {target} failed ({}): {}",
            input.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(start.elapsed())
}

/// What one run of a program did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, or 128 + signal number.
    pub status: i32,
}

impl Outcome {
    /// The status as people read it: `exit 3` or `signal 11`.
    pub fn status_text(&self) -> String {
        if self.status > 128 {
            format!("signal {}", self.status - 128)
        } else {
            format!("exit {}", self.status)
        }
    }
}

/// How a program is started: natively or under a qemu-user emulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Native,
    Qemu(&'static str),
}

impl Runner {
    /// The runner for a translated binary of `target`.
    pub fn for_target(target: &str) -> Runner {
        match target {
            "aarch64" => Runner::Qemu("qemu-aarch64"),
            "riscv64" => Runner::Qemu("qemu-riscv64"),
            _ => Runner::Native,
        }
    }

    /// A command that runs `exe` with `argv[0] = "prog"` in `cwd`, plus extra qemu options.
    pub fn command(self, exe: &Path, qemu_opts: &[String], cwd: &Path) -> Command {
        let mut cmd = match self {
            Runner::Native => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(exe);
                c.arg0("prog");
                c
            }
            Runner::Qemu(q) => {
                let mut c = Command::new(q);
                c.args(qemu_opts).args(["-0", "prog"]).arg(exe);
                c
            }
        };
        cmd.current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HCT_TEST_VAR", "hello-from-xtask")
            .stdin(Stdio::null());
        cmd
    }
}

/// Longest a measured or demonstrated run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest resident set a run may reach (a runaway translation must not exhaust the machine).
const RUN_MEMORY: u64 = 4 << 30;

/// Runs `cmd` to completion, capturing its output; returns the outcome and the wall time.
/// A run past [`RUN_TIMEOUT`] or above [`RUN_MEMORY`] resident is killed (status 128 + 9)
/// and the reason appended to its stderr.
pub fn run_captured(cmd: &mut Command) -> Result<(Outcome, Duration)> {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
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
    let mut killed = None;
    let st = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let rss = std::fs::read_to_string(format!("/proc/{}/statm", child.id()))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
            .map_or(0, |pages| pages * 4096);
        if start.elapsed() > RUN_TIMEOUT || rss > RUN_MEMORY {
            killed = Some(if rss > RUN_MEMORY { "resident memory above 4 GiB" } else { "time limit" });
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let mut stderr = err_reader.join().unwrap_or_default();
    if let Some(why) = killed {
        stderr.extend_from_slice(format!("\n[xtask: killed: {why}]\n").as_bytes());
    }
    let status = match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    };
    Ok((Outcome { stdout, stderr, status }, elapsed))
}

/// The first differing line of two outputs, for a one-line report.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let mut la = a.lines();
    let mut lb = b.lines();
    let mut n = 0;
    loop {
        n += 1;
        match (la.next(), lb.next()) {
            (None, None) => return "same lines, different line endings".to_string(),
            (x, y) if x == y => continue,
            (x, y) => {
                let cut = |s: Option<&str>| {
                    s.map(|s| s.chars().take(100).collect::<String>())
                        .unwrap_or_else(|| "<end>".into())
                };
                return format!("line {n}: native {:?} vs {:?}", cut(x), cut(y));
            }
        }
    }
}

/// Median of a non-empty list of durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
