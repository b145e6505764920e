//! The launcher of a dynamically linked guest: what Linux's ELF loader does for an x86-64
//! program with an interpreter (`fs/binfmt_elf.c`), then the guest's own `ld.so` takes over.
//!
//! The program is mapped from its file at its link-time addresses (`ET_EXEC`) or at
//! `layout::PIE_GUEST_BASE` (a PIE, where x86-64 Linux puts it with address randomization
//! off), its interpreter wherever a guest `mmap` would put it; both are registered with their
//! units ([`crate::units`]); the start-up stack gets `AT_PHDR`, `AT_ENTRY` and `AT_BASE` as
//! the kernel sets them, and the guest starts at the interpreter's entry. Which program: the
//! `HCONTAINER_EXEC` environment variable (set by the runtime's own `execve` of another
//! x86-64 program, and removed from the guest's environment), else the launcher's
//! `hc_loader_config`.
//!
//! This module also holds the runtime's `execve`: a guest that executes another x86-64
//! program (an ELF file, or a script whose interpreter is one) keeps running translated, in
//! the store's launcher or the program's static translation.

use core::cell::UnsafeCell;

use hcontainer_abi::layout;
use hcontainer_abi::unit::{LoaderConfig, EXEC_ENV, LOADER_MAGIC, PATH_MAX};

use crate::elf::{self, Headers};
use crate::sys::{self, Errno};
use crate::units::{self, PathBuf};
use crate::{arch::nr, eprintln, print, start::EXIT_STARTUP_FAILED};

extern "C" {
    /// The launcher's configuration (weak default: all zero, not a launcher).
    static hc_loader_config: LoaderConfig;
}

// Weak all-zero default for executables that are no launcher.
core::arch::global_asm!(
    ".pushsection .rodata.hc_loader_config_default,\"a\"",
    ".p2align 3",
    ".weak hc_loader_config",
    "hc_loader_config:",
    "    .zero 8 + 2 * 4096",
    ".popsection",
);

const _: () = assert!(core::mem::size_of::<LoaderConfig>() == 8 + 2 * PATH_MAX);

fn config() -> &'static LoaderConfig {
    // SAFETY: the symbol is a `LoaderConfig` (the launcher's or the zero default), never
    // written.
    unsafe { &*core::ptr::addr_of!(hc_loader_config) }
}

/// Whether this executable is a launcher.
pub fn is_launcher() -> bool {
    config().magic == LOADER_MAGIC
}

fn cstr_of(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// The guest program's path (absolute, symbolic links resolved): what `/proc/self/exe`
/// reads for the guest.
struct Exe(UnsafeCell<PathBuf>);
// SAFETY: written during start-up or a resume's one-time initialization (one thread), read
// afterwards.
unsafe impl Sync for Exe {}
static GUEST_EXE: Exe = Exe(UnsafeCell::new(PathBuf::new()));

/// The guest program's path (empty for a static translation, whose `/proc/self/exe` is
/// left alone).
pub fn guest_exe() -> &'static [u8] {
    // SAFETY: see `Exe`.
    unsafe { (*GUEST_EXE.0.get()).as_bytes() }
}

fn set_guest_exe(p: &[u8]) {
    // SAFETY: see `Exe`.
    let e = unsafe { &mut *GUEST_EXE.0.get() };
    e.truncate(0);
    e.push(p);
}

/// Where the units come from: the store holding this executable (a launcher or a static
/// translation in the store: `<root>/<sha256>/<isa>` or `<root>/launcher/<isa>`), else the
/// launcher's configuration, else `$HCONTAINER_STORE` (`env`, at start-up only).
pub fn choose_store_root(env: Option<&[u8]>) {
    let mut exe = [0u8; PATH_MAX];
    if let Ok(n) = sys::readlink(b"/proc/self/exe\0", &mut exe) {
        let p = &exe[..n];
        // Strip "/<isa>", then "/<64 hex>" or "/launcher".
        if let Some(i) = p.iter().rposition(|&c| c == b'/') {
            let dir = &p[..i];
            if let Some(j) = dir.iter().rposition(|&c| c == b'/') {
                let last = &dir[j + 1..];
                let hashy = last.len() == 64 && last.iter().all(|c| c.is_ascii_hexdigit());
                if (hashy || last == b"launcher") && &p[i + 1..] == units::HOST_ISA.as_bytes() {
                    units::set_store_root(&dir[..j]);
                    return;
                }
            }
        }
    }
    let c = cstr_of(&config().store_root);
    if !c.is_empty() {
        units::set_store_root(c);
        return;
    }
    if let Some(e) = env {
        units::set_store_root(e);
    }
}

