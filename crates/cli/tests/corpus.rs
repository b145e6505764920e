//! The corpus test: every C program in `tests/corpus` (and `tests/corpus/bench`, run with the
//! small arguments of its `// RUN:` lines) is compiled with glibc and musl, static, at -O0 and
//! -O2, plus a static-pie build per libc where the toolchain makes one; each binary runs
//! natively, is translated for x86_64, aarch64 and riscv64, and each translation (under
//! qemu-user for arm64 and riscv64) must match the native run: stdout, stderr, exit status and
//! the files left in its working directory.
//!
//! Compiled programs are cached in `target/hct-corpus/bin`, keyed by source, compiler and
//! flags. Translations run on `HCT_JOBS` threads (default 2). For development the matrix can
//! be narrowed with comma-separated substrings: `HCT_CORPUS` (programs), `HCT_VARIANTS`,
//! `HCT_TARGETS`. Each run is limited in time and resident memory (`HCT_MEM_LIMIT_MB`), the
//! whole translate-and-run phase by `HCT_CORPUS_BUDGET_MIN`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Outcome, RunSpec, Status};

struct Variant {
    name: &'static str,
    cc: &'static str,
    flags: &'static [&'static str],
}

const VARIANTS: &[Variant] = &[
    Variant { name: "glibc-O0", cc: "gcc", flags: &["-static", "-O0"] },
    Variant { name: "glibc-O2", cc: "gcc", flags: &["-static", "-O2"] },
    Variant { name: "musl-O0", cc: "musl-gcc", flags: &["-static", "-O0"] },
    Variant { name: "musl-O2", cc: "musl-gcc", flags: &["-static", "-O2"] },
    Variant { name: "glibc-pie-O2", cc: "gcc", flags: &["-static-pie", "-O2"] },
    Variant { name: "musl-pie-O2", cc: "musl-gcc", flags: &["-static-pie", "-O2"] },
    // Dynamically linked (a PIE, as Debian's gcc makes by default): the program's unit, the
    // store's ld.so and libc units (translated once, shared by every program).
    Variant { name: "glibc-dyn-O0", cc: "gcc", flags: &["-O0"] },
    Variant { name: "glibc-dyn-O2", cc: "gcc", flags: &["-O2"] },
];

const NATIVE_TIMEOUT: Duration = Duration::from_secs(60);
const TRANSLATE_TIMEOUT: Duration = Duration::from_secs(600);
const TRANSLATED_TIMEOUT: Duration = Duration::from_secs(300);

/// Wall-time budget of the translate-and-run phase (`HCT_CORPUS_BUDGET_MIN`, default 35
/// minutes): cells not started by then are reported as not run and fail the test, so a
/// broken build fails CI in bounded time instead of running into CI's own limit.
fn budget() -> Duration {
    let min = std::env::var("HCT_CORPUS_BUDGET_MIN").ok().and_then(|s| s.parse().ok()).unwrap_or(35u64);
    Duration::from_secs(min * 60)
}

struct Program {
    name: String,
    src: PathBuf,
    runs: Vec<Vec<String>>,
}

struct Binary {
    program: usize,
    variant: &'static str,
    path: PathBuf,
    native: Vec<Outcome>,
}

enum Verdict {
    Pass,
    TranslateFailed(String),
    Mismatch(Vec<String>),
    /// Not attempted: the time budget ran out (counts as a failure).
    NotRun,
}

struct Cell {
    binary: usize,
    target: &'static str,
    translate_time: Duration,
    run_time: Duration,
    verdict: Verdict,
}

fn env_filter(var: &str) -> Option<Vec<String>> {
    std::env::var(var).ok().filter(|s| !s.is_empty()).map(|s| s.split(',').map(str::to_string).collect())
}

fn selected(filter: &Option<Vec<String>>, name: &str) -> bool {
    filter.as_ref().is_none_or(|f| f.iter().any(|s| name.contains(s.as_str())))
}

fn programs() -> Vec<Program> {
    let root = common::repo_root().join("tests/corpus");
    let filter = env_filter("HCT_CORPUS");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("bench")] {
        let mut srcs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "c"))
            .collect();
        srcs.sort();
        for src in srcs {
            let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
            let name = if dir == root { stem.to_string() } else { format!("bench/{stem}") };
            if !selected(&filter, &name) {
                continue;
            }
            let text = std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
            let mut runs: Vec<Vec<String>> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("// RUN:"))
                .map(common::split_args)
                .collect();
            if runs.is_empty() {
                runs.push(Vec::new());
            }
            out.push(Program { name, src, runs });
        }
    }
    out
}

fn compiler_version(cc: &str) -> String {
    std::process::Command::new(cc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| panic!("{cc} is not usable ({e}): run `cargo xtask setup`"))
}

