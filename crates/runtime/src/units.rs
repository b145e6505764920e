//! Translation units of a dynamically linked guest (`hcontainer_abi::unit`): which guest file
//! is mapped where, its unit's host code, and the lookup of a guest address in them.
//!
//! When a file-backed executable mapping appears ([`mapped`], from the guest's `mmap` or the
//! launcher's own mapping of the program and its interpreter), the file is identified by the
//! SHA-256 of its content (memoized by device, inode, size and modification time), its unit is
//! loaded from the translation store (`<store>/<sha256>/<isa>.unit`) into hcontainer's range,
//! relocated, given the file's load bias and the runtime's entry points, and the guest range
//! of the file's executable segments is registered. A file without a unit is registered as
//! missing: reaching its code ends the program with a message naming the file and the
//! command that translates it. Unmapping code ([`unmapped`]) retires its registration.
//!
//! Lookups are lock-free: registrations are published by an atomic count and never move;
//! retired ones are only marked. Host code of a unit is never unmapped (a thread may still
//! return into it); the lookup records a translated indirect branch caches ([`record`]) are
//! never freed, only marked dead, so a cached pointer is always safe to read.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use hcontainer_abi::calls::DispatchEntry;
use hcontainer_abi::layout;
use hcontainer_abi::unit::{self, UnitHeader};
use sha2::Digest;

use crate::elf::{self, ElfError, Headers};
use crate::sys::{self, Errno};
use crate::{arch::nr, eprintln, print};

/// Most guest file mappings registered in one process.
pub const MAX_SLOTS: usize = 512;
/// Longest path kept for messages.
const PATH_LEN: usize = 512;

const EMPTY: u8 = 0;
const LIVE: u8 = 1;
const MISSING: u8 = 2;
const DEAD: u8 = 3;

/// One guest file mapped at one bias.
struct Slot {
    state: AtomicU8,
    /// Run-time guest range of the file's executable segments.
    lo: AtomicU64,
    hi: AtomicU64,
    bias: AtomicU64,
    /// The unit's dispatch table and its length (LIVE).
    table: AtomicU64,
    len: AtomicU64,
    /// Host address of the unit's header (LIVE).
    header: AtomicU64,
    sha: UnsafeCell<[u8; 32]>,
    path: UnsafeCell<[u8; PATH_LEN]>,
}

// SAFETY: the cells are written only while the slot is EMPTY and the registration lock is
// held, before the slot is published by `COUNT`; afterwards they are only read.
unsafe impl Sync for Slot {}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    state: AtomicU8::new(EMPTY),
    lo: AtomicU64::new(0),
    hi: AtomicU64::new(0),
    bias: AtomicU64::new(0),
    table: AtomicU64::new(0),
    len: AtomicU64::new(0),
    header: AtomicU64::new(0),
    sha: UnsafeCell::new([0; 32]),
    path: UnsafeCell::new([0; PATH_LEN]),
};

static SLOTS: [Slot; MAX_SLOTS] = [SLOT; MAX_SLOTS];
/// Slots published so far.
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Held while registering, retiring or creating records.
static LOCK: AtomicBool = AtomicBool::new(false);
/// Next free address for a unit's host image.
static NEXT_HOST: AtomicU64 = AtomicU64::new(layout::UNITS_BASE);

fn with_lock<R>(f: impl FnOnce() -> R) -> R {
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    let r = f();
    LOCK.store(false, Ordering::Release);
    r
}

/// This host's ISA name, as units are named in the store.
pub const HOST_ISA: &str = if cfg!(target_arch = "x86_64") {
    "x86_64"
} else if cfg!(target_arch = "aarch64") {
    "aarch64"
} else {
    "riscv64"
};

/// A path being built, NUL-terminated when used.
pub struct PathBuf {
    bytes: [u8; unit::PATH_MAX],
    len: usize,
}

