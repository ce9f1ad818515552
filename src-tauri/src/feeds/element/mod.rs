//! ELEMENT IoT WebSocket feed: one socket per enabled subscription of an account.
//!
//! - [`payload`]: the tolerant frame parser; [`scrub`] removes LoRaWAN keys from every body
//!   before anything keeps it.
//! - [`fields`]: which `data` numbers are measurements, and a reading's main value.
//! - [`mapping`]: parsed readings/packets → normalized [`crate::event::Event`]s.
//! - [`socket`]: socket URLs (with `auth=` redacted wherever shown) and the per-subscription
//!   I/O loop, run by the shared [`crate::feeds::connector`] (backoff, status).
//! - [`link`]: one link's decisions as a state machine: keep-alive, replay with `after=`,
//!   dedupe, where to resume.
//! - [`rest`]: discovery of devices and tags for the settings pickers.
//!
//! The API key travels in the URL (the vendor's design); it never appears in a log line,
//! an error message, a status text or a `Debug` output of this module.

pub mod fields;
pub mod link;
pub mod mapping;
pub mod names;
pub mod payload;
pub mod rest;
pub mod scrub;
pub mod socket;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::{Clock, SystemClock};
use crate::event::{Delivery, FeedStatus};
use crate::feeds::connector::{self, Status};
use crate::feeds::FeedHandle;
use crate::settings::{ElementAccount, ElementKind, ElementScope, ElementSubscription};

/// Errors of the ELEMENT layer. Every `Display` is a sentence for people and never contains
/// the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElementError {
    #[error("invalid ELEMENT address: {0}")]
    InvalidUrl(String),
    #[error("API key rejected")]
    KeyRejected,
    #[error("API key rejected: no permission for {0}")]
    Forbidden(String),
    #[error("{0} not found on the ELEMENT instance")]
    NotFound(String),
    #[error("host unreachable: {0}")]
    Unreachable(String),
    #[error("the ELEMENT server answered HTTP {0}")]
    Http(u16),
    /// A 4xx the request itself caused (a bad parameter, a preload the socket does not
    /// allow): retrying the same request cannot help. Holds the server's own words.
    #[error("the ELEMENT server refused it (HTTP {0}): {1}")]
    Refused(u16, String),
    /// 429: the key's shared budget (50 requests per 10 s) is used up for now.
    #[error("ELEMENT asks to wait {0} s (rate limit)")]
    RateLimited(u64),
    #[error("no answer from the ELEMENT server within {0} s")]
    Timeout(u64),
    #[error("unexpected answer from the ELEMENT server: {0}")]
    Protocol(String),
}

impl ElementError {
    /// Retrying cannot help: the user has to act (new key, other id).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ElementError::KeyRejected
                | ElementError::Forbidden(_)
                | ElementError::NotFound(_)
                | ElementError::InvalidUrl(_)
                | ElementError::Refused(..)
        )
    }
}

/// Timing knobs of the socket loop; the defaults suit the real service.
#[derive(Debug, Clone)]
pub struct Timing {
    /// WebSocket Ping (and text `ping` if enabled) every this long: well inside the
    /// server's 60 s idle limit.
    pub ping_interval: Duration,
    /// No frame at all within this long after a ping → the link is dead.
    pub pong_timeout: Duration,
    /// Bound on TCP + TLS + upgrade.
    pub connect_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A link must stay up this long (or deliver an event) before backoff starts again from
    /// the base: a server that accepts and drops at once must not cause a storm.
    pub stable_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: connector::STABLE_AFTER,
        }
    }
}

/// Everything one ELEMENT account's feed needs; built by the root.
#[derive(Clone)]
pub struct ElementFeedConfig {
    pub account: ElementAccount,
    pub api_key: String,
    /// Persisted cursor per subscription id (the `inserted_at` of the newest stored event),
    /// read by the root from history.
    pub cursors: HashMap<String, String>,
    pub timing: Timing,
    pub clock: Arc<dyn Clock>,
}

