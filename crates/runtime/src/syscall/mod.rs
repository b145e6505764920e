//! The guest system call layer: x86-64 Linux numbers, arguments and structures → host.
//!
//! [`table`] says for every x86-64 number how it is handled: forwarded unchanged (with the
//! host's number), translated on asm-generic hosts (`generic`, arm64 and riscv64), emulated
//! on every host (memory map, signals, processes, `arch_prctl`), or refused with `-ENOSYS`.

pub mod conv;
#[cfg(not(target_arch = "x86_64"))]
mod generic;
mod process;
pub mod table;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hcontainer_abi::{flags, layout::GUEST_PAGE_SIZE, GuestState, Gpr};

use crate::arch::nr;
use crate::sys::{self, Errno};
use crate::{eprintln, mem, notify, signal, thread};
use table::{How, Sys};

static WARN: AtomicBool = AtomicBool::new(false);
static TRACE: AtomicBool = AtomicBool::new(false);
/// One bit per x86-64 number already warned about.
static WARNED: [AtomicU64; table::LEN.div_ceil(64)] = [const { AtomicU64::new(0) }; table::LEN.div_ceil(64)];

/// Enable the one-time warning for unsupported calls (`HCONTAINER_WARN_SYSCALLS`).
pub fn set_warn(on: bool) {
    WARN.store(on, Ordering::Relaxed);
}

/// Enable tracing of every guest system call on stderr (`HCONTAINER_TRACE_SYSCALLS`).
pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

/// Print one traced call: `hcontainer: [tid] name(args) = result`, with arguments shown by
/// their kind from the table (paths as strings).
fn trace(nr: u64, a: &Args, ret: i64) {
    use core::fmt::Write;
    let mut b = crate::print::Buf::new();
    let _ = write!(b, "[{}] ", sys::gettid());
    match table::lookup(nr) {
        Some(e) => {
            let _ = write!(b, "{}(", e.name);
            for (i, (kind, v)) in e.args.iter().zip(a).enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = match kind {
                    table::Arg::S if *v != 0 => {
                        // SAFETY: the guest passes a NUL-terminated string for this argument;
                        // at most 64 bytes are read.
                        let s = unsafe { crate::print::cstr(*v as *const u8, 64) };
                        write!(b, "{}\"{}\"", sep, crate::print::Lossy(s))
                    }
                    table::Arg::F | table::Arg::I if (*v as i64) < 4096 && (*v as i64) > -4096 => {
                        write!(b, "{}{}", sep, *v as i64)
                    }
                    _ => write!(b, "{}{:#x}", sep, v),
                };
            }
            let _ = write!(b, ")");
        }
        None => {
            let _ = write!(b, "syscall_{}({:#x}, {:#x}, {:#x}, ...)", nr, a[0], a[1], a[2]);
        }
    }
    if (-4096..1 << 32).contains(&ret) {
        eprintln!("hcontainer: {} = {}", crate::print::Lossy(b.as_bytes()), ret);
    } else {
        eprintln!("hcontainer: {} = {:#x}", crate::print::Lossy(b.as_bytes()), ret);
    }
}

/// Guest arguments in x86-64 order: rdi, rsi, rdx, r10, r8, r9.
pub type Args = [u64; 6];

