//! A tolerant parser for ELEMENT socket frames.
//!
//! The vendor documents the reading and packet objects but not the framing. Third-party
//! clients read a text frame as a JSON array of `{"event": "reading_added", "body": {…}}`;
//! we also accept a single object instead of an array, and a bare reading or packet without
//! the wrapper. Fields we don't know are kept (in [`Reading::extra`] / [`Packet::extra`]),
//! ids may be strings or numbers, `data` values may be any JSON. One element that does not
//! parse never spoils its neighbours in the same frame.

use serde_json::{Map, Value};

use super::scrub;
use crate::settings::ElementKind;

/// An ELEMENT reading as far as we use it; everything else stays in `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub id: String,
    pub device_id: Option<String>,
    pub packet_id: Option<String>,
    /// `data`: field → any JSON value.
    pub data: Map<String, Value>,
    /// The keys of `data` in the order they came (`Map` sorts them).
    pub field_order: Vec<String>,
    /// As received (the `after=` cursor is built from it verbatim).
    pub inserted_at: Option<String>,
    pub measured_at: Option<String>,
    /// The device name, when `preload=device` brought the device along.
    pub device_name: Option<String>,
    /// Every other field of the body.
    pub extra: Map<String, Value>,
    /// The element's JSON text (the body, or the wrapper when wrapped).
    pub raw: String,
}

impl Reading {
    /// Every numeric field of `data` in the order they came (numbers, and strings that are
    /// plain numbers: some parsers emit `"21.5"`).
    pub fn numeric_fields(&self) -> Vec<(String, f64)> {
        let ordered = self
            .field_order
            .iter()
            .filter_map(|k| self.data.get_key_value(k));
        let rest = self
            .data
            .iter()
            .filter(|(k, _)| !self.field_order.contains(k));
        ordered
            .chain(rest)
            .filter_map(|(k, v)| {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                }?;
                n.is_finite().then(|| (k.clone(), n))
            })
            .collect()
    }
}

/// An ELEMENT packet as far as we use it; everything else stays in `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub id: String,
    pub device_id: Option<String>,
    pub inserted_at: Option<String>,
    pub transceived_at: Option<String>,
    pub packet_type: Option<String>,
    pub device_name: Option<String>,
    pub extra: Map<String, Value>,
    pub raw: String,
}

/// One parsed element of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Reading(Reading),
    Packet(Packet),
    /// A wrapped event of a kind we don't know (kept for the log, not delivered).
    Other {
        event: String,
        raw: String,
    },
}

/// Why an element (or the whole frame) did not parse; `raw` is what was received.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unparsable ELEMENT frame: {reason}")]
pub struct ParseError {
    pub reason: String,
    pub raw: String,
}

/// Parses one text frame. Readings and packets are told apart by the wrapper's event
/// name, else by the body's shape (`data` → reading, `payload`/`transceived_at` → packet).
pub fn parse_frame(text: &str) -> Vec<Result<Parsed, ParseError>> {
    parse_frame_as(text, None)
}

/// Like [`parse_frame`], with the subscription's kind deciding bodies whose shape is
/// ambiguous.
pub fn parse_frame_as(text: &str, hint: Option<ElementKind>) -> Vec<Result<Parsed, ParseError>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return vec![Err(ParseError {
                reason: format!("not JSON ({e})"),
                raw: scrub::scrub_text(text),
            })]
        }
    };
    let orders = data_key_orders(text);
    let order = |i: usize| orders.get(i).cloned().unwrap_or_default();
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| parse_element(v, hint, order(i)))
            .collect(),
        v @ Value::Object(_) => vec![parse_element(v, hint, order(0))],
        other => vec![Err(ParseError {
            reason: "neither an object nor an array".into(),
            raw: other.to_string(),
        })],
    }
}

