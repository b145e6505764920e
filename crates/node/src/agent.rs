//! The node agent: listens for clients, authenticates them by certificate over TLS 1.3
//! ([`crate::tls`]), lets only peers allowed to push start a job, receives images into a
//! private folder per job, checks them ([`crate::validate`]), recodes them for this node's
//! ISA when needed, restores them with CRIU and keeps track of what it restored. A job that is
//! not committed is undone when its connection ends (see the crate docs).

use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hcontainer_criu::{Criu, RestoreOptions};

use crate::frame::Frame;
use crate::isa;
use crate::paths::{self, PathError, RelPath};
use crate::recode::{self, RunAs};
use hcontainer_recode::notify;
use crate::proto::{Conn, ProcessInfo, ProtoError, Reply, Request, RestoreTimes, Transport, PROTOCOL_VERSION};
use crate::tls::{Identity, Peer, Role};
use crate::validate::{self, CredsPolicy};

/// Bounds on what one client may send.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest single file.
    pub max_file_bytes: u64,
    /// Largest job (all files).
    pub max_job_bytes: u64,
    /// Most files (and directories and links) in a job.
    pub max_entries: u64,
    /// Most connections served at once.
    pub max_connections: usize,
    /// A connection silent for this long is dropped (its job undone).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 30,
            max_job_bytes: 128 << 30,
            max_entries: 100_000,
            max_connections: 16,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// How an agent authenticates its clients.
#[derive(Clone, Debug)]
pub enum Security {
    /// TLS 1.3 with mutual certificate authentication: clients present a certificate of the
    /// agent's CA; peers with [`Role::Node`] may push jobs (only those named in `push_from`
    /// when it is given), every certified peer may ask for status.
    Tls {
        /// This node's identity.
        identity: Identity,
        /// Node names allowed to push (`None`: every node the CA certified).
        push_from: Option<Vec<String>>,
    },
    /// No authentication and no encryption: refused on any address but loopback. For tests
    /// and measurements on one machine.
    InsecurePlaintext,
}

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Address to listen on (`0.0.0.0:7070`, `127.0.0.1:0`).
    pub listen: String,
    /// Authentication.
    pub security: Security,
    /// What the credentials of a restored tree may be.
    pub creds: CredsPolicy,
    /// Work folder: jobs live in `<work>/jobs/<job>`.
    pub work: PathBuf,
    /// The CRIU to use (default: [`Criu::locate`]'s search).
    pub criu: Option<PathBuf>,
    /// Translation store (default: the recode crate's default store).
    pub store: Option<PathBuf>,
    /// Keep a committed job's images (default: remove them once the process runs).
    pub keep_images: bool,
    /// Bounds.
    pub limits: Limits,
}

impl AgentConfig {
    /// A configuration with default limits.
    pub fn new(listen: impl Into<String>, work: impl Into<PathBuf>, security: Security) -> AgentConfig {
        AgentConfig {
            listen: listen.into(),
            security,
            creds: CredsPolicy::default(),
            work: work.into(),
            criu: None,
            store: None,
            keep_images: false,
            limits: Limits::default(),
        }
    }
}

/// Why the agent could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Asked to listen in clear on an address other hosts can reach.
    #[error("refusing to listen on {addr} without authentication: --insecure-plaintext is for loopback addresses only. \
Give this node a certificate instead:\n  hcontainer node init --name NAME     (on this node)\n  hcontainer ca sign NAME.req          (where the CA lives; `hcontainer ca init` makes one)\n  hcontainer node join NAME.crt        (on this node)\nthen start the agent without --insecure-plaintext")]
    Insecure {
        /// The address.
        addr: String,
    },
    /// The listening socket could not be made.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// File system trouble with the work folder.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Why a request failed (sent to the client as [`Reply::Error`]).
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}")]
    Refused(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JobError + '_ {
    move |source| JobError::Io { path: path.to_path_buf(), source }
}

/// A restored process the agent keeps.
#[derive(Clone, Debug)]
struct Kept {
    job: String,
    label: String,
    pid: u32,
    mode: String,
    exe: String,
}

struct Shared {
    config: AgentConfig,
    jobs_dir: PathBuf,
    kept: Mutex<Vec<Kept>>,
    next_job: AtomicU64,
    connections: AtomicUsize,
    /// The last lines of the log, for [`AgentHandle::log_lines`].
    recent: Mutex<std::collections::VecDeque<String>>,
    /// CRIU, found when the first job begins and kept: finding it runs `criu --version`,
    /// which takes a while on a slow node and must not fall inside a migration's downtime.
    criu: OnceLock<Criu>,
}

