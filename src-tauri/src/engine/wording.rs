//! Popup texts, in the user's locale (decimal separator, local time). Plain text: the
//! notifier escapes it.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::model::AlarmRow;
use crate::event::{FeedState, FeedStatus, Severity};

/// How numbers and times are written for the user.
#[derive(Debug, Clone)]
pub struct Locale {
    pub decimal_comma: bool,
    pub tz: TimeZone,
}

impl Locale {
    /// From `LC_ALL` / `LC_NUMERIC` / `LANG` (the first one set).
    pub fn from_env(tz: TimeZone) -> Self {
        let lang = ["LC_ALL", "LC_NUMERIC", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        let code = lang
            .split(['_', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        // Languages that write 3,5 rather than 3.5.
        const COMMA: &[&str] = &[
            "de", "fr", "es", "it", "nl", "pt", "ru", "pl", "cs", "sk", "sv", "da", "nb", "nn",
            "no", "fi", "tr", "el", "hu", "ro", "bg", "hr", "sl", "sr", "uk", "id", "vi", "lt",
            "lv", "et", "ca", "eu", "gl",
        ];
        Locale {
            decimal_comma: COMMA.contains(&code.as_str()),
            tz,
        }
    }

    pub fn plain(tz: TimeZone) -> Self {
        Locale {
            decimal_comma: false,
            tz,
        }
    }

    /// Up to two decimals, trailing zeros dropped: 22.015625 → "22.02", 8 → "8".
    pub fn number(&self, v: f64) -> String {
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        let s = if s == "-0" { "0" } else { s };
        if self.decimal_comma {
            s.replace('.', ",")
        } else {
            s.to_string()
        }
    }

    /// "14:02" today, "2024-05-03 14:02" on another day.
    pub fn time(&self, at_ms: i64, now_ms: i64) -> String {
        let (Ok(at), Ok(now)) = (
            Timestamp::from_millisecond(at_ms),
            Timestamp::from_millisecond(now_ms),
        ) else {
            return String::from("?");
        };
        let at = at.to_zoned(self.tz.clone());
        let now = now.to_zoned(self.tz.clone());
        if at.date() == now.date() {
            at.strftime("%H:%M").to_string()
        } else {
            at.strftime("%Y-%m-%d %H:%M").to_string()
        }
    }
}

/// The time at the site, when the site's zone (IANA name, e.g. a tenant's `main_timezone`,
/// or a fixed offset "+02:00" from a payload's `alarm_time_local`) reads differently from
/// the desktop's at that instant: "08:02 site time (America/Chicago)", "13:20 site time
/// (UTC+02:00)". `None` when the zones agree or the name is unknown (issue 20).
pub fn site_time(at_ms: i64, site_zone: &str, loc: &Locale, now_ms: i64) -> Option<String> {
    let name = site_zone.trim();
    if name.is_empty() {
        return None;
    }
    let (site, name) = match fixed_offset(name) {
        Some(tz) => (tz, format!("UTC{name}")),
        None => (TimeZone::get(name).ok()?, name.to_string()),
    };
    let at = Timestamp::from_millisecond(at_ms).ok()?;
    if site.to_offset(at) == loc.tz.to_offset(at) {
        return None;
    }
    let site_loc = Locale {
        decimal_comma: loc.decimal_comma,
        tz: site,
    };
    Some(format!(
        "{} site time ({name})",
        site_loc.time(at_ms, now_ms)
    ))
}

/// "+02:00" / "-05:30" as a fixed zone.
fn fixed_offset(text: &str) -> Option<TimeZone> {
    let b = text.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = text.get(1..)?.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=18).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    let offset = jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?;
    Some(TimeZone::fixed(offset))
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Alarm => "Alarm",
        Severity::Warning => "Warning",
        Severity::Info => "Notice",
    }
}

/// The system alarm conditions Saveris sends, in the app's words.
fn system_wording(condition: &str) -> Option<&'static str> {
    let c = condition.to_ascii_lowercase();
    Some(if c.contains("battery") {
        "battery nearly empty"
    } else if c.contains("power") {
        "external power lost"
    } else if c.contains("connection timeout") || c.contains("communicat") {
        "not reporting (connection timeout)"
    } else if c.contains("broken") {
        "sensor broken"
    } else if c.contains("calibration") {
        "calibration overdue"
    } else {
        return None;
    })
}

