//! `cargo xtask bench-dynamic`: Debian's dynamically linked programs, exactly as the packages
//! ship them, translated with the closure of their libraries.
//!
//! Three tables from one run:
//! - translation time of the closures of `redis-server` and `python3` into an empty store
//!   and again into the now warm store;
//! - wall time of each workload natively, translated for x86_64 and under `qemu-x86_64`
//!   (median of interleaved repetitions; outputs must equal the native run's), and
//!   redis-benchmark SET/GET throughput against the server run each way;
//! - dynamic instruction counts of the aarch64 translation against Debian's own arm64 build of
//!   the same package version, both under `qemu-aarch64` with our counting plugin. The arm64
//!   packages come from a private apt (`hcontainer_testbed::apt`) into `.cache/bench-dynamic`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{check, geomean, read_count};
use crate::util::{self, step, Outcome};

/// Arguments of `cargo xtask bench-dynamic`.
#[derive(clap::Args)]
pub struct Args {
    /// Repetitions of each timed run (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Size of the generated file `gzip` and `xz` compress, in MiB.
    #[arg(long, default_value_t = 64)]
    mb: u64,
    /// Requests per redis-benchmark test.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Only workloads whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Skip the arm64 instruction counts.
    #[arg(long)]
    no_count: bool,
    /// Skip the translation-time table (closures are still translated when missing).
    #[arg(long)]
    no_translation_times: bool,
}

/// A Debian program as the x86-64 host has it, and where its arm64 build is in the private root.
struct Program {
    name: &'static str,
    path: &'static str,
    /// Directories or files it may `dlopen` beyond its `DT_NEEDED` closure.
    with: &'static [&'static str],
    /// The arm64 package's file, relative to the arm64 root (packages are unpacked without
    /// Debian's merged `/usr`, so some programs are under `bin/`).
    arm64: &'static str,
}

const PYTHON: Program = Program {
    name: "python3",
    path: "/usr/bin/python3.11",
    with: &["/usr/lib/python3.11/lib-dynload"],
    arm64: "usr/bin/python3.11",
};
const LUA: Program = Program { name: "lua5.4", path: "/usr/bin/lua5.4", with: &[], arm64: "usr/bin/lua5.4" };
const SQLITE: Program = Program { name: "sqlite3", path: "/usr/bin/sqlite3", with: &[], arm64: "usr/bin/sqlite3" };
const GZIP: Program = Program { name: "gzip", path: "/usr/bin/gzip", with: &[], arm64: "bin/gzip" };
const XZ: Program = Program { name: "xz", path: "/usr/bin/xz", with: &[], arm64: "usr/bin/xz" };
const REDIS: Program = Program { name: "redis-server", path: "/usr/bin/redis-server", with: &[], arm64: "usr/bin/redis-server" };

/// The arm64 packages the instruction counts need (apt adds their dependencies).
const ARM64_PACKAGES: &[&str] = &["python3.11", "lua5.4", "sqlite3", "gzip", "xz-utils", "redis-server"];

/// One measured command: a program and its arguments (`{work}` and `{input}` are replaced).
struct Workload {
    name: &'static str,
    program: &'static Program,
    args: &'static [&'static str],
    /// A file the program reads on standard input.
    stdin: Option<&'static str>,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "python3 compute.py", program: &PYTHON, args: &["{src}/compute.py"], stdin: None },
    Workload { name: "lua5.4 compute.lua", program: &LUA, args: &["{src}/compute.lua"], stdin: None },
    Workload { name: "sqlite3 queries.sql", program: &SQLITE, args: &[":memory:"], stdin: Some("{src}/queries.sql") },
    Workload { name: "gzip -9", program: &GZIP, args: &["-9", "-c", "{input}"], stdin: None },
    Workload { name: "xz -1", program: &XZ, args: &["-1", "-T1", "-c", "{input}"], stdin: None },
];

/// How a workload is run.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Native,
    Translated,
    Qemu,
    Arm64Native,
    Arm64Translated,
}

struct Paths {
    hcontainer: PathBuf,
    store: PathBuf,
    work: PathBuf,
    src: PathBuf,
    input: PathBuf,
    arm64_root: PathBuf,
    plugin: PathBuf,
}

