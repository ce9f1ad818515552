//! Engine tests with hand-made event sequences, a manual clock and a recording notifier.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::model::{AlarmFilter, TrayState};
use super::*;
use crate::clock::ManualClock;
use crate::event::{Ack, AckMsg, EventKind, FeedState, Severity, Source};
use crate::notify::{RecordingNotifier, Urgency};
use crate::settings::{Limit, SensorPrefs, ThresholdRule};

const T0: i64 = 1_700_000_000_000; // 2023-11-14 22:13:20 UTC

struct Rig {
    engine: EngineHandle,
    tx: mpsc::Sender<Delivery>,
    status_tx: mpsc::UnboundedSender<FeedStatus>,
    acks_tx: mpsc::UnboundedSender<AckMsg>,
    acks: mpsc::UnboundedReceiver<AckMsg>,
    notifier: Arc<RecordingNotifier>,
    clock: ManualClock,
    out: broadcast::Receiver<Output>,
}

impl Rig {
    fn new(settings: Settings) -> Rig {
        Self::with_history(settings, History::open_in_memory().unwrap())
    }

    fn with_history(settings: Settings, history: History) -> Rig {
        let (tx, rx) = mpsc::channel(1024);
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let (acks_tx, acks) = mpsc::unbounded_channel();
        let notifier = Arc::new(RecordingNotifier::new());
        let clock = ManualClock::utc(Timestamp::from_millisecond(T0).unwrap());
        let engine = spawn_with(
            settings,
            history,
            notifier.clone(),
            rx,
            status_rx,
            Arc::new(clock.clone()),
            Locale::plain(TimeZone::UTC),
        );
        let out = engine.subscribe();
        Rig {
            engine,
            tx,
            status_tx,
            acks_tx,
            acks,
            notifier,
            clock,
            out,
        }
    }

    async fn send(&self, e: Event) {
        let token = e.key.clone();
        self.tx
            .send(Delivery {
                event: e,
                ack: Ack::new(self.acks_tx.clone(), 1, token),
            })
            .await
            .unwrap();
    }

    async fn send_all(&self, es: Vec<Event>) {
        for e in es {
            self.send(e).await;
        }
        self.engine.poke().await;
    }

    fn acks(&mut self) -> Vec<AckMsg> {
        let mut v = Vec::new();
        while let Ok(a) = self.acks.try_recv() {
            v.push(a);
        }
        v
    }

    fn decisions(&mut self) -> Vec<Decision> {
        let mut v = Vec::new();
        while let Ok(o) = self.out.try_recv() {
            if let Output::Decision { decision } = o {
                v.push(decision);
            }
        }
        v
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

fn alarm(sensor: &str, status_ok: bool, severity: Severity, key: &str) -> Event {
    let kind = if status_ok {
        EventKind::AlarmCleared
    } else {
        EventKind::AlarmRaised
    };
    let mut e = Event::new(Source::Saveris, "a1", "alarms", kind, key.into());
    e.sensor = Some(sensor.into());
    e.device = Some(format!("dev-{sensor}"));
    e.name = Some(format!("Fridge {sensor}"));
    e.condition = Some("Upper limit".into());
    e.alarm_id = Some(format!("{sensor}:upper"));
    e.value = Some(9.5);
    e.unit = Some("°C".into());
    e.severity = severity;
    e.received_at = Timestamp::from_millisecond(T0).unwrap();
    e.measured_at = Some(Timestamp::from_millisecond(T0).unwrap());
    e.raw = format!("{{\"alarm_source_uuid\":\"{sensor}\"}}");
    e
}

fn raise(sensor: &str) -> Event {
    alarm(sensor, false, Severity::Alarm, &format!("raise-{sensor}"))
}

fn measurement(sensor: &str, v: f64, at: Timestamp, key: &str) -> Event {
    let mut e = Event::new(
        Source::Saveris,
        "a1",
        "measurements",
        EventKind::Measurement,
        key.into(),
    );
    e.sensor = Some(sensor.into());
    e.quantity = Some("Temperature".into());
    e.value = Some(v);
    e.unit = Some("°C".into());
    e.measured_at = Some(at);
    e.received_at = at;
    e
}

#[tokio::test]
async fn raise_pops_critical_popup_and_clear_closes_it() {
    let mut rig = Rig::new(Settings::default());
    rig.send_all(vec![raise("s1")]).await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1);
    let p = &shown[0];
    assert_eq!(p.urgency, Urgency::Critical);
    assert!(p.actions);
    assert_eq!(p.summary, "Alarm: Fridge s1 \u{2014} Upper limit");
    assert!(p.body.contains("9.5 °C"), "{}", p.body);
    let id = p.alarm_id.unwrap();
    assert_eq!(rig.engine.status().tray, TrayState::Alarm);
    assert_eq!(rig.engine.status().active_alarms, 1);

    rig.send_all(vec![alarm("s1", true, Severity::Alarm, "clear-s1")])
        .await;
    assert_eq!(rig.notifier.closed(), vec![format!("alarm:{id}")]);
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(row.cleared_ms, Some(T0));
    assert_eq!(rig.engine.status().tray, TrayState::Ok);
    let acks = rig.acks();
    assert_eq!(acks.len(), 2);
    assert!(acks.iter().all(|a| a.stored));
}

#[tokio::test]
async fn redelivery_is_stored_once_popped_once_and_acked_again() {
    let mut rig = Rig::new(Settings::default());
    rig.send_all(vec![raise("s1")]).await;
    let mut again = raise("s1");
    again.received_at = rig.now();
    rig.send_all(vec![again]).await;
    assert_eq!(rig.engine.history().event_count().unwrap(), 1);
    assert_eq!(rig.notifier.shown().len(), 1);
    let acks = rig.acks();
    assert_eq!(
        acks.len(),
        2,
        "a duplicate is confirmed too: it was stored before"
    );
    assert!(acks.iter().all(|a| a.stored));
    let events: usize = {
        let mut n = 0;
        while let Ok(o) = rig.out.try_recv() {
            if matches!(o, Output::Event { .. }) {
                n += 1;
            }
        }
        n
    };
    assert_eq!(events, 1, "only new events are output");
}

#[tokio::test]
async fn clear_without_raise_is_history_only() {
    let mut rig = Rig::new(Settings::default());
    rig.send_all(vec![alarm("s9", true, Severity::Alarm, "c9")])
        .await;
    assert!(rig.notifier.calls().is_empty());
    assert_eq!(rig.engine.history().event_count().unwrap(), 1);
    assert!(rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap()
        .is_empty());
    assert_eq!(rig.engine.status().tray, TrayState::Ok);
    assert!(rig.acks()[0].stored);
}

#[tokio::test]
async fn warning_is_normal_urgency_and_raise_again_updates() {
    let mut rig = Rig::new(Settings::default());
    let w = alarm("s2", false, Severity::Warning, "w1");
    let mut w2 = alarm("s2", false, Severity::Warning, "w2");
    w2.value = Some(11.0);
    rig.send_all(vec![w, w2]).await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1, "raised again while active: no second popup");
    assert_eq!(shown[0].urgency, Urgency::Normal);
    let rows = rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].value, Some(11.0));
    let _ = rig.decisions();
}

