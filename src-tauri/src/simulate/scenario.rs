//! The demo scenario: a few sites whose sensors drift realistically, and the events that
//! show what the app does — an upper-limit breach that clears, a battery-low system alarm,
//! a sensor that goes silent, ELEMENT readings crossing a demo threshold rule.
//!
//! Deterministic for a seed: the same seed gives the same values in the same order (only
//! the wall-clock timestamps differ). Time is counted in ticks of [`TICK`].

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One step of the scenario.
pub const TICK: Duration = Duration::from_secs(2);

/// A Saveris sensor of the demo.
#[derive(Debug, Clone)]
pub struct SaverisSensor {
    pub uuid: &'static str,
    pub serial: &'static str,
    pub site: &'static str,
    pub quantity: &'static str,
    pub unit: &'static str,
    pub base: f64,
    /// Upper alarm limit configured "in the cloud".
    pub upper: f64,
}

pub const SAVERIS_SENSORS: &[SaverisSensor] = &[
    SaverisSensor {
        uuid: "5d1c0f7e-0001-4c1a-9a11-cold0000temp",
        serial: "61234501",
        site: "Cold room",
        quantity: "Temperature",
        unit: "°C",
        base: 4.0,
        upper: 8.0,
    },
    SaverisSensor {
        uuid: "5d1c0f7e-0002-4c1a-9a11-cold0000humi",
        serial: "61234501",
        site: "Cold room",
        quantity: "Humidity",
        unit: "%RH",
        base: 78.0,
        upper: 95.0,
    },
    SaverisSensor {
        uuid: "5d1c0f7e-0003-4c1a-9a11-labfridgetemp",
        serial: "61234502",
        site: "Lab fridge",
        quantity: "Temperature",
        unit: "°C",
        base: 5.0,
        upper: 8.0,
    },
    SaverisSensor {
        uuid: "5d1c0f7e-0004-4c1a-9a11-serverroomtmp",
        serial: "61234503",
        site: "Server room",
        quantity: "Temperature",
        unit: "°C",
        base: 22.0,
        upper: 27.0,
    },
];

/// ELEMENT devices of the demo: (id, name, tag).
pub const ELEMENT_DEVICES: &[(&str, &str, &str)] = &[
    ("dev-freezer-1", "Warehouse freezer", "tag-warehouse"),
    ("dev-pharmacy-1", "Pharmacy cabinet", "tag-pharmacy"),
];

/// The demo threshold rule watches this device's temperature.
pub const FREEZER: &str = "dev-freezer-1";
pub const FREEZER_LIMIT: f64 = -15.0;

