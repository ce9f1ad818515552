//! A loopback server that behaves like ELEMENT IoT's WebSocket and REST API, for the
//! tests and the demo mode (axum on `127.0.0.1`, port 0 unless restarted on its old one).
//!
//! # What is documented and what is guessed
//!
//! Documented by the vendor (seed `002_…`, the ELEMENT WebSocket API page, and the REST
//! listing format in PROTOCOLS.md):
//! - socket paths `/api/v1/{devices|tags|streams}/:id/{packets|readings}/socket` and
//!   `/api/v1/{packets|readings}/socket` (mandate), key in `?auth=`;
//! - permissions of the key apply; mandate sockets only for `read_only` and `admin` keys;
//! - server → client only; a connection is closed after 60 s without a client Ping frame;
//!   the text `ping` is answered with `pong`;
//! - `after=` replays everything since that time earliest first, then goes live;
//! - `preload=` with `device`, `device.fields`, `device.interfaces` (packets and readings)
//!   and `packet`, `packet.interface` (readings);
//! - the reading and packet fields;
//! - REST `GET /api/v1/devices`, `/api/v1/tags`, `/api/v1/tags/:id/devices` answering
//!   `{"ok", "status", "body", "retrieve_after_id"}`, paged with `limit` (≤ 100) and
//!   `retrieve_after`.
//!
//! Guessed (no public source says; the client is written to tolerate the alternatives):
//! - framing: every text frame is a JSON array of `{"event": "reading_added" |
//!   "packet_added", "body": {…}}` (seen in a third-party client); replays are batched
//!   several events per frame ([`ElementServerConfig::replay_batch`]);
//! - an unknown key gets HTTP 401 on the upgrade, a key without the permission 403, an
//!   unknown device/tag/stream 404;
//! - `after` is inclusive (`inserted_at >= after`), so the newest stored event comes again
//!   and the client must drop it by id;
//! - the text `ping` also counts as activity for the idle timeout; the idle close is a
//!   close frame 1000 "idle timeout";
//! - `inserted_at` has microseconds and a `Z`; ids are UUID-shaped strings;
//! - a slow socket that falls too far behind is closed (the client replays with `after`);
//! - `retrieve_after_id` is the last id of every non-empty page (null on an empty page),
//!   so a client stops at an empty page;
//! - a `device`-role key may read only its own device (socket and listings).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRole {
    Admin,
    ReadOnly,
    /// A key bound to one device: its sockets and listings only.
    Device(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ElementServerConfig {
    /// Key → role.
    pub api_keys: Vec<(String, KeyRole)>,
    /// Close a socket after this long without a client Ping (or text `ping`).
    pub idle_timeout: Duration,
    pub devices: Vec<SimDevice>,
    /// Tag id → name.
    pub tags: Vec<(String, String)>,
    /// Stream id → device ids.
    pub streams: Vec<(String, Vec<String>)>,
    /// Events per frame during an `after=` replay.
    pub replay_batch: usize,
}

impl Default for ElementServerConfig {
    fn default() -> Self {
        ElementServerConfig {
            api_keys: Vec::new(),
            idle_timeout: Duration::from_secs(60),
            devices: Vec::new(),
            tags: Vec::new(),
            streams: Vec::new(),
            replay_batch: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Readings,
    Packets,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        match s {
            "readings" => Some(Kind::Readings),
            "packets" => Some(Kind::Packets),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Device(String),
    Tag(String),
    Stream(String),
    Mandate,
}

/// One stored reading or packet.
#[derive(Debug)]
struct Stored {
    seq: u64,
    kind: Kind,
    device_id: String,
    inserted_at: Timestamp,
    body: Value,
}

/// A socket request as the server saw it (without the key), for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRequest {
    pub path: String,
    pub after: Option<String>,
    pub preload: Option<String>,
    /// The upgrade was accepted.
    pub accepted: bool,
}

struct Data {
    keys: HashMap<String, KeyRole>,
    devices: Vec<SimDevice>,
    tags: Vec<(String, String)>,
    streams: HashMap<String, Vec<String>>,
    events: Vec<Arc<Stored>>,
    next_seq: u64,
    last_inserted: Timestamp,
    requests: Vec<SocketRequest>,
}

struct Shared {
    data: Mutex<Data>,
    live: broadcast::Sender<Arc<Stored>>,
    kill: watch::Sender<u64>,
    freeze: broadcast::Sender<()>,
    /// Bumped by [`ElementServer::freeze_sockets`]; sockets opened before a bump freeze.
    freeze_gen: AtomicU64,
    idle_timeout: Mutex<Duration>,
    replay_batch: usize,
    pings: AtomicU64,
    open: AtomicU64,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        // A panic while holding the lock is a bug in a test; keep serving the data.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running server.
pub struct ElementServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    serve: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ElementServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ElementServer {
    /// Starts on `127.0.0.1`, a free port.
    pub async fn start(cfg: ElementServerConfig) -> Result<ElementServer, SimError> {
        let (live, _) = broadcast::channel(16_384);
        let (kill, _) = watch::channel(0);
        let (freeze, _) = broadcast::channel(4);
        let data = Data {
            keys: cfg.api_keys.into_iter().collect(),
            devices: cfg.devices,
            tags: cfg.tags,
            streams: cfg.streams.into_iter().collect(),
            events: Vec::new(),
            next_seq: 1,
            last_inserted: Timestamp::UNIX_EPOCH,
            requests: Vec::new(),
        };
        let shared = Arc::new(Shared {
            data: Mutex::new(data),
            live,
            kill,
            freeze,
            freeze_gen: AtomicU64::new(0),
            idle_timeout: Mutex::new(cfg.idle_timeout),
            replay_batch: cfg.replay_batch.max(1),
            pings: AtomicU64::new(0),
            open: AtomicU64::new(0),
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, task) = serve(shared.clone(), addr).await?;
        Ok(ElementServer {
            shared,
            addr,
            serve: Mutex::new(Some(task)),
        })
    }

    /// `http://127.0.0.1:PORT`: what an account's base URL is set to.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn add_device(&self, id: &str, name: &str, tags: &[&str]) {
        let mut d = self.shared.data();
        d.devices.retain(|x| x.id != id);
        d.devices.push(SimDevice {
            id: id.into(),
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        });
        for t in tags {
            if !d.tags.iter().any(|(id, _)| id == t) {
                d.tags.push((t.to_string(), format!("Tag {t}")));
            }
        }
    }

    pub fn add_stream(&self, id: &str, devices: &[&str]) {
        self.shared
            .data()
            .streams
            .insert(id.into(), devices.iter().map(|d| d.to_string()).collect());
    }

    pub fn add_key(&self, key: &str, role: KeyRole) {
        self.shared.data().keys.insert(key.into(), role);
    }

    /// Stores a reading now and sends it to the matching live sockets. Returns its id.
    pub fn push_reading(&self, device_id: &str, data: Value) -> String {
        self.store(Kind::Readings, device_id, data, None)
    }

    /// Stores a packet now and sends it live. Returns its id.
    pub fn push_packet(&self, device_id: &str, payload_hex: &str) -> String {
        self.store(Kind::Packets, device_id, json!(payload_hex), None)
    }

    /// Stores a reading in the past (history for `after=` catch-up); not sent live.
    pub fn insert_reading_at(
        &self,
        device_id: &str,
        data: Value,
        inserted_at: Timestamp,
    ) -> String {
        self.store(Kind::Readings, device_id, data, Some(inserted_at))
    }

    fn store(&self, kind: Kind, device_id: &str, content: Value, at: Option<Timestamp>) -> String {
        let mut d = self.shared.data();
        let seq = d.next_seq;
        d.next_seq += 1;
        let inserted_at = match at {
            Some(t) => t,
            None => {
                // Strictly increasing, at microsecond precision like the real timestamps.
                let now = Timestamp::now()
                    .round(jiff::Unit::Microsecond)
                    .unwrap_or_else(|_| Timestamp::now());
                let next = d.last_inserted + jiff::SignedDuration::from_micros(1);
                let t = if now > next { now } else { next };
                d.last_inserted = t;
                t
            }
        };
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8000-{:012x}",
            seq.wrapping_mul(2_654_435_761) as u32,
            seq & 0xffff,
            seq & 0xfff,
            seq
        );
        let stamp = format_time(inserted_at);
        let body = match kind {
            Kind::Readings => json!({
                "id": id, "device_id": device_id, "packet_id": format!("p-{seq}"), "parser_id": "sim-parser",
                "data": content, "inserted_at": stamp, "measured_at": stamp, "location": null,
            }),
            Kind::Packets => json!({
                "id": id, "device_id": device_id, "interface_id": "sim-interface", "transceived_at": stamp,
                "inserted_at": stamp, "payload_encoding": "binary", "payload": content, "packet_type": "up",
                "meta": {"frame_port": 1},
            }),
        };
        let ev = Arc::new(Stored {
            seq,
            kind,
            device_id: device_id.into(),
            inserted_at,
            body,
        });
        // Keep history sorted by insertion time (backdated inserts land in place).
        let pos = d
            .events
            .partition_point(|e| (e.inserted_at, e.seq) <= (inserted_at, seq));
        d.events.insert(pos, ev.clone());
        if at.is_none() {
            // Sent while the lock is held: a socket snapshotting history under the same
            // lock sees every event either in its snapshot or on its live channel.
            let _ = self.shared.live.send(ev);
        }
        id
    }

    /// Socket requests seen so far (paths without the key), oldest first.
    pub fn requests(&self) -> Vec<SocketRequest> {
        self.shared.data().requests.clone()
    }

    /// WebSocket Ping frames and text `ping`s received from clients.
    pub fn pings_received(&self) -> u64 {
        self.shared.pings.load(Ordering::Relaxed)
    }

    /// Sockets open right now.
    pub fn open_sockets(&self) -> u64 {
        self.shared.open.load(Ordering::Relaxed)
    }

    pub fn set_idle_timeout(&self, d: Duration) {
        *self
            .shared
            .idle_timeout
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Drops every open socket without a close frame (like a crashed server).
    pub fn kill_sockets(&self) {
        self.shared.kill.send_modify(|g| *g += 1);
    }

    /// The sockets open now stop answering anything (a half-open link); new ones work.
    pub fn freeze_sockets(&self) {
        self.shared.freeze_gen.fetch_add(1, Ordering::SeqCst);
        let _ = self.shared.freeze.send(());
    }

    /// Stops listening and drops every socket; the data stays for [`Self::restart`].
    pub async fn stop_listening(&self) {
        let task = self.serve.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
        self.kill_sockets();
    }

    /// Listens again on the same port, with the same data.
    pub async fn restart(&self) -> Result<(), SimError> {
        self.stop_listening().await;
        let (_, task) = serve(self.shared.clone(), self.addr).await?;
        *self.serve.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    pub async fn stop(self) {
        self.stop_listening().await;
    }

    /// Pushes a plausible reading for each device every `every` (demo mode). Abort the
    /// handle to end it.
    pub fn start_demo_traffic(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let server = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let devices: Vec<String> = server
                    .shared
                    .data()
                    .devices
                    .iter()
                    .map(|d| d.id.clone())
                    .collect();
                for (i, d) in devices.iter().enumerate() {
                    let wave = ((n as f64 / 6.0) + i as f64).sin();
                    server.push_reading(d, json!({"temperature": 4.0 + 3.0 * wave, "humidity": 55 + (n % 7) as i64, "battery": 3.6}));
                }
            }
        })
    }
}

/// ELEMENT's time format: microseconds and `Z`.
fn format_time(t: Timestamp) -> String {
    format!("{t:.6}")
}

async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> Result<(SocketAddr, JoinHandle<()>), SimError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let app = Router::new()
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/tags", get(list_tags))
        .route("/api/v1/tags/{id}/devices", get(list_tag_devices))
        .route("/api/v1/{kind}/socket", get(mandate_socket))
        .route("/api/v1/{scope}/{id}/{kind}/socket", get(scoped_socket))
        .with_state(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "ELEMENT simulator stopped");
        }
    });
    Ok((local, task))
}