impl PathBuf {
    /// An empty path.
    pub const fn new() -> Self {
        PathBuf { bytes: [0; unit::PATH_MAX], len: 0 }
    }
    /// Append `b` (silently cut at the capacity).
    pub fn push(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(self.bytes.len() - 1 - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self.bytes[self.len] = 0;
        self
    }
    /// The bytes without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    /// The bytes with the NUL.
    pub fn as_cstr(&self) -> &[u8] {
        &self.bytes[..self.len + 1]
    }
    /// Forget everything after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = len.min(self.len);
        self.bytes[self.len] = 0;
    }
}

impl Default for PathBuf {
    fn default() -> Self {
        Self::new()
    }
}

struct Root(UnsafeCell<PathBuf>);
// SAFETY: written once by `set_store_root` during start-up (single-threaded), read after.
unsafe impl Sync for Root {}
static STORE_ROOT: Root = Root(UnsafeCell::new(PathBuf::new()));

/// Set the translation store the units come from (start-up, before any thread exists).
pub fn set_store_root(root: &[u8]) {
    // SAFETY: see `Root`.
    let r = unsafe { &mut *STORE_ROOT.0.get() };
    r.truncate(0);
    r.push(root);
}

/// The translation store's root (empty if none is known).
pub fn store_root() -> &'static [u8] {
    // SAFETY: see `Root`.
    unsafe { (*STORE_ROOT.0.get()).as_bytes() }
}

// ---- file identity ----

const ID_CACHE: usize = 256;
struct IdCache(UnsafeCell<[(sys::FileId, [u8; 32]); ID_CACHE]>, AtomicUsize);
// SAFETY: used only with the registration lock held.
unsafe impl Sync for IdCache {}
static IDS: IdCache = IdCache(UnsafeCell::new([(sys::FileId { dev: 0, ino: 0, size: 0, mtime: 0, mtime_nsec: 0 }, [0; 32]); ID_CACHE]), AtomicUsize::new(0));

struct HashBuf(UnsafeCell<[u8; 1 << 16]>);
// SAFETY: used only with the registration lock held.
unsafe impl Sync for HashBuf {}
static HASH_BUF: HashBuf = HashBuf(UnsafeCell::new([0; 1 << 16]));

/// SHA-256 of the whole content of `fd` (lock held).
fn sha256_of(fd: i32, id: &sys::FileId) -> Result<[u8; 32], Errno> {
    // SAFETY: the lock is held.
    let cache = unsafe { &mut *IDS.0.get() };
    let n = IDS.1.load(Ordering::Relaxed);
    if let Some((_, h)) = cache[..n.min(ID_CACHE)].iter().find(|(i, _)| i == id) {
        return Ok(*h);
    }
    // SAFETY: the lock is held.
    let buf = unsafe { &mut *HASH_BUF.0.get() };
    let mut h = sha2::Sha256::new();
    let mut off = 0u64;
    loop {
        let got = sys::pread(fd, buf, off)?;
        if got == 0 {
            break;
        }
        h.update(&buf[..got]);
        off += got as u64;
    }
    let sha: [u8; 32] = h.finalize().into();
    cache[n % ID_CACHE] = (*id, sha);
    IDS.1.store(n + 1, Ordering::Relaxed);
    Ok(sha)
}

fn hex(sha: &[u8; 32], out: &mut PathBuf) {
    const D: &[u8; 16] = b"0123456789abcdef";
    for b in sha {
        out.push(&[D[usize::from(b >> 4)], D[usize::from(b & 15)]]);
    }
}

// ---- loading a unit ----

