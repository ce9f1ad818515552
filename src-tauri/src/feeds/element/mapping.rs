//! Parsed ELEMENT readings and packets → normalized [`Event`]s.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;

use super::fields;
use super::payload::{Packet, ParseError, Parsed, Reading};
use crate::event::{Event, EventKind, Source};

/// Where an event belongs.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub account: &'a str,
    pub subscription: &'a str,
    pub received_at: Timestamp,
}

/// The event for a parsed element; `None` for wrapped events of unknown kinds.
pub fn to_event(parsed: Parsed, origin: Origin<'_>) -> Option<Event> {
    match parsed {
        Parsed::Reading(r) => Some(reading_event(r, origin)),
        Parsed::Packet(p) => Some(packet_event(p, origin)),
        Parsed::Other { .. } => None,
    }
}

fn reading_event(r: Reading, o: Origin<'_>) -> Event {
    let mut e = Event::new(
        Source::Element,
        o.account,
        o.subscription,
        EventKind::Reading,
        reading_key(o.account, &r.id),
    );
    // Measurements only; the main value by name, not by position (see `fields`).
    e.fields = r
        .numeric_fields()
        .into_iter()
        .filter(|(k, _)| fields::is_measurement(k))
        .collect();
    if let Some((q, v)) = fields::main_index(&e.fields).and_then(|i| e.fields.get(i)) {
        e.quantity = Some(q.clone());
        e.value = Some(*v);
    }
    e.parser = r
        .extra
        .get("parser_id")
        .and_then(|v| v.as_str())
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    e.name = r.device_name.clone().or_else(|| r.device_id.clone());
    e.device = r.device_id.clone();
    // Rules and latest values are per device + field: the device is the "sensor".
    e.sensor = r.device_id;
    e.measured_at = r.measured_at.as_deref().and_then(parse_time);
    e.received_at = o.received_at;
    e.cursor = r.inserted_at;
    e.raw = r.raw;
    e
}

fn packet_event(p: Packet, o: Origin<'_>) -> Event {
    let mut e = Event::new(
        Source::Element,
        o.account,
        o.subscription,
        EventKind::Packet,
        packet_key(o.account, &p.id),
    );
    e.name = p.device_name.clone().or_else(|| p.device_id.clone());
    e.device = p.device_id.clone();
    e.sensor = p.device_id;
    e.quantity = p.packet_type;
    e.measured_at = p.transceived_at.as_deref().and_then(parse_time);
    e.received_at = o.received_at;
    e.cursor = p.inserted_at;
    e.raw = p.raw;
    e
}

/// `element:{account}:reading:{id}`.
pub fn reading_key(account: &str, id: &str) -> String {
    format!("element:{account}:reading:{id}")
}

/// `element:{account}:packet:{id}`.
pub fn packet_key(account: &str, id: &str) -> String {
    format!("element:{account}:packet:{id}")
}

static UNPARSED_SEQ: AtomicU64 = AtomicU64::new(0);

/// An element that did not parse, kept so the engine stores and counts it. Each one gets
/// its own key: two identical broken frames are two incidents.
pub fn unparsed_event(err: ParseError, o: Origin<'_>) -> Event {
    let seq = UNPARSED_SEQ.fetch_add(1, Ordering::Relaxed);
    let key = format!(
        "element:{}:{}:unparsed:{}:{seq}",
        o.account,
        o.subscription,
        o.received_at.as_nanosecond()
    );
    let mut e = Event::new(
        Source::Element,
        o.account,
        o.subscription,
        EventKind::Unparsed,
        key,
    );
    e.condition = Some(err.reason);
    e.received_at = o.received_at;
    e.raw = err.raw;
    e
}

