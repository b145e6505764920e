//! Reading and writing image files entry by entry, keeping every byte.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::magic::{self, Extra, ImageKind};
use crate::pb;

/// Why an image file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file could not be read at all.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file ends inside a header, a length, a message or a payload.
    #[error("{file}: truncated at offset {offset:#x}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The file.
        file: PathBuf,
        /// Where the incomplete item starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes the file still has.
        available: u64,
    },
    /// The header magic is not one CRIU writes, or not the one the file name calls for.
    #[error("{file}: wrong magic {found:#010x} at offset {offset:#x}{expected}")]
    WrongMagic {
        /// The file.
        file: PathBuf,
        /// Offset of the magic.
        offset: u64,
        /// The word found.
        found: u32,
        /// What was expected, already formatted (may be empty).
        expected: String,
    },
    /// An entry's bytes are not a valid message of the type its image holds.
    #[error("{file}: entry {index} at offset {offset:#x} is not a valid {message}: {source}")]
    BadMessage {
        /// The file.
        file: PathBuf,
        /// Index of the entry in the file.
        index: usize,
        /// Offset of the entry's length word.
        offset: u64,
        /// The message type expected.
        message: &'static str,
        /// prost's reason.
        source: prost::DecodeError,
    },
}

/// One entry: the message's bytes as stored, and the payload that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The protobuf message, exactly as in the file.
    pub message: Vec<u8>,
    /// Bytes after the message that belong to it (pipe data, queued socket data).
    pub extra: Vec<u8>,
    /// Offset of the entry's length word in the file it was read from (0 for new entries).
    pub offset: u64,
}

impl Entry {
    /// Decodes the message as `M`. Fields `M` does not know are ignored.
    pub fn decode<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.message.as_slice())
    }

    /// An entry holding `message` (encoded now) and `extra`.
    pub fn new<M: Message>(message: &M, extra: Vec<u8>) -> Self {
        Entry { message: message.encode_to_vec(), extra, offset: 0 }
    }

    /// Replaces the message by `message`, keeping top-level fields of the stored bytes that
    /// `M` does not know (they are appended after the known ones).
    pub fn replace<M: Message + Default>(&mut self, message: &M) {
        let known = M::decode(self.message.as_slice())
            .map(|m| field_numbers(&m.encode_to_vec()))
            .unwrap_or_default();
        let mut out = message.encode_to_vec();
        for (number, bytes) in raw_fields(&self.message) {
            if !known.contains(&number) {
                out.extend_from_slice(bytes);
            }
        }
        self.message = out;
    }
}

/// What an image file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Protobuf entries after a header.
    Entries {
        /// The common or service magic before the type magic (`None` for the inventory).
        head: Option<u32>,
        /// The kind, from the type magic.
        kind: &'static ImageKind,
        /// The entries in file order.
        entries: Vec<Entry>,
    },
    /// Bytes kept as they are: page contents, raw network dumps, images whose format is not
    /// handled entry by entry, unknown files.
    Raw(Vec<u8>),
}

/// One file of an images directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// The file name (`core-1234.img`).
    pub name: String,
    /// Its content.
    pub content: Content,
}

