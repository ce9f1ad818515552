//! Feeds: one connection each, turning what arrives into [`crate::event::Delivery`]s.
//! They know nothing of rules, notifications or windows, and never touch the keyring:
//! the root reads secrets and hands them in.

pub mod connector;
pub mod element;
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