/// `hc_syscall`: perform the guest `syscall` described by `state` (`state.rip` is the address
/// after the instruction, which is 2 bytes long).
///
/// Notify: a call that a notify interrupts (`-EINTR` with the request raised) is rewound —
/// `rip` back at the `syscall` instruction, `rax = orig_rax` — and the thread parks there;
/// once resumed in place, the call is issued again. A call that completed parks right after
/// it (the next instruction starts a block: a migration point) when a request is pending.
///
/// Guest signals: a pending one is delivered after the call, or when it interrupted the call
/// (which then fails with `-EINTR` or, with `SA_RESTART`, is issued again after the handler);
/// `rt_sigreturn` restores the interrupted context. Both change where the guest continues, so
/// the thread leaves its translated frames (host frames are only a cache) and continues in a
/// fresh dispatcher loop on its host stack.
///
/// # Safety
/// `state` must be the calling thread's valid `GuestState` inside its `ResumeRecord`, with
/// every guest register written back; pointer arguments are guest addresses (= host
/// addresses).
#[no_mangle]
pub unsafe extern "C" fn hc_syscall(state: *mut GuestState) {
    // SAFETY: per this function's contract the state lies in the thread's record.
    let rec = unsafe { thread::record_of(state) };
    let extra = thread::extra(rec);
    // SAFETY: the caller hands over exclusive use of its state for the call (`poll` is only
    // ever accessed atomically, through `thread::poll_word`).
    let st = unsafe { &mut *state };
    let next = st.rip;
    loop {
        let g = |r: Gpr| st.gpr[r as usize];
        let nr = g(Gpr::Rax);
        let a = [g(Gpr::Rdi), g(Gpr::Rsi), g(Gpr::Rdx), g(Gpr::R10), g(Gpr::R8), g(Gpr::R9)];
        st.orig_rax = nr;
        if nr == RT_SIGRETURN {
            if TRACE.load(Ordering::Relaxed) {
                trace(nr, &a, 0);
            }
            signal::sigreturn(st, rec);
            // SAFETY: the state is complete and `rip` is where the handler interrupted it.
            unsafe { restart_dispatch(rec, state) }
        }
        extra.runtime_hit.store(0, Ordering::SeqCst);
        let ret = do_syscall(st, nr, a);
        if ret == EINTR {
            let temp = signal::temp_mask(nr, &a);
            let blocked = temp.unwrap_or_else(|| signal::guest_mask(rec));
            let signalled = thread::poll_word(rec).load(Ordering::SeqCst) & notify::POLL_SIGNAL != 0;
            if let Some(sig) = signal::take_deliverable(rec, blocked) {
                if signal::restarts(nr, sig) {
                    st.rip = next.wrapping_sub(SYSCALL_INSN_LEN);
                    st.gpr[Gpr::Rax as usize] = nr;
                    st.orig_rax = u64::MAX;
                } else {
                    finish(st, nr, &a, ret);
                }
                let old = signal::guest_mask(rec);
                signal::deliver(st, rec, sig, old);
                // SAFETY: the state is complete, `rip` is the handler.
                unsafe { restart_dispatch(rec, state) }
            }
            let by_runtime = extra.runtime_hit.swap(0, Ordering::SeqCst) != 0;
            if notify::requested(rec) {
                st.rip = next.wrapping_sub(SYSCALL_INSN_LEN);
                st.gpr[Gpr::Rax as usize] = nr;
                notify::park(rec);
                st.rip = next;
                continue;
            }
            if by_runtime || signalled {
                // RESUME_SIGNAL interrupted the call, or a guest signal that is blocked by
                // now cancelled it: not the guest's business.
                continue;
            }
        }
        finish(st, nr, &a, ret);
        break;
    }
    if thread::poll_word(rec).load(Ordering::SeqCst) & notify::POLL_SIGNAL != 0 {
        let old = signal::guest_mask(rec);
        if let Some(sig) = signal::take_deliverable(rec, old) {
            signal::deliver(st, rec, sig, old);
            // SAFETY: the state is complete, `rip` is the handler.
            unsafe { restart_dispatch(rec, state) }
        }
    }
    if notify::requested(rec) {
        notify::park(rec);
    }
}

/// Complete a guest call: result in rax, rcx and r11 as the `syscall` instruction leaves them.
fn finish(st: &mut GuestState, nr: u64, a: &Args, ret: i64) {
    if TRACE.load(Ordering::Relaxed) {
        trace(nr, a, ret);
    }
    st.gpr[Gpr::Rax as usize] = ret as u64;
    st.gpr[Gpr::Rcx as usize] = st.rip;
    st.gpr[Gpr::R11 as usize] = guest_rflags(st);
    st.orig_rax = u64::MAX;
}

/// Continue the guest at `state.rip` in a fresh dispatcher loop at the top of the thread's
/// host stack (its record), leaving every translated frame behind.
///
/// # Safety
/// `state` must be complete, inside record `rec` of the calling thread, whose host stack
/// ends at `rec`.
unsafe fn restart_dispatch(rec: thread::Record, state: *mut GuestState) -> ! {
    // SAFETY: forwarded contract; nothing of the old frames is used again.
    unsafe { crate::arch::switch_stack(rec.as_ptr() as usize, crate::dispatch::run_main, state as usize) }
}

