//! The STOMP session's I/O: the handshake, and the loop that moves bytes between the
//! socket, the engine and the [`SessionState`] for one live link. The decisions (what a
//! frame means, when to ACK, send a heart-beat, renew the token or give the link up) are the
//! state machine's; the reconnect loop around it is the shared [`Connector`].

use std::iter;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::MaybeTlsStream;

use super::auth::{self, AuthError, Token, TokenSource};
use super::endpoint::{Endpoint, StompAuth};
use super::gate;
use super::payload::Channel;
use super::state::{
    classify_error, negotiate_heartbeat, parse_heartbeat, refused_channel, Action, ConnEnd,
    ErrorAction, SessionState,
};
use super::stomp::{self, Command, Decoder, Frame};
use super::wire::{Wire, WireError};
use super::{SaverisError, SaverisFeedConfig};
use crate::clock::Clock;
use crate::event::{AckMsg, ChannelRefusal, Delivery, FeedState};
use crate::feeds::connector::{self, until_stopped, Connector, Outcome, Reconnect, Status};
use crate::settings::SaverisAccount;

type Ws = Wire<MaybeTlsStream<TcpStream>>;

/// `max-connections-reached`: the first wait, doubled on each repeat up to the rate-limit
/// floor (10 min). A minute gives the user time to close another client; retrying sooner
/// only adds to "too many connection attempts".
const MAX_CONNECTIONS_FLOOR: Duration = Duration::from_secs(60);

/// The sentence for `max-connections-reached` (the vendor's limit, SAVERIS-API.md §2.5).
pub const MAX_CONNECTIONS_SENTENCE: &str = "Saveris allows 4 parallel connections per user and all 4 are in use: close other Saveris clients logged in as this user (another Alarm Tray, scripts, dashboards)";

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
    /// Negotiated heart-beats: (we send every, the server's interval).
    heart_beats: (Option<Duration>, Option<Duration>),
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
                        let heart_beats = negotiate_heartbeat(
                            heart_beat,
                            parse_heartbeat(frame.header("heart-beat")),
                        );
                        // Frames that came together with CONNECTED stay in the decoder:
                        // the session reads them first.
                        let server = frame
                            .header("server")
                            .unwrap_or("a STOMP server")
                            .to_string();
                        return Ok(Link {
                            ws,
                            decoder,
                            server,
                            heart_beats,
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
pub async fn disconnect(ws: &mut Ws) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        send_frame(ws, &Frame::new(Command::Disconnect)),
    )
    .await;
    close_quietly(ws).await;
}

/// The one way to a token, for the first login and every renewal alike.
#[derive(Clone)]
struct Login {
    http: reqwest::Client,
    source: TokenSource,
    user: String,
    password: Option<String>,
    clock: Arc<dyn Clock>,
}

impl Login {
    fn new(cfg: &SaverisFeedConfig, source: TokenSource) -> Login {
        Login {
            http: reqwest::Client::builder()
                .timeout(cfg.http_timeout)
                .build()
                .unwrap_or_default(),
            source,
            user: cfg.account.username.trim().to_string(),
            password: cfg.password.clone(),
            clock: cfg.clock.clone(),
        }
    }

    /// A fresh token, dated on the feed's clock. No stored password is an error, never an
    /// empty one.
    async fn fetch(self) -> Result<Token, AuthError> {
        let password = self.password.as_deref().ok_or(AuthError::MissingPassword)?;
        let mut token = auth::login(&self.http, &self.source, &self.user, password).await?;
        token.fetched_at = self.clock.now();
        Ok(token)
    }
}

