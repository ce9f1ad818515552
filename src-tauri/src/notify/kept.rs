//! Popups the desktop could not show are kept, not lost (issue 24): while the notification
//! service is away (dunst restarting, the session's daemon not started yet) each failed
//! popup waits in a bounded queue; a thread tries again every few seconds and, once the
//! service answers, shows them, or one summary of them when there are many. Meanwhile
//! [`Notifier::failing`] is true, and the engine's status says popups are failing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Notifier, NotifyError, Popup, Urgency};

/// At most this many popups are kept; older ones are counted, not kept.
pub const KEPT_MAX: usize = 20;
/// Up to this many kept popups are shown one by one; more become one summary.
const SHOWN_ONE_BY_ONE: usize = 3;
/// The tag of the summary of kept popups.
pub const MISSED_TAG: &str = "missed-popups";

#[derive(Default)]
struct Kept {
    queue: VecDeque<Popup>,
    /// Popups pushed out of the full queue.
    dropped: usize,
    retrying: bool,
}

/// Wraps the desktop notifier; see the module docs.
pub struct KeptNotifier {
    inner: Arc<dyn Notifier>,
    kept: Arc<Mutex<Kept>>,
    failing: Arc<AtomicBool>,
    retry_every: Duration,
}

impl KeptNotifier {
    pub fn new(inner: Arc<dyn Notifier>) -> Self {
        Self::with_retry(inner, Duration::from_secs(5))
    }

    pub fn with_retry(inner: Arc<dyn Notifier>, retry_every: Duration) -> Self {
        KeptNotifier {
            inner,
            kept: Arc::default(),
            failing: Arc::default(),
            retry_every,
        }
    }

    fn keep(&self, popup: &Popup) {
        let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        // A newer popup of the same alarm replaces the kept one, as on the desktop.
        k.queue.retain(|p| p.tag != popup.tag);
        if k.queue.len() >= KEPT_MAX {
            k.queue.pop_front();
            k.dropped += 1;
        }
        k.queue.push_back(popup.clone());
        if !k.retrying {
            k.retrying = true;
            let (inner, kept, failing, every) = (
                self.inner.clone(),
                self.kept.clone(),
                self.failing.clone(),
                self.retry_every,
            );
            let spawned = std::thread::Builder::new()
                .name("popups-kept".into())
                .spawn(move || retry(inner, kept, failing, every));
            if spawned.is_err() {
                k.retrying = false;
            }
        }
    }
}

/// Tries the kept popups again until all are shown.
fn retry(
    inner: Arc<dyn Notifier>,
    kept: Arc<Mutex<Kept>>,
    failing: Arc<AtomicBool>,
    every: Duration,
) {
    loop {
        std::thread::sleep(every);
        let (batch, dropped) = {
            let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut k.queue), std::mem::take(&mut k.dropped))
        };
        let result = if batch.len() <= SHOWN_ONE_BY_ONE && dropped == 0 {
            let mut left = batch.clone();
            let mut r = Ok(());
            while let Some(p) = left.front() {
                match inner.show(p) {
                    Ok(()) => {
                        left.pop_front();
                    }
                    Err(e) => {
                        r = Err((left.clone(), e));
                        break;
                    }
                }
            }
            r
        } else {
            inner
                .show(&summary(&batch, dropped))
                .map_err(|e| (batch.clone(), e))
        };
        let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if k.queue.is_empty() {
                    k.retrying = false;
                    failing.store(false, Ordering::SeqCst);
                    tracing::info!(
                        popups = batch.len() + dropped,
                        "the notification service is back: kept popups shown"
                    );
                    return;
                }
            }
            Err((left, _)) => {
                // Put back in front of what came meanwhile (newer ones of a tag win).
                let mut merged: VecDeque<Popup> = left
                    .into_iter()
                    .filter(|p| !k.queue.iter().any(|q| q.tag == p.tag))
                    .collect();
                merged.extend(k.queue.drain(..));
                while merged.len() > KEPT_MAX {
                    merged.pop_front();
                    k.dropped += 1;
                }
                k.queue = merged;
                k.dropped += dropped;
            }
        }
    }
}

/// One popup for many that could not be shown: how many, and the newest few.
fn summary(batch: &VecDeque<Popup>, dropped: usize) -> Popup {
    let n = batch.len() + dropped;
    let mut body = String::new();
    for p in batch.iter().rev().take(5) {
        body.push_str(&p.summary);
        body.push('\n');
    }
    if n > 5 {
        body.push_str(&format!("… and {} more: see the alarm history", n - 5));
    }
    Popup {
        tag: MISSED_TAG.into(),
        summary: format!("{n} popups could not be shown while the notification service was away"),
        body: body.trim_end().to_string(),
        urgency: batch
            .iter()
            .map(|p| p.urgency)
            .max()
            .unwrap_or(Urgency::Normal),
        alarm_id: None,
        actions: true,
        sound: None,
    }
}

impl Notifier for KeptNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        // While popups are kept, a new one waits behind them (order kept, no flood of
        // failing calls).
        if self.failing.load(Ordering::SeqCst) {
            self.keep(popup);
            return Err(NotifyError::Show(
                "kept until the notification service is back".into(),
            ));
        }
        match self.inner.show(popup) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                self.keep(popup);
                Err(e)
            }
        }
    }

    fn close(&self, tag: &str) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue
            .retain(|p| p.tag != tag);
        self.inner.close(tag);
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails while `down`; records what it showed.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
        shown: Mutex<Vec<String>>,
    }

    impl Notifier for Flaky {
        fn show(&self, p: &Popup) -> Result<(), NotifyError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(NotifyError::Show("no daemon".into()));
            }
            self.shown.lock().unwrap().push(p.summary.clone());
            Ok(())
        }
        fn close(&self, _: &str) {}
    }

    fn popup(tag: &str) -> Popup {
        Popup {
            tag: tag.into(),
            summary: format!("alarm {tag}"),
            body: String::new(),
            urgency: Urgency::Critical,
            alarm_id: None,
            actions: false,
            sound: None,
        }
    }

    fn wait_until(f: impl Fn() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("timed out");
    }

    #[test]
    fn a_few_kept_popups_are_shown_when_the_service_is_back() {
        let flaky = Arc::new(Flaky::default());
        flaky.down.store(true, Ordering::SeqCst);
        let n = KeptNotifier::with_retry(flaky.clone(), Duration::from_millis(20));
        assert!(n.show(&popup("a")).is_err());
        assert!(n.show(&popup("b")).is_err());
        n.close("b");
        assert!(n.failing());
        std::thread::sleep(Duration::from_millis(60));
        assert!(flaky.shown.lock().unwrap().is_empty());
        flaky.down.store(false, Ordering::SeqCst);
        wait_until(|| !n.failing());
        assert_eq!(*flaky.shown.lock().unwrap(), vec!["alarm a".to_string()]);
    }

    #[test]
    fn many_kept_popups_fold_into_one_summary_and_the_queue_is_bounded() {
        let flaky = Arc::new(Flaky::default());
        flaky.down.store(true, Ordering::SeqCst);
        let n = KeptNotifier::with_retry(flaky.clone(), Duration::from_millis(20));
        for i in 0..(KEPT_MAX + 10) {
            let _ = n.show(&popup(&i.to_string()));
        }
        assert!(n.kept.lock().unwrap().queue.len() <= KEPT_MAX);
        flaky.down.store(false, Ordering::SeqCst);
        wait_until(|| !n.failing());
        let shown = flaky.shown.lock().unwrap();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown[0].starts_with(&format!("{} popups could not be shown", KEPT_MAX + 10)));
    }
}