#[tokio::test]
async fn storm_becomes_three_popups_and_one_summary() {
    let mut rig = Rig::new(Settings::default());
    let es: Vec<Event> = (0..17)
        .map(|i| raise(&format!("s{}", i % 5)).tap_key(i))
        .collect();
    rig.send_all(es).await;
    // 17 raises on 5 sensors: 5 distinct alarms (same sensor + condition = same alarm).
    assert_eq!(rig.notifier.shown().len(), 3);
    let grouped = rig
        .decisions()
        .into_iter()
        .filter(|d| matches!(d, Decision::Grouped { .. }))
        .count();
    assert_eq!(grouped, 2);
    rig.clock.advance_secs(9);
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown().len(), 3, "the window is still open");
    rig.clock.advance_secs(1);
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 4);
    assert_eq!(shown[3].summary, "5 alarms on 5 sensors");
    assert_eq!(shown[3].tag, "summary");
    assert_eq!(shown[3].urgency, Urgency::Critical);
}

trait TapKey {
    fn tap_key(self, i: usize) -> Self;
}
impl TapKey for Event {
    fn tap_key(mut self, i: usize) -> Self {
        self.key = format!("{}-{i}", self.key);
        self
    }
}

#[tokio::test]
async fn replayed_alarms_are_summarised() {
    let rig = Rig::new(Settings::default());
    let es: Vec<Event> = (0..4)
        .map(|i| {
            let mut e = raise(&format!("r{i}"));
            e.replayed = true;
            e
        })
        .collect();
    rig.send_all(es).await;
    assert!(
        rig.notifier.shown().is_empty(),
        "catch-up alarms are not popped one by one"
    );
    rig.clock.advance_secs(10);
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].summary, "4 alarms on 4 sensors while disconnected");
}

#[tokio::test]
async fn pause_holds_back_but_critical_passes_when_allowed() {
    let mut s = Settings::default();
    s.notifications.paused = true;
    let mut rig = Rig::new(s.clone());
    assert_eq!(rig.engine.status().tray, TrayState::Paused);
    rig.send_all(vec![alarm("w", false, Severity::Warning, "w")])
        .await;
    assert!(rig.notifier.shown().is_empty());
    assert!(rig
        .decisions()
        .iter()
        .any(|d| matches!(d, Decision::HeldBack { reason, .. } if reason == "paused")));
    rig.send_all(vec![raise("c")]).await;
    assert_eq!(
        rig.notifier.shown().len(),
        1,
        "critical still shows (allow_critical)"
    );
    s.notifications.quiet_hours.allow_critical = false;
    rig.engine.update_settings(s);
    rig.send_all(vec![raise("d")]).await;
    assert_eq!(rig.notifier.shown().len(), 1);
    assert_eq!(
        rig.engine
            .history()
            .alarms(&AlarmFilter::default())
            .unwrap()
            .len(),
        3,
        "all in history"
    );
}

#[tokio::test]
async fn quiet_hours_at_midnight() {
    let mut s = Settings::default();
    s.notifications.quiet_hours.enabled = true;
    s.notifications.quiet_hours.allow_critical = false;
    let rig = Rig::new(s); // 22:00–07:00, clock at 22:13 UTC
    rig.send_all(vec![raise("a")]).await;
    assert!(rig.notifier.shown().is_empty());
    assert_eq!(
        rig.engine.status().tray,
        TrayState::Alarm,
        "the tray still counts it"
    );
    // 07:00 next morning: quiet hours over.
    rig.clock.set("2023-11-15T07:00:00Z".parse().unwrap());
    rig.send_all(vec![raise("b")]).await;
    let shown = rig.notifier.shown();
    assert_eq!(
        shown.len(),
        2,
        "the new alarm, and the one held back overnight: {shown:?}"
    );
    assert!(shown.iter().any(|p| p.summary.contains("Fridge a")));
    assert!(shown.iter().any(|p| p.summary.contains("Fridge b")));
}

