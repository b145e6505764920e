//! The agent over TLS: who is refused (and when), a man in the middle, a capture of a real
//! migration's traffic, and what the agent refuses to hand to CRIU.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcontainer_node::proto::Request;
use hcontainer_node::tls::{self, Ca, Identity, NodeDir, Role};
use hcontainer_node::{migrate, Agent, AgentConfig, AgentError, AgentHandle, Client, ClientError, ClientSecurity, MigrateOptions, RunAs, Security};

/// One CRIU user at a time (the two cores).
static CRIU_LOCK: Mutex<()> = Mutex::new(());

/// Identities of one test: `<dir>/ca` (the agent's CA), `agent`, `source` (allowed to
/// push), `intruder` (a node of the same CA not allowed to push), `watcher` (observer),
/// `expired` (a node certificate of the CA whose validity ended yesterday), and `mallory`
/// and `fake-agent`, nodes of another CA (that trust the edge CA).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = tls::testing::make(
            dir.path(),
            "edge",
            &[("agent", Role::Node), ("source", Role::Node), ("intruder", Role::Node), ("watcher", Role::Observer)],
        )
        .expect("certificates");
        let nd = NodeDir(dir.path().join("expired"));
        let req = tls::node_init(&nd, "expired", false).expect("init");
        let now = time::OffsetDateTime::now_utc();
        let bundle = ca
            .sign_with_validity(&req, Role::Node, now - time::Duration::days(30), now - time::Duration::days(1))
            .expect("sign");
        // `node join` would refuse an expired certificate: install it by hand.
        let mut certs = bundle.split_inclusive("-----END CERTIFICATE-----\n");
        std::fs::write(nd.cert(), certs.next().expect("node cert")).expect("write");
        std::fs::write(nd.ca(), certs.next().expect("ca cert")).expect("write");
        let other = tempfile::tempdir().expect("temp dir");
        tls::testing::make(other.path(), "elsewhere", &[("mallory", Role::Node), ("agent", Role::Node)]).expect("other CA");
        std::fs::rename(other.path().join("mallory"), dir.path().join("mallory")).expect("move");
        std::fs::rename(other.path().join("agent"), dir.path().join("fake-agent")).expect("move");
        // They know (and trust) the edge CA's certificate, which is public; only its
        // signature on their own certificates is missing.
        for who in ["mallory", "fake-agent"] {
            std::fs::copy(dir.path().join("ca/ca.crt"), dir.path().join(who).join("ca.crt")).expect("copy");
        }
        let _ = Ca::open(&dir.path().join("ca")).expect("CA opens");
        Pki { dir }
    }

    fn id(&self, name: &str) -> Identity {
        Identity::load(&NodeDir(self.dir.path().join(name))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn client(&self, name: &str) -> ClientSecurity {
        ClientSecurity::Tls(self.id(name))
    }

    /// The expired identity: `Identity::load` checks no dates, the peer does.
    fn agent(&self, work: &Path, push_from: Option<&[&str]>) -> AgentHandle {
        let security = Security::Tls {
            identity: self.id("agent"),
            push_from: push_from.map(|n| n.iter().map(|s| s.to_string()).collect()),
        };
        Agent::bind(AgentConfig::new("127.0.0.1:0", work, security)).expect("bind").spawn().expect("spawn")
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false)
}

fn logged(a: &AgentHandle, needles: &[&str]) -> bool {
    a.log_lines().iter().any(|l| needles.iter().all(|n| l.contains(n)))
}

/// A client that speaks TLS with no certificate of its own.
fn connect_without_certificate(addr: &str, ca_dir: &Path) -> Result<(), String> {
    let provider = Arc::new(tls::provider());
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_dir.join("ca.crt")).expect("ca.crt");
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("agent").expect("name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(b"HCNODE\x02\x00").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 8];
    tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn peers_without_the_right_certificate_are_refused_before_any_data_and_logged() {
    let pki = Pki::new();
    let work = pki.dir.path().join("work");
    let a = pki.agent(&work, Some(&["source"]));
    let addr = a.addr().to_string();

    // No TLS at all.
    let e = Client::connect(&addr, &ClientSecurity::InsecurePlaintext).err().expect("plaintext client refused");
    eprintln!("plaintext: {e}");
    // TLS without a certificate.
    let e = connect_without_certificate(&addr, &pki.dir.path().join("ca")).expect_err("no certificate refused");
    eprintln!("no certificate: {e}");
    // A certificate of another CA, and an expired one.
    for (who, alert) in [("mallory", "UnknownCA"), ("expired", "CertificateExpired")] {
        match Client::connect(&addr, &pki.client(who)) {
            Err(ClientError::Tls { message, .. }) => {
                assert!(message.contains("refused this node's certificate") && message.contains(alert), "{who}: {message}")
            }
            Err(e) => panic!("{who}: unexpected error {e}"),
            Ok(_) => panic!("{who} accepted"),
        }
    }
    // Certified peers not allowed to push may ask for status, and nothing else: a Begin
    // with a file and its data sent right behind it writes nothing.
    for who in ["watcher", "intruder"] {
        let mut c = Client::connect(&addr, &pki.client(who)).unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(c.status().is_ok(), "{who} may ask for status");
        let e = c.begin("push").expect_err("push refused").to_string();
        assert!(e.contains("job refused"), "{who}: {e}");
        // Files sent right behind the Begin, without waiting for its answer (the reply may
        // then be lost to the reset of the closed connection; the log keeps it).
        let mut c = Client::connect(&addr, &pki.client(who)).unwrap_or_else(|e| panic!("{who}: {e}"));
        let _ = c.send_request(&Request::Begin { label: "push".into() });
        let _ = c.send_request(&Request::Dir { path: "final".into() });
        let _ = c.send_request(&Request::File { path: "final/x".into(), size: 4, mode: 0o644 });
        let _ = c.send_data(b"data");
        assert!(c.next_reply().is_err(), "{who}: pipelined push accepted");
    }
    wait_for("connections closed", Duration::from_secs(10), || a.connections() == 0);
    assert!(empty(a.jobs_dir()), "nothing written");
    for needles in [
        &["refused connection", "no certificate"][..],
        &["refused connection", "\"mallory\"", "UnknownIssuer"],
        &["refused connection", "\"expired\"", "certificate expired"],
        &["refused connection", "not a TLS client"],
        &["watcher (observer)", "job refused", "may only ask for status"],
        &["intruder (node)", "job refused", "not among the nodes allowed"],
    ] {
        assert!(logged(&a, needles), "no log line with {needles:?}:\n{}", a.log_lines().join("\n"));
    }
    // The node allowed to push may.
    let mut c = Client::connect(&addr, &pki.client("source")).expect("source connects");
    c.begin("allowed").expect("source may push");
    assert_eq!(c.peer.as_ref().map(|p| p.name.as_str()), Some("agent"));
    assert!(c.cipher.as_deref().is_some_and(|s| s.starts_with("TLS13_")), "{:?}", c.cipher);
}

/// Relays one connection between `client` and `upstream`, recording both directions.
fn relay(client: TcpStream, upstream: TcpStream, record: Arc<Mutex<Vec<u8>>>) {
    let pipe = |mut from: TcpStream, mut to: TcpStream, record: Arc<Mutex<Vec<u8>>>| {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        record.lock().expect("record").extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    let a = pipe(client.try_clone().expect("clone"), upstream.try_clone().expect("clone"), Arc::clone(&record));
    let b = pipe(upstream, client, record);
    let _ = a.join();
    let _ = b.join();
}

/// A recording proxy on loopback in front of `to`: every byte of every connection, both
/// ways, lands in the returned buffer.
fn recording_proxy(to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let record = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&record);
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let Ok(up) = TcpStream::connect(&to) else { continue };
            let r = Arc::clone(&r);
            std::thread::spawn(move || relay(c, up, r));
        }
    });
    (addr, record)
}

