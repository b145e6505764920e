//! x86-64 calls that asm-generic hosts (arm64, riscv64) lack or shape differently: the
//! legacy path calls become their `*at` forms, `stat` and `epoll_event` are converted, and
//! (on arm64) `O_*` flags are renumbered.

use hcontainer_abi::GuestState;

use super::conv;
use super::table::Sys;
use super::{host_raw, pass, unsupported, Args};
use crate::arch::nr;
use crate::sys::{self, Errno, Timespec};

const AT_FDCWD: usize = -100isize as usize;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;
const AT_REMOVEDIR: usize = 0x200;
const O_WRONLY: u64 = 0o1;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const F_GETFD: usize = 1;
const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const EPOLL_CTL_DEL: u64 = 2;
/// Events converted per `epoll_wait` call (fewer than asked is allowed).
const EPOLL_BATCH: usize = 64;

/// Guest `O_*` flags → host.
fn oflags_in(f: u64) -> usize {
    if cfg!(target_arch = "aarch64") {
        conv::oflags_x86_to_arm64(f as u32) as usize
    } else {
        f as u32 as usize
    }
}

/// Host `O_*` flags → guest.
fn oflags_out(f: i64) -> i64 {
    if cfg!(target_arch = "aarch64") && f >= 0 {
        i64::from(conv::oflags_arm64_to_x86(f as u32))
    } else {
        f
    }
}

fn u(v: u64) -> usize {
    v as usize
}

/// Host `newfstatat`/`fstat` into a generic buffer, converted into the guest's x86-64 buffer.
fn stat_into(guest_buf: u64, call: impl FnOnce(usize) -> i64) -> i64 {
    let mut g = [0u8; conv::GENERIC_STAT_SIZE];
    let r = call(g.as_mut_ptr() as usize);
    if r == 0 {
        let x = conv::stat_generic_to_x86(&g);
        // SAFETY: the guest passes room for a 144-byte x86-64 `struct stat`.
        unsafe { core::ptr::copy_nonoverlapping(x.as_ptr(), guest_buf as *mut u8, x.len()) };
    }
    r
}

fn realtime() -> Result<Timespec, Errno> {
    sys::clock_gettime(sys::CLOCK_REALTIME)
}

/// Read `n` u64 words of guest memory.
fn read_words<const N: usize>(addr: u64) -> [u64; N] {
    let mut v = [0u64; N];
    // SAFETY: the guest passes a structure of N words at `addr`.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u64, v.as_mut_ptr(), N) };
    v
}

/// Write u64 words to guest memory.
fn write_words(addr: u64, v: &[u64]) {
    // SAFETY: the guest passes room for `v.len()` words at `addr`.
    unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), addr as *mut u64, v.len()) };
}

/// Two x86-64 `struct timeval` at `tv` (or null) → two timespecs for `utimensat`.
fn timevals_to_timespecs(tv: u64) -> Option<[u64; 4]> {
    (tv != 0).then(|| {
        let v: [u64; 4] = read_words(tv);
        [v[0], v[1].wrapping_mul(1000), v[2], v[3].wrapping_mul(1000)]
    })
}

fn utimensat(dirfd: usize, path: u64, ts: Option<[u64; 4]>) -> i64 {
    let p = ts.as_ref().map_or(0, |t| t.as_ptr() as usize);
    host_raw(nr::UTIMENSAT, [dirfd, u(path), p, 0, 0, 0])
}

/// Epoll wait with conversion of the returned events into the guest's packed layout.
fn epoll_wait(call: impl FnOnce(usize, usize) -> i64, events: u64, max: u64) -> i64 {
    let max = max as i32;
    if max <= 0 {
        return Errno::EINVAL.neg();
    }
    let n = (max as usize).min(EPOLL_BATCH);
    let mut buf = [[0u8; conv::GENERIC_EPOLL_EVENT_SIZE]; EPOLL_BATCH];
    let r = call(buf.as_mut_ptr() as usize, n);
    if r > 0 {
        for (i, ev) in buf.iter().take(r as usize).enumerate() {
            let x = conv::epoll_generic_to_x86(ev);
            let dst = events as usize + i * conv::X86_EPOLL_EVENT_SIZE;
            // SAFETY: the guest passes room for `max` ≥ `r` packed 12-byte events.
            unsafe { core::ptr::copy_nonoverlapping(x.as_ptr(), dst as *mut u8, x.len()) };
        }
    }
    r
}

