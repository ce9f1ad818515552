//! Socket URLs and the per-subscription loop.
//!
//! The loop: connect (with `after=` the newest confirmed cursor) → live → keep-alive →
//! on loss back off with full jitter and reconnect. No gap: reconnects replay from the
//! newest event the engine confirmed as stored. No double: events whose id was already
//! delivered-and-confirmed in this process are dropped (the engine dedupes by key too).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::mapping::{self, Origin};
use super::payload::{parse_frame_as, Parsed};
use super::{Clock, ElementError, Timing};
use crate::event::{Ack, AckMsg, Delivery, FeedState, FeedStatus};
use crate::feeds::backoff::Backoff;
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

/// `url` points at this computer.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
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

/// Opens the socket within `limit`. HTTP 401 → key rejected, 403 → no permission for this
/// scope, 404 → unknown id: all fatal, the caller must not retry.
pub async fn connect(
    url: &Url,
    scope: &ElementScope,
    limit: Duration,
) -> Result<Socket, ElementError> {
    let key = url
        .query_pairs()
        .find(|(k, _)| k == "auth")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let attempt = tokio_tungstenite::connect_async(url.as_str());
    match tokio::time::timeout(limit, attempt).await {
        Err(_) => Err(ElementError::Timeout(limit.as_secs().max(1))),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(match resp.status().as_u16() {
            401 => ElementError::KeyRejected,
            403 => ElementError::Forbidden(scope_words(scope)),
            404 => ElementError::NotFound(scope_words(scope)),
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

/// A close frame that says the key is not (or no longer) accepted.
fn is_auth_close(frame: &CloseFrame) -> bool {
    let code = u16::from(frame.code);
    let reason = frame.reason.to_ascii_lowercase();
    matches!(code, 4001 | 4003 | 4401 | 4403)
        || [
            "auth",
            "unauthori",
            "forbidden",
            "api key",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|w| reason.contains(w))
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

/// How one link ended.
enum LinkEnd {
    Stopped,
    Lost(String),
    Fatal(String),
}

/// An event handed to the engine and not yet answered.
struct InFlight {
    token: String,
    id: String,
    at: Option<Timestamp>,
    state: Option<bool>,
}

/// The no-gap/no-double book-keeping: what the engine confirmed, and where to resume.
struct Ledger {
    /// The newest confirmed cursor with every earlier delivery confirmed too (as received).
    cursor: Option<String>,
    cursor_at: Option<Timestamp>,
    /// Where to resume when nothing was confirmed yet (catch-up start, or the first
    /// connect time for live-only subscriptions).
    fallback: Option<String>,
    in_flight: VecDeque<InFlight>,
    /// Ids confirmed as stored, with their insertion time (pruned below the cursor).
    confirmed: HashMap<String, Option<Timestamp>>,
    /// An event was not stored: the cursor must not pass it; the link replays.
    hole: bool,
}

impl Ledger {
    fn resume_from(&self) -> Option<&str> {
        self.cursor.as_deref().or(self.fallback.as_deref())
    }

    fn on_ack(&mut self, ack: AckMsg) {
        if ack.token.is_empty() {
            return;
        }
        if let Some(entry) = self
            .in_flight
            .iter_mut()
            .find(|e| e.state.is_none() && e.token == ack.token)
        {
            entry.state = Some(ack.stored);
        }
        while self.in_flight.front().is_some_and(|e| e.state.is_some()) {
            let Some(done) = self.in_flight.pop_front() else {
                break;
            };
            if done.state != Some(true) {
                self.hole = true;
                continue;
            }
            self.confirmed.insert(done.id, done.at);
            if !self.hole
                && (self.cursor_at.is_none() || done.at.is_none() || done.at >= self.cursor_at)
            {
                self.cursor_at = done.at;
                self.cursor = Some(done.token);
            }
        }
        if self.confirmed.len() > 4096 {
            // Only ids at or after the cursor can come back in a replay.
            if let Some(c) = self.cursor_at {
                self.confirmed.retain(|_, at| at.is_none_or(|t| t >= c));
            }
        }
    }
}

fn send_status(tx: &mpsc::UnboundedSender<FeedStatus>, st: &FeedStatus) {
    let _ = tx.send(st.clone());
}

/// Runs one subscription until `stop` becomes true or a fatal error (rejected key,
/// unknown id) stops it with a status that says why.
pub async fn run(
    run: SubscriptionRun,
    deliveries: mpsc::Sender<Delivery>,
    status: mpsc::UnboundedSender<FeedStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut st = FeedStatus::new(
        super::feed_id(&run.account, &run.sub),
        super::label(&run.account, &run.sub),
    );
    let t = &run.timing;
    let mut backoff = Backoff::new(t.backoff_base, t.backoff_max);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<AckMsg>();
    let catch_up = (run.cursor.is_none() && run.sub.catch_up_hours > 0).then(|| {
        let since =
            run.clock.now() - jiff::SignedDuration::from_hours(i64::from(run.sub.catch_up_hours));
        after_param(since)
    });
    let mut ledger = Ledger {
        cursor_at: run.cursor.as_deref().and_then(mapping::parse_time),
        cursor: run.cursor.clone(),
        fallback: catch_up,
        in_flight: VecDeque::new(),
        confirmed: HashMap::new(),
        hole: false,
    };
    let mut generation: u64 = 0;

    loop {
        if *stop.borrow() {
            break;
        }
        generation += 1;
        if ledger.hole {
            // Acks still due for deliveries after the hole must not move the cursor past it.
            ledger.hole = false;
            ledger.in_flight.clear();
        }
        st.state = FeedState::Connecting;
        send_status(&status, &st);

        let after = ledger.resume_from().map(str::to_string);
        let url = match socket_url(
            &run.account.base_url,
            &run.sub.scope,
            run.sub.kind,
            &run.api_key,
            after.as_deref(),
            &run.sub.preload,
        ) {
            Ok(u) => u,
            Err(e) => {
                stop_with(&mut st, &status, e.to_string());
                return;
            }
        };
        tracing::debug!(feed = %st.feed, url = %redact(&url), "connecting");
        let connected_at = run.clock.now();
        let attempt = tokio::select! {
            r = connect(&url, &run.sub.scope, t.connect_timeout) => r,
            _ = stop.changed() => break,
        };
        let reason = match attempt {
            Err(e) if e.is_fatal() => {
                tracing::warn!(feed = %st.feed, error = %e, "ELEMENT subscription stopped");
                stop_with(&mut st, &status, e.to_string());
                return;
            }
            Err(e) => e.to_string(),
            Ok(ws) => {
                if ledger.fallback.is_none() {
                    // Live only: a later reconnect resumes from the first connect.
                    ledger.fallback = Some(after_param(connected_at));
                }
                st.state = FeedState::Live;
                st.live_since = Some(run.clock.now());
                st.last_error = None;
                send_status(&status, &st);
                let link = Link {
                    run: &run,
                    generation,
                    connected_at,
                    replaying: after.is_some(),
                    opened: Instant::now(),
                    delivered: 0,
                };
                let (end, stable) = link
                    .drive(
                        ws,
                        &mut ledger,
                        &ack_tx,
                        &mut ack_rx,
                        &deliveries,
                        &status,
                        &mut st,
                        &mut stop,
                    )
                    .await;
                if stable {
                    backoff.reset();
                }
                match end {
                    LinkEnd::Stopped => break,
                    LinkEnd::Fatal(msg) => {
                        stop_with(&mut st, &status, msg);
                        return;
                    }
                    LinkEnd::Lost(reason) => reason,
                }
            }
        };
        let wait = backoff.next_delay();
        tracing::info!(feed = %st.feed, %reason, wait_ms = wait.as_millis() as u64, "ELEMENT link down; reconnecting");
        st.state = FeedState::Waiting {
            secs: wait.as_secs(),
            reason: reason.clone(),
        };
        st.last_error = Some(reason);
        send_status(&status, &st);
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        let jumped = clock_jumped(run.clock.as_ref());
        tokio::pin!(jumped);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = &mut jumped => {
                    tracing::info!(feed = %st.feed, "the clock jumped (suspend/resume?); reconnecting now");
                    break;
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() { break; }
                }
                Some(ack) = ack_rx.recv() => ledger.on_ack(ack),
            }
        }
    }
    st.state = FeedState::Idle;
    send_status(&status, &st);
}

/// Resolves when the wall clock runs ahead of the monotonic one by more than 5 s: the
/// machine slept. tokio's timers stand still during a suspend, so a backoff planned before
/// it would otherwise be slept out in full after the resume.
async fn clock_jumped(clock: &dyn Clock) {
    let mut wall = clock.now();
    let mut mono = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (w, m) = (clock.now(), Instant::now());
        let ahead =
            w.duration_since(wall) - jiff::SignedDuration::try_from(m - mono).unwrap_or_default();
        if ahead > jiff::SignedDuration::from_secs(5) {
            return;
        }
        (wall, mono) = (w, m);
    }
}

/// A time for `after=`: microseconds (what ELEMENT stores), truncated so that nothing at
/// the boundary is skipped.
fn after_param(t: Timestamp) -> String {
    format!("{t:.6}")
}

fn stop_with(st: &mut FeedStatus, status: &mpsc::UnboundedSender<FeedStatus>, message: String) {
    st.last_error = Some(message.clone());
    st.state = FeedState::Stopped { message };
    send_status(status, st);
}

/// One connection's life.
struct Link<'a> {
    run: &'a SubscriptionRun,
    generation: u64,
    connected_at: Timestamp,
    /// `after=` was given: events inserted before the connect are a replay.
    replaying: bool,
    opened: Instant,
    delivered: u64,
}

impl Link<'_> {
    /// Returns how the link ended and whether it was stable enough to reset the backoff.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        mut self,
        mut ws: Socket,
        ledger: &mut Ledger,
        ack_tx: &mpsc::UnboundedSender<AckMsg>,
        ack_rx: &mut mpsc::UnboundedReceiver<AckMsg>,
        deliveries: &mpsc::Sender<Delivery>,
        status: &mpsc::UnboundedSender<FeedStatus>,
        st: &mut FeedStatus,
        stop: &mut watch::Receiver<bool>,
    ) -> (LinkEnd, bool) {
        let end = self
            .pump(
                &mut ws, ledger, ack_tx, ack_rx, deliveries, status, st, stop,
            )
            .await;
        if !matches!(end, LinkEnd::Lost(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        let stable = self.delivered > 0 || self.opened.elapsed() >= self.run.timing.stable_after;
        (end, stable)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pump(
        &mut self,
        ws: &mut Socket,
        ledger: &mut Ledger,
        ack_tx: &mpsc::UnboundedSender<AckMsg>,
        ack_rx: &mut mpsc::UnboundedReceiver<AckMsg>,
        deliveries: &mpsc::Sender<Delivery>,
        status: &mpsc::UnboundedSender<FeedStatus>,
        st: &mut FeedStatus,
        stop: &mut watch::Receiver<bool>,
    ) -> LinkEnd {
        let t = &self.run.timing;
        let clock = &self.run.clock;
        let mut ping = tokio::time::interval_at(Instant::now() + t.ping_interval, t.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reply_due: Option<Instant> = None;
        let mut last_wall = clock.now();
        let mut last_mono = Instant::now();
        let mut last_status = Instant::now();
        loop {
            if ledger.hole {
                return LinkEnd::Lost("an event was not stored; replaying".into());
            }
            let deadline = reply_due;
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return LinkEnd::Stopped;
                    }
                }
                Some(ack) = ack_rx.recv() => ledger.on_ack(ack),
                _ = ping.tick() => {
                    // A wall clock that ran far ahead of the monotonic one means the machine
                    // slept: the socket is most likely dead although no error was seen yet.
                    let wall = clock.now();
                    let mono = last_mono.elapsed();
                    let wall_elapsed = wall.duration_since(last_wall).unsigned_abs();
                    last_wall = wall;
                    last_mono = Instant::now();
                    if wall_elapsed > mono + 2 * t.ping_interval + Duration::from_secs(5) {
                        return LinkEnd::Lost("the clock jumped (suspend/resume?)".into());
                    }
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return LinkEnd::Lost("connection lost while sending a ping".into());
                    }
                    if self.run.account.text_ping && ws.send(Message::text("ping")).await.is_err() {
                        return LinkEnd::Lost("connection lost while sending a ping".into());
                    }
                    reply_due.get_or_insert(Instant::now() + t.pong_timeout);
                }
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    return LinkEnd::Lost(format!("no reply to ping within {} s", t.pong_timeout.as_secs().max(1)));
                }
                msg = ws.next() => {
                    // Any frame shows the link is alive.
                    reply_due = None;
                    let text = match msg {
                        None => return LinkEnd::Lost("the server closed the connection".into()),
                        Some(Err(e)) => return LinkEnd::Lost(scrub(&format!("connection lost ({e})"), &self.run.api_key)),
                        Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                        Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                        Some(Ok(Message::Close(frame))) => {
                            return match frame {
                                Some(f) if is_auth_close(&f) => LinkEnd::Fatal("API key rejected".into()),
                                Some(f) => LinkEnd::Lost(format!("the server closed the connection ({} {})", u16::from(f.code), scrub(&f.reason, &self.run.api_key))),
                                None => LinkEnd::Lost("the server closed the connection".into()),
                            };
                        }
                        Some(Ok(_)) => continue,
                    };
                    if text.trim().eq_ignore_ascii_case("pong") {
                        continue;
                    }
                    let now = clock.now();
                    if let Some(end) = self.handle_text(&text, now, ledger, ack_tx, deliveries, stop).await {
                        return end;
                    }
                    st.last_message_at = Some(now);
                    if last_status.elapsed() >= Duration::from_secs(5) {
                        last_status = Instant::now();
                        send_status(status, st);
                    }
                }
            }
        }
    }

    /// Parses a frame and delivers its events. `Some` ends the link (stop requested, or
    /// the engine went away).
    async fn handle_text(
        &mut self,
        text: &str,
        now: Timestamp,
        ledger: &mut Ledger,
        ack_tx: &mpsc::UnboundedSender<AckMsg>,
        deliveries: &mpsc::Sender<Delivery>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<LinkEnd> {
        let origin = Origin {
            account: &self.run.account.id,
            subscription: &self.run.sub.id,
            received_at: now,
        };
        for item in parse_frame_as(text, Some(self.run.sub.kind)) {
            let (id, mut event) = match item {
                Ok(parsed) => {
                    let id = match &parsed {
                        Parsed::Reading(r) => r.id.clone(),
                        Parsed::Packet(p) => p.id.clone(),
                        Parsed::Other { .. } => continue,
                    };
                    match mapping::to_event(parsed, origin) {
                        Some(e) => (id, e),
                        None => continue,
                    }
                }
                Err(err) => {
                    tracing::warn!(feed = %self.run.sub.id, reason = %err.reason, "unparsable ELEMENT frame");
                    (String::new(), mapping::unparsed_event(err, origin))
                }
            };
            let at = event.cursor.as_deref().and_then(mapping::parse_time);
            if event.cursor.is_some() && ledger.confirmed.contains_key(&id) {
                continue;
            }
            if self.replaying {
                match at {
                    Some(t) if t < self.connected_at => event.replayed = true,
                    _ => self.replaying = false,
                }
            }
            let token = event.cursor.clone().unwrap_or_default();
            if !token.is_empty() {
                ledger.in_flight.push_back(InFlight {
                    token: token.clone(),
                    id,
                    at,
                    state: None,
                });
            }
            let ack = Ack::new(ack_tx.clone(), self.generation, token);
            let send = deliveries.send(Delivery { event, ack });
            tokio::select! {
                r = send => {
                    if r.is_err() {
                        // The engine is gone: nothing can be stored any more.
                        return Some(LinkEnd::Stopped);
                    }
                }
                _ = stop.changed() => return Some(LinkEnd::Stopped),
            }
            self.delivered += 1;
        }
        None
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

    #[test]
    fn auth_close_is_recognised() {
        let f = |code: u16, reason: &str| CloseFrame {
            code: code.into(),
            reason: reason.to_string().into(),
        };
        assert!(is_auth_close(&f(4001, "")));
        assert!(is_auth_close(&f(1008, "Unauthorized")));
        assert!(is_auth_close(&f(1000, "invalid api key")));
        assert!(!is_auth_close(&f(1000, "idle timeout")));
        assert!(!is_auth_close(&f(1001, "going away")));
    }

    fn entry(token: &str, id: &str) -> InFlight {
        InFlight {
            token: token.into(),
            id: id.into(),
            at: mapping::parse_time(token),
            state: None,
        }
    }

    fn ledger() -> Ledger {
        Ledger {
            cursor: None,
            cursor_at: None,
            fallback: Some("f".into()),
            in_flight: VecDeque::new(),
            confirmed: HashMap::new(),
            hole: false,
        }
    }

    #[test]
    fn cursor_advances_only_over_confirmed_events() {
        let mut l = ledger();
        assert_eq!(l.resume_from(), Some("f"));
        let (a, b, c) = (
            "2024-01-01T00:00:01Z",
            "2024-01-01T00:00:02Z",
            "2024-01-01T00:00:03Z",
        );
        l.in_flight
            .extend([entry(a, "1"), entry(b, "2"), entry(c, "3")]);
        l.on_ack(AckMsg {
            generation: 1,
            token: a.into(),
            stored: true,
        });
        assert_eq!(l.resume_from(), Some(a));
        l.on_ack(AckMsg {
            generation: 1,
            token: b.into(),
            stored: false,
        });
        l.on_ack(AckMsg {
            generation: 1,
            token: c.into(),
            stored: true,
        });
        assert!(l.hole, "a rejected event must force a replay");
        assert_eq!(
            l.resume_from(),
            Some(a),
            "the cursor must not pass an event that was not stored"
        );
        assert!(
            l.confirmed.contains_key("1")
                && l.confirmed.contains_key("3")
                && !l.confirmed.contains_key("2")
        );
    }

    #[test]
    fn equal_cursors_are_matched_in_order() {
        let mut l = ledger();
        let a = "2024-01-01T00:00:01Z";
        l.in_flight.extend([entry(a, "1"), entry(a, "2")]);
        l.on_ack(AckMsg {
            generation: 1,
            token: a.into(),
            stored: true,
        });
        assert!(l.confirmed.contains_key("1") && !l.confirmed.contains_key("2"));
        assert_eq!(l.in_flight.len(), 1);
    }
}
