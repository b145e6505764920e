//! `cargo xtask bench-migrate`: the latency a migration checkpoint adds to a plain CRIU dump.
//!
//! The subject (`tests/migrate/resident.c`, static musl) runs THREADS threads busy over MB
//! mebibytes it made resident. For each configuration — 1, 8 and 64 threads at 10 MB, and
//! 10 MB, 100 MB and 1 GB at one thread — and each repetition, it is started with
//! `hcontainer run`, moved to its x86-64 translation with `hcontainer checkpoint --to x86_64`,
//! restored, and moved back with `hcontainer checkpoint --to native`. The figures come from
//! the timings file the checkpoint command writes into the images directory
//! (`hcontainer-timings-dump.json`: notify, recode, CRIU's frozen time and whole dump); the
//! table shows medians. A second table splits the recode time into its phases, as the
//! recode inside the checkpoint reports them (`HCONTAINER_RECODE_PHASES`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, step};

/// Arguments of `cargo xtask bench-migrate`.
#[derive(clap::Args)]
pub struct Args {
    /// Repetitions of each configuration (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Largest resident size to measure, in MB (1000 = up to 1 GB).
    #[arg(long, default_value_t = 1000)]
    max_mb: u64,
    /// Only these configurations, as THREADSxMB (e.g. `1x10,1x1000`; any threads and size).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// The timings file `hcontainer checkpoint` writes into the images directory.
const TIMINGS_FILE: &str = "hcontainer-timings-dump.json";

/// The environment variable naming the file the recode appends its phase timings to.
const PHASES_ENV: &str = "HCONTAINER_RECODE_PHASES";

/// One checkpoint's figures, in microseconds.
#[derive(Clone, Debug, Default)]
struct Sample {
    notify: u64,
    recode: u64,
    frozen: u64,
    dump: u64,
    /// Wall clock of the whole `hcontainer checkpoint` command.
    command: u64,
    /// The recode's phases, in order.
    phases: Vec<(String, u64)>,
}

struct Config {
    threads: u32,
    mb: u64,
}

/// Runs the measurements and prints the table.
pub fn run(args: &Args) -> Result<()> {
    crate::setup::run()?;
    let root = util::repo_root();
    let hcontainer = util::hcontainer(&root)?;
    let cache = util::cache_dir().join("bench-migrate");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let exe = cache.join("resident.musl");
    util::compile("musl-gcc", &["-static", "-O2", "-pthread"], &root.join("tests/migrate/resident.c"), &exe)?;
    let store = cache.join("store");
    let translated = cache.join("resident.musl.x86_64");
    step("bench-migrate: translating the subject into the store");
    let out = Command::new(&hcontainer)
        .arg("translate")
        .arg(&exe)
        .args(["--target", "x86_64", "-q", "--store"])
        .arg(&store)
        .arg("-o")
        .arg(&translated)
        .output()
        .context("running hcontainer translate")?;
    if !out.status.success() {
        bail!("hcontainer translate {}: {}", exe.display(), String::from_utf8_lossy(&out.stderr));
    }

    let mut configs = vec![Config { threads: 1, mb: 10 }, Config { threads: 8, mb: 10 }, Config { threads: 64, mb: 10 }];
    for mb in [100, 1000] {
        if mb <= args.max_mb {
            configs.push(Config { threads: 1, mb });
        }
    }
    if !args.only.is_empty() {
        configs.clear();
        for o in &args.only {
            let parsed = o.split_once('x').and_then(|(t, m)| Some(Config { threads: t.parse().ok()?, mb: m.parse().ok()? }));
            configs.push(parsed.with_context(|| format!("--only {o:?}: expected THREADSxMB, e.g. 1x10"))?);
        }
    }
    let mut rows = Vec::new();
    for c in &configs {
        let mut there = Vec::new();
        let mut back = Vec::new();
        for rep in 0..args.reps {
            step(&format!("bench-migrate: {} threads, {} MB, repetition {}", c.threads, c.mb, rep + 1));
            let (a, b) = round_trip(&hcontainer, &exe, &store, &cache, c)?;
            there.push(a);
            back.push(b);
        }
        rows.push((c, there, back));
    }
    print_table(&rows, args.reps);
    Ok(())
}

/// Starts the subject, moves it native → translated → native; the two checkpoints' figures.
fn round_trip(hcontainer: &Path, exe: &Path, store: &Path, cache: &Path, c: &Config) -> Result<(Sample, Sample)> {
    let work = cache.join("run");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let stdout = std::fs::File::create(work.join("stdout.txt"))?;
    // In a session of its own (CRIU needs the session leader inside its pid namespace).
    let launcher = Command::new("setsid")
        .arg(hcontainer)
        .arg("run")
        .arg(exe)
        .args([c.threads.to_string(), c.mb.to_string()])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .context("running hcontainer run")?;
    let mut guard = Subject { launcher, pid: None };
    // `hcontainer run` replaces itself with the subject.
    let lpid = guard.launcher.id();
    let pid = wait_for(Duration::from_secs(60), || {
        let ready = std::fs::read_to_string(work.join("stdout.txt")).is_ok_and(|s| s.contains("ready"));
        ready.then_some(lpid)
    })
    .context("the subject did not get ready within 60 s")?;
    guard.pid = Some(pid);

    let there = checkpoint(hcontainer, store, pid, &work.join("to-x86_64"), "x86_64")?;
    restore(hcontainer, &work.join("to-x86_64"))?;
    // Let the translated threads run before they are stopped again.
    std::thread::sleep(Duration::from_millis(200));
    let back = checkpoint(hcontainer, store, pid, &work.join("to-native"), "native")?;
    drop(guard);
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    Ok((there, back))
}

/// The subject's processes, killed when dropped.
struct Subject {
    launcher: Child,
    pid: Option<u32>,
}

impl Drop for Subject {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // The last checkpoint usually ended it already.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).stderr(Stdio::null()).status();
        }
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
    }
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn checkpoint(hcontainer: &Path, store: &Path, pid: u32, dir: &Path, to: &str) -> Result<Sample> {
    let phases_file = dir.with_extension("phases.jsonl");
    let start = Instant::now();
    let out = Command::new(hcontainer)
        .args(["checkpoint", "--pid", &pid.to_string(), "--to", to, "--shell-job", "-q", "--store"])
        .arg(store)
        .arg("-D")
        .arg(dir)
        .env(PHASES_ENV, &phases_file)
        .output()
        .context("running hcontainer checkpoint")?;
    let command = start.elapsed();
    if !out.status.success() {
        bail!("hcontainer checkpoint --to {to} of pid {pid}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let file = dir.join(TIMINGS_FILE);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let field = |name: &str| -> Result<u64> {
        json_u64(&text, name).with_context(|| format!("{}: no number for {name:?}", file.display()))
    };
    Ok(Sample {
        notify: field("notify_us")?,
        recode: field("recode_us")?,
        frozen: field("frozen_us")?,
        dump: field("total_us")?,
        command: u64::try_from(command.as_micros()).unwrap_or(u64::MAX),
        phases: std::fs::read_to_string(&phases_file).map(|t| parse_phases(&t)).unwrap_or_default(),
    })
}

/// The phases of the last line of a phases file: `{"name": 12, "other name": 3}` (names
/// hold no quotes).
fn parse_phases(text: &str) -> Vec<(String, u64)> {
    let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else { return Vec::new() };
    // Odd pieces are names, each followed by `: <number>, `.
    let parts: Vec<&str> = line.split('"').collect();
    let mut out = Vec::new();
    let mut i = 1;
    while i + 1 < parts.len() {
        let digits: String = parts[i + 1].chars().filter(|c| c.is_ascii_digit()).collect();
        if let Ok(us) = digits.parse() {
            out.push((parts[i].to_string(), us));
        }
        i += 2;
    }
    out
}

fn restore(hcontainer: &Path, dir: &Path) -> Result<()> {
    let out = Command::new(hcontainer)
        .args(["restore", "--detach", "--shell-job", "-q", "-D"])
        .arg(dir)
        .output()
        .context("running hcontainer restore")?;
    if !out.status.success() {
        bail!("hcontainer restore -D {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The number a flat JSON object gives `name` (`"name": 123`); `None` if absent or `null`.
/// The timings file is one flat object of numbers, strings and nulls written by
/// `hcontainer-criu`, so a key search is exact for it.
fn json_u64(text: &str, name: &str) -> Option<u64> {
    let key = format!("\"{name}\"");
    let at = text.find(&key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    digits.parse().ok()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn print_table(rows: &[(&Config, Vec<Sample>, Vec<Sample>)], reps: usize) {
    println!();
    println!("Migration checkpoint latency, median of {reps} (ms; notify + recode is what migration adds to CRIU's dump)");
    println!();
    println!("| threads | MB | direction | notify | recode | notify + recode | CRIU frozen | CRIU dump | whole checkpoint |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (c, there, back) in rows {
        for (dir, samples) in [("native → x86_64", there), ("x86_64 → native", back)] {
            let pick = |f: fn(&Sample) -> u64| median(samples.iter().map(f).collect());
            println!(
                "| {} | {} | {dir} | {} | {} | {} | {} | {} | {} |",
                c.threads,
                c.mb,
                ms(pick(|s| s.notify)),
                ms(pick(|s| s.recode)),
                ms(pick(|s| s.notify + s.recode)),
                ms(pick(|s| s.frozen)),
                ms(pick(|s| s.dump)),
                ms(pick(|s| s.command)),
            );
        }
    }
    print_phases(rows, reps);
    let one: Vec<u64> = rows
        .iter()
        .filter(|(c, ..)| c.threads == 1)
        .flat_map(|(_, a, b)| a.iter().chain(b.iter()).map(|s| s.notify + s.recode))
        .collect();
    if let Some(worst) = one.iter().max() {
        let verdict = if *worst < 5000 { "under" } else { "NOT under" };
        println!();
        println!("one thread, any size: notify + recode at most {} ms ({verdict} the 5 ms target)", ms(*worst));
    }
}

/// The recode time split into its phases (medians, ms), one row per configuration and
/// direction.
fn print_phases(rows: &[(&Config, Vec<Sample>, Vec<Sample>)], reps: usize) {
    let mut names: Vec<&str> = Vec::new();
    for (_, a, b) in rows {
        for s in a.iter().chain(b.iter()) {
            for (n, _) in &s.phases {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
    }
    if names.is_empty() {
        return;
    }
    println!();
    println!("Recode phases inside the checkpoint, median of {reps} (ms)");
    println!();
    println!("| threads | MB | direction | {} |", names.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(names.len()));
    for (c, there, back) in rows {
        for (dir, samples) in [("native → x86_64", there), ("x86_64 → native", back)] {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    let v = samples
                        .iter()
                        .map(|s| s.phases.iter().find(|(p, _)| p == n).map_or(0, |(_, us)| *us))
                        .collect();
                    ms(median(v))
                })
                .collect();
            println!("| {} | {} | {dir} | {} |", c.threads, c.mb, cells.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers() {
        let t = r#"{"action":"dump","freeze_us":12,"notify_us": 345,"recode_us":null,"total_us":7}"#;
        assert_eq!(json_u64(t, "notify_us"), Some(345));
        assert_eq!(json_u64(t, "total_us"), Some(7));
        assert_eq!(json_u64(t, "recode_us"), None);
        assert_eq!(json_u64(t, "threads"), None);
    }

    #[test]
    fn phase_lines() {
        let t = "{\"a\": 1}\n{\"source executable, kind\": 320, \"mm read\": 16}\n";
        assert_eq!(parse_phases(t), vec![("source executable, kind".to_string(), 320), ("mm read".to_string(), 16)]);
        assert!(parse_phases("").is_empty());
    }
}
