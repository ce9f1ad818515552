//! Typed Saveris payloads (PROTOCOLS.md) and their mapping to [`Event`]s.
//!
//! Upstream evolves: an unknown enum value becomes `Other(text)` and extra fields are kept
//! in `extra`; neither is an error. No field is required (AsyncAPI 1.3.0 has no `required`
//! list). Numbers may arrive as JSON numbers or as strings (`"alarm_value": "22.015625"`),
//! and text fields as numbers (`"serial_number": 56000000`): both are read, neither fails.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Event, EventKind, Severity, Source};

/// The channels of the Push API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Alarms,
    Measurements,
    MeasurementsV2,
}

impl Channel {
    pub const ALL: [Channel; 3] = [
        Channel::Alarms,
        Channel::Measurements,
        Channel::MeasurementsV2,
    ];

    /// The name used in destinations and as the event's `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Alarms => "alarms",
            Channel::Measurements => "measurements",
            Channel::MeasurementsV2 => "measurements-v2",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A text field as sent: a string, or a number or boolean written out (never an error).
#[derive(Debug, Clone, Default)]
pub struct Lenient(pub String);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Lenient(match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            other => other.to_string(),
        }))
    }
}

/// `Option<String>` read leniently: `null` is absent, numbers and booleans become text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }))
}

/// Declares a string enum that keeps values it does not know.
macro_rules! open_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(from = "Lenient", into = "String")]
        pub enum $name {
            $($var,)*
            /// A value this build does not know (kept as sent).
            Other(String),
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                // The Data API writes `measurement_alarm` where the Push API writes
                // `measurement alarm` (SAVERIS-API.md §1.5a): the same value.
                match s.replace('_', " ").as_str() {
                    $($text => $name::$var,)*
                    _ => $name::Other(s),
                }
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }
        impl From<Lenient> for $name {
            fn from(l: Lenient) -> Self {
                $name::from(l.0)
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$var => $text,)*
                    $name::Other(s) => s,
                }
            }
        }
    };
}

open_enum!(
    /// `alarm_type`.
    AlarmType { Measurement = "measurement alarm", DeviceSystem = "device system alarm", SensorSystem = "sensor system alarm" }
);
open_enum!(
    /// `alarm_status`.
    AlarmStatus { Alarm = "Alarm", Ok = "Ok", Unknown = "Unknown" }
);
open_enum!(
    /// `alarm_severity`.
    AlarmSeverity { Alarm = "Alarm", Warning = "Warning", Unknown = "Unknown" }
);