/// A man in the middle: terminates the client's TLS with its own certificate and opens its
/// own TLS connection to the agent, as `proxy_identity`. Returns its address and what each
/// of its two handshakes ended with.
fn tls_interceptor(to: String, proxy_identity: Identity) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&outcomes);
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let config = proxy_identity.server_config(Arc::default()).expect("server config");
            let mut server = rustls::ServerConnection::new(config).expect("server");
            let mut r = Ok(());
            while server.is_handshaking() && r.is_ok() {
                r = server.complete_io(&mut c).map(|_| ());
            }
            o.lock().expect("o").push(format!("towards the client: {r:?}"));
            let (config, name) = proxy_identity.client_config(None).expect("client config");
            let mut client = rustls::ClientConnection::new(config, name).expect("client");
            let mut up = TcpStream::connect(&to).expect("connect upstream");
            let _ = up.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = Ok(());
            while client.is_handshaking() && r.is_ok() {
                r = client.complete_io(&mut up).map(|_| ());
            }
            // TLS 1.3: the agent's verdict on our certificate comes after our handshake.
            let mut s = rustls::Stream::new(&mut client, &mut up);
            let mut b = [0u8; 8];
            let read = s.write_all(b"HCNODE\x02\x00").and_then(|()| s.read_exact(&mut b));
            o.lock().expect("o").push(format!("towards the agent: {r:?} then {read:?}"));
        }
    });
    (addr, outcomes)
}

