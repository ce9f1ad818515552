//! Popup policy: a new alarm pops now, waits for the storm summary, or is held back (sensor
//! muted, paused, quiet hours); held-back alarms pop when the pause or quiet hours end;
//! unacknowledged alarms pop again. Several alarms at once become one summary popup.

use super::model::AlarmRow;
use super::policy::{self, Admit};
use super::ringing::sound_for;
use super::store::Active;
use super::{wording, Decision, Engine};
use crate::event::Severity;
use crate::notify::{Popup, Urgency};

impl Engine {
    /// Records that the alarms in `notified` were told to the user, so a restart does not
    /// pop them again.
    pub(super) fn write_notified(&mut self, now: i64) {
        if self.notified.is_empty() {
            return;
        }
        if let Err(e) = self.history.mark_notified(&self.notified, now) {
            tracing::warn!("could not record shown popups: {e}");
        }
        self.notified.clear();
    }

    pub(super) fn display_name(&self, row: &AlarmRow) -> String {
        if let Some(p) = row
            .sensor
            .as_ref()
            .and_then(|s| self.settings.sensors.get(s))
        {
            if !p.name.trim().is_empty() {
                return p.name.clone();
            }
        }
        row.name
            .clone()
            .or_else(|| row.sensor.clone())
            .or_else(|| row.device.clone())
            .unwrap_or_else(|| crate::text::tr(self.locale.lang, "popup-unknown-sensor", &[]))
    }

    pub(super) fn popup_for(&self, a: &Active, now: i64) -> Popup {
        let display = self.display_name(&a.row);
        let (summary, mut body) = wording::alarm_text(&a.row, &display, a.rule, &self.locale, now);
        // Issue 20: the site's time beside the desktop's where the zones differ.
        // The account's zone, else the tenant's, else the payload's offset.
        let zone = self.site_zone(a.row.source, &a.row.account, a.row.sensor.as_deref());
        if let Some(t) = wording::site_time(a.row.raised_ms, &zone, &self.locale, now) {
            body.push_str(&format!(" \u{b7} {t}"));
        }
        Popup {
            tag: a.tag(),
            summary,
            body,
            urgency: urgency(a.row.severity),
            alarm_id: Some(a.row.id),
            actions: true,
            sound: sound_for(&self.settings, a.row.severity),
        }
    }

