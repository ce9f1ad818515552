//! The report as CSV: one header, then a row per sensor, per limit and per alarm (the
//! `section` column tells them apart), after two rows for the cover. Times are ISO 8601
//! with the site's offset; numbers are plain (no thousands separators), so a spreadsheet
//! reads them in any locale.

use std::io::Write;

use super::{duration_text, Report};

pub const HEADER: &[&str] = &[
    "section",
    "sensor",
    "name",
    "quantity",
    "unit",
    "readings",
    "min",
    "max",
    "mean",
    "mkt",
    "rule",
    "low",
    "high",
    "outside_min",
    "alarm_id",
    "condition",
    "severity",
    "raised",
    "cleared",
    "duration_min",
    "acknowledged_at",
    "acknowledged_by",
    "comment",
    "text",
];

/// One field, quoted when it holds a comma, quote or line break (RFC 4180). A leading
/// `=`, `+`, `-` or `@` of a text field is prefixed with `'` so a spreadsheet never runs
/// text from the network as a formula.
pub fn field(s: &str) -> String {
    let s = match s.chars().next() {
        Some('=' | '+' | '-' | '@') if s.parse::<f64>().is_err() => format!("'{s}"),
        _ => s.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{:.2}", v)).unwrap_or_default()
}

fn iso(r: &Report, ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| {
            t.to_zoned(r.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// Writes the report to `out`.
pub fn write(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let mut row = |cells: Vec<(usize, String)>| -> std::io::Result<()> {
        let mut line = vec![String::new(); HEADER.len()];
        for (i, v) in cells {
            line[i] = field(&v);
        }
        writeln!(out, "{}", line.join(","))
    };
    row(HEADER
        .iter()
        .enumerate()
        .map(|(i, h)| (i, h.to_string()))
        .collect())?;
    let text = HEADER.len() - 1;
    row(vec![
        (0, "report".into()),
        (
            text,
            format!(
                "Alarm Tray shift report {} to {} ({})",
                iso(r, Some(r.from_ms)),
                iso(r, Some(r.to_ms)),
                r.tz_name
            ),
        ),
    ])?;
    row(vec![(0, "audit".into()), (text, r.audit.clone())])?;
    for s in &r.sensors {
        let base = |section: &str| {
            vec![
                (0, section.to_string()),
                (1, s.sensor.clone()),
                (2, s.name.clone().unwrap_or_default()),
                (3, s.quantity.clone().unwrap_or_default()),
                (4, s.unit.clone().unwrap_or_default()),
            ]
        };
        let mut cells = base("sensor");
        cells.extend([
            (5, s.readings.to_string()),
            (6, num(s.min)),
            (7, num(s.max)),
            (8, num(s.mean)),
            (9, num(s.mkt)),
        ]);
        row(cells)?;
        for l in &s.limits {
            let mut cells = base("limit");
            cells.extend([
                (10, l.rule.clone()),
                (11, num(l.low)),
                (12, num(l.high)),
                (13, format!("{:.1}", l.outside_ms as f64 / 60_000.0)),
                (text, duration_text(l.outside_ms)),
            ]);
            row(cells)?;
        }
        for a in &s.alarms {
            let mut cells = base("alarm");
            cells.extend([
                (14, a.id.to_string()),
                (15, a.condition.clone().unwrap_or_default()),
                (16, a.severity.clone()),
                (17, iso(r, Some(a.raised_ms))),
                (18, iso(r, a.cleared_ms)),
                (19, format!("{:.1}", a.duration_ms as f64 / 60_000.0)),
                (20, iso(r, a.acknowledged_ms)),
                (21, a.acknowledged_user.clone().unwrap_or_default()),
                (22, a.acknowledged_comment.clone().unwrap_or_default()),
            ]);
            row(cells)?;
        }
    }
    Ok(())
}

/// The columns of the history's CSV export.
pub const ALARM_HEADER: &[&str] = &[
    "id",
    "state",
    "severity",
    "source",
    "account",
    "device",
    "sensor",
    "name",
    "condition",
    "value",
    "unit",
    "limit",
    "raised",
    "cleared",
    "acknowledged",
    "acknowledged_by",
    "acknowledged_user",
    "comment",
];

/// One alarm as a line of the history's CSV export (times ISO 8601 in `tz`).
pub fn alarm_line(a: &crate::engine::model::AlarmRow, tz: &jiff::tz::TimeZone) -> String {
    let t = |ms: Option<i64>| {
        ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    [
        a.id.to_string(),
        if a.cleared_ms.is_none() {
            "active"
        } else {
            "cleared"
        }
        .to_string(),
        a.severity.as_str().to_string(),
        a.source.as_str().to_string(),
        a.account.clone(),
        o(&a.device),
        o(&a.sensor),
        o(&a.name),
        o(&a.condition),
        a.value.map(|v| v.to_string()).unwrap_or_default(),
        o(&a.unit),
        o(&a.limit),
        t(Some(a.raised_ms)),
        t(a.cleared_ms),
        t(a.acknowledged_ms),
        o(&a.acknowledged_by),
        o(&a.acknowledged_user),
        o(&a.acknowledged_comment),
    ]
    .iter()
    .map(|v| field(v))
    .collect::<Vec<_>>()
    .join(",")
}
