//! Migrations between this host and the node with `hcontainer migrate`, as the node tests and
//! `cargo xtask bench-node` make them: the program's aarch64 translation made here into a
//! translation store and installed in the node at the very same path, an `hcontainer agent`
//! in the node (reached through a port forward) and one on this host (reached from the node
//! at 10.0.2.2, QEMU's address of the host), the native program started here in the
//! configuration a checkpoint needs, and the two hops: here -> node as the translation
//! (recoded here), node -> here as the native program (recoded here).
//!
//! Every agent speaks TLS with mutual certificate authentication: [`Pki`] makes a CA and
//! this host's certificate with `hcontainer ca init`, `node init`, `ca sign` and `node
//! join`, and the node joins the same way from inside (its key is made in the node and never
//! leaves it). The node's clock is set from this host's at boot, so certificate validity
//! windows mean the same on both sides. A host agent may also run in clear on loopback
//! ([`AgentAuth::InsecurePlaintext`]), for measurements of what TLS costs.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{run_captured, BootOptions, Error, Node, NodeImage};

/// The agent's port inside the node.
pub const AGENT_PORT: u16 = 7070;

/// Where the node's hcontainer is installed.
pub const NODE_HCONTAINER: &str = "/usr/bin/hcontainer";

/// The node agent's log file (its standard output and error).
pub const NODE_AGENT_LOG: &str = "/root/agent.log";

/// This host's node name in the testbed's certificates.
pub const HOST_NAME: &str = "host";

/// The node's name in the testbed's certificates.
pub const NODE_NAME: &str = "arm64-node";

/// Where the node keeps its key and certificate (hcontainer's default node folder).
pub const NODE_CERT_DIR: &str = "/etc/hcontainer";

/// The testbed's certificates: a CA (`<dir>/ca`) and this host's identity (`<dir>/host`).
#[derive(Debug)]
pub struct Pki {
    hcontainer: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// Makes a CA and this host's certificate in `dir` (emptied first) with `hcontainer`'s
    /// own commands.
    pub fn make(hcontainer: &Path, dir: &Path) -> Result<Pki, Error> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let pki = Pki { hcontainer: hcontainer.to_path_buf(), dir: dir.to_path_buf() };
        pki.run(&["ca", "init", "--name", "testbed", "--days", "30", "--dir", "ca"])?;
        pki.run(&["node", "init", "--name", HOST_NAME, "--dir", HOST_NAME, "-o", "host.req"])?;
        pki.run(&["ca", "sign", "host.req", "--days", "30", "--dir", "ca", "-o", "host.crt"])?;
        pki.run(&["node", "join", "host.crt", "--dir", HOST_NAME])?;
        Ok(pki)
    }

    fn run(&self, args: &[&str]) -> Result<(), Error> {
        run_captured(Command::new(&self.hcontainer).args(args).current_dir(&self.dir)).map(|_| ())
    }

    /// This host's node folder (`--node-dir`).
    pub fn host_dir(&self) -> PathBuf {
        self.dir.join(HOST_NAME)
    }

    /// Gives the node its certificate: its clock set from this host's, `hcontainer node
    /// init` in the node, the request signed here, `hcontainer node join` in the node.
    pub fn join_node(&self, node: &Node, job: Duration) -> Result<(), Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        node_sh(node, &format!("date -u -s @{now} >/dev/null"), job)?;
        let shared = node.shared_dir();
        let req = format!("{}/{NODE_NAME}.req", crate::GUEST_SHARED_DIR);
        node_sh(node, &format!("hcontainer node init --name {NODE_NAME} --dir {NODE_CERT_DIR} --force -o {req}"), job)?;
        let crt = shared.join(format!("{NODE_NAME}.crt"));
        run_captured(
            Command::new(&self.hcontainer)
                .args(["ca", "sign", "--days", "30", "--dir"])
                .arg(self.dir.join("ca"))
                .arg(shared.join(format!("{NODE_NAME}.req")))
                .arg("-o")
                .arg(&crt),
        )?;
        node_sh(
            node,
            &format!("hcontainer node join {}/{NODE_NAME}.crt --dir {NODE_CERT_DIR}", crate::GUEST_SHARED_DIR),
            job,
        )?;
        Ok(())
    }
}

/// How a host agent authenticates its clients.
#[derive(Clone, Copy, Debug)]
pub enum AgentAuth<'a> {
    /// TLS with this node folder's certificate.
    Tls(&'a Pki),
    /// In clear, on loopback (`--insecure-plaintext`).
    InsecurePlaintext,
}

