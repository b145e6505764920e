//! Builds the no_std runtime (`crates/runtime`) for every host target and leaves one static
//! archive per ISA in `OUT_DIR`, embedded by `src/runtime.rs`. A runtime that cannot be built
//! leaves an empty archive and a warning; linking for that ISA then fails with a clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGETS: [(&str, &str); 3] = [
    ("x86_64", "x86_64-unknown-none"),
    ("aarch64", "aarch64-unknown-none"),
    ("riscv64", "riscv64gc-unknown-none-elf"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    for dir in ["crates/runtime/src", "crates/runtime/Cargo.toml", "crates/abi/src", "crates/semantics/src"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=HCONTAINER_SKIP_RUNTIME");
    // Facts find_lld needs at run time: the host triple and this toolchain's sysroot.
    let host = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=HC_HOST_TRIPLE={host}");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=HC_BUILD_SYSROOT={sysroot}");
    let runtime_manifest = root.join("crates/runtime/Cargo.toml");
    let skip = std::env::var_os("HCONTAINER_SKIP_RUNTIME").is_some();
    for (isa, target) in TARGETS {
        let dest = out.join(format!("runtime-{isa}.a"));
        let built = if skip || !runtime_manifest.exists() {
            None
        } else {
            build(&runtime_manifest, target, &out.join("runtime"))
        };
        match built {
            Some(lib) => {
                if let Err(e) = std::fs::copy(&lib, &dest) {
                    println!("cargo:warning=copying {} failed: {e}", lib.display());
                    write_empty(&dest);
                }
            }
            None => write_empty(&dest),
        }
    }
}

fn write_empty(dest: &Path) {
    if let Err(e) = std::fs::write(dest, b"") {
        panic!("cannot write {}: {e}", dest.display());
    }
}

/// Build the runtime for `target`; the path of the archive, or `None` (with a warning).
fn build(manifest: &Path, target: &str, target_dir: &Path) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--manifest-path"])
        .arg(manifest)
        .args(["--target", target, "--target-dir"])
        .arg(target_dir);
    // Settings meant for the outer build would break or skew the nested one.
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        let keep = k == "CARGO_HOME" || k == "CARGO_MAKEFLAGS";
        if (k.starts_with("CARGO_") && !keep)
            || matches!(
                k,
                "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "TARGET" | "HOST"
                    | "PROFILE" | "OPT_LEVEL" | "DEBUG" | "RUSTC_LINKER"
            )
        {
            cmd.env_remove(k);
        }
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            let lib = target_dir.join(target).join("release/libhcontainer_runtime.a");
            if lib.exists() {
                Some(lib)
            } else {
                println!("cargo:warning=runtime for {target} built but {} is missing", lib.display());
                None
            }
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).take(3).collect();
            println!("cargo:warning=runtime for {target} not built: {}", last.join(" | "));
            None
        }
        Err(e) => {
            println!("cargo:warning=cannot run cargo to build the runtime for {target}: {e}");
            None
        }
    }
}
