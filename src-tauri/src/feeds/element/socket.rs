//! Socket URLs and the per-subscription I/O: connect (with `after=` the newest confirmed
//! cursor) → live → keep-alive → on loss the shared [`Connector`] backs off and reconnects.
//! No gap: reconnects replay from the newest event the engine confirmed as stored. No
//! double: events whose id was already delivered-and-confirmed in this process are
//! dropped (the engine dedupes by key too). The decisions are [`LinkState`]'s.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::link::{Action, LinkEnd, LinkState};
use super::{ElementError, Timing};
use crate::clock::Clock;
use crate::event::{AckMsg, Delivery, FeedState};
use crate::feeds::connector::{
    self, is_loopback, until_stopped, Connector, Outcome, Reconnect, Status,
};
use crate::settings::{ElementAccount, ElementKind, ElementScope, ElementSubscription};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The socket URL of a scope × kind. Every value is encoded by the `url` crate (`after`
/// times carry `+` and `:`). The result holds the key: show it only through [`redact`].
pub fn socket_url(
    base_url: &str,
    scope: &ElementScope,
    kind: ElementKind,
    api_key: &str,
    after: Option<&str>,
    preload: &[String],
) -> Result<Url, ElementError> {
    let mut url = base(base_url)?;
    let scheme = match url.scheme() {
        "https" | "wss" => "wss",
        _ => "ws",
    };
    url.set_scheme(scheme)
        .map_err(|()| ElementError::InvalidUrl(base_url.to_string()))?;
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| ElementError::InvalidUrl(base_url.to_string()))?;
        segs.pop_if_empty().extend(["api", "v1"]);
        match scope {
            ElementScope::Device(id) => {
                segs.extend(["devices", id.as_str()]);
            }
            ElementScope::Tag(id) => {
                segs.extend(["tags", id.as_str()]);
            }
            ElementScope::Stream(id) => {
                segs.extend(["streams", id.as_str()]);
            }
            ElementScope::Mandate => {}
        }
        segs.extend([kind.as_str(), "socket"]);
    }
    {
        let mut q = url.query_pairs_mut();
        q.clear().append_pair("auth", api_key);
        if let Some(after) = after {
            q.append_pair("after", after);
        }
        let preload: Vec<&str> = preload
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if !preload.is_empty() {
            q.append_pair("preload", &preload.join(","));
        }
    }
    Ok(url)
}

/// Parses and checks an instance base URL (`https://element-iot.com`, a self-hosted host,
/// or `http://127.0.0.1:port` for the simulator).
pub(crate) fn base(base_url: &str) -> Result<Url, ElementError> {
    let url = Url::parse(base_url.trim())
        .map_err(|e| ElementError::InvalidUrl(format!("{} ({e})", redact_text(base_url))))?;
    if !matches!(url.scheme(), "https" | "http" | "wss" | "ws") || url.host_str().is_none() {
        return Err(ElementError::InvalidUrl(redact(&url)));
    }
    // The API key travels in the URL: in clear only to this computer (the simulator).
    if matches!(url.scheme(), "http" | "ws") && !is_loopback(&url) {
        return Err(ElementError::InvalidUrl(format!(
            "{} (http:// is only allowed for this computer; use https://)",
            redact(&url)
        )));
    }
    Ok(url)
}

