//! Framing of the node protocol: the connection preamble, and frames of a kind byte, a
//! little-endian `u32` length and a body (see the crate docs for the table). Data frames
//! carry LZ4 blocks. Decoding never trusts a length before checking it against the limits,
//! so random bytes give an error, never a panic or a huge allocation.

use std::io::{Read, Write};

/// Magic at the start of the preamble.
pub const MAGIC: &[u8; 6] = b"HCNODE";
/// Length of the preamble: magic and `u16` version.
pub const PREAMBLE_LEN: usize = 8;
/// Length of a frame header: kind byte and `u32` body length.
pub const HEADER_LEN: usize = 5;
/// Kind byte of a control frame (JSON message).
pub const KIND_CONTROL: u8 = 1;
/// Kind byte of a data frame (LZ4 block).
pub const KIND_DATA: u8 = 2;
/// Largest control frame body.
pub const MAX_CONTROL_LEN: u32 = 64 * 1024;
/// Largest uncompressed content of one data frame.
pub const MAX_DATA_LEN: u32 = 1 << 20;
/// Largest frame body on the wire (an LZ4 block of incompressible data is slightly larger
/// than its input, plus the 4-byte length).
pub const MAX_FRAME_LEN: u32 = MAX_DATA_LEN + MAX_DATA_LEN / 255 + 64;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer did not start with the hcontainer node magic.
    #[error("not an hcontainer node peer: preamble {0:02x?}")]
    BadMagic([u8; PREAMBLE_LEN]),
    /// The peer speaks another protocol version.
    #[error("peer speaks node protocol version {peer}, this side {ours}")]
    Version {
        /// The peer's version.
        peer: u16,
        /// Ours.
        ours: u16,
    },
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// A length over the limit.
    #[error("frame of kind {kind} declares {len} bytes (limit {limit})")]
    TooLong {
        /// The frame kind.
        kind: u8,
        /// The declared length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A data frame whose LZ4 block does not decode to its declared length.
    #[error("data frame: bad LZ4 block ({0})")]
    Lz4(String),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The connection ended between frames.
    #[error("connection closed")]
    Closed,
    /// Socket trouble.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A control message (JSON bytes, not yet parsed).
    Control(Vec<u8>),
    /// File content, decompressed.
    Data(Vec<u8>),
}

/// The preamble this side sends.
pub fn preamble(version: u16) -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..6].copy_from_slice(MAGIC);
    p[6..].copy_from_slice(&version.to_le_bytes());
    p
}

/// Checks a peer's preamble against our `version`.
pub fn check_preamble(p: &[u8; PREAMBLE_LEN], version: u16) -> Result<(), FrameError> {
    if &p[..6] != MAGIC {
        return Err(FrameError::BadMagic(*p));
    }
    let peer = u16::from_le_bytes([p[6], p[7]]);
    if peer != version {
        return Err(FrameError::Version { peer, ours: version });
    }
    Ok(())
}

/// Validates a frame header and returns (kind, body length).
fn check_header(h: &[u8; HEADER_LEN]) -> Result<(u8, u32), FrameError> {
    let kind = h[0];
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let limit = match kind {
        KIND_CONTROL => MAX_CONTROL_LEN,
        KIND_DATA => MAX_FRAME_LEN,
        other => return Err(FrameError::Kind(other)),
    };
    if len > limit {
        return Err(FrameError::TooLong { kind, len: len.into(), limit: limit.into() });
    }
    Ok((kind, len))
}

