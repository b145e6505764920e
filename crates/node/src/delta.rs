//! Incremental images by content: turns a full dump into one whose unchanged pages live in
//! the parent images, the way CRIU's own incremental dumps do (`parent` link, pagemap entries
//! flagged `PARENT`), for kernels where CRIU cannot track dirty memory.
//!
//! `make_delta(prev, cur, out, parent_link)` compares every page of `cur` (a full dump) with
//! the page at the same address in `prev` (a full dump of the same process, earlier): equal
//! pages become `PARENT` runs, others stay `PRESENT` and are the only ones written into
//! `out`'s pages file. Every other file of `cur` is hard-linked into `out`. `out` restores
//! with unmodified CRIU wherever `parent_link` leads to the images that `prev` was sent as
//! (themselves full or made by this function against their own predecessor: equal content
//! either way).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hcontainer_criu_image::pb::{PagemapEntry, PagemapHead};
use hcontainer_criu_image::{pagemap_flags, DecodeError, Entry, ImageFile, PAGE_SIZE};

/// Pages compared per read.
const CHUNK_PAGES: u64 = 256;

/// Why a delta could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// An image could not be decoded.
    #[error(transparent)]
    Image(#[from] DecodeError),
    /// A pagemap entry that is not a valid message.
    #[error("{file}: entry {index}: {source}")]
    Entry {
        /// The pagemap file.
        file: PathBuf,
        /// Entry index.
        index: usize,
        /// The error.
        source: prost::DecodeError,
    },
    /// A pagemap whose entries run past its pages file.
    #[error("{file}: pages at {vaddr:#x} lie past the end of {pages}")]
    Short {
        /// The pagemap.
        file: PathBuf,
        /// Address of the entry.
        vaddr: u64,
        /// Its pages file.
        pages: String,
    },
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeltaError + '_ {
    let path = path.to_path_buf();
    move |source| DeltaError::Io { path, source }
}

/// What a delta kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Pages written into the delta (changed or new).
    pub pages_present: u64,
    /// Pages left in the parent.
    pub pages_parent: u64,
}

struct Pagemap {
    file: ImageFile,
    head: PagemapHead,
    entries: Vec<PagemapEntry>,
}

fn read_pagemap(path: &Path) -> Result<Pagemap, DeltaError> {
    let file = ImageFile::read(path)?;
    let raw = file.entries();
    let mut entries = Vec::with_capacity(raw.len().saturating_sub(1));
    let mut head = PagemapHead::default();
    for (index, e) in raw.iter().enumerate() {
        let bad = |source| DeltaError::Entry { file: path.to_path_buf(), index, source };
        if index == 0 {
            head = e.decode().map_err(bad)?;
        } else {
            entries.push(e.decode().map_err(bad)?);
        }
    }
    Ok(Pagemap { file, head, entries })
}

/// Pages of a full dump's pagemap: address of each present run → (pages, offset in the
/// pages file).
fn present_runs(pm: &Pagemap) -> BTreeMap<u64, (u64, u64)> {
    let mut runs = BTreeMap::new();
    let mut off = 0u64;
    for e in &pm.entries {
        if e.is_present() {
            runs.insert(e.vaddr, (e.pages(), off));
            off = off.saturating_add(e.pages().saturating_mul(PAGE_SIZE));
        }
    }
    runs
}

/// Offset in the previous pages file of the page at `vaddr`, if it was present there.
fn lookup(runs: &BTreeMap<u64, (u64, u64)>, vaddr: u64) -> Option<u64> {
    let (start, (n, off)) = runs.range(..=vaddr).next_back()?;
    let index = (vaddr - start) / PAGE_SIZE;
    (index < *n).then(|| off + index * PAGE_SIZE)
}

fn read_at(f: &File, path: &Path, buf: &mut [u8], off: u64) -> Result<bool, DeltaError> {
    match f.read_exact_at(buf, off) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(DeltaError::Io { path: path.to_path_buf(), source: e }),
    }
}

/// `a == b`, word by word: the static musl build's `memcmp`, which `==` on byte slices
/// calls, goes byte by byte.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn words(s: &[u8]) -> impl Iterator<Item = u64> + '_ {
        s.chunks_exact(8)
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    }
    a.len() == b.len() && a.len().is_multiple_of(8) && words(a).eq(words(b))
}

fn push_run(out: &mut Vec<PagemapEntry>, vaddr: u64, pages: u64, flags: u32) {
    if pages == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.flags == Some(flags) && last.vaddr + last.pages() * PAGE_SIZE == vaddr {
            last.nr_pages = Some(last.pages() + pages);
            return;
        }
    }
    out.push(PagemapEntry { vaddr, nr_pages: Some(pages), flags: Some(flags), ..Default::default() });
}

