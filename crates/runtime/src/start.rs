//! Process start-up: read the host's initial stack, map the guest stack and build the
//! x86-64 SysV start-up stack on it exactly as Linux does for a static executable, map the
//! host stack translated code runs on, and enter the dispatcher.

use hcontainer_abi::{calls::GuestInfo, layout, Gpr, GUEST_STATE_VERSION};

use crate::{arch, dispatch, eprintln, mem, print, sys};

/// Status for failures before the guest runs (as a shell's "cannot execute").
pub const EXIT_STARTUP_FAILED: i32 = 127;

/// Auxiliary vector tags used here.
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
}

/// `AT_HWCAP` of the guest CPU: CPUID.1:EDX of the baseline x86-64 CPU that the `cpuid`
/// helper reports, so both always agree.
pub const GUEST_HWCAP: u64 = hcontainer_semantics::cpuid::LEAF1_EDX as u64;

/// What the runtime takes from the host's initial stack.
struct HostStart {
    argc: usize,
    argv: *const *const u8,
    envc: usize,
    envp: *const *const u8,
    uid: u64,
    euid: u64,
    gid: u64,
    egid: u64,
    secure: u64,
    random: u64,
    execfn: u64,
}

/// Parse the kernel's initial stack at `sp`.
///
/// # Safety
/// `sp` must be the stack pointer the kernel handed to `_start`.
unsafe fn parse_host_stack(sp: *const usize) -> HostStart {
    // SAFETY: the kernel's layout: argc, argv[argc], NULL, envp..., NULL, auxv pairs to AT_NULL.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        let envp = argv.add(argc + 1);
        let mut envc = 0;
        while !(*envp.add(envc)).is_null() {
            envc += 1;
        }
        let mut h = HostStart {
            argc,
            argv,
            envc,
            envp,
            uid: 0,
            euid: 0,
            gid: 0,
            egid: 0,
            secure: 0,
            random: 0,
            execfn: 0,
        };
        let mut aux = envp.add(envc + 1) as *const u64;
        loop {
            let (tag, val) = (*aux, *aux.add(1));
            match tag {
                at::NULL => break,
                at::UID => h.uid = val,
                at::EUID => h.euid = val,
                at::GID => h.gid = val,
                at::EGID => h.egid = val,
                at::SECURE => h.secure = val,
                at::RANDOM => h.random = val,
                at::EXECFN => h.execfn = val,
                _ => {}
            }
            aux = aux.add(2);
        }
        h
    }
}

/// Print a start-up failure and exit.
fn fail(what: &str, addr: u64, e: sys::Errno) -> ! {
    eprintln!("hcontainer: cannot map {} at {:#x}: errno {}", what, addr, e.0);
    sys::exit_group(EXIT_STARTUP_FAILED)
}

/// Map `size` bytes ending at `top` plus an inaccessible guard below; returns nothing, exits
/// on failure.
fn map_stack(what: &str, top: u64, size: u64, extra: usize) {
    let base = top - size - layout::STACK_GUARD_SIZE;
    let total = size + layout::STACK_GUARD_SIZE;
    if let Err(e) = sys::map_anon_at(base as usize, total as usize, sys::PROT_READ | sys::PROT_WRITE, extra) {
        fail(what, base, e);
    }
    // SAFETY: the guard lies inside the mapping just made, which nothing uses yet.
    if let Err(e) = unsafe { sys::mprotect(base as usize, layout::STACK_GUARD_SIZE as usize, sys::PROT_NONE) } {
        fail(what, base, e);
    }
}

