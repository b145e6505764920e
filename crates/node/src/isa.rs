//! ISA names: the host's (from the build target, so an aarch64 build of the agent reports
//! aarch64), and how a running process executes (native or translated).

/// The ISA this program was built for: `x86_64`, `aarch64` or `riscv64`.
pub fn host_isa() -> &'static str {
    std::env::consts::ARCH
}

/// Whether a running process executes a translation made by hcontainer (its executable
/// carries the `.hcontainer.meta` section) — `translated` — or its own code — `native`.
pub fn process_mode(pid: u32) -> &'static str {
    match hcontainer_recode::notify::read_meta(std::path::Path::new(&format!("/proc/{pid}/exe"))) {
        Ok(Some(_)) => "translated",
        Ok(None) => "native",
        Err(_) => "unknown",
    }
}
