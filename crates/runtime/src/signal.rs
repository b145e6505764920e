//! Guest signals: the guest's `rt_sigaction` table (x86-64 `struct sigaction` layout:
//! handler, flags, restorer, mask), its alternate signal stack, its signal mask, and delivery
//! of asynchronous signals to guest handlers. `SIG_DFL`/`SIG_IGN` are applied to the host.
//!
//! Delivery: for a guest handler of an asynchronous signal (anything but the faults SIGILL,
//! SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGSYS) the host gets a handler of the runtime that only
//! records the signal as pending in the thread's record page (with its `siginfo`), raises
//! `POLL_SIGNAL` in `state.poll` and cancels a guest system call about to start. The
//! dispatcher (at a migration point) or `hc_syscall` (after the call, or when the call was
//! interrupted: `-EINTR`, or restarted with `SA_RESTART` for calls Linux restarts) then builds
//! the x86-64 `rt_sigframe` on the guest stack (return address `sa_restorer`, `ucontext` with
//! the `sigcontext` and the mask to restore, `siginfo`, the `fxsave` image of x87/SSE state),
//! blocks `sa_mask` (and the signal unless `SA_NODEFER`) and enters the handler with rdi, rsi,
//! rdx as Linux does. The guest's `rt_sigreturn` restores all of it. Standard signals do not
//! queue (as in Linux); real-time signals do not queue either here.
//!
//! The notify signals (`NOTIFY_SIGNAL`, `RESUME_SIGNAL`) belong to the runtime: the guest's
//! actions for them are only recorded, and every signal mask the guest hands to the kernel
//! (`rt_sigprocmask`, `rt_sigsuspend`, `ppoll`, `pselect6`, `epoll_pwait`, `epoll_pwait2`,
//! `io_pgetevents`, `rt_sigtimedwait`, `signalfd`) reaches the host without them, so nothing
//! the guest does blocks, consumes or replaces them. `rt_sigprocmask` still reports the
//! guest's own view of those two bits.

use core::sync::atomic::{AtomicU64, Ordering};

use hcontainer_abi::calls::{NOTIFY_SIGNAL, RESUME_SIGNAL};

use hcontainer_abi::{flags, GuestState, Gpr};

use crate::arch::nr;
use crate::notify::POLL_SIGNAL;
use crate::sys::{self, Errno};
use crate::thread;

/// Signal mask bits (bit `n - 1` for signal `n`) the runtime keeps for itself.
pub const RESERVED_MASK: u64 = hcontainer_abi::calls::RESERVED_SIGNALS;

/// True for the runtime's own signals.
fn reserved(sig: u64) -> bool {
    sig == NOTIFY_SIGNAL as u64 || sig == RESUME_SIGNAL as u64
}

const NSIG: usize = 64;
const SIGKILL: u64 = 9;
const SIGSTOP: u64 = 19;
const SIG_IGN: u64 = 1;
const SA_NOCLDSTOP: u64 = 1;
const SA_NOCLDWAIT: u64 = 2;
const SA_RESTART: u64 = 0x1000_0000;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SIG_DFL: u64 = 0;

/// Per signal (index = number): handler, flags, restorer, mask, as the guest set them.
static ACTIONS: [[AtomicU64; 4]; NSIG + 1] = [const { [const { AtomicU64::new(0) }; 4] }; NSIG + 1];

