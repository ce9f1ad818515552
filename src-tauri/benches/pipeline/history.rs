//! Section 4: the history window's queries on a database of 1,000,000 events, through
//! `alarm_tray::engine::History`: latest value per sensor, the 24 h series of one sensor,
//! and an alarms page with filters.
//!
//! The database: 1,000 Saveris sensors, one measurement every 5 minutes each (about 3.5
//! days for 1,000,000 events), with the raw bodies as the feed stores them; one event in
//! 50 is an upstream alarm (raised, most of them cleared later).

use std::time::Instant;

use alarm_tray::engine::history::NewAlarm;
use alarm_tray::engine::model::{AlarmFilter, LatestValue};
use alarm_tray::engine::History;
use alarm_tray::event::{Event, EventKind, Severity, Source};
use serde_json::{json, Value};

use crate::Config;

const SENSORS: usize = 1000;
const STEP_MS: i64 = 300_000;
const T0_MS: i64 = 1_714_557_600_000;

fn event(i: usize) -> (Event, i64) {
    let (round, s) = (i / SENSORS, i % SENSORS);
    let at = T0_MS + round as i64 * STEP_MS + s as i64 * 97;
    let ts = jiff::Timestamp::from_millisecond(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let v = 2.0 + ((round * 13 + s * 7) % 80) as f64 / 10.0;
    // One in 50, rotating over the sensors from round to round.
    let alarm = (round * 7 + s) % 50 == 49;
    let kind = if alarm {
        EventKind::AlarmRaised
    } else {
        EventKind::Measurement
    };
    let mut e = Event::new(
        Source::Saveris,
        "site-a",
        if alarm { "alarms" } else { "measurements-v2" },
        kind,
        format!("saveris:site-a:m:{i:08x}-5d1e-4c1a-9b7e-{s:012x}"),
    );
    e.device = Some(format!("6{s:07}"));
    e.sensor = Some(format!("7c2e4a18-0b3d-4f6e-8a9c-{s:012x}"));
    e.name = Some(format!("6{s:07} Air Temperature"));
    e.quantity = Some("Temperature".into());
    e.value = Some(v);
    e.unit = Some("°C".into());
    e.measured_at = Some(ts);
    e.received_at = ts;
    if alarm {
        e.severity = Severity::Alarm;
        e.condition = Some("Upper limit".into());
        e.alarm_id = Some(format!("saveris:site-a:{s}:Upper limit"));
    }
    e.raw = format!(
        r#"{{"uuid":"{i:08x}-5d1e-4c1a-9b7e-{s:012x}","customer_site":"site-a","tenant_uuid":"3f6b2c9e-8d41-4e7a-a1c5-7e0f9b2d4c61","sensor_uuid":"7c2e4a18-0b3d-4f6e-8a9c-{s:012x}","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air Temperature","physical_unit":"°C","timestamp":"{ts}","timestamp_local":"{ts}","measurement":{v},"serial_no":"6{s:07}","model_code":"T1","processed_at":"{ts}"}}"#
    );
    (e, at)
}

fn timed<T>(
    runs: usize,
    mut f: impl FnMut() -> Result<T, String>,
) -> Result<(Vec<f64>, T), String> {
    let mut ms = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f()?);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    last.map(|l| (ms, l)).ok_or_else(|| "no run".to_string())
}

fn summary(name: &str, what: &str, ms: &[f64], rows: usize) -> Value {
    let mut sorted = ms.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    json!({
        "query": name,
        "what": what,
        "first_ms": ms.first(),
        "median_ms": crate::procs::percentile(&sorted, 50.0),
        "max_ms": sorted.last(),
        "rows": rows,
    })
}

/// Issue 27: `BENCH_SENSOR_INDEX=narrow` puts back the index the covering one replaced
/// (`events_sensor_at (sensor, at_ms)`) in a freshly opened history, to measure what the
/// covering index costs on writes and gains on queries. Returns which index is in place.
pub fn sensor_index(path: &std::path::Path) -> Result<&'static str, String> {
    if !std::env::var("BENCH_SENSOR_INDEX").is_ok_and(|v| v == "narrow") {
        return Ok("covering");
    }
    // The history's cached statements are prepared again by SQLite after the schema change.
    let c = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    c.execute_batch(
        "DROP INDEX IF EXISTS events_sensor_at_value; \
         CREATE INDEX IF NOT EXISTS events_sensor_at ON events(sensor, at_ms);",
    )
    .map_err(|e| e.to_string())?;
    Ok("narrow")
}