/// Runs the benchmark and prints its tables.
pub fn run(args: &Args) -> Result<()> {
    crate::setup::run()?;
    let root = util::repo_root();
    let cache = util::cache_dir().join("bench-dynamic");
    let work = cache.join("cwd");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let paths = Paths {
        hcontainer: util::hcontainer(&root)?,
        store: cache.join("store"),
        src: root.join("tests/bench-dynamic"),
        input: cache.join(format!("input-{}mb.txt", args.mb)),
        arm64_root: cache.join("arm64-root"),
        plugin: crate::bench::build_plugin(&root, &cache)?,
        work,
    };
    let wanted = |name: &str| args.filter.as_deref().is_none_or(|f| name.contains(f));

    if !args.no_translation_times {
        translation_times(&paths, &cache)?;
    }
    step("bench-dynamic: translating every program for x86_64 and aarch64 (reusing the store)");
    for p in [&PYTHON, &LUA, &SQLITE, &GZIP, &XZ, &REDIS] {
        for target in ["x86_64", "aarch64"] {
            translate(&paths, p, target, &paths.store)?;
        }
    }
    if WORKLOADS.iter().any(|w| wanted(w.name) && w.args.contains(&"{input}")) {
        write_input(&paths.input, args.mb)?;
    }
    if !args.no_count {
        arm64_root(&paths.arm64_root, &cache)?;
    }

    let mut rows = Vec::new();
    for w in WORKLOADS.iter().filter(|w| wanted(w.name)) {
        step(&format!("bench-dynamic: {}", w.name));
        rows.push(measure(&paths, w, args)?);
    }
    let redis = if wanted("redis") { Some(redis(&paths, args)?) } else { None };
    print_tables(&rows, redis.as_ref(), args);
    Ok(())
}

fn sha256(path: &Path) -> Result<String> {
    let o = Command::new("sha256sum").arg(path).output().context("running sha256sum")?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.split_whitespace().next().map(str::to_string).with_context(|| format!("no sha256sum of {}", path.display()))
}

/// The launcher `hcontainer translate --store` left for `p` and `target`.
fn launcher(paths: &Paths, p: &Program, target: &str) -> Result<PathBuf> {
    Ok(paths.store.join(sha256(Path::new(p.path))?).join(target))
}

