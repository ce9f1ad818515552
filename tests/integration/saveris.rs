//! The Saveris feed against real peers: RabbitMQ Web-STOMP (delivery, buffering,
//! redelivery, heart-beat loss, broker restart) and moto (Cognito login).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alarm_tray::clock::Clock;
use alarm_tray::event::{Delivery, EventKind, FeedState, FeedStatus};
use alarm_tray::feeds::saveris::auth::{self, AuthError, TokenSource};
use alarm_tray::feeds::saveris::stomp::{self, Command, Decoder, Frame};
use alarm_tray::feeds::saveris::{self as saveris, SaverisError, SaverisFeedConfig};
use alarm_tray::feeds::FeedHandle;
use alarm_tray::settings::{Channels, CustomEndpoint, LoginMethod, SaverisAccount};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use alarm_tray::simulate::saveris::{ErrorKind, SaverisServer};

use crate::peers::moto::Moto;
use crate::peers::rabbit::Broker;
use crate::peers::unique;

const T: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- helpers

pub fn alarm_body(uuid: &str) -> String {
    format!(
        r#"{{"uuid":"{uuid}","alarm_status":"Alarm","last_status_change_time":"2024-05-01T10:00:00Z","alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"2024-05-01T10:00:00Z","alarm_value":"9.5","physical_unit":"°C","physical_value":"Temperature","alarm_source_uuid":"sensor-1","alarm_type":"measurement alarm","serial_number":"4711"}}"#
    )
}

pub fn rabbit_account(ws_url: &str, username: &str) -> SaverisAccount {
    SaverisAccount {
        id: format!("acc-{username}"),
        username: username.into(),
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: false,
        },
        custom: Some(CustomEndpoint {
            // RabbitMQ reads the STOMP host header as its virtual host.
            ws_url: format!("{ws_url}?vhost=%2F"),
            destination_pattern: "/queue/{username}.{channel}".into(),
            token_url: String::new(),
            stomp_login: "guest".into(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    }
}

pub fn fast(mut cfg: SaverisFeedConfig) -> SaverisFeedConfig {
    cfg.backoff_base = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(5);
    cfg
}

/// What a test "engine" does with a delivery.
#[derive(Clone, Copy)]
pub enum Policy {
    ConfirmAll,
    /// Confirms the first n, then holds the rest unconfirmed (a crash before storing).
    ConfirmFirst(usize),
    /// Rejects the first n (storing failed), then confirms.
    RejectFirst(usize),
}

/// Collects deliveries like the real engine: stores each key once, then confirms.
pub struct Engine {
    /// Every delivery: (key, redelivered).
    pub seen: Arc<Mutex<Vec<(String, bool)>>>,
    /// Keys stored, each once.
    pub stored: Arc<Mutex<Vec<String>>>,
    pub held: Arc<Mutex<Vec<Delivery>>>,
    pub kinds: Arc<Mutex<Vec<EventKind>>>,
}

impl Engine {
    pub fn start(mut rx: mpsc::Receiver<Delivery>, policy: Policy) -> Engine {
        let e = Engine {
            seen: Default::default(),
            stored: Default::default(),
            held: Default::default(),
            kinds: Default::default(),
        };
        let (seen, stored, held, kinds) = (
            e.seen.clone(),
            e.stored.clone(),
            e.held.clone(),
            e.kinds.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(d) = rx.recv().await {
                seen.lock()
                    .unwrap()
                    .push((d.event.key.clone(), d.event.redelivered));
                kinds.lock().unwrap().push(d.event.kind);
                n += 1;
                match policy {
                    Policy::ConfirmFirst(k) if n > k => {
                        held.lock().unwrap().push(d);
                        continue;
                    }
                    Policy::RejectFirst(k) if n <= k => {
                        d.ack.reject();
                        continue;
                    }
                    _ => {}
                }
                let mut s = stored.lock().unwrap();
                if !s.contains(&d.event.key) {
                    s.push(d.event.key.clone());
                }
                drop(s);
                d.ack.confirm();
            }
        });
        e
    }

    pub fn seen_count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn stored_keys(&self) -> Vec<String> {
        self.stored.lock().unwrap().clone()
    }
}

/// Records every status the feed reports.
pub struct Statuses(pub Arc<Mutex<Vec<FeedState>>>, pub Arc<Mutex<Vec<String>>>);

impl Statuses {
    pub fn start(mut rx: mpsc::UnboundedReceiver<FeedStatus>) -> Statuses {
        let log: Arc<Mutex<Vec<FeedState>>> = Default::default();
        let errors: Arc<Mutex<Vec<String>>> = Default::default();
        let (l, e) = (log.clone(), errors.clone());
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                l.lock().unwrap().push(s.state);
                let mut e = e.lock().unwrap();
                if let Some(err) = s.last_error {
                    if e.last() != Some(&err) {
                        e.push(err);
                    }
                }
            }
        });
        Statuses(log, errors)
    }
    pub fn last(&self) -> Option<FeedState> {
        self.0.lock().unwrap().last().cloned()
    }
    pub fn all(&self) -> Vec<FeedState> {
        self.0.lock().unwrap().clone()
    }
    pub fn count_live(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| **s == FeedState::Live)
            .count()
    }
}

pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Running {
    pub handle: FeedHandle,
    pub engine: Engine,
    pub statuses: Statuses,
}

