//! Structure conversions between asm-generic and x86-64 layouts.

use hcontainer_runtime_host_tests::conv::*;

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn stat_fields_land_at_x86_offsets() {
    let mut g = [0xEEu8; GENERIC_STAT_SIZE];
    put(&mut g, 0, &0x0102u64.to_le_bytes()); // dev
    put(&mut g, 8, &0x0a0b0c0du64.to_le_bytes()); // ino
    put(&mut g, 16, &0o100644u32.to_le_bytes()); // mode
    put(&mut g, 20, &3u32.to_le_bytes()); // nlink
    put(&mut g, 24, &1000u32.to_le_bytes()); // uid
    put(&mut g, 28, &1001u32.to_le_bytes()); // gid
    put(&mut g, 32, &0x0801u64.to_le_bytes()); // rdev
    put(&mut g, 48, &123_456u64.to_le_bytes()); // size
    put(&mut g, 56, &4096i32.to_le_bytes()); // blksize
    put(&mut g, 64, &248u64.to_le_bytes()); // blocks
    for (i, off) in (72..120).step_by(8).enumerate() {
        put(&mut g, off, &(1_700_000_000u64 + i as u64).to_le_bytes());
    }
    let x = stat_generic_to_x86(&g);
    assert_eq!(u64_at(&x, 0), 0x0102);
    assert_eq!(u64_at(&x, 8), 0x0a0b0c0d);
    assert_eq!(u64_at(&x, 16), 3, "st_nlink is 64-bit at 16 on x86-64");
    assert_eq!(u32_at(&x, 24), 0o100644);
    assert_eq!(u32_at(&x, 28), 1000);
    assert_eq!(u32_at(&x, 32), 1001);
    assert_eq!(u32_at(&x, 36), 0, "padding is zero");
    assert_eq!(u64_at(&x, 40), 0x0801);
    assert_eq!(u64_at(&x, 48), 123_456);
    assert_eq!(u64_at(&x, 56), 4096, "st_blksize widened");
    assert_eq!(u64_at(&x, 64), 248);
    for (i, off) in (72..120).step_by(8).enumerate() {
        assert_eq!(u64_at(&x, off), 1_700_000_000 + i as u64);
    }
    assert!(x[120..].iter().all(|&b| b == 0), "unused tail is zero");
}

#[test]
fn stat_negative_blksize_sign_extends() {
    let mut g = [0u8; GENERIC_STAT_SIZE];
    put(&mut g, 56, &(-1i32).to_le_bytes());
    assert_eq!(u64_at(&stat_generic_to_x86(&g), 56), u64::MAX);
}

#[test]
fn epoll_event_round_trips_and_is_packed() {
    let mut x = [0u8; X86_EPOLL_EVENT_SIZE];
    put(&mut x, 0, &0x8000_0019u32.to_le_bytes());
    put(&mut x, 4, &0x1122_3344_5566_7788u64.to_le_bytes());
    let g = epoll_x86_to_generic(&x);
    assert_eq!(u32_at(&g, 0), 0x8000_0019);
    assert_eq!(u32_at(&g, 4), 0, "padding");
    assert_eq!(u64_at(&g, 8), 0x1122_3344_5566_7788);
    assert_eq!(epoll_generic_to_x86(&g), x);
}

#[test]
fn arm64_open_flags_swap_and_round_trip() {
    const O_DIRECTORY_X86: u32 = 0o200000;
    const O_NOFOLLOW_X86: u32 = 0o400000;
    const O_DIRECT_X86: u32 = 0o40000;
    const O_LARGEFILE_X86: u32 = 0o100000;
    const O_CLOEXEC: u32 = 0o2000000;
    assert_eq!(oflags_x86_to_arm64(O_DIRECTORY_X86), 0o40000);
    assert_eq!(oflags_x86_to_arm64(O_NOFOLLOW_X86), 0o100000);
    assert_eq!(oflags_x86_to_arm64(O_DIRECT_X86), 0o200000);
    assert_eq!(oflags_x86_to_arm64(O_LARGEFILE_X86), 0o400000);
    assert_eq!(oflags_x86_to_arm64(O_CLOEXEC | 0o1102), O_CLOEXEC | 0o1102, "common flags untouched");
    for f in [0u32, O_DIRECTORY_X86 | O_CLOEXEC, 0o777777, O_NOFOLLOW_X86 | O_DIRECT_X86 | 2] {
        assert_eq!(oflags_arm64_to_x86(oflags_x86_to_arm64(f)), f);
    }
}

#[test]
fn utsname_machine_is_replaced() {
    let mut uts = [b'z'; 390];
    utsname_set_machine(&mut uts, b"x86_64");
    assert_eq!(&uts[260..267], b"x86_64\0");
    assert!(uts[267..325].iter().all(|&b| b == 0));
    assert_eq!(uts[259], b'z');
    assert_eq!(uts[325], b'z');
}