/// Why a unit could not be loaded.
#[derive(Clone, Copy, Debug)]
pub enum UnitError {
    /// No unit for this content in the store (or no store known).
    Missing,
    /// The unit file is unusable.
    Bad(ElfError),
    /// Mapping failed.
    Map(Errno),
    /// The unit is not for this file or this runtime.
    Mismatch(&'static str),
}

impl core::fmt::Display for UnitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UnitError::Missing => write!(f, "no unit in the store"),
            UnitError::Bad(e) => write!(f, "the unit {}", e),
            UnitError::Map(e) => write!(f, "mapping the unit failed (errno {})", e.0),
            UnitError::Mismatch(w) => write!(f, "the unit {}", w),
        }
    }
}

const HOST_MACHINE: u16 = if cfg!(target_arch = "x86_64") {
    62
} else if cfg!(target_arch = "aarch64") {
    183
} else {
    243
};
const R_RELATIVE: u32 = if cfg!(target_arch = "x86_64") {
    8
} else if cfg!(target_arch = "aarch64") {
    1027
} else {
    3
};
const DT_NULL: u64 = 0;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const PROT_EXEC: usize = 4;

fn prot_of(flags: u32) -> usize {
    (if flags & elf::PF_R != 0 { sys::PROT_READ } else { 0 })
        | (if flags & elf::PF_W != 0 { sys::PROT_WRITE } else { 0 })
        | (if flags & elf::PF_X != 0 { PROT_EXEC } else { 0 })
}