type Q = Query<HashMap<String, String>>;

fn key_of(q: &HashMap<String, String>, headers: &HeaderMap) -> Option<String> {
    if let Some(k) = q.get("auth") {
        return Some(k.clone());
    }
    let h = headers.get("authorization")?.to_str().ok()?;
    Some(h.strip_prefix("Bearer ").unwrap_or(h).to_string())
}

fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        Json(json!({"ok": false, "status": status.as_u16(), "error": msg})),
    )
        .into_response()
}

async fn mandate_socket(
    State(s): State<Arc<Shared>>,
    Path(kind): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let path = format!("/api/v1/{kind}/socket");
    open_socket(s, Scope::Mandate, &kind, q, headers, ws, path)
}

async fn scoped_socket(
    State(s): State<Arc<Shared>>,
    Path((scope, id, kind)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let path = format!("/api/v1/{scope}/{id}/{kind}/socket");
    let scope = match scope.as_str() {
        "devices" => Scope::Device(id),
        "tags" => Scope::Tag(id),
        "streams" => Scope::Stream(id),
        _ => return error(StatusCode::NOT_FOUND, "no such socket"),
    };
    open_socket(s, scope, &kind, q, headers, ws, path)
}

fn open_socket(
    s: Arc<Shared>,
    scope: Scope,
    kind: &str,
    q: HashMap<String, String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
    path: String,
) -> Response {
    let after = q.get("after").cloned();
    let preload = q.get("preload").cloned();
    let mut d = s.data();
    let mut req = SocketRequest {
        path,
        after: after.clone(),
        preload: preload.clone(),
        accepted: false,
    };
    let verdict = (|| {
        let Some(kind) = Kind::parse(kind) else {
            return Err((StatusCode::NOT_FOUND, "no such socket"));
        };
        let role = key_of(&q, &headers).and_then(|k| d.keys.get(&k).cloned());
        let Some(role) = role else {
            return Err((StatusCode::UNAUTHORIZED, "invalid api key"));
        };
        let known = match &scope {
            Scope::Device(id) => d.devices.iter().any(|x| &x.id == id),
            Scope::Tag(id) => d.tags.iter().any(|(t, _)| t == id),
            Scope::Stream(id) => d.streams.contains_key(id),
            Scope::Mandate => true,
        };
        let allowed = match (&role, &scope) {
            (KeyRole::Admin | KeyRole::ReadOnly, _) => true,
            (KeyRole::Device(own), Scope::Device(id)) => own == id,
            (KeyRole::Device(_), _) => false,
        };
        if !allowed {
            return Err((StatusCode::FORBIDDEN, "api key lacks permission"));
        }
        if !known {
            return Err((StatusCode::NOT_FOUND, "not found"));
        }
        let after = match after.as_deref().map(parse_after) {
            Some(None) => return Err((StatusCode::BAD_REQUEST, "invalid after")),
            Some(Some(t)) => Some(t),
            None => None,
        };
        Ok((kind, after))
    })();
    let (kind, after) = match verdict {
        Ok(v) => v,
        Err((status, msg)) => {
            d.requests.push(req);
            return error(status, msg);
        }
    };
    req.accepted = true;
    d.requests.push(req);
    drop(d);
    let preload: Vec<String> = preload
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    ws.on_upgrade(move |socket| async move {
        s.open.fetch_add(1, Ordering::Relaxed);
        run_socket(s.clone(), socket, scope, kind, after, preload).await;
        s.open.fetch_sub(1, Ordering::Relaxed);
    })
}

fn parse_after(s: &str) -> Option<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    let civil: jiff::civil::DateTime = s.parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Whether `ev` belongs on a socket of `scope`, judged with the data as it is now.
fn matches(d: &Data, scope: &Scope, kind: Kind, ev: &Stored) -> bool {
    if ev.kind != kind {
        return false;
    }
    match scope {
        Scope::Mandate => true,
        Scope::Device(id) => &ev.device_id == id,
        Scope::Tag(t) => d
            .devices
            .iter()
            .any(|x| x.id == ev.device_id && x.tags.iter().any(|y| y == t)),
        Scope::Stream(s) => d
            .streams
            .get(s)
            .is_some_and(|ds| ds.iter().any(|x| x == &ev.device_id)),
    }
}

/// The event as sent, with what `preload` asked for.
fn body_for(d: &Data, ev: &Stored, preload: &[String]) -> Value {
    let mut body = ev.body.clone();
    let wants = |p: &str| {
        preload
            .iter()
            .any(|x| x == p || x.starts_with(&format!("{p}.")))
    };
    if wants("device") {
        if let Some(dev) = d.devices.iter().find(|x| x.id == ev.device_id) {
            let mut dv = json!({"id": dev.id, "name": dev.name, "tags": dev.tags.iter().map(|t| json!({"id": t})).collect::<Vec<_>>()});
            if preload.iter().any(|p| p == "device.fields") {
                dv["fields"] = json!({});
            }
            if preload.iter().any(|p| p == "device.interfaces") {
                dv["interfaces"] = json!([{"id": "sim-interface", "name": "LoRaWAN"}]);
            }
            body["device"] = dv;
        }
    }
    if ev.kind == Kind::Readings && wants("packet") {
        let mut pk =
            json!({"id": body["packet_id"], "device_id": ev.device_id, "packet_type": "up"});
        if preload.iter().any(|p| p == "packet.interface") {
            pk["interface"] = json!({"id": "sim-interface", "name": "LoRaWAN"});
        }
        body["packet"] = pk;
    }
    body
}

fn frame(d: &Data, events: &[Arc<Stored>], preload: &[String]) -> String {
    let items: Vec<Value> = events
        .iter()
        .map(|e| {
            let event = match e.kind {
                Kind::Readings => "reading_added",
                Kind::Packets => "packet_added",
            };
            json!({"event": event, "body": body_for(d, e, preload)})
        })
        .collect();
    Value::Array(items).to_string()
}

async fn run_socket(
    s: Arc<Shared>,
    mut socket: WebSocket,
    scope: Scope,
    kind: Kind,
    after: Option<Timestamp>,
    preload: Vec<String>,
) {
    let mut kill = s.kill.subscribe();
    kill.mark_unchanged();
    let mut freeze = s.freeze.subscribe();
    let born = s.freeze_gen.load(Ordering::SeqCst);
    let frozen = |s: &Shared| s.freeze_gen.load(Ordering::SeqCst) != born;
    // Subscribe and snapshot under one lock: nothing falls between replay and live.
    let (mut live, replay_frames, high) = {
        let d = s.data();
        let live = s.live.subscribe();
        let high = d.next_seq;
        let mut frames = Vec::new();
        if let Some(after) = after {
            let old: Vec<Arc<Stored>> = d
                .events
                .iter()
                .filter(|e| e.inserted_at >= after && matches(&d, &scope, kind, e))
                .cloned()
                .collect();
            for chunk in old.chunks(s.replay_batch) {
                frames.push(frame(&d, chunk, &preload));
            }
        }
        (live, frames, high)
    };
    for f in replay_frames {
        if socket.send(Message::Text(f.into())).await.is_err() {
            return;
        }
    }
    let idle = || *s.idle_timeout.lock().unwrap_or_else(|p| p.into_inner());
    let idle_close = tokio::time::sleep(idle());
    tokio::pin!(idle_close);
    loop {
        if frozen(&s) {
            // Half-open: hold the TCP connection, answer nothing, until killed.
            let _ = tokio::time::timeout(Duration::from_secs(300), kill.changed()).await;
            return;
        }
        tokio::select! {
            _ = kill.changed() => return,
            _ = freeze.recv() => continue,
            _ = &mut idle_close => {
                let close = CloseFrame { code: 1000, reason: "idle timeout".into() };
                let _ = socket.send(Message::Close(Some(close))).await;
                return;
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Ping(_))) => {
                    s.pings.fetch_add(1, Ordering::Relaxed);
                    idle_close.as_mut().reset(tokio::time::Instant::now() + idle());
                }
                Some(Ok(Message::Text(t))) if t.as_str().trim() == "ping" => {
                    s.pings.fetch_add(1, Ordering::Relaxed);
                    idle_close.as_mut().reset(tokio::time::Instant::now() + idle());
                    if socket.send(Message::Text("pong".into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            ev = live.recv() => match ev {
                Ok(ev) => {
                    if ev.seq < high || frozen(&s) {
                        continue;
                    }
                    let text = {
                        let d = s.data();
                        if !matches(&d, &scope, kind, &ev) {
                            continue;
                        }
                        frame(&d, std::slice::from_ref(&ev), &preload)
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind: close; the client comes back with `after`.
                    let close = CloseFrame { code: 1013, reason: "too slow".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct Paging {
    auth: Option<String>,
    limit: Option<usize>,
    retrieve_after: Option<String>,
}

fn page(items: Vec<Value>, p: &Paging) -> Response {
    let limit = p.limit.unwrap_or(100).clamp(1, 100);
    let start = match &p.retrieve_after {
        Some(a) => items
            .iter()
            .position(|i| i["id"].as_str() == Some(a.as_str()))
            .map(|i| i + 1)
            .unwrap_or(items.len()),
        None => 0,
    };
    let body: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let next = body.last().map(|l| l["id"].clone()).unwrap_or(Value::Null);
    Json(json!({"ok": true, "status": 200, "body": body, "retrieve_after_id": next}))
        .into_response()
}

fn rest_role(d: &Data, p: &Paging, headers: &HeaderMap) -> Option<KeyRole> {
    let key = match &p.auth {
        Some(k) => Some(k.clone()),
        None => headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .map(|h| h.strip_prefix("Bearer ").unwrap_or(h).to_string()),
    }?;
    d.keys.get(&key).cloned()
}

fn device_json(dev: &SimDevice) -> Value {
    json!({"id": dev.id, "name": dev.name, "tags": dev.tags.iter().map(|t| json!({"id": t})).collect::<Vec<_>>(), "profile": null})
}

fn sorted_devices<'a>(d: &'a Data, role: &KeyRole) -> Vec<&'a SimDevice> {
    let mut v: Vec<&SimDevice> = d
        .devices
        .iter()
        .filter(|x| match role {
            KeyRole::Device(own) => &x.id == own,
            _ => true,
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

async fn list_devices(
    State(s): State<Arc<Shared>>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    let d = s.data();
    let Some(role) = rest_role(&d, &p, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "invalid api key");
    };
    let items = sorted_devices(&d, &role)
        .into_iter()
        .map(device_json)
        .collect();
    page(items, &p)
}

async fn list_tags(
    State(s): State<Arc<Shared>>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    let d = s.data();
    if rest_role(&d, &p, &headers).is_none() {
        return error(StatusCode::UNAUTHORIZED, "invalid api key");
    }
    let mut tags = d.tags.clone();
    tags.sort();
    page(
        tags.into_iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect(),
        &p,
    )
}

async fn list_tag_devices(
    State(s): State<Arc<Shared>>,
    Path(tag): Path<String>,
    Query(p): Query<Paging>,
    headers: HeaderMap,
) -> Response {
    let d = s.data();
    let Some(role) = rest_role(&d, &p, &headers) else {
        return error(StatusCode::UNAUTHORIZED, "invalid api key");
    };
    if !d.tags.iter().any(|(t, _)| t == &tag) {
        return error(StatusCode::NOT_FOUND, "tag not found");
    }
    let items = sorted_devices(&d, &role)
        .into_iter()
        .filter(|x| x.tags.contains(&tag))
        .map(device_json)
        .collect();
    page(items, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_unknown_keys_and_lists_devices() {
        let srv = ElementServer::start(ElementServerConfig {
            api_keys: vec![("k".into(), KeyRole::Admin)],
            ..Default::default()
        })
        .await
        .unwrap();
        srv.add_device("d1", "One", &["t"]);
        let c = reqwest::Client::new();
        let r = c
            .get(format!("{}/api/v1/devices?auth=bad", srv.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let v: Value = c
            .get(format!("{}/api/v1/devices?auth=k", srv.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["body"][0]["name"], "One");
        srv.stop().await;
    }

    #[test]
    fn times_have_microseconds() {
        let t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(format_time(t), "2024-01-01T00:00:00.000000Z");
    }
}
