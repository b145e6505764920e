//! Any bytes as a CRIU image file: decoding must return an error or a value, never panic,
//! and whatever decodes must encode back to the same bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = hcontainer_criu_image::ImageFile::parse(Path::new("fuzz.img"), data) {
        assert_eq!(image.to_bytes(), data, "decoded image did not re-encode byte for byte");
    }
});
