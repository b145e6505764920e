//! Dynamically linked programs of ours (`tests/dynamic`) that exercise what the guest's own
//! ld.so does — a library found through RUNPATH `$ORIGIN`, an IFUNC, `dlopen` of a library
//! with thread-local variables used by several threads, a callback into it, a gconv module
//! iconv loads, `LD_BIND_NOW`, `LD_PRELOAD`, `LD_LIBRARY_PATH` — run natively and translated
//! for every target with identical results; and the bad inputs of dynamic translation, each
//! refused with one line naming the file and the cause.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{RunSpec, Status};

const GCONV: &str = "/usr/lib/x86_64-linux-gnu/gconv/ISO8859-1.so";

fn sources() -> PathBuf {
    common::repo_root().join("tests/dynamic")
}

fn gcc(args: &[&str], cwd: &Path) {
    let o = Command::new("gcc").args(args).current_dir(cwd).output().expect("gcc");
    assert!(o.status.success(), "gcc {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Builds the program and its libraries into `dir`: `main`, `lib/libhctdep.so` (needed),
/// `lib/libhctplug.so` (dlopened), `lib/libhctpre.so` (preloaded).
fn build(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("lib")).expect("build dir");
    let src = sources();
    let s = |f: &str| src.join(f).display().to_string();
    gcc(&["-O2", "-shared", "-fPIC", "-o", "lib/libhctdep.so", &s("dep.c")], dir);
    gcc(&["-O2", "-shared", "-fPIC", "-o", "lib/libhctplug.so", &s("plug.c")], dir);
    gcc(&["-O2", "-shared", "-fPIC", "-o", "lib/libhctpre.so", &s("pre.c")], dir);
    gcc(&["-O2", "-o", "main", &s("main.c"), "-Llib", "-lhctdep", "-Wl,-rpath,$ORIGIN/lib", "-pthread"], dir);
}

fn hcontainer(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(common::hcontainer()).args(args).current_dir(cwd).output().expect("hcontainer")
}

fn translate(dir: &Path, target: &str, store: &Path) -> Result<PathBuf, String> {
    let out = dir.join(format!("main.{target}"));
    let o = hcontainer(
        &[
            "translate", "main", "--target", target, "-q", "--store", &store.display().to_string(), "--with",
            "lib/libhctplug.so", "--with", "lib/libhctpre.so", "--with", GCONV, "-o", &out.display().to_string(),
        ],
        dir,
    );
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
    }
    Ok(out)
}

#[test]
fn dynamic_programs_of_ours_match_native_runs() {
    let work = common::work_dir("hct-dynamic");
    let dir = work.join("build");
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    build(&dir);
    let store = common::store_dir();
    let lib = dir.join("lib");
    let plug = lib.join("libhctplug.so").display().to_string();
    let pre = lib.join("libhctpre.so").display().to_string();
    let libdir = lib.display().to_string();
    // (name, arguments, environment)
    let cases: Vec<(&str, Vec<String>, Vec<(&str, &str)>)> = vec![
        ("lazy", vec![plug.clone()], vec![]),
        ("bind-now", vec![plug.clone()], vec![("LD_BIND_NOW", "1")]),
        ("preload", vec![plug.clone()], vec![("LD_PRELOAD", pre.as_str())]),
        ("library-path", vec!["libhctplug.so".into()], vec![("LD_LIBRARY_PATH", libdir.as_str())]),
        // A bare name dlopen finds through the program's RUNPATH ($ORIGIN/lib).
        ("runpath", vec!["libhctplug.so".into()], vec![]),
        ("no-plugin", vec!["libnothere.so".into()], vec![]),
    ];
    let main = dir.join("main");
    fn spec<'a>(exe: &'a Path, emulator: Option<&'a str>, args: &'a [String]) -> RunSpec<'a> {
        RunSpec { exe, emulator, argv0: "main", args, stdin: b"", input_files: &[], timeout: Duration::from_secs(300) }
    }
    let native: Vec<_> = cases.iter().map(|(_, a, e)| common::run_env(&spec(&main, None, a), &scratch, e)).collect();
    let mut failures = Vec::new();
    for ((name, _, _), o) in cases.iter().zip(&native) {
        let want = if *name == "no-plugin" { 3 } else { 0 };
        if o.status != Status::Exit(want) {
            failures.push(format!("native {name}: {} ({})", o.status, common::first_line(&o.stderr)));
        }
    }
    assert!(String::from_utf8_lossy(&native[2].stdout).contains("dep_name = preloaded"), "LD_PRELOAD interposes natively");
    for target in common::TARGETS {
        let exe = match translate(&dir, target, &store) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("-> {target}: translation failed: {e}"));
                continue;
            }
        };
        let mut row = Vec::new();
        for ((name, a, e), n) in cases.iter().zip(&native) {
            let o = common::run_env(&spec(&exe, common::emulator_for(target), a), &scratch, e);
            let d = common::compare(n, &o);
            if d.is_empty() {
                row.push(format!("ok {name}"));
            } else {
                row.push(format!("MISMATCH {name}"));
                failures.push(format!("{name} -> {target}:\n{}", d.join("\n")));
            }
        }
        println!("dynamic {target:<8} {}", row.join(", "));
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} failures (see the list above)", failures.len());
}