/// The feed task: connect, serve, reconnect, until stopped.
pub(super) async fn run(
    cfg: SaverisFeedConfig,
    deliveries: mpsc::Sender<Delivery>,
    status: Status,
    stop: watch::Receiver<bool>,
) {
    let reconnect = Reconnect {
        base: cfg.backoff_base,
        max: cfg.backoff_max,
        stable_after: cfg.stable_after,
    };
    let conn = Connector::new(status, stop, cfg.clock.clone(), reconnect);
    let endpoint = match Endpoint::resolve(&cfg.account) {
        Ok(e) => e,
        Err(e) => {
            let message = e.to_string();
            return conn.halt(message.clone(), FeedState::Stopped { message });
        }
    };
    let login = endpoint
        .token_source
        .clone()
        .map(|source| Login::new(&cfg, source));
    let (ack_tx, acks) = mpsc::unbounded_channel();
    let state = SessionState::new(
        &cfg.account.id,
        conn.status.feed(),
        cfg.max_frame,
        cfg.drain_timeout,
        ack_tx,
    );
    let host = gate::host_of(&endpoint.ws_url);
    let registered = gate::register(
        &gate::connection_key(&endpoint.ws_url, &cfg.account.username),
        conn.status.subscribe(),
    );
    let session = Session {
        cfg,
        endpoint,
        login,
        state,
        acks,
        deliveries,
        auth_retry_used: false,
        host,
        refused: Vec::new(),
        max_connections_streak: 0,
        _registered: registered,
    };
    conn.run(session).await;
}

/// One account's feed across its connections.
struct Session {
    cfg: SaverisFeedConfig,
    endpoint: Endpoint,
    /// `None`: STOMP login/passcode instead of a token.
    login: Option<Login>,
    state: SessionState,
    acks: mpsc::UnboundedReceiver<AckMsg>,
    deliveries: mpsc::Sender<Delivery>,
    /// "invalid authorization" earns one fresh token; a second one in a row stops the feed.
    auth_retry_used: bool,
    /// The rate-limit key of the WebSocket host.
    host: String,
    /// Channels Saveris refused for this user: left out until the feed restarts (the user
    /// turns the channel off and on, or saves the account).
    refused: Vec<Channel>,
    /// `max-connections-reached` in a row.
    max_connections_streak: u32,
    /// Keeps this feed in the registry Test connection reads.
    _registered: gate::Registered,
}

impl connector::Session for Session {
    async fn attempt(&mut self, conn: &mut Connector) -> Outcome {
        // Inside a rate-limit window nothing connects, not even a login (a wake from
        // suspend or a clock jump ends the wait early; the window holds anyway).
        let now = conn.clock().now();
        if let Some(until) = gate::blocked_until(&self.host, now) {
            let wait = Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO);
            return Outcome::Retry {
                error: rate_limit_sentence(until, conn.clock().as_ref()),
                reason: "rate limit".into(),
                wait: Some(wait),
            };
        }
        let auth = match self.auth(conn).await {
            Ok(auth) => auth,
            Err(outcome) => return outcome,
        };
        // Confirmations for earlier connections are meaningless now.
        while self.acks.try_recv().is_ok() {}
        let cfg = &self.cfg;
        let opening = open(
            &self.endpoint,
            &auth,
            cfg.heart_beat,
            cfg.connect_timeout,
            cfg.max_frame,
        );
        let Some(opened) = conn.unless_stopped(opening).await else {
            return Outcome::Stopped;
        };
        let end = match opened {
            Ok(link) => {
                self.auth_retry_used = false;
                self.max_connections_streak = 0;
                conn.live();
                self.serve(conn, link).await
            }
            Err(e) => e.into(),
        };
        self.outcome(end, conn)
    }
}

impl Session {
    /// The credentials for CONNECT: a token (fetched first when there is none or it is
    /// due), or the STOMP login. `Err` when the attempt ends here.
    async fn auth(&mut self, conn: &Connector) -> Result<StompAuth, Outcome> {
        let Some(login) = &self.login else {
            return Ok(StompAuth::login(
                &self.cfg.account,
                self.cfg.passcode.as_deref(),
            ));
        };
        if self.state.needs_token(conn.clock().now()) {
            // One token per account: the Data API client may have fetched it already.
            let shared = self.cfg.token.fresh(conn.clock().now());
            let fetch = async {
                match shared {
                    Some(t) => Ok(t),
                    None => login.clone().fetch().await,
                }
            };
            match conn.unless_stopped(fetch).await {
                None => return Err(Outcome::Stopped),
                Some(Ok(token)) => {
                    self.cfg.token.put(token.clone());
                    self.state.set_token(token)
                }
                Some(Err(e)) if e.is_rejection() => {
                    return Err(Outcome::Halt {
                        error: e.to_string(),
                        state: FeedState::LoginFailed {
                            message: e.to_string(),
                        },
                    })
                }
                Some(Err(e)) => {
                    return Err(Outcome::Retry {
                        error: e.to_string(),
                        reason: "login server unreachable".into(),
                        wait: None,
                    })
                }
            }
        }
        (self.state.id_token())
            .map(|t| StompAuth::Bearer(t.to_string()))
            .ok_or(Outcome::Again)
    }