#[tokio::test]
async fn acknowledge_stops_repeats_and_recounts_tray() {
    let mut s = Settings::default();
    s.notifications.critical.repeat_mins = 5;
    let rig = Rig::new(s);
    rig.send_all(vec![raise("a")]).await;
    let id = rig.notifier.shown()[0].alarm_id.unwrap();
    rig.clock.advance_secs(299);
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown().len(), 1);
    rig.clock.advance_secs(1);
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown().len(), 2, "repeated after 5 min");
    rig.engine.acknowledge(id, "ui").await.unwrap();
    assert_eq!(rig.engine.status().tray, TrayState::Ok);
    assert_eq!(rig.engine.status().active_alarms, 0);
    rig.clock.advance_secs(600);
    rig.engine.poke().await;
    assert_eq!(
        rig.notifier.shown().len(),
        2,
        "acknowledged alarms do not repeat"
    );
    assert!(rig.notifier.closed().contains(&format!("alarm:{id}")));
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(row.acknowledged_by.as_deref(), Some("ui"));
    assert!(matches!(
        rig.engine.acknowledge(9999, "ui").await,
        Err(EngineError::NoSuchAlarm(9999))
    ));
}

#[tokio::test]
async fn silent_feed_raises_its_own_popup_and_clears_when_back() {
    let rig = Rig::new(Settings::default());
    let mut st = FeedStatus::new("saveris:a1".into(), "Saveris eu/production (alice)".into());
    st.state = FeedState::Live;
    rig.status_tx.send(st.clone()).unwrap();
    rig.engine.poke().await;
    st.state = FeedState::Waiting {
        secs: 600,
        reason: "rate limit".into(),
    };
    rig.status_tx.send(st.clone()).unwrap();
    rig.engine.poke().await;
    assert_eq!(rig.engine.status().tray, TrayState::Problem);
    rig.clock.advance_secs(300);
    rig.engine.poke().await;
    assert!(
        rig.notifier.shown().is_empty(),
        "5 min is not more than 5 min"
    );
    rig.clock.advance_secs(1);
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        shown[0].summary,
        "Saveris eu/production (alice): not connected since 22:13 \u{2014} alarms may be missed"
    );
    assert_eq!(shown[0].tag, "feed:saveris:a1");
    st.state = FeedState::Live;
    rig.status_tx.send(st).unwrap();
    rig.engine.poke().await;
    assert_eq!(rig.notifier.closed(), vec!["feed:saveris:a1".to_string()]);
    assert_eq!(rig.engine.status().tray, TrayState::Ok);
    assert_eq!(rig.engine.status().feeds.len(), 1);
}

#[tokio::test]
async fn threshold_rule_raises_and_clears_from_measurements() {
    let mut s = Settings::default();
    s.rules.push(ThresholdRule {
        id: "r1".into(),
        name: "fridge".into(),
        limit: Limit::Above { value: 8.0 },
        hysteresis: 0.5,
        ..Default::default()
    });
    s.sensors.insert(
        "s1".into(),
        SensorPrefs {
            name: "Kitchen fridge".into(),
            notify: true,
            ..Default::default()
        },
    );
    let rig = Rig::new(s);
    let t = rig.now();
    rig.send_all(vec![
        measurement("s1", 7.0, t, "m1"),
        measurement("s1", 8.4, t, "m2"),
        measurement("s1", 7.8, t, "m3"),
    ])
    .await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].summary, "Alarm: Kitchen fridge 8.4 °C");
    assert!(
        shown[0]
            .body
            .contains("above 8 (rule \u{201c}fridge\u{201d})"),
        "{}",
        shown[0].body
    );
    rig.send_all(vec![measurement("s1", 7.5, t, "m4")]).await;
    assert_eq!(rig.notifier.closed().len(), 1);
    let latest = rig.engine.history().latest_values().unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].value, 7.5);
    assert_eq!(rig.engine.history().series("s1", 0).unwrap().len(), 4);
}

