//! Recode directions beyond the x86-64 round trip, and every error case naming its cause:
//! a native image becomes an arm64 image (registers in resume records, host registers at
//! the arm64 `hc_resume`, no x86 vDSO), that arm64 image comes back to native and real CRIU
//! restores it on this host, where it carries on with the output of an uninterrupted run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hcontainer_abi::layout;
use hcontainer_abi::meta::HostIsa;
use hcontainer_criu_image::pb::{CoreEntry, MmEntry};
use hcontainer_criu_image::ImageFile;
use hcontainer_recode::exe::Exe;
use hcontainer_recode::{recode, RecodeError, Target};

fn core(dir: &Path, tid: u32) -> CoreEntry {
    let f = ImageFile::read(&dir.join(format!("core-{tid}.img"))).expect("core image");
    f.entries()[0].decode().expect("core entry")
}

fn mm(dir: &Path, pid: u32) -> MmEntry {
    let f = ImageFile::read(&dir.join(format!("mm-{pid}.img"))).expect("mm image");
    f.entries()[0].decode().expect("mm entry")
}

/// Copies an images directory (hard links; `replace` names a file to write instead).
fn copy_dir(from: &Path, to: &Path, replace: Option<(&str, Vec<u8>)>) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dest = to.join(&name);
        match &replace {
            Some((n, bytes)) if *n == name => std::fs::write(&dest, bytes).expect("write"),
            _ if e.file_type().expect("type").is_symlink() => {
                std::os::unix::fs::symlink(std::fs::read_link(e.path()).expect("link"), &dest).expect("symlink")
            }
            _ => std::fs::hard_link(e.path(), &dest).expect("link"),
        }
    }
}

