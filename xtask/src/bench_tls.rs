//! `cargo xtask bench-tls`: what TLS costs on a transfer, on this host's loopback: the same
//! images directory uploaded to an `hcontainer agent` (in this process, on 127.0.0.1) in
//! clear and over TLS 1.3 with each cipher suite, interleaved, REPS times each; the median
//! throughput of each. The data is LZ4-framed as in a migration and half of its pages are
//! incompressible, like a process heap; the agent writes every file as in a real job (which
//! it then aborts), into a folder on /dev/shm when there is one, so that the disk's
//! write-back does not blur the comparison.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use hcontainer_node::tls::{self, Identity, NodeDir, Role};
use hcontainer_node::{Agent, AgentConfig, Client, ClientSecurity, Security};

use crate::util::{self, step};

/// Arguments of `cargo xtask bench-tls`.
#[derive(clap::Args)]
pub struct Args {
    /// Size of the images directory, in MB.
    #[arg(long, default_value_t = 256)]
    mb: u64,
    /// Repetitions of each mode (interleaved).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

/// Writes `mb` MB of pages: every other page random, the rest a few words in zeros.
fn write_subject(dir: &Path, mb: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("pages-1.img"))?);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut page = [0u8; 4096];
    for i in 0..(mb << 20) / 4096 {
        if i % 2 == 0 {
            for chunk in page.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes());
            }
        } else {
            page.fill(0);
            page[..8].copy_from_slice(&i.to_le_bytes());
        }
        f.write_all(&page)?;
    }
    f.flush()?;
    Ok(())
}

/// One upload of `dir`; MB/s of file bytes until the agent has read them all.
fn upload(addr: &str, security: &ClientSecurity, dir: &Path) -> Result<(f64, Option<String>)> {
    let mut c = Client::connect(addr, security)?;
    c.begin("bench-tls")?;
    let start = Instant::now();
    let sent = c.upload(&[(dir.to_path_buf(), "final".into())], &mut |_| {})?;
    c.status()?;
    let secs = start.elapsed().as_secs_f64();
    let cipher = c.cipher.clone();
    c.abort()?;
    Ok((sent.raw as f64 / 1e6 / secs, cipher))
}

/// Runs the bench and prints the table.
pub fn run(args: &Args) -> Result<()> {
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() { shm.join("hcontainer-bench-tls") } else { util::cache_dir().join("bench-tls") };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    step(&format!("bench-tls: {} MB of pages, certificates", args.mb));
    let subject = work.join("images");
    write_subject(&subject, args.mb)?;
    tls::testing::make(&work.join("pki"), "bench", &[("agent", Role::Node), ("source", Role::Node)])?;
    let id = |name: &str| Identity::load(&NodeDir(work.join("pki").join(name)));
    let tls_agent = Agent::bind(AgentConfig::new(
        "127.0.0.1:0",
        work.join("agent-tls"),
        Security::Tls { identity: id("agent")?, push_from: None },
    ))?
    .spawn()?;
    let clear_agent =
        Agent::bind(AgentConfig::new("127.0.0.1:0", work.join("agent-clear"), Security::InsecurePlaintext))?.spawn()?;
    // The client's suite list is made when its identity loads; the agent follows the
    // client's order.
    let mut modes = vec![("clear".to_string(), clear_agent.addr().to_string(), ClientSecurity::InsecurePlaintext)];
    std::env::remove_var(tls::CIPHER_ENV);
    modes.push(("TLS, default order".into(), tls_agent.addr().to_string(), ClientSecurity::Tls(id("source")?)));
    for suite in ["aes128gcm", "aes256gcm", "chacha20"] {
        std::env::set_var(tls::CIPHER_ENV, suite);
        modes.push((format!("TLS, {suite} only"), tls_agent.addr().to_string(), ClientSecurity::Tls(id("source")?)));
    }
    std::env::remove_var(tls::CIPHER_ENV);
    let mut rates = vec![Vec::new(); modes.len()];
    let mut ciphers = vec![None; modes.len()];
    for rep in 0..args.reps {
        for (i, (name, addr, security)) in modes.iter().enumerate() {
            let (rate, cipher) = upload(addr, security, &subject).with_context(|| format!("{name}, repetition {}", rep + 1))?;
            rates[i].push(rate);
            ciphers[i] = cipher;
        }
    }
    println!(
        "bench-tls: {} MB (half random pages) uploaded over loopback, median of {} interleaved runs; this CPU {} AES instructions",
        args.mb,
        args.reps,
        if tls::has_aes_instructions() { "has" } else { "lacks" }
    );
    println!("{:<22} {:<30} {:>9} {:>9}", "mode", "cipher suite", "MB/s", "vs clear");
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
    };
    let clear = median(&rates[0]);
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let m = median(&rates[i]);
        println!("{:<22} {:<30} {:>9.1} {:>8.2}x", name, ciphers[i].as_deref().unwrap_or("-"), m, m / clear);
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
