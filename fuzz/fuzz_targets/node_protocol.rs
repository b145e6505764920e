//! Any bytes as what a node peer sends: the frame decoder (slice and stream), the control
//! messages in both directions, certificate subjects and CA requests must give a value or an
//! error, never a panic, a hang or an allocation beyond the frame limits. A decoded frame
//! encodes back to a frame that decodes to the same value.
#![no_main]

use hcontainer_node::frame::{self, Frame};
use hcontainer_node::proto::{parse, Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A stream of frames, as the agent reads them from a connection.
    let mut rest = data;
    while let Ok(Some((f, used))) = frame::decode(rest) {
        assert!(used > 0 && used <= rest.len());
        if let Frame::Control(json) = &f {
            let _ = parse::<Request>(json);
            let _ = parse::<Reply>(json);
        }
        let again = frame::encode(&f).expect("a decoded frame encodes");
        assert_eq!(frame::decode(&again).expect("re-decodes").map(|(g, _)| g), Some(f));
        rest = &rest[used..];
    }
    let mut r = data;
    let _ = frame::read_preamble(&mut r, hcontainer_node::proto::PROTOCOL_VERSION);
    while frame::read_frame(&mut r).is_ok() {}
    // Whole inputs as one message, a certificate, a CA request.
    let _ = parse::<Request>(data);
    let _ = parse::<Reply>(data);
    let _ = hcontainer_node::x509::subject(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hcontainer_node::tls::Request::parse(std::path::Path::new("fuzz.req"), text);
    }
});
