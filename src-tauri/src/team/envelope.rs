//! The signed envelope every shared message travels in (docs/TEAM.md, "The signed envelope").
//!
//! `sig` is HMAC-SHA256 with the site key over `alarm-tray/1\n<topic>\n<canonical JSON of the
//! envelope without sig>`. The topic is signed too, so a genuine message cannot be replayed
//! under another topic, and `pc` must be the topic's last segment. Verification happens
//! before anything reads the body: a message that fails it is dropped and counted.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The only envelope version this build reads and writes.
pub const VERSION: u32 = 1;
/// Put before the signed text so a signature of this app never doubles as another's.
const DOMAIN: &str = "alarm-tray/1";

/// What a shared message is (the topic's third segment says the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An event this PC stored from a Saveris queue.
    Event,
    /// An alarm state change: raised, acked, cleared.
    Alarm,
    /// The retained current state of one alarm.
    State,
    /// The retained online state of one PC (and its last will).
    Presence,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Alarm => "alarm",
            Kind::State => "state",
            Kind::Presence => "presence",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "event" => Kind::Event,
            "alarm" => Kind::Alarm,
            "state" => Kind::State,
            "presence" => Kind::Presence,
            _ => return None,
        })
    }
}

/// A verified message: who sent it, when, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    /// The sending PC's name (equal to the topic's last segment for event/alarm/presence).
    pub pc: String,
    pub at_ms: i64,
    pub kind: Kind,
    pub body: Value,
}

/// Why a message was dropped. None of these ever leads to the body being used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a JSON object")]
    NotJson,
    #[error("no signature")]
    MissingSignature,
    #[error("wrong signature")]
    BadSignature,
    #[error("unknown envelope version")]
    Version,
    #[error("malformed envelope")]
    Malformed,
    #[error("the sender does not match the topic")]
    WrongSender,
}

type HmacSha256 = Hmac<Sha256>;

/// JSON with object keys sorted at every level and no spaces: the same bytes on every PC
/// whatever order a serializer chose.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(*k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn mac(key: &[u8], topic: &str, unsigned: &Value) -> HmacSha256 {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    m.update(DOMAIN.as_bytes());
    m.update(b"\n");
    m.update(topic.as_bytes());
    m.update(b"\n");
    m.update(canonical(unsigned).as_bytes());
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The payload to publish on `topic`: the envelope with its signature.
pub fn seal(key: &[u8], topic: &str, env: &Envelope) -> Vec<u8> {
    let mut value = match serde_json::to_value(env) {
        Ok(Value::Object(m)) => Value::Object(m),
        // An Envelope always serializes to an object.
        _ => Value::Object(Map::new()),
    };
    let sig = hex(&mac(key, topic, &value).finalize().into_bytes());
    if let Value::Object(m) = &mut value {
        m.insert("sig".into(), Value::String(sig));
    }
    canonical(&value).into_bytes()
}

/// Checks the signature of a payload received on `topic`, then reads it. Nothing of the
/// payload is interpreted before the signature matched.
pub fn open(key: &[u8], topic: &str, payload: &[u8]) -> Result<Envelope, VerifyError> {
    let mut value: Value = serde_json::from_slice(payload).map_err(|_| VerifyError::NotJson)?;
    let Value::Object(m) = &mut value else {
        return Err(VerifyError::NotJson);
    };
    let sig = match m.remove("sig") {
        Some(Value::String(s)) => s,
        Some(_) | None => return Err(VerifyError::MissingSignature),
    };
    let sig = unhex(&sig).ok_or(VerifyError::BadSignature)?;
    // Constant-time comparison (Mac::verify_slice).
    mac(key, topic, &value)
        .verify_slice(&sig)
        .map_err(|_| VerifyError::BadSignature)?;
    let env: Envelope = serde_json::from_value(value).map_err(|_| VerifyError::Malformed)?;
    if env.v != VERSION {
        return Err(VerifyError::Version);
    }
    let kind_in_topic = topic.split('/').nth(2).and_then(Kind::parse);
    if kind_in_topic != Some(env.kind) {
        return Err(VerifyError::Malformed);
    }
    if env.kind != Kind::State && topic.rsplit('/').next() != Some(env.pc.as_str()) {
        return Err(VerifyError::WrongSender);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"site key of lab one";
    const TOPIC: &str = "alarm-tray/lab1/alarm/pc-a";

    fn ack() -> Envelope {
        Envelope {
            v: VERSION,
            pc: "pc-a".into(),
            at_ms: 1_765_140_000_000,
            kind: Kind::Alarm,
            body: json!({"identity": "rule:r1:s1", "change": "acked", "user": "Ana", "comment": "door"}),
        }
    }

    #[test]
    fn a_sealed_message_opens_with_the_same_key() {
        let p = seal(KEY, TOPIC, &ack());
        assert_eq!(open(KEY, TOPIC, &p), Ok(ack()));
    }

    #[test]
    fn canonical_json_does_not_depend_on_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"é\""}}"#).expect("json");
        assert_eq!(
            canonical(&a),
            r#"{"a":{"x":"é\"","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        // The same message with keys in another order still verifies.
        let p = seal(KEY, TOPIC, &ack());
        let v: Value = serde_json::from_slice(&p).expect("json");
        let Value::Object(m) = v else { panic!() };
        let reordered: Map<String, Value> = m.into_iter().rev().collect();
        let text = serde_json::to_vec(&Value::Object(reordered)).expect("json");
        assert!(open(KEY, TOPIC, &text).is_ok());
    }

    #[test]
    fn missing_signature_is_rejected() {
        let body = serde_json::to_vec(&ack()).expect("json");
        assert_eq!(open(KEY, TOPIC, &body), Err(VerifyError::MissingSignature));
    }

    #[test]
    fn wrong_key_or_garbage_signature_is_rejected() {
        let p = seal(b"another site", TOPIC, &ack());
        assert_eq!(open(KEY, TOPIC, &p), Err(VerifyError::BadSignature));
        let mut v: Value = serde_json::from_slice(&seal(KEY, TOPIC, &ack())).expect("json");
        v["sig"] = json!("zz");
        let p = serde_json::to_vec(&v).expect("json");
        assert_eq!(open(KEY, TOPIC, &p), Err(VerifyError::BadSignature));
        assert_eq!(
            open(KEY, TOPIC, b"\xff not json"),
            Err(VerifyError::NotJson)
        );
    }

    #[test]
    fn a_forged_acknowledgement_is_rejected() {
        // A genuine ack with its comment changed, keeping the signature.
        let mut v: Value = serde_json::from_slice(&seal(KEY, TOPIC, &ack())).expect("json");
        v["body"]["identity"] = json!("rule:r1:other-sensor");
        let p = serde_json::to_vec(&v).expect("json");
        assert_eq!(open(KEY, TOPIC, &p), Err(VerifyError::BadSignature));
    }

    #[test]
    fn a_genuine_message_replayed_on_another_topic_is_rejected() {
        let p = seal(KEY, TOPIC, &ack());
        assert_eq!(
            open(KEY, "alarm-tray/lab1/alarm/pc-b", &p),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            open(KEY, "alarm-tray/lab2/alarm/pc-a", &p),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_sender_must_match_the_topic() {
        let mut e = ack();
        e.pc = "pc-b".into();
        let p = seal(KEY, TOPIC, &e);
        assert_eq!(open(KEY, TOPIC, &p), Err(VerifyError::WrongSender));
        let mut e = ack();
        e.kind = Kind::Presence;
        let p = seal(KEY, TOPIC, &e);
        assert_eq!(open(KEY, TOPIC, &p), Err(VerifyError::Malformed));
    }
}
