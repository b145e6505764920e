//! Native → translated (x86-64) → native with real CRIU at both hops, through
//! [`hcontainer_recode::recode`]: the program's output equals an uninterrupted run, for a
//! single- and a multi-threaded process, linked with glibc and with musl. The images on the
//! way decode with our codec and with CRIU's `crit`, and an aarch64 image of the same
//! process is produced and decodes too.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hcontainer_abi::meta::HostIsa;
use hcontainer_recode::notify::{self, NativeOptions};
use hcontainer_recode::{recode, Kind, Target};

/// Notify, dump (the tree is killed), recode for `to` into `out`, restore; returns the
/// restored pid.
fn hop(env: &Env, pid: u32, child: Option<&mut std::process::Child>, name: &str, to: Target) -> u32 {
    let procs = notify::classify_tree(pid, &env.store, None).expect("classify");
    notify::notify(&procs, NativeOptions::default()).expect("notify");
    let dump = env.dir.join(format!("{name}.dump"));
    let mut opts = hcontainer_criu::DumpOptions::new(pid, &dump);
    opts.tcp_established = false;
    env.criu.dump(&opts).expect("criu dump");
    if let Some(c) = child {
        let _ = c.wait();
    }
    wait_gone(pid);
    let out = env.dir.join(format!("{name}.{to}"));
    let t = std::time::Instant::now();
    let report = recode(&dump, to, &env.store, &out).expect("recode");
    eprintln!("{name}: recode to {to} took {:?}: {report:?}", t.elapsed());
    assert_eq!(hcontainer_recode::image::kind_of(&out).expect("kind"), kind_of_target(to));
    decodes(&out);
    if env.aarch64.is_some() {
        // The same process as an arm64 translation: an image the arm64 node restores.
        {
            let out64 = env.dir.join(format!("{name}.aarch64"));
            let r = recode(&dump, Target::Translated(HostIsa::Aarch64), &env.store, &out64).expect("recode to aarch64");
            assert_eq!(r.threads, report.threads);
            assert_eq!(hcontainer_recode::image::kind_of(&out64).expect("kind"), Kind::Translated(HostIsa::Aarch64));
            decodes(&out64);
        }
    }
    let mut ro = hcontainer_criu::RestoreOptions::new(&out, true);
    ro.tcp_established = false;
    env.criu.restore(&ro).expect("criu restore").pid
}

fn kind_of_target(t: Target) -> Kind {
    match t {
        Target::Native => Kind::Native,
        Target::Translated(i) => Kind::Translated(i),
    }
}

fn round_trip(libc: Libc, threads: u32) {
    let env = Env::new(libc, threads > 0);
    let name = format!("{}-{threads}", libc.name());
    let expected = env.uninterrupted(threads);
    let out = env.dir.join("run");
    let mut child = env.start(&out, threads);
    let pid = child.id();
    wait_lines(&out, threads, 5);
    let pid2 = hop(&env, pid, Some(&mut child), &format!("{name}-1"), Target::Translated(HostIsa::X86_64));
    assert_eq!(pid2, pid, "CRIU keeps the pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    assert_eq!(exe, std::fs::canonicalize(env.store_path(HostIsa::X86_64.name())).expect("stored translation"));
    let before = total_lines(&out, threads);
    wait_lines(&out, threads, before + 5);
    let pid3 = hop(&env, pid, None, &format!("{name}-2"), Target::Native);
    assert_eq!(pid3, pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    assert_eq!(exe, std::fs::canonicalize(env.store_path("native")).expect("stored original"));
    wait_exit(pid, Duration::from_secs(60));
    assert_eq!(outputs(&out, threads), expected, "output after native → x86_64 → native differs from an uninterrupted run");
}

#[test]
fn musl_single_thread_round_trip() {
    round_trip(Libc::Musl, 0);
}

#[test]
fn musl_threads_round_trip() {
    round_trip(Libc::Musl, 2);
}

#[test]
fn glibc_single_thread_round_trip() {
    round_trip(Libc::Glibc, 0);
}

#[test]
fn glibc_threads_round_trip() {
    round_trip(Libc::Glibc, 2);
}

/// Every image file of `dir` decodes with our codec, and the core, mm and pagemap files with
/// CRIU's `crit`.
fn decodes(dir: &Path) {
    let files = hcontainer_criu_image::read_dir(dir).expect("our codec decodes every file");
    assert!(files.iter().any(|f| f.name.starts_with("core-")));
    crit_decodes(dir);
}
