//! Helpers of the CRIU integration tests: the CRIU to use, test programs, waiting.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hcontainer_criu::Criu;

/// One CRIU run at a time: dumps freeze whole trees and restores need their pids free.
static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRIU under test: `$HCONTAINER_CRIU`, else `<repo>/.cache/criu/bin/criu`. Fails (never
/// skips) when neither is usable.
pub fn criu() -> Criu {
    let path = std::env::var_os("HCONTAINER_CRIU")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/criu/bin/criu"));
    match Criu::probe(&path) {
        Ok(c) => c,
        Err(e) => panic!(
            "CRIU is needed for this test and {} is not usable: {e}.\n\
             Run the set-up first (`cargo xtask setup`, which installs CRIU into .cache/criu) \
             or point HCONTAINER_CRIU at a CRIU ≥ 4.2.",
            path.display()
        ),
    }
}

/// `crit` installed next to the CRIU under test.
pub fn crit() -> PathBuf {
    let c = criu();
    let crit = c.path().with_file_name("crit");
    assert!(
        crit.exists(),
        "{} is missing: the set-up installs crit beside criu (.cache/criu/bin/crit)",
        crit.display()
    );
    crit
}

/// A running test program (killed on drop if still ours).
pub struct Target {
    pub child: Option<Child>,
    pub pid: u32,
    pub status: PathBuf,
}

impl Target {
    /// Starts `hcontainer-criu-target MODE STATUS [ARG]` with its status file in `dir`.
    pub fn start(dir: &Path, mode: &str, arg: Option<&str>) -> Target {
        let status = dir.join(format!("{mode}.status"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcontainer-criu-target"));
        cmd.arg(mode).arg(&status);
        if let Some(a) = arg {
            cmd.arg(a);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the test target");
        let pid = child.id();
        let t = Target { child: Some(child), pid, status };
        wait_until("first tick", || last_tick(&t.status).is_some_and(|n| n >= 3));
        t
    }

    /// Reaps the original process after a dump killed it, freeing its pid for the restore.
    pub fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = c.wait().expect("waiting for the dumped process");
            assert!(!status.success(), "the dumped process exited by itself: {status}");
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kills a restored process (not our child) and its children, by pid.
pub fn kill_tree(pid: u32) {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default();
    for c in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
        kill_tree(c);
    }
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// Waits up to 10 s for `cond`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The numbers of the `tick N` lines of a status file.
pub fn ticks(status: &Path) -> Vec<u64> {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect()
}

pub fn last_tick(status: &Path) -> Option<u64> {
    ticks(status).last().copied()
}

/// Whether the file's ticks only grow, each line whole.
pub fn ticks_increasing(status: &Path) -> bool {
    let text = std::fs::read_to_string(status).unwrap_or_default();
    let t = ticks(status);
    t.len() == text.lines().count() && t.windows(2).all(|w| w[0] < w[1])
}

/// A fresh scratch directory.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("hcontainer-criu-").tempdir().expect("temp dir")
}