/// Map and relocate the unit in `fd`; returns the host address of its header.
fn load_unit(fd: i32, sha: &[u8; 32], size: u64) -> Result<u64, UnitError> {
    let h = Headers::read(fd, Some(HOST_MACHINE)).map_err(UnitError::Bad)?;
    if h.kind != elf::ET_DYN {
        return Err(UnitError::Mismatch("is not a shared object"));
    }
    let (lo, hi) = h.span().ok_or(UnitError::Mismatch("has no loadable segment"))?;
    if lo != 0 {
        return Err(UnitError::Mismatch("does not start at address 0"));
    }
    const ALIGN: u64 = 1 << 16;
    let span = hi.div_ceil(ALIGN) * ALIGN;
    let base = NEXT_HOST.fetch_add(span + ALIGN, Ordering::Relaxed);
    if base + span > layout::UNITS_BASE + layout::UNITS_SIZE {
        return Err(UnitError::Map(Errno::ENOMEM));
    }
    // Reserve the span, then lay each segment over it.
    sys::map_anon_at(base as usize, span as usize, sys::PROT_NONE, sys::MAP_NORESERVE).map_err(UnitError::Map)?;
    const PAGE: u64 = 4096;
    for p in h.loads() {
        let start = p.vaddr & !(PAGE - 1);
        let file_end = crate::mem::page_up(p.vaddr + p.filesz);
        let mem_end = crate::mem::page_up(p.vaddr + p.memsz);
        let writable = p.flags & elf::PF_W != 0;
        // Writable segments are relocated, so they are mapped writable first.
        let prot = if writable { sys::PROT_READ | sys::PROT_WRITE } else { prot_of(p.flags) };
        if p.filesz > 0 {
            if (p.vaddr - p.offset) % PAGE != 0 {
                return Err(UnitError::Mismatch("has a segment whose address and offset disagree"));
            }
            let off = p.offset - (p.vaddr - start);
            let len = file_end - start;
            // SAFETY: a private file mapping over the reservation made above.
            unsafe {
                sys::syscall(
                    nr::MMAP,
                    [(base + start) as usize, len as usize, prot, sys::MAP_PRIVATE | sys::MAP_FIXED, fd as usize, off as usize],
                )
            }
            .map_err(UnitError::Map)?;
            let tail = p.vaddr + p.filesz;
            if p.memsz > p.filesz && tail < file_end {
                // SAFETY: the rest of the last file page belongs to this writable segment.
                unsafe { core::ptr::write_bytes((base + tail) as *mut u8, 0, (file_end - tail) as usize) };
            }
        }
        let zero_start = if p.filesz > 0 { file_end } else { start };
        if mem_end > zero_start {
            // SAFETY: anonymous zero pages over the reservation.
            unsafe {
                sys::syscall(
                    nr::MMAP,
                    [
                        (base + zero_start) as usize,
                        (mem_end - zero_start) as usize,
                        prot,
                        sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_FIXED,
                        usize::MAX,
                        0,
                    ],
                )
            }
            .map_err(UnitError::Map)?;
        }
    }
    // Relative relocations (the only kind a unit has, checked when it was linked).
    if let Some(d) = h.find(elf::PT_DYNAMIC) {
        let (mut rela, mut relasz) = (0u64, 0u64);
        let mut at = base + d.vaddr;
        let end = at + d.memsz;
        while at + 16 <= end {
            // SAFETY: inside the mapped dynamic segment.
            let (tag, val) = unsafe { ((at as *const u64).read(), ((at + 8) as *const u64).read()) };
            match tag {
                DT_NULL => break,
                DT_RELA => rela = val,
                DT_RELASZ => relasz = val,
                _ => {}
            }
            at += 16;
        }
        if rela != 0 {
            if rela.checked_add(relasz).is_none_or(|e| e > hi) {
                return Err(UnitError::Mismatch("has relocations outside its image"));
            }
            let mut r = base + rela;
            while r + 24 <= base + rela + relasz {
                // SAFETY: inside the mapped image (checked above).
                let (off, info, addend) = unsafe {
                    ((r as *const u64).read(), ((r + 8) as *const u64).read(), ((r + 16) as *const u64).read())
                };
                if info as u32 != R_RELATIVE {
                    return Err(UnitError::Mismatch("has a relocation that is not relative"));
                }
                if off.checked_add(8).is_none_or(|e| e > hi) {
                    return Err(UnitError::Mismatch("relocates outside its image"));
                }
                // SAFETY: a word of a writable segment of the image (checked by range; a
                // read-only target would fault, which the link-time check excludes).
                unsafe { ((base + off) as *mut u64).write_unaligned(base.wrapping_add(addend)) };
                r += 24;
            }
        }
    }
    // The header, checked against the file it translates.
    if h.entry.checked_add(unit::HEADER_SIZE as u64).is_none_or(|e| e > hi) {
        return Err(UnitError::Mismatch("has no header"));
    }
    let hdr = (base + h.entry) as *mut UnitHeader;
    // SAFETY: inside a writable segment of the image (units keep the header in data).
    let hd = unsafe { &mut *hdr };
    if hd.magic != unit::UNIT_MAGIC || hd.version != unit::UNIT_VERSION {
        return Err(UnitError::Mismatch("has no unit header or one of another version"));
    }
    if hd.state_version != u32::from(hcontainer_abi::GUEST_STATE_VERSION) {
        return Err(UnitError::Mismatch("was made for another GuestState version"));
    }
    if hd.guest_sha256 != *sha || hd.guest_size != size {
        return Err(UnitError::Mismatch("translates another file"));
    }
    hd.imports[unit::Import::Syscall as usize] = crate::syscall::hc_syscall as *const () as u64;
    hd.imports[unit::Import::Helper as usize] = crate::hc_helper as *const () as u64;
    hd.imports[unit::Import::EvalCond as usize] = crate::hc_eval_cond as *const () as u64;
    hd.imports[unit::Import::Rflags as usize] = crate::hc_rflags as *const () as u64;
    hd.imports[unit::Import::Lookup as usize] = crate::dispatch::hc_lookup as *const () as u64;
    hd.imports[unit::Import::Unsupported as usize] = crate::hc_unsupported as *const () as u64;
    // RELRO back to read-only.
    if let Some(r) = h.find(elf::PT_GNU_RELRO) {
        let start = r.vaddr & !(PAGE - 1);
        let end = (r.vaddr + r.memsz) & !(PAGE - 1);
        if end > start {
            // SAFETY: the image's own pages.
            let _ = unsafe { sys::mprotect((base + start) as usize, (end - start) as usize, sys::PROT_READ) };
        }
    }
    Ok(hdr as u64)
}