/// At a resume of a recoded image: the launcher's program is the guest's executable.
pub fn adopt_config() {
    choose_store_root(None);
    let g = cstr_of(&config().guest_path);
    if !g.is_empty() {
        set_guest_exe(g);
    }
}

fn fail(what: &str, path: &[u8], why: &dyn core::fmt::Display) -> ! {
    eprintln!("hcontainer: {} {}: {}", what, print::Lossy(path), why);
    sys::exit_group(EXIT_STARTUP_FAILED)
}

/// Map one `PT_LOAD` of `fd` with bias `bias`, as the kernel does: file pages privately, the
/// rest of the last file page zeroed, anonymous pages up to `memsz`. `fixed` replaces what
/// is there (the interpreter's reservation); otherwise nothing may be there.
fn map_load(fd: i32, p: &elf::Phdr, bias: u64, fixed: bool) -> Result<(), Errno> {
    const PAGE: u64 = layout::GUEST_PAGE_SIZE;
    let vaddr = bias.wrapping_add(p.vaddr);
    let start = vaddr & !(PAGE - 1);
    let file_end = crate::mem::page_up(vaddr + p.filesz);
    let mem_end = crate::mem::page_up(vaddr + p.memsz);
    if crate::mem::overlaps_runtime(start, mem_end - start) || (p.vaddr.wrapping_sub(p.offset)) % PAGE != 0 {
        return Err(Errno::EINVAL);
    }
    let prot = (if p.flags & elf::PF_R != 0 { sys::PROT_READ } else { 0 })
        | (if p.flags & elf::PF_W != 0 { sys::PROT_WRITE } else { 0 })
        | (if p.flags & elf::PF_X != 0 { 4 } else { 0 });
    let place = if fixed { sys::MAP_FIXED } else { sys::MAP_FIXED_NOREPLACE };
    if p.filesz > 0 {
        let off = p.offset - (vaddr - start);
        let len = (file_end - start) as usize;
        // Writable while the tail is zeroed.
        let rw = prot | sys::PROT_WRITE;
        // SAFETY: a private file mapping of the guest's own file at the guest's address.
        let got = unsafe { sys::syscall(nr::MMAP, [start as usize, len, rw, sys::MAP_PRIVATE | place, fd as usize, off as usize])? };
        if got != start as usize {
            // SAFETY: the mapping just made, at the wrong place (qemu-user hint semantics).
            let _ = unsafe { sys::munmap(got, len) };
            return Err(Errno::EEXIST);
        }
        let tail = vaddr + p.filesz;
        if p.memsz > p.filesz && tail < file_end {
            // SAFETY: `[tail, file_end)` lies in the writable private mapping just made.
            unsafe { core::ptr::write_bytes(tail as *mut u8, 0, (file_end - tail) as usize) };
        }
        if rw != prot {
            // SAFETY: the segment's own pages.
            unsafe { sys::mprotect(start as usize, len, prot)? };
        }
    }
    let zero_start = if p.filesz > 0 { file_end } else { start };
    if mem_end > zero_start {
        let len = (mem_end - zero_start) as usize;
        // SAFETY: anonymous zero pages at the guest's address.
        let got = unsafe {
            sys::syscall(nr::MMAP, [zero_start as usize, len, prot, sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | place, usize::MAX, 0])?
        };
        if got != zero_start as usize {
            // SAFETY: as above.
            let _ = unsafe { sys::munmap(got, len) };
            return Err(Errno::EEXIST);
        }
    }
    Ok(())
}

