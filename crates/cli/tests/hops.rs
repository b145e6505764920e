//! Programs migrated back and forth between native and translated execution at random
//! moments finish exactly as an uninterrupted run: same stdout, same files. Each program
//! (`tests/migrate/{compute,threads,files}.c`, static glibc and musl) is started with
//! `hcontainer run`, then moved native → translated x86-64 → native → … with `hcontainer
//! checkpoint --to` + `hcontainer restore` at seeded random moments (`HCT_SEED`; the seed is
//! printed). `threads.c` runs six workers and the main thread in lock step through pthread
//! barriers, so every hop catches threads computing, spinning and waiting in futexes.

#[path = "../../../tests/migrate/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Libc, Rng, Side};

/// Hops per run (alternating, starting native → translated).
const HOPS: usize = 12;

/// `progress`: the file (in the working directory) that gains a line per step.
fn hops(program: &str, libc: Libc, args: &[&str], progress: &str) {
    let name = format!("hops-{program}-{}", libc.name());
    let mut rng = Rng::from_env(&name);
    let exe = harness::compile(program, libc);
    let translated = harness::translate_into_store(&exe);
    let root = harness::scratch(&name);
    let reference = root.join("reference");
    let work = root.join("work");
    std::fs::create_dir_all(&reference).expect("reference dir");
    std::fs::create_dir_all(&work).expect("work dir");

    let t = Instant::now();
    harness::reference_run(&exe, args, &reference, Duration::from_secs(60));
    let native_time = t.elapsed();

    let t = Instant::now();
    let mut running = harness::start(&exe, args, &work);
    let pid = running.pid;
    let native_bytes = std::fs::read(&exe).expect("read exe");
    let translated_bytes = std::fs::read(&translated).expect("read translation");
    // The hops happen at random points of the program's progress (lines in its progress
    // file), between 5 % and 70 % of what the uninterrupted run wrote, so that all of them
    // happen before the program ends whether the machine is idle or loaded.
    let lines = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join(progress)).map(|t| t.lines().count()).unwrap_or(0)
    };
    let total = lines(&reference) as u64;
    assert!(total >= 4 * HOPS as u64, "{name}: {total} progress lines are too few for {HOPS} hops");
    let mut targets: Vec<u64> = (0..HOPS).map(|_| total / 20 + rng.next() % (total * 65 / 100)).collect();
    targets.sort_unstable();
    let mut side = Side::Native;
    for (n, &target) in targets.iter().enumerate() {
        let reached = harness::poll(Duration::from_secs(120), || {
            (lines(&work) as u64 >= target || !harness::alive(pid)).then_some(())
        });
        assert!(
            reached.is_some(),
            "{name}: no progress to line {target} before hop {n} within 120 s\n{}",
            harness::describe(pid)
        );
        // And a random moment within the next step.
        std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
        assert!(harness::alive(pid), "{name}: the program finished after {n} hops (make it run longer)");
        let to = side.other();
        let hop = harness::hop(pid, &root.join(format!("images-{n}")), to)
            .unwrap_or_else(|e| panic!("{name}: hop {n} ({side} -> {to}): {e}"));
        side = to;
        let exe_now = harness::exe_of(pid);
        let out_lines = std::fs::read_to_string(work.join("stdout.txt")).unwrap_or_default().lines().count();
        let stderr = std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default();
        assert!(stderr.is_empty(), "{name}: after hop {n}: stderr: {stderr}");
        eprintln!(
            "{name}: hop {n} -> {to} at progress line {target}: checkpoint {:?}, restore {:?}, {out_lines} lines out",
            hop.checkpoint, hop.restore
        );
        // Unless it finished in the meantime, it runs as what it was moved to (the store may
        // hold its own copy of either file).
        if let Some(now) = exe_now.and_then(|p| std::fs::read(p).ok()) {
            let want = match to {
                Side::Native => &native_bytes,
                Side::X86_64 => &translated_bytes,
            };
            assert!(now == *want, "{name}: after hop {n} the process does not run its {to} executable");
        }
    }
    if !running.wait_exit(Duration::from_secs(120)) {
        let last = std::fs::read_to_string(work.join("stdout.txt")).unwrap_or_default();
        panic!(
            "{name}: still running 120 s after the last hop; last output {:?}\n{}",
            last.lines().last(),
            harness::describe(pid)
        );
    }
    let hopped_time = t.elapsed();
    assert_same_files(&name, &reference, &work);
    eprintln!("{name}: {HOPS} hops, identical output; uninterrupted {native_time:?}, migrated {hopped_time:?}");
    drop(running);
    harness::done(&root);
}

