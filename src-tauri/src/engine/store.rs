//! What the engine stores: a batch of deliveries in one transaction, and the alarms it
//! raises, clears and acknowledges (kept in memory as [`Active`] while they are active).
//! Effects on the user are decided after the commit (`after_commit`), never inside it.

use std::collections::HashMap;

use super::history::{self, HistoryError, NewAlarm};
use super::model::{AlarmRow, LatestValue, SeverityStep};
use super::rules::RuleOutcome;
use super::{Decision, Engine, EngineError, Output};
use crate::event::{Delivery, Event, EventKind, Severity, Source};

/// An alarm that is active (not cleared), as the engine keeps it in memory.
/// (`key` is the alarm's identity, the same on every PC of a team: issue 26.)
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

/// First wait before a batch that failed to store is tried again; it doubles per attempt.
pub(super) const RETRY_FIRST_MS: i64 = 500;
/// Longest wait between two attempts: storage that works again is used within this.
pub(super) const RETRY_MAX_MS: i64 = 5_000;
/// How long a batch is tried (about 15 attempts): then it is rejected and the feed has the
/// upstream send it again (Saveris: the connection closes and the broker redelivers).
pub(super) const RETRY_GIVE_UP_MS: i64 = 60_000;

/// A batch that could not be stored, held in memory (unconfirmed) and tried again with
/// backoff. While it is held the engine takes no new deliveries: they wait in the channel
/// and, behind it, upstream.
pub(super) struct Retry {
    pub(super) batch: Vec<Delivery>,
    /// Failed attempts so far.
    pub(super) attempts: u32,
    pub(super) first_failed_ms: i64,
    pub(super) next_ms: i64,
}

/// What happened to alarms inside a transaction; acted on after the commit.
pub(super) enum Effect {
    Raised {
        key: String,
        replayed: bool,
    },
    Cleared(Box<Active>),
    /// An active upstream alarm changed severity; `worse` when it rose (a new popup).
    SeverityChanged {
        key: String,
        from: Severity,
        worse: bool,
    },
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

    /// Stores a batch in one transaction, then confirms, then decides. A batch that cannot
    /// be stored is kept in memory, unconfirmed, and tried again (see [`Retry`]).
    pub(super) fn process(&mut self, batch: &mut Vec<Delivery>) {
        // Issue 28: the batch's audit records (raised, cleared, popups) go to the trail's
        // writer together when this returns: one audit commit per batch, not one per alarm.
        let _audit = self.history.audit().ok().map(|a| a.hold());
        self.name_events(batch);
        let now = self.now_ms();
        // Issue 20: ELEMENT sends no units; the ones the user confirmed per parser.
        for d in batch.iter_mut() {
            self.rules.fill_unit(&mut d.event);
        }
        if let Err(e) = self.store(batch, now) {
            let n = batch.len();
            let message = format!(
                "events could not be stored; they are kept and tried again, not yet confirmed: {e}"
            );
            if self.storage_error.is_none() {
                tracing::error!("{message}");
            }
            self.storage_error = Some(message.clone());
            self.retry = Some(Retry {
                batch: std::mem::take(batch),
                attempts: 1,
                first_failed_ms: now,
                next_ms: now.saturating_add(RETRY_FIRST_MS),
            });
            self.decide(Decision::StorageFailed { message, events: n });
            self.publish_status();
        }
    }

    /// Tries the held batch again when its time has come (`force`: now). Stored: confirmed
    /// and decided on as if it had worked the first time. Still failing after
    /// [`RETRY_GIVE_UP_MS`]: rejected, so the feed lets the upstream deliver it again.
    pub(super) fn retry_held(&mut self, force: bool) {
        let _audit = self.history.audit().ok().map(|a| a.hold());
        let now = self.now_ms();
        let Some(mut r) = self.retry.take() else {
            return;
        };
        // A wall clock set back must not postpone the retry by as much.
        let due = now >= r.next_ms || r.next_ms - now > RETRY_MAX_MS;
        if !force && !due {
            self.retry = Some(r);
            return;
        }
        match self.store(&mut r.batch, now) {
            Ok(()) => {
                tracing::info!(attempts = r.attempts + 1, "the held batch was stored");
            }
            Err(e) if now.saturating_sub(r.first_failed_ms) >= RETRY_GIVE_UP_MS => {
                let n = r.batch.len();
                for d in r.batch.drain(..) {
                    d.ack.reject();
                }
                let message = format!(
                    "events could not be stored for {} s ({} attempts); they were left upstream \
                     to be sent again: {e}",
                    RETRY_GIVE_UP_MS / 1000,
                    r.attempts + 1
                );
                tracing::error!("{message}");
                self.storage_error = Some(message.clone());
                self.decide(Decision::StorageFailed { message, events: n });
                self.publish_status();
            }
            Err(_) => {
                r.attempts += 1;
                let delay = RETRY_FIRST_MS
                    .saturating_mul(1 << r.attempts.min(16))
                    .min(RETRY_MAX_MS);
                r.next_ms = now.saturating_add(delay);
                self.retry = Some(r);
            }
        }
    }

