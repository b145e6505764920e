//! The migration service end to end on this machine: agents on localhost with their own work
//! folders, real CRIU, a small C program (counter.c) migrated between them.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hcontainer_node::agent::is_running;
use hcontainer_node::proto::{Conn, Reply, Request, Transport, PROTOCOL_VERSION};
use hcontainer_node::tls::{Identity, NodeDir, Role};
use hcontainer_node::{migrate, Agent, AgentConfig, AgentHandle, Client, ClientSecurity, MigrateOptions, RecodeAt, RunAs, Security};

/// CRIU dumps and restores of different tests would compete for the two cores: one at a time.
static CRIU_LOCK: Mutex<()> = Mutex::new(());

/// A CA and two node identities for the whole test binary: `agent` (the agents') and
/// `source` (the migrating side's).
fn identity(name: &str) -> Identity {
    static PKI: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = PKI.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        hcontainer_node::tls::testing::make(d.path(), "test", &[("agent", Role::Node), ("source", Role::Node)])
            .expect("test certificates");
        d
    });
    Identity::load(&NodeDir(dir.path().join(name))).expect("load identity")
}

fn source_security() -> ClientSecurity {
    ClientSecurity::Tls(identity("source"))
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    CRIU_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn build_counter(dir: &Path) -> PathBuf {
    let exe = dir.join("counter");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/counter.c");
    let st = Command::new("musl-gcc").args(["-static", "-O2", "-o"]).arg(&exe).arg(&src).status().expect("run musl-gcc");
    assert!(st.success(), "musl-gcc failed");
    exe
}

/// A counter running as the init of its own pid namespace (as in a container), so that its
/// restore on this same machine gets a pid of its own while the stopped source still holds
/// the original one.
struct Counter {
    unshare: Child,
    pid: u32,
}

impl Drop for Counter {
    fn drop(&mut self) {
        kill(self.pid);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn start_counter(exe: &Path, out: &Path, heap_mb: u32) -> Counter {
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "setsid"])
        .arg(exe)
        .arg(out)
        .arg(heap_mb.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unshare");
    let children = format!("/proc/{0}/task/{0}/children", unshare.id());
    let mut pid = 0;
    wait_for("the counter to start", Duration::from_secs(10), || {
        pid = std::fs::read_to_string(&children).ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0);
        pid != 0 && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| Some(e) == std::fs::canonicalize(exe).ok())
    });
    if pid == 0 {
        let _ = unshare.kill();
    }
    Counter { unshare, pid }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The counter's lines, checked to be 1, 2, 3, … without gap or repeat.
fn numbers(out: &Path) -> u64 {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut n = 0;
    for line in text.lines() {
        assert!(!line.starts_with("CORRUPT"), "the counter found a wrong page: {line}");
        let v: u64 = line.parse().unwrap_or_else(|_| panic!("bad line {line:?}"));
        assert_eq!(v, n + 1, "line {} of {}", n + 1, out.display());
        n = v;
    }
    n
}

fn state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let i = stat.rfind(')')?;
    stat[i + 1..].split_whitespace().next().map(str::to_string)
}

fn kill(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).stderr(Stdio::null()).status();
}

fn agent(work: &Path, store: Option<&Path>) -> AgentHandle {
    let mut config = AgentConfig::new("127.0.0.1:0", work, Security::Tls { identity: identity("agent"), push_from: None });
    config.store = store.map(Path::to_path_buf);
    Agent::bind(config).expect("bind agent").spawn().expect("spawn agent")
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false)
}

fn options(pid: u32, agent: &AgentHandle, work: &Path) -> MigrateOptions {
    let mut o = MigrateOptions::new(pid, agent.addr().to_string(), source_security());
    o.work = work.to_path_buf();
    o
}