/// Turns a checked body into a frame (decompressing data frames).
fn body_to_frame(kind: u8, body: Vec<u8>) -> Result<Frame, FrameError> {
    if kind == KIND_CONTROL {
        return Ok(Frame::Control(body));
    }
    let Some((len_bytes, block)) = body.split_first_chunk::<4>() else {
        return Err(FrameError::Lz4(format!("{} bytes, too short for the length word", body.len())));
    };
    let raw_len = u32::from_le_bytes(*len_bytes);
    if raw_len > MAX_DATA_LEN {
        return Err(FrameError::TooLong { kind, len: raw_len.into(), limit: MAX_DATA_LEN.into() });
    }
    let mut out = vec![0u8; raw_len as usize];
    let n = lz4_flex::block::decompress_into(block, &mut out).map_err(|e| FrameError::Lz4(e.to_string()))?;
    if n != out.len() {
        return Err(FrameError::Lz4(format!("block holds {n} bytes, header says {raw_len}")));
    }
    Ok(Frame::Data(out))
}

/// Decodes the first frame of `buf`: `Ok(Some((frame, bytes used)))`, `Ok(None)` when more
/// bytes are needed, or an error for bytes that can never be a frame. Pure and allocation
/// bounded by the limits, for tests and fuzzing.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let (kind, len) = check_header(header)?;
    let end = HEADER_LEN + len as usize;
    let Some(body) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    Ok(Some((body_to_frame(kind, body.to_vec())?, end)))
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the stream ended before the first byte.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, FrameError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A TLS peer gone without close_notify: the same as a closed socket here (a job
            // is only ever kept after an explicit Commit).
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return if got == 0 { Ok(false) } else { Err(FrameError::Truncated) };
            }
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(true)
}

/// Reads the peer's preamble and checks it.
pub fn read_preamble(r: &mut impl Read, version: u16) -> Result<(), FrameError> {
    let mut p = [0u8; PREAMBLE_LEN];
    if !read_full(r, &mut p)? {
        return Err(FrameError::Closed);
    }
    check_preamble(&p, version)
}

/// Reads one frame from a stream.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, FrameError> {
    let mut h = [0u8; HEADER_LEN];
    if !read_full(r, &mut h)? {
        return Err(FrameError::Closed);
    }
    let (kind, len) = check_header(&h)?;
    let mut body = vec![0u8; len as usize];
    if !read_full(r, &mut body)? && len > 0 {
        return Err(FrameError::Truncated);
    }
    body_to_frame(kind, body)
}

fn write_frame(w: &mut impl Write, kind: u8, body: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLong {
        kind,
        len: body.len() as u64,
        limit: u32::MAX.into(),
    })?;
    let mut h = [0u8; HEADER_LEN];
    h[0] = kind;
    h[1..].copy_from_slice(&len.to_le_bytes());
    w.write_all(&h)?;
    w.write_all(body)?;
    Ok(())
}

/// Writes a control frame holding `json`.
pub fn write_control(w: &mut impl Write, json: &[u8]) -> Result<(), FrameError> {
    if json.len() > MAX_CONTROL_LEN as usize {
        return Err(FrameError::TooLong {
            kind: KIND_CONTROL,
            len: json.len() as u64,
            limit: MAX_CONTROL_LEN.into(),
        });
    }
    write_frame(w, KIND_CONTROL, json)
}

/// Compresses `data` (at most [`MAX_DATA_LEN`] bytes) into a data frame body.
pub fn data_body(data: &[u8]) -> Result<Vec<u8>, FrameError> {
    if data.len() > MAX_DATA_LEN as usize {
        return Err(FrameError::TooLong { kind: KIND_DATA, len: data.len() as u64, limit: MAX_DATA_LEN.into() });
    }
    let mut body = Vec::with_capacity(4 + lz4_flex::block::get_maximum_output_size(data.len()));
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&lz4_flex::block::compress(data));
    Ok(body)
}

/// Writes a data frame body made by [`data_body`]; returns the bytes put on the wire.
pub fn write_data_body(w: &mut impl Write, body: &[u8]) -> Result<usize, FrameError> {
    write_frame(w, KIND_DATA, body)?;
    Ok(HEADER_LEN + body.len())
}

