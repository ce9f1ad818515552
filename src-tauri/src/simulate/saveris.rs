//! A Saveris-compatible server on 127.0.0.1 for demo mode and tests.
//!
//! - `POST /v1/token`: Data API style login, `{"username","password"}` → `{"IdToken": JWT}`.
//!   The JWT is well formed but unsigned (`alg: none`): the server remembers what it issued,
//!   which is all the check it needs. Claims: `cognito:username`, `iat`, `exp`.
//! - `GET /web-socket`: STOMP 1.2 over WebSocket. CONNECT must carry `Authorization:
//!   Bearer <IdToken>`; destinations are `/queue/{username}/alarms|measurements|
//!   measurements-v2` of the token's user. Each destination is a durable queue that keeps
//!   messages while nobody listens; `ack:client-individual` with redelivery (new `ack` id,
//!   `redelivered:true`) of what a closed connection left unacknowledged; heart-beats both
//!   ways; at most 4 connections per user; the ERROR frames of PROTOCOLS.md on a knob.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::feeds::saveris::payload::Channel;
use crate::feeds::saveris::stomp::{self, Command, Decoder, Frame};

use super::dataapi::{Counts, DataApi, Fault, SimTenant};

/// The server name in CONNECTED, as the real service sends it.
pub const SERVER_NAME: &str = "ActiveMQ/5.17.2";
/// Parallel connections allowed per user.
pub const MAX_CONNECTIONS: usize = 4;

/// The ERROR frames Saveris sends (PROTOCOLS.md); the server closes after each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `message: invalid authorization`.
    InvalidAuthorization,
    /// `error-code: max-connections-reached`.
    MaxConnections,
    /// `error-code: rate-limit-exceeded`; the text carries the wait in ms (10 min when
    /// none is given: the vendor always names one).
    RateLimit { wait_ms: Option<u64> },
    /// `message: subscription refused: …` with a `queue` header (the bare queue name).
    SubscriptionRefused,
    /// `message: Unable to process the request.`
    Unable,
}