impl Shared {
    fn criu(&self) -> Result<&Criu, JobError> {
        if let Some(criu) = self.criu.get() {
            return Ok(criu);
        }
        let criu = Criu::locate(self.config.criu.as_deref())
            .map_err(|e| JobError::Refused(format!("no usable CRIU on this node: {e}")))?;
        Ok(self.criu.get_or_init(|| criu))
    }

    /// The translation store jobs use (`--store`, else the default one).
    fn store(&self) -> Result<hcontainer_recode::store::Store, JobError> {
        hcontainer_recode::store::Store::open(self.config.store.as_deref())
            .map_err(|e| JobError::Refused(format!("no translation store on this node: {e}")))
    }
}

/// A bound agent, ready to serve.
pub struct Agent {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Handle on an agent serving in a background thread.
#[derive(Clone)]
pub struct AgentHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl AgentHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Its jobs folder.
    pub fn jobs_dir(&self) -> &Path {
        &self.shared.jobs_dir
    }
    /// The processes it restored and keeps.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        status(&self.shared)
    }
    /// The agent's last log lines (at most [`RECENT_LOG_LINES`]), oldest first.
    pub fn log_lines(&self) -> Vec<String> {
        self.shared.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }
    /// Connections being served now.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    !hcontainer_criu::proc::is_dead(pid)
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

fn status(shared: &Shared) -> Vec<ProcessInfo> {
    let kept = shared.kept.lock().map(|k| k.clone()).unwrap_or_default();
    kept.into_iter()
        .map(|k| ProcessInfo {
            running: is_running(k.pid),
            job: k.job,
            label: k.label,
            pid: k.pid,
            isa: isa::host_isa().to_string(),
            mode: k.mode,
            exe: k.exe,
        })
        .collect()
}

