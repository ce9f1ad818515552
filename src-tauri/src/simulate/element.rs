//! A loopback server that behaves like ELEMENT IoT's WebSocket and REST API, for the
//! tests and the demo mode (axum on `127.0.0.1`, port 0 unless restarted on its old one).
//!
//! The data it sends is written for this project in the shapes that public clients of
//! ELEMENT show (see `ELEMENT-API.md` of the design notes and the README's ELEMENT section);
//! none of it is copied from a real instance.
//!
//! # What is documented, what public clients show, and what is guessed
//!
//! Documented by the vendor (seed `002_…`, the ELEMENT WebSocket and REST pages):
//! - socket paths `/api/v1/{devices|tags|streams}/:id/{packets|readings}/socket` and
//!   `/api/v1/{packets|readings}/socket` (mandate), key in `?auth=`;
//! - permissions of the key apply; mandate sockets only for `read_only` and `admin` keys;
//! - server → client only; a connection is closed after 60 s without a client Ping frame;
//!   the text `ping` is answered with `pong`;
//! - `after=` replays everything since that time earliest first, then goes live;
//! - `preload=`: `device`, `device.fields`, `device.interfaces` for packets and readings,
//!   plus `packet`, `packet.interface` for readings;
//! - REST paging: `limit` (default 10, at most 100), `retrieve_after=<id>`, `sort`
//!   (default `inserted_at`) and `sort_direction` (default descending); 429 with
//!   `x-ratelimit-limit`, `x-ratelimit-reset` (ms) and `x-ratelimit-remaining`.
//!
//! Shown by public clients and their recorded REST answers:
//! - every text frame is a JSON array of `{"event": "reading_added" | "packet_added",
//!   "body": {…}}`; an `after=` replay puts several events in one frame
//!   ([`ElementServerConfig::replay_batch`]);
//! - `data` keys arrive in alphabetical order and hold non-measurements as numbers
//!   (`device_id`, `protocol_version`); REST readings carry `"meta": null`, socket readings
//!   no `meta`; `measured_at` is a little before `inserted_at`;
//! - times have microseconds and `Z`, some `+00:00` without a fraction (here every fourth
//!   event);
//! - packets carry LoRaWAN `meta` with `gateway_stats`, a hex `payload`, and on the socket an
//!   `interface` whose `opts` hold the device's LoRaWAN keys (fake ones here, see
//!   [`ElementServer::planted_secrets`]); single devices carry `interfaces`,
//!   `profile_data` and `fields`; tags are folder objects;
//! - the paging envelope `{"body", "ok", "retrieve_after_id", "status"}` with
//!   `retrieve_after_id` absent (not null) on the last page and on an empty answer.
//!
//! Guessed (no public source says; the client is written to tolerate the alternatives):
//! - the upgrade of a socket is refused with an HTTP status and a body
//!   `{"error": "…", "ok": false}` (the only recorded error body, from the REST stream):
//!   401 unknown key, 403 no permission, 404 unknown id, 400 a bad `after`/`preload`;
//! - `after` is inclusive (`inserted_at >= after`), so the newest stored event comes again
//!   and the client must drop it by id;
//! - the text `ping` also counts as activity for the idle timeout; the idle close is a
//!   close frame 1000 "idle timeout";
//! - a slow socket that falls too far behind is closed (the client replays with `after`);
//! - a `device`-role key may read only its own device, a tag-limited key only the devices
//!   of its tags (never the mandate sockets).

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
    /// A group-scoped key: the sockets and listings of these tags and their devices; never
    /// the mandate sockets (the vendor allows those to `read_only` and `admin` keys only).
    Tags(Vec<String>),
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

    /// The preloads the vendor lists for this kind of socket.
    fn preloads(self) -> &'static [&'static str] {
        match self {
            Kind::Packets => &["device", "device.fields", "device.interfaces"],
            Kind::Readings => &[
                "device",
                "device.fields",
                "device.interfaces",
                "packet",
                "packet.interface",
            ],
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
    /// The body as the socket sends it (REST readings add `"meta": null`, REST packets drop
    /// the `interface`).
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
    rest_requests: Vec<RestRequest>,
    /// The next this many REST requests are answered 429, asking to wait `rate_reset`.
    rate_limited: u32,
    rate_reset: Duration,
    /// When the server started: devices and tags are "created" from here on.
    born: Timestamp,
}

/// A REST request as the server saw it (path and query without the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The status answered.
    pub status: u16,
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
            rest_requests: Vec::new(),
            rate_limited: 0,
            rate_reset: Duration::from_secs(1),
            born: Timestamp::now(),
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
    /// `data` is sent with its keys in alphabetical order, as ELEMENT does.
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

    /// The next `n` REST requests are answered 429 with `x-ratelimit-reset` = `reset`.
    pub fn rate_limit_next(&self, n: u32, reset: Duration) {
        let mut d = self.shared.data();
        d.rate_limited = n;
        d.rate_reset = reset;
    }

    /// REST requests seen so far, oldest first.
    pub fn rest_requests(&self) -> Vec<RestRequest> {
        self.shared.data().rest_requests.clone()
    }

    /// The fake LoRaWAN secrets this server puts into interfaces (packets, preloads, device
    /// answers), for tests that check none of them is stored or shown anywhere.
    pub fn planted_secrets(&self) -> Vec<String> {
        let d = self.shared.data();
        d.devices
            .iter()
            .flat_map(|dev| lorawan_secrets(&dev.id).into_iter().map(|(_, v)| v))
            .collect()
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
        let id = uuid(seq, 0x4e1e);
        // Every fourth event shows its times as `+00:00` without a fraction, as some real
        // answers do; the stored time keeps its microseconds.
        let plain = seq % 4 == 3;
        let stamp = format_time(inserted_at, plain);
        let body = match kind {
            Kind::Readings => {
                // Measured by the device ~80 ms before the server stored it.
                let measured = inserted_at - jiff::SignedDuration::from_micros(80_123);
                json!({
                    "data": sorted(content),
                    "device_id": device_id,
                    "id": id,
                    "inserted_at": stamp,
                    "location": null,
                    "measured_at": format_time(measured, plain),
                    "packet_id": uuid(seq, 0x9ac4),
                    "parser_id": PARSER_ID,
                })
            }
            Kind::Packets => {
                let transceived = inserted_at - jiff::SignedDuration::from_micros(41_517);
                json!({
                    "device_id": device_id,
                    "driver": null,
                    "id": id,
                    "inserted_at": stamp,
                    "interface": interface_json(device_id),
                    "interface_id": interface_id(device_id),
                    "is_meta": false,
                    "meta": lorawan_meta(seq, &id),
                    "packet_type": "up",
                    "payload": content,
                    "payload_encoding": "binary",
                    "skip_parsers": false,
                    "transceived_at": format_time(transceived, plain),
                })
            }
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
                    // The shape of a real climate sensor's reading: the battery and the
                    // parser's bookkeeping numbers beside the measurements.
                    server.push_reading(
                        d,
                        json!({
                            "air_humidity": 55.0 + (n % 7) as f64 + 0.25 * wave,
                            "air_temperature": ((4.0 + 3.0 * wave) * 100.0).round() / 100.0,
                            "battery_voltage": 3.6 - 0.001 * (n % 5) as f64,
                            "device_id": 21_600 + i as i64,
                            "protocol_version": 2,
                        }),
                    );
                }
            }
        })
    }
}