/// How long an agent may take to report that it listens.
const AGENT_START: Duration = Duration::from_secs(60);

/// `bash -c` script: closes every descriptor above 2, then runs its arguments without address
/// randomization (the layout a translation keeps).
pub const CLEAN_EXEC: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec setarch x86_64 -R "$@""#;

/// Translates `exe` for aarch64 with `hcontainer translate --store store` (the translation
/// also lands beside it as `<exe>.aarch64`); returns the store's copy, the file the node must
/// hold at the same path.
pub fn translate_for_node(hcontainer: &Path, exe: &Path, store: &Path) -> Result<PathBuf, Error> {
    run_captured(
        Command::new(hcontainer)
            .arg("translate")
            .arg(exe)
            .args(["--target", "aarch64", "-q", "--store"])
            .arg(store)
            .arg("-o")
            .arg(exe.with_extension("aarch64")),
    )?;
    let entries = std::fs::read_dir(store).map_err(|e| Error::io(store, e))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path().join("aarch64")))
        .find(|p| p.exists())
        .ok_or_else(|| Error::Io {
            path: store.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no aarch64 translation in the store",
            ),
        })
}

/// A path as the node's shell takes it (UTF-8).
fn node_path(path: &Path) -> Result<&str, Error> {
    path.to_str().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not UTF-8"),
    })
}

/// Boots a node from `image` that forwards [`AGENT_PORT`] and `forward`, installs
/// `arm_hcontainer` at [`NODE_HCONTAINER`] and each of `translations` at its own path, gives
/// it a certificate of `pki`'s CA ([`Pki::join_node`]) and starts the node's agent
/// ([`start_node_agent`]). `job` limits each command in the node.
pub fn boot_with_agent(
    image: &NodeImage,
    arm_hcontainer: &Path,
    translations: &[&Path],
    forward: &[u16],
    pki: &Pki,
    job: Duration,
) -> Result<Node, Error> {
    let node = image.boot(&BootOptions {
        forward: std::iter::once(AGENT_PORT)
            .chain(forward.iter().copied())
            .collect(),
        ..BootOptions::default()
    })?;
    node.install(arm_hcontainer, NODE_HCONTAINER, job)?;
    for t in translations {
        node.install(t, node_path(t)?, job)?;
    }
    pki.join_node(&node, job)?;
    start_node_agent(&node, job)?;
    Ok(node)
}

/// Runs `cmd` in the node; fails unless it exits 0. Returns its standard output.
pub fn node_sh(node: &Node, cmd: &str, job: Duration) -> Result<String, Error> {
    let out = node.run(cmd, job)?;
    if !out.success() {
        return Err(Error::Command {
            command: format!("{cmd} (in the node)"),
            status: format!("exit status {}", out.status),
            stderr: format!("{}{}", out.stdout, out.stderr),
        });
    }
    Ok(out.stdout)
}