/// The URL as it may be shown: the value of `auth=` replaced by `***`.
pub fn redact(url: &Url) -> String {
    if !url.query_pairs().any(|(k, _)| k == "auth") {
        return url.to_string();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "auth" {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut shown = url.clone();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

/// Any text with `auth=<value>` in it (an error message quoting a URL): the value replaced.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("auth=") {
        let (head, tail) = rest.split_at(pos + "auth=".len());
        out.push_str(head);
        out.push_str("***");
        let end = tail
            .find(|c: char| c == '&' || c == '#' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A message about `what`, with the key and any `auth=` value removed.
pub(crate) fn scrub(what: &str, api_key: &str) -> String {
    let text = redact_text(what);
    if api_key.len() >= 4 {
        text.replace(api_key, "***")
    } else {
        text
    }
}

fn scope_words(scope: &ElementScope) -> String {
    match scope {
        ElementScope::Device(id) => format!("device {id}"),
        ElementScope::Tag(id) => format!("tag {id}"),
        ElementScope::Stream(id) => format!("stream {id}"),
        ElementScope::Mandate => "the mandate sockets".into(),
    }
}

/// Opens the socket within `limit`; also gives the server's clock (the upgrade answer's
/// `Date` header, to the second) when it sent one. HTTP 401 → key rejected, 403 → no
/// permission for this scope, 404 → unknown id, any other 4xx but 408/429 → refused with
/// the server's words: all fatal, the caller must not retry. 408, 429 and 5xx are retried.
pub async fn connect(
    url: &Url,
    scope: &ElementScope,
    limit: Duration,
) -> Result<(Socket, Option<Timestamp>), ElementError> {
    let key = url
        .query_pairs()
        .find(|(k, _)| k == "auth")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let attempt = tokio_tungstenite::connect_async(url.as_str());
    match tokio::time::timeout(limit, attempt).await {
        Err(_) => Err(ElementError::Timeout(limit.as_secs().max(1))),
        Ok(Ok((ws, resp))) => Ok((ws, server_date(resp.headers()))),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(match resp.status().as_u16() {
            401 => ElementError::KeyRejected,
            403 => ElementError::Forbidden(scope_words(scope)),
            404 => ElementError::NotFound(scope_words(scope)),
            s @ (408 | 429) => ElementError::Http(s),
            s @ 400..=499 => {
                let words = resp.body().as_deref().map(server_words).unwrap_or_default();
                let words = if words.is_empty() {
                    format!("no reason given, for {}", scope_words(scope))
                } else {
                    scrub(&words, &key)
                };
                ElementError::Refused(s, words)
            }
            s => ElementError::Http(s),
        }),
        Ok(Err(tungstenite::Error::Io(e))) => {
            let host = url.host_str().unwrap_or("?");
            Err(ElementError::Unreachable(scrub(
                &format!("{host} ({e})"),
                &key,
            )))
        }
        Ok(Err(e)) => Err(ElementError::Protocol(scrub(&e.to_string(), &key))),
    }
}

/// The server's clock from an HTTP `Date` header (`Mon, 07 Dec 2026 17:34:32 GMT`).
pub(crate) fn server_date(headers: &tungstenite::http::HeaderMap) -> Option<Timestamp> {
    let text = headers.get("date")?.to_str().ok()?;
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text.trim())
        .ok()
}

/// What an error body says, for people: the `error`/`message`/`errors` of a JSON body
/// (ELEMENT's only recorded error body is `{"error": "…", "ok": false}`), else the text;
/// at most 200 characters.
pub(crate) fn server_words(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => ["error", "message", "errors", "reason"]
            .iter()
            .find_map(|k| match v.get(*k) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
            .unwrap_or_else(|| text.to_string()),
        Err(_) => text.to_string(),
    };
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &words[..i]),
        None => words,
    }
}

/// One subscription's loop, as spawned by [`super::spawn`].
pub struct SubscriptionRun {
    pub account: ElementAccount,
    pub sub: ElementSubscription,
    pub api_key: String,
    /// The persisted cursor (newest stored `inserted_at`), if any.
    pub cursor: Option<String>,
    pub timing: Timing,
    pub clock: Arc<dyn Clock>,
}

/// Runs one subscription until `stop` becomes true or a fatal error (rejected key,
/// unknown id) stops it with a status that says why.
pub async fn run(
    run: SubscriptionRun,
    deliveries: mpsc::Sender<Delivery>,
    status: Status,
    stop: watch::Receiver<bool>,
) {
    let t = &run.timing;
    let reconnect = Reconnect {
        base: t.backoff_base,
        max: t.backoff_max,
        stable_after: t.stable_after,
    };
    let conn = Connector::new(status, stop, run.clock.clone(), reconnect);
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let state = LinkState::new(&run, ack_tx, conn.now());
    let subscription = Subscription {
        run,
        state,
        acks,
        deliveries,
    };
    conn.run(subscription).await;
}

/// One subscription across its links.
struct Subscription {
    run: SubscriptionRun,
    state: LinkState,
    acks: mpsc::UnboundedReceiver<AckMsg>,
    deliveries: mpsc::Sender<Delivery>,
}

impl connector::Session for Subscription {
    async fn attempt(&mut self, conn: &mut Connector) -> Outcome {
        let halt = |message: String| Outcome::Halt {
            error: message.clone(),
            state: FeedState::Stopped { message },
        };
        let retry = |reason: String| Outcome::Retry {
            error: reason.clone(),
            reason,
            wait: None,
        };
        // Confirmations that came while we waited move the cursor before `after=` is chosen.
        while let Ok(ack) = self.acks.try_recv() {
            self.state.on_ack(ack);
        }
        if self.state.needs_server_clock() {
            // "Catch up N hours" counts back from the server's clock, not this PC's.
            let (run, feed) = (&self.run, conn.status.feed());
            let asking =
                super::rest::server_clock(&run.account.base_url, &run.api_key, &run.sub.scope);
            match conn.unless_stopped(asking).await {
                None => return Outcome::Stopped,
                Some(Ok(t)) => self.state.set_server_clock(t),
                Some(Err(e)) => {
                    // Without the server's clock the catch-up starts from this PC's, an
                    // hour earlier to cover a clock that runs ahead.
                    tracing::warn!(%feed, error = %e, "no server clock for the catch-up start");
                    self.state.fallback_to_pc_clock(conn.clock().now());
                }
            }
        }
        let after = self.state.prepare(conn.clock().now());
        let (run, feed) = (&self.run, conn.status.feed());
        let (account, sub) = (&run.account, &run.sub);
        let url = socket_url(
            &account.base_url,
            &sub.scope,
            sub.kind,
            &run.api_key,
            after.as_deref(),
            &sub.preload,
        );
        let url = match url {
            Ok(u) => u,
            Err(e) => return halt(e.to_string()),
        };
        tracing::debug!(%feed, url = %redact(&url), "connecting");
        let connecting = connect(&url, &sub.scope, run.timing.connect_timeout);
        let (mut ws, server_now) = match conn.unless_stopped(connecting).await {
            None => return Outcome::Stopped,
            Some(Ok(v)) => v,
            Some(Err(e)) if e.is_fatal() => {
                tracing::warn!(%feed, error = %e, "ELEMENT subscription stopped");
                return halt(e.to_string());
            }
            Some(Err(e)) => return retry(e.to_string()),
        };
        self.state.connected(conn.now(), server_now);
        conn.live();
        let end = self.serve(conn, &mut ws).await;
        if !matches!(end, LinkEnd::Lost(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        match end {
            LinkEnd::Stopped => Outcome::Stopped,
            LinkEnd::Fatal(message) => halt(message),
            LinkEnd::Lost(reason) => retry(reason),
        }
    }
}

impl Subscription {
    /// The I/O loop of one live link: socket, engine and timers in, the state machine's
    /// actions out.
    async fn serve(&mut self, conn: &mut Connector, ws: &mut Socket) -> LinkEnd {
        let every = self.run.timing.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = conn.stop_signal();
        loop {
            let deadline = self.state.reply_deadline();
            let actions = tokio::select! {
                _ = until_stopped(&mut stop) => return LinkEnd::Stopped,
                Some(ack) = self.acks.recv() => self.state.on_ack(ack),
                _ = ping.tick() => self.state.on_ping_due(conn.now()),
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.state.on_reply_missed(),
                msg = ws.next() => self.state.on_message(msg, conn.now()),
            };
            for action in actions {
                let sent = match action {
                    Action::Ping => ws.send(Message::Ping(Default::default())).await,
                    Action::TextPing => ws.send(Message::text("ping")).await,
                    Action::Deliver(d) => {
                        tokio::select! {
                            // An error: the engine is gone, nothing can be stored any more.
                            r = self.deliveries.send(*d) => if r.is_err() { return LinkEnd::Stopped },
                            _ = until_stopped(&mut stop) => return LinkEnd::Stopped,
                        }
                        conn.proven();
                        Ok(())
                    }
                    Action::Report {
                        last_message_at,
                        publish,
                    } => {
                        conn.status
                            .note(|s| s.last_message_at = Some(last_message_at));
                        if publish {
                            conn.status.publish();
                        }
                        Ok(())
                    }
                    Action::End(end) => return end,
                };
                if sent.is_err() {
                    return LinkEnd::Lost("connection lost while sending a ping".into());
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_every_scope_are_encoded() {
        let u = socket_url(
            "https://acme.element-iot.com",
            &ElementScope::Tag("a b/c".into()),
            ElementKind::Packets,
            "k&y",
            Some("2024-01-01T10:00:00+01:00"),
            &["device".into(), "packet.interface".into()],
        )
        .unwrap();
        assert_eq!(u.scheme(), "wss");
        assert_eq!(u.path(), "/api/v1/tags/a%20b%2Fc/packets/socket");
        let q: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(q[0], ("auth".into(), "k&y".into()));
        assert_eq!(q[1], ("after".into(), "2024-01-01T10:00:00+01:00".into()));
        assert_eq!(q[2], ("preload".into(), "device,packet.interface".into()));
        assert!(
            u.as_str()
                .contains("after=2024-01-01T10%3A00%3A00%2B01%3A00"),
            "{u}"
        );

        let m = socket_url(
            "http://127.0.0.1:9/",
            &ElementScope::Mandate,
            ElementKind::Readings,
            "k",
            None,
            &[],
        )
        .unwrap();
        assert_eq!(m.as_str(), "ws://127.0.0.1:9/api/v1/readings/socket?auth=k");
        let d = socket_url(
            "https://h.example/element",
            &ElementScope::Device("d1".into()),
            ElementKind::Readings,
            "k",
            None,
            &[],
        )
        .unwrap();
        assert_eq!(d.path(), "/element/api/v1/devices/d1/readings/socket");
        let s = socket_url(
            "https://h",
            &ElementScope::Stream("s".into()),
            ElementKind::Readings,
            "k",
            None,
            &[],
        )
        .unwrap();
        assert_eq!(s.path(), "/api/v1/streams/s/readings/socket");
        assert!(socket_url(
            "ftp://x",
            &ElementScope::Mandate,
            ElementKind::Readings,
            "k",
            None,
            &[]
        )
        .is_err());
        assert!(socket_url(
            "not a url",
            &ElementScope::Mandate,
            ElementKind::Readings,
            "k",
            None,
            &[]
        )
        .is_err());
    }

    #[test]
    fn redaction_hides_the_key() {
        let u = socket_url(
            "https://h",
            &ElementScope::Mandate,
            ElementKind::Readings,
            "SECRETKEY",
            Some("t"),
            &[],
        )
        .unwrap();
        let shown = redact(&u);
        assert!(!shown.contains("SECRETKEY"), "{shown}");
        assert!(
            shown.contains("auth=***") && shown.contains("after=t"),
            "{shown}"
        );
        let t = redact_text("failed: wss://h/api?auth=SECRETKEY&after=x and auth=OTHER");
        assert_eq!(t, "failed: wss://h/api?auth=***&after=x and auth=***");
        assert_eq!(scrub("key SECRETKEY here", "SECRETKEY"), "key *** here");
    }
}
