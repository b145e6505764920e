//! A stand-in for translated code, to test the runtime without the translator: provides
//! `hc_dispatch_table` (two resume points of one "translated function"), `hc_dispatch_len`
//! and `hc_guest_info`, and behaves as translated code does — it reads guest registers from
//! `GuestState`, makes guest system calls through `hc_syscall` (x86-64 numbers and
//! structures) and returns the next guest address.
//!
//! Phase 1 (guest 0x401000, entry 0) checks the start-up stack and the syscall layer and
//! prints `ok NAME` or `FAIL NAME ...` lines on stdout. Phase 2 (guest 0x401100, entry 1)
//! ends as argv[3] says: `exit` → exit_group(3), `jump` → continue at an untranslated
//! address, `ud` → `hc_unsupported`.
//!
//! Usage: `test-exe FILE SIZE MODE` with FILE a regular file of SIZE bytes.
#![no_std]
#![allow(clippy::missing_safety_doc)]

use hcontainer_abi::{calls::GuestInfo, calls::GuestSegment, layout, GuestState, Gpr, GUEST_STATE_VERSION};

extern "C" {
    fn hc_resume();
    fn hc_syscall(state: *mut GuestState);
    fn hc_unsupported(state: *mut GuestState, addr: u64, what: *const u8) -> !;
    fn hc_helper(state: *mut GuestState, helper: u64, a0: u64, a1: u64, a2: u64) -> u64;
    fn hc_eval_cond(cc: u64, cc_op: u64, dst: u64, src1: u64, src2: u64) -> u64;
    fn hc_rflags(cc_op: u64, dst: u64, src1: u64, src2: u64, other: u64) -> u64;
    fn hc_lookup(guest: u64) -> *const Entry;
}

type Func = unsafe extern "C" fn(*mut GuestState, u64) -> u64;

#[repr(C)]
pub struct Entry {
    guest: u64,
    func: Func,
    entry: u64,
}

const ENTRY: u64 = 0x40_1000;
const PHASE2: u64 = 0x40_1100;
const THREAD: u64 = 0x40_1200;
const BRK: u64 = 0x60_0000;

#[no_mangle]
pub static hc_dispatch_table: [Entry; 3] = [
    Entry { guest: ENTRY, func: translated, entry: 0 },
    Entry { guest: PHASE2, func: translated, entry: 1 },
    Entry { guest: THREAD, func: translated, entry: 2 },
];
#[no_mangle]
pub static hc_dispatch_len: u64 = 3;
#[no_mangle]
pub static hc_guest_info: GuestInfo = GuestInfo {
    entry: ENTRY,
    phdr: 0x40_0040,
    phnum: 3,
    phent: 56,
    brk_start: BRK,
    load_bias: 0,
    state_version: GUEST_STATE_VERSION as u64,
};

/// Guest segments mapped by the runtime from this executable: the ELF header page (first
/// 0x100 bytes from the file, the rest zero, plus two zero pages), and the ELF header's
/// bytes 0x10..0x30 read-only at 0x510010.
#[no_mangle]
pub static hc_guest_segments: [GuestSegment; 2] = [
    GuestSegment { vaddr: 0x50_0000, memsz: 0x3000, offset: 0, filesz: 0x100, flags: 6 },
    GuestSegment { vaddr: 0x51_0010, memsz: 0x20, offset: 0x10, filesz: 0x20, flags: 4 },
];
#[no_mangle]
pub static hc_guest_segments_len: u64 = 2;

struct G(*mut GuestState);

