//! The report's figures against values computed by hand for a fixture with known readings.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::*;
use crate::engine::history::NewAlarm;
use crate::engine::model::LatestValue;
use crate::event::{Event, EventKind, Severity, Source};
use crate::settings::{Limit, RuleTarget, ThresholdRule};

const T0: i64 = 1_765_094_400_000; // 2025-12-07 08:00 UTC
const MIN: i64 = 60_000;

/// Fridge fr1: 5, 9, 10, 7, 5 °C every 10 minutes from T0; one alarm raised at +10 min,
/// acknowledged at +12 min with a comment, cleared at +30 min.
pub(crate) fn fixture() -> (History, Settings) {
    let h = History::open_in_memory().unwrap();
    h.write(|w| {
        for (i, v) in [5.0, 9.0, 10.0, 7.0, 5.0].into_iter().enumerate() {
            let at = Timestamp::from_millisecond(T0 + i as i64 * 10 * MIN).unwrap();
            let mut e = Event::new(
                Source::Saveris,
                "a1",
                "measurements",
                EventKind::Measurement,
                format!("m{i}"),
            );
            e.sensor = Some("fr1".into());
            e.name = Some("Fridge 1".into());
            e.quantity = Some("Temperature".into());
            e.value = Some(v);
            e.unit = Some("°C".into());
            e.measured_at = Some(at);
            e.received_at = at;
            w.insert_event(&e)?;
            w.set_last_value(&LatestValue {
                sensor: "fr1".into(),
                name: Some("Fridge 1".into()),
                source: Source::Saveris,
                quantity: Some("Temperature".into()),
                value: v,
                unit: Some("°C".into()),
                at_ms: T0 + i as i64 * 10 * MIN,
            })?;
        }
        let id = w.raise_alarm(&NewAlarm {
            alarm_key: "fr1:upper".into(),
            source: Source::Saveris,
            account: "a1".into(),
            device: None,
            sensor: Some("fr1".into()),
            name: Some("Fridge 1".into()),
            condition: Some("Upper limit".into()),
            severity: Severity::Alarm,
            value: Some(9.0),
            unit: Some("°C".into()),
            limit: Some("8 °C".into()),
            rule_id: None,
            event_id: None,
            raised_ms: T0 + 10 * MIN,
        })?;
        w.clear_alarm(id, T0 + 30 * MIN)?;
        Ok(())
    })
    .unwrap();
    let id = h.alarms(&Default::default()).unwrap()[0].id;
    h.acknowledge_as(
        id,
        "window",
        "Ana Ruiz (ana)",
        Some("door left open, closed it"),
        T0 + 12 * MIN,
    )
    .unwrap();
    let s = Settings {
        rules: vec![
            ThresholdRule {
                id: "max".into(),
                name: "Fridge max".into(),
                target: RuleTarget::Sensor("fr1".into()),
                limit: Limit::Above { value: 8.0 },
                ..Default::default()
            },
            ThresholdRule {
                id: "min".into(),
                name: "Fridge min".into(),
                target: RuleTarget::Sensor("fr1".into()),
                limit: Limit::Below { value: 6.0 },
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    (h, s)
}

fn report(h: &History, s: &Settings) -> Report {
    build(
        h,
        s,
        (T0, T0 + 50 * MIN),
        TimeZone::UTC,
        "audit trail intact (3 records)".into(),
        T0 + 60 * MIN,
    )
    .unwrap()
}

#[test]
fn figures_match_the_hand_computed_values() {
    let (h, s) = fixture();
    let r = report(&h, &s);
    assert_eq!(r.sensors.len(), 1);
    let f = &r.sensors[0];
    assert_eq!(
        (f.sensor.as_str(), f.quantity.as_deref()),
        ("fr1", Some("Temperature"))
    );
    assert_eq!((f.readings, f.min, f.max), (5, Some(5.0), Some(10.0)));
    assert!((f.mean.unwrap() - 7.2).abs() < 1e-9);
    // exp(-10000/Tk) averaged over 278.15, 282.15, 283.15, 280.15, 278.15 K → 7.4504 °C.
    assert!((f.mkt.unwrap() - 7.4504).abs() < 1e-3, "{:?}", f.mkt);
    // Above 8: the readings at +10 (9 °C) and +20 (10 °C) hold 10 min each = 20 min.
    // Below 6: the reading at +0 (5 °C) holds 10 min; the last one (+40) holds nothing.
    let by = |n: &str| f.limits.iter().find(|l| l.rule == n).unwrap().outside_ms;
    assert_eq!(by("Fridge max"), 20 * MIN);
    assert_eq!(by("Fridge min"), 10 * MIN);
    let a = &f.alarms[0];
    assert_eq!(
        (a.raised_ms, a.cleared_ms, a.duration_ms),
        (T0 + 10 * MIN, Some(T0 + 30 * MIN), 20 * MIN)
    );
    assert_eq!(a.acknowledged_ms, Some(T0 + 12 * MIN));
    assert_eq!(a.acknowledged_user.as_deref(), Some("Ana Ruiz (ana)"));
    assert_eq!(
        a.acknowledged_comment.as_deref(),
        Some("door left open, closed it")
    );
}

#[test]
fn the_mkt_follows_the_dh_r_setting() {
    let (h, mut s) = fixture();
    s.mkt_dh_r = 5_000.0;
    let f = &report(&h, &s).sensors[0];
    assert!((f.mkt.unwrap() - 7.3178).abs() < 1e-3, "{:?}", f.mkt);
}

#[test]
fn csv_has_a_row_per_sensor_limit_and_alarm() {
    let (h, s) = fixture();
    let mut out = Vec::new();
    csv::write(&report(&h, &s), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].split(',').count(), csv::HEADER.len());
    assert!(
        lines[1].starts_with("report,") && lines[1].contains("2025-12-07T08:00:00+00:00"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("audit trail intact (3 records)"));
    assert!(
        lines[3].starts_with("sensor,fr1,Fridge 1,Temperature,°C,5,5.00,10.00,7.20,7.45,"),
        "{}",
        lines[3]
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("limit,fr1,") && l.contains(",Fridge max,,8.00,20.0,")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("limit,fr1,") && l.contains(",Fridge min,6.00,,10.0,")));
    let alarm = lines.iter().find(|l| l.starts_with("alarm,")).unwrap();
    assert!(
        alarm.contains(
            ",20.0,2025-12-07T08:12:00+00:00,Ana Ruiz (ana),\"door left open, closed it\","
        ),
        "{alarm}"
    );
    assert_eq!(lines.len(), 7);
}

#[test]
fn csv_fields_are_quoted_and_never_formulas() {
    assert_eq!(csv::field("a,b"), "\"a,b\"");
    assert_eq!(csv::field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv::field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    assert_eq!(csv::field("-3.5"), "-3.5");
}

#[test]
fn the_pdf_has_numbered_pages() {
    let (h, s) = fixture();
    let bytes = pdf::render(&report(&h, &s));
    assert!(bytes.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("(Page 1 of 1)"),
        "uncompressed content names the page"
    );
    assert!(text.contains("(Audit trail intact (3 records))"));
}

#[test]
fn an_empty_range_is_refused() {
    let (h, s) = fixture();
    assert!(matches!(
        build(&h, &s, (T0, T0), TimeZone::UTC, String::new(), T0),
        Err(ReportError::EmptyRange)
    ));
}

#[test]
fn the_history_export_has_no_row_cap() {
    let h = History::open_in_memory().unwrap();
    let n = 10_050; // more than `alarms()` ever answers (10,000)
    h.write(|w| {
        for i in 0..n {
            let id = w.raise_alarm(&NewAlarm {
                alarm_key: format!("k{i}"),
                source: Source::Element,
                account: "e1".into(),
                device: None,
                sensor: Some(format!("s{}", i % 7)),
                name: Some("Room \"A\", north".into()),
                condition: Some("Upper limit".into()),
                severity: Severity::Warning,
                value: Some(1.5),
                unit: None,
                limit: None,
                rule_id: None,
                event_id: None,
                raised_ms: T0 + i,
            })?;
            w.clear_alarm(id, T0 + i + 1)?;
        }
        Ok(())
    })
    .unwrap();
    let filter = crate::engine::model::AlarmFilter {
        limit: 10,
        ..Default::default()
    };
    let mut lines = Vec::new();
    let count = h
        .each_alarm(&filter, |a| -> Result<(), HistoryError> {
            lines.push(csv::alarm_line(&a, &TimeZone::UTC));
            Ok(())
        })
        .unwrap();
    assert_eq!((count, lines.len()), (n as u64, n as usize));
    assert!(
        lines[0].starts_with(&format!("{n},cleared,warning,element,e1,,s")),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(",\"Room \"\"A\"\", north\",Upper limit,1.5,"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[0].split(',').count(),
        csv::ALARM_HEADER.len() + 1,
        "the quoted comma"
    );
}
