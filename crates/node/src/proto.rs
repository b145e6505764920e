//! The messages of the node protocol (JSON in control frames) and the typed connection that
//! sends and receives them over [`crate::frame`], inside TLS ([`Transport::Tls`]) or, on
//! loopback only, in clear ([`Transport::Plain`]).

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

use serde::{Deserialize, Serialize};

use crate::frame::{self, Frame, FrameError};
use crate::recode::RunAs;

/// Version of the protocol; both preambles must carry it. Version 2: the conversation runs
/// inside TLS with mutual authentication, `Hello` carries no token.
pub const PROTOCOL_VERSION: u16 = 3;

/// A request, client → agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message: the client's version (who the client is, its certificate said).
    Hello {
        /// The client's protocol version.
        version: u16,
    },
    /// What runs on the agent.
    Status,
    /// Starts a job: the agent makes an empty folder for it.
    Begin {
        /// A label for logs and status (e.g. the source's pid and host).
        #[serde(default)]
        label: String,
    },
    /// Creates a directory in the job's folder.
    Dir {
        /// Relative path.
        path: String,
    },
    /// A file follows: exactly `size` bytes in data frames.
    File {
        /// Relative path (its directory must exist).
        path: String,
        /// Size in bytes.
        size: u64,
        /// Permission bits (masked to 0o777).
        mode: u32,
    },
    /// A symbolic link `path` → `target`, where `target` is `../<dir of this job>`.
    Link {
        /// Relative path of the link.
        path: String,
        /// Its target.
        target: String,
    },
    /// Restores the images in `dir` of the job.
    Restore {
        /// Relative images directory.
        dir: String,
        /// How the program should run on the agent (see [`crate::recode::plan`]).
        #[serde(default)]
        run_as: RunAs,
        /// CRIU's `--shell-job`.
        #[serde(default)]
        shell_job: bool,
        /// CRIU's `--tcp-established`.
        #[serde(default)]
        tcp_established: bool,
    },
    /// The translation store objects the job's program needs on the agent (its launcher,
    /// the units of the files it maps), by store name (`<sha256>/<isa>` or
    /// `<sha256>/<isa>.unit`); the agent answers with those its store lacks.
    Have {
        /// Store names.
        names: Vec<String>,
    },
    /// A store object follows: exactly `size` bytes in data frames (answered only on
    /// failure, like `File`). The agent checks that it is what its name says before it
    /// adds it to its store.
    StoreFile {
        /// Its store name (one of those the agent asked for).
        name: String,
        /// Size in bytes.
        size: u64,
    },
    /// The client has seen `Restored`: the agent keeps the process. The source may go.
    Commit,
    /// Undo the job (kill what it restored, remove its folder).
    Abort,
}

/// A process the agent restored and keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The job that brought it.
    pub job: String,
    /// The job's label.
    pub label: String,
    /// Its pid on the agent's machine.
    pub pid: u32,
    /// Whether it still runs (not gone, not a zombie).
    pub running: bool,
    /// ISA of the machine code it runs (the agent's).
    pub isa: String,
    /// `native` or `translated`.
    pub mode: String,
    /// Its executable, as `/proc/PID/exe` names it.
    pub exe: String,
}

/// Time spent by the agent on a restore, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreTimes {
    /// Recode on the agent (0 when none ran).
    pub recode_us: u64,
    /// CRIU's restore, wall clock.
    pub restore_us: u64,
    /// The whole `Restore` request, from its arrival to the reply: recode, CRIU and the
    /// checks that the process runs (0 from agents that do not report it).
    #[serde(default)]
    pub total_us: u64,
}

