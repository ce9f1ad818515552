//! A feed's status as one watched value.
//!
//! Anyone may watch the value (`subscribe`) and sees the freshest state without reaching
//! into the feed. The engine needs more than the freshest value: it keeps feed health from
//! every transition (connecting → live → waiting …), which a watch would coalesce. So every
//! change the engine must see is also sent, as a snapshot, on its status channel.

use tokio::sync::{mpsc, watch};

use crate::event::{FeedState, FeedStatus};

#[derive(Debug)]
pub struct Status {
    value: watch::Sender<FeedStatus>,
    engine: mpsc::UnboundedSender<FeedStatus>,
    /// The feed id, for logs.
    feed: String,
}

impl Status {
    pub fn new(status: FeedStatus, engine: mpsc::UnboundedSender<FeedStatus>) -> Self {
        let feed = status.feed.clone();
        Status {
            value: watch::Sender::new(status),
            engine,
            feed,
        }
    }

    /// `saveris:<account>` or `element:<account>:<subscription>`.
    pub fn feed(&self) -> &str {
        &self.feed
    }

    pub fn subscribe(&self) -> watch::Receiver<FeedStatus> {
        self.value.subscribe()
    }

    /// A copy of the current value.
    pub fn get(&self) -> FeedStatus {
        self.value.borrow().clone()
    }

    /// Changes the value; the engine hears of it with the next [`Status::publish`].
    pub fn note(&self, change: impl FnOnce(&mut FeedStatus)) {
        self.value.send_modify(change);
    }

    /// Sends the current value to the engine.
    pub fn publish(&self) {
        let _ = self.engine.send(self.get());
    }

    /// Sets the state and tells the engine.
    pub fn set(&self, state: FeedState) {
        self.note(|s| s.state = state);
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_see_every_change_and_the_engine_what_was_published() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let status = Status::new(FeedStatus::new("f".into(), "F".into()), tx);
        let watcher = status.subscribe();
        status.set(FeedState::Connecting);
        status.note(|s| s.last_error = Some("late".into()));
        assert_eq!(watcher.borrow().last_error.as_deref(), Some("late"));
        assert_eq!(rx.try_recv().unwrap().state, FeedState::Connecting);
        assert!(rx.try_recv().is_err(), "a note alone is not published");
        status.set(FeedState::Live);
        let sent = rx.try_recv().unwrap();
        assert_eq!(
            (sent.state, sent.last_error.as_deref()),
            (FeedState::Live, Some("late"))
        );
        assert_eq!(status.feed(), "f");
    }
}
