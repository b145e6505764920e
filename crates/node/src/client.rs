//! The client side of the node protocol: connect (TLS 1.3 with this node's certificate,
//! verifying the agent's), ask for status, upload images directories (files compressed in
//! data frames, CRIU `parent` links as links), ask for a restore and commit it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::frame::{self, FrameError};
use crate::recode::RunAs;
use crate::proto::{Conn, ProcessInfo, ProtoError, Reply, Request, RestoreTimes, Transport, PROTOCOL_VERSION};
use crate::tls::{Identity, Peer};

/// How a client authenticates itself and the agent.
#[derive(Clone, Debug)]
pub enum ClientSecurity {
    /// TLS 1.3 with this node's certificate; the agent must hold a node certificate of the
    /// same CA (and the name asked for, `NAME@HOST:PORT`).
    Tls(Identity),
    /// In clear, no authentication: only agents started with `--insecure-plaintext` (on
    /// loopback) accept it.
    InsecurePlaintext,
}

/// Splits `NAME@HOST:PORT` into the expected agent name and the address.
pub fn split_target(to: &str) -> (Option<&str>, &str) {
    match to.split_once('@') {
        Some((name, addr)) => (Some(name), addr),
        None => (None, to),
    }
}

/// Longest wait for one reply of the agent (a restore of a large process included).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the agent.
    #[error("cannot connect to agent {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Protocol trouble.
    #[error("agent {addr}: {source}")]
    Proto {
        /// The agent.
        addr: String,
        /// The error.
        source: ProtoError,
    },
    /// The TLS handshake failed or the agent's certificate was refused.
    #[error("agent {addr}: TLS: {message}")]
    Tls {
        /// The agent.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The agent refused or failed.
    #[error("agent {addr}: {message}")]
    Agent {
        /// The agent.
        addr: String,
        /// Its message.
        message: String,
    },
    /// The agent answered something else than expected.
    #[error("agent {addr}: unexpected reply {reply}")]
    Unexpected {
        /// The agent.
        addr: String,
        /// The reply.
        reply: String,
    },
    /// A local file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A symbolic link in an images directory points outside the directories sent.
    #[error("{}: link to {} which is not one of the directories sent", link.display(), target.display())]
    LinkOutside {
        /// The link.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io { path: path.to_path_buf(), source }
}

/// What a restore produced on the agent.
#[derive(Clone, Debug)]
pub struct Restored {
    /// Pid on the agent's machine.
    pub pid: u32,
    /// The agent's ISA.
    pub isa: String,
    /// `native` or `translated`.
    pub mode: String,
    /// What the agent recoded the images to, if it did.
    pub recoded_to: Option<String>,
    /// Times on the agent.
    pub times: RestoreTimes,
}

/// Bytes an upload moved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    /// File content bytes.
    pub raw: u64,
    /// Bytes on the wire (compressed, with framing).
    pub wire: u64,
}

/// A connection to an agent, past the authentication.
pub struct Client {
    conn: Conn,
    addr: String,
    /// The agent as its certificate names it (`None` in clear).
    pub peer: Option<Peer>,
    /// The TLS cipher suite (`None` in clear).
    pub cipher: Option<String>,
    /// The agent's ISA.
    pub isa: String,
    /// The agent's host name.
    pub host: String,
    /// Directories uploaded so far (canonical local path → name in the job).
    sent_dirs: HashMap<PathBuf, String>,
}

/// Total size of the regular files in `dirs`.
pub fn total_bytes(dirs: &[(PathBuf, String)]) -> u64 {
    let mut total = 0;
    for (dir, _) in dirs {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Ok(m) = std::fs::symlink_metadata(e.path()) {
                    if m.is_file() {
                        total += m.len();
                    }
                }
            }
        }
    }
    total
}