/// Something the scenario sends at a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    /// A Saveris message: channel (`alarms`, `measurements-v2`) and JSON body.
    Saveris { channel: &'static str, body: Value },
    /// An ELEMENT reading of a device.
    Element { device: &'static str, data: Value },
}

/// The scenario's state: sensor values random-walk around their base.
pub struct Scenario {
    rng: StdRng,
    tick: u64,
    values: Vec<f64>,
    freezer: f64,
    pharmacy: f64,
    humidity: f64,
}

/// Ticks at which the scripted events happen (2 s each: breach at 10 s, clear at 40 s…).
pub const BREACH_AT: u64 = 5;
pub const CLEAR_AT: u64 = 20;
pub const BATTERY_AT: u64 = 8;
pub const SILENT_FROM: u64 = 12;
pub const FREEZER_WARM_FROM: u64 = 4;
pub const FREEZER_COLD_FROM: u64 = 16;

impl Scenario {
    pub fn new(seed: u64) -> Self {
        Scenario {
            rng: StdRng::seed_from_u64(seed),
            tick: 0,
            values: SAVERIS_SENSORS.iter().map(|s| s.base).collect(),
            freezer: -19.0,
            pharmacy: 6.0,
            humidity: 42.0,
        }
    }

    /// What happens at the next tick.
    pub fn step(&mut self) -> Vec<Emit> {
        self.tick += 1;
        let t = self.tick;
        let mut out = Vec::new();
        for (i, s) in SAVERIS_SENSORS.iter().enumerate() {
            // Drift: a small random walk pulled back towards the base value.
            let noise: f64 =
                self.rng.random_range(-0.15..0.15) * if s.unit == "%RH" { 4.0 } else { 1.0 };
            let v = self.values[i] + noise + (s.base - self.values[i]) * 0.1;
            self.values[i] = v;
            let shown = if i == 0 && (BREACH_AT..CLEAR_AT).contains(&t) {
                s.upper + 0.6 + noise.abs()
            } else {
                v
            };
            // The lab fridge sensor goes silent (its logger lost power).
            if i == 2 && t >= SILENT_FROM {
                continue;
            }
            out.push(Emit::Saveris {
                channel: "measurements-v2",
                body: measurement_v2(s, shown, t),
            });
        }
        if t == BREACH_AT {
            out.push(Emit::Saveris {
                channel: "alarms",
                body: measurement_alarm(
                    &SAVERIS_SENSORS[0],
                    "Alarm",
                    SAVERIS_SENSORS[0].upper + 0.6,
                    t,
                ),
            });
        }
        if t == CLEAR_AT {
            out.push(Emit::Saveris {
                channel: "alarms",
                body: measurement_alarm(&SAVERIS_SENSORS[0], "Ok", SAVERIS_SENSORS[0].base, t),
            });
        }
        if t == BATTERY_AT {
            out.push(Emit::Saveris {
                channel: "alarms",
                body: battery_alarm(&SAVERIS_SENSORS[3], t),
            });
        }
        // The freezer warms past the demo rule's limit, then cools again.
        let target = if (FREEZER_WARM_FROM..FREEZER_COLD_FROM).contains(&t) {
            -12.0
        } else {
            -19.0
        };
        self.freezer += (target - self.freezer) * 0.5 + self.rng.random_range(-0.2..0.2);
        self.pharmacy += (6.0 - self.pharmacy) * 0.2 + self.rng.random_range(-0.2..0.2);
        // A cabinet's humidity drifts slowly; LoRaWAN climate sensors report whole percent.
        self.humidity += (42.0 - self.humidity) * 0.1 + self.rng.random_range(-0.8..0.8);
        // Shaped like real ELEMENT readings: the parser's bookkeeping numbers (`device_id`,
        // `protocol_version`) and the battery beside the measurements; the server sends the
        // keys in alphabetical order.
        out.push(Emit::Element {
            device: FREEZER,
            data: json!({
                "battery_voltage": 3.61, "device_id": 21670, "protocol_version": 2,
                "temperature": round2(self.freezer),
            }),
        });
        out.push(Emit::Element {
            device: ELEMENT_DEVICES[1].0,
            data: json!({
                "air_humidity": self.humidity.round(), "air_temperature": round2(self.pharmacy),
                "battery_voltage": 3.58, "device_id": 21671, "protocol_version": 2,
            }),
        });
        out
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn now_strings() -> (String, String) {
    let now = jiff::Timestamp::now();
    (
        format!("{now:.3}"),
        now.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%dT%H:%M:%S%.3f")
            .to_string(),
    )
}

pub const TENANT: &str = "7c1e5d2a-demo-4d6b-8c40-0000tenant01";

fn measurement_v2(s: &SaverisSensor, value: f64, tick: u64) -> Value {
    let (ts, local) = now_strings();
    json!({
        "uuid": format!("m2-{}-{tick}", s.uuid),
        "customer_site": s.site,
        "tenant_uuid": TENANT,
        "sensor_uuid": s.uuid,
        "channel_no": if s.unit == "%RH" { 2 } else { 1 },
        "physical_property_name": s.quantity,
        "physical_extension": if s.quantity == "Temperature" { "Air Temperature" } else { "Relative Humidity" },
        "physical_unit": s.unit,
        "timestamp": ts,
        "timestamp_local": local,
        "measurement": round2(value),
        "serial_no": s.serial,
        "model_code": "0572 2035",
        "processed_at": ts,
    })
}

fn measurement_alarm(s: &SaverisSensor, status: &str, value: f64, tick: u64) -> Value {
    let (ts, local) = now_strings();
    let (reason, severity) = if status == "Alarm" {
        ("Alarm condition is violated", "Alarm")
    } else {
        ("The alarm condition does no longer exist", "Alarm")
    };
    json!({
        "uuid": format!("a-{}-{tick}", s.uuid),
        "tenant_uuid": TENANT,
        "alarm_reason": reason,
        "alarm_status": status,
        "last_status_change_time": ts,
        "alarm_time": ts,
        "alarm_time_local": local,
        "processed_at": ts,
        "alarm_condition_type": "Upper limit",
        "alarm_severity": severity,
        "serial_number": s.serial,
        "alarm_source_uuid": s.uuid,
        "alarm_type": "measurement alarm",
        "alarm_delay": "0",
        "alarm_value": format!("{:.2}", value),
        "physical_unit": s.unit,
        "physical_value": s.quantity,
        "physical_value_extension": "Air Temperature",
    })
}

fn battery_alarm(s: &SaverisSensor, tick: u64) -> Value {
    let (ts, local) = now_strings();
    json!({
        "uuid": format!("sys-{}-{tick}", s.serial),
        "tenant_uuid": TENANT,
        "alarm_reason": "Alarm condition is violated",
        "alarm_status": "Alarm",
        "last_status_change_time": ts,
        "alarm_time": ts,
        "alarm_time_local": local,
        "processed_at": ts,
        "alarm_condition_type": "The battery of the device is nearly empty",
        "alarm_severity": "Warning",
        "serial_number": s.serial,
        "alarm_source_uuid": format!("device-{}", s.serial),
        "alarm_type": "device system alarm",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u64, ticks: usize) -> Vec<f64> {
        let mut s = Scenario::new(seed);
        let mut out = Vec::new();
        for _ in 0..ticks {
            for e in s.step() {
                match e {
                    Emit::Saveris { body, .. } => out.extend(body["measurement"].as_f64()),
                    Emit::Element { data, .. } => out.extend(data["temperature"].as_f64()),
                }
            }
        }
        out
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        assert_eq!(values(1, 30), values(1, 30));
        assert_ne!(values(1, 30), values(2, 30));
    }

    #[test]
    fn the_script_raises_clears_and_goes_silent() {
        let mut s = Scenario::new(7);
        let mut alarms = Vec::new();
        let mut freezer_max = f64::MIN;
        let mut lab_fridge_last = 0;
        for t in 1..=30u64 {
            for e in s.step() {
                match e {
                    Emit::Saveris {
                        channel: "alarms",
                        body,
                    } => alarms.push((
                        t,
                        body["alarm_status"].as_str().unwrap().to_string(),
                        body["alarm_type"].as_str().unwrap().to_string(),
                    )),
                    Emit::Saveris { body, .. } => {
                        if body["sensor_uuid"] == SAVERIS_SENSORS[2].uuid {
                            lab_fridge_last = t;
                        }
                    }
                    Emit::Element { device, data } if device == FREEZER => {
                        freezer_max = freezer_max.max(data["temperature"].as_f64().unwrap())
                    }
                    Emit::Element { .. } => {}
                }
            }
        }
        assert!(alarms.contains(&(BREACH_AT, "Alarm".into(), "measurement alarm".into())));
        assert!(alarms.contains(&(CLEAR_AT, "Ok".into(), "measurement alarm".into())));
        assert!(alarms.contains(&(BATTERY_AT, "Alarm".into(), "device system alarm".into())));
        assert!(
            freezer_max > FREEZER_LIMIT,
            "the freezer must cross the demo rule: {freezer_max}"
        );
        assert_eq!(
            lab_fridge_last,
            SILENT_FROM - 1,
            "the lab fridge goes silent"
        );
    }
}
