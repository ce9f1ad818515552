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
                    // The connect handshake has no header escaping, so a value ending in CR
                    // cannot be written (its CR would read as part of a CRLF).
                    let unescaped = matches!(
                        frame.command,
                        stomp::Command::Connect | stomp::Command::Connected | stomp::Command::Stomp
                    );
                    let trailing_cr = frame.headers.iter().any(|(_, v)| v.ends_with('\r'));
                    let nul_ok =
                        frame.header("content-length").is_some() || !frame.body.contains(&0);
                    if nul_ok && !(unescaped && trailing_cr) {
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
