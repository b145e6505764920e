//! Debian's `redis-server` (dynamically linked: jemalloc, libssl, libsystemd…, its own
//! background threads) started with `hcontainer run` moves native → translated x86-64 →
//! native … on this machine while clients write over connections that stay open across every
//! hop: no acknowledged write is lost, and after each hop a new connection finds all of them.
//!
//! Seeded (`HCT_SEED`); the seed is printed.

#[path = "../../../tests/migrate/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{Rng, Side};

const REDIS: &str = "/usr/bin/redis-server";
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A minimal RESP client.
struct Redis {
    out: TcpStream,
    inp: BufReader<TcpStream>,
}

impl Redis {
    fn connect(port: u16) -> Redis {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to redis on {port}: {e}"));
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Redis { inp: BufReader::new(s.try_clone().expect("clone")), out: s }
    }

    fn send(&mut self, args: &[&str]) {
        let mut b = format!("*{}\r\n", args.len());
        for a in args {
            b += &format!("${}\r\n{a}\r\n", a.len());
        }
        self.out.write_all(b.as_bytes()).unwrap_or_else(|e| panic!("sending {args:?}: {e}"));
    }

    fn line(&mut self, what: &str) -> String {
        let mut l = String::new();
        match self.inp.read_line(&mut l) {
            Ok(0) => panic!("redis closed the connection (waiting for {what})"),
            Ok(_) => l.trim_end().to_string(),
            Err(e) => panic!("no reply to {what}: {e}"),
        }
    }

    /// One reply: a simple string, integer, error or bulk string (`None` for nil).
    fn reply(&mut self, what: &str) -> Option<String> {
        let l = self.line(what);
        match l.as_bytes().first() {
            Some(b'+') | Some(b':') => Some(l[1..].to_string()),
            Some(b'$') if l == "$-1" => None,
            Some(b'$') => {
                let v = self.line(what);
                Some(v)
            }
            _ => panic!("{what}: unexpected reply {l:?}"),
        }
    }

    fn call(&mut self, args: &[&str]) -> Option<String> {
        self.send(args);
        self.reply(&format!("{args:?}"))
    }

    /// Checks `GET prefix<k>` for k < n, pipelined.
    fn check(&mut self, prefix: &str, n: u64, when: &str) {
        let mut i = 0;
        while i < n {
            let end = (i + 200).min(n);
            for k in i..end {
                self.send(&["GET", &format!("{prefix}{k}")]);
            }
            for k in i..end {
                let got = self.reply("GET");
                assert_eq!(got.as_deref(), Some(value(prefix, k).as_str()), "key {prefix}{k} {when}");
            }
            i = end;
        }
    }
}

fn value(prefix: &str, k: u64) -> String {
    format!("{prefix}:{}:{}", k, k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32)
}

/// Writes `SET prefix<k>` with growing k until `stop`; `acked` counts acknowledged writes.
fn writer(port: u16, prefix: &'static str, acked: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let mut c = Redis::connect(port);
    std::thread::spawn(move || {
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let r = c.call(&["SET", &format!("{prefix}{k}"), &value(prefix, k)]);
            assert_eq!(r.as_deref(), Some("OK"), "SET {prefix}{k}");
            k += 1;
            acked.store(k, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

#[test]
fn redis_hops_between_native_and_translated_without_losing_a_write() {
    let name = "redis-hops";
    let mut rng = Rng::from_env(name);
    assert!(Path::new(REDIS).exists(), "{REDIS} is missing: run `cargo xtask setup` (redis-server)");
    let translated = harness::translate_into_store(Path::new(REDIS));
    assert!(translated.exists());
    let root = harness::scratch(name);
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let ps = port.to_string();
    let mut server = harness::start(
        Path::new(REDIS),
        &["--port", &ps, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""],
        &work,
    );
    harness::poll(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).ok()).expect("redis listens");
    let mut idle = Redis::connect(port);
    assert_eq!(idle.call(&["PING"]).as_deref(), Some("PONG"));
    let stop = Arc::new(AtomicBool::new(false));
    let (a, b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writers = [writer(port, "a", a.clone(), stop.clone()), writer(port, "b", b.clone(), stop.clone())];
    let hops: Vec<Side> = (0..6).map(|i| if i % 2 == 0 { Side::X86_64 } else { Side::Native }).collect();
    for (n, &to) in hops.iter().enumerate() {
        std::thread::sleep(rng.between(Duration::from_millis(300), Duration::from_millis(900)));
        let before = (a.load(Ordering::SeqCst), b.load(Ordering::SeqCst));
        let images = root.join(format!("images-{n}"));
        let hop = harness::hop(server.pid, &images, to).unwrap_or_else(|e| panic!("hop {n} -> {to}: {e}\n{}", harness::describe(server.pid)));
        let exe = harness::exe_of(server.pid).expect("restored redis runs");
        match to {
            Side::Native => assert_eq!(Some(exe.clone()), std::fs::canonicalize(REDIS).ok(), "hop {n}: native redis runs {exe:?}"),
            Side::X86_64 => assert!(exe.starts_with(std::fs::canonicalize(harness::store_dir()).expect("store")), "hop {n}: translated redis runs {exe:?}"),
        }
        let mut fresh = Redis::connect(port);
        let size: u64 = fresh.call(&["DBSIZE"]).and_then(|s| s.parse().ok()).expect("DBSIZE");
        assert!(size >= before.0 + before.1, "hop {n}: DBSIZE {size} < {} acknowledged", before.0 + before.1);
        fresh.check("a", before.0, &format!("after hop {n}"));
        fresh.check("b", before.1, &format!("after hop {n}"));
        eprintln!("hop {n} -> {to}: checkpoint {:?}, restore {:?}; {} writes acknowledged before it", hop.checkpoint, hop.restore, before.0 + before.1);
    }
    let last = a.load(Ordering::SeqCst) + b.load(Ordering::SeqCst);
    assert!(
        harness::poll(Duration::from_secs(20), || (a.load(Ordering::SeqCst) + b.load(Ordering::SeqCst) > last + 20).then_some(())).is_some(),
        "writers stalled after the last hop"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer failed");
    }
    let (na, nb) = (a.load(Ordering::SeqCst), b.load(Ordering::SeqCst));
    // The connection open since before the first hop sees exactly the acknowledged writes.
    assert_eq!(idle.call(&["DBSIZE"]), Some((na + nb).to_string()));
    idle.check("a", na, "at the end");
    idle.check("b", nb, "at the end");
    // redis-benchmark against the server as it ends up (native, after an even number of hops).
    let bench = Command::new("redis-benchmark").args(["-p", &ps, "-q", "-n", "2000", "-t", "set,get"]).output().expect("redis-benchmark");
    assert!(String::from_utf8_lossy(&bench.stdout).contains("requests per second"), "{}", String::from_utf8_lossy(&bench.stdout));
    idle.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(server.wait_exit(Duration::from_secs(20)), "redis still runs after SHUTDOWN");
    eprintln!("{name}: {} hops, {} acknowledged writes", hops.len(), na + nb);
    drop(server);
    harness::done(&root);
}
