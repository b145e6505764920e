//! What the tests that boot the emulated arm64 node share: the node lock, the agent's port
//! there, a `hcontainer agent` on this host, and running commands in the node.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use hcontainer_testbed::{cross, Node};

/// `bash -c` script: closes every descriptor above 2, then runs its arguments without address
/// randomization.
pub const CLEAN_EXEC: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec setarch x86_64 -R "$@""#;

/// The agent's port inside the node.
pub const AGENT_PORT: u16 = 7070;

/// Time limit of one command in the node.
pub const JOB: Duration = Duration::from_secs(120);

/// One node at a time: two emulated arm64 machines would compete for the host's two cores.
static NODE_LOCK: Mutex<()> = Mutex::new(());

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    NODE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `hcontainer agent` on this host, killed when dropped.
pub struct HostAgent {
    child: std::process::Child,
    pub port: u16,
}

impl HostAgent {
    /// Starts an agent on 127.0.0.1 (QEMU's user network delivers the node's connections to
    /// 10.0.2.2 there) with its work folder `work` and the translation store `store`.
    pub fn start(work: &Path, store: &Path) -> HostAgent {
        use std::io::BufRead;
        let mut child = Command::new(crate::common::hcontainer())
            .args(["agent", "--listen", "127.0.0.1:0", "--work"])
            .arg(work)
            .arg("--store")
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting hcontainer agent");
        let stdout = child.stdout.take().expect("agent stdout");
        let mut line = String::new();
        // The agent prints its address first; a dead agent ends the stream (empty line).
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("the host agent did not start: {line:?}");
        };
        HostAgent { child, port }
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills a process (not our child) when dropped.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// The aarch64 hcontainer, or a failure saying how to build it.
pub fn arm_hcontainer(repo: &Path) -> PathBuf {
    let exe = cross::hcontainer_aarch64(repo);
    assert!(
        exe.exists(),
        "{} is missing: build it with `cargo xtask vm build`",
        exe.display()
    );
    exe
}

/// Runs `cmd` in the node and fails the test unless it exits 0.
pub fn sh(node: &Node, cmd: &str) -> String {
    let out = node
        .run(cmd, JOB)
        .unwrap_or_else(|e| panic!("{cmd}: {e}\nconsole:\n{}", node.console_tail(30)));
    assert!(
        out.success(),
        "`{cmd}` exited {}:\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

