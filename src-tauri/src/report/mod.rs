//! The shift report (issue 21): for a range, per sensor and quantity, the alarms (raised,
//! cleared, how long, acknowledged by whom, when, why), the time spent outside each limit,
//! min / max / mean and, for temperatures, the mean kinetic temperature — all from the
//! stored readings — with the audit trail's verify result on the cover.
//!
//! [`build`] gathers it from the history; [`csv`] and [`pdf`] write the same rows.

pub mod csv;
pub mod pdf;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::engine::audit::AuditReport;
use crate::engine::model::AlarmRow;
use crate::engine::reduce::{self, LimitLine};
use crate::engine::{History, HistoryError};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the range ends before it starts")]
    EmptyRange,
    #[error("the history could not be read: {0}")]
    History(#[from] HistoryError),
    #[error("the report could not be written to {path}: {message}")]
    Write { path: String, message: String },
    #[error("there is no history at {0}")]
    NoHistory(String),
    #[error("“{0}” is not a time (use 2026-12-07, 2026-12-07T06:00 or 2026-12-07T06:00:00+01:00)")]
    Time(String),
}

/// Time spent outside one limit line of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitTime {
    pub rule: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub outside_ms: i64,
}

/// One alarm of the range, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmLine {
    pub id: i64,
    pub condition: Option<String>,
    pub severity: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    /// Raised to cleared; to the end of the range while still active.
    pub duration_ms: i64,
    pub acknowledged_ms: Option<i64>,
    pub acknowledged_user: Option<String>,
    pub acknowledged_comment: Option<String>,
}

/// One sensor's quantity over the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorReport {
    pub sensor: String,
    pub name: Option<String>,
    pub quantity: Option<String>,
    pub unit: Option<String>,
    pub readings: u32,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Mean kinetic temperature (°C), for temperatures in °C only.
    pub mkt: Option<f64>,
    pub limits: Vec<LimitTime>,
    pub alarms: Vec<AlarmLine>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The site's time zone, in which every time is written.
    #[serde(skip)]
    pub tz: TimeZone,
    pub tz_name: String,
    pub generated_ms: i64,
    pub mkt_dh_r: f64,
    /// "audit trail intact (N records)" or what is wrong.
    pub audit: String,
    pub sensors: Vec<SensorReport>,
}

impl Report {
    /// `ms` as "2026-12-07 14:02" in the report's time zone.
    pub fn time(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    }
}

/// The audit verify result in one line, as the General page and `audit verify` say it.
pub fn audit_line(r: Result<AuditReport, String>) -> String {
    match r {
        Ok(r) if r.intact => format!(
            "audit trail intact ({} {})",
            r.records,
            if r.records == 1 { "record" } else { "records" }
        ),
        Ok(r) => format!("audit trail NOT intact: {}", r.problem),
        Err(e) => format!("audit trail could not be verified: {e}"),
    }
}

/// Mean kinetic temperature in °C of equally weighted readings in °C:
/// T = (ΔH/R) / −ln(Σ e^(−(ΔH/R)/Tᵢ) / n), Tᵢ in kelvin.
pub fn mean_kinetic_temperature(values: &[f64], dh_r: f64) -> Option<f64> {
    if values.is_empty() || dh_r <= 0.0 {
        return None;
    }
    let mut sum = 0.0;
    for c in values {
        let k = c + 273.15;
        if k <= 0.0 {
            return None;
        }
        sum += (-dh_r / k).exp();
    }
    (sum > 0.0).then(|| dh_r / -(sum / values.len() as f64).ln() - 273.15)
}

