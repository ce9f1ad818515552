//! The STOMP session: the pure decisions (heart-beat negotiation, ERROR classification,
//! endpoint resolution) and the one connection loop that owns the socket.
//!
//! Flow control, in short: a MESSAGE becomes a [`Delivery`] whose [`Ack`] comes back on an
//! unbounded channel once the engine has stored the event; only then is the STOMP `ACK`
//! sent, and only if the connection that received the message is still the current one
//! (its `ack` ids mean nothing to a later connection, where the broker redelivers anyway).
//! Deliveries go through a bounded channel: while it is full the loop stops reading the
//! socket (TCP back-pressure) but keeps sending heart-beats and ACKs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::MaybeTlsStream;

use super::auth::{self, AuthError, Token, TokenSource};
use super::payload::{self, Channel};
use super::stomp::{self, Command, Decoder, Frame, StompError};
use super::wire::{Wire, WireError};
use super::{Clock, SaverisError, SaverisFeedConfig};
use crate::event::{
    Ack, AckMsg, Delivery, Event, EventKind, FeedState, FeedStatus, Severity, Source,
};
use crate::feeds::backoff::Backoff;
use crate::settings::SaverisAccount;

type Ws = Wire<MaybeTlsStream<TcpStream>>;

/// At most this many ACKs go out in one write.
const ACK_BATCH: usize = 1024;

/// The default Saveris destination form.
pub const DEFAULT_DESTINATION: &str = "/queue/{username}/{channel}";

/// How the STOMP CONNECT authenticates.
#[derive(Clone)]
pub enum StompAuth {
    Bearer(String),
    Login { login: String, passcode: String },
}

impl std::fmt::Debug for StompAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StompAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            StompAuth::Login { login, .. } => write!(f, "Login({login}, <redacted>)"),
        }
    }
}

/// Where and what to subscribe, resolved from the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ws_url: String,
    /// The STOMP `host` header.
    pub host: String,
    /// (channel, destination) in subscription order.
    pub destinations: Vec<(Channel, String)>,
    /// `None`: STOMP login/passcode (custom endpoints without a token URL).
    pub token_source: Option<TokenSource>,
}

impl Endpoint {
    pub fn resolve(account: &SaverisAccount) -> Result<Endpoint, SaverisError> {
        if account.username.trim().is_empty() {
            return Err(SaverisError::Config("the user name is empty".into()));
        }
        let (ws_url, pattern) = match &account.custom {
            Some(c) => (
                c.ws_url.trim().to_string(),
                if c.destination_pattern.trim().is_empty() {
                    DEFAULT_DESTINATION
                } else {
                    c.destination_pattern.trim()
                }
                .to_string(),
            ),
            None => (
                format!(
                    "wss://tds-real-time-api.{}.{}.savr.saveris.net/web-socket",
                    account.region.as_str(),
                    account.environment.letter()
                ),
                DEFAULT_DESTINATION.to_string(),
            ),
        };
        let url = url::Url::parse(&ws_url)
            .map_err(|e| SaverisError::Config(format!("the WebSocket URL is invalid ({e})")))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(SaverisError::Config(
                "the WebSocket URL must start with ws:// or wss://".into(),
            ));
        }
        // The passcode or token would cross the network in clear.
        if url.scheme() == "ws" && !is_loopback(&url) {
            return Err(SaverisError::Config(
                "ws:// is only allowed for this computer (127.0.0.1, ::1, localhost); use wss://"
                    .into(),
            ));
        }
        // The STOMP `host` header is the server's host name, as the spec recommends; brokers
        // that read it as a virtual host (RabbitMQ) get it from a `vhost` query parameter
        // of a custom URL.
        let host = url
            .query_pairs()
            .find(|(k, _)| k == "vhost")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| url.host_str().unwrap_or_default().to_string());
        let ch = &account.channels;
        let destinations: Vec<(Channel, String)> = [
            (ch.alarms, Channel::Alarms),
            (ch.measurements, Channel::Measurements),
            (ch.measurements_v2, Channel::MeasurementsV2),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| {
            (
                c,
                pattern
                    .replace("{username}", account.username.trim())
                    .replace("{channel}", c.as_str()),
            )
        })
        .collect();
        if destinations.is_empty() {
            return Err(SaverisError::Config("no channel is chosen".into()));
        }
        Ok(Endpoint {
            ws_url,
            host,
            destinations,
            token_source: TokenSource::for_account(account),
        })
    }
}