impl Agent {
    /// Prepares the work folder (removing jobs left by an agent that died) and binds.
    pub fn bind(config: AgentConfig) -> Result<Agent, AgentError> {
        if let Security::InsecurePlaintext = config.security {
            // Every address the name resolves to must be loopback; checked before anything
            // is touched or bound.
            let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&config.listen)
                .map_err(|source| AgentError::Listen { addr: config.listen.clone(), source })?
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
                return Err(AgentError::Insecure { addr: config.listen.clone() });
            }
        }
        let jobs_dir = config.work.join("jobs");
        let aio = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AgentError::Io { path, source }
        };
        if jobs_dir.exists() {
            std::fs::remove_dir_all(&jobs_dir).map_err(aio(&jobs_dir))?;
        }
        std::fs::create_dir_all(&jobs_dir).map_err(aio(&jobs_dir))?;
        let jobs_dir = std::fs::canonicalize(&jobs_dir).map_err(aio(&jobs_dir))?;
        let listener = TcpListener::bind(&config.listen)
            .map_err(|source| AgentError::Listen { addr: config.listen.clone(), source })?;
        let shared = Arc::new(Shared {
            config,
            jobs_dir,
            kept: Mutex::new(Vec::new()),
            next_job: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            recent: Mutex::new(std::collections::VecDeque::new()),
            criu: OnceLock::new(),
        });
        Ok(Agent { listener, shared })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, AgentError> {
        self.listener
            .local_addr()
            .map_err(|source| AgentError::Listen { addr: self.shared.config.listen.clone(), source })
    }

    /// Serves clients until the process ends, one thread per connection.
    pub fn serve(self) -> Result<(), AgentError> {
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            let shared = Arc::clone(&self.shared);
            let n = shared.connections.fetch_add(1, Ordering::SeqCst);
            if n >= shared.config.limits.max_connections {
                shared.connections.fetch_sub(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            std::thread::spawn(move || {
                let _ = serve_connection(stream, &shared);
                shared.connections.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    }

    /// Serves in a background thread.
    pub fn spawn(self) -> Result<AgentHandle, AgentError> {
        let handle = AgentHandle { addr: self.local_addr()?, shared: Arc::clone(&self.shared) };
        std::thread::spawn(move || self.serve());
        Ok(handle)
    }
}

/// A job in progress; undone on drop unless committed.
struct Job<'a> {
    shared: &'a Shared,
    name: String,
    label: String,
    dir: PathBuf,
    bytes: u64,
    entries: u64,
    restored: Option<(u32, String)>,
    committed: bool,
    /// Store objects this job was told it may send (the answer to its `Have`).
    wanted: Vec<String>,
}

/// How many log lines an agent keeps for [`AgentHandle::log_lines`].
pub const RECENT_LOG_LINES: usize = 200;

impl Shared {
    /// One line of the agent's log on standard error: what an operator watching a node wants
    /// to see of its jobs and refusals. A failed write is ignored (the agent serves on
    /// without a log).
    fn log(&self, line: std::fmt::Arguments<'_>) {
        use std::io::Write;
        let line = line.to_string();
        let _ = writeln!(std::io::stderr().lock(), "hcontainer agent: {line}");
        if let Ok(mut r) = self.recent.lock() {
            if r.len() == RECENT_LOG_LINES {
                r.pop_front();
            }
            r.push_back(line);
        }
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        if !self.committed {
            match self.restored {
                Some((pid, _)) => {
                    kill(pid);
                    self.shared.log(format_args!("{}: not committed; restored pid {pid} killed, images removed", self.name));
                }
                None => self.shared.log(format_args!("{}: not committed; images removed", self.name)),
            }
        }
        if !self.committed || !self.shared.config.keep_images {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The TLS handshake of one connection: the client must present a certificate of this
/// agent's CA. On failure, the error names what the client presented.
fn accept_tls(stream: TcpStream, identity: &Identity) -> Result<(Transport, Peer), String> {
    let seen = Arc::new(Mutex::new(None));
    let config = identity.server_config(Arc::clone(&seen)).map_err(|e| e.to_string())?;
    let mut tls = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut sock = stream;
    let shown = |seen: &Mutex<Option<String>>| {
        seen.lock().ok().and_then(|s| s.clone()).unwrap_or_else(|| "no certificate".into())
    };
    while tls.is_handshaking() {
        if let Err(e) = tls.complete_io(&mut sock) {
            // Say why to the client too (an alert), as far as it still listens.
            let _ = tls.write_tls(&mut sock);
            let corrupt = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()).is_some_and(|r| matches!(r, rustls::Error::InvalidMessage(_)));
            if corrupt && seen.lock().map(|s| s.is_none()).unwrap_or(true) {
                return Err(format!("not a TLS client ({e}): a client started with --insecure-plaintext, or not hcontainer"));
            }
            return Err(format!("{}: {e}", shown(&seen)));
        }
    }
    let peer = crate::tls::peer_of(tls.peer_certificates())
        .ok_or_else(|| format!("{}: the certificate names no hcontainer node or role", shown(&seen)))?;
    Ok((Transport::TlsServer(Box::new(rustls::StreamOwned::new(tls, sock))), peer))
}

/// Longest TLS handshake the agent waits for.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is on the other end, for logs and authorization.
struct Client {
    addr: String,
    /// The certified peer (`None` in clear).
    peer: Option<Peer>,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.peer {
            Some(p) => write!(f, "{p} at {}", self.addr),
            None => write!(f, "{} (no authentication)", self.addr),
        }
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> Result<(), ProtoError> {
    let _ = stream.set_read_timeout(Some(shared.config.limits.idle_timeout));
    let _ = stream.set_write_timeout(Some(shared.config.limits.idle_timeout));
    let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let (transport, peer) = match &shared.config.security {
        Security::InsecurePlaintext => (Transport::Plain(stream), None),
        Security::Tls { identity, .. } => {
            // A peer that connects and stays silent must not hold a connection slot for
            // the whole idle time.
            let _ = stream.set_read_timeout(Some(shared.config.limits.idle_timeout.min(HANDSHAKE_TIMEOUT)));
            match accept_tls(stream, identity) {
                Ok((t, p)) => {
                    let _ = t.tcp().set_read_timeout(Some(shared.config.limits.idle_timeout));
                    (t, Some(p))
                }
                Err(why) => {
                    shared.log(format_args!("refused connection from {addr}: {why}"));
                    return Ok(());
                }
            }
        }
    };
    let client = Client { addr, peer };
    let mut conn = Conn::handshake(transport)?;
    let result = converse(&mut conn, shared, &client);
    if let Err(e) = &result {
        shared.log(format_args!("connection from {client}: {e}"));
        // The peer may be gone; the reply is best effort.
        let _ = conn.send(&Reply::Error { message: e.to_string() });
    }
    conn.close();
    Ok(())
}

/// Whether `client` may start a job here.
fn may_push(shared: &Shared, client: &Client) -> Result<(), String> {
    let Security::Tls { push_from, .. } = &shared.config.security else { return Ok(()) };
    let Some(peer) = &client.peer else { return Err("no certificate".into()) };
    if peer.role != Role::Node {
        return Err(format!("{} holds an {} certificate, which may only ask for status", peer.name, peer.role));
    }
    if let Some(names) = push_from {
        if !names.iter().any(|n| n == &peer.name) {
            return Err(format!("{} is not among the nodes allowed to push here ({})", peer.name, names.join(", ")));
        }
    }
    Ok(())
}

fn converse(conn: &mut Conn, shared: &Shared, client: &Client) -> Result<(), JobError> {
    match conn.recv::<Request>()? {
        Request::Hello { version } => {
            if version != PROTOCOL_VERSION {
                return Err(JobError::Refused(format!(
                    "client speaks protocol version {version}, agent {PROTOCOL_VERSION}"
                )));
            }
        }
        _ => return Err(JobError::Refused("the first message must be Hello".into())),
    }
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    conn.send(&Reply::Welcome { version: PROTOCOL_VERSION, isa: isa::host_isa().into(), host })?;
    let mut job: Option<Job> = None;
    loop {
        let req = match conn.recv::<Request>() {
            Ok(r) => r,
            // The client hung up: an uncommitted job is undone by its drop.
            Err(ProtoError::Frame(crate::frame::FrameError::Closed)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match req {
            Request::Hello { .. } => return Err(JobError::Refused("Hello sent twice".into())),
            Request::Status => {
                conn.send(&Reply::Status { isa: isa::host_isa().into(), processes: status(shared) })?;
            }
            Request::Begin { label } => {
                if job.is_some() {
                    return Err(JobError::Refused("one job per connection".into()));
                }
                if let Err(why) = may_push(shared, client) {
                    return Err(JobError::Refused(format!("job refused: {why}")));
                }
                // Before the source freezes, not at the restore.
                shared.criu()?;
                let n = shared.next_job.fetch_add(1, Ordering::SeqCst);
                let name = format!("job-{n}-{:08x}", rand::random::<u32>());
                let dir = shared.jobs_dir.join(&name);
                let j = Job {
                    shared,
                    name: name.clone(),
                    label: label.chars().take(200).collect(),
                    dir,
                    bytes: 0,
                    entries: 0,
                    restored: None,
                    committed: false,
                    wanted: Vec::new(),
                };
                std::fs::create_dir(&j.dir).map_err(io(&j.dir))?;
                shared.log(format_args!("{name}: begun ({}) by {client}", j.label));
                job = Some(j);
                conn.send(&Reply::Begun { job: name })?;
            }
            Request::Dir { path } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("Dir before Begin".into()))?;
                j.count_entry()?;
                RelPath::parse(&path)?.create_dir(&j.dir)?;
            }
            Request::File { path, size, mode } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("File before Begin".into()))?;
                receive_file(conn, j, &path, size, mode)?;
            }
            Request::Link { path, target } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("Link before Begin".into()))?;
                j.count_entry()?;
                let rel = RelPath::parse(&path)?;
                let name = paths::parent_link_target(&target)?;
                let dir_of_target = j.dir.join(name);
                let meta = std::fs::symlink_metadata(&dir_of_target).map_err(io(&dir_of_target))?;
                if !meta.is_dir() {
                    return Err(JobError::Refused(format!("link target {target:?} is not a directory of the job")));
                }
                // The link sits one level below the job folder, so `../name` stays inside.
                if rel.names().len() != 2 {
                    return Err(JobError::Refused(format!("link {path:?} must be <dir>/<name>")));
                }
                let at = rel.resolve(&j.dir)?;
                std::os::unix::fs::symlink(&target, &at).map_err(io(&at))?;
            }
            Request::Restore { dir, run_as, shell_job, tcp_established } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("Restore before Begin".into()))?;
                if j.restored.is_some() {
                    return Err(JobError::Refused("the job was restored already".into()));
                }
                let reply = restore(shared, j, &dir, run_as, shell_job, tcp_established)?;
                conn.send(&reply)?;
            }
            Request::Have { names } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("Have before Begin".into()))?;
                let store = shared.store()?;
                let mut missing = Vec::new();
                for name in names.iter().take(4096) {
                    let p = crate::objects::path_in(&store, name).map_err(|e| JobError::Refused(e.to_string()))?;
                    if !p.is_file() && !missing.contains(name) {
                        missing.push(name.clone());
                    }
                }
                j.wanted = missing.clone();
                conn.send(&Reply::Missing { names: missing })?;
            }
            Request::StoreFile { name, size } => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("StoreFile before Begin".into()))?;
                if !j.wanted.contains(&name) {
                    return Err(JobError::Refused(format!("store object {name:?} was not asked for")));
                }
                receive_object(conn, j, &name, size)?;
                j.wanted.retain(|n| *n != name);
            }
            Request::Commit => {
                let j = job.as_mut().ok_or_else(|| JobError::Refused("Commit before Begin".into()))?;
                let Some((pid, mode)) = j.restored.clone() else {
                    return Err(JobError::Refused("Commit before a restore".into()));
                };
                if !is_running(pid) {
                    return Err(JobError::Refused(format!("restored pid {pid} no longer runs")));
                }
                j.committed = true;
                shared.log(format_args!("{}: committed; pid {pid} runs here ({mode})", j.name));
                let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if let Ok(mut kept) = shared.kept.lock() {
                    kept.push(Kept { job: j.name.clone(), label: j.label.clone(), pid, mode, exe });
                }
                job = None;
                conn.send(&Reply::Committed)?;
            }
            Request::Abort => {
                job = None;
                conn.send(&Reply::Aborted)?;
            }
        }
    }
}