impl ErrorKind {
    /// The frame with the vendor's texts (AsyncAPI 1.3.0, SAVERIS-API.md §2.5): `message`
    /// header, the same text as body, `error-code` only for the two limits, `queue` (the
    /// bare queue name) only for a refused subscription.
    fn frame(&self, queue: &str) -> Frame {
        let text = match self {
            ErrorKind::InvalidAuthorization => "invalid authorization".to_string(),
            ErrorKind::MaxConnections => {
                "Maximum parallel connection limit exceeded. Please close other connections."
                    .to_string()
            }
            ErrorKind::RateLimit { wait_ms } => format!(
                "Too many connection attempts. Please wait {} ms before retrying.",
                wait_ms.unwrap_or(600_000)
            ),
            ErrorKind::SubscriptionRefused => format!(
                "subscription refused: missing required permission or license for queue: {queue}"
            ),
            ErrorKind::Unable => "Unable to process the request.".to_string(),
        };
        let mut f = Frame::new(Command::Error)
            .with_header("content-type", "text/plain")
            .with_header("message", text.clone());
        match self {
            ErrorKind::MaxConnections => f = f.with_header("error-code", "max-connections-reached"),
            ErrorKind::RateLimit { .. } => f = f.with_header("error-code", "rate-limit-exceeded"),
            ErrorKind::SubscriptionRefused => f = f.with_header("queue", queue),
            _ => {}
        }
        f.with_body(text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("could not bind the loopback server: {0}")]
    Bind(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
struct Msg {
    id: u64,
    body: String,
    redelivered: bool,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Msg>,
    /// ack id → (connection, message).
    inflight: HashMap<String, (u64, Msg)>,
    /// (connection, subscription id, wake-up).
    subscriber: Option<(u64, String, Arc<Notify>)>,
}

struct Issued {
    user: String,
    exp: Timestamp,
}

#[derive(Default)]
struct Inner {
    queues: HashMap<(String, Channel), Queue>,
    tokens: HashMap<String, Issued>,
    connections: HashMap<String, usize>,
    fail_next: VecDeque<ErrorKind>,
    next_msg: u64,
    /// Users whose password is temporary (the token endpoint gives no usable IdToken).
    temporary: std::collections::HashSet<String>,
    /// Queues whose SUBSCRIBE is refused (no licence or permission), by bare name.
    refused: std::collections::HashSet<(String, Channel)>,
}

struct Shared {
    users: HashMap<String, String>,
    inner: Mutex<Inner>,
    token_lifetime: Mutex<Duration>,
    heart_beat: Mutex<(u32, u32)>,
    /// Close connections whose token has expired (with `invalid authorization`).
    enforce_expiry: AtomicBool,
    tokens_issued: AtomicU64,
    /// Every request to the token endpoint, refused ones too.
    token_requests: AtomicU64,
    /// Every WebSocket upgrade (a connection opened), whatever came of it.
    opened: AtomicU64,
    connects: AtomicU64,
    acks: AtomicU64,
    next_conn: AtomicU64,
    /// Bumped by `drop_connections`: live connections end abruptly.
    kick: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    /// The Data API served beside the token endpoint (issue 20).
    data_api: Arc<DataApi>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the whole simulated server down.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running loopback Saveris.
pub struct SaverisServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SaverisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaverisServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SaverisServer {
    /// Starts on 127.0.0.1 with a free port; `users` are (username, password) pairs.
    pub async fn start(users: Vec<(String, String)>) -> Result<SaverisServer, SimulateError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        // The Data API checks bearer tokens against what the token endpoint issued; the
        // lookup holds a weak link so the server's state is not kept alive by itself.
        let slot: Arc<Mutex<std::sync::Weak<Shared>>> =
            Arc::new(Mutex::new(std::sync::Weak::new()));
        let lookup_slot = slot.clone();
        let data_api = DataApi::new(Arc::new(move |token: &str| {
            let shared = lookup_slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .upgrade()?;
            let inner = shared.lock();
            inner.tokens.get(token).map(|i| (i.user.clone(), i.exp))
        }));
        data_api.set_addr(addr);
        let shared = Arc::new(Shared {
            data_api: data_api.clone(),
            users: users.into_iter().collect(),
            inner: Mutex::new(Inner::default()),
            token_lifetime: Mutex::new(Duration::from_secs(3600)),
            heart_beat: Mutex::new((10_000, 10_000)),
            enforce_expiry: AtomicBool::new(true),
            tokens_issued: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            kick: watch::channel(0).0,
            shutdown: watch::channel(false).0,
        });
        let app = Router::new()
            .route("/v1/token", post(token))
            .route("/web-socket", get(upgrade))
            .with_state(shared.clone())
            .merge(data_api.routes());
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&shared);
        let mut stop = shared.shutdown.subscribe();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(SaverisServer { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/web-socket", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/v1/token", self.addr)
    }

    /// The Data API's base URL (the same origin as the token endpoint).
    pub fn data_api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the Data API serves: the tenant, its sensors, equipment and limits.
    pub fn set_data_api_tenant(&self, t: SimTenant) {
        self.shared.data_api.set_tenant(t);
    }

    /// Makes the Data API misbehave (`None`: behave again).
    pub fn set_data_api_fault(&self, f: Option<Fault>) {
        self.shared.data_api.set_fault(f);
    }

    /// `n` generated sensors are added to `/v3/devices/properties` (the 50 000-row case).
    pub fn set_data_api_extra_rows(&self, n: usize) {
        self.shared.data_api.set_extra_property_rows(n);
    }

    /// Polls answered `In Progress` before `Completed` (default 1).
    pub fn set_data_api_polls_in_progress(&self, n: u32) {
        self.shared.data_api.set_polls_in_progress(n);
    }

    /// Every token issued so far is answered 403 `EXPIRED_TOKEN` by the Data API.
    pub fn expire_data_api_tokens(&self) {
        let issued: Vec<String> = self.shared.lock().tokens.keys().cloned().collect();
        self.shared.data_api.revoke_tokens(issued);
    }

    /// Data API requests seen so far.
    pub fn data_api_counts(&self) -> Counts {
        self.shared.data_api.counts()
    }

    /// POSTs to one Data API resource (`v2/measurements`…).
    pub fn data_api_posts_to(&self, resource: &str) -> u64 {
        self.shared.data_api.posts_to(resource)
    }

    /// Queues a message for `username` on `channel` (`alarms`, `measurements`,
    /// `measurements-v2`); delivered at once to a subscriber, else kept. Unknown channel
    /// names go to `alarms`.
    pub fn publish(&self, username: &str, channel: &str, body: String) {
        let channel = Channel::parse(channel).unwrap_or(Channel::Alarms);
        let mut inner = self.shared.lock();
        inner.next_msg += 1;
        let msg = Msg {
            id: inner.next_msg,
            body,
            redelivered: false,
        };
        let q = inner
            .queues
            .entry((username.to_string(), channel))
            .or_default();
        q.ready.push_back(msg);
        if let Some((_, _, wake)) = &q.subscriber {
            wake.notify_one();
        }
    }

    /// Messages of a queue not yet acknowledged (waiting or in flight).
    pub fn unacked(&self, username: &str, channel: &str) -> usize {
        let channel = Channel::parse(channel).unwrap_or(Channel::Alarms);
        self.shared
            .lock()
            .queues
            .get(&(username.to_string(), channel))
            .map_or(0, |q| q.ready.len() + q.inflight.len())
    }

    /// The next CONNECT is answered with this ERROR frame (queued: several calls fail
    /// several connects).
    pub fn fail_next_connect_with(&self, kind: ErrorKind) {
        self.shared.lock().fail_next.push_back(kind);
    }

    /// Lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, d: Duration) {
        *self
            .shared
            .token_lifetime
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = d;
    }

    /// Whether a connection is closed once its token expires (default: yes).
    pub fn set_enforce_expiry(&self, on: bool) {
        self.shared.enforce_expiry.store(on, Ordering::SeqCst);
    }

    /// The heart-beat the server offers in CONNECTED (ms).
    pub fn set_heart_beat(&self, hb: (u32, u32)) {
        *self
            .shared
            .heart_beat
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = hb;
    }

    /// Ends every live connection abruptly (no ERROR, no close frame), like a crash.
    pub fn drop_connections(&self) {
        self.shared.kick.send_modify(|k| *k += 1);
    }

    /// `username`'s password is temporary: the token endpoint answers 200 with an empty
    /// `IdToken`, as the real gateway does when Cognito asks for a new password.
    pub fn set_temporary_password(&self, username: &str) {
        self.shared.lock().temporary.insert(username.to_string());
    }

    /// SUBSCRIBE to `username`'s `channel` is refused with the vendor's ERROR (licence or
    /// permission missing), and the connection closed.
    pub fn refuse_subscription(&self, username: &str, channel: &str) {
        if let Some(c) = Channel::parse(channel) {
            self.shared.lock().refused.insert((username.to_string(), c));
        }
    }

    /// Requests to the token endpoint, refused ones included.
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// WebSocket connections opened, whatever came of them.
    pub fn connections_opened(&self) -> u64 {
        self.shared.opened.load(Ordering::SeqCst)
    }

    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::SeqCst)
    }

