//! Popup texts, in the user's locale (decimal separator, local time). Plain text: the
//! notifier escapes it.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::model::AlarmRow;
use crate::event::{FeedState, FeedStatus, Severity};
use crate::text::{tr, vendor, Lang};

/// How numbers and times are written for the user.
#[derive(Debug, Clone)]
pub struct Locale {
    pub decimal_comma: bool,
    pub tz: TimeZone,
    /// The language of the words (issue 25).
    pub lang: Lang,
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
            lang: Lang::from_env(),
        }
    }

    /// From the settings' `language` ("auto" = the desktop's, as [`Locale::from_env`]); a
    /// language chosen in the settings brings its own decimal separator.
    pub fn for_setting(language: &str, tz: TimeZone) -> Self {
        match language.trim() {
            "" | "auto" => Locale::from_env(tz),
            _ => {
                let lang = Lang::resolve(language);
                Locale {
                    decimal_comma: lang.decimal_comma(),
                    tz,
                    lang,
                }
            }
        }
    }

    pub fn plain(tz: TimeZone) -> Self {
        Locale {
            decimal_comma: false,
            tz,
            lang: Lang::En,
        }
    }

    /// The message `id` in this locale's language.
    pub fn tr(&self, id: &str, args: &[(&str, fluent_bundle::FluentValue)]) -> String {
        tr(self.lang, id, args)
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
        lang: loc.lang,
    };
    Some(loc.tr(
        "popup-site-time",
        &[
            ("time", site_loc.time(at_ms, now_ms).into()),
            ("zone", name.into()),
        ],
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

fn severity_word(s: Severity, loc: &Locale) -> String {
    loc.tr(
        match s {
            Severity::Alarm => "severity-alarm",
            Severity::Warning => "severity-warning",
            Severity::Info => "severity-info",
        },
        &[],
    )
}

/// The system alarm conditions Saveris sends, in the app's words.
fn system_wording(condition: &str, loc: &Locale) -> Option<String> {
    let c = condition.to_ascii_lowercase();
    let id = if c.contains("battery") {
        "system-battery"
    } else if c.contains("power") {
        "system-power"
    } else if c.contains("connection timeout") || c.contains("communicat") {
        "system-timeout"
    } else if c.contains("broken") {
        "system-broken"
    } else if c.contains("calibration") {
        "system-calibration"
    } else {
        return None;
    };
    Some(loc.tr(id, &[]))
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
    let since = loc.tr(
        "popup-since",
        &[("time", loc.time(row.raised_ms, now_ms).into())],
    );
    let value = row.value.map(|v| match &row.unit {
        Some(u) if !u.is_empty() => format!("{} {u}", loc.number(v)),
        _ => loc.number(v),
    });
    let raw_condition = row.condition.as_deref().unwrap_or("");
    // The vendor's condition text in the user's language when known, else as received.
    let condition = vendor(loc.lang, raw_condition);
    let condition = condition.as_str();
    let severity = severity_word(row.severity, loc);
    if rule {
        let limit = row.limit.as_deref().unwrap_or("");
        return match value {
            Some(v) => (
                loc.tr(
                    "popup-rule-summary",
                    &[
                        ("severity", severity.into()),
                        ("name", display.into()),
                        ("value", v.clone().into()),
                    ],
                ),
                format!(
                    "{}\n{since}",
                    loc.tr(
                        "popup-rule-body",
                        &[
                            ("value", v.into()),
                            ("limit", limit.into()),
                            ("rule", raw_condition.into()),
                        ],
                    )
                ),
            ),
            None => (
                loc.tr(
                    "popup-rule-novalue-summary",
                    &[("name", display.into()), ("limit", limit.into())],
                ),
                format!(
                    "{}\n{since}",
                    loc.tr("popup-rule-novalue-body", &[("rule", raw_condition.into())])
                ),
            ),
        };
    }
    if let Some(words) = system_wording(raw_condition, loc) {
        return (
            loc.tr(
                "popup-system-summary",
                &[("name", display.into()), ("words", words.into())],
            ),
            format!(
                "{}\n{since}",
                loc.tr(
                    "popup-system-body",
                    &[
                        ("severity", severity.into()),
                        ("condition", raw_condition.into()),
                    ],
                )
            ),
        );
    }
    let mut body = String::new();
    // The equipment's configured limit (Saveris Data API, issue 20): "9.5 °C, upper limit
    // 8.0 °C", the condition already being in the summary.
    if let (Some(v), Some(limit)) = (&value, row.limit.as_deref().filter(|l| !l.is_empty())) {
        let word = if condition.is_empty() {
            loc.tr("popup-limit", &[])
        } else {
            condition.to_string()
        };
        return (
            loc.tr(
                "popup-summary-condition",
                &[
                    ("severity", severity.into()),
                    ("name", display.into()),
                    ("condition", word.into()),
                ],
            ),
            format!("{v}, {limit}\n{since}"),
        );
    }
    if let Some(v) = &value {
        body.push_str(v);
        body.push_str(" \u{b7} ");
    }
    if condition.is_empty() {
        body.push_str(&loc.tr("popup-condition-violated", &[]));
    } else {
        body.push_str(condition);
    }
    body.push('\n');
    body.push_str(&since);
    let summary = if condition.is_empty() {
        loc.tr(
            "popup-summary",
            &[("severity", severity.into()), ("name", display.into())],
        )
    } else {
        loc.tr(
            "popup-summary-condition",
            &[
                ("severity", severity.into()),
                ("name", display.into()),
                ("condition", condition.into()),
            ],
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
    let condition = vendor(loc.lang, row.condition.as_deref().unwrap_or(""));
    let severity = severity_word(row.severity, loc);
    let summary = if condition.is_empty() {
        loc.tr(
            "popup-worse",
            &[("name", display.into()), ("severity", severity.into())],
        )
    } else {
        loc.tr(
            "popup-worse-condition",
            &[
                ("name", display.into()),
                ("condition", condition.into()),
                ("severity", severity.into()),
            ],
        )
    };
    let mut steps: Vec<String> = row
        .steps
        .iter()
        .map(|s| {
            loc.tr(
                "popup-step",
                &[
                    ("severity", severity_word(s.severity, loc).into()),
                    ("time", loc.time(s.at_ms, now_ms).into()),
                ],
            )
        })
        .collect();
    if steps.len() < 2 {
        // Steps were not kept (an alarm from an older history): say where it came from.
        steps = vec![loc.tr(
            "popup-was",
            &[("severity", severity_word(from, loc).into())],
        )];
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
    loc: &Locale,
) -> (String, String) {
    let alarms = loc.tr("group-alarms", &[("count", total.into())]);
    let on = loc.tr("group-sensors", &[("count", sensors.into())]);
    // `context` is a message id ("group-while-disconnected"), not a sentence.
    let summary = loc.tr(
        context.unwrap_or("group-summary"),
        &[("alarms", alarms.into()), ("sensors", on.into())],
    );
    let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    let mut body = shown.join(", ");
    if names.len() > shown.len() {
        body = loc.tr(
            "group-more",
            &[
                ("names", body.into()),
                ("count", (names.len() - shown.len()).into()),
            ],
        );
    }
    (summary, body)
}

/// "Alarms are not watched: the keyring cannot be read" and, per waiting feed, its label,
/// then the reason once (issue 24).
pub fn keyring_waiting_text(waiting: &[&FeedStatus], loc: &Locale) -> (String, String) {
    let summary = loc.tr("keyring-summary", &[]);
    let mut body = String::new();
    if let Some(FeedState::WaitingForKeyring { message }) = waiting.first().map(|s| &s.state) {
        body.push_str(message);
    }
    for s in waiting.iter().take(5) {
        body.push('\n');
        body.push_str(&loc.tr("keyring-not-watched", &[("feed", s.label.as_str().into())]));
    }
    if waiting.len() > 5 {
        body.push('\n');
        body.push_str(&loc.tr("keyring-more", &[("count", (waiting.len() - 5).into())]));
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
    let summary = loc.tr(
        "silence-summary",
        &[
            ("feed", status.label.as_str().into()),
            ("time", loc.time(since_ms, now_ms).into()),
        ],
    );
    let mut body = loc.tr("silence-now", &[("state", status.state.describe().into())]);
    if let Some(t) = status.last_message_at {
        body.push('\n');
        body.push_str(&loc.tr(
            "silence-last",
            &[("time", loc.time(t.as_millisecond(), now_ms).into())],
        ));
    }
    (summary, body)
}

/// "Saveris eu/production (alice) keeps dropping the connection (12 times in 5 min) —
/// alarms may be delayed".
pub fn feed_unstable_text(
    status: &FeedStatus,
    drops: usize,
    mins: i64,
    loc: &Locale,
) -> (String, String) {
    let summary = loc.tr(
        "unstable-summary",
        &[
            ("feed", status.label.as_str().into()),
            ("drops", drops.into()),
            ("mins", mins.into()),
        ],
    );
    let body = format!(
        "{}\n{}",
        loc.tr("silence-now", &[("state", status.state.describe().into())]),
        loc.tr("unstable-body", &[])
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
            lang: Lang::En,
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
    fn german_and_french_popups_use_saveris_terms_and_the_decimal_comma() {
        let de = Locale::for_setting("de", TimeZone::UTC);
        let (s, b) = alarm_text(&row(), "Kühlschrank 1", false, &de, 1_700_000_000_000);
        assert_eq!(s, "Alarm: Kühlschrank 1 \u{2014} Oberer Grenzwert");
        assert_eq!(b, "22,02 °C \u{b7} Oberer Grenzwert\nseit 22:13");
        let fr = Locale::for_setting("fr", TimeZone::UTC);
        let mut r = row();
        r.severity = Severity::Warning;
        r.condition = Some("Lower limit".into());
        let (s, b) = alarm_text(&r, "Frigo 1", false, &fr, 1_700_000_000_000);
        assert_eq!(s, "Avertissement : Frigo 1 \u{2014} Limite inférieure");
        assert_eq!(b, "22,02 °C \u{b7} Limite inférieure\ndepuis 22:13");
        let names: Vec<String> = (1..=7).map(|i| format!("S{i}")).collect();
        let (s, b) = summary_text(17, 1, &names, Some("group-while-disconnected"), &de);
        assert_eq!(
            s,
            "17 Alarme an 1 Fühler während der Verbindungsunterbrechung"
        );
        assert_eq!(b, "S1, S2, S3, S4, S5 und 2 weitere");
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
        let (s, b) = summary_text(17, 5, &names, None, &Locale::plain(TimeZone::UTC));
        assert_eq!(s, "17 alarms on 5 sensors");
        assert_eq!(b, "S1, S2, S3, S4, S5 and 2 more");
    }
}
