//! Escalation (issue 21): a critical alarm nobody acknowledged for `after_mins` minutes is
//! sent once to every enabled webhook.
//!
//! The engine decides when (on its clock, at each tick: tests drive it with a simulated
//! one) and keeps the state here; each attempt runs on its own task
//! ([`crate::notify::webhook::deliver`]) and reports back on a channel, so a slow or dead
//! receiver never holds up storage or popups. A failed attempt is tried again after 30 s,
//! doubling to 10 min, 10 attempts in all (about 50 minutes); acknowledging or clearing
//! the alarm first cancels what is still to send. Every step is written to the history's
//! `escalations` table and to the audit trail; a webhook whose last attempt failed shows
//! in the status (feeds area) until one of its attempts works.

use std::collections::{BTreeMap, HashSet};

use tokio::sync::mpsc;

use crate::event::{FeedState, FeedStatus, Severity};
use crate::notify::webhook::{self, Message, WebhookError};
use crate::settings::Webhook;

use super::model::AlarmRow;
use super::{Decision, Engine};

/// Wait after the first failed attempt; doubles per attempt.
const RETRY_FIRST_MS: i64 = 30_000;
/// Longest wait between two attempts.
const RETRY_MAX_MS: i64 = 600_000;
/// Attempts per alarm and webhook before giving up.
pub(super) const MAX_ATTEMPTS: u32 = 10;

/// The outcome of one attempt, sent back to the engine task.
#[derive(Debug)]
pub(super) struct Attempted {
    alarm_id: i64,
    webhook: String,
    result: Result<(), WebhookError>,
}

/// One alarm still to be delivered to one webhook.
#[derive(Debug)]
struct Pending {
    alarm_id: i64,
    hook: Webhook,
    message: Message,
    attempts: u32,
    next_ms: i64,
    in_flight: bool,
}

/// The escalation state of the engine task.
#[derive(Debug)]
pub(super) struct Escalator {
    /// Alarms escalated (or being escalated): each is sent once.
    started: HashSet<i64>,
    pending: Vec<Pending>,
    /// Webhook id → (its name, what its last attempt said), while its attempts fail.
    failing: BTreeMap<String, (String, String)>,
    tx: mpsc::UnboundedSender<Attempted>,
    rx: Option<mpsc::UnboundedReceiver<Attempted>>,
}

impl Escalator {
    /// `started`: alarms escalated before a restart (from the history).
    pub(super) fn new(started: impl IntoIterator<Item = i64>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Escalator {
            started: started.into_iter().collect(),
            pending: Vec::new(),
            failing: BTreeMap::new(),
            tx,
            rx: Some(rx),
        }
    }

    /// The receiver of attempt outcomes, for the run loop (once).
    pub(super) fn take_results(&mut self) -> mpsc::UnboundedReceiver<Attempted> {
        self.rx
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1)
    }

    /// Failing webhooks as feed lines: `webhook:<id>`, its name, what went wrong.
    pub(super) fn statuses(&self) -> Vec<FeedStatus> {
        self.failing
            .iter()
            .map(|(id, (name, error))| {
                let mut st = FeedStatus::new(format!("webhook:{id}"), format!("Webhook {name}"));
                st.state = FeedState::Stopped {
                    message: "escalations are not getting through".into(),
                };
                st.last_error = Some(error.clone());
                st
            })
            .collect()
    }

    pub(super) fn failing_names(&self) -> impl Iterator<Item = &str> {
        self.failing.values().map(|(n, _)| n.as_str())
    }
}

/// Wait before attempt `attempts + 1`, after `attempts` failed.
fn backoff_ms(attempts: u32) -> i64 {
    let shift = attempts.saturating_sub(1).min(10);
    (RETRY_FIRST_MS << shift).min(RETRY_MAX_MS)
}

