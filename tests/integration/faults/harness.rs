//! What every fault suite shares: the stack under test (the real engine on a real SQLite
//! file behind a counting tee), counting loss and duplicates, the `FAULT-FIGURES` line,
//! publishing to the broker while it may be down, and the faults themselves (a proxy that
//! freezes open links, a wall clock that jumps, a port nobody listens on).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alarm_tray::clock::Clock;
use alarm_tray::engine::{self, EngineHandle, History};
use alarm_tray::event::{Delivery, FeedState, FeedStatus};
use alarm_tray::feeds::element::Timing;
use alarm_tray::feeds::saveris::stomp::{self, Command as StompCommand, Decoder, Frame};
use alarm_tray::notify::RecordingNotifier;
use alarm_tray::settings::{ElementAccount, ElementKind, ElementScope, ElementSubscription};
use alarm_tray::settings::{SaverisAccount, Settings};
use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::saveris::alarm_body;

// ---------------------------------------------------------------- scale and figures

/// `make soak`: the sizes of the issue instead of the `make test` ones.
pub fn soak() -> bool {
    std::env::var_os("ALARM_TRAY_SOAK").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Prints one case's figures as a JSON line the docs table is made from.
pub fn report(case: &str, figures: serde_json::Value) {
    let mut f = figures;
    f["case"] = json!(case);
    f["scale"] = json!(if soak() { "soak" } else { "test" });
    println!("FAULT-FIGURES {f}");
    eprintln!("FAULT-FIGURES {f}");
}

pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A tiny xorshift: random fault times without another dependency; the seed is printed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("fault seed {seed}");
        Rng(seed)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
    pub fn between_ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------- the stack under test

/// The real engine on a real SQLite file, fed through a tee that counts what the feed
/// delivered and records every status with the time it arrived.
pub struct Stack {
    _dir: tempfile::TempDir,
    pub db: PathBuf,
    pub engine: EngineHandle,
    pub notifier: Arc<RecordingNotifier>,
    pub deliveries: mpsc::Sender<Delivery>,
    pub statuses: mpsc::UnboundedSender<FeedStatus>,
    pub states: Arc<Mutex<Vec<(Instant, String, FeedState)>>>,
    pub seen: Arc<AtomicU64>,
    pub redelivered: Arc<AtomicU64>,
    /// Pause per delivery (a slow disk): keeps a replay running long enough to be hit.
    pub throttle: Arc<AtomicU64>,
}

impl Stack {
    pub fn new() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("history.sqlite3");
        let history = History::open(&db).unwrap();
        let notifier = Arc::new(RecordingNotifier::new());
        let (etx, erx) = mpsc::channel(4096);
        let (estx, esrx) = mpsc::unbounded_channel();
        let engine = engine::spawn(Settings::default(), history, notifier.clone(), erx, esrx);

        let (dtx, mut drx) = mpsc::channel::<Delivery>(4096);
        let seen = Arc::new(AtomicU64::new(0));
        let redelivered = Arc::new(AtomicU64::new(0));
        let throttle = Arc::new(AtomicU64::new(0));
        {
            let (seen, redelivered, throttle) =
                (seen.clone(), redelivered.clone(), throttle.clone());
            tokio::spawn(async move {
                while let Some(d) = drx.recv().await {
                    seen.fetch_add(1, Ordering::Relaxed);
                    if d.event.replayed {
                        redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    let pause = throttle.load(Ordering::Relaxed);
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_micros(pause)).await;
                    }
                    if etx.send(d).await.is_err() {
                        break;
                    }
                }
            });
        }
        let (stx, mut srx) = mpsc::unbounded_channel::<FeedStatus>();
        let states: Arc<Mutex<Vec<(Instant, String, FeedState)>>> = Default::default();
        {
            let states = states.clone();
            tokio::spawn(async move {
                while let Some(s) = srx.recv().await {
                    states
                        .lock()
                        .unwrap()
                        .push((Instant::now(), s.feed.clone(), s.state.clone()));
                    let _ = estx.send(s);
                }
            });
        }
        Stack {
            _dir: dir,
            db,
            engine,
            notifier,
            deliveries: dtx,
            statuses: stx,
            states,
            seen,
            redelivered,
            throttle,
        }
    }

    pub fn stored(&self) -> i64 {
        self.engine.history().event_count().unwrap_or(-1)
    }

    /// (key, device) of every stored event, in storage order.
    pub fn keys(&self) -> Vec<(String, Option<String>)> {
        read_keys(&self.db)
    }

    /// Popups shown, and how many of them repeat an alarm popup already shown.
    pub fn popups(&self) -> (usize, usize) {
        let shown = self.notifier.shown();
        let tags: Vec<String> = shown.iter().map(|p| p.tag.clone()).collect();
        (shown.len(), duplicate_alarm_popups(&tags))
    }

    /// The first status after `t0` matching `pred`, with its time.
    pub fn first_state_after(
        &self,
        t0: Instant,
        pred: impl Fn(&FeedState) -> bool,
    ) -> Option<Instant> {
        self.states
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _, s)| *t >= t0 && pred(s))
            .map(|(t, _, _)| *t)
    }

    pub fn count_states(&self, pred: impl Fn(&FeedState) -> bool) -> usize {
        self.states
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| pred(s))
            .count()
    }

    pub fn last_state(&self) -> Option<FeedState> {
        self.states
            .lock()
            .unwrap()
            .last()
            .map(|(_, _, s)| s.clone())
    }

    pub async fn shutdown(self) {
        self.engine.clone().shutdown().await;
    }
}