/// The run in `work` ended as the uninterrupted one in `reference`: empty stderr, the same
/// files with the same bytes.
fn assert_same_files(name: &str, reference: &std::path::Path, work: &std::path::Path) {
    let stderr = std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default();
    assert!(stderr.is_empty(), "{name}: stderr: {stderr}");
    let want = harness::files_of(reference);
    let got = harness::files_of(work);
    assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{name}: files");
    for (file, data) in &want {
        let other = &got[file];
        if data != other {
            let same = data.iter().zip(other.iter()).take_while(|(a, b)| a == b).count();
            panic!(
                "{name}: {file} differs from the uninterrupted run at byte {same} ({} vs {} bytes)\n  want: {:?}\n  got:  {:?}",
                data.len(),
                other.len(),
                String::from_utf8_lossy(&data[same.saturating_sub(40)..(same + 40).min(data.len())]),
                String::from_utf8_lossy(&other[same.saturating_sub(40)..(same + 40).min(other.len())])
            );
        }
    }
    assert!(want["stdout.txt"].len() > 100, "{name}: the program printed too little");
}

/// Hops one right after the other, each checkpoint as soon as the previous restore
/// returned, with 64 threads: the restored threads are still starting (installing the
/// runtime's handlers, taking the resume signal) when the next notify comes.
fn back_to_back(libc: Libc) {
    let name = format!("hops-back-to-back-{}", libc.name());
    let args = ["64", "1200", "4"];
    let exe = harness::compile("threads", libc);
    harness::translate_into_store(&exe);
    let root = harness::scratch(&name);
    let reference = root.join("reference");
    let work = root.join("work");
    std::fs::create_dir_all(&reference).expect("reference dir");
    std::fs::create_dir_all(&work).expect("work dir");
    harness::reference_run(&exe, args.as_slice(), &reference, Duration::from_secs(60));
    let mut running = harness::start(&exe, args.as_slice(), &work);
    let pid = running.pid;
    let lines = || std::fs::read_to_string(work.join("stdout.txt")).map(|t| t.lines().count()).unwrap_or(0);
    let started = harness::poll(Duration::from_secs(60), || (lines() >= 3 || !harness::alive(pid)).then_some(()));
    assert!(started.is_some() && harness::alive(pid), "{name}: no progress\n{}", harness::describe(pid));
    let mut side = Side::Native;
    for n in 0..BACK_TO_BACK_HOPS {
        let to = side.other();
        let hop = harness::hop(pid, &root.join(format!("images-{n}")), to)
            .unwrap_or_else(|e| panic!("{name}: hop {n} ({side} -> {to}): {e}"));
        eprintln!("{name}: hop {n} -> {to}: checkpoint {:?}, restore {:?}", hop.checkpoint, hop.restore);
        side = to;
    }
    assert!(running.wait_exit(Duration::from_secs(120)), "{name}: still running 120 s after the last hop\n{}", harness::describe(pid));
    assert_same_files(&name, &reference, &work);
    drop(running);
    harness::done(&root);
}

/// Back-to-back hops per run.
const BACK_TO_BACK_HOPS: usize = 6;

#[test]
fn compute_musl() {
    hops("compute", Libc::Musl, &["400", "8"], "stdout.txt");
}

#[test]
fn compute_glibc() {
    hops("compute", Libc::Glibc, &["400", "8"], "stdout.txt");
}

#[test]
fn threads_musl() {
    hops("threads", Libc::Musl, &["6", "500", "24"], "stdout.txt");
}

#[test]
fn threads_glibc() {
    hops("threads", Libc::Glibc, &["6", "500", "24"], "stdout.txt");
}

#[test]
fn files_musl() {
    hops("files", Libc::Musl, &["600"], "log.txt");
}

#[test]
fn files_glibc() {
    hops("files", Libc::Glibc, &["600"], "log.txt");
}

#[test]
fn threads_back_to_back_musl() {
    back_to_back(Libc::Musl);
}

#[test]
fn threads_back_to_back_glibc() {
    back_to_back(Libc::Glibc);
}
