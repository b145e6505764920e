//! Checkpoint and restore of real processes through the real CRIU.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use hcontainer_criu::{CriuError, DumpOptions, RestoreOptions, TIMINGS_DUMP_FILE, TIMINGS_RESTORE_FILE};
use hcontainer_criu_image::{pb, ImageFile};

/// Dumps `target` (stopping it), restores it detached and checks that its status file keeps
/// counting from where it stopped. Returns the restored pid.
fn dump_and_restore(target: &mut Target, images: &std::path::Path) -> u32 {
    let criu = criu();
    let dump = criu.dump(&DumpOptions::new(target.pid, images)).expect("dump");
    assert!(dump.total_us > 0);
    assert!(dump.freeze_us.is_some() && dump.memdump_us.is_some(), "no dump stats: {dump:?}");
    assert!(images.join(TIMINGS_DUMP_FILE).exists());
    target.reap();
    // Children of the dumped tree go to init, which reaps them in its own time: their pids
    // must be free before CRIU can give them out again.
    let pstree = ImageFile::read(&images.join("pstree.img")).expect("pstree.img");
    for task in pstree.decode_all::<pb::PstreeEntry>().expect("pstree entries") {
        wait_until("dumped tasks to disappear", || {
            !std::path::Path::new(&format!("/proc/{}", task.pid)).exists()
        });
    }
    let stopped = last_tick(&target.status).expect("ticks before the dump");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(last_tick(&target.status), Some(stopped), "the process ran on after its dump");

    let restored = criu.restore(&RestoreOptions::new(images, true)).expect("restore");
    assert_eq!(restored.pid, target.pid, "CRIU restores the same pid");
    assert!(restored.timings.restore_us.is_some(), "no restore stats: {:?}", restored.timings);
    let json = std::fs::read_to_string(images.join(TIMINGS_RESTORE_FILE)).expect("timings file");
    assert!(json.contains("\"restore_us\""));
    wait_until("ticks after the restore", || {
        last_tick(&target.status).is_some_and(|n| n > stopped + 3)
    });
    assert!(ticks_increasing(&target.status), "status file lost or repeated lines");
    restored.pid
}

#[test]
fn single_threaded_program_writing_a_file() {
    let _g = serial();
    let dir = scratch();
    let mut t = Target::start(dir.path(), "loop", None);
    let images = dir.path().join("images");
    let pid = dump_and_restore(&mut t, &images);
    // The file written through one descriptor goes on at the right offset: ticks 1, 2, 3…
    let all = ticks(&t.status);
    assert!(all.iter().enumerate().all(|(i, n)| *n == i as u64 + 1), "gap or reset: {all:?}");
    let pstree = ImageFile::read(&images.join("pstree.img")).unwrap();
    let entries = pstree.decode_all::<pb::PstreeEntry>().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].pid, t.pid);
    kill_tree(pid);
}

#[test]
fn multi_threaded_program() {
    let _g = serial();
    let dir = scratch();
    let mut t = Target::start(dir.path(), "threads", Some("3"));
    let images = dir.path().join("images");
    let pid = dump_and_restore(&mut t, &images);
    let pstree = ImageFile::read(&images.join("pstree.img")).unwrap();
    let entries = pstree.decode_all::<pb::PstreeEntry>().unwrap();
    assert_eq!(entries[0].threads.len(), 4, "main thread and 3 workers");
    let restored_threads = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
    assert_eq!(restored_threads, 4);
    kill_tree(pid);
}

#[test]
fn parent_with_children() {
    let _g = serial();
    let dir = scratch();
    let mut t = Target::start(dir.path(), "children", Some("2"));
    let kid_status: Vec<_> =
        (0..2).map(|i| dir.path().join(format!("children.status.{i}"))).collect();
    for s in &kid_status {
        wait_until("children ticking", || last_tick(s).is_some());
    }
    let images = dir.path().join("images");
    let pid = dump_and_restore(&mut t, &images);
    let pstree = ImageFile::read(&images.join("pstree.img")).unwrap();
    let entries = pstree.decode_all::<pb::PstreeEntry>().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries[1..].iter().all(|e| e.ppid == t.pid));
    for s in &kid_status {
        let before = last_tick(s).unwrap();
        wait_until("children ticking after restore", || last_tick(s).is_some_and(|n| n > before));
        assert!(ticks_increasing(s));
    }
    kill_tree(pid);
}

