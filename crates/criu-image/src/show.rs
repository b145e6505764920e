//! Rendering images as JSON (for programs) and as indented text (for people), the way
//! CRIU's `crit` shows them: register values, addresses and flag words in hex.

use prost::Message;
use serde::Serializer;
use serde_json::{json, Value};

use crate::codec::{Content, Entry, ImageFile};
use crate::magic::ImageKind;
use crate::pb;

/// Values serialised as `0x…` strings.
pub trait HexValue {
    /// The value as JSON.
    fn to_hex_json(&self) -> Value;
}
impl HexValue for u32 {
    fn to_hex_json(&self) -> Value {
        Value::String(format!("{self:#x}"))
    }
}
impl HexValue for u64 {
    fn to_hex_json(&self) -> Value {
        Value::String(format!("{self:#x}"))
    }
}
impl<T: HexValue> HexValue for Option<T> {
    fn to_hex_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, HexValue::to_hex_json)
    }
}
impl<T: HexValue> HexValue for Vec<T> {
    fn to_hex_json(&self) -> Value {
        Value::Array(self.iter().map(HexValue::to_hex_json).collect())
    }
}

/// serde `serialize_with` for hex fields.
pub fn hex<T: HexValue, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&v.to_hex_json(), s)
}

/// Byte strings, serialised as plain hex digits.
pub trait BytesValue {
    /// The bytes as JSON.
    fn to_bytes_json(&self) -> Value;
}
impl BytesValue for Vec<u8> {
    fn to_bytes_json(&self) -> Value {
        Value::String(hex_string(self))
    }
}
impl BytesValue for Option<Vec<u8>> {
    fn to_bytes_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, BytesValue::to_bytes_json)
    }
}

/// serde `serialize_with` for `bytes` fields.
pub fn bytes<T: BytesValue, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&v.to_bytes_json(), s)
}

fn hex_string(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

macro_rules! schemas {
    ($( $name:literal => $ty:ty ),* $(,)?) => {
        /// Name of the message that entry `index` of a `kind` image holds.
        pub fn message_name(kind: &ImageKind, index: usize) -> &'static str {
            if kind.name == "PAGEMAP" && index == 0 {
                return "PagemapHead";
            }
            match kind.name {
                $( $name => stringify!($ty).trim_start_matches("pb::"), )*
                _ => "unknown message",
            }
        }

        /// Decodes entry `index` of a `kind` image as the message it holds, only to check that
        /// it decodes (kinds without a schema always pass).
        pub(crate) fn check_decode(kind: &ImageKind, index: usize, bytes: &[u8])
            -> Result<(), prost::DecodeError>
        {
            if kind.name == "PAGEMAP" && index == 0 {
                return pb::PagemapHead::decode(bytes).map(drop);
            }
            match kind.name {
                $( $name => <$ty>::decode(bytes).map(drop), )*
                _ => Ok(()),
            }
        }

        fn decode_json(kind: &ImageKind, index: usize, bytes: &[u8])
            -> Result<Option<Value>, prost::DecodeError>
        {
            if kind.name == "PAGEMAP" && index == 0 {
                return Ok(Some(to_json(&pb::PagemapHead::decode(bytes)?)));
            }
            Ok(match kind.name {
                $( $name => Some(to_json(&<$ty>::decode(bytes)?)), )*
                _ => None,
            })
        }
    };
}