#[test]
fn a_man_in_the_middle_is_detected_by_both_ends() {
    let pki = Pki::new();
    let a = pki.agent(&pki.dir.path().join("work"), None);
    // A proxy with a certificate of its own CA, named as the agent.
    let (mitm, outcomes) = tls_interceptor(a.addr().to_string(), pki.id("fake-agent"));
    let e = Client::connect(&mitm, &pki.client("source")).err().expect("the client detects the proxy");
    let e = e.to_string();
    assert!(e.contains("the agent's certificate is refused") && e.contains("UnknownIssuer"), "{e}");
    wait_for("the proxy's attempt on the agent", Duration::from_secs(10), || outcomes.lock().expect("o").len() >= 2);
    let o = outcomes.lock().expect("o").join("\n");
    assert!(o.contains("towards the agent") && o.contains("UnknownCA"), "{o}");
    wait_for("the agent's log", Duration::from_secs(10), || logged(&a, &["refused connection", "\"agent\"", "UnknownIssuer"]));

    // A peer the CA certified under another name cannot pose as the agent the client asked
    // for by name.
    let impostor = pki.agent_named("intruder", &pki.dir.path().join("work2"));
    let e = Client::connect(&format!("agent@{}", impostor.addr()), &pki.client("source")).err().expect("name checked");
    assert!(e.to_string().contains("not valid for name"), "{e}");
    assert!(Client::connect(&format!("intruder@{}", impostor.addr()), &pki.client("source")).is_ok());
    // Observers' certificates cannot serve at all.
    let watcher = pki.agent_named("watcher", &pki.dir.path().join("work3"));
    let e = Client::connect(&watcher.addr().to_string(), &pki.client("source")).err().expect("observer cannot serve");
    assert!(e.to_string().contains("certificate is refused"), "{e}");
}

impl Pki {
    fn agent_named(&self, name: &str, work: &Path) -> AgentHandle {
        let security = Security::Tls { identity: self.id(name), push_from: None };
        Agent::bind(AgentConfig::new("127.0.0.1:0", work, security)).expect("bind").spawn().expect("spawn")
    }
}

#[test]
fn a_plaintext_agent_listens_on_loopback_only() {
    let d = tempfile::tempdir().expect("temp dir");
    for addr in ["0.0.0.0:0", "[::]:0"] {
        match Agent::bind(AgentConfig::new(addr, d.path(), Security::InsecurePlaintext)) {
            Err(e @ AgentError::Insecure { .. }) => {
                let m = e.to_string();
                assert!(m.contains("hcontainer node init") && m.contains("hcontainer ca sign"), "{m}");
            }
            Err(e) => panic!("{addr}: unexpected {e}"),
            Ok(_) => panic!("{addr}: a plaintext agent listens on all interfaces"),
        }
    }
    assert!(Agent::bind(AgentConfig::new("127.0.0.1:0", d.path(), Security::InsecurePlaintext)).is_ok());
}

fn build_counter(dir: &Path) -> PathBuf {
    let exe = dir.join("counter");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/counter.c");
    let st = Command::new("musl-gcc").args(["-static", "-O2", "-o"]).arg(&exe).arg(&src).status().expect("run musl-gcc");
    assert!(st.success(), "musl-gcc failed");
    exe
}

/// The counter in its own pid namespace, with `secret` among its arguments (so in its
/// memory, on its stack).
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

fn kill(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).stderr(Stdio::null()).status();
}

