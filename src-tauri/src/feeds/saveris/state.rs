//! The STOMP session as a state machine, in the manner of rumqttc's `MqttState`: it decodes
//! what the socket brought, keeps the books (pending deliveries, ACKs owed, heart-beats,
//! the token), and answers with [`Action`]s for the I/O loop to carry out. It owns no
//! socket, timer or task; every method takes the time, so tests drive it frame by frame.
//!
//! Flow control, in short: a MESSAGE becomes a [`Delivery`] whose [`Ack`] comes back once
//! the engine has stored the event; only then is the STOMP `ACK` owed, and only if the
//! connection that received the message is still the current one (its `ack` ids mean
//! nothing to a later connection, where the broker redelivers anyway). While deliveries
//! wait for room in the engine's bounded channel the socket is not read (TCP
//! back-pressure), but heart-beats and ACKs still go out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc;

use super::auth::Token;
use super::payload::{self, Channel};
use super::stomp::{Command, Decoder, Frame, StompError};
use crate::event::{Ack, AckMsg, Delivery, Event, EventKind, Severity, Source};

/// At most this many ACKs go out in one write.
pub const ACK_BATCH: usize = 1024;

/// After a failed token renewal, the next try (the current session stays meanwhile).
const RENEW_RETRY: SignedDuration = SignedDuration::from_secs(30);

/// What the I/O loop is to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Write these frames (SUBSCRIBEs, ACKs), in one write.
    Send(Vec<Frame>),
    /// Write a heart-beat (a bare EOL).
    SendHeartbeat,
    /// Fetch a fresh token in the background; the answer goes to [`SessionState::on_token`].
    RenewToken,
    /// Status news for the engine: the newest message's time, and a new problem if any.
    Report {
        last_message_at: Option<Timestamp>,
        last_error: Option<String>,
    },
    /// This connection is over.
    End(ConnEnd),
}

/// How one connection ended.
#[derive(Debug)]
pub enum ConnEnd {
    Stop,
    /// A fresh token is ready: reconnect at once.
    Renew,
    /// No heart-beat from the server for twice its interval.
    LinkDead,
    Lost(String),
    ErrorFrame(Frame),
}

/// The session's books. Token, generation and the unparsed count outlive a connection;
/// the rest is reset by [`SessionState::connected`].
pub struct SessionState {
    /// The account id events are filed under.
    account: String,
    /// The feed id, for logs.
    feed: String,
    max_frame: usize,
    /// How long a token renewal may wait for confirmations in flight.
    drain_timeout: Duration,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    /// Counts connections: a confirmation of an earlier one is ignored.
    generation: u64,
    /// `None` for STOMP login/passcode (nothing to renew).
    token: Option<Token>,
    renewing: bool,
    renew_retry_at: Option<Timestamp>,
    /// A fresh token is ready; the switch waits until then for confirmations in flight.
    drain_until: Option<Timestamp>,
    unparsed: u64,
    last_message_at: Option<Timestamp>,
    /// A problem not reported yet (a reconnect clears the status' last error; an old
    /// problem must not come back with the next report).
    last_error: Option<String>,
    status_dirty: bool,

    decoder: Decoder,
    /// Subscription id → channel.
    subs: HashMap<String, Channel>,
    send_every: Option<Duration>,
    expect_within: Option<Duration>,
    last_rx: Timestamp,
    last_tx: Timestamp,
    /// Decoded, not yet handed to the engine.
    pending: VecDeque<Delivery>,
    /// `ack` ids handed to the engine and not yet answered.
    inflight: HashSet<String>,
    /// `ack` ids owed to the server.
    acks_out: Vec<String>,
}

impl SessionState {
    pub fn new(
        account: &str,
        feed: &str,
        max_frame: usize,
        drain_timeout: Duration,
        ack_tx: mpsc::UnboundedSender<AckMsg>,
    ) -> Self {
        SessionState {
            account: account.to_string(),
            feed: feed.to_string(),
            max_frame,
            drain_timeout,
            ack_tx,
            generation: 0,
            token: None,
            renewing: false,
            renew_retry_at: None,
            drain_until: None,
            unparsed: 0,
            last_message_at: None,
            last_error: None,
            status_dirty: false,
            decoder: Decoder::with_limit(max_frame),
            subs: HashMap::new(),
            send_every: None,
            expect_within: None,
            last_rx: Timestamp::UNIX_EPOCH,
            last_tx: Timestamp::UNIX_EPOCH,
            pending: VecDeque::new(),
            inflight: HashSet::new(),
            acks_out: Vec::new(),
        }
    }

    /// No token yet, or the one we have is due for renewal: log in before connecting.
    pub fn needs_token(&self, now: Timestamp) -> bool {
        self.token.as_ref().is_none_or(|t| now >= t.renew_at())
    }

    pub fn set_token(&mut self, token: Token) {
        self.token = Some(token);
    }