impl Running {
    /// Waits for `cond`, showing the feed's statuses when it times out.
    pub async fn wait(&self, what: &str, within: Duration, mut cond: impl FnMut(&Running) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !cond(self) {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out waiting for: {what}; statuses: {:?}; errors: {:?}; seen {}",
                    self.statuses.all(),
                    self.statuses.1.lock().unwrap(),
                    self.engine.seen_count()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn run_feed(cfg: SaverisFeedConfig, policy: Policy) -> Running {
    run_feed_with(cfg, policy, 16, Duration::ZERO)
}

/// `capacity` of the delivery channel; the engine takes `delay` per delivery.
pub fn run_feed_with(
    cfg: SaverisFeedConfig,
    policy: Policy,
    capacity: usize,
    delay: Duration,
) -> Running {
    let (dtx, drx) = mpsc::channel(capacity);
    let drx = if delay.is_zero() {
        drx
    } else {
        // A slow engine in front of the collecting one.
        let (stx, srx) = mpsc::channel(1);
        let mut drx = drx;
        tokio::spawn(async move {
            while let Some(d) = drx.recv().await {
                tokio::time::sleep(delay).await;
                if stx.send(d).await.is_err() {
                    return;
                }
            }
        });
        srx
    };
    let (stx, srx) = mpsc::unbounded_channel();
    let handle = saveris::spawn(cfg, dtx, stx);
    Running {
        handle,
        engine: Engine::start(drx, policy),
        statuses: Statuses::start(srx),
    }
}

/// Publishes persistent messages over STOMP (login guest) and waits for the broker's receipt.
pub async fn rabbit_publish(ws_url: &str, dest: &str, bodies: &[String]) {
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "/")
        .with_header("login", "guest")
        .with_header("passcode", "guest");
    ws.send(Message::binary(stomp::encode(&connect)))
        .await
        .unwrap();
    let mut dec = Decoder::new();
    let mut next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> Frame {
        loop {
            if let Some(f) = dec.next_frame().unwrap() {
                return f;
            }
            match tokio::time::timeout(T, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                Message::Text(t) => dec.push(t.as_bytes()),
                Message::Binary(b) => dec.push(&b),
                _ => {}
            }
        }
    };
    let f = next(&mut ws).await;
    assert_eq!(f.command, Command::Connected, "{f:?}");
    for (i, b) in bodies.iter().enumerate() {
        let mut send = Frame::new(Command::Send)
            .with_header("destination", dest)
            .with_header("persistent", "true")
            .with_header("content-type", "application/json");
        if i + 1 == bodies.len() {
            send = send.with_header("receipt", "last");
        }
        ws.send(Message::binary(stomp::encode(
            &send.with_body(b.as_bytes().to_vec()),
        )))
        .await
        .unwrap();
    }
    if !bodies.is_empty() {
        let f = next(&mut ws).await;
        assert_eq!(f.command, Command::Receipt, "{f:?}");
    }
    let _ = ws
        .send(Message::binary(stomp::encode(&Frame::new(
            Command::Disconnect,
        ))))
        .await;
    let _ = ws.close(None).await;
}

fn bodies(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| alarm_body(&format!("{prefix}-{i}")))
        .collect()
}

fn key_of(account: &SaverisAccount, uuid: &str) -> String {
    format!(
        "saveris:{}:alarm:{uuid}:Alarm:2024-05-01T10:00:00Z",
        account.id
    )
}

/// Every key at most once, except broker redeliveries (flagged `redelivered`).
fn assert_no_unflagged_duplicates(seen: &[(String, bool)]) {
    let mut first: HashSet<&str> = HashSet::new();
    for (k, replayed) in seen {
        if !first.insert(k) {
            assert!(
                *replayed,
                "{k} was delivered twice without being a redelivery"
            );
        }
    }
}

// ---------------------------------------------------------------- RabbitMQ

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_live_delivery_and_buffering_while_away() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("live");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");

    // Published before the client ever connected: waits in the durable queue.
    rabbit_publish(&broker.ws_url(), &dest, &bodies("pre", 0..3)).await;
    let feed = run_feed(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        Policy::ConfirmAll,
    );
    feed.wait("3 buffered messages", T, |feed| {
        feed.engine.seen_count() == 3
    })
    .await;
    feed.wait("live", T, |f| f.statuses.last() == Some(FeedState::Live))
        .await;

    // Live delivery.
    rabbit_publish(&broker.ws_url(), &dest, &bodies("live", 0..4)).await;
    feed.wait("4 live messages", T, |feed| feed.engine.seen_count() == 7)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    feed.handle.stop().await;

    // Published while the client is away: arrive after it reconnects, nothing else again.
    rabbit_publish(&broker.ws_url(), &dest, &bodies("away", 0..2)).await;
    let feed2 = run_feed(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        Policy::ConfirmAll,
    );
    feed2
        .wait("2 messages sent while away", T, |feed2| {
            feed2.engine.seen_count() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys: Vec<String> = feed2
        .engine
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        keys,
        vec![key_of(&account, "away-0"), key_of(&account, "away-1")]
    );
    let all: Vec<String> = feed.engine.stored_keys();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], key_of(&account, "pre-0"));
    assert_eq!(feed.engine.kinds.lock().unwrap()[0], EventKind::AlarmRaised);
    feed2.handle.stop().await;
    wait_until("idle after stop", T, || {
        feed2.statuses.last() == Some(FeedState::Idle)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_unacked_messages_come_back_after_the_client_dies_and_are_recorded_once() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("kill");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    rabbit_publish(&broker.ws_url(), &dest, &bodies("m", 0..5)).await;

    // The first client stores 2 and "crashes" before storing the other 3.
    let feed = run_feed(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        Policy::ConfirmFirst(2),
    );
    feed.wait("5 deliveries", T, |feed| feed.engine.seen_count() == 5)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored_before = feed.engine.stored_keys();
    assert_eq!(stored_before.len(), 2);
    feed.handle.stop().await;
    feed.engine.held.lock().unwrap().clear();

    let feed2 = run_feed(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        Policy::ConfirmAll,
    );
    feed2
        .wait("3 redeliveries", T, |feed2| feed2.engine.seen_count() >= 3)
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = feed2.engine.seen.lock().unwrap().clone();
    let expected: Vec<String> = (2..5)
        .map(|i| key_of(&account, &format!("m-{i}")))
        .collect();
    assert_eq!(
        again.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        expected,
        "exactly the unstored ones come back"
    );
    assert!(
        again.iter().all(|(_, replayed)| *replayed),
        "redeliveries are flagged: {again:?}"
    );
    // Recorded once: the union of both engines' stores has each of the 5 keys once.
    let mut all = stored_before;
    all.extend(feed2.engine.stored_keys());
    let unique_keys: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique_keys.len()), (5, 5));
    feed2.handle.stop().await;
}

