//! What the tests that boot the emulated arm64 node share: the node lock, the time limit of a
//! command there, running commands in the node, and a test program made ready for migrations
//! between this host and the node ([`Subject`]: built, translated into a store of its own,
//! the node booted with hcontainer, the translation and an agent, and an agent here). The
//! migration steps themselves are `hcontainer_testbed::migrate`'s, which `cargo xtask
//! bench-node` uses too.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;

use hcontainer_testbed::cc::{self, Libc};
use hcontainer_testbed::migrate::{self, Hop, HostAgent};
pub use hcontainer_testbed::migrate::HopOptions;
use hcontainer_testbed::{cross, Error, Node, NodeImage};

pub use hcontainer_testbed::migrate::KillOnDrop;

/// Time limit of one command in the node.
pub const JOB: Duration = Duration::from_secs(120);

/// One node at a time: two emulated arm64 machines would compete for the host's two cores.
static NODE_LOCK: Mutex<()> = Mutex::new(());

pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    NODE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
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

/// The node image (built on first use under `.cache/vm`).
pub fn node_image(repo: &Path) -> NodeImage {
    NodeImage::build(&repo.join(".cache")).unwrap_or_else(|e| panic!("building the node: {e}"))
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

/// A C program of a test, built here (static, musl) and translated for the node into a store
/// of its own, all under one fresh work folder: paths the process uses must exist on both
/// machines, so the node recreates the folder's absolute path.
pub struct Subject {
    /// `argv[0]` of the program.
    pub name: String,
    /// The work folder (canonical).
    pub work: PathBuf,
    /// The native program.
    pub exe: PathBuf,
    /// The translation store.
    pub store: PathBuf,
    /// The store's aarch64 translation, installed at the same path in the node.
    pub stored: PathBuf,
    /// The certificates of the hops (CA and this host's identity, in `pki/`).
    pub pki: migrate::Pki,
}

impl Subject {
    /// Empties `target/<work_name>`, writes `source` there as `<name>.c`, builds it as
    /// `<name>` (musl, with `flags` added), translates that for aarch64 into `store/`.
    pub fn build(work_name: &str, name: &str, source: &str, flags: &[&str]) -> Subject {
        let work = crate::common::work_dir(work_name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("creating the work folder");
        let work = work.canonicalize().expect("canonical work folder");
        let src = work.join(format!("{name}.c"));
        std::fs::write(&src, source).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
        let exe = work.join(name);
        cc::compile(Libc::Musl, &src, flags, &exe).unwrap_or_else(|e| panic!("{e}"));
        let store = work.join("store");
        let stored = migrate::translate_for_node(&crate::common::hcontainer(), &exe, &store)
            .unwrap_or_else(|e| panic!("translating {name} for the node: {e}"));
        let pki = migrate::Pki::make(&crate::common::hcontainer(), &work.join("pki"))
            .unwrap_or_else(|e| panic!("making the certificates: {e}"));
        Subject {
            name: name.to_string(),
            work,
            exe,
            store,
            stored,
            pki,
        }
    }

    /// Empties `target/<work_name>`, writes `source` there as `<name>.c`, builds it as a
    /// dynamically linked `<name>` (glibc, PIE, with `flags` added) and translates its closure
    /// for aarch64 into `store/`. The node gets the program's own file (as an arm64 Debian
    /// has its x86-64 files); its units and launcher travel with the first job.
    pub fn build_dynamic(work_name: &str, name: &str, source: &str, flags: &[&str]) -> Subject {
        let work = crate::common::work_dir(work_name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("creating the work folder");
        let work = work.canonicalize().expect("canonical work folder");
        let src = work.join(format!("{name}.c"));
        std::fs::write(&src, source).unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
        let exe = work.join(name);
        let o = std::process::Command::new("gcc").args(["-O2", "-o"]).arg(&exe).arg(&src).args(flags).output().expect("gcc");
        assert!(o.status.success(), "gcc: {}", String::from_utf8_lossy(&o.stderr));
        let store = work.join("store");
        let o = std::process::Command::new(crate::common::hcontainer())
            .arg("translate")
            .arg(&exe)
            .args(["--target", "aarch64", "-q", "--store"])
            .arg(&store)
            .output()
            .expect("hcontainer translate");
        assert!(o.status.success(), "translating {name} for the node: {}", String::from_utf8_lossy(&o.stderr));
        let pki = migrate::Pki::make(&crate::common::hcontainer(), &work.join("pki"))
            .unwrap_or_else(|e| panic!("making the certificates: {e}"));
        Subject { name: name.to_string(), work, stored: exe.clone(), exe, store, pki }
    }

    /// A Debian program (`exe`, which the node image has at the same path) translated with
    /// its closure for aarch64 into `target/<work_name>/store`; the node gets a marker file
    /// in the work folder, so that the folder exists there too.
    pub fn debian(work_name: &str, exe: &Path) -> Subject {
        let work = crate::common::work_dir(work_name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("creating the work folder");
        let work = work.canonicalize().expect("canonical work folder");
        let store = work.join("store");
        let o = std::process::Command::new(crate::common::hcontainer())
            .arg("translate")
            .arg(exe)
            .args(["--target", "aarch64", "-q", "--store"])
            .arg(&store)
            .output()
            .expect("hcontainer translate");
        assert!(o.status.success(), "translating {} for the node: {}", exe.display(), String::from_utf8_lossy(&o.stderr));
        let marker = work.join("work-folder");
        std::fs::write(&marker, b"").expect("marker");
        let pki = migrate::Pki::make(&crate::common::hcontainer(), &work.join("pki"))
            .unwrap_or_else(|e| panic!("making the certificates: {e}"));
        let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Subject { name, work, exe: exe.to_path_buf(), store, stored: marker, pki }
    }

    /// Starts the program here with `args` through `hcontainer run` ([`migrate::start_run`]).
    pub fn start_run(&self, args: &[&str]) -> Child {
        migrate::start_run(&crate::common::hcontainer(), &self.exe, args, &self.work)
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name))
    }

    /// The store's translation's path as the node's shell takes it.
    pub fn stored_str(&self) -> &str {
        self.stored.to_str().expect("UTF-8 store path")
    }

    /// Boots the node (forwarding the agent's port and `forward`) with the aarch64
    /// hcontainer, the translation and the node's agent, and starts an agent here.
    pub fn boot(&self, repo: &Path, forward: &[u16]) -> (Node, HostAgent) {
        let node = migrate::boot_with_agent(
            &node_image(repo),
            &arm_hcontainer(repo),
            &[&self.stored],
            forward,
            &self.pki,
            JOB,
        )
        .unwrap_or_else(|e| panic!("booting the node for migrations: {e}"));
        let agent = HostAgent::start(
            &crate::common::hcontainer(),
            &self.work.join("host-agent"),
            &self.store,
            migrate::AgentAuth::Tls(&self.pki),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (node, agent)
    }

    /// Starts the native program here with `args` in the work folder, migratable
    /// ([`migrate::start_native`]).
    pub fn start(&self, args: &[&str]) -> Child {
        migrate::start_native(&self.name, &self.exe, args, &self.work)
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.name))
    }

    /// Moves `pid` from here to the node as the translation.
    pub fn to_node(&self, pid: u32, node: &Node, options: &HopOptions<'_>) -> Result<Hop, Error> {
        migrate::to_node(
            &crate::common::hcontainer(),
            pid,
            node,
            &self.store,
            &self.pki,
            options,
            JOB,
        )
    }
}

/// Moves `pid` from the node back here (to `agent`) as the native program.
pub fn to_host(node: &Node, pid: u32, agent: &HostAgent, options: &HopOptions<'_>) -> Result<Hop, Error> {
    migrate::to_host(node, pid, agent, options, JOB)
}