/// Open and load the unit for content `sha` (size `size`) from the store.
fn open_unit(sha: &[u8; 32], size: u64) -> Result<u64, UnitError> {
    let root = store_root();
    if root.is_empty() {
        return Err(UnitError::Missing);
    }
    let mut p = PathBuf::new();
    p.push(root).push(b"/");
    hex(sha, &mut p);
    p.push(b"/").push(HOST_ISA.as_bytes()).push(unit::FILE_SUFFIX.as_bytes());
    let fd = match sys::open_read(p.as_cstr()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(UnitError::Missing),
        Err(e) => return Err(UnitError::Map(e)),
    };
    let r = load_unit(fd, sha, size);
    sys::close(fd);
    r
}

// ---- registration ----

/// The guest file open as `fd` was mapped so that its link-time address `vaddr` is at
/// `vaddr + bias`; register the run-time range of its executable segments with its unit.
/// `path` names it in messages. Files that are not x86-64 ELF are ignored.
pub fn register(fd: i32, bias: u64, path: &[u8]) {
    let Ok(h) = Headers::read(fd, Some(elf::EM_X86_64)) else { return };
    let mut lo = u64::MAX;
    let mut hi = 0;
    for p in h.loads().filter(|p| p.flags & elf::PF_X != 0) {
        lo = lo.min(p.vaddr.wrapping_add(bias));
        hi = hi.max(p.vaddr.wrapping_add(bias).wrapping_add(p.filesz));
    }
    if lo >= hi {
        return;
    }
    let Ok(id) = sys::fstat_id(fd) else { return };
    with_lock(|| {
        let Ok(sha) = sha256_of(fd, &id) else { return };
        let n = COUNT.load(Ordering::Acquire);
        // Already registered (another segment of the same mapping, or the same file again
        // at the same place).
        for s in &SLOTS[..n] {
            let st = s.state.load(Ordering::Acquire);
            // SAFETY: published slots' cells are never written again.
            let same = unsafe { *s.sha.get() } == sha && s.bias.load(Ordering::Relaxed) == bias;
            if same && (st == LIVE || st == MISSING) && s.lo.load(Ordering::Relaxed) == lo {
                return;
            }
            if same && st == DEAD && s.lo.load(Ordering::Relaxed) == lo {
                // The same file back at the same place: its host code is still there.
                s.state.store(if s.header.load(Ordering::Relaxed) != 0 { LIVE } else { MISSING }, Ordering::Release);
                return;
            }
        }
        if n == MAX_SLOTS {
            eprintln!("hcontainer: more than {} code mappings; {} is not registered", MAX_SLOTS, print::Lossy(path));
            return;
        }
        let s = &SLOTS[n];
        let (state, header) = match open_unit(&sha, id.size) {
            Ok(hdr) => (LIVE, hdr),
            Err(UnitError::Missing) => (MISSING, 0),
            Err(e) => {
                eprintln!("hcontainer: {}: {}", print::Lossy(path), e);
                (MISSING, 0)
            }
        };
        if header != 0 {
            // SAFETY: the header of the unit just loaded.
            let hd = unsafe { &mut *(header as *mut UnitHeader) };
            hd.bias = bias;
            s.table.store(hd.dispatch_table, Ordering::Relaxed);
            s.len.store(hd.dispatch_len, Ordering::Relaxed);
        }
        // SAFETY: the slot is unpublished and the lock is held.
        unsafe {
            *s.sha.get() = sha;
            let dst = &mut *s.path.get();
            let k = path.len().min(PATH_LEN - 1);
            dst[..k].copy_from_slice(&path[..k]);
            dst[k] = 0;
        }
        s.lo.store(lo, Ordering::Relaxed);
        s.hi.store(hi, Ordering::Relaxed);
        s.bias.store(bias, Ordering::Relaxed);
        s.header.store(header, Ordering::Relaxed);
        s.state.store(state, Ordering::Release);
        COUNT.store(n + 1, Ordering::Release);
    });
}