/// `rt_sigaction(sig, act, oact, sigsetsize)` with x86-64 structures.
pub fn rt_sigaction(sig: u64, act: u64, oact: u64, size: u64) -> Result<u64, Errno> {
    if size != 8 || sig == 0 || sig > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    if act != 0 && (sig == SIGKILL || sig == SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let slot = &ACTIONS[sig as usize];
    let new = if act != 0 {
        let mut v = [0u64; 4];
        // SAFETY: the guest passes a 32-byte x86-64 `struct sigaction`; guest addresses are
        // host addresses.
        unsafe { core::ptr::copy_nonoverlapping(act as *const u64, v.as_mut_ptr(), 4) };
        Some(v)
    } else {
        None
    };
    if oact != 0 {
        let old: [u64; 4] = core::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
        // SAFETY: the guest passes room for a 32-byte `struct sigaction`.
        unsafe { core::ptr::copy_nonoverlapping(old.as_ptr(), oact as *mut u64, 4) };
    }
    if let Some(v) = new {
        if v[0] <= SIG_IGN && !reserved(sig) {
            set_host_disposition(sig, v[0], v[1] & (SA_NOCLDSTOP | SA_NOCLDWAIT | SA_RESTART), v[3])?;
        } else if v[0] > SIG_IGN && delivered(sig) {
            let h: extern "C" fn(i32, usize, usize) = on_guest_signal;
            crate::notify::set_host_handler(sig as usize, h as usize, v[1] & (SA_NOCLDSTOP | SA_NOCLDWAIT))?;
        }
        for (a, x) in slot.iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }
    Ok(0)
}

/// Make the guest's signal actions effective in a runtime whose data is fresh while the
/// process is not (a native image recoded into a translated one). Recode writes the guest's
/// actions into [`ACTIONS`] (this symbol, 65 entries of handler, flags, restorer, mask,
/// indexed by signal number) and leaves the host's at their defaults: the runtime's delivery
/// handler is installed for each guest handler. A host handler outside hcontainer's range
/// (left by a recoder that kept the native actions) is the guest's own x86-64 code: it is
/// adopted the same way (fault handlers, which the runtime does not deliver, become `SIG_DFL`
/// on the host; riscv64's host `struct sigaction` has no restorer, so one is lost there).
pub fn adopt_host_actions() {
    for sig in 1..=NSIG as u64 {
        if sig == SIGKILL || sig == SIGSTOP || reserved(sig) {
            continue;
        }
        let [h0, f0, _, _] = core::array::from_fn::<u64, 4, _>(|i| ACTIONS[sig as usize][i].load(Ordering::Relaxed));
        if h0 > SIG_IGN {
            if delivered(sig) {
                let h: extern "C" fn(i32, usize, usize) = on_guest_signal;
                let _ = crate::notify::set_host_handler(sig as usize, h as usize, f0 & (SA_NOCLDSTOP | SA_NOCLDWAIT));
            }
            continue;
        }
        let mut old = [0u64; 4];
        // SAFETY: reads the host action into `old` (room for every host layout); sets nothing.
        if unsafe { sys::syscall(nr::RT_SIGACTION, [sig as usize, 0, old.as_mut_ptr() as usize, 8, 0, 0]) }.is_err() {
            continue;
        }
        #[cfg(target_arch = "riscv64")]
        let (handler, fl, restorer, mask) = (old[0], old[1], 0, old[2]);
        #[cfg(not(target_arch = "riscv64"))]
        let (handler, fl, restorer, mask) = (old[0], old[1], old[2], old[3]);
        if handler <= SIG_IGN || hcontainer_abi::layout::is_runtime_addr(handler) {
            continue;
        }
        for (a, x) in ACTIONS[sig as usize].iter().zip([handler, fl, restorer, mask]) {
            a.store(x, Ordering::Relaxed);
        }
        if delivered(sig) {
            let h: extern "C" fn(i32, usize, usize) = on_guest_signal;
            let _ = crate::notify::set_host_handler(sig as usize, h as usize, fl & (SA_NOCLDSTOP | SA_NOCLDWAIT));
        } else {
            // A fault handler of the guest is not run: the fault ends the process as it
            // would without one, never by jumping into guest code on the host.
            let _ = set_host_disposition(sig, SIG_DFL, 0, 0);
        }
    }
}

/// Whether the runtime delivers guest handlers of `sig` (asynchronous signals).
fn delivered(sig: u64) -> bool {
    !matches!(sig, 4 | 5 | 7 | 8 | 9 | 11 | 19 | 31) && !reserved(sig) && (1..=NSIG as u64).contains(&sig)
}

/// Apply `SIG_DFL` or `SIG_IGN` to the host.
fn set_host_disposition(sig: u64, handler: u64, flags: u64, mask: u64) -> Result<(), Errno> {
    // Host `struct sigaction`: riscv64 has no sa_restorer.
    #[cfg(target_arch = "riscv64")]
    let act: [u64; 4] = [handler, flags, mask, 0];
    #[cfg(not(target_arch = "riscv64"))]
    let act: [u64; 4] = [handler, flags, 0, mask];
    // SAFETY: `act` is a valid host sigaction without handler code; no old action is read.
    unsafe { sys::syscall(nr::RT_SIGACTION, [sig as usize, act.as_ptr() as usize, 0, 8, 0, 0]) }
        .map(|_| ())
}

const SS_ONSTACK: u64 = 1;
const SS_DISABLE: u64 = 2;
const SS_AUTODISARM: u64 = 1 << 31;
const MINSIGSTKSZ: u64 = 2048;

/// The guest alternate signal stack of the thread of `rec` as an x86-64 `stack_t` (ss_sp,
/// ss_flags, ss_size), `SS_DISABLE` when it has none.
fn altstack(rec: thread::Record) -> [u64; 3] {
    let w = thread::altstack_words(rec);
    let v: [u64; 3] = core::array::from_fn(|i| w[i].load(Ordering::Relaxed));
    if v[2] == 0 {
        [0, SS_DISABLE, 0]
    } else {
        v
    }
}

/// `sigaltstack(ss, old_ss)` of the calling thread: recorded for the guest in the thread's
/// record page (there is no host handler to use it), where recode finds it.
pub fn sigaltstack(ss: u64, old: u64) -> Result<u64, Errno> {
    let rec = thread::current_record().ok_or(Errno::EINVAL)?;
    sigaltstack_of(rec, ss, old)
}

fn sigaltstack_of(rec: thread::Record, ss: u64, old: u64) -> Result<u64, Errno> {
    let new = if ss != 0 {
        let mut v = [0u64; 3];
        // SAFETY: the guest passes a 24-byte x86-64 `stack_t`.
        unsafe { core::ptr::copy_nonoverlapping(ss as *const u64, v.as_mut_ptr(), 3) };
        let flags = v[1] & 0xffff_ffff;
        if flags & !(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & SS_DISABLE == 0 && v[2] < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        // Stored without SS_ONSTACK, which only describes the call; none is size 0.
        Some(if flags & SS_DISABLE != 0 { [0, 0, 0] } else { [v[0], flags & !SS_ONSTACK, v[2]] })
    } else {
        None
    };
    if old != 0 {
        let v = altstack(rec);
        // SAFETY: the guest passes room for a 24-byte `stack_t`.
        unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), old as *mut u64, 3) };
    }
    if let Some(v) = new {
        for (a, x) in thread::altstack_words(rec).iter().zip(v) {
            a.store(x, Ordering::Relaxed);
        }
    }
    Ok(0)
}

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