impl Job<'_> {
    fn count_entry(&mut self) -> Result<(), JobError> {
        self.entries += 1;
        let max = self.shared.config.limits.max_entries;
        if self.entries > max {
            return Err(JobError::Refused(format!("more than {max} files in one job")));
        }
        Ok(())
    }
}

fn receive_file(conn: &mut Conn, j: &mut Job, path: &str, size: u64, mode: u32) -> Result<(), JobError> {
    j.count_entry()?;
    let limits = &j.shared.config.limits;
    if size > limits.max_file_bytes {
        return Err(JobError::Refused(format!("{path}: {size} bytes is over the file limit of {}", limits.max_file_bytes)));
    }
    if j.bytes.saturating_add(size) > limits.max_job_bytes {
        return Err(JobError::Refused(format!(
            "{path}: the job would hold {} bytes, over the limit of {}",
            j.bytes.saturating_add(size),
            limits.max_job_bytes
        )));
    }
    let rel = RelPath::parse(path)?;
    let (file, at) = rel.create_file(&j.dir, mode)?;
    j.bytes += size;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut got = 0u64;
    while got < size {
        match conn.recv_frame()? {
            Frame::Data(d) => {
                got += d.len() as u64;
                if got > size {
                    return Err(JobError::Refused(format!("{path}: more data than the {size} bytes announced")));
                }
                w.write_all(&d).map_err(io(&at))?;
            }
            Frame::Control(_) => {
                return Err(JobError::Refused(format!("{path}: message after {got} of {size} bytes")));
            }
        }
    }
    w.flush().map_err(io(&at))?;
    Ok(())
}