/// When the alarm became critical this time: the start of its last run of Alarm steps.
fn critical_since(a: &AlarmRow) -> i64 {
    let mut since = None;
    for s in &a.steps {
        match (s.severity == Severity::Alarm, since) {
            (true, None) => since = Some(s.at_ms),
            (false, _) => since = None,
            _ => {}
        }
    }
    since.unwrap_or(a.raised_ms)
}

fn hook_name(h: &Webhook) -> String {
    if h.name.trim().is_empty() {
        h.id.clone()
    } else {
        h.name.clone()
    }
}

impl Engine {
    /// At each tick: cancels what acknowledged or cleared alarms still had to send, starts
    /// escalations that are due, and starts attempts that are due.
    pub(super) fn escalate(&mut self, now: i64) {
        let hooks: Vec<Webhook> = self
            .settings
            .escalation
            .webhooks
            .iter()
            .filter(|w| w.enabled)
            .cloned()
            .collect();
        // A webhook taken out of the settings no longer fails.
        let before = self.escalator.failing.len();
        self.escalator
            .failing
            .retain(|id, _| hooks.iter().any(|h| &h.id == id));
        let changed = before != self.escalator.failing.len();

        // Acknowledged or cleared in the meantime: nothing more to send for it.
        let unacked_critical = |e: &Engine, id: i64| {
            e.ids
                .get(&id)
                .and_then(|k| e.active.get(k))
                .is_some_and(|a| !a.acked() && a.row.severity == Severity::Alarm)
        };
        let mut cancelled = Vec::new();
        let mut i = 0;
        while i < self.escalator.pending.len() {
            let p = &self.escalator.pending[i];
            if !p.in_flight
                && (!unacked_critical(self, p.alarm_id) || !hooks.iter().any(|h| h.id == p.hook.id))
            {
                cancelled.push(self.escalator.pending.swap_remove(i));
            } else {
                i += 1;
            }
        }
        for p in cancelled {
            self.record(p.alarm_id, &p.hook.id, "cancelled", p.attempts, None, now);
            self.audit(
                "escalation_cancelled",
                serde_json::json!({"alarm_id": p.alarm_id, "webhook": p.hook.id, "attempts": p.attempts}),
            );
        }

        if !hooks.is_empty() {
            let after_ms = i64::from(self.settings.escalation.after_mins.max(1)) * 60_000;
            let mut due: Vec<&AlarmRow> = self
                .active
                .values()
                .filter(|a| !a.acked() && a.row.severity == Severity::Alarm)
                .map(|a| &a.row)
                .filter(|r| !self.escalator.started.contains(&r.id))
                .filter(|r| now - critical_since(r) >= after_ms)
                .collect();
            due.sort_by_key(|r| r.id);
            let due: Vec<AlarmRow> = due.into_iter().cloned().collect();
            for row in due {
                self.escalator.started.insert(row.id);
                let message = self.message_of(&row, now);
                for h in &hooks {
                    self.record(row.id, &h.id, "sending", 0, None, now);
                    self.escalator.pending.push(Pending {
                        alarm_id: row.id,
                        hook: h.clone(),
                        message: message.clone(),
                        attempts: 0,
                        next_ms: now,
                        in_flight: false,
                    });
                }
                self.audit(
                    "escalation_started",
                    serde_json::json!({
                        "alarm_id": row.id, "after_mins": self.settings.escalation.after_mins,
                        "webhooks": hooks.iter().map(|h| &h.id).collect::<Vec<_>>(),
                    }),
                );
            }
        }

        for p in self.escalator.pending.iter_mut() {
            if p.in_flight || p.next_ms > now {
                continue;
            }
            p.in_flight = true;
            let (tx, hook, message, alarm_id) = (
                self.escalator.tx.clone(),
                p.hook.clone(),
                p.message.clone(),
                p.alarm_id,
            );
            tokio::spawn(async move {
                let webhook = hook.id.clone();
                let result = webhook::deliver(hook, message).await;
                let _ = tx.send(Attempted {
                    alarm_id,
                    webhook,
                    result,
                });
            });
        }
        if changed {
            self.publish_status();
        }
    }

