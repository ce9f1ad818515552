//! One unit type for every feed (issue 20 item 5).
//!
//! Saveris names units two ways: the Data API as an enum (`CELSIUS`, `FAHRENHEIT`), the
//! push API as a symbol (`°C`, `%RH`). ELEMENT sends none; the user sets them per field.
//! All map to [`Unit`]; anything unknown is kept as the text received, so nothing is lost
//! and it still compares with exactly the same text.
//!
//! It sits beside `event.rs` (not in `engine/`) because both the feeds and the engine use
//! it and they may not import each other.

/// A unit of a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unit {
    Celsius,
    Fahrenheit,
    Kelvin,
    /// Relative humidity.
    RelHumidity,
    Percent,
    Volt,
    Millivolt,
    Dbm,
    Decibel,
    Hectopascal,
    Ppm,
    Lux,
    /// Not known to the app: the text as received (trimmed).
    Other(String),
}

/// Units that convert into each other (others compare only with the very same unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    Temperature,
    /// %RH and %: Saveris sends humidity as `%` on some channels and `%RH` on others.
    Fraction,
    Voltage,
}

impl Unit {
    /// The unit a text names, `None` for an empty text.
    pub fn parse(text: &str) -> Option<Unit> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        // Case matters only between milli and mega, which nothing here measures in mega.
        if t == "mV" || t.eq_ignore_ascii_case("millivolt") {
            return Some(Unit::Millivolt);
        }
        let up = t.to_uppercase();
        let squeezed: String = up.chars().filter(|c| !c.is_whitespace()).collect();
        Some(match squeezed.as_str() {
            "°C" | "℃" | "C" | "DEGC" | "CELSIUS" | "DEG_C" => Unit::Celsius,
            "°F" | "℉" | "F" | "DEGF" | "FAHRENHEIT" | "DEG_F" => Unit::Fahrenheit,
            "K" | "KELVIN" => Unit::Kelvin,
            "%RH" | "RH" | "RELATIVE_HUMIDITY" | "RELATIVEHUMIDITY" => Unit::RelHumidity,
            "%" | "PERCENT" => Unit::Percent,
            "V" | "VOLT" | "VOLTS" => Unit::Volt,
            "DBM" => Unit::Dbm,
            "DB" => Unit::Decibel,
            "HPA" | "HECTOPASCAL" | "MBAR" => Unit::Hectopascal,
            "PPM" => Unit::Ppm,
            "LX" | "LUX" => Unit::Lux,
            _ => Unit::Other(t.to_string()),
        })
    }

    /// How the app writes the unit ("°C", "%RH"); an unknown one as received.
    pub fn symbol(&self) -> &str {
        match self {
            Unit::Celsius => "°C",
            Unit::Fahrenheit => "°F",
            Unit::Kelvin => "K",
            Unit::RelHumidity => "%RH",
            Unit::Percent => "%",
            Unit::Volt => "V",
            Unit::Millivolt => "mV",
            Unit::Dbm => "dBm",
            Unit::Decibel => "dB",
            Unit::Hectopascal => "hPa",
            Unit::Ppm => "ppm",
            Unit::Lux => "lx",
            Unit::Other(s) => s,
        }
    }

    fn dimension(&self) -> Option<Dimension> {
        match self {
            Unit::Celsius | Unit::Fahrenheit | Unit::Kelvin => Some(Dimension::Temperature),
            Unit::RelHumidity | Unit::Percent => Some(Dimension::Fraction),
            Unit::Volt | Unit::Millivolt => Some(Dimension::Voltage),
            _ => None,
        }
    }

    /// Whether a value in `self` can be compared with a limit in `other`.
    pub fn compatible(&self, other: &Unit) -> bool {
        self == other || (self.dimension().is_some() && self.dimension() == other.dimension())
    }
}

/// The canonical symbol of a unit text ("CELSIUS" → "°C"); empty stays empty.
pub fn canonical(text: &str) -> String {
    Unit::parse(text).map_or_else(String::new, |u| u.symbol().to_string())
}

/// `value` in `from` expressed in `to`; `None` when the two do not convert.
pub fn convert(value: f64, from: &Unit, to: &Unit) -> Option<f64> {
    if from == to {
        return Some(value);
    }
    // Temperatures go through Kelvin; the others are plain factors.
    let kelvin = |u: &Unit, v: f64| match u {
        Unit::Celsius => Some(v + 273.15),
        Unit::Fahrenheit => Some((v - 32.0) * 5.0 / 9.0 + 273.15),
        Unit::Kelvin => Some(v),
        _ => None,
    };
    let from_kelvin = |u: &Unit, k: f64| match u {
        Unit::Celsius => Some(k - 273.15),
        Unit::Fahrenheit => Some((k - 273.15) * 9.0 / 5.0 + 32.0),
        Unit::Kelvin => Some(k),
        _ => None,
    };
    match (from.dimension()?, to.dimension()?) {
        (Dimension::Temperature, Dimension::Temperature) => {
            // Rounded to 1e-9 so 212 °F reads back as exactly 100 °C, not 99.99999999999997.
            let v = from_kelvin(to, kelvin(from, value)?)?;
            Some((v * 1e9).round() / 1e9)
        }
        (Dimension::Fraction, Dimension::Fraction) => Some(value),
        (Dimension::Voltage, Dimension::Voltage) => Some(match (from, to) {
            (Unit::Millivolt, Unit::Volt) => value / 1000.0,
            _ => value * 1000.0,
        }),
        _ => None,
    }
}