/// The host thread's blocked mask.
fn host_mask() -> u64 {
    let mut old = 0u64;
    // SAFETY: reads the mask into `old` (8 bytes), changes nothing.
    let _ = unsafe { sys::syscall(nr::RT_SIGPROCMASK, [SIG_BLOCK as usize, 0, &mut old as *mut u64 as usize, 8, 0, 0]) };
    old
}

/// The calling thread's blocked mask as the guest sees it.
pub fn guest_mask(rec: thread::Record) -> u64 {
    (host_mask() & !RESERVED_MASK) | thread::extra(rec).guest_blocked_reserved.load(Ordering::Relaxed)
}

/// Set the calling thread's blocked mask as the guest asks (the host never blocks the
/// runtime's signals); a pending guest signal it unblocks is delivered at the next chance.
pub fn set_guest_mask(rec: thread::Record, m: u64) {
    let m = m & !((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));
    let host = m & !RESERVED_MASK;
    // SAFETY: `host` is an 8-byte sigset; no old mask is read.
    let _ = unsafe { sys::syscall(nr::RT_SIGPROCMASK, [SIG_SETMASK as usize, &host as *const u64 as usize, 0, 8, 0, 0]) };
    let e = thread::extra(rec);
    e.guest_blocked_reserved.store(m & RESERVED_MASK, Ordering::Relaxed);
    if e.pending.load(Ordering::SeqCst) & !m != 0 {
        thread::poll_word(rec).fetch_or(POLL_SIGNAL, Ordering::SeqCst);
    }
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`: the host mask never holds the runtime's
/// signals; the guest's wish for them is kept per thread and shown in `oldset`.
pub fn rt_sigprocmask(how: u64, set: u64, old: u64, size: u64) -> Result<u64, Errno> {
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let Some(rec) = thread::current_record() else {
        return Err(Errno::EINVAL);
    };
    let cur = guest_mask(rec);
    if set != 0 {
        // SAFETY: the guest passes an 8-byte sigset.
        let m = unsafe { (set as *const u64).read_unaligned() };
        let new = match how & 0xffff_ffff {
            SIG_BLOCK => cur | m,
            SIG_UNBLOCK => cur & !m,
            SIG_SETMASK => m,
            _ => return Err(Errno::EINVAL),
        };
        if old != 0 {
            // SAFETY: the guest passes room for an 8-byte sigset.
            unsafe { (old as *mut u64).write_unaligned(cur) };
        }
        set_guest_mask(rec, new);
    } else if old != 0 {
        // SAFETY: as above.
        unsafe { (old as *mut u64).write_unaligned(cur) };
    }
    Ok(0)
}

/// Copies of guest signal sets with the runtime's signals removed, for one call.
#[derive(Default)]
pub struct MaskScratch {
    set: u64,
    pair: [u64; 2],
}

/// Make the guest's signal-set arguments of call `nr` point at copies without the runtime's
/// signals (`scratch` holds them for the call's duration).
pub fn strip_reserved(nr: u64, mut a: [u64; 6], scratch: &mut MaskScratch) -> [u64; 6] {
    // (argument index, whether it points at a { set, size } pair)
    let (idx, pair) = match nr {
        130 | 128 => (0, false),
        271 => (3, false),
        281 | 441 => (4, false),
        282 | 289 => (1, false),
        270 | 333 => (5, true),
        _ => return a,
    };
    let p = a[idx];
    if p == 0 {
        return a;
    }
    if pair {
        // { const sigset_t *ss; size_t ss_len }
        // SAFETY: the guest passes a 16-byte pair for this argument.
        let v = unsafe { (p as *const [u64; 2]).read_unaligned() };
        if v[0] == 0 {
            return a;
        }
        // SAFETY: the pair names an 8-byte sigset.
        scratch.set = unsafe { (v[0] as *const u64).read_unaligned() } & !RESERVED_MASK;
        scratch.pair = [&scratch.set as *const u64 as u64, v[1]];
        a[idx] = scratch.pair.as_ptr() as u64;
    } else {
        // SAFETY: the guest passes an 8-byte sigset for this argument.
        scratch.set = unsafe { (p as *const u64).read_unaligned() } & !RESERVED_MASK;
        a[idx] = &scratch.set as *const u64 as u64;
    }
    a
}

/// Host handler of a guest signal: record it for delivery at the next chance.
extern "C" fn on_guest_signal(sig: i32, info: usize, uc: usize) {
    let Some(rec) = thread::current_record() else {
        return;
    };
    let e = thread::extra(rec);
    let sig = sig as u64;
    if !(1..=NSIG as u64).contains(&sig) {
        return;
    }
    if sig < 32 && info != 0 {
        for (i, w) in e.info[sig as usize].iter().enumerate() {
            // SAFETY: the kernel passes a 128-byte `siginfo_t`; its first 48 bytes are read.
            w.store(unsafe { (info as *const u64).add(i).read() }, Ordering::Relaxed);
        }
    }
    e.pending.fetch_or(1 << (sig - 1), Ordering::SeqCst);
    thread::poll_word(rec).fetch_or(POLL_SIGNAL, Ordering::SeqCst);
    crate::notify::cancel_syscall(uc);
}

/// A pending guest signal not blocked by `blocked`, lowest number first. Drops the
/// `POLL_SIGNAL` request when there is none.
pub fn take_deliverable(rec: thread::Record, blocked: u64) -> Option<u64> {
    let poll = thread::poll_word(rec);
    poll.fetch_and(!POLL_SIGNAL, Ordering::SeqCst);
    let d = thread::extra(rec).pending.load(Ordering::SeqCst) & !blocked & !RESERVED_MASK;
    if d == 0 {
        return None;
    }
    poll.fetch_or(POLL_SIGNAL, Ordering::SeqCst);
    Some(u64::from(d.trailing_zeros()) + 1)
}

/// The mask a call with a temporary signal mask (`rt_sigsuspend`, `ppoll`, `pselect6`,
/// `epoll_pwait`, `epoll_pwait2`) had in effect, from its guest arguments.
pub fn temp_mask(nr: u64, a: &[u64; 6]) -> Option<u64> {
    let p = match nr {
        130 => a[0],
        271 => a[3],
        281 | 441 => a[4],
        270 if a[5] != 0 => {
            // SAFETY: the guest passes a { sigset pointer, size } pair.
            unsafe { (a[5] as *const u64).read_unaligned() }
        }
        _ => 0,
    };
    // SAFETY: the guest passes an 8-byte sigset there.
    (p != 0).then(|| unsafe { (p as *const u64).read_unaligned() })
}

/// Whether call `nr` interrupted by `sig` is restarted (`SA_RESTART`, and a call Linux
/// restarts: not the sleeping, polling, signal-waiting and System V IPC ones).
pub fn restarts(nr: u64, sig: u64) -> bool {
    let never = matches!(nr, 7 | 23 | 270 | 271 | 232 | 281 | 441 | 35 | 230 | 34 | 130 | 128 | 65 | 220 | 69 | 70 | 208 | 333);
    !never && ACTIONS[sig as usize][1].load(Ordering::Relaxed) & SA_RESTART != 0
}

/// Size of the x86-64 `rt_sigframe`: return address, `ucontext` (304), `siginfo` (128).
const FRAME_WORDS: usize = 55;
/// Word index of `uc_mcontext` in the frame, of `uc_sigmask`, of `siginfo`.
const MC: usize = 6;
const UC_SIGMASK: usize = 38;
const INFO: usize = 39;
/// `fxsave` image size.
const FX_SIZE: u64 = 512;
/// x86-64 user code and stack segment selectors.
const USER_CS: u64 = 0x33;
const USER_SS: u64 = 0x2b;
const DF: u64 = 1 << 10;
const TF: u64 = 1 << 8;
const RF: u64 = 1 << 16;
const AC: u64 = 1 << 18;
const ID: u64 = 1 << 21;

/// sigcontext order of the general-purpose registers (r8..r15, rdi, rsi, rbp, rbx, rdx, rax,
/// rcx, rsp).
const MC_GPRS: [Gpr; 16] = [
    Gpr::R8, Gpr::R9, Gpr::R10, Gpr::R11, Gpr::R12, Gpr::R13, Gpr::R14, Gpr::R15,
    Gpr::Rdi, Gpr::Rsi, Gpr::Rbp, Gpr::Rbx, Gpr::Rdx, Gpr::Rax, Gpr::Rcx, Gpr::Rsp,
];

fn guest_rflags(st: &GuestState) -> u64 {
    flags::materialize(st.cc_op, st.cc_dst, st.cc_src1, st.cc_src2) | (st.rflags_other & !flags::bits::ARITH)
}

/// The `fxsave` image of the guest's x87/SSE state.
fn fxsave(st: &GuestState) -> [u8; FX_SIZE as usize] {
    let mut fx = [0u8; FX_SIZE as usize];
    fx[0..2].copy_from_slice(&st.fpu_cw.to_le_bytes());
    let fsw = (st.fpu_sw & !0x3800) | (((st.fpu_top & 7) as u16) << 11);
    fx[2..4].copy_from_slice(&fsw.to_le_bytes());
    fx[4] = st.fpu_tag as u8;
    fx[24..28].copy_from_slice(&st.mxcsr.to_le_bytes());
    fx[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    for i in 0..8 {
        let r = &st.fpu_regs[(st.fpu_top as usize + i) & 7].bytes;
        fx[32 + 16 * i..32 + 16 * i + 10].copy_from_slice(&r[..10]);
    }
    for i in 0..16 {
        fx[160 + 16 * i..176 + 16 * i].copy_from_slice(&st.xmm[i]);
    }
    fx
}

/// Load the guest's x87/SSE state from an `fxsave` image.
fn fxrstor(st: &mut GuestState, fx: &[u8; FX_SIZE as usize]) {
    st.fpu_cw = u16::from_le_bytes([fx[0], fx[1]]);
    let fsw = u16::from_le_bytes([fx[2], fx[3]]);
    st.fpu_top = u32::from((fsw >> 11) & 7);
    st.fpu_sw = fsw & !0x3800;
    st.fpu_tag = u32::from(fx[4]);
    st.mxcsr = u32::from_le_bytes([fx[24], fx[25], fx[26], fx[27]]);
    for i in 0..8 {
        let r = &mut st.fpu_regs[(st.fpu_top as usize + i) & 7].bytes;
        r[..10].copy_from_slice(&fx[32 + 16 * i..32 + 16 * i + 10]);
        r[10..].fill(0);
    }
    for i in 0..16 {
        st.xmm[i].copy_from_slice(&fx[160 + 16 * i..176 + 16 * i]);
    }
}

/// The x87/SSE state a handler starts with (Linux resets it).
fn fpu_init(st: &mut GuestState) {
    let fresh = GuestState::new();
    st.fpu_cw = fresh.fpu_cw;
    st.fpu_sw = 0;
    st.fpu_top = 0;
    st.fpu_tag = 0;
    st.fpu_regs = fresh.fpu_regs;
    st.mxcsr = fresh.mxcsr;
    st.xmm = fresh.xmm;
}

/// Deliver pending signal `sig` to the guest thread of `st` (at a migration point, `state`
/// complete): build the signal frame and enter the handler; `old_mask` is the mask the
/// handler's return restores. With `SIG_DFL` by now the host's default action happens; with
/// `SIG_IGN` the signal is dropped.
pub fn deliver(st: &mut GuestState, rec: thread::Record, sig: u64, old_mask: u64) {
    let e = thread::extra(rec);
    e.pending.fetch_and(!(1 << (sig - 1)), Ordering::SeqCst);
    let act: [u64; 4] = core::array::from_fn(|i| ACTIONS[sig as usize][i].load(Ordering::Relaxed));
    let [handler, fl, restorer, mask] = act;
    if handler == SIG_IGN {
        return;
    }
    if handler == SIG_DFL {
        sys::raise_default(sig as usize);
        return;
    }
    let mut info = [0u64; 16];
    if sig < 32 {
        for (d, w) in info.iter_mut().zip(&e.info[sig as usize]) {
            *d = w.load(Ordering::Relaxed);
        }
    }
    if info[0] as u32 == 0 {
        info[0] = sig;
    }
    let rsp = st.gpr[Gpr::Rsp as usize];
    let alt = altstack(rec);
    let alt_on = alt[1] & SS_DISABLE == 0 && alt[2] != 0;
    let on_alt = alt_on && rsp > alt[0] && rsp <= alt[0] + alt[2];
    let mut sp = rsp.wrapping_sub(128);
    if fl & SA_ONSTACK != 0 && alt_on && !on_alt {
        sp = alt[0] + alt[2];
    }
    let fp = (sp - FX_SIZE) & !63;
    let frame = ((fp - 8 * FRAME_WORDS as u64) & !15) - 8;

    let mut w = [0u64; FRAME_WORDS];
    w[0] = if fl & SA_RESTORER != 0 { restorer } else { 0 };
    w[1] = 6; // UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
    w[3] = alt[0];
    w[4] = if !alt_on { SS_DISABLE } else if on_alt { SS_ONSTACK } else { 0 };
    w[5] = alt[2];
    for (i, r) in MC_GPRS.iter().enumerate() {
        w[MC + i] = st.gpr[*r as usize];
    }
    w[MC + 16] = st.rip;
    w[MC + 17] = guest_rflags(st);
    w[MC + 18] = USER_CS | (USER_SS << 48);
    w[MC + 21] = old_mask;
    w[MC + 23] = fp;
    w[UC_SIGMASK] = old_mask;
    w[INFO..].copy_from_slice(&info);
    let fx = fxsave(st);
    // SAFETY: the frame and the fxsave image go on the guest's stack below its stack pointer
    // (or on its alternate stack), as Linux writes them; a bad stack faults as it would
    // natively.
    unsafe {
        core::ptr::copy_nonoverlapping(fx.as_ptr(), fp as *mut u8, fx.len());
        core::ptr::copy_nonoverlapping(w.as_ptr(), frame as *mut u64, w.len());
    }
    st.gpr[Gpr::Rdi as usize] = sig;
    st.gpr[Gpr::Rsi as usize] = frame + 8 * INFO as u64;
    st.gpr[Gpr::Rdx as usize] = frame + 8;
    st.gpr[Gpr::Rax as usize] = 0;
    st.gpr[Gpr::Rsp as usize] = frame;
    st.rip = handler;
    st.rflags_other &= !(DF | TF | RF);
    st.orig_rax = u64::MAX;
    fpu_init(st);
    let mut blocked = old_mask | mask;
    if fl & SA_NODEFER == 0 {
        blocked |= 1 << (sig - 1);
    }
    set_guest_mask(rec, blocked);
    if fl & SA_RESETHAND != 0 {
        ACTIONS[sig as usize][0].store(SIG_DFL, Ordering::Relaxed);
        let _ = set_host_disposition(sig, SIG_DFL, 0, 0);
    }
}

/// The guest's `rt_sigreturn`: restore the thread from the frame its handler returned from
/// (`rsp` points just past the return address, at the `ucontext`).
pub fn sigreturn(st: &mut GuestState, rec: thread::Record) {
    let frame = st.gpr[Gpr::Rsp as usize].wrapping_sub(8);
    let mut w = [0u64; UC_SIGMASK + 1];
    // SAFETY: the frame the handler was entered with (or one the guest built itself) lies
    // on its stack; a bad pointer faults as native `rt_sigreturn` would kill the process.
    unsafe { core::ptr::copy_nonoverlapping(frame as *const u64, w.as_mut_ptr(), w.len()) };
    for (i, r) in MC_GPRS.iter().enumerate() {
        st.gpr[*r as usize] = w[MC + i];
    }
    st.rip = w[MC + 16];
    let fl = w[MC + 17];
    st.cc_op = flags::CcOp::Eflags as u64;
    st.cc_dst = fl & flags::bits::ARITH;
    st.cc_src1 = 0;
    st.cc_src2 = 0;
    st.rflags_other = (fl & (DF | AC | ID)) | 0x202;
    let fp = w[MC + 23];
    if fp != 0 {
        let mut fx = [0u8; FX_SIZE as usize];
        // SAFETY: as above, the fxsave image the frame names.
        unsafe { core::ptr::copy_nonoverlapping(fp as *const u8, fx.as_mut_ptr(), fx.len()) };
        fxrstor(st, &fx);
    } else {
        fpu_init(st);
    }
    let ss = [w[3], w[4] & 0xffff_ffff, w[5]];
    let _ = sigaltstack_of(rec, ss.as_ptr() as u64, 0);
    st.orig_rax = u64::MAX;
    set_guest_mask(rec, w[UC_SIGMASK]);
}