impl G {
    fn st(&self) -> &mut GuestState {
        // SAFETY: the runtime hands the state to translated code exclusively.
        unsafe { &mut *self.0 }
    }
    fn reg(&self, r: Gpr) -> u64 {
        self.st().gpr[r as usize]
    }
    fn sys(&self, nr: u64, a: &[u64]) -> i64 {
        let regs = [Gpr::Rdi, Gpr::Rsi, Gpr::Rdx, Gpr::R10, Gpr::R8, Gpr::R9];
        let st = self.st();
        st.gpr[Gpr::Rax as usize] = nr;
        for (i, r) in regs.iter().enumerate() {
            st.gpr[*r as usize] = a.get(i).copied().unwrap_or(0);
        }
        // SAFETY: registers are written back, as translated code does before the call.
        unsafe { hc_syscall(self.0) };
        self.reg(Gpr::Rax) as i64
    }
    fn out(&self, s: &[u8]) {
        self.sys(1, &[1, s.as_ptr() as u64, s.len() as u64]);
    }
    fn num(&self, mut v: u64) {
        let mut b = [0u8; 20];
        let mut i = b.len();
        loop {
            i -= 1;
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.out(&b[i..]);
    }
    fn check(&self, name: &[u8], ok: bool, detail: i64) {
        if ok {
            self.out(b"ok ");
            self.out(name);
            self.out(b"\n");
        } else {
            self.out(b"FAIL ");
            self.out(name);
            self.out(b" ");
            if detail < 0 {
                self.out(b"-");
            }
            self.num(detail.unsigned_abs());
            self.out(b"\n");
        }
    }
}

unsafe fn cstr<'a>(p: u64) -> &'a [u8] {
    let p = p as *const u8;
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

unsafe fn word(addr: u64) -> u64 {
    // SAFETY: the caller passes readable guest memory.
    unsafe { (addr as *const u64).read_unaligned() }
}

fn parse(s: &[u8]) -> u64 {
    s.iter().fold(0, |v, &c| v * 10 + u64::from(c.wrapping_sub(b'0')))
}

unsafe extern "C" fn translated(state: *mut GuestState, entry: u64) -> u64 {
    let g = G(state);
    let next = if entry == 0 {
        // SAFETY: phase 1 only reads the start-up stack the runtime built.
        unsafe { phase1(&g) }
    } else if entry == 2 {
        thread_body(&g)
    } else {
        // SAFETY: as above.
        unsafe { phase2(&g) }
    };
    g.st().rip = next;
    next
}

unsafe fn phase1(g: &G) -> u64 {
    let rsp = g.reg(Gpr::Rsp);
    let rdx = g.reg(Gpr::Rdx);
    g.check(b"rsp-aligned", rsp % 16 == 0, rsp as i64);
    g.check(b"rsp-in-guest-stack", rsp < layout::GUEST_STACK_TOP && rsp > layout::GUEST_STACK_TOP - layout::GUEST_STACK_SIZE, 0);
    g.check(b"rdx-zero", rdx == 0, rdx as i64);
    g.check(b"rip-entry", g.st().rip == ENTRY, g.st().rip as i64);

    // SAFETY: the start-up stack: argc, argv, NULL, envp, NULL, auxv.
    let (argc, argv, envp) = unsafe { (word(rsp), rsp + 8, rsp + 16 + 8 * word(rsp)) };
    g.check(b"argc", argc == 4, argc as i64);
    if argc != 4 {
        return PHASE2;
    }
    // SAFETY: argv entries are strings on the guest stack.
    let args: [&[u8]; 4] = core::array::from_fn(|i| unsafe { cstr(word(argv + 8 * i as u64)) });
    // SAFETY: as above.
    g.check(b"argv-null", unsafe { word(argv + 32) } == 0, 0);
    let mut e = envp;
    let mut found_env = false;
    // SAFETY: envp entries up to NULL are strings on the guest stack.
    unsafe {
        while word(e) != 0 {
            found_env |= cstr(word(e)) == b"HCTEST=env-value";
            e += 8;
        }
    }
    g.check(b"envp", found_env, 0);
    let mut aux = e + 8;
    let mut seen = [0u64; 32];
    // SAFETY: auxv pairs up to AT_NULL.
    unsafe {
        while word(aux) != 0 {
            let t = word(aux) as usize;
            if t < 32 {
                seen[t] = word(aux + 8);
            }
            aux += 16;
        }
    }
    g.check(b"at-pagesz", seen[6] == 4096, seen[6] as i64);
    g.check(b"at-entry", seen[9] == ENTRY, seen[9] as i64);
    g.check(b"at-phdr", seen[3] == 0x40_0040 && seen[4] == 56 && seen[5] == 3, seen[3] as i64);
    g.check(b"at-hwcap-sse2", seen[16] & (1 << 26) != 0 && seen[16] & 1 != 0, seen[16] as i64);
    g.check(b"at-clktck", seen[17] == 100, seen[17] as i64);
    g.check(b"at-random", seen[25] > rsp && seen[25] < layout::GUEST_STACK_TOP, seen[25] as i64);
    // SAFETY: AT_PLATFORM and AT_EXECFN point at strings on the guest stack.
    g.check(b"at-platform", seen[15] != 0 && unsafe { cstr(seen[15]) } == b"x86_64", 0);
    // SAFETY: as above.
    g.check(b"at-execfn", seen[31] > rsp && !unsafe { cstr(seen[31]) }.is_empty(), 0);
    g.check(b"at-uid", seen[11] == g.sys(102, &[]) as u64, seen[11] as i64);

    // The string area as Linux lays it out (compared with layout_native.c by run.sh).
    // SAFETY: AT_EXECFN is a string on the guest stack.
    let top = seen[31] + unsafe { cstr(seen[31]) }.len() as u64 + 1 + 8;
    let line = |name: &[u8], i: Option<u64>, v: u64| {
        g.out(b"layout ");
        g.out(name);
        if let Some(i) = i {
            g.num(i);
        }
        g.out(b" ");
        g.num(v);
        g.out(b"\n");
    };
    line(b"top-page-aligned", None, u64::from(top % 4096 == 0));
    for i in 0..argc {
        // SAFETY: argv has argc entries.
        line(b"argv", Some(i), top - unsafe { word(argv + 8 * i) });
    }
    let mut i = 0;
    // SAFETY: envp entries up to NULL.
    while unsafe { word(envp + 8 * i) } != 0 {
        // SAFETY: as above.
        line(b"env", Some(i), top - unsafe { word(envp + 8 * i) });
        i += 1;
    }
    line(b"execfn", None, top - seen[31]);
    line(b"platform", None, top - seen[15]);
    line(b"random", None, top - seen[25]);
    line(b"sp-mod-16", None, rsp % 16);

    // Guest segments mapped from the executable.
    // SAFETY: the runtime mapped these ranges at start-up (see `hc_guest_segments`).
    let (magic, tail, bss, etype) = unsafe {
        let bss = 0x50_2ff8 as *mut u64;
        let before = bss.read_volatile();
        bss.write_volatile(7);
        (
            (0x50_0000 as *const [u8; 4]).read(),
            (0x50_0100 as *const u64).read(),
            before == 0 && bss.read_volatile() == 7,
            (0x51_0010 as *const u16).read(),
        )
    };
    g.check(b"guest-segment-file", magic == *b"\x7fELF" && etype == 2, i64::from(etype));
    g.check(b"guest-segment-zero-tail", tail == 0 && bss, tail as i64);

    // write(1) with the argument strings, straight from the guest stack.
    g.out(b"argv1=");
    g.out(args[1]);
    g.out(b"\n");

    // rcx and r11 as the syscall instruction leaves them.
    g.st().rip = 0x40_1010;
    let pid = g.sys(39, &[]);
    g.check(b"getpid", pid > 0, pid);
    g.check(b"rcx-rip", g.reg(Gpr::Rcx) == 0x40_1010, g.reg(Gpr::Rcx) as i64);
    g.check(b"r11-rflags", g.reg(Gpr::R11) & 0x202 == 0x202, g.reg(Gpr::R11) as i64);
    g.check(b"orig-rax-reset", g.st().orig_rax == u64::MAX, 0);

    let mut uts = [0u8; 390];
    let r = g.sys(63, &[uts.as_mut_ptr() as u64]);
    g.check(b"uname-machine", r == 0 && &uts[260..267] == b"x86_64\0", r);

    // brk.
    let b0 = g.sys(12, &[0]);
    g.check(b"brk-initial", b0 as u64 == BRK, b0);
    let b1 = g.sys(12, &[BRK + 0x3000]);
    g.check(b"brk-grow", b1 as u64 == BRK + 0x3000, b1);
    // SAFETY: the heap page was just mapped.
    unsafe { ((BRK + 0x2ff8) as *mut u64).write(42) };
    let b2 = g.sys(12, &[BRK + 0x1000]);
    g.check(b"brk-shrink", b2 as u64 == BRK + 0x1000, b2);
    let b3 = g.sys(12, &[0x10]);
    g.check(b"brk-below-start", b3 as u64 == BRK + 0x1000, b3);

    // mmap and friends keep away from hcontainer's range.
    let r = g.sys(9, &[layout::RUNTIME_BASE, 4096, 3, 0x32, u64::MAX, 0]);
    g.check(b"mmap-fixed-runtime-refused", r == -12, r);
    let m = g.sys(9, &[0, 8192, 3, 0x22, u64::MAX, 0]);
    g.check(b"mmap-anon", m > 0 && (m as u64) % 4096 == 0, m);
    let r = g.sys(11, &[m as u64, 8192]);
    g.check(b"munmap", r == 0, r);
    // Placement of non-fixed mappings: always inside x86-64's user space; on hosts where
    // the runtime places them, top-down below the guest stack, reusing unmapped ranges.
    const USER_END: u64 = 0x7fff_ffff_f000;
    let placed = !cfg!(target_arch = "x86_64");
    let ma = g.sys(9, &[0, 0x10000, 3, 0x22, u64::MAX, 0]);
    let mb = g.sys(9, &[0, 0x10000, 3, 0x22, u64::MAX, 0]);
    let below = |m: i64| m > 0 && (m as u64) < USER_END && !(layout::RUNTIME_BASE..layout::RUNTIME_BASE + layout::RUNTIME_SIZE).contains(&(m as u64));
    g.check(b"mmap-below-47-bits", below(ma) && below(mb), mb);
    g.check(b"mmap-top-down", !placed || (mb == ma - 0x10000 && (ma as u64) < layout::GUEST_STACK_TOP - layout::GUEST_STACK_SIZE), mb);
    g.sys(11, &[ma as u64, 0x10000]);
    let mc = g.sys(9, &[0, 0x10000, 3, 0x22, u64::MAX, 0]);
    g.check(b"mmap-reuses-unmapped", below(mc) && (!placed || mc == ma), mc);
    // SAFETY: `mb` is a fresh 64 KiB read-write mapping.
    unsafe { ((mb as u64 + 0x8000) as *mut u64).write(0x5eed) };
    let mr = g.sys(25, &[mb as u64, 0x10000, 0x100000, 1, 0]);
    // SAFETY: mremap kept the contents at the returned address.
    g.check(b"mremap-maymove", below(mr) && unsafe { ((mr as u64 + 0x8000) as *const u64).read() } == 0x5eed, mr);
    let hint = 0x3000_0000_0000u64;
    let mh = g.sys(9, &[hint, 0x1000, 3, 0x22, u64::MAX, 0]);
    g.check(b"mmap-free-hint-honoured", mh as u64 == hint, mh);
    let r = g.sys(9, &[0, 0, 3, 0x22, u64::MAX, 0]);
    g.check(b"mmap-zero-length", r == -22, r);
    for (m, l) in [(mc, 0x10000u64), (mr, 0x100000), (mh, 0x1000)] {
        g.sys(11, &[m as u64, l]);
    }

    let r = g.sys(11, &[layout::RUNTIME_BASE, 4096]);
    g.check(b"munmap-runtime-refused", r == -22, r);
    let r = g.sys(10, &[layout::HOST_STACK_TOP - 4096, 4096, 0]);
    g.check(b"mprotect-runtime-refused", r == -22, r);

    // Files: open (legacy), fstat/stat/lstat/newfstatat in x86-64 layout.
    let mut path = [0u8; 256];
    path[..args[1].len()].copy_from_slice(args[1]);
    let p = path.as_ptr() as u64;
    let size = parse(args[2]);
    let fd = g.sys(2, &[p, 0, 0]);
    g.check(b"open", fd >= 0, fd);
    let mut st = [0xAAu8; 160];
    let sp = st.as_mut_ptr() as u64;
    let rd = |st: &[u8; 160], off: usize| u64::from_le_bytes(st[off..off + 8].try_into().unwrap_or([0; 8]));
    let mode = |st: &[u8; 160]| u32::from_le_bytes(st[24..28].try_into().unwrap_or([0; 4]));
    for (name, nr, args) in [
        (&b"fstat"[..], 5u64, [fd as u64, sp, 0, 0]),
        (b"stat", 4, [p, sp, 0, 0]),
        (b"lstat", 6, [p, sp, 0, 0]),
        (b"newfstatat", 262, [-100i64 as u64, p, sp, 0]),
    ] {
        st.fill(0xAA);
        let r = g.sys(nr, &args);
        let ok = r == 0
            && rd(&st, 48) == size
            && rd(&st, 16) == 1
            && mode(&st) & 0o170000 == 0o100000
            && rd(&st, 56) >= 512
            && rd(&st, 72) > 1_000_000_000
            && st[144] == 0xAA;
        g.check(name, ok, if r == 0 { rd(&st, 48) as i64 } else { r });
    }
    let fl = g.sys(72, &[fd as u64, 3]);
    g.check(b"fcntl-getfl", fl >= 0 && fl & 0o600003 == 0, fl);
    let r = g.sys(3, &[fd as u64]);
    g.check(b"close", r == 0, r);
    // O_DIRECTORY has different values on arm64: must be translated.
    let r = g.sys(2, &[p, 0o200000, 0]);
    g.check(b"open-o-directory-on-file", r == -20, r);
    let root = b"/\0";
    let d = g.sys(2, &[root.as_ptr() as u64, 0o200000, 0]);
    g.check(b"open-o-directory-on-dir", d >= 0, d);
    let fl = g.sys(72, &[d as u64, 3]);
    g.check(b"fcntl-getfl-o-directory", fl >= 0 && fl & 0o200000 != 0, fl);
    g.sys(3, &[d as u64]);
    let r = g.sys(21, &[p, 4]);
    g.check(b"access", r == 0, r);

    // pipe, dup2, poll, epoll with packed x86-64 events.
    let mut fds = [0i32; 2];
    let r = g.sys(22, &[fds.as_mut_ptr() as u64]);
    g.check(b"pipe", r == 0 && fds[0] >= 0 && fds[1] >= 0, r);
    let (rfd, wfd) = (fds[0] as u64, fds[1] as u64);
    // `int` arguments with garbage in the upper halves, as the x86-64 ABI allows.
    let r = g.sys(33, &[rfd | 0xdead_0000_0000_0000, rfd]);
    g.check(b"dup2-same", r == rfd as i64, r);
    let r = g.sys(33, &[rfd, 100]);
    g.check(b"dup2", r == 100, r);
    let r = g.sys(33, &[555, 555]);
    g.check(b"dup2-same-bad-fd", r == -9, r);
    let ep = g.sys(213, &[1]);
    g.check(b"epoll-create", ep >= 0, ep);
    let mut ev = [0u8; 12];
    ev[0..4].copy_from_slice(&1u32.to_le_bytes());
    ev[4..12].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
    let r = g.sys(233, &[ep as u64, 1, rfd, ev.as_ptr() as u64]);
    g.check(b"epoll-ctl", r == 0, r);
    g.sys(1, &[wfd, b"x".as_ptr() as u64, 1]);
    let mut pfd = [0u8; 8];
    pfd[0..4].copy_from_slice(&(rfd as i32).to_le_bytes());
    pfd[4..6].copy_from_slice(&1u16.to_le_bytes());
    let r = g.sys(7, &[pfd.as_mut_ptr() as u64, 1, 0]);
    g.check(b"poll", r == 1 && pfd[6] & 1 == 1, r);
    let mut evs = [0xAAu8; 36];
    let r = g.sys(232, &[ep as u64, evs.as_mut_ptr() as u64, 3, 1000]);
    let data = u64::from_le_bytes(evs[4..12].try_into().unwrap_or([0; 8]));
    g.check(b"epoll-wait-packed", r == 1 && evs[0] & 1 == 1 && data == 0x1122_3344_5566_7788 && evs[12] == 0xAA, r);

    let mut fds2 = [0i32; 2];
    let r = g.sys(293, &[fds2.as_mut_ptr() as u64, 0o2000000]);
    let fdfl = g.sys(72, &[fds2[0] as u64, 1]);
    g.check(b"pipe2-cloexec", r == 0 && fdfl == 1, fdfl);
    let r = g.sys(157, &[22, 2, 0]);
    g.check(b"prctl-seccomp-refused", r == -22, r);
    let mut name = [0u8; 16];
    let r = g.sys(157, &[16, name.as_mut_ptr() as u64]);
    g.check(b"prctl-get-name", r == 0 && name[0] != 0, r);

    // arch_prctl.
    let r = g.sys(158, &[0x1002, 0x1234_5678]);
    let mut fsv = 0u64;
    let r2 = g.sys(158, &[0x1003, &mut fsv as *mut u64 as u64]);
    g.check(b"arch-prctl-fs", r == 0 && r2 == 0 && fsv == 0x1234_5678 && g.st().fs_base == 0x1234_5678, r);

    // rt_sigaction keeps the guest's x86-64 struct.
    let act = [0x40_1234u64, 0x0400_0004, 0x40_1300, 1 << 9];
    let r = g.sys(13, &[10, act.as_ptr() as u64, 0, 8]);
    let mut old = [0u64; 4];
    let r2 = g.sys(13, &[10, 0, old.as_mut_ptr() as u64, 8]);
    g.check(b"rt-sigaction", r == 0 && r2 == 0 && old == act, r);
    let r = g.sys(13, &[9, act.as_ptr() as u64, 0, 8]);
    g.check(b"rt-sigaction-sigkill", r == -22, r);

    // Time.
    let mut tv = [0u64; 2];
    let r = g.sys(96, &[tv.as_mut_ptr() as u64, 0]);
    g.check(b"gettimeofday", r == 0 && tv[0] > 1_600_000_000 && tv[1] < 1_000_000, r);
    let t = g.sys(201, &[0]);
    g.check(b"time", t >= tv[0] as i64, t);

    // Unsupported calls.
    let r = g.sys(500, &[]);
    g.check(b"enosys-unknown", r == -38, r);
    let r = g.sys(154, &[]);
    g.check(b"enosys-modify-ldt", r == -38, r);
    let r = g.sys(334, &[0, 32, 0, 0]);
    g.check(b"rseq-enosys", r == -38, r);

    // Runtime entry points other than hc_syscall.
    // SAFETY: the runtime's lookup returns null or a pointer into the dispatch table.
    let (hit, miss) = unsafe { (hc_lookup(PHASE2), hc_lookup(PHASE2 + 1)) };
    // SAFETY: non-null results point into `hc_dispatch_table`.
    g.check(b"hc-lookup", !hit.is_null() && unsafe { (*hit).entry } == 1 && miss.is_null(), 0);
    let sub64 = (3 << 2) | 3; // CcOp::Sub, 64-bit
    // SAFETY: pure functions.
    let (e, ne, fl) = unsafe { (hc_eval_cond(4, sub64, 0, 5, 5), hc_eval_cond(5, sub64, 0, 5, 5), hc_rflags(sub64, 0, 5, 5, 0x202)) };
    g.check(b"hc-eval-cond", e == 1 && ne == 0, e as i64);
    g.check(b"hc-rflags", fl == 0x202 | 0x40 | 0x4, fl as i64);
    g.st().gpr[Gpr::Rax as usize] = 1;
    g.st().gpr[Gpr::Rcx as usize] = 0;
    // SAFETY: registers are written back; helper 1 is cpuid.
    unsafe { hc_helper(g.0, 1, 0, 0, 0) };
    let edx = g.reg(Gpr::Rdx);
    g.check(b"hc-helper-cpuid-matches-hwcap", edx == seen[16] && edx & (1 << 26) != 0, edx as i64);
    // SAFETY: helper 2 is rdtsc.
    unsafe { hc_helper(g.0, 2, 0, 0, 0) };
    let t0 = (g.reg(Gpr::Rdx) << 32) | (g.reg(Gpr::Rax) & 0xffff_ffff);
    g.sys(35, &[[0u64, 1_000_000].as_ptr() as u64, 0]);
    // SAFETY: as above.
    unsafe { hc_helper(g.0, 2, 0, 0, 0) };
    let t1 = (g.reg(Gpr::Rdx) << 32) | (g.reg(Gpr::Rax) & 0xffff_ffff);
    g.check(b"hc-helper-rdtsc-increases", t1 > t0, (t1 - t0) as i64);

    // Threads: two in a row (the second reuses freed resources).
    let ts = g.sys(9, &[0, 0x10000, 3, 0x22, u64::MAX, 0]);
    let ok1 = run_thread(g, ts as u64 + 0x10000);
    g.check(b"thread-state", ok1, 0);
    let ok2 = run_thread(g, ts as u64 + 0x8000);
    g.check(b"thread-again", ok2, 0);
    g.sys(11, &[ts as u64, 0x10000]);
    run_resumed_thread(g);

    // posix_spawn-style clone(CLONE_VM | CLONE_VFORK | SIGCHLD) on a new guest stack: the
    // child runs in a copy, on the stack it was given.
    let cs = g.sys(9, &[0, 0x10000, 3, 0x22, u64::MAX, 0]);
    let pid = g.sys(56, &[0x4111, cs as u64 + 0x10000, 0, 0, 0]);
    if pid == 0 {
        let ok = g.reg(Gpr::Rsp) == cs as u64 + 0x10000;
        g.sys(231, &[if ok { 5 } else { 6 }]);
    }
    let mut status = 0i32;
    let r = g.sys(61, &[pid as u64, &mut status as *mut i32 as u64, 0, 0]);
    g.check(b"clone-vm-vfork", r == pid && (status >> 8) & 0xff == 5, i64::from(status));
    g.sys(11, &[cs as u64, 0x10000]);

    // fork and wait4.
    let pid = g.sys(57, &[]);
    if pid == 0 {
        g.sys(231, &[7]);
    }
    let mut status = 0i32;
    let r = g.sys(61, &[pid as u64, &mut status as *mut i32 as u64, 0, 0]);
    g.check(b"fork-wait4", r == pid && (status >> 8) & 0xff == 7, i64::from(status));

    PHASE2
}

/// A guest thread started by `clone` in phase 1: records what it sees in the parent's
/// buffer (address in r12, inherited from the parent) and exits. The buffer holds a done
/// flag, fs_base, rsp, rax, rcx, where the runtime keeps this thread's state, and whether
/// the record around that state is a running thread slot's record naming this thread's id.
fn thread_body(g: &G) -> u64 {
    let shared = g.reg(Gpr::R12) as *mut u64;
    let mut seen = [g.st().fs_base, g.reg(Gpr::Rsp), g.reg(Gpr::Rax), g.reg(Gpr::Rcx), g.0 as u64, 0];
    let rec = g.0 as u64 - 64;
    let slot = layout::thread_slot_at(rec + layout::GUEST_PAGE_SIZE - layout::THREAD_SLOT_LEN);
    let tid = g.sys(186, &[]) as u64;
    // SAFETY: the state lies in its record (`hcontainer_abi::calls::ResumeRecord`), whose
    // header words are plain data.
    let hdr: [u64; 6] = core::array::from_fn(|i| unsafe { (rec as *const u64).add(i).read_volatile() });
    let rec_ok = slot.is_some()
        && rec == slot.map_or(0, layout::thread_resume_record)
        && hdr[0] == hcontainer_abi::calls::RESUME_MAGIC
        && hdr[1] == u64::from(GUEST_STATE_VERSION)
        && hdr[4] == tid
        && hdr[5] == hcontainer_abi::calls::THREAD_RUNNING
        && g.st().runtime == slot.map_or(0, layout::thread_slot_base);
    seen[5] = u64::from(rec_ok);
    // SAFETY: the parent passes a 6-word buffer it keeps alive until this thread has exited.
    unsafe {
        for (i, v) in seen.iter().enumerate() {
            shared.add(i + 1).write_volatile(*v);
        }
        shared.write_volatile(42);
    }
    g.sys(60, &[0]);
    // exit does not return.
    g.out(b"FAIL thread-exit-returned 0\n");
    g.sys(231, &[1]);
    0
}

/// Start a guest thread at `THREAD` and wait for it with CLONE_CHILD_CLEARTID; returns
/// whether everything it saw was right.
fn run_thread(g: &G, stack_top: u64) -> bool {
    let mut shared = [0u64; 7];
    let (mut ptid, mut ctid) = (0u32, 1u32);
    // VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
    let flags = 0x3d_0f00;
    g.st().gpr[Gpr::R12 as usize] = shared.as_mut_ptr() as u64;
    // Translated code stores the address after the syscall in rip before calling hc_syscall.
    g.st().rip = THREAD;
    let tid = g.sys(56, &[flags, stack_top, &mut ptid as *mut u32 as u64, &mut ctid as *mut u32 as u64, 0x7777]);
    g.check(b"clone-thread", tid > 0 && i64::from(ptid) == tid, tid);
    if tid <= 0 {
        return false;
    }
    loop {
        let p = &mut ctid as *mut u32;
        // SAFETY: the kernel clears `ctid` when the thread exits.
        let v = unsafe { p.read_volatile() };
        if v == 0 {
            break;
        }
        g.sys(202, &[p as u64, 0, u64::from(v), 0]);
    }
    // SAFETY: the thread has exited; its writes are visible after the futex wake.
    let s: [u64; 7] = core::array::from_fn(|i| unsafe { shared.as_ptr().add(i).read_volatile() });
    // The thread's runtime stack (holding its state) is gone once it has exited: msync on
    // an unmapped page fails with ENOMEM. (The kernel clears ctid only after the unmap.)
    let gone = g.sys(26, &[s[5] & !0xfff, 4096, 1]);
    g.check(b"thread-slot-unmapped", gone == -12, gone);
    g.check(b"thread-record-in-slot", s[6] == 1, s[5] as i64);
    s[..5] == [42, 0x7777, stack_top, 0, THREAD] && hcontainer_abi::layout::is_runtime_addr(s[5])
}

/// As a restored thread of a recoded image: a thread slot mapped by hand with a record
/// (state at `THREAD`, status PARKED, no tid, no runtime data) and a host thread entering
/// `hc_resume` with its stack pointer at the record. The runtime must adopt the slot (the
/// guest `exit` unmaps it), record the thread id and run the guest at `state.rip`.
fn run_resumed_thread(g: &G) {
    let slot = layout::THREAD_SLOTS - 1;
    let base = layout::thread_slot_base(slot);
    // Guest mmap refuses hcontainer's range: a host call, as CRIU maps the slot.
    // SAFETY: a fresh anonymous mapping that replaces nothing.
    let m = unsafe { host_mmap_anon(base, layout::THREAD_SLOT_LEN) };
    g.check(b"resume-slot-mapped", m == base as i64, m);
    if m != base as i64 {
        return;
    }
    let mut shared = [0u64; 7];
    let rec = layout::thread_resume_record(slot);
    let mut st = *g.st();
    st.rip = THREAD;
    st.fs_base = 0x8888;
    st.gpr[Gpr::Rsp as usize] = 0x1234_5670;
    st.gpr[Gpr::Rax as usize] = 0;
    st.gpr[Gpr::Rcx as usize] = 0x4444;
    st.gpr[Gpr::R12 as usize] = shared.as_mut_ptr() as u64;
    st.runtime = 0;
    // As recode writes it: no request (a notify that arrives after the restore must park
    // the thread, so the resume entry does not clear the word).
    st.poll = 0;
    let record = hcontainer_abi::calls::ResumeRecord {
        magic: hcontainer_abi::calls::RESUME_MAGIC,
        version: u64::from(GUEST_STATE_VERSION),
        brk_start: 0,
        brk_cur: 0,
        tid: 0,
        status: hcontainer_abi::calls::THREAD_PARKED,
        reserved: [0; 2],
        state: st,
    };
    // SAFETY: the record page is the top page of the slot just mapped.
    unsafe { (rec as *mut hcontainer_abi::calls::ResumeRecord).write(record) };
    let mut ctid = 1u32;
    // SAFETY: a host thread sharing everything, on the slot's stack, entering hc_resume
    // with the record; the parent keeps `ctid` and `shared` alive until it has exited.
    let tid = unsafe { clone_into_resume(rec, &mut ctid as *mut u32 as u64) };
    g.check(b"resume-clone", tid > 0, tid as i64);
    if tid <= 0 {
        return;
    }
    loop {
        let p = &mut ctid as *mut u32;
        // SAFETY: the kernel clears `ctid` when the thread exits.
        let v = unsafe { p.read_volatile() };
        if v == 0 {
            break;
        }
        g.sys(202, &[p as u64, 0, u64::from(v), 0]);
    }
    // SAFETY: the thread has exited; its writes are visible after the futex wake.
    let s: [u64; 7] = core::array::from_fn(|i| unsafe { shared.as_ptr().add(i).read_volatile() });
    g.check(
        b"resume-thread-state",
        s[..6] == [42, 0x8888, 0x1234_5670, 0, 0x4444, rec + 64],
        s[4] as i64,
    );
    g.check(b"resume-thread-record", s[6] == 1, 0);
    let gone = g.sys(26, &[rec, 4096, 1]);
    g.check(b"resume-slot-unmapped", gone == -12, gone);
}

/// Host `mmap(addr, len, RW, PRIVATE | ANONYMOUS | FIXED_NOREPLACE | NORESERVE)`.
unsafe fn host_mmap_anon(addr: u64, len: u64) -> i64 {
    let flags: u64 = 0x22 | 0x10_0000 | 0x4000;
    let ret: i64;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller's contract; `syscall` clobbers rcx and r11.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") 9i64 => ret, in("rdi") addr, in("rsi") len,
            in("rdx") 3u64, in("r10") flags, in("r8") u64::MAX, in("r9") 0u64,
            lateout("rcx") _, lateout("r11") _);
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("svc 0", in("x8") 222usize, inlateout("x0") addr as i64 => ret, in("x1") len,
            in("x2") 3u64, in("x3") flags, in("x4") u64::MAX, in("x5") 0u64);
    }
    #[cfg(target_arch = "riscv64")]
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!("ecall", in("a7") 222usize, inlateout("a0") addr as i64 => ret, in("a1") len,
            in("a2") 3u64, in("a3") flags, in("a4") u64::MAX, in("a5") 0u64);
    }
    ret
}