/// (key, device) of every stored event of the database at `db`, in storage order.
pub fn read_keys(db: &Path) -> Vec<(String, Option<String>)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut st = c
        .prepare("SELECT key, device FROM events ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Number of events in the database at `db` (0 before it exists).
pub fn count_events(db: &Path) -> i64 {
    if !db.exists() {
        return 0;
    }
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = c.busy_timeout(Duration::from_secs(5));
    c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap_or(0)
}

/// Alarm popups (`alarm:<id>`) shown more than once. Summaries and feed popups replace
/// themselves by design and are not counted.
pub fn duplicate_alarm_popups(tags: &[String]) -> usize {
    let mut seen = HashSet::new();
    tags.iter()
        .filter(|t| t.starts_with("alarm:"))
        .filter(|t| !seen.insert(t.as_str()))
        .count()
}

/// Loss and duplicates of `stored` against `expected` keys, as (lost, duplicated).
pub fn loss_and_duplicates(
    expected: &[String],
    stored: &[(String, Option<String>)],
) -> (usize, usize) {
    let stored_set: HashSet<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    let lost = expected
        .iter()
        .filter(|k| !stored_set.contains(k.as_str()))
        .count();
    (lost, stored.len() - stored_set.len())
}

// ---------------------------------------------------------------- Saveris helpers

pub fn saveris_key(account: &SaverisAccount, uuid: &str) -> String {
    format!(
        "saveris:{}:alarm:{uuid}:Alarm:2024-05-01T10:00:00Z",
        account.id
    )
}

/// An alarm of its own sensor: every message is its own alarm (and popup candidate).
pub fn alarm_of_sensor(uuid: &str, sensor: usize) -> String {
    alarm_body(uuid).replace("\"sensor-1\"", &format!("\"sensor-{sensor}\""))
}

/// Publishes over Web-STOMP like [`rabbit_publish`], but reports failure instead of
/// panicking (the broker may be down) and bounds every step in time.
pub async fn try_publish(
    ws_url: &str,
    dest: &str,
    bodies: &[impl AsRef<[u8]>],
) -> Result<(), String> {
    let t = Duration::from_secs(10);
    let mut req = ws_url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(t, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let connect = Frame::new(StompCommand::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "/")
        .with_header("login", "guest")
        .with_header("passcode", "guest");
    ws.send(Message::binary(stomp::encode(&connect)))
        .await
        .map_err(|e| e.to_string())?;
    let mut dec = Decoder::new();
    let mut next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> Result<Frame, String> {
        loop {
            if let Some(f) = dec.next_frame().map_err(|e| e.to_string())? {
                return Ok(f);
            }
            match tokio::time::timeout(t, ws.next()).await {
                Err(_) => return Err("no answer".into()),
                Ok(None) => return Err("closed".into()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(Message::Text(x)))) => dec.push(x.as_bytes()),
                Ok(Some(Ok(Message::Binary(b)))) => dec.push(&b),
                Ok(Some(Ok(_))) => {}
            }
        }
    };
    let f = next(&mut ws).await?;
    if f.command != StompCommand::Connected {
        return Err(format!("{f:?}"));
    }
    for (i, b) in bodies.iter().enumerate() {
        let mut send = Frame::new(StompCommand::Send)
            .with_header("destination", dest)
            .with_header("persistent", "true")
            .with_header("content-type", "application/json");
        if i + 1 == bodies.len() {
            send = send.with_header("receipt", "last");
        }
        ws.send(Message::binary(stomp::encode(
            &send.with_body(b.as_ref().to_vec()),
        )))
        .await
        .map_err(|e| e.to_string())?;
    }
    let f = next(&mut ws).await?;
    if f.command != StompCommand::Receipt {
        return Err(format!("{f:?}"));
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Publishes until the broker confirmed the batch (a batch cut by a broker kill is sent
/// again: the broker then holds some twice, which the app must absorb).
pub async fn publish_surely(ws_url: &str, dest: &str, bodies: &[String]) -> u32 {
    let mut retries = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while let Err(e) = try_publish(ws_url, dest, bodies).await {
        assert!(Instant::now() < deadline, "could not publish: {e}");
        retries += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    retries
}

// ---------------------------------------------------------------- faults on purpose

/// The PID of the process listening on 127.0.0.1:`port` (from /proc: socket inode → fd).
pub fn pid_listening_on(port: u16) -> Option<i32> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.insert(format!("socket:[{}]", cols[9]));
            }
        }
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.contains(target.to_string_lossy().as_ref()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// A loopback TCP proxy. [`Proxy::freeze_current`] makes the connections open now stop
/// forwarding without closing (a half-open link: dead NAT, suspended peer); connections
/// made later work.
pub struct Proxy {
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Proxy {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), upstream)
    }

    pub fn on(l: TcpListener, upstream: u16) -> Proxy {
        let port = l.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let g = generation.clone();
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let mine = g.load(Ordering::SeqCst);
                let g = g.clone();
                tokio::spawn(async move {
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let pipe = |g: Arc<AtomicU64>| {
                        move |mut r: tokio::net::tcp::OwnedReadHalf,
                              mut w: tokio::net::tcp::OwnedWriteHalf| async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut buf = vec![0u8; 16384];
                            loop {
                                let n = match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                if g.load(Ordering::SeqCst) != mine {
                                    // Frozen: swallow everything, keep both sockets open.
                                    std::future::pending::<()>().await;
                                }
                                if w.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    };
                    let a = tokio::spawn(pipe(g.clone())(cr, sw));
                    let b = tokio::spawn(pipe(g)(sr, cw));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        Proxy {
            port,
            accepted,
            generation,
            task,
        }
    }

    pub fn freeze_current(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A wall clock that can jump (a machine waking from suspend), for both feeds.
#[derive(Debug, Default)]
pub struct JumpClock {
    offset_secs: AtomicI64,
}

impl JumpClock {
    pub fn jump(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
            + jiff::SignedDuration::from_secs(self.offset_secs.load(Ordering::SeqCst))
    }
}

impl Clock for JumpClock {
    fn now(&self) -> jiff::Timestamp {
        JumpClock::now(self)
    }
}

/// A free port with nothing listening on it (yet).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- ELEMENT helpers

pub const KEY: &str = "k-faults-0123456789";

pub async fn element_server() -> ElementServer {
    let srv = ElementServer::start(ElementServerConfig {
        api_keys: vec![(KEY.into(), KeyRole::Admin)],
        ..Default::default()
    })
    .await
    .unwrap();
    srv.add_device("d1", "Fridge 1", &["cold"]);
    srv.add_device("d2", "Fridge 2", &["cold"]);
    srv.add_device("d3", "Office", &["warm"]);
    srv
}

pub fn element_account(base_url: String, catch_up_hours: u32) -> ElementAccount {
    ElementAccount {
        id: "acc".into(),
        base_url,
        subscriptions: vec![ElementSubscription {
            id: "all".into(),
            scope: ElementScope::Mandate,
            kind: ElementKind::Readings,
            catch_up_hours,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn element_timing() -> Timing {
    Timing {
        ping_interval: Duration::from_millis(500),
        pong_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(5),
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(1000),
        stable_after: Duration::from_millis(500),
    }
}