#[tokio::test]
async fn muted_sensor_goes_to_history_only() {
    let mut s = Settings::default();
    s.sensors.insert(
        "s1".into(),
        SensorPrefs {
            name: String::new(),
            notify: false,
            ..Default::default()
        },
    );
    let mut rig = Rig::new(s);
    rig.send_all(vec![raise("s1")]).await;
    assert!(rig.notifier.shown().is_empty());
    assert!(rig
        .decisions()
        .iter()
        .any(|d| matches!(d, Decision::HeldBack { reason, .. } if reason == "sensor muted")));
    assert_eq!(
        rig.engine
            .history()
            .alarms(&AlarmFilter::default())
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_batch_that_failed_to_store_is_retried_from_memory_and_confirmed_once_stored() {
    let history = History::open_in_memory().unwrap();
    let mut rig = Rig::with_history(Settings::default(), history.clone());
    history.break_writes_for_test(true);
    rig.send_all(vec![raise("s1")]).await;
    assert!(
        rig.acks().is_empty(),
        "held in memory: neither confirmed nor given up"
    );
    assert!(rig.notifier.shown().is_empty());
    let status = rig.engine.status();
    assert_eq!(status.tray, TrayState::Problem);
    assert!(
        status.summary.contains("history cannot be written"),
        "{}",
        status.summary
    );
    assert!(rig
        .decisions()
        .iter()
        .any(|d| matches!(d, Decision::StorageFailed { events: 1, .. })));
    // More arrives meanwhile: it waits behind the held batch.
    rig.send_all(vec![raise("s2")]).await;
    assert!(rig.acks().is_empty());

    // Storage works again: the held batch is stored without being sent again, then the rest.
    history.break_writes_for_test(false);
    rig.engine.poke().await;
    let acks = rig.acks();
    assert_eq!(
        acks.iter()
            .map(|a| (a.token.as_str(), a.stored))
            .collect::<Vec<_>>(),
        vec![("raise-s1", true), ("raise-s2", true)]
    );
    assert_eq!(rig.notifier.shown().len(), 2);
    assert_eq!(rig.engine.status().tray, TrayState::Alarm);
}

#[tokio::test]
async fn a_batch_that_keeps_failing_is_given_up_after_a_minute_and_left_upstream() {
    let history = History::open_in_memory().unwrap();
    let mut rig = Rig::with_history(Settings::default(), history.clone());
    history.break_writes_for_test(true);
    rig.send_all(vec![raise("s1")]).await;
    rig.clock.advance_secs(59);
    rig.engine.poke().await;
    assert!(rig.acks().is_empty(), "still tried within the minute");
    rig.clock.advance_secs(1);
    rig.engine.poke().await;
    let acks = rig.acks();
    assert_eq!(acks.len(), 1);
    assert!(
        !acks[0].stored,
        "given up: the feed must not confirm it, and has the upstream send it again"
    );
    let failed = rig
        .decisions()
        .into_iter()
        .filter(|d| matches!(d, Decision::StorageFailed { .. }))
        .count();
    assert_eq!(failed, 2, "told when it failed, and when it was given up");
    assert_eq!(rig.engine.status().tray, TrayState::Problem);
    // The next delivery is taken (and stored, now that it works).
    history.break_writes_for_test(false);
    rig.send_all(vec![raise("s1")]).await;
    assert!(rig.acks()[0].stored);
    assert_eq!(rig.notifier.shown().len(), 1);
}

#[tokio::test]
async fn warning_then_alarm_pops_again_critical_and_keeps_both_steps() {
    let mut rig = Rig::new(Settings::default());
    let warning = alarm("s1", false, Severity::Warning, "w1");
    let mut worse = alarm("s1", false, Severity::Alarm, "a1");
    worse.measured_at = Some(Timestamp::from_millisecond(T0 + 60_000).unwrap());
    worse.value = Some(12.0);
    rig.send_all(vec![warning]).await;
    let id = rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap()[0]
        .id;
    // The user acknowledges the warning; it getting worse must be told anyway.
    rig.engine.acknowledge(id, "ui").await.unwrap();
    rig.clock.advance_secs(60);
    rig.send_all(vec![worse]).await;

    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(shown[0].urgency, Urgency::Normal);
    assert_eq!(shown[1].urgency, Urgency::Critical);
    assert_eq!(shown[1].tag, shown[0].tag, "replaces the warning's popup");
    assert!(
        shown[1].summary.contains("got worse: now Alarm"),
        "{}",
        shown[1].summary
    );
    assert!(
        shown[1].body.contains("Warning since") && shown[1].body.contains("Alarm since"),
        "{}",
        shown[1].body
    );
    let rows = rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap();
    assert_eq!(rows.len(), 1, "one alarm: same sensor, same condition");
    let row = &rows[0];
    assert_eq!(row.severity, Severity::Alarm);
    assert_eq!(row.value, Some(12.0));
    assert_eq!(
        row.acknowledged_ms, None,
        "worse reopens the acknowledgement"
    );
    let steps: Vec<(i64, Severity)> = row.steps.iter().map(|s| (s.at_ms, s.severity)).collect();
    assert_eq!(
        steps,
        vec![(T0, Severity::Warning), (T0 + 60_000, Severity::Alarm)]
    );
    assert!(rig.decisions().iter().any(|d| matches!(
        d,
        Decision::SeverityChanged { alarm, from: Severity::Warning } if alarm.severity == Severity::Alarm
    )));

    // Milder again: quiet, but recorded.
    let mut milder = alarm("s1", false, Severity::Warning, "w2");
    milder.measured_at = Some(Timestamp::from_millisecond(T0 + 120_000).unwrap());
    // An old message arriving late changes nothing.
    let mut stale = alarm("s1", false, Severity::Warning, "w0");
    stale.measured_at = Some(Timestamp::from_millisecond(T0 - 1).unwrap());
    rig.send_all(vec![stale, milder]).await;
    assert_eq!(rig.notifier.shown().len(), 2, "milder is quiet");
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(row.severity, Severity::Warning);
    assert_eq!(row.steps.len(), 3);
    assert_eq!(rig.engine.status().active_alarms, 1);

    // Ok clears the condition.
    rig.send_all(vec![alarm("s1", true, Severity::Info, "ok1")])
        .await;
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert!(row.cleared_ms.is_some());
    assert_eq!(rig.engine.status().active_alarms, 0);
}

#[tokio::test]
async fn severity_steps_survive_a_restart() {
    let history = History::open_in_memory().unwrap();
    let rig = Rig::with_history(Settings::default(), history.clone());
    rig.send_all(vec![alarm("s1", false, Severity::Warning, "w1")])
        .await;
    rig.engine.clone().shutdown().await;
    let rig = Rig::with_history(Settings::default(), history.clone());
    let mut worse = alarm("s1", false, Severity::Alarm, "a1");
    worse.measured_at = Some(Timestamp::from_millisecond(T0 + 1000).unwrap());
    rig.send_all(vec![worse]).await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].urgency, Urgency::Critical);
    let rows = history.alarms(&AlarmFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].steps.len(), 2);
}

