//! The C test programs: statically linked x86-64 executables built with the host's `gcc`
//! (glibc) or `musl-gcc`, all with the same base flags (`-static -O2 -pthread`, `-lm` last),
//! either into a given file or into a cache folder keyed by the source text, the compiler and
//! the flags (a changed source gets a new file; a program already there is never rebuilt
//! under a test that runs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{run_captured, Error};

/// Flags of every test program, before the caller's own.
pub const BASE_FLAGS: [&str; 3] = ["-static", "-O2", "-pthread"];

/// The C library a test program is linked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Libc {
    /// GNU libc, with the host's `gcc`.
    Glibc,
    /// musl, with `musl-gcc`.
    Musl,
}

impl Libc {
    /// `glibc` or `musl`: the name in file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::Musl => "musl",
        }
    }

    /// The compiler driver that links against this C library.
    pub fn compiler(self) -> &'static str {
        match self {
            Libc::Glibc => "gcc",
            Libc::Musl => "musl-gcc",
        }
    }
}

/// Compiles the C file `src` for `libc` into `out`: `<cc> -static -O2 -pthread <flags> -o out
/// src -lm`.
pub fn compile(libc: Libc, src: &Path, flags: &[&str], out: &Path) -> Result<(), Error> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    run_captured(
        Command::new(libc.compiler())
            .args(BASE_FLAGS)
            .args(flags)
            .arg("-o")
            .arg(out)
            .arg(src)
            .arg("-lm"),
    )?;
    Ok(())
}

/// Held while [`compile_cached`] builds: threads of one test binary that want the same
/// program wait for the one that builds it.
static BUILDING: Mutex<()> = Mutex::new(());

/// Compiles `src` as [`compile`] does into `dir/<stem>.<libc>.<key>`, where the key is a hash
/// of the source text, the compiler and the flags; returns that path. A program already
/// there is reused. The build goes to a temporary file first, renamed into place, so an
/// interrupted build leaves no half-written program.
pub fn compile_cached(
    libc: Libc,
    src: &Path,
    flags: &[&str],
    dir: &Path,
) -> Result<PathBuf, Error> {
    let text = std::fs::read(src).map_err(|e| Error::io(src, e))?;
    let all_flags: Vec<&str> = BASE_FLAGS.iter().chain(flags).copied().collect();
    let key = cache_key(&[
        &text,
        libc.compiler().as_bytes(),
        all_flags.join(" ").as_bytes(),
    ]);
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".to_string());
    let out = dir.join(format!("{stem}.{}.{key}", libc.name()));
    let _one = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !out.exists() {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        compile(libc, src, flags, &tmp)?;
        std::fs::rename(&tmp, &out).map_err(|e| Error::io(&tmp, e))?;
    }
    Ok(out)
}

/// The cache key of a program: the first 64 bits of the SHA-256 of `parts`, each followed by a
/// separator byte, in hex.
fn cache_key(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for p in parts {
        hash.update(p);
        hash.update([0xff]);
    }
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: &str = "#include <stdio.h>\nint main(void) { puts(\"one\"); return 3; }\n";

    fn run(exe: &Path) -> (Option<i32>, String) {
        let out = Command::new(exe)
            .output()
            .expect("running the test program");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn compiles_static_programs_for_both_libcs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("one.c");
        std::fs::write(&src, PROGRAM).expect("writing one.c");
        for libc in [Libc::Glibc, Libc::Musl] {
            let exe = dir.path().join(format!("bin/one-{}", libc.name()));
            compile(libc, &src, &["-DUNUSED=1"], &exe).expect("compiling");
            assert_eq!(run(&exe), (Some(3), "one\n".to_string()), "{}", libc.name());
            let elf = std::fs::read(&exe).expect("reading the program");
            let file = object::File::parse(&*elf).expect("an ELF file");
            use object::Object;
            assert!(
                file.imports().expect("imports").is_empty(),
                "{} program is not static",
                libc.name()
            );
        }
    }

    #[test]
    fn failed_compile_names_the_compiler_and_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("bad.c");
        std::fs::write(&src, "int main(void) { return missing; }\n").expect("writing bad.c");
        let err = compile(Libc::Musl, &src, &[], &dir.path().join("bad"))
            .expect_err("a program that does not compile");
        let text = err.to_string();
        assert!(text.contains("musl-gcc"), "{text}");
        assert!(text.contains("missing"), "{text}");
    }

    #[test]
    fn cache_reuses_a_program_until_its_source_or_flags_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("one.c");
        std::fs::write(&src, PROGRAM).expect("writing one.c");
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).expect("cache folder");
        let first = compile_cached(Libc::Musl, &src, &[], &cache).expect("first build");
        let mtime = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .expect("mtime")
        };
        let built = mtime(&first);
        let again = compile_cached(Libc::Musl, &src, &[], &cache).expect("cached");
        assert_eq!(first, again);
        assert_eq!(mtime(&again), built, "the cached program was rebuilt");
        let flagged = compile_cached(Libc::Musl, &src, &["-DX=1"], &cache).expect("other flags");
        assert_ne!(flagged, first);
        let glibc = compile_cached(Libc::Glibc, &src, &[], &cache).expect("glibc");
        assert_ne!(glibc, first);
        std::fs::write(&src, PROGRAM.replace("one", "two")).expect("changing one.c");
        let changed = compile_cached(Libc::Musl, &src, &[], &cache).expect("changed source");
        assert_ne!(changed, first);
        assert_eq!(run(&changed), (Some(3), "two\n".to_string()));
        assert_eq!(run(&first), (Some(3), "one\n".to_string()));
        let names: Vec<String> = std::fs::read_dir(&cache)
            .expect("listing the cache")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains(".tmp")),
            "temporary files left: {names:?}"
        );
    }
}
