//! `cargo xtask bench-node`: time of each phase of a migration between this host and the
//! emulated arm64 node. The subject (`tests/migrate/resident.c`, static musl, one thread busy
//! over MB mebibytes it made resident) starts natively here and makes HOPS round trips: to
//! `hcontainer agent` in the node as its aarch64 translation (recoded here), and back by the
//! node's hcontainer to an agent here as the native program (recoded here). Each hop's
//! figures come from the migrate command's `--json` report (`MigrationReport.timings`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hcontainer_testbed::cc::{self, Libc};
use hcontainer_testbed::migrate::{self, HostAgent, KillOnDrop};
use hcontainer_testbed::{cross, NodeImage};

use crate::util::{self, step};

/// Arguments of `cargo xtask bench-node`.
#[derive(clap::Args)]
pub struct Args {
    /// Resident size of the subject, in MB.
    #[arg(long, default_value_t = 16)]
    mb: u64,
    /// Round trips (host -> node -> host).
    #[arg(long, default_value_t = 2)]
    round_trips: usize,
}

/// Time limit of one command in the node.
const JOB: Duration = Duration::from_secs(600);

/// The timing fields of a report, in table order.
const FIELDS: [&str; 6] = [
    "notify_us",
    "dump_us",
    "recode_us",
    "transfer_us",
    "restore_us",
    "downtime_us",
];

/// The value of `"field": N` in a JSON report.
fn field(json: &str, name: &str) -> Option<u64> {
    let rest = json.split(&format!("\"{name}\"")).nth(1)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Runs the hops and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let root = util::repo_root();
    let hcontainer = util::hcontainer(&root)?;
    let arm = cross::hcontainer_aarch64(&root);
    if !arm.exists() {
        bail!(
            "{} is missing: build it with `cargo xtask vm build`",
            arm.display()
        );
    }
    let work = util::cache_dir().join("bench-node");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let work = work.canonicalize().context("canonical work folder")?;
    let exe = work.join("resident");
    cc::compile(
        Libc::Musl,
        &root.join("tests/migrate/resident.c"),
        &[],
        &exe,
    )?;
    let store = work.join("store");
    step("bench-node: translating the subject for aarch64 into the store");
    let stored = migrate::translate_for_node(&hcontainer, &exe, &store)?;

    step("bench-node: booting the node");
    let image = NodeImage::build(&root.join(".cache")).context("building the node image")?;
    let node = migrate::boot_with_agent(&image, &arm, &[&stored], &[], JOB)
        .context("booting the node for migrations")?;
    let agent = HostAgent::start(&hcontainer, &work.join("host-agent"), &store)?;

    let mut child = migrate::start_native("resident", &exe, &["1", &args.mb.to_string()], &work)?;
    let mut pid = child.id();
    let mut guard = Some(KillOnDrop(pid));
    // Resident: VmRSS at least the table's size.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        if rss_kb >= args.mb * 1000 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the subject did not become resident ({rss_kb} kB)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut rows: Vec<(String, Vec<u64>, Duration)> = Vec::new();
    for trip in 0..args.round_trips {
        let json = work.join(format!("hop-{trip}-to-node.json"));
        let hop = migrate::to_node(&hcontainer, pid, &node, &store, Some(&json), JOB)?;
        if trip == 0 {
            let _ = child.wait();
        }
        drop(guard.take());
        let report = std::fs::read_to_string(&json)
            .with_context(|| format!("reading {}", json.display()))?;
        rows.push((
            format!("{trip}: host -> node"),
            FIELDS
                .iter()
                .map(|f| field(&report, f).unwrap_or(0))
                .collect(),
            hop.wall,
        ));
        let node_pid = hop.dest_pid;
        std::thread::sleep(Duration::from_secs(1));
        let json = format!("/root/hop-{trip}-to-host.json");
        let back = migrate::to_host(&node, node_pid, agent.port(), Some(&json), JOB)?;
        pid = back.dest_pid;
        guard = Some(KillOnDrop(pid));
        let report = migrate::node_sh(&node, &format!("cat {json}"), JOB)?;
        rows.push((
            format!("{trip}: node -> host"),
            FIELDS
                .iter()
                .map(|f| field(&report, f).unwrap_or(0))
                .collect(),
            back.wall,
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(guard);

    println!(
        "bench-node: resident.c, 1 thread, {} MB resident; times in ms (wall = the whole migrate command)",
        args.mb
    );
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8}",
        "hop", "notify", "dump", "recode", "transfer", "restore", "downtime", "wall"
    );
    for (name, v, wall) in &rows {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "{:<16} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>8.1} {:>9.1} {:>8.1}",
            name,
            ms(v[0]),
            ms(v[1]),
            ms(v[2]),
            ms(v[3]),
            ms(v[4]),
            ms(v[5]),
            wall.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
