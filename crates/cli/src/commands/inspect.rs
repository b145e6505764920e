//! `hcontainer inspect`: summarize the metadata of a translated executable.

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
    print_header(&h);
    let addrs: Vec<u64> = points
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks_exact yields 8 bytes")))
        .collect();
    if let (Some(first), Some(last)) = (addrs.first(), addrs.last()) {
        println!("point range:        {first:#x} .. {last:#x}");
    }
    if args.points {
        for a in &addrs {
            println!("{a:#x}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_header(h: &Header) {
    let sha: String = h.guest_sha256.iter().map(|b| format!("{b:02x}")).collect();
    println!("host ISA:           {}", h.host_isa.name());
    println!("metadata version:   {}", h.meta_version);
    println!("GuestState version: {}", h.state_version);
    println!("guest entry:        {:#x}", h.guest_entry);
    println!(
        "guest kind:         {}",
        if h.flags & 1 != 0 { "static-pie" } else { "static" }
    );
    println!("load bias:          {:#x}", h.load_bias);
    println!("guest sha256:       {sha}");
    println!("guest size:         {} bytes", h.guest_size);
    println!("migration points:   {}", h.n_points);
    println!("trap instructions:  {}", h.n_traps);
}