    /// STOMP sessions accepted (CONNECTED sent).
    pub fn connects(&self) -> u64 {
        self.shared.connects.load(Ordering::SeqCst)
    }

    pub fn acks(&self) -> u64 {
        self.shared.acks.load(Ordering::SeqCst)
    }

    /// Live STOMP sessions of a user.
    pub fn connections(&self, username: &str) -> usize {
        self.shared
            .lock()
            .connections
            .get(username)
            .copied()
            .unwrap_or(0)
    }

    pub async fn stop(self) {
        let _ = self.shared.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// An unsigned JWT (`alg: none`) with the claims a Cognito IdToken has that matter here.
fn make_jwt(user: &str, iat: Timestamp, exp: Timestamp) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({
        "cognito:username": user,
        "iat": iat.as_second(),
        "exp": exp.as_second(),
        "token_use": "id",
        "jti": format!("{:032x}", rand::random::<u128>()),
    });
    format!("{header}.{}.", b.encode(claims.to_string()))
}

/// The Data API gateway's 400 template: Cognito's message, capitalised keys, no `__type`.
fn token_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"Status": "Error", "Message": message})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<Shared>>, body: Option<Json<Value>>) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let Some(Json(body)) = body else {
        return token_error("Invalid request body");
    };
    let user = body.get("username").and_then(Value::as_str).unwrap_or("");
    let pass = body.get("password").and_then(Value::as_str).unwrap_or("");
    match s.users.get(user) {
        None => return token_error("User does not exist."),
        Some(p) if p != pass => return token_error("Incorrect username or password."),
        Some(_) => {}
    }
    // A temporary password: Cognito answers with a challenge, which the gateway's success
    // template turns into HTTP 200 with no usable IdToken (SAVERIS-API.md §1.2).
    if s.lock().temporary.contains(user) {
        return Json(json!({"IdToken": ""})).into_response();
    }
    let lifetime = *s.token_lifetime.lock().unwrap_or_else(|e| e.into_inner());
    let now = Timestamp::now();
    let exp = now
        .checked_add(
            jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::from_hours(1)),
        )
        .unwrap_or(now);
    let jwt = make_jwt(user, now, exp);
    s.lock().tokens.insert(
        jwt.clone(),
        Issued {
            user: user.to_string(),
            exp,
        },
    );
    s.tokens_issued.fetch_add(1, Ordering::SeqCst);
    Json(json!({"IdToken": jwt})).into_response()
}