    /// What an attempt came back with: done, or tried again later, or given up.
    pub(super) fn on_attempt(&mut self, a: Attempted) {
        let now = self.now_ms();
        let Some(i) = self
            .escalator
            .pending
            .iter()
            .position(|p| p.alarm_id == a.alarm_id && p.hook.id == a.webhook)
        else {
            return;
        };
        let p = &mut self.escalator.pending[i];
        p.in_flight = false;
        p.attempts += 1;
        let (attempts, name) = (p.attempts, hook_name(&p.hook));
        match a.result {
            Ok(()) => {
                self.escalator.pending.swap_remove(i);
                self.escalator.failing.remove(&a.webhook);
                self.record(a.alarm_id, &a.webhook, "sent", attempts, None, now);
                self.decide(Decision::Escalated {
                    alarm_id: a.alarm_id,
                    webhook: a.webhook,
                    attempts,
                });
            }
            Err(e) => {
                let message = e.to_string();
                let gave_up = attempts >= MAX_ATTEMPTS;
                let retry_in_ms = if gave_up {
                    self.escalator.pending.swap_remove(i);
                    None
                } else {
                    let wait = backoff_ms(attempts);
                    p.next_ms = now + wait;
                    Some(wait)
                };
                tracing::warn!(webhook = %a.webhook, alarm = a.alarm_id, attempts, "escalation failed: {message}");
                self.escalator
                    .failing
                    .insert(a.webhook.clone(), (name, message.clone()));
                let state = if gave_up { "failed" } else { "sending" };
                self.record(a.alarm_id, &a.webhook, state, attempts, Some(&message), now);
                self.decide(Decision::EscalationFailed {
                    alarm_id: a.alarm_id,
                    webhook: a.webhook,
                    attempts,
                    message,
                    retry_in_ms,
                });
            }
        }
        self.publish_status();
    }

    fn record(
        &self,
        alarm_id: i64,
        webhook: &str,
        state: &str,
        attempts: u32,
        error: Option<&str>,
        now: i64,
    ) {
        if let Err(e) = self
            .history
            .record_escalation(alarm_id, webhook, state, attempts, error, now)
        {
            tracing::error!("could not record the escalation of alarm {alarm_id}: {e}");
        }
    }

    fn message_of(&self, a: &AlarmRow, now: i64) -> Message {
        let since = critical_since(a);
        let who = a
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| a.sensor.clone())
            .or_else(|| a.device.clone())
            .unwrap_or_else(|| "a sensor".into());
        let what = a.condition.clone().unwrap_or_else(|| "alarm".into());
        let mins = (now - since) / 60_000;
        let value = match (a.value, &a.unit) {
            (Some(v), Some(u)) => format!("{v} {u}"),
            (Some(v), None) => v.to_string(),
            _ => String::new(),
        };
        let limit = a
            .limit
            .as_ref()
            .map(|l| format!(" (limit {l})"))
            .unwrap_or_default();
        let at = jiff::Timestamp::from_millisecond(since)
            .map(|t| {
                t.to_zoned(self.clock.tz())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .unwrap_or_default();
        let mut body =
            format!("{value}{limit} critical since {at}, not acknowledged for {mins} min.");
        if value.is_empty() {
            body = body.trim_start().to_string();
        }
        Message {
            alarm_id: a.id,
            title: format!("Critical alarm not acknowledged: {who} — {what}"),
            body,
            sensor: a.sensor.clone(),
            name: a.name.clone(),
            condition: a.condition.clone(),
            value: a.value,
            unit: a.unit.clone(),
            limit: a.limit.clone(),
            critical_since_ms: since,
            unacknowledged_mins: mins,
            test: false,
        }
    }
}

#[cfg(test)]
mod tests;