/// `url` points at this computer.
fn is_loopback(url: &url::Url) -> bool {
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

fn parse_heartbeat(v: Option<&str>) -> (u32, u32) {
    let Some(v) = v else { return (0, 0) };
    let mut it = v.split(',').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// What an ERROR frame asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// The credentials or token were refused.
    Auth(String),
    /// The server asks us to stay away for a while.
    Wait { wait: Duration, reason: String },
    /// Anything else: reconnect with backoff.
    Retry(String),
}

/// Classifies an ERROR frame (PROTOCOLS.md). `default_wait` applies when a rate or
/// connection limit gives no figure.
pub fn classify_error(frame: &Frame, default_wait: Duration) -> ErrorAction {
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
        message.clone()
    };
    if all.contains("max-connections-reached") || all.contains("rate-limit-exceeded") {
        let reason = if all.contains("max-connections-reached") {
            "too many connections"
        } else {
            "rate limit"
        };
        let wait = wait_from_text(&message)
            .or_else(|| wait_from_text(&body))
            .unwrap_or(default_wait);
        return ErrorAction::Wait {
            wait,
            reason: reason.into(),
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

/// Why opening a link failed.
#[derive(Debug)]
pub enum LinkError {
    Connect(String),
    Timeout,
    ErrorFrame(Frame),
    Protocol(String),
    Closed,
}

/// An open STOMP session after CONNECTED.
pub struct Link {
    ws: Ws,
    decoder: Decoder,
    /// The CONNECTED frame's `server` header.
    pub server: String,
    send_every: Option<Duration>,
    expect_within: Option<Duration>,
    /// Frames that arrived together with CONNECTED.
    early: VecDeque<Frame>,
}

/// The WebSocket handshake (tungstenite); the frames after it are read by [`Wire`], which
/// has no message size limit: the STOMP decoder's limit is the one that counts.
async fn open_ws(url: &str) -> Result<Ws, LinkError> {
    let connect = |with_protocol: bool| async move {
        let mut req = url.into_client_request()?;
        if with_protocol {
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("v12.stomp, v11.stomp, v10.stomp"),
            );
        }
        tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .map(|(ws, _)| Wire::new(ws.into_inner()))
    };
    match connect(true).await {
        Ok(ws) => Ok(ws),
        // Some servers answer without a subprotocol, which tungstenite refuses when one was
        // offered: try again without offering.
        Err(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(_),
        )) => connect(false)
            .await
            .map_err(|e| LinkError::Connect(describe_ws_error(&e))),
        Err(e) => Err(LinkError::Connect(describe_ws_error(&e))),
    }
}

fn describe_ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => io.to_string(),
        tungstenite::Error::Http(resp) => format!("HTTP {}", resp.status()),
        other => other.to_string(),
    }
}