    /// The server refused the token: fetch a new one before the next connection.
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    /// The bearer for CONNECT.
    pub fn id_token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.id_token.as_str())
    }

    /// A new connection passed the handshake: `heart_beats` = (we send every, the server's
    /// interval), `decoder` holds what arrived after CONNECTED. Subscribes first, then
    /// reads what came early.
    pub fn connected(
        &mut self,
        decoder: Decoder,
        heart_beats: (Option<Duration>, Option<Duration>),
        destinations: &[(Channel, String)],
        now: Timestamp,
    ) -> Vec<Action> {
        self.generation += 1;
        self.decoder = decoder;
        (self.send_every, self.expect_within) = heart_beats;
        (self.last_rx, self.last_tx) = (now, now);
        self.renew_retry_at = None;
        self.disconnected();
        self.subs.clear();
        let subscribe = (destinations.iter().enumerate())
            .map(|(i, (channel, dest))| {
                let id = format!("sub-{i}");
                self.subs.insert(id.clone(), *channel);
                Frame::new(Command::Subscribe)
                    .with_header("id", id)
                    .with_header("destination", dest.clone())
                    .with_header("ack", "client-individual")
            })
            .collect();
        let mut actions = vec![Action::Send(subscribe)];
        actions.extend(self.on_bytes(&[], now));
        // Going live was reported already.
        self.status_dirty = false;
        actions
    }

    /// The connection is gone. Deliveries not yet handed over are dropped unconfirmed (the
    /// broker redelivers them); a renewal under way is void.
    pub fn disconnected(&mut self) {
        self.pending.clear();
        self.inflight.clear();
        self.acks_out.clear();
        self.renewing = false;
        self.drain_until = None;
    }

    /// How often [`SessionState::on_tick`] should run: a quarter of the shorter
    /// heart-beat, between 50 ms and 1 s.
    pub fn tick_every(&self) -> Duration {
        [self.send_every, self.expect_within]
            .into_iter()
            .flatten()
            .min()
            .map(|d| (d / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(1))
    }

    /// A deadline before the next tick: the token's renewal time (short-lived tokens leave
    /// little margin) or the end of a drain.
    pub fn wake_in(&self, now: Timestamp) -> Option<Duration> {
        let at = match (&self.token, self.drain_until) {
            (_, Some(drain)) => drain,
            (Some(t), None) if !self.renewing => self
                .renew_retry_at
                .map_or(t.renew_at(), |r| r.max(t.renew_at())),
            _ => return None,
        };
        Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
    }

    /// The socket may be read: nothing waits for room in the engine's channel.
    pub fn reading(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next delivery for the engine, once it has room.
    pub fn next_delivery(&mut self, now: Timestamp) -> Option<Delivery> {
        let d = self.pending.pop_front();
        if self.pending.is_empty() {
            // Reading resumes now: silence while we were not reading was ours.
            self.last_rx = now;
        }
        d
    }

    /// Bytes from the socket.
    pub fn on_bytes(&mut self, bytes: &[u8], now: Timestamp) -> Vec<Action> {
        self.last_rx = now;
        self.decoder.push(bytes);
        loop {
            let (frame, oversized) = match self.decoder.next_frame() {
                Ok(Some(f)) => (f, false),
                // A body beyond the limit: the decoder skips it; the message is recorded
                // as unreadable and acknowledged, not redelivered forever.
                Err(StompError::Oversized { frame, .. }) => (*frame, true),
                Ok(None) => break,
                Err(e) => return vec![Action::End(ConnEnd::Lost(format!("protocol error: {e}")))],
            };
            if let Some(end) = self.take_frame(frame, oversized, now) {
                return vec![Action::End(end)];
            }
        }
        self.status_dirty = true;
        Vec::new()
    }

    /// Turns a MESSAGE into a pending delivery; an ERROR ends the connection.
    fn take_frame(&mut self, frame: Frame, oversized: bool, now: Timestamp) -> Option<ConnEnd> {
        match frame.command {
            Command::Message => {
                let delivery = self.delivery(&frame, oversized, now);
                self.pending.push_back(delivery);
                None
            }
            Command::Error => Some(ConnEnd::ErrorFrame(frame)),
            _ => None,
        }
    }

    fn delivery(&mut self, frame: &Frame, oversized: bool, now: Timestamp) -> Delivery {
        let channel = frame
            .header("subscription")
            .and_then(|s| self.subs.get(s).copied())
            .or_else(|| {
                let dest = frame.header("destination").unwrap_or("");
                Channel::ALL
                    .into_iter()
                    .rev()
                    .find(|c| dest.ends_with(c.as_str()))
            })
            .unwrap_or(Channel::Alarms);
        let mut event = if oversized {
            oversized_event(&self.account, channel, frame, self.max_frame, now)
        } else {
            payload::to_event(&self.account, channel.as_str(), &frame.body, now)
        };
        // A redelivery is not a catch-up: it pops on its own like a live message.
        event.redelivered = frame.header("redelivered") == Some("true");
        if event.kind == EventKind::Unparsed {
            self.unparsed += 1;
            tracing::warn!(feed = %self.feed, count = self.unparsed, "Saveris message could not be read; stored as unparsed");
            self.last_error = Some(format!("{} message(s) could not be read", self.unparsed));
        }
        self.last_message_at = Some(now);
        // STOMP 1.2 acks by the `ack` header; older servers by `message-id`.
        let token = frame.header("ack").or_else(|| frame.header("message-id"));
        let ack = match token {
            Some(t) => {
                self.inflight.insert(t.to_string());
                Ack::new(self.ack_tx.clone(), self.generation, t.to_string())
            }
            None => Ack::none(),
        };
        Delivery { event, ack }
    }

    /// Confirmations from the engine. They come in bursts (it stores in batches): the
    /// state takes from `acks` until [`ACK_BATCH`] ACKs are owed, and they go out in one
    /// write, not one per message.
    pub fn on_acks(
        &mut self,
        acks: impl IntoIterator<Item = AckMsg>,
        now: Timestamp,
    ) -> Vec<Action> {
        let mut refused = false;
        for a in acks {
            refused |= self.take_ack(a);
            if self.acks_out.len() >= ACK_BATCH {
                break;
            }
        }
        let mut actions = Vec::new();
        if !self.acks_out.is_empty() {
            self.last_tx = now;
            actions.push(Action::Send(self.take_acks()));
        }
        if refused {
            // The engine gave up storing a message (after its own retries). With
            // `client-individual` the broker redelivers it only once this connection
            // closes, so close it: never a live connection holding what nobody retries.
            actions.push(Action::End(ConnEnd::Lost(
                "the app could not store some messages; reconnecting so the server sends them again"
                    .into(),
            )));
            return actions;
        }
        if self.drain_until.is_some() && self.inflight.is_empty() && self.pending.is_empty() {
            actions.push(Action::End(ConnEnd::Renew));
        }
        actions
    }

    /// The ACK frames owed.
    fn take_acks(&mut self) -> Vec<Frame> {
        (self.acks_out.drain(..))
            .map(|id| Frame::new(Command::Ack).with_header("id", id))
            .collect()
    }

    /// Takes one confirmation; true when the engine refused a message of this connection.
    fn take_ack(&mut self, a: AckMsg) -> bool {
        if a.generation == self.generation {
            self.inflight.remove(&a.token);
            // Not stored: no ACK, the broker keeps it for the next connection.
            if a.stored {
                self.acks_out.push(a.token);
            } else {
                return true;
            }
        }
        false
    }

    /// Asked to stop: the ACK frames still owed for `acks` (stored events), to send on the
    /// way out.
    pub fn on_stop(&mut self, acks: impl IntoIterator<Item = AckMsg>) -> Vec<Frame> {
        for a in acks {
            let _ = self.take_ack(a);
        }
        self.take_acks()
    }

    /// The token renewal's answer (`Err` holds why it failed).
    pub fn on_token(&mut self, fresh: Result<Token, String>, now: Timestamp) -> Vec<Action> {
        self.renewing = false;
        let token = match fresh {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(feed = %self.feed, error = %e, "token renewal failed; keeping the current session");
                self.last_error = Some(e);
                self.status_dirty = true;
                self.renew_retry_at = now.checked_add(RENEW_RETRY).ok();
                return Vec::new();
            }
        };
        // The old token's expiry on our clock bounds the drain below.
        let left = self
            .token
            .as_ref()
            .and_then(|old| old.fetched_at.checked_add(old.lifetime).ok())
            .map(|exp| Duration::try_from(exp.duration_since(now)).unwrap_or(Duration::ZERO));
        self.token = Some(token);
        self.renew_retry_at = None;
        // Let confirmations in flight arrive before switching connections, so little is
        // redelivered; the drain is bounded, and ends well before the old token does.
        if self.inflight.is_empty() && self.pending.is_empty() {
            return vec![Action::End(ConnEnd::Renew)];
        }
        let drain = left.map_or(self.drain_timeout, |l| self.drain_timeout.min(l / 2));
        self.drain_until = now.checked_add(drain).ok().or(Some(now));
        Vec::new()
    }

    /// The periodic check: a silent server, a heart-beat due, a token due, a drain over,
    /// status news.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<Action> {
        let over = |since: Timestamp, d: Duration| {
            now.duration_since(since) > SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
        };
        if let Some(expect) = self.expect_within {
            // While deliveries wait the socket is not read: that silence is ours.
            if self.pending.is_empty() && over(self.last_rx, expect * 2) {
                return vec![Action::End(ConnEnd::LinkDead)];
            }
        }
        let mut actions = Vec::new();
        if let Some(every) = self.send_every {
            let every = SignedDuration::try_from(every).unwrap_or(SignedDuration::MAX);
            if now.duration_since(self.last_tx) >= every {
                self.last_tx = now;
                actions.push(Action::SendHeartbeat);
            }
        }
        if let Some(t) = &self.token {
            let due = now >= t.renew_at() && self.renew_retry_at.is_none_or(|r| now >= r);
            if due && !self.renewing && self.drain_until.is_none() {
                self.renewing = true;
                actions.push(Action::RenewToken);
            }
        }
        if self.drain_until.is_some_and(|d| now >= d) {
            actions.push(Action::End(ConnEnd::Renew));
            return actions;
        }
        if std::mem::take(&mut self.status_dirty) {
            actions.push(Action::Report {
                last_message_at: self.last_message_at,
                last_error: self.last_error.take(),
            });
        }
        actions
    }
}