/// Compiles `src` unless a binary with the same key is cached; returns its path.
fn compile(src: &Path, name: &str, v: &Variant, version: &str, bin_dir: &Path) -> Result<PathBuf, String> {
    let source = std::fs::read(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    let flags = v.flags.join(" ");
    let key = common::fnv1a(&[&source, v.cc.as_bytes(), flags.as_bytes(), version.as_bytes()]);
    let out = bin_dir.join(format!("{}.{}.{key:016x}", name.replace('/', "-"), v.name));
    if out.exists() {
        return Ok(out);
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let o = std::process::Command::new(v.cc)
        .args(v.flags)
        .args(["-w", "-o"])
        .arg(&tmp)
        .arg(src)
        .arg("-lm")
        .output()
        .map_err(|e| format!("running {}: {e}", v.cc))?;
    if !o.status.success() {
        return Err(format!("{} {flags} {}: {}", v.cc, src.display(), common::first_line(&o.stderr)));
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    Ok(out)
}

/// Whether `v` (a static-pie variant) yields a self-contained executable here: some
/// toolchains (Debian's musl-gcc wrapper) link `-static-pie` against a dynamic loader.
fn variant_supported(v: &Variant, version: &str, dir: &Path) -> Result<(), String> {
    if !v.flags.contains(&"-static-pie") {
        return Ok(());
    }
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 3; }\n").map_err(|e| e.to_string())?;
    let exe = compile(&src, "probe", v, version, dir)?;
    if common::has_interp(&exe) {
        return Err(format!("{} -static-pie produces an executable with a dynamic loader (PT_INTERP)", v.cc));
    }
    let o = common::run(
        &RunSpec { exe: &exe, emulator: None, argv0: "probe", args: &[], stdin: b"", input_files: &[], timeout: NATIVE_TIMEOUT },
        dir,
    );
    if o.status != Status::Exit(3) {
        return Err(format!("{} -static-pie probe ended with {}", v.cc, o.status));
    }
    Ok(())
}

/// Runs `jobs` on `threads` worker threads, collecting results in job order.
fn parallel<J: Sync, R: Send>(jobs: &[J], threads: usize, f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(i) else { break };
                let r = f(job);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(|r| r.expect("every job ran")).collect()
}

/// Writes straight to the process's stdout (not captured by the test harness), so the table
/// shows in every run.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($t)*);
        let _ = o.flush();
    }};
}