#[test]
fn native_counter_hops_between_two_agents() {
    let _l = lock();
    let d = tempfile::tempdir().expect("temp dir");
    let exe = build_counter(d.path());
    let (a, b) = (agent(&d.path().join("a"), None), agent(&d.path().join("b"), None));
    let out = d.path().join("out.txt");
    let child = start_counter(&exe, &out, 0);
    wait_for("counter output", Duration::from_secs(10), || numbers(&out) >= 5);

    let report = migrate(&options(child.pid, &a, &d.path().join("w")), &mut hcontainer_node::migrate::Quiet)
        .expect("migrate to agent a");
    eprintln!("{}", report.to_text());
    // The source was killed only after the destination ran it.
    let source = child.pid;
    wait_for("the source to end", Duration::from_secs(5), || !is_running(source));
    drop(child);
    let pid1 = report.dest_pid;
    assert!(is_running(pid1), "restored pid {pid1} runs");
    assert_eq!(report.dest_mode, "native");
    let n1 = numbers(&out);
    wait_for("output after hop 1", Duration::from_secs(20), || numbers(&out) >= n1 + 10);
    assert!(report.timings.downtime_us >= report.timings.dump_us);
    assert!(report.final_round.sent_bytes > 0 && report.final_round.wire_bytes > 0);

    // Second hop, from agent a's process to agent b.
    let report2 = migrate(&options(pid1, &b, &d.path().join("w")), &mut hcontainer_node::migrate::Quiet)
        .expect("migrate to agent b");
    eprintln!("{}", report2.to_text());
    let pid2 = report2.dest_pid;
    wait_for("hop-1 process gone", Duration::from_secs(5), || !is_running(pid1));
    let n2 = numbers(&out);
    wait_for("output after hop 2", Duration::from_secs(20), || numbers(&out) >= n2 + 10);
    assert!(is_running(pid2));

    // Status: b keeps the process; a's is gone. Both work folders are empty again.
    let mut c = Client::connect(&b.addr().to_string(), &source_security()).expect("connect b");
    let (isa, procs) = c.status().expect("status");
    assert_eq!(isa, std::env::consts::ARCH);
    assert!(procs.iter().any(|p| p.pid == pid2 && p.running && p.mode == "native"), "{procs:?}");
    let procs_a = a.processes();
    assert!(procs_a.iter().any(|p| p.pid == pid1 && !p.running), "{procs_a:?}");
    assert!(empty(a.jobs_dir()) && empty(b.jobs_dir()));
    kill(pid2);
}

#[test]
fn native_counter_moves_to_its_translation_via_the_agents() {
    let _l = lock();
    let d = tempfile::tempdir().expect("temp dir");
    let exe = build_counter(d.path());
    let translated = d.path().join("counter.x86_64");
    hcontainer_translate::translate_file(&exe, hcontainer_translate::HostIsa::X86_64, &translated, &mut |_| {})
        .expect("translate the counter");
    let store_dir = d.path().join("store");
    let store = hcontainer_recode::store::Store::open(Some(&store_dir)).expect("store");
    let hash = hcontainer_recode::store::sha256_file(&exe).expect("hash");
    let stored = store.put(&hash, "x86_64", &translated).expect("store put");
    let (a, b) = (agent(&d.path().join("a"), Some(&store_dir)), agent(&d.path().join("b"), None));

    for at in [RecodeAt::Destination, RecodeAt::Origin] {
        let out = d.path().join(format!("out-{at:?}.txt"));
        let child = start_counter(&exe, &out, 0);
        wait_for("counter output", Duration::from_secs(10), || numbers(&out) >= 5);
        let mut o = options(child.pid, &a, &d.path().join("w"));
        o.run_as = RunAs::Translated;
        o.recode_at = at;
        o.store = Some(store_dir.clone());
        // Recode at the destination also goes through a pre-copy chain of images.
        o.pre_dumps = if at == RecodeAt::Destination { 1 } else { 0 };
        let report = migrate(&o, &mut hcontainer_node::migrate::Quiet).expect("migrate native → translated");
        eprintln!("{}", report.to_text());
        drop(child);
        assert_eq!(report.dest_mode, "translated");
        assert_eq!(report.recoded_at, Some(at));
        assert_eq!(report.recoded_to.as_deref(), Some("x86_64"));
        assert_eq!(report.image, "native");
        assert!(report.timings.recode_us > 0);
        assert!(report.timings.notify_us > 0, "the native thread was brought to a migration point");
        let pid = report.dest_pid;
        let exe_link = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
        assert_eq!(exe_link, stored);
        let n = numbers(&out);
        wait_for("translated output", Duration::from_secs(20), || numbers(&out) >= n + 10);

        // The translated process moves on to agent b as it is (same ISA, no recode, no
        // notify).
        let report2 = migrate(&options(pid, &b, &d.path().join("w")), &mut hcontainer_node::migrate::Quiet)
            .expect("migrate translated → b");
        eprintln!("{}", report2.to_text());
        assert_eq!(report2.image, "translated-x86_64");
        assert_eq!(report2.dest_mode, "translated");
        assert_eq!(report2.recoded_at, None);
        assert_eq!(report2.timings.notify_us, 0);
        let n = numbers(&out);
        wait_for("output on b", Duration::from_secs(20), || numbers(&out) >= n + 10);
        assert!(!is_running(pid));
        kill(report2.dest_pid);
    }
}

