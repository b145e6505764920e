//! The image codec on real CRIU dumps: byte-identical read-write cycles, schemas that match
//! CRIU's wire format, agreement with `crit decode`, and clear errors on damaged files.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use hcontainer_criu::DumpOptions;
use hcontainer_criu_image::{pb, read_dir, show, unknown_fields, Content, DecodeError, ImageFile};
use prost::Message;
use serde_json::Value;

/// Dumps (with --leave-running) of: one process, a multi-threaded one, a parent with two
/// children, and a TCP server with an established connection. Made once per test binary.
fn dumps() -> &'static Vec<PathBuf> {
    static DUMPS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    &DUMPS
        .get_or_init(|| {
            let _g = serial();
            let dir = scratch();
            let criu = criu();
            let mut out = Vec::new();
            for (mode, arg) in [("loop", None), ("threads", Some("3")), ("children", Some("2"))] {
                let t = Target::start(dir.path(), mode, arg);
                let images = dir.path().join(format!("dump-{mode}"));
                let mut opts = DumpOptions::new(t.pid, &images);
                opts.leave_running = true;
                criu.dump(&opts).expect("dump");
                if mode == "children" {
                    // The children are not ours to kill through `Target`.
                    for e in pstree(&images).iter().skip(1) {
                        kill_tree(e.pid);
                    }
                }
                out.push(images);
            }
            // TCP server with a connection that has data queued both ways.
            let status = dir.path().join("tcp.status");
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_hcontainer-criu-target"))
                .arg("tcp")
                .arg(&status)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let t = Target { pid: child.id(), child: Some(child), status };
            let port_file = dir.path().join("tcp.status.port");
            wait_until("port", || port_file.exists());
            let port: u16 = std::fs::read_to_string(&port_file).unwrap().trim().parse().unwrap();
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut w = c;
            writeln!(w, "hello").unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            // Unread by the server? It reads eagerly; leave one answer unread by us instead.
            writeln!(w, "unread answer").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let images = dir.path().join("dump-tcp");
            let mut opts = DumpOptions::new(t.pid, &images);
            opts.leave_running = true;
            criu.dump(&opts).expect("dump tcp");
            out.push(images);
            drop(t);
            (dir, out)
        })
        .1
}

fn pstree(images: &Path) -> Vec<pb::PstreeEntry> {
    ImageFile::read(&images.join("pstree.img")).unwrap().decode_all().unwrap()
}

fn img_files(images: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "img") || p.ends_with("stats-dump"))
        .collect();
    v.sort();
    v
}

#[test]
fn read_write_cycle_is_byte_identical() {
    let mut files = 0;
    let mut entries = 0;
    for images in dumps() {
        for f in read_dir(images).expect("read dump") {
            let original = std::fs::read(images.join(&f.name)).unwrap();
            assert_eq!(f.to_bytes(), original, "{} changed in a read-write cycle", f.name);
            let out = scratch();
            f.write(out.path()).unwrap();
            assert_eq!(std::fs::read(out.path().join(&f.name)).unwrap(), original);
            files += 1;
            entries += f.entries().len();
        }
    }
    assert!(files > 40 && entries > 100, "{files} files, {entries} entries");
}