/// A reply, agent → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to `Hello`.
    Welcome {
        /// The agent's protocol version.
        version: u16,
        /// The agent's ISA (`x86_64`, `aarch64`, `riscv64`).
        isa: String,
        /// The agent's host name.
        host: String,
    },
    /// Answer to `Status`.
    Status {
        /// The agent's ISA.
        isa: String,
        /// Processes restored and kept.
        processes: Vec<ProcessInfo>,
    },
    /// Answer to `Begin`.
    Begun {
        /// The job's name (its folder under the agent's work folder).
        job: String,
    },
    /// Answer to `Restore`: the process runs.
    Restored {
        /// Its pid on the agent's machine.
        pid: u32,
        /// The ISA it runs on.
        isa: String,
        /// `native` or `translated`.
        mode: String,
        /// What the received images held (`native`, `translated-<isa>`).
        #[serde(default)]
        image: String,
        /// What the agent recoded them to, if it did.
        #[serde(default)]
        recoded_to: Option<String>,
        /// Times on the agent.
        times: RestoreTimes,
    },
    /// Answer to `Have`: the store objects the agent lacks.
    Missing {
        /// Store names.
        names: Vec<String>,
    },
    /// Answer to `Commit`.
    Committed,
    /// Answer to `Abort`.
    Aborted,
    /// The request failed; the agent closes the connection after this.
    Error {
        /// What failed, naming the cause.
        message: String,
    },
}

/// Why a message could not be exchanged.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// Framing or socket trouble.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A control frame that is not a valid message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// A data frame where a message was expected, or the reverse.
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
}

/// Parses a control frame body as `T`.
pub fn parse<T: for<'de> Deserialize<'de>>(json: &[u8]) -> Result<T, ProtoError> {
    Ok(serde_json::from_slice(json)?)
}

/// The byte stream under the frames.
pub enum Transport {
    /// TCP in clear: loopback only, for tests and measurements.
    Plain(TcpStream),
    /// TLS 1.3, the agent's side.
    TlsServer(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    /// TLS 1.3, the client's side.
    TlsClient(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::TlsServer(s) => s.get_ref(),
            Transport::TlsClient(s) => s.get_ref(),
        }
    }

    /// The TLS cipher suite in use, or `None` in clear.
    pub fn cipher(&self) -> Option<String> {
        let suite = match self {
            Transport::Plain(_) => None,
            Transport::TlsServer(s) => s.conn.negotiated_cipher_suite(),
            Transport::TlsClient(s) => s.conn.negotiated_cipher_suite(),
        };
        suite.map(|s| format!("{:?}", s.suite()))
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::TlsServer(s) => s.read(buf),
            Transport::TlsClient(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::TlsServer(s) => s.write(buf),
            Transport::TlsClient(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::TlsServer(s) => s.flush(),
            Transport::TlsClient(s) => s.flush(),
        }
    }
}

/// Size of the write buffer: frames are gathered and go out in pieces of this size (large
/// TLS records, few system calls).
const WRITE_BUFFER: usize = 1 << 20;

/// One side of a connection: a buffered reader over the transport and a write buffer.
pub struct Conn {
    reader: BufReader<Transport>,
    out: Vec<u8>,
    closed: bool,
    /// Bytes written to the socket so far (frames only).
    pub bytes_out: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

/// Writes through a [`Conn`]'s buffer.
struct Buffered<'a>(&'a mut Conn);

impl Write for Buffered<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.out.extend_from_slice(buf);
        if self.0.out.len() >= WRITE_BUFFER {
            self.0.drain()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.drain()
    }
}

impl Conn {
    /// Wraps a connected transport (a TLS one past its handshake) and exchanges preambles
    /// (this side writes first).
    pub fn handshake(transport: Transport) -> Result<Conn, ProtoError> {
        let _ = transport.tcp().set_nodelay(true);
        let mut conn = Conn { reader: BufReader::with_capacity(1 << 20, transport), out: Vec::with_capacity(WRITE_BUFFER + 64), closed: false, bytes_out: 0 };
        conn.out.extend_from_slice(&frame::preamble(PROTOCOL_VERSION));
        conn.drain().map_err(FrameError::Io)?;
        frame::read_preamble(&mut conn.reader, PROTOCOL_VERSION)?;
        Ok(conn)
    }

