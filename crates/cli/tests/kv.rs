//! A TCP key-value server (`tests/migrate/kv.c`, single-threaded poll loop) migrates between
//! native and translated execution while clients keep writing: its listening socket and its
//! established connections (CRIU's `--tcp-established`, on by default in `hcontainer
//! checkpoint`) survive every hop, no acknowledged write is lost, and after each hop a new
//! connection finds every write acknowledged before the hop.
//!
//! Seeded (`HCT_SEED`); the seed is printed.

#[path = "../../../tests/migrate/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Libc, Rng, Side};

/// Reply timeout: a hop stops the server for a fraction of a second; TCP retransmission
/// after the restore may add a few seconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

struct Client {
    out: TcpStream,
    inp: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("read timeout");
        s.set_nodelay(true).expect("nodelay");
        let inp = BufReader::new(s.try_clone().expect("clone stream"));
        Client { out: s, inp }
    }

    fn try_connect(port: u16) -> Option<Client> {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(REPLY_TIMEOUT)).ok()?;
        s.set_nodelay(true).ok()?;
        let inp = BufReader::new(s.try_clone().ok()?);
        Some(Client { out: s, inp })
    }

    fn send(&mut self, line: &str) {
        self.out.write_all(format!("{line}\n").as_bytes()).unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    }

    fn reply(&mut self, what: &str) -> String {
        let mut l = String::new();
        match self.inp.read_line(&mut l) {
            Ok(0) => panic!("server closed the connection (waiting for the reply to {what})"),
            Ok(_) => l.trim_end().to_string(),
            Err(e) => panic!("no reply to {what}: {e}"),
        }
    }

    fn call(&mut self, line: &str) -> String {
        self.send(line);
        self.reply(line)
    }

    /// `call` that reports a broken connection instead of failing.
    fn try_call(&mut self, line: &str) -> std::io::Result<String> {
        self.out.write_all(format!("{line}\n").as_bytes())?;
        let mut l = String::new();
        if self.inp.read_line(&mut l)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(l.trim_end().to_string())
    }

    /// Checks `GET` of keys `prefix0 .. prefix{n-1}`, pipelined in batches.
    fn check_keys(&mut self, prefix: &str, n: u64, when: &str) {
        let mut i = 0;
        while i < n {
            let end = (i + 200).min(n);
            let batch: String = (i..end).map(|k| format!("GET {prefix}{k}\n")).collect();
            self.out.write_all(batch.as_bytes()).expect("send GETs");
            for k in i..end {
                let got = self.reply("GET");
                assert_eq!(got, format!("VALUE {}", value(prefix, k)), "key {prefix}{k} {when}");
            }
            i = end;
        }
    }
}

fn value(prefix: &str, k: u64) -> String {
    format!("{prefix}-value-{}", k.wrapping_mul(0x9e3779b97f4a7c15) >> 40)
}