    /// The engine stops with a held batch: rejected, the upstream keeps it.
    pub(super) fn drop_held(&mut self) {
        if let Some(r) = self.retry.take() {
            for d in r.batch {
                d.ack.reject();
            }
        }
    }

    /// When the held batch is due, from now (None: nothing is held).
    pub(super) fn retry_wait(&self) -> Option<std::time::Duration> {
        let r = self.retry.as_ref()?;
        let ms = r
            .next_ms
            .saturating_sub(self.now_ms())
            .clamp(0, RETRY_MAX_MS);
        Some(std::time::Duration::from_millis(ms as u64))
    }

    /// One transaction for the batch; on commit confirms every delivery (the commit is on
    /// disk: `synchronous=FULL`), emits the new events and decides. On error nothing is
    /// confirmed, memory is reloaded to match the database, and the batch is left as it was.
    fn store(&mut self, batch: &mut Vec<Delivery>, now: i64) -> Result<(), HistoryError> {
        let history = self.history.clone();
        let mut new_events: Vec<(usize, i64)> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        let mut from_team = std::collections::HashSet::new();
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
                // Backfilled values are history for charts and reports: no rule, no popup.
                if !e.backfill {
                    let before = effects.len();
                    self.apply_event(w, e, id, now, &mut effects)?;
                    if e.subscription
                        .starts_with(crate::event::TEAM_SUBSCRIPTION_PREFIX)
                    {
                        from_team.extend(before..effects.len());
                    }
                }
            }
            // Issue 26: the team outbox, in this transaction.
            self.share(w, batch, &new_events, &effects, &from_team, now)?;
            for v in last.values() {
                w.set_last_value(v)?;
            }
            for ((source, account, sub), cursor) in cursors {
                w.set_cursor(source, account, sub, cursor, now)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            // The transaction rolled back: memory must match the database again.
            let _ = self.reload_active();
            return Err(e);
        }
        let recovered = self.storage_error.take().is_some();
        self.note_messages(batch);
        if self.out.receiver_count() > 0 {
            for (i, id) in &new_events {
                self.emit(Output::Event {
                    id: *id,
                    event: batch[*i].event.clone(),
                    site_time: self.site_time_of(&batch[*i].event),
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
        Ok(())
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
                let severity = if e.severity == Severity::Info {
                    Severity::Alarm
                } else {
                    e.severity
                };
                let at_ms = e.measured_at.unwrap_or(e.received_at).as_millisecond();
                if let Some(a) = self.active.get_mut(&key) {
                    // The same condition on the same sensor: one alarm. A new severity is a
                    // step of its life (Warning → Alarm pops again, Alarm → Warning is
                    // quiet); an older message (out of order, redelivered) changes nothing.
                    let newest = a.row.steps.last().map_or(a.row.raised_ms, |s| s.at_ms);
                    if severity != a.row.severity && at_ms >= newest {
                        let from = a.row.severity;
                        let worse = severity > from;
                        w.change_severity(
                            a.row.id,
                            severity,
                            e.value,
                            at_ms,
                            Some(event_id),
                            worse,
                        )?;
                        a.row.severity = severity;
                        a.row.steps.push(SeverityStep { at_ms, severity });
                        if worse {
                            a.row.acknowledged_ms = None;
                            a.row.acknowledged_by = None;
                        }
                        if e.value.is_some() {
                            a.row.value = e.value;
                        }
                        effects.push(Effect::SeverityChanged { key, from, worse });
                        return Ok(());
                    }
                    // Raised again while active: the same alarm, a newer value.
                    w.update_alarm_value(a.row.id, e.value)?;
                    if e.value.is_some() {
                        a.row.value = e.value;
                    }
                    return Ok(());
                }
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
                    limit: self.upstream_limit(e),
                    rule_id: None,
                    event_id: Some(event_id),
                    raised_ms: at_ms,
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
            acknowledged_user: None,
            acknowledged_comment: None,
            steps: vec![SeverityStep {
                at_ms: a.raised_ms,
                severity: a.severity,
            }],
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
                Effect::SeverityChanged { key, from, worse } => {
                    if let Some(a) = self.active.get(&key) {
                        self.decide(Decision::SeverityChanged {
                            alarm: a.row.clone(),
                            from,
                        });
                        if worse {
                            self.consider_worse(&key, from, now);
                        }
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

    pub(super) fn acknowledge(
        &mut self,
        alarm_id: i64,
        by: &str,
        comment: Option<String>,
    ) -> Result<(), EngineError> {
        self.acknowledge_as(alarm_id, by, None, comment)
    }

    /// Issue 26: an acknowledgement made on another PC (`user` says "NAME on PC"), by the
    /// alarm's identity. Not shared again. `Ok(false)`: no such active alarm here.
    pub(super) fn acknowledge_remote(
        &mut self,
        identity: &str,
        by: &str,
        user: String,
        comment: Option<String>,
    ) -> Result<bool, EngineError> {
        let Some(id) = self.active.get(identity).map(|a| a.row.id) else {
            return Ok(false);
        };
        if self.active.get(identity).is_some_and(|a| a.acked()) {
            return Ok(true);
        }
        self.acknowledge_as(id, by, Some(user), comment)?;
        Ok(true)
    }

    /// `user`: `None` for this PC's user (shared with the team); `Some` for a remote one.
    fn acknowledge_as(
        &mut self,
        alarm_id: i64,
        by: &str,
        remote_user: Option<String>,
        comment: Option<String>,
    ) -> Result<(), EngineError> {
        let now = self.now_ms();
        let remote = remote_user.is_some();
        let comment = comment
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        if comment.is_none() && self.settings.comment_required_critical && !remote {
            // Critical: its severity now (active) or as stored (cleared since).
            let severity = match self.ids.get(&alarm_id).and_then(|k| self.active.get(k)) {
                Some(a) => Some(a.row.severity),
                None => self.history.alarm(alarm_id)?.map(|r| r.severity),
            };
            if severity == Some(Severity::Alarm) {
                return Err(EngineError::CommentRequired(alarm_id));
            }
        }
        let user = remote_user.unwrap_or_else(|| acknowledging_user(&self.settings.display_name));
        // Issue 26: this PC's acknowledgement goes to the team in the same transaction.
        let share = match (
            remote,
            self.ids.get(&alarm_id).and_then(|k| self.active.get(k)),
        ) {
            (false, Some(a)) => self.alarm_rows(a, "acked", now, Some((&user, comment.as_deref()))),
            _ => Vec::new(),
        };
        let rows: Vec<(&str, &str, bool, Option<&str>)> = share
            .iter()
            .map(|r| (r.kind, r.tail.as_str(), r.retain, r.body.as_deref()))
            .collect();
        if !self
            .history
            .acknowledge_shared(alarm_id, by, &user, comment.as_deref(), now, &rows)?
        {
            return Err(EngineError::NoSuchAlarm(alarm_id));
        }
        if let Some(a) = self.ids.get(&alarm_id).and_then(|k| self.active.get_mut(k)) {
            if a.row.acknowledged_ms.is_none() {
                a.row.acknowledged_ms = Some(now);
                a.row.acknowledged_by = Some(by.to_string());
                a.row.acknowledged_user = Some(user.clone());
                a.row.acknowledged_comment = comment.clone();
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
            user,
            comment,
        });
        self.publish_status();
        Ok(())
    }
}

/// The person acknowledging: the OS user, after the display name set in General if any.
pub(crate) fn acknowledging_user(display_name: &str) -> String {
    let os = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    match display_name.trim() {
        "" => os,
        name => format!("{name} ({os})"),
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
            // The primary field's unit, else the one the user gave the parser's field.
            let unit = if Some(k.as_str()) == e.quantity.as_deref() {
                e.unit.as_ref()
            } else {
                e.field_units.iter().find(|(f, _)| f == k).map(|(_, u)| u)
            };
            put(k.as_str(), *v, unit);
        }
    }
}
