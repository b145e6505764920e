//! Typed, thin wrappers over the host system calls the runtime itself needs, above the raw
//! per-ISA instruction in [`crate::arch`]. Errors are `Errno` values (small and `Copy`).

use crate::arch::{self, nr};

/// A host error number (positive, as in `errno`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u16);

#[allow(missing_docs, dead_code)]
impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const ENOENT: Errno = Errno(2);
    pub const EBADF: Errno = Errno(9);
    pub const ENOMEM: Errno = Errno(12);
    pub const EFAULT: Errno = Errno(14);
    pub const EEXIST: Errno = Errno(17);
    pub const EINVAL: Errno = Errno(22);
    pub const ENOSYS: Errno = Errno(38);

    /// The value a system call returns for this error.
    pub const fn neg(self) -> i64 {
        -(self.0 as i64)
    }
}

/// Issue a host system call and split its result.
///
/// # Safety
/// As [`arch::raw_syscall`].
#[inline]
pub unsafe fn syscall(nr: usize, a: [usize; 6]) -> Result<usize, Errno> {
    // SAFETY: forwarded contract.
    let r = unsafe { arch::raw_syscall(nr, a) };
    if (-4095..0).contains(&r) {
        Err(Errno((-r) as u16))
    } else {
        Ok(r as usize)
    }
}

/// Write `buf` to `fd` (one attempt).
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid readable slice for its length.
    unsafe { syscall(nr::WRITE, [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0]) }
}

/// Write all of `buf` to `fd`, retrying short writes; errors end the attempt silently
/// (used for diagnostics only).
pub fn write_all(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf = &buf[n.min(buf.len())..],
        }
    }
}

/// End the whole process with `status`.
pub fn exit_group(status: i32) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers and does not return.
        unsafe {
            let _ = syscall(nr::EXIT_GROUP, [status as usize, 0, 0, 0, 0, 0]);
        }
    }
}

/// Protection bits.
pub const PROT_NONE: usize = 0;
/// Readable.
pub const PROT_READ: usize = 1;
/// Writable.
pub const PROT_WRITE: usize = 2;
/// `MAP_PRIVATE`.
pub const MAP_PRIVATE: usize = 0x02;
/// `MAP_FIXED`.
pub const MAP_FIXED: usize = 0x10;
/// `MAP_ANONYMOUS`.
pub const MAP_ANONYMOUS: usize = 0x20;
/// `MAP_NORESERVE`.
pub const MAP_NORESERVE: usize = 0x4000;
/// `MAP_FIXED_NOREPLACE`.
pub const MAP_FIXED_NOREPLACE: usize = 0x10_0000;

/// Map `len` bytes of fresh anonymous memory exactly at `addr`, never replacing an existing
/// mapping. qemu-user 7.2 treats `MAP_FIXED_NOREPLACE` as a hint and may return another
/// address: that case is undone and reported as `EEXIST`.
pub fn map_anon_at(addr: usize, len: usize, prot: usize, extra_flags: usize) -> Result<(), Errno> {
    let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | extra_flags;
    // SAFETY: an anonymous mapping that replaces nothing cannot affect existing memory.
    let got = unsafe { syscall(nr::MMAP, [addr, len, prot, flags, usize::MAX, 0])? };
    if got != addr {
        // SAFETY: `got` is the mapping just created, owned by nobody else.
        let _ = unsafe { syscall(nr::MUNMAP, [got, len, 0, 0, 0, 0]) };
        return Err(Errno::EEXIST);
    }
    Ok(())
}

/// Change the protection of `[addr, addr + len)`.
///
/// # Safety
/// The range must belong to the caller; removing access from memory in use faults later.
pub unsafe fn mprotect(addr: usize, len: usize, prot: usize) -> Result<(), Errno> {
    // SAFETY: forwarded contract.
    unsafe { syscall(nr::MPROTECT, [addr, len, prot, 0, 0, 0]).map(|_| ()) }
}

/// Unmap `[addr, addr + len)`.
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: forwarded contract.
    unsafe { syscall(nr::MUNMAP, [addr, len, 0, 0, 0, 0]).map(|_| ()) }
}

/// `struct timespec` (same on every 64-bit host).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Timespec {
    /// Seconds.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: i64,
}

/// `CLOCK_REALTIME`.
pub const CLOCK_REALTIME: usize = 0;
/// `CLOCK_MONOTONIC`.
pub const CLOCK_MONOTONIC: usize = 1;

/// Read a clock.
pub fn clock_gettime(clock: usize) -> Result<Timespec, Errno> {
    let mut ts = Timespec::default();
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe {
        syscall(nr::CLOCK_GETTIME, [clock, &mut ts as *mut Timespec as usize, 0, 0, 0, 0])?;
    }
    Ok(ts)
}

