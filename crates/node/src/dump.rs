//! The dumps of a migration: pre-copy rounds while the process runs, and the final dump that
//! leaves the source stopped (not killed) so it can go on if the destination fails.
//!
//! With kernel dirty-page tracking (`criu check --feature mem_dirty_track`), pre-copy rounds
//! are CRIU pre-dumps (`--track-mem`, `--prev-images-dir ../<previous>`) and the final dump
//! writes only pages dirtied since the last round. Without it (kernels built without
//! soft-dirty, and every arm64 kernel), each round is a full dump with `--leave-running`, and
//! the final dump is made incremental afterwards by comparing page contents with the
//! previous round ([`crate::delta`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hcontainer_criu::{last_error_line, Criu, DEFAULT_NETWORK_LOCK};
use hcontainer_criu_image::pb;
use hcontainer_criu_image::ImageFile;

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// CRIU needs root.
    #[error("checkpoint needs root (effective uid is {0})")]
    NotRoot(u32),
    /// No process has that pid.
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    /// File system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// CRIU ran and failed.
    #[error("criu {action} of pid {pid} failed ({status}): {last_error}\n  full log: {}", log.display())]
    Failed {
        /// `pre-dump` or `dump`.
        action: &'static str,
        /// The pid.
        pid: u32,
        /// Exit status.
        status: String,
        /// CRIU's error lines.
        last_error: String,
        /// The log.
        log: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DumpError + '_ {
    move |source| DumpError::Io { path: path.to_path_buf(), source }
}

/// What kind of dump a round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundKind {
    /// CRIU pre-dump with memory tracking (the process keeps running).
    PreDump,
    /// A full dump that leaves the process running (pre-copy without dirty tracking).
    RunningDump,
    /// The final dump: the process is left stopped.
    Final,
}

/// One dump.
#[derive(Clone, Debug)]
pub struct Round {
    /// Process tree root.
    pub pid: u32,
    /// Empty or new images directory.
    pub dir: PathBuf,
    /// Kind.
    pub kind: RoundKind,
    /// `--prev-images-dir`, relative to `dir` (`../pre-1`), for tracked rounds.
    pub prev: Option<String>,
    /// `--track-mem`.
    pub track_mem: bool,
    /// `--shell-job`.
    pub shell_job: bool,
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--network-lock`.
    pub network_lock: String,
}

impl Round {
    /// A round with hcontainer's defaults.
    pub fn new(pid: u32, dir: impl Into<PathBuf>, kind: RoundKind) -> Round {
        Round {
            pid,
            dir: dir.into(),
            kind,
            prev: None,
            track_mem: false,
            shell_job: false,
            tcp_established: false,
            network_lock: DEFAULT_NETWORK_LOCK.into(),
        }
    }
}

/// What a round produced.
#[derive(Clone, Debug, Default)]
pub struct RoundStats {
    /// Wall clock of the `criu` run.
    pub elapsed: Duration,
    /// Time the tree was frozen, from CRIU's statistics.
    pub frozen_us: Option<u64>,
    /// Bytes of page data (`pages-*.img`).
    pub page_bytes: u64,
    /// Bytes of all files.
    pub total_bytes: u64,
}

/// Whether CRIU can track dirty memory on this kernel.
pub fn dirty_tracking(criu: &Criu) -> bool {
    Command::new(criu.path())
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Sizes of the files in `dir`: (page bytes, all bytes).
pub fn dir_sizes(dir: &Path) -> Result<(u64, u64), DumpError> {
    let (mut pages, mut all) = (0, 0);
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let meta = std::fs::symlink_metadata(e.path()).map_err(io(&e.path()))?;
        if !meta.is_file() {
            continue;
        }
        all += meta.len();
        if e.file_name().to_string_lossy().starts_with("pages-") {
            pages += meta.len();
        }
    }
    Ok((pages, all))
}

/// Runs one round.
pub fn run_round(criu: &Criu, round: &Round) -> Result<RoundStats, DumpError> {
    let uid = rustix::process::geteuid().as_raw();
    if uid != 0 {
        return Err(DumpError::NotRoot(uid));
    }
    if !Path::new(&format!("/proc/{}", round.pid)).exists() {
        return Err(DumpError::NoSuchProcess(round.pid));
    }
    std::fs::create_dir_all(&round.dir).map_err(io(&round.dir))?;
    let dir = std::fs::canonicalize(&round.dir).map_err(io(&round.dir))?;
    let log = dir.join(match round.kind {
        RoundKind::PreDump => "pre-dump.log",
        _ => "dump.log",
    });
    let action = if round.kind == RoundKind::PreDump { "pre-dump" } else { "dump" };
    let mut cmd = Command::new(criu.path());
    cmd.arg(action)
        .arg("-t")
        .arg(round.pid.to_string())
        .arg("-D")
        .arg(&dir)
        .arg("-o")
        .arg(&log)
        .arg("-v4");
    match round.kind {
        RoundKind::PreDump => {}
        RoundKind::RunningDump => {
            cmd.arg("--leave-running");
        }
        RoundKind::Final => {
            cmd.arg("--leave-stopped");
        }
    }
    if round.track_mem {
        cmd.arg("--track-mem");
    }
    if let Some(prev) = &round.prev {
        cmd.arg("--prev-images-dir").arg(prev);
    }
    if round.shell_job {
        cmd.arg("--shell-job");
    }
    if round.tcp_established {
        cmd.arg("--tcp-established");
    }
    cmd.arg("--network-lock").arg(&round.network_lock);
    let start = Instant::now();
    let out = cmd.output().map_err(io(criu.path()))?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        let mut last_error = last_error_line(&log);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !log.exists() && !stderr.trim().is_empty() {
            last_error = stderr.trim().to_string();
        }
        return Err(DumpError::Failed { action, pid: round.pid, status: out.status.to_string(), last_error, log });
    }
    let mut stats = RoundStats { elapsed, ..RoundStats::default() };
    let stats_file = dir.join("stats-dump");
    if let Ok(f) = ImageFile::read(&stats_file) {
        if let Ok(all) = f.decode_all::<pb::StatsEntry>() {
            stats.frozen_us = all.into_iter().find_map(|s| s.dump).map(|d| d.frozen_time.into());
        }
    }
    (stats.page_bytes, stats.total_bytes) = dir_sizes(&dir)?;
    Ok(stats)
}