schemas! {
    "INVENTORY" => pb::InventoryEntry,
    "PSTREE" => pb::PstreeEntry,
    "CORE" => pb::CoreEntry,
    "MM" => pb::MmEntry,
    "PAGEMAP" => pb::PagemapEntry,
    "FDINFO" => pb::FdinfoEntry,
    "FILES" => pb::FileEntry,
    "FS" => pb::FsEntry,
    "IDS" => pb::TaskKobjIdsEntry,
    "CREDS" => pb::CredsEntry,
    "SECCOMP" => pb::SeccompEntry,
    "TIMENS" => pb::TimensEntry,
    "TTY_INFO" => pb::TtyInfoEntry,
    "TTY_DATA" => pb::TtyDataEntry,
    "TTY_FILES" => pb::TtyFileEntry,
    "CGROUP" => pb::CgroupEntry,
    "INETSK" => pb::InetSkEntry,
    "UNIXSK" => pb::UnixSkEntry,
    "TCP_STREAM" => pb::TcpStreamEntry,
    "PIPES_DATA" => pb::PipeDataEntry,
    "FIFO_DATA" => pb::PipeDataEntry,
    "SK_QUEUES" => pb::SkPacketEntry,
    "STATS" => pb::StatsEntry,
    "PIPES" => pb::PipeEntry,
    "FIFO" => pb::FifoEntry,
    "REG_FILES" => pb::RegFileEntry,
    "EVENTFD_FILE" => pb::EventfdFileEntry,
    "EVENTPOLL_FILE" => pb::EventpollFileEntry,
    "EVENTPOLL_TFD" => pb::EventpollTfdEntry,
    "SIGNALFD" => pb::SignalfdEntry,
    "TIMERFD" => pb::TimerfdEntry,
    "VMAS" => pb::VmaEntry,
    "RLIMIT" => pb::RlimitEntry,
    "SIGACT" => pb::SaEntry,
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    // Serialising plain generated structs into a Value cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Entry `index` of a `kind` image as JSON; messages without a schema show their size.
pub fn entry_json(kind: &ImageKind, index: usize, e: &Entry) -> Result<Value, prost::DecodeError> {
    let mut v = match decode_json(kind, index, &e.message)? {
        Some(Value::Object(map)) => Value::Object(map),
        Some(other) => other,
        None => json!({ "message_size": e.message.len() }),
    };
    if !e.extra.is_empty() {
        if let Value::Object(map) = &mut v {
            map.insert("extra".into(), Value::String(hex_string(&e.extra)));
        }
    }
    Ok(v)
}

/// A whole file as JSON: `{"file", "magic", "entries"}` or `{"file", "raw_size"}`.
pub fn file_json(file: &ImageFile) -> Result<Value, prost::DecodeError> {
    Ok(match &file.content {
        Content::Raw(bytes) => json!({ "file": file.name, "raw_size": bytes.len() }),
        Content::Entries { kind, entries, .. } => {
            let entries: Result<Vec<Value>, _> =
                entries.iter().enumerate().map(|(i, e)| entry_json(kind, i, e)).collect();
            json!({ "file": file.name, "magic": kind.name, "entries": entries? })
        }
    })
}

/// A whole file as indented text.
pub fn file_text(file: &ImageFile) -> Result<String, prost::DecodeError> {
    let mut out = String::new();
    match &file.content {
        Content::Raw(bytes) => {
            out.push_str(&format!("{}: raw, {} bytes\n", file.name, bytes.len()));
        }
        Content::Entries { kind, entries, .. } => {
            out.push_str(&format!(
                "{}: {} ({:#010x}), {} entries\n",
                file.name,
                kind.name,
                kind.magic,
                entries.len()
            ));
            for (i, e) in entries.iter().enumerate() {
                out.push_str(&format!("  [{i}] {}\n", message_name(kind, i)));
                text(&entry_json(kind, i, e)?, 4, &mut out);
            }
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Object(_) => None,
        Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => None,
        Value::Array(a) => Some(format!(
            "[{}]",
            a.iter().filter_map(scalar).collect::<Vec<_>>().join(", ")
        )),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn text(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if val.is_null() {
                    continue;
                }
                match scalar(val) {
                    Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        text(val, indent + 2, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}- [{i}]\n"));
                        text(item, indent + 2, out);
                    }
                }
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                out.push_str(&format!("{pad}{s}\n"));
            }
        }
    }
}