    /// What the reconnect loop makes of how the connection ended.
    fn outcome(&mut self, end: ConnEnd, conn: &Connector) -> Outcome {
        let retry = |error: String, reason: &str| Outcome::Retry {
            error,
            reason: reason.into(),
            wait: None,
        };
        let frame = match end {
            ConnEnd::Stop => return Outcome::Stopped,
            ConnEnd::Renew => return Outcome::Again,
            ConnEnd::LinkDead => {
                return retry("no heart-beat from the server".into(), "connection lost")
            }
            ConnEnd::Lost(why) => {
                tracing::info!(feed = %conn.status.feed(), %why, "Saveris connection ended");
                return retry(why, "connection lost");
            }
            ConnEnd::ErrorFrame(frame) => frame,
        };
        match classify_error(&frame, self.cfg.default_wait) {
            ErrorAction::Auth(msg) if self.login.is_some() && !self.auth_retry_used => {
                self.auth_retry_used = true;
                // The refused token leaves the shared slot too, or it would come back.
                if let Some(t) = self.state.id_token().map(str::to_string) {
                    self.cfg.token.forget(&t);
                }
                self.state.forget_token();
                conn.status
                    .note(|s| s.last_error = Some(format!("server said: {msg}")));
                Outcome::Again
            }
            ErrorAction::Auth(msg) => Outcome::Halt {
                error: format!("server said: {msg}"),
                state: FeedState::LoginFailed {
                    message: format!("Saveris refused the login ({msg})"),
                },
            },
            ErrorAction::RateLimited { wait } => {
                let now = conn.clock().now();
                let until = now
                    .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                    .unwrap_or(now);
                gate::block(&self.host, until);
                Outcome::Retry {
                    error: rate_limit_sentence(until, conn.clock().as_ref()),
                    reason: "rate limit".into(),
                    wait: Some(wait),
                }
            }
            ErrorAction::TooManyConnections => {
                self.max_connections_streak += 1;
                let wait = (MAX_CONNECTIONS_FLOOR
                    * 2u32.saturating_pow(self.max_connections_streak.saturating_sub(1).min(8)))
                .min(self.cfg.default_wait.max(MAX_CONNECTIONS_FLOOR));
                Outcome::Retry {
                    error: format!("{MAX_CONNECTIONS_SENTENCE}."),
                    reason: "too many connections".into(),
                    wait: Some(wait),
                }
            }
            ErrorAction::SubscriptionRefused { queue, message } => {
                let channel = refused_channel(&queue, &self.endpoint.destinations)
                    .filter(|c| !self.refused.contains(c));
                let Some(channel) = channel else {
                    // No channel of ours named: nothing to drop; try again later.
                    tracing::warn!(feed = %conn.status.feed(), error = %message, "Saveris refused a subscription");
                    return retry(format!("server said: {message}"), "server error");
                };
                self.refused.push(channel);
                let sentence = format!(
                    "Saveris refused {} for this user: licence or permission missing",
                    channel.as_str()
                );
                tracing::warn!(feed = %conn.status.feed(), channel = channel.as_str(), "Saveris refused a channel; reconnecting without it");
                conn.status.note(|s| {
                    s.refused.push(ChannelRefusal {
                        channel: channel.as_str().to_string(),
                        message: sentence.clone(),
                    });
                    s.last_error = Some(format!("{sentence}."));
                });
                let left = (self.endpoint.destinations.iter())
                    .filter(|(c, _)| !self.refused.contains(c))
                    .count();
                if left == 0 {
                    let message = "Saveris refused every chosen channel for this user: licence or permission missing".to_string();
                    return Outcome::Halt {
                        error: message.clone(),
                        state: FeedState::Stopped { message },
                    };
                }
                // The other channels keep flowing: reconnect at once without this one.
                Outcome::Again
            }
            ErrorAction::Retry(msg) => {
                tracing::warn!(feed = %conn.status.feed(), error = %msg, "Saveris ERROR frame");
                retry(format!("server said: {msg}"), "server error")
            }
        }
    }

