//! The one clock of the crate: wall-clock time and the user's time zone, injected so tests
//! control it — the engine's feed silence, quiet hours, minimum durations and grouping
//! windows, and the feeds' heart-beats, token renewal and suspend detection.
//!
//! Wall-clock time on purpose: a suspend/resume shows up as a jump (a tokio `Instant`
//! stands still while the machine sleeps), and tests inject a clock that jumps.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
    /// The user's time zone, for quiet hours and the times in popups: the system's unless
    /// a test fixes one.
    fn tz(&self) -> TimeZone {
        TimeZone::system()
    }
}

/// The system clock and time zone.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests, benchmarks).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
    tz: TimeZone,
}

impl ManualClock {
    pub fn new(start: Timestamp, tz: TimeZone) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            tz,
        }
    }

    /// UTC, starting at `start`.
    pub fn utc(start: Timestamp) -> Self {
        Self::new(start, TimeZone::UTC)
    }

    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance_secs(&self, secs: i64) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now
            .saturating_add(SignedDuration::from_secs(secs))
            .unwrap_or(*now);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn tz(&self) -> TimeZone {
        self.tz.clone()
    }
}