/// ELEMENT times are ISO 8601, usually with `Z`; a time without an offset is taken as UTC
/// (Elixir's NaiveDateTime prints that way).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let civil: jiff::civil::DateTime = s.parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::element::payload::parse_frame;

    fn origin() -> Origin<'static> {
        Origin {
            account: "acc",
            subscription: "sub",
            received_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn reading_maps_fields_and_identity() {
        let text = r#"{"id":"r1","device_id":"d1","data":{"note":"x","temp":4.5,"hum":60},
            "inserted_at":"2024-05-01T10:00:00.5Z","measured_at":"2024-05-01T09:59:59Z"}"#;
        let p = parse_frame(text).remove(0).unwrap();
        let e = to_event(p, origin()).unwrap();
        assert_eq!(e.key, "element:acc:reading:r1");
        assert_eq!(e.kind, EventKind::Reading);
        assert_eq!(e.subscription, "sub");
        assert_eq!(e.sensor.as_deref(), Some("d1"));
        assert_eq!(e.name.as_deref(), Some("d1"));
        assert_eq!(e.quantity.as_deref(), Some("temp"));
        assert_eq!(e.value, Some(4.5));
        assert_eq!(e.fields.len(), 2);
        assert_eq!(e.cursor.as_deref(), Some("2024-05-01T10:00:00.5Z"));
        assert_eq!(e.measured_at, Some("2024-05-01T09:59:59Z".parse().unwrap()));
    }

    #[test]
    fn sorted_real_keys_give_the_temperature_as_main_value_and_no_ids() {
        let text = r#"[{"event":"reading_added","body":{"data":{"air_humidity":46.93,"air_temperature":22.7,
            "battery_voltage":3.132,"device_id":21670,"protocol_version":2},"device_id":"d","id":"r",
            "inserted_at":"2024-08-13T13:11:04+00:00","location":null,"measured_at":"2024-08-13T13:11:03+00:00",
            "packet_id":"p","parser_id":"x"}}]"#;
        let e = to_event(parse_frame(text).remove(0).unwrap(), origin()).unwrap();
        assert_eq!(e.quantity.as_deref(), Some("air_temperature"));
        assert_eq!(e.value, Some(22.7));
        let names: Vec<&str> = e.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["air_humidity", "air_temperature", "battery_voltage"]
        );
        assert_eq!(e.measured_at, Some("2024-08-13T13:11:03Z".parse().unwrap()));
    }

    #[test]
    fn packet_keys_never_reach_the_raw_body() {
        let text = r#"[{"event":"packet_added","body":{"id":"p","device_id":"d","payload":"0A0B",
            "interface":{"opts":{"app_session_key":"AB12CD34AB12CD34","device_key":"DK99","lns_session_context":{"x":"LNS77"}}}}}]"#;
        let e = to_event(parse_frame(text).remove(0).unwrap(), origin()).unwrap();
        for s in ["AB12CD34AB12CD34", "DK99", "LNS77"] {
            assert!(!e.raw.contains(s), "{}", e.raw);
        }
        assert!(e.raw.contains("0A0B"));
    }

    #[test]
    fn packet_maps_to_packet_event() {
        let p = parse_frame(r#"{"event":"packet_added","body":{"id":"p1","device_id":"d","payload":"AA==","inserted_at":"t"}}"#)
            .remove(0)
            .unwrap();
        let e = to_event(p, origin()).unwrap();
        assert_eq!(e.key, "element:acc:packet:p1");
        assert_eq!(e.kind, EventKind::Packet);
    }

    #[test]
    fn naive_times_are_utc() {
        assert_eq!(
            parse_time("2024-05-01T10:00:00.123456"),
            Some("2024-05-01T10:00:00.123456Z".parse().unwrap())
        );
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn unparsed_events_are_distinct() {
        let err = ParseError {
            reason: "bad".into(),
            raw: "{".into(),
        };
        let a = unparsed_event(err.clone(), origin());
        let b = unparsed_event(err, origin());
        assert_ne!(a.key, b.key);
        assert_eq!(a.kind, EventKind::Unparsed);
        assert_eq!(a.raw, "{");
    }
}