    /// The I/O loop of one live link: it only moves bytes between the socket, the engine
    /// and the state machine, and carries out what the state machine answers.
    async fn serve(&mut self, conn: &Connector, link: Link) -> ConnEnd {
        let clock = conn.clock().clone();
        let shared_token = self.cfg.token.clone();
        let (state, acks, deliveries) = (&mut self.state, &mut self.acks, &self.deliveries);
        let dests: Vec<(Channel, String)> = (self.endpoint.destinations.iter())
            .filter(|(c, _)| !self.refused.contains(c))
            .cloned()
            .collect();
        // Issue 20: the Data API fills in the time the link was down.
        shared_token.link_up(clock.now());
        let mut actions = state.connected(link.decoder, link.heart_beats, &dests, clock.now());
        let mut io = LinkIo {
            ws: link.ws,
            renewal: None,
        };
        let mut tick = tokio::time::interval(state.tick_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop = conn.stop_signal();
        let end = loop {
            let login = self.login.as_ref();
            if let Some(end) = io.carry_out(actions, login, &conn.status).await {
                break end;
            }
            actions = tokio::select! {
                biased;
                _ = until_stopped(&mut stop) => {
                    // Confirmations already in hand are stored events: ACK them on the way out.
                    let owed = state.on_stop(iter::from_fn(|| acks.try_recv().ok()));
                    let _ = send_frames(&mut io.ws, owed).await;
                    break ConnEnd::Stop;
                }
                Some(a) = acks.recv() => {
                    let burst = iter::once(a).chain(iter::from_fn(|| acks.try_recv().ok()));
                    state.on_acks(burst, clock.now())
                }
                permit = deliveries.reserve(), if state.has_pending() => match permit {
                    // The engine is gone: nothing can be stored any more.
                    Err(_) => break ConnEnd::Stop,
                    Ok(permit) => {
                        if let Some(d) = state.next_delivery(clock.now()) {
                            permit.send(d);
                        }
                        Vec::new()
                    }
                },
                chunk = io.ws.next_chunk(), if state.reading() => match chunk {
                    Ok(Some(bytes)) => state.on_bytes(&bytes, clock.now()),
                    Ok(None) => break ConnEnd::Lost("the server closed the connection".into()),
                    Err(e) => break ConnEnd::Lost(e.to_string()),
                },
                fresh = renewed(&mut io.renewal), if io.renewal.is_some() => {
                    io.renewal = None;
                    if let Ok(t) = &fresh {
                        shared_token.put(t.clone());
                    }
                    state.on_token(fresh, clock.now())
                }
                _ = tick_or(&mut tick, state.wake_in(clock.now())) => state.on_tick(clock.now()),
            };
        };
        state.disconnected();
        shared_token.link_down(clock.now());
        io.close(&end).await;
        end
    }
}

/// The socket of a live link and the token renewal running beside it.
struct LinkIo {
    ws: Ws,
    renewal: Option<JoinHandle<Result<Token, AuthError>>>,
}

impl LinkIo {
    /// Carries out the state machine's actions in order; `Some` once the link is over.
    async fn carry_out(
        &mut self,
        actions: Vec<Action>,
        login: Option<&Login>,
        status: &Status,
    ) -> Option<ConnEnd> {
        for action in actions {
            let sent = match action {
                Action::Send(frames) => send_frames(&mut self.ws, frames).await,
                Action::SendHeartbeat => self.ws.send(b"\n").await,
                Action::RenewToken => {
                    self.renewal = login.map(|l| tokio::spawn(l.clone().fetch()));
                    Ok(())
                }
                Action::Report {
                    last_message_at,
                    last_error,
                } => {
                    status.note(|s| {
                        s.last_message_at = last_message_at.or(s.last_message_at);
                        if last_error.is_some() {
                            s.last_error = last_error;
                        }
                    });
                    status.publish();
                    Ok(())
                }
                Action::End(end) => return Some(end),
            };
            if let Err(e) = sent {
                return Some(ConnEnd::Lost(e.to_string()));
            }
        }
        None
    }