/// x86-64 `rt_sigreturn`.
const RT_SIGRETURN: u64 = 15;
/// Length of the x86-64 `syscall` instruction (0f 05).
const SYSCALL_INSN_LEN: u64 = 2;
/// `-EINTR`.
const EINTR: i64 = -4;

/// Never raised: the poll word of code running off the runtime's host stacks.
static NO_POLL: u64 = 0;

/// The calling thread's poll word, which cancels a guest system call about to start.
fn poll_ptr() -> *const u64 {
    thread::current_record().map_or(&NO_POLL as *const u64, |r| thread::poll_word(r).as_ptr() as *const u64)
}

/// The guest's architectural RFLAGS.
fn guest_rflags(st: &GuestState) -> u64 {
    flags::materialize(st.cc_op, st.cc_dst, st.cc_src1, st.cc_src2) | (st.rflags_other & !flags::bits::ARITH)
}

/// Result of a host call as the guest sees it.
fn ret(r: Result<usize, Errno>) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => e.neg(),
    }
}

/// Issue host call `host_nr` with guest arguments as they are.
fn host(host_nr: usize, a: Args) -> i64 {
    let a = a.map(|v| v as usize);
    // SAFETY: forwarded calls take the same arguments and structures on this host as on
    // x86-64 (that is what the table's classification asserts); pointers are guest memory;
    // the poll word lives as long as the thread.
    raw_ret(unsafe { crate::arch::guest_syscall(host_nr, a, poll_ptr()) })
}

/// A raw host result as the guest sees it (`-errno` stays).
fn raw_ret(r: isize) -> i64 {
    r as i64
}

/// `-ENOSYS`, with a one-time warning when enabled.
fn unsupported(nr: u64) -> i64 {
    if WARN.load(Ordering::Relaxed) {
        let i = usize::try_from(nr).unwrap_or(usize::MAX).min(table::LEN - 1);
        let bit = 1u64 << (i % 64);
        if WARNED[i / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            let name = table::lookup(nr).map_or("unknown", |e| e.name);
            eprintln!("hcontainer: unsupported syscall {} ({})", nr, name);
        }
    }
    Errno::ENOSYS.neg()
}

/// Forward a [`How::Pass`] call with the host's number.
fn pass(nr: u64, e: &Sys, a: Args) -> i64 {
    if cfg!(target_arch = "x86_64") {
        host(nr as usize, a)
    } else if e.generic == table::NONE {
        unsupported(nr)
    } else {
        host(usize::from(e.generic), a)
    }
}

fn do_syscall(st: &mut GuestState, nr: u64, a: Args) -> i64 {
    let Some(e) = table::lookup(nr) else {
        return unsupported(nr);
    };
    let mut scratch = signal::MaskScratch::default();
    let a = signal::strip_reserved(nr, a, &mut scratch);
    // Calls that concern the guest program as a whole rather than its memory or files.
    let intercepted = match nr {
        59 => crate::loader::execve(a[0], a[1], a[2]),
        2 => crate::loader::open(a[0], a[1]),
        257 => crate::loader::open(a[1], a[2]),
        89 => crate::loader::readlink(a[0], a[1], a[2]),
        267 => crate::loader::readlink(a[1], a[2], a[3]),
        _ => None,
    };
    if let Some(r) = intercepted {
        return r;
    }
    match e.how {
        How::Pass => pass(nr, e, a),
        How::Nosys => unsupported(nr),
        How::Emulate => emulate(st, nr, e, a),
        #[cfg(target_arch = "x86_64")]
        How::Compat => host(nr as usize, a),
        #[cfg(not(target_arch = "x86_64"))]
        How::Compat => generic::compat(st, nr, e, a),
    }
}

const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const PROT_EXEC: u64 = 4;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MAP_32BIT: u64 = 0x40;
const MREMAP_FIXED: u64 = 2;

const PR_SET_SECCOMP: u64 = 22;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