/// Builds the report of `[from_ms, to_ms)` from the history, with the rules' limits from
/// `settings` and `audit` for the cover.
pub fn build(
    history: &History,
    settings: &Settings,
    (from_ms, to_ms): (i64, i64),
    tz: TimeZone,
    audit: String,
    generated_ms: i64,
) -> Result<Report, ReportError> {
    if to_ms <= from_ms {
        return Err(ReportError::EmptyRange);
    }
    let alarms = history.alarms_in_range(from_ms, to_ms)?;
    let mut sensors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (sensor, quantity) in history.report_channels(from_ms, to_ms)? {
        let points = history.range_series(&sensor, &quantity, from_ms, to_ms)?;
        let q = (!quantity.is_empty()).then_some(quantity.as_str());
        let (name, unit) = history.sensor_unit(&sensor, q)?;
        // The sensor's own rules (device and tag rules need the scope the monitor builds
        // from the subscriptions; the report reads the history alone).
        let scope = reduce::SensorScope {
            sensor: sensor.clone(),
            ..Default::default()
        };
        let lines = reduce::limit_lines(&settings.rules, &scope, q);
        // A reading lasts until the next one, but not across a gap (as the sensor view).
        let gap_ms = reduce::gap_threshold(&points, 60_000);
        let all = reduce::stats(&points, from_ms, to_ms, &[], gap_ms, false);
        let limits = lines
            .iter()
            .map(|l: &LimitLine| LimitTime {
                rule: l.rule.clone(),
                low: l.low,
                high: l.high,
                outside_ms: reduce::stats(
                    &points,
                    from_ms,
                    to_ms,
                    std::slice::from_ref(l),
                    gap_ms,
                    false,
                )
                .outside_ms,
            })
            .collect();
        let mkt = if reduce::is_celsius(unit.as_deref(), q) {
            let values: Vec<f64> = points.iter().map(|&(_, v)| v).collect();
            mean_kinetic_temperature(&values, settings.mkt_dh_r)
        } else {
            None
        };
        // A sensor's alarms go with its first quantity (alarms name a sensor, not a field).
        let first = seen.insert(sensor.clone());
        sensors.push(SensorReport {
            alarms: if first {
                alarm_lines(&alarms, &sensor, to_ms)
            } else {
                Vec::new()
            },
            sensor,
            name,
            quantity: q.map(str::to_string),
            unit,
            readings: all.count,
            min: all.min,
            max: all.max,
            mean: all.mean,
            mkt,
            limits,
        });
    }
    // Sensors with alarms and no reading in the range (alarm-only feeds).
    let mut rest: Vec<&str> = alarms
        .iter()
        .filter_map(|a| a.sensor.as_deref().or(a.device.as_deref()))
        .filter(|s| !seen.contains(*s))
        .collect();
    rest.dedup();
    let mut done = std::collections::BTreeSet::new();
    for s in rest {
        if !done.insert(s) {
            continue;
        }
        let first = alarms
            .iter()
            .find(|a| a.sensor.as_deref().or(a.device.as_deref()) == Some(s));
        sensors.push(SensorReport {
            sensor: s.to_string(),
            name: first.and_then(|a| a.name.clone()),
            quantity: None,
            unit: first.and_then(|a| a.unit.clone()),
            readings: 0,
            min: None,
            max: None,
            mean: None,
            mkt: None,
            limits: Vec::new(),
            alarms: alarm_lines(&alarms, s, to_ms),
        });
    }
    let tz_name = tz.iana_name().unwrap_or("the system time zone").to_string();
    Ok(Report {
        from_ms,
        to_ms,
        tz,
        tz_name,
        generated_ms,
        mkt_dh_r: settings.mkt_dh_r,
        audit,
        sensors,
    })
}

fn alarm_lines(alarms: &[AlarmRow], sensor: &str, to_ms: i64) -> Vec<AlarmLine> {
    alarms
        .iter()
        .filter(|a| a.sensor.as_deref().or(a.device.as_deref()) == Some(sensor))
        .map(|a| AlarmLine {
            id: a.id,
            condition: a.condition.clone(),
            severity: a.severity.as_str().to_string(),
            raised_ms: a.raised_ms,
            cleared_ms: a.cleared_ms,
            duration_ms: a.cleared_ms.unwrap_or(to_ms).max(a.raised_ms) - a.raised_ms,
            acknowledged_ms: a.acknowledged_ms,
            acknowledged_user: a
                .acknowledged_user
                .clone()
                .or_else(|| a.acknowledged_by.clone()),
            acknowledged_comment: a.acknowledged_comment.clone(),
        })
        .collect()
}

/// A time as typed on the command line, in `tz` unless it carries an offset: a date
/// (midnight), a date and time, or RFC 3339.
pub fn parse_time(text: &str, tz: &TimeZone) -> Result<i64, ReportError> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil = t
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| t.parse::<jiff::civil::Date>().map(|d| d.at(0, 0, 0, 0)))
        .map_err(|_| ReportError::Time(t.to_string()))?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| ReportError::Time(t.to_string()))
}

/// Where `alarm-tray report` writes.
#[derive(Debug, Default)]
pub struct Outputs {
    pub pdf: Option<std::path::PathBuf>,
    pub csv: Option<std::path::PathBuf>,
}