/// The guest mapped `len` bytes of file `fd` at offset `off` at `addr` with execute
/// permission: find where the file's link-time addresses are and register it.
pub fn mapped(fd: i32, addr: u64, len: u64, off: u64) {
    let Ok(h) = Headers::read(fd, Some(elf::EM_X86_64)) else { return };
    // The loadable segment whose file range holds `off` (ld.so maps each from its page).
    const PAGE: u64 = 4096;
    let Some(p) = h.loads().find(|p| {
        let start = p.offset & !(PAGE - 1);
        off >= start && off < p.offset + p.filesz.max(1)
    }) else {
        return;
    };
    let _ = len;
    // addr - off = bias + p_vaddr - p_offset (address and offset agree modulo the page).
    let bias = addr.wrapping_sub(off).wrapping_sub(p.vaddr).wrapping_add(p.offset);
    let mut path = [0u8; PATH_LEN];
    let n = sys::fd_path(fd, &mut path).unwrap_or(0);
    register(fd, bias, &path[..n]);
}

/// The guest unmapped (or replaced) `[addr, addr + len)`: retire every registration whose
/// code overlaps it, and the lookup records of its addresses.
pub fn unmapped(addr: u64, len: u64) {
    let end = addr.saturating_add(len);
    let n = COUNT.load(Ordering::Acquire);
    let hit = SLOTS[..n].iter().any(|s| {
        let st = s.state.load(Ordering::Acquire);
        (st == LIVE || st == MISSING) && s.lo.load(Ordering::Relaxed) < end && addr < s.hi.load(Ordering::Relaxed)
    });
    if !hit {
        return;
    }
    with_lock(|| {
        for s in &SLOTS[..COUNT.load(Ordering::Acquire)] {
            let st = s.state.load(Ordering::Acquire);
            let (lo, hi) = (s.lo.load(Ordering::Relaxed), s.hi.load(Ordering::Relaxed));
            if (st == LIVE || st == MISSING) && lo < end && addr < hi {
                s.state.store(DEAD, Ordering::Release);
                records::kill(lo, hi);
            }
        }
    });
}

/// Whether any unit is registered (a dynamically linked guest).
pub fn any() -> bool {
    COUNT.load(Ordering::Acquire) != 0
}

/// The resume point at run-time guest address `guest` in the registered units.
pub fn find(guest: u64) -> Option<&'static DispatchEntry> {
    let n = COUNT.load(Ordering::Acquire);
    for s in &SLOTS[..n] {
        if s.state.load(Ordering::Acquire) != LIVE {
            continue;
        }
        if guest < s.lo.load(Ordering::Relaxed) || guest >= s.hi.load(Ordering::Relaxed) {
            continue;
        }
        let off = guest.wrapping_sub(s.bias.load(Ordering::Relaxed));
        let len = usize::try_from(s.len.load(Ordering::Relaxed)).unwrap_or(0);
        // SAFETY: a LIVE slot's table is the loaded unit's dispatch table of `len` entries,
        // mapped for the rest of the process's life and never written.
        let t = unsafe { core::slice::from_raw_parts(s.table.load(Ordering::Relaxed) as *const DispatchEntry, len) };
        return t.binary_search_by_key(&off, |e| e.guest).ok().map(|i| &t[i]);
    }
    None
}

