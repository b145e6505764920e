//! `cargo xtask demo`: compile a corpus program, translate it for every host ISA, run each
//! translation (arm64 and riscv64 under qemu-user) beside the native program and say whether
//! stdout, stderr and the exit status match; then migrate a running computation back and
//! forth between native and translated execution and compare its output with an
//! uninterrupted run; then move a running computation between this x86-64 host and the
//! emulated arm64 node (crates/testbed) with `hcontainer agent` and `hcontainer migrate`,
//! and compare its output with an uninterrupted run.

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
    /// Round trips host -> arm64 node -> host of the third part (0 skips it).
    #[arg(long, default_value_t = 2)]
    node_trips: usize,
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
    if args.node_trips > 0 {
        all &= between_machines(&root, &hcontainer, &dir, args.node_trips)?;
    }
    Ok(all)
}

/// Rounds of `tests/migrate/compute.c` the migration part runs (a few seconds).
const ROUNDS: &str = "600";

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
    // `hcontainer run` replaces itself with the program: same pid, once it runs the program.
    let want = exe.canonicalize()?;
    let pid = launcher.id();
    wait_until(Duration::from_secs(20), || {
        (std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_deref() == Some(want.as_path())).then_some(())
    })
    .context("the program did not start under hcontainer run")?;
    println!("{:<4} {:<8} {:>10} {:>10} {:>10} {:>10}  runs", "hop", "to", "notify", "dump", "recode", "restore");
    let ms = |us: Option<u64>| us.map_or("-".to_string(), |u| format!("{:.1} ms", u as f64 / 1000.0));
    for hop in 0..hops {
        std::thread::sleep(Duration::from_millis(400));
        if exited(pid) {
            println!("(the program finished after {hop} hops)");
            break;
        }
        let to = if hop % 2 == 0 { "x86_64" } else { "native" };
        let images = work.join(format!("hop{hop}"));
        let pid_s = pid.to_string();
        let checkpoint = hc(&["checkpoint".as_ref(), "--pid".as_ref(), pid_s.as_ref(), "-D".as_ref(), images.as_os_str(), "--to".as_ref(), to.as_ref(), "--shell-job".as_ref(), "-q".as_ref()]);
        if let Err(err) = checkpoint {
            // It may have ended between the look above and the checkpoint.
            if exited(pid) {
                println!("(the program finished after {hop} hops)");
                break;
            }
            return Err(err);
        }
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

/// Steps of `tests/migrate/digest.c` in the third part (one per 20 ms).
const DIGEST_STEPS: u64 = 2500;

/// The third part: `tests/migrate/digest.c` started natively here moves to `hcontainer
/// agent` in the emulated arm64 node, runs there as its aarch64 translation, and comes back,
/// `trips` times, with `hcontainer migrate` (the node's own aarch64 hcontainer on the way
/// back); its final output must equal an uninterrupted native run's.
fn between_machines(root: &Path, hcontainer: &Path, dir: &Path, trips: usize) -> Result<bool> {
    use hcontainer_testbed::cc::{self, Libc};
    use hcontainer_testbed::migrate::{self as hop, HopOptions, HostAgent, KillOnDrop};

    /// Time limit of one command in the node.
    const JOB: Duration = Duration::from_secs(300);
    let (image, arm_hcontainer) = crate::vm::build()?;
    let work = dir.join("machines");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let work = work.canonicalize().context("canonical work folder")?;
    let exe = work.join("digest");
    cc::compile(Libc::Musl, &root.join("tests/migrate/digest.c"), &[], &exe)?;
    let store = work.join("store");
    let stored = hop::translate_for_node(hcontainer, &exe, &store)?;
    let steps = DIGEST_STEPS.to_string();

    println!();
    println!("== between machines: tests/migrate/digest.c {steps} (musl-gcc -static), this x86-64 host <-> the arm64 node ==");
    let reference = work.join("reference.txt");
    let mut uninterrupted = Command::new(&exe)
        .arg(&reference)
        .arg(&steps)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the uninterrupted run")?;
    // Certificates: a CA and this host's identity here; the node makes its own key and
    // joins the same CA at boot. Every hop runs over TLS with mutual authentication.
    let pki = hop::Pki::make(hcontainer, &work.join("pki"))?;
    let node = hop::boot_with_agent(&image, &arm_hcontainer, &[&stored], &[], &pki, JOB)
        .context("booting the arm64 node")?;
    println!(
        "arm64 node (qemu-system-aarch64 -M virt -cpu cortex-a72, Debian's arm64 kernel and CRIU) up in {:.1} s; it joined the demo's CA, its hcontainer agent listens with TLS",
        node.boot_time().as_secs_f64()
    );
    let agent = HostAgent::start(hcontainer, &work.join("host-agent"), &store, hop::AgentAuth::Tls(&pki))?;
    let progress = work.join("digest.txt");
    let progress_str = progress.to_str().context("UTF-8 work path")?.to_owned();
    hop::node_sh(&node, &format!("head -c 42 /dev/zero > {progress_str}"), JOB)?;
    let step_of = |text: &str| text.split_whitespace().next().and_then(|i| i.parse::<u64>().ok());
    let read_here = || std::fs::read_to_string(&progress).unwrap_or_default();
    let read_node = || hop::node_sh(&node, &format!("cat {progress_str}"), JOB).unwrap_or_default();
    // Waits until the program, wherever it is, has gone `more` steps past `from`.
    let wait_steps = |from: u64, more: u64, read: &dyn Fn() -> String| -> Result<u64> {
        wait_until(Duration::from_secs(120), || step_of(&read()).filter(|&i| i >= from + more))
            .with_context(|| format!("the program did not get past step {}", from + more))
    };

    let mut child = hop::start_native("digest", &exe, &[progress_str.as_str(), steps.as_str()], &work)?;
    let mut pid = child.id();
    let mut guard = Some(KillOnDrop(pid));
    let mut at = wait_steps(0, 50, &read_here)?;
    let mut rows = Vec::new();
    for trip in 0..trips {
        let json = work.join(format!("to-node-{trip}.json"));
        let options = HopOptions { pre_dump: 0, json: Some(&json), cipher: None };
        let there = hop::to_node(hcontainer, pid, &node, &store, &pki, &options, JOB)?;
        if trip == 0 {
            let _ = child.wait();
        }
        drop(guard.take());
        let report = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        rows.push(crate::bench_node::Row::new("host -> node", 0, &report, there.wall)?);
        println!("{}", there.report.lines().next().unwrap_or_default());
        at = wait_steps(at, 50, &read_node)?;

        let json = format!("/root/to-host-{trip}.json");
        let options = HopOptions { pre_dump: 0, json: Some(Path::new(&json)), cipher: None };
        let back = hop::to_host(&node, there.dest_pid, &agent, &options, JOB)?;
        pid = back.dest_pid;
        guard = Some(KillOnDrop(pid));
        let report = hop::node_sh(&node, &format!("cat {json}"), JOB)?;
        rows.push(crate::bench_node::Row::new("node -> host", 0, &report, back.wall)?);
        println!("{}", back.report.lines().next().unwrap_or_default());
        at = wait_steps(at, 50, &read_here)?;
    }
    crate::bench_node::print_rows(&rows);
    // Back here for good: the program finishes (its parent is the agent's restore, which
    // reaps it; the pid goes away).
    wait_until(Duration::from_secs(120), || exited(pid).then_some(()))
    .context("the migrated program did not finish")?;
    drop(guard);
    let status = uninterrupted.wait().context("waiting for the uninterrupted run")?;
    let (want, got) = (std::fs::read_to_string(&reference).unwrap_or_default(), read_here());
    let same = status.success() && step_of(&want) == Some(DIGEST_STEPS - 1) && want == got;
    println!(
        "after {} hops the output is {} the uninterrupted run's: {}",
        2 * trips,
        if same { "IDENTICAL to" } else { "DIFFERENT from" },
        got.trim()
    );
    step(if same {
        "demo: the program that visited the arm64 node ended exactly as the uninterrupted run"
    } else {
        "demo: the run between machines differs"
    });
    Ok(same)
}

/// True when `pid` is gone or has exited and waits for its parent (a zombie).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
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