struct Reader<'a> {
    file: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = (self.data.len() - self.pos) as u64;
        if n > available {
            return Err(DecodeError::Truncated {
                file: self.file.to_path_buf(),
                offset: self.pos as u64,
                what,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        // n ≤ available, so this stays inside `data`.
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }
}

impl ImageFile {
    /// Reads one image file.
    pub fn read(path: &Path) -> Result<Self, DecodeError> {
        let data = std::fs::read(path)
            .map_err(|source| DecodeError::Io { file: path.to_path_buf(), source })?;
        Self::parse(path, &data)
    }

    /// Parses `data`, the content of the file at `path` (its name decides raw files and the
    /// expected magic; errors name it).
    pub fn parse(path: &Path, data: &[u8]) -> Result<Self, DecodeError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if magic::is_raw_name(&name) {
            return Ok(ImageFile { name, content: Content::Raw(data.to_vec()) });
        }
        let expected = magic::kind_for_name(&name);
        let mut r = Reader { file: path, data, pos: 0 };
        let first = r.u32("header magic")?;
        let (head, type_magic, magic_offset) = match first {
            magic::INVENTORY_MAGIC => (None, first, 0),
            magic::IMG_COMMON_MAGIC | magic::IMG_SERVICE_MAGIC => {
                (Some(first), r.u32("type magic")?, 4)
            }
            other => {
                if expected.is_some() {
                    return Err(wrong_magic(path, 0, other, expected));
                }
                // Not an image CRIU names: keep it as it is.
                return Ok(ImageFile { name, content: Content::Raw(data.to_vec()) });
            }
        };
        let kind = match magic::kind_of(type_magic) {
            Some(kind) if expected.is_none_or(|e| e.magic == kind.magic) => kind,
            _ if expected.is_some() => {
                return Err(wrong_magic(path, magic_offset, type_magic, expected))
            }
            // A header CRIU writes with a type this codec does not know: keep the bytes.
            _ => return Ok(ImageFile { name, content: Content::Raw(data.to_vec()) }),
        };
        if kind.extra == Extra::Opaque {
            return Ok(ImageFile { name, content: Content::Raw(data.to_vec()) });
        }
        let mut entries = Vec::new();
        while !r.at_end() {
            let offset = r.pos as u64;
            let len = r.u32("entry length")?;
            let message = r.take(u64::from(len), "entry message")?.to_vec();
            let index = entries.len();
            let extra_len = extra_len(kind, index, &message).map_err(|source| {
                DecodeError::BadMessage {
                    file: path.to_path_buf(),
                    index,
                    offset,
                    message: message_name(kind, index),
                    source,
                }
            })?;
            let extra = r.take(extra_len, "entry payload")?.to_vec();
            entries.push(Entry { message, extra, offset });
        }
        let file = ImageFile { name, content: Content::Entries { head, kind, entries } };
        file.validate(path)?;
        Ok(file)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.content {
            Content::Raw(bytes) => bytes.clone(),
            Content::Entries { head, kind, entries } => {
                let mut out = Vec::new();
                if let Some(h) = head {
                    out.extend_from_slice(&h.to_le_bytes());
                }
                out.extend_from_slice(&kind.magic.to_le_bytes());
                for e in entries {
                    // Entry messages come from u32-length files or from prost encodings of
                    // bounded messages; saturate rather than panic on absurd sizes.
                    let len = u32::try_from(e.message.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(&e.message);
                    out.extend_from_slice(&e.extra);
                }
                out
            }
        }
    }

    /// Writes the file into `dir` under its name.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join(&self.name), self.to_bytes())
    }

    /// The kind of a protobuf image, `None` for raw content.
    pub fn kind(&self) -> Option<&'static ImageKind> {
        match &self.content {
            Content::Entries { kind, .. } => Some(kind),
            Content::Raw(_) => None,
        }
    }

    /// The entries (empty for raw content).
    pub fn entries(&self) -> &[Entry] {
        match &self.content {
            Content::Entries { entries, .. } => entries,
            Content::Raw(_) => &[],
        }
    }

    /// Decodes every entry as `M`, naming this file and the entry's offset on failure.
    pub fn decode_all<M: Message + Default>(&self) -> Result<Vec<M>, DecodeError> {
        self.entries()
            .iter()
            .enumerate()
            .map(|(index, e)| {
                e.decode().map_err(|source| DecodeError::BadMessage {
                    file: PathBuf::from(&self.name),
                    index,
                    offset: e.offset,
                    message: std::any::type_name::<M>(),
                    source,
                })
            })
            .collect()
    }

    /// Checks that every entry decodes as the message its kind holds (a plain decode: no
    /// rendering, so reading a large pagemap stays cheap).
    fn validate(&self, path: &Path) -> Result<(), DecodeError> {
        let Some(kind) = self.kind() else { return Ok(()) };
        for (index, e) in self.entries().iter().enumerate() {
            if let Err(source) = crate::show::check_decode(kind, index, &e.message) {
                return Err(DecodeError::BadMessage {
                    file: path.to_path_buf(),
                    index,
                    offset: e.offset,
                    message: message_name(kind, index),
                    source,
                });
            }
        }
        Ok(())
    }
}

fn wrong_magic(path: &Path, offset: u64, found: u32, expected: Option<&ImageKind>) -> DecodeError {
    DecodeError::WrongMagic {
        file: path.to_path_buf(),
        offset,
        found,
        expected: expected
            .map(|k| format!(" (expected {} {:#010x})", k.name, k.magic))
            .unwrap_or_default(),
    }
}

/// Name of the message entry `index` of a `kind` image holds.
pub(crate) fn message_name(kind: &ImageKind, index: usize) -> &'static str {
    crate::show::message_name(kind, index)
}

/// Size of the payload after entry `index`.
fn extra_len(kind: &ImageKind, _index: usize, message: &[u8]) -> Result<u64, prost::DecodeError> {
    Ok(match kind.extra {
        Extra::None | Extra::Opaque => 0,
        Extra::PipeData => u64::from(pb::PipeDataEntry::decode(message)?.bytes),
        Extra::SkQueue => u64::from(pb::SkPacketEntry::decode(message)?.length),
        Extra::TcpStream => {
            let t = pb::TcpStreamEntry::decode(message)?;
            u64::from(t.inq_len) + u64::from(t.outq_len)
        }
    })
}

/// Reads every regular file of an images directory, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<ImageFile>, DecodeError> {
    let io = |source| DecodeError::Io { file: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            paths.push(entry.path());
        }
    }
    paths.sort();
    paths.iter().map(|p| ImageFile::read(p)).collect()
}

/// Top-level fields of a protobuf message: `(field number, bytes of tag and value)`.
/// Stops at the first malformed field.
fn raw_fields(mut data: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let start = data;
        let Ok(key) = prost::encoding::decode_varint(&mut data) else { break };
        let number = key >> 3;
        let ok = match key & 7 {
            0 => prost::encoding::decode_varint(&mut data).is_ok(),
            1 => skip(&mut data, 8),
            2 => match prost::encoding::decode_varint(&mut data) {
                Ok(len) => usize::try_from(len).is_ok_and(|len| skip(&mut data, len)),
                Err(_) => false,
            },
            5 => skip(&mut data, 4),
            _ => false,
        };
        if !ok {
            break;
        }
        let used = start.len() - data.len();
        out.push((number, &start[..used]));
    }
    out
}

fn skip(data: &mut &[u8], n: usize) -> bool {
    if data.len() < n {
        return false;
    }
    *data = &data[n..];
    true
}

fn field_numbers(message: &[u8]) -> Vec<u64> {
    raw_fields(message).into_iter().map(|(n, _)| n).collect()
}

/// Top-level fields of `message` that a decode-encode cycle through `M` loses: what
/// [`Entry::replace`] carries over. Exposed for tests and `image show`.
pub fn unknown_fields<M: Message + Default>(message: &[u8]) -> Vec<u64> {
    let known = M::decode(message).map(|m| field_numbers(&m.encode_to_vec())).unwrap_or_default();
    field_numbers(message).into_iter().filter(|n| !known.contains(n)).collect()
}