fn refused(addr: &str, reqs: &[Request]) -> String {
    let mut c = Client::connect(addr, &source_security()).expect("connect");
    c.begin("escape test").expect("begin");
    for r in reqs {
        if let Err(e) = c.send_request(r) {
            return e.to_string();
        }
    }
    // Upload requests are answered only on failure; Status forces an answer.
    match c.status() {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{reqs:?} accepted"),
    }
}

#[test]
fn paths_escaping_the_work_folder_are_refused() {
    let d = tempfile::tempdir().expect("temp dir");
    let a = agent(&d.path().join("a"), None);
    let addr = a.addr().to_string();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let abs = outside.join("x").display().to_string();
    let file = |path: &str| Request::File { path: path.into(), size: 1, mode: 0o644 };
    let cases: Vec<Vec<Request>> = vec![
        vec![file("../../../outside/x")],
        vec![file(&abs)],
        vec![Request::Dir { path: "a/../../b".into() }],
        vec![Request::Dir { path: "d".into() }, Request::Link { path: "d/parent".into(), target: "../../../outside".into() }],
        vec![Request::Dir { path: "d".into() }, Request::Link { path: "d/parent".into(), target: abs.clone() }],
        // A link the agent made itself is never followed by later paths.
        vec![
            Request::Dir { path: "d".into() },
            Request::Dir { path: "e".into() },
            Request::Link { path: "d/parent".into(), target: "../e".into() },
            file("d/parent/x"),
        ],
        vec![Request::Restore { dir: "../..".into(), run_as: RunAs::Auto, shell_job: false, tcp_established: false }],
    ];
    for reqs in &cases {
        let msg = refused(&addr, reqs);
        assert!(msg.contains("refused") || msg.contains("must be"), "{reqs:?}: {msg}");
    }
    assert!(empty(&outside), "something was written outside");
    wait_for("jobs undone", Duration::from_secs(5), || empty(a.jobs_dir()) && a.connections() == 0);

    // Sizes are bounded.
    let mut config = AgentConfig::new("127.0.0.1:0", d.path().join("small"), Security::Tls { identity: identity("agent"), push_from: None });
    config.limits.max_file_bytes = 1000;
    let small = Agent::bind(config).expect("bind").spawn().expect("spawn");
    let msg = refused(&small.addr().to_string(), &[Request::Dir { path: "d".into() }, file_of("d/big", 1001)]);
    assert!(msg.contains("over the file limit"), "{msg}");
}

fn file_of(path: &str, size: u64) -> Request {
    Request::File { path: path.into(), size, mode: 0o644 }
}

#[test]
fn malformed_frames_do_not_hurt_the_agent() {
    let d = tempfile::tempdir().expect("temp dir");
    let a = agent(&d.path().join("a"), None);
    let mut seed = 0x1234_5678_u64;
    for round in 0..40 {
        let mut s = std::net::TcpStream::connect(a.addr()).expect("connect");
        let mut junk = Vec::new();
        if round % 2 == 0 {
            junk.extend_from_slice(&hcontainer_node::frame::preamble(hcontainer_node::proto::PROTOCOL_VERSION));
        }
        for _ in 0..(round * 37 % 700) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let _ = s.write_all(&junk);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut sink);
    }
    wait_for("connections closed", Duration::from_secs(10), || a.connections() == 0);
    let mut c = Client::connect(&a.addr().to_string(), &source_security()).expect("agent still serves");
    assert!(c.status().is_ok());
    assert!(empty(a.jobs_dir()));
}

