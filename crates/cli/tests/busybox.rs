//! Debian's static `/bin/busybox` (package busybox-static) translated for x86_64, aarch64 and
//! riscv64: a set of applets run natively and translated must print, exit and write files
//! exactly alike.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{RunSpec, Status};

const BUSYBOX: &str = "/bin/busybox";

const INPUT: &[u8] = b"pear\napple\nfig 12\nbanana\ncherry 7\napple\ndate 3\n";
const NUMBERS: &[u8] = b"10\n9\n100\n-3\n42\n7\n";

struct Case {
    args: &'static [&'static str],
    stdin: &'static [u8],
    /// The exit status natively, checked too so that a case cannot pass vacuously.
    expect: i32,
}

const CASES: &[Case] = &[
    Case { args: &["echo", "hello", "translated", "world"], stdin: b"", expect: 0 },
    Case { args: &["true"], stdin: b"", expect: 0 },
    Case { args: &["false"], stdin: b"", expect: 1 },
    Case { args: &["seq", "1", "3", "40"], stdin: b"", expect: 0 },
    Case { args: &["wc", "-l", "-w", "-c", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["sort", "-r", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["sort", "-n", "numbers.txt"], stdin: b"", expect: 0 },
    Case { args: &["md5sum", "input.txt", "numbers.txt"], stdin: b"", expect: 0 },
    Case { args: &["sha256sum", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["expr", "6", "*", "7"], stdin: b"", expect: 0 },
    Case { args: &["expr", "length", "abcdef", "+", "100", "/", "7"], stdin: b"", expect: 0 },
    Case { args: &["printf", "%05d|%s|%x|%.3f\\n", "42", "abc", "255", "2.5"], stdin: b"", expect: 0 },
    Case { args: &["basename", "/usr/lib/libthing.so", ".so"], stdin: b"", expect: 0 },
    Case { args: &["tr", "a-z", "A-Z"], stdin: b"shout this line\nand this one\n", expect: 0 },
    Case { args: &["head", "-n", "3", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["tail", "-n", "2", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["cat", "input.txt", "numbers.txt"], stdin: b"", expect: 0 },
    Case { args: &["cat", "missing.txt"], stdin: b"", expect: 1 },
    Case { args: &["cp", "input.txt", "copy.txt"], stdin: b"", expect: 0 },
    Case { args: &["sed", "-e", "s/a/A/g", "-e", "/fig/d", "input.txt"], stdin: b"", expect: 0 },
    Case { args: &["uniq", "-c"], stdin: b"a\na\nb\nc\nc\nc\n", expect: 0 },
    Case { args: &["sh", "-c", "for i in 1 2 3; do echo line $i; done; x=$((6*7)); echo $x >out.txt; exit 5"], stdin: b"", expect: 5 },
];

const INPUTS: &[(&str, &[u8])] = &[("input.txt", INPUT), ("numbers.txt", NUMBERS)];

fn spec<'a>(exe: &'a Path, emulator: Option<&'a str>, args: &'a [String], stdin: &'a [u8]) -> RunSpec<'a> {
    RunSpec { exe, emulator, argv0: "busybox", args, stdin, input_files: INPUTS, timeout: Duration::from_secs(120) }
}

#[test]
fn busybox_applets_match_native_runs() {
    let work = common::work_dir("hct-busybox");
    let scratch = work.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("creating {}: {e}", scratch.display()));
    assert!(Path::new(BUSYBOX).exists(), "{BUSYBOX} is missing: run `cargo xtask setup` (busybox-static)");
    let case_args: Vec<Vec<String>> = CASES.iter().map(|c| c.args.iter().map(|s| s.to_string()).collect()).collect();
    let busybox = Path::new(BUSYBOX);
    let native: Vec<_> = CASES
        .iter()
        .zip(&case_args)
        .map(|(c, a)| common::run(&spec(busybox, None, a, c.stdin), &scratch))
        .collect();
    let mut failures = Vec::new();
    for ((c, o), a) in CASES.iter().zip(&native).zip(&case_args) {
        if o.status != Status::Exit(c.expect) {
            failures.push(format!("native busybox {a:?}: {} instead of exit {}", o.status, c.expect));
        }
    }

    let results = std::thread::scope(|s| {
        let handles: Vec<_> = common::TARGETS
            .iter()
            .map(|&target| {
                let (work, scratch, native, case_args) = (&work, &scratch, &native, &case_args);
                s.spawn(move || {
                    let out = work.join(format!("busybox.{target}"));
                    let mut row = Vec::new();
                    let mut fails = Vec::new();
                    match common::translate(Path::new(BUSYBOX), target, &out, Duration::from_secs(900)) {
                        Err(e) => fails.push(format!("busybox -> {target}: translation failed: {e}")),
                        Ok(t) => {
                            row.push(format!("translated in {:.1} s", t.as_secs_f64()));
                            for ((c, a), n) in CASES.iter().zip(case_args.iter()).zip(native.iter()) {
                                let o = common::run(&spec(&out, common::emulator_for(target), a, c.stdin), scratch);
                                let d = common::compare(n, &o);
                                if d.is_empty() {
                                    row.push(format!("ok {}", a[0]));
                                } else {
                                    row.push(format!("MISMATCH {}", a[0]));
                                    fails.push(format!("busybox {a:?} -> {target}:\n{}", d.join("\n")));
                                }
                            }
                        }
                    }
                    (target, row, fails)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread")).collect::<Vec<_>>()
    });
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    for (target, row, fails) in results {
        let _ = writeln!(so, "busybox {target:<8} {}", row.join(", "));
        failures.extend(fails);
    }
    for f in &failures {
        let _ = writeln!(so, "FAIL {f}");
    }
    drop(so);
    assert!(failures.is_empty(), "{} busybox failures (see the list above)", failures.len());
}