    /// Why this alarm's sensor holds its popups back: muted for good (Settings), or
    /// snoozed for a while (issue 21).
    pub(super) fn sensor_hold(&self, row: &AlarmRow) -> Option<&'static str> {
        let muted = [&row.sensor, &row.device]
            .into_iter()
            .flatten()
            .any(|s| self.settings.sensors.get(s).is_some_and(|p| !p.notify));
        if muted {
            Some("sensor muted")
        } else if self.snoozed(row) {
            Some("sensor snoozed")
        } else {
            None
        }
    }

    /// A new alarm: pops now, waits for the storm summary, or is held back.
    pub(super) fn consider_new(&mut self, key: &str, replayed: bool, now: i64) {
        self.flush_group(now);
        let Some(a) = self.active.get(key) else {
            return;
        };
        let id = a.row.id;
        let popup = self.popup_for(a, now);
        let hold = self.sensor_hold(&a.row);
        let sensor = a
            .row
            .sensor
            .clone()
            .or_else(|| a.row.device.clone())
            .unwrap_or_default();
        let Some(popup) = self.unless_muted(key, id, hold, popup, now) else {
            return;
        };
        match self.grouper.admit(now, id, &sensor, replayed) {
            Admit::Now => {
                let shown = self.show(popup, false);
                self.mark_considered(key, now, shown);
            }
            Admit::Grouped => {
                self.mark_considered(key, now, false);
                self.decide(Decision::Grouped { alarm_id: id });
            }
        }
    }

    /// Notes that alarm `id` was considered for a popup. A muted or snoozed sensor's popup
    /// is held back (and decided on as such); otherwise it is handed back to be shown.
    fn unless_muted(
        &mut self,
        key: &str,
        id: i64,
        hold: Option<&'static str>,
        popup: Popup,
        now: i64,
    ) -> Option<Popup> {
        self.notified.push(id);
        if let Some(reason) = hold {
            self.mark_considered(key, now, false);
            self.decide(Decision::HeldBack {
                popup,
                reason: reason.into(),
            });
            return None;
        }
        Some(popup)
    }

    /// An active alarm got worse (Warning → Alarm): it pops on its own at once, replacing
    /// its earlier popup, whatever the storm window holds (the user knows the alarm; what
    /// is new is that it got worse). Muted sensors, pause and quiet hours still apply.
    pub(super) fn consider_worse(&mut self, key: &str, from: Severity, now: i64) {
        let Some(a) = self.active.get(key) else {
            return;
        };
        let id = a.row.id;
        let display = self.display_name(&a.row);
        let (summary, body) = wording::worse_text(&a.row, &display, from, &self.locale, now);
        let popup = Popup {
            tag: a.tag(),
            summary,
            body,
            urgency: urgency(a.row.severity),
            alarm_id: Some(id),
            actions: true,
            sound: sound_for(&self.settings, a.row.severity),
        };
        let hold = self.sensor_hold(&a.row);
        let Some(popup) = self.unless_muted(key, id, hold, popup, now) else {
            return;
        };
        let shown = self.show(popup, false);
        self.mark_considered(key, now, shown);
    }

    pub(super) fn mark_considered(&mut self, key: &str, now: i64, shown: bool) {
        if let Some(a) = self.active.get_mut(key) {
            a.last_considered_ms = Some(now);
            a.shown |= shown;
        }
    }

    /// Why popups are held back right now, if they are.
    pub(super) fn held_reason(&self, urgency: Urgency) -> Option<&'static str> {
        let n = &self.settings.notifications;
        let critical_passes = n.quiet_hours.allow_critical && urgency == Urgency::Critical;
        if n.paused && !critical_passes {
            return Some("paused");
        }
        if self.in_quiet_hours() && !critical_passes {
            return Some("quiet hours");
        }
        None
    }

    pub(super) fn in_quiet_hours(&self) -> bool {
        let local = self.clock.now().to_zoned(self.locale.tz.clone()).time();
        policy::in_quiet_hours(&self.settings.notifications.quiet_hours, local)
    }

    /// Shows a popup unless pause or quiet hours hold it back. Returns whether it was shown.
    pub(super) fn show(&mut self, popup: Popup, repeat: bool) -> bool {
        if let Some(reason) = self.held_reason(popup.urgency) {
            if let Some(id) = popup.alarm_id {
                self.held_back.insert(id);
            }
            self.decide(Decision::HeldBack {
                popup,
                reason: reason.into(),
            });
            return false;
        }
        self.popups.show(popup.clone());
        self.decide(Decision::Popup { popup, repeat });
        true
    }

    /// Closes an ended grouping window: one summary for what it held (a single held alarm
    /// pops on its own).
    pub(super) fn flush_group(&mut self, now: i64) {
        let Some(f) = self.grouper.flush(now) else {
            return;
        };
        let held: Vec<&Active> = f
            .held
            .iter()
            .filter_map(|id| self.ids.get(id))
            .filter_map(|k| self.active.get(k))
            .filter(|a| !a.acked())
            .collect();
        // When the window held all it saw, the summary counts what it held (the alarms of a
        // reconnect's backlog); otherwise what the window saw, popped ones included.
        let all_held = f.total as usize == held.len();
        let tally = if all_held {
            let mut s: Vec<&str> = held
                .iter()
                .filter_map(|a| a.row.sensor.as_deref())
                .collect();
            s.sort_unstable();
            s.dedup();
            (held.len() as u32, s.len().max(1) as u32)
        } else {
            (f.total, f.sensors)
        };
        let keys: Vec<String> = held.iter().map(|a| a.key.clone()).collect();
        let context = all_held.then_some("group-while-disconnected");
        self.pop_one_or_summary(&keys, Some(tally), context, now);
    }

    /// When quiet hours or the pause end: what was held back and is still active and
    /// unacknowledged pops now (one summary when there are several).
    pub(super) fn release_held(&mut self, now: i64) {
        if self.held_back.is_empty() || self.held_reason(Urgency::Low).is_some() {
            return;
        }
        let ids = std::mem::take(&mut self.held_back);
        let keys: Vec<String> = ids
            .iter()
            .filter_map(|id| self.ids.get(id))
            .filter_map(|k| self.active.get(k))
            .filter(|a| !a.acked() && !a.shown)
            .map(|a| a.key.clone())
            .collect();
        self.pop_one_or_summary(&keys, None, Some("group-while-held"), now);
    }

    /// Tells the user of the active alarms `keys`: one pops on its own, several become one
    /// summary popup. `tally` is the summary's (alarms, sensors) when it tells more than the
    /// alarms listed; None counts them (and their sensors, the device when there is none).
    /// `context` ends the summary's headline. A summary that the pause or quiet hours hold
    /// back keeps its alarms for [`release_held`](Self::release_held).
    pub(super) fn pop_one_or_summary(
        &mut self,
        keys: &[String],
        tally: Option<(u32, u32)>,
        context: Option<&str>,
        now: i64,
    ) {
        let alarms: Vec<&Active> = keys.iter().filter_map(|k| self.active.get(k)).collect();
        match alarms.as_slice() {
            [] => {}
            [one] => {
                let key = one.key.clone();
                let popup = self.popup_for(one, now);
                let shown = self.show(popup, false);
                self.mark_considered(&key, now, shown);
            }
            many => {
                let names: Vec<String> = many.iter().map(|a| self.display_name(&a.row)).collect();
                let ids: Vec<i64> = many.iter().map(|a| a.row.id).collect();
                let urgency = many
                    .iter()
                    .map(|a| urgency(a.row.severity))
                    .max()
                    .unwrap_or(Urgency::Normal);
                let worst = many
                    .iter()
                    .map(|a| a.row.severity)
                    .max()
                    .unwrap_or(Severity::Warning);
                let (total, sensors) = tally.unwrap_or_else(|| {
                    let mut s: Vec<&str> = many
                        .iter()
                        .filter_map(|a| a.row.sensor.as_deref().or(a.row.device.as_deref()))
                        .collect();
                    s.sort_unstable();
                    s.dedup();
                    (many.len() as u32, s.len().max(1) as u32)
                });
                let (summary, body) =
                    wording::summary_text(total, sensors, &names, context, &self.locale);
                let popup = Popup {
                    tag: "summary".into(),
                    summary,
                    body,
                    urgency,
                    alarm_id: None,
                    actions: true,
                    sound: sound_for(&self.settings, worst),
                };
                // Told (or held back) now: repeats count from here, one summary for all.
                for k in keys {
                    self.mark_considered(k, now, false);
                }
                if let Some(reason) = self.held_reason(urgency) {
                    // Released with the others when quiet hours or the pause end.
                    self.held_back.extend(ids);
                    self.decide(Decision::HeldBack {
                        popup,
                        reason: reason.into(),
                    });
                } else {
                    self.popups.show(popup.clone());
                    self.decide(Decision::Summary {
                        popup,
                        alarms: total,
                        sensors,
                    });
                }
            }
        }
    }
}

/// Severity → urgency: Alarm is critical, Warning normal.
pub fn urgency(s: Severity) -> Urgency {
    match s {
        Severity::Alarm => Urgency::Critical,
        Severity::Warning => Urgency::Normal,
        Severity::Info => Urgency::Low,
    }
}
