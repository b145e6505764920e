//! Any bytes as a guest ELF file (static or dynamically linked executable, shared object):
//! parsing, its dynamic section and code discovery must return an error or a value, never
//! panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bin) = hcontainer_x86::GuestBinary::parse_any("fuzz", data.to_vec()) {
        let _ = hcontainer_x86::discover(&bin);
    }
});
