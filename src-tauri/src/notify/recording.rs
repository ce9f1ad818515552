//! A notifier for tests: records every popup shown and every tag closed, in order.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Notifier, NotifyError, Popup};

/// One call the recorder saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Shown(Popup),
    Closed(String),
}

#[derive(Default)]
pub struct RecordingNotifier {
    calls: Mutex<Vec<Recorded>>,
    changed: Condvar,
    /// When set, `show` fails (as with no notification daemon).
    fail: Mutex<bool>,
}

impl RecordingNotifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `show` fail.
    pub fn set_failing(&self, fail: bool) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = fail;
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn shown(&self) -> Vec<Popup> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Recorded::Shown(p) => Some(p),
                Recorded::Closed(_) => None,
            })
            .collect()
    }

    pub fn closed(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Recorded::Closed(t) => Some(t),
                Recorded::Shown(_) => None,
            })
            .collect()
    }

    /// Waits until at least `n` calls were recorded (or `timeout` passed) and returns them.
    pub fn wait_calls(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        while calls.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            calls = match self.changed.wait_timeout(calls, left) {
                Ok((c, _)) => c,
                Err(p) => p.into_inner().0,
            };
        }
        calls.clone()
    }

    fn record(&self, r: Recorded) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(r);
        self.changed.notify_all();
    }
}

impl Notifier for RecordingNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        if *self.fail.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(NotifyError::Show(
                "no notification daemon (recording notifier set to fail)".into(),
            ));
        }
        self.record(Recorded::Shown(popup.clone()));
        Ok(())
    }

    fn close(&self, tag: &str) {
        self.record(Recorded::Closed(tag.to_string()));
    }
}
