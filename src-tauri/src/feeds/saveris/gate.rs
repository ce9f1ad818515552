//! What every Saveris connection of this process must respect, whoever opens it (a feed,
//! its token renewal, Test connection): a rate-limit window per host, and which accounts
//! have a live feed (Test connection reports that feed instead of opening a second
//! connection, which would count towards the user's 4 and towards the attempt limit).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use jiff::Timestamp;
use tokio::sync::watch;

use crate::event::{FeedState, FeedStatus};

#[derive(Default)]
struct Gate {
    /// Host (`host:port`) → no connection before this time.
    blocked: HashMap<String, Timestamp>,
    /// Connection key (URL + user) → the status of each feed using it.
    feeds: HashMap<String, Vec<(u64, watch::Receiver<FeedStatus>)>>,
    next_id: u64,
}

static GATE: LazyLock<Mutex<Gate>> = LazyLock::new(Default::default);

fn gate() -> MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host part of a URL that a rate limit applies to (`host:port`).
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_ascii_lowercase();
            Some(match u.port_or_known_default() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| url.to_string())
}

/// Saveris said "too many connection attempts": nothing connects to `host` before `until`.
pub fn block(host: &str, until: Timestamp) {
    let mut g = gate();
    let at = g.blocked.entry(host.to_string()).or_insert(until);
    *at = (*at).max(until);
}

/// The end of `host`'s rate-limit window, if it is still running at `now`.
pub fn blocked_until(host: &str, now: Timestamp) -> Option<Timestamp> {
    let mut g = gate();
    match g.blocked.get(host) {
        Some(until) if *until > now => Some(*until),
        Some(_) => {
            g.blocked.remove(host);
            None
        }
        None => None,
    }
}

/// The key two connections share when they log in as the same user at the same place.
pub fn connection_key(ws_url: &str, username: &str) -> String {
    format!("{ws_url} {}", username.trim())
}

/// A feed's entry in the live registry; removed when dropped (the feed ended).
pub struct Registered {
    key: String,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut g = gate();
        if let Some(v) = g.feeds.get_mut(&self.key) {
            v.retain(|(id, _)| *id != self.id);
            if v.is_empty() {
                g.feeds.remove(&self.key);
            }
        }
    }
}

/// Registers a running feed under `key`, with its status.
pub fn register(key: &str, status: watch::Receiver<FeedStatus>) -> Registered {
    let mut g = gate();
    g.next_id += 1;
    let id = g.next_id;
    g.feeds
        .entry(key.to_string())
        .or_default()
        .push((id, status));
    Registered {
        key: key.to_string(),
        id,
    }
}

/// The status of a live feed under `key`, if there is one.
pub fn live_feed(key: &str) -> Option<FeedStatus> {
    let g = gate();
    g.feeds
        .get(key)?
        .iter()
        .map(|(_, rx)| rx.borrow().clone())
        .find(|s| s.state == FeedState::Live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_holds_until_its_time_and_only_for_its_host() {
        let t = Timestamp::from_second(1_700_000_000).unwrap();
        let later = Timestamp::from_second(1_700_000_600).unwrap();
        block("gate-test-a:443", later);
        assert_eq!(blocked_until("gate-test-a:443", t), Some(later));
        assert_eq!(blocked_until("gate-test-b:443", t), None);
        // A shorter block never shortens a longer one.
        block("gate-test-a:443", t);
        assert_eq!(blocked_until("gate-test-a:443", t), Some(later));
        assert_eq!(blocked_until("gate-test-a:443", later), None);
        assert_eq!(host_of("wss://Example.com/web-socket"), "example.com:443");
        assert_eq!(host_of("ws://127.0.0.1:9/x"), "127.0.0.1:9");
    }

    #[test]
    fn the_registry_knows_live_feeds_until_they_end() {
        let (tx, rx) = watch::channel(FeedStatus::new("f".into(), "F".into()));
        let r = register("gate-test ws://x alice", rx);
        assert!(
            live_feed("gate-test ws://x alice").is_none(),
            "not live yet"
        );
        tx.send_modify(|s| s.state = FeedState::Live);
        assert!(live_feed("gate-test ws://x alice").is_some());
        drop(r);
        assert!(live_feed("gate-test ws://x alice").is_none());
    }
}