#[tokio::test]
async fn restart_pops_what_was_never_told_and_restores_the_tray() {
    let history = History::open_in_memory().unwrap();
    // An alarm committed by a previous run that crashed before its popup.
    history
        .write(|w| {
            w.raise_alarm(&history::NewAlarm {
                alarm_key: "saveris:a1:x".into(),
                source: Source::Saveris,
                account: "a1".into(),
                device: None,
                sensor: Some("x".into()),
                name: Some("Freezer".into()),
                condition: Some("Lower limit".into()),
                severity: Severity::Alarm,
                value: Some(-30.0),
                unit: Some("°C".into()),
                limit: None,
                rule_id: None,
                event_id: None,
                raised_ms: T0,
            })
        })
        .unwrap();
    let rig = Rig::with_history(Settings::default(), history.clone());
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown().len(), 1);
    assert_eq!(rig.engine.status().active_alarms, 1);
    rig.engine.clone().shutdown().await;

    let rig2 = Rig::with_history(Settings::default(), history);
    rig2.engine.poke().await;
    assert!(
        rig2.notifier.shown().is_empty(),
        "told once, not again after a restart"
    );
    assert_eq!(rig2.engine.status().tray, TrayState::Alarm);
}

#[tokio::test]
async fn cursor_is_stored_with_the_event() {
    let rig = Rig::new(Settings::default());
    let mut e = Event::new(
        Source::Element,
        "e1",
        "sub1",
        EventKind::Reading,
        "rd-1".into(),
    );
    e.device = Some("d1".into());
    e.fields = vec![("temperature".into(), 4.0), ("humidity".into(), 55.0)];
    e.quantity = Some("temperature".into());
    e.value = Some(4.0);
    e.cursor = Some("2024-05-01T10:00:00Z".into());
    rig.send_all(vec![e]).await;
    let c = rig.engine.history().cursors(Source::Element, "e1").unwrap();
    assert_eq!(
        c.get("sub1").map(String::as_str),
        Some("2024-05-01T10:00:00Z")
    );
    let latest = rig.engine.history().latest_values().unwrap();
    assert_eq!(latest.len(), 2, "one last value per field");
}

#[tokio::test]
async fn shutdown_drains_queued_deliveries() {
    let mut rig = Rig::new(Settings::default());
    for i in 0..50 {
        let t = rig.now();
        let e = measurement("s", i as f64, t, &format!("k{i}"));
        rig.tx
            .send(Delivery {
                event: e,
                ack: Ack::new(rig.acks_tx.clone(), 1, format!("k{i}")),
            })
            .await
            .unwrap();
    }
    let h = rig.engine.history().clone();
    rig.engine.clone().shutdown().await;
    assert_eq!(h.event_count().unwrap(), 50);
    assert_eq!(rig.acks().iter().filter(|a| a.stored).count(), 50);
}

#[tokio::test]
async fn held_back_alarms_pop_when_the_pause_ends() {
    let mut s = Settings::default();
    s.notifications.paused = true;
    let rig = Rig::new(s.clone());
    let w = |sensor: &str| alarm(sensor, false, Severity::Warning, &format!("w-{sensor}"));
    rig.send_all(vec![w("a"), w("b"), w("c")]).await;
    assert!(rig.notifier.shown().is_empty());
    let id_c = rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap()[0]
        .id;
    rig.engine.acknowledge(id_c, "ui").await.unwrap();
    s.notifications.paused = false;
    rig.engine.update_settings(s);
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        shown[0].summary,
        "2 alarms on 2 sensors while popups were held back"
    );
    rig.clock.advance_secs(60);
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown().len(), 1, "released once");
}

#[tokio::test]
async fn output_json_shapes_for_watch() {
    let mut rig = Rig::new(Settings::default());
    rig.send_all(vec![raise("s1")]).await;
    let mut lines = Vec::new();
    while let Ok(o) = rig.out.try_recv() {
        lines.push(serde_json::to_value(&o).unwrap());
    }
    let event = lines
        .iter()
        .find(|l| l["type"] == "event")
        .expect("an event line");
    assert_eq!(event["event"]["kind"], "alarm_raised");
    assert_eq!(event["event"]["sensor"], "s1");
    assert!(event["id"].as_i64().unwrap() > 0);
    let popup = lines
        .iter()
        .find(|l| l["type"] == "decision" && l["decision"]["kind"] == "popup")
        .unwrap();
    assert_eq!(popup["decision"]["popup"]["urgency"], "critical");
    assert_eq!(popup["decision"]["repeat"], false);
    let raised = lines
        .iter()
        .find(|l| l["decision"]["kind"] == "alarm_raised")
        .unwrap();
    assert_eq!(raised["decision"]["alarm"]["severity"], "alarm");
    let status = lines.iter().find(|l| l["type"] == "status").unwrap();
    assert_eq!(status["status"]["tray"], "alarm");
    assert_eq!(status["status"]["active_alarms"], 1);
}