/// Handle a [`super::table::How::Compat`] call on an asm-generic host.
pub fn compat(_st: &mut GuestState, nr_: u64, e: &Sys, a: Args) -> i64 {
    match nr_ {
        2 => host_raw(nr::OPENAT, [AT_FDCWD, u(a[0]), oflags_in(a[1]), u(a[2]), 0, 0]),
        257 => host_raw(nr::OPENAT, [u(a[0]), u(a[1]), oflags_in(a[2]), u(a[3]), 0, 0]),
        85 => host_raw(nr::OPENAT, [AT_FDCWD, u(a[0]), oflags_in(O_CREAT | O_WRONLY | O_TRUNC), u(a[1]), 0, 0]),
        4 | 6 => {
            let flags = if nr_ == 6 { AT_SYMLINK_NOFOLLOW } else { 0 };
            stat_into(a[1], |b| host_raw(nr::NEWFSTATAT, [AT_FDCWD, u(a[0]), b, flags, 0, 0]))
        }
        5 => stat_into(a[1], |b| host_raw(nr::FSTAT, [u(a[0]), b, 0, 0, 0, 0])),
        262 => stat_into(a[2], |b| host_raw(nr::NEWFSTATAT, [u(a[0]), u(a[1]), b, u(a[3]), 0, 0])),
        72 => match a[1] & 0xffff_ffff {
            F_GETFL => oflags_out(host_raw(nr::FCNTL, [u(a[0]), u(a[1]), 0, 0, 0, 0])),
            F_SETFL => host_raw(nr::FCNTL, [u(a[0]), u(a[1]), oflags_in(a[2]), 0, 0, 0]),
            _ => pass(nr_, e, a),
        },
        7 => {
            let ms = a[2] as i32;
            let ts = Timespec { sec: i64::from(ms / 1000), nsec: i64::from(ms % 1000) * 1_000_000 };
            let tp = if ms >= 0 { &ts as *const Timespec as usize } else { 0 };
            host_raw(nr::PPOLL, [u(a[0]), u(a[1]), tp, 0, 8, 0])
        }
        23 => {
            let tv = a[4];
            let mut ts = Timespec::default();
            let tp = if tv != 0 {
                let v: [u64; 2] = read_words(tv);
                ts = Timespec { sec: v[0] as i64, nsec: (v[1] as i64).wrapping_mul(1000) };
                &mut ts as *mut Timespec as usize
            } else {
                0
            };
            let r = host_raw(nr::PSELECT6, [u(a[0]), u(a[1]), u(a[2]), u(a[3]), tp, 0]);
            if tv != 0 {
                // Linux's select reports the time left.
                write_words(tv, &[ts.sec as u64, (ts.nsec / 1000) as u64]);
            }
            r
        }
        21 => host_raw(nr::FACCESSAT, [AT_FDCWD, u(a[0]), u(a[1]), 0, 0, 0]),
        22 => host_raw(nr::PIPE2, [u(a[0]), 0, 0, 0, 0, 0]),
        293 => host_raw(nr::PIPE2, [u(a[0]), oflags_in(a[1]), 0, 0, 0, 0]),
        33 => {
            // `int` arguments: only the low 32 bits count.
            if a[0] as u32 == a[1] as u32 {
                let r = host_raw(nr::FCNTL, [u(a[0]), F_GETFD, 0, 0, 0, 0]);
                if r < 0 { r } else { i64::from(a[1] as i32) }
            } else {
                host_raw(nr::DUP3, [u(a[0]), u(a[1]), 0, 0, 0, 0])
            }
        }
        34 => host_raw(nr::PPOLL, [0, 0, 0, 0, 8, 0]),
        37 => {
            let new = [0u64, 0, a[0] & 0xffff_ffff, 0];
            let mut old = [0u64; 4];
            let r = host_raw(nr::SETITIMER, [0, new.as_ptr() as usize, old.as_mut_ptr() as usize, 0, 0, 0]);
            if r < 0 {
                return r;
            }
            let (sec, usec) = (old[2] as i64, old[3] as i64);
            if (sec == 0 && usec > 0) || usec >= 500_000 { sec + 1 } else { sec }
        }
        82 => host_raw(nr::RENAMEAT2, [AT_FDCWD, u(a[0]), AT_FDCWD, u(a[1]), 0, 0]),
        264 => host_raw(nr::RENAMEAT2, [u(a[0]), u(a[1]), u(a[2]), u(a[3]), 0, 0]),
        83 => host_raw(nr::MKDIRAT, [AT_FDCWD, u(a[0]), u(a[1]), 0, 0, 0]),
        84 => host_raw(nr::UNLINKAT, [AT_FDCWD, u(a[0]), AT_REMOVEDIR, 0, 0, 0]),
        87 => host_raw(nr::UNLINKAT, [AT_FDCWD, u(a[0]), 0, 0, 0, 0]),
        86 => host_raw(nr::LINKAT, [AT_FDCWD, u(a[0]), AT_FDCWD, u(a[1]), 0, 0]),
        88 => host_raw(nr::SYMLINKAT, [u(a[0]), AT_FDCWD, u(a[1]), 0, 0, 0]),
        89 => host_raw(nr::READLINKAT, [AT_FDCWD, u(a[0]), u(a[1]), u(a[2]), 0, 0]),
        90 => host_raw(nr::FCHMODAT, [AT_FDCWD, u(a[0]), u(a[1]), 0, 0, 0]),
        92 => host_raw(nr::FCHOWNAT, [AT_FDCWD, u(a[0]), u(a[1]), u(a[2]), 0, 0]),
        94 => host_raw(nr::FCHOWNAT, [AT_FDCWD, u(a[0]), u(a[1]), u(a[2]), AT_SYMLINK_NOFOLLOW, 0]),
        133 => host_raw(nr::MKNODAT, [AT_FDCWD, u(a[0]), u(a[1]), u(a[2]), 0, 0]),
        96 => {
            let ts = match realtime() {
                Ok(t) => t,
                Err(e) => return e.neg(),
            };
            if a[0] != 0 {
                write_words(a[0], &[ts.sec as u64, (ts.nsec / 1000) as u64]);
            }
            if a[1] != 0 {
                // struct timezone { int tz_minuteswest; int tz_dsttime; }: UTC.
                write_words(a[1], &[0]);
            }
            0
        }
        201 => match realtime() {
            Ok(ts) => {
                if a[0] != 0 {
                    write_words(a[0], &[ts.sec as u64]);
                }
                ts.sec
            }
            Err(e) => e.neg(),
        },
        111 => host_raw(nr::GETPGID, [0; 6]),
        132 => {
            let ts = (a[1] != 0).then(|| {
                let v: [u64; 2] = read_words(a[1]);
                [v[0], 0, v[1], 0]
            });
            utimensat(AT_FDCWD, a[0], ts)
        }
        235 => utimensat(AT_FDCWD, a[0], timevals_to_timespecs(a[1])),
        261 => utimensat(u(a[0]), a[1], timevals_to_timespecs(a[2])),
        213 => {
            if (a[0] as i32) <= 0 {
                Errno::EINVAL.neg()
            } else {
                host_raw(nr::EPOLL_CREATE1, [0; 6])
            }
        }
        233 => {
            let ev = (a[3] != 0 && a[1] & 0xffff_ffff != EPOLL_CTL_DEL).then(|| {
                let mut x = [0u8; conv::X86_EPOLL_EVENT_SIZE];
                // SAFETY: the guest passes a packed 12-byte `struct epoll_event`.
                unsafe { core::ptr::copy_nonoverlapping(a[3] as *const u8, x.as_mut_ptr(), x.len()) };
                conv::epoll_x86_to_generic(&x)
            });
            let p = ev.as_ref().map_or(0, |e| e.as_ptr() as usize);
            host_raw(nr::EPOLL_CTL, [u(a[0]), u(a[1]), u(a[2]), p, 0, 0])
        }
        232 => epoll_wait(|b, n| host_raw(nr::EPOLL_PWAIT, [u(a[0]), b, n, u(a[3]), 0, 8]), a[1], a[2]),
        281 => epoll_wait(|b, n| host_raw(nr::EPOLL_PWAIT, [u(a[0]), b, n, u(a[3]), u(a[4]), u(a[5])]), a[1], a[2]),
        441 => epoll_wait(|b, n| host_raw(nr::EPOLL_PWAIT2, [u(a[0]), b, n, u(a[3]), u(a[4]), u(a[5])]), a[1], a[2]),
        253 => host_raw(nr::INOTIFY_INIT1, [0; 6]),
        282 => host_raw(nr::SIGNALFD4, [u(a[0]), u(a[1]), u(a[2]), 0, 0, 0]),
        284 => host_raw(nr::EVENTFD2, [u(a[0]), 0, 0, 0, 0, 0]),
        63 => {
            let mut uts = [0u8; 390];
            let r = host_raw(nr::UNAME, [uts.as_mut_ptr() as usize, 0, 0, 0, 0, 0]);
            if r == 0 {
                conv::utsname_set_machine(&mut uts, b"x86_64");
                // SAFETY: the guest passes room for a 390-byte `struct utsname`.
                unsafe { core::ptr::copy_nonoverlapping(uts.as_ptr(), a[0] as *mut u8, uts.len()) };
            }
            r
        }
        // getdents: glibc and musl use getdents64 only.
        _ => unsupported(nr_),
    }
}