/// ELEMENT's usual time format, microseconds and `Z`; or (`plain`) `+00:00` without a
/// fraction, as some real answers have it.
fn format_time(t: Timestamp, plain: bool) -> String {
    if plain {
        Timestamp::from_second(t.as_second())
            .unwrap_or(t)
            .strftime("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    } else {
        format!("{t:.6}")
    }
}

/// The one parser the simulated devices use (its `parser_id`; issue 20 keys field units by it).
pub const PARSER_ID: &str = "3f0c8a52-6d21-4b7e-9a11-5e0d2c7b4a90";
const MANDATE_ID: &str = "b7d41c06-2f3e-4a58-8c9d-1e6f0a2b3c4d";

/// A UUID-shaped id for a sequence number (`salt` keeps kinds apart).
fn uuid(seq: u64, salt: u16) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        seq.wrapping_mul(2_654_435_761) as u32,
        salt,
        seq & 0xfff,
        (seq >> 12) & 0xfff,
        seq
    )
}

/// FNV-1a: stable fake values per device without a random source.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex128(seed: &str) -> String {
    format!("{:016X}{:016X}", fnv(seed), fnv(&format!("{seed}/2")))
}

/// `data` with its keys in alphabetical order (what an Elixir map of ≤ 32 keys encodes
/// to), whatever order the caller wrote them in.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: std::collections::BTreeMap<String, Value> = m.into_iter().collect();
            let mut out = serde_json::Map::new();
            for (k, v) in ordered {
                out.insert(k, v);
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// The fake LoRaWAN secrets of a device's interface: (field, value).
fn lorawan_secrets(device_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("app_session_key", hex128(&format!("{device_id}/ask"))),
        ("device_key", hex128(&format!("{device_id}/dk"))),
        ("network_session_key", hex128(&format!("{device_id}/nsk"))),
        ("lns_app_s_key", hex128(&format!("{device_id}/lns-a"))),
        ("lns_nwk_s_key", hex128(&format!("{device_id}/lns-n"))),
    ]
}

