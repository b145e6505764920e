//! A native musl program, dumped by real CRIU, recoded and restored by real CRIU as its
//! translated executable, carries on counting where it stopped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hcontainer_criu::{Criu, DumpOptions, RestoreOptions};
use hcontainer_recode::image::{exe_of, native_to_translated, TranslatedExe};
use hcontainer_recode::store::{sha256_file, Store};

const COUNTER: &str = r#"
#include <stdio.h>
#include <time.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "w");
    setvbuf(f, NULL, _IONBF, 0);
    for (unsigned long i = 0;; i++) {
        fprintf(f, "%lu\n", i);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
"#;

fn numbers(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .expect("read counter output")
        .lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("bad line {l:?}")))
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn native_counter_continues_translated() {
    let criu = Criu::locate(None).expect("CRIU (cargo xtask setup installs it)");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let src = d.join("counter.c");
    let native = d.join("counter");
    std::fs::write(&src, COUNTER).expect("write source");
    let ok = Command::new("musl-gcc").args(["-static", "-O2", "-o"]).arg(&native).arg(&src).status().expect("musl-gcc");
    assert!(ok.success());
    let translated = d.join("counter.x86_64");
    hcontainer_translate::translate_file(&native, hcontainer_translate::HostIsa::X86_64, &translated, &mut |_| {})
        .expect("translate");

    let out = d.join("out.txt");
    // Its own /dev/null: an inherited stdin may live in a mount CRIU cannot see from here.
    let mut child =
        Command::new("setsid").arg(&native).arg(&out).stdin(Stdio::null()).spawn().expect("start counter");
    std::thread::sleep(Duration::from_millis(300));
    // setsid forks when the caller leads a process group; find the counter itself.
    let pid = find_pid(&native).unwrap_or(child.id());
    let images = d.join("native");
    criu.dump(&DumpOptions::new(pid, &images)).expect("criu dump");
    let _ = child.wait();
    let before = numbers(&out);
    assert!(before.len() > 3, "counter ran: {before:?}");

    // The translation is found through the store, by the content of the dumped executable.
    let store = Store::open(Some(&d.join("store"))).expect("store");
    let stored = store.put(&sha256_file(&native).expect("hash"), "x86_64", &translated).expect("put");
    let original = exe_of(&images).expect("exe of the image");
    assert_eq!(original, std::fs::canonicalize(&native).expect("path"));
    let found = store.get_for(&original, "x86_64").expect("store lookup").expect("a stored translation");
    assert_eq!(found, stored);
    let translated = found;
    let exe = TranslatedExe::open(&translated).expect("translated exe");
    let recoded = d.join("translated");
    let t = std::time::Instant::now();
    let report = native_to_translated(&images, &exe, &recoded).expect("recode");
    eprintln!("recode took {:?}: {report:?}", t.elapsed());
    assert!(report.pages_kept > 0 && report.pages_written >= 1, "{report:?}");

    let restored = criu.restore(&RestoreOptions::new(&recoded, true)).expect("criu restore");
    std::thread::sleep(Duration::from_millis(500));
    let running = alive(restored.pid);
    let exe_link = std::fs::read_link(format!("/proc/{}/exe", restored.pid));
    let _ = Command::new("kill").arg("-9").arg(restored.pid.to_string()).status();
    let after = numbers(&out);
    assert!(running, "restored process died; output {:?}", &after[after.len().saturating_sub(5)..]);
    assert_eq!(exe_link.expect("exe link"), std::fs::canonicalize(&translated).expect("path"));
    // The numbers go on without a gap or repeat from where the native process stopped.
    assert!(after.len() >= before.len() + 5, "only {} new lines", after.len() - before.len());
    for (i, n) in after.iter().enumerate() {
        assert_eq!(*n, i as u64, "line {i}");
    }
}

fn find_pid(exe: &Path) -> Option<u32> {
    let want = std::fs::canonicalize(exe).ok()?;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if std::fs::read_link(e.path().join("exe")).ok().as_deref() == Some(want.as_path()) {
            return Some(pid);
        }
    }
    None
}