impl Client {
    /// Connects to `to` (`HOST:PORT`, or `NAME@HOST:PORT` to require the agent's
    /// certificate to name NAME) and authenticates both ends.
    pub fn connect(to: &str, security: &ClientSecurity) -> Result<Client, ClientError> {
        let (expect, addr) = split_target(to);
        let cerr = |source| ClientError::Connect { addr: addr.to_string(), source };
        let sock = addr
            .to_socket_addrs()
            .map_err(cerr)?
            .next()
            .ok_or_else(|| cerr(std::io::Error::other("no address")))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(10)).map_err(cerr)?;
        // A reply that never comes (an agent stuck in a restore) ends the hop instead of
        // holding the source forever.
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(cerr)?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(cerr)?;
        let tls_err = |message: String| ClientError::Tls { addr: addr.to_string(), message };
        let (transport, peer) = match security {
            ClientSecurity::InsecurePlaintext => (Transport::Plain(stream), None),
            ClientSecurity::Tls(identity) => {
                let (config, name) = identity.client_config(expect).map_err(|e| tls_err(e.to_string()))?;
                let mut tls = rustls::ClientConnection::new(config, name).map_err(|e| tls_err(e.to_string()))?;
                let mut sock = stream;
                while tls.is_handshaking() {
                    if let Err(e) = tls.complete_io(&mut sock) {
                        let _ = tls.write_tls(&mut sock);
                        return Err(tls_err(handshake_message(&e)));
                    }
                }
                let peer = crate::tls::peer_of(tls.peer_certificates())
                    .ok_or_else(|| tls_err("the agent's certificate names no hcontainer node".into()))?;
                (Transport::TlsClient(Box::new(rustls::StreamOwned::new(tls, sock))), Some(peer))
            }
        };
        let cipher = transport.cipher();
        // In TLS 1.3 the agent checks this side's certificate after the handshake has ended
        // here: its refusal arrives as an alert on the first read.
        let conn = Conn::handshake(transport).map_err(|source| match &source {
            ProtoError::Frame(FrameError::Io(e)) if peer.is_some() => tls_err(handshake_message(e)),
            ProtoError::Frame(FrameError::Truncated | FrameError::BadMagic(_) | FrameError::Closed) if peer.is_none() => {
                ClientError::Tls {
                    addr: addr.to_string(),
                    message: "the agent does not speak in clear: it expects TLS with a node certificate (drop --insecure-plaintext)".into(),
                }
            }
            _ => ClientError::Proto { addr: addr.to_string(), source },
        })?;
        let mut c = Client { conn, addr: addr.to_string(), peer, cipher, isa: String::new(), host: String::new(), sent_dirs: HashMap::new() };
        c.conn.send(&Request::Hello { version: PROTOCOL_VERSION }).map_err(|e| c.proto(e))?;
        match c.reply()? {
            Reply::Welcome { isa, host, .. } => {
                c.isa = isa;
                c.host = host;
                Ok(c)
            }
            other => Err(c.unexpected(other)),
        }
    }

    fn proto(&self, source: ProtoError) -> ClientError {
        ClientError::Proto { addr: self.addr.clone(), source }
    }

    fn unexpected(&self, reply: Reply) -> ClientError {
        match reply {
            Reply::Error { message } => ClientError::Agent { addr: self.addr.clone(), message },
            other => ClientError::Unexpected { addr: self.addr.clone(), reply: format!("{other:?}") },
        }
    }

    fn reply(&mut self) -> Result<Reply, ClientError> {
        match self.conn.recv::<Reply>() {
            Ok(Reply::Error { message }) => Err(ClientError::Agent { addr: self.addr.clone(), message }),
            Ok(r) => Ok(r),
            Err(e) => Err(self.proto(e)),
        }
    }

    /// A send failed: the agent may have said why before closing.
    fn send_failed(&mut self, e: ProtoError) -> ClientError {
        let _ = self.conn.stream().set_read_timeout(Some(Duration::from_secs(2)));
        match self.conn.recv::<Reply>() {
            Ok(Reply::Error { message }) => ClientError::Agent { addr: self.addr.clone(), message },
            _ => self.proto(e),
        }
    }

    fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        match self.conn.send(req) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.send_failed(e)),
        }
    }

    /// The agent's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What the agent runs.
    pub fn status(&mut self) -> Result<(String, Vec<ProcessInfo>), ClientError> {
        self.send(&Request::Status)?;
        match self.reply()? {
            Reply::Status { isa, processes } => Ok((isa, processes)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Starts a job; returns its name.
    pub fn begin(&mut self, label: &str) -> Result<String, ClientError> {
        self.send(&Request::Begin { label: label.to_string() })?;
        match self.reply()? {
            Reply::Begun { job } => Ok(job),
            other => Err(self.unexpected(other)),
        }
    }

    /// Sends a raw request (for tests of the agent's checks).
    pub fn send_request(&mut self, req: &Request) -> Result<(), ClientError> {
        self.send(req)
    }

    /// Sends a data frame holding `data` (for tests of the agent's checks).
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let body = frame::data_body(data).map_err(|e| self.proto(e.into()))?;
        let r = self.conn.send_data_body(&body).and_then(|()| self.conn.flush());
        r.map_err(|e| self.send_failed(e))
    }

    /// Waits for the next reply (for tests).
    pub fn next_reply(&mut self) -> Result<Reply, ClientError> {
        self.reply()
    }

    /// Uploads `dirs` (local directory, name in the job) in order. Regular files are sent
    /// whole; a symbolic link must lead to one of the directories sent before it and is sent
    /// as a link to that directory's name. `progress` receives file bytes as they go.
    pub fn upload(&mut self, dirs: &[(PathBuf, String)], progress: &mut dyn FnMut(u64)) -> Result<Sent, ClientError> {
        let start_wire = self.conn.bytes_out;
        let mut raw = 0;
        for (dir, name) in dirs {
            let canon = std::fs::canonicalize(dir).map_err(io(dir))?;
            self.send_buffered(&Request::Dir { path: name.clone() })?;
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(io(dir))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io(dir))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                let fname = e.file_name().to_string_lossy().into_owned();
                let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).map_err(io(&path))?;
                    let resolved = std::fs::canonicalize(canon.join(&target)).map_err(io(&path))?;
                    let Some(to) = self.sent_dirs.get(&resolved).cloned() else {
                        return Err(ClientError::LinkOutside { link: path, target: resolved });
                    };
                    self.send_buffered(&Request::Link { path: format!("{name}/{fname}"), target: format!("../{to}") })?;
                } else if meta.is_file() {
                    raw += self.send_file(&path, &format!("{name}/{fname}"), meta.len(), meta.permissions().mode(), progress)?;
                }
            }
            self.sent_dirs.insert(canon, name.clone());
        }
        self.conn.flush().map_err(|e| self.send_failed(e))?;
        Ok(Sent { raw, wire: self.conn.bytes_out - start_wire })
    }

    fn send_buffered(&mut self, req: &Request) -> Result<(), ClientError> {
        self.conn.send_buffered(req).map_err(|e| self.send_failed(e))
    }

    /// Tells the agent the store objects the job's program needs; returns those it lacks.
    pub fn have(&mut self, names: &[String]) -> Result<Vec<String>, ClientError> {
        self.send(&Request::Have { names: names.to_vec() })?;
        match self.reply()? {
            Reply::Missing { names } => Ok(names),
            other => Err(self.unexpected(other)),
        }
    }

    /// Sends the store object `name` (the file at `path`); returns the bytes sent.
    pub fn store_file(&mut self, name: &str, path: &Path, progress: &mut dyn FnMut(u64)) -> Result<u64, ClientError> {
        let size = std::fs::metadata(path).map_err(io(path))?.len();
        let mut f = File::open(path).map_err(io(path))?;
        self.send_buffered(&Request::StoreFile { name: name.to_string(), size })?;
        let mut buf = vec![0u8; frame::MAX_DATA_LEN as usize];
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let chunk = &mut buf[..want];
            f.read_exact(chunk).map_err(io(path))?;
            let body = frame::data_body(chunk).map_err(|e: FrameError| self.proto(e.into()))?;
            self.conn.send_data_body(&body).map_err(|e| self.send_failed(e))?;
            left -= want as u64;
            progress(want as u64);
        }
        self.conn.flush().map_err(|e| self.send_failed(e))?;
        Ok(size)
    }

    fn send_file(&mut self, path: &Path, remote: &str, size: u64, mode: u32, progress: &mut dyn FnMut(u64)) -> Result<u64, ClientError> {
        let mut f = File::open(path).map_err(io(path))?;
        self.send_buffered(&Request::File { path: remote.to_string(), size, mode: mode & 0o777 })?;
        let mut buf = vec![0u8; frame::MAX_DATA_LEN as usize];
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let chunk = &mut buf[..want];
            f.read_exact(chunk).map_err(io(path))?;
            let body = frame::data_body(chunk).map_err(|e: FrameError| self.proto(e.into()))?;
            self.conn.send_data_body(&body).map_err(|e| self.send_failed(e))?;
            left -= want as u64;
            progress(want as u64);
        }
        Ok(size)
    }

    /// Asks the agent to restore `dir` of the job.
    pub fn restore(&mut self, dir: &str, run_as: RunAs, shell_job: bool, tcp_established: bool) -> Result<Restored, ClientError> {
        self.send(&Request::Restore { dir: dir.to_string(), run_as, shell_job, tcp_established })?;
        match self.reply()? {
            Reply::Restored { pid, isa, mode, recoded_to, times, .. } => Ok(Restored { pid, isa, mode, recoded_to, times }),
            other => Err(self.unexpected(other)),
        }
    }

    /// Tells the agent to keep what it restored.
    pub fn commit(&mut self) -> Result<(), ClientError> {
        self.send(&Request::Commit)?;
        match self.reply()? {
            Reply::Committed => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Undoes the job.
    pub fn abort(&mut self) -> Result<(), ClientError> {
        self.send(&Request::Abort)?;
        match self.reply()? {
            Reply::Aborted => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Closes the connection at once (an uncommitted job is undone by the agent).
    pub fn disconnect(self) {
        let _ = self.conn.stream().shutdown(std::net::Shutdown::Both);
    }

    /// Ends the conversation politely (TLS close_notify).
    pub fn close(mut self) {
        self.conn.close();
    }
}

/// A TLS failure in words: what the peer's alert or the local verifier said.
fn handshake_message(e: &std::io::Error) -> String {
    let text = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the agent refused this node's certificate (alert {alert:?}); see the agent's log for why")
        }
        Some(rustls::Error::InvalidCertificate(why)) => {
            format!("the agent's certificate is refused: {}", rustls::Error::InvalidCertificate(why.clone()))
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    };
    if e.kind() == std::io::ErrorKind::UnexpectedEof || e.kind() == std::io::ErrorKind::ConnectionReset {
        return format!("{text} (the agent closed the connection during the handshake: is it an hcontainer agent with TLS, and does it trust this node's CA?)");
    }
    text
}