pub fn run(cfg: &Config) -> Result<Value, String> {
    let n = cfg.history_events;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("history.sqlite3");
    let history = History::open(&path).map_err(|e| e.to_string())?;
    let index = sensor_index(&path)?;
    println!("history: sensor index {index}");
    let t = Instant::now();
    let mut open: std::collections::HashMap<usize, i64> = Default::default();
    let chunk = 10_000;
    for start in (0..n).step_by(chunk) {
        history
            .write(|w| {
                for i in start..(start + chunk).min(n) {
                    let (e, at) = event(i);
                    let id = w.insert_event(&e)?;
                    let s = i % SENSORS;
                    if let Some(v) = e.value {
                        w.set_last_value(&LatestValue {
                            sensor: e.sensor.clone().unwrap_or_default(),
                            name: e.name.clone(),
                            source: Source::Saveris,
                            quantity: e.quantity.clone(),
                            value: v,
                            unit: e.unit.clone(),
                            at_ms: at,
                        })?;
                    }
                    if e.kind == EventKind::AlarmRaised {
                        // The previous alarm of this sensor clears first (most alarms are
                        // history); the newest ones stay active.
                        if let Some(prev) = open.remove(&s) {
                            w.clear_alarm(prev, at - 1)?;
                        }
                        let alarm = w.raise_alarm(&NewAlarm {
                            alarm_key: e.alarm_id.clone().unwrap_or_default(),
                            source: Source::Saveris,
                            account: e.account.clone(),
                            device: e.device.clone(),
                            sensor: e.sensor.clone(),
                            name: e.name.clone(),
                            condition: e.condition.clone(),
                            severity: Severity::Alarm,
                            value: e.value,
                            unit: e.unit.clone(),
                            limit: None,
                            rule_id: None,
                            event_id: id,
                            raised_ms: at,
                        })?;
                        open.insert(s, alarm);
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    let load_secs = t.elapsed().as_secs_f64();
    let stored = history.event_count().map_err(|e| e.to_string())?;
    // The write-ahead log holds what the checkpointer has not copied yet.
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal_mb = size(&dir.path().join("history.sqlite3-wal")) as f64 / 1e6;
    let size_mb = size(&path) as f64 / 1e6 + wal_mb;
    println!(
        "history: {stored} events loaded in {load_secs:.1} s ({:.0} events/s), {size_mb:.0} MB (write-ahead log {wal_mb:.0} MB)",
        stored as f64 / load_secs
    );
    let end_ms = T0_MS + (n / SENSORS) as i64 * STEP_MS;
    let sensor = format!("7c2e4a18-0b3d-4f6e-8a9c-{:012x}", 421);
    let runs = 7;
    let mut queries = Vec::new();
    let (ms, rows) = timed(runs, || {
        history
            .latest_values()
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    })?;
    queries.push(summary(
        "latest_per_sensor",
        "latest value of every sensor (dashboard)",
        &ms,
        rows,
    ));
    let (ms, rows) = timed(runs, || {
        history
            .series(&sensor, end_ms - 86_400_000)
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    })?;
    queries.push(summary(
        "series_24h",
        "24 h series of one sensor (chart)",
        &ms,
        rows,
    ));
    let filtered = AlarmFilter {
        state: "cleared".into(),
        severity: Some(Severity::Alarm),
        source: Some(Source::Saveris),
        device: "6000042".into(),
        from_ms: Some(end_ms - 3 * 86_400_000),
        to_ms: Some(end_ms),
        limit: 50,
        offset: 0,
    };
    let (ms, rows) = timed(runs, || {
        history
            .alarms(&filtered)
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    })?;
    queries.push(summary(
        "alarms_page_filtered",
        "alarms page: cleared, severity alarm, Saveris, device contains \"6000042\", last 3 days, 50 rows",
        &ms,
        rows,
    ));
    let first_page = AlarmFilter {
        limit: 50,
        ..Default::default()
    };
    let (ms, rows) = timed(runs, || {
        history
            .alarms(&first_page)
            .map(|v| v.len())
            .map_err(|e| e.to_string())
    })?;
    queries.push(summary(
        "alarms_page",
        "alarms page, no filter, newest 50",
        &ms,
        rows,
    ));
    for q in &queries {
        println!(
            "  {:<22} median {:>8.2} ms  first {:>8.2} ms  ({} rows)",
            q["query"].as_str().unwrap_or(""),
            q["median_ms"].as_f64().unwrap_or(f64::NAN),
            q["first_ms"].as_f64().unwrap_or(f64::NAN),
            q["rows"]
        );
    }
    Ok(json!({
        "events": stored,
        "sensor_index": index,
        "sensors": SENSORS,
        "alarms": n / 50,
        "load_secs": load_secs,
        "db_mb": size_mb,
        "wal_mb": wal_mb,
        "queries": queries,
    }))
}
