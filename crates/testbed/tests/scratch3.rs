use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use hcontainer_testbed::{BootOptions, NodeImage};
#[test]
fn scratch3() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let hc = repo.join("target/release/hcontainer");
    let store = Path::new("/tmp/hcnode-store");
    let _ = std::fs::remove_dir_all(store);
    let o = Command::new(&hc).args(["translate", "/tmp/vmt/migcounter", "--target", "aarch64", "-o", "/tmp/vmt/migcounter.aarch64"]).env("HCONTAINER_STORE", store).output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    let stored = std::fs::read_dir(store).unwrap().next().unwrap().unwrap().path().join("aarch64");
    assert!(stored.exists(), "{}", stored.display());
    let image = NodeImage::build(&repo.join(".cache")).unwrap();
    let node = image.boot(&BootOptions { forward: vec![7070], ..BootOptions::default() }).unwrap();
    let t = Duration::from_secs(120);
    node.install(&repo.join("target/aarch64-unknown-linux-musl/release/hcontainer"), "/usr/bin/hcontainer", t).unwrap();
    node.install(&stored, stored.to_str().unwrap(), t).unwrap();
    let run = |cmd: &str| { let s = Instant::now(); let out = node.run(cmd, t).unwrap(); eprintln!("$ {cmd}  [{:?}] => {}\n{}{}", s.elapsed(), out.status, out.stdout, out.stderr); out };
    run("mkdir -p /tmp/hcnode-mig && head -c 42 /dev/zero > /tmp/hcnode-mig/count.txt; setsid hcontainer agent --listen 0.0.0.0:7070 --work /root/agent >/root/agent.log 2>&1 </dev/null & sleep 2; cat /root/agent.log");
    let _ = std::fs::remove_dir_all("/tmp/hcnode-mig");
    std::fs::create_dir_all("/tmp/hcnode-mig").unwrap();
    let mut child = Command::new("setsid").args(["setarch", "x86_64", "-R", "/tmp/vmt/migcounter", "/tmp/hcnode-mig/count.txt"]).current_dir("/tmp/hcnode-mig").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(1));
    eprintln!("host: {}", std::fs::read_to_string("/tmp/hcnode-mig/count.txt").unwrap());
    let port = node.host_port(7070).unwrap();
    let s = Instant::now();
    let o = Command::new(&hc).args(["migrate", "--pid", &pid.to_string(), "--to", &format!("127.0.0.1:{port}"), "--run-as", "translated", "--recode-at", "origin", "--store", store.to_str().unwrap(), "-q"]).output().unwrap();
    eprintln!("migrate [{:?}] {}\n{}{}", s.elapsed(), o.status, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let _ = child.kill(); let _ = child.wait();
    eprintln!("host after: {}", std::fs::read_to_string("/tmp/hcnode-mig/count.txt").unwrap());
    run("cat /tmp/hcnode-mig/count.txt; sleep 1; cat /tmp/hcnode-mig/count.txt; ps; tail -20 /root/agent.log; ls -R /root/agent | head");
}
