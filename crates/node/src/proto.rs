//! The messages of the node protocol (JSON in control frames) and the typed connection that
//! sends and receives them over [`crate::frame`].

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;

use serde::{Deserialize, Serialize};

use crate::frame::{self, Frame, FrameError};
use crate::recode::RunAs;

/// Version of the protocol; both preambles must carry it.
pub const PROTOCOL_VERSION: u16 = 1;

/// A request, client → agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message: the client's version and the shared token.
    Hello {
        /// The client's protocol version.
        version: u16,
        /// The token the agent was started with (empty when none).
        #[serde(default)]
        token: String,
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

/// One side of a connection: buffered reader and writer over the same socket.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    /// Bytes written to the socket so far (frames only).
    pub bytes_out: u64,
}

impl Conn {
    /// Wraps a connected socket and exchanges preambles (this side writes first).
    pub fn handshake(stream: TcpStream) -> Result<Conn, ProtoError> {
        let _ = stream.set_nodelay(true);
        let reader = BufReader::with_capacity(1 << 20, stream.try_clone().map_err(FrameError::Io)?);
        let mut writer = BufWriter::with_capacity(1 << 20, stream);
        writer.write_all(&frame::preamble(PROTOCOL_VERSION)).map_err(FrameError::Io)?;
        writer.flush().map_err(FrameError::Io)?;
        let mut conn = Conn { reader, writer, bytes_out: 0 };
        frame::read_preamble(&mut conn.reader, PROTOCOL_VERSION)?;
        Ok(conn)
    }

    /// Sends a message (flushed).
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), ProtoError> {
        let json = serde_json::to_vec(msg)?;
        frame::write_control(&mut self.writer, &json)?;
        self.bytes_out += (frame::HEADER_LEN + json.len()) as u64;
        self.writer.flush().map_err(FrameError::Io)?;
        Ok(())
    }

    /// Sends a message without flushing (more follows).
    pub fn send_buffered<T: Serialize>(&mut self, msg: &T) -> Result<(), ProtoError> {
        let json = serde_json::to_vec(msg)?;
        frame::write_control(&mut self.writer, &json)?;
        self.bytes_out += (frame::HEADER_LEN + json.len()) as u64;
        Ok(())
    }

    /// Sends a data frame body made by [`frame::data_body`].
    pub fn send_data_body(&mut self, body: &[u8]) -> Result<(), ProtoError> {
        self.bytes_out += frame::write_data_body(&mut self.writer, body)? as u64;
        Ok(())
    }

    /// Flushes buffered frames.
    pub fn flush(&mut self) -> Result<(), ProtoError> {
        self.writer.flush().map_err(FrameError::Io)?;
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
        self.writer.get_ref()
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
            Request::Hello { version: PROTOCOL_VERSION, token: "t".into() },
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