/// Our schemas re-encode CRIU's entries to the very same bytes whenever they know every
/// field: field numbers, wire types, order and presence match CRIU's.
#[test]
fn typed_reencoding_matches_criu_bytes() {
    fn check<M: Message + Default>(f: &ImageFile, counts: &mut BTreeMap<String, (usize, usize)>) {
        for (i, e) in f.entries().iter().enumerate() {
            if f.kind().is_some_and(|k| k.name == "PAGEMAP") && i == 0 {
                continue;
            }
            let m: M = e.decode().unwrap();
            let c = counts.entry(f.kind().unwrap().name.to_string()).or_default();
            if unknown_fields::<M>(&e.message).is_empty() {
                assert_eq!(m.encode_to_vec(), e.message, "{} entry {i}", f.name);
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }
    let mut counts = BTreeMap::new();
    for images in dumps() {
        for f in read_dir(images).unwrap() {
            match f.kind().map(|k| k.name) {
                Some("INVENTORY") => check::<pb::InventoryEntry>(&f, &mut counts),
                Some("PSTREE") => check::<pb::PstreeEntry>(&f, &mut counts),
                Some("CORE") => check::<pb::CoreEntry>(&f, &mut counts),
                Some("MM") => check::<pb::MmEntry>(&f, &mut counts),
                Some("PAGEMAP") => check::<pb::PagemapEntry>(&f, &mut counts),
                Some("FDINFO") => check::<pb::FdinfoEntry>(&f, &mut counts),
                Some("FILES") => check::<pb::FileEntry>(&f, &mut counts),
                Some("FS") => check::<pb::FsEntry>(&f, &mut counts),
                Some("IDS") => check::<pb::TaskKobjIdsEntry>(&f, &mut counts),
                Some("SECCOMP") => check::<pb::SeccompEntry>(&f, &mut counts),
                Some("TIMENS") => check::<pb::TimensEntry>(&f, &mut counts),
                Some("TCP_STREAM") => check::<pb::TcpStreamEntry>(&f, &mut counts),
                Some("STATS") => check::<pb::StatsEntry>(&f, &mut counts),
                _ => {}
            }
        }
    }
    eprintln!("(identical, with fields unknown to us) per kind: {counts:?}");
    for kind in ["INVENTORY", "PSTREE", "CORE", "MM", "PAGEMAP", "FDINFO", "FILES", "TCP_STREAM"] {
        let (same, _) = counts.get(kind).copied().unwrap_or_default();
        assert!(same > 0, "no {kind} entry fully known: {counts:?}");
    }
}

#[test]
fn dumps_hold_what_was_dumped() {
    let d = dumps();
    let threads = pstree(&d[1]);
    assert_eq!(threads[0].threads.len(), 4);
    let kids = pstree(&d[2]);
    assert_eq!(kids.len(), 3);
    for images in d {
        let root = pstree(images)[0].pid;
        let core: Vec<pb::CoreEntry> = ImageFile::read(&images.join(format!("core-{root}.img")))
            .unwrap()
            .decode_all()
            .unwrap();
        assert_eq!(core[0].mtype, 1, "x86-64");
        let regs = &core[0].thread_info.as_ref().expect("x86 thread info").gpregs;
        assert!(regs.ip != 0 && regs.sp != 0);
        let mm: Vec<pb::MmEntry> =
            ImageFile::read(&images.join(format!("mm-{root}.img"))).unwrap().decode_all().unwrap();
        let vma_covers = |a: u64| mm[0].vmas.iter().any(|v| v.start <= a && a < v.end);
        assert!(vma_covers(regs.ip) && vma_covers(regs.sp), "ip/sp outside the VMAs");
        assert!(mm[0].mm_saved_auxv.len() >= 2 && mm[0].exe_file_id != 0);
        // Present pagemap entries add up to the pages file.
        let pm = ImageFile::read(&images.join(format!("pagemap-{root}.img"))).unwrap();
        let head: pb::PagemapHead = pm.entries()[0].decode().unwrap();
        let present: u64 = pm.entries()[1..]
            .iter()
            .map(|e| e.decode::<pb::PagemapEntry>().unwrap())
            .filter(|e| e.is_present())
            .map(|e| e.pages())
            .sum();
        let pages = std::fs::metadata(images.join(format!("pages-{}.img", head.pages_id))).unwrap();
        assert_eq!(present * 4096, pages.len());
    }
    // The TCP dump has the established connection with the queued bytes after its entry.
    let tcp = &d[3];
    let stream = std::fs::read_dir(tcp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("tcp-stream-"))
        .expect("tcp-stream image");
    let f = ImageFile::read(&stream).unwrap();
    let e = &f.entries()[0];
    let t: pb::TcpStreamEntry = e.decode().unwrap();
    assert_eq!(e.extra.len() as u64, u64::from(t.inq_len) + u64::from(t.outq_len));
    let files: Vec<pb::FileEntry> =
        ImageFile::read(&tcp.join("files.img")).unwrap().decode_all().unwrap();
    let states: Vec<u32> = files.iter().filter_map(|f| f.isk.as_ref()).map(|s| s.state).collect();
    assert!(states.contains(&1) && states.contains(&10), "ESTABLISHED and LISTEN: {states:?}");
}

fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if s.starts_with("0x") => {
            u64::from_str_radix(&s[2..], 16).ok().map(Value::from)
        }
        other => Some(other.clone()),
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        acc = (acc << 6) | T.iter().position(|t| *t == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Compares crit's JSON with ours; counts compared leaves, collects mismatches.
fn agree(crit: &Value, ours: &Value, path: &str, n: &mut usize, bad: &mut Vec<String>) {
    match (crit, ours) {
        (Value::Object(c), Value::Object(o)) => {
            for (k, cv) in c {
                // CRIU 4.1's pagemap calls field 2 `nr_pages`; our schema `compat_nr_pages`.
                let ov = match o.get(k) {
                    Some(Value::Null) | None if k == "nr_pages" => o.get("compat_nr_pages"),
                    other => other,
                };
                if let Some(ov) = ov.filter(|v| !v.is_null()) {
                    agree(cv, ov, &format!("{path}.{k}"), n, bad);
                }
            }
        }
        (Value::Array(c), Value::Array(o)) => {
            if c.len() != o.len() {
                bad.push(format!("{path}: {} vs {} items", c.len(), o.len()));
            }
            for (i, (cv, ov)) in c.iter().zip(o).enumerate() {
                agree(cv, ov, &format!("{path}[{i}]"), n, bad);
            }
        }
        (Value::String(c), Value::Number(_)) if !c.starts_with("0x") => {} // enum names
        (Value::String(c), Value::String(o)) if !o.starts_with("0x") => {
            *n += 1;
            let same = c == o || base64_decode(c).is_some_and(|b| {
                b.iter().map(|x| format!("{x:02x}")).collect::<String>() == *o
            });
            if !same {
                bad.push(format!("{path}: crit {c:?}, ours {o:?}"));
            }
        }
        (c, o) => {
            *n += 1;
            if normalize(c) != normalize(o) {
                bad.push(format!("{path}: crit {c}, ours {o}"));
            }
        }
    }
}

#[test]
fn field_values_agree_with_crit() {
    let crit = crit();
    let mut compared = 0;
    let mut bad = Vec::new();
    let mut files = 0;
    for images in dumps() {
        for path in img_files(images) {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("pages-") {
                continue;
            }
            let out = std::process::Command::new(&crit)
                .args(["decode", "-i"])
                .arg(&path)
                .output()
                .expect("running crit");
            assert!(
                out.status.success(),
                "crit decode {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let theirs: Value = serde_json::from_slice(&out.stdout).expect("crit JSON");
            let ours = show::file_json(&ImageFile::read(&path).unwrap()).unwrap();
            assert_eq!(theirs["magic"], ours["magic"], "{name}");
            agree(&theirs["entries"], &ours["entries"], &name, &mut compared, &mut bad);
            files += 1;
        }
    }
    assert!(bad.is_empty(), "{} disagreements with crit:\n{}", bad.len(), bad.join("\n"));
    assert!(files > 30 && compared > 2000, "{files} files, {compared} values compared");
    eprintln!("{files} files, {compared} values agree with crit");
}

/// Damaged copies of real images: never a panic; truncations and wrong magics are reported
/// with the file and the offset.
#[test]
fn damaged_images_give_clear_errors() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x4843_4f4e);
    let mut errors = 0;
    for images in dumps() {
        for path in img_files(images) {
            let data = std::fs::read(&path).unwrap();
            let f = ImageFile::read(&path).unwrap();
            let Content::Entries { .. } = f.content else { continue };
            // Every truncation inside the last entry and a few random ones.
            let mut cuts: Vec<usize> = (0..8).map(|_| rng.random_range(0..data.len())).collect();
            cuts.extend(data.len().saturating_sub(6)..data.len());
            for cut in cuts {
                match ImageFile::parse(&path, &data[..cut]) {
                    Ok(g) => assert_eq!(g.to_bytes(), &data[..cut]),
                    Err(e) => {
                        let text = e.to_string();
                        assert!(text.contains(&*path.to_string_lossy()), "{text}");
                        assert!(text.contains("offset 0x"), "{text}");
                        errors += 1;
                    }
                }
            }
            // Random bit flips.
            for _ in 0..20 {
                let mut d = data.clone();
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
                if let Err(e) = ImageFile::parse(&path, &d) {
                    assert!(e.to_string().contains(&*path.to_string_lossy()));
                    errors += 1;
                }
            }
            // Wrong type magic.
            let mut d = data.clone();
            let at = if f.name == "inventory.img" { 0 } else { 4 };
            d[at] ^= 0x55;
            match ImageFile::parse(&path, &d) {
                Err(DecodeError::WrongMagic { offset, .. }) => assert_eq!(offset, at as u64),
                other => panic!("{}: expected a wrong magic error, got {other:?}", f.name),
            }
        }
    }
    assert!(errors > 100, "only {errors} errors");
}