fn emulate(st: &mut GuestState, nr: u64, e: &Sys, a: Args) -> i64 {
    match nr {
        9 => {
            let [addr, len, prot, flags, fd, off] = a;
            if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
                crate::units::unmapped(addr, len);
            }
            let r = mmap(a);
            if r >= 0 && prot & PROT_EXEC != 0 && flags & MAP_ANONYMOUS == 0 {
                crate::units::mapped(fd as i32, r as u64, len, off);
            }
            r
        }
        // mprotect, munmap, madvise, pkey_mprotect, mseal: never on hcontainer's range.
        10 | 11 | 28 | 329 | 462 => match mem::check_guest_range(a[0], a[1]) {
            Ok(()) => {
                let r = pass(nr, e, a);
                if nr == 11 && r == 0 {
                    crate::units::unmapped(a[0], a[1]);
                    if PLACE_MAPPINGS {
                        crate::place::with(|p| p.freed(a[0], mem::page_up(a[1])));
                    }
                }
                r
            }
            Err(err) => err.neg(),
        },
        25 => mremap(a),
        12 => mem::brk(a[0]) as i64,
        // `int` arguments (signal numbers, option codes): only the low 32 bits count.
        13 => ret(signal::rt_sigaction(a[0] & 0xffff_ffff, a[1], a[2], a[3]).map(|v| v as usize)),
        14 => ret(signal::rt_sigprocmask(a[0], a[1], a[2], a[3]).map(|v| v as usize)),
        131 => ret(signal::sigaltstack(a[0], a[1]).map(|v| v as usize)),
        56 => process::clone(st, a),
        60 => process::exit(st, a[0]),
        57 | 58 => process::fork(),
        158 => arch_prctl(st, a[0] & 0xffff_ffff, a[1]),
        // prctl(PR_SET_SECCOMP): a guest filter speaks x86-64 numbers and would judge the
        // runtime's host calls; refused as by a kernel without seccomp.
        157 if a[0] & 0xffff_ffff == PR_SET_SECCOMP => Errno::EINVAL.neg(),
        157 => pass(nr, e, a),
        // rt_sigreturn (no guest signal frames exist yet), rseq (glibc falls back), clone3
        // (glibc falls back to clone).
        _ => unsupported(nr),
    }
}

/// Whether the runtime places the guest's non-fixed mappings itself (see [`mem::place`]):
/// on hosts whose kernel may hand out addresses above x86-64's user space.
const PLACE_MAPPINGS: bool = !cfg!(target_arch = "x86_64");
/// End of x86-64's user address space (47 bits, less the last page).
const X86_USER_END: u64 = 0x7fff_ffff_f000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_DONTUNMAP: u64 = 4;

/// Outcome of one placement attempt.
enum Try {
    Placed,
    Occupied,
    Failed(i64),
}

/// Map exactly at `at` (never replacing anything).
fn mmap_at(at: u64, len: u64, prot: u64, flags: u64, fd: u64, off: u64) -> Try {
    let flags = (flags & !MAP_FIXED) | MAP_FIXED_NOREPLACE;
    let r = host(nr::MMAP, [at, len, prot, flags, fd, off]);
    if r == Errno::EEXIST.neg() {
        Try::Occupied
    } else if r < 0 {
        Try::Failed(r)
    } else if r as u64 == at {
        Try::Placed
    } else {
        // qemu-user treats MAP_FIXED_NOREPLACE as a hint.
        // SAFETY: `r` is the mapping this call just created.
        let _ = unsafe { sys::munmap(r as usize, len as usize) };
        Try::Occupied
    }
}

/// Choose an address for a non-fixed guest mapping of `len` bytes and map it with `map`;
/// `None` when no range was found (the caller lets the kernel choose).
fn place(hint: u64, len: u64, map: impl Fn(u64) -> Try) -> Option<i64> {
    let len = mem::page_up(len);
    if hint != 0 && hint.is_multiple_of(GUEST_PAGE_SIZE) && hint.checked_add(len).is_some_and(|e| e <= X86_USER_END) {
        match map(hint) {
            Try::Placed => return Some(hint as i64),
            Try::Failed(r) => return Some(r),
            Try::Occupied => {}
        }
    }
    crate::place::with(|p| {
        for _ in 0..32 {
            let (at, src) = p.candidate(len)?;
            match map(at) {
                Try::Placed => {
                    p.taken(at, len, src);
                    return Some(at as i64);
                }
                Try::Occupied => p.collided(at, src),
                Try::Failed(r) => return Some(r),
            }
        }
        None
    })
}

