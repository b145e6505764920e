//! `hcontainer image …`: read CRIU image files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hcontainer_criu_image::{read_dir, show, ImageFile};

/// `hcontainer image` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print image files: one file, or every file of an images directory.
    Show {
        /// Images directories or image files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON (one object per file, in an array for a directory).
        #[arg(long)]
        json: bool,
    },
}

/// Run the subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Show { paths, json } => {
            let mut files = Vec::new();
            for path in &paths {
                if path.is_dir() {
                    files.extend(read_dir(path)?);
                } else {
                    files.push(ImageFile::read(path)?);
                }
            }
            let single = paths.len() == 1 && !paths[0].is_dir();
            if json {
                let values = files
                    .iter()
                    .map(|f| show::file_json(f).with_context(|| f.name.clone()))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let out = if single {
                    values.into_iter().next().unwrap_or_default()
                } else {
                    serde_json::Value::Array(values)
                };
                emit(&(serde_json::to_string_pretty(&out)? + "\n"))?;
            } else {
                for f in &files {
                    emit(&show::file_text(f).with_context(|| f.name.clone())?)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a reader that stopped reading (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}