fn interface_id(device_id: &str) -> String {
    uuid(fnv(device_id) & 0xffff_ffff, 0x1f0e)
}

/// A device's LoRaWAN interface as the sockets and the single-device answer carry it,
/// keys included (fake ones).
fn interface_json(device_id: &str) -> Value {
    let secrets: HashMap<&str, String> = lorawan_secrets(device_id).into_iter().collect();
    let eui = format!("{:016X}", fnv(&format!("{device_id}/eui")));
    json!({
        "deleted_at": null,
        "device_id": device_id,
        "driver_instance_id": "5a6b7c8d-0e1f-4a2b-9c3d-4e5f60718293",
        "enabled": true,
        "id": interface_id(device_id),
        "meta": null,
        "opts": {
            "app_session_key": secrets["app_session_key"],
            "class_c": false,
            "device_address": format!("{:08X}", fnv(device_id) as u32),
            "device_eui": eui,
            "device_key": secrets["device_key"],
            "device_type": "otaa",
            "join_eui": "70B3D57ED0000000",
            "lns_session_context": {
                "app_s_key": secrets["lns_app_s_key"],
                "f_cnt_up": 1491,
                "nwk_s_enc_key": secrets["lns_nwk_s_key"],
            },
            "network_session_key": secrets["network_session_key"],
            "region": "EU863-870",
            "rx_delay": 1,
        },
    })
}