#[test]
fn disconnects_leave_nothing_behind_and_the_source_running() {
    let _l = lock();
    let d = tempfile::tempdir().expect("temp dir");
    let a = agent(&d.path().join("a"), None);
    let addr = a.addr().to_string();

    // 1. Client gone in the middle of a file.
    let mut c = Client::connect(&addr, &source_security()).expect("connect");
    c.begin("partial").expect("begin");
    c.send_request(&Request::Dir { path: "final".into() }).expect("dir");
    c.send_request(&file_of("final/pages-1.img", 8 << 20)).expect("file");
    c.send_data(&vec![7u8; 1 << 20]).expect("data");
    wait_for("partial file on the agent", Duration::from_secs(5), || !empty(a.jobs_dir()));
    c.disconnect();
    wait_for("partial job removed", Duration::from_secs(10), || empty(a.jobs_dir()) && a.connections() == 0);

    // 2. A destination that vanishes mid-transfer: the source goes on.
    let exe = build_counter(d.path());
    let out = d.path().join("out.txt");
    let child = start_counter(&exe, &out, 0);
    wait_for("counter output", Duration::from_secs(10), || numbers(&out) >= 3);
    let flaky = TcpListener::bind("127.0.0.1:0").expect("bind");
    let flaky_addr = flaky.local_addr().expect("addr").to_string();
    let server = std::thread::spawn(move || {
        let (s, _) = flaky.accept().expect("accept");
        let mut conn = Conn::handshake(Transport::Plain(s)).expect("handshake");
        let _hello: Request = conn.recv().expect("hello");
        conn.send(&Reply::Welcome { version: PROTOCOL_VERSION, isa: std::env::consts::ARCH.into(), host: "flaky".into() }).expect("welcome");
        let _begin: Request = conn.recv().expect("begin");
        conn.send(&Reply::Begun { job: "j".into() }).expect("begun");
        for _ in 0..3 {
            let _ = conn.recv_frame();
        }
        // Gone without a word.
    });
    let mut o = MigrateOptions::new(child.pid, flaky_addr, ClientSecurity::InsecurePlaintext);
    o.work = d.path().join("w");
    let err = migrate(&o, &mut hcontainer_node::migrate::Quiet).expect_err("the destination vanished");
    let _ = server.join();
    eprintln!("error as reported: {err}");
    let st = state(child.pid).expect("source exists");
    assert!(st == "S" || st == "R", "source state {st}");
    let n = numbers(&out);
    wait_for("source goes on", Duration::from_secs(5), || numbers(&out) >= n + 5);
    assert!(empty(&d.path().join("w")), "local images removed");

    // 3. Client gone between Restored and Commit: the restored process is killed.
    let images = d.path().join("img");
    let criu = hcontainer_criu::Criu::locate(None).expect("CRIU");
    let round = hcontainer_node::dump::Round::new(child.pid, &images, hcontainer_node::dump::RoundKind::Final);
    hcontainer_node::dump::run_round(&criu, &round).expect("dump");
    assert_eq!(state(child.pid).as_deref(), Some("T"), "left stopped by the final dump");
    let mut c = Client::connect(&addr, &source_security()).expect("connect");
    c.begin("no commit").expect("begin");
    c.upload(&[(images.clone(), "final".into())], &mut |_| {}).expect("upload");
    let restored = c.restore("final", RunAs::Auto, false, false).expect("restore");
    assert!(is_running(restored.pid));
    c.disconnect();
    wait_for("uncommitted process killed", Duration::from_secs(10), || !is_running(restored.pid));
    wait_for("job removed", Duration::from_secs(10), || empty(a.jobs_dir()));
    assert!(a.processes().is_empty());
    // The source, resumed, is the one that goes on. (The restored copy ran for a moment
    // before it was killed, so its lines repeat some of the source's: only growth counts.)
    kill_cont(child.pid);
    let lines = |p: &Path| std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0);
    let n = lines(&out);
    wait_for("source goes on", Duration::from_secs(5), || lines(&out) >= n + 5);
    assert!(is_running(child.pid));
    drop(child);
}

fn kill_cont(pid: u32) {
    let _ = Command::new("kill").arg("-CONT").arg(pid.to_string()).status();
}

#[test]
fn pre_copy_shrinks_the_final_dump() {
    let _l = lock();
    let d = tempfile::tempdir().expect("temp dir");
    let exe = build_counter(d.path());
    let a = agent(&d.path().join("a"), None);
    let out = d.path().join("out.txt");
    let child = start_counter(&exe, &out, 64);
    wait_for("counter output", Duration::from_secs(10), || numbers(&out) >= 5);
    let mut o = options(child.pid, &a, &d.path().join("w"));
    o.pre_dumps = 2;
    let report = migrate(&o, &mut hcontainer_node::migrate::Quiet).expect("migrate with pre-copy");
    eprintln!("{}", report.to_text());
    drop(child);
    assert_eq!(report.pre_rounds.len(), 2);
    let first = report.pre_rounds[0].sent_page_bytes;
    let last = report.final_round.sent_page_bytes;
    assert!(first >= 64 << 20, "first round sent the whole heap: {first}");
    assert!(last * 4 < first, "final round sent {last} page bytes, the first {first}");
    // The heap came back whole: the counter checks it every 50 lines (1 s).
    let n = numbers(&out);
    wait_for("two heap checks after the move", Duration::from_secs(40), || numbers(&out) >= n + 110);
    assert!(is_running(report.dest_pid));
    kill(report.dest_pid);
}
