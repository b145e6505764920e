//! Programs migrated back and forth between native and translated execution at random
//! moments finish exactly as an uninterrupted run: same stdout, same files. Each program
//! (`tests/migrate/{compute,threads,files}.c`, static glibc and musl) is started with
//! `hcontainer run`, then moved native → translated x86-64 → native → … with `hcontainer
//! checkpoint --to` + `hcontainer restore` at seeded random moments (`HCT_SEED`; the seed is
//! printed).

#[path = "../../../tests/migrate/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{Libc, Rng, Side};

/// Hops per run (alternating, starting native → translated).
const HOPS: usize = 12;

fn hops(program: &str, libc: Libc, args: &[&str]) {
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
    let mut side = Side::Native;
    for n in 0..HOPS {
        std::thread::sleep(rng.between(Duration::from_millis(100), Duration::from_millis(800)));
        assert!(harness::alive(pid), "{name}: the program finished after {n} hops (make it run longer)");
        let to = side.other();
        let hop = harness::hop(pid, &root.join(format!("images-{n}")), to)
            .unwrap_or_else(|e| panic!("{name}: hop {n} ({side} -> {to}): {e}"));
        side = to;
        let exe_now = harness::exe_of(pid);
        let progress = std::fs::read_to_string(work.join("stdout.txt")).unwrap_or_default().lines().count();
        eprintln!(
            "{name}: hop {n} -> {to}: checkpoint {:?}, restore {:?}, {progress} lines out",
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
    assert!(running.wait_exit(Duration::from_secs(120)), "{name}: still running 120 s after the last hop");
    let hopped_time = t.elapsed();
    let stderr = std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default();
    assert!(stderr.is_empty(), "{name}: stderr: {stderr}");
    let want = harness::files_of(&reference);
    let got = harness::files_of(&work);
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
    eprintln!("{name}: {HOPS} hops, identical output; uninterrupted {native_time:?}, migrated {hopped_time:?}");
}

#[test]
fn compute_musl() {
    hops("compute", Libc::Musl, &["400", "8"]);
}

#[test]
fn threads_musl() {
    hops("threads", Libc::Musl, &["6", "500", "24"]);
}

#[test]
fn files_musl() {
    hops("files", Libc::Musl, &["600"]);
}
