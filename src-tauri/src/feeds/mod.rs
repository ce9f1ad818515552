//! Feeds: one connection each, turning what arrives into [`crate::event::Delivery`]s.
//! They know nothing of rules, notifications or windows, and never touch the keyring:
//! the root reads secrets and hands them in.

pub mod backoff;
pub mod element;
pub mod saveris;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running feed: stop it and wait for it to finish.
#[derive(Debug)]
pub struct FeedHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FeedHandle {
    /// Wraps a feed task that watches `stop` (it returns when the value becomes `true`).
    pub fn new(stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        FeedHandle { stop, task }
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