/// One line on stderr, exit status 1 (translate) or 127 (run), naming `what` and `why`.
fn refused(o: &std::process::Output, status: i32, what: &str, why: &str) -> Result<(), String> {
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.trim();
    if o.status.code() != Some(status) || line.lines().count() != 1 || !line.contains(what) || !line.contains(why) {
        return Err(format!("expected exit {status} and one line naming {what:?} and {why:?}; got {:?}: {line}", o.status.code()));
    }
    println!("refused: {line}");
    Ok(())
}

#[test]
fn bad_dynamic_inputs_are_refused_with_the_cause() {
    let work = common::work_dir("hct-dynamic-bad");
    let dir = work.join("build");
    build(&dir);
    let store = work.join("store");
    let _ = std::fs::remove_dir_all(&store);
    let st = store.display().to_string();
    let src = sources();
    let s = |f: &str| src.join(f).display().to_string();
    let mut failures = Vec::new();
    let mut check = |r: Result<(), String>, case: &str| {
        if let Err(e) = r {
            failures.push(format!("{case}: {e}"));
        }
    };

    // A needed library that is nowhere on the search path.
    std::fs::create_dir_all(dir.join("nolib")).expect("dir");
    gcc(&["-O2", "-o", "nolib/main", &s("main.c"), "-Llib", "-lhctdep", "-pthread"], &dir);
    let o = hcontainer(&["translate", "nolib/main", "--target", "x86_64", "--store", &st], &dir);
    check(refused(&o, 1, "libhctdep.so", "was not found"), "missing library");

    // A truncated library, a library for another ISA.
    let plug = std::fs::read(dir.join("lib/libhctplug.so")).expect("plug");
    std::fs::write(dir.join("trunc.so"), &plug[..1000]).expect("write");
    let o = hcontainer(&["translate", "main", "--with", "trunc.so", "--target", "x86_64", "--store", &st], &dir);
    check(refused(&o, 1, "trunc.so", "truncated"), "truncated library");
    let arm = Command::new("aarch64-linux-gnu-gcc")
        .args(["-shared", "-fPIC", "-o", "arm.so", &s("pre.c")])
        .current_dir(&dir)
        .status()
        .expect("aarch64-linux-gnu-gcc (Debian package gcc-aarch64-linux-gnu)");
    assert!(arm.success());
    let o = hcontainer(&["translate", "main", "--with", "arm.so", "--target", "x86_64", "--store", &st], &dir);
    check(refused(&o, 1, "arm.so", "wrong architecture: AArch64"), "wrong-architecture library");

    // An interpreter that is no ld.so.
    std::fs::write(dir.join("x.c"), "int main(void) { return 0; }\n").expect("write");
    std::fs::copy("/bin/busybox", dir.join("notld")).expect("busybox-static");
    let interp = format!("-Wl,--dynamic-linker={}", dir.join("notld").display());
    gcc(&["-o", "badinterp", "x.c", &interp], &dir);
    let o = hcontainer(&["translate", "badinterp", "--target", "x86_64", "--store", &st], &dir);
    check(refused(&o, 1, "notld", "not a dynamic loader"), "interpreter that is not ld.so");

    // A library changed after the program was translated: its unit is not the new content's.
    let out = dir.join("main.x86_64");
    let o = hcontainer(
        &["translate", "main", "--target", "x86_64", "-q", "--store", &st, "--with", "lib/libhctplug.so", "-o", &out.display().to_string()],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    gcc(&["-O0", "-shared", "-fPIC", "-o", "lib/libhctdep.so", &s("dep.c")], &dir);
    let o = Command::new(&out).arg(dir.join("lib/libhctplug.so")).current_dir(&dir).output().expect("run");
    check(refused(&o, 127, "libhctdep.so", "has no x86_64 translation in the store"), "library changed after translation");
    let err = String::from_utf8_lossy(&o.stderr);
    if !err.contains("hcontainer translate") {
        failures.push(format!("the changed-library message names no command: {err}"));
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}
