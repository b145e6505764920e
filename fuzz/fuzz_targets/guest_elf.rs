//! Any bytes as a guest executable: parsing and code discovery must return an error or a
//! value, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bin) = hcontainer_x86::GuestBinary::parse("fuzz", data.to_vec()) {
        let _ = hcontainer_x86::discover(&bin);
    }
});