/// What the start-up stack needs from the loaded program.
pub struct Loaded {
    /// `AT_PHDR`.
    pub phdr: u64,
    /// `AT_PHNUM`.
    pub phnum: u64,
    /// `AT_ENTRY`.
    pub entry: u64,
    /// `AT_BASE`: the interpreter's load bias.
    pub base: u64,
    /// Where the guest starts: the interpreter's entry.
    pub start: u64,
    /// The initial program break.
    pub brk: u64,
}

/// The program the launcher starts: `$HCONTAINER_EXEC` (`exec_env`) or the configuration.
pub fn program(exec_env: Option<&[u8]>) -> PathBuf {
    let mut p = PathBuf::new();
    match exec_env {
        Some(e) => {
            p.push(e);
        }
        None => {
            p.push(cstr_of(&config().guest_path));
        }
    }
    if p.as_bytes().is_empty() {
        eprintln!("hcontainer: this launcher names no program and ${} is not set", EXEC_ENV);
        sys::exit_group(EXIT_STARTUP_FAILED);
    }
    p
}

/// Map the program at `path` and its interpreter, register their units, and return what the
/// start-up stack needs.
pub fn load(path: &PathBuf) -> Loaded {
    let fd = match sys::open_read(path.as_cstr()) {
        Ok(fd) => fd,
        Err(e) => fail("cannot open", path.as_bytes(), &Errno2(e)),
    };
    let mut real = [0u8; PATH_MAX];
    let n = sys::fd_path(fd, &mut real).unwrap_or(0);
    let real = if n > 0 { &real[..n] } else { path.as_bytes() };
    set_guest_exe(real);
    let h = match Headers::read(fd, Some(elf::EM_X86_64)) {
        Ok(h) => h,
        Err(e) => fail("cannot run", path.as_bytes(), &e),
    };
    let Some((lo, hi)) = h.span() else { fail("cannot run", path.as_bytes(), &"it has no loadable segment") };
    let bias = match h.kind {
        elf::ET_EXEC => 0,
        elf::ET_DYN => layout::PIE_GUEST_BASE.wrapping_sub(lo & !(layout::GUEST_PAGE_SIZE - 1)),
        _ => fail("cannot run", path.as_bytes(), &"it is not an executable"),
    };
    let Some(interp) = h.find(elf::PT_INTERP).copied() else {
        fail("cannot run", path.as_bytes(), &"it is a static executable: run its static translation (`hcontainer translate PROG -o OUT`)")
    };
    for p in h.loads() {
        if let Err(e) = map_load(fd, p, bias, false) {
            fail("cannot map", path.as_bytes(), &Errno2(e));
        }
    }
    // The interpreter's path.
    let mut ipath = PathBuf::new();
    {
        let mut raw = [0u8; 256];
        let len = (interp.filesz as usize).min(raw.len());
        if sys::pread_exact(fd, &mut raw[..len], interp.offset).is_err() {
            fail("cannot run", path.as_bytes(), &"its PT_INTERP is outside the file");
        }
        ipath.push(cstr_of(&raw[..len]));
    }
    let ifd = match sys::open_read(ipath.as_cstr()) {
        Ok(fd) => fd,
        Err(e) => fail("cannot open the interpreter", ipath.as_bytes(), &Errno2(e)),
    };
    let ih = match Headers::read(ifd, Some(elf::EM_X86_64)) {
        Ok(h) if h.kind == elf::ET_DYN => h,
        Ok(_) => fail("cannot use the interpreter", ipath.as_bytes(), &"it is not a shared object (ld.so)"),
        Err(e) => fail("cannot use the interpreter", ipath.as_bytes(), &e),
    };
    let Some((ilo, ihi)) = ih.span() else { fail("cannot use the interpreter", ipath.as_bytes(), &"it has no loadable segment") };
    let ilo = ilo & !(layout::GUEST_PAGE_SIZE - 1);
    let ispan = crate::mem::page_up(ihi) - ilo;
    // Where a guest mmap of that size would go.
    let at = crate::syscall::guest_mmap([0, ispan, 0, (sys::MAP_PRIVATE | sys::MAP_ANONYMOUS) as u64, u64::MAX, 0]);
    if at < 0 {
        fail("cannot place the interpreter", ipath.as_bytes(), &Errno2(Errno((-at) as u16)));
    }
    let ibias = (at as u64).wrapping_sub(ilo);
    for p in ih.loads() {
        if let Err(e) = map_load(ifd, p, ibias, true) {
            fail("cannot map the interpreter", ipath.as_bytes(), &Errno2(e));
        }
    }
    units::register(fd, bias, real);
    let mut ireal = [0u8; PATH_MAX];
    let n = sys::fd_path(ifd, &mut ireal).unwrap_or(0);
    units::register(ifd, ibias, if n > 0 { &ireal[..n] } else { ipath.as_bytes() });
    sys::close(fd);
    sys::close(ifd);
    let phdr = match h.phdr_vaddr() {
        Some(v) => bias.wrapping_add(v),
        None => fail("cannot run", path.as_bytes(), &"its program headers are not loaded"),
    };
    Loaded {
        phdr,
        phnum: h.phnum as u64,
        entry: bias.wrapping_add(h.entry),
        base: ibias,
        start: ibias.wrapping_add(ih.entry),
        brk: crate::mem::page_up(bias.wrapping_add(hi)),
    }
}

