use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use hcontainer_testbed::{BootOptions, NodeImage};
#[test]
fn scratch() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let image = NodeImage::build(&repo.join(".cache")).unwrap();
    let node = image.boot(&BootOptions::default()).unwrap();
    eprintln!("boot {:?}", node.boot_time());
    let t = Duration::from_secs(120);
    let s = Instant::now();
    node.install(&repo.join("target/aarch64-unknown-linux-musl/release/hcontainer"), "/usr/bin/hcontainer", t).unwrap();
    eprintln!("install hc {:?}", s.elapsed());
    for f in ["hashtable.aarch64", "counter.aarch64"] {
        node.install(&Path::new("/tmp/vmt").join(f), &format!("/root/{f}"), t).unwrap();
    }
    for cmd in std::fs::read_to_string("/tmp/vmt/cmds").unwrap().lines() {
        let s = Instant::now();
        let out = node.run(cmd, t).unwrap();
        eprintln!("$ {cmd}  [{:?}] => {}\n{}{}", s.elapsed(), out.status, out.stdout, out.stderr);
    }
}
