//! `cargo xtask bench-node`: time of each phase of a migration between this host and the
//! emulated arm64 node. The subject (`tests/migrate/resident.c`, static musl, one thread busy
//! over MB mebibytes it made resident) starts natively here and makes HOPS round trips: to
//! `hcontainer agent` in the node as its aarch64 translation (recoded here), and back by the
//! node's hcontainer to an agent here as the native program (recoded here). Each hop's
//! figures come from the migrate command's `--json` report (`MigrationReport.timings`).

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hcontainer_testbed::{cross, BootOptions, Node, NodeImage};

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

/// The agent's port inside the node.
const AGENT_PORT: u16 = 7070;

const JOB: Duration = Duration::from_secs(600);

/// `bash -c` script: closes every descriptor above 2, then runs `$1 $2 $3` without address
/// randomization.
const CLEAN_EXEC: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec setarch x86_64 -R "$1" "$2" "$3""#;

/// The timing fields of a report, in table order.
const FIELDS: [&str; 6] = [
    "notify_us",
    "dump_us",
    "recode_us",
    "transfer_us",
    "restore_us",
    "downtime_us",
];

/// A process of this host, killed when dropped.
struct Killed(u32);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// `hcontainer agent` on this host.
struct HostAgent {
    child: std::process::Child,
    port: u16,
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_agent(hcontainer: &Path, work: &Path, store: &Path) -> Result<HostAgent> {
    let mut child = Command::new(hcontainer)
        .args(["agent", "--listen", "127.0.0.1:0", "--work"])
        .arg(work)
        .arg("--store")
        .arg(store)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting hcontainer agent")?;
    let stdout = child.stdout.take().context("agent stdout")?;
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    let port = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    match port {
        Some(port) => Ok(HostAgent { child, port }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the host agent did not start: {line:?}")
        }
    }
}

/// The value of `"field": N` in a JSON report.
fn field(json: &str, name: &str) -> Option<u64> {
    let rest = json.split(&format!("\"{name}\"")).nth(1)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn node_sh(node: &Node, cmd: &str) -> Result<String> {
    let out = node
        .run(cmd, JOB)
        .with_context(|| format!("running `{cmd}` in the node"))?;
    if !out.success() {
        bail!(
            "`{cmd}` in the node exited {}: {}{}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(out.stdout)
}

/// The `as pid N` of a migrate report.
fn dest_pid(text: &str) -> Result<u32> {
    text.split("as pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no destination pid in the migrate output: {text}"))
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
    util::compile(
        "musl-gcc",
        &["-static", "-O2", "-pthread"],
        &root.join("tests/migrate/resident.c"),
        &exe,
    )?;
    let store = work.join("store");
    step("bench-node: translating the subject for aarch64 into the store");
    let out = Command::new(&hcontainer)
        .arg("translate")
        .arg(&exe)
        .args(["--target", "aarch64", "-q", "--store"])
        .arg(&store)
        .arg("-o")
        .arg(work.join("resident.aarch64"))
        .output()
        .context("running hcontainer translate")?;
    if !out.status.success() {
        bail!(
            "hcontainer translate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = std::fs::read_dir(&store)
        .context("reading the store")?
        .filter_map(|e| e.ok().map(|e| e.path().join("aarch64")))
        .find(|p| p.exists())
        .context("no aarch64 translation in the store")?;
    let stored_str = stored.to_str().context("UTF-8 store path")?;

    step("bench-node: booting the node");
    let image = NodeImage::build(&root.join(".cache")).context("building the node image")?;
    let node = image
        .boot(&BootOptions {
            forward: vec![AGENT_PORT],
            ..BootOptions::default()
        })
        .context("booting the node")?;
    node.install(&arm, "/usr/bin/hcontainer", JOB)
        .context("installing hcontainer")?;
    node.install(&stored, stored_str, JOB)
        .context("installing the translation")?;
    node_sh(&node, &format!("setsid hcontainer agent --listen 0.0.0.0:{AGENT_PORT} --work /root/agent >/root/agent.log 2>&1 </dev/null &"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node_sh(&node, "cat /root/agent.log")?.contains("listening on") {
        if Instant::now() > deadline {
            bail!("the node's agent did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let agent = host_agent(&hcontainer, &work.join("host-agent"), &store)?;
    let node_port = node.host_port(AGENT_PORT).context("forwarded agent port")?;

    let mut child = Command::new("setsid")
        .args(["bash", "-c", CLEAN_EXEC, "resident"])
        .arg(&exe)
        .arg("1")
        .arg(args.mb.to_string())
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the subject")?;
    let mut pid = child.id();
    let mut guard = Some(Killed(pid));
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
        let started = Instant::now();
        let out = Command::new(&hcontainer)
            .args([
                "migrate",
                "--pid",
                &pid.to_string(),
                "--to",
                &format!("127.0.0.1:{node_port}"),
            ])
            .args([
                "--run-as",
                "translated",
                "--recode-at",
                "origin",
                "-q",
                "--store",
            ])
            .arg(&store)
            .arg("--json")
            .arg(&json)
            .output()
            .context("running hcontainer migrate")?;
        let wall = started.elapsed();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "migrate to the node: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
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
            wall,
        ));
        let node_pid = dest_pid(&text)?;
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let json = format!("/root/hop-{trip}-to-host.json");
        let text = node_sh(
            &node,
            &format!(
                "hcontainer migrate --pid {node_pid} --to 10.0.2.2:{} --run-as native --recode-at destination -q --json {json}",
                agent.port
            ),
        )?;
        let wall = started.elapsed();
        pid = dest_pid(&text)?;
        guard = Some(Killed(pid));
        let report = node_sh(&node, &format!("cat {json}"))?;
        rows.push((
            format!("{trip}: node -> host"),
            FIELDS
                .iter()
                .map(|f| field(&report, f).unwrap_or(0))
                .collect(),
            wall,
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
