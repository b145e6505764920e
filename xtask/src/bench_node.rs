//! `cargo xtask bench-node`: time of each phase of a migration between this host and the
//! emulated arm64 node, without and with pre-copy, and with TLS against the same hop in
//! clear, in one run.
//!
//! The subject (`tests/migrate/slow_heap.c`, static musl) keeps a heap of MB mebibytes of
//! which it changes PAGES pages every 20 ms, and checks the whole heap every second. It
//! starts natively here and makes ROUND_TRIPS round trips without pre-copy and as many with
//! `--pre-dump N` (one of each kind in turn): to `hcontainer agent` in the node as its aarch64 translation (recoded
//! here), and back by the node's hcontainer to an agent here as the native program (recoded
//! here). Every hop runs over TLS with mutual authentication; a third kind of round trip
//! (without pre-copy) sends the node -> host hop in clear instead, to an agent
//! here started with `--insecure-plaintext` on loopback (an agent in the node cannot run in
//! clear: it listens on the node's network address), so that the two node -> host sets
//! compare TLS with no TLS on the same hop. Each hop's figures come from the migrate
//! command's `--json` report
//! ([`hcontainer_node::MigrationReport`]); after each hop the subject must count on with its
//! heap intact, or the bench fails.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hcontainer_testbed::cc::{self, Libc};
use hcontainer_testbed::migrate::{self, AgentAuth, HopOptions, HostAgent, KillOnDrop};
use hcontainer_testbed::{cross, Node, NodeImage};

use crate::util::{self, step};

/// Arguments of `cargo xtask bench-node`.
#[derive(clap::Args)]
pub struct Args {
    /// Heap of the subject, in MB.
    #[arg(long, default_value_t = 32)]
    mb: u64,
    /// Pages the subject changes per 20 ms step.
    #[arg(long, default_value_t = 1)]
    dirty_pages: u64,
    /// Round trips (host -> node -> host) of each kind.
    #[arg(long, default_value_t = 1)]
    round_trips: usize,
    /// Pre-copy rounds of the second set of round trips (0: only the first set).
    #[arg(long, default_value_t = 2)]
    pre_dump: usize,
    /// Leave out the set whose node -> host hops go in clear.
    #[arg(long)]
    no_clear: bool,
    /// The only TLS cipher suite the migrating sides offer (aes128gcm, aes256gcm, chacha20;
    /// default: each side's CPU order).
    #[arg(long, value_name = "SUITE")]
    cipher: Option<String>,
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

/// One hop's row of the table (also `cargo xtask demo`'s).
pub(crate) struct Row {
    hop: &'static str,
    pre_dump: usize,
    /// The TLS cipher suite, or `clear`.
    tls: String,
    /// File bytes of the final round's transfer.
    final_sent: u64,
    /// Its transfer time.
    final_transfer_us: u64,
    /// `FIELDS`, in microseconds.
    timings: Vec<u64>,
    /// Making the final round incremental by content (no dirty tracking).
    delta_us: u64,
    /// Page bytes the final round sent.
    final_bytes: u64,
    /// Page bytes all rounds sent.
    all_bytes: u64,
    wall: Duration,
}

impl Row {
    /// Throughput of the final round's transfer, MB/s.
    fn mb_per_s(&self) -> f64 {
        self.final_sent as f64 / self.final_transfer_us.max(1) as f64
    }