#[test]
fn corpus_translations_match_native_runs() {
    let started = Instant::now();
    let work = common::work_dir("hct-corpus");
    let bin_dir = work.join("bin");
    let out_dir = work.join("translated");
    let scratch = work.join("scratch");
    for d in [&bin_dir, &out_dir, &scratch] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    }
    let threads: usize = std::env::var("HCT_JOBS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let variant_filter = env_filter("HCT_VARIANTS");
    let target_filter = env_filter("HCT_TARGETS");
    let targets: Vec<&'static str> = common::TARGETS.iter().copied().filter(|t| selected(&target_filter, t)).collect();
    let programs = programs();
    assert!(!programs.is_empty(), "no corpus programs selected");

    // Which variants this toolchain can build.
    let mut variants = Vec::new();
    for v in VARIANTS.iter().filter(|v| selected(&variant_filter, v.name)) {
        let version = compiler_version(v.cc);
        match variant_supported(v, &version, &bin_dir) {
            Ok(()) => variants.push((v, version)),
            Err(why) => say!("corpus: variant {} not built: {why}", v.name),
        }
    }

    // Compile and run natively.
    let t0 = Instant::now();
    let jobs: Vec<(usize, usize)> =
        (0..programs.len()).flat_map(|p| (0..variants.len()).map(move |v| (p, v))).collect();
    let built = parallel(&jobs, threads, |&(p, vi)| {
        let (v, version) = &variants[vi];
        let prog = &programs[p];
        let path = compile(&prog.src, &prog.name, v, version, &bin_dir)?;
        let native = prog
            .runs
            .iter()
            .map(|args| {
                common::run(
                    &RunSpec { exe: &path, emulator: None, argv0: "prog", args, stdin: b"", input_files: &[], timeout: NATIVE_TIMEOUT },
                    &scratch,
                )
            })
            .collect::<Vec<_>>();
        Ok::<_, String>(Binary { program: p, variant: v.name, path, native })
    });
    let mut failures: Vec<String> = Vec::new();
    let mut binaries = Vec::new();
    for (r, &(p, vi)) in built.into_iter().zip(&jobs) {
        match r {
            Ok(b) => {
                for (args, o) in programs[p].runs.iter().zip(&b.native) {
                    if matches!(o.status, Status::Timeout | Status::MemoryLimit(_) | Status::NotStarted(_) | Status::Signal(_)) {
                        failures.push(format!("{} [{}] {args:?}: native run ended with {}", programs[p].name, b.variant, o.status));
                    }
                }
                binaries.push(b);
            }
            Err(e) => failures.push(format!("{} [{}]: compile failed: {e}", programs[p].name, variants[vi].0.name)),
        }
    }
    let compile_time = t0.elapsed();
    say!(
        "corpus: {} programs x {} variants = {} binaries compiled and run natively in {:.1} s; translating for {} on {threads} threads",
        programs.len(),
        variants.len(),
        binaries.len(),
        compile_time.as_secs_f64(),
        targets.join(", ")
    );

    // Translate and run.
    let t1 = Instant::now();
    let budget = budget();
    let cells_jobs: Vec<(usize, &'static str)> =
        (0..binaries.len()).flat_map(|b| targets.iter().map(move |&t| (b, t))).collect();
    let cells = parallel(&cells_jobs, threads, |&(bi, target)| {
        let b = &binaries[bi];
        let prog = &programs[b.program];
        if t1.elapsed() > budget {
            return Cell { binary: bi, target, translate_time: Duration::ZERO, run_time: Duration::ZERO, verdict: Verdict::NotRun };
        }
        let out = out_dir.join(format!("{}.{target}", b.path.file_name().and_then(|s| s.to_str()).unwrap_or("x")));
        let translate_time;
        match common::translate(&b.path, target, &out, TRANSLATE_TIMEOUT) {
            Ok(t) => translate_time = t,
            Err(e) => {
                return Cell { binary: bi, target, translate_time: Duration::ZERO, run_time: Duration::ZERO, verdict: Verdict::TranslateFailed(e) }
            }
        }
        let mut diffs = Vec::new();
        let mut run_time = Duration::ZERO;
        for (args, native) in prog.runs.iter().zip(&b.native) {
            let o = common::run(
                &RunSpec {
                    exe: &out,
                    emulator: common::emulator_for(target),
                    argv0: "prog",
                    args,
                    stdin: b"",
                    input_files: &[],
                    timeout: TRANSLATED_TIMEOUT,
                },
                &scratch,
            );
            run_time += o.elapsed;
            let d = common::compare(native, &o);
            if !d.is_empty() {
                diffs.push(format!("  args {args:?}:\n{}", d.join("\n")));
            }
        }
        let _ = std::fs::remove_file(&out);
        let verdict = if diffs.is_empty() { Verdict::Pass } else { Verdict::Mismatch(diffs) };
        Cell { binary: bi, target, translate_time, run_time, verdict }
    });
    let translate_phase = t1.elapsed();

    // The table.
    say!("");
    let mut header = format!("{:<20} {:<13} {:<8}", "program", "variant", "native");
    for t in &targets {
        header += &format!(" {:<22}", t);
    }
    say!("{header}");
    let (mut pass, mut fail) = (0usize, 0usize);
    let mut total_translate = Duration::ZERO;
    for (bi, b) in binaries.iter().enumerate() {
        let native_status = b.native.first().map_or("-".to_string(), |o| o.status.to_string());
        let mut line = format!("{:<20} {:<13} {:<8}", programs[b.program].name, b.variant, native_status);
        for c in cells.iter().filter(|c| c.binary == bi) {
            total_translate += c.translate_time;
            let text = match &c.verdict {
                Verdict::Pass => {
                    pass += 1;
                    format!("ok {:.1}s+{:.1}s", c.translate_time.as_secs_f64(), c.run_time.as_secs_f64())
                }
                Verdict::TranslateFailed(_) => {
                    fail += 1;
                    "TRANSLATE FAILED".to_string()
                }
                Verdict::NotRun => {
                    fail += 1;
                    "NOT RUN (budget)".to_string()
                }
                Verdict::Mismatch(_) => {
                    fail += 1;
                    format!("MISMATCH {:.1}s+{:.1}s", c.translate_time.as_secs_f64(), c.run_time.as_secs_f64())
                }
            };
            line += &format!(" {text:<22}");
        }
        say!("{line}");
    }
    say!("(cells: translation time + run time of all the program's runs)");

    // Every mismatch, with a diff excerpt.
    for c in &cells {
        let b = &binaries[c.binary];
        let what = format!("{} [{}] -> {}", programs[b.program].name, b.variant, c.target);
        match &c.verdict {
            Verdict::Pass => {}
            Verdict::NotRun => failures.push(format!("{what}: not run, the {} min budget was used up", budget.as_secs() / 60)),
            Verdict::TranslateFailed(e) => failures.push(format!("{what}: translation failed: {e}")),
            Verdict::Mismatch(d) => failures.push(format!("{what}: differs from the native run:\n{}", d.join("\n"))),
        }
    }
    say!("");
    for f in &failures {
        say!("FAIL {f}");
    }
    say!(
        "corpus: {pass} passed, {fail} failed translations; compile+native {:.1} s, translate+run {:.1} s (sum of translation times {:.1} s), total {:.1} s",
        compile_time.as_secs_f64(),
        translate_phase.as_secs_f64(),
        total_translate.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} corpus failures (see the list above)", failures.len());
}
