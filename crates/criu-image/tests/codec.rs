//! The codec on images built here: unknown fields and files survive, errors name the file
//! and the offset, random bytes never panic.

use std::path::Path;

use hcontainer_criu_image::{pb, show, Content, DecodeError, Entry, ImageFile, IMG_COMMON_MAGIC};
use prost::Message;

fn image(name: &str, kind: &str, entries: Vec<Entry>) -> ImageFile {
    let kind = hcontainer_criu_image::magic::KINDS.iter().find(|k| k.name == kind).unwrap();
    let head = (kind.name != "INVENTORY").then_some(IMG_COMMON_MAGIC);
    ImageFile { name: name.into(), content: Content::Entries { head, kind, entries } }
}

fn pstree(pid: u32) -> pb::PstreeEntry {
    pb::PstreeEntry { pid, ppid: 0, pgid: pid, sid: pid, threads: vec![pid, pid + 1] }
}

#[test]
fn written_images_read_back() {
    let f = image("pstree.img", "PSTREE", vec![Entry::new(&pstree(42), vec![])]);
    let bytes = f.to_bytes();
    assert_eq!(&bytes[..4], &IMG_COMMON_MAGIC.to_le_bytes());
    assert_eq!(&bytes[4..8], &0x5027_3030u32.to_le_bytes());
    let g = ImageFile::parse(Path::new("pstree.img"), &bytes).unwrap();
    assert_eq!(g.decode_all::<pb::PstreeEntry>().unwrap(), vec![pstree(42)]);
    assert_eq!(g.to_bytes(), bytes);
}

#[test]
fn unknown_fields_survive_reading_and_replacing() {
    // A pstree entry with an extra field 9 (varint 77) and field 10 (bytes) appended.
    let mut msg = pstree(7).encode_to_vec();
    let unknown = [0x48, 77, 0x52, 2, 0xaa, 0xbb];
    msg.extend_from_slice(&unknown);
    let f = image("pstree.img", "PSTREE", vec![Entry { message: msg.clone(), extra: vec![], offset: 0 }]);
    let bytes = f.to_bytes();
    let mut g = ImageFile::parse(Path::new("pstree.img"), &bytes).unwrap();
    assert_eq!(g.to_bytes(), bytes, "read-write cycle keeps unknown fields");
    assert_eq!(hcontainer_criu_image::unknown_fields::<pb::PstreeEntry>(&msg), vec![9, 10]);
    // Changing a known field keeps the unknown ones.
    let Content::Entries { entries, .. } = &mut g.content else { panic!() };
    let mut e: pb::PstreeEntry = entries[0].decode().unwrap();
    e.pid = 8;
    entries[0].replace(&e);
    assert!(entries[0].message.ends_with(&unknown));
    assert_eq!(entries[0].decode::<pb::PstreeEntry>().unwrap().pid, 8);
}

#[test]
fn unknown_files_and_types_survive() {
    // An image with CRIU's header but a type magic this codec does not know.
    let mut odd = IMG_COMMON_MAGIC.to_le_bytes().to_vec();
    odd.extend_from_slice(&0x1234_5678u32.to_le_bytes());
    odd.extend_from_slice(&[3, 0, 0, 0, 8, 1, 16]);
    for (name, data) in [("future-1.img", odd), ("notes.txt", b"hello".to_vec())] {
        let f = ImageFile::parse(Path::new(name), &data).unwrap();
        assert!(matches!(f.content, Content::Raw(_)));
        assert_eq!(f.to_bytes(), data);
    }
    // Raw images are never interpreted, even if they start like a header.
    let pages = IMG_COMMON_MAGIC.to_le_bytes().repeat(1024);
    let f = ImageFile::parse(Path::new("pages-1.img"), &pages).unwrap();
    assert_eq!(f.to_bytes(), pages);
}

#[test]
fn payloads_follow_their_entries() {
    let data = pb::PipeDataEntry { pipe_id: 3, bytes: 5, size: None };
    let f = image(
        "pipes-data.img",
        "PIPES_DATA",
        vec![Entry::new(&data, b"hello".to_vec()), Entry::new(&data, b"world".to_vec())],
    );
    let bytes = f.to_bytes();
    let g = ImageFile::parse(Path::new("pipes-data.img"), &bytes).unwrap();
    assert_eq!(g.entries().len(), 2);
    assert_eq!(g.entries()[1].extra, b"world");
    // A payload cut short is a truncation at the payload's offset.
    let err = ImageFile::parse(Path::new("pipes-data.img"), &bytes[..bytes.len() - 2]).unwrap_err();
    match err {
        DecodeError::Truncated { what, needed, available, .. } => {
            assert_eq!((what, needed, available), ("entry payload", 5, 3));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn errors_name_file_and_offset() {
    let f = image("core-9.img", "CORE", vec![]);
    let mut bytes = f.to_bytes();
    bytes[5] ^= 0xff;
    let err = ImageFile::parse(Path::new("/d/core-9.img"), &bytes).unwrap_err().to_string();
    assert!(err.contains("/d/core-9.img") && err.contains("offset 0x4") && err.contains("CORE"), "{err}");

    // A length word announcing more than the file holds.
    let mut bytes = image("fs-1.img", "FS", vec![]).to_bytes();
    bytes.extend_from_slice(&[100, 0, 0, 0, 8, 1]);
    let err = ImageFile::parse(Path::new("fs-1.img"), &bytes).unwrap_err().to_string();
    assert!(err.contains("fs-1.img: truncated at offset 0xc: entry message needs 100 bytes, 2 left"), "{err}");

    // Bytes that are not a message of the image's type.
    let mut bytes = image("fs-1.img", "FS", vec![]).to_bytes();
    bytes.extend_from_slice(&[2, 0, 0, 0, 0x0f, 0xff]);
    let err = ImageFile::parse(Path::new("fs-1.img"), &bytes).unwrap_err().to_string();
    assert!(err.contains("entry 0 at offset 0x8 is not a valid FsEntry"), "{err}");
}

#[test]
fn random_bytes_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let names = ["core-1.img", "mm-1.img", "pagemap-1.img", "files.img", "tcp-stream-1.img", "x.img"];
    let mut ok = 0;
    for i in 0..20_000 {
        let name = names[i % names.len()];
        let len = rng.random_range(0..64);
        let mut data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if len >= 8 && i % 2 == 0 {
            // Valid header, random body.
            let kind = hcontainer_criu_image::magic::kind_for_name(name);
            data[..4].copy_from_slice(&IMG_COMMON_MAGIC.to_le_bytes());
            if let Some(k) = kind {
                data[4..8].copy_from_slice(&k.magic.to_le_bytes());
            }
        }
        if let Ok(f) = ImageFile::parse(Path::new(name), &data) {
            assert_eq!(f.to_bytes(), data);
            let _ = show::file_json(&f);
            ok += 1;
        }
    }
    assert!(ok > 0);
}