/// A measurement alarm or a device/sensor system alarm (one payload shape, told apart by
/// `alarm_type`; the measurement fields are absent on system alarms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Alarm {
    #[serde(deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub tenant_uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub alarm_reason: Option<String>,
    pub alarm_status: Option<AlarmStatus>,
    #[serde(deserialize_with = "text")]
    pub last_status_change_time: Option<String>,
    #[serde(deserialize_with = "text")]
    pub alarm_time: Option<String>,
    #[serde(deserialize_with = "text")]
    pub alarm_time_local: Option<String>,
    #[serde(deserialize_with = "text")]
    pub processed_at: Option<String>,
    #[serde(deserialize_with = "text")]
    pub alarm_condition_type: Option<String>,
    pub alarm_severity: Option<AlarmSeverity>,
    #[serde(deserialize_with = "text")]
    pub serial_number: Option<String>,
    #[serde(deserialize_with = "text")]
    pub alarm_source_uuid: Option<String>,
    pub alarm_type: Option<AlarmType>,
    pub alarm_delay: Option<Value>,
    pub alarm_value: Option<Value>,
    #[serde(deserialize_with = "text")]
    pub physical_unit: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_value: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_value_extension: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Measurements v1 (`/measurements`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MeasurementV1 {
    #[serde(deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub device_uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub sensor_uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub device_serial_no: Option<String>,
    #[serde(deserialize_with = "text")]
    pub sensor_serial_no: Option<String>,
    #[serde(deserialize_with = "text")]
    pub tenant_uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub timestamp: Option<String>,
    #[serde(deserialize_with = "text")]
    pub timestamp_local: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_property_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_unit: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_extension: Option<String>,
    #[serde(deserialize_with = "text")]
    pub processed_at: Option<String>,
    pub channel_id: Option<Value>,
    pub measurement: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Measurements v2 (`/measurements-v2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MeasurementV2 {
    #[serde(deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub customer_site: Option<String>,
    #[serde(deserialize_with = "text")]
    pub tenant_uuid: Option<String>,
    #[serde(deserialize_with = "text")]
    pub sensor_uuid: Option<String>,
    pub channel_no: Option<Value>,
    #[serde(deserialize_with = "text")]
    pub physical_property_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_extension: Option<String>,
    #[serde(deserialize_with = "text")]
    pub physical_unit: Option<String>,
    #[serde(deserialize_with = "text")]
    pub timestamp: Option<String>,
    #[serde(deserialize_with = "text")]
    pub timestamp_local: Option<String>,
    pub measurement: Option<Value>,
    #[serde(deserialize_with = "text")]
    pub serial_no: Option<String>,
    #[serde(deserialize_with = "text")]
    pub model_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub processed_at: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A parsed body.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Alarm(Alarm),
    MeasurementV1(MeasurementV1),
    MeasurementV2(MeasurementV2),
}

/// Why a body was not understood.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not a JSON object")]
    NotAnObject,
    #[error("body does not match the {channel} payload: {source}")]
    Shape {
        channel: &'static str,
        source: serde_json::Error,
    },
}

/// Parses a body by the channel it came on. Alarm-looking bodies on a measurement channel
/// (and the reverse) are read by their content: a server mixing them up should not cost an
/// alarm.
pub fn parse(channel: Channel, body: &[u8]) -> Result<Payload, PayloadError> {
    // Which keys are there decides the shape; the probe reads that without building a
    // tree (issue 28: the body was parsed into a `Value` and then converted again).
    let keys: Probe = serde_json::from_slice(body).map_err(|_| PayloadError::NotAnObject)?;
    let shape = |channel: Channel| {
        move |source| PayloadError::Shape {
            channel: channel.as_str(),
            source,
        }
    };
    if keys.alarm || (channel == Channel::Alarms && !keys.measurement) {
        return serde_json::from_slice(body)
            .map(Payload::Alarm)
            .map_err(shape(Channel::Alarms));
    }
    if channel == Channel::MeasurementsV2 || keys.v2 {
        serde_json::from_slice(body)
            .map(Payload::MeasurementV2)
            .map_err(shape(Channel::MeasurementsV2))
    } else {
        serde_json::from_slice(body)
            .map(Payload::MeasurementV1)
            .map_err(shape(Channel::Measurements))
    }
}

/// The keys of a body that tell its shape (present, even as `null`), read in one pass that
/// skips every value. Anything but a JSON object is refused.
#[derive(Default)]
struct Probe {
    /// `alarm_status` or `alarm_type`.
    alarm: bool,
    /// `measurement`.
    measurement: bool,
    /// `channel_no` or `serial_no` (measurements v2).
    v2: bool,
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Probe, A::Error> {
                let mut p = Probe::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Alarm => p.alarm = true,
                        Key::Measurement => p.measurement = true,
                        Key::V2 => p.v2 = true,
                        Key::Other => {}
                    }
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(p)
            }
        }
        d.deserialize_map(Keys)
    }
}

/// A key of the probe, compared where it lies in the body (no copy).
enum Key {
    Alarm,
    Measurement,
    V2,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "alarm_status" | "alarm_type" => Key::Alarm,
                    "measurement" => Key::Measurement,
                    "channel_no" | "serial_no" => Key::V2,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(Name)
    }
}

/// Maps a body to an event. Never fails: a body that does not parse becomes an
/// [`EventKind::Unparsed`] event, so it is stored, shown and acknowledged (no poison loop).
pub fn to_event(account_id: &str, channel: &str, body: &[u8], received_at: Timestamp) -> Event {
    let raw = String::from_utf8_lossy(body).into_owned();
    let parsed = Channel::parse(channel)
        .ok_or(PayloadError::NotAnObject)
        .and_then(|c| parse(c, body));
    let mut ev = match parsed {
        Ok(Payload::Alarm(a)) => alarm_event(account_id, channel, &a, body),
        Ok(Payload::MeasurementV1(m)) => {
            let mut ev = measurement_event(
                account_id,
                channel,
                body,
                ReadingId {
                    sensor: &m.sensor_uuid,
                    quantity: &m.physical_property_name,
                    extension: &m.physical_extension,
                    time: &m.timestamp,
                    uuid: &m.uuid,
                },
                &m.measurement,
                &m.physical_unit,
            );
            ev.device = m.device_serial_no.clone().or(m.device_uuid.clone());
            ev.sensor = m.sensor_uuid.clone();
            ev.name = readable_name(
                m.sensor_serial_no
                    .as_deref()
                    .or(m.device_serial_no.as_deref()),
                m.physical_extension
                    .as_deref()
                    .or(m.physical_property_name.as_deref()),
            );
            ev
        }
        Ok(Payload::MeasurementV2(m)) => {
            let mut ev = measurement_event(
                account_id,
                channel,
                body,
                ReadingId {
                    sensor: &m.sensor_uuid,
                    quantity: &m.physical_property_name,
                    extension: &m.physical_extension,
                    time: &m.timestamp,
                    uuid: &m.uuid,
                },
                &m.measurement,
                &m.physical_unit,
            );
            // v2's `serial_no`/`model_code` are the sensor's; v2 names no device.
            ev.sensor = nonempty(&m.sensor_uuid)
                .map(str::to_string)
                .or_else(|| nonempty(&m.serial_no).map(|s| format!("serial:{s}")));
            ev.name = readable_name(
                m.serial_no.as_deref(),
                m.physical_extension
                    .as_deref()
                    .or(m.physical_property_name.as_deref()),
            );
            ev
        }
        Err(e) => {
            let mut ev = Event::new(
                Source::Saveris,
                account_id,
                channel,
                EventKind::Unparsed,
                hashed_key(account_id, channel, body),
            );
            ev.severity = Severity::Warning;
            ev.condition = Some(e.to_string());
            ev
        }
    };
    ev.received_at = received_at;
    ev.raw = raw;
    ev
}

fn alarm_event(account_id: &str, channel: &str, a: &Alarm, body: &[u8]) -> Event {
    let status = a.alarm_status.clone().unwrap_or(AlarmStatus::Unknown);
    let system = matches!(
        a.alarm_type,
        Some(AlarmType::DeviceSystem) | Some(AlarmType::SensorSystem)
    );
    // An alarm whose status we cannot read is raised rather than dropped: a spurious popup
    // costs less than a missed alarm.
    let kind = match (&status, system) {
        (AlarmStatus::Ok, _) => EventKind::AlarmCleared,
        (_, true) => EventKind::SystemAlarm,
        (_, false) => EventKind::AlarmRaised,
    };
    let key = match &a.uuid {
        Some(u) => format!(
            "saveris:{account_id}:alarm:{u}:{}:{}",
            status.as_str(),
            a.last_status_change_time.as_deref().unwrap_or("")
        ),
        None => hashed_key(account_id, channel, body),
    };
    let mut ev = Event::new(Source::Saveris, account_id, channel, kind, key);
    ev.severity = match kind {
        EventKind::AlarmCleared => Severity::Info,
        _ => match a.alarm_severity {
            Some(AlarmSeverity::Alarm) => Severity::Alarm,
            _ => Severity::Warning,
        },
    };
    let source = nonempty(&a.alarm_source_uuid);
    let serial = nonempty(&a.serial_number);
    let condition = a.alarm_condition_type.as_deref().unwrap_or("");
    // Whose alarm it is, so that a clear finds its raise and two sensors never share one:
    // the source uuid; when a measurement alarm comes without one (AsyncAPI 1.3.0: "the
    // sensor_uuid or empty"), the sensor's serial number + what it measures; with neither,
    // the message's own uuid (a clear may then not find its raise, but nothing is merged).
    let owner = match (source, serial) {
        (Some(src), _) => src.to_string(),
        (None, Some(serial)) => format!(
            "serial:{serial}:{}",
            nonempty(&a.physical_value_extension)
                .or(nonempty(&a.physical_value))
                .unwrap_or("")
        ),
        (None, None) => format!("uuid:{}", a.uuid.as_deref().unwrap_or("")),
    };
    ev.alarm_id = Some(format!("{owner}:{condition}"));
    // A device system alarm's source is a device; the other alarms' source is a sensor,
    // and their `serial_number` is that sensor's (the Data API's `serial_no` "of the
    // sensor which has detected the alarm"): the device is not named.
    if a.alarm_type == Some(AlarmType::DeviceSystem) {
        ev.device = source.or(serial).map(str::to_string);
    } else {
        ev.sensor = source
            .map(str::to_string)
            .or_else(|| serial.map(|s| format!("serial:{s}")));
    }
    ev.name = readable_name(
        a.serial_number.as_deref(),
        a.physical_value_extension
            .as_deref()
            .or(a.physical_value.as_deref()),
    );
    ev.condition = a
        .alarm_condition_type
        .clone()
        .or_else(|| a.alarm_reason.clone());
    ev.quantity = a.physical_value.clone();
    ev.value = a.alarm_value.as_ref().and_then(number);
    // One spelling per unit (the Data API says CELSIUS where the push API says °C).
    ev.unit = a
        .physical_unit
        .as_deref()
        .map(crate::units::canonical)
        .filter(|u| !u.is_empty());
    ev.measured_at = a
        .alarm_time
        .as_deref()
        .or(a.last_status_change_time.as_deref())
        .and_then(timestamp);
    ev.site_offset = a.alarm_time_local.as_deref().and_then(utc_offset);
    ev
}

/// The UTC offset a local RFC 3339 time ends with ("+02:00"; `Z` is "+00:00").
fn utc_offset(local: &str) -> Option<String> {
    let t = local.trim();
    if t.ends_with(['Z', 'z']) {
        return Some("+00:00".into());
    }
    let tail = t.get(t.len().checked_sub(6)?..)?;
    let b = tail.as_bytes();
    let digits = [1, 2, 4, 5].iter().all(|i| b[*i].is_ascii_digit());
    (matches!(b[0], b'+' | b'-') && b[3] == b':' && digits && t.len() > 6).then(|| tail.to_string())
}

/// A text field that is present and not blank.
fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A measurement of either version: its key, quantity, value, unit and time (the caller
/// adds what differs: device, sensor and name).
fn measurement_event(
    account_id: &str,
    channel: &str,
    body: &[u8],
    id: ReadingId<'_>,
    value: &Option<Value>,
    unit: &Option<String>,
) -> Event {
    let quantity = id.quantity.clone();
    let measured_at = id.time.as_deref().and_then(timestamp);
    let key = reading_key(account_id, channel, body, id);
    let mut ev = Event::new(
        Source::Saveris,
        account_id,
        channel,
        EventKind::Measurement,
        key,
    );
    ev.quantity = quantity;
    ev.value = value.as_ref().and_then(number);
    ev.unit = unit
        .as_deref()
        .map(crate::units::canonical)
        .filter(|u| !u.is_empty());
    ev.measured_at = measured_at;
    ev
}

/// The fields both measurement versions share.
struct ReadingId<'a> {
    sensor: &'a Option<String>,
    quantity: &'a Option<String>,
    extension: &'a Option<String>,
    time: &'a Option<String>,
    uuid: &'a Option<String>,
}

/// The key of a reading, the same on `measurements` and `measurements-v2`: during the
/// 4 h switch both queues deliver every reading (SAVERIS-API.md §2.6), and nothing says
/// the two share a `uuid` (v1 is fed from Kinesis, v2 from Kafka). What both versions do
/// carry is the sensor, what was measured, and when: one sensor measures one quantity
/// (+ extension, e.g. "Air Temperature") once at a given time. The time is compared as an
/// instant, so "…:00Z" and "…:00.000Z" agree. Without sensor or time: the uuid, else a hash.
fn reading_key(account_id: &str, channel: &str, body: &[u8], id: ReadingId<'_>) -> String {
    let ReadingId {
        sensor,
        quantity,
        extension,
        time,
        uuid,
    } = id;
    let at = time.as_deref().and_then(timestamp);
    match (nonempty(sensor), at) {
        (Some(sensor), Some(at)) => format!(
            "saveris:{account_id}:m:{sensor}:{}:{}:{}",
            nonempty(quantity).unwrap_or(""),
            nonempty(extension).unwrap_or(""),
            at.as_millisecond()
        ),
        _ => match nonempty(uuid) {
            Some(u) => format!("saveris:{account_id}:m:{u}"),
            None => hashed_key(account_id, channel, body),
        },
    }
}

fn readable_name(serial: Option<&str>, what: Option<&str>) -> Option<String> {
    match (serial, what) {
        (Some(s), Some(w)) => Some(format!("{s} {w}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(w)) => Some(w.to_string()),
        (None, None) => None,
    }
}

/// A JSON number or a numeric string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn timestamp(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// Content identity for a body without a uuid: FNV-1a, stable across builds and runs
/// (std's hasher is not), so a redelivery after a restart has the same key.
fn hashed_key(account_id: &str, channel: &str, body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("saveris:{account_id}:{channel}:h:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEAS_ALARM: &str = r#"{"uuid":"a-1","tenant_uuid":"t","alarm_reason":"Alarm condition is violated","alarm_status":"Alarm","last_status_change_time":"2023-08-01T11:20:00Z","alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"2023-08-01T11:20:00Z","alarm_time_local":"2023-08-01T13:20:00+02:00","alarm_value":"25.2","physical_unit":"°C","physical_value":"Temperature","physical_value_extension":"Air Temperature","alarm_source_uuid":"s-1","alarm_type":"measurement alarm","processed_at":"2023-08-01T11:21:25Z","serial_number":"12345678"}"#;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn measurement_alarm_maps_to_alarm_raised() {
        let ev = to_event("acc", "alarms", MEAS_ALARM.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::AlarmRaised);
        assert_eq!(ev.key, "saveris:acc:alarm:a-1:Alarm:2023-08-01T11:20:00Z");
        assert_eq!(ev.severity, Severity::Alarm);
        assert_eq!(ev.alarm_id.as_deref(), Some("s-1:Upper limit"));
        assert_eq!(ev.sensor.as_deref(), Some("s-1"));
        assert_eq!(
            ev.device, None,
            "the serial is the sensor's, not a device's"
        );
        assert_eq!(ev.name.as_deref(), Some("12345678 Air Temperature"));
        assert_eq!(ev.value, Some(25.2));
        assert_eq!(ev.unit.as_deref(), Some("°C"));
        assert_eq!(ev.quantity.as_deref(), Some("Temperature"));
        assert_eq!(ev.condition.as_deref(), Some("Upper limit"));
        assert_eq!(
            ev.measured_at,
            Some("2023-08-01T11:20:00Z".parse().unwrap())
        );
        assert_eq!(ev.received_at, now());
        assert_eq!(ev.raw, MEAS_ALARM);
        assert_eq!(ev.site_offset.as_deref(), Some("+02:00"));
    }

    #[test]
    fn the_local_times_offset_is_read_and_nonsense_is_not() {
        assert_eq!(
            utc_offset("2023-08-01T13:20:00+02:00").as_deref(),
            Some("+02:00")
        );
        assert_eq!(
            utc_offset("2023-08-01T06:20:00-05:00").as_deref(),
            Some("-05:00")
        );
        assert_eq!(
            utc_offset("2023-08-01T11:20:00Z").as_deref(),
            Some("+00:00")
        );
        for bad in [
            "",
            "+02:00",
            "2023-08-01T13:20:00",
            "2023-08-01T13:20:00+0a:00",
            "ü€€€€€",
        ] {
            assert_eq!(utc_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn ok_status_clears_and_has_its_own_key() {
        let body = MEAS_ALARM.replace("\"alarm_status\":\"Alarm\"", "\"alarm_status\":\"Ok\"");
        let ev = to_event("acc", "alarms", body.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::AlarmCleared);
        assert_eq!(ev.severity, Severity::Info);
        assert!(ev.key.contains(":Ok:"));
        assert_eq!(ev.alarm_id.as_deref(), Some("s-1:Upper limit"));
    }

    #[test]
    fn system_alarm_with_unknown_values_and_extra_fields() {
        let body = r#"{"uuid":"b","alarm_status":"Alarm","alarm_type":"device system alarm","alarm_severity":"Catastrophe",
            "alarm_condition_type":"The battery of the device is nearly empty","serial_number":"99","alarm_source_uuid":"dev-1","new_field":{"x":1}}"#;
        let Payload::Alarm(a) = parse(Channel::Alarms, body.as_bytes()).unwrap() else {
            panic!("not an alarm")
        };
        assert_eq!(
            a.alarm_severity,
            Some(AlarmSeverity::Other("Catastrophe".into()))
        );
        assert!(a.extra.contains_key("new_field"));
        let ev = to_event("acc", "alarms", body.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::SystemAlarm);
        assert_eq!(ev.severity, Severity::Warning);
        assert_eq!(
            ev.device.as_deref(),
            Some("dev-1"),
            "a device system alarm's source is a device"
        );
        assert_eq!(ev.sensor, None);
        let cleared = to_event(
            "acc",
            "alarms",
            body.replace("\"Alarm\",\"alarm_type", "\"Ok\",\"alarm_type")
                .as_bytes(),
            now(),
        );
        assert_eq!(cleared.kind, EventKind::AlarmCleared);
    }

    #[test]
    fn measurements_v1_and_v2() {
        let v1 = r#"{"uuid":"m1","device_uuid":"d","sensor_uuid":"s","device_serial_no":"555","physical_property_name":"Temperature","physical_unit":"°C","physical_extension":"Air Temperature","timestamp":"2024-01-01T00:00:00Z","channel_id":1,"measurement":4.5}"#;
        let ev = to_event("acc", "measurements", v1.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::Measurement);
        assert_eq!(
            ev.key,
            "saveris:acc:m:s:Temperature:Air Temperature:1704067200000"
        );
        assert_eq!(ev.value, Some(4.5));
        assert_eq!(ev.sensor.as_deref(), Some("s"));
        assert_eq!(ev.device.as_deref(), Some("555"));
        let v2 = r#"{"uuid":"m2","sensor_uuid":"s2","channel_no":2,"physical_property_name":"Humidity","physical_unit":"%","timestamp":"2024-01-01T00:00:00Z","measurement":"55.5","serial_no":"777","model_code":"x"}"#;
        let ev = to_event("acc", "measurements-v2", v2.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::Measurement);
        assert_eq!(ev.value, Some(55.5));
        assert_eq!(ev.name.as_deref(), Some("777 Humidity"));
        assert_eq!(ev.subscription, "measurements-v2");
        assert_eq!(ev.sensor.as_deref(), Some("s2"));
        assert_eq!(ev.device, None, "v2 serial_no is the sensor's");
    }

    #[test]
    fn garbage_is_unparsed_with_a_stable_key() {
        let a = to_event("acc", "alarms", b"not json{", now());
        let b = to_event("acc", "alarms", b"not json{", now());
        assert_eq!(a.kind, EventKind::Unparsed);
        assert_eq!(a.key, b.key);
        assert_eq!(a.raw, "not json{");
        assert_ne!(a.key, to_event("acc", "alarms", b"[1,2]", now()).key);
        // No field is required and text may come as a number: still an alarm.
        let five = to_event("acc", "alarms", br#"{"uuid":5}"#, now());
        assert_eq!(five.kind, EventKind::AlarmRaised);
        assert!(five.key.starts_with("saveris:acc:alarm:5:"), "{}", five.key);
    }

    #[test]
    fn body_without_uuid_gets_a_hash_key() {
        let ev = to_event("acc", "alarms", br#"{"alarm_status":"Alarm"}"#, now());
        assert_eq!(ev.kind, EventKind::AlarmRaised);
        assert!(ev.key.starts_with("saveris:acc:alarms:h:"), "{}", ev.key);
    }

    #[test]
    fn text_and_numbers_are_read_either_way_and_unknown_texts_kept() {
        let body = r#"{"uuid":"n","alarm_status":"Alarm","alarm_type":"measurement_alarm","alarm_severity":7,
            "serial_number":56000000,"alarm_value":22.5,"alarm_delay":300000,"alarm_source_uuid":null,
            "alarm_condition_type":"Upper limit","physical_value_extension":"Air Temperature"}"#;
        let Payload::Alarm(a) = parse(Channel::Alarms, body.as_bytes()).unwrap() else {
            panic!("not an alarm")
        };
        assert_eq!(a.alarm_type, Some(AlarmType::Measurement));
        assert_eq!(a.alarm_severity, Some(AlarmSeverity::Other("7".into())));
        assert_eq!(a.serial_number.as_deref(), Some("56000000"));
        let ev = to_event("acc", "alarms", body.as_bytes(), now());
        assert_eq!(ev.kind, EventKind::AlarmRaised);
        assert_eq!(ev.value, Some(22.5));
        let v2 = r#"{"sensor_uuid":"s","channel_no":"1","measurement":"3.5","timestamp":"2024-01-01T00:00:00Z","serial_no":777}"#;
        let ev = to_event("acc", "measurements-v2", v2.as_bytes(), now());
        assert_eq!((ev.kind, ev.value), (EventKind::Measurement, Some(3.5)));
    }

    #[test]
    fn alarms_with_an_empty_source_never_share_an_identity() {
        let of = |serial: &str, status: &str| {
            let body = MEAS_ALARM
                .replace(
                    "\"alarm_source_uuid\":\"s-1\"",
                    "\"alarm_source_uuid\":\"\"",
                )
                .replace("12345678", serial)
                .replace(
                    "\"alarm_status\":\"Alarm\"",
                    &format!("\"alarm_status\":\"{status}\""),
                );
            to_event("acc", "alarms", body.as_bytes(), now())
        };
        let (a, b) = (of("111", "Alarm"), of("222", "Alarm"));
        assert_ne!(a.alarm_id, b.alarm_id);
        assert_eq!(
            a.alarm_id.as_deref(),
            Some("serial:111:Air Temperature:Upper limit")
        );
        assert_eq!(a.sensor.as_deref(), Some("serial:111"));
        // The clear of one sensor finds that sensor's raise only.
        assert_eq!(of("111", "Ok").alarm_id, a.alarm_id);
        assert_ne!(of("222", "Ok").alarm_id, a.alarm_id);
    }

    #[test]
    fn one_reading_on_both_measurement_queues_has_one_key() {
        // The same reading as the vendor documents both versions; uuids differ.
        let v1 = r#"{"uuid":"k-1","device_uuid":"d","sensor_uuid":"s-9","channel_id":1913253106,"device_serial_no":"555","sensor_serial_no":"777","timestamp":"2024-05-01T10:00:00Z","measurement":3.25,"physical_property_name":"Temperature","physical_unit":"°C","physical_extension":"Air Temperature"}"#;
        let v2 = r#"{"uuid":"f-2","customer_site":"site-42","sensor_uuid":"s-9","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air Temperature","physical_unit":"°C","timestamp":"2024-05-01T10:00:00.000Z","measurement":3.25,"serial_no":"777","model_code":"0572 0001"}"#;
        let a = to_event("acc", "measurements", v1.as_bytes(), now());
        let b = to_event("acc", "measurements-v2", v2.as_bytes(), now());
        assert_eq!(a.key, b.key);
        assert_eq!(a.sensor, b.sensor);
        assert_eq!(a.name, b.name);
        // Another quantity of the same sensor at the same time is another reading.
        let h = v2.replace(
            "Temperature\",\"physical_extension\":\"Air Temperature",
            "Humidity\",\"physical_extension\":\"",
        );
        assert_ne!(
            to_event("acc", "measurements-v2", h.as_bytes(), now()).key,
            b.key
        );
    }
}