/// Negotiated heart-beats: how often we must send, and the server's interval after which
/// silence counts (STOMP 1.2 §Heart-beating: the larger of what one side can do and the
/// other wants; 0 on either side turns that direction off).
pub fn negotiate_heartbeat(
    client: (u32, u32),
    server: (u32, u32),
) -> (Option<Duration>, Option<Duration>) {
    let dir =
        |a: u32, b: u32| (a != 0 && b != 0).then(|| Duration::from_millis(u64::from(a.max(b))));
    (dir(client.0, server.1), dir(client.1, server.0))
}

/// The `heart-beat` header's two figures; missing or unreadable ones are 0 (off).
pub fn parse_heartbeat(v: Option<&str>) -> (u32, u32) {
    let Some(v) = v else { return (0, 0) };
    let mut it = v.split(',').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// What an ERROR frame asks of the client (AsyncAPI 1.3.0; SAVERIS-API.md §2.5). The
/// server closes the WebSocket after every ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// The credentials or token were refused (`invalid authorization`).
    Auth(String),
    /// `rate-limit-exceeded`: stay away this long — the figure in the text, but never less
    /// than the vendor's advice of 10 minutes.
    RateLimited { wait: Duration },
    /// `max-connections-reached`: the user's 4 parallel connections are in use.
    TooManyConnections,
    /// `subscription refused` for `queue` (bare name): a licence or permission is missing.
    /// `queue` is empty when the frame named none.
    SubscriptionRefused { queue: String, message: String },
    /// Anything else: reconnect with backoff.
    Retry(String),
}

