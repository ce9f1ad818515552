//! When popups may show: quiet hours, and storm control (grouping of many new alarms into
//! one summary). Pure functions and state, driven with explicit times.

use std::collections::HashSet;

use jiff::civil::Time;

use crate::settings::QuietHours;

/// "22:00" → 22:00. Seconds are optional.
pub fn parse_hhmm(s: &str) -> Option<Time> {
    let mut it = s.trim().split(':');
    let h: i8 = it.next()?.trim().parse().ok()?;
    let m: i8 = it.next()?.trim().parse().ok()?;
    let sec: i8 = match it.next() {
        Some(x) => x.trim().parse().ok()?,
        None => 0,
    };
    Time::new(h, m, sec, 0).ok()
}

/// Whether local time `t` falls in the quiet hours. A window whose start is after its end
/// spans midnight (22:00–07:00); equal start and end mean no quiet hours at all.
pub fn in_quiet_hours(q: &QuietHours, t: Time) -> bool {
    if !q.enabled {
        return false;
    }
    let (Some(start), Some(end)) = (parse_hhmm(&q.start), parse_hhmm(&q.end)) else {
        return false;
    };
    if start == end {
        false
    } else if start < end {
        start <= t && t < end
    } else {
        t >= start || t < end
    }
}

/// Whether a new alarm pops now or waits for the window's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Now,
    Grouped,
}

/// A grouping window that closed with alarms held for its summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Alarms held for the summary (ids).
    pub held: Vec<i64>,
    /// All new alarms of the window, shown ones included.
    pub total: u32,
    /// Distinct sensors of the window's alarms.
    pub sensors: u32,
}

/// Storm control. A window opens with the first new alarm and lasts `window_ms`; the first
/// `max` alarms of a window pop at once, later ones (and every replayed one) wait for one
/// summary when the window closes.
#[derive(Debug, Default)]
pub struct Grouper {
    window_ms: i64,
    max: u32,
    start_ms: Option<i64>,
    total: u32,
    sensors: HashSet<String>,
    held: Vec<i64>,
}

impl Grouper {
    pub fn new(window_secs: u64, max: u32) -> Self {
        let mut g = Grouper::default();
        g.configure(window_secs, max);
        g
    }

    pub fn configure(&mut self, window_secs: u64, max: u32) {
        self.window_ms = i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.max = max;
    }

    /// Closes the window if it has ended by `now_ms`; returns what it held, if anything.
    pub fn flush(&mut self, now_ms: i64) -> Option<Flushed> {
        let start = self.start_ms?;
        if now_ms < start.saturating_add(self.window_ms) {
            return None;
        }
        self.start_ms = None;
        let total = std::mem::take(&mut self.total);
        let sensors = std::mem::take(&mut self.sensors).len() as u32;
        let held = std::mem::take(&mut self.held);
        (!held.is_empty()).then_some(Flushed {
            held,
            total,
            sensors,
        })
    }

    /// When the open window ends (ms), if one is open.
    pub fn window_end(&self) -> Option<i64> {
        self.start_ms.map(|s| s.saturating_add(self.window_ms))
    }

    /// A new alarm at `now_ms`. Call [`Grouper::flush`] first so an ended window closes.
    pub fn admit(&mut self, now_ms: i64, alarm_id: i64, sensor: &str, replayed: bool) -> Admit {
        if self.start_ms.is_none() {
            self.start_ms = Some(now_ms);
        }
        self.total += 1;
        if !self.sensors.contains(sensor) {
            self.sensors.insert(sensor.to_string());
        }
        if replayed || self.total > self.max {
            self.held.push(alarm_id);
            Admit::Grouped
        } else {
            Admit::Now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: &str, end: &str) -> QuietHours {
        QuietHours {
            enabled: true,
            start: start.into(),
            end: end.into(),
            allow_critical: true,
        }
    }

    fn t(s: &str) -> Time {
        parse_hhmm(s).unwrap()
    }

    #[test]
    fn quiet_hours_across_midnight() {
        let night = q("22:00", "07:00");
        assert!(!in_quiet_hours(&night, t("21:59:59")));
        assert!(in_quiet_hours(&night, t("22:00")));
        assert!(in_quiet_hours(&night, t("23:59:59")));
        assert!(in_quiet_hours(&night, t("00:00")));
        assert!(in_quiet_hours(&night, t("06:59:59")));
        assert!(!in_quiet_hours(&night, t("07:00")));
        assert!(!in_quiet_hours(&night, t("12:00")));
    }

    #[test]
    fn quiet_hours_within_a_day_and_degenerate() {
        let lunch = q("12:00", "13:30");
        assert!(in_quiet_hours(&lunch, t("12:00")));
        assert!(!in_quiet_hours(&lunch, t("13:30")));
        assert!(!in_quiet_hours(&lunch, t("00:00")));
        assert!(!in_quiet_hours(&q("08:00", "08:00"), t("08:00")));
        assert!(!in_quiet_hours(&q("nonsense", "07:00"), t("03:00")));
        let mut off = q("00:00", "23:59");
        off.enabled = false;
        assert!(!in_quiet_hours(&off, t("10:00")));
    }

    #[test]
    fn grouping_window_boundaries() {
        let mut g = Grouper::new(10, 3);
        // Three pop at once, the fourth and fifth wait.
        assert_eq!(g.admit(0, 1, "a", false), Admit::Now);
        assert_eq!(g.admit(1_000, 2, "b", false), Admit::Now);
        assert_eq!(g.admit(2_000, 3, "a", false), Admit::Now);
        assert_eq!(g.admit(3_000, 4, "c", false), Admit::Grouped);
        assert_eq!(
            g.flush(9_999),
            None,
            "the window is still open 1 ms before its end"
        );
        assert_eq!(g.admit(9_999, 5, "c", false), Admit::Grouped);
        assert_eq!(g.window_end(), Some(10_000));
        assert_eq!(
            g.flush(10_000),
            Some(Flushed {
                held: vec![4, 5],
                total: 5,
                sensors: 3
            })
        );
        // A new window starts with the next alarm: it pops again.
        assert_eq!(g.admit(10_000, 6, "d", false), Admit::Now);
        assert_eq!(g.window_end(), Some(20_000));
    }

    #[test]
    fn exactly_max_alarms_need_no_summary() {
        let mut g = Grouper::new(10, 3);
        for i in 0..3 {
            assert_eq!(g.admit(i, i, "s", false), Admit::Now);
        }
        assert_eq!(g.flush(20_000), None);
        assert_eq!(g.window_end(), None);
    }

    #[test]
    fn replayed_alarms_are_always_grouped() {
        let mut g = Grouper::new(10, 3);
        assert_eq!(g.admit(0, 1, "a", true), Admit::Grouped);
        assert_eq!(g.admit(0, 2, "b", false), Admit::Now);
        assert_eq!(
            g.flush(10_000),
            Some(Flushed {
                held: vec![1],
                total: 2,
                sensors: 2
            })
        );
    }
}
