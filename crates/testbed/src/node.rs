//! A running node: `qemu-system-aarch64` with the node image, a shared folder and port
//! forwards, and commands run inside it as job files.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{tail, Error};

/// Where the shared folder ([`Node::shared_dir`]) is mounted inside the node.
pub const GUEST_SHARED_DIR: &str = "/mnt/host";

/// Environment variable naming the `qemu-system-aarch64` to use.
pub const QEMU_ENV: &str = "HCONTAINER_QEMU_SYSTEM";

/// How often the host looks for a job's result or the node's ready mark.
const POLL: Duration = Duration::from_millis(20);

/// Extra time the host grants a job beyond its limit inside the node (the node's own
/// `timeout` kills it first; this covers the shared folder and the node's job loop).
const GRACE: Duration = Duration::from_secs(10);

/// How a node is started.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Guest TCP ports to forward from free host ports on 127.0.0.1.
    pub forward: Vec<u16>,
    /// Time allowed from start to the node's ready mark.
    pub boot_timeout: Duration,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            memory_mib: 1024,
            cpus: 2,
            forward: Vec::new(),
            boot_timeout: Duration::from_secs(120),
        }
    }
}

/// The result of a command run in the node.
#[derive(Clone, Debug)]
pub struct Output {
    /// Exit status (128 + signal number if a signal ended it; 137 when the time limit did).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A running arm64 node. Dropping it kills the virtual machine.
pub struct Node {
    qemu: Mutex<Child>,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    next_job: AtomicU64,
    booted_in: Duration,
}

impl Node {
    pub(crate) fn boot(kernel: &Path, initrd: &Path, options: &BootOptions) -> Result<Node, Error> {
        let qemu = qemu_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("hcontainer-node-")
            .tempdir()
            .map_err(|e| Error::io(&std::env::temp_dir(), e))?;
        let shared = dir.path().join("shared");
        let jobs = shared.join(".node/jobs");
        std::fs::create_dir_all(&jobs).map_err(|e| Error::io(&jobs, e))?;
        let console = dir.path().join("console.log");

        // Free host ports: bound (so no two forwards get the same one), released just before
        // QEMU binds them.
        let mut listeners = Vec::new();
        let mut ports = Vec::new();
        for &guest_port in &options.forward {
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|source| Error::Port { guest_port, source })?;
            let host_port = listener
                .local_addr()
                .map_err(|source| Error::Port { guest_port, source })?
                .port();
            listeners.push(listener);
            ports.push((guest_port, host_port));
        }
        let mut netdev = "user,id=n0".to_string();
        for (guest, host) in &ports {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        let mut cmd = Command::new(&qemu);
        cmd.args([
            "-M",
            "virt",
            "-cpu",
            "cortex-a72",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .arg("-smp")
        .arg(options.cpus.to_string())
        .arg("-m")
        .arg(options.memory_mib.to_string())
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyAMA0 rdinit=/init panic=-1 quiet"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-netdev")
        .arg(&netdev)
        // No option ROM: the network needs none and Debian ships it in another package.
        .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
        .args(["-device", "virtio-rng-pci"])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=host0,security_model=none",
            shared.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        drop(listeners);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| Error::Command {
            command: format!("{cmd:?}"),
            status: e.to_string(),
            stderr: String::new(),
        })?;
        let mut node = Node {
            qemu: Mutex::new(child),
            dir,
            ports,
            next_job: AtomicU64::new(0),
            booted_in: Duration::ZERO,
        };
        let ready = shared.join(".node/ready");
        while !ready.exists() {
            node.check_alive()?;
            if started.elapsed() > options.boot_timeout {
                return Err(Error::BootTimeout {
                    secs: options.boot_timeout.as_secs(),
                    console: node.console_tail(30),
                });
            }
            std::thread::sleep(POLL);
        }
        node.booted_in = started.elapsed();
        Ok(node)
    }