/// `hcontainer translate` of `p`'s closure for `target` into `store`; its wall time.
fn translate(paths: &Paths, p: &Program, target: &str, store: &Path) -> Result<Duration> {
    let mut cmd = Command::new(&paths.hcontainer);
    cmd.args(["translate", p.path, "--target", target, "-q", "--store"]).arg(store);
    for w in p.with {
        cmd.args(["--with", w]);
    }
    let start = Instant::now();
    let o = cmd.output().context("running hcontainer translate")?;
    if !o.status.success() {
        bail!(
            "hcontainer translate {} --target {target} failed ({}): {}",
            p.path,
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(start.elapsed())
}

struct TranslationTime {
    program: &'static str,
    target: &'static str,
    files: usize,
    cold: Duration,
    warm: Duration,
}

/// Closure translation into an empty store, then again into the warm one.
fn translation_times(paths: &Paths, cache: &Path) -> Result<()> {
    let cold = cache.join("cold-store");
    let mut rows = Vec::new();
    for p in [&REDIS, &PYTHON] {
        let target = "x86_64";
        if cold.exists() {
            std::fs::remove_dir_all(&cold).with_context(|| format!("removing {}", cold.display()))?;
        }
        step(&format!("bench-dynamic: translating the closure of {} into an empty store", p.path));
        let first = translate(paths, p, target, &cold)?;
        let again = translate(paths, p, target, &cold)?;
        let files = std::fs::read_dir(&cold)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(format!("{target}.unit")).exists() || e.path().join(target).exists())
            .count();
        rows.push(TranslationTime { program: p.name, target, files, cold: first, warm: again });
    }
    let _ = std::fs::remove_dir_all(&cold);
    println!();
    println!("Closure translation, `hcontainer translate PROG --target T --store DIR` (wall time, s):");
    println!("{:<14} {:>8} {:>6} {:>12} {:>12}", "program", "target", "files", "empty store", "warm store");
    for r in &rows {
        println!(
            "{:<14} {:>8} {:>6} {:>12.1} {:>12.2}",
            r.program,
            r.target,
            r.files,
            r.cold.as_secs_f64(),
            r.warm.as_secs_f64()
        );
    }
    println!();
    Ok(())
}

/// A reproducible text file of `mb` MiB (words drawn by a fixed LCG), written once.
fn write_input(path: &Path, mb: u64) -> Result<()> {
    let size = mb << 20;
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= size) {
        return Ok(());
    }
    step(&format!("bench-dynamic: writing {}", path.display()));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let words: Vec<Vec<u8>> =
        (0..2000).map(|_| (0..2 + next() % 8).map(|_| letters[next() % letters.len()]).collect()).collect();
    let mut out = Vec::with_capacity(size as usize + 128);
    while (out.len() as u64) < size {
        for i in 0..12 {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(&words[next() % words.len()]);
        }
        out.push(b'\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &out).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Debian's arm64 builds of the measured packages, unpacked under `root` once.
fn arm64_root(root: &Path, cache: &Path) -> Result<()> {
    let stamp = root.join(".hcontainer-packages");
    let want = ARM64_PACKAGES.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    step("bench-dynamic: fetching Debian's arm64 builds of the same packages");
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    let apt = hcontainer_testbed::apt::Apt::new(&cache.join("apt-arm64"), hcontainer_testbed::SUITE, "arm64")?;
    apt.update()?;
    let packages: Vec<String> = ARM64_PACKAGES.iter().map(|s| s.to_string()).collect();
    let closure = apt.closure(&packages)?;
    let debs = apt.download(&closure, &cache.join("debs-arm64"))?;
    for deb in &debs {
        hcontainer_testbed::apt::extract(deb, root)?;
    }
    step(&format!("bench-dynamic: {} arm64 packages in {}", debs.len(), root.display()));
    std::fs::write(&stamp, want)?;
    Ok(())
}

/// The command that runs `program` with `args` the given way.
fn command(paths: &Paths, p: &Program, way: Way, args: &[OsString], count_to: Option<&Path>) -> Result<Command> {
    use std::os::unix::process::CommandExt;
    let plugin = |c: &mut Command| {
        if let Some(out) = count_to {
            c.arg("-plugin").arg(format!("{},out={}", paths.plugin.display(), out.display()));
        }
    };
    let mut cmd = match way {
        Way::Native => Command::new(p.path),
        Way::Translated => Command::new(launcher(paths, p, "x86_64")?),
        Way::Qemu => {
            let mut c = Command::new("qemu-x86_64");
            c.args(["-0", p.path]).arg(p.path);
            c
        }
        Way::Arm64Native => {
            let mut c = Command::new("qemu-aarch64");
            c.arg("-L").arg(&paths.arm64_root);
            plugin(&mut c);
            c.args(["-0", p.path]).arg(paths.arm64_root.join(p.arm64));
            c
        }
        Way::Arm64Translated => {
            let mut c = Command::new("qemu-aarch64");
            plugin(&mut c);
            c.args(["-0", p.path]).arg(launcher(paths, p, "aarch64")?);
            c
        }
    };
    if matches!(way, Way::Native | Way::Translated) {
        cmd.arg0(p.path);
    }
    cmd.args(args)
        .current_dir(&paths.work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env("PYTHONHASHSEED", "0");
    Ok(cmd)
}

fn expand(paths: &Paths, s: &str) -> OsString {
    s.replace("{src}", &paths.src.to_string_lossy()).replace("{input}", &paths.input.to_string_lossy()).into()
}

/// Runs one workload the given way; its outcome and wall time.
fn run_way(paths: &Paths, w: &Workload, way: Way, count_to: Option<&Path>) -> Result<(Outcome, Duration)> {
    let args: Vec<OsString> = w.args.iter().map(|a| expand(paths, a)).collect();
    let mut cmd = command(paths, w.program, way, &args, count_to)?;
    match w.stdin {
        Some(f) => {
            let f = expand(paths, f);
            let file = std::fs::File::open(&f).with_context(|| format!("opening {}", f.to_string_lossy()))?;
            cmd.stdin(file);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    util::run_captured(&mut cmd)
}

struct Row {
    name: &'static str,
    native: Duration,
    translated: Option<Duration>,
    qemu: Option<Duration>,
    insns_native: Option<u64>,
    insns_translated: Option<u64>,
    notes: Vec<String>,
}

fn measure(paths: &Paths, w: &Workload, args: &Args) -> Result<Row> {
    let (reference, _) = run_way(paths, w, Way::Native, None)?;
    if reference.status != 0 {
        bail!("{} failed natively ({}): {}", w.name, reference.status_text(), String::from_utf8_lossy(&reference.stderr));
    }
    let mut row =
        Row { name: w.name, native: Duration::ZERO, translated: None, qemu: None, insns_native: None, insns_translated: None, notes: Vec::new() };
    let (mut tn, mut tx, mut tq) = (Vec::new(), Vec::new(), Vec::new());
    let (mut x_ok, mut q_ok) = (true, true);
    for _ in 0..args.reps.max(1) {
        tn.push(run_way(paths, w, Way::Native, None)?.1);
        if x_ok {
            let (o, t) = run_way(paths, w, Way::Translated, None)?;
            x_ok = check(&reference, &o, "translated x86_64", &mut row.notes);
            tx.push(t);
        }
        if q_ok {
            let (o, t) = run_way(paths, w, Way::Qemu, None)?;
            q_ok = check(&reference, &o, "qemu-x86_64", &mut row.notes);
            tq.push(t);
        }
    }
    row.native = util::median(tn);
    row.translated = x_ok.then(|| util::median(tx));
    row.qemu = q_ok.then(|| util::median(tq));
    if !args.no_count {
        for (way, what) in [(Way::Arm64Native, "native arm64"), (Way::Arm64Translated, "translated aarch64")] {
            let out = paths.work.join("insn-count.txt");
            let _ = std::fs::remove_file(&out);
            let (o, _) = run_way(paths, w, way, Some(&out))?;
            let n = if check(&reference, &o, what, &mut row.notes) { Some(read_count(&out)?) } else { None };
            match way {
                Way::Arm64Native => row.insns_native = n,
                _ => row.insns_translated = n,
            }
        }
    }
    Ok(row)
}

/// SET and GET requests per second redis-benchmark measured against the server run each way,
/// and the server's instructions for the same requests on arm64.
struct Redis {
    rows: Vec<(Way, f64, f64)>,
    insns_native: Option<u64>,
    insns_translated: Option<u64>,
    notes: Vec<String>,
}

fn redis(paths: &Paths, args: &Args) -> Result<Redis> {
    step("bench-dynamic: redis-server under redis-benchmark");
    let mut result = Redis { rows: Vec::new(), insns_native: None, insns_translated: None, notes: Vec::new() };
    let mut samples: Vec<(Way, Vec<f64>, Vec<f64>)> =
        [Way::Native, Way::Translated, Way::Qemu].into_iter().map(|w| (w, Vec::new(), Vec::new())).collect();
    for _ in 0..args.reps.max(1) {
        for (way, set, get) in &mut samples {
            let (s, g) = redis_once(paths, *way, args.requests, None)?;
            set.push(s);
            get.push(g);
        }
    }
    for (way, set, get) in samples {
        result.rows.push((way, median_f(set), median_f(get)));
    }
    if !args.no_count {
        for way in [Way::Arm64Native, Way::Arm64Translated] {
            let out = paths.work.join("insn-count.txt");
            let _ = std::fs::remove_file(&out);
            match redis_once(paths, way, args.requests, Some(&out)) {
                Ok(_) => {
                    let n = read_count(&out)?;
                    if way == Way::Arm64Native {
                        result.insns_native = Some(n);
                    } else {
                        result.insns_translated = Some(n);
                    }
                }
                Err(e) => result.notes.push(format!("arm64 count: {e:#}")),
            }
        }
    }
    Ok(result)
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Kills the server if the measurement stops early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_once(paths: &Paths, way: Way, requests: u64, count_to: Option<&Path>) -> Result<(f64, f64)> {
    let port = free_port()?;
    let server_args: Vec<OsString> = ["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        .iter()
        .map(OsString::from)
        .collect();
    let mut cmd = command(paths, &REDIS, way, &server_args, count_to)?;
    let log = std::fs::File::create(paths.work.join("redis.log"))?;
    let mut server = Server(
        cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn().context("starting redis-server")?,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output()?;
        if String::from_utf8_lossy(&o.stdout).trim() == "PONG" {
            break;
        }
        if let Some(st) = server.0.try_wait()? {
            bail!("redis-server ({}) exited with {st} before answering; see {}", way_name(way), paths.work.join("redis.log").display());
        }
        if Instant::now() > deadline {
            bail!("redis-server ({}) did not answer PING within 120 s", way_name(way));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "set,get", "-n", &requests.to_string(), "-q", "--csv"])
        .output()
        .context("running redis-benchmark")?;
    if !o.status.success() {
        bail!("redis-benchmark failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let rps = |test: &str| -> Result<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .with_context(|| format!("no {test} line in redis-benchmark's output {text:?}"))
    };
    let (set, get) = (rps("SET")?, rps("GET")?);
    // A clean shutdown, so the counting plugin writes its total.
    let _ = Command::new("redis-cli").args(["-p", &port.to_string(), "shutdown", "nosave"]).output();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("redis-server ({}) did not exit after SHUTDOWN", way_name(way));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((set, get))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn way_name(way: Way) -> &'static str {
    match way {
        Way::Native => "native",
        Way::Translated => "translated x86_64",
        Way::Qemu => "qemu-x86_64",
        Way::Arm64Native => "native arm64",
        Way::Arm64Translated => "translated aarch64",
    }
}

fn print_tables(rows: &[Row], redis: Option<&Redis>, args: &Args) {
    let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.3}", d.as_secs_f64()));
    let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
    let big = |n: Option<u64>| n.map_or("-".to_string(), |n| format!("{:.1}M", n as f64 / 1e6));
    let iratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64),
        _ => None,
    };
    println!();
    println!(
        "Wall time: median of {} interleaved runs, s. Instructions: qemu-aarch64 + insn_count plugin, Debian's arm64 build vs the aarch64 translation.",
        args.reps
    );
    println!(
        "{:<20} {:>8} {:>9} {:>9} {:>9} {:>9} | {:>11} {:>11} {:>9}",
        "workload", "native", "xlat-x86", "qemu-x86", "xlat/nat", "qemu/nat", "a64 native", "a64 xlat", "xlat/nat"
    );
    let (mut rx, mut rq, mut ri) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let n = r.native.as_secs_f64();
        let x = r.translated.map(|t| t.as_secs_f64() / n);
        let q = r.qemu.map(|t| t.as_secs_f64() / n);
        let i = iratio(r.insns_native, r.insns_translated);
        rx.extend(x);
        rq.extend(q);
        ri.extend(i);
        println!(
            "{:<20} {:>8} {:>9} {:>9} {:>9} {:>9} | {:>11} {:>11} {:>9}",
            r.name,
            secs(Some(r.native)),
            secs(r.translated),
            secs(r.qemu),
            ratio(x),
            ratio(q),
            big(r.insns_native),
            big(r.insns_translated),
            ratio(i)
        );
    }
    if let Some(redis) = redis {
        let native = redis.rows.iter().find(|r| r.0 == Way::Native).map(|r| (r.1, r.2));
        println!();
        println!("redis-server under redis-benchmark -t set,get -n {} (requests/s, median of {}):", args.requests, args.reps);
        println!("{:<20} {:>10} {:>10} {:>13} {:>13}", "server", "SET/s", "GET/s", "native/this SET", "native/this GET");
        for (way, set, get) in &redis.rows {
            let (ns, ng) = native.unwrap_or((0.0, 0.0));
            println!("{:<20} {:>10.0} {:>10.0} {:>15.2}x {:>15.2}x", way_name(*way), set, get, ns / set, ng / get);
            if *way != Way::Native && *set > 0.0 && *get > 0.0 {
                if *way == Way::Translated {
                    rx.push(((ns / set) * (ng / get)).sqrt());
                } else {
                    rq.push(((ns / set) * (ng / get)).sqrt());
                }
            }
        }
        let i = iratio(redis.insns_native, redis.insns_translated);
        ri.extend(i);
        println!(
            "server instructions for those requests on arm64: native {} translated {} ({})",
            big(redis.insns_native),
            big(redis.insns_translated),
            ratio(i)
        );
        for n in &redis.notes {
            println!("note: redis: {n}");
        }
    }
    println!();
    println!(
        "geomean (redis as the geomean of its SET and GET ratios): translated/native {}, qemu/native {}, arm64 instructions translated/native {}",
        ratio(geomean(&rx)),
        ratio(geomean(&rq)),
        ratio(geomean(&ri))
    );
    for r in rows {
        for n in &r.notes {
            println!("note: {}: {n}", r.name);
        }
    }
}