/// A loopback TCP proxy whose forwarding can be frozen (sockets stay open, bytes stop):
/// what a dead NAT or a suspended laptop looks like to the client.
struct Proxy {
    port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let pipe = |f: Arc<std::sync::atomic::AtomicBool>| {
                        move |mut r: tokio::net::tcp::OwnedReadHalf,
                              mut w: tokio::net::tcp::OwnedWriteHalf| async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut buf = vec![0u8; 16384];
                            loop {
                                let n = match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                if f.load(std::sync::atomic::Ordering::SeqCst) {
                                    // Frozen: swallow everything from now on, keep the socket.
                                    std::future::pending::<()>().await;
                                }
                                if w.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    };
                    let a = tokio::spawn(pipe(f.clone())(cr, sw));
                    let b = tokio::spawn(pipe(f)(sr, cw));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        Proxy { port, frozen, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_heartbeat_loss_is_detected_and_the_feed_recovers() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let proxy = Proxy::start(broker.ws_port).await;
    let user = unique("hb");
    let account = rabbit_account(&format!("ws://127.0.0.1:{}/ws", proxy.port), &user);
    let dest = format!("/queue/{user}.alarms");
    let mut cfg = fast(SaverisFeedConfig::new(
        account.clone(),
        None,
        Some("guest".into()),
    ));
    cfg.heart_beat = (1000, 1000);
    let feed = run_feed(cfg, Policy::ConfirmAll);
    rabbit_publish(&broker.ws_url(), &dest, &bodies("a", 0..1)).await;
    feed.wait("first message", T, |feed| feed.engine.seen_count() == 1)
        .await;

    proxy
        .frozen
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let frozen_at = tokio::time::Instant::now();
    wait_until(
        "the dead link to be noticed",
        Duration::from_secs(10),
        || {
            matches!(
                feed.statuses.last(),
                Some(FeedState::Waiting { .. }) | Some(FeedState::Connecting)
            )
        },
    )
    .await;
    let noticed = frozen_at.elapsed();
    // Twice the 1 s interval, plus a tick: well under 5 s.
    assert!(noticed < Duration::from_secs(5), "took {noticed:?}");
    assert!(
        noticed >= Duration::from_millis(1500),
        "declared dead too early: {noticed:?}"
    );
    proxy
        .frozen
        .store(false, std::sync::atomic::Ordering::SeqCst);

    rabbit_publish(&broker.ws_url(), &dest, &bodies("b", 0..1)).await;
    feed.wait("delivery after recovery", T, |feed| {
        feed.engine.seen_count() >= 2
    })
    .await;
    feed.wait("live twice", T, |f| f.statuses.count_live() >= 2)
        .await;
    feed.handle.stop().await;
    proxy.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_broker_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    let broker = Arc::new(
        tokio::task::spawn_blocking(Broker::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let user = unique("restart");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    let feed = run_feed(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        Policy::ConfirmAll,
    );
    rabbit_publish(&broker.ws_url(), &dest, &bodies("r", 0..10)).await;
    feed.wait("first 10", T, |feed| feed.engine.seen_count() >= 10)
        .await;

    rabbit_publish(&broker.ws_url(), &dest, &bodies("r", 10..30)).await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.restart())
        .await
        .unwrap()
        .unwrap();
    rabbit_publish(&broker.ws_url(), &dest, &bodies("r", 30..40)).await;

    feed.wait("all 40 stored", Duration::from_secs(60), |feed| {
        feed.engine.stored_keys().len() >= 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored: HashSet<String> = feed.engine.stored_keys().into_iter().collect();
    let expected: HashSet<String> = (0..40)
        .map(|i| key_of(&account, &format!("r-{i}")))
        .collect();
    assert_eq!(stored, expected);
    assert_no_unflagged_duplicates(&feed.engine.seen.lock().unwrap());
    assert!(
        feed.statuses.count_live() >= 2,
        "reconnected after the restart: {:?}",
        feed.statuses.all()
    );
    feed.handle.stop().await;
    let b = Arc::try_unwrap(broker).ok().unwrap();
    tokio::task::spawn_blocking(move || drop(b)).await.unwrap();
}

// ---------------------------------------------------------------- moto (Cognito)

async fn moto_account(
    moto: &Moto,
    username: &str,
    password: &str,
    permanent: bool,
) -> SaverisAccount {
    let (pool, client) = moto.pool(&unique("pool")).await;
    moto.user(&pool, username, password, permanent).await;
    SaverisAccount {
        id: format!("acc-{username}"),
        username: username.into(),
        login: LoginMethod::Cognito,
        cognito_endpoint: moto.endpoint(),
        cognito_client_id: client,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_login_reads_exp_and_renews() {
    let moto = tokio::task::spawn_blocking(Moto::shared).await.unwrap();
    let account = moto_account(&moto, "carol", "Passw0rd!x", true).await;
    let source = TokenSource::for_account(&account).unwrap();
    let http = reqwest::Client::new();
    let t1 = tokio::time::timeout(T, auth::login(&http, &source, "carol", "Passw0rd!x"))
        .await
        .unwrap()
        .unwrap();
    let claims = auth::jwt_claims(&t1.id_token).unwrap();
    assert_eq!(claims["cognito:username"], "carol");
    assert_eq!(t1.exp.as_second(), claims["exp"].as_i64().unwrap());
    let life = t1.exp.as_second() - jiff::Timestamp::now().as_second();
    assert!(
        (3500..=3600).contains(&life),
        "moto issues 1 h tokens: {life}"
    );
    assert_eq!(t1.lifetime, jiff::SignedDuration::from_hours(1));
    assert!((t1.renew_at().as_second() - (t1.exp.as_second() - 300)).abs() <= 2);
    // Renewal is a fresh InitiateAuth: a second valid token.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t2 = auth::login(&http, &source, "carol", "Passw0rd!x")
        .await
        .unwrap();
    assert!(t2.exp > t1.exp);
    assert!(!format!("{t2:?}").contains(&t2.id_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_rejections_are_sentences_and_stop_the_feed() {
    let moto = tokio::task::spawn_blocking(Moto::shared).await.unwrap();
    let account = moto_account(&moto, "dave", "Passw0rd!x", true).await;
    let source = TokenSource::for_account(&account).unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        auth::login(&http, &source, "dave", "wrong")
            .await
            .unwrap_err(),
        AuthError::WrongCredentials {
            said: "Incorrect username or password.".into()
        }
    );

    let err = saveris::test_connection(&account, Some("wrong-secret"), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("rejected the user name or password"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"));

    let temp = moto_account(&moto, "erin", "Temp0rary!x", false).await;
    let err = saveris::test_connection(&temp, Some("Temp0rary!x"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SaverisError::Auth(AuthError::NewPasswordRequired { .. })
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("Saveris wants a new password — set it in the Saveris web app"));

    let mut bad_client = account.clone();
    bad_client.cognito_client_id = "nosuchclient".into();
    let err = saveris::test_connection(&bad_client, Some("Passw0rd!x"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SaverisError::Auth(AuthError::UnknownClient)),
        "{err}"
    );

    // A rejected login stops the feed: LoginFailed, and no retry loop afterwards, not
    // even 10 minutes later on the feed's (simulated) clock.
    let clock = Arc::new(JumpClock::default());
    let mut cfg = fast(SaverisFeedConfig::new(
        account.clone(),
        Some("wrong".into()),
        None,
    ));
    cfg.clock = clock.clone();
    let feed = run_feed(cfg, Policy::ConfirmAll);
    wait_until("login failed", T, || {
        matches!(feed.statuses.last(), Some(FeedState::LoginFailed { .. }))
    })
    .await;
    let n = feed.statuses.all().len();
    clock.0.store(10 * 60, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        feed.statuses.all().len(),
        n,
        "no retries after a rejected login"
    );
    let Some(FeedState::LoginFailed { message }) = feed.statuses.last() else {
        unreachable!()
    };
    assert!(
        message.contains("rejected") && message.contains("Incorrect username or password"),
        "the vendor's message in a sentence: {message}"
    );
    feed.handle.stop().await;

    // Cognito's other refusals are sentences that stop the feed too.
    let unknown = moto_account(&moto, "fred", "Passw0rd!x", true).await;
    let err = auth::login(
        &http,
        &TokenSource::for_account(&unknown).unwrap(),
        "nobody-here",
        "Passw0rd!x",
    )
    .await
    .unwrap_err();
    assert!(err.is_rejection(), "{err}");
}

// ---------------------------------------------------------------- scripted loopback Saveris
// For what no real peer here does: the Data API token endpoint, Saveris's ERROR frames,
// token expiry.

fn sim_account(server: &SaverisServer, username: &str) -> SaverisAccount {
    SaverisAccount {
        id: format!("sim-{username}"),
        username: username.into(),
        login: LoginMethod::DataApi,
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: true,
        },
        custom: Some(CustomEndpoint {
            ws_url: server.ws_url(),
            destination_pattern: String::new(),
            token_url: server.token_url(),
            stomp_login: String::new(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    }
}

async fn sim(users: &[&str]) -> SaverisServer {
    SaverisServer::start(
        users
            .iter()
            .map(|u| (u.to_string(), format!("pw-{u}")))
            .collect(),
    )
    .await
    .unwrap()
}

fn sim_cfg(server: &SaverisServer, user: &str) -> SaverisFeedConfig {
    fast(SaverisFeedConfig::new(
        sim_account(server, user),
        Some(format!("pw-{user}")),
        None,
    ))
}

const V2: &str = r#"{"uuid":"v2-1","sensor_uuid":"s9","channel_no":1,"physical_property_name":"Temperature","physical_unit":"°C","timestamp":"2024-05-01T10:00:00Z","measurement":3.25,"serial_no":"777"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_data_api_login_delivery_buffering_and_unparsed_bodies() {
    let server = sim(&["alice"]).await;
    let account = sim_account(&server, "alice");

    let ok = saveris::test_connection(&account, Some("pw-alice"), None)
        .await
        .unwrap();
    assert_eq!(ok, "Connected to ActiveMQ/5.17.2 as alice");
    let err = saveris::test_connection(&account, Some("nope-secret"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("rejected the user name or password"),
        "{err}"
    );
    assert!(!err.to_string().contains("nope-secret"));
    let mut gone = account.clone();
    gone.custom.as_mut().unwrap().token_url = "http://127.0.0.1:9/v1/token".into();
    let err = saveris::test_connection(&gone, Some("pw-alice"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Could not reach the login server 127.0.0.1"),
        "{err}"
    );

    // Buffered while nobody listens.
    server.publish("alice", "alarms", alarm_body("b-0"));
    server.publish("alice", "measurements-v2", V2.to_string());
    let feed = run_feed(sim_cfg(&server, "alice"), Policy::ConfirmAll);
    feed.wait("2 buffered", T, |f| f.engine.seen_count() == 2)
        .await;
    // Live, including a body that does not parse: stored, acknowledged, counted.
    server.publish("alice", "alarms", "this is not json".into());
    server.publish("alice", "alarms", alarm_body("l-0"));
    feed.wait("2 live", T, |f| f.engine.seen_count() == 4).await;
    wait_until("all acked", T, || {
        server.unacked("alice", "alarms") == 0 && server.unacked("alice", "measurements-v2") == 0
    })
    .await;
    let kinds = feed.engine.kinds.lock().unwrap().clone();
    assert!(
        kinds.contains(&EventKind::Measurement) && kinds.contains(&EventKind::Unparsed),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EventKind::AlarmRaised)
            .count(),
        2
    );
    assert_eq!(
        server.connects(),
        2,
        "the unparsed body did not cost the connection (1 test + 1 feed)"
    );
    assert_eq!(server.tokens_issued(), 2);
    wait_until("unparsed count in the status", T, || {
        feed.statuses
            .1
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("1 message(s) could not be read"))
    })
    .await;
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_unstored_messages_are_not_acked_and_come_back() {
    let server = sim(&["bob"]).await;
    // The engine gives up storing the first message: no ACK, and the feed closes the
    // connection itself, so the server sends it again (client-individual redelivers only
    // then). It comes back flagged and is stored now.
    server.publish("bob", "alarms", alarm_body("x-0"));
    server.publish("bob", "alarms", alarm_body("x-1"));
    let feed = run_feed(sim_cfg(&server, "bob"), Policy::RejectFirst(1));
    let acc = sim_account(&server, "bob");
    let x0 = key_of(&acc, "x-0");
    feed.wait("the redelivery", T, |f| {
        f.engine
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|(k, again)| *k == x0 && *again)
    })
    .await;
    wait_until("all acked", T, || server.unacked("bob", "alarms") == 0).await;
    assert_eq!(feed.engine.stored_keys().len(), 2);
    assert_eq!(server.connects(), 2, "one reconnect, made by the feed");

    // A client that dies with deliveries in hand: those come back on the next connection.
    feed.handle.stop().await;
    server.publish("bob", "alarms", alarm_body("y-0"));
    server.publish("bob", "alarms", alarm_body("y-1"));
    let f2 = run_feed(sim_cfg(&server, "bob"), Policy::ConfirmFirst(0));
    f2.wait("held", T, |f| f.engine.seen_count() == 2).await;
    f2.handle.stop().await;
    f2.engine.held.lock().unwrap().clear();
    let f3 = run_feed(sim_cfg(&server, "bob"), Policy::ConfirmAll);
    f3.wait("redelivered", T, |f| f.engine.seen_count() == 2)
        .await;
    assert!(f3.engine.seen.lock().unwrap().iter().all(|(_, r)| *r));
    wait_until("all acked", T, || server.unacked("bob", "alarms") == 0).await;
    f3.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_error_frames_each_get_their_treatment() {
    let server = sim(&["u1", "u2", "u3", "u4", "u5"]).await;

    // invalid authorization once: one fresh token, then live.
    server.fail_next_connect_with(ErrorKind::InvalidAuthorization);
    let f = run_feed(sim_cfg(&server, "u1"), Policy::ConfirmAll);
    f.wait("live after a fresh token", T, |f| {
        f.statuses.last() == Some(FeedState::Live)
    })
    .await;
    assert_eq!(server.tokens_issued(), 2);
    f.handle.stop().await;

    // invalid authorization twice in a row: login failed, and no retry loop.
    server.fail_next_connect_with(ErrorKind::InvalidAuthorization);
    server.fail_next_connect_with(ErrorKind::InvalidAuthorization);
    let f = run_feed(sim_cfg(&server, "u2"), Policy::ConfirmAll);
    f.wait("login failed", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::LoginFailed { .. }))
    })
    .await;
    let (n, issued) = (f.statuses.all().len(), server.tokens_issued());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (f.statuses.all().len(), server.tokens_issued()),
        (n, issued),
        "stopped until the user acts"
    );
    assert!(f
        .statuses
        .last()
        .unwrap()
        .describe()
        .contains("login failed"));
    f.handle.stop().await;

    // max connections: a floor of 60 s, a sentence about the 4 connections, and a stop
    // is still prompt.
    server.fail_next_connect_with(ErrorKind::MaxConnections);
    let f = run_feed(sim_cfg(&server, "u4"), Policy::ConfirmAll);
    f.wait("waiting", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::Waiting { .. }))
    })
    .await;
    let w = f.statuses.last().unwrap();
    assert_eq!(
        w,
        FeedState::Waiting {
            secs: 60,
            reason: "too many connections".into()
        }
    );
    assert_eq!(w.describe(), "waiting 60 s (too many connections)");
    let errors = f.statuses.1.lock().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("Saveris allows 4 parallel connections per user")),
        "{errors:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), f.handle.stop())
        .await
        .unwrap();

    // Anything else: backoff, reconnect, resubscribe. (A refusal at CONNECT names no queue
    // of ours: nothing to drop, so it is retried like any other error.)
    server.fail_next_connect_with(ErrorKind::Unable);
    server.fail_next_connect_with(ErrorKind::SubscriptionRefused);
    let f = run_feed(sim_cfg(&server, "u5"), Policy::ConfirmAll);
    f.wait("live after errors", T, |f| {
        f.statuses.last() == Some(FeedState::Live)
    })
    .await;
    server.publish("u5", "alarms", alarm_body("after"));
    f.wait("delivery", T, |f| f.engine.seen_count() == 1).await;
    let waits = f
        .statuses
        .all()
        .iter()
        .filter(|s| matches!(s, FeedState::Waiting { reason, .. } if reason == "server error"))
        .count();
    assert_eq!(waits, 2);
    f.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_token_expiry_renews_ahead_without_losing_a_message() {
    let server = sim(&["tess"]).await;
    // Renewal is due 4/5 into the lifetime: 1.2 s ahead of expiry leaves room on a busy CI box.
    server.set_token_lifetime(Duration::from_secs(6));
    let feed = run_feed(sim_cfg(&server, "tess"), Policy::ConfirmAll);
    feed.wait("live", T, |f| f.statuses.last() == Some(FeedState::Live))
        .await;
    for i in 0..80 {
        server.publish("tess", "alarms", alarm_body(&format!("t-{i}")));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    feed.wait("all 80 stored", T, |f| f.engine.stored_keys().len() == 80)
        .await;
    wait_until("all acked", T, || server.unacked("tess", "alarms") == 0).await;
    assert!(
        server.tokens_issued() >= 2,
        "renewed: {}",
        server.tokens_issued()
    );
    assert!(
        server.connects() >= 2,
        "a new session per token: {}",
        server.connects()
    );
    let errors = feed.statuses.1.lock().unwrap().clone();
    assert!(
        !errors.iter().any(|e| e.contains("invalid authorization")),
        "renewed ahead of expiry: {errors:?}"
    );
    assert!(!feed
        .statuses
        .all()
        .iter()
        .any(|s| matches!(s, FeedState::LoginFailed { .. } | FeedState::Waiting { .. })));
    assert_no_unflagged_duplicates(&feed.engine.seen.lock().unwrap());
    feed.handle.stop().await;
    server.stop().await;
}

/// A wall clock that can jump, like a laptop waking from suspend.
#[derive(Debug, Default)]
struct JumpClock(std::sync::atomic::AtomicI64);

impl Clock for JumpClock {
    fn now(&self) -> jiff::Timestamp {
        let off = jiff::SignedDuration::from_secs(self.0.load(std::sync::atomic::Ordering::SeqCst));
        jiff::Timestamp::now().checked_add(off).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_suspend_resume_jump_reconnects_with_a_fresh_token() {
    let server = sim(&["sam"]).await;
    server.set_heart_beat((1000, 1000));
    let clock = Arc::new(JumpClock::default());
    let mut cfg = sim_cfg(&server, "sam");
    cfg.heart_beat = (1000, 1000);
    cfg.clock = clock.clone();
    let feed = run_feed(cfg, Policy::ConfirmAll);
    feed.wait("live", T, |f| f.statuses.last() == Some(FeedState::Live))
        .await;
    clock.0.store(2 * 3600, std::sync::atomic::Ordering::SeqCst);
    feed.wait("live again", T, |f| f.statuses.count_live() >= 2)
        .await;
    assert_eq!(
        server.tokens_issued(),
        2,
        "the jump made the token look expired: a new one was fetched"
    );
    server.publish("sam", "alarms", alarm_body("after-resume"));
    feed.wait("delivery", T, |f| f.engine.seen_count() == 1)
        .await;
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_slow_engine_applies_back_pressure_without_losing_the_link() {
    let server = sim(&["pat"]).await;
    server.set_heart_beat((500, 500));
    for i in 0..12 {
        server.publish("pat", "alarms", alarm_body(&format!("p-{i}")));
    }
    let mut cfg = sim_cfg(&server, "pat");
    cfg.heart_beat = (500, 500);
    // 12 × 250 ms = 3 s of a full channel: six times the heart-beat interval.
    let feed = run_feed_with(cfg, Policy::ConfirmAll, 1, Duration::from_millis(250));
    feed.wait("all 12", T, |f| f.engine.seen_count() == 12)
        .await;
    let acc = sim_account(&server, "pat");
    let keys: Vec<String> = feed
        .engine
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    let expected: Vec<String> = (0..12).map(|i| key_of(&acc, &format!("p-{i}"))).collect();
    assert_eq!(keys, expected, "in order, once each");
    assert_eq!(server.connects(), 1, "the link survived the back-pressure");
    wait_until("all acked", T, || server.unacked("pat", "alarms") == 0).await;
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_test_connection_explains_refusals() {
    let server = sim(&["quinn"]).await;
    let account = sim_account(&server, "quinn");
    server.fail_next_connect_with(ErrorKind::InvalidAuthorization);
    let err = saveris::test_connection(&account, Some("pw-quinn"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("login was refused"), "{err}");
    let mut closed = account.clone();
    closed.custom.as_mut().unwrap().ws_url = "ws://127.0.0.1:9/web-socket".into();
    let err = saveris::test_connection(&closed, Some("pw-quinn"), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Could not connect to 127.0.0.1"),
        "{err}"
    );
    // While the account's feed is live, Test connection reports it and opens nothing.
    let feed = run_feed(sim_cfg(&server, "quinn"), Policy::ConfirmAll);
    feed.wait("live", T, |f| f.statuses.last() == Some(FeedState::Live))
        .await;
    let (opened, tokens) = (server.connections_opened(), server.token_requests());
    let ok = saveris::test_connection(&account, Some("pw-quinn"), None)
        .await
        .unwrap();
    assert!(
        ok.starts_with("The feed of this account is live as quinn (no second connection opened)"),
        "{ok}"
    );
    assert_eq!(
        (server.connections_opened(), server.token_requests()),
        (opened, tokens)
    );
    feed.handle.stop().await;
    // A rate limit: the answer names the end of the window, and until then no test
    // connects at all.
    server.fail_next_connect_with(ErrorKind::RateLimit {
        wait_ms: Some(5000),
    });
    let err = saveris::test_connection(&account, Some("pw-quinn"), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("The server refused the connection: rate-limited until "),
        "{text}"
    );
    let opened = server.connections_opened();
    let again = saveris::test_connection(&account, Some("pw-quinn"), None)
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), text);
    assert_eq!(server.connections_opened(), opened, "nothing opened");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_login_rejections_stop_after_one_attempt() {
    let server = sim(&["rob", "tina"]).await;
    // Wrong password, answered as the Data API gateway does (400 Status/Message).
    let clock = Arc::new(JumpClock::default());
    let mut cfg = sim_cfg(&server, "rob");
    cfg.password = Some("wrong-secret".into());
    cfg.clock = clock.clone();
    let f = run_feed(cfg, Policy::ConfirmAll);
    f.wait("login failed", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::LoginFailed { .. }))
    })
    .await;
    // 10 minutes later on the feed's clock: still that one attempt.
    clock.0.store(10 * 60, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.token_requests(), 1, "exactly one login attempt");
    assert_eq!(server.connections_opened(), 0);
    let Some(FeedState::LoginFailed { message }) = f.statuses.last() else {
        panic!("{:?}", f.statuses.all())
    };
    assert_eq!(
        message,
        "Saveris rejected the user name or password (Saveris said: “Incorrect username or password”)."
    );
    assert!(!message.contains("wrong-secret"));
    f.handle.stop().await;

    // A temporary password: HTTP 200 without a usable IdToken. No connection is tried.
    server.set_temporary_password("tina");
    let f = run_feed(sim_cfg(&server, "tina"), Policy::ConfirmAll);
    f.wait("login failed", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::LoginFailed { .. }))
    })
    .await;
    let Some(FeedState::LoginFailed { message }) = f.statuses.last() else {
        unreachable!()
    };
    assert_eq!(
        message,
        "Saveris wants a new password — set it in the Saveris web app."
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.connections_opened(), 0, "no connection attempted");
    assert_eq!(server.token_requests(), 2);
    f.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_refused_channel_is_dropped_and_alarms_keep_flowing() {
    let server = sim(&["rita"]).await;
    // Refused at SUBSCRIBE time (after CONNECTED), as when the licence is missing.
    server.refuse_subscription("rita", "measurements-v2");
    let feed = run_feed(sim_cfg(&server, "rita"), Policy::ConfirmAll);
    // Alarms published from the first moment on, across the refusal and the reconnect.
    for i in 0..40 {
        server.publish("rita", "alarms", alarm_body(&format!("r-{i}")));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    feed.wait("all 40", T, |f| f.engine.stored_keys().len() == 40)
        .await;
    wait_until("all acked", T, || server.unacked("rita", "alarms") == 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        server.connections_opened() <= 2,
        "{} connections",
        server.connections_opened()
    );
    assert_eq!(feed.statuses.last(), Some(FeedState::Live));
    let errors = feed.statuses.1.lock().unwrap().clone();
    assert!(
        errors.contains(
            &"Saveris refused measurements-v2 for this user: licence or permission missing."
                .to_string()
        ),
        "{errors:?}"
    );
    let status = feed.handle.statuses()[0].borrow().clone();
    assert_eq!(status.refused.len(), 1);
    assert_eq!(status.refused[0].channel, "measurements-v2");
    assert_eq!(
        status.refused[0].message,
        "Saveris refused measurements-v2 for this user: licence or permission missing"
    );
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_rate_limit_keeps_every_connection_away_for_10_minutes() {
    let server = sim(&["ravi"]).await;
    server.fail_next_connect_with(ErrorKind::RateLimit {
        wait_ms: Some(5000),
    });
    let clock = Arc::new(JumpClock::default());
    let mut cfg = sim_cfg(&server, "ravi");
    cfg.clock = clock.clone();
    let feed = run_feed(cfg, Policy::ConfirmAll);
    feed.wait("waiting", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::Waiting { .. }))
    })
    .await;
    assert_eq!(
        feed.statuses.last(),
        Some(FeedState::Waiting {
            secs: 600,
            reason: "rate limit".into()
        }),
        "the figure (5 s) is below the vendor's 10 minutes"
    );
    let (opened, tokens) = (server.connections_opened(), server.token_requests());
    assert_eq!(opened, 1);
    // Well past the figure, 5 and then 9 minutes on (a wake from suspend ends the wait
    // early; the window holds), and Test connection meanwhile: nothing connects.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for minutes in [5, 9] {
        clock
            .0
            .store(minutes * 60, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let err = saveris::test_connection(&sim_account(&server, "ravi"), Some("pw-ravi"), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("rate-limited until"), "{err}");
        assert_eq!(
            (server.connections_opened(), server.token_requests()),
            (opened, tokens),
            "no connection of any kind {minutes} min into the window"
        );
    }
    // Past 10 minutes: connected again.
    clock
        .0
        .store(10 * 60 + 5, std::sync::atomic::Ordering::SeqCst);
    feed.wait("live", T, |f| f.statuses.last() == Some(FeedState::Live))
        .await;
    assert_eq!(server.connections_opened(), 2);
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_token_renewal_in_a_live_feed_loses_nothing() {
    // Cognito login at moto; the STOMP side is RabbitMQ, which ignores the Bearer header
    // and takes its default user: what is tested is the renewal, not the broker's check.
    let moto = tokio::task::spawn_blocking(Moto::shared).await.unwrap();
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("cog");
    let mut account = moto_account(&moto, &user, "Passw0rd!x", true).await;
    account.custom = rabbit_account(&broker.ws_url(), &user).custom;
    let dest = format!("/queue/{user}.alarms");
    let clock = Arc::new(JumpClock::default());
    let mut cfg = fast(SaverisFeedConfig::new(
        account.clone(),
        Some("Passw0rd!x".into()),
        None,
    ));
    cfg.clock = clock.clone();
    cfg.heart_beat = (0, 0); // so the clock jump below can only mean "token due"
    let feed = run_feed(cfg, Policy::ConfirmAll);
    rabbit_publish(&broker.ws_url(), &dest, &bodies("c", 0..3)).await;
    feed.wait("first 3", T, |f| f.engine.seen_count() == 3)
        .await;

    // 56 minutes later on the feed's clock: the 60 min token is due (5 min ahead).
    clock.0.store(56 * 60, std::sync::atomic::Ordering::SeqCst);
    feed.wait("a second session", T, |f| f.statuses.count_live() >= 2)
        .await;
    rabbit_publish(&broker.ws_url(), &dest, &bodies("c", 3..6)).await;
    feed.wait("next 3", T, |f| f.engine.stored_keys().len() == 6)
        .await;
    assert!(
        !feed
            .statuses
            .all()
            .iter()
            .any(|s| matches!(s, FeedState::Waiting { .. } | FeedState::LoginFailed { .. })),
        "renewal reconnects at once: {:?}",
        feed.statuses.all()
    );
    assert_no_unflagged_duplicates(&feed.engine.seen.lock().unwrap());
    feed.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_oversized_message_is_recorded_and_acked_not_redelivered_forever() {
    let server = sim(&["olga"]).await;
    let mut cfg = sim_cfg(&server, "olga");
    cfg.max_frame = 4096;
    server.publish(
        "olga",
        "alarms",
        format!("{{\"pad\":\"{}\"}}", "x".repeat(20_000)),
    );
    server.publish("olga", "alarms", alarm_body("small"));
    let feed = run_feed(cfg, Policy::ConfirmAll);
    feed.wait("both", T, |f| f.engine.seen_count() == 2).await;
    assert_eq!(
        *feed.engine.kinds.lock().unwrap(),
        vec![EventKind::Unparsed, EventKind::AlarmRaised]
    );
    wait_until("all acked", T, || server.unacked("olga", "alarms") == 0).await;
    assert_eq!(server.connects(), 1, "the connection stayed up");
    feed.handle.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_wrong_passcode_stops_the_feed() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let account = rabbit_account(&broker.ws_url(), &unique("pw"));
    let err = saveris::test_connection(&account, None, Some("not-the-passcode"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("login was refused"), "{err}");
    assert!(!err.to_string().contains("not-the-passcode"));
    let feed = run_feed(
        fast(SaverisFeedConfig::new(
            account,
            None,
            Some("not-the-passcode".into()),
        )),
        Policy::ConfirmAll,
    );
    feed.wait("login failed", T, |f| {
        matches!(f.statuses.last(), Some(FeedState::LoginFailed { .. }))
    })
    .await;
    let n = feed.statuses.all().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(feed.statuses.all().len(), n, "no retry loop");
    feed.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_one_reading_on_both_measurement_queues_is_stored_and_evaluated_once() {
    use alarm_tray::engine::{self, History};
    use alarm_tray::notify::RecordingNotifier;
    use alarm_tray::settings::{Limit, Settings, ThresholdRule};

    let server = sim(&["vera"]).await;
    let mut account = sim_account(&server, "vera");
    // During the 4 h switch both queues deliver (SAVERIS-API.md §2.6).
    account.channels = Channels {
        alarms: true,
        measurements: true,
        measurements_v2: true,
    };
    // Two breaching values in a row raise: a reading evaluated twice would raise at once.
    let mut settings = Settings::default();
    settings.rules.push(ThresholdRule {
        id: "r1".into(),
        name: "two above 8".into(),
        limit: Limit::Above { value: 8.0 },
        min_count: 2,
        ..Default::default()
    });
    let (dtx, drx) = mpsc::channel(64);
    let (stx, srx) = mpsc::unbounded_channel();
    let engine = engine::spawn(
        settings,
        History::open_in_memory().unwrap(),
        Arc::new(RecordingNotifier::new()),
        drx,
        srx,
    );
    let feed = saveris::spawn(
        fast(SaverisFeedConfig::new(
            account,
            Some("pw-vera".into()),
            None,
        )),
        dtx,
        stx,
    );
    // One reading as each version documents it: different uuids and ids, same sensor,
    // quantity and time (v2's time with milliseconds).
    let v1 = r#"{"uuid":"k-1","device_uuid":"d","sensor_uuid":"s-9","channel_id":1913253106,"device_serial_no":"555","sensor_serial_no":"777","timestamp":"2024-05-01T10:00:00Z","measurement":9.5,"physical_property_name":"Temperature","physical_unit":"°C","physical_extension":"Air Temperature"}"#;
    let v2 = r#"{"uuid":"f-2","customer_site":"site-42","sensor_uuid":"s-9","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air Temperature","physical_unit":"°C","timestamp":"2024-05-01T10:00:00.000Z","measurement":"9.5","serial_no":"777","model_code":"0572 0001"}"#;
    server.publish("vera", "measurements", v1.to_string());
    server.publish("vera", "measurements-v2", v2.to_string());
    wait_until("both acked", T, || {
        server.acks() == 2
            && server.unacked("vera", "measurements") == 0
            && server.unacked("vera", "measurements-v2") == 0
    })
    .await;
    assert_eq!(
        engine.history().event_count().unwrap(),
        1,
        "one history row"
    );
    assert!(
        engine.history().active_alarms().unwrap().is_empty(),
        "one rule evaluation: a single breaching value does not raise"
    );
    // The next reading (a minute later, on v2 only) is the second breaching value.
    server.publish(
        "vera",
        "measurements-v2",
        v2.replace("10:00:00.000Z", "10:01:00.000Z")
            .replace("f-2", "f-3"),
    );
    wait_until("the rule raises", T, || {
        engine.history().active_alarms().unwrap().len() == 1
    })
    .await;
    assert_eq!(engine.history().event_count().unwrap(), 2);
    feed.stop().await;
    server.stop().await;
}

/// Issue 20: a rule typed in °C against the sensor of an `am.p` tenant that measures in °F,
/// through the real feed (STOMP, payload parsing) and the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_a_celsius_rule_fires_on_a_fahrenheit_sensor_at_the_converted_value() {
    use alarm_tray::engine::{self, History};
    use alarm_tray::notify::RecordingNotifier;
    use alarm_tray::settings::{Limit, Settings, ThresholdRule};

    let server = sim(&["fritz"]).await;
    let mut account = sim_account(&server, "fritz");
    account.channels = Channels {
        alarms: true,
        measurements: false,
        measurements_v2: true,
    };
    let mut settings = Settings::default();
    settings.rules.push(ThresholdRule {
        id: "c".into(),
        name: "fridge above 8 °C".into(),
        quantity: "Temperature".into(),
        unit: "°C".into(),
        limit: Limit::Above { value: 8.0 },
        ..Default::default()
    });
    let (dtx, drx) = mpsc::channel(64);
    let (stx, srx) = mpsc::unbounded_channel();
    let engine = engine::spawn(
        settings,
        History::open_in_memory().unwrap(),
        Arc::new(RecordingNotifier::new()),
        drx,
        srx,
    );
    let feed = saveris::spawn(
        fast(SaverisFeedConfig::new(
            account,
            Some("pw-fritz".into()),
            None,
        )),
        dtx,
        stx,
    );
    let body = |uuid: &str, minute: u32, v: &str| {
        format!(
            r#"{{"uuid":"{uuid}","customer_site":"site-us","sensor_uuid":"s-f","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air Temperature","physical_unit":"°F","timestamp":"2024-05-01T10:{minute:02}:00.000Z","measurement":{v},"serial_no":"888","model_code":"0572 0001"}}"#
        )
    };
    // 46.4 °F is exactly 8 °C (not above); 45 °F is 7.2 °C. Compared as received (or in
    // °C against a °F limit) either would raise.
    server.publish("fritz", "measurements-v2", body("f-1", 0, "46.4"));
    server.publish("fritz", "measurements-v2", body("f-2", 1, "45"));
    wait_until("both acked", T, || server.acks() == 2).await;
    assert_eq!(engine.history().event_count().unwrap(), 2);
    assert!(
        engine.history().active_alarms().unwrap().is_empty(),
        "46.4 °F is not above 8 °C"
    );
    // 46.6 °F = 8.11 °C.
    server.publish("fritz", "measurements-v2", body("f-3", 2, "46.6"));
    wait_until("the rule raises", T, || {
        engine.history().active_alarms().unwrap().len() == 1
    })
    .await;
    let a = engine.history().active_alarms().unwrap().remove(0).row;
    assert_eq!(a.value, Some(46.6));
    assert_eq!(a.unit.as_deref(), Some("°F"));
    assert_eq!(a.limit.as_deref(), Some("above 8 °C"));
    feed.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_two_sensors_alarms_with_empty_sources_are_raised_and_cleared_independently() {
    use alarm_tray::engine::{self, History};
    use alarm_tray::notify::RecordingNotifier;
    use alarm_tray::settings::Settings;

    let server = sim(&["wes"]).await;
    let (dtx, drx) = mpsc::channel(64);
    let (stx, srx) = mpsc::unbounded_channel();
    let engine = engine::spawn(
        Settings::default(),
        History::open_in_memory().unwrap(),
        Arc::new(RecordingNotifier::new()),
        drx,
        srx,
    );
    let feed = saveris::spawn(sim_cfg(&server, "wes"), dtx, stx);
    // AsyncAPI 1.3.0: a measurement alarm's source is "the sensor_uuid or empty".
    let alarm = |uuid: &str, serial: &str, status: &str| {
        alarm_body(uuid)
            .replace(
                "\"alarm_source_uuid\":\"sensor-1\"",
                "\"alarm_source_uuid\":\"\"",
            )
            .replace(
                "\"serial_number\":\"4711\"",
                &format!("\"serial_number\":\"{serial}\""),
            )
            .replace(
                "\"alarm_status\":\"Alarm\"",
                &format!("\"alarm_status\":\"{status}\""),
            )
    };
    server.publish("wes", "alarms", alarm("e-1", "111", "Alarm"));
    server.publish("wes", "alarms", alarm("e-2", "222", "Alarm"));
    wait_until("two raised", T, || {
        engine.history().active_alarms().unwrap().len() == 2
    })
    .await;
    // Sensor 111 back to normal: only its alarm clears.
    server.publish("wes", "alarms", alarm("e-3", "111", "Ok"));
    wait_until("one cleared", T, || {
        engine.history().active_alarms().unwrap().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = engine.history().active_alarms().unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        left[0].alarm_key.contains("serial:222"),
        "sensor 222's alarm is still active: {}",
        left[0].alarm_key
    );
    feed.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_speaks_like_activemq_escaped_ids_and_one_frame_per_message() {
    let server = sim(&["xena"]).await;
    let token: serde_json::Value = reqwest::Client::new()
        .post(server.token_url())
        .json(&serde_json::json!({"username": "xena", "password": "pw-xena"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["IdToken"].as_str().unwrap().to_string();
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let next_text = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| -> String {
        loop {
            match tokio::time::timeout(T, ws.next()).await.unwrap() {
                Some(Ok(Message::Text(t))) if t.as_str() != "\n" => return t.to_string(),
                Some(Ok(Message::Close(_))) | None => return String::new(),
                _ => {}
            }
        }
    };
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("Authorization", format!("Bearer {bearer}"));
    ws.send(Message::binary(stomp::encode(&connect)))
        .await
        .unwrap();
    assert!(next_text(&mut ws).await.starts_with("CONNECTED\n"));
    let subscribe = Frame::new(Command::Subscribe)
        .with_header("id", "sub-0")
        .with_header("destination", "/queue/xena/alarms")
        .with_header("ack", "client-individual");
    ws.send(Message::binary(stomp::encode(&subscribe)))
        .await
        .unwrap();
    server.publish("xena", "alarms", alarm_body("x-1"));
    let raw = next_text(&mut ws).await;
    // ActiveMQ's ids, with the colons escaped as STOMP 1.2 wants in MESSAGE headers.
    assert!(raw.contains("\nack:ID\\csaveris-sim-"), "{raw}");
    assert!(raw.contains("\nmessage-id:ID\\csaveris-sim-"), "{raw}");
    let mut dec = Decoder::new();
    dec.push(raw.as_bytes());
    let msg = dec.next_frame().unwrap().unwrap();
    let ack = msg.header("ack").unwrap().to_string();
    assert!(
        ack.starts_with("ID:saveris-sim-") && ack.ends_with(":1:1:1:1"),
        "{ack}"
    );
    // Two frames in one WebSocket message: ERROR, then the server closes.
    let mut two = stomp::encode(&Frame::new(Command::Ack).with_header("id", ack));
    two.extend(stomp::encode(&Frame::new(Command::Disconnect)));
    ws.send(Message::binary(two)).await.unwrap();
    let error = next_text(&mut ws).await;
    assert!(
        error.starts_with("ERROR\n") && error.contains("More than one STOMP frame"),
        "{error}"
    );
    assert_eq!(next_text(&mut ws).await, "", "closed after the ERROR");
    assert_eq!(server.acks(), 0, "nothing of the bundled message was taken");
    server.stop().await;
}