#[test]
fn tcp_server_with_established_connection() {
    let _g = serial();
    let dir = scratch();
    let mut t = Target::start_tcp(dir.path());
    let port: u16 = std::fs::read_to_string(dir.path().join("tcp.status.port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    let mut line = String::new();
    writeln!(writer, "before").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "echo 1 before\n");

    let images = dir.path().join("images");
    let criu = criu();
    criu.dump(&DumpOptions::new(t.pid, &images)).expect("dump");
    t.reap();
    let streams: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("tcp-stream-"))
        .collect();
    assert_eq!(streams.len(), 1, "one established connection dumped");
    let restored = criu.restore(&RestoreOptions::new(&images, true)).expect("restore");

    // The same client connection keeps working, and the server's count goes on.
    line.clear();
    writeln!(writer, "after").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "echo 2 after\n");
    // The listening socket is back: the kernel completes new handshakes on it.
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))
        .expect("listening socket restored");
    kill_tree(restored.pid);
}

impl TargetExt for Target {}
trait TargetExt {
    fn start_tcp(dir: &std::path::Path) -> Target {
        let status = dir.join("tcp.status");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_hcontainer-criu-target"))
            .arg("tcp")
            .arg(&status)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_until("port file", || dir.join("tcp.status.port").exists());
        Target { child: Some(child), pid, status }
    }
}

#[test]
fn leave_running_keeps_the_process_going() {
    let _g = serial();
    let dir = scratch();
    let t = Target::start(dir.path(), "loop", None);
    let images = dir.path().join("images");
    let mut opts = DumpOptions::new(t.pid, &images);
    opts.leave_running = true;
    criu().dump(&opts).expect("dump");
    let after = last_tick(&t.status).unwrap();
    wait_until("ticks after a leave-running dump", || {
        last_tick(&t.status).is_some_and(|n| n > after + 2)
    });
    assert!(images.join("inventory.img").exists());
}

#[test]
fn errors_are_clear() {
    let _g = serial();
    let criu = criu();
    let dir = scratch();

    // No such pid (above any pid_max).
    let err = criu.dump(&DumpOptions::new(4_999_999, dir.path().join("a"))).unwrap_err();
    assert!(matches!(err, CriuError::NoSuchProcess(4_999_999)), "{err}");
    assert!(err.to_string().contains("no process with pid 4999999"));

    // Target directory not empty.
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let me = std::process::id();
    let err = criu.dump(&DumpOptions::new(me, &full)).unwrap_err();
    assert!(matches!(err, CriuError::DirNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("is not empty"));

    // CRIU failing: a broken inventory; the error quotes CRIU's log and gives its path.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("inventory.img"), [0x16, 0x31, 0x31, 0x58, 5, 0, 0, 0]).unwrap();
    let err = criu.restore(&RestoreOptions::new(&broken, true)).unwrap_err();
    let text = err.to_string();
    match &err {
        CriuError::Failed { action, last_error, log, .. } => {
            assert_eq!(*action, "restore");
            assert!(last_error.contains("Error"), "{text}");
            assert!(log.exists(), "{text}");
            assert!(text.contains(&log.display().to_string()));
        }
        other => panic!("expected a CRIU failure, got {other}"),
    }

    // No dump at all.
    let err = criu.restore(&RestoreOptions::new(dir.path(), true)).unwrap_err();
    assert!(matches!(err, CriuError::NoImages(_)), "{err}");

    // CRIU missing or too old.
    let err = hcontainer_criu::Criu::locate(Some(&dir.path().join("nope"))).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let old = dir.path().join("old-criu");
    std::fs::write(&old, "#!/bin/sh\necho 'Version: 3.17'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = hcontainer_criu::Criu::locate(Some(&old)).unwrap_err();
    assert!(err.to_string().contains("older than 4.0"), "{err}");
}

#[test]
fn criu_check_passes() {
    let _g = serial();
    let c = criu();
    assert!(c.version().starts_with('4'), "{}", c.version());
    let out = c.check().expect("criu check");
    assert!(out.contains("Looks good"), "{out}");
}