/// Starts `hcontainer agent` in the node on [`AGENT_PORT`] (TLS with the node's certificate
/// in [`NODE_CERT_DIR`], work folder `/root/agent`, log [`NODE_AGENT_LOG`]) and waits until
/// it listens, 60 s at most.
pub fn start_node_agent(node: &Node, job: Duration) -> Result<(), Error> {
    node_sh(
        node,
        &format!("setsid hcontainer agent --listen 0.0.0.0:{AGENT_PORT} --work /root/agent >{NODE_AGENT_LOG} 2>&1 </dev/null &"),
        job,
    )?;
    let deadline = Instant::now() + AGENT_START;
    loop {
        let log = node_sh(node, &format!("cat {NODE_AGENT_LOG}"), job)?;
        if log.contains("listening on") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::AgentNotReady {
                place: "in the node",
                secs: AGENT_START.as_secs(),
                output: log,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node agent's log so far (empty if it cannot be read): for failure messages.
pub fn node_agent_log(node: &Node, job: Duration) -> String {
    node.run(&format!("cat {NODE_AGENT_LOG}"), job)
        .map(|o| o.stdout)
        .unwrap_or_default()
}

/// `hcontainer agent` on this host, on 127.0.0.1 (QEMU's user network delivers the node's
/// connections to 10.0.2.2 there); killed when dropped.
pub struct HostAgent {
    child: Child,
    port: u16,
    /// Whether it runs in clear (`--insecure-plaintext`).
    plaintext: bool,
    /// What the agent writes to standard error.
    log: PathBuf,
}

impl HostAgent {
    /// Starts `hcontainer` as an agent with its work folder `work` and the translation store
    /// `store`, authenticating as `auth` says, on a free port, and waits until it reports its
    /// address. Its standard error goes to `work` with `.log` added.
    pub fn start(hcontainer: &Path, work: &Path, store: &Path, auth: AgentAuth<'_>) -> Result<HostAgent, Error> {
        let log = work.with_extension("log");
        let log_file = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
        let mut cmd = Command::new(hcontainer);
        cmd.args(["agent", "--listen", "127.0.0.1:0", "--work"])
            .arg(work)
            .arg("--store")
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        match auth {
            AgentAuth::Tls(pki) => cmd.arg("--node-dir").arg(pki.host_dir()),
            AgentAuth::InsecurePlaintext => cmd.arg("--insecure-plaintext"),
        };
        let command = format!("{cmd:?}");
        let mut child = cmd.spawn().map_err(|e| Error::Command {
            command,
            status: e.to_string(),
            stderr: String::new(),
        })?;
        let mut line = String::new();
        // The agent prints its address first; a dead agent ends the stream (empty line).
        if let Some(stdout) = child.stdout.take() {
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        }
        match listening_port(&line) {
            Some(port) => Ok(HostAgent { child, port, plaintext: matches!(auth, AgentAuth::InsecurePlaintext), log }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(Error::AgentNotReady {
                    place: "on this host",
                    secs: 0,
                    output: line,
                })
            }
        }
    }

    /// The port it listens on (127.0.0.1 here, 10.0.2.2 from the node).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines the agent wrote to standard error.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of an agent's `… listening on ADDR:PORT …` line.
fn listening_port(line: &str) -> Option<u16> {
    line.split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
}

/// A process of this host (not a child of the caller), killed when dropped.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts `exe args…` here (as `argv[0]` `name`, working directory `dir`, standard streams
/// on /dev/null) the way a checkpoint needs it: in a session of its own (CRIU cannot dump a
/// process whose session leader lies outside its pid namespace), with no descriptors but
/// 0-2 (whatever the caller left open is not part of the program), without address
/// randomization.
pub fn start_native<S: AsRef<OsStr>>(
    name: &str,
    exe: &Path,
    args: &[S],
    dir: &Path,
) -> Result<Child, Error> {
    let mut cmd = Command::new("setsid");
    cmd.args(["bash", "-c", CLEAN_EXEC, name])
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let command = format!("{cmd:?}");
    cmd.spawn().map_err(|e| Error::Command {
        command,
        status: e.to_string(),
        stderr: String::new(),
    })
}

/// As [`start_native`], through `hcontainer run` (which replaces itself with the program,
/// so the child's pid is the program's): the C library then keeps to what the translation
/// covers and makes system calls instead of calling the vDSO, as a dynamically linked
/// program that uses the time of day must to move to another ISA.
pub fn start_run<S: AsRef<OsStr>>(hcontainer: &Path, exe: &Path, args: &[S], dir: &Path) -> Result<Child, Error> {
    const CLEAN_RUN: &str = r#"for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec "$@""#;
    let mut cmd = Command::new("setsid");
    cmd.args(["bash", "-c", CLEAN_RUN, "hcontainer-run"])
        .arg(hcontainer)
        .arg("run")
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let command = format!("{cmd:?}");
    cmd.spawn().map_err(|e| Error::Command { command, status: e.to_string(), stderr: String::new() })
}

/// The progress line of `tests/migrate/slow_heap.c` (`STEP STATUS`, 42 bytes at the start of
/// its file): the step and whether every heap check so far passed (`ok`), or `None` before the
/// first line (a file of zeros).
pub fn slow_heap_progress(text: &str) -> Option<(u64, bool)> {
    let mut words = text.split_whitespace();
    let step = words.next()?.parse().ok()?;
    Some((step, words.next()? == "ok"))
}

/// Waits (120 s at most) until the progress of `tests/migrate/slow_heap.c`, read by `read`,
/// shows a step past `after` with every heap check passed so far; returns that step. A
/// damaged heap, or a failed read, ends the wait at once.
pub fn slow_heap_counts_on<E: std::fmt::Display>(
    what: &str,
    after: u64,
    read: impl Fn() -> Result<String, E>,
) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = read().map_err(|e| format!("{what}: {e}"))?;
        match slow_heap_progress(&text) {
            Some((_, false)) => return Err(format!("{what}: the subject found its heap damaged: {text:?}")),
            Some((step, true)) if step > after => return Ok(step),
            _ if Instant::now() > deadline => {
                return Err(format!("{what}: the subject did not count past step {after} in 120 s: {text:?}"))
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One hop of a process.
#[derive(Clone, Debug)]
pub struct Hop {
    /// What `hcontainer migrate` printed (`… as pid N …`).
    pub report: String,
    /// The process's pid at its destination.
    pub dest_pid: u32,
    /// Time of the whole migrate command.
    pub wall: Duration,
}

/// The `as pid N` of a migrate report.
pub fn dest_pid(report: &str) -> Option<u32> {
    report
        .split("as pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

fn hop(report: String, wall: Duration) -> Result<Hop, Error> {
    match dest_pid(&report) {
        Some(dest_pid) => Ok(Hop {
            report,
            dest_pid,
            wall,
        }),
        None => Err(Error::Report { report }),
    }
}

/// What a hop asks of `hcontainer migrate` beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct HopOptions<'a> {
    /// Pre-copy rounds before the final dump (`--pre-dump N`).
    pub pre_dump: usize,
    /// Where the command writes its JSON report (`--json`): a path on the machine the hop
    /// starts from.
    pub json: Option<&'a Path>,
    /// The only TLS cipher suite the migrating side offers (`aes128gcm`, `aes256gcm`,
    /// `chacha20`: `$HCONTAINER_TLS_CIPHER`), instead of its CPU's order.
    pub cipher: Option<&'a str>,
}

/// Moves the native process `pid` of this host to the node's agent as its aarch64
/// translation (recoded here; `store` holds the translation), with `hcontainer migrate`
/// over TLS as `pki`'s host, requiring the agent's certificate to name [`NODE_NAME`].
/// A failure carries the node agent's log.
pub fn to_node(
    hcontainer: &Path,
    pid: u32,
    node: &Node,
    store: &Path,
    pki: &Pki,
    options: &HopOptions<'_>,
    job: Duration,
) -> Result<Hop, Error> {
    let port = node.host_port(AGENT_PORT).ok_or(Error::NotForwarded {
        guest_port: AGENT_PORT,
    })?;
    let mut cmd = Command::new(hcontainer);
    cmd.args(["migrate", "--pid", &pid.to_string(), "--to"])
        .arg(format!("{NODE_NAME}@127.0.0.1:{port}"))
        .arg("--node-dir")
        .arg(pki.host_dir())
        .args(["--run-as", "translated", "--recode-at", "origin", "--store"])
        .arg(store)
        .args(["--pre-dump", &options.pre_dump.to_string()])
        .arg("-q");
    if let Some(json) = options.json {
        cmd.arg("--json").arg(json);
    }
    if let Some(cipher) = options.cipher {
        cmd.env("HCONTAINER_TLS_CIPHER", cipher);
    }
    let command = format!("{cmd:?}");
    let started = Instant::now();
    let out = cmd.output().map_err(|e| Error::Command {
        command: command.clone(),
        status: e.to_string(),
        stderr: String::new(),
    })?;
    let wall = started.elapsed();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(Error::Migration {
            command,
            status: out.status.to_string(),
            output: format!(
                "{report}{}\nagent log in the node:\n{}",
                String::from_utf8_lossy(&out.stderr),
                node_agent_log(node, job)
            ),
        });
    }
    hop(report, wall)
}

/// What the node shows after a failed migration of `pid` from it: its processes and the
/// ends of the CRIU logs the migrate command left (a command killed at its time limit leaves
/// its work folder behind).
fn node_migrate_state(node: &Node, pid: u32) -> String {
    let script = format!(
        "echo '--- processes in the node:'; ps | grep -v ' \\[[a-z]'; echo '--- /proc/{pid}/status:'; \
         grep -E 'State|SigPnd|ShdPnd|SigBlk' /proc/{pid}/status; \
         for t in /proc/{pid}/task/*; do echo \"task $t: $(cat $t/stat 2>/dev/null | cut -d' ' -f3) $(cat $t/wchan 2>/dev/null)\"; done; \
         for f in /tmp/hcontainer-migrate/*/*/*.log; do [ -e \"$f\" ] || continue; echo \"--- $f:\"; tail -n 8 \"$f\"; done"
    );
    match node.run(&script, Duration::from_secs(60)) {
        Ok(out) => format!("{}{}", out.stdout, out.stderr),
        Err(e) => format!("(the node's state could not be read: {e})"),
    }
}

/// Moves the translated process `pid` of the node back to `agent` on this host, as the
/// native program (recoded here), with the node's `hcontainer migrate`: over TLS with the
/// node's certificate, requiring the agent's to name [`HOST_NAME`], or in clear to an agent
/// started so.
pub fn to_host(
    node: &Node,
    pid: u32,
    agent: &HostAgent,
    options: &HopOptions<'_>,
    job: Duration,
) -> Result<Hop, Error> {
    let to = if agent.plaintext {
        format!("10.0.2.2:{} --insecure-plaintext", agent.port())
    } else {
        format!("{HOST_NAME}@10.0.2.2:{}", agent.port())
    };
    let mut command = format!(
        "{}hcontainer migrate --pid {pid} --to {to} --run-as native --recode-at destination --pre-dump {} -q",
        options.cipher.map(|c| format!("HCONTAINER_TLS_CIPHER={c} ")).unwrap_or_default(),
        options.pre_dump
    );
    if let Some(json) = options.json {
        command.push_str(&format!(" --json {}", json.display()));
    }
    let started = Instant::now();
    let out = node.run(&command, job)?;
    let wall = started.elapsed();
    if !out.success() {
        return Err(Error::Migration {
            command: format!("{command} (in the node)"),
            status: format!("exit status {}", out.status),
            output: format!(
                "{}{}\n{}\n--- this host's agent:\n{}",
                out.stdout,
                out.stderr,
                node_migrate_state(node, pid),
                agent.log_tail(20)
            ),
        });
    }
    hop(out.stdout, wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_an_agent_line() {
        assert_eq!(
            listening_port("hcontainer agent listening on 127.0.0.1:40123 (isa x86_64, work /w)\n"),
            Some(40123)
        );
        assert_eq!(listening_port(""), None);
        assert_eq!(listening_port("error: address in use\n"), None);
    }

    #[test]
    fn reads_the_progress_of_the_slow_heap_subject() {
        let line = format!("{:20} {:20}\n", 1234, "ok");
        assert_eq!(slow_heap_progress(&line), Some((1234, true)));
        let line = format!("{:20} {:20}\n", 50, "corrupt-17");
        assert_eq!(slow_heap_progress(&line), Some((50, false)));
        assert_eq!(slow_heap_progress("\0\0\0\0"), None);
        assert_eq!(slow_heap_progress(""), None);
    }

    #[test]
    fn reads_the_destination_pid_of_a_report() {
        assert_eq!(
            dest_pid("migrated pid 77 to 127.0.0.1:5 as pid 1234 (aarch64 translated)"),
            Some(1234)
        );
        assert_eq!(dest_pid("migrated, no pid"), None);
        assert!(matches!(
            hop("nothing".into(), Duration::ZERO),
            Err(Error::Report { .. })
        ));
    }

    #[test]
    fn a_host_agent_that_cannot_start_is_an_error() {
        let err = HostAgent::start(
            Path::new("/bin/false"),
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            AgentAuth::InsecurePlaintext,
        )
        .err()
        .expect("/bin/false is no agent");
        assert!(matches!(err, Error::AgentNotReady { .. }), "{err}");
    }

    #[test]
    fn a_native_start_runs_the_program_alone_in_its_session_without_randomization() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A descriptor of ours without close-on-exec, which the program must not see.
        let leaked = std::fs::File::open("/dev/null").expect("opening /dev/null");
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl(F_SETFD) on a descriptor this test owns changes only its flags.
        let rc = unsafe { libc::fcntl(leaked.as_raw_fd(), libc::F_SETFD, 0) };
        assert_eq!(rc, 0, "clearing FD_CLOEXEC");
        let script = "ls /proc/$$/fd > fds; cat /proc/$$/personality > personality; cat /proc/$$/stat > stat";
        let mut child = start_native("bash", Path::new("/bin/bash"), &["-c", script], dir.path())
            .expect("starting bash");
        let pid = child.id();
        let status = child.wait().expect("waiting for bash");
        assert!(status.success());
        drop(leaked);
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
        let fds: Vec<String> = read("fds").split_whitespace().map(String::from).collect();
        assert_eq!(fds, ["0", "1", "2"], "descriptors of the program");
        let personality = u32::from_str_radix(read("personality").trim(), 16).expect("personality");
        assert_ne!(
            personality & 0x0040000,
            0,
            "ADDR_NO_RANDOMIZE is not set: {personality:#x}"
        );
        let stat = read("stat");
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .expect("stat")
            .1
            .split_whitespace()
            .collect();
        assert_eq!(fields[3], pid.to_string(), "session of the program: {stat}");
    }
}