fn start_counter(exe: &Path, out: &Path, secret: &str) -> Counter {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "setsid"])
        .arg(exe)
        .arg(out)
        .arg("1")
        .arg(secret)
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
    let out = out.to_path_buf();
    wait_for("counter output", Duration::from_secs(10), || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 3));
    Counter { unshare, pid }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The file contents a plaintext capture carries: the frames of the client → agent
/// direction decoded (LZ4 undone), in order.
fn plaintext_payload(capture: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    // Both directions are interleaved in one record; find frames where they decode.
    while pos < capture.len() {
        if capture[pos..].starts_with(hcontainer_node::frame::MAGIC) {
            pos += hcontainer_node::frame::PREAMBLE_LEN;
            continue;
        }
        match hcontainer_node::frame::decode(&capture[pos..]) {
            Ok(Some((hcontainer_node::frame::Frame::Data(d), used))) => {
                out.extend_from_slice(&d);
                pos += used;
            }
            Ok(Some((_, used))) => pos += used,
            _ => pos += 1,
        }
    }
    out
}

#[test]
fn a_capture_of_a_migration_holds_none_of_the_process_memory() {
    let _l = CRIU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let pki = Pki::new();
    let d = pki.dir.path();
    let exe = build_counter(d);
    let secret = format!("hcontainer-secret-{:016x}{:016x}", rand_u64(), rand_u64());

    // In clear (loopback, --insecure-plaintext), the capture shows the secret: the test
    // can see it when it is there.
    let plain = Agent::bind(AgentConfig::new("127.0.0.1:0", d.join("plain"), Security::InsecurePlaintext))
        .expect("bind")
        .spawn()
        .expect("spawn");
    let (proxy, record) = recording_proxy(plain.addr().to_string());
    let c = start_counter(&exe, &d.join("out1.txt"), &secret);
    let mut o = MigrateOptions::new(c.pid, proxy, ClientSecurity::InsecurePlaintext);
    o.work = d.join("w");
    let r = migrate(&o, &mut hcontainer_node::migrate::Quiet).expect("plaintext migration");
    drop(c);
    kill(r.dest_pid);
    let capture = record.lock().expect("record").clone();
    assert!(contains(&plaintext_payload(&capture), secret.as_bytes()), "the plaintext capture lacks the secret: the test would prove nothing");

    // Over TLS, the same migration's capture holds neither the secret nor any frame.
    let a = pki.agent(&d.join("tls"), None);
    let (proxy, record) = recording_proxy(a.addr().to_string());
    let c = start_counter(&exe, &d.join("out2.txt"), &secret);
    let mut o = MigrateOptions::new(c.pid, proxy, pki.client("source"));
    o.work = d.join("w");
    let r = migrate(&o, &mut hcontainer_node::migrate::Quiet).expect("TLS migration");
    eprintln!("{}", r.to_text());
    drop(c);
    kill(r.dest_pid);
    let capture = record.lock().expect("record").clone();
    assert!(capture.len() as u64 > r.final_round.wire_bytes, "the capture holds the whole transfer: {} bytes", capture.len());
    assert!(!contains(&capture, secret.as_bytes()), "the secret crossed the wire in clear");
    assert!(!contains(&capture, hcontainer_node::frame::MAGIC), "the preamble crossed the wire in clear");
    assert!(plaintext_payload(&capture).len() < 4096, "frames decode from the TLS capture");
    assert!(r.cipher.is_some() && r.dest_name.as_deref() == Some("agent"), "{:?} {:?}", r.cipher, r.dest_name);
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("urandom");
    u64::from_le_bytes(b)
}