    /// Ends the link: politely when we chose to, briefly when it is broken anyway.
    async fn close(mut self, end: &ConnEnd) {
        if let Some(r) = self.renewal.take() {
            r.abort();
        }
        match end {
            ConnEnd::ErrorFrame(_) | ConnEnd::LinkDead | ConnEnd::Lost(_) => {
                close_quietly(&mut self.ws).await
            }
            ConnEnd::Stop | ConnEnd::Renew => disconnect(&mut self.ws).await,
        }
    }
}

/// `frames` in one write.
async fn send_frames(ws: &mut Ws, frames: Vec<Frame>) -> Result<(), WireError> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in &frames {
        ws.buffer(&stomp::encode(frame))?;
    }
    ws.flush().await
}

/// "Saveris limits connection attempts: no connection before 14:32." (local time).
fn rate_limit_sentence(until: jiff::Timestamp, clock: &dyn Clock) -> String {
    format!(
        "Saveris limits connection attempts: no connection before {}",
        hh_mm(until, clock)
    )
}

fn hh_mm(t: jiff::Timestamp, clock: &dyn Clock) -> String {
    t.to_zoned(clock.tz()).strftime("%H:%M").to_string()
}

/// The renewal's answer, once it is there (never, without a renewal).
async fn renewed(
    renewal: &mut Option<JoinHandle<Result<Token, AuthError>>>,
) -> Result<Token, String> {
    match renewal.as_mut() {
        Some(task) => match task.await {
            Ok(fresh) => fresh.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the token renewal did not finish ({e})")),
        },
        None => std::future::pending().await,
    }
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

impl From<LinkError> for ConnEnd {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::ErrorFrame(f) => ConnEnd::ErrorFrame(f),
            LinkError::Timeout => ConnEnd::Lost("no answer to CONNECT".into()),
            LinkError::Closed => ConnEnd::Lost("closed during the handshake".into()),
            LinkError::Connect(e) => ConnEnd::Lost(format!("cannot connect: {e}")),
            LinkError::Protocol(e) => ConnEnd::Lost(format!("protocol error: {e}")),
        }
    }
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
    // The account's feed is live: its state is the answer. A second connection would
    // count towards the user's 4 and towards the attempt limit.
    let key = gate::connection_key(&endpoint.ws_url, &account.username);
    if let Some(live) = gate::live_feed(&key) {
        return Ok(format!(
            "The feed of this account is live as {} (no second connection opened){}",
            account.username.trim(),
            live.last_message_at
                .map(|t| format!("; last message at {}", hh_mm(t, cfg.clock.as_ref())))
                .unwrap_or_default()
        ));
    }
    let host = gate::host_of(&endpoint.ws_url);
    if let Some(until) = gate::blocked_until(&host, cfg.clock.now()) {
        return Err(SaverisError::Refused(format!(
            "rate-limited until {}",
            hh_mm(until, cfg.clock.as_ref())
        )));
    }
    let auth = match &endpoint.token_source {
        None => StompAuth::login(account, passcode),
        Some(source) => StompAuth::Bearer(Login::new(&cfg, source.clone()).fetch().await?.id_token),
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
        Ok(mut link) => {
            let server = link.server.clone();
            disconnect(&mut link.ws).await;
            Ok(format!(
                "Connected to {server} as {}",
                account.username.trim()
            ))
        }
        Err(LinkError::ErrorFrame(f)) => Err(match classify_error(&f, cfg.default_wait) {
            ErrorAction::Auth(m) => SaverisError::Refused(format!("the login was refused ({m})")),
            ErrorAction::RateLimited { wait } => {
                let now = cfg.clock.now();
                let until = now
                    .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                    .unwrap_or(now);
                gate::block(&host, until);
                SaverisError::Refused(format!(
                    "rate-limited until {}",
                    hh_mm(until, cfg.clock.as_ref())
                ))
            }
            ErrorAction::TooManyConnections => {
                SaverisError::Refused(MAX_CONNECTIONS_SENTENCE.to_string())
            }
            ErrorAction::SubscriptionRefused { message, .. } | ErrorAction::Retry(message) => {
                SaverisError::Refused(message)
            }
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
