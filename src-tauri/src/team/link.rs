//! The broker link: one rumqttc v5 event loop, a publisher draining the outbox, presence with
//! a last will, and incoming messages verified before anyone sees them.
//!
//! Retransmission is ours, not the library's: on a disconnect the library's pending list is
//! emptied and the in-flight map forgotten; after the next CONNACK the outbox is published
//! again from its first row. A row leaves the outbox only on the PUBACK of its own packet id.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWill, Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions, Request};
use rumqttc::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};

use super::envelope::{self, Envelope, Kind};
use super::{TeamConfig, TeamError};
use crate::event::{Ack, AckMsg};

/// Session expiry asked of the broker: 8 days, so a PC off over a long weekend (and then
/// some) still finds its session and what it missed.
pub const SESSION_EXPIRY_SECS: u32 = 8 * 24 * 3600;
/// Most outbox rows published and not yet acknowledged by the broker.
const WINDOW: usize = 64;
/// How often the outbox is looked at when nobody pokes the publisher.
const OUTBOX_POLL: Duration = Duration::from_millis(500);
/// Wait before reconnecting after a failed connection.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// One row of the outbox (see docs/TEAM.md, "Session, QoS and the outbox").
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: Kind,
    /// The topic's segment after the kind: this PC's name, or the alarm hash for `state`.
    pub tail: String,
    pub retain: bool,
    /// `None`: an empty retained payload (deletes the retained state).
    pub body: Option<Value>,
    pub at_ms: i64,
}

/// Where the outbox lives (the history database); implemented by the root.
pub trait Outbox: Send + Sync + 'static {
    /// Rows with an id above `after`, oldest first, at most `limit`.
    fn pending(&self, after: i64, limit: usize) -> Result<Vec<OutboxRow>, String>;
    /// The broker has the row (PUBACK): it leaves the outbox.
    fn done(&self, id: i64) -> Result<(), String>;
}

/// Another PC of the site, as its retained presence says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Peer {
    pub pc: String,
    pub online: bool,
    /// Its feeds and their states in words (`saveris:a1` → `live`).
    pub feeds: Vec<(String, String)>,
    /// Its Saveris feeds' logins (`saveris:a1` → `lab@example.org`, lower case), so another
    /// PC with the same login knows who holds it (account ids differ between PCs).
    #[serde(default)]
    pub logins: Vec<(String, String)>,
    #[ts(type = "number")]
    pub at_ms: i64,
}

/// What this PC's presence message says besides `online`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceFeeds {
    /// Feed id → its state in words.
    pub feeds: Vec<(String, String)>,
    /// Saveris feed id → its login, lower case.
    pub logins: Vec<(String, String)>,
}

/// The link's state, as the status line and the Team page show it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct TeamStatus {
    /// `off`, `connecting`, `live`, or a sentence saying what is wrong.
    pub state: String,
    /// Messages dropped because their signature was missing or wrong.
    #[ts(type = "number")]
    pub forged_dropped: u64,
    /// Rows published and not yet acknowledged by the broker.
    pub in_flight: u32,
    /// Every PC seen on the site, this one included.
    pub peers: Vec<Peer>,
}

/// A verified message from another PC. Confirm `ack` once what it carries is stored: only
/// then does the broker get its PUBACK (else it sends the message again).
#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub envelope: Envelope,
    pub ack: Ack,
}

/// The running link.
pub struct TeamLink {
    client: AsyncClient,
    status: watch::Receiver<TeamStatus>,
    poke: Arc<Notify>,
    feeds: watch::Sender<PresenceFeeds>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TeamLink {
    pub fn status(&self) -> watch::Receiver<TeamStatus> {
        self.status.clone()
    }
    /// New outbox rows were committed: publish them now rather than at the next poll.
    pub fn poke(&self) -> Arc<Notify> {
        self.poke.clone()
    }
    /// Where this PC's feeds and their states go, for the presence message.
    pub fn feeds_sender(&self) -> watch::Sender<PresenceFeeds> {
        self.feeds.clone()
    }
    /// Says goodbye (retained offline presence, then DISCONNECT) and stops.
    pub async fn stop(self, cfg: &TeamConfig) {
        let topic = cfg.topic(Kind::Presence, &cfg.pc);
        let payload = presence_payload(cfg, false, &PresenceFeeds::default());
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self
                .client
                .publish(topic, QoS::AtLeastOnce, true, payload)
                .await;
            let _ = self.client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        })
        .await;
        for t in self.tasks {
            t.abort();
        }
    }
}

