//! Boots the arm64 node and checks the job mechanism, time limits, the port forward and
//! CRIU's own check inside it.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hcontainer_testbed::{BootOptions, NodeImage, GUEST_SHARED_DIR};

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache")
}

#[test]
fn node_runs_jobs_forwards_ports_and_passes_criu_check() {
    let started = Instant::now();
    let image = NodeImage::build(&cache()).unwrap_or_else(|e| panic!("building the node: {e}"));
    eprintln!("image ready in {:.1} s", started.elapsed().as_secs_f64());
    let options = BootOptions {
        forward: vec![7070],
        ..BootOptions::default()
    };
    let node = image
        .boot(&options)
        .unwrap_or_else(|e| panic!("booting the node: {e}"));
    eprintln!("booted in {:.1} s", node.boot_time().as_secs_f64());
    let t = Duration::from_secs(60);

    let out = node.run("uname -m; echo err >&2; exit 3", t).unwrap();
    assert_eq!(out.stdout.trim(), "aarch64");
    assert_eq!(out.stderr.trim(), "err");
    assert_eq!(out.status, 3);

    // The shared folder both ways.
    std::fs::write(node.shared_dir().join("from-host"), "ping").unwrap();
    let out = node
        .run(
            &format!("cat {GUEST_SHARED_DIR}/from-host; echo pong > {GUEST_SHARED_DIR}/from-node"),
            t,
        )
        .unwrap();
    assert_eq!(out.stdout, "ping");
    assert_eq!(
        std::fs::read_to_string(node.shared_dir().join("from-node")).unwrap(),
        "pong\n"
    );

    // The node's time limit ends a job that runs too long.
    let begun = Instant::now();
    let out = node.run("sleep 60", Duration::from_secs(2)).unwrap();
    assert_eq!(out.status, 137, "{out:?}");
    assert!(begun.elapsed() < Duration::from_secs(20));

    // Each job is its own session: what CRIU needs of the programs it dumps.
    let out = node
        .run("cut -d' ' -f6 /proc/self/stat; echo $$", t)
        .unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_ne!(lines[0], "0", "session id of a job");

    // A guest listener reached through the host port forward.
    let out = node.run("setsid sh -c 'while :; do echo hello-from-node | nc -l -p 7070; done' </dev/null >/dev/null 2>&1 &", t).unwrap();
    assert!(out.success(), "{out:?}");
    let port = node.host_port(7070).expect("forwarded port");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = String::new();
    while Instant::now() < deadline {
        got.clear();
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read_to_string(&mut got);
            if got.contains("hello-from-node") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(got.trim(), "hello-from-node");

    let out = node.run("criu check", t).unwrap();
    assert!(
        out.success() && format!("{}{}", out.stdout, out.stderr).contains("Looks good"),
        "{out:?}\nconsole:\n{}",
        node.console_tail(40)
    );
}