/// Summary and body of an alarm's popup. `display` is the sensor's name as the user sees it;
/// `rule` is set for alarms raised by a threshold rule.
pub fn alarm_text(
    row: &AlarmRow,
    display: &str,
    rule: bool,
    loc: &Locale,
    now_ms: i64,
) -> (String, String) {
    let since = loc.time(row.raised_ms, now_ms);
    let value = row.value.map(|v| match &row.unit {
        Some(u) if !u.is_empty() => format!("{} {u}", loc.number(v)),
        _ => loc.number(v),
    });
    let condition = row.condition.as_deref().unwrap_or("");
    if rule {
        let limit = row.limit.as_deref().unwrap_or("");
        return match value {
            Some(v) => (
                format!("{}: {display} {v}", severity_word(row.severity)),
                format!("{v}, {limit} (rule \u{201c}{condition}\u{201d})\nsince {since}"),
            ),
            None => (
                format!("{display}: {limit}"),
                format!("No value received (rule \u{201c}{condition}\u{201d})\nsince {since}"),
            ),
        };
    }
    if let Some(words) = system_wording(condition) {
        return (
            format!("{display}: {words}"),
            format!(
                "{} system alarm: {condition}\nsince {since}",
                severity_word(row.severity)
            ),
        );
    }
    let mut body = String::new();
    // The equipment's configured limit (Saveris Data API, issue 20): "9.5 °C, upper limit
    // 8.0 °C", the condition already being in the summary.
    if let (Some(v), Some(limit)) = (&value, row.limit.as_deref().filter(|l| !l.is_empty())) {
        return (
            format!(
                "{}: {display} \u{2014} {}",
                severity_word(row.severity),
                if condition.is_empty() {
                    "limit"
                } else {
                    condition
                }
            ),
            format!("{v}, {limit}\nsince {since}"),
        );
    }
    if let Some(v) = &value {
        body.push_str(v);
        body.push_str(" \u{b7} ");
    }
    body.push_str(if condition.is_empty() {
        "alarm condition violated"
    } else {
        condition
    });
    body.push_str(&format!("\nsince {since}"));
    let summary = if condition.is_empty() {
        format!("{}: {display}", severity_word(row.severity))
    } else {
        format!(
            "{}: {display} \u{2014} {condition}",
            severity_word(row.severity)
        )
    };
    (summary, body)
}

/// The popup of an alarm that got worse: "Fridge 1 got worse: now Alarm", the usual body,
/// and when each severity began ("Warning since 14:02, Alarm since 14:10").
pub fn worse_text(
    row: &AlarmRow,
    display: &str,
    from: Severity,
    loc: &Locale,
    now_ms: i64,
) -> (String, String) {
    let (_, body) = alarm_text(row, display, false, loc, now_ms);
    let condition = row.condition.as_deref().unwrap_or("");
    let summary = if condition.is_empty() {
        format!("{display} got worse: now {}", severity_word(row.severity))
    } else {
        format!(
            "{display} \u{2014} {condition} got worse: now {}",
            severity_word(row.severity)
        )
    };
    let mut steps: Vec<String> = row
        .steps
        .iter()
        .map(|s| {
            format!(
                "{} since {}",
                severity_word(s.severity),
                loc.time(s.at_ms, now_ms)
            )
        })
        .collect();
    if steps.len() < 2 {
        // Steps were not kept (an alarm from an older history): say where it came from.
        steps = vec![format!("was {}", severity_word(from))];
    }
    let first_line = body.lines().next().unwrap_or("");
    (summary, format!("{first_line}\n{}", steps.join(", ")))
}

/// "17 alarms on 5 sensors" and a body naming the first few; `context` ends the summary
/// ("while disconnected").
pub fn summary_text(
    total: u32,
    sensors: u32,
    names: &[String],
    context: Option<&str>,
) -> (String, String) {
    let alarms = if total == 1 {
        "1 alarm".to_string()
    } else {
        format!("{total} alarms")
    };
    let on = if sensors == 1 {
        "1 sensor".to_string()
    } else {
        format!("{sensors} sensors")
    };
    let summary = match context {
        Some(c) => format!("{alarms} on {on} {c}"),
        None => format!("{alarms} on {on}"),
    };
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let mut body = shown.join(", ");
    if names.len() > shown.len() {
        body.push_str(&format!(" and {} more", names.len() - shown.len()));
    }
    (summary, body)
}

/// "Alarms are not watched: the keyring cannot be read" and, per waiting feed, its label,
/// then the reason once (issue 24).
pub fn keyring_waiting_text(waiting: &[&FeedStatus]) -> (String, String) {
    let summary = "Alarms are not watched: the keyring cannot be read".to_string();
    let mut body = String::new();
    if let Some(FeedState::WaitingForKeyring { message }) = waiting.first().map(|s| &s.state) {
        body.push_str(message);
    }
    for s in waiting.iter().take(5) {
        body.push_str(&format!("\nNot watched: {}", s.label));
    }
    if waiting.len() > 5 {
        body.push_str(&format!("\n… and {} more", waiting.len() - 5));
    }
    (summary, body)
}

/// "Saveris eu/production (alice): not connected since 14:02 — alarms may be missed".
pub fn feed_silence_text(
    status: &FeedStatus,
    since_ms: i64,
    loc: &Locale,
    now_ms: i64,
) -> (String, String) {
    let summary = format!(
        "{}: not connected since {} \u{2014} alarms may be missed",
        status.label,
        loc.time(since_ms, now_ms)
    );
    let mut body = format!("Now: {}", status.state.describe());
    if let Some(t) = status.last_message_at {
        body.push_str(&format!(
            "\nLast message at {}",
            loc.time(t.as_millisecond(), now_ms)
        ));
    }
    (summary, body)
}