/// A likely unit for an ELEMENT field, from its name alone (`air_temperature` → °C). Only
/// ever shown as a suggestion: the user confirms it (ELEMENT sends no units).
pub fn suggest_for_field(field: &str) -> Option<Unit> {
    let n = field.to_lowercase();
    let has = |w: &str| n.contains(w);
    Some(if has("temp") {
        Unit::Celsius
    } else if has("humid") {
        Unit::RelHumidity
    } else if n.ends_with("_mv") || has("millivolt") {
        Unit::Millivolt
    } else if has("voltage") || has("vdd") || n == "battery" || n.ends_with("_v") {
        Unit::Volt
    } else if has("percent") || has("battery_level") {
        Unit::Percent
    } else if has("rssi") {
        Unit::Dbm
    } else if has("snr") {
        Unit::Decibel
    } else if has("pressure") {
        Unit::Hectopascal
    } else if has("co2") || has("voc") {
        Unit::Ppm
    } else if has("lux") || has("illuminance") || has("light") {
        Unit::Lux
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saveris_and_push_spellings_map_to_one_unit() {
        for (text, unit) in [
            ("CELSIUS", Unit::Celsius),
            ("°C", Unit::Celsius),
            (" celsius ", Unit::Celsius),
            ("FAHRENHEIT", Unit::Fahrenheit),
            ("°F", Unit::Fahrenheit),
            ("K", Unit::Kelvin),
            ("%RH", Unit::RelHumidity),
            ("% rH", Unit::RelHumidity),
            ("%", Unit::Percent),
            ("mV", Unit::Millivolt),
            ("V", Unit::Volt),
            ("dBm", Unit::Dbm),
        ] {
            assert_eq!(Unit::parse(text), Some(unit), "{text}");
        }
        assert_eq!(Unit::parse("  "), None);
        assert_eq!(Unit::parse("m³/h"), Some(Unit::Other("m³/h".into())));
        assert_eq!(canonical("CELSIUS"), "°C");
        assert_eq!(canonical("m³/h"), "m³/h");
        assert_eq!(canonical(""), "");
    }

    /// (°C, °F, K) triples that must convert into each other both ways.
    const TABLE: &[(f64, f64, f64)] = &[
        (0.0, 32.0, 273.15),
        (100.0, 212.0, 373.15),
        (-40.0, -40.0, 233.15),
        (37.0, 98.6, 310.15),
        (8.0, 46.4, 281.15),
        (-18.0, -0.4, 255.15),
        (-273.15, -459.67, 0.0),
        (-80.0, -112.0, 193.15),
        (1000.0, 1832.0, 1273.15),
    ];

    #[test]
    fn temperature_conversion_table_both_ways() {
        let (c, f, k) = (Unit::Celsius, Unit::Fahrenheit, Unit::Kelvin);
        let close = |a: Option<f64>, b: f64, what: &str| {
            let a = a.unwrap_or(f64::NAN);
            assert!((a - b).abs() < 1e-9, "{what}: got {a}, want {b}");
        };
        for &(vc, vf, vk) in TABLE {
            close(convert(vc, &c, &f), vf, &format!("{vc} °C → °F"));
            close(convert(vf, &f, &c), vc, &format!("{vf} °F → °C"));
            close(convert(vc, &c, &k), vk, &format!("{vc} °C → K"));
            close(convert(vk, &k, &c), vc, &format!("{vk} K → °C"));
            close(convert(vf, &f, &k), vk, &format!("{vf} °F → K"));
            close(convert(vk, &k, &f), vf, &format!("{vk} K → °F"));
            close(convert(vc, &c, &c), vc, "same unit");
        }
        // Round numbers read back exactly, not 99.99999999999997.
        assert_eq!(convert(212.0, &f, &c), Some(100.0));
        assert_eq!(convert(46.4, &f, &c), Some(8.0));
    }

    #[test]
    fn other_units_compare_only_with_themselves() {
        assert_eq!(
            convert(55.0, &Unit::Percent, &Unit::RelHumidity),
            Some(55.0)
        );
        assert_eq!(convert(3.6, &Unit::Volt, &Unit::Millivolt), Some(3600.0));
        assert_eq!(convert(3600.0, &Unit::Millivolt, &Unit::Volt), Some(3.6));
        assert_eq!(convert(20.0, &Unit::Celsius, &Unit::RelHumidity), None);
        assert_eq!(convert(20.0, &Unit::Volt, &Unit::Celsius), None);
        assert_eq!(convert(-70.0, &Unit::Dbm, &Unit::Decibel), None);
        let odd = Unit::Other("m³/h".into());
        assert_eq!(convert(2.0, &odd, &odd), Some(2.0));
        assert_eq!(convert(2.0, &odd, &Unit::Other("l/min".into())), None);
        assert!(Unit::Celsius.compatible(&Unit::Kelvin));
        assert!(!Unit::Celsius.compatible(&Unit::Percent));
    }

    #[test]
    fn field_names_suggest_units() {
        for (field, unit) in [
            ("air_temperature", Some(Unit::Celsius)),
            ("Temperature", Some(Unit::Celsius)),
            ("air_humidity", Some(Unit::RelHumidity)),
            ("battery_voltage", Some(Unit::Volt)),
            ("battery_mv", Some(Unit::Millivolt)),
            ("rssi", Some(Unit::Dbm)),
            ("co2", Some(Unit::Ppm)),
            ("door_open", None),
        ] {
            assert_eq!(suggest_for_field(field), unit, "{field}");
        }
    }
}
