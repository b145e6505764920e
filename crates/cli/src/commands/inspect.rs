//! `hcontainer inspect`: summarize the metadata of a translated executable.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hcontainer_abi::meta::{self, Header};
use object::{Object as _, ObjectSection as _};

/// Arguments of `hcontainer inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// A translated executable (output of `hcontainer translate`).
    file: PathBuf,
    /// Also list every migration point.
    #[arg(long)]
    points: bool,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = &args.file;
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let file = object::File::parse(&*bytes)
        .with_context(|| format!("{}: not an executable hcontainer can read", path.display()))?;
    let Some(section) = file.section_by_name(meta::SECTION) else {
        bail!(
            "{}: no {} section: not a translated executable",
            path.display(),
            meta::SECTION
        );
    };
    let data = section
        .data()
        .with_context(|| format!("{}: cannot read {}", path.display(), meta::SECTION))?;
    let (h, points) =
        Header::decode(data).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let addrs: Vec<u64> = points
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks_exact yields 8 bytes")))
        .collect();
    // The output is often piped into `head`: a closed pipe ends it quietly.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match write_summary(&mut out, &h, &addrs, args.points).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the summary")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn write_summary(out: &mut impl Write, h: &Header, addrs: &[u64], points: bool) -> std::io::Result<()> {
    write_header(out, h)?;
    if let (Some(first), Some(last)) = (addrs.first(), addrs.last()) {
        writeln!(out, "point range:        {first:#x} .. {last:#x}")?;
    }
    if points {
        for a in addrs {
            writeln!(out, "{a:#x}")?;
        }
    }
    Ok(())
}

fn write_header(out: &mut impl Write, h: &Header) -> std::io::Result<()> {
    let sha: String = h.guest_sha256.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(out, "host ISA:           {}", h.host_isa.name())?;
    writeln!(out, "metadata version:   {}", h.meta_version)?;
    writeln!(out, "GuestState version: {}", h.state_version)?;
    writeln!(out, "guest entry:        {:#x}", h.guest_entry)?;
    writeln!(
        out,
        "guest kind:         {}",
        if h.flags & 1 != 0 { "static-pie" } else { "static" }
    )?;
    writeln!(out, "memory model:       {}", memory_model(h))?;
    writeln!(out, "load bias:          {:#x}", h.load_bias)?;
    writeln!(out, "guest sha256:       {sha}")?;
    writeln!(out, "guest size:         {} bytes", h.guest_size)?;
    writeln!(out, "migration points:   {}", h.n_points)?;
    writeln!(out, "trap instructions:  {}", h.n_traps)
}

/// What `h` says about the order of plain guest loads and stores.
fn memory_model(h: &Header) -> &'static str {
    use hcontainer_abi::meta::{HostIsa, MemoryModel};
    match (h.memory_model(), h.host_isa) {
        (_, HostIsa::X86_64) => "x86-TSO (the host's own order)",
        (MemoryModel::Tso, HostIsa::Aarch64) => "x86-TSO (acquire loads, release stores; stack accesses plain)",
        (MemoryModel::Tso, HostIsa::Riscv64) => "x86-TSO (fences around loads and stores; stack accesses plain)",
        (MemoryModel::Relaxed, _) => "relaxed (plain loads and stores in the host's order)",
    }
}
