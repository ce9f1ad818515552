//! What the engine stores: a batch of deliveries in one transaction, and the alarms it
//! raises, clears and acknowledges (kept in memory as [`Active`] while they are active).
//! Effects on the user are decided after the commit (`after_commit`), never inside it.

use std::collections::HashMap;

use super::history::{self, HistoryError, NewAlarm};
use super::model::{AlarmRow, LatestValue};
use super::rules::RuleOutcome;
use super::{Decision, Engine, EngineError, Output};
use crate::event::{Delivery, Event, EventKind, Severity, Source};

/// An alarm that is active (not cleared), as the engine keeps it in memory.
#[derive(Debug, Clone)]
pub(super) struct Active {
    pub(super) row: AlarmRow,
    pub(super) key: String,
    pub(super) rule: bool,
    /// Popup on screen (or handed to the notifier) under `alarm:<id>`.
    pub(super) shown: bool,
    /// Last time a popup was shown or held back (for repeats).
    pub(super) last_considered_ms: Option<i64>,
}

impl Active {
    pub(super) fn tag(&self) -> String {
        format!("alarm:{}", self.row.id)
    }
    pub(super) fn acked(&self) -> bool {
        self.row.acknowledged_ms.is_some()
    }
}

/// What happened to alarms inside a transaction; acted on after the commit.
pub(super) enum Effect {
    Raised { key: String, replayed: bool },
    Cleared(Box<Active>),
}

impl Engine {
    /// Reloads active alarms, restores rule states and pops what was never told (a crash
    /// between commit and popup).
    pub(super) fn start(&mut self) {
        if let Some(n) = self.history.notice() {
            tracing::warn!("{n}");
        }
        let now = self.now_ms();
        let untold = self.reload_active();
        if let Ok(latest) = self.history.latest_values() {
            for lv in latest {
                let mut e = Event::new(lv.source, "", "", EventKind::Measurement, String::new());
                e.sensor = Some(lv.sensor);
                e.name = lv.name;
                e.value = Some(lv.value);
                e.unit = lv.unit;
                e.quantity = lv.quantity;
                e.measured_at = jiff::Timestamp::from_millisecond(lv.at_ms).ok();
                self.rules.seed_seen(&e);
            }
        }
        for key in untold {
            self.consider_new(&key, false, now);
        }
        self.write_notified(now);
    }

