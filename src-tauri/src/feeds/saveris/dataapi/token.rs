//! One token per account, shared by the push feed and the Data API client: whoever needs a
//! token first logs in, the other reuses it until it is due for renewal (the vendor: "cache
//! the token and renew it before expiry; reuse a valid token").

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::feeds::saveris::auth::Token;

/// The account's current token, if any. Cheap to clone; clones share the slot.
#[derive(Clone)]
pub struct TokenSlot(Arc<watch::Sender<Option<Token>>>);

impl Default for TokenSlot {
    fn default() -> Self {
        TokenSlot(Arc::new(watch::channel(None).0))
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
}