/// This process's id.
pub fn getpid() -> usize {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall(nr::GETPID, [0; 6]).unwrap_or(0) }
}

/// This thread's id.
pub fn gettid() -> usize {
    // SAFETY: no arguments, no memory effects.
    unsafe { syscall(nr::GETTID, [0; 6]).unwrap_or(0) }
}

/// Set the host disposition of `sig` to default and unblock it, then send it to this thread.
/// Returns if the signal did not end the process.
pub fn raise_default(sig: usize) {
    // Host `struct sigaction` with SIG_DFL: all zero works on every host layout.
    let act = [0u64; 4];
    let unblock: u64 = 1 << (sig - 1);
    // SAFETY: `act` is a zeroed kernel sigaction (SIG_DFL, no flags, empty mask) large
    // enough for every host's layout; `unblock` is an 8-byte sigset; tgkill takes no pointers.
    unsafe {
        let _ = syscall(nr::RT_SIGACTION, [sig, act.as_ptr() as usize, 0, 8, 0, 0]);
        let _ = syscall(nr::RT_SIGPROCMASK, [1 /* SIG_UNBLOCK */, &unblock as *const u64 as usize, 0, 8, 0, 0]);
        let _ = syscall(nr::TGKILL, [getpid(), gettid(), sig, 0, 0, 0]);
    }
}

/// `AT_FDCWD`.
pub const AT_FDCWD: usize = -100isize as usize;
/// `O_RDONLY | O_CLOEXEC`.
pub const O_RDONLY_CLOEXEC: usize = 0o2000000;

/// Open the NUL-terminated `path` read-only (close-on-exec).
pub fn open_read(path: &[u8]) -> Result<i32, Errno> {
    if path.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `path` is NUL-terminated; openat reads nothing else.
    unsafe { syscall(nr::OPENAT, [AT_FDCWD, path.as_ptr() as usize, O_RDONLY_CLOEXEC, 0, 0, 0]).map(|fd| fd as i32) }
}

/// Close `fd` (errors ignored: nothing can be done about them).
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor touches no memory.
    let _ = unsafe { syscall(nr::CLOSE, [fd as usize, 0, 0, 0, 0, 0]) };
}

/// Read up to `buf.len()` bytes of `fd` at offset `off`.
pub fn pread(fd: i32, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its length.
    unsafe { syscall(nr::PREAD64, [fd as usize, buf.as_mut_ptr() as usize, buf.len(), off as usize, 0, 0]) }
}

/// Fill `buf` from `fd` at `off`; `EINVAL` if the file ends first.
pub fn pread_exact(fd: i32, buf: &mut [u8], off: u64) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        match pread(fd, &mut buf[done..], off + done as u64)? {
            0 => return Err(Errno::EINVAL),
            n => done += n,
        }
    }
    Ok(())
}

/// What identifies a file's content cheaply: device, inode, size and modification time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` seconds.
    pub mtime: i64,
    /// `st_mtime` nanoseconds.
    pub mtime_nsec: i64,
}

/// `fstat` of `fd`, reduced to its [`FileId`]. The fields used sit at the same offsets in
/// x86-64's `struct stat` and in the asm-generic one of arm64 and riscv64.
pub fn fstat_id(fd: i32) -> Result<FileId, Errno> {
    let mut st = [0u64; 18];
    // SAFETY: `st` is 144 bytes, the size of `struct stat` on every host here.
    unsafe { syscall(nr::FSTAT, [fd as usize, st.as_mut_ptr() as usize, 0, 0, 0, 0])? };
    Ok(FileId { dev: st[0], ino: st[1], size: st[6], mtime: st[11] as i64, mtime_nsec: st[12] as i64 })
}

/// Read the symbolic link at NUL-terminated `path` into `buf`; returns its length.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> Result<usize, Errno> {
    if path.last() != Some(&0) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `path` is NUL-terminated, `buf` writable for its length.
    unsafe { syscall(nr::READLINKAT, [AT_FDCWD, path.as_ptr() as usize, buf.as_mut_ptr() as usize, buf.len(), 0, 0]) }
}

/// The path of open descriptor `fd` (`/proc/self/fd/N`), NUL-terminated in `buf`; returns its
/// length without the NUL.
pub fn fd_path(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut p = crate::print::Buf::new();
    let _ = core::fmt::write(&mut p, format_args!("/proc/self/fd/{}\0", fd));
    let room = buf.len().saturating_sub(1);
    let n = readlink(p.as_bytes(), &mut buf[..room])?;
    buf[n] = 0;
    Ok(n)
}
