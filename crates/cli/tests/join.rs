//! Joining nodes with the CLI as the README shows it — `ca init`, `node init`, `ca sign`,
//! `node join` — and what `agent` does without a certificate or in clear off loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::hcontainer()).args(args).current_dir(dir).output().expect("run hcontainer")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(out.status.success(), "hcontainer {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(!out.status.success(), "hcontainer {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn three_commands_join_a_node_and_an_agent_needs_them() {
    let d = tempfile::tempdir().expect("temp dir");
    let dir = d.path();
    let fp = ok(dir, &["ca", "init", "--name", "lab", "--dir", "ca"]);
    let fp = fp.split("fingerprint ").nth(1).expect("fingerprint printed").trim().to_string();
    for (name, role) in [("edge-1", "node"), ("watch", "observer")] {
        ok(dir, &["node", "init", "--name", name, "--dir", name]);
        ok(dir, &["ca", "sign", &format!("{name}.req"), "--dir", "ca", "--role", role]);
        let joined = ok(dir, &["node", "join", &format!("{name}.crt"), "--dir", name, "--ca-fingerprint", &fp]);
        assert!(joined.contains(&format!("node {name} joined as {role}")), "{joined}");
    }
    // A bundle for another node's key is refused.
    let e = fails(dir, &["node", "join", "watch.crt", "--dir", "edge-1"]);
    assert!(e.contains("another key"), "{e}");

    // No certificate: the agent does not start, and says how to get one.
    let e = fails(dir, &["agent", "--listen", "127.0.0.1:0", "--node-dir", "nowhere", "--work", "w"]);
    assert!(e.contains("hcontainer node init") && e.contains("hcontainer node join"), "{e}");
    // In clear only on loopback.
    let e = fails(dir, &["agent", "--listen", "0.0.0.0:0", "--insecure-plaintext", "--work", "w"]);
    assert!(e.contains("refusing to listen on 0.0.0.0:0 without authentication"), "{e}");

    // With its certificate it serves; the observer may ask for status, by name.
    let mut agent = Command::new(common::hcontainer())
        .args(["agent", "--listen", "127.0.0.1:0", "--node-dir", "edge-1", "--work", "w"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agent");
    let mut line = String::new();
    BufReader::new(agent.stdout.take().expect("stdout")).read_line(&mut line).expect("agent line");
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
    let status = addr.as_ref().map(|a| run(dir, &["agent", "--status", &format!("edge-1@{a}"), "--node-dir", "watch"]));
    let wrong = addr.as_ref().map(|a| run(dir, &["agent", "--status", &format!("edge-9@{a}"), "--node-dir", "watch"]));
    let clear = addr.as_ref().map(|a| run(dir, &["agent", "--status", a, "--insecure-plaintext"]));
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(line.contains("TLS as edge-1"), "{line}");
    let status = status.expect("an address");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(String::from_utf8_lossy(&status.stdout).contains("certified as edge-1"));
    let wrong = String::from_utf8_lossy(&wrong.expect("ran").stderr).into_owned();
    assert!(wrong.contains("not valid for name"), "{wrong}");
    let clear = String::from_utf8_lossy(&clear.expect("ran").stderr).into_owned();
    assert!(clear.contains("expects TLS"), "{clear}");
}
