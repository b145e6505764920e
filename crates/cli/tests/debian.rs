//! Debian's own dynamically linked programs, exactly as the packages ship them, translated for
//! x86_64, aarch64 and riscv64 with the closure of their libraries (the guest's own ld.so
//! loads them), run beside the native programs: stdout, stderr, exit status and the files
//! they write must be identical. Narrow with `HCT_TARGETS=aarch64,...` and
//! `HCT_DEBIAN=python3,bash,...`.
//!
//! The units go to the tests' shared store under `target/`, which later runs reuse. A translated shell that
//! runs a pipeline executes other translated programs; on this x86-64 machine the aarch64
//! and riscv64 launchers it executes need `binfmt_misc` handlers for qemu-user
//! (`hcontainer_testbed::binfmt`, registered here when missing: root).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{RunSpec, Status};

/// A program and the libraries it may `dlopen` besides its closure.
struct Program {
    name: &'static str,
    path: &'static str,
    with: &'static [&'static str],
}

const PROGRAMS: &[Program] = &[
    Program { name: "ls", path: "/usr/bin/ls", with: &[] },
    Program { name: "sort", path: "/usr/bin/sort", with: &[] },
    Program { name: "sha256sum", path: "/usr/bin/sha256sum", with: &[] },
    Program { name: "wc", path: "/usr/bin/wc", with: &[] },
    Program { name: "od", path: "/usr/bin/od", with: &[] },
    Program { name: "head", path: "/usr/bin/head", with: &[] },
    Program { name: "tail", path: "/usr/bin/tail", with: &[] },
    Program { name: "seq", path: "/usr/bin/seq", with: &[] },
    Program { name: "grep", path: "/usr/bin/grep", with: &[] },
    Program { name: "sed", path: "/usr/bin/sed", with: &[] },
    Program { name: "gawk", path: "/usr/bin/gawk", with: &[] },
    Program { name: "gzip", path: "/usr/bin/gzip", with: &[] },
    Program { name: "xz", path: "/usr/bin/xz", with: &[] },
    Program { name: "sqlite3", path: "/usr/bin/sqlite3", with: &[] },
    Program { name: "python3", path: "/usr/bin/python3.11", with: &["/usr/lib/python3.11/lib-dynload"] },
    Program { name: "lua5.4", path: "/usr/bin/lua5.4", with: &[] },
    Program { name: "perl", path: "/usr/bin/perl", with: &[] },
    Program { name: "bash", path: "/usr/bin/bash", with: &[] },
    Program { name: "openssl", path: "/usr/bin/openssl", with: &[] },
];

struct Case {
    /// The program (a [`Program::name`]).
    program: &'static str,
    args: &'static [&'static str],
    stdin: &'static [u8],
    /// The native exit status (checked, so a case cannot pass vacuously).
    expect: i32,
}

const SQL: &[u8] = b"create table w(word text, n int);
insert into w values ('pear', 3), ('apple', 12), ('fig', 7), ('apple', 5), ('kiwi', 1);
create index wi on w(word);
select word, sum(n), count(*) from w group by word order by sum(n) desc;
with recursive c(x) as (select 1 union all select x + 1 from c where x < 1000) select count(*), sum(x * x) % 1000003 from c;
select printf('%.6f', avg(n) / 3.0), group_concat(word, '+') from w;
";

const PY: &[u8] = br#"import json, re, hashlib, decimal, sys
d = {"words": re.findall(r"[a-z]+", open("input.txt").read())[:50], "n": 12}
s = json.dumps(d, sort_keys=True, indent=1)
print(hashlib.sha256(s.encode()).hexdigest(), json.loads(s) == d)
decimal.getcontext().prec = 50
print(decimal.Decimal(2).sqrt(), decimal.Decimal(1) / decimal.Decimal(7))
print(sum(i * i for i in range(200000)) % 1000003, sorted({w: len(w) for w in d["words"]}.items())[:5])
print(sys.argv[1:], file=sys.stderr)
sys.exit(3)
"#;

