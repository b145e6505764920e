//! Bad inputs to `hcontainer translate` end in a non-zero exit and a one-line error that names
//! the file and the cause, without a panic, within a bounded time, and leave no output file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{RunSpec, Status};

const LIMIT: Duration = Duration::from_secs(60);

fn build(cc: &str, flags: &[&str], out: &Path) {
    let src = out.with_extension("c");
    std::fs::write(&src, "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", src.display()));
    let o = std::process::Command::new(cc)
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (run `cargo xtask setup`)"));
    assert!(o.status.success(), "{cc} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `hcontainer translate <input> --target <target> -o <out>` and checks the error.
fn expect_error(input: &Path, target: &str, causes: &[&str]) {
    expect_error_with(input, target, causes, &[])
}

/// As [`expect_error`], with more arguments.
fn expect_error_with(input: &Path, target: &str, causes: &[&str], extra: &[&str]) {
    let dir = common::work_dir("hct-errors");
    let out = dir.join(format!("{}.out", input.file_name().and_then(|s| s.to_str()).unwrap_or("x")));
    let _ = std::fs::remove_file(&out);
    let args: Vec<String> = vec![
        "translate".into(),
        input.to_string_lossy().into_owned(),
        "--target".into(),
        target.into(),
        "-o".into(),
        out.to_string_lossy().into_owned(),
    ];
    let args: Vec<String> = args.into_iter().chain(extra.iter().map(|s| s.to_string())).collect();
    let o = common::run(
        &RunSpec { exe: &common::hcontainer(), emulator: None, argv0: "hcontainer", args: &args, stdin: b"", input_files: &[], timeout: LIMIT },
        &dir,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let what = format!("translate {} (stderr {stderr:?})", input.display());
    match o.status {
        Status::Exit(c) => assert_ne!(c, 0, "{what}: succeeded on bad input"),
        ref s => panic!("{what}: ended with {s}, expected an error exit"),
    }
    assert!(!stderr.contains("panicked"), "{what}: panicked");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: expected a one-line error");
    let name = input.file_name().and_then(|s| s.to_str()).unwrap_or_default();
    assert!(lines[0].contains(name), "{what}: the error does not name the file {name}");
    let lower = lines[0].to_lowercase();
    assert!(
        causes.iter().any(|c| lower.contains(c)),
        "{what}: the error names none of the expected causes {causes:?}"
    );
    assert!(!out.exists(), "{what}: left an output file {}", out.display());
}

fn inputs() -> PathBuf {
    let d = common::work_dir("hct-errors").join("inputs");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

#[test]
fn not_an_elf() {
    let p = inputs().join("not-an-elf.txt");
    std::fs::write(&p, "#!/bin/sh\necho this is a shell script, not an ELF file\n").expect("write input");
    expect_error(&p, "x86_64", &["elf", "magic"]);
}

#[test]
fn empty_file() {
    let p = inputs().join("empty.bin");
    std::fs::write(&p, b"").expect("write input");
    expect_error(&p, "aarch64", &["elf", "magic", "empty", "truncat", "short", "too small", "eof", "end of"]);
}

#[test]
fn truncated_elf() {
    let dir = inputs();
    let full = dir.join("full-static");
    build("gcc", &["-static", "-O2"], &full);
    let bytes = std::fs::read(&full).expect("read binary");
    for (cut, name) in [(40usize, "truncated-header.elf"), (bytes.len() / 3, "truncated-body.elf")] {
        let p = dir.join(name);
        std::fs::write(&p, &bytes[..cut]).expect("write input");
        expect_error(
            &p,
            "riscv64",
            &["truncat", "short", "too small", "eof", "end of", "out of bounds", "beyond", "past the end", "malformed", "invalid", "corrupt"],
        );
    }
}

#[test]
fn aarch64_elf() {
    let p = inputs().join("arm64-static");
    build("aarch64-linux-gnu-gcc", &["-static", "-O2"], &p);
    expect_error(&p, "x86_64", &["aarch64", "arm64", "machine", "architecture", "x86-64", "x86_64"]);
}

#[test]
fn dynamically_linked_elf_whose_library_is_missing() {
    // Linked against a library that is gone by the time it is translated.
    let dir = inputs();
    let lib = dir.join("libhctgone.so");
    let c = dir.join("gone.c");
    std::fs::write(&c, "int gone(void) { return 7; }\n").expect("write");
    let st = std::process::Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&c).status().expect("gcc");
    assert!(st.success());
    let p = dir.join("dynamic");
    let ldir = format!("-L{}", dir.display());
    build("gcc", &["-O2", &ldir, "-Wl,--no-as-needed", "-lhctgone"], &p);
    std::fs::remove_file(&lib).expect("remove the library");
    let store = common::work_dir("hct-errors").join("store");
    let st = format!("--store={}", store.display());
    expect_error_with(&p, "x86_64", &["was not found"], &[&st]);
}

#[test]
fn missing_file() {
    let p = inputs().join("does-not-exist");
    let _ = std::fs::remove_file(&p);
    expect_error(&p, "x86_64", &["no such file", "not found", "cannot open", "does not exist", "os error 2"]);
}
