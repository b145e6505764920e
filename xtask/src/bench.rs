//! `cargo xtask bench`: execution overhead of translated code.
//!
//! For each program in `tests/corpus/bench` (C, and C++ `.cc` built with `g++ -static -O2`):
//! the median wall time of the native binary, its x86_64 translation and `qemu-x86_64`
//! running the native binary, measured in one session with interleaved repetitions; and, for
//! arm64, the dynamic instruction count of the aarch64 translation — with x86-TSO ordering
//! (the default) and with `--memory-model relaxed`, side by side — against the same program
//! compiled natively with `aarch64-linux-gnu-gcc -static -O2` (`aarch64-linux-gnu-g++` for
//! C++, where installed), all counted under `qemu-aarch64` by our TCG plugin
//! (`tools/insn-count`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util::{self, step, Outcome, Runner};

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Repetitions of each timed run (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Only programs whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Skip the arm64 instruction counts.
    #[arg(long)]
    no_count: bool,
}

struct Row {
    name: String,
    native: Duration,
    translated: Option<Duration>,
    qemu: Option<Duration>,
    insns_native: Option<u64>,
    insns_translated: Option<u64>,
    /// The aarch64 translation with `--memory-model relaxed`.
    insns_relaxed: Option<u64>,
    notes: Vec<String>,
}