/// Delta of one process's pagemap; returns the names written.
fn delta_pagemap(prev: &Path, cur: &Path, out: &Path, name: &str, stats: &mut DeltaStats) -> Result<Vec<String>, DeltaError> {
    let cur_pm = read_pagemap(&cur.join(name))?;
    let pages_name = format!("pages-{}.img", cur_pm.head.pages_id);
    let prev_path = prev.join(name);
    let prev_pm = if prev_path.exists() { Some(read_pagemap(&prev_path)?) } else { None };
    let prev_runs = prev_pm.as_ref().map(present_runs).unwrap_or_default();
    let prev_pages_path = prev_pm.as_ref().map(|p| prev.join(format!("pages-{}.img", p.head.pages_id)));
    let prev_pages = match &prev_pages_path {
        Some(p) => Some(File::open(p).map_err(io(p))?),
        None => None,
    };
    let cur_pages_path = cur.join(&pages_name);
    let cur_pages = File::open(&cur_pages_path).map_err(io(&cur_pages_path))?;
    let out_pages_path = out.join(&pages_name);
    let mut out_pages = BufWriter::new(File::create(&out_pages_path).map_err(io(&out_pages_path))?);

    let mut new_entries: Vec<PagemapEntry> = Vec::new();
    let mut off = 0u64;
    let page = PAGE_SIZE as usize;
    let mut a = vec![0u8; page * CHUNK_PAGES as usize];
    // The previous dump's pages at the chunk's addresses, read at once when they lie at
    // consecutive offsets of its pages file (one read per chunk, not per page: reads are
    // dear on a slow node), else page by page into `b`.
    let mut p = vec![0u8; page * CHUNK_PAGES as usize];
    let mut b = vec![0u8; page];
    for e in &cur_pm.entries {
        if !e.is_present() {
            new_entries.push(*e);
            continue;
        }
        let mut done = 0u64;
        while done < e.pages() {
            let n = (e.pages() - done).min(CHUNK_PAGES);
            let buf = &mut a[..n as usize * page];
            if !read_at(&cur_pages, &cur_pages_path, buf, off)? {
                return Err(DeltaError::Short { file: cur.join(name), vaddr: e.vaddr, pages: pages_name.clone() });
            }
            let first = e.vaddr + done * PAGE_SIZE;
            let chunk_at = match (lookup(&prev_runs, first), &prev_pages, &prev_pages_path) {
                (Some(poff), Some(pf), Some(pp)) if read_at(pf, pp, &mut p[..n as usize * page], poff)? => Some(poff),
                _ => None,
            };
            for i in 0..n {
                let vaddr = first + i * PAGE_SIZE;
                let data = &buf[i as usize * page..(i as usize + 1) * page];
                let same = match (lookup(&prev_runs, vaddr), &prev_pages, &prev_pages_path) {
                    (Some(poff), _, _) if chunk_at.is_some_and(|c| poff == c + i * PAGE_SIZE) => {
                        same_bytes(&p[i as usize * page..(i as usize + 1) * page], data)
                    }
                    (Some(poff), Some(pf), Some(pp)) => read_at(pf, pp, &mut b, poff)? && same_bytes(&b, data),
                    _ => false,
                };
                if same {
                    stats.pages_parent += 1;
                    push_run(&mut new_entries, vaddr, 1, pagemap_flags::PARENT);
                } else {
                    stats.pages_present += 1;
                    out_pages.write_all(data).map_err(io(&out_pages_path))?;
                    push_run(&mut new_entries, vaddr, 1, pagemap_flags::PRESENT);
                }
            }
            done += n;
            off += n * PAGE_SIZE;
        }
    }
    out_pages.flush().map_err(io(&out_pages_path))?;
    let mut file = cur_pm.file;
    if let hcontainer_criu_image::Content::Entries { entries, .. } = &mut file.content {
        entries.truncate(1);
        entries.extend(new_entries.iter().map(|e| Entry::new(e, Vec::new())));
    }
    file.write(out).map_err(io(out))?;
    Ok(vec![name.to_string(), pages_name])
}

