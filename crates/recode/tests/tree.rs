//! A process tree (a parent and the child it forked, both writing) goes native → x86_64 →
//! native through recode with real CRIU, every process recoded, and ends with the output of
//! an uninterrupted run.

mod common;

use std::time::Duration;

use common::*;
use hcontainer_abi::meta::HostIsa;
use hcontainer_recode::notify;
use hcontainer_recode::{recode, Target};

const FORKER: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static void count(const char *prefix, int k, int iters) {
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", prefix, k);
    FILE *f = fopen(path, "w");
    setvbuf(f, NULL, _IONBF, 0);
    for (int i = 0; i < iters; i++) {
        fprintf(f, "%d %d\n", i, i * (k + 3));
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fclose(f);
}
int main(int argc, char **argv) {
    if (argc < 4) return 2;
    int iters = atoi(argv[3]);
    pid_t c = fork();
    if (c == 0) { count(argv[1], 1, iters); return 0; }
    count(argv[1], 0, iters);
    int st;
    waitpid(c, &st, 0);
    return 0;
}
"#;

fn hop(env: &Env, pid: u32, child: Option<&mut std::process::Child>, name: &str, to: Target) {
    let procs = notify::classify_tree(pid, &env.store, None).expect("classify");
    assert_eq!(procs.len(), 2, "parent and child");
    notify::notify(&procs, Default::default()).expect("notify");
    let dump = env.dir.join(format!("{name}.dump"));
    let mut opts = hcontainer_criu::DumpOptions::new(pid, &dump);
    opts.tcp_established = false;
    env.criu.dump(&opts).expect("criu dump");
    if let Some(c) = child {
        let _ = c.wait();
    }
    for p in &procs {
        wait_gone(p.pid);
    }
    let out = env.dir.join(name);
    let report = recode(&dump, to, &env.store, &out).expect("recode");
    assert_eq!(report.threads, 2, "{report:?}");
    crit_decodes(&out);
    let mut ro = hcontainer_criu::RestoreOptions::new(&out, true);
    ro.tcp_established = false;
    assert_eq!(env.criu.restore(&ro).expect("criu restore").pid, pid);
}

#[test]
fn forked_tree_round_trip() {
    let env = Env::with_source(Libc::Musl, FORKER, false);
    // `threads` = 1 reads prefix.0 and prefix.1: the parent's and the child's files.
    let expected = env.uninterrupted(1);
    let out = env.dir.join("run");
    let mut child = env.start(&out, 1);
    let pid = child.id();
    wait_lines(&out, 1, 10);
    hop(&env, pid, Some(&mut child), "t", Target::Translated(HostIsa::X86_64));
    let n = total_lines(&out, 1);
    wait_lines(&out, 1, n + 10);
    hop(&env, pid, None, "n", Target::Native);
    wait_exit(pid, Duration::from_secs(60));
    assert_eq!(outputs(&out, 1), expected, "output after native → x86_64 → native differs");
}