/// Map the guest segments listed in `hc_guest_segments` from the executable file, as an ELF
/// loader would; exits with a message on failure.
fn map_guest_segments() {
    let segs = crate::guest_segments();
    if segs.is_empty() {
        return;
    }
    const PAGE: u64 = layout::GUEST_PAGE_SIZE;
    let path = b"/proc/self/exe\0";
    // SAFETY: `path` is NUL-terminated; openat reads nothing else.
    let fd = match unsafe {
        sys::syscall(arch::nr::OPENAT, [-100isize as usize, path.as_ptr() as usize, 0o2000000, 0, 0, 0])
    } {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("hcontainer: cannot open /proc/self/exe to map the guest: errno {}", e.0);
            sys::exit_group(EXIT_STARTUP_FAILED)
        }
    };
    for s in segs {
        let fail = |why: &str, e: u16| -> ! {
            eprintln!(
                "hcontainer: cannot map guest segment at {:#x} (file offset {:#x}, {:#x} bytes): {} {}",
                s.vaddr, s.offset, s.memsz, why, e
            );
            sys::exit_group(EXIT_STARTUP_FAILED)
        };
        if s.filesz > s.memsz || (s.vaddr.wrapping_sub(s.offset)) % PAGE != 0 || mem::overlaps_runtime(s.vaddr, s.memsz) {
            fail("bad segment description", 0);
        }
        let prot = (if s.flags & 4 != 0 { sys::PROT_READ } else { 0 })
            | (if s.flags & 2 != 0 { sys::PROT_WRITE } else { 0 })
            | (if s.flags & 1 != 0 { 4 } else { 0 });
        let start = s.vaddr & !(PAGE - 1);
        let file_end = mem::page_up(s.vaddr + s.filesz);
        let mem_end = mem::page_up(s.vaddr + s.memsz);
        if s.filesz > 0 {
            let off = s.offset - (s.vaddr - start);
            let len = (file_end - start) as usize;
            let flags = sys::MAP_PRIVATE | sys::MAP_FIXED_NOREPLACE;
            let rw = sys::PROT_READ | sys::PROT_WRITE;
            // SAFETY: a private file mapping that replaces nothing.
            let got = unsafe { sys::syscall(arch::nr::MMAP, [start as usize, len, rw, flags, fd, off as usize]) };
            match got {
                Ok(a) if a == start as usize => {}
                Ok(a) => {
                    // SAFETY: the mapping just made at the wrong place (qemu-user hint semantics).
                    let _ = unsafe { sys::munmap(a, len) };
                    fail("address in use: errno", sys::Errno::EEXIST.0);
                }
                Err(e) => fail("errno", e.0),
            }
            // Zero the rest of the last file page (it belongs to the zero-filled part).
            let tail = s.vaddr + s.filesz;
            if s.memsz > s.filesz && tail < file_end {
                // SAFETY: `[tail, file_end)` lies in the writable private mapping just made.
                unsafe { core::ptr::write_bytes(tail as *mut u8, 0, (file_end - tail) as usize) };
            }
            if prot != rw {
                // SAFETY: the segment's own pages, nothing else uses them yet.
                if let Err(e) = unsafe { sys::mprotect(start as usize, len, prot) } {
                    fail("mprotect errno", e.0);
                }
            }
        }
        let zero_start = if s.filesz > 0 { file_end } else { start };
        if mem_end > zero_start {
            if let Err(e) = sys::map_anon_at(zero_start as usize, (mem_end - zero_start) as usize, prot, 0) {
                fail("errno", e.0);
            }
        }
    }
    // SAFETY: `fd` was opened above and is not used afterwards.
    let _ = unsafe { sys::syscall(arch::nr::CLOSE, [fd, 0, 0, 0, 0, 0]) };
}

/// Builds the start-up stack downwards from a top address.
struct Builder {
    pos: u64,
    limit: u64,
}

impl Builder {
    /// Copy `bytes` and a NUL below the current position; returns their guest address.
    fn push_str(&mut self, bytes: &[u8]) -> u64 {
        self.push_bytes(bytes, true)
    }

    fn push_bytes(&mut self, bytes: &[u8], nul: bool) -> u64 {
        let len = bytes.len() as u64 + u64::from(nul);
        if self.pos < self.limit + len {
            eprintln!("hcontainer: arguments and environment do not fit the guest stack");
            sys::exit_group(EXIT_STARTUP_FAILED);
        }
        self.pos -= len;
        // SAFETY: `[pos, pos + len)` lies inside the mapped guest stack above `limit`.
        unsafe {
            let dst = self.pos as *mut u8;
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
            if nul {
                *dst.add(bytes.len()) = 0;
            }
        }
        self.pos
    }
}

