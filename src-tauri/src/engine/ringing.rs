//! Ring until acknowledged (issue 21): each severity has a sound and a repeat interval
//! (settings `notifications.critical` / `.warning`, critical every 5 min by default); an
//! unacknowledged active alarm pops again, with its sound, at that interval until it is
//! acknowledged or cleared. Quiet hours and the pause hold non-critical popups and their
//! sounds back (`popups::show`); turning sound off makes every popup silent.
//!
//! A sensor can be snoozed for 1 h, 4 h or until tomorrow with a reason: its popups (new,
//! worse and repeats) are held back until the snooze ends, when what is still active and
//! unacknowledged pops once. Snoozes live in the history (`snoozes` table), so they survive
//! a restart and `watch` honours them; they and every repeat go to the audit trail.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::model::{AlarmRow, Snooze, SnoozeFor};
use super::store::acknowledging_user;
use super::{Decision, Engine, EngineError};
use crate::event::Severity;
use crate::notify::Sound;
use crate::settings::{Ringing, Settings};

/// Where a snooze "until tomorrow" ends: 07:00 the next day, the user's time.
const TOMORROW_HOUR: i8 = 7;

/// How alarms of `severity` ring (warnings and info alarms share the non-critical one).
pub(super) fn ringing(settings: &Settings, severity: Severity) -> &Ringing {
    match severity {
        Severity::Alarm => &settings.notifications.critical,
        Severity::Warning | Severity::Info => &settings.notifications.warning,
    }
}

/// The sound of a popup for an alarm of `severity`; None when sounds are off.
pub(super) fn sound_for(settings: &Settings, severity: Severity) -> Option<Sound> {
    if !settings.notifications.sound {
        return None;
    }
    ringing(settings, severity).sound
}

/// When a snooze chosen at `now` ends, in Unix ms.
pub fn snooze_until(now: Timestamp, tz: &TimeZone, f: SnoozeFor) -> Result<i64, EngineError> {
    match f {
        SnoozeFor::Hours { hours } if (1..=24).contains(&hours) => {
            Ok(now.as_millisecond() + i64::from(hours) * 3_600_000)
        }
        SnoozeFor::Hours { .. } => Err(EngineError::InvalidSnooze(
            "a snooze lasts 1 to 24 hours".into(),
        )),
        SnoozeFor::UntilTomorrow => {
            let bad = |e: jiff::Error| EngineError::InvalidSnooze(e.to_string());
            let date = now.to_zoned(tz.clone()).date().tomorrow().map_err(bad)?;
            let at = date
                .at(TOMORROW_HOUR, 0, 0, 0)
                .to_zoned(tz.clone())
                .map_err(bad)?;
            Ok(at.timestamp().as_millisecond())
        }
    }
}

/// The identity a snooze of this alarm's sensor is kept under: the sensor, else the device.
pub(super) fn sensor_of(row: &AlarmRow) -> Option<&str> {
    row.sensor.as_deref().or(row.device.as_deref())
}

impl Engine {
    /// Loads the snoozes still running from the history (at start).
    pub(super) fn load_snoozes(&mut self) {
        match self.history.snoozes() {
            Ok(list) => {
                self.snoozes = list.into_iter().map(|s| (s.sensor.clone(), s)).collect();
            }
            Err(e) => tracing::error!("could not load snoozed sensors: {e}"),
        }
    }

    /// Whether the alarm's sensor (or device) is snoozed right now.
    pub(super) fn snoozed(&self, row: &AlarmRow) -> bool {
        let now = self.now_ms();
        [&row.sensor, &row.device]
            .into_iter()
            .flatten()
            .any(|s| self.snoozes.get(s).is_some_and(|z| z.until_ms > now))
    }

