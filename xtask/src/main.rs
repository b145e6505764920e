//! `cargo xtask`: hcontainer's task runner. One place for the commands a newcomer and CI run:
//! `setup` (system packages, Rust targets, CRIU), `test` (the full test suite), `demo` (a corpus
//! program translated for every host ISA and run beside the native one) and `bench` (execution
//! time against native and QEMU, instruction counts on arm64).

mod bench;
mod bench_dynamic;
mod bench_migrate;
mod bench_node;
mod bench_tls;
// The arm64 installation (`ensure_arch`) serves the arm64 node, not yet a command here.
#[allow(dead_code)]
mod criu_setup;
mod demo;
mod setup;
mod util;
mod vm;

use clap::{Parser, Subcommand};

/// hcontainer's task runner.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the build and tests need (idempotent; quiet when already done).
    Setup,
    /// Set up, build the release binary, run the runtime's own checks and the workspace tests.
    Test,
    /// Translate a corpus program for x86_64, aarch64 and riscv64 and run each beside the
    /// native program.
    Demo(demo::Args),
    /// Time native, translated and QEMU runs of the benchmark programs; count arm64
    /// instructions of translated and natively compiled code.
    Bench(bench::Args),
    /// Debian's dynamically linked programs translated: closure translation time, wall time
    /// beside native and qemu-x86_64, redis-benchmark throughput, arm64 instruction counts.
    BenchDynamic(bench_dynamic::Args),
    /// Latency a migration checkpoint (notify + recode) adds, by thread count and resident size.
    BenchMigrate(bench_migrate::Args),
    /// Phase times (notify, dump, recode, transfer, restore, downtime) of hops between this
    /// host and the emulated arm64 node.
    BenchNode(bench_node::Args),
    /// Transfer throughput over loopback in clear and with TLS, by cipher suite.
    BenchTls(bench_tls::Args),
    /// The emulated arm64 node: `vm build`, `vm boot`, `vm run -- CMD…`.
    Vm(vm::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|_| true),
        Command::Test => test(),
        Command::Demo(args) => demo::run(&args),
        Command::Bench(args) => bench::run(&args).map(|_| true),
        Command::BenchDynamic(args) => bench_dynamic::run(&args).map(|_| true),
        Command::BenchMigrate(args) => bench_migrate::run(&args).map(|_| true),
        Command::BenchNode(args) => bench_node::run(&args).map(|_| true),
        Command::BenchTls(args) => bench_tls::run(&args).map(|_| true),
        Command::Vm(args) => vm::run(&args),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `cargo xtask test`: the README's and CI's test command. The workspace tests run last so
/// that the output ends with cargo's own summary lines.
fn test() -> anyhow::Result<bool> {
    setup::run()?;
    let root = util::repo_root();
    util::cargo(&root, &["build", "--release"])?;
    // The arm64 node (image and the aarch64 build of hcontainer) the node tests boot.
    vm::build()?;
    // The runtime's own checks (it is built outside the workspace), then the workspace tests
    // last; a failure of the first still lets the second run, and fails the command.
    let runtime_checks = root.join("crates/runtime/tests/run.sh");
    let mut runtime_ok = true;
    if runtime_checks.exists() {
        util::step(&format!("runtime checks: bash {}", runtime_checks.display()));
        if let Err(err) = util::run_checked(std::process::Command::new("bash").arg(&runtime_checks).current_dir(&root)) {
            eprintln!("xtask: runtime checks failed: {err:#}");
            runtime_ok = false;
        }
    }
    util::cargo(&root, &["test", "--workspace", "--release"])?;
    if !runtime_ok {
        anyhow::bail!("the runtime checks ({}) failed", runtime_checks.display());
    }
    Ok(true)
}