/// Host `clone` of a thread (VM FS FILES SIGHAND THREAD SYSVSEM CHILD_CLEARTID) whose stack
/// pointer is `rec` and which jumps to `hc_resume` with `rec` in the first argument
/// register, as CRIU restores a recoded thread. Returns the raw result in the parent.
unsafe fn clone_into_resume(rec: u64, ctid: u64) -> isize {
    let flags: u64 = 0x25_0f00;
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the child never returns into this frame; the parent sees rax, rcx, r11 change.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "jmp {resume}",
            "2:",
            resume = sym hc_resume,
            inlateout("rax") 56isize => ret,
            in("rdi") flags, in("rsi") rec, in("rdx") 0u64, in("r10") ctid, in("r8") 0u64,
            in("r12") rec,
            lateout("rcx") _, lateout("r11") _,
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; the parent sees x0 change.
    unsafe {
        core::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x0, x9",
            "b {resume}",
            "2:",
            resume = sym hc_resume,
            in("x8") 220usize,
            inlateout("x0") flags as isize => ret,
            in("x1") rec, in("x2") 0u64, in("x3") 0u64, in("x4") ctid, in("x9") rec,
        );
    }
    #[cfg(target_arch = "riscv64")]
    // SAFETY: as above; the parent sees a0 change.
    unsafe {
        core::arch::asm!(
            "ecall",
            "bnez a0, 2f",
            "mv a0, t2",
            "tail {resume}",
            "2:",
            resume = sym hc_resume,
            in("a7") 220usize,
            inlateout("a0") flags as isize => ret,
            in("a1") rec, in("a2") 0u64, in("a3") 0u64, in("a4") ctid, in("t2") rec,
            out("t1") _,
        );
    }
    ret
}

unsafe fn phase2(g: &G) -> u64 {
    g.out(b"phase2\n");
    let argv = g.reg(Gpr::Rsp) + 8;
    // SAFETY: argv[3] is on the guest stack (phase 1 checked argc).
    let mode = unsafe { cstr(word(argv + 24)) };
    match mode {
        b"jump" => 0xdead_0000,
        // SAFETY: a NUL-terminated description.
        b"ud" => unsafe { hc_unsupported(g.0, PHASE2, b"ud2 (0f 0b)\0".as_ptr()) },
        b"helper" => {
            g.st().rip = PHASE2;
            // SAFETY: an undefined helper number ends the process.
            unsafe { hc_helper(g.0, 999, 7, 0, 0) };
            0
        }
        _ => {
            g.sys(231, &[3]);
            0
        }
    }
}
