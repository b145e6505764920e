//! Round trips between this host and the emulated arm64 node: a deterministic computation
//! of our own, started natively here, is moved host -> node -> host -> node -> host with
//! `hcontainer migrate` (as its aarch64 translation in the node, natively here), each hop at a
//! seeded random progress point, and its final output must equal an uninterrupted native run.
//!
//! A program with a large, slowly changing heap (`tests/migrate/slow_heap.c`, which checks
//! its whole heap every second) moves host -> node -> host with pre-copy rounds
//! (`--pre-dump 2`) in both directions: the final round sends a small part of what the first
//! sent, and the program counts on with its heap intact on each side.
//!
//! Then the TCP key-value server of the migration tests (`tests/migrate/kv.c`) moves host ->
//! node -> host while a client keeps writing through a proxy that finds the service by
//! health checks, as HAProxy does (before each hop the service's backend is put in
//! maintenance, which closes its connections; the client reconnects and resends its
//! unacknowledged write): after each hop every acknowledged write is there.
//!
//! The aarch64 hcontainer comes from `cargo xtask vm build`; the node image is built on
//! first use under `.cache/vm` (see crates/testbed).

mod common;
mod node_support;

use hcontainer_testbed::migrate::{slow_heap_counts_on, slow_heap_progress};
use node_support::{lock, sh, to_host, HopOptions, KillOnDrop, Subject, JOB};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Number of steps of the computation.
const STEPS: u64 = 1200;

/// The subject (`tests/migrate/digest.c`): `STEPS` steps of a recurrence mixed with a digest
/// of all earlier states, each written as `i digest` (fixed width) at offset 0 of the file
/// `argv[1]`, one every 20 ms; the last line is the final digest.
const DIGEST_C: &str = include_str!("../../../tests/migrate/digest.c");

/// The step number of a progress line.
fn step(text: &str) -> Option<u64> {
    text.split_whitespace().next().and_then(|i| i.parse().ok())
}