/// If `guest` lies in a mapped file without a unit: that file's path and content hash.
pub fn missing_at(guest: u64) -> Option<(&'static [u8], [u8; 32])> {
    let n = COUNT.load(Ordering::Acquire);
    SLOTS[..n].iter().find_map(|s| {
        let in_range = s.state.load(Ordering::Acquire) == MISSING
            && guest >= s.lo.load(Ordering::Relaxed)
            && guest < s.hi.load(Ordering::Relaxed);
        in_range.then(|| {
            // SAFETY: published slots' cells are never written again.
            let (p, sha) = unsafe { (&*s.path.get(), *s.sha.get()) };
            let len = p.iter().position(|&b| b == 0).unwrap_or(p.len());
            (&p[..len], sha)
        })
    })
}

/// Print why the guest cannot continue at `guest` if it lies in a file without a unit;
/// returns whether it did.
pub fn report_missing(guest: u64) -> bool {
    let Some((path, sha)) = missing_at(guest) else { return false };
    let mut h = PathBuf::new();
    hex(&sha, &mut h);
    let root = store_root();
    let root = if root.is_empty() { &b"(none known)"[..] } else { root };
    eprintln!(
        "hcontainer: {} (sha256 {}) has no {} translation in the store {}: run `hcontainer translate {} --target {} --store {}`",
        print::Lossy(path),
        print::Lossy(h.as_bytes()),
        HOST_ISA,
        print::Lossy(root),
        print::Lossy(path),
        HOST_ISA,
        print::Lossy(root)
    );
    true
}

/// Lookup records: a resume point with its run-time guest address, for translated code's
/// per-site caches. Kept in an open-addressed table keyed by guest address in
/// `layout::LOOKUP_BASE`, allocated from an arena after it; never freed.
pub mod records {
    use super::*;

    const SLOTS_LOG2: u32 = 20;
    const TABLE_SLOTS: usize = 1 << SLOTS_LOG2;
    const TABLE_BYTES: u64 = (TABLE_SLOTS * 16) as u64;
    const ARENA: u64 = layout::LOOKUP_BASE + TABLE_BYTES;
    const ARENA_END: u64 = layout::LOOKUP_BASE + layout::LOOKUP_SIZE;
    /// Key of a slot whose record was retired.
    const TOMB: u64 = u64::MAX;

    static MAPPED: AtomicU8 = AtomicU8::new(0);
    static NEXT: AtomicU64 = AtomicU64::new(ARENA);

    fn ensure_mapped() -> bool {
        match MAPPED.load(Ordering::Acquire) {
            1 => true,
            2 => false,
            _ => {
                let len = layout::LOOKUP_SIZE as usize;
                let ok = sys::map_anon_at(layout::LOOKUP_BASE as usize, len, sys::PROT_READ | sys::PROT_WRITE, sys::MAP_NORESERVE).is_ok();
                MAPPED.store(if ok { 1 } else { 2 }, Ordering::Release);
                ok
            }
        }
    }

    fn slot(i: usize) -> (&'static AtomicU64, &'static AtomicU64) {
        let at = layout::LOOKUP_BASE + 16 * i as u64;
        // SAFETY: the table is mapped (callers check `MAPPED`) and its words are only ever
        // accessed atomically.
        unsafe { (&*(at as *const AtomicU64), &*((at + 8) as *const AtomicU64)) }
    }