    fn drain(&mut self) -> std::io::Result<()> {
        let t = self.reader.get_mut();
        t.write_all(&self.out)?;
        t.flush()?;
        self.out.clear();
        Ok(())
    }

    /// Sends a message (flushed).
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), ProtoError> {
        self.send_buffered(msg)?;
        self.flush()
    }

    /// Sends a message without flushing (more follows).
    pub fn send_buffered<T: Serialize>(&mut self, msg: &T) -> Result<(), ProtoError> {
        let json = serde_json::to_vec(msg)?;
        frame::write_control(&mut Buffered(self), &json)?;
        self.bytes_out += (frame::HEADER_LEN + json.len()) as u64;
        Ok(())
    }

    /// Sends a data frame body made by [`frame::data_body`].
    pub fn send_data_body(&mut self, body: &[u8]) -> Result<(), ProtoError> {
        self.bytes_out += frame::write_data_body(&mut Buffered(self), body)? as u64;
        Ok(())
    }

    /// Flushes buffered frames.
    pub fn flush(&mut self) -> Result<(), ProtoError> {
        self.drain().map_err(FrameError::Io)?;
        Ok(())
    }

    /// Receives a frame.
    pub fn recv_frame(&mut self) -> Result<Frame, ProtoError> {
        Ok(frame::read_frame(&mut self.reader)?)
    }

    /// Receives a control message.
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, ProtoError> {
        match self.recv_frame()? {
            Frame::Control(json) => parse(&json),
            Frame::Data(_) => Err(ProtoError::Unexpected("data")),
        }
    }

    /// The socket (for timeouts and shutdown).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref().tcp()
    }

    /// The transport (cipher suite, peer certificates).
    pub fn transport(&self) -> &Transport {
        self.reader.get_ref()
    }

    /// Ends the conversation: a TLS close_notify, then the socket shut down (also done when
    /// the connection is dropped).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let _ = self.drain();
        match self.reader.get_mut() {
            Transport::Plain(_) => {}
            Transport::TlsServer(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
            Transport::TlsClient(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        }
        let _ = self.stream().shutdown(std::net::Shutdown::Both);
    }

    /// Writes `bytes` as they are, past the framing (for tests of the peer's decoder).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ProtoError> {
        self.out.extend_from_slice(bytes);
        self.flush()
    }

    /// The reader, for peeking at pending input in tests.
    pub fn reader(&mut self) -> &mut impl Read {
        &mut self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn messages_round_trip_as_json() {
        let reqs = [
            Request::Hello { version: PROTOCOL_VERSION },
            Request::Status,
            Request::File { path: "final/pages-1.img".into(), size: 1 << 40, mode: 0o644 },
            Request::Restore { dir: "final".into(), run_as: RunAs::Translated, shell_job: false, tcp_established: true },
        ];
        for r in reqs {
            let json = serde_json::to_vec(&r).unwrap();
            assert_eq!(parse::<Request>(&json).unwrap(), r);
        }
        // Optional fields may be left out.
        assert_eq!(
            parse::<Request>(br#"{"Restore":{"dir":"d"}}"#).unwrap(),
            Request::Restore { dir: "d".into(), run_as: RunAs::Auto, shell_job: false, tcp_established: false }
        );
    }

    #[test]
    fn random_json_is_an_error_not_a_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pieces: [&[u8]; 12] = [
            b"{", b"}", b"\"File\"", b":", b"\"path\"", b"-1", b"18446744073709551616", b"[", b"]", b"null",
            b"\"\\u0000\"", b",",
        ];
        for _ in 0..20_000 {
            let mut buf = Vec::new();
            for _ in 0..rng.random_range(0..12) {
                if rng.random_bool(0.7) {
                    buf.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
                } else {
                    buf.push(rng.random());
                }
            }
            let _ = parse::<Request>(&buf);
            let _ = parse::<Reply>(&buf);
        }
    }
}
