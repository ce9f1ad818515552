//! Feeds: one connection each, turning what arrives into [`crate::event::Delivery`]s.
//! They know nothing of rules, notifications or windows, and never touch the keyring:
//! the root reads secrets and hands them in.

pub mod connector;
pub mod element;
pub mod refresh;
pub mod saveris;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::event::FeedStatus;

/// A running feed: watch its status, stop it and wait for it to finish.
#[derive(Debug)]
pub struct FeedHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    statuses: Vec<watch::Receiver<FeedStatus>>,
}

impl FeedHandle {
    /// Wraps a feed task that watches `stop` (it returns when the value becomes `true`);
    /// `statuses` are its connections' watched statuses.
    pub fn new(
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
        statuses: Vec<watch::Receiver<FeedStatus>>,
    ) -> Self {
        FeedHandle {
            stop,
            task,
            statuses,
        }
    }

    /// The current status of each connection (ELEMENT: one per subscription), as watched
    /// values.
    pub fn statuses(&self) -> &[watch::Receiver<FeedStatus>] {
        &self.statuses
    }

    /// A stop signal pair for a feed task to watch.
    pub fn channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    /// Asks the feed to close its connection (without acknowledging anything further) and
    /// waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use crate::event::FeedState;
    use crate::settings::SaverisAccount;

    #[tokio::test]
    async fn a_feed_status_is_watched_and_sent_to_the_engine() {
        let (deliveries, _) = mpsc::channel(1);
        let (statuses, mut engine) = mpsc::unbounded_channel();
        // No user name: the feed stops at once and says why.
        let cfg = super::saveris::SaverisFeedConfig::new(SaverisAccount::default(), None, None);
        let handle = super::saveris::spawn(cfg, deliveries, statuses);
        let mut watched = handle.statuses()[0].clone();
        let sent = engine.recv().await.unwrap();
        assert!(matches!(sent.state, FeedState::Stopped { .. }), "{sent:?}");
        let seen = watched.wait_for(|s| s.state == sent.state).await;
        assert!(
            seen.is_ok(),
            "the watched value shows what the engine was sent"
        );
        handle.stop().await;
    }
}