/// What the event-loop task and the publisher share, under one lock so that the order of
/// requests handed to the client and the FIFO of their outbox rows never diverge.
#[derive(Default)]
struct Flight {
    connected: bool,
    /// Outbox row (or `None`: not from the outbox) of each publish handed to the client and
    /// not yet seen going out, in order.
    queued: VecDeque<Option<i64>>,
    /// Packet id → outbox row, of publishes sent and not yet acknowledged.
    sent: HashMap<u16, Option<i64>>,
    /// Rows handed to the client in this connection.
    rows: HashSet<i64>,
    /// Highest row handed out in this connection (the publisher reads after it).
    high: i64,
}

fn lock(m: &Mutex<Flight>) -> MutexGuard<'_, Flight> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds the client options: fixed client id, clean start off, long session expiry, the
/// last will, credentials, and TLS verified by default.
pub fn options(cfg: &TeamConfig) -> Result<MqttOptions, TeamError> {
    let (tls, host, port) = super::parse_broker_url(&cfg.broker_url)?;
    let mut o = MqttOptions::new(cfg.client_id(), host, port);
    o.set_clean_start(false);
    o.set_connect_properties(ConnectProperties {
        session_expiry_interval: Some(SESSION_EXPIRY_SECS),
        ..ConnectProperties::new()
    });
    o.set_keep_alive(Duration::from_secs(20));
    o.set_manual_acks(true);
    o.set_connection_timeout(10);
    if !cfg.user.is_empty() {
        o.set_credentials(cfg.user.clone(), cfg.password.clone().unwrap_or_default());
    }
    o.set_last_will(LastWill::new(
        cfg.topic(Kind::Presence, &cfg.pc),
        presence_payload(cfg, false, &PresenceFeeds::default()),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if tls {
        // native-tls with the system's roots and host name checks: verified by default.
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Native,
        ));
    }
    Ok(o)
}

fn presence_payload(cfg: &TeamConfig, online: bool, p: &PresenceFeeds) -> Vec<u8> {
    let env = Envelope {
        v: envelope::VERSION,
        pc: cfg.pc.clone(),
        at_ms: jiff::Timestamp::now().as_millisecond(),
        kind: Kind::Presence,
        body: json!({"online": online, "feeds": p.feeds, "logins": p.logins}),
    };
    envelope::seal(&cfg.site_key, &cfg.topic(Kind::Presence, &cfg.pc), &env)
}

/// Starts the link. Verified messages from other PCs go to `incoming`.
pub fn spawn(
    cfg: TeamConfig,
    outbox: Arc<dyn Outbox>,
    incoming: mpsc::Sender<Incoming>,
) -> Result<TeamLink, TeamError> {
    let opts = options(&cfg)?;
    let (client, eventloop) = AsyncClient::new(opts, 256);
    let (status_tx, status) = watch::channel(TeamStatus {
        state: "connecting".into(),
        ..TeamStatus::default()
    });
    let (feeds, feeds_rx) = watch::channel(PresenceFeeds::default());
    let poke = Arc::new(Notify::new());
    let flight = Arc::new(Mutex::new(Flight::default()));
    let forged = Arc::new(AtomicU64::new(0));
    let cfg = Arc::new(cfg);
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let shared = Shared {
        cfg: cfg.clone(),
        client: client.clone(),
        flight: flight.clone(),
        status: status_tx,
        forged,
        outbox: outbox.clone(),
        poke: poke.clone(),
        feeds: feeds_rx.clone(),
    };
    let shared = Arc::new(shared);
    let tasks = vec![
        tokio::spawn(run_loop(
            shared.clone(),
            eventloop,
            incoming,
            acks_tx,
            acks_rx,
            feeds_rx,
        )),
        tokio::spawn(run_publisher(shared)),
    ];
    Ok(TeamLink {
        client,
        status,
        poke,
        feeds,
        tasks,
    })
}

struct Shared {
    cfg: Arc<TeamConfig>,
    client: AsyncClient,
    flight: Arc<Mutex<Flight>>,
    status: watch::Sender<TeamStatus>,
    forged: Arc<AtomicU64>,
    outbox: Arc<dyn Outbox>,
    poke: Arc<Notify>,
    feeds: watch::Receiver<PresenceFeeds>,
}