    /// The row of a hop from its `hcontainer migrate --json` report.
    pub(crate) fn new(hop: &'static str, pre_dump: usize, json: &str, wall: Duration) -> Result<Row> {
        let report: serde_json::Value =
            serde_json::from_str(json).context("reading a migrate --json report")?;
        let number = |v: &serde_json::Value, what: &str| {
            v.as_u64()
                .with_context(|| format!("no {what} in the report: {json}"))
        };
        let timings = FIELDS
            .iter()
            .map(|f| number(&report["timings"][f], f))
            .collect::<Result<Vec<u64>>>()?;
        let final_bytes = number(
            &report["final_round"]["sent_page_bytes"],
            "final_round.sent_page_bytes",
        )?;
        let delta_us = number(&report["final_round"]["delta_us"], "final_round.delta_us")?;
        let final_sent = number(&report["final_round"]["sent_bytes"], "final_round.sent_bytes")?;
        let final_transfer_us = number(&report["final_round"]["transfer_us"], "final_round.transfer_us")?;
        let tls = match report["cipher"].as_str() {
            Some(c) => c.trim_start_matches("TLS13_").to_string(),
            None => "clear".to_string(),
        };
        let mut all_bytes = final_bytes;
        for round in report["pre_rounds"].as_array().into_iter().flatten() {
            all_bytes += number(&round["sent_page_bytes"], "pre_rounds[].sent_page_bytes")?;
        }
        Ok(Row {
            hop,
            pre_dump,
            tls,
            final_sent,
            final_transfer_us,
            timings,
            delta_us,
            final_bytes,
            all_bytes,
            wall,
        })
    }
}

/// Prints the column heads and `rows`: times in ms, page data sent in MB.
pub(crate) fn print_rows(rows: &[Row]) {
    println!(
        "{:<13} {:<23} {:>4} {:>8} {:>8} {:>7} {:>7} {:>9} {:>7} {:>8} {:>9} {:>9} {:>7} {:>8}",
        "hop", "tls", "pre", "notify", "dump", "delta", "recode", "transfer", "MB/s", "restore", "downtime", "final MB", "all MB", "wall"
    );
    let ms = |us: u64| us as f64 / 1000.0;
    let mb = |b: u64| b as f64 / 1e6;
    for r in rows {
        let t = &r.timings;
        println!(
            "{:<13} {:<23} {:>4} {:>8.1} {:>8.1} {:>7.1} {:>7.1} {:>9.1} {:>7.1} {:>8.1} {:>9.1} {:>9.2} {:>7.2} {:>8.1}",
            r.hop,
            r.tls,
            r.pre_dump,
            ms(t[0]),
            ms(t[1]),
            ms(r.delta_us),
            ms(t[2]),
            ms(t[3]),
            r.mb_per_s(),
            ms(t[4]),
            ms(t[5]),
            mb(r.final_bytes),
            mb(r.all_bytes),
            r.wall.as_secs_f64() * 1000.0
        );
    }
}

/// [`migrate::slow_heap_counts_on`], as an `anyhow` result.
fn counts_on(what: &str, after: u64, read: impl Fn() -> Result<String>) -> Result<u64> {
    migrate::slow_heap_counts_on(what, after, read).map_err(anyhow::Error::msg)
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
    let exe = work.join("slow_heap");
    cc::compile(
        Libc::Musl,
        &root.join("tests/migrate/slow_heap.c"),
        &[],
        &exe,
    )?;
    let store = work.join("store");
    step("bench-node: translating the subject for aarch64 into the store");
    let stored = migrate::translate_for_node(&hcontainer, &exe, &store)?;

    step("bench-node: booting the node");
    let image = NodeImage::build(&root.join(".cache")).context("building the node image")?;
    let pki = migrate::Pki::make(&hcontainer, &work.join("pki"))?;
    let node = migrate::boot_with_agent(&image, &arm, &[&stored], &[], &pki, JOB)
        .context("booting the node for migrations")?;
    let agent = HostAgent::start(&hcontainer, &work.join("host-agent"), &store, AgentAuth::Tls(&pki))?;
    let clear_agent = HostAgent::start(&hcontainer, &work.join("host-agent-clear"), &store, AgentAuth::InsecurePlaintext)?;

    // The progress file exists with its one size on both machines (CRIU checks open files).
    let progress = work.join("progress.txt");
    std::fs::write(&progress, [0u8; 42]).context("creating the progress file")?;
    let progress_str = progress.to_str().context("UTF-8 work path")?.to_owned();
    migrate::node_sh(&node, &format!("head -c 42 /dev/zero > {progress_str}"), JOB)?;
    let read_here = || {
        std::fs::read_to_string(&progress).with_context(|| format!("reading {}", progress.display()))
    };
    let read_node = || Ok(migrate::node_sh(&node, &format!("cat {progress_str}"), JOB)?);

    let mut child = migrate::start_native(
        "slow_heap",
        &exe,
        &[progress_str.as_str(), &args.mb.to_string(), &args.dirty_pages.to_string()],
        &work,
    )?;
    let mut pid = child.id();
    let mut guard = Some(KillOnDrop(pid));
    // One heap check (every 50 steps) before the first hop.
    let mut at = counts_on("native here", 60, read_here)?;

    // (pre-copy rounds, node -> host in clear)
    let mut sets = vec![(0, false)];
    if args.pre_dump > 0 {
        sets.push((args.pre_dump, false));
    }
    if !args.no_clear {
        sets.push((0, true));
    }
    let mut rows = Vec::new();
    let mut first_hop = true;
    // One round trip of each kind in turn, so that every kind sees the same load of this
    // shared machine.
    for trip in 0..args.round_trips {
        for &(pre_dump, clear) in &sets {
            let back_to = if clear { &clear_agent } else { &agent };
            step(&format!(
                "bench-node: round trip {} of {} with --pre-dump {pre_dump}{}",
                trip + 1,
                args.round_trips,
                if clear { ", node -> host in clear" } else { "" }
            ));
            let json = work.join(format!("to-node-{pre_dump}-{clear}-{trip}.json"));
            let options = HopOptions {
                pre_dump,
                json: Some(&json),
                cipher: args.cipher.as_deref(),
            };
            let hop = migrate::to_node(&hcontainer, pid, &node, &store, &pki, &options, JOB)?;
            if first_hop {
                let _ = child.wait();
                first_hop = false;
            }
            drop(guard.take());
            let report = std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?;
            rows.push(Row::new("host -> node", pre_dump, &report, hop.wall)?);
            // Two heap checks in the node.
            at = counts_on("translated in the node", at + 100, read_node)?;

            let json = format!("/root/to-host-{pre_dump}-{clear}-{trip}.json");
            let options = HopOptions {
                pre_dump,
                json: Some(Path::new(&json)),
                cipher: args.cipher.as_deref(),
            };
            let back = migrate::to_host(&node, hop.dest_pid, back_to, &options, JOB)?;
            pid = back.dest_pid;
            guard = Some(KillOnDrop(pid));
            let report = migrate::node_sh(&node, &format!("cat {json}"), JOB)?;
            rows.push(Row::new("node -> host", pre_dump, &report, back.wall)?);
            at = counts_on("native here again", at + 100, read_here)?;
        }
    }
    drop(guard);
    print_table(args, &rows, &node);
    Ok(())
}

fn print_table(args: &Args, rows: &[Row], node: &Node) {
    println!(
        "bench-node: slow_heap.c, {} MB heap, {} page(s) changed per 20 ms; node boot {:.1} s; times in ms (wall = the whole migrate command), MB of page data sent",
        args.mb,
        args.dirty_pages,
        node.boot_time().as_secs_f64()
    );
    print_rows(rows);
    let ms = |us: u64| us as f64 / 1000.0;
    fn median(mut v: Vec<f64>) -> Option<f64> {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }
    // TLS against clear on the node -> host hop without pre-copy.
    let of = |clear: bool, f: &dyn Fn(&Row) -> f64| {
        median(
            rows.iter()
                .filter(|r| r.hop == "node -> host" && r.pre_dump == 0 && (r.tls == "clear") == clear)
                .map(f)
                .collect(),
        )
    };
    let down = |r: &Row| r.timings[5] as f64 / 1000.0;
    if let (Some(tls_rate), Some(clear_rate), Some(tls_down), Some(clear_down)) =
        (of(false, &Row::mb_per_s), of(true, &Row::mb_per_s), of(false, &down), of(true, &down))
    {
        println!(
            "node -> host without pre-copy: transfer {tls_rate:.1} MB/s with TLS, {clear_rate:.1} MB/s in clear ({:.2}x); downtime {tls_down:.1} ms with TLS, {clear_down:.1} ms in clear ({:+.1} %)",
            clear_rate / tls_rate.max(1e-9),
            (tls_down / clear_down.max(1e-9) - 1.0) * 100.0
        );
    }
    if args.pre_dump == 0 {
        return;
    }
    // Median downtime of each direction without and with pre-copy (both with TLS).
    for hop in ["host -> node", "node -> host"] {
        let median = |pre: usize| {
            median(
                rows.iter()
                    .filter(|r| r.hop == hop && r.pre_dump == pre && r.tls != "clear")
                    .map(|r| r.timings[5] as f64)
                    .collect(),
            )
            .map(|v| v as u64)
        };
        if let (Some(without), Some(with)) = (median(0), median(args.pre_dump)) {
            println!(
                "{hop}: downtime {:.1} ms without pre-copy, {:.1} ms with {} rounds: {:.2}x shorter",
                ms(without),
                ms(with),
                args.pre_dump,
                without as f64 / with.max(1) as f64
            );
        }
    }
}