/// Encodes a whole frame into bytes (for tests and fuzzing).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    match frame {
        Frame::Control(json) => write_control(&mut out, json)?,
        Frame::Data(data) => {
            let body = data_body(data)?;
            write_data_body(&mut out, &body)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_trip() {
        let frames = [
            Frame::Control(br#"{"Status":null}"#.to_vec()),
            Frame::Data(vec![]),
            Frame::Data((0..100_000u32).map(|i| (i % 7) as u8).collect()),
        ];
        let mut stream = Vec::new();
        for f in &frames {
            stream.extend(encode(f).unwrap());
        }
        let mut pos = 0;
        for f in &frames {
            let (g, used) = decode(&stream[pos..]).unwrap().unwrap();
            assert_eq!(&g, f);
            pos += used;
        }
        assert_eq!(pos, stream.len());
        let mut r = &stream[..];
        for f in &frames {
            assert_eq!(&read_frame(&mut r).unwrap(), f);
        }
        assert!(matches!(read_frame(&mut r), Err(FrameError::Closed)));
    }

    #[test]
    fn truncated_streams_need_more_or_fail_cleanly() {
        let bytes = encode(&Frame::Data(vec![42; 5000])).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).unwrap().is_none(), "cut at {cut}");
            let mut r = &bytes[..cut];
            let e = read_frame(&mut r).unwrap_err();
            assert!(matches!(e, FrameError::Truncated | FrameError::Closed), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused() {
        let mut h = vec![KIND_CONTROL];
        h.extend((MAX_CONTROL_LEN + 1).to_le_bytes());
        assert!(matches!(decode(&h), Err(FrameError::TooLong { .. })));
        let mut h = vec![KIND_DATA];
        h.extend(u32::MAX.to_le_bytes());
        assert!(matches!(decode(&h), Err(FrameError::TooLong { .. })));
        assert!(matches!(decode(&[9, 0, 0, 0, 0]), Err(FrameError::Kind(9))));
        // A data frame claiming 1 MiB + 1 uncompressed.
        let mut f = vec![KIND_DATA, 8, 0, 0, 0];
        f.extend((MAX_DATA_LEN + 1).to_le_bytes());
        f.extend([0u8; 4]);
        assert!(matches!(decode(&f), Err(FrameError::TooLong { .. })));
        // A block that decodes to fewer bytes than declared.
        let mut body = 100u32.to_le_bytes().to_vec();
        body.extend(lz4_flex::block::compress(&[1u8; 10]));
        let mut f = vec![KIND_DATA];
        f.extend((body.len() as u32).to_le_bytes());
        f.extend(body);
        assert!(matches!(decode(&f), Err(FrameError::Lz4(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x4843_4e4f_4445);
        for round in 0..20_000 {
            let len = rng.random_range(0..600);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Half the inputs get a plausible header so the body decoders are exercised.
            if round % 2 == 0 && buf.len() >= HEADER_LEN {
                buf[0] = if round % 4 == 0 { KIND_DATA } else { KIND_CONTROL };
                let body = (buf.len() - HEADER_LEN) as u32;
                buf[1..5].copy_from_slice(&body.to_le_bytes());
                if buf[0] == KIND_DATA && buf.len() >= HEADER_LEN + 4 {
                    let raw = rng.random_range(0..4096u32);
                    buf[5..9].copy_from_slice(&raw.to_le_bytes());
                }
            }
            let _ = decode(&buf);
            let mut r = &buf[..];
            let _ = read_frame(&mut r);
            let mut p = [0u8; PREAMBLE_LEN];
            let n = buf.len().min(PREAMBLE_LEN);
            p[..n].copy_from_slice(&buf[..n]);
            assert!(check_preamble(&p, 1).is_err() || &p[..6] == MAGIC);
        }
    }

    #[test]
    fn preamble_checks_magic_and_version() {
        assert!(check_preamble(&preamble(3), 3).is_ok());
        assert!(matches!(check_preamble(&preamble(2), 3), Err(FrameError::Version { peer: 2, ours: 3 })));
        assert!(matches!(check_preamble(b"GET / HT", 3), Err(FrameError::BadMagic(_))));
    }
}
