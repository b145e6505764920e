//! A small program to checkpoint and restore in hcontainer's CRIU tests.
//!
//! `hcontainer-criu-target MODE STATUS_FILE [ARG]` detaches into its own session (so CRIU
//! needs no `--shell-job`) and keeps running until killed, appending progress lines
//! `tick <n>` to STATUS_FILE through one open file descriptor (the file's offset is part of
//! the checkpoint). Modes:
//! - `loop`: one thread counting.
//! - `threads N`: N worker threads counting; the main thread reports their sum.
//! - `children N`: N child processes (each `loop` on `STATUS_FILE.<i>`), the parent counts.
//! - `tcp`: listens on 127.0.0.1 (port written to `STATUS_FILE.port`), accepts one client
//!   and answers every line `x` with `echo <n> x`, `n` counting the lines served.

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: hcontainer-criu-target loop|threads N|children N|tcp STATUS_FILE [N]");
        std::process::exit(2);
    }
    let _ = rustix::process::setsid();
    let mode = args[1].as_str();
    let status = args[2].clone();
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let result = match mode {
        "loop" => counting(&status, || 1),
        "threads" => threads(&status, n),
        "children" => children(&status, n, &args[0]),
        "tcp" => tcp(&status),
        _ => Err(std::io::Error::other(format!("unknown mode {mode}"))),
    };
    if let Err(e) = result {
        eprintln!("hcontainer-criu-target: {e}");
        std::process::exit(1);
    }
}

/// Appends `tick <total>` to `status` every 20 ms, `total` growing by `step()` each time.
fn counting(status: &str, mut step: impl FnMut() -> u64) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(status)?;
    let mut total = 0u64;
    loop {
        total += step();
        writeln!(file, "tick {total}")?;
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn threads(status: &str, n: usize) -> std::io::Result<()> {
    let counters: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for c in &counters {
        let c = Arc::clone(c);
        std::thread::spawn(move || loop {
            c.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        });
    }
    let mut last = 0u64;
    counting(status, move || {
        let sum: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let step = sum.saturating_sub(last).max(1);
        last = sum;
        step
    })
}

fn children(status: &str, n: usize, me: &str) -> std::io::Result<()> {
    let mut kids = Vec::new();
    for i in 0..n {
        kids.push(
            std::process::Command::new(me)
                .args(["loop", &format!("{status}.{i}")])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?,
        );
    }
    let r = counting(status, || 1);
    drop(kids);
    r
}

fn tcp(status: &str) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::fs::write(format!("{status}.port.tmp"), port.to_string())?;
    std::fs::rename(format!("{status}.port.tmp"), format!("{status}.port"))?;
    let (stream, _) = listener.accept()?;
    let mut out = stream.try_clone()?;
    let mut served = 0u64;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        served += 1;
        writeln!(out, "echo {served} {line}")?;
    }
    // Keep the listening socket open until killed.
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