    /// Snoozes `sensor` for `f` with a reason (required). Its open popups close; a snooze
    /// of the same sensor still running is replaced.
    pub(super) fn snooze(
        &mut self,
        sensor: &str,
        f: SnoozeFor,
        reason: &str,
    ) -> Result<Snooze, EngineError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(EngineError::InvalidSnooze(
                "write why this sensor is snoozed".into(),
            ));
        }
        if sensor.trim().is_empty() {
            return Err(EngineError::InvalidSnooze("no sensor to snooze".into()));
        }
        let now = self.clock.now();
        let until_ms = snooze_until(now, &self.locale.tz, f)?;
        let name = self
            .active
            .values()
            .find(|a| sensor_of(&a.row) == Some(sensor))
            .map(|a| self.display_name(&a.row));
        let snooze = Snooze {
            sensor: sensor.to_string(),
            name,
            at_ms: now.as_millisecond(),
            until_ms,
            reason: reason.to_string(),
            user: acknowledging_user(&self.settings.display_name),
        };
        self.history.snooze(&snooze)?;
        self.snoozes.insert(sensor.to_string(), snooze.clone());
        // What is on screen for this sensor goes away: the user has seen it.
        let open: Vec<String> = self
            .active
            .values_mut()
            .filter(|a| {
                a.shown
                    && [&a.row.sensor, &a.row.device]
                        .into_iter()
                        .flatten()
                        .any(|s| s == sensor)
            })
            .map(|a| {
                a.shown = false;
                a.tag()
            })
            .collect();
        for tag in open {
            self.popups.close(tag.clone());
            self.decide(Decision::Closed { tag });
        }
        self.decide(Decision::Snoozed {
            snooze: snooze.clone(),
        });
        self.publish_status();
        Ok(snooze)
    }

    /// Ends the sensor's snooze now. `Ok(false)`: it was not snoozed.
    pub(super) fn end_snooze(&mut self, sensor: &str) -> Result<bool, EngineError> {
        let now = self.now_ms();
        if self.snoozes.remove(sensor).is_none() {
            return Ok(false);
        }
        self.history.end_snooze(sensor, now)?;
        self.after_snooze(sensor, true, now);
        Ok(true)
    }

    /// Ends the snoozes whose time is up.
    pub(super) fn expire_snoozes(&mut self, now: i64) {
        let due: Vec<String> = self
            .snoozes
            .values()
            .filter(|s| s.until_ms <= now)
            .map(|s| s.sensor.clone())
            .collect();
        for sensor in due {
            self.snoozes.remove(&sensor);
            if let Err(e) = self.history.end_snooze(&sensor, now) {
                tracing::warn!("could not record the end of a snooze: {e}");
            }
            self.after_snooze(&sensor, false, now);
        }
    }

    /// A snooze ended: said (and audited), and the sensor's alarms that are still active and
    /// unacknowledged pop now (one summary when there are several).
    fn after_snooze(&mut self, sensor: &str, early: bool, now: i64) {
        self.decide(Decision::SnoozeEnded {
            sensor: sensor.to_string(),
            early,
        });
        let keys: Vec<String> = self
            .active
            .values()
            .filter(|a| !a.acked())
            .filter(|a| {
                [&a.row.sensor, &a.row.device]
                    .into_iter()
                    .flatten()
                    .any(|s| s == sensor)
            })
            .filter(|a| self.sensor_hold(&a.row).is_none())
            .map(|a| a.key.clone())
            .collect();
        self.pop_one_or_summary(&keys, None, Some("after the snooze"), now);
        self.publish_status();
    }

    /// Pops unacknowledged active alarms again, with their sound, once their severity's
    /// repeat interval has passed since they were last shown or held back.
    pub(super) fn repeat_unacknowledged(&mut self, now: i64) {
        let every = |s: &Settings, severity: Severity| -> Option<i64> {
            let mins = ringing(s, severity).repeat_mins;
            (mins > 0).then(|| i64::try_from(mins.saturating_mul(60_000)).unwrap_or(i64::MAX))
        };
        let due: Vec<String> = self
            .active
            .values()
            .filter(|a| !a.acked())
            .filter(|a| {
                every(&self.settings, a.row.severity)
                    .is_some_and(|e| a.last_considered_ms.is_some_and(|t| now - t >= e))
            })
            .map(|a| a.key.clone())
            .collect();
        let mut ring = Vec::new();
        for key in due {
            let Some(a) = self.active.get(&key) else {
                continue;
            };
            if self.sensor_hold(&a.row).is_some() {
                // Muted or snoozed: not repeated, and not piled up for later either.
                self.mark_considered(&key, now, false);
                continue;
            }
            ring.push(key);
        }
        // A storm still unacknowledged rings as one summary, not one popup per alarm (more
        // than the grouping's maximum at once, as for new alarms). Quiet hours and the pause
        // hold each alarm by its own urgency, so a summary never carries a held one.
        let group_max = self.settings.notifications.group_max.max(1) as usize;
        if ring.len() <= group_max {
            for key in ring {
                if let Some(a) = self.active.get(&key) {
                    let popup = self.popup_for(a, now);
                    let shown = self.show(popup, true);
                    self.mark_considered(&key, now, shown);
                }
            }
            return;
        }
        let mut pass = Vec::new();
        for key in ring {
            let Some(a) = self.active.get(&key) else {
                continue;
            };
            let popup = self.popup_for(a, now);
            if self.held_reason(popup.urgency).is_some() {
                self.show(popup, true);
                self.mark_considered(&key, now, false);
            } else {
                pass.push(key);
            }
        }
        self.pop_one_or_summary(&pass, None, Some("still unacknowledged"), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snooze_lengths() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 2024-05-01 22:30 in Berlin (CEST, UTC+2).
        let now: Timestamp = "2024-05-01T20:30:00Z".parse().unwrap();
        let one = snooze_until(now, &tz, SnoozeFor::Hours { hours: 1 }).unwrap();
        assert_eq!(one - now.as_millisecond(), 3_600_000);
        let four = snooze_until(now, &tz, SnoozeFor::Hours { hours: 4 }).unwrap();
        assert_eq!(four - now.as_millisecond(), 4 * 3_600_000);
        let tomorrow = snooze_until(now, &tz, SnoozeFor::UntilTomorrow).unwrap();
        let expected: Timestamp = "2024-05-02T05:00:00Z".parse().unwrap();
        assert_eq!(tomorrow, expected.as_millisecond(), "07:00 Berlin time");
        assert!(snooze_until(now, &tz, SnoozeFor::Hours { hours: 0 }).is_err());
        assert!(snooze_until(now, &tz, SnoozeFor::Hours { hours: 25 }).is_err());
    }

    #[test]
    fn sound_follows_severity_and_the_switch() {
        let mut s = Settings::default();
        assert_eq!(sound_for(&s, Severity::Alarm), Some(Sound::Alarm));
        assert_eq!(sound_for(&s, Severity::Warning), Some(Sound::Alert));
        assert_eq!(ringing(&s, Severity::Alarm).repeat_mins, 5);
        s.notifications.sound = false;
        assert_eq!(sound_for(&s, Severity::Alarm), None);
    }
}