#[test]
fn arm64_image_and_back_to_native_and_every_error() {
    let env = Env::new(Libc::Musl, true);
    let expected = env.uninterrupted(0);
    let out = env.dir.join("run");
    let mut child = env.start(&out, 0);
    let pid = child.id();
    wait_lines(&out, 0, 5);
    let procs = hcontainer_recode::notify::classify_tree(pid, &env.store, None).expect("classify");
    hcontainer_recode::notify::notify(&procs, Default::default()).expect("notify");
    let dump = env.dir.join("dump");
    let mut opts = hcontainer_criu::DumpOptions::new(pid, &dump);
    opts.tcp_established = false;
    env.criu.dump(&opts).expect("criu dump");
    let _ = child.wait();
    wait_gone(pid);

    // Native → aarch64.
    let a64 = env.dir.join("a64");
    let report = recode(&dump, Target::Translated(HostIsa::Aarch64), &env.store, &a64).expect("recode to aarch64");
    assert_eq!(report.threads, 1);
    let exe = Exe::open(&env.store_path("aarch64")).expect("arm64 translation");
    let c = core(&a64, pid);
    assert_eq!(c.mtype, 3, "aarch64 machine type");
    assert!(c.thread_info.is_none());
    let ti = c.ti_aarch64.expect("aarch64 registers");
    assert_eq!(ti.gpregs.pc, exe.resume);
    assert_eq!(ti.gpregs.sp, layout::MAIN_RESUME_RECORD);
    assert_eq!(ti.gpregs.regs[0], layout::MAIN_RESUME_RECORD);
    assert_eq!(ti.gpregs.regs.len(), 31);
    let m = mm(&a64, pid);
    // CRIU's vDSO, vvar and vsyscall status bits.
    assert!(!m.vmas.iter().any(|v| v.status & ((1 << 2) | (1 << 3) | (1 << 12)) != 0), "x86 vDSO left in an arm64 image");
    assert!(m.vmas.iter().any(|v| v.start <= layout::MAIN_RESUME_RECORD && layout::MAIN_RESUME_RECORD < v.end));
    assert!(hcontainer_criu_image::read_dir(&a64).is_ok());
    crit_decodes(&a64);

    // Error cases, each naming its cause.
    let err = recode(&a64, Target::Translated(HostIsa::Aarch64), &env.store, &env.dir.join("e1")).expect_err("same form");
    assert!(matches!(err, RecodeError::AlreadyTarget { .. }), "{err}");
    assert!(err.to_string().contains("already of a aarch64 process"), "{err}");
    let err = recode(&dump, Target::Native, &env.store, &env.dir.join("e2")).expect_err("same form");
    assert!(err.to_string().contains("already of a native process"), "{err}");
    let err = recode(&dump, Target::Translated(HostIsa::Riscv64), &env.store, &env.dir.join("e3")).expect_err("no riscv64");
    let msg = err.to_string();
    assert!(msg.contains(&env.store_path("riscv64").display().to_string()), "{msg}");
    assert!(msg.contains("hcontainer translate") && msg.contains("--target riscv64 ") && msg.contains("--store"), "{msg}");
    // The x86-64 translation filed as the riscv64 one.
    std::fs::copy(env.store_path("x86_64"), env.store_path("riscv64")).expect("misfile");
    let err = recode(&dump, Target::Translated(HostIsa::Riscv64), &env.store, &env.dir.join("e4")).expect_err("wrong isa");
    assert!(matches!(err, RecodeError::WrongBinary { .. }), "{err}");
    assert!(err.to_string().contains("translated for x86_64, not riscv64"), "{err}");
    std::fs::remove_file(env.store_path("riscv64")).expect("remove");
    // Another program's translation filed under this program's hash.
    let other = env.dir.join("other");
    std::fs::write(other.with_extension("c"), "int main(void) { return 3; }\n").expect("write");
    let ok = std::process::Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&other)
        .arg(other.with_extension("c"))
        .status()
        .expect("musl-gcc");
    assert!(ok.success());
    let other_t = env.dir.join("other.riscv64");
    hcontainer_translate::translate_file(&other, HostIsa::Riscv64, &other_t, &mut |_| {}).expect("translate");
    std::fs::copy(&other_t, env.store_path("riscv64")).expect("misfile");
    let err = recode(&dump, Target::Translated(HostIsa::Riscv64), &env.store, &env.dir.join("e5")).expect_err("other binary");
    assert!(err.to_string().contains("images are of another binary"), "{err}");
    std::fs::remove_file(env.store_path("riscv64")).expect("remove");
    // A corrupted core image.
    let core_bytes = std::fs::read(dump.join(format!("core-{pid}.img"))).expect("read core");
    let bad = env.dir.join("bad-core");
    copy_dir(&dump, &bad, Some((&format!("core-{pid}.img"), core_bytes[..core_bytes.len() / 2].to_vec())));
    let err = recode(&bad, Target::Translated(HostIsa::X86_64), &env.store, &env.dir.join("e6")).expect_err("truncated core");
    assert!(err.to_string().contains(&format!("core-{pid}.img")) && err.to_string().contains("truncated"), "{err}");
    // A translated image whose resume record is damaged.
    let pages_name = std::fs::read_dir(&a64)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("pages-"))
        .expect("pages file");
    let mut pages = std::fs::read(a64.join(&pages_name)).expect("read pages");
    // The record is the last page recode wrote (the highest address).
    let at = pages.len() - 4096;
    pages[at] ^= 0xff;
    let bad = env.dir.join("bad-record");
    copy_dir(&a64, &bad, Some((&pages_name, pages)));
    let err = recode(&bad, Target::Native, &env.store, &env.dir.join("e7")).expect_err("damaged record");
    assert!(err.to_string().contains("corrupted image") && err.to_string().contains("no resume record at 0x"), "{err}");
    // The original changed since the dump.
    let saved = std::fs::read(&env.native).expect("read native");
    let mut longer = saved.clone();
    longer.push(0);
    std::fs::write(&env.native, &longer).expect("write");
    let err = recode(&dump, Target::Translated(HostIsa::X86_64), &env.store, &env.dir.join("e8")).expect_err("changed binary");
    assert!(err.to_string().contains("the dumped executable had") && err.to_string().contains("another binary"), "{err}");
    std::fs::write(&env.native, &saved).expect("restore the binary");

    // Native → riscv64 and arm64 → riscv64.
    let rv = env.dir.join("worker.riscv64");
    hcontainer_translate::translate_file(&env.native, HostIsa::Riscv64, &rv, &mut |_| {}).expect("translate riscv64");
    let rv = env.store.put(&env.sha, "riscv64", &rv).expect("store put");
    let rv_exe = Exe::open(&rv).expect("riscv64 translation");
    for (from, name) in [(&dump, "rv-from-native"), (&a64, "rv-from-a64")] {
        let out = env.dir.join(name);
        recode(from, Target::Translated(HostIsa::Riscv64), &env.store, &out).expect("recode to riscv64");
        let c = core(&out, pid);
        assert_eq!(c.mtype, 8, "riscv64 machine type");
        assert!(c.thread_info.is_none() && c.ti_aarch64.is_none());
        let ti = c.ti_riscv64.expect("riscv64 registers");
        assert_eq!(ti.gpregs.pc, rv_exe.resume);
        assert_eq!(ti.gpregs.sp, layout::MAIN_RESUME_RECORD);
        assert_eq!(ti.gpregs.a0, layout::MAIN_RESUME_RECORD);
        assert_eq!(ti.fpsimd.f.len(), 32);
        crit_decodes(&out);
    }

    // aarch64 → native, restored here.
    let back = env.dir.join("back");
    let r = recode(&a64, Target::Native, &env.store, &back).expect("recode to native");
    assert_eq!(r.from, "aarch64");
    let c = core(&back, pid);
    assert_eq!(c.mtype, 1);
    assert!(c.ti_aarch64.is_none());
    crit_decodes(&back);
    let mut ro = hcontainer_criu::RestoreOptions::new(&back, true);
    ro.tcp_established = false;
    let restored = env.criu.restore(&ro).expect("criu restore of the arm64 image recoded to native");
    assert_eq!(restored.pid, pid);
    wait_exit(pid, Duration::from_secs(60));
    assert_eq!(outputs(&out, 0), expected, "output after native → aarch64 image → native differs");
}