/// A client that keeps writing `SET <prefix><k>` with increasing k until told to stop;
/// `acked` is the number of writes the server acknowledged. With `reconnect`, a broken
/// connection is replaced and the unacknowledged write sent again (writes are idempotent:
/// same key, same value); `reconnects` counts how often.
fn writer(
    port: u16,
    prefix: &'static str,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    reconnect: Option<Arc<AtomicU64>>,
) -> std::thread::JoinHandle<()> {
    let mut c = Client::connect(port);
    std::thread::spawn(move || {
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let line = format!("SET {prefix}{k} {}", value(prefix, k));
            let reply = match &reconnect {
                None => c.call(&line),
                Some(count) => match c.try_call(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("writer {prefix}: {e} at {line:?}; reconnecting");
                        count.fetch_add(1, Ordering::SeqCst);
                        // The server is away during a hop: connections are refused until the
                        // restore; retry for a bounded time.
                        c = harness::poll(REPLY_TIMEOUT, || Client::try_connect(port))
                            .unwrap_or_else(|| panic!("writer {prefix}: cannot reconnect to port {port}"));
                        continue;
                    }
                },
            };
            assert!(reply.starts_with("OK "), "SET {prefix}{k}: {reply}");
            k += 1;
            acked.store(k, Ordering::SeqCst);
            // About 500 writes a second from each writer.
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// How the test moves the server and what its clients expect.
#[derive(Clone, Copy)]
struct Mode {
    /// Native → translated hops by `checkpoint`, `recode`, `restore` instead of
    /// `checkpoint --to` + `restore`.
    two_step: bool,
    /// Established connections may break at a hop: writers reconnect and resend, the end
    /// checks go through a new connection. Without it every connection must survive.
    reconnect: bool,
}

fn kv_hops(libc: Libc, hops: &[Side], mode: Mode) {
    let Mode { two_step, reconnect } = mode;
    let how = if two_step { "two-step" } else if reconnect { "reconnect" } else { "strict" };
    let name = format!("kv-{}-{how}-{}", libc.name(), hops.len());
    let mut rng = Rng::from_env(&name);
    let exe = harness::compile("kv", libc);
    let translated = harness::translate_into_store(&exe);
    let native_bytes = std::fs::read(&exe).expect("read exe");
    let translated_bytes = std::fs::read(&translated).expect("read translation");
    let root = harness::scratch(&name);
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut server = harness::start(&exe, &["0"], &work);
    let port: u16 = harness::poll(Duration::from_secs(10), || {
        let out = std::fs::read_to_string(work.join("stdout.txt")).ok()?;
        out.lines().find_map(|l| l.strip_prefix("listening ")?.trim().parse().ok())
    })
    .expect("the server prints its port");

    // An idle client connected before any hop, used at the end; two writers.
    let mut idle = Client::connect(port);
    assert_eq!(idle.call("COUNT"), "COUNT 0");
    let stop = Arc::new(AtomicBool::new(false));
    let acked_a = Arc::new(AtomicU64::new(0));
    let acked_b = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let counter = reconnect.then(|| reconnects.clone());
    let writers = [
        writer(port, "a", acked_a.clone(), stop.clone(), counter.clone()),
        writer(port, "b", acked_b.clone(), stop.clone(), counter),
    ];

    let mut side = Side::Native;
    for (n, &to) in hops.iter().enumerate() {
        std::thread::sleep(rng.between(Duration::from_millis(150), Duration::from_millis(700)));
        let before = (acked_a.load(Ordering::SeqCst), acked_b.load(Ordering::SeqCst));
        let images = root.join(format!("images-{n}"));
        let hop = match to {
            // The server waits in poll(2): a plain dump stops it at a migration point.
            Side::X86_64 if two_step => harness::hop_two_step(server.pid, &images),
            _ => harness::hop(server.pid, &images, to),
        }
            .unwrap_or_else(|e| panic!("hop {n} ({side} -> {to}): {e}"));
        side = to;
        // It runs what it was moved to (the store may hold its own copy of either file).
        let exe_now = harness::exe_of(server.pid).and_then(|p| std::fs::read(p).ok()).expect("restored server runs");
        let want = match to {
            Side::Native => &native_bytes,
            Side::X86_64 => &translated_bytes,
        };
        assert!(exe_now == *want, "hop {n}: the server does not run its {to} executable");
        // A new connection: the listening socket survived; every write acknowledged before
        // the hop is there.
        let mut fresh = Client::connect(port);
        let count: u64 = fresh.call("COUNT").strip_prefix("COUNT ").and_then(|c| c.parse().ok()).expect("COUNT n");
        assert!(count >= before.0 + before.1, "hop {n}: COUNT {count} < {} acknowledged", before.0 + before.1);
        fresh.check_keys("a", before.0, &format!("after hop {n}"));
        fresh.check_keys("b", before.1, &format!("after hop {n}"));
        eprintln!(
            "hop {n} -> {to}: checkpoint {:?}, restore {:?}; {} writes acknowledged before it, COUNT {count} after",
            hop.checkpoint,
            hop.restore,
            before.0 + before.1
        );
    }
    // Writes go on after the last hop too.
    let last = acked_a.load(Ordering::SeqCst) + acked_b.load(Ordering::SeqCst);
    assert!(
        harness::poll(Duration::from_secs(20), || {
            (acked_a.load(Ordering::SeqCst) + acked_b.load(Ordering::SeqCst) > last + 20).then_some(())
        })
        .is_some(),
        "writers stalled after the last hop"
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer failed");
    }
    let (a, b) = (acked_a.load(Ordering::SeqCst), acked_b.load(Ordering::SeqCst));
    assert!(a > 0 && b > 0);
    // The idle connection, open since before the first hop: exactly the acknowledged writes.
    if reconnect {
        idle = Client::connect(port);
    }
    assert_eq!(idle.call("COUNT"), format!("COUNT {}", a + b));
    idle.check_keys("a", a, "at the end");
    idle.check_keys("b", b, "at the end");
    assert_eq!(idle.call("GET nothing"), "NONE");
    assert_eq!(idle.call("SHUTDOWN"), "BYE");
    let start = Instant::now();
    assert!(server.wait_exit(Duration::from_secs(10)), "server still runs after SHUTDOWN");
    eprintln!(
        "{name}: {} hops, {} acknowledged writes, {} reconnects, exit after {:?}",
        hops.len(),
        a + b,
        reconnects.load(Ordering::SeqCst),
        start.elapsed()
    );
    let stderr = std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default();
    assert!(stderr.is_empty(), "server stderr: {stderr}");
    drop(server);
    harness::done(&root);
}

/// Native → translated → native → …, `n` hops.
fn alternating(n: usize) -> Vec<Side> {
    (0..n).map(|i| if i % 2 == 0 { Side::X86_64 } else { Side::Native }).collect()
}

const TWO_STEP: Mode = Mode { two_step: true, reconnect: false };
const RECONNECT: Mode = Mode { two_step: false, reconnect: true };

#[test]
fn kv_musl_native_to_translated() {
    kv_hops(Libc::Musl, &[Side::X86_64], TWO_STEP);
}

#[test]
fn kv_glibc_native_to_translated() {
    kv_hops(Libc::Glibc, &[Side::X86_64], TWO_STEP);
}

/// Twelve hops both ways with `checkpoint --to`: the listening socket and the data survive
/// each; clients reconnect when a connection breaks.
#[test]
fn kv_musl_hops_reconnecting() {
    kv_hops(Libc::Musl, &alternating(12), RECONNECT);
}

const STRICT: Mode = Mode { two_step: false, reconnect: false };

/// Every connection survives every hop.
#[test]
fn kv_musl_hops() {
    kv_hops(Libc::Musl, &alternating(12), STRICT);
}

#[test]
fn kv_glibc_hops() {
    kv_hops(Libc::Glibc, &alternating(12), STRICT);
}