fn parse_element(
    mut value: Value,
    hint: Option<ElementKind>,
    order: Vec<String>,
) -> Result<Parsed, ParseError> {
    // LoRaWAN keys (packet interfaces, preloads) never get past this point.
    scrub::scrub_value(&mut value);
    let raw = value.to_string();
    let Value::Object(obj) = value else {
        return Err(ParseError {
            reason: "an array element is not an object".into(),
            raw,
        });
    };
    // Wrapped: {"event": "...", "body": {...}}.
    if let (Some(Value::String(event)), Some(Value::Object(_))) =
        (obj.get("event"), obj.get("body"))
    {
        let event = event.clone();
        let Some(Value::Object(body)) = obj.into_iter().find(|(k, _)| k == "body").map(|(_, v)| v)
        else {
            return Err(ParseError {
                reason: "wrapper without a body".into(),
                raw,
            });
        };
        let lower = event.to_ascii_lowercase();
        let kind = if lower.contains("reading") {
            Some(ElementKind::Readings)
        } else if lower.contains("packet") {
            Some(ElementKind::Packets)
        } else {
            None
        };
        return match kind.or_else(|| shape_of(&body)) {
            Some(k) => body_to_parsed(body, k, raw, order),
            None => Ok(Parsed::Other { event, raw }),
        };
    }
    let kind = shape_of(&obj).or(hint);
    match kind {
        Some(k) => body_to_parsed(obj, k, raw, order),
        None => Err(ParseError {
            reason: "neither a reading nor a packet".into(),
            raw,
        }),
    }
}

/// What a bare body looks like.
fn shape_of(obj: &Map<String, Value>) -> Option<ElementKind> {
    if obj.contains_key("data") || obj.contains_key("measured_at") || obj.contains_key("parser_id")
    {
        Some(ElementKind::Readings)
    } else if obj.contains_key("payload")
        || obj.contains_key("transceived_at")
        || obj.contains_key("payload_encoding")
    {
        Some(ElementKind::Packets)
    } else {
        None
    }
}

fn body_to_parsed(
    mut body: Map<String, Value>,
    kind: ElementKind,
    raw: String,
    order: Vec<String>,
) -> Result<Parsed, ParseError> {
    let Some(id) = body.remove("id").as_ref().and_then(id_string) else {
        return Err(ParseError {
            reason: format!("a {} without an id", singular(kind)),
            raw,
        });
    };
    let device_id = body.remove("device_id").as_ref().and_then(id_string);
    let inserted_at = take_string(&mut body, "inserted_at");
    let device_name = body
        .get("device")
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(match kind {
        ElementKind::Readings => {
            let data = match body.remove("data") {
                Some(Value::Object(m)) => m,
                Some(Value::Null) | None => Map::new(),
                Some(other) => {
                    // Not a map: keep it under a single field so nothing is lost.
                    let mut m = Map::new();
                    m.insert("data".into(), other);
                    m
                }
            };
            Parsed::Reading(Reading {
                id,
                device_id,
                packet_id: body.remove("packet_id").as_ref().and_then(id_string),
                data,
                field_order: order,
                inserted_at,
                measured_at: take_string(&mut body, "measured_at"),
                device_name,
                extra: body,
                raw,
            })
        }
        ElementKind::Packets => Parsed::Packet(Packet {
            id,
            device_id,
            inserted_at,
            transceived_at: take_string(&mut body, "transceived_at"),
            packet_type: take_string(&mut body, "packet_type"),
            device_name,
            extra: body,
            raw,
        }),
    })
}

/// The key order of each element's `data` object, read in a second, light pass: the
/// `Value` map sorts keys, but "the first numeric field" means the first one sent. Empty
/// when the frame's shape is unusual (then the sorted order is used).
fn data_key_orders(text: &str) -> Vec<Vec<String>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum FrameOrder {
        Many(Vec<ElemOrder>),
        One(ElemOrder),
    }
    #[derive(serde::Deserialize)]
    struct ElemOrder {
        #[serde(default)]
        body: Option<BodyOrder>,
        #[serde(default)]
        data: Option<KeyOrder>,
    }
    #[derive(serde::Deserialize)]
    struct BodyOrder {
        #[serde(default)]
        data: Option<KeyOrder>,
    }
    let pick = |e: ElemOrder| {
        e.body
            .and_then(|b| b.data)
            .or(e.data)
            .map(|k| k.0)
            .unwrap_or_default()
    };
    match serde_json::from_str::<FrameOrder>(text) {
        Ok(FrameOrder::Many(v)) => v.into_iter().map(pick).collect(),
        Ok(FrameOrder::One(e)) => vec![pick(e)],
        Err(_) => Vec::new(),
    }
}

