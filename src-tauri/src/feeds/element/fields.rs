//! Which numbers of a reading's `data` are measurements, and which one is its "main value".
//!
//! Real ELEMENT readings send `data` with its keys in alphabetical order, and parsers put
//! bookkeeping numbers beside the measurements (`device_id: 21670`, `protocol_version: 2`).
//! So neither "the first number" nor "every number" is a measurement:
//! - numbers named like ids, versions or frame counters ([`is_measurement`]) are not
//!   offered as fields (they stay in the stored body);
//! - where one value must stand for the reading (the event's `quantity`/`value`, a rule
//!   without a field, the first card of a device), the **main value** is chosen by name:
//!   temperature-like first (`temperature`, `air_temperature`, `temp_c`…), then any other
//!   measurement, then battery and radio figures (`battery_voltage`, `rssi`, `snr`) last;
//!   ties keep the order sent. The user can name another field per device (sensor
//!   preferences), which the rules and the dashboard apply.

/// Names that are never measurements, whatever their value.
const NOT_MEASUREMENTS: &[&str] = &[
    "id",
    "device_id",
    "protocol_version",
    "version",
    "fw_version",
    "firmware_version",
    "hw_version",
    "fcnt",
    "f_cnt",
    "frame_count",
    "frame_counter",
    "frame_port",
    "fport",
    "port",
    "seq",
    "seq_no",
    "sequence",
    "sequence_number",
    "message_counter",
    "msg_count",
    "packet_counter",
    "type",
    "msg_type",
    "message_type",
];

/// Whether a numeric `data` field is a measurement worth offering (rules, cards).
pub fn is_measurement(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if NOT_MEASUREMENTS.contains(&n.as_str()) {
        return false;
    }
    !(n.ends_with("_id")
        || n.ends_with("_version")
        || n.ends_with("_seq")
        || n.ends_with("_fcnt")
        || n.starts_with("id_"))
}

/// How strongly a field name claims to be the main value (lower wins).
fn rank(name: &str) -> u8 {
    let n = name.to_ascii_lowercase();
    if n.contains("temp") {
        0
    } else if ["batt", "voltage", "rssi", "snr", "vdd"]
        .iter()
        .any(|w| n.contains(w))
    {
        2
    } else {
        1
    }
}

/// The index of the main value among `fields` (already measurements only), if any.
pub fn main_index(fields: &[(String, f64)]) -> Option<usize> {
    fields
        .iter()
        .enumerate()
        .min_by_key(|(i, (k, _))| (rank(k), *i))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(names: &[&str]) -> Vec<(String, f64)> {
        names.iter().map(|n| (n.to_string(), 1.0)).collect()
    }

    #[test]
    fn bookkeeping_numbers_are_not_measurements() {
        for n in [
            "device_id",
            "protocol_version",
            "Device_ID",
            "packet_id",
            "fcnt",
        ] {
            assert!(!is_measurement(n), "{n}");
        }
        for n in [
            "air_temperature",
            "battery_voltage",
            "people_count",
            "co2",
            "idle",
        ] {
            assert!(is_measurement(n), "{n}");
        }
    }

    #[test]
    fn temperature_first_battery_last_else_the_order_sent() {
        let sorted = f(&["air_humidity", "air_temperature", "battery_voltage"]);
        assert_eq!(main_index(&sorted), Some(1));
        assert_eq!(main_index(&f(&["battery", "humidity"])), Some(1));
        assert_eq!(main_index(&f(&["battery", "rssi"])), Some(0));
        assert_eq!(main_index(&f(&["co2", "humidity"])), Some(0));
        assert_eq!(main_index(&[]), None);
    }
}
