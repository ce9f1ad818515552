//! Feeds arbitrary text as an ELEMENT socket frame, with and without the subscription's
//! kind as a hint: parsing and mapping must never panic, every item becomes an event
//! (unparsable ones as `unparsed`, keeping the text) that serializes for history and IPC.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src-tauri/src/event.rs"]
mod event;

#[allow(dead_code)]
#[path = "../../src-tauri/src/settings.rs"]
mod settings;

// The path on the inline module makes `payload`/`mapping` resolve inside the real
// `feeds/element` directory, where `mapping`'s `super::payload` finds its sibling.
#[path = "../../src-tauri/src/feeds"]
mod feeds {
    pub mod element {
        #[allow(dead_code)]
        pub mod payload;

        #[allow(dead_code)]
        pub mod mapping;
    }
}

use feeds::element::{mapping, payload};
use settings::ElementKind;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let hint = match pick % 3 {
        0 => None,
        1 => Some(ElementKind::Readings),
        _ => Some(ElementKind::Packets),
    };
    let text = String::from_utf8_lossy(rest);
    let origin = || mapping::Origin {
        account: "acc",
        subscription: "sub",
        received_at: jiff::Timestamp::UNIX_EPOCH,
    };
    for item in payload::parse_frame_as(&text, hint) {
        let event = match item {
            Ok(parsed) => mapping::to_event(parsed, origin()),
            Err(err) => Some(mapping::unparsed_event(err, origin())),
        };
        if let Some(e) = event {
            assert!(!e.key.is_empty(), "every event needs a key");
            serde_json::to_string(&e).expect("an event always serializes");
        }
    }
});