/// The keys of a JSON object in document order; anything else gives none.
struct KeyOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(KeyOrder(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<KeyOrder, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_str<E>(self, _: &str) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
            fn visit_unit<E>(self) -> Result<KeyOrder, E> {
                Ok(KeyOrder(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

fn singular(kind: ElementKind) -> &'static str {
    match kind {
        ElementKind::Readings => "reading",
        ElementKind::Packets => "packet",
    }
}

/// Ids are UUID strings in ELEMENT; numbers are accepted too.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn take_string(body: &mut Map<String, Value>, key: &str) -> Option<String> {
    match body.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => {
            // An unexpected type: keep it as an unknown field instead of dropping it.
            body.insert(key.to_string(), other);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Parsed {
        let mut v = parse_frame(text);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0).unwrap()
    }

    #[test]
    fn wrapped_array_of_readings() {
        let text = r#"[{"event":"reading_added","body":{"id":"r1","device_id":"d1","packet_id":"p1","parser_id":"x",
            "data":{"temperature":21.5,"humidity":"40","ok":true,"label":"a"},"inserted_at":"2024-01-02T03:04:05.123456Z",
            "measured_at":"2024-01-02T03:04:00Z","location":null,"new_field":{"a":1}}},
            {"event":"reading_added","body":{"id":"r2","data":{}}}]"#;
        let v = parse_frame(text);
        assert_eq!(v.len(), 2);
        let Ok(Parsed::Reading(r)) = &v[0] else {
            panic!("{v:?}")
        };
        assert_eq!(r.id, "r1");
        assert_eq!(r.device_id.as_deref(), Some("d1"));
        assert_eq!(
            r.inserted_at.as_deref(),
            Some("2024-01-02T03:04:05.123456Z")
        );
        assert_eq!(
            r.numeric_fields(),
            vec![("temperature".into(), 21.5), ("humidity".into(), 40.0)]
        );
        assert!(r.extra.contains_key("new_field"), "unknown fields are kept");
        assert!(matches!(&v[1], Ok(Parsed::Reading(r)) if r.id == "r2"));
    }

    #[test]
    fn single_wrapped_and_bare_objects() {
        assert!(
            matches!(one(r#"{"event":"packet_added","body":{"id":7,"payload":"AQI="}}"#), Parsed::Packet(p) if p.id == "7")
        );
        assert!(matches!(
            one(r#"{"id":"r","data":{"t":1}}"#),
            Parsed::Reading(_)
        ));
        assert!(matches!(
            one(r#"{"id":"p","transceived_at":"2024-01-01T00:00:00Z"}"#),
            Parsed::Packet(_)
        ));
        assert!(matches!(
            one(r#"{"event":"device_updated","body":{"id":"d"}}"#),
            Parsed::Other { .. }
        ));
    }

    #[test]
    fn hint_decides_ambiguous_bodies() {
        let v = parse_frame_as(
            r#"{"id":"x","inserted_at":"2024-01-01T00:00:00Z"}"#,
            Some(ElementKind::Packets),
        );
        assert!(matches!(&v[0], Ok(Parsed::Packet(_))));
        assert!(parse_frame(r#"{"id":"x"}"#)[0].is_err());
    }

    #[test]
    fn preloaded_device_name_is_used() {
        let r = one(
            r#"{"event":"reading_added","body":{"id":"r","data":{"t":1},"device":{"id":"d","name":"Fridge 3"}}}"#,
        );
        let Parsed::Reading(r) = r else { panic!() };
        assert_eq!(r.device_name.as_deref(), Some("Fridge 3"));
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        for text in [
            "",
            "ping",
            "{",
            "42",
            "null",
            "[1,2]",
            r#"{"event":"reading_added","body":{"data":{}}}"#,
            "\u{0}",
        ] {
            let v = parse_frame(text);
            assert!(v.iter().all(|r| r.is_err()), "{text:?} → {v:?}");
        }
        assert!(parse_frame("[]").is_empty());
        // One bad element does not spoil the good one next to it.
        let v = parse_frame(r#"[7, {"id":"r","data":{}}]"#);
        assert!(v[0].is_err() && v[1].is_ok());
    }
}