#[test]
fn images_are_checked_before_criu_sees_them() {
    let _l = CRIU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let pki = Pki::new();
    let d = pki.dir.path();
    let exe = build_counter(d);
    let c = start_counter(&exe, &d.join("out.txt"), "x");
    let images = d.join("img");
    let criu = hcontainer_criu::Criu::locate(None).expect("CRIU");
    let mut round = hcontainer_node::dump::Round::new(c.pid, &images, hcontainer_node::dump::RoundKind::RunningDump);
    round.shell_job = false;
    hcontainer_node::dump::run_round(&criu, &round).expect("dump");

    let push = |agent: &AgentHandle, dir: &Path| -> String {
        let mut cl = Client::connect(&agent.addr().to_string(), &pki.client("source")).expect("connect");
        cl.begin("check").expect("begin");
        cl.upload(&[(dir.to_path_buf(), "final".into())], &mut |_| {}).expect("upload");
        match cl.restore("final", RunAs::Auto, false, false) {
            Ok(r) => {
                kill(r.pid);
                panic!("restored as {}", r.pid)
            }
            Err(e) => e.to_string(),
        }
    };
    // A tree running as root on an agent that permits uids 1000-2000 only.
    let mut config = AgentConfig::new("127.0.0.1:0", d.join("a1"), Security::Tls { identity: pki.id("agent"), push_from: None });
    config.creds.ids = vec![1000..=2000];
    let strict = Agent::bind(config).expect("bind").spawn().expect("spawn");
    let e = push(&strict, &images);
    assert!(e.contains("images refused") && e.contains("uid 0") && e.contains("not permitted"), "{e}");
    // Capabilities beyond the agent's own bounding set.
    let mut config = AgentConfig::new("127.0.0.1:0", d.join("a2"), Security::Tls { identity: pki.id("agent"), push_from: None });
    config.creds.caps = 0;
    let nocaps = Agent::bind(config).expect("bind").spawn().expect("spawn");
    let e = push(&nocaps, &images);
    assert!(e.contains("capabilities") && e.contains("bounding set"), "{e}");
    // A file that is no CRIU image; an image that does not decode; a stranger's core.
    let a = pki.agent(&d.join("a3"), None);
    type Damage<'a> = (&'a str, &'a dyn Fn(&Path));
    let variants: [Damage; 3] = [
        ("not a CRIU image", &|dir: &Path| std::fs::write(dir.join("run.sh"), "#!/bin/sh\n").expect("write")),
        ("truncated", &|dir: &Path| {
            let p = dir.join("pstree.img");
            let b = std::fs::read(&p).expect("read");
            std::fs::write(&p, &b[..b.len() - 3]).expect("write");
        }),
        ("does not list", &|dir: &Path| {
            let core = std::fs::read_dir(dir).expect("dir").flatten().find(|e| e.file_name().to_string_lossy().starts_with("core-")).expect("core");
            std::fs::copy(core.path(), dir.join("core-99999.img")).expect("copy");
        }),
    ];
    for (want, damage) in variants {
        let copy = d.join(format!("img-{}", want.replace(' ', "-")));
        std::fs::create_dir(&copy).expect("mkdir");
        for e in std::fs::read_dir(&images).expect("dir").flatten() {
            std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
        }
        damage(&copy);
        let e = push(&a, &copy);
        assert!(e.contains("images refused") && e.contains(want), "{want}: {e}");
    }
    wait_for("jobs undone", Duration::from_secs(10), || empty(a.jobs_dir()) && empty(strict.jobs_dir()));
    drop(c);
}

#[test]
fn junk_inside_an_authenticated_session_does_not_hurt_the_agent() {
    let pki = Pki::new();
    let a = pki.agent(&pki.dir.path().join("work"), None);
    let mut seed = 0x5eed_u64;
    for round in 0..30 {
        let (config, name) = pki.id("source").client_config(None).expect("client config");
        let mut tls = rustls::ClientConnection::new(config, name).expect("client");
        let mut sock = TcpStream::connect(a.addr()).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        while tls.is_handshaking() {
            tls.complete_io(&mut sock).expect("handshake");
        }
        let transport = hcontainer_node::proto::Transport::TlsClient(Box::new(rustls::StreamOwned::new(tls, sock)));
        let mut conn = hcontainer_node::proto::Conn::handshake(transport).expect("preambles");
        let mut junk = Vec::new();
        if round % 3 == 0 {
            // A valid Hello first, so the junk reaches the request decoder.
            junk.extend(hcontainer_node::frame::encode(&hcontainer_node::frame::Frame::Control(br#"{"Hello":{"version":2}}"#.to_vec())).expect("frame"));
        }
        for _ in 0..(round * 53 % 900) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let _ = conn.write_raw(&junk);
        let _ = conn.recv_frame();
    }
    wait_for("connections closed", Duration::from_secs(20), || a.connections() == 0);
    let mut c = Client::connect(&a.addr().to_string(), &pki.client("source")).expect("agent still serves");
    assert!(c.status().is_ok());
    assert!(empty(a.jobs_dir()));
}