/// Polls `read` until the step it shows reaches `target`, for at most 60 s.
fn wait_step(what: &str, target: u64, read: impl Fn() -> String) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = read();
        if let Some(i) = step(&text).filter(|&i| i >= target) {
            assert!(
                i + 1 < STEPS,
                "the computation finished ({text:?}) before the hop planned at step {target} ({what})"
            );
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: step {target} not reached in 60 s; last: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small seeded generator for the hop points (xorshift64).
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn computation_round_trips_between_this_host_and_the_arm64_node() {
    let _l = lock();
    let repo = common::repo_root();
    let subject = Subject::build("node-hops", "digest", DIGEST_C, &[]);
    let (work, exe) = (&subject.work, &subject.exe);

    // The uninterrupted native run, alongside.
    let reference_file = work.join("reference.txt");
    let mut reference = Command::new(&exe)
        .arg(&reference_file)
        .arg(STEPS.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the reference run");

    let (node, host_agent) = subject.boot(&repo, &[]);
    let out_file = work.join("digest.txt");
    let out_str = out_file.to_str().expect("UTF-8 work path").to_owned();
    sh(&node, &format!("head -c 42 /dev/zero > {out_str}"));

    let mut child = subject.start(&[&out_str, &STEPS.to_string()]);
    let mut pid = child.id();
    let mut guard: Option<KillOnDrop> = None;
    let mut rng = Seeded(0x5eed_2026_0005);
    let mut at = 0;
    let read_host = || std::fs::read_to_string(&out_file).unwrap_or_default();
    for round in 0..2 {
        // Here -> node.
        let target = at + 30 + rng.below(70);
        let here = wait_step("native here", target, read_host);
        let hop = subject
            .to_node(pid, &node, &HopOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: migrate to the node failed: {e}"));
        assert!(hop.report.contains("aarch64 translated"), "{}", hop.report);
        eprintln!(
            "round {round}: host -> node at step >= {here}: {:.2} s",
            hop.wall.as_secs_f64()
        );
        drop(guard.take());
        if round == 0 {
            let _ = child.wait();
        }
        let node_pid = hop.dest_pid;
        let target = wait_step("translated in the node", here + 30 + rng.below(70), || {
            sh(&node, &format!("cat {out_str}"))
        });
        // Node -> here.
        let back = to_host(&node, node_pid, &host_agent, &HopOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: migrate back failed: {e}"));
        assert!(back.report.contains("x86_64 native"), "{}", back.report);
        eprintln!(
            "round {round}: node -> host at step >= {target}: {:.2} s",
            back.wall.as_secs_f64()
        );
        pid = back.dest_pid;
        guard = Some(KillOnDrop(pid));
        let gone = node
            .run(&format!("kill -0 {node_pid}"), JOB)
            .expect("kill -0 in the node");
        assert!(
            !gone.success(),
            "round {round}: the translated source still runs in the node"
        );
        at = target;
    }

    // The last hop ended here: the native program finishes on its own.
    let deadline = Instant::now() + Duration::from_secs(90);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            Instant::now() < deadline,
            "the computation did not finish: {:?}",
            read_host()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    let status = reference.wait().expect("waiting for the reference run");
    assert!(status.success(), "reference run: {status}");
    let expected = std::fs::read_to_string(&reference_file).expect("reading the reference output");
    assert_eq!(
        step(&expected),
        Some(STEPS - 1),
        "reference output {expected:?}"
    );
    let got = read_host();
    assert_eq!(
        got, expected,
        "final output after 4 hops vs the uninterrupted native run"
    );
    eprintln!(
        "final output after 4 hops equals the uninterrupted run: {}",
        got.trim()
    );
}

/// The same computation built as a dynamically linked program (glibc, PIE), started with
/// `hcontainer run`: the node has its x86-64 files (Debian's amd64 libc at its paths) and gets
/// the program's launcher and units with the first job; host -> node -> host, output equal to
/// the uninterrupted run.
#[test]
fn dynamically_linked_computation_round_trips_between_this_host_and_the_arm64_node() {
    let _l = lock();
    let repo = common::repo_root();
    let subject = Subject::build_dynamic("node-hops-dynamic", "digest", DIGEST_C, &[]);
    let (work, exe) = (&subject.work, &subject.exe);
    let reference_file = work.join("reference.txt");
    let mut reference = Command::new(exe).arg(&reference_file).arg(STEPS.to_string()).stdin(Stdio::null()).spawn().expect("reference");
    let (node, host_agent) = subject.boot(&repo, &[]);
    let out_file = work.join("digest.txt");
    let out_str = out_file.to_str().expect("UTF-8 work path").to_owned();
    sh(&node, &format!("head -c 42 /dev/zero > {out_str}"));
    let mut child = subject.start_run(&[&out_str, &STEPS.to_string()]);
    let pid = child.id();
    let read_host = || std::fs::read_to_string(&out_file).unwrap_or_default();
    let here = wait_step("native here", 40, read_host);
    let hop = subject
        .to_node(pid, &node, &HopOptions::default())
        .unwrap_or_else(|e| panic!("migrate to the node failed: {e}"));
    assert!(hop.report.contains("aarch64 translated"), "{}", hop.report);
    assert!(hop.report.contains("store objects the destination lacked"), "the units travelled with the job: {}", hop.report);
    let _ = child.wait();
    let node_pid = hop.dest_pid;
    let exe_there = sh(&node, &format!("readlink /proc/{node_pid}/exe"));
    assert!(exe_there.contains("/aarch64"), "the node runs the launcher: {exe_there}");
    let target = wait_step("translated in the node", here + 60, || sh(&node, &format!("cat {out_str}")));
    let back = to_host(&node, node_pid, &host_agent, &HopOptions::default()).unwrap_or_else(|e| panic!("migrate back failed: {e}"));
    assert!(back.report.contains("x86_64 native"), "{}", back.report);
    let pid = back.dest_pid;
    let _guard = KillOnDrop(pid);
    eprintln!("dynamic: host -> node at step {here}, node -> host at step >= {target}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Path::new(&format!("/proc/{pid}")).exists() && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z") {
        assert!(Instant::now() < deadline, "the computation did not finish: {:?}", read_host());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reference.wait().expect("reference").success());
    let expected = std::fs::read_to_string(&reference_file).expect("reference output");
    assert_eq!(read_host(), expected, "final output after 2 hops vs the uninterrupted native run");
}

/// Heap of the pre-copy subject (`tests/migrate/slow_heap.c`) in MB, and the pages it
/// changes per 20 ms step.
const HEAP_MB: u64 = 16;
const HEAP_DIRTY_PAGES: u64 = 1;

/// Pre-copy rounds of each hop of the pre-copy test.
const PRE_DUMPS: usize = 2;

/// [`hcontainer_testbed::migrate::slow_heap_counts_on`], failing the test on its error.
fn heap_counts_on(what: &str, after: u64, read: impl Fn() -> String) -> u64 {
    slow_heap_counts_on(what, after, || Ok::<_, std::convert::Infallible>(read()))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The first progress the subject writes at its destination (the file there holds zeros, or
/// what it showed before an earlier hop: `stale`).
fn first_progress(what: &str, stale: &str, read: impl Fn() -> String) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = read();
        if text != stale {
            if let Some((step, ok)) = slow_heap_progress(&text) {
                assert!(ok, "{what}: the subject found its heap damaged: {text:?}");
                return step;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the subject wrote nothing in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks a `--json` report of a hop with `PRE_DUMPS` pre-copy rounds: the first round sent
/// the whole heap, the final one a small part of it.
fn check_pre_copy(hop: &str, json: &str) {
    let report: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{hop}: report {json:?}: {e}"));
    let rounds = report["pre_rounds"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(rounds, PRE_DUMPS, "{hop}: pre-copy rounds in {json}");
    let sent = |round: &serde_json::Value| round["sent_page_bytes"].as_u64().unwrap_or(0);
    let first = sent(&report["pre_rounds"][0]);
    let last = sent(&report["final_round"]);
    assert!(
        first >= HEAP_MB << 20,
        "{hop}: the first round sent {first} page bytes, less than the heap"
    );
    assert!(
        last * 8 < first,
        "{hop}: the final round sent {last} page bytes, the first {first}"
    );
    assert!(
        report["timings"]["downtime_us"].as_u64().unwrap_or(0) > 0,
        "{hop}: no downtime measured in {json}"
    );
    eprintln!("{hop}: pre-copy rounds sent {first} page bytes first, {last} in the final round");
}

#[test]
fn pre_copy_moves_a_slowly_changing_heap_to_the_arm64_node_and_back() {
    let _l = lock();
    let repo = common::repo_root();
    let subject = Subject::build(
        "node-pre-copy",
        "slow_heap",
        include_str!("../../../tests/migrate/slow_heap.c"),
        &[],
    );
    let (node, host_agent) = subject.boot(&repo, &[]);
    // The progress file has one size on both machines (CRIU checks the files a process has
    // open).
    let progress = subject.work.join("progress.txt");
    std::fs::write(&progress, [0u8; 42]).expect("creating the progress file");
    let progress_str = progress.to_str().expect("UTF-8 work path").to_owned();
    sh(&node, &format!("head -c 42 /dev/zero > {progress_str}"));
    let read_here = || std::fs::read_to_string(&progress).unwrap_or_default();
    let read_node = || sh(&node, &format!("cat {progress_str}"));

    let mut child = subject.start(&[
        &progress_str,
        &HEAP_MB.to_string(),
        &HEAP_DIRTY_PAGES.to_string(),
    ]);
    let guard = KillOnDrop(child.id());
    let here = heap_counts_on("native here", 60, read_here);

    // Here -> node, recoded here.
    let json = subject.work.join("to-node.json");
    let options = HopOptions {
        pre_dump: PRE_DUMPS,
        json: Some(&json),
        ..HopOptions::default()
    };
    let hop = subject
        .to_node(child.id(), &node, &options)
        .unwrap_or_else(|e| panic!("migrate to the node with pre-copy failed: {e}"));
    eprintln!("{}", hop.report);
    let _ = child.wait();
    drop(guard);
    check_pre_copy(
        "host -> node",
        &std::fs::read_to_string(&json).expect("reading the report"),
    );
    let resumed = first_progress("in the node", "", read_node);
    assert!(
        resumed > here,
        "the translation in the node started at step {resumed}, before the native run's {here}"
    );
    let there = heap_counts_on("in the node", resumed + 100, read_node);

    // Node -> here, pre-copy rounds made by the node's hcontainer, recoded here.
    let stale = read_here();
    let options = HopOptions {
        pre_dump: PRE_DUMPS,
        json: Some(Path::new("/root/to-host.json")),
        ..HopOptions::default()
    };
    let back = to_host(&node, hop.dest_pid, &host_agent, &options)
        .unwrap_or_else(|e| panic!("migrate back with pre-copy failed: {e}"));
    eprintln!("{}", back.report);
    let _home = KillOnDrop(back.dest_pid);
    check_pre_copy("node -> host", &sh(&node, "cat /root/to-host.json"));
    let gone = node
        .run(&format!("kill -0 {}", hop.dest_pid), JOB)
        .expect("kill -0 in the node");
    assert!(!gone.success(), "the translated source still runs in the node");
    let resumed = first_progress("back here", &stale, read_here);
    assert!(
        resumed > there,
        "the program back here started at step {resumed}, before the node's {there}"
    );
    let home = heap_counts_on("back here", resumed + 100, read_here);
    eprintln!(
        "pre-copy round trip: step {here} here, {there} in the node, {home} here again; heap intact"
    );
}

/// The key-value server's port, on this host and in the node (its listening socket keeps it).
const KV_PORT: u16 = 17071;

/// Builds `tests/migrate/kv.c` listening on every address instead of loopback only (QEMU's
/// forwards reach the node at its own address), natively with musl, in `work`.
const KV_ANY_C: &str = r#"
#include <netinet/in.h>
#undef INADDR_LOOPBACK
#define INADDR_LOOPBACK INADDR_ANY
#include KV_SOURCE
"#;

/// A TCP proxy on 127.0.0.1 in front of the key-value service, which may run behind any of
/// its backends (`127.0.0.1:<port>`: the server's port here, the node's forward of it). Like
/// HAProxy with layer-7 health checks, it asks every backend `COUNT` every 100 ms and sends
/// each new connection to the first backend that answered the last check; so it finds the
/// service wherever a hop put it, by itself. A backend put in maintenance (HAProxy's
/// `disable server`, what an operator does before moving a service: it keeps no connection
/// across the move) gets no checks, no new connections, and its connections are closed.
struct Proxy {
    port: u16,
    backends: std::sync::Arc<std::sync::Mutex<Vec<Backend>>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<(u16, std::net::TcpStream)>>>,
}

#[derive(Clone, Copy)]
struct Backend {
    port: u16,
    maintenance: bool,
    healthy: bool,
}

/// One layer-7 health check: does `127.0.0.1:port` answer `COUNT` within a short time?
fn answers_count(port: u16) -> bool {
    use std::io::{BufRead, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"COUNT\n").is_err() {
        return false;
    }
    let mut line = String::new();
    let Ok(reader) = s.try_clone() else { return false };
    let ok = std::io::BufReader::new(reader).read_line(&mut line).is_ok() && line.starts_with("COUNT ");
    let _ = s.shutdown(std::net::Shutdown::Both);
    ok
}

impl Proxy {
    fn start(ports: &[u16]) -> Proxy {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let backends = Arc::new(Mutex::new(
            ports
                .iter()
                .map(|&port| Backend {
                    port,
                    maintenance: false,
                    healthy: false,
                })
                .collect::<Vec<_>>(),
        ));
        let conns: Arc<Mutex<Vec<(u16, std::net::TcpStream)>>> = Arc::new(Mutex::new(Vec::new()));
        // Health checks. The backends' lock is not held during a check, and a check of a
        // backend put in maintenance meanwhile does not count.
        let b = backends.clone();
        std::thread::spawn(move || loop {
            let list: Vec<Backend> = b.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for be in list.iter().filter(|be| !be.maintenance) {
                let healthy = answers_count(be.port);
                let mut all = b.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(cur) = all.iter_mut().find(|c| c.port == be.port && !c.maintenance) {
                    cur.healthy = healthy;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        let (b, c) = (backends.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (b, c) = (b.clone(), c.clone());
                std::thread::spawn(move || {
                    // Waits (bounded) for a healthy backend that accepts.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let (backend, server) = loop {
                        let up = b
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .iter()
                            .find(|be| be.healthy && !be.maintenance)
                            .map(|be| be.port);
                        if let Some(s) = up.and_then(|p| std::net::TcpStream::connect(("127.0.0.1", p)).ok()) {
                            break (up.unwrap_or(0), s);
                        }
                        if Instant::now() > deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    };
                    let _ = server.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    {
                        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                        if let (Ok(a), Ok(s)) = (client.try_clone(), server.try_clone()) {
                            c.push((backend, a));
                            c.push((backend, s));
                        }
                        // Put in maintenance while connecting: close at once.
                        let maintenance = b
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .iter()
                            .any(|be| be.port == backend && be.maintenance);
                        if maintenance {
                            let _ = server.shutdown(std::net::Shutdown::Both);
                            let _ = client.shutdown(std::net::Shutdown::Both);
                        }
                    }
                    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone())
                    else {
                        return;
                    };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_in, &mut s_out);
                        let _ = s_out.shutdown(std::net::Shutdown::Both);
                    });
                    let (mut s_in, mut c_out) = (server, client);
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                    let _ = c_out.shutdown(std::net::Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        Proxy {
            port,
            backends,
            conns,
        }
    }

    /// Puts `backend` in maintenance and closes its connections.
    fn maintenance(&self, backend: u16) {
        self.set_maintenance(backend, true);
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for (_, s) in conns.iter().filter(|(p, _)| *p == backend) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        conns.retain(|(p, _)| *p != backend);
    }

    /// Takes `backend` out of maintenance: health checks decide again.
    fn ready(&self, backend: u16) {
        self.set_maintenance(backend, false);
    }

    fn set_maintenance(&self, backend: u16, on: bool) {
        for be in self
            .backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .filter(|be| be.port == backend)
        {
            be.maintenance = on;
            be.healthy = false;
        }
    }

    /// The backend new connections go to now.
    fn active(&self) -> Option<u16> {
        self.backends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|be| be.healthy && !be.maintenance)
            .map(|be| be.port)
    }
}

/// A line client through the proxy.
struct Line {
    out: std::net::TcpStream,
    inp: std::io::BufReader<std::net::TcpStream>,
}

impl Line {
    fn connect(port: u16) -> std::io::Result<Line> {
        let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Line {
            inp: std::io::BufReader::new(s.try_clone()?),
            out: s,
        })
    }

    fn call(&mut self, line: &str) -> std::io::Result<String> {
        use std::io::{BufRead, Write};
        self.out.write_all(format!("{line}\n").as_bytes())?;
        let mut l = String::new();
        if self.inp.read_line(&mut l)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(l.trim_end().to_string())
    }

    /// `call` through new connections until one answers (60 s at most).
    fn call_fresh(port: u16, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = Line::connect(port).and_then(|mut c| c.call(line)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no answer to {line:?} through the proxy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn kv_value(k: u64) -> String {
    format!("v{}", k.wrapping_mul(0x9e3779b97f4a7c15) >> 40)
}

/// Sockets the process `pid` holds, from `ls -l /proc/pid/fd` output.
fn sockets(listing: &str) -> usize {
    listing.matches("socket:").count()
}

#[test]
fn kv_server_moves_to_the_arm64_node_and_back_behind_a_following_proxy() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let _l = lock();
    let repo = common::repo_root();
    let kv_source = format!(
        "-DKV_SOURCE=\"{}\"",
        repo.join("tests/migrate/kv.c").display()
    );
    let subject = Subject::build("node-hops-kv", "kv", KV_ANY_C, &[&kv_source]);
    let (node, host_agent) = subject.boot(&repo, &[KV_PORT]);
    let node_kv = node.host_port(KV_PORT).expect("forwarded kv port");

    let mut child = subject.start(&[&KV_PORT.to_string()]);
    let pid = child.id();
    let _kill_first = KillOnDrop(pid);
    // Nothing answers in the node yet: the proxy finds the server here.
    let proxy = Proxy::start(&[KV_PORT, node_kv]);
    assert_eq!(Line::call_fresh(proxy.port, "COUNT"), "COUNT 0");
    assert_eq!(proxy.active(), Some(KV_PORT));

    // The writer: SET k, resent through a new connection when the connection breaks.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked, reconnects, port) =
            (stop.clone(), acked.clone(), reconnects.clone(), proxy.port);
        std::thread::spawn(move || {
            let mut c: Option<Line> = None;
            let mut k = 0u64;
            let deadline_for = || Instant::now() + Duration::from_secs(90);
            let mut deadline = deadline_for();
            while !stop.load(Ordering::Relaxed) {
                let line = format!("SET k{k} {}", kv_value(k));
                let reply = match c.as_mut().map(|c| c.call(&line)) {
                    Some(Ok(r)) => r,
                    other => {
                        if other.is_some() {
                            reconnects.fetch_add(1, Ordering::SeqCst);
                        }
                        assert!(
                            Instant::now() < deadline,
                            "writer: no server for 90 s at {line:?}"
                        );
                        c = Line::connect(port).ok();
                        if c.is_none() {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                };
                assert!(reply.starts_with("OK "), "{line}: {reply}");
                k += 1;
                acked.store(k, Ordering::SeqCst);
                deadline = deadline_for();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let check = |what: &str| {
        let before = acked.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut c = loop {
            if let Ok(c) = Line::connect(proxy.port) {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no connection through the proxy"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let count = loop {
            match c.call("COUNT") {
                Ok(r) => break r,
                Err(_) => {
                    assert!(Instant::now() < deadline, "{what}: COUNT unanswered");
                    std::thread::sleep(Duration::from_millis(200));
                    c = match Line::connect(proxy.port) {
                        Ok(c) => c,
                        Err(_) => continue,
                    };
                }
            }
        };
        let n: u64 = count
            .strip_prefix("COUNT ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what}: {count}"));
        assert!(
            n >= before,
            "{what}: COUNT {n} < {before} acknowledged writes"
        );
        for k in 0..before {
            let got = c
                .call(&format!("GET k{k}"))
                .unwrap_or_else(|e| panic!("{what}: GET k{k}: {e}"));
            assert_eq!(got, format!("VALUE {}", kv_value(k)), "{what}: key k{k}");
        }
        eprintln!("{what}: COUNT {n}, all {before} acknowledged writes there");
        before
    };

    let wait_writes = |more: u64| {
        let from = acked.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < from + more {
            assert!(Instant::now() < deadline, "writes do not go on");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Host -> node.
    wait_writes(100);
    proxy.maintenance(KV_PORT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sockets(&String::from_utf8_lossy(
        &Command::new("ls")
            .args(["-l", &format!("/proc/{pid}/fd")])
            .output()
            .expect("ls")
            .stdout,
    )) > 1
    {
        assert!(
            Instant::now() < deadline,
            "the server keeps its connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hop = subject
        .to_node(pid, &node, &HopOptions::default())
        .unwrap_or_else(|e| panic!("migrate to the node failed: {e}"));
    assert!(hop.report.contains("aarch64 translated"), "{}", hop.report);
    let _ = child.wait();
    eprintln!("kv host -> node: {:.2} s", hop.wall.as_secs_f64());
    let node_pid = hop.dest_pid;
    // The proxy finds the server in the node by its health checks.
    check("after host -> node");
    assert_eq!(proxy.active(), Some(node_kv), "the proxy follows the server to the node");
    wait_writes(100);

    // Node -> host. The source here is gone; checks of this host's port resume.
    proxy.ready(KV_PORT);
    proxy.maintenance(node_kv);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sockets(&sh(&node, &format!("ls -l /proc/{node_pid}/fd"))) > 1 {
        assert!(
            Instant::now() < deadline,
            "the server in the node keeps its connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let back = to_host(&node, node_pid, &host_agent, &HopOptions::default())
        .unwrap_or_else(|e| panic!("migrate back failed: {e}"));
    assert!(back.report.contains("x86_64 native"), "{}", back.report);
    eprintln!("kv node -> host: {:.2} s", back.wall.as_secs_f64());
    let home = back.dest_pid;
    let _kill_home = KillOnDrop(home);
    check("after node -> host");
    assert_eq!(proxy.active(), Some(KV_PORT), "the proxy follows the server back");
    wait_writes(100);
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer failed");
    let total = check("at the end");
    assert_eq!(
        Line::call_fresh(proxy.port, "COUNT"),
        format!("COUNT {total}")
    );
    eprintln!(
        "kv: {total} acknowledged writes, {} reconnects",
        reconnects.load(Ordering::SeqCst)
    );
}

/// Debian's redis-server's port here and in the node.
const REDIS_PORT: u16 = 17379;

/// Debian's `redis-server` (dynamically linked, threads of its own, jemalloc) started here
/// with `hcontainer run` moves host -> node -> host while a client writes: before each hop
/// the client closes its connection (TCP connections do not cross into the node's user-mode
/// network) and afterwards reconnects where the server went and resends what was not
/// acknowledged; every acknowledged write is there after each hop, and `redis-benchmark`
/// runs against it at the end.
#[test]
fn redis_moves_to_the_arm64_node_and_back_without_losing_a_write() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
    use std::sync::Arc;
    let _l = lock();
    let repo = common::repo_root();
    // By the name redis-server: the binary is also redis-check-rdb, by argv[0].
    let redis = Path::new("/usr/bin/redis-server");
    assert!(redis.exists(), "redis-server is missing: run `cargo xtask setup`");
    let subject = Subject::debian("node-redis", redis);
    let (node, host_agent) = subject.boot(&repo, &[REDIS_PORT]);
    let node_port = node.host_port(REDIS_PORT).expect("the node's redis port is forwarded");
    let ps = REDIS_PORT.to_string();
    let mut child = subject.start_run(&[
        "--port", &ps, "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--logfile", "",
    ]);
    let pid = child.id();
    // Ends it whatever happens (the pid is the program's, here and back here).
    let _source = KillOnDrop(pid);
    let here = REDIS_PORT;
    let connect = |port: u16| -> Option<(std::net::TcpStream, BufReader<std::net::TcpStream>)> {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
        let r = BufReader::new(s.try_clone().ok()?);
        Some((s, r))
    };
    let cmd = |args: &[&str]| {
        let mut b = format!("*{}\r\n", args.len());
        for a in args {
            b += &format!("${}\r\n{a}\r\n", a.len());
        }
        b
    };
    // One request, one simple reply line (`+OK`, `:n`, or a bulk string's value).
    let call = move |c: &mut (std::net::TcpStream, BufReader<std::net::TcpStream>), args: &[&str]| -> Option<String> {
        c.0.write_all(cmd(args).as_bytes()).ok()?;
        let mut l = String::new();
        if c.1.read_line(&mut l).ok()? == 0 {
            return None;
        }
        if l.starts_with('$') && !l.starts_with("$-1") {
            l.clear();
            c.1.read_line(&mut l).ok()?;
            return Some(l.trim_end().to_string());
        }
        Some(l.trim_end().trim_start_matches(['+', ':']).to_string())
    };
    let started = Instant::now();
    while connect(here).is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "redis does not listen here");
        std::thread::sleep(Duration::from_millis(100));
    }
    let value = |k: u64| format!("v{k}:{}", k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40);
    // The writer: SET k<n> until stopped; paused (connection closed) while `hold` is set.
    let port = Arc::new(AtomicU16::new(here));
    let hold = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (port, hold, stop, acked) = (port.clone(), hold.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut conn = None;
            let mut k = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if hold.load(Ordering::SeqCst) {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if conn.is_none() {
                    conn = connect(port.load(Ordering::SeqCst));
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
                let c = conn.as_mut().expect("connected");
                match call(c, &["SET", &format!("k{k}"), &value(k)]) {
                    Some(r) if r == "OK" => {
                        k += 1;
                        acked.store(k, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Some(r) => panic!("SET k{k}: {r}"),
                    None => conn = None, // resend the same write on a new connection
                }
            }
        })
    };
    let check = |port: u16, when: &str| {
        let n = acked.load(Ordering::SeqCst);
        let mut c = connect(port).unwrap_or_else(|| panic!("{when}: cannot connect to port {port}"));
        let size: u64 = call(&mut c, &["DBSIZE"]).and_then(|s| s.parse().ok()).expect("DBSIZE");
        assert!(size >= n, "{when}: DBSIZE {size} < {n} acknowledged writes");
        for k in 0..n {
            assert_eq!(call(&mut c, &["GET", &format!("k{k}")]), Some(value(k)), "{when}: k{k}");
        }
        n
    };
    let wait_writes = |more: u64| {
        let base = acked.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < base + more {
            assert!(Instant::now() < deadline, "the writer made no progress ({} acknowledged)", acked.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_writes(200);
    // Here -> node.
    hold.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let hop = subject.to_node(pid, &node, &HopOptions::default()).unwrap_or_else(|e| panic!("redis to the node: {e}"));
    assert!(hop.report.contains("aarch64 translated"), "{}", hop.report);
    let _ = child.wait();
    let there = check(node_port, "in the node");
    port.store(node_port, Ordering::SeqCst);
    hold.store(false, Ordering::SeqCst);
    wait_writes(100);
    // Node -> here.
    hold.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let back = to_host(&node, hop.dest_pid, &host_agent, &HopOptions::default()).unwrap_or_else(|e| panic!("redis back: {e}"));
    assert!(back.report.contains("x86_64 native"), "{}", back.report);
    let _guard = KillOnDrop(back.dest_pid);
    let home = check(here, "back here");
    port.store(here, Ordering::SeqCst);
    hold.store(false, Ordering::SeqCst);
    wait_writes(100);
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let all = check(here, "at the end");
    let bench = Command::new("redis-benchmark").args(["-p", &ps, "-q", "-n", "2000", "-t", "set,get"]).output().expect("redis-benchmark");
    assert!(String::from_utf8_lossy(&bench.stdout).contains("requests per second"), "{}", String::from_utf8_lossy(&bench.stdout));
    eprintln!("redis: {there} writes before the node, {home} before coming back, {all} at the end; downtimes:\n{}\n{}", hop.report, back.report);
}
