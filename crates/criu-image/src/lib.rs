//! CRIU image codec: reads and writes the files of a CRIU images directory.
//!
//! A CRIU image file is either *raw* (`pages-*.img` and a few network/tmpfs dumps: bytes
//! without header) or a sequence of protobuf entries: a header of one or two little-endian
//! `u32` magics (the inventory has only its own magic; every other file starts with the
//! common or service magic, then its type magic), then entries, each a `u32` length and that
//! many bytes of protobuf message, some followed by a payload whose size the message gives
//! (pipe data, socket queues, TCP stream queues).
//!
//! [`ImageFile`] keeps every entry's bytes as read, so a read-write cycle reproduces the file
//! byte for byte, unknown fields and unknown files included; [`Entry::decode`] turns an
//! entry into one of the typed messages in [`pb`] (CRIU's wire format, our own schema in
//! `proto/criu.proto`).

pub mod magic;
pub mod show;

mod codec;

pub use codec::{read_dir, unknown_fields, Content, DecodeError, Entry, ImageFile};
pub use magic::{ImageKind, IMG_COMMON_MAGIC, IMG_SERVICE_MAGIC, INVENTORY_MAGIC};

/// The messages of CRIU images, generated from `proto/criu.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/criu.rs"));
}

/// Page size of the images hcontainer handles (x86-64 and arm64 with 4 KiB pages).
pub const PAGE_SIZE: u64 = 4096;

/// Flags of [`pb::PagemapEntry::flags`].
pub mod pagemap_flags {
    /// The pages are in the parent image directory (incremental dump).
    pub const PARENT: u32 = 1;
    /// The pages are served lazily by a page server.
    pub const LAZY: u32 = 2;
    /// The pages are present in this image's pages file.
    pub const PRESENT: u32 = 4;
}

impl pb::PagemapEntry {
    /// Number of pages of this entry (newer images fill `nr_pages`, older `compat_nr_pages`).
    pub fn pages(&self) -> u64 {
        self.nr_pages.unwrap_or(u64::from(self.compat_nr_pages))
    }
    /// Whether the pages are stored in this directory's `pages-*.img`.
    pub fn is_present(&self) -> bool {
        match self.flags {
            Some(f) => f & pagemap_flags::PRESENT != 0,
            None => !self.in_parent.unwrap_or(false),
        }
    }
    /// Whether the pages live in the parent images.
    pub fn is_in_parent(&self) -> bool {
        match self.flags {
            Some(f) => f & pagemap_flags::PARENT != 0,
            None => self.in_parent.unwrap_or(false),
        }
    }
    /// Whether the pages are served lazily.
    pub fn is_lazy(&self) -> bool {
        self.flags.is_some_and(|f| f & pagemap_flags::LAZY != 0)
    }
}