    /// Loads active alarms from history; returns the keys of those never told to the user.
    pub(super) fn reload_active(&mut self) -> Vec<String> {
        let now = self.now_ms();
        self.active.clear();
        self.ids.clear();
        let rows = match self.history.active_alarms() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("could not load active alarms: {e}");
                self.storage_error = Some(e.to_string());
                return Vec::new();
            }
        };
        let mut untold = Vec::new();
        for a in rows {
            if let (Some(rule), Some(sensor)) = (&a.rule_id, &a.row.sensor) {
                self.rules.restore_raised(rule, sensor, now);
            }
            if a.notified_ms.is_none() && a.row.acknowledged_ms.is_none() {
                untold.push(a.alarm_key.clone());
            }
            self.ids.insert(a.row.id, a.alarm_key.clone());
            self.active.insert(
                a.alarm_key.clone(),
                Active {
                    row: a.row,
                    key: a.alarm_key,
                    rule: a.rule_id.is_some(),
                    shown: false,
                    last_considered_ms: a.notified_ms,
                },
            );
        }
        untold
    }

    /// Stores a batch in one transaction, then confirms, then decides.
    pub(super) fn process(&mut self, batch: &mut Vec<Delivery>) {
        let now = self.now_ms();
        let history = self.history.clone();
        let mut new_events: Vec<(usize, i64)> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        let result = history.write(|w| {
            let mut last: HashMap<(&str, &str), LatestValue> = HashMap::new();
            let mut cursors: HashMap<(Source, &str, &str), &str> = HashMap::new();
            for (i, d) in batch.iter().enumerate() {
                let e = &d.event;
                if let Some(c) = &e.cursor {
                    cursors.insert(
                        (e.source, e.account.as_str(), e.subscription.as_str()),
                        c.as_str(),
                    );
                }
                let Some(id) = w.insert_event(e)? else {
                    continue;
                };
                new_events.push((i, id));
                collect_last_values(e, &mut last);
                self.apply_event(w, e, id, now, &mut effects)?;
            }
            for v in last.values() {
                w.set_last_value(v)?;
            }
            for ((source, account, sub), cursor) in cursors {
                w.set_cursor(source, account, sub, cursor, now)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                let recovered = self.storage_error.take().is_some();
                self.note_messages(batch);
                if self.out.receiver_count() > 0 {
                    for (i, id) in &new_events {
                        self.emit(Output::Event {
                            id: *id,
                            event: batch[*i].event.clone(),
                        });
                    }
                }
                for d in batch.drain(..) {
                    d.ack.confirm();
                }
                self.after_commit(effects, now);
                if recovered {
                    tracing::info!("history is writable again");
                    self.publish_status();
                }
            }
            Err(e) => {
                let n = batch.len();
                for d in batch.drain(..) {
                    d.ack.reject();
                }
                let message = format!("events could not be stored, they stay upstream: {e}");
                if self.storage_error.is_none() {
                    tracing::error!("{message}");
                }
                self.storage_error = Some(message.clone());
                // The transaction rolled back: memory must match the database again.
                let _ = self.reload_active();
                self.decide(Decision::StorageFailed { message, events: n });
                self.publish_status();
            }
        }
    }

    /// Alarm logic of one newly stored event, inside the batch's transaction.
    fn apply_event(
        &mut self,
        w: &mut history::Writer<'_>,
        e: &Event,
        event_id: i64,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        match e.kind {
            EventKind::AlarmRaised | EventKind::SystemAlarm => {
                let key = upstream_alarm_key(e);
                if let Some(a) = self.active.get_mut(&key) {
                    // Raised again while active: the same alarm, a newer value.
                    w.update_alarm_value(a.row.id, e.value)?;
                    if e.value.is_some() {
                        a.row.value = e.value;
                    }
                    return Ok(());
                }
                let severity = if e.severity == Severity::Info {
                    Severity::Alarm
                } else {
                    e.severity
                };
                let alarm = NewAlarm {
                    alarm_key: key.clone(),
                    source: e.source,
                    account: e.account.clone(),
                    device: e.device.clone(),
                    sensor: e.sensor.clone(),
                    name: e.name.clone(),
                    condition: e.condition.clone(),
                    severity,
                    value: e.value,
                    unit: e.unit.clone(),
                    limit: None,
                    rule_id: None,
                    event_id: Some(event_id),
                    raised_ms: e.measured_at.unwrap_or(e.received_at).as_millisecond(),
                };
                self.insert_alarm(w, alarm, false, e.replayed, effects)?;
            }
            EventKind::AlarmCleared => {
                let key = upstream_alarm_key(e);
                if self.active.contains_key(&key) {
                    self.clear_alarm(w, &key, now, effects)?;
                } else {
                    // A clear without a raise (raised before the app ran): history only.
                    tracing::debug!(key, "clear without an active alarm");
                }
            }
            EventKind::Measurement | EventKind::Reading => {
                let mut outcomes = std::mem::take(&mut self.scratch);
                self.rules.on_event(e, &mut outcomes);
                let r =
                    self.apply_outcomes(w, &mut outcomes, Some(event_id), e.replayed, now, effects);
                outcomes.clear();
                self.scratch = outcomes;
                r?;
            }
            EventKind::Packet | EventKind::Unparsed => {}
        }
        Ok(())
    }

    pub(super) fn apply_outcomes(
        &mut self,
        w: &mut history::Writer<'_>,
        outcomes: &mut Vec<RuleOutcome>,
        event_id: Option<i64>,
        replayed: bool,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        for o in outcomes.drain(..) {
            match o {
                RuleOutcome::Raise(a) => {
                    if self.active.contains_key(&a.alarm_key) {
                        continue;
                    }
                    let alarm = NewAlarm {
                        alarm_key: a.alarm_key,
                        source: a.source,
                        account: a.account,
                        device: a.device,
                        sensor: Some(a.sensor),
                        name: a.name,
                        condition: Some(a.rule_name),
                        severity: Severity::Alarm,
                        value: a.value,
                        unit: a.unit,
                        limit: Some(a.limit),
                        rule_id: Some(a.rule_id),
                        event_id,
                        raised_ms: if a.value.is_some() { a.at_ms } else { now },
                    };
                    self.insert_alarm(w, alarm, true, replayed, effects)?;
                }
                RuleOutcome::Clear {
                    alarm_key, value, ..
                } => {
                    if let Some(a) = self.active.get_mut(&alarm_key) {
                        a.row.value = value.or(a.row.value);
                    }
                    if self.active.contains_key(&alarm_key) {
                        self.clear_alarm(w, &alarm_key, now, effects)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn insert_alarm(
        &mut self,
        w: &mut history::Writer<'_>,
        a: NewAlarm,
        rule: bool,
        replayed: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        let id = w.raise_alarm(&a)?;
        let row = AlarmRow {
            id,
            source: a.source,
            account: a.account,
            device: a.device,
            sensor: a.sensor,
            name: a.name,
            condition: a.condition,
            severity: a.severity,
            value: a.value,
            unit: a.unit,
            limit: a.limit,
            raised_ms: a.raised_ms,
            cleared_ms: None,
            acknowledged_ms: None,
            acknowledged_by: None,
        };
        self.ids.insert(id, a.alarm_key.clone());
        self.active.insert(
            a.alarm_key.clone(),
            Active {
                row,
                key: a.alarm_key.clone(),
                rule,
                shown: false,
                last_considered_ms: None,
            },
        );
        effects.push(Effect::Raised {
            key: a.alarm_key,
            replayed,
        });
        Ok(())
    }

    pub(super) fn clear_alarm(
        &mut self,
        w: &mut history::Writer<'_>,
        key: &str,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        let Some(mut a) = self.active.remove(key) else {
            return Ok(());
        };
        w.clear_alarm(a.row.id, now)?;
        self.ids.remove(&a.row.id);
        a.row.cleared_ms = Some(now);
        effects.push(Effect::Cleared(Box::new(a)));
        Ok(())
    }

    pub(super) fn after_commit(&mut self, effects: Vec<Effect>, now: i64) {
        if effects.is_empty() {
            return;
        }
        for eff in effects {
            match eff {
                Effect::Raised { key, replayed } => {
                    if let Some(a) = self.active.get(&key) {
                        self.decide(Decision::AlarmRaised {
                            alarm: a.row.clone(),
                        });
                        self.consider_new(&key, replayed, now);
                    }
                }
                Effect::Cleared(a) => {
                    self.decide(Decision::AlarmCleared {
                        alarm: a.row.clone(),
                    });
                    if a.shown {
                        let tag = a.tag();
                        self.popups.close(tag.clone());
                        self.decide(Decision::Closed { tag });
                    }
                }
            }
        }
        self.write_notified(now);
        self.publish_status();
    }

    pub(super) fn acknowledge(&mut self, alarm_id: i64, by: &str) -> Result<(), EngineError> {
        let now = self.now_ms();
        if !self.history.acknowledge(alarm_id, by, now)? {
            return Err(EngineError::NoSuchAlarm(alarm_id));
        }
        if let Some(a) = self.ids.get(&alarm_id).and_then(|k| self.active.get_mut(k)) {
            if a.row.acknowledged_ms.is_none() {
                a.row.acknowledged_ms = Some(now);
                a.row.acknowledged_by = Some(by.to_string());
            }
            if std::mem::take(&mut a.shown) {
                let tag = a.tag();
                self.popups.close(tag.clone());
                self.decide(Decision::Closed { tag });
            }
        }
        self.decide(Decision::Acknowledged {
            alarm_id,
            by: by.to_string(),
        });
        self.publish_status();
        Ok(())
    }
}

/// Identity of an upstream alarm condition: the feed's `alarm_id`, else sensor + condition.
fn upstream_alarm_key(e: &Event) -> String {
    match &e.alarm_id {
        Some(id) => format!("{}:{}:{id}", e.source.as_str(), e.account),
        None => format!(
            "{}:{}:{}:{}",
            e.source.as_str(),
            e.account,
            e.sensor.as_deref().or(e.device.as_deref()).unwrap_or(""),
            e.condition.as_deref().unwrap_or("")
        ),
    }
}

/// The newest value per (sensor, quantity) of a batch: one upsert per pair, not per event.
fn collect_last_values<'a>(e: &'a Event, last: &mut HashMap<(&'a str, &'a str), LatestValue>) {
    if !matches!(e.kind, EventKind::Measurement | EventKind::Reading) {
        return;
    }
    let Some(sensor) = e.sensor.as_deref().or(e.device.as_deref()) else {
        return;
    };
    let at = e.measured_at.unwrap_or(e.received_at).as_millisecond();
    let mut put = |quantity: &'a str, value: f64, unit: Option<&String>| {
        if !value.is_finite() {
            return;
        }
        let slot = last
            .entry((sensor, quantity))
            .or_insert_with(|| LatestValue {
                sensor: sensor.to_string(),
                name: None,
                source: e.source,
                quantity: (!quantity.is_empty()).then(|| quantity.to_string()),
                value,
                unit: None,
                at_ms: i64::MIN,
            });
        if at >= slot.at_ms {
            slot.value = value;
            slot.at_ms = at;
            slot.unit = unit.cloned();
            slot.name = e.name.clone();
        }
    };
    if e.fields.is_empty() {
        if let Some(v) = e.value {
            put(e.quantity.as_deref().unwrap_or(""), v, e.unit.as_ref());
        }
    } else {
        for (k, v) in &e.fields {
            // Only the primary field has a known unit.
            let unit = if Some(k.as_str()) == e.quantity.as_deref() {
                e.unit.as_ref()
            } else {
                None
            };
            put(k.as_str(), *v, unit);
        }
    }
}