/// Classifies an ERROR frame. `rate_floor` is the least a rate limit makes us wait.
pub fn classify_error(frame: &Frame, rate_floor: Duration) -> ErrorAction {
    let message = frame.header("message").unwrap_or("").to_string();
    let code = frame
        .header("error-code")
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = frame.body_text();
    let all = format!("{message} {code} {body}").to_ascii_lowercase();
    let short = if message.is_empty() {
        body.chars().take(200).collect::<String>()
    } else {
        message.chars().take(200).collect()
    };
    if code == "rate-limit-exceeded"
        || (code.is_empty() && all.contains("too many connection attempts"))
    {
        let figure = wait_from_text(&message).or_else(|| wait_from_text(&body));
        // The vendor's guidance is 10 min whatever the figure says (SAVERIS-API.md §2.5).
        let wait = figure.map_or(rate_floor, |f| f.max(rate_floor));
        return ErrorAction::RateLimited { wait };
    }
    if code == "max-connections-reached" || all.contains("parallel connection limit") {
        return ErrorAction::TooManyConnections;
    }
    if frame.header("queue").is_some() || all.contains("subscription refused") {
        let queue = frame
            .header("queue")
            .map(str::to_string)
            .or_else(|| {
                let text = if message.is_empty() { &body } else { &message };
                text.rsplit_once("queue:")
                    .map(|(_, q)| q.trim().to_string())
            })
            .unwrap_or_default();
        return ErrorAction::SubscriptionRefused {
            queue,
            message: short,
        };
    }
    if all.contains("invalid authorization")
        || all.contains("access refused")
        || all.contains("authentication failed")
        || all.contains("login failed")
        || all.contains("unauthorized")
    {
        return ErrorAction::Auth(short);
    }
    ErrorAction::Retry(if short.is_empty() {
        "the server reported an error".into()
    } else {
        short
    })
}

/// The channel a `queue` header names: the bare name ("measurements-v2") as the vendor
/// sends it, or a full destination ending in it.
pub fn refused_channel(queue: &str, destinations: &[(Channel, String)]) -> Option<Channel> {
    let q = queue.trim();
    if q.is_empty() {
        return None;
    }
    destinations
        .iter()
        .find(|(c, d)| q == c.as_str() || q == d.as_str())
        .or_else(|| {
            // Longest name first: "measurements-v2" before "measurements".
            let mut by_len: Vec<&(Channel, String)> = destinations.iter().collect();
            by_len.sort_by_key(|(c, _)| std::cmp::Reverse(c.as_str().len()));
            by_len.into_iter().find(|(c, _)| q.ends_with(c.as_str()))
        })
        .map(|(c, _)| *c)
}

