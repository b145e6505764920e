//! `cargo xtask demo`: compile a corpus program, translate it for every host ISA, run each
//! translation (arm64 and riscv64 under qemu-user) beside the native program and say whether
//! stdout, stderr and the exit status match; then migrate a running computation back and
//! forth between native and translated execution and compare its output with an
//! uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, step, Runner};

/// Arguments of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct Args {
    /// C program to compile (static, gcc -O2).
    #[arg(default_value = "tests/corpus/bignum.c")]
    program: PathBuf,
    /// Arguments passed to the program.
    #[arg(last = true)]
    args: Vec<String>,
    /// Migration hops of the second part (0 skips it).
    #[arg(long, default_value_t = 6)]
    hops: usize,
}

/// Runs the demo; `Ok(false)` when some translation does not behave like the native program.
pub fn run(args: &Args) -> Result<bool> {
    crate::setup::run()?;
    let root = util::repo_root();
    let hcontainer = util::hcontainer(&root)?;
    let src = root.join(&args.program);
    let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("program").to_string();
    let dir = util::cache_dir().join("demo");
    let native = dir.join(&stem);
    util::compile("gcc", &["-static", "-O2", "-w"], &src, &native)?;
    let work = dir.join("cwd");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let (reference, t) = util::run_captured(Runner::Native.command(&native, &[], &work).args(&args.args))?;
    println!();
    println!("== {} {} (gcc -static -O2) ==", args.program.display(), args.args.join(" "));
    println!("-- native: {} in {:.3} s; stdout:", reference.status_text(), t.as_secs_f64());
    print!("{}", String::from_utf8_lossy(&reference.stdout));
    if !reference.stderr.is_empty() {
        println!("-- native stderr:");
        print!("{}", String::from_utf8_lossy(&reference.stderr));
    }
    println!();
    println!("{:<8} {:>11} {:<14} {:>9}  {:<7} {:<7} {:<7} verdict", "target", "translate", "runner", "run", "stdout", "stderr", "status");
    let mut all = true;
    for target in ["x86_64", "aarch64", "riscv64"] {
        let out = dir.join(format!("{stem}.{target}"));
        let runner = Runner::for_target(target);
        let runner_name = match runner {
            Runner::Native => "native".to_string(),
            Runner::Qemu(q) => q.to_string(),
        };
        let xlate = match util::translate(&hcontainer, &native, target, &out) {
            Ok(d) => d,
            Err(err) => {
                all = false;
                println!("{target:<8} {:>11} {runner_name:<14} {:>9}  translation failed: {err:#}", "FAILED", "-");
                continue;
            }
        };
        let (got, t) = util::run_captured(runner.command(&out, &[], &work).args(&args.args))?;
        let same = |a: bool| if a { "same" } else { "DIFFERS" };
        let ok = got == reference;
        all &= ok;
        println!(
            "{target:<8} {:>10.2}s {runner_name:<14} {:>8.3}s  {:<7} {:<7} {:<7} {}",
            xlate.as_secs_f64(),
            t.as_secs_f64(),
            same(got.stdout == reference.stdout),
            same(got.stderr == reference.stderr),
            same(got.status == reference.status),
            if ok { "MATCH".to_string() } else { format!("MISMATCH ({})", got.status_text()) }
        );
        if got.stdout != reference.stdout {
            println!("         stdout {}", util::first_difference(&reference.stdout, &got.stdout));
        }
        if got.stderr != reference.stderr {
            println!("         stderr {}", util::first_difference(&reference.stderr, &got.stderr));
        }
    }
    step(if all { "demo: every translation matches the native run" } else { "demo: some translations differ" });
    if args.hops > 0 {
        all &= migration(&root, &hcontainer, &dir, args.hops)?;
    }
    Ok(all)
}

/// Rounds of `tests/migrate/compute.c` the migration part runs (a few seconds).
const ROUNDS: &str = "200";

