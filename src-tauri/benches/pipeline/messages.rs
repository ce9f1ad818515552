//! Realistic Saveris measurement-alarm bodies (the field set of the official AsyncAPI, as in
//! the vendor's sample), ~650 bytes each.
//!
//! Message `i` is about sensor `i % sensors`; each sensor alternates between a raise
//! (`Alarm`, upper limit) and a clear (`Ok`) from one round to the next, so the engine
//! raises and clears alarms as on a real site rather than piling up one alarm per message.

/// `value`: the `alarm_value` (the latency run puts a sequence number there).
pub fn alarm_body(i: usize, sensors: usize, value: Option<f64>) -> String {
    let sensors = sensors.max(1);
    let (round, s) = (i / sensors, i % sensors);
    let raise = round % 2 == 0;
    // Time advances 30 s per round: every raise/clear of a sensor is a distinct change.
    let t = 1_714_557_600 + round as i64 * 30;
    let time = |secs: i64| {
        jiff::Timestamp::from_second(secs)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let local = jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(2)))
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default();
    let value = value.unwrap_or(8.0 + ((round * 7 + s * 3) % 40) as f64 / 16.0);
    let (status, reason) = if raise {
        ("Alarm", "Alarm condition is violated")
    } else {
        ("Ok", "The alarm condition does no longer exist")
    };
    format!(
        concat!(
            r#"{{"uuid":"{a:08x}-5d1e-4c1a-9b7e-{i:012x}","tenant_uuid":"3f6b2c9e-8d41-4e7a-a1c5-7e0f9b2d4c61","#,
            r#""alarm_reason":"{reason}","alarm_status":"{status}","last_status_change_time":"{t}","#,
            r#""alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"{t}","#,
            r#""alarm_time_local":"{local}","alarm_delay":900000,"alarm_value":"{value}","#,
            r#""physical_unit":"°C","physical_value":"Temperature","physical_value_extension":"Air Temperature","#,
            r#""serial_number":"6{s:07}","alarm_source_uuid":"7c2e4a18-0b3d-4f6e-8a9c-{s:012x}","#,
            r#""alarm_type":"measurement alarm","processed_at":"{p}"}}"#
        ),
        a = s,
        i = i,
        reason = reason,
        status = status,
        t = time(t),
        local = local,
        value = value,
        s = s,
        p = time(t + 85),
    )
}

/// The bodies must be what the feed takes for measurement alarms: a raise, then its clear.
pub fn self_check() -> Result<(), String> {
    use alarm_tray::event::EventKind;
    use alarm_tray::feeds::saveris::payload::to_event;
    let now = jiff::Timestamp::now();
    let raise = to_event("a", "alarms", alarm_body(3, 10, None).as_bytes(), now);
    let clear = to_event("a", "alarms", alarm_body(13, 10, None).as_bytes(), now);
    let marked = to_event("a", "alarms", alarm_body(3, 10, Some(42.0)).as_bytes(), now);
    let ok = raise.kind == EventKind::AlarmRaised
        && clear.kind == EventKind::AlarmCleared
        && raise.alarm_id.is_some()
        && raise.alarm_id == clear.alarm_id
        && raise.key != clear.key
        && marked.value == Some(42.0);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bench messages are not parsed as alarm raise/clear: {raise:?} / {clear:?}"
        ))
    }
}