impl ElementFeedConfig {
    pub fn new(account: ElementAccount, api_key: String, cursors: HashMap<String, String>) -> Self {
        ElementFeedConfig {
            account,
            api_key,
            cursors,
            timing: Timing::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for ElementFeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementFeedConfig")
            .field("account", &self.account)
            .field("api_key", &"<redacted>")
            .field("cursors", &self.cursors)
            .field("timing", &self.timing)
            .finish()
    }
}

/// The feed status id of a subscription.
pub fn feed_id(account: &ElementAccount, sub: &ElementSubscription) -> String {
    format!("element:{}:{}", account.id, sub.id)
}

/// "ELEMENT element-iot.com readings of tag X".
pub fn label(account: &ElementAccount, sub: &ElementSubscription) -> String {
    let host = url::Url::parse(&account.base_url)
        .ok()
        .and_then(|u| {
            let h = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
        .unwrap_or_else(|| account.base_url.clone());
    let scope = match &sub.scope {
        ElementScope::Device(id) => format!("device {id}"),
        ElementScope::Tag(id) => format!("tag {id}"),
        ElementScope::Stream(id) => format!("stream {id}"),
        ElementScope::Mandate => "the whole mandate".to_string(),
    };
    format!("ELEMENT {host} {} of {scope}", sub.kind.as_str())
}

/// One task per enabled subscription of the account; one failing subscription never stops
/// the others. The handle stops them all.
pub fn spawn(
    cfg: ElementFeedConfig,
    deliveries: mpsc::Sender<Delivery>,
    status: mpsc::UnboundedSender<FeedStatus>,
) -> FeedHandle {
    let (stop_tx, stop_rx) = FeedHandle::channel();
    let runs: Vec<(socket::SubscriptionRun, Status)> = (cfg.account.subscriptions.iter())
        .filter(|s| s.enabled)
        .map(|sub| {
            let run = socket::SubscriptionRun {
                account: cfg.account.clone(),
                sub: sub.clone(),
                api_key: cfg.api_key.clone(),
                cursor: cfg.cursors.get(&sub.id).cloned().filter(|c| !c.is_empty()),
                timing: cfg.timing.clone(),
                clock: cfg.clock.clone(),
            };
            let first = FeedStatus::new(feed_id(&cfg.account, sub), label(&cfg.account, sub));
            (run, Status::new(first, status.clone()))
        })
        .collect();
    let watched = runs.iter().map(|(_, s)| s.subscribe()).collect();
    let task = tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for (run, status) in runs {
            set.spawn(socket::run(
                run,
                deliveries.clone(),
                status,
                stop_rx.clone(),
            ));
        }
        while let Some(res) = set.join_next().await {
            if let Err(e) = res {
                // A panic in one subscription must not take the others down; it is a bug.
                tracing::error!(error = %e, "an ELEMENT subscription task ended abnormally");
            }
        }
    });
    FeedHandle::new(stop_tx, task, watched)
}

/// Opens each enabled subscription's own socket (device, tag, stream or mandate × kind),
/// and the mandate readings socket, and says which scopes the key may read: "Connected:
/// the key can read tag cold (readings); not the whole mandate (a key limited to some tags
/// or devices)". A key limited to some tags is no failure as long as it can read what the
/// subscriptions ask for. Without subscriptions, such a key's tags are listed over REST.
/// The error's `Display` is for people ("API key rejected", "host unreachable: …") and
/// never contains the key.
pub async fn test_connection(
    account: &ElementAccount,
    api_key: &str,
) -> Result<String, ElementError> {
    let timing = Timing::default();
    let open = |scope: ElementScope, kind: ElementKind| {
        let base = account.base_url.clone();
        let key = api_key.to_string();
        let limit = timing.connect_timeout;
        async move {
            let url = socket::socket_url(&base, &scope, kind, &key, None, &[])?;
            let (mut ws, _) = socket::connect(&url, &scope, limit).await?;
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            Ok::<(), ElementError>(())
        }
    };
    let mut can = Vec::new();
    let mut cannot = Vec::new();
    let mut seen = Vec::new();
    for sub in account.subscriptions.iter().filter(|s| s.enabled) {
        if seen.contains(&(&sub.scope, sub.kind)) {
            continue;
        }
        seen.push((&sub.scope, sub.kind));
        let what = format!("{} ({})", scope_words(&sub.scope), sub.kind.as_str());
        match open(sub.scope.clone(), sub.kind).await {
            Ok(()) => can.push(what),
            Err(ElementError::Forbidden(_)) => cannot.push(what),
            Err(ElementError::NotFound(_)) => cannot.push(format!("{what}: not found")),
            Err(e) => return Err(e),
        }
    }
    let mandate = match open(ElementScope::Mandate, ElementKind::Readings).await {
        Ok(()) => true,
        Err(ElementError::Forbidden(_)) => false,
        Err(e) => return Err(e),
    };
    if can.is_empty() && cannot.is_empty() && !mandate {
        // No subscription yet: the tags this key may list are what it may read.
        if let Ok(tags) = rest::tags(&account.base_url, api_key).await {
            can.extend(tags.iter().map(|t| format!("tag {}", t.id)));
        }
    }
    let mut parts = Vec::new();
    if !can.is_empty() {
        parts.push(format!("the key can read {}", can.join(", ")));
    }
    parts.push(if mandate {
        "the whole mandate".to_string()
    } else {
        "not the whole mandate (a key limited to some tags or devices)".to_string()
    });
    if !cannot.is_empty() {
        return Err(ElementError::Forbidden(format!(
            "{}; {}",
            cannot.join(", "),
            parts.join("; ")
        )));
    }
    Ok(format!("Connected: {}", parts.join("; ")))
}

fn scope_words(scope: &ElementScope) -> String {
    match scope {
        ElementScope::Device(id) => format!("device {id}"),
        ElementScope::Tag(id) => format!("tag {id}"),
        ElementScope::Stream(id) => format!("stream {id}"),
        ElementScope::Mandate => "the whole mandate".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let cfg = ElementFeedConfig::new(
            ElementAccount::default(),
            "s3cr3t-key".into(),
            HashMap::new(),
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t-key"));
    }

    #[test]
    fn label_names_host_kind_and_scope() {
        let acc = ElementAccount {
            id: "a".into(),
            base_url: "https://acme.element-iot.com".into(),
            ..Default::default()
        };
        let sub = ElementSubscription {
            id: "s".into(),
            scope: ElementScope::Tag("X".into()),
            ..Default::default()
        };
        assert_eq!(
            label(&acc, &sub),
            "ELEMENT acme.element-iot.com readings of tag X"
        );
        assert_eq!(feed_id(&acc, &sub), "element:a:s");
    }
}