#[tokio::test]
async fn popup_actions_are_routed() {
    let rig = Rig::new(Settings::default());
    rig.send_all(vec![raise("s1")]).await;
    let id = rig.notifier.shown()[0].alarm_id.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = opened.clone();
    let task = route_popup_actions(rig.engine.clone(), rx, move |id| o.lock().unwrap().push(id));
    tx.send(PopupAction::Open(Some(id))).unwrap();
    tx.send(PopupAction::Acknowledge(id)).unwrap();
    drop(tx);
    task.await.unwrap();
    assert_eq!(*opened.lock().unwrap(), vec![Some(id)]);
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(row.acknowledged_by.as_deref(), Some("popup"));
}

#[tokio::test]
async fn a_storm_during_quiet_hours_is_released_as_one_summary() {
    let mut s = Settings::default();
    s.notifications.quiet_hours.enabled = true;
    s.notifications.quiet_hours.allow_critical = false;
    let rig = Rig::new(s); // 22:13 UTC: quiet
    let es: Vec<Event> = (0..6).map(|i| raise(&format!("q{i}"))).collect();
    rig.send_all(es).await;
    rig.clock.advance_secs(10);
    rig.engine.poke().await; // the grouping window closes: its summary is held back too
    assert!(rig.notifier.shown().is_empty());
    rig.clock.set("2023-11-15T07:00:00Z".parse().unwrap());
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        shown[0].summary,
        "6 alarms on 6 sensors while popups were held back"
    );
}

#[tokio::test]
async fn last_message_time_per_feed_comes_from_deliveries() {
    let rig = Rig::new(Settings::default());
    let mut st = FeedStatus::new("saveris:a1".into(), "Saveris eu/production (alice)".into());
    st.state = FeedState::Live;
    rig.status_tx.send(st).unwrap();
    let mut e = raise("s1");
    e.received_at = "2023-11-14T22:14:59Z".parse().unwrap();
    rig.send_all(vec![e]).await;
    let feeds = rig.engine.status().feeds;
    assert_eq!(feeds.len(), 1);
    assert_eq!(
        feeds[0].last_message_at,
        Some("2023-11-14T22:14:00Z".parse().unwrap()),
        "to the minute"
    );
}

/// A notifier whose daemon never answers.
struct Hung(std::sync::Mutex<()>, std::sync::Condvar);

impl Notifier for Hung {
    fn show(&self, _: &Popup) -> Result<(), crate::notify::NotifyError> {
        let g = self.0.lock().unwrap();
        let _ = self.1.wait_timeout(g, std::time::Duration::from_secs(30));
        Ok(())
    }
    fn close(&self, _: &str) {}
}

#[tokio::test]
async fn a_hung_notifier_neither_stalls_storage_nor_blocks_shutdown() {
    let (tx, rx) = mpsc::channel(16);
    let (_status_tx, status_rx) = mpsc::unbounded_channel();
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let history = History::open_in_memory().unwrap();
    let hung = Arc::new(Hung(std::sync::Mutex::new(()), std::sync::Condvar::new()));
    let engine = spawn(
        Settings::default(),
        history.clone(),
        hung.clone(),
        rx,
        status_rx,
    );
    for i in 0..3 {
        let e = raise(&format!("h{i}"));
        tx.send(Delivery {
            event: e,
            ack: Ack::new(acks_tx.clone(), 1, i.to_string()),
        })
        .await
        .unwrap();
    }
    for _ in 0..3 {
        let a = tokio::time::timeout(std::time::Duration::from_secs(5), acks.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            a.stored,
            "stored and confirmed while the popup thread hangs"
        );
    }
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(15), engine.shutdown())
        .await
        .expect("shutdown returns");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(history.alarms(&AlarmFilter::default()).unwrap().len(), 3);
    hung.1.notify_all();
}

#[tokio::test]
async fn acknowledgement_records_the_person_and_the_comment() {
    let s = Settings {
        display_name: "Ana Ruiz".into(),
        ..Settings::default()
    };
    let mut rig = Rig::new(s);
    rig.send_all(vec![raise("a")]).await;
    let id = rig.notifier.shown()[0].alarm_id.unwrap();
    rig.engine
        .acknowledge_with(id, "window", Some("  door left open, closed it ".into()))
        .await
        .unwrap();
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(row.acknowledged_by.as_deref(), Some("window"));
    let user = row.acknowledged_user.unwrap();
    assert!(user.starts_with("Ana Ruiz ("), "{user}");
    assert_eq!(
        row.acknowledged_comment.as_deref(),
        Some("door left open, closed it")
    );
    assert_eq!(row.acknowledged_ms, Some(T0));
    // `watch` prints it as a decision line with who and why.
    let ack = rig
        .decisions()
        .into_iter()
        .find(|d| matches!(d, Decision::Acknowledged { .. }))
        .map(|d| serde_json::to_value(d).unwrap())
        .expect("an acknowledged decision");
    assert_eq!(ack["by"], "window");
    assert_eq!(ack["comment"], "door left open, closed it");
    assert!(ack["user"].as_str().unwrap().starts_with("Ana Ruiz ("));
}