impl Shared {
    fn feeds_now(&self) -> PresenceFeeds {
        self.feeds.borrow().clone()
    }

    /// Hands a publish to the client without waiting, recording its row in the FIFO under
    /// the same lock. `false`: not connected or the request queue is full; try later.
    fn try_publish(&self, row: Option<i64>, topic: String, retain: bool, payload: Vec<u8>) -> bool {
        let mut f = lock(&self.flight);
        if !f.connected {
            return false;
        }
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                f.queued.push_back(row);
                if let Some(id) = row {
                    f.rows.insert(id);
                    f.high = f.high.max(id);
                }
                true
            }
            Err(_) => false,
        }
    }

    fn set_state(&self, state: &str) {
        self.status.send_modify(|s| {
            if s.state != state {
                s.state = state.to_string();
            }
        });
    }
}

/// Publishes received in the current connection and waiting for the engine's verdict.
#[derive(Default)]
struct Held {
    generation: u64,
    next_token: u64,
    by_token: HashMap<String, Publish>,
}

fn lock_held(h: &Mutex<Held>) -> MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event loop. `poll` is never cancelled (a cancelled poll can lose a request it had
/// taken from the client's queue: a PUBACK, or a publish whose outbox row would then be
/// matched to the wrong packet id), so acks and presence changes run in their own tasks.
async fn run_loop(
    sh: Arc<Shared>,
    mut el: EventLoop,
    incoming: mpsc::Sender<Incoming>,
    acks_tx: mpsc::UnboundedSender<AckMsg>,
    mut acks_rx: mpsc::UnboundedReceiver<AckMsg>,
    mut feeds_rx: watch::Receiver<PresenceFeeds>,
) {
    let cfg = sh.cfg.clone();
    let subscription = format!("{}/#", cfg.prefix());
    let held = Arc::new(Mutex::new(Held::default()));
    // The engine's verdicts: PUBACK only for what was stored.
    let (h2, client) = (held.clone(), sh.client.clone());
    let acks = tokio::spawn(async move {
        while let Some(msg) = acks_rx.recv().await {
            let p = {
                let mut h = lock_held(&h2);
                if msg.generation != h.generation {
                    continue;
                }
                h.by_token.remove(&msg.token)
            };
            if let (Some(p), true) = (p, msg.stored) {
                // Not stored: no PUBACK; the broker sends it again after a reconnect.
                let _ = client.ack(&p).await;
            }
        }
    });
    // This PC's feeds changed: a new presence message.
    let sh2 = sh.clone();
    let presence = tokio::spawn(async move {
        while feeds_rx.changed().await.is_ok() {
            let feeds = feeds_rx.borrow_and_update().clone();
            let cfg = &sh2.cfg;
            sh2.try_publish(
                None,
                cfg.topic(Kind::Presence, &cfg.pc),
                true,
                presence_payload(cfg, true, &feeds),
            );
        }
    });
    let _guard = AbortOnDrop(vec![acks, presence]);
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut backoff = RECONNECT_MIN;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_MIN;
                {
                    let mut h = lock_held(&held);
                    h.generation += 1;
                    h.by_token.clear();
                }
                {
                    let mut f = lock(&sh.flight);
                    *f = Flight {
                        connected: true,
                        ..Flight::default()
                    };
                }
                sh.set_state("live");
                // The session may hold the subscription already; asking again is harmless.
                let _ = sh
                    .client
                    .try_subscribe(subscription.clone(), QoS::AtLeastOnce);
                let feeds = sh.feeds_now();
                sh.try_publish(
                    None,
                    cfg.topic(Kind::Presence, &cfg.pc),
                    true,
                    presence_payload(&cfg, true, &feeds),
                );
                sh.poke.notify_one();
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut f = lock(&sh.flight);
                if let Some(row) = f.queued.pop_front() {
                    f.sent.insert(pkid, row);
                }
                let n = f.sent.len() as u32;
                drop(f);
                sh.status.send_modify(|s| s.in_flight = n);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let row = lock(&sh.flight).sent.remove(&ack.pkid).flatten();
                if let Some(id) = row {
                    if let Err(e) = sh.outbox.done(id) {
                        tracing::warn!(error = %e, "an acknowledged outbox row could not be removed; it will be sent again");
                    }
                    lock(&sh.flight).rows.remove(&id);
                    sh.poke.notify_one();
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if p.payload.is_empty() {
                    // An emptied retained state: nothing to act on.
                    let _ = sh.client.try_ack(&p);
                    continue;
                }
                match envelope::open(&cfg.site_key, &topic, &p.payload) {
                    Err(why) => {
                        let n = sh.forged.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::warn!(topic, %why, dropped = n, "a team message without a valid signature was dropped");
                        sh.status.send_modify(|s| s.forged_dropped = n);
                        let _ = sh.client.try_ack(&p);
                    }
                    Ok(env) if env.kind == Kind::Presence => {
                        let peer = Peer {
                            pc: env.pc.clone(),
                            online: env
                                .body
                                .get("online")
                                .and_then(Value::as_bool)
                                .unwrap_or(false),
                            feeds: serde_json::from_value(
                                env.body.get("feeds").cloned().unwrap_or(Value::Null),
                            )
                            .unwrap_or_default(),
                            logins: serde_json::from_value(
                                env.body.get("logins").cloned().unwrap_or(Value::Null),
                            )
                            .unwrap_or_default(),
                            at_ms: env.at_ms,
                        };
                        peers.insert(env.pc.clone(), peer);
                        let list: Vec<Peer> = peers.values().cloned().collect();
                        sh.status.send_modify(|s| s.peers = list);
                        let _ = sh.client.try_ack(&p);
                    }
                    Ok(env) if env.pc == cfg.pc => {
                        // Our own message coming back (or our retained state): nothing new.
                        let _ = sh.client.try_ack(&p);
                    }
                    Ok(env) => {
                        let ack = if p.qos == QoS::AtMostOnce {
                            Ack::none()
                        } else {
                            let mut h = lock_held(&held);
                            h.next_token += 1;
                            let token = h.next_token.to_string();
                            h.by_token.insert(token.clone(), p.clone());
                            Ack::new(acks_tx.clone(), h.generation, token)
                        };
                        let m = Incoming {
                            topic,
                            envelope: env,
                            ack,
                        };
                        if incoming.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                {
                    // Our own retransmission: forget what the library would send again.
                    let mut f = lock(&sh.flight);
                    f.connected = false;
                    el.clean();
                    el.pending
                        .retain(|r| !matches!(r, Request::Publish(_) | Request::PubAck(_)));
                    *f = Flight::default();
                }
                {
                    let mut h = lock_held(&held);
                    h.generation += 1;
                    h.by_token.clear();
                }
                sh.status.send_modify(|s| s.in_flight = 0);
                sh.set_state(&describe(&e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
}

/// Ends the helper tasks with the event loop.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Publishes outbox rows, at most [`WINDOW`] unacknowledged at a time.
async fn run_publisher(sh: Arc<Shared>) {
    loop {
        let _ = tokio::time::timeout(OUTBOX_POLL, sh.poke.notified()).await;
        let (connected, free, after) = {
            let f = lock(&sh.flight);
            (f.connected, WINDOW.saturating_sub(f.rows.len()), f.high)
        };
        if !connected || free == 0 {
            continue;
        }
        let outbox = sh.outbox.clone();
        let rows = match tokio::task::spawn_blocking(move || outbox.pending(after, free)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the outbox could not be read");
                continue;
            }
            Err(_) => continue,
        };
        let more = rows.len() == free;
        for row in rows {
            let topic = sh.cfg.topic(row.kind, &row.tail);
            let payload = match &row.body {
                None => Vec::new(),
                Some(body) => envelope::seal(
                    &sh.cfg.site_key,
                    &topic,
                    &Envelope {
                        v: envelope::VERSION,
                        pc: sh.cfg.pc.clone(),
                        at_ms: row.at_ms,
                        kind: row.kind,
                        body: body.clone(),
                    },
                ),
            };
            if !sh.try_publish(Some(row.id), topic, row.retain, payload) {
                break;
            }
        }
        if more {
            sh.poke.notify_one();
        }
    }
}

/// A connection error in words (never with the password: rumqttc's errors do not carry it).
fn describe(e: &rumqttc::v5::ConnectionError) -> String {
    use rumqttc::v5::ConnectionError as C;
    match e {
        C::ConnectionRefused(code) => format!("the broker refused the connection ({code:?})"),
        C::Io(io) => format!("cannot reach the broker: {io}"),
        C::Tls(t) => format!("TLS failed: {t}"),
        C::Timeout(_) => "the broker does not answer".to_string(),
        other => format!("connection lost: {other}"),
    }
}