/// Host entry point, called by `_start` with the kernel's initial stack pointer.
///
/// # Safety
/// Only `_start` calls this, once, with the kernel's stack pointer.
pub unsafe extern "C" fn start_rust(sp: *const usize) -> ! {
    // SAFETY: forwarded from `_start`.
    let host = unsafe { parse_host_stack(sp) };
    // SAFETY: the translated object defines `hc_guest_info`; it is never written.
    let info: GuestInfo = unsafe { crate::guest_info() };
    if info.state_version != u64::from(GUEST_STATE_VERSION) {
        eprintln!(
            "hcontainer: translated code uses GuestState version {}, this runtime version {}",
            info.state_version, GUEST_STATE_VERSION
        );
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    if let Err(i) = dispatch::check_sorted() {
        eprintln!("hcontainer: dispatch table is not sorted by guest address at entry {}", i);
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    // Environment switches for the runtime itself.
    let mut exec_env: Option<&[u8]> = None;
    let mut store_env: Option<&[u8]> = None;
    for i in 0..host.envc {
        // SAFETY: envp entries are NUL-terminated strings from the kernel.
        let s = unsafe { print::cstr(*host.envp.add(i), usize::MAX) };
        if let Some(v) = s.strip_prefix(b"HCONTAINER_WARN_SYSCALLS=") {
            crate::syscall::set_warn(!v.is_empty());
        }
        if let Some(v) = s.strip_prefix(b"HCONTAINER_TRACE_SYSCALLS=") {
            crate::syscall::set_trace(!v.is_empty());
        }
        if let Some(v) = s.strip_prefix(EXEC_ENV_EQ) {
            exec_env = Some(v);
        }
        if let Some(v) = s.strip_prefix(b"HCONTAINER_STORE=") {
            store_env = Some(v).filter(|v| !v.is_empty());
        }
    }

    let mut aux = StartAux {
        phdr: info.phdr,
        phnum: info.phnum,
        entry: info.entry,
        base: 0,
        execfn: None,
    };
    let start_pc;
    let program;
    if crate::loader::is_launcher() || exec_env.is_some() {
        // A dynamically linked guest: map it and its interpreter as Linux would.
        crate::loader::choose_store_root(store_env);
        map_stack("the guest stack", layout::GUEST_STACK_TOP, layout::GUEST_STACK_SIZE, 0);
        program = crate::loader::program(exec_env);
        let loaded = crate::loader::load(&program);
        mem::init_brk(loaded.brk);
        aux = StartAux {
            phdr: loaded.phdr,
            phnum: loaded.phnum,
            entry: loaded.entry,
            base: loaded.base,
            execfn: exec_env,
        };
        start_pc = loaded.start;
    } else {
        map_guest_segments();
        mem::init_brk(info.brk_start);
        map_stack("the guest stack", layout::GUEST_STACK_TOP, layout::GUEST_STACK_SIZE, 0);
        start_pc = info.entry;
    }
    let rsp = build_guest_stack(&host, &aux);

    map_stack("the host stack", layout::HOST_STACK_TOP, layout::HOST_STACK_SIZE, sys::MAP_NORESERVE);

    // SAFETY: the host stack (with the record page on top) was just mapped.
    let state = unsafe { crate::resume::init_main_record() };
    crate::resume::set_initialized();
    if let Err(e) = crate::notify::install_handlers() {
        eprintln!("hcontainer: cannot install the notify signal handlers: errno {}", e.0);
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    // SAFETY: nothing else holds a reference to the main state yet.
    unsafe {
        let st = &mut *state;
        st.gpr[Gpr::Rsp as usize] = rsp;
        st.gpr[Gpr::Rdx as usize] = 0;
        st.rip = start_pc;
    }
    // SAFETY: the host stack was just mapped; it ends below the record page, page (hence
    // 16-byte) aligned.
    unsafe { arch::switch_stack(layout::MAIN_RESUME_RECORD as usize, dispatch::run_main, state as usize) }
}

/// `HCONTAINER_EXEC=`, the variable the runtime's `execve` passes a program in.
const EXEC_ENV_EQ: &[u8] = b"HCONTAINER_EXEC=";

/// What the auxiliary vector says about the program.
struct StartAux<'a> {
    phdr: u64,
    phnum: u64,
    entry: u64,
    /// `AT_BASE`: the interpreter's load bias, 0 without one.
    base: u64,
    /// `AT_EXECFN` when it is not the kernel's (a program the runtime's `execve` passed).
    execfn: Option<&'a [u8]>,
}

/// Whether environment entry `s` is the runtime's own and not passed to the guest.
fn runtime_env(s: &[u8]) -> bool {
    s.starts_with(EXEC_ENV_EQ)
}

/// Build argc, argv, envp, auxv and the strings on the guest stack; returns the guest rsp.
fn build_guest_stack(host: &HostStart, info: &StartAux<'_>) -> u64 {
    let top = layout::GUEST_STACK_TOP;
    // Linux keeps argument strings within a quarter of the stack limit.
    let mut b = Builder { pos: top - 8, limit: top - layout::GUEST_STACK_SIZE / 4 };
    // The 8-byte NULL end marker at the very top is already zero (fresh mapping).

    let execfn_src: &[u8] = if let Some(e) = info.execfn {
        e
    } else if host.execfn != 0 {
        // SAFETY: the kernel's AT_EXECFN is a NUL-terminated string.
        unsafe { print::cstr(host.execfn as *const u8, 4096) }
    } else {
        b""
    };
    let execfn = b.push_str(execfn_src);

    // Strings: argv strings lowest, then envp strings, then execfn (as copy_strings leaves
    // them); pushed last-first so each vector's strings ascend in memory.
    let mut envc = 0u64;
    for i in (0..host.envc).rev() {
        // SAFETY: envp entries are NUL-terminated strings.
        let s = unsafe { print::cstr(*host.envp.add(i), usize::MAX) };
        if runtime_env(s) {
            continue;
        }
        b.push_str(s);
        envc += 1;
    }
    let env_start = b.pos;
    for i in (0..host.argc).rev() {
        // SAFETY: argv entries are NUL-terminated strings.
        let s = unsafe { print::cstr(*host.argv.add(i), usize::MAX) };
        b.push_str(s);
    }
    let arg_start = b.pos;

    // arch_align_stack, then platform string and AT_RANDOM bytes.
    b.pos &= !15;
    let platform = b.push_str(b"x86_64");
    let mut rnd = [0u8; 16];
    if host.random != 0 {
        // SAFETY: the kernel's AT_RANDOM points at 16 bytes.
        unsafe { core::ptr::copy_nonoverlapping(host.random as *const u8, rnd.as_mut_ptr(), 16) };
    } else if let Ok(ts) = sys::clock_gettime(sys::CLOCK_MONOTONIC) {
        rnd[..8].copy_from_slice(&ts.nsec.to_le_bytes());
        rnd[8..].copy_from_slice(&ts.sec.to_le_bytes());
    }
    let random = b.push_bytes(&rnd, false);

    let auxv: [(u64, u64); 19] = [
        (at::HWCAP, GUEST_HWCAP),
        (at::PAGESZ, layout::GUEST_PAGE_SIZE),
        (at::CLKTCK, 100),
        (at::PHDR, info.phdr),
        (at::PHENT, 56),
        (at::PHNUM, info.phnum),
        (at::BASE, info.base),
        (at::FLAGS, 0),
        (at::ENTRY, info.entry),
        (at::UID, host.uid),
        (at::EUID, host.euid),
        (at::GID, host.gid),
        (at::EGID, host.egid),
        (at::SECURE, host.secure),
        (at::RANDOM, random),
        (at::HWCAP2, 0),
        (at::EXECFN, execfn),
        (at::PLATFORM, platform),
        (at::NULL, 0),
    ];
    let items = 1 + (host.argc + 1) + (envc as usize + 1) + 2 * auxv.len();
    let sp = (b.pos - 8 * items as u64) & !15;
    if sp < b.limit {
        eprintln!("hcontainer: arguments and environment do not fit the guest stack");
        sys::exit_group(EXIT_STARTUP_FAILED);
    }

    let mut w = sp as *mut u64;
    let mut put = |v: u64| {
        // SAFETY: `[sp, sp + 8 * items)` lies in the mapped guest stack below the strings.
        unsafe {
            w.write(v);
            w = w.add(1);
        }
    };
    put(host.argc as u64);
    let mut p = arg_start;
    for i in 0..host.argc {
        put(p);
        // SAFETY: argv entries are NUL-terminated strings (same walk as the copy above).
        p += unsafe { print::cstr(*host.argv.add(i), usize::MAX) }.len() as u64 + 1;
    }
    put(0);
    let mut p = env_start;
    for i in 0..host.envc {
        // SAFETY: envp entries are NUL-terminated strings (same walk as the copy above).
        let s = unsafe { print::cstr(*host.envp.add(i), usize::MAX) };
        if runtime_env(s) {
            continue;
        }
        put(p);
        p += s.len() as u64 + 1;
    }
    put(0);
    for (tag, val) in auxv {
        put(tag);
        put(val);
    }
    sp
}