#[tokio::test]
async fn a_critical_alarm_needs_a_comment_when_the_setting_says_so() {
    let s = Settings {
        comment_required_critical: true,
        ..Settings::default()
    };
    let rig = Rig::new(s);
    rig.send_all(vec![
        raise("crit"),
        alarm("warm", false, Severity::Warning, "raise-warm"),
    ])
    .await;
    let rows = rig
        .engine
        .history()
        .alarms(&AlarmFilter::default())
        .unwrap();
    let crit = rows
        .iter()
        .find(|r| r.severity == Severity::Alarm)
        .unwrap()
        .id;
    let warn = rows
        .iter()
        .find(|r| r.severity == Severity::Warning)
        .unwrap()
        .id;
    for blank in [None, Some("   ".to_string())] {
        assert!(matches!(
            rig.engine.acknowledge_with(crit, "window", blank).await,
            Err(EngineError::CommentRequired(i)) if i == crit
        ));
    }
    assert_eq!(
        rig.engine
            .history()
            .alarm(crit)
            .unwrap()
            .unwrap()
            .acknowledged_ms,
        None
    );
    // A warning is not critical: no comment needed.
    rig.engine.acknowledge(warn, "window").await.unwrap();
    rig.engine
        .acknowledge_with(crit, "window", Some("checked the probe".into()))
        .await
        .unwrap();
    let row = rig.engine.history().alarm(crit).unwrap().unwrap();
    assert_eq!(
        row.acknowledged_comment.as_deref(),
        Some("checked the probe")
    );
}

#[tokio::test]
async fn popup_acknowledge_of_an_alarm_needing_a_comment_opens_the_window_instead() {
    let s = Settings {
        comment_required_critical: true,
        ..Settings::default()
    };
    let rig = Rig::new(s);
    rig.send_all(vec![raise("s1")]).await;
    let id = rig.notifier.shown()[0].alarm_id.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = opened.clone();
    let task = route_popup_actions(rig.engine.clone(), rx, move |id| o.lock().unwrap().push(id));
    tx.send(PopupAction::Acknowledge(id)).unwrap();
    drop(tx);
    task.await.unwrap();
    assert_eq!(*opened.lock().unwrap(), vec![Some(id)]);
    let row = rig.engine.history().alarm(id).unwrap().unwrap();
    assert_eq!(
        row.acknowledged_ms, None,
        "not acknowledged without the comment"
    );
}

#[tokio::test]
async fn the_audit_trail_records_the_alarm_life_and_who_acknowledged_why() {
    let mut s = Settings {
        display_name: "Ana Ruiz".into(),
        ..Settings::default()
    };
    let rig = Rig::new(s.clone());
    rig.send_all(vec![alarm("a", false, Severity::Warning, "warn-a")])
        .await;
    rig.send_all(vec![alarm("a", false, Severity::Alarm, "worse-a")])
        .await;
    let id = rig.notifier.shown()[0].alarm_id.unwrap();
    rig.engine
        .acknowledge_with(id, "window", Some("probe checked".into()))
        .await
        .unwrap();
    rig.send_all(vec![alarm("a", true, Severity::Alarm, "clear-a")])
        .await;
    s.notifications.paused = true;
    rig.engine.update_settings(s);
    let mut st = FeedStatus::new("saveris:a1".into(), "Saveris (alice)".into());
    st.state = FeedState::Live;
    rig.status_tx.send(st.clone()).unwrap();
    rig.engine.poke().await;
    st.state = FeedState::Waiting {
        secs: 600,
        reason: "rate limit".into(),
    };
    rig.status_tx.send(st.clone()).unwrap();
    rig.engine.poke().await;
    let audit = rig.engine.history().audit().unwrap();
    let report = audit.verify().unwrap();
    assert!(report.intact, "{report:?}");
    let kinds = audit_kinds(rig.engine.history());
    for k in [
        "app_started",
        "alarm_raised",
        "popup_shown",
        "alarm_worse",
        "acknowledged",
        "alarm_cleared",
        "notifications_paused",
        "feed_up",
        "feed_down",
    ] {
        assert!(
            kinds.iter().any(|(kind, _)| kind == k),
            "{k} missing: {kinds:?}"
        );
    }
    let down = kinds.iter().find(|(k, _)| k == "feed_down").unwrap();
    assert_eq!(down.1["feed"], "saveris:a1");
    assert_eq!(
        kinds.iter().filter(|(k, _)| k == "feed_up").count(),
        1,
        "one up, not one per status: {kinds:?}"
    );
    let ack = kinds.iter().find(|(k, _)| k == "acknowledged").unwrap();
    assert_eq!(ack.1["comment"], "probe checked");
    assert!(ack.1["user"].as_str().unwrap().starts_with("Ana Ruiz ("));
    assert_eq!(report.records as usize, kinds.len());
}