    fn home(guest: u64) -> usize {
        (guest.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS_LOG2)) as usize
    }

    /// The record of `guest` whose entry is `e` (found with [`find`]): an existing live one,
    /// or a new one.
    pub fn get(guest: u64, e: &DispatchEntry) -> *const DispatchEntry {
        if MAPPED.load(Ordering::Acquire) == 1 {
            let mut i = home(guest);
            for _ in 0..64 {
                let (k, r) = slot(i);
                match k.load(Ordering::Acquire) {
                    0 => break,
                    k if k == guest => return r.load(Ordering::Acquire) as *const DispatchEntry,
                    _ => i = (i + 1) % TABLE_SLOTS,
                }
            }
        }
        with_lock(|| {
            if !ensure_mapped() {
                return core::ptr::null();
            }
            let at = NEXT.fetch_add(24, Ordering::Relaxed);
            if at + 24 > ARENA_END {
                return core::ptr::null();
            }
            let rec = at as *mut DispatchEntry;
            // SAFETY: a fresh arena record nobody else knows yet.
            unsafe { rec.write(DispatchEntry { guest, func: e.func, entry: e.entry }) };
            let mut i = home(guest);
            for _ in 0..TABLE_SLOTS {
                let (k, r) = slot(i);
                let cur = k.load(Ordering::Acquire);
                if cur == guest {
                    return r.load(Ordering::Acquire) as *const DispatchEntry;
                }
                if cur == 0 {
                    r.store(rec as u64, Ordering::Release);
                    k.store(guest, Ordering::Release);
                    break;
                }
                i = (i + 1) % TABLE_SLOTS;
            }
            // A full table still hands out the record (it is just not found again).
            rec as *const DispatchEntry
        })
    }

    /// Retire the records of guest addresses in `[lo, hi)` (lock held).
    pub(super) fn kill(lo: u64, hi: u64) {
        if MAPPED.load(Ordering::Acquire) != 1 {
            return;
        }
        for i in 0..TABLE_SLOTS {
            let (k, r) = slot(i);
            let key = k.load(Ordering::Acquire);
            if key >= lo && key < hi && key != TOMB {
                let rec = r.load(Ordering::Acquire) as *const AtomicU64;
                // SAFETY: records are never freed; their first word is the guest address,
                // read atomically by translated code.
                unsafe { (*rec).store(u64::MAX, Ordering::Release) };
                k.store(TOMB, Ordering::Release);
            }
        }
    }
}

/// SHA-256 of the file open as `fd` (identified by `id`), in hex.
pub fn sha256_hex(fd: i32, id: &sys::FileId) -> Option<PathBuf> {
    let sha = with_lock(|| sha256_of(fd, id)).ok()?;
    let mut p = PathBuf::new();
    hex(&sha, &mut p);
    Some(p)
}

/// Register every executable file mapping of the guest, as `/proc/self/maps` lists them: a
/// process restored from a recoded image starts with fresh runtime data, while its guest
/// (ld.so, libraries, `dlopen`ed modules) is mapped already.
pub fn rescan() {
    let Ok(fd) = sys::open_read(b"/proc/self/maps\0") else { return };
    // Lines are read in chunks; a line cut at a chunk's end is read again with the next.
    let mut buf = [0u8; 1 << 14];
    let mut off = 0u64;
    loop {
        let n = match sys::pread(fd, &mut buf, off) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut used = 0;
        while let Some(nl) = chunk[used..].iter().position(|&c| c == b'\n') {
            rescan_line(&chunk[used..used + nl]);
            used += nl + 1;
        }
        if used == 0 {
            break;
        }
        off += used as u64;
    }
    sys::close(fd);
}

/// One `/proc/self/maps` line: `start-end perms offset dev inode path`.
fn rescan_line(line: &[u8]) {
    let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
    let (Some(range), Some(perms), Some(offset)) = (fields.next(), fields.next(), fields.next()) else { return };
    let (_, _) = (fields.next(), fields.next());
    let Some(path) = fields.next() else { return };
    if perms.get(2) != Some(&b'x') || !path.starts_with(b"/") {
        return;
    }
    let hex = |s: &[u8]| s.iter().try_fold(0u64, |a, &c| Some(a.checked_mul(16)? + u64::from((c as char).to_digit(16)?)));
    let mut r = range.split(|&c| c == b'-');
    let (Some(start), Some(end), Some(off)) = (r.next().and_then(hex), r.next().and_then(hex), hex(offset)) else { return };
    if layout::is_runtime_addr(start) {
        return;
    }
    let mut p = PathBuf::new();
    p.push(path);
    let Ok(fd) = sys::open_read(p.as_cstr()) else { return };
    mapped(fd, start, end - start, off);
    sys::close(fd);
}
