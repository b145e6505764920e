//! The `run` and `recode` subcommand modules of the CLI (compiled here against this crate):
//! argument parsing and their library calls.

#[allow(dead_code)]
#[path = "../../cli/src/commands/recode.rs"]
mod recode;
#[allow(dead_code)]
#[path = "../../cli/src/commands/run.rs"]
mod run;

use clap::Parser;

#[derive(Parser)]
enum Cli {
    Run(run::Args),
    Recode(recode::Args),
}

#[test]
fn run_passes_arguments_to_the_program() {
    // (`run` replaces the process with the program: the CLI tests run it as a command.)
    let cli = Cli::try_parse_from(["hc", "run", "--setsid", "--log", "/tmp/x.log", "/bin/sh", "-c", "exit 7"]).expect("parse");
    let Cli::Run(args) = cli else { panic!("not run") };
    assert_eq!(args.args.len(), 2);
    assert!(args.setsid);
    assert_eq!(args.log.as_deref(), Some(std::path::Path::new("/tmp/x.log")));
    assert_eq!(args.program, std::path::Path::new("/bin/sh"));
}

#[test]
fn recode_without_a_translation_names_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cli = Cli::try_parse_from(["hc", "recode", "-D", "/nonexistent", "--to", "x86_64", "--store"])
        .err()
        .expect("--store needs a value");
    drop(cli);
    let cli = Cli::try_parse_from(["hc", "recode", "-D", "/nonexistent/images", "--to", "native"]).expect("parse");
    let Cli::Recode(args) = cli else { panic!("not recode") };
    let err = format!("{:#}", recode::run(args).expect_err("no images"));
    assert!(err.contains("/nonexistent/images"), "{err}");
    let cli = Cli::try_parse_from(["hc", "recode", "-D", "/nonexistent/images", "--to", "x86_64", "--store"])
        .map(|_| ())
        .err();
    assert!(cli.is_some());
    let store = dir.path().join("store");
    let cli = Cli::try_parse_from(["hc", "recode", "-D", "/nonexistent/images", "--to", "x86_64", "--store", store.to_str().expect("utf-8")])
        .expect("parse");
    let Cli::Recode(args) = cli else { panic!("not recode") };
    let err = format!("{:#}", recode::run(args).expect_err("no images"));
    assert!(err.contains("/nonexistent/images"), "{err}");
}
