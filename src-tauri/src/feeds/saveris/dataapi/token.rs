//! One token per account, shared by the push feed and the Data API client: whoever needs a
//! token first logs in, the other reuses it until it is due for renewal (the vendor: "cache
//! the token and renew it before expiry; reuse a valid token").

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::{watch, Notify};

use crate::feeds::saveris::auth::Token;

/// The account's current token, if any, and the push feed's outages (the Data API fills
/// them in, issue 20). Cheap to clone; clones share the slot.
#[derive(Clone)]
pub struct TokenSlot(Arc<watch::Sender<Option<Token>>>, Arc<Outages>);

/// When the push feed's link went down, and the outages not yet filled in.
#[derive(Default)]
pub struct Outages {
    state: Mutex<OutageState>,
    notify: Notify,
}

#[derive(Default)]
struct OutageState {
    down_since: Option<Timestamp>,
    /// From the start of the oldest unfilled outage to the end of the newest.
    pending: Option<(Timestamp, Timestamp)>,
}

impl Default for TokenSlot {
    fn default() -> Self {
        TokenSlot(Arc::new(watch::channel(None).0), Arc::default())
    }
}

impl std::fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSlot(<redacted>)")
    }
}

impl TokenSlot {
    /// The stored token when it is not yet due for renewal at `now`.
    pub fn fresh(&self, now: Timestamp) -> Option<Token> {
        self.0
            .borrow()
            .as_ref()
            .filter(|t| t.renew_at() > now)
            .cloned()
    }

    pub fn put(&self, token: Token) {
        self.0.send_replace(Some(token));
    }

    /// Forgets `id_token` (the server called it expired); a newer token stays.
    pub fn forget(&self, id_token: &str) {
        self.0.send_if_modified(|slot| {
            let stale = slot.as_ref().is_some_and(|t| t.id_token == id_token);
            if stale {
                *slot = None;
            }
            stale
        });
    }

    /// Waits until someone (the push feed) has put a token: the Data API logs in only to
    /// renew a token the push feed got, so a refused login is tried once, by one client.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// The push feed lost its link at `at` (the first loss counts until it is back).
    pub fn link_down(&self, at: Timestamp) {
        let mut s = self.1.state.lock().unwrap_or_else(|p| p.into_inner());
        s.down_since.get_or_insert(at);
    }

    /// The push feed is live again at `at`: the time it was down becomes an outage to fill
    /// in. The first link of a feed is no outage (the start's backfill covers that).
    pub fn link_up(&self, at: Timestamp) {
        let mut s = self.1.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(from) = s.down_since.take() {
            let from = s.pending.map_or(from, |(f, _)| f.min(from));
            s.pending = Some((from, at));
            drop(s);
            self.1.notify.notify_one();
        }
    }

    /// Waits for an outage of the push feed that ended (several in a row come as one).
    pub async fn next_outage(&self) -> (Timestamp, Timestamp) {
        loop {
            let notified = self.1.notify.notified();
            if let Some(o) = self
                .1
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pending
                .take()
            {
                return o;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_token_is_fresh_until_its_renewal_time_and_forget_spares_a_newer_one() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let slot = TokenSlot::default();
        assert!(slot.fresh(at).is_none());
        let t = Token::from_jwt("not-a-jwt".into(), at, Duration::from_secs(3600));
        slot.put(t.clone());
        assert!(slot
            .fresh(at + jiff::SignedDuration::from_mins(54))
            .is_some());
        assert!(slot
            .fresh(at + jiff::SignedDuration::from_mins(56))
            .is_none());
        slot.forget("another");
        assert!(slot.fresh(at).is_some());
        slot.forget("not-a-jwt");
        assert!(slot.fresh(at).is_none());
    }

    #[tokio::test]
    async fn outages_of_the_push_feed_are_told_once_and_merged() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let slot = TokenSlot::default();
        // The first link is no outage.
        slot.link_up(at(0));
        let none = tokio::time::timeout(Duration::from_millis(50), slot.next_outage()).await;
        assert!(none.is_err());
        // Two outages before anyone asked: one, from the first loss to the last return.
        slot.link_down(at(10));
        slot.link_down(at(11));
        slot.link_up(at(20));
        slot.link_down(at(30));
        slot.link_up(at(40));
        let clone = slot.clone();
        assert_eq!(clone.next_outage().await, (at(10), at(40)));
        let again = tokio::time::timeout(Duration::from_millis(50), slot.next_outage()).await;
        assert!(again.is_err(), "told once");
    }
}
