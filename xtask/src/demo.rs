//! `cargo xtask demo`: compile a corpus program, translate it for every host ISA, run each
//! translation (arm64 and riscv64 under qemu-user) beside the native program and say whether
//! stdout, stderr and the exit status match.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::util::{self, step, Runner};

/// Arguments of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct Args {
    /// C program to compile (static, gcc -O2).
    #[arg(default_value = "tests/corpus/bignum.c")]
    program: PathBuf,
    /// Arguments passed to the program.
    #[arg(last = true)]
    args: Vec<String>,
}

/// Runs the demo; `Ok(false)` when some translation does not behave like the native program.
pub fn run(args: &Args) -> Result<bool> {
    crate::setup::run()?;
    let root = util::repo_root();
    let hcontainer = util::hcontainer(&root)?;
    let src = root.join(&args.program);
    let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("program").to_string();
    let dir = util::cache_dir().join("demo");
    let native = dir.join(&stem);
    util::compile("gcc", &["-static", "-O2", "-w"], &src, &native)?;
    let work = dir.join("cwd");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let (reference, t) = util::run_captured(Runner::Native.command(&native, &[], &work).args(&args.args))?;
    println!();
    println!("== {} {} (gcc -static -O2) ==", args.program.display(), args.args.join(" "));
    println!("-- native: {} in {:.3} s; stdout:", reference.status_text(), t.as_secs_f64());
    print!("{}", String::from_utf8_lossy(&reference.stdout));
    if !reference.stderr.is_empty() {
        println!("-- native stderr:");
        print!("{}", String::from_utf8_lossy(&reference.stderr));
    }
    println!();
    println!("{:<8} {:>11} {:<14} {:>9}  {:<7} {:<7} {:<7} verdict", "target", "translate", "runner", "run", "stdout", "stderr", "status");
    let mut all = true;
    for target in ["x86_64", "aarch64", "riscv64"] {
        let out = dir.join(format!("{stem}.{target}"));
        let runner = Runner::for_target(target);
        let runner_name = match runner {
            Runner::Native => "native".to_string(),
            Runner::Qemu(q) => q.to_string(),
        };
        let xlate = match util::translate(&hcontainer, &native, target, &out) {
            Ok(d) => d,
            Err(err) => {
                all = false;
                println!("{target:<8} {:>11} {runner_name:<14} {:>9}  translation failed: {err:#}", "FAILED", "-");
                continue;
            }
        };
        let (got, t) = util::run_captured(runner.command(&out, &[], &work).args(&args.args))?;
        let same = |a: bool| if a { "same" } else { "DIFFERS" };
        let ok = got == reference;
        all &= ok;
        println!(
            "{target:<8} {:>10.2}s {runner_name:<14} {:>8.3}s  {:<7} {:<7} {:<7} {}",
            xlate.as_secs_f64(),
            t.as_secs_f64(),
            same(got.stdout == reference.stdout),
            same(got.stderr == reference.stderr),
            same(got.status == reference.status),
            if ok { "MATCH".to_string() } else { format!("MISMATCH ({})", got.status_text()) }
        );
        if got.stdout != reference.stdout {
            println!("         stdout {}", util::first_difference(&reference.stdout, &got.stdout));
        }
        if got.stderr != reference.stderr {
            println!("         stderr {}", util::first_difference(&reference.stderr, &got.stderr));
        }
    }
    step(if all { "demo: every translation matches the native run" } else { "demo: some translations differ" });
    Ok(all)
}
