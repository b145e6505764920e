//! Debian's `redis-server` and `nginx`, translated for each target with their closures, serve
//! real clients: `redis-cli` and `redis-benchmark` against Redis, `curl` against nginx
//! (static files, compared byte for byte). Narrow with `HCT_TARGETS`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn targets() -> Vec<&'static str> {
    match std::env::var("HCT_TARGETS") {
        Ok(v) if !v.is_empty() => common::TARGETS.iter().copied().filter(|t| v.split(',').any(|x| x == *t)).collect(),
        _ => common::TARGETS.to_vec(),
    }
}

/// Translates `program` for `target` into the tests' store; returns its launcher.
fn translate(program: &str, target: &str, out: &Path) -> PathBuf {
    let o = Command::new(common::hcontainer())
        .args(["translate", program, "--target", target, "-q", "--store"])
        .arg(common::store_dir())
        .arg("-o")
        .arg(out)
        .output()
        .expect("hcontainer");
    assert!(o.status.success(), "translating {program} for {target}: {}", String::from_utf8_lossy(&o.stderr));
    out.to_path_buf()
}

/// Starts `exe args` (under qemu-user for another ISA) with its output in `log`.
fn start(exe: &Path, target: &str, args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log");
    let mut cmd = match common::emulator_for(target) {
        Some(q) => {
            let mut c = Command::new(q);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    use std::os::unix::process::CommandExt;
    // A process group of its own: the service's workers end with it.
    cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).process_group(0);
    cmd.spawn().expect("starting the service")
}

/// Kills the service when the test ends, whatever happens.
struct Service(Child);
impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the service's process group; no memory is involved.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the service ended ({st}) before listening: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}: {}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn output(cmd: &mut Command) -> String {
    let o = cmd.output().expect("client");
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn redis_serves_redis_cli_and_redis_benchmark_translated() {
    let work = common::work_dir("hct-services");
    for target in targets() {
        let exe = translate("/usr/bin/redis-server", target, &work.join(format!("redis-server.{target}")));
        let port = free_port();
        let log = work.join(format!("redis.{target}.log"));
        let ps = port.to_string();
        let mut svc = Service(start(&exe, target, &["--port", &ps, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"], &log));
        wait_port(port, &mut svc.0, &log);
        let cli = |args: &[&str]| output(Command::new("redis-cli").args(["-p", &ps]).args(args));
        assert_eq!(cli(&["ping"]).trim(), "PONG");
        assert_eq!(cli(&["set", "greeting", "hello from a translated redis"]).trim(), "OK");
        assert_eq!(cli(&["get", "greeting"]).trim(), "hello from a translated redis");
        assert_eq!(cli(&["rpush", "l", "a", "b", "c"]).trim(), "3");
        assert_eq!(cli(&["lrange", "l", "0", "-1"]).split_whitespace().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(cli(&["incrby", "n", "41"]).trim(), "41");
        // A Lua script runs in the server.
        assert_eq!(cli(&["eval", "return redis.call('incr', KEYS[1]) * 2", "1", "n"]).trim(), "84");
        let bench = output(Command::new("redis-benchmark").args(["-p", &ps, "-q", "-n", "3000", "-t", "set,get,lpush,incr", "-r", "1000"]));
        let rates: Vec<f64> = bench
            .split(['\r', '\n'])
            .filter_map(|l| l.split_once(" requests per second").map(|(a, _)| a))
            .filter_map(|a| a.rsplit(' ').next().and_then(|n| n.parse().ok()))
            .collect();
        assert_eq!(rates.len(), 4, "redis-benchmark printed: {bench}");
        assert!(rates.iter().all(|&r| r > 0.0), "{bench}");
        let keys: u64 = cli(&["dbsize"]).trim().parse().expect("dbsize");
        assert!(keys > 3, "the benchmark wrote keys ({keys})");
        println!("redis {target}: {}", rates.iter().map(|r| format!("{r:.0}/s")).collect::<Vec<_>>().join(" "));
        let _ = cli(&["shutdown", "nosave"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let st = loop {
            if let Ok(Some(st)) = svc.0.try_wait() {
                break st;
            }
            assert!(Instant::now() < deadline, "redis did not shut down");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(st.success(), "redis ended with {st}: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
}

#[test]
fn nginx_serves_files_to_curl_translated() {
    let work = common::work_dir("hct-services");
    let root = work.join("nginx");
    let html = root.join("html");
    std::fs::create_dir_all(html.join("sub")).expect("html");
    std::fs::create_dir_all(root.join("logs")).expect("logs");
    std::fs::create_dir_all(root.join("tmp")).expect("tmp");
    std::fs::write(html.join("index.html"), b"<h1>served by a translated nginx</h1>\n").expect("index");
    let mut big = vec![0u8; 1 << 20];
    let mut x: u64 = 88172645463325252;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(html.join("sub/big.bin"), &big).expect("big");
    for target in targets() {
        let exe = translate("/usr/sbin/nginx", target, &work.join(format!("nginx.{target}")));
        let port = free_port();
        let conf = root.join(format!("nginx.{target}.conf"));
        let r = root.display();
        std::fs::write(
            &conf,
            format!(
                "worker_processes 2;\ndaemon off;\nerror_log {r}/logs/error.{target}.log;\npid {r}/nginx.{target}.pid;\n\
                 events {{ worker_connections 64; }}\nhttp {{\n access_log {r}/logs/access.{target}.log;\n\
                 client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp; uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp;\n\
                 server {{ listen 127.0.0.1:{port}; root {r}/html; autoindex on; }}\n}}\n"
            ),
        )
        .expect("conf");
        let log = work.join(format!("nginx.{target}.log"));
        let c = conf.display().to_string();
        let mut svc = Service(start(&exe, target, &["-p", &r.to_string(), "-c", &c], &log));
        wait_port(port, &mut svc.0, &log);
        let url = |p: &str| format!("http://127.0.0.1:{port}/{p}");
        assert_eq!(output(Command::new("curl").args(["-sf", &url("")])), "<h1>served by a translated nginx</h1>\n");
        let mut got = Vec::new();
        let mut child = Command::new("curl").args(["-sf", &url("sub/big.bin")]).stdout(Stdio::piped()).spawn().expect("curl");
        child.stdout.take().expect("pipe").read_to_end(&mut got).expect("read");
        assert!(child.wait().expect("curl").success());
        assert!(got == big, "the 1 MiB file came back different ({} bytes)", got.len());
        let listing = output(Command::new("curl").args(["-sf", &url("sub/")]));
        assert!(listing.contains("big.bin"), "autoindex: {listing}");
        let missing = Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url("nope")]).output().expect("curl");
        assert_eq!(String::from_utf8_lossy(&missing.stdout), "404");
        // nginx logs a request after answering it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let access = loop {
            let a = std::fs::read_to_string(root.join(format!("logs/access.{target}.log"))).unwrap_or_default();
            if a.lines().count() >= 4 || Instant::now() > deadline {
                break a;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(access.lines().count() >= 4 && access.contains("\" 404 "), "access log: {access}");
        println!("nginx {target}: index, 1 MiB file, listing and 404 as expected");
    }
}
