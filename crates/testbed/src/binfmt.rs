//! Running aarch64 and riscv64 executables directly on this x86-64 machine, as a translated
//! program does when it executes another one: the kernel's `binfmt_misc` hands them to
//! Debian's `qemu-user`, registered the way the `qemu-user-binfmt` package registers it
//! (the ELF header's class, data and machine fields, flag `F` so the interpreter works in
//! every mount namespace).
//!
//! The registration is machine-wide and survives the process; [`ensure`] only adds what is
//! missing (idempotent) and needs root.

use std::path::Path;

const MISC: &str = "/proc/sys/fs/binfmt_misc";

/// The `binfmt_misc` magic and mask of a 64-bit little-endian ELF executable or shared object
/// for `machine` (`e_machine`).
fn magic_mask(machine: u16) -> (String, String) {
    let hex = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
    let [m0, m1] = machine.to_le_bytes();
    let magic = [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, m0, m1];
    // Any OS ABI byte and padding; ET_EXEC or ET_DYN.
    let mask = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff];
    (hex(&magic), hex(&mask))
}

/// Make `isa` (`aarch64` or `riscv64`) executables run under `/usr/bin/qemu-<isa>`:
/// mounts `binfmt_misc` if needed and registers the handler if absent.
pub fn ensure(isa: &str) -> Result<(), String> {
    let machine = match isa {
        "aarch64" => 183,
        "riscv64" => 243,
        other => return Err(format!("no qemu-user handler for {other}")),
    };
    let qemu = format!("/usr/bin/qemu-{isa}");
    if !Path::new(&qemu).exists() {
        return Err(format!("{qemu} is missing: run `cargo xtask setup` (Debian package qemu-user)"));
    }
    if !Path::new(MISC).join("register").exists() {
        let st = std::process::Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc", MISC])
            .status()
            .map_err(|e| format!("mount binfmt_misc: {e}"))?;
        if !st.success() {
            return Err(format!("mounting binfmt_misc on {MISC} failed ({st}); it needs root"));
        }
    }
    let name = format!("hcontainer-qemu-{isa}");
    // Any existing handler for these executables will do (the qemu-user-binfmt package's).
    for existing in [format!("qemu-{isa}"), name.clone()] {
        if let Ok(s) = std::fs::read_to_string(Path::new(MISC).join(&existing)) {
            if s.starts_with("enabled") {
                return Ok(());
            }
        }
    }
    let (magic, mask) = magic_mask(machine);
    let line = format!(":{name}:M::{magic}:{mask}:{qemu}:F");
    std::fs::write(Path::new(MISC).join("register"), line.as_bytes())
        .map_err(|e| format!("registering {qemu} in {MISC}/register: {e}"))
}
