//! `no_std` formatted diagnostics on standard error: [`eprintln!`](crate::eprintln) formats
//! into a fixed buffer (truncating past its size) and writes it with one system call.

use core::fmt;

/// A fixed-size formatting buffer.
pub struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl Buf {
    /// An empty buffer.
    pub const fn new() -> Self {
        Buf { bytes: [0; 512], len: 0 }
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for Buf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Format `args` plus a newline and write it to fd 2.
pub fn eprint_line(args: fmt::Arguments<'_>) {
    let mut b = Buf::new();
    let _ = fmt::write(&mut b, args);
    let _ = fmt::Write::write_str(&mut b, "\n");
    crate::sys::write_all(2, b.as_bytes());
}

/// Print a line on standard error (`no_std` `eprintln!`).
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => { $crate::print::eprint_line(format_args!($($arg)*)) };
}

/// A NUL-terminated C string at `ptr` as bytes (without the NUL), at most `max` bytes.
///
/// # Safety
/// `ptr` must point to readable memory up to its NUL or `max` bytes.
pub unsafe fn cstr<'a>(ptr: *const u8, max: usize) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: the caller guarantees readability up to the NUL or `max`.
    unsafe {
        while n < max && *ptr.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(ptr, n)
    }
}

/// Bytes shown as text, replacing non-UTF-8 input.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}
