//! Pure conversions between x86-64 and asm-generic (arm64, riscv64) kernel structures and
//! flag encodings. No dependencies, so host unit tests can include this file directly.

/// Size of x86-64 `struct stat`.
pub const X86_STAT_SIZE: usize = 144;
/// Size of asm-generic `struct stat` (arm64, riscv64).
pub const GENERIC_STAT_SIZE: usize = 128;
/// Size of x86-64 `struct epoll_event` (packed).
pub const X86_EPOLL_EVENT_SIZE: usize = 12;
/// Size of asm-generic `struct epoll_event`.
pub const GENERIC_EPOLL_EVENT_SIZE: usize = 16;

fn get<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

/// asm-generic `struct stat` → x86-64 `struct stat`.
///
/// Generic: dev u64 @0, ino u64 @8, mode u32 @16, nlink u32 @20, uid u32 @24, gid u32 @28,
/// rdev u64 @32, pad @40, size i64 @48, blksize i32 @56, pad @60, blocks i64 @64,
/// atime/atime_nsec/mtime/mtime_nsec/ctime/ctime_nsec i64 @72..120, unused @120.
/// x86-64: dev @0, ino @8, nlink u64 @16, mode u32 @24, uid @28, gid @32, pad @36,
/// rdev @40, size @48, blksize i64 @56, blocks @64, times @72..120, unused[3] @120.
pub fn stat_generic_to_x86(g: &[u8; GENERIC_STAT_SIZE]) -> [u8; X86_STAT_SIZE] {
    let mut x = [0u8; X86_STAT_SIZE];
    x[0..16].copy_from_slice(&g[0..16]); // dev, ino
    let nlink = u32::from_le_bytes(get(g, 20)) as u64;
    x[16..24].copy_from_slice(&nlink.to_le_bytes());
    x[24..28].copy_from_slice(&g[16..20]); // mode
    x[28..36].copy_from_slice(&g[24..32]); // uid, gid
    x[40..48].copy_from_slice(&g[32..40]); // rdev
    x[48..56].copy_from_slice(&g[48..56]); // size
    let blksize = i32::from_le_bytes(get(g, 56)) as i64;
    x[56..64].copy_from_slice(&blksize.to_le_bytes());
    x[64..120].copy_from_slice(&g[64..120]); // blocks, then the three timespecs
    x
}

/// x86-64 `struct epoll_event` (packed `{u32 events; u64 data}`) → asm-generic (16 bytes,
/// `data` at offset 8).
pub fn epoll_x86_to_generic(x: &[u8; X86_EPOLL_EVENT_SIZE]) -> [u8; GENERIC_EPOLL_EVENT_SIZE] {
    let mut g = [0u8; GENERIC_EPOLL_EVENT_SIZE];
    g[0..4].copy_from_slice(&x[0..4]);
    g[8..16].copy_from_slice(&x[4..12]);
    g
}

/// asm-generic `struct epoll_event` → x86-64 (packed).
pub fn epoll_generic_to_x86(g: &[u8; GENERIC_EPOLL_EVENT_SIZE]) -> [u8; X86_EPOLL_EVENT_SIZE] {
    let mut x = [0u8; X86_EPOLL_EVENT_SIZE];
    x[0..4].copy_from_slice(&g[0..4]);
    x[4..12].copy_from_slice(&g[8..16]);
    x
}

/// `open` flags whose values differ between x86-64 (= asm-generic, also riscv64) and arm64:
/// (x86-64 value, arm64 value) for O_DIRECT, O_LARGEFILE, O_DIRECTORY, O_NOFOLLOW.
const ARM64_OFLAG_SWAPS: [(u32, u32); 4] =
    [(0o40000, 0o200000), (0o100000, 0o400000), (0o200000, 0o40000), (0o400000, 0o100000)];

fn remap_bits(flags: u32, pairs: &[(u32, u32)], forward: bool) -> u32 {
    let all: u32 = pairs.iter().fold(0, |m, &(a, _)| m | a);
    let mut out = flags & !all;
    for &(x, a) in pairs {
        let (from, to) = if forward { (x, a) } else { (a, x) };
        if flags & from != 0 {
            out |= to;
        }
    }
    out
}

/// x86-64 `O_*` flags → arm64 `O_*` flags.
pub fn oflags_x86_to_arm64(flags: u32) -> u32 {
    remap_bits(flags, &ARM64_OFLAG_SWAPS, true)
}

/// arm64 `O_*` flags → x86-64 `O_*` flags.
pub fn oflags_arm64_to_x86(flags: u32) -> u32 {
    remap_bits(flags, &ARM64_OFLAG_SWAPS, false)
}

/// Write `machine` (NUL-padded) into the `machine` field of a `struct utsname` (six
/// 65-byte fields; `machine` is the fifth).
pub fn utsname_set_machine(uts: &mut [u8; 390], machine: &[u8]) {
    let field = &mut uts[4 * 65..5 * 65];
    field.fill(0);
    let n = machine.len().min(64);
    field[..n].copy_from_slice(&machine[..n]);
}
