//! Round trips between this host and the emulated arm64 node: a deterministic computation
//! of our own, started natively here, is moved host -> node -> host -> node -> host with
//! `hcontainer migrate` (as its aarch64 translation in the node, natively here), each hop at a
//! seeded random progress point, and its final output must equal an uninterrupted native run.
//!
//! Then the TCP key-value server of the migration tests (`tests/migrate/kv.c`) moves host ->
//! node -> host while a client keeps writing through a proxy that follows the service (its
//! connections are closed before each hop; the client reconnects and resends its
//! unacknowledged write): after each hop every acknowledged write is there.
//!
//! The aarch64 hcontainer comes from `cargo xtask vm build`; the node image is built on
//! first use under `.cache/vm` (see crates/testbed).

mod common;
mod node_support;

use node_support::{lock, sh, to_host, KillOnDrop, Subject, JOB};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Number of steps of the computation.
const STEPS: u64 = 1200;

/// The subject: `STEPS` steps of a recurrence mixed with a digest of all earlier states,
/// each written as `i digest` (fixed width) at offset 0 of the file `argv[1]`, one every
/// 20 ms; the last line is the final digest. The file keeps one size (42 bytes), so CRIU's
/// size check of open files holds on both machines.
const DIGEST_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 1;
    uint64_t steps = strtoull(argv[2], NULL, 10);
    int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return 1;
    uint64_t x = 88172645463325252ULL, digest = 14695981039346656037ULL;
    struct timespec ts = {0, 20 * 1000 * 1000};
    for (uint64_t i = 0; i < steps; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        for (int k = 0; k < 8; k++) {
            digest ^= (x >> (k * 8)) & 0xff;
            digest *= 1099511628211ULL;
        }
        char line[64];
        int len = snprintf(line, sizeof line, "%20llu %20llu\n", (unsigned long long)i, (unsigned long long)digest);
        if (pwrite(fd, line, len, 0) != len) return 2;
        nanosleep(&ts, NULL);
    }
    return 0;
}
"#;

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
            .to_node(pid, &node)
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
        let back = to_host(&node, node_pid, &host_agent)
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

/// A TCP proxy on 127.0.0.1 that forwards every connection to `127.0.0.1:<backend>`; the
/// test switches the backend after each hop and drains (closes) every connection before it.
struct Proxy {
    port: u16,
    backend: std::sync::Arc<std::sync::Mutex<Option<u16>>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    fn start(backend: u16) -> Proxy {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let backend = Arc::new(Mutex::new(Some(backend)));
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (b, c) = (backend.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (b, c) = (b.clone(), c.clone());
                std::thread::spawn(move || {
                    // Waits (bounded) for a backend that accepts.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let server = loop {
                        let port = *b.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(s) =
                            port.and_then(|p| std::net::TcpStream::connect(("127.0.0.1", p)).ok())
                        {
                            break s;
                        }
                        if Instant::now() > deadline {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    };
                    let _ = server.set_nodelay(true);
                    let _ = client.set_nodelay(true);
                    {
                        let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                        if let (Ok(a), Ok(s)) = (client.try_clone(), server.try_clone()) {
                            c.push(a);
                            c.push(s);
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
            backend,
            conns,
        }
    }

    /// Stops forwarding and closes every connection.
    fn drain(&self) {
        *self.backend.lock().unwrap_or_else(|e| e.into_inner()) = None;
        for s in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn switch(&self, backend: u16) {
        *self.backend.lock().unwrap_or_else(|e| e.into_inner()) = Some(backend);
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
    let proxy = Proxy::start(KV_PORT);
    assert_eq!(Line::call_fresh(proxy.port, "COUNT"), "COUNT 0");

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
    proxy.drain();
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
        .to_node(pid, &node)
        .unwrap_or_else(|e| panic!("migrate to the node failed: {e}"));
    assert!(hop.report.contains("aarch64 translated"), "{}", hop.report);
    let _ = child.wait();
    eprintln!("kv host -> node: {:.2} s", hop.wall.as_secs_f64());
    let node_pid = hop.dest_pid;
    proxy.switch(node_kv);
    check("after host -> node");
    wait_writes(100);

    // Node -> host.
    proxy.drain();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sockets(&sh(&node, &format!("ls -l /proc/{node_pid}/fd"))) > 1 {
        assert!(
            Instant::now() < deadline,
            "the server in the node keeps its connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let back = to_host(&node, node_pid, &host_agent)
        .unwrap_or_else(|e| panic!("migrate back failed: {e}"));
    assert!(back.report.contains("x86_64 native"), "{}", back.report);
    eprintln!("kv node -> host: {:.2} s", back.wall.as_secs_f64());
    let home = back.dest_pid;
    let _kill_home = KillOnDrop(home);
    proxy.switch(KV_PORT);
    check("after node -> host");
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