const LUA: &[u8] = b"local t = {}
for w in io.open('input.txt'):read('a'):gmatch('%a+') do t[w] = (t[w] or 0) + 1 end
local keys = {} for k in pairs(t) do keys[#keys + 1] = k end table.sort(keys)
for i = 1, 10 do print(keys[i], t[keys[i]]) end
local s = 0 for i = 1, 300000 do s = (s + i * i) % 1000003 end
print(s, string.format('%.10g', math.sin(1.5) * math.exp(2)))
";

const PERL: &[u8] = b"my %h; open(my $f, '<', 'input.txt') or die; while (<$f>) { $h{$1}++ while /([a-z]+)/g }
print join(',', map { \"$_=$h{$_}\" } (sort keys %h)[0..9]), \"\\n\";
printf(\"%.8f %s\\n\", atan2(1, 1) * 4, join('', reverse split //, 'translated'));
";

const INPUTS: &[(&str, &[u8])] = &[("script.sql", SQL), ("script.py", PY), ("script.lua", LUA), ("script.pl", PERL)];

const CASES: &[Case] = &[
    Case { program: "ls", args: &["-l", "--time-style=long-iso", "tree", "tree/sub"], stdin: b"", expect: 0 },
    Case { program: "ls", args: &["-la", "missing-dir"], stdin: b"", expect: 2 },
    Case { program: "sort", args: &["-k2", "-n", "-s", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "sort", args: &["-u", "-r", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "sha256sum", args: &["input.txt"], stdin: b"", expect: 0 },
    Case { program: "wc", args: &["input.txt"], stdin: b"", expect: 0 },
    Case { program: "od", args: &["-A", "x", "-t", "x1z", "-N", "512", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "grep", args: &["-n", "-E", "ab+c|[0-9]{3}", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "grep", args: &["-c", "zzzzzz", "input.txt"], stdin: b"", expect: 1 },
    Case { program: "sed", args: &["-E", "s/([a-z]+) ([0-9]+)/\\2 \\1/; /7/d", "input.txt"], stdin: b"", expect: 0 },
    Case {
        program: "gawk",
        args: &["{ n[$1] += $2 } END { PROCINFO[\"sorted_in\"] = \"@ind_str_asc\"; for (k in n) printf \"%s %d %.3f\\n\", k, n[k], log(n[k] + 1) }", "input.txt"],
        stdin: b"",
        expect: 0,
    },
    Case { program: "gzip", args: &["-9", "-n", "-k", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "xz", args: &["-6", "-k", "input.txt"], stdin: b"", expect: 0 },
    Case { program: "sqlite3", args: &[":memory:"], stdin: SQL, expect: 0 },
    Case { program: "python3", args: &["script.py", "arg1", "--flag"], stdin: b"", expect: 3 },
    Case { program: "lua5.4", args: &["script.lua"], stdin: b"", expect: 0 },
    Case { program: "perl", args: &["script.pl"], stdin: b"", expect: 0 },
    Case {
        program: "bash",
        args: &["-c", "set -o pipefail; for i in $(seq 1 40); do echo $((i * i % 17)) line$i; done | sort -n | tail -5; gzip -9 -c input.txt | gzip -dc | sha256sum; head -c 100 input.txt > head.txt; exit 4"],
        stdin: b"",
        expect: 4,
    },
    Case { program: "openssl", args: &["dgst", "-sha256", "-hex", "input.txt"], stdin: b"", expect: 0 },
    Case {
        program: "openssl",
        args: &["enc", "-aes-256-cbc", "-K", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "-iv", "0f0e0d0c0b0a09080706050403020100", "-in", "input.txt", "-out", "enc.bin"],
        stdin: b"",
        expect: 0,
    },
];

/// Generated text: words and numbers (deterministic).
fn input_text() -> Vec<u8> {
    let words = ["apple", "pear", "fig", "abbbc", "kiwi", "date", "plum", "lime", "quince", "abc"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = String::new();
    for i in 0..3000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out += &format!("{} {} {}\n", words[(x % 10) as usize], x % 1000, i);
    }
    out.into_bytes()
}

/// A directory tree with fixed times, owners and modes for `ls -l`.
fn make_tree(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("sub")).expect("tree");
    std::fs::write(dir.join("a.txt"), b"alpha\n").expect("tree");
    std::fs::write(dir.join("b.bin"), vec![7u8; 5000]).expect("tree");
    std::fs::write(dir.join("sub/c"), b"").expect("tree");
    std::os::unix::fs::symlink("a.txt", dir.join("link")).expect("tree");
    let st = Command::new("touch")
        .args(["-h", "-d", "2021-03-04 05:06:07"])
        .args(["a.txt", "b.bin", "sub/c", "link", "sub", "."].map(|f| dir.join(f)))
        .status()
        .expect("touch");
    assert!(st.success());
}

fn selected<'a, T>(items: &'a [T], var: &str, name: impl Fn(&T) -> &str) -> Vec<&'a T> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => {
            let want: Vec<&str> = v.split(',').collect();
            items.iter().filter(|i| want.contains(&name(i))).collect()
        }
        _ => items.iter().collect(),
    }
}

/// Translates `p` for `target` into `store`; returns the launcher.
fn translate(p: &Program, target: &str, store: &Path) -> Result<PathBuf, String> {
    let mut cmd = Command::new(common::hcontainer());
    cmd.args(["translate", p.path, "--target", target, "-q", "--store"]).arg(store);
    for w in p.with {
        cmd.args(["--with", w]);
    }
    let o = cmd.output().map_err(|e| format!("running hcontainer: {e}"))?;
    if !o.status.success() {
        return Err(format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim()));
    }
    let sha = hcontainer_store_sha(Path::new(p.path));
    let launcher = store.join(sha).join(target);
    launcher.exists().then_some(launcher.clone()).ok_or_else(|| format!("no launcher at {}", launcher.display()))
}

fn hcontainer_store_sha(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn debian_programs_match_native_runs() {
    let work = common::work_dir("hct-debian");
    let scratch = work.join("scratch");
    // The store the other tests of Debian programs use: libc, libssl and the rest are
    // translated once per target for all of them.
    let store = common::store_dir();
    std::fs::create_dir_all(&scratch).expect("scratch");
    let tree = scratch.join("tree");
    make_tree(&tree);
    let input = input_text();
    let mut inputs: Vec<(&str, &[u8])> = INPUTS.to_vec();
    inputs.push(("input.txt", &input));
    for p in PROGRAMS {
        assert!(Path::new(p.path).exists(), "{} is missing: run `cargo xtask setup`", p.path);
    }
    let programs = selected(PROGRAMS, "HCT_DEBIAN", |p| p.name);
    let cases: Vec<&Case> = CASES.iter().filter(|c| programs.iter().any(|p| p.name == c.program)).collect();
    let targets = selected(&common::TARGETS, "HCT_TARGETS", |t| t);
    for t in &targets {
        if **t != "x86_64" && cases.iter().any(|c| c.program == "bash") {
            hcontainer_testbed::binfmt::ensure(t).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let args: Vec<Vec<String>> = cases
        .iter()
        .map(|c| {
            c.args
                .iter()
                .map(|a| if *a == "tree" || a.starts_with("tree/") { scratch.join(a).display().to_string() } else { a.to_string() })
                .collect()
        })
        .collect();
    let mut failures = Vec::new();
    let native: Vec<_> = cases
        .iter()
        .zip(&args)
        .map(|(c, a)| {
            let p = PROGRAMS.iter().find(|p| p.name == c.program).expect("program");
            let o = common::run(
                &RunSpec { exe: Path::new(p.path), emulator: None, argv0: c.program, args: a, stdin: c.stdin, input_files: &inputs, timeout: Duration::from_secs(120) },
                &scratch,
            );
            if o.status != Status::Exit(c.expect) {
                failures.push(format!("native {} {a:?}: {} instead of exit {} ({})", c.program, o.status, c.expect, common::first_line(&o.stderr)));
            }
            o
        })
        .collect();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&&target| {
                let (store, scratch, native, args, cases, programs, inputs) = (&store, &scratch, &native, &args, &cases, &programs, &inputs);
                s.spawn(move || {
                    let mut row = Vec::new();
                    let mut fails = Vec::new();
                    let started = std::time::Instant::now();
                    let mut launchers = std::collections::HashMap::new();
                    for p in programs.iter() {
                        match translate(p, target, store) {
                            Ok(l) => {
                                launchers.insert(p.name, l);
                            }
                            Err(e) => fails.push(format!("{} -> {target}: translation failed: {e}", p.name)),
                        }
                    }
                    row.push(format!("translated in {:.1} s", started.elapsed().as_secs_f64()));
                    for ((c, a), n) in cases.iter().zip(args.iter()).zip(native.iter()) {
                        let Some(l) = launchers.get(c.program) else { continue };
                        let o = common::run(
                            &RunSpec {
                                exe: l,
                                emulator: common::emulator_for(target),
                                argv0: c.program,
                                args: a,
                                stdin: c.stdin,
                                input_files: inputs,
                                timeout: Duration::from_secs(600),
                            },
                            scratch,
                        );
                        let d = common::compare(n, &o);
                        if d.is_empty() {
                            row.push(format!("ok {} {:.1}s", c.program, o.elapsed.as_secs_f64()));
                        } else {
                            row.push(format!("MISMATCH {}", c.program));
                            fails.push(format!("{} {a:?} -> {target}:\n{}", c.program, d.join("\n")));
                        }
                    }
                    (target, row, fails)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread")).collect::<Vec<_>>()
    });
    for (target, row, fails) in results {
        println!("debian {target:<8} {}", row.join(", "));
        failures.extend(fails);
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(failures.is_empty(), "{} failures (see the list above)", failures.len());
}
