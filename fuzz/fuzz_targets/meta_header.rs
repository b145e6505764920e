//! Any bytes as a `.hcontainer.meta` section: decode must not panic, and a decoded header
//! encodes back to the bytes it came from.
#![no_main]

use hcontainer_abi::meta::{Header, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((header, _points)) = Header::decode(data) {
        assert_eq!(&header.encode()[..], &data[..HEADER_SIZE]);
    }
});