/// Receives store object `name` (`size` bytes of data frames) into the agent's store: into a
/// new file beside its place, checked ([`crate::objects::check`]), then renamed into place.
fn receive_object(conn: &mut Conn, j: &mut Job, name: &str, size: u64) -> Result<(), JobError> {
    let limits = &j.shared.config.limits;
    if size > limits.max_file_bytes {
        return Err(JobError::Refused(format!("{name}: {size} bytes is over the file limit of {}", limits.max_file_bytes)));
    }
    let store = j.shared.store()?;
    let dest = crate::objects::path_in(&store, name).map_err(|e| JobError::Refused(e.to_string()))?;
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| store.root().to_path_buf());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!(".incoming-{}-{:08x}", j.name, rand::random::<u32>()));
    let result = (|| {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut got = 0u64;
        while got < size {
            match conn.recv_frame()? {
                Frame::Data(d) => {
                    got += d.len() as u64;
                    if got > size {
                        return Err(JobError::Refused(format!("{name}: more data than the {size} bytes announced")));
                    }
                    w.write_all(&d).map_err(io(&tmp))?;
                }
                Frame::Control(_) => return Err(JobError::Refused(format!("{name}: message after {got} of {size} bytes"))),
            }
        }
        w.flush().map_err(io(&tmp))?;
        drop(w);
        crate::objects::check(&tmp, name).map_err(|e| JobError::Refused(format!("store object refused: {e}")))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        j.shared.log(format_args!("{}: store object {name} received ({size} bytes)", j.name));
    }
    result
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn restore(
    shared: &Shared,
    j: &mut Job,
    dir: &str,
    run_as: RunAs,
    shell_job: bool,
    tcp_established: bool,
) -> Result<Reply, JobError> {
    let arrived = Instant::now();
    let rel = RelPath::parse(dir)?;
    let images = rel.resolve(&j.dir)?;
    let meta = std::fs::symlink_metadata(&images).map_err(io(&images))?;
    if !meta.is_dir() {
        return Err(JobError::Refused(format!("{dir} is not a directory of the job")));
    }
    validate::check(&j.dir, &images, &shared.config.creds).map_err(|e| JobError::Refused(format!("images refused: {e}")))?;
    let host = isa::host_isa();
    let kind = recode::kind(&images).map_err(|e| JobError::Refused(format!("{dir}: {e}")))?;
    let target = recode::plan(&kind, host, run_as).map_err(|e| JobError::Refused(e.to_string()))?;
    let mut times = RestoreTimes::default();
    let mut restore_dir = images.clone();
    if let Some(target) = target {
        let start = Instant::now();
        let out = j.dir.join(format!("{}.recoded", rel.names().join("-")));
        recode::run(&images, target, shared.config.store.as_deref(), &out).map_err(|e| {
            JobError::Refused(format!("recode of {dir} ({}) to {target} on {host}: {e}", recode::kind_name(&kind)))
        })?;
        times.recode_us = micros(start.elapsed());
        restore_dir = out;
    }
    let criu = shared.criu()?;
    let mut opts = RestoreOptions::new(&restore_dir, true);
    opts.shell_job = shell_job;
    opts.tcp_established = tcp_established;
    let start = Instant::now();
    let outcome = criu.restore(&opts).map_err(|e| restore_failed(shared, j, &restore_dir, e))?;
    times.restore_us = micros(start.elapsed());
    let pid = outcome.pid;
    if pid == 0 {
        return Err(JobError::Refused(format!("CRIU restored {dir} but wrote no pid")));
    }
    let mode = isa::process_mode(pid).to_string();
    j.restored = Some((pid, mode.clone()));
    if mode == "translated" {
        // Threads dumped parked at a migration point wait for the resume signal.
        if let Ok(pids) = notify::tree(pid) {
            notify::resume_translated(&pids);
        }
    }
    if !is_running(pid) {
        return Err(JobError::Refused(format!("restored pid {pid} exited at once")));
    }
    times.total_us = micros(arrived.elapsed());
    shared.log(format_args!(
        "{}: restored {dir} as pid {pid} ({mode}{}) in {:.1} ms",
        j.name,
        target.map(|t| format!(", recoded to {t} in {:.1} ms", times.recode_us as f64 / 1000.0)).unwrap_or_default(),
        times.total_us as f64 / 1000.0
    ));
    Ok(Reply::Restored {
        pid,
        isa: host.into(),
        mode,
        image: recode::kind_name(&kind),
        recoded_to: target.map(|t| t.to_string()),
        times,
    })
}

/// The error of a failed restore, with CRIU's log kept under `<work>/failed/` (the job's
/// folder goes) and a hint for the usual cause on a single machine.
fn restore_failed(shared: &Shared, j: &Job, dir: &Path, e: hcontainer_criu::CriuError) -> JobError {
    let mut msg = e.to_string();
    let failed = shared.config.work.join("failed");
    let kept = failed.join(format!("{}-restore.log", j.name));
    if std::fs::create_dir_all(&failed).is_ok() && std::fs::copy(dir.join("restore.log"), &kept).is_ok() {
        msg.push_str(&format!("\n  log kept at {}", kept.display()));
    }
    if msg.contains("Can't fork for") {
        msg.push_str(
            "\n  (a pid of the dumped tree is in use on this node: within one machine, run the program \
             in its own pid namespace, e.g. `unshare --pid --fork setsid PROG`)",
        );
    }
    JobError::Refused(msg)
}
