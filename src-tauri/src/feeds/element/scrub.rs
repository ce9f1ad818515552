//! LoRaWAN secrets out of ELEMENT bodies before anything keeps them.
//!
//! Packet frames (`interface.opts`) and the `device.interfaces` / `packet.interface`
//! preloads carry a device's LoRaWAN keys (`app_session_key`, `device_key`,
//! `network_session_key`, `lns_session_context`). The app stores raw bodies (history,
//! exports, `watch` output), so every body is scrubbed where it is parsed: each field
//! named like a key loses its value, whatever its depth.

use serde_json::Value;

/// What a removed value is replaced with.
pub const REMOVED: &str = "<removed>";

/// Known names of LoRaWAN secrets that don't follow the `_key` pattern.
const SECRET_NAMES: &[&str] = &[
    "lns_session_context",
    "appkey",
    "app_key",
    "nwkkey",
    "nwk_key",
    "appskey",
    "nwkskey",
    "app_s_key",
    "nwk_s_key",
    "session_context",
    "password",
    "secret",
];

/// Whether a field of this name holds a secret: `*_key` (incl. `*_session_key`), `*key`
/// of the LoRaWAN spellings above, or a known name.
pub fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("_key") || n.ends_with("-key") || SECRET_NAMES.contains(&n.as_str())
}

/// Replaces the value of every secret field in `v`, at any depth. Returns whether
/// anything was removed.
pub fn scrub_value(v: &mut Value) -> bool {
    match v {
        Value::Object(m) => {
            let mut any = false;
            for (k, val) in m.iter_mut() {
                if is_secret_field(k) {
                    if !matches!(val, Value::Null) {
                        *val = Value::String(REMOVED.into());
                        any = true;
                    }
                } else {
                    any |= scrub_value(val);
                }
            }
            any
        }
        Value::Array(a) => a.iter_mut().fold(false, |acc, x| scrub_value(x) | acc),
        _ => false,
    }
}

/// The same for text that may not be valid JSON (a broken frame kept for the user): after
/// every `"<secret name>":` the value (a string, an object or array, or anything up to the
/// next `,`/`}`) is replaced; a value cut off by the end of the text is removed to the end.
pub fn scrub_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A quoted name: find its end.
        let Some(len) = text[i + 1..].find('"') else {
            break;
        };
        let name = &text[i + 1..i + 1 + len];
        let mut j = i + 1 + len + 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b':' || !is_secret_field(name) {
            i += 1 + len + 1;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let end = value_end(bytes, j);
        out.push_str(&text[copied..j]);
        out.push('"');
        out.push_str(REMOVED);
        out.push('"');
        copied = end;
        i = end;
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

/// Where the JSON value starting at `start` ends (exclusive), tolerating broken text.
fn value_end(b: &[u8], start: usize) -> usize {
    let Some(&first) = b.get(start) else {
        return b.len();
    };
    match first {
        b'"' => {
            let mut k = start + 1;
            while k < b.len() {
                match b[k] {
                    b'\\' => k += 2,
                    b'"' => return k + 1,
                    _ => k += 1,
                }
            }
            b.len()
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut k = start;
            let mut in_str = false;
            while k < b.len() {
                let c = b[k];
                if in_str {
                    match c {
                        b'\\' => k += 1,
                        b'"' => in_str = false,
                        _ => {}
                    }
                } else {
                    match c {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                return k + 1;
                            }
                        }
                        _ => {}
                    }
                }
                k += 1;
            }
            b.len()
        }
        _ => {
            let mut k = start;
            while k < b.len() && !matches!(b[k], b',' | b'}' | b']') {
                k += 1;
            }
            k
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_fields_are_removed_at_any_depth() {
        let mut v = json!({"interface": {"opts": {"app_session_key": "AAA", "device_eui": "E",
            "lns_session_context": {"f_cnt_up": 3, "app_s_key": "BBB"}, "network_session_key": "CCC"}},
            "list": [{"device_key": "DDD"}], "payload": "0102"});
        assert!(scrub_value(&mut v));
        let text = v.to_string();
        for s in ["AAA", "BBB", "CCC", "DDD"] {
            assert!(!text.contains(s), "{text}");
        }
        assert!(text.contains("\"device_eui\":\"E\"") && text.contains("0102"));
        assert!(!scrub_value(&mut json!({"data": {"temperature": 4}})));
    }

    #[test]
    fn broken_text_is_scrubbed_too() {
        let t = r#"{"event":"packet_added","body":{"interface":{"opts":{"device_key" : "K1\"x","lns_session_context":{"a":"K2"},"app_session_key":"K3"#;
        let s = scrub_text(t);
        for k in ["K1", "K2", "K3"] {
            assert!(!s.contains(k), "{s}");
        }
        assert!(s.starts_with(r#"{"event":"packet_added""#), "{s}");
        assert_eq!(scrub_text("pong"), "pong");
        assert_eq!(
            scrub_text(r#"{"a_key": 12, "b": 1}"#),
            r#"{"a_key": "<removed>", "b": 1}"#
        );
    }
}
