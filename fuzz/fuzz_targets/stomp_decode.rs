//! Feeds arbitrary bytes, cut at arbitrary points, to the STOMP decoder: it must never
//! panic, never buffer much beyond its limit, and whatever it decodes must survive an
//! encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src-tauri/src/feeds/saveris/stomp.rs"]
mod stomp;

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 64) + 1;
    let mut d = stomp::Decoder::with_limit(LIMIT);
    for piece in stream.chunks(chunk) {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(frame)) => {
                    let wire = stomp::encode(&frame);
                    let mut again = stomp::Decoder::with_limit(usize::MAX);
                    again.push(&wire);
                    // A NUL in a body without content-length cannot be re-encoded as is;
                    // everything else must come back identical.
                    if frame.header("content-length").is_some() || !frame.body.contains(&0) {
                        assert_eq!(again.next_frame(), Ok(Some(frame)));
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        assert!(
            d.pending() <= LIMIT + 2 * chunk + 2,
            "buffered {} bytes",
            d.pending()
        );
    }
});