fn mremap(a: Args) -> i64 {
    let [old, old_len, new_len, flags, new_addr, _] = a;
    if mem::overlaps_runtime(old, old_len) || (flags & MREMAP_FIXED != 0 && mem::overlaps_runtime(new_addr, new_len)) {
        return Errno::EINVAL.neg();
    }
    if !PLACE_MAPPINGS || flags & MREMAP_MAYMOVE == 0 || flags & MREMAP_FIXED != 0 {
        return host(nr::MREMAP, a);
    }
    // Grow or shrink in place if possible (MREMAP_DONTUNMAP always moves), else move to a
    // range chosen like mmap's.
    if flags & MREMAP_DONTUNMAP == 0 {
        let r = host(nr::MREMAP, [old, old_len, new_len, flags & !MREMAP_MAYMOVE, 0, 0]);
        if r != Errno::ENOMEM.neg() {
            return r;
        }
    }
    let moved = place(0, new_len, |at| {
        // Reserve the target first: MREMAP_FIXED would replace whatever is there.
        match mmap_at(at, new_len, 0, 0x22, u64::MAX, 0) {
            Try::Placed => {}
            other => return other,
        }
        let r = host(nr::MREMAP, [old, old_len, new_len, flags | MREMAP_FIXED, at, 0]);
        if r < 0 {
            // SAFETY: the reservation made above is unused.
            let _ = unsafe { sys::munmap(at as usize, new_len as usize) };
            return Try::Failed(r);
        }
        Try::Placed
    });
    match moved {
        Some(r) => {
            if r >= 0 && flags & MREMAP_DONTUNMAP == 0 {
                crate::place::with(|p| p.freed(old, mem::page_up(old_len)));
            }
            r
        }
        None => host(nr::MREMAP, a),
    }
}

/// A guest `mmap`, placed as every guest mapping is (for the launcher's interpreter).
pub(crate) fn guest_mmap(a: Args) -> i64 {
    mmap(a)
}

fn mmap(a: Args) -> i64 {
    let [addr, len, prot, flags, fd, off] = a;
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if len == 0 {
        return Errno::EINVAL.neg();
    }
    let mut hint = addr;
    if mem::overlaps_runtime(addr, len) {
        if fixed {
            return Errno::ENOMEM.neg();
        }
        hint = 0;
    }
    // MAP_32BIT exists on x86-64 only; elsewhere the bit means nothing and is dropped.
    let flags = if cfg!(target_arch = "x86_64") { flags } else { flags & !MAP_32BIT };
    if PLACE_MAPPINGS && !fixed {
        if let Some(r) = place(hint, len, |at| mmap_at(at, len, prot, flags, fd, off)) {
            return r;
        }
    }
    let r = host(nr::MMAP, [hint, len, prot, flags, fd, off]);
    if r < 0 {
        return r;
    }
    let got = r as u64;
    let undo = || {
        // SAFETY: `got` is the mapping this call just created.
        let _ = unsafe { sys::munmap(got as usize, len as usize) };
    };
    if flags & MAP_FIXED_NOREPLACE != 0 && got != addr {
        // qemu-user may treat MAP_FIXED_NOREPLACE as a hint.
        undo();
        return Errno::EEXIST.neg();
    }
    if mem::overlaps_runtime(got, len) {
        undo();
        return Errno::ENOMEM.neg();
    }
    r
}

fn arch_prctl(st: &mut GuestState, code: u64, addr: u64) -> i64 {
    match code {
        ARCH_SET_FS => st.fs_base = addr,
        ARCH_SET_GS => st.gs_base = addr,
        ARCH_GET_FS | ARCH_GET_GS => {
            let v = if code == ARCH_GET_FS { st.fs_base } else { st.gs_base };
            // SAFETY: the guest passes the address of a u64 to fill.
            unsafe { (addr as *mut u64).write_unaligned(v) };
        }
        _ => return Errno::EINVAL.neg(),
    }
    0
}

/// Issue a host call with explicit (already host-shaped) arguments.
#[allow(dead_code)]
fn host_raw(host_nr: usize, a: [usize; 6]) -> i64 {
    // SAFETY: callers build arguments valid for `host_nr` on this host; the poll word lives
    // as long as the thread.
    raw_ret(unsafe { crate::arch::guest_syscall(host_nr, a, poll_ptr()) })
}