/// `alarm-tray report`: the report of the profile `ALARM_TRAY_DATA_DIR` names (its history,
/// settings and audit trail), in the system's time zone. With no file named, the CSV goes
/// to stdout. What was written, in words.
pub fn for_profile(from: &str, to: &str, out: &Outputs) -> Result<String, ReportError> {
    let tz = TimeZone::system();
    let (from_ms, to_ms) = (parse_time(from, &tz)?, parse_time(to, &tz)?);
    let db = crate::paths::history_db();
    if !db.exists() {
        return Err(ReportError::NoHistory(db.display().to_string()));
    }
    let history = History::open(&db)?;
    let settings = match crate::settings::read(&crate::paths::settings_file()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("settings not read ({e}): the report uses no limits");
            Settings::default()
        }
    };
    let audit_path = db.with_file_name(crate::engine::audit::AUDIT_FILE);
    let audit =
        audit_line(crate::engine::audit::verify_file(&audit_path).map_err(|e| e.to_string()));
    let now = jiff::Timestamp::now().as_millisecond();
    let r = build(&history, &settings, (from_ms, to_ms), tz, audit, now)?;
    let write = |path: &std::path::Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|e| ReportError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    let mut said = Vec::new();
    if let Some(p) = &out.pdf {
        write(p, &pdf::render(&r))?;
        said.push(format!("PDF written to {}", p.display()));
    }
    if let Some(p) = &out.csv {
        let mut bytes = Vec::new();
        csv::write(&r, &mut bytes).map_err(|e| ReportError::Write {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
        write(p, &bytes)?;
        said.push(format!("CSV written to {}", p.display()));
    }
    if out.pdf.is_none() && out.csv.is_none() {
        let stdout = std::io::stdout();
        csv::write(&r, &mut stdout.lock()).map_err(|e| ReportError::Write {
            path: "stdout".into(),
            message: e.to_string(),
        })?;
    }
    said.push(format!("{} sensor series; {}", r.sensors.len(), r.audit));
    Ok(said.join("\n"))
}

/// Where the window's Report and Export buttons save: the user's Downloads folder, else
/// `reports/` in the data folder.
pub fn save_dir() -> std::path::PathBuf {
    dirs::download_dir()
        .filter(|d| d.is_dir())
        .unwrap_or_else(|| crate::paths::data_dir().join("reports"))
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> ReportError {
    ReportError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The History page's Report button: the report of `[from_ms, to_ms)` as PDF and CSV in
/// [`save_dir`]; the two paths.
pub fn save_for_window(
    history: &History,
    settings: &Settings,
    (from_ms, to_ms): (i64, i64),
) -> Result<Vec<String>, ReportError> {
    let tz = TimeZone::system();
    let audit = audit_line(match history.audit() {
        Ok(a) => a.verify().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    });
    let now = jiff::Timestamp::now();
    let r = build(
        history,
        settings,
        (from_ms, to_ms),
        tz,
        audit,
        now.as_millisecond(),
    )?;
    let dir = save_dir();
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let stem = format!(
        "alarm-tray-report-{}",
        now.to_zoned(r.tz.clone()).strftime("%Y-%m-%d-%H%M%S")
    );
    let pdf_path = dir.join(format!("{stem}.pdf"));
    std::fs::write(&pdf_path, pdf::render(&r)).map_err(|e| io_err(&pdf_path, e))?;
    let csv_path = dir.join(format!("{stem}.csv"));
    let mut bytes = Vec::new();
    csv::write(&r, &mut bytes).map_err(|e| io_err(&csv_path, e))?;
    std::fs::write(&csv_path, bytes).map_err(|e| io_err(&csv_path, e))?;
    Ok(vec![
        pdf_path.display().to_string(),
        csv_path.display().to_string(),
    ])
}

/// The History page's Export CSV: every alarm the filter matches, no row cap, streamed from
/// the database to the file row by row. The path and the number of rows.
pub fn export_alarms(
    history: &History,
    filter: &crate::engine::model::AlarmFilter,
) -> Result<(String, u64), ReportError> {
    use std::io::Write;
    let tz = TimeZone::system();
    let dir = save_dir();
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let now = jiff::Timestamp::now().to_zoned(tz.clone());
    let path = dir.join(format!(
        "alarm-history-{}.csv",
        now.strftime("%Y-%m-%d-%H%M%S")
    ));
    let file = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "{}", csv::ALARM_HEADER.join(",")).map_err(|e| io_err(&path, e))?;
    let n = history.each_alarm(filter, |a| {
        writeln!(out, "{}", csv::alarm_line(&a, &tz)).map_err(|e| io_err(&path, e))
    })?;
    out.flush().map_err(|e| io_err(&path, e))?;
    Ok((path.display().to_string(), n))
}

/// "1 h 05 min", "12 min", "0 min".
pub fn duration_text(ms: i64) -> String {
    let mins = ms.max(0) / 60_000;
    if mins >= 60 {
        format!("{} h {:02} min", mins / 60, mins % 60)
    } else {
        format!("{mins} min")
    }
}

#[cfg(test)]
mod tests;
