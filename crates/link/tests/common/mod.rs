//! Shared helpers of the end-to-end tests: building executables and running them on this
//! machine (natively or under qemu-user).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use hcontainer_abi::calls::GuestInfo;
use hcontainer_abi::meta::HostIsa;
use hcontainer_codegen::{compile, GuestDescription};
use hcontainer_ir::Program;
use hcontainer_link::{link, GuestSegment};

/// A qemu-user that can run our executables. qemu 7.x tracks every page of the span
/// between the lowest and highest `PT_LOAD` (guest at 0x400000, runtime at 0x2000_0000_0000)
/// and runs out of memory, so an 8.0 or newer one is needed: `$HCONTAINER_QEMU_DIR/qemu-<arch>`,
/// `/opt/hcontainer/qemu/usr/bin/qemu-<arch>`, then `qemu-<arch>` on PATH.
pub fn qemu(arch: &str) -> std::path::PathBuf {
    let name = format!("qemu-{arch}");
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("HCONTAINER_QEMU_DIR") {
        candidates.push(std::path::PathBuf::from(d).join(&name));
    }
    candidates.push(Path::new("/opt/hcontainer/qemu/usr/bin").join(&name));
    candidates.push(name.clone().into());
    for c in candidates {
        let Ok(o) = Command::new(&c).arg("--version").output() else { continue };
        let v = String::from_utf8_lossy(&o.stdout);
        let major: u32 = v
            .split("version ")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(0);
        if major >= 8 {
            return c;
        }
    }
    panic!("no qemu-user >= 8 for {arch}: install bookworm-backports' qemu-user into /opt/hcontainer/qemu or set HCONTAINER_QEMU_DIR")
}

/// Run `exe` on this machine: natively for x86-64, else under the matching qemu-user.
pub fn run(isa: HostIsa, exe: &Path) -> std::process::Output {
    let mut cmd = match isa {
        HostIsa::X86_64 => Command::new(exe),
        HostIsa::Aarch64 | HostIsa::Riscv64 => {
            let mut c = Command::new(qemu(isa.name()));
            c.arg(exe);
            c
        }
    };
    // Bounded: a program that never exits (a thread parked for good, a lost wake-up) fails
    // the test instead of hanging it. Output is collected on another thread (pipes would
    // fill) while this one watches the clock.
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {} for {isa:?}: {e}", exe.display()));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{} for {isa:?} still ran after {RUN_LIMIT:?}", exe.display());
        }
    }
}

/// How long one test program may run (under qemu on a loaded 2-core machine).
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);


/// Compile `prog` for `isa`, link it with guest segments `(vaddr, memsz, data, rwx flags)`,
/// run it, return what it did.
pub fn build_and_run(isa: HostIsa, prog: &Program, segs: &[(u64, u64, &[u8], u32)]) -> std::process::Output {
    let entry = prog.functions[0].entry;
    let brk = segs.iter().map(|s| s.0 + s.1).max().unwrap_or(0).next_multiple_of(4096);
    let guest = GuestDescription {
        output: hcontainer_codegen::Output::Executable,
        info: GuestInfo {
            entry,
            phdr: 0,
            phnum: 0,
            phent: 56,
            brk_start: brk,
            load_bias: 0,
            state_version: u64::from(hcontainer_abi::GUEST_STATE_VERSION),
        },
        sha256: [0; 32],
        file_size: 0,
        is_pie: false,
        n_traps: 0,
        memory_model: hcontainer_codegen::MemoryModel::Tso,
    };
    let obj = compile(prog, &guest, isa).unwrap_or_else(|e| panic!("{isa:?}: {e}"));
    let segs: Vec<GuestSegment<'_>> = segs
        .iter()
        .map(|&(vaddr, memsz, data, f)| GuestSegment { vaddr, memsz, data, read: f & 4 != 0, write: f & 2 != 0, exec: f & 1 != 0 })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join(format!("prog-{}", isa.name()));
    link(isa, &obj, &segs, &exe).unwrap_or_else(|e| panic!("{isa:?}: {e}"));
    run(isa, &exe)
}