/// Issue 28: a batch of alarms costs the audit trail one commit (one fsync), not one per
/// alarm, and every alarm and popup of it is in the trail.
#[tokio::test]
async fn a_batch_of_alarms_is_one_audit_commit() {
    let mut rig = Rig::new(Settings::default());
    rig.engine.poke().await;
    let audit = rig.engine.history().audit().unwrap().clone();
    audit.flush();
    let before = audit.commits();
    let events: Vec<_> = (0..30).map(|i| raise(&format!("s{i}"))).collect();
    rig.send_all(events).await;
    audit.flush();
    assert_eq!(rig.acks().len(), 30);
    let commits = audit.commits() - before;
    assert!(
        commits <= 2,
        "{commits} audit commits for one batch of 30 alarms"
    );
    let kinds = audit_kinds(rig.engine.history());
    assert_eq!(
        kinds.iter().filter(|(k, _)| k == "alarm_raised").count(),
        30
    );
    assert!(audit.verify().unwrap().intact);
}

/// (kind, detail) of every audit record, oldest first.
fn audit_kinds(h: &History) -> Vec<(String, serde_json::Value)> {
    h.audit()
        .unwrap()
        .records()
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, serde_json::from_str(&r.detail).unwrap()))
        .collect()
}

/// Issue 21 item 4: a trail that cannot be written shows in the status line (tray and
/// General page), and the line clears once the waiting records are written.
#[tokio::test]
async fn audit_write_errors_show_in_the_status() {
    let mut rig = Rig::new(Settings::default());
    rig.engine.poke().await;
    let audit = rig.engine.history().audit().unwrap().clone();
    audit.flush();
    assert!(!rig.engine.status().summary.contains("audit"));
    audit.break_writes_for_test(true);
    rig.send_all(vec![alarm("a", false, Severity::Warning, "audit-a")])
        .await;
    audit.flush();
    rig.engine.poke().await;
    let st = rig.engine.status();
    assert!(
        st.summary.contains("audit trail cannot be written"),
        "{}",
        st.summary
    );
    audit.break_writes_for_test(false);
    rig.send_all(vec![alarm("a", true, Severity::Warning, "audit-a-clear")])
        .await;
    audit.flush();
    rig.engine.poke().await;
    let st = rig.engine.status();
    assert!(!st.summary.contains("audit"), "{}", st.summary);
    assert_eq!(st.tray, TrayState::Ok);
    let kinds = audit_kinds(rig.engine.history());
    assert!(
        kinds.iter().any(|(k, _)| k == "alarm_raised"),
        "the waiting records were written: {kinds:?}"
    );
    let _ = rig.decisions();
}

/// Issue 21 item 1, with the recording notifier: repeats per severity carry the severity's
/// sound, a snooze holds the sensor's new alarms back and ends by itself.
#[tokio::test]
async fn critical_rings_every_five_minutes_and_a_snooze_holds_the_sensor() {
    let mut s = Settings::default();
    s.notifications.warning.sound = Some(crate::notify::Sound::Chime);
    let mut rig = Rig::new(s.clone());
    rig.send_all(vec![alarm("a", false, Severity::Alarm, "ring-a")])
        .await;
    rig.send_all(vec![alarm("b", false, Severity::Warning, "ring-b")])
        .await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0].sound, Some(crate::notify::Sound::Alarm));
    assert_eq!(shown[1].sound, Some(crate::notify::Sound::Chime));
    rig.clock.advance_secs(300);
    rig.engine.poke().await;
    let shown = rig.notifier.shown();
    assert_eq!(shown.len(), 3, "only the critical one repeats by default");
    assert_eq!(shown[2].tag, shown[0].tag);
    assert_eq!(shown[2].sound, Some(crate::notify::Sound::Alarm));

    // Sound off: the next repeat is silent.
    s.notifications.sound = false;
    rig.engine.update_settings(s.clone());
    rig.clock.advance_secs(300);
    rig.engine.poke().await;
    assert_eq!(rig.notifier.shown()[3].sound, None);

    // Snoozed until tomorrow 07:00 UTC: a new alarm of that sensor is held back.
    let z = rig
        .engine
        .snooze("b", model::SnoozeFor::UntilTomorrow, "cleaning")
        .await
        .unwrap();
    let tomorrow_7: Timestamp = "2023-11-15T07:00:00Z".parse().unwrap();
    assert_eq!(z.until_ms, tomorrow_7.as_millisecond());
    assert_eq!(z.reason, "cleaning");
    let mut other = alarm("b", false, Severity::Warning, "ring-b2");
    other.alarm_id = Some("b:lower".into());
    rig.send_all(vec![other]).await;
    assert!(rig.decisions().iter().any(|d| matches!(
        d,
        Decision::HeldBack { reason, .. } if reason == "sensor snoozed"
    )));
    assert_eq!(rig.notifier.shown().len(), 4);
    // The snooze is kept in the history (a restart honours it) and ends early on request.
    assert_eq!(rig.engine.history().snoozes().unwrap().len(), 1);
    assert!(rig.engine.end_snooze("b").await.unwrap());
    assert!(rig.engine.history().snoozes().unwrap().is_empty());
    // The popup goes out on the popup thread: wait for it (bounded), as the user would.
    for _ in 0..100 {
        if rig.notifier.shown().len() > 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        rig.notifier.shown().len() > 4,
        "the sensor's active alarms pop when the snooze ends"
    );
    let kinds = audit_kinds(rig.engine.history());
    for k in ["popup_repeated", "snoozed", "snooze_ended"] {
        assert!(kinds.iter().any(|(kind, _)| kind == k), "{k}: {kinds:?}");
    }
}