/// The migration part: `tests/migrate/compute.c` started natively with `hcontainer run`, moved
/// native → translated x86_64 → native … with `hcontainer checkpoint --to` and `hcontainer
/// restore` while it runs; its output must equal an uninterrupted run's.
fn migration(root: &Path, hcontainer: &Path, dir: &Path, hops: usize) -> Result<bool> {
    let src = root.join("tests/migrate/compute.c");
    let exe = dir.join("compute");
    util::compile("musl-gcc", &["-static", "-O2", "-w"], &src, &exe)?;
    let store = dir.join("store");
    let work = dir.join("migrate");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let hc = |args: &[&std::ffi::OsStr]| -> Result<String> {
        let o = Command::new(hcontainer)
            .args(args)
            .env("HCONTAINER_STORE", &store)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", hcontainer.display()))?;
        if !o.status.success() {
            bail!("hcontainer {:?}: {}", args, String::from_utf8_lossy(&o.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    hc(&["translate".as_ref(), exe.as_os_str(), "--target".as_ref(), "x86_64".as_ref(), "-o".as_ref(), dir.join("compute.x86_64").as_os_str()])?;

    println!();
    println!("== migration: tests/migrate/compute.c {ROUNDS} (musl-gcc -static -O2) ==");
    let reference = work.join("reference.txt");
    let status = Command::new(hcontainer)
        .args(["run".as_ref(), exe.as_os_str(), ROUNDS.as_ref()])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&reference)?)
        .status()
        .context("running the uninterrupted reference")?;
    if !status.success() {
        bail!("the uninterrupted run of {} failed: {status}", exe.display());
    }

    // The migrated run: stdout into a file, which CRIU reopens at every restore.
    let out = work.join("stdout.txt");
    // In a session of its own, so that CRIU finds the session leader in its pid namespace
    // even when the demo itself runs inside a container.
    let mut launcher = Command::new("setsid")
        .args([hcontainer.as_os_str(), "run".as_ref(), exe.as_os_str(), ROUNDS.as_ref()])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .spawn()
        .context("starting hcontainer run")?;
    let want = exe.canonicalize()?;
    let lpid = launcher.id();
    let pid = wait_until(Duration::from_secs(20), || {
        let children = std::fs::read_to_string(format!("/proc/{lpid}/task/{lpid}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok().as_deref() == Some(want.as_path()))
    })
    .context("the program did not start under hcontainer run")?;
    println!("{:<4} {:<8} {:>10} {:>10} {:>10} {:>10}  runs", "hop", "to", "notify", "dump", "recode", "restore");
    let ms = |us: Option<u64>| us.map_or("-".to_string(), |u| format!("{:.1} ms", u as f64 / 1000.0));
    for hop in 0..hops {
        std::thread::sleep(Duration::from_millis(400));
        if !Path::new(&format!("/proc/{pid}")).exists() {
            println!("(the program finished after {hop} hops)");
            break;
        }
        let to = if hop % 2 == 0 { "x86_64" } else { "native" };
        let images = work.join(format!("hop{hop}"));
        let pid_s = pid.to_string();
        hc(&["checkpoint".as_ref(), "--pid".as_ref(), pid_s.as_ref(), "-D".as_ref(), images.as_os_str(), "--to".as_ref(), to.as_ref(), "--shell-job".as_ref(), "-q".as_ref()])?;
        if hop == 0 {
            let _ = launcher.wait();
        }
        wait_until(Duration::from_secs(10), || (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
            .with_context(|| format!("pid {pid} still exists after its checkpoint"))?;
        hc(&["restore".as_ref(), "-D".as_ref(), images.as_os_str(), "--detach".as_ref(), "--shell-job".as_ref(), "-q".as_ref()])?;
        let dump = std::fs::read_to_string(images.join("hcontainer-timings-dump.json")).unwrap_or_default();
        let restore = std::fs::read_to_string(images.join("hcontainer-timings-restore.json")).unwrap_or_default();
        // The executable now running: the store's original or translation (`<sha>/<form>`).
        let runs = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| {
                let form = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let sha = p.parent().and_then(|d| d.file_name()).map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                format!("store/{}…/{form}", sha.get(..12).unwrap_or(&sha))
            })
            .unwrap_or_else(|_| "(finished)".into());
        println!(
            "{hop:<4} {to:<8} {:>10} {:>10} {:>10} {:>10}  {runs}",
            ms(json_u64(&dump, "notify_us")),
            ms(json_u64(&dump, "frozen_us")),
            ms(json_u64(&dump, "recode_us")),
            ms(json_u64(&restore, "restore_us").or_else(|| json_u64(&restore, "total_us"))),
        );
    }
    let _ = launcher.try_wait();
    let started = Instant::now();
    wait_until(Duration::from_secs(300), || (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
        .context("the migrated program did not finish within 5 minutes")?;
    let (a, b) = (std::fs::read(&reference)?, std::fs::read(&out)?);
    let same = a == b;
    let last = String::from_utf8_lossy(&b).lines().last().unwrap_or("").to_string();
    println!(
        "finished {:.1} s after the last hop; output {} the uninterrupted run ({} lines, last: {last})",
        started.elapsed().as_secs_f64(),
        if same { "IDENTICAL to" } else { "DIFFERS from" },
        String::from_utf8_lossy(&b).lines().count()
    );
    step(if same { "demo: the migrated run printed exactly what the uninterrupted run printed" } else { "demo: the migrated run differs" });
    Ok(same)
}

/// Calls `f` every 10 ms until it returns `Some` or `limit` passes.
fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number after `"key":` in a flat JSON object (the timing files), if any.
fn json_u64(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = text[at + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