/// Runs the benchmarks and prints the table.
pub fn run(args: &Args) -> Result<()> {
    crate::setup::run()?;
    let root = util::repo_root();
    let hcontainer = util::hcontainer(&root)?;
    let cache = util::cache_dir().join("bench");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let plugin = build_plugin(&root, &cache)?;
    let work = cache.join("cwd");
    std::fs::create_dir_all(&work)?;

    let mut programs: Vec<PathBuf> = std::fs::read_dir(root.join("tests/corpus/bench"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c" || e == "cc"))
        .filter(|p| args.filter.as_deref().is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    programs.sort();
    if programs.is_empty() {
        bail!("no benchmark programs matched");
    }

    let mut rows = Vec::new();
    for src in &programs {
        let name = src.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        step(&format!("bench: {name}"));
        rows.push(bench_one(&name, src, &cache, &work, &hcontainer, &plugin, args)?);
    }
    print_table(&rows, args.reps);
    Ok(())
}

pub(crate) fn build_plugin(root: &Path, cache: &Path) -> Result<PathBuf> {
    let src = root.join("tools/insn-count/insn_count.c");
    let out = cache.join("insn_count.so");
    let newer = |a: &Path, b: &Path| -> bool {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (m(a), m(b)) {
            (Some(x), Some(y)) => x > y,
            _ => true,
        }
    };
    if newer(&src, &out) {
        util::run_checked(Command::new("gcc").args(["-shared", "-fPIC", "-O2", "-o"]).arg(&out).arg(&src))?;
        step(&format!("bench: built {}", out.display()));
    }
    Ok(out)
}

fn bench_one(
    name: &str,
    src: &Path,
    cache: &Path,
    work: &Path,
    hcontainer: &Path,
    plugin: &Path,
    args: &Args,
) -> Result<Row> {
    let mut notes_early = Vec::new();
    let native = cache.join(format!("{name}.x86_64-native"));
    let arm_native = cache.join(format!("{name}.aarch64-native"));
    let cxx = src.extension().is_some_and(|e| e == "cc");
    let (cc, arm_cc) = if cxx { ("g++", "aarch64-linux-gnu-g++") } else { ("gcc", "aarch64-linux-gnu-gcc") };
    util::compile(cc, &["-static", "-O2", "-w"], src, &native)?;
    let arm_native_ok =
        match util::compile(arm_cc, &["-static", "-O2", "-w", "-ffp-contract=off"], src, &arm_native) {
            Ok(()) => true,
            Err(e) => {
                let mut msg = format!("{e:#}");
                msg.truncate(160);
                notes_early.push(format!("no native aarch64 build ({arm_cc}): {msg}"));
                false
            }
        };
    let mut row = Row {
        name: name.to_string(),
        insns_relaxed: None,
        native: Duration::ZERO,
        translated: None,
        qemu: None,
        insns_native: None,
        insns_translated: None,
        notes: std::mem::take(&mut notes_early),
    };
    let x86 = cache.join(format!("{name}.x86_64-translated"));
    let arm = cache.join(format!("{name}.aarch64-translated"));
    let x86_ok = match util::translate(hcontainer, &native, "x86_64", &x86) {
        Ok(_) => true,
        Err(e) => {
            row.notes.push(format!("x86_64 translation failed: {e:#}"));
            false
        }
    };
    let arm_ok = match util::translate(hcontainer, &native, "aarch64", &arm) {
        Ok(_) => true,
        Err(e) => {
            row.notes.push(format!("aarch64 translation failed: {e:#}"));
            false
        }
    };
    let arm_relaxed = cache.join(format!("{name}.aarch64-translated-relaxed"));
    let relaxed_ok = match util::translate_with(hcontainer, &native, "aarch64", &["--memory-model", "relaxed"], &arm_relaxed) {
        Ok(_) => true,
        Err(e) => {
            row.notes.push(format!("aarch64 relaxed translation failed: {e:#}"));
            false
        }
    };

    let (reference, _) = util::run_captured(&mut Runner::Native.command(&native, &[], work))?;
    let (mut t_native, mut t_x86, mut t_qemu) = (Vec::new(), Vec::new(), Vec::new());
    let mut x86_same = true;
    let mut qemu_same = true;
    for _ in 0..args.reps.max(1) {
        let (_, t) = util::run_captured(&mut Runner::Native.command(&native, &[], work))?;
        t_native.push(t);
        if x86_ok && x86_same {
            let (o, t) = util::run_captured(&mut Runner::Native.command(&x86, &[], work))?;
            x86_same = check(&reference, &o, "translated x86_64", &mut row.notes);
            t_x86.push(t);
        }
        if qemu_same {
            let (o, t) = util::run_captured(&mut Runner::Qemu("qemu-x86_64").command(&native, &[], work))?;
            qemu_same = check(&reference, &o, "qemu-x86_64", &mut row.notes);
            t_qemu.push(t);
        }
    }
    row.native = util::median(t_native);
    if x86_ok && x86_same {
        row.translated = Some(util::median(t_x86));
    }
    if qemu_same {
        row.qemu = Some(util::median(t_qemu));
    }
    if !args.no_count {
        if arm_native_ok {
            row.insns_native = count(plugin, &arm_native, work, &reference, "native aarch64", &mut row.notes)?;
        }
        if arm_ok {
            row.insns_translated = count(plugin, &arm, work, &reference, "translated aarch64", &mut row.notes)?;
        }
        if relaxed_ok {
            row.insns_relaxed =
                count(plugin, &arm_relaxed, work, &reference, "translated aarch64 (relaxed)", &mut row.notes)?;
        }
    }
    Ok(row)
}

/// Whether `got` equals the native `reference`; if not, a note saying where they differ.
pub(crate) fn check(reference: &Outcome, got: &Outcome, what: &str, notes: &mut Vec<String>) -> bool {
    if reference == got {
        return true;
    }
    let detail = if reference.status != got.status {
        format!("{} instead of {}", got.status_text(), reference.status_text())
    } else if reference.stdout != got.stdout {
        format!("stdout {}", util::first_difference(&reference.stdout, &got.stdout))
    } else {
        format!("stderr {}", util::first_difference(&reference.stderr, &got.stderr))
    };
    notes.push(format!("{what} differs from native: {detail}"));
    false
}

/// Instructions executed by `exe` under qemu-aarch64 with the counting plugin.
fn count(
    plugin: &Path,
    exe: &Path,
    work: &Path,
    reference: &Outcome,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Option<u64>> {
    let out_file = work.join("insn-count.txt");
    let _ = std::fs::remove_file(&out_file);
    let opts = vec!["-plugin".to_string(), format!("{},out={}", plugin.display(), out_file.display())];
    let (o, _) = util::run_captured(&mut Runner::Qemu("qemu-aarch64").command(exe, &opts, work))?;
    if !check(reference, &o, what, notes) {
        return Ok(None);
    }
    read_count(&out_file).map(Some)
}

/// The total the counting plugin wrote to `file`.
pub(crate) fn read_count(file: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading the plugin's count {}", file.display()))?;
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("unexpected plugin output {text:?}"))
}

pub(crate) fn geomean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

fn print_table(rows: &[Row], reps: usize) {
    let secs = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.3}", d.as_secs_f64()));
    let ratio = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}x"));
    let big = |n: Option<u64>| n.map_or("-".to_string(), |n| format!("{:.1}M", n as f64 / 1e6));
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64),
        _ => None,
    };
    println!();
    println!(
        "Wall time: median of {reps} interleaved runs, seconds. Instruction counts: qemu-aarch64 + insn_count plugin; \
         tso = x86-TSO ordering (default), relaxed = --memory-model relaxed."
    );
    println!(
        "{:<10} {:>9} {:>10} {:>10} {:>10} {:>10} | {:>11} {:>11} {:>11} {:>8} {:>8} {:>8}",
        "program", "native", "xlat-x86", "qemu-x86", "xlat/nat", "qemu/nat", "a64 native", "a64 tso", "a64 relax",
        "tso/nat", "rlx/nat", "tso/rlx"
    );
    let (mut rx, mut rq, mut ri, mut rr, mut rc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let n = r.native.as_secs_f64();
        let x = r.translated.map(|t| t.as_secs_f64() / n);
        let q = r.qemu.map(|t| t.as_secs_f64() / n);
        let i = per(r.insns_native, r.insns_translated);
        let l = per(r.insns_native, r.insns_relaxed);
        let c = per(r.insns_relaxed, r.insns_translated);
        rx.extend(x);
        rq.extend(q);
        ri.extend(i);
        rr.extend(l);
        rc.extend(c);
        println!(
            "{:<10} {:>9} {:>10} {:>10} {:>10} {:>10} | {:>11} {:>11} {:>11} {:>8} {:>8} {:>8}",
            r.name,
            secs(Some(r.native)),
            secs(r.translated),
            secs(r.qemu),
            ratio(x),
            ratio(q),
            big(r.insns_native),
            big(r.insns_translated),
            big(r.insns_relaxed),
            ratio(i),
            ratio(l),
            ratio(c)
        );
    }
    println!(
        "{:<10} {:>9} {:>10} {:>10} {:>10} {:>10} | {:>11} {:>11} {:>11} {:>8} {:>8} {:>8}",
        "geomean",
        "",
        "",
        "",
        ratio(geomean(&rx)),
        ratio(geomean(&rq)),
        "",
        "",
        "",
        ratio(geomean(&ri)),
        ratio(geomean(&rr)),
        ratio(geomean(&rc))
    );
    for r in rows {
        for n in &r.notes {
            println!("note: {}: {n}", r.name);
        }
    }
}