async fn upgrade(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.protocols(["v12.stomp", "v11.stomp", "v10.stomp"])
        .on_upgrade(move |socket| async move {
            s.opened.fetch_add(1, Ordering::SeqCst);
            let conn = s.next_conn.fetch_add(1, Ordering::SeqCst);
            let mut c = Conn {
                s: s.clone(),
                socket,
                id: conn,
                user: None,
                exp: None,
            };
            c.run().await;
            c.cleanup();
        })
}

struct Conn {
    s: Arc<Shared>,
    socket: WebSocket,
    id: u64,
    user: Option<String>,
    exp: Option<Timestamp>,
}

enum Next {
    Frame(Frame),
    Beat,
    Gone,
}

impl Conn {
    async fn send(&mut self, f: &Frame) -> bool {
        let text = String::from_utf8_lossy(&stomp::encode(f)).into_owned();
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    async fn fail(&mut self, kind: ErrorKind, queue: &str) {
        let _ = self.send(&kind.frame(queue)).await;
        let _ = self.socket.send(Message::Close(None)).await;
    }

    /// The next frame or heart-beat. As ActiveMQ 5.17's WebSocket transport, every text or
    /// binary message is exactly one STOMP frame (or a heart-beat EOL): a message holding
    /// more than one frame, or part of one, is answered with ERROR and the connection closes.
    async fn read(&mut self) -> Next {
        let data: Vec<u8> = match self.socket.recv().await {
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Next::Gone,
            Some(Ok(_)) => return Next::Beat,
        };
        match one_frame(&data) {
            Ok(Some(f)) => Next::Frame(f),
            Ok(None) => Next::Beat,
            Err(why) => {
                let error = Frame::new(Command::Error)
                    .with_header("content-type", "text/plain")
                    .with_header("message", why.clone())
                    .with_body(why);
                let _ = self.send(&error).await;
                let _ = self.socket.send(Message::Close(None)).await;
                Next::Gone
            }
        }
    }

    async fn run(&mut self) {
        let connect = match tokio::time::timeout(Duration::from_secs(10), self.read()).await {
            Ok(Next::Frame(f)) if matches!(f.command, Command::Connect | Command::Stomp) => f,
            _ => return,
        };
        let failure = self.s.lock().fail_next.pop_front();
        if let Some(kind) = failure {
            return self.fail(kind, "").await;
        }
        let bearer = connect
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("")
            .to_string();
        let now = Timestamp::now();
        let who = {
            let inner = self.s.lock();
            inner
                .tokens
                .get(&bearer)
                .filter(|t| t.exp > now)
                .map(|t| (t.user.clone(), t.exp))
        };
        let Some((user, exp)) = who else {
            return self.fail(ErrorKind::InvalidAuthorization, "").await;
        };
        let full = {
            let mut inner = self.s.lock();
            let n = inner.connections.entry(user.clone()).or_default();
            if *n >= MAX_CONNECTIONS {
                true
            } else {
                *n += 1;
                false
            }
        };
        if full {
            return self.fail(ErrorKind::MaxConnections, "").await;
        }
        self.user = Some(user.clone());
        self.exp = Some(exp);

        let (cx, cy) = parse_hb(connect.header("heart-beat"));
        let (sx, sy) = *self.s.heart_beat.lock().unwrap_or_else(|e| e.into_inner());
        // We send every max(sx, cy); we expect every max(sy, cx).
        let send_every = (sx != 0 && cy != 0).then(|| Duration::from_millis(u64::from(sx.max(cy))));
        let expect = (sy != 0 && cx != 0).then(|| Duration::from_millis(u64::from(sy.max(cx))));
        let connected = Frame::new(Command::Connected)
            .with_header("version", "1.2")
            .with_header("server", SERVER_NAME)
            .with_header("heart-beat", format!("{sx},{sy}"))
            .with_header(
                "session",
                format!("ID:saveris-sim-61616-1700000000000-1:{}", self.id),
            );
        if !self.send(&connected).await {
            return;
        }
        self.s.connects.fetch_add(1, Ordering::SeqCst);

        let wake = Arc::new(Notify::new());
        let mut kick = self.s.kick.subscribe();
        kick.borrow_and_update();
        let mut shutdown = self.s.shutdown.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_rx = tokio::time::Instant::now();
        let mut last_tx = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = kick.changed() => return,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                next = self.read() => {
                    last_rx = tokio::time::Instant::now();
                    match next {
                        Next::Gone => return,
                        Next::Beat => {}
                        Next::Frame(f) => {
                            if !self.on_frame(f, &user, &wake).await {
                                return;
                            }
                        }
                    }
                }
                _ = wake.notified() => {
                    if !self.deliver(&user).await {
                        return;
                    }
                    last_tx = tokio::time::Instant::now();
                }
                _ = tick.tick() => {
                    if let Some(e) = expect {
                        if last_rx.elapsed() > e * 2 {
                            return; // the client went silent: drop it, like ActiveMQ does
                        }
                    }
                    if let Some(every) = send_every {
                        if last_tx.elapsed() >= every {
                            if self.socket.send(Message::Text("\n".into())).await.is_err() {
                                return;
                            }
                            last_tx = tokio::time::Instant::now();
                        }
                    }
                    if self.s.enforce_expiry.load(Ordering::SeqCst) && Timestamp::now() >= exp {
                        return self.fail(ErrorKind::InvalidAuthorization, "").await;
                    }
                }
            }
        }
    }

    /// Handles one client frame; false ends the connection.
    async fn on_frame(&mut self, f: Frame, user: &str, wake: &Arc<Notify>) -> bool {
        if let Some(r) = f.header("receipt") {
            let receipt = Frame::new(Command::Receipt).with_header("receipt-id", r);
            if !matches!(f.command, Command::Disconnect) && !self.send(&receipt).await {
                return false;
            }
        }
        match f.command {
            Command::Subscribe => {
                let dest = f.header("destination").unwrap_or("").to_string();
                let id = f.header("id").unwrap_or("0").to_string();
                if self.subscribe(&dest, id, user, wake) {
                    true
                } else {
                    // The vendor's `queue` header holds the bare name ("measurements").
                    let queue = dest.rsplit('/').next().unwrap_or("").to_string();
                    self.fail(ErrorKind::SubscriptionRefused, &queue).await;
                    false
                }
            }
            Command::Unsubscribe => {
                self.unsubscribe(f.header("id").unwrap_or(""));
                true
            }
            Command::Ack => {
                self.ack(f.header("id").unwrap_or(""));
                true
            }
            Command::Disconnect => {
                if let Some(r) = f.header("receipt") {
                    let _ = self
                        .send(&Frame::new(Command::Receipt).with_header("receipt-id", r))
                        .await;
                }
                false
            }
            // NACK leaves the message unacknowledged until the connection ends; others ignored.
            _ => true,
        }
    }

    /// Makes this connection the subscriber of `dest`; false if it is not the user's own.
    fn subscribe(&self, dest: &str, id: String, user: &str, wake: &Arc<Notify>) -> bool {
        let parsed = dest
            .strip_prefix("/queue/")
            .and_then(|rest| rest.rsplit_once('/'))
            .and_then(|(u, c)| Some((u.to_string(), Channel::parse(c)?)));
        let Some((u, channel)) = parsed.filter(|(u, _)| u == user) else {
            return false;
        };
        let mut inner = self.s.lock();
        if inner.refused.contains(&(u.clone(), channel)) {
            return false;
        }
        let q = inner.queues.entry((u, channel)).or_default();
        q.subscriber = Some((self.id, id, wake.clone()));
        wake.notify_one();
        true
    }

    fn unsubscribe(&self, id: &str) {
        let mut inner = self.s.lock();
        for q in inner.queues.values_mut() {
            if q.subscriber
                .as_ref()
                .is_some_and(|(c, s, _)| *c == self.id && s == id)
            {
                q.subscriber = None;
            }
        }
    }

    fn ack(&self, id: &str) {
        let mut inner = self.s.lock();
        for q in inner.queues.values_mut() {
            if q.inflight.get(id).is_some_and(|(c, _)| *c == self.id) {
                q.inflight.remove(id);
                self.s.acks.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Sends everything ready on this connection's subscriptions.
    async fn deliver(&mut self, user: &str) -> bool {
        let frames: Vec<Frame> = {
            let mut inner = self.s.lock();
            let mut out = Vec::new();
            for ((u, channel), q) in inner.queues.iter_mut() {
                if u != user {
                    continue;
                }
                let Some((conn, sub, _)) = &q.subscriber else {
                    continue;
                };
                if *conn != self.id {
                    continue;
                }
                let sub = sub.clone();
                while let Some(m) = q.ready.pop_front() {
                    // ActiveMQ's ids: `ID:<host>-<port>-<start>-<n>:<conn>:<session>:
                    // <producer>:<seq>`, the same as `message-id` (the colons go out
                    // escaped as `\c`, as STOMP 1.2 wants in MESSAGE headers).
                    let ack = format!("ID:saveris-sim-61616-1700000000000-1:1:1:1:{}", m.id);
                    let mut f = Frame::new(Command::Message)
                        .with_header("destination", format!("/queue/{u}/{}", channel.as_str()))
                        .with_header("content-type", "application/json")
                        .with_header("subscription", sub.clone())
                        .with_header("message-id", ack.clone())
                        .with_header("ack", ack.clone())
                        .with_header("timestamp", Timestamp::now().as_millisecond().to_string())
                        .with_header("priority", "4")
                        .with_header("expires", "0");
                    if m.redelivered {
                        f = f.with_header("redelivered", "true");
                    }
                    out.push(f.with_body(m.body.clone().into_bytes()));
                    q.inflight.insert(ack, (self.id, m));
                }
            }
            out
        };
        for f in &frames {
            if !self.send(f).await {
                return false;
            }
        }
        true
    }

    /// Gives back what this connection held: unacked messages go to the front of their
    /// queue, flagged as redelivered.
    fn cleanup(&mut self) {
        let mut inner = self.s.lock();
        for q in inner.queues.values_mut() {
            if q.subscriber.as_ref().is_some_and(|(c, _, _)| *c == self.id) {
                q.subscriber = None;
            }
            let mine: Vec<String> = q
                .inflight
                .iter()
                .filter(|(_, (c, _))| *c == self.id)
                .map(|(k, _)| k.clone())
                .collect();
            let mut back: Vec<Msg> = mine
                .iter()
                .filter_map(|k| q.inflight.remove(k))
                .map(|(_, m)| m)
                .collect();
            back.sort_by_key(|m| std::cmp::Reverse(m.id));
            for mut m in back {
                m.redelivered = true;
                q.ready.push_front(m);
            }
        }
        if let Some(u) = &self.user {
            if let Some(n) = inner.connections.get_mut(u) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// The one STOMP frame of a WebSocket message: `Ok(None)` for a heart-beat (EOLs only),
/// `Err` (the ERROR text) when the message holds anything but exactly one whole frame.
fn one_frame(data: &[u8]) -> Result<Option<Frame>, String> {
    let eol = |b: &u8| *b == b'\n' || *b == b'\r';
    if data.iter().all(eol) {
        return Ok(None);
    }
    let mut decoder = Decoder::new();
    decoder.push(data);
    let frame = match decoder.next_frame() {
        Ok(Some(f)) => f,
        Ok(None) => return Err("Incomplete STOMP frame in a WebSocket message".into()),
        Err(e) => return Err(format!("Invalid STOMP frame: {e}")),
    };
    // STOMP allows EOLs after a frame's NUL; anything more is a second frame.
    let rest = decoder.pending();
    let tail = &data[data.len() - rest..];
    if !tail.iter().all(eol) {
        return Err("More than one STOMP frame in a WebSocket message".into());
    }
    Ok(Some(frame))
}

fn parse_hb(v: Option<&str>) -> (u32, u32) {
    let Some(v) = v else { return (0, 0) };
    let mut it = v.split(',').map(|p| p.trim().parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::saveris::auth;

    #[test]
    fn jwt_is_well_formed_with_exp_and_user() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let jwt = make_jwt("alice", now, Timestamp::from_second(1_700_000_060).unwrap());
        assert_eq!(jwt.split('.').count(), 3);
        let claims = auth::jwt_claims(&jwt).unwrap();
        assert_eq!(claims["cognito:username"], "alice");
        assert_eq!(auth::jwt_exp(&jwt).unwrap().as_second(), 1_700_000_060);
    }

    #[test]
    fn error_frames_carry_the_documented_codes() {
        assert_eq!(
            ErrorKind::MaxConnections.frame("").header("error-code"),
            Some("max-connections-reached")
        );
        let rl = ErrorKind::RateLimit {
            wait_ms: Some(1500),
        }
        .frame("");
        assert_eq!(rl.header("error-code"), Some("rate-limit-exceeded"));
        assert_eq!(
            rl.header("message"),
            Some("Too many connection attempts. Please wait 1500 ms before retrying.")
        );
        let refused = ErrorKind::SubscriptionRefused.frame("measurements-v2");
        assert_eq!(refused.header("queue"), Some("measurements-v2"));
        assert_eq!(
            refused.body_text(),
            "subscription refused: missing required permission or license for queue: measurements-v2"
        );
        assert_eq!(
            ErrorKind::InvalidAuthorization.frame("").header("message"),
            Some("invalid authorization")
        );
        assert_eq!(
            ErrorKind::InvalidAuthorization
                .frame("")
                .header("error-code"),
            None
        );
    }

    #[test]
    fn each_websocket_message_is_exactly_one_frame() {
        let sub = stomp::encode(
            &Frame::new(Command::Subscribe)
                .with_header("id", "sub-0")
                .with_header("destination", "/queue/a/alarms"),
        );
        assert_eq!(
            one_frame(&sub).unwrap().unwrap().command,
            Command::Subscribe
        );
        let mut with_eols = sub.clone();
        with_eols.extend_from_slice(b"\r\n\n");
        assert!(one_frame(&with_eols).unwrap().is_some());
        assert!(one_frame(b"\n").unwrap().is_none(), "a heart-beat");
        let mut two = sub.clone();
        two.extend_from_slice(&sub);
        assert_eq!(
            one_frame(&two).unwrap_err(),
            "More than one STOMP frame in a WebSocket message"
        );
        assert!(one_frame(&sub[..sub.len() - 3]).is_err(), "part of a frame");
    }
}