/// Opens the WebSocket, sends CONNECT and waits for CONNECTED (or ERROR) within `timeout`.
pub async fn open(
    endpoint: &Endpoint,
    auth: &StompAuth,
    heart_beat: (u32, u32),
    timeout: Duration,
    max_frame: usize,
) -> Result<Link, LinkError> {
    let work = async {
        let mut ws = open_ws(&endpoint.ws_url).await?;
        let mut connect = Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", endpoint.host.clone())
            .with_header("heart-beat", format!("{},{}", heart_beat.0, heart_beat.1));
        connect = match auth {
            StompAuth::Bearer(t) => connect.with_header("Authorization", format!("Bearer {t}")),
            StompAuth::Login { login, passcode } => connect
                .with_header("login", login.clone())
                .with_header("passcode", passcode.clone()),
        };
        send_frame(&mut ws, &connect)
            .await
            .map_err(|e| LinkError::Connect(e.to_string()))?;
        let mut decoder = Decoder::with_limit(max_frame);
        loop {
            match ws.next_chunk().await {
                Ok(Some(chunk)) => decoder.push(&chunk),
                Ok(None) => return Err(LinkError::Closed),
                Err(e) => return Err(LinkError::Connect(e.to_string())),
            }
            while let Some(frame) = decoder
                .next_frame()
                .map_err(|e| LinkError::Protocol(e.to_string()))?
            {
                match frame.command {
                    Command::Connected => {
                        let (send_every, expect_within) = negotiate_heartbeat(
                            heart_beat,
                            parse_heartbeat(frame.header("heart-beat")),
                        );
                        let mut early = VecDeque::new();
                        while let Some(f) = decoder
                            .next_frame()
                            .map_err(|e| LinkError::Protocol(e.to_string()))?
                        {
                            early.push_back(f);
                        }
                        let server = frame
                            .header("server")
                            .unwrap_or("a STOMP server")
                            .to_string();
                        return Ok(Link {
                            ws,
                            decoder,
                            server,
                            send_every,
                            expect_within,
                            early,
                        });
                    }
                    Command::Error => {
                        // Some brokers keep the socket open after ERROR: close it ourselves.
                        close_quietly(&mut ws).await;
                        return Err(LinkError::ErrorFrame(frame));
                    }
                    _ => {}
                }
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

async fn send_frame(ws: &mut Ws, frame: &Frame) -> Result<(), WireError> {
    ws.send(&stomp::encode(frame)).await
}

async fn close_quietly(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close()).await;
}

/// Ends a link politely: DISCONNECT (no receipt awaited: RabbitMQ sends none), then close.
pub async fn disconnect(mut link: Link) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        send_frame(&mut link.ws, &Frame::new(Command::Disconnect)),
    )
    .await;
    close_quietly(&mut link.ws).await;
}

/// How one connection ended.
#[derive(Debug)]
enum ConnEnd {
    Stop,
    /// A fresh token is ready: reconnect at once.
    Renew,
    LinkDead,
    Lost(String),
    ErrorFrame(Frame),
}

/// State kept across connections.
struct Feed {
    cfg: SaverisFeedConfig,
    endpoint: Endpoint,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    deliveries: mpsc::Sender<Delivery>,
    status_tx: mpsc::UnboundedSender<FeedStatus>,
    status: FeedStatus,
    stop: watch::Receiver<bool>,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    token: Option<Token>,
    generation: u64,
    unparsed: u64,
}

impl Feed {
    fn report(&mut self, state: FeedState) {
        self.status.state = state;
        let _ = self.status_tx.send(self.status.clone());
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d` showing the wait; false if asked to stop meanwhile.
    async fn wait(&mut self, d: Duration, reason: &str) -> bool {
        self.report(FeedState::Waiting {
            secs: d.as_secs_f64().ceil() as u64,
            reason: reason.to_string(),
        });
        let mut stop = self.stop.clone();
        let clock = self.clock.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopped(),
            _ = clock_jumped(clock.as_ref()) => {
                tracing::info!(feed = %self.status.feed, "the clock jumped (suspend/resume?); reconnecting now");
                !self.stopped()
            }
            _ = until_stopped(&mut stop) => false,
        }
    }

    /// Parks the feed until the user acts (the root stops it and starts a new one).
    async fn halt(&mut self, state: FeedState) {
        self.report(state);
        let _ = self.stop.wait_for(|s| *s).await;
    }

    async fn fetch_token(&self, source: &TokenSource) -> Result<Token, AuthError> {
        let password = self
            .cfg
            .password
            .as_deref()
            .ok_or(AuthError::MissingPassword)?;
        auth::login(
            &self.http,
            source,
            self.cfg.account.username.trim(),
            password,
        )
        .await
    }
}

/// Resolves when the wall clock runs ahead of the monotonic one by more than 5 s: the
/// machine slept. tokio's timers stand still during a suspend, so a backoff planned before
/// it would otherwise be slept out in full after the resume.
async fn clock_jumped(clock: &dyn Clock) {
    let mut wall = clock.now();
    let mut mono = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (w, m) = (clock.now(), tokio::time::Instant::now());
        let ahead =
            w.duration_since(wall) - jiff::SignedDuration::try_from(m - mono).unwrap_or_default();
        if ahead > jiff::SignedDuration::from_secs(5) {
            return;
        }
        (wall, mono) = (w, m);
    }
}

/// Resolves once the stop signal is set (or its sender is gone).
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The feed task: connect, serve, reconnect, until stopped.
pub(super) async fn run(
    cfg: SaverisFeedConfig,
    deliveries: mpsc::Sender<Delivery>,
    status_tx: mpsc::UnboundedSender<FeedStatus>,
    stop: watch::Receiver<bool>,
) {
    let status = FeedStatus::new(format!("saveris:{}", cfg.account.id), cfg.account.label());
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let endpoint = Endpoint::resolve(&cfg.account);
    let http = reqwest::Client::builder()
        .timeout(cfg.http_timeout)
        .build()
        .unwrap_or_default();
    let mut feed = Feed {
        clock: cfg.clock.clone(),
        endpoint: Endpoint {
            ws_url: String::new(),
            host: String::new(),
            destinations: Vec::new(),
            token_source: None,
        },
        cfg,
        http,
        deliveries,
        status_tx,
        status,
        stop,
        ack_tx,
        token: None,
        generation: 0,
        unparsed: 0,
    };
    match endpoint {
        Ok(e) => feed.endpoint = e,
        Err(e) => {
            return feed
                .halt(FeedState::Stopped {
                    message: e.to_string(),
                })
                .await
        }
    }
    let mut backoff = Backoff::new(feed.cfg.backoff_base, feed.cfg.backoff_max);
    // "invalid authorization" earns one fresh token; a second one in a row stops the feed.
    let mut auth_retry_used = false;

    while !feed.stopped() {
        feed.report(FeedState::Connecting);
        let auth = match feed.endpoint.token_source.clone() {
            None => StompAuth::Login {
                login: feed
                    .cfg
                    .account
                    .custom
                    .as_ref()
                    .map(|c| c.stomp_login.clone())
                    .unwrap_or_default(),
                passcode: feed.cfg.passcode.clone().unwrap_or_default(),
            },
            Some(source) => {
                let now = feed.clock.now();
                if feed.token.as_ref().is_none_or(|t| now >= t.renew_at()) {
                    let mut stop = feed.stop.clone();
                    let fetched = tokio::select! {
                        r = feed.fetch_token(&source) => r,
                        _ = until_stopped(&mut stop) => break,
                    };
                    match fetched {
                        Ok(mut t) => {
                            t.fetched_at = feed.clock.now();
                            feed.token = Some(t);
                        }
                        Err(e) if e.is_rejection() => {
                            feed.status.last_error = Some(e.to_string());
                            return feed
                                .halt(FeedState::LoginFailed {
                                    message: e.to_string(),
                                })
                                .await;
                        }
                        Err(e) => {
                            feed.status.last_error = Some(e.to_string());
                            let d = backoff.next_delay();
                            if !feed.wait(d, "login server unreachable").await {
                                break;
                            }
                            continue;
                        }
                    }
                }
                match &feed.token {
                    Some(t) => StompAuth::Bearer(t.id_token.clone()),
                    None => continue,
                }
            }
        };

        feed.generation += 1;
        // Confirmations for earlier connections are meaningless now.
        while ack_rx.try_recv().is_ok() {}
        let mut stop = feed.stop.clone();
        let opened = tokio::select! {
            r = open(&feed.endpoint, &auth, feed.cfg.heart_beat, feed.cfg.connect_timeout, feed.cfg.max_frame) => r,
            _ = until_stopped(&mut stop) => break,
        };
        let end = match opened {
            Ok(link) => {
                auth_retry_used = false;
                feed.status.live_since = Some(feed.clock.now());
                feed.status.last_error = None;
                feed.report(FeedState::Live);
                let started = tokio::time::Instant::now();
                let end = serve(&mut feed, &mut ack_rx, link).await;
                // Reset only after a link that held a while, so a server that accepts and then
                // refuses at once does not get a reconnect storm.
                if started.elapsed() >= Duration::from_secs(10) {
                    backoff.reset();
                }
                end
            }
            Err(LinkError::ErrorFrame(f)) => ConnEnd::ErrorFrame(f),
            Err(LinkError::Timeout) => ConnEnd::Lost("no answer to CONNECT".into()),
            Err(LinkError::Closed) => ConnEnd::Lost("closed during the handshake".into()),
            Err(LinkError::Connect(e)) => ConnEnd::Lost(format!("cannot connect: {e}")),
            Err(LinkError::Protocol(e)) => ConnEnd::Lost(format!("protocol error: {e}")),
        };
        let proceed = match end {
            ConnEnd::Stop => break,
            ConnEnd::Renew => true,
            ConnEnd::LinkDead => {
                feed.status.last_error = Some("no heart-beat from the server".into());
                let d = backoff.next_delay();
                feed.wait(d, "connection lost").await
            }
            ConnEnd::Lost(why) => {
                tracing::info!(feed = %feed.status.feed, %why, "Saveris connection ended");
                feed.status.last_error = Some(why);
                let d = backoff.next_delay();
                feed.wait(d, "connection lost").await
            }
            ConnEnd::ErrorFrame(f) => match classify_error(&f, feed.cfg.default_wait) {
                ErrorAction::Auth(msg) => {
                    feed.status.last_error = Some(format!("server said: {msg}"));
                    if feed.endpoint.token_source.is_some() && !auth_retry_used {
                        auth_retry_used = true;
                        feed.token = None;
                        true
                    } else {
                        return feed
                            .halt(FeedState::LoginFailed {
                                message: format!("Saveris refused the login ({msg})"),
                            })
                            .await;
                    }
                }
                ErrorAction::Wait { wait, reason } => {
                    feed.status.last_error = Some(format!("server said: {reason}"));
                    feed.wait(wait, &reason).await
                }
                ErrorAction::Retry(msg) => {
                    tracing::warn!(feed = %feed.status.feed, error = %msg, "Saveris ERROR frame");
                    feed.status.last_error = Some(format!("server said: {msg}"));
                    let d = backoff.next_delay();
                    feed.wait(d, "server error").await
                }
            },
        };
        if !proceed {
            break;
        }
    }
    feed.report(FeedState::Idle);
}

/// Serves one live link until it ends.
async fn serve(
    feed: &mut Feed,
    ack_rx: &mut mpsc::UnboundedReceiver<AckMsg>,
    mut link: Link,
) -> ConnEnd {
    let generation = feed.generation;
    let mut subs: HashMap<String, Channel> = HashMap::new();
    for (i, (channel, dest)) in feed.endpoint.destinations.iter().enumerate() {
        let id = format!("sub-{i}");
        let f = Frame::new(Command::Subscribe)
            .with_header("id", id.clone())
            .with_header("destination", dest.clone())
            .with_header("ack", "client-individual");
        if let Err(e) = send_frame(&mut link.ws, &f).await {
            return ConnEnd::Lost(e.to_string());
        }
        subs.insert(id, *channel);
    }

    let tick_every = [link.send_every, link.expect_within]
        .into_iter()
        .flatten()
        .min()
        .map(|d| (d / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clock = feed.clock.clone();
    let mut last_rx = clock.now();
    let mut last_tx = clock.now();
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut inflight: HashSet<String> = HashSet::new();
    let mut renewal: Option<tokio::task::JoinHandle<Result<Token, AuthError>>> = None;
    let mut renew_retry_at: Option<Timestamp> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut status_dirty = false;
    let mut stop = feed.stop.clone();
    let mut early = std::mem::take(&mut link.early);
    let deliveries = feed.deliveries.clone();

    // Frames that came with CONNECTED.
    while let Some(f) = early.pop_front() {
        if let Some(end) = handle_frame(
            feed,
            f,
            false,
            generation,
            &subs,
            &mut pending,
            &mut inflight,
        ) {
            return end;
        }
    }

    let end = loop {
        // Wake exactly when the token is due, not up to a tick later: short-lived tokens
        // leave little margin.
        let renew_in = match (&feed.token, &feed.endpoint.token_source) {
            (Some(t), Some(_)) if renewal.is_none() && drain_until.is_none() => {
                let target = renew_retry_at.map_or(t.renew_at(), |r| r.max(t.renew_at()));
                let left = target.duration_since(clock.now());
                Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
            }
            _ => None,
        };
        tokio::select! {
            biased;
            _ = until_stopped(&mut stop) => {
                // Confirmations already in hand are stored events: send them on the way out.
                while let Ok(a) = ack_rx.try_recv() {
                    if a.generation == generation && a.stored {
                        let _ = send_frame(&mut link.ws, &Frame::new(Command::Ack).with_header("id", a.token)).await;
                    }
                }
                break ConnEnd::Stop;
            }
            Some(a) = ack_rx.recv() => {
                // Confirmations come in bursts (the engine stores in batches): take all that
                // are waiting and write their ACKs at once, not one write per message.
                let mut acks = 0;
                let mut next = Some(a);
                while let Some(a) = next.take() {
                    if a.generation == generation {
                        inflight.remove(&a.token);
                        // Not stored: no ACK, the broker keeps it for the next connection.
                        if a.stored {
                            let ack = Frame::new(Command::Ack).with_header("id", a.token);
                            // Fails only once the server closed: the loop ends below.
                            if link.ws.buffer(&stomp::encode(&ack)).is_err() {
                                break;
                            }
                            acks += 1;
                        }
                    }
                    if acks < ACK_BATCH {
                        next = ack_rx.try_recv().ok();
                    }
                }
                if acks > 0 {
                    if let Err(e) = link.ws.flush().await {
                        break ConnEnd::Lost(e.to_string());
                    }
                    last_tx = clock.now();
                }
                if drain_until.is_some() && inflight.is_empty() && pending.is_empty() {
                    break ConnEnd::Renew;
                }
            }
            permit = deliveries.reserve(), if !pending.is_empty() => {
                let Ok(permit) = permit else {
                    // The engine is gone: nothing can be stored any more.
                    break ConnEnd::Stop;
                };
                if let Some(d) = pending.pop_front() {
                    permit.send(d);
                }
                if pending.is_empty() {
                    // Reading resumes now: silence while we were not reading was ours.
                    last_rx = clock.now();
                }
            }
            chunk = link.ws.next_chunk(), if pending.is_empty() => {
                last_rx = clock.now();
                match chunk {
                    Ok(Some(chunk)) => link.decoder.push(&chunk),
                    Ok(None) => break ConnEnd::Lost("the server closed the connection".into()),
                    Err(e) => break ConnEnd::Lost(e.to_string()),
                }
                let mut ended = None;
                loop {
                    let (f, oversized) = match link.decoder.next_frame() {
                        Ok(Some(f)) => (f, false),
                        // A body beyond the limit: the decoder skips it; the message is
                        // recorded as unreadable and acknowledged, not redelivered forever.
                        Err(StompError::Oversized { frame, .. }) => (*frame, true),
                        Ok(None) => break,
                        Err(e) => { ended = Some(ConnEnd::Lost(format!("protocol error: {e}"))); break; }
                    };
                    if let Some(end) = handle_frame(feed, f, oversized, generation, &subs, &mut pending, &mut inflight) {
                        ended = Some(end);
                        break;
                    }
                }
                if let Some(end) = ended {
                    break end;
                }
                status_dirty = true;
            }
            done = async { match renewal.as_mut() { Some(h) => h.await, None => std::future::pending().await } }, if renewal.is_some() => {
                renewal = None;
                match done {
                    Ok(Ok(t)) => {
                        // The old token's expiry on our clock bounds the drain below.
                        let left = feed
                            .token
                            .as_ref()
                            .and_then(|old| old.fetched_at.checked_add(old.lifetime).ok())
                            .map(|exp| Duration::try_from(exp.duration_since(clock.now())).unwrap_or(Duration::ZERO));
                        feed.token = Some(t);
                        // Let confirmations in flight arrive before switching connections, so
                        // little is redelivered; the drain is bounded, and ends well before the
                        // old token does.
                        if inflight.is_empty() && pending.is_empty() {
                            break ConnEnd::Renew;
                        }
                        let drain = left.map_or(feed.cfg.drain_timeout, |l| feed.cfg.drain_timeout.min(l / 2));
                        drain_until = Some(tokio::time::Instant::now() + drain);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(feed = %feed.status.feed, error = %e, "token renewal failed; keeping the current session");
                        feed.status.last_error = Some(e.to_string());
                        renew_retry_at = clock.now().checked_add(jiff::SignedDuration::from_secs(30)).ok();
                    }
                    Err(_) => renew_retry_at = clock.now().checked_add(jiff::SignedDuration::from_secs(30)).ok(),
                }
            }
            _ = tick_or(&mut tick, renew_in.or(drain_until.map(|d| d.saturating_duration_since(tokio::time::Instant::now())))) => {
                let now = clock.now();
                if let Some(expect) = link.expect_within {
                    let silent = now.duration_since(last_rx);
                    if pending.is_empty() && silent > jiff::SignedDuration::try_from(expect * 2).unwrap_or(jiff::SignedDuration::MAX) {
                        break ConnEnd::LinkDead;
                    }
                }
                if let Some(every) = link.send_every {
                    if now.duration_since(last_tx) >= jiff::SignedDuration::try_from(every).unwrap_or(jiff::SignedDuration::MAX) {
                        if let Err(e) = link.ws.send(b"\n").await {
                            break ConnEnd::Lost(e.to_string());
                        }
                        last_tx = now;
                    }
                }
                if let (Some(t), Some(source)) = (&feed.token, &feed.endpoint.token_source) {
                    let due = now >= t.renew_at() && renew_retry_at.is_none_or(|r| now >= r);
                    if due && renewal.is_none() && drain_until.is_none() {
                        let (http, source) = (feed.http.clone(), source.clone());
                        let user = feed.cfg.account.username.trim().to_string();
                        let password = feed.cfg.password.clone().unwrap_or_default();
                        let clock = clock.clone();
                        renewal = Some(tokio::spawn(async move {
                            let mut t = auth::login(&http, &source, &user, &password).await?;
                            t.fetched_at = clock.now();
                            Ok(t)
                        }));
                    }
                }
                if drain_until.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break ConnEnd::Renew;
                }
                if status_dirty {
                    status_dirty = false;
                    let state = feed.status.state.clone();
                    feed.report(state);
                }
            }
        }
    };
    if let Some(r) = renewal {
        r.abort();
    }
    // Deliveries not yet handed over are dropped unconfirmed: the broker redelivers them.
    drop(pending);
    match &end {
        ConnEnd::ErrorFrame(_) | ConnEnd::LinkDead | ConnEnd::Lost(_) => {
            close_quietly(&mut link.ws).await
        }
        ConnEnd::Stop | ConnEnd::Renew => disconnect(link).await,
    }
    end
}

/// The next tick, or `early` if that comes first.
async fn tick_or(tick: &mut tokio::time::Interval, early: Option<Duration>) {
    match early {
        Some(d) => tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(d) => {}
        },
        None => {
            tick.tick().await;
        }
    }
}

/// Turns one received frame into a pending delivery; `Some` ends the connection.
#[allow(clippy::too_many_arguments)]
fn handle_frame(
    feed: &mut Feed,
    frame: Frame,
    oversized: bool,
    generation: u64,
    subs: &HashMap<String, Channel>,
    pending: &mut VecDeque<Delivery>,
    inflight: &mut HashSet<String>,
) -> Option<ConnEnd> {
    match frame.command {
        Command::Message => {
            let channel = frame
                .header("subscription")
                .and_then(|s| subs.get(s).copied())
                .or_else(|| {
                    let dest = frame.header("destination").unwrap_or("");
                    Channel::ALL
                        .into_iter()
                        .rev()
                        .find(|c| dest.ends_with(c.as_str()))
                })
                .unwrap_or(Channel::Alarms);
            let now = feed.clock.now();
            let mut event = if oversized {
                oversized_event(
                    &feed.cfg.account.id,
                    channel,
                    &frame,
                    feed.cfg.max_frame,
                    now,
                )
            } else {
                payload::to_event(&feed.cfg.account.id, channel.as_str(), &frame.body, now)
            };
            event.replayed = frame.header("redelivered") == Some("true");
            if event.kind == EventKind::Unparsed {
                feed.unparsed += 1;
                tracing::warn!(feed = %feed.status.feed, count = feed.unparsed, "Saveris message could not be read; stored as unparsed");
                feed.status.last_error =
                    Some(format!("{} message(s) could not be read", feed.unparsed));
            }
            feed.status.last_message_at = Some(now);
            // STOMP 1.2 acks by the `ack` header; older servers by `message-id`.
            let token = frame
                .header("ack")
                .or_else(|| frame.header("message-id"))
                .map(str::to_owned);
            let ack = match token {
                Some(t) => {
                    inflight.insert(t.clone());
                    Ack::new(feed.ack_tx.clone(), generation, t)
                }
                None => Ack::none(),
            };
            pending.push_back(Delivery { event, ack });
            None
        }
        Command::Error => Some(ConnEnd::ErrorFrame(frame)),
        _ => None,
    }
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

/// Logs in, opens a session, reads the server name, and disconnects.
pub(super) async fn test_connection(
    account: &SaverisAccount,
    password: Option<&str>,
    passcode: Option<&str>,
) -> Result<String, SaverisError> {
    let cfg = SaverisFeedConfig::new(
        account.clone(),
        password.map(str::to_owned),
        passcode.map(str::to_owned),
    );
    let endpoint = Endpoint::resolve(account)?;
    let auth = match &endpoint.token_source {
        None => StompAuth::Login {
            login: account
                .custom
                .as_ref()
                .map(|c| c.stomp_login.clone())
                .unwrap_or_default(),
            passcode: passcode.unwrap_or_default().to_string(),
        },
        Some(source) => {
            let http = reqwest::Client::builder()
                .timeout(cfg.http_timeout)
                .build()
                .unwrap_or_default();
            let password = password.ok_or(AuthError::MissingPassword)?;
            StompAuth::Bearer(
                auth::login(&http, source, account.username.trim(), password)
                    .await?
                    .id_token,
            )
        }
    };
    match open(
        &endpoint,
        &auth,
        cfg.heart_beat,
        cfg.connect_timeout,
        cfg.max_frame,
    )
    .await
    {
        Ok(link) => {
            let server = link.server.clone();
            disconnect(link).await;
            Ok(format!(
                "Connected to {server} as {}",
                account.username.trim()
            ))
        }
        Err(LinkError::ErrorFrame(f)) => Err(match classify_error(&f, cfg.default_wait) {
            ErrorAction::Auth(m) => SaverisError::Refused(format!("the login was refused ({m})")),
            ErrorAction::Wait { wait, reason } => SaverisError::Refused(format!(
                "{reason}; try again in {} s",
                wait.as_secs_f64().ceil() as u64
            )),
            ErrorAction::Retry(m) => SaverisError::Refused(m),
        }),
        Err(LinkError::Timeout) => Err(SaverisError::HandshakeTimeout(
            cfg.connect_timeout.as_secs(),
        )),
        Err(LinkError::Closed) => Err(SaverisError::Closed),
        Err(LinkError::Connect(reason)) => Err(SaverisError::Connect {
            host: endpoint.host,
            reason,
        }),
        Err(LinkError::Protocol(e)) => Err(SaverisError::Protocol(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Channels, CustomEndpoint};

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
        assert_eq!(
            classify_error(
                &f(
                    "rate limit exceeded, retry in 30000 ms",
                    Some("rate-limit-exceeded"),
                    ""
                ),
                d
            ),
            ErrorAction::Wait {
                wait: Duration::from_secs(30),
                reason: "rate limit".into()
            }
        );
        assert_eq!(
            classify_error(&f("too many", Some("max-connections-reached"), ""), d),
            ErrorAction::Wait {
                wait: d,
                reason: "too many connections".into()
            }
        );
        assert_eq!(
            classify_error(&f("subscription refused", None, ""), d),
            ErrorAction::Retry("subscription refused".into())
        );
        assert_eq!(wait_from_text("wait 5 s"), Some(Duration::from_secs(5)));
        assert_eq!(wait_from_text("wait 2 min"), Some(Duration::from_secs(120)));
        assert_eq!(wait_from_text("none"), None);
    }

    #[test]
    fn endpoint_from_account() {
        let mut a = SaverisAccount {
            username: "alice".into(),
            channels: Channels {
                alarms: true,
                measurements: false,
                measurements_v2: true,
            },
            ..Default::default()
        };
        let e = Endpoint::resolve(&a).unwrap();
        assert_eq!(
            e.ws_url,
            "wss://tds-real-time-api.eu.p.savr.saveris.net/web-socket"
        );
        assert_eq!(e.host, "tds-real-time-api.eu.p.savr.saveris.net");
        assert_eq!(
            e.destinations,
            vec![
                (Channel::Alarms, "/queue/alice/alarms".to_string()),
                (
                    Channel::MeasurementsV2,
                    "/queue/alice/measurements-v2".to_string()
                )
            ]
        );
        a.custom = Some(CustomEndpoint {
            ws_url: "ws://127.0.0.1:1/ws".into(),
            destination_pattern: "/queue/{username}.{channel}".into(),
            ..Default::default()
        });
        let e = Endpoint::resolve(&a).unwrap();
        assert_eq!(e.destinations[0].1, "/queue/alice.alarms");
        assert_eq!(e.host, "127.0.0.1");
        a.custom.as_mut().unwrap().ws_url = "ws://127.0.0.1:1/ws?vhost=%2F".into();
        assert_eq!(Endpoint::resolve(&a).unwrap().host, "/");
        assert!(e.token_source.is_none());
        a.channels = Channels {
            alarms: false,
            measurements: false,
            measurements_v2: false,
        };
        assert!(Endpoint::resolve(&a).is_err());
    }
}
