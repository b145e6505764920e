//! Reading single pages of a dumped process from its images directory: the pagemap says
//! where a page is (this directory's `pages-<id>.img`, or the parent images of an
//! incremental dump or a recode), and only that page is read. Nothing else is loaded.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hcontainer_abi::layout::GUEST_PAGE_SIZE as PAGE;
use hcontainer_criu_image::pb::{PagemapEntry, PagemapHead};
use hcontainer_criu_image::{DecodeError, ImageFile};

use crate::image::RecodeError;

/// Parent directories followed at most (CRIU's own chains are short).
const MAX_DEPTH: usize = 16;

/// The pages of one process in one images directory.
pub struct Pages {
    dir: PathBuf,
    pid: u32,
    pages_id: u32,
    /// (vaddr, pages, present here, in parent, offset in the pages file when present).
    entries: Vec<(u64, u64, bool, bool, u64)>,
}

impl Pages {
    /// Reads `pagemap-<pid>.img` of `dir`.
    pub fn open(dir: &Path, pid: u32) -> Result<Pages, RecodeError> {
        Ok(Self::open_full(dir, pid)?.0)
    }

    /// Reads `pagemap-<pid>.img` of `dir` once: the pages, the file as read, its head and
    /// its page entries decoded (for callers that rewrite the pagemap too).
    pub(crate) fn open_full(dir: &Path, pid: u32) -> Result<(Pages, ImageFile, PagemapHead, Vec<PagemapEntry>), RecodeError> {
        let name = format!("pagemap-{pid}.img");
        let f = ImageFile::read(&dir.join(&name))?;
        let bad = |index: usize, source| DecodeError::BadMessage {
            file: dir.join(&name),
            index,
            offset: 0,
            message: "PagemapEntry",
            source,
        };
        let list = f.entries();
        let head: PagemapHead = list
            .first()
            .ok_or_else(|| RecodeError::Corrupt { file: name.clone(), what: "no pagemap head".into() })?
            .decode()
            .map_err(|e| bad(0, e))?;
        let mut entries = Vec::new();
        let mut decoded = Vec::with_capacity(list.len().saturating_sub(1));
        let mut off = 0;
        for (i, e) in list.iter().enumerate().skip(1) {
            let p: PagemapEntry = e.decode().map_err(|e| bad(i, e))?;
            let n = p.pages();
            let present = p.is_present() && !p.is_in_parent();
            entries.push((p.vaddr, n, present, p.is_in_parent(), off));
            if present {
                off += n * PAGE;
            }
            decoded.push(p);
        }
        let pages = Pages { dir: dir.to_path_buf(), pid, pages_id: head.pages_id, entries };
        Ok((pages, f, head, decoded))
    }

    /// The page at `addr` (page aligned), `None` when the image has none there (never
    /// touched, or a file page the process did not change).
    pub fn read(&self, addr: u64) -> Result<Option<Vec<u8>>, RecodeError> {
        self.read_depth(addr, 0)
    }

    fn read_depth(&self, addr: u64, depth: usize) -> Result<Option<Vec<u8>>, RecodeError> {
        let Some(&(vaddr, _, present, parent, off)) =
            self.entries.iter().find(|(v, n, ..)| addr >= *v && addr < v + n * PAGE)
        else {
            return Ok(None);
        };
        if present {
            let path = self.dir.join(format!("pages-{}.img", self.pages_id));
            let f = File::open(&path).map_err(|source| RecodeError::Io { path: path.clone(), source })?;
            let mut page = vec![0u8; PAGE as usize];
            f.read_exact_at(&mut page, off + (addr - vaddr)).map_err(|source| RecodeError::Corrupt {
                file: path.display().to_string(),
                what: format!("page {addr:#x} at offset {:#x}: {source}", off + (addr - vaddr)),
            })?;
            return Ok(Some(page));
        }
        if parent {
            if depth >= MAX_DEPTH {
                return Err(RecodeError::Corrupt {
                    file: self.dir.display().to_string(),
                    what: format!("more than {MAX_DEPTH} parent images for page {addr:#x}"),
                });
            }
            let p = self.dir.join("parent");
            let parent = Pages::open(&p, self.pid)?;
            return parent.read_depth(addr, depth + 1);
        }
        Ok(None)
    }
}