/// LoRaWAN metadata of an uplink, in the shape of a real packet's `meta`.
fn lorawan_meta(seq: u64, packet_id: &str) -> Value {
    json!({
        "ack": false,
        "adr": true,
        "adr_ack_req": false,
        "chan": seq % 8,
        "codr": "4/5",
        "confirm": false,
        "data_rate": 5,
        "datr": "SF7BW125",
        "dev_nonce": null,
        "frame_count_up": 1000 + seq,
        "frame_port": 1,
        "frequency": 868.1 + 0.2 * (seq % 3) as f64,
        "gateway_stats": [{
            "router_id": 2_521_330_551_000_u64 + seq % 3,
            "router_id_hex": format!("0000024B0B030B{:02X}", seq % 3),
            "rssi": -70 - (seq % 20) as i64,
            "snr": 9.5,
            "tmst": 700_000_000 + seq * 1_000,
        }],
        "lns_packet_uuid": packet_id,
        "lorawan_toa_ms": 61.696,
        "mac_commands": [],
        "modu": "LORA",
        "region": "eu863",
        "region_meta": {"bandwidth": 125, "bitrate": 5470, "code": "eu863", "datarate": 5, "name": "EU863", "spreadingfactor": 7},
        "rfch": 1,
        "size": 11,
        "stat": 1,
        "updated": true,
    })
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
        .route("/api/v1/tags/{id}/readings", get(tag_readings))
        .route("/api/v1/devices/{id}", get(one_device))
        .route("/api/v1/devices/{id}/readings", get(device_readings))
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
        // The only error body recorded from ELEMENT (a failed REST stream); used for
        // every error here, which is a guess for the socket upgrade.
        Json(json!({"error": msg, "ok": false})),
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
            return Err((StatusCode::NOT_FOUND, "no such socket".to_string()));
        };
        let role = key_of(&q, &headers).and_then(|k| d.keys.get(&k).cloned());
        let Some(role) = role else {
            return Err((StatusCode::UNAUTHORIZED, "invalid api key".to_string()));
        };
        let known = match &scope {
            Scope::Device(id) => d.devices.iter().any(|x| &x.id == id),
            Scope::Tag(id) => d.tags.iter().any(|(t, _)| t == id),
            Scope::Stream(id) => d.streams.contains_key(id),
            Scope::Mandate => true,
        };
        if !may_read(&d, &role, &scope) {
            return Err((
                StatusCode::FORBIDDEN,
                "api key lacks permission".to_string(),
            ));
        }
        if !known {
            return Err((StatusCode::NOT_FOUND, "not found".to_string()));
        }
        let allowed = kind.preloads();
        if let Some(bad) = preload
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .find(|p| !p.is_empty() && !allowed.contains(p))
        {
            let allowed = allowed.join(", ");
            return Err((
                StatusCode::BAD_REQUEST,
                format!("invalid preload \"{bad}\" (allowed: {allowed})"),
            ));
        }
        let after = match after.as_deref().map(parse_after) {
            Some(None) => return Err((StatusCode::BAD_REQUEST, "invalid after".to_string())),
            Some(Some(t)) => Some(t),
            None => None,
        };
        Ok((kind, after))
    })();
    let (kind, after) = match verdict {
        Ok(v) => v,
        Err((status, msg)) => {
            d.requests.push(req);
            return error(status, &msg);
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

/// Whether a key of `role` may open a socket (or list) of `scope`.
fn may_read(d: &Data, role: &KeyRole, scope: &Scope) -> bool {
    match (role, scope) {
        (KeyRole::Admin | KeyRole::ReadOnly, _) => true,
        (KeyRole::Device(own), Scope::Device(id)) => own == id,
        (KeyRole::Tags(ts), Scope::Tag(t)) => ts.contains(t),
        (KeyRole::Tags(ts), Scope::Device(id)) => d
            .devices
            .iter()
            .any(|x| &x.id == id && x.tags.iter().any(|t| ts.contains(t))),
        _ => false,
    }
}

/// The event as sent on a socket, with what `preload` asked for.
fn body_for(d: &Data, ev: &Stored, preload: &[String]) -> Value {
    let mut body = ev.body.clone();
    let has = |p: &str| preload.iter().any(|x| x == p);
    // `device.fields` and `device.interfaces` preload the device too; `packet.interface`
    // the packet.
    if has("device") || has("device.fields") || has("device.interfaces") {
        if let Some((i, dev)) = d
            .devices
            .iter()
            .enumerate()
            .find(|(_, x)| x.id == ev.device_id)
        {
            let mut dv = device_json(d, dev, i, false);
            if has("device.fields") {
                dv["fields"] = device_fields(dev, i);
            }
            if has("device.interfaces") {
                dv["interfaces"] = json!([interface_json(&dev.id)]);
            }
            body["device"] = dv;
        }
    }
    if ev.kind == Kind::Readings && (has("packet") || has("packet.interface")) {
        let packet_id = body["packet_id"].as_str().unwrap_or_default().to_string();
        let mut pk = json!({
            "device_id": ev.device_id,
            "driver": null,
            "id": packet_id,
            "inserted_at": body["inserted_at"],
            "interface_id": interface_id(&ev.device_id),
            "is_meta": false,
            "meta": lorawan_meta(ev.seq, &packet_id),
            "packet_type": "up",
            "payload": format!("02{:04X}00{:02X}", ev.seq & 0xffff, ev.seq & 0xff),
            "payload_encoding": "binary",
            "skip_parsers": false,
            "transceived_at": body["measured_at"],
        });
        if has("packet.interface") {
            pk["interface"] = interface_json(&ev.device_id);
        }
        body["packet"] = pk;
    }
    body
}

/// The event as a REST listing shows it: readings with `"meta": null`, packets without
/// the socket's `interface`.
fn rest_body(ev: &Stored) -> Value {
    let mut body = ev.body.clone();
    if let Value::Object(m) = &mut body {
        match ev.kind {
            Kind::Readings => {
                m.insert("meta".into(), Value::Null);
            }
            Kind::Packets => {
                m.remove("interface");
            }
        }
    }
    body
}

fn device_fields(dev: &SimDevice, i: usize) -> Value {
    json!({"sensor": {"installed": "2024-03-01", "room": format!("{} (room {})", dev.name, 100 + i)}})
}

fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn tag_json(d: &Data, id: &str, name: &str) -> Value {
    let at = format_time(d.born, false);
    json!({
        "color_hue": fnv(id) % 360,
        "default_devices_view_id": null,
        "default_graph_preset_id": null,
        "default_layers_id": null,
        "default_packets_view_id": null,
        "default_readings_view_id": null,
        "description": null,
        "group_interface_id": null,
        "id": id,
        "inserted_at": at,
        "mandate_id": MANDATE_ID,
        "name": name,
        "parent_id": null,
        "path": [id],
        "slug": slug(name),
        "stats": {},
        "updated_at": at,
    })
}

/// A device as listings show it (`single`: as `GET /devices/:id` does, with its
/// interfaces, profile data and fields).
fn device_json(d: &Data, dev: &SimDevice, i: usize, single: bool) -> Value {
    // Devices were "created" one second apart from the server's start, in list order.
    let created = d.born + jiff::SignedDuration::from_secs(i as i64);
    let at = format_time(created, false);
    let tags: Vec<Value> = dev
        .tags
        .iter()
        .map(|t| {
            let name = d
                .tags
                .iter()
                .find(|(id, _)| id == t)
                .map_or(t.as_str(), |(_, n)| n.as_str());
            tag_json(d, t, name)
        })
        .collect();
    let mut v = json!({
        "deleted_at": null,
        "icon": null,
        "id": dev.id,
        "inserted_at": at,
        "last_readings": [],
        "location": {"coordinates": [7.4652 + 0.001 * i as f64, 51.5136], "type": "Point"},
        "mandate_id": MANDATE_ID,
        "meta": null,
        "name": dev.name,
        "parser_id": PARSER_ID,
        "slug": slug(&dev.name),
        "static_location": false,
        "stats": {
            "avg_gw_count": "1.0",
            "avg_rssi": -79.5,
            "avg_sf": 7.0,
            "avg_snr": 9.5,
            "missed_up_frames": "0",
            "nominally_sending": true,
            "packet_interval": {"days": 0, "microsecs": 0, "months": 0, "secs": 600},
            "transceived_at": at,
        },
        "tags": tags,
        "template_id": null,
        "updated_at": at,
    });
    if single {
        v["interfaces"] = json!([interface_json(&dev.id)]);
        v["profile_data"] = json!([{
            "data": device_fields(dev, i)["sensor"],
            "device_id": dev.id,
            "inserted_at": at,
            "profile": {
                "fields": [
                    {"allowed_options": null, "display": "Room", "input_type": "text", "name": "room", "required": false, "type": "string"},
                    {"allowed_options": null, "display": "Installed", "input_type": "date", "name": "installed", "required": false, "type": "date"},
                ],
                "id": "c2d3e4f5-0a1b-4c2d-8e3f-405162738495",
                "inserted_at": "2024-02-01T08:00:00",
                "limit_to": null,
                "mandate_id": MANDATE_ID,
                "name": "Sensor",
                "slug": "sensor",
                "updated_at": "2024-02-01T08:00:00",
            },
            "profile_id": "c2d3e4f5-0a1b-4c2d-8e3f-405162738495",
            "updated_at": at,
        }]);
        v["fields"] = device_fields(dev, i);
    }
    v
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

/// The REST checks every listing shares: the request is recorded, a pending 429 answered,
/// the key looked up.
fn rest_guard(
    d: &mut Data,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<KeyRole, Box<Response>> {
    let mut query: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| k.as_str() != "auth")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    query.sort();
    let mut record = |status: u16| {
        d.rest_requests.push(RestRequest {
            path: path.to_string(),
            query: query.clone(),
            status,
        })
    };
    if d.rate_limited > 0 {
        d.rate_limited -= 1;
        let reset = d.rate_reset.as_millis().to_string();
        d.rest_requests.push(RestRequest {
            path: path.to_string(),
            query,
            status: 429,
        });
        let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        let h = resp.headers_mut();
        for (k, v) in [
            ("x-ratelimit-limit", "50/10000ms".to_string()),
            ("x-ratelimit-remaining", "0".to_string()),
            ("x-ratelimit-reset", reset),
        ] {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        }
        return Err(Box::new(resp));
    }
    let role = key_of(q, headers).and_then(|k| d.keys.get(&k).cloned());
    let Some(role) = role else {
        record(401);
        return Err(Box::new(error(StatusCode::UNAUTHORIZED, "invalid api key")));
    };
    record(200);
    Ok(role)
}

/// One page of `items` as ELEMENT pages: sorted by `sort` (default `inserted_at`) in
/// `sort_direction` (default descending), `limit` (default 10, at most 100) items after
/// the id `retrieve_after`; `retrieve_after_id` only when more items follow.
fn page(items: Vec<Value>, q: &HashMap<String, String>) -> Response {
    let field = q.get("sort").map_or("inserted_at", String::as_str);
    let keyed = items
        .into_iter()
        .map(|v| {
            let k = match &v[field] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    page_keyed(keyed, q)
}

/// [`page`] with the sort key given per item.
fn page_keyed(mut items: Vec<(String, Value)>, q: &HashMap<String, String>) -> Response {
    let ascending = matches!(
        q.get("sort_direction").map(String::as_str),
        Some("asc" | "ascending")
    );
    items.sort_by(|(ka, a), (kb, b)| (ka, a["id"].as_str()).cmp(&(kb, b["id"].as_str())));
    if !ascending {
        items.reverse();
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let start = match q.get("retrieve_after") {
        Some(a) => items
            .iter()
            .position(|(_, i)| i["id"].as_str() == Some(a.as_str()))
            .map(|i| i + 1)
            .unwrap_or(items.len()),
        None => 0,
    };
    let more = items.len() > start + limit;
    let body: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(_, v)| v)
        .collect();
    let mut envelope = json!({"body": body, "ok": true, "status": 200});
    if more {
        if let Some(last) = envelope["body"].as_array().and_then(|b| b.last()) {
            envelope["retrieve_after_id"] = last["id"].clone();
        }
    }
    Json(envelope).into_response()
}

fn visible_devices<'a>(d: &'a Data, role: &KeyRole) -> Vec<(usize, &'a SimDevice)> {
    d.devices
        .iter()
        .enumerate()
        .filter(|(_, x)| may_read(d, role, &Scope::Device(x.id.clone())))
        .collect()
}

async fn list_devices(State(s): State<Arc<Shared>>, Query(q): Q, headers: HeaderMap) -> Response {
    let mut d = s.data();
    let role = match rest_guard(&mut d, "/api/v1/devices", &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let items = visible_devices(&d, &role)
        .into_iter()
        .map(|(i, x)| device_json(&d, x, i, false))
        .collect();
    page(items, &q)
}

async fn one_device(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let mut d = s.data();
    let role = match rest_guard(&mut d, &format!("/api/v1/devices/{id}"), &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let found = visible_devices(&d, &role)
        .into_iter()
        .find(|(_, x)| x.id == id)
        .map(|(i, x)| device_json(&d, x, i, true));
    match found {
        Some(v) => Json(json!({"body": v, "ok": true, "status": 200})).into_response(),
        None => error(StatusCode::NOT_FOUND, "device not found"),
    }
}

async fn list_tags(State(s): State<Arc<Shared>>, Query(q): Q, headers: HeaderMap) -> Response {
    let mut d = s.data();
    let role = match rest_guard(&mut d, "/api/v1/tags", &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let items = d
        .tags
        .iter()
        .filter(|(id, _)| match &role {
            KeyRole::Tags(ts) => ts.contains(id),
            _ => true,
        })
        .map(|(id, name)| tag_json(&d, id, name))
        .collect();
    page(items, &q)
}

async fn list_tag_devices(
    State(s): State<Arc<Shared>>,
    Path(tag): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let mut d = s.data();
    let role = match rest_guard(&mut d, &format!("/api/v1/tags/{tag}/devices"), &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if !d.tags.iter().any(|(t, _)| t == &tag) {
        return error(StatusCode::NOT_FOUND, "tag not found");
    }
    let items = visible_devices(&d, &role)
        .into_iter()
        .filter(|(_, x)| x.tags.contains(&tag))
        .map(|(i, x)| device_json(&d, x, i, false))
        .collect();
    page(items, &q)
}

/// Readings of a device or tag for REST, sorted by `inserted_at` (the stored time, not
/// the shown string: some are shown without a fraction); `after`/`before` bound it.
fn readings_page(d: &Data, scope: &Scope, q: &HashMap<String, String>) -> Response {
    let after = q.get("after").and_then(|a| parse_after(a));
    let before = q.get("before").and_then(|b| parse_after(b));
    let by_time = q.get("sort").is_none_or(|s| s == "inserted_at");
    let items: Vec<(String, Value)> = d
        .events
        .iter()
        .filter(|e| matches(d, scope, Kind::Readings, e))
        .filter(|e| after.is_none_or(|a| e.inserted_at >= a))
        .filter(|e| before.is_none_or(|b| e.inserted_at < b))
        .map(|e| {
            let v = rest_body(e);
            let key = if by_time {
                format_time(e.inserted_at, false)
            } else {
                q.get("sort")
                    .and_then(|f| v[f.as_str()].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (key, v)
        })
        .collect();
    page_keyed(items, q)
}

async fn device_readings(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let mut d = s.data();
    let path = format!("/api/v1/devices/{id}/readings");
    let role = match rest_guard(&mut d, &path, &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let scope = Scope::Device(id.clone());
    if !d.devices.iter().any(|x| x.id == id) {
        return error(StatusCode::NOT_FOUND, "device not found");
    }
    if !may_read(&d, &role, &scope) {
        return error(StatusCode::FORBIDDEN, "api key lacks permission");
    }
    readings_page(&d, &scope, &q)
}

async fn tag_readings(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let mut d = s.data();
    let path = format!("/api/v1/tags/{id}/readings");
    let role = match rest_guard(&mut d, &path, &q, &headers) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let scope = Scope::Tag(id.clone());
    if !d.tags.iter().any(|(t, _)| t == &id) {
        return error(StatusCode::NOT_FOUND, "tag not found");
    }
    if !may_read(&d, &role, &scope) {
        return error(StatusCode::FORBIDDEN, "api key lacks permission");
    }
    readings_page(&d, &scope, &q)
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
        assert_eq!(format_time(t, false), "2024-01-01T00:00:00.000000Z");
        let t: Timestamp = "2024-08-13T13:11:04.987654Z".parse().unwrap();
        assert_eq!(format_time(t, true), "2024-08-13T13:11:04+00:00");
    }
}