/// "Saveris eu/production (alice) keeps dropping the connection (12 times in 5 min) —
/// alarms may be delayed".
pub fn feed_unstable_text(status: &FeedStatus, drops: usize, mins: i64) -> (String, String) {
    let summary = format!(
        "{} keeps dropping the connection ({drops} times in {mins} min) \u{2014} alarms may be delayed",
        status.label
    );
    let body = format!(
        "Now: {}\nIt reconnects each time, but alarms can arrive late while the link is unstable.",
        status.state.describe()
    );
    (summary, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AlarmRow {
        AlarmRow {
            id: 1,
            source: crate::event::Source::Saveris,
            account: "a".into(),
            device: None,
            sensor: Some("s".into()),
            name: Some("Fridge 1".into()),
            condition: Some("Upper limit".into()),
            severity: Severity::Alarm,
            value: Some(22.015625),
            unit: Some("°C".into()),
            limit: None,
            raised_ms: 1_700_000_000_000,
            cleared_ms: None,
            acknowledged_ms: None,
            acknowledged_by: None,
            acknowledged_user: None,
            acknowledged_comment: None,
            steps: Vec::new(),
        }
    }

    #[test]
    fn measurement_alarm_reads_well_in_two_locales() {
        let en = Locale::plain(TimeZone::UTC);
        let (s, b) = alarm_text(&row(), "Fridge 1", false, &en, 1_700_000_000_000);
        assert_eq!(s, "Alarm: Fridge 1 \u{2014} Upper limit");
        assert_eq!(b, "22.02 °C \u{b7} Upper limit\nsince 22:13");
        let de = Locale {
            decimal_comma: true,
            tz: TimeZone::UTC,
        };
        let (_, b) = alarm_text(
            &row(),
            "Fridge 1",
            false,
            &de,
            1_700_000_000_000 + 86_400_000,
        );
        assert_eq!(b, "22,02 °C \u{b7} Upper limit\nsince 2023-11-14 22:13");
    }

    #[test]
    fn system_alarms_have_their_own_wording() {
        let mut r = row();
        r.condition = Some("The battery of the device is nearly empty".into());
        r.value = None;
        let (s, _) = alarm_text(
            &r,
            "Logger 7",
            false,
            &Locale::plain(TimeZone::UTC),
            r.raised_ms,
        );
        assert_eq!(s, "Logger 7: battery nearly empty");
        r.condition =
            Some("Connection timeout, device did not communicated in expected time".into());
        let (s, _) = alarm_text(
            &r,
            "Logger 7",
            false,
            &Locale::plain(TimeZone::UTC),
            r.raised_ms,
        );
        assert_eq!(s, "Logger 7: not reporting (connection timeout)");
    }

    #[test]
    fn site_time_is_shown_only_where_the_zone_differs() {
        // 2024-05-01 12:00 UTC: 14:00 in Berlin, 07:00 in Chicago.
        let at = 1_714_564_800_000;
        let berlin = Locale::plain(TimeZone::get("Europe/Berlin").unwrap());
        assert_eq!(
            site_time(at, "America/Chicago", &berlin, at).as_deref(),
            Some("07:00 site time (America/Chicago)")
        );
        assert_eq!(berlin.time(at, at), "14:00");
        // Same offset (Paris = Berlin), no zone, or an unknown name: nothing extra.
        assert_eq!(site_time(at, "Europe/Paris", &berlin, at), None);
        assert_eq!(site_time(at, "", &berlin, at), None);
        assert_eq!(site_time(at, "Mars/Olympus", &berlin, at), None);
        // A payload's fixed offset: shown as UTC±hh:mm, and not when it matches the desktop.
        assert_eq!(
            site_time(at, "-05:00", &berlin, at).as_deref(),
            Some("07:00 site time (UTC-05:00)")
        );
        assert_eq!(site_time(at, "+02:00", &berlin, at), None);
        assert_eq!(site_time(at, "+99:00", &berlin, at), None);
        // Another day at the site shows its date.
        let tokyo = site_time(at + 11 * 3_600_000, "Asia/Tokyo", &berlin, at);
        assert_eq!(
            tokyo.as_deref(),
            Some("2024-05-02 08:00 site time (Asia/Tokyo)")
        );
    }

    #[test]
    fn rule_alarm_and_summary() {
        let mut r = row();
        r.condition = Some("fridge".into());
        r.limit = Some("above 8".into());
        r.value = Some(9.5);
        let (s, b) = alarm_text(
            &r,
            "Fridge 1",
            true,
            &Locale::plain(TimeZone::UTC),
            r.raised_ms,
        );
        assert_eq!(s, "Alarm: Fridge 1 9.5 °C");
        assert!(
            b.starts_with("9.5 °C, above 8 (rule \u{201c}fridge\u{201d})"),
            "{b}"
        );
        let names: Vec<String> = (1..=7).map(|i| format!("S{i}")).collect();
        let (s, b) = summary_text(17, 5, &names, None);
        assert_eq!(s, "17 alarms on 5 sensors");
        assert_eq!(b, "S1, S2, S3, S4, S5 and 2 more");
    }
}