/// An errno for messages.
struct Errno2(Errno);
impl core::fmt::Display for Errno2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.0 .0 {
            2 => "no such file",
            13 => "permission denied",
            17 => "the address is in use",
            22 => "invalid",
            _ => "",
        };
        if what.is_empty() {
            write!(f, "errno {}", self.0 .0)
        } else {
            write!(f, "{} (errno {})", what, self.0 .0)
        }
    }
}

// ---- execve ----

const ENOEXEC: i64 = -8;

/// How a guest `execve(path, argv, envp)` runs: `None` when it is not an x86-64 program (the
/// host runs it), else the result of executing it translated (only returns on failure).
pub fn execve(path: u64, argv: u64, envp: u64) -> Option<i64> {
    // SAFETY: the guest passes a NUL-terminated path.
    let p = unsafe { print::cstr(path as *const u8, PATH_MAX - 1) };
    let mut target = PathBuf::new();
    target.push(p);
    let fd = sys::open_read(target.as_cstr()).ok()?;
    let mut head = [0u8; 256];
    let n = sys::pread(fd, &mut head, 0).unwrap_or(0);
    sys::close(fd);
    let head = &head[..n];
    // A script: its interpreter and optional argument, as binfmt_script reads them.
    let mut script: Option<(PathBuf, Option<PathBuf>)> = None;
    if head.starts_with(b"#!") {
        let line = &head[2..head.iter().position(|&c| c == b'\n').unwrap_or(head.len())];
        let line = trim(line);
        let (interp, arg) = match line.iter().position(|&c| c == b' ' || c == b'\t') {
            Some(i) => (&line[..i], Some(trim(&line[i + 1..]))),
            None => (line, None),
        };
        if interp.is_empty() {
            return None;
        }
        let mut ip = PathBuf::new();
        ip.push(interp);
        let arg = arg.filter(|a| !a.is_empty()).map(|a| {
            let mut b = PathBuf::new();
            b.push(a);
            b
        });
        script = Some((ip, arg));
    }
    let prog = match &script {
        Some((ip, _)) => ip,
        None => &target,
    };
    let fd = sys::open_read(prog.as_cstr()).ok()?;
    let h = Headers::read(fd, Some(elf::EM_X86_64));
    let id = sys::fstat_id(fd);
    let is_static = match &h {
        Ok(h) => h.find(elf::PT_INTERP).is_none(),
        Err(_) => {
            sys::close(fd);
            return None;
        }
    };
    // Which executable runs it: a static program's own translation, else the launcher.
    let mut runner = PathBuf::new();
    let root = units::store_root();
    if root.is_empty() {
        sys::close(fd);
        eprintln!("hcontainer: cannot execute {} translated: no translation store is known", print::Lossy(prog.as_bytes()));
        return Some(ENOEXEC);
    }
    runner.push(root).push(b"/");
    if is_static {
        let Ok(id) = id else {
            sys::close(fd);
            return Some(ENOEXEC);
        };
        match units::sha256_hex(fd, &id) {
            Some(h) => runner.push(h.as_bytes()),
            None => {
                sys::close(fd);
                return Some(ENOEXEC);
            }
        };
    } else {
        runner.push(b"launcher");
    }
    sys::close(fd);
    runner.push(b"/").push(units::HOST_ISA.as_bytes());
    // argv: for a script, [interp, arg?, path, argv[1..]].
    const MAX_ARGS: usize = 4096;
    let mut args = [0u64; MAX_ARGS + 4];
    let mut na = 0;
    let guest_argv = argv as *const u64;
    if let Some((ip, arg)) = &script {
        args[na] = ip.as_cstr().as_ptr() as u64;
        na += 1;
        if let Some(a) = arg {
            args[na] = a.as_cstr().as_ptr() as u64;
            na += 1;
        }
        args[na] = path;
        na += 1;
        let mut i = 1;
        // SAFETY: the guest's argv is a NULL-terminated array of string pointers.
        while !guest_argv.is_null() && unsafe { *guest_argv } != 0 && unsafe { *guest_argv.add(i) } != 0 && na < MAX_ARGS {
            // SAFETY: as above, `i` is before the terminator.
            args[na] = unsafe { *guest_argv.add(i) };
            na += 1;
            i += 1;
        }
    } else {
        let mut i = 0;
        // SAFETY: as above.
        while !guest_argv.is_null() && unsafe { *guest_argv.add(i) } != 0 && na < MAX_ARGS {
            // SAFETY: as above.
            args[na] = unsafe { *guest_argv.add(i) };
            na += 1;
            i += 1;
        }
    }
    args[na] = 0;
    // envp: the guest's, without an older HCONTAINER_EXEC, plus the program for a launcher.
    let mut env = [0u64; MAX_ARGS + 2];
    let mut ne = 0;
    let mut exec_var = PathBuf::new();
    if !is_static {
        exec_var.push(EXEC_ENV.as_bytes()).push(b"=").push(prog.as_bytes());
        env[ne] = exec_var.as_cstr().as_ptr() as u64;
        ne += 1;
    }
    let guest_env = envp as *const u64;
    let mut i = 0;
    // SAFETY: the guest's envp is a NULL-terminated array of string pointers.
    while !guest_env.is_null() && unsafe { *guest_env.add(i) } != 0 && ne < MAX_ARGS {
        // SAFETY: as above.
        let e = unsafe { *guest_env.add(i) };
        // SAFETY: each entry is a NUL-terminated string.
        let s = unsafe { print::cstr(e as *const u8, 64) };
        if !(s.starts_with(EXEC_ENV.as_bytes()) && s.get(EXEC_ENV.len()) == Some(&b'=')) {
            env[ne] = e;
            ne += 1;
        }
        i += 1;
    }
    env[ne] = 0;
    // SAFETY: every pointer is a NUL-terminated string that lives until the call returns
    // (on success the process image is replaced).
    let r = unsafe {
        sys::syscall(nr::EXECVE, [runner.as_cstr().as_ptr() as usize, args.as_ptr() as usize, env.as_ptr() as usize, 0, 0, 0])
    };
    match r {
        Ok(_) => Some(0),
        Err(Errno::ENOENT) => {
            eprintln!(
                "hcontainer: {} has no {} translation in the store {} ({} is missing): run `hcontainer translate {} --target {}`",
                print::Lossy(prog.as_bytes()),
                units::HOST_ISA,
                print::Lossy(root),
                print::Lossy(runner.as_bytes()),
                print::Lossy(prog.as_bytes()),
                units::HOST_ISA
            );
            Some(ENOEXEC)
        }
        Err(e) => Some(e.neg()),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = s {
        s = rest;
    }
    s
}

/// `readlink` of the guest: `/proc/self/exe` (and `/proc/<own pid>/exe`) name the guest
/// program. `None` for every other path.
pub fn readlink(path: u64, buf: u64, size: u64) -> Option<i64> {
    let exe = guest_exe();
    if exe.is_empty() {
        return None;
    }
    // SAFETY: the guest passes a NUL-terminated path.
    let p = unsafe { print::cstr(path as *const u8, 64) };
    let own = {
        let mut b = print::Buf::new();
        let _ = core::fmt::write(&mut b, format_args!("/proc/{}/exe", sys::getpid()));
        b
    };
    if p != b"/proc/self/exe" && p != b"/proc/thread-self/exe" && p != own.as_bytes() {
        return None;
    }
    let n = exe.len().min(size as usize);
    // SAFETY: the guest passes a buffer of `size` writable bytes.
    unsafe { core::ptr::copy_nonoverlapping(exe.as_ptr(), buf as *mut u8, n) };
    Some(n as i64)
}

/// `open`/`openat` of the guest: `/proc/self/maps` (and the process's own pid's, and
/// `/proc/thread-self/maps`) reads as the guest expects it, without hcontainer's range (the
/// runtime, its units, host stacks); `/proc/self/exe` opens the guest program. `None` for
/// every other path, and for anything but a read-only open.
pub fn open(path: u64, flags: u64) -> Option<i64> {
    const O_ACCMODE: u64 = 3;
    if flags & O_ACCMODE != 0 {
        return None;
    }
    // SAFETY: the guest passes a NUL-terminated path.
    let p = unsafe { print::cstr(path as *const u8, 64) };
    let mut own = print::Buf::new();
    let _ = core::fmt::write(&mut own, format_args!("/proc/{}/", sys::getpid()));
    let rest = p
        .strip_prefix(b"/proc/self/")
        .or_else(|| p.strip_prefix(b"/proc/thread-self/"))
        .or_else(|| p.strip_prefix(own.as_bytes()))?;
    match rest {
        b"maps" => Some(filtered_maps()),
        b"exe" if !guest_exe().is_empty() => {
            let mut e = PathBuf::new();
            e.push(guest_exe());
            Some(match sys::open_read(e.as_cstr()) {
                Ok(fd) => i64::from(fd),
                Err(e) => e.neg(),
            })
        }
        _ => None,
    }
}

/// A memory file holding this process's `/proc/self/maps` without the lines of
/// hcontainer's range, positioned at its start.
fn filtered_maps() -> i64 {
    // SAFETY: memfd_create with a NUL-terminated name and MFD_CLOEXEC off (the guest's fd).
    let fd = match unsafe { sys::syscall(nr::MEMFD_CREATE, [b"maps\0".as_ptr() as usize, 0, 0, 0, 0, 0]) } {
        Ok(fd) => fd as i32,
        Err(e) => return e.neg(),
    };
    let Ok(src) = sys::open_read(b"/proc/self/maps\0") else { return i64::from(fd) };
    let mut buf = [0u8; 1 << 14];
    let mut line = [0u8; 1024];
    let mut n_line = 0usize;
    let mut off = 0u64;
    let keep = |l: &[u8]| -> bool {
        let hex = l.iter().take_while(|c| c.is_ascii_hexdigit()).fold(0u64, |a, &c| (a << 4) | u64::from((c as char).to_digit(16).unwrap_or(0)));
        !hcontainer_abi::layout::is_runtime_addr(hex)
    };
    loop {
        let got = match sys::pread(src, &mut buf, off) {
            Ok(0) | Err(_) => break,
            Ok(g) => g,
        };
        off += got as u64;
        for &c in &buf[..got] {
            if n_line < line.len() {
                line[n_line] = c;
                n_line += 1;
            }
            if c == b'\n' {
                if keep(&line[..n_line]) {
                    let _ = sys::write(fd, &line[..n_line]);
                }
                n_line = 0;
            }
        }
    }
    sys::close(src);
    // SAFETY: lseek on our own descriptor.
    let _ = unsafe { sys::syscall(nr::LSEEK, [fd as usize, 0, 0, 0, 0, 0]) };
    i64::from(fd)
}