/// Writes into `out` (created, must not exist) the images of `cur` with pages equal to
/// `prev`'s moved to the parent, and a `parent` symlink to `parent_link`.
pub fn make_delta(prev: &Path, cur: &Path, out: &Path, parent_link: &str) -> Result<DeltaStats, DeltaError> {
    fs::create_dir(out).map_err(io(out))?;
    let mut stats = DeltaStats::default();
    let mut written = Vec::new();
    for e in fs::read_dir(cur).map_err(io(cur))? {
        let e = e.map_err(io(cur))?;
        let name = e.file_name().to_string_lossy().into_owned();
        // Per-process pagemaps; shared-memory pagemaps (pagemap-shmem-*) are kept whole.
        if name.starts_with("pagemap-") && !name.starts_with("pagemap-shmem-") && name.ends_with(".img") {
            written.extend(delta_pagemap(prev, cur, out, &name, &mut stats)?);
        }
    }
    for e in fs::read_dir(cur).map_err(io(cur))? {
        let e = e.map_err(io(cur))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ty = e.file_type().map_err(io(&e.path()))?;
        if !ty.is_file() || written.contains(&name) || name == "parent" {
            continue;
        }
        let dest = out.join(&name);
        fs::hard_link(e.path(), &dest).or_else(|_| fs::copy(e.path(), &dest).map(|_| ())).map_err(io(&dest))?;
    }
    std::os::unix::fs::symlink(parent_link, out.join("parent")).map_err(io(out))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_compares_whole_slices() {
        let a: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let mut b = a.clone();
        assert!(same_bytes(&a, &b));
        for at in [0, 7, 8, 4095] {
            b[at] ^= 1;
            assert!(!same_bytes(&a, &b), "difference at {at}");
            b[at] ^= 1;
        }
        assert!(!same_bytes(&a, &a[..4088]));
    }

    #[test]
    fn lookup_finds_pages_inside_runs_only() {
        let mut runs = BTreeMap::new();
        runs.insert(0x1000, (2, 0));
        runs.insert(0x10000, (1, 0x2000));
        assert_eq!(lookup(&runs, 0x1000), Some(0));
        assert_eq!(lookup(&runs, 0x2000), Some(0x1000));
        assert_eq!(lookup(&runs, 0x3000), None);
        assert_eq!(lookup(&runs, 0x10000), Some(0x2000));
        assert_eq!(lookup(&runs, 0x0), None);
    }

    #[test]
    fn runs_merge_when_adjacent_and_alike() {
        let mut v = Vec::new();
        push_run(&mut v, 0x1000, 1, pagemap_flags::PARENT);
        push_run(&mut v, 0x2000, 1, pagemap_flags::PARENT);
        push_run(&mut v, 0x3000, 1, pagemap_flags::PRESENT);
        push_run(&mut v, 0x5000, 1, pagemap_flags::PRESENT);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].pages(), 2);
        assert_eq!(v[2].vaddr, 0x5000);
    }

    fn write_dump(dir: &Path, runs: &[(u64, &[u8])]) {
        fs::create_dir(dir).unwrap();
        let kind = hcontainer_criu_image::magic::kind_for_name("pagemap-1.img").unwrap();
        let mut entries = vec![Entry::new(&PagemapHead { pages_id: 1 }, Vec::new())];
        let mut pages = Vec::new();
        for (vaddr, fill) in runs {
            let e = PagemapEntry {
                vaddr: *vaddr,
                nr_pages: Some(fill.len() as u64),
                flags: Some(pagemap_flags::PRESENT),
                ..Default::default()
            };
            entries.push(Entry::new(&e, Vec::new()));
            for b in *fill {
                pages.extend(std::iter::repeat_n(*b, PAGE_SIZE as usize));
            }
        }
        let file = ImageFile {
            name: "pagemap-1.img".into(),
            content: hcontainer_criu_image::Content::Entries {
                head: Some(hcontainer_criu_image::IMG_COMMON_MAGIC),
                kind,
                entries,
            },
        };
        file.write(dir).unwrap();
        fs::write(dir.join("pages-1.img"), pages).unwrap();
        fs::write(dir.join("core-1.img"), b"core").unwrap();
    }

    #[test]
    fn equal_pages_go_to_the_parent_and_only_changed_ones_are_written() {
        let t = tempfile::tempdir().unwrap();
        let (prev, cur, out) = (t.path().join("prev"), t.path().join("cur"), t.path().join("out"));
        write_dump(&prev, &[(0x10000, b"ABCD")]);
        write_dump(&cur, &[(0x10000, b"AXCD"), (0x20000, b"E")]);
        let stats = make_delta(&prev, &cur, &out, "../prev").unwrap();
        assert_eq!(stats, DeltaStats { pages_present: 2, pages_parent: 3 });
        let pm = read_pagemap(&out.join("pagemap-1.img")).unwrap();
        let got: Vec<(u64, u64, Option<u32>)> = pm.entries.iter().map(|e| (e.vaddr, e.pages(), e.flags)).collect();
        let (parent, present) = (Some(pagemap_flags::PARENT), Some(pagemap_flags::PRESENT));
        assert_eq!(got, [(0x10000, 1, parent), (0x11000, 1, present), (0x12000, 2, parent), (0x20000, 1, present)]);
        let pages = fs::read(out.join("pages-1.img")).unwrap();
        assert_eq!(pages.len(), 2 * PAGE_SIZE as usize);
        assert!(pages[..PAGE_SIZE as usize].iter().all(|&b| b == b'X'));
        assert!(pages[PAGE_SIZE as usize..].iter().all(|&b| b == b'E'));
        assert_eq!(fs::read(out.join("core-1.img")).unwrap(), b"core");
        assert_eq!(fs::read_link(out.join("parent")).unwrap(), Path::new("../prev"));
    }

    #[test]
    fn a_pagemap_longer_than_its_pages_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let (prev, cur, out) = (t.path().join("prev"), t.path().join("cur"), t.path().join("out"));
        write_dump(&prev, &[(0x10000, b"A")]);
        write_dump(&cur, &[(0x10000, b"AB")]);
        fs::write(cur.join("pages-1.img"), vec![0u8; PAGE_SIZE as usize]).unwrap();
        assert!(matches!(make_delta(&prev, &cur, &out, "../prev"), Err(DeltaError::Short { vaddr: 0x10000, .. })));
    }
}