    /// Runs `command` with `sh` inside the node (working directory `/root`, its own session,
    /// standard input empty) and waits for it at most `timeout`; the node kills it when the
    /// time is up (status 137).
    pub fn run(&self, command: &str, timeout: Duration) -> Result<Output, Error> {
        let n = self.next_job.fetch_add(1, Ordering::Relaxed);
        let jobs = self.dir.path().join("shared/.node/jobs");
        let base = jobs.join(format!("{n:06}"));
        let with = |ext: &str| base.with_extension(ext);
        let secs = timeout.as_secs().max(1);
        write(&with("limit"), &secs.to_string())?;
        write(&with("tmp"), command)?;
        std::fs::rename(with("tmp"), with("sh")).map_err(|e| Error::io(&with("sh"), e))?;
        let deadline = Instant::now() + Duration::from_secs(secs) + GRACE;
        let rc = with("rc");
        loop {
            if let Ok(text) = std::fs::read_to_string(&rc) {
                if let Ok(status) = text.trim().parse::<i32>() {
                    let out = Output {
                        status,
                        stdout: String::from_utf8_lossy(
                            &std::fs::read(with("out")).unwrap_or_default(),
                        )
                        .into_owned(),
                        stderr: String::from_utf8_lossy(
                            &std::fs::read(with("err")).unwrap_or_default(),
                        )
                        .into_owned(),
                    };
                    for ext in ["limit", "run", "out", "err", "rc"] {
                        let _ = std::fs::remove_file(with(ext));
                    }
                    return Ok(out);
                }
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                return Err(Error::RunTimeout {
                    command: command.to_string(),
                    secs,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Copies the host file `from` to `to` inside the node (through the shared folder) and
    /// makes it executable; `to` should be on the node's own file systems (`/usr/bin`,
    /// `/tmp`…), where CRIU can dump and restore programs.
    pub fn install(&self, from: &Path, to: &str, timeout: Duration) -> Result<(), Error> {
        let files = self.shared_dir().join(".node/files");
        std::fs::create_dir_all(&files).map_err(|e| Error::io(&files, e))?;
        let n = self.next_job.fetch_add(1, Ordering::Relaxed);
        let staged = files.join(format!("{n:06}"));
        std::fs::copy(from, &staged).map_err(|e| Error::io(from, e))?;
        let guest = format!("{GUEST_SHARED_DIR}/.node/files/{n:06}");
        let out = self.run(
            &format!("mkdir -p \"$(dirname '{to}')\" && cp {guest} '{to}' && chmod 755 '{to}'"),
            timeout,
        );
        let _ = std::fs::remove_file(&staged);
        let out = out?;
        if !out.success() {
            return Err(Error::Command {
                command: format!("installing {} as {to} in the node", from.display()),
                status: format!("exit status {}", out.status),
                stderr: out.stderr,
            });
        }
        Ok(())
    }

    /// The host side of the shared folder, mounted at [`GUEST_SHARED_DIR`] in the node
    /// (`.node/` inside it belongs to the job mechanism).
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.path().join("shared")
    }

    /// The host port (on 127.0.0.1) forwarded to `guest_port`, if it was asked for.
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|(g, _)| *g == guest_port)
            .map(|(_, h)| *h)
    }

    /// Time from starting QEMU to the node's ready mark.
    pub fn boot_time(&self) -> Duration {
        self.booted_in
    }

    /// The last `lines` lines of the node's serial console.
    pub fn console_tail(&self, lines: usize) -> String {
        tail(
            &std::fs::read(self.dir.path().join("console.log")).unwrap_or_default(),
            lines,
        )
    }

    /// Fails if QEMU has exited.
    fn check_alive(&self) -> Result<(), Error> {
        let mut child = match self.qemu.lock() {
            Ok(child) => child,
            Err(poisoned) => poisoned.into_inner(),
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                Err(Error::QemuExited {
                    status: format!(
                        "{status}{}",
                        if stderr.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", stderr.trim())
                        }
                    ),
                    console: self.console_tail(30),
                })
            }
            Err(e) => Err(Error::QemuExited {
                status: e.to_string(),
                console: self.console_tail(30),
            }),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let child = match self.qemu.get_mut() {
            Ok(child) => child,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// `$HCONTAINER_QEMU_SYSTEM`, else `qemu-system-aarch64` on `PATH`.
fn qemu_binary() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(QEMU_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("qemu-system-aarch64"))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingTool {
            tool: "qemu-system-aarch64".to_string(),
            hint: format!(
                "install Debian's qemu-system-arm (cargo xtask setup), or name one with {QEMU_ENV}"
            ),
        })
}
