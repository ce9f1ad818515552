//! Feeds arbitrary bytes as a Saveris message body of each channel: the mapping must never
//! panic, must keep the body (lossily as UTF-8) for the user, and must give an event that
//! serializes for history and IPC.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src-tauri/src/event.rs"]
mod event;

#[allow(dead_code)]
#[path = "../../src-tauri/src/feeds/saveris/payload.rs"]
mod payload;

const CHANNELS: [&str; 4] = ["alarms", "measurements", "measurements-v2", "unknown"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let channel = CHANNELS[usize::from(pick) % CHANNELS.len()];
    let now = jiff::Timestamp::UNIX_EPOCH;
    let e = payload::to_event("acc", channel, body, now);
    assert!(!e.key.is_empty(), "every event needs a key");
    assert_eq!(e.raw, String::from_utf8_lossy(body));
    let json = serde_json::to_string(&e).expect("an event always serializes");
    let back: event::Event = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back.key, e.key);
});