/// The first number in `text` as a wait: milliseconds unless followed by "s"/"sec"/"min".
fn wait_from_text(text: &str) -> Option<Duration> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let n: u64 = digits.parse().ok()?;
    let unit = text[start + digits.len()..]
        .trim_start()
        .to_ascii_lowercase();
    let d = if unit.starts_with("ms") || unit.starts_with("milli") {
        Duration::from_millis(n)
    } else if unit.starts_with("min") {
        Duration::from_secs(n.saturating_mul(60))
    } else if unit.starts_with('s') {
        Duration::from_secs(n)
    } else {
        Duration::from_millis(n)
    };
    // A figure beyond an hour is more likely a misread than advice.
    (d > Duration::ZERO && d <= Duration::from_secs(3600)).then_some(d)
}

/// The event for a message whose body was beyond the frame limit and was not read.
fn oversized_event(
    account: &str,
    channel: Channel,
    frame: &Frame,
    limit: usize,
    now: Timestamp,
) -> Event {
    // No body to identify it by: the broker's id is the best there is (a redelivery may
    // then be recorded twice, which beats a message redelivered forever).
    let id = frame
        .header("message-id")
        .or_else(|| frame.header("ack"))
        .unwrap_or("unknown");
    let key = format!("saveris:{account}:{}:oversized:{id}", channel.as_str());
    let mut ev = Event::new(
        Source::Saveris,
        account,
        channel.as_str(),
        EventKind::Unparsed,
        key,
    );
    ev.severity = Severity::Warning;
    let size = frame
        .header("content-length")
        .map(|l| format!(" ({l} bytes)"))
        .unwrap_or_default();
    ev.condition = Some(format!(
        "message{size} larger than the limit of {limit} bytes; not read"
    ));
    ev.received_at = now;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::saveris::stomp;

    const T0: i64 = 1_700_000_000;
    const ALARM: &str = r#"{"uuid":"u-1","alarm_status":"Alarm","last_status_change_time":"2024-05-01T10:00:00Z","alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"2024-05-01T10:00:00Z","alarm_value":"9.5","physical_unit":"°C","physical_value":"Temperature","alarm_source_uuid":"sensor-1","alarm_type":"measurement alarm","serial_number":"4711"}"#;

    fn at(secs_after_t0: f64) -> Timestamp {
        Timestamp::from_millisecond(T0 * 1000 + (secs_after_t0 * 1000.0) as i64).unwrap()
    }

    fn hb(ms: u64) -> Option<Duration> {
        Some(Duration::from_millis(ms))
    }

    /// A state machine after CONNECTED with heart-beats `every`/`expect` (ms), subscribed
    /// to alarms as `sub-0`; the receiver gets the engine's answers.
    fn session(
        every: Option<Duration>,
        expect: Option<Duration>,
    ) -> (SessionState, mpsc::UnboundedReceiver<AckMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = SessionState::new("acc", "saveris:acc", 1024, Duration::from_secs(5), tx);
        let dests = [(Channel::Alarms, "/queue/alice/alarms".to_string())];
        let a = s.connected(Decoder::with_limit(1024), (every, expect), &dests, at(0.0));
        let [Action::Send(subscribe)] = &a[..] else {
            panic!("{a:?}")
        };
        assert_eq!(subscribe.len(), 1);
        assert_eq!(subscribe[0].command, Command::Subscribe);
        assert_eq!(subscribe[0].header("ack"), Some("client-individual"));
        (s, rx)
    }

    fn message(ack: &str, body: &str) -> Vec<u8> {
        stomp::encode(
            &Frame::new(Command::Message)
                .with_header("subscription", "sub-0")
                .with_header("message-id", format!("m-{ack}"))
                .with_header("ack", ack)
                .with_body(body.as_bytes().to_vec()),
        )
    }

    fn ack(generation: u64, token: &str, stored: bool) -> AckMsg {
        AckMsg {
            generation,
            token: token.into(),
            stored,
        }
    }

    fn token(fetched_at: Timestamp, lifetime_mins: i64) -> Token {
        let lifetime = SignedDuration::from_mins(lifetime_mins);
        Token {
            id_token: "t".into(),
            exp: fetched_at.checked_add(lifetime).unwrap(),
            fetched_at,
            lifetime,
        }
    }

    fn ends(actions: &[Action]) -> Option<&ConnEnd> {
        actions.iter().find_map(|a| match a {
            Action::End(e) => Some(e),
            _ => None,
        })
    }

    fn ids(frames: &[Frame]) -> Vec<String> {
        (frames.iter())
            .inspect(|f| assert_eq!(f.command, Command::Ack))
            .filter_map(|f| f.header("id").map(str::to_string))
            .collect()
    }

    fn acks_sent(actions: &[Action]) -> Vec<String> {
        (actions.iter())
            .flat_map(|a| match a {
                Action::Send(frames) => ids(frames),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn messages_wait_for_the_engine_and_stop_the_reading_meanwhile() {
        let (mut s, _rx) = session(None, None);
        let mut bytes = message("a1", ALARM);
        bytes.extend(message("a2", ALARM));
        // Split mid-frame: the decoder carries the rest over.
        let (first, rest) = bytes.split_at(30);
        assert!(s.on_bytes(first, at(0.1)).is_empty());
        assert!(s.reading());
        assert!(s.on_bytes(rest, at(0.2)).is_empty());
        assert!(!s.reading(), "no reading while deliveries wait");
        let d = s.next_delivery(at(0.3)).unwrap();
        assert_eq!(d.event.kind, EventKind::AlarmRaised);
        assert_eq!(d.event.subscription, "alarms");
        assert!(s.next_delivery(at(0.3)).is_some());
        assert!(s.reading() && !s.has_pending());
    }

    #[test]
    fn acks_go_out_only_for_stored_events_of_this_connection_in_capped_batches() {
        let (mut s, _rx) = session(None, None);
        let n = ACK_BATCH + 10;
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.extend(message(&format!("a{i}"), ALARM));
        }
        s.on_bytes(&bytes, at(1.0));
        let deliveries: Vec<Delivery> = std::iter::from_fn(|| s.next_delivery(at(1.0))).collect();
        assert_eq!(deliveries.len(), n);
        let generation = s.generation;
        let mut answers = vec![
            ack(generation - 1, "old", true),
            ack(generation, "a0", false),
        ];
        answers.extend((1..n).map(|i| ack(generation, &format!("a{i}"), true)));
        let mut answers = answers.into_iter();
        let first_actions = s.on_acks(&mut answers, at(2.0));
        let first = acks_sent(&first_actions);
        assert!(
            matches!(first_actions.last(), Some(Action::End(ConnEnd::Lost(_)))),
            "a refused message closes the connection, so the broker redelivers it"
        );
        assert_eq!(
            first.len(),
            ACK_BATCH,
            "one write holds at most ACK_BATCH ACKs"
        );
        assert_eq!(first[0], "a1", "not stored and stale answers are not ACKed");
        let second = acks_sent(&s.on_acks(&mut answers, at(2.0)));
        assert_eq!(second.len(), n - 1 - ACK_BATCH);
        assert_eq!(
            second.last().map(String::as_str),
            Some(format!("a{}", n - 1).as_str())
        );
        // The ACKs count as traffic: no heart-beat is due right after them.
        drop(deliveries);
    }

    #[test]
    fn heart_beats_go_out_on_time_and_a_silent_server_is_dead_after_twice_its_interval() {
        let (mut s, _rx) = session(hb(1000), hb(1000));
        assert_eq!(s.tick_every(), Duration::from_millis(250));
        assert!(s.on_tick(at(0.5)).is_empty());
        let a = s.on_tick(at(1.0));
        assert!(matches!(a[..], [Action::SendHeartbeat]), "{a:?}");
        assert!(s.on_tick(at(1.5)).is_empty());
        // The server's bytes (a heart-beat is one EOL) keep the link alive.
        assert!(s.on_bytes(b"\n", at(1.9)).is_empty());
        assert!(ends(&s.on_tick(at(3.8))).is_none());
        assert!(matches!(
            ends(&s.on_tick(at(3.95))),
            Some(ConnEnd::LinkDead)
        ));

        // Silence while deliveries wait for the engine is ours, not the server's.
        let (mut s, _rx) = session(None, hb(1000));
        s.on_bytes(&message("a1", ALARM), at(0.0));
        assert!(ends(&s.on_tick(at(10.0))).is_none());
        s.next_delivery(at(10.0));
        assert!(ends(&s.on_tick(at(11.5))).is_none());
        assert!(matches!(
            ends(&s.on_tick(at(12.1))),
            Some(ConnEnd::LinkDead)
        ));

        // No heart-beats negotiated: silence is fine, nothing is sent.
        let (mut s, _rx) = session(None, None);
        assert!(s.on_tick(at(3600.0)).is_empty());
    }

    #[test]
    fn the_token_is_renewed_ahead_of_expiry_once_and_the_switch_waits_for_confirmations() {
        let (mut s, _rx) = session(None, None);
        s.set_token(token(at(0.0), 60));
        assert!(!s.needs_token(at(0.0)));
        assert!(s.needs_token(at(55.0 * 60.0)), "due 5 min before expiry");
        assert_eq!(s.wake_in(at(0.0)), Some(Duration::from_secs(55 * 60)));
        assert!(s.on_tick(at(54.0 * 60.0)).is_empty());
        let a = s.on_tick(at(55.0 * 60.0));
        assert!(matches!(a[..], [Action::RenewToken]), "{a:?}");
        assert!(
            s.on_tick(at(55.0 * 60.0 + 1.0)).is_empty(),
            "one renewal at a time"
        );
        assert_eq!(s.wake_in(at(3301.0)), None);

        // An event still in the engine: the fresh token waits for its confirmation.
        s.on_bytes(&message("a1", ALARM), at(3301.0));
        let d = s.next_delivery(at(3301.0)).unwrap();
        assert!(s.on_token(Ok(token(at(3302.0), 60)), at(3302.0)).is_empty());
        assert_eq!(s.wake_in(at(3302.0)), Some(Duration::from_secs(5)));
        d.ack.confirm();
        let a = s.on_acks([ack(s.generation, "a1", true)], at(3303.0));
        assert_eq!(acks_sent(&a), ["a1"]);
        assert!(matches!(ends(&a), Some(ConnEnd::Renew)));

        // Nothing in flight: switch at once.
        let (mut s, _rx) = session(None, None);
        s.set_token(token(at(0.0), 60));
        s.on_tick(at(3300.0));
        let a = s.on_token(Ok(token(at(3300.0), 60)), at(3300.0));
        assert!(matches!(ends(&a), Some(ConnEnd::Renew)));
    }

    #[test]
    fn a_drain_that_lasts_too_long_ends_in_a_renewal_anyway() {
        let (mut s, _rx) = session(None, None);
        s.set_token(token(at(0.0), 60));
        s.on_tick(at(3300.0));
        s.on_bytes(&message("a1", ALARM), at(3300.0));
        let _never_confirmed = s.next_delivery(at(3300.0));
        s.on_token(Ok(token(at(3300.0), 60)), at(3300.0));
        assert!(ends(&s.on_tick(at(3304.0))).is_none());
        assert!(matches!(ends(&s.on_tick(at(3305.0))), Some(ConnEnd::Renew)));
    }

    #[test]
    fn a_failed_renewal_keeps_the_session_reports_and_tries_again_in_30_s() {
        let (mut s, _rx) = session(None, None);
        s.set_token(token(at(0.0), 60));
        s.on_tick(at(3300.0));
        assert!(s.on_token(Err("unreachable".into()), at(3300.0)).is_empty());
        let a = s.on_tick(at(3301.0));
        assert!(
            matches!(&a[..], [Action::Report { last_error: Some(e), .. }] if e == "unreachable"),
            "{a:?}"
        );
        assert_eq!(s.wake_in(at(3301.0)), Some(Duration::from_secs(29)));
        assert!(s.on_tick(at(3329.0)).is_empty());
        assert!(matches!(s.on_tick(at(3330.0))[..], [Action::RenewToken]));
    }

    #[test]
    fn an_error_frame_ends_the_connection_and_says_why() {
        let (mut s, _rx) = session(None, None);
        let error = Frame::new(Command::Error)
            .with_header("message", "rate limit exceeded, retry in 5 s")
            .with_header("error-code", "rate-limit-exceeded");
        let a = s.on_bytes(&stomp::encode(&error), at(1.0));
        let Some(ConnEnd::ErrorFrame(f)) = ends(&a) else {
            panic!("{a:?}")
        };
        assert_eq!(
            classify_error(f, Duration::from_secs(600)),
            ErrorAction::RateLimited {
                wait: Duration::from_secs(600)
            }
        );
        // Frames that came together with CONNECTED are read right after subscribing.
        let mut early = Decoder::with_limit(1024);
        early.push(&stomp::encode(&error));
        let a = s.connected(early, (None, None), &[], at(1.0));
        assert!(
            matches!(
                a[..],
                [Action::Send(_), Action::End(ConnEnd::ErrorFrame(_))]
            ),
            "{a:?}"
        );
        let a = s.on_bytes(b"NOT STOMP\n\n\0", at(1.0));
        assert!(
            matches!(ends(&a), Some(ConnEnd::Lost(why)) if why.starts_with("protocol error")),
            "{a:?}"
        );
    }

    #[test]
    fn stop_sends_the_acks_already_in_hand() {
        let (mut s, _rx) = session(None, None);
        let g = s.generation;
        let owed = s.on_stop([
            ack(g, "a1", true),
            ack(g, "a2", false),
            ack(g - 1, "a0", true),
        ]);
        assert_eq!(ids(&owed), ["a1"]);
    }

    #[test]
    fn unreadable_and_oversized_messages_become_events_that_are_acked() {
        let (mut s, _rx) = session(None, None);
        s.on_bytes(&message("a1", "not json"), at(1.0));
        let big = "x".repeat(5000);
        s.on_bytes(&message("a2", &big), at(1.0));
        let unread = s.next_delivery(at(1.0)).unwrap();
        let oversized = s.next_delivery(at(1.0)).unwrap();
        assert_eq!(unread.event.kind, EventKind::Unparsed);
        assert_eq!(oversized.event.kind, EventKind::Unparsed);
        assert_eq!(oversized.event.key, "saveris:acc:alarms:oversized:m-a2");
        assert!(oversized
            .event
            .condition
            .as_deref()
            .unwrap()
            .contains("limit of 1024 bytes"));
        let a = s.on_tick(at(1.5));
        assert!(
            matches!(&a[..], [Action::Report { last_message_at: Some(t), last_error: Some(e) }]
                if *t == at(1.0) && e == "2 message(s) could not be read"),
            "{a:?}"
        );
        assert!(s.on_tick(at(2.0)).is_empty(), "reported once");
        s.on_bytes(b"\n", at(2.5));
        let a = s.on_tick(at(3.0));
        assert!(
            matches!(
                &a[..],
                [Action::Report {
                    last_error: None,
                    ..
                }]
            ),
            "an old problem is not reported again: {a:?}"
        );
        let g = s.generation;
        let a = s.on_acks([ack(g, "a1", true), ack(g, "a2", true)], at(2.0));
        assert_eq!(acks_sent(&a), ["a1", "a2"]);
    }

    #[test]
    fn heartbeat_negotiation() {
        assert_eq!(
            negotiate_heartbeat((10000, 10000), (10000, 10000)),
            (Some(Duration::from_secs(10)), Some(Duration::from_secs(10)))
        );
        assert_eq!(
            negotiate_heartbeat((1000, 5000), (0, 2000)),
            (Some(Duration::from_secs(2)), None)
        );
        assert_eq!(negotiate_heartbeat((0, 0), (1000, 1000)), (None, None));
        assert_eq!(parse_heartbeat(Some("100, 200")), (100, 200));
        assert_eq!(parse_heartbeat(Some("x")), (0, 0));
    }

    #[test]
    fn error_frames_are_classified() {
        let d = Duration::from_secs(600);
        let f = |msg: &str, code: Option<&str>, body: &str| {
            let mut f = Frame::new(Command::Error).with_header("message", msg);
            if let Some(c) = code {
                f = f.with_header("error-code", c);
            }
            f.with_body(body.as_bytes().to_vec())
        };
        assert!(matches!(
            classify_error(&f("invalid authorization", None, ""), d),
            ErrorAction::Auth(_)
        ));
        // The vendor's texts (AsyncAPI 1.3.0). A short figure still waits 10 min, a
        // longer one as long as it says.
        let rate = |ms: u64| {
            f(
                &format!("Too many connection attempts. Please wait {ms} ms before retrying."),
                Some("rate-limit-exceeded"),
                "",
            )
        };
        assert_eq!(
            classify_error(&rate(5000), d),
            ErrorAction::RateLimited { wait: d }
        );
        assert_eq!(
            classify_error(&rate(900_000), d),
            ErrorAction::RateLimited {
                wait: Duration::from_secs(900)
            }
        );
        assert_eq!(
            classify_error(
                &f(
                    "Maximum parallel connection limit exceeded. Please close other connections.",
                    Some("max-connections-reached"),
                    ""
                ),
                d
            ),
            ErrorAction::TooManyConnections
        );
        let text = "subscription refused: missing required permission or license for queue: measurements-v2";
        let refused = f(text, None, text).with_header("queue", "measurements-v2");
        assert_eq!(
            classify_error(&refused, d),
            ErrorAction::SubscriptionRefused {
                queue: "measurements-v2".into(),
                message: text.into()
            }
        );
        // Without the header, the queue is read from the text.
        assert!(matches!(
            classify_error(&f(text, None, ""), d),
            ErrorAction::SubscriptionRefused { queue, .. } if queue == "measurements-v2"
        ));
        assert_eq!(
            classify_error(&f("Unable to process the request.", None, ""), d),
            ErrorAction::Retry("Unable to process the request.".into())
        );
        let dests = [
            (Channel::Alarms, "/queue/a/alarms".to_string()),
            (Channel::Measurements, "/queue/a/measurements".to_string()),
            (
                Channel::MeasurementsV2,
                "/queue/a/measurements-v2".to_string(),
            ),
        ];
        assert_eq!(
            refused_channel("measurements-v2", &dests),
            Some(Channel::MeasurementsV2)
        );
        assert_eq!(
            refused_channel("/queue/a/measurements", &dests),
            Some(Channel::Measurements)
        );
        assert_eq!(refused_channel("", &dests), None);
        assert_eq!(refused_channel("other", &dests), None);
        assert_eq!(wait_from_text("wait 5 s"), Some(Duration::from_secs(5)));
        assert_eq!(wait_from_text("wait 2 min"), Some(Duration::from_secs(120)));
        assert_eq!(wait_from_text("none"), None);
    }
}
