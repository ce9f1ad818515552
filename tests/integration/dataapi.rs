//! Issue 20: the Saveris Data API client against the project's Data API server (the
//! vendor's async flow, strict per SAVERIS-API.md §1), its bad inputs with counted
//! requests, and names, limits and backfill through the real engine, D-Bus and `watch`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alarm_tray::clock::SystemClock;
use alarm_tray::engine::model::AlarmFilter;
use alarm_tray::engine::{self, Decision, History, Output};
use alarm_tray::event::{Delivery, EventKind, NamesUpdate};
use alarm_tray::feeds::saveris::auth::{self, TokenSource};
use alarm_tray::feeds::saveris::dataapi::refresh::{self, RefreshConfig};
use alarm_tray::feeds::saveris::dataapi::{DataApiClient, DataApiError, PollPolicy, TokenSlot};
use alarm_tray::feeds::saveris::payload;
use alarm_tray::notify::RecordingNotifier;
use alarm_tray::settings::{Limit, RuleTarget, Settings, ThresholdRule};
use alarm_tray::simulate::dataapi::{Counts, Fault, SimTenant};
use alarm_tray::simulate::demo::demo_tenant;
use alarm_tray::simulate::saveris::SaverisServer;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::desktop;

const USER: &str = "lab";
const PASSWORD: &str = "pw-lab";
/// The demo's "Fridge 1 - Air Sensor" (Kitchen, upper limit 8.0 °C).
const FRIDGE: &str = "5d1c0f7e-0003-4c1a-9a11-labfridgetemp";

async fn server(tenant: SimTenant) -> SaverisServer {
    let s = SaverisServer::start(vec![(USER.into(), PASSWORD.into())])
        .await
        .unwrap();
    s.set_data_api_tenant(tenant);
    s
}

fn source(s: &SaverisServer) -> TokenSource {
    TokenSource::DataApi { url: s.token_url() }
}

/// A client sharing `slot`, with short pauses so bad inputs end within seconds.
fn client(s: &SaverisServer, slot: &TokenSlot) -> DataApiClient {
    let mut c = DataApiClient::new(
        url::Url::parse(&format!("{}/", s.data_api_url())).unwrap(),
        slot.clone(),
        source(s),
        USER,
        Some(PASSWORD.into()),
        Arc::new(SystemClock),
        Duration::from_secs(10),
    );
    c.policy = PollPolicy {
        first: Duration::from_millis(100),
        max: Duration::from_secs(1),
        overall: Duration::from_secs(4),
        posts: 2,
        repost_after: Duration::from_millis(300),
        max_rows: 500_000,
    };
    c
}

/// The push feed's login: the token the Data API client shares.
async fn push_feed_login(s: &SaverisServer, slot: &TokenSlot) {
    let http = reqwest::Client::new();
    let t = auth::login(&http, &source(s), USER, PASSWORD)
        .await
        .unwrap();
    slot.put(t);
}

fn delta(after: Counts, before: Counts) -> Counts {
    Counts {
        posts: after.posts - before.posts,
        polls: after.polls - before.polls,
        downloads: after.downloads - before.downloads,
        expired: after.expired - before.expired,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flow_select_windows_and_one_shared_token_renewed_once_when_expired() {
    let s = server(demo_tenant()).await;
    let slot = TokenSlot::default();
    push_feed_login(&s, &slot).await;
    let c = client(&s, &slot);

    let rows = c
        .export(
            "v3/devices/properties",
            json!({"odata": {"$select": "sensor_uuid,sensor_display_name"}}),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.len() == 2), "$select: {rows:?}");
    assert!(
        rows.iter()
            .any(|r| r["sensor_uuid"] == FRIDGE
                && r["sensor_display_name"] == "Fridge 1 - Air Sensor")
    );
    let n = s.data_api_counts();
    // Submitted → one poll In Progress → one Completed → one file.
    assert_eq!((n.posts, n.polls, n.downloads), (1, 2, 1), "{n:?}");
    assert_eq!(s.token_requests(), 1, "the push feed's token is reused");

    // An expired token: renewed once, the POST sent again, and it works.
    s.expire_data_api_tokens();
    let before = s.data_api_counts();
    let rows = c.export("v4/equipments", json!({})).await.unwrap();
    assert!(rows
        .iter()
        .any(|r| r["area_title"] == "Kitchen" && r["upper_violation"] == 8.0));
    let d = delta(s.data_api_counts(), before);
    assert_eq!((d.posts, d.expired), (2, 1), "{d:?}");
    assert_eq!(s.token_requests(), 2, "one renewal");

    // 24 h of measurements: 4 sensors every 5 min.
    let now = jiff::Timestamp::now();
    let rows = c
        .export(
            "v2/measurements",
            json!({
                "date_time_from": (now - jiff::SignedDuration::from_hours(24)).to_string(),
                "date_time_until": now.to_string(),
            }),
        )
        .await
        .unwrap();
    assert!((4 * 287..=4 * 289).contains(&rows.len()), "{}", rows.len());
    assert_eq!(rows[0]["physical_unit"], "CELSIUS");

    // A window under 5 minutes is refused and not retried.
    let before = s.data_api_counts();
    let e = c
        .export(
            "v2/measurements",
            json!({
                "date_time_from": (now - jiff::SignedDuration::from_mins(1)).to_string(),
                "date_time_until": now.to_string(),
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DataApiError::Http { status: 400, .. }), "{e}");
    assert_eq!(delta(s.data_api_counts(), before).posts, 1);
    s.stop().await;
}

/// Each bad input of the issue: an error that says what happened, and a bounded number of
/// requests (at most one POST sent again; a failed GET never repeated; nothing after a
/// refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_end_in_a_sentence_with_bounded_requests() {
    let s = server(demo_tenant()).await;
    let slot = TokenSlot::default();
    push_feed_login(&s, &slot).await;
    let c = client(&s, &slot);
    /// The fault, what the error must be, the requests it may cost, words of its sentence.
    type Case = (Fault, fn(&DataApiError) -> bool, Counts, &'static str);
    let cases: Vec<Case> = vec![
        (
            Fault::Down,
            |e| matches!(e, DataApiError::Http { status: 503, .. }),
            Counts {
                posts: 2,
                polls: 0,
                downloads: 0,
                expired: 0,
            },
            "could not",
        ),
        (
            Fault::Forbidden,
            |e| matches!(e, DataApiError::Refused(_)),
            Counts {
                posts: 1,
                polls: 0,
                downloads: 0,
                expired: 0,
            },
            "licence or permission",
        ),
        (
            Fault::TooLarge,
            |e| matches!(e, DataApiError::TooLarge),
            Counts {
                posts: 1,
                polls: 0,
                downloads: 0,
                expired: 0,
            },
            "413",
        ),
        (
            Fault::Error,
            |e| matches!(e, DataApiError::ExportFailed),
            Counts {
                posts: 2,
                polls: 4,
                downloads: 0,
                expired: 0,
            },
            "ended in Error",
        ),
        (
            Fault::ResultMissing,
            |e| matches!(e, DataApiError::ResultFile(404)),
            Counts {
                posts: 2,
                polls: 4,
                downloads: 2,
                expired: 0,
            },
            "404",
        ),
        (
            Fault::Malformed,
            |e| matches!(e, DataApiError::Malformed(_)),
            Counts {
                posts: 1,
                polls: 2,
                downloads: 1,
                expired: 0,
            },
            "not readable",
        ),
    ];
    for (fault, is, want, words) in cases {
        s.set_data_api_fault(Some(fault.clone()));
        let before = s.data_api_counts();
        let started = Instant::now();
        let e = c
            .export("v3/devices/properties", json!({}))
            .await
            .unwrap_err();
        let d = delta(s.data_api_counts(), before);
        eprintln!("{fault:?}: {e} — {d:?} in {:?}", started.elapsed());
        assert!(is(&e), "{fault:?}: {e:?}");
        let sentence = format!("the names could not be refreshed: {e}");
        assert!(
            sentence.contains(words) || (fault == Fault::Down && sentence.contains("503")),
            "{fault:?}: {sentence}"
        );
        assert_eq!(d, want, "{fault:?}: requests");
        assert!(started.elapsed() < Duration::from_secs(6), "{fault:?}");
    }

    // Stuck In Progress: polls back off (100 ms, 200 ms, 400 ms … 1 s) until the overall
    // timeout of 4 s; the POST is not sent again.
    s.set_data_api_fault(Some(Fault::Stuck));
    let before = s.data_api_counts();
    let started = Instant::now();
    let e = c.export("v1/locations", json!({})).await.unwrap_err();
    let d = delta(s.data_api_counts(), before);
    assert!(matches!(e, DataApiError::TimedOut(4)), "{e}");
    assert_eq!(d.posts, 1);
    assert!(
        (4..=8).contains(&d.polls),
        "backoff, not a tight loop: {d:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(4));

    // 50 000 names rows: read in full (in several files), within the default timeout.
    s.set_data_api_fault(None);
    let mut c = c;
    c.policy.overall = PollPolicy::default().overall;
    s.set_data_api_extra_rows(50_000);
    let before = s.data_api_counts();
    let started = Instant::now();
    let rows = c
        .export(
            "v3/devices/properties",
            json!({"odata": {"$select": "sensor_uuid,sensor_display_name,device_uuid"}}),
        )
        .await
        .unwrap();
    let d = delta(s.data_api_counts(), before);
    eprintln!(
        "50 000 rows: {} rows, {d:?} in {:?}",
        rows.len(),
        started.elapsed()
    );
    assert_eq!(rows.len(), 50_004);
    // Six files; on a loaded machine the first export may time out once and be POSTed again.
    assert!(d.posts <= 2 && (6..=12).contains(&d.downloads), "{d:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    s.stop().await;
}

/// The refresh task and the real engine: names and limits in the popup, the account's
/// status sentence, 24 h backfilled into history without a single popup even though a
/// rule would fire on those values; then the Data API goes down and the names stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_limits_backfill_through_the_engine_and_names_kept_when_the_api_fails() {
    let s = server(demo_tenant()).await;
    let slot = TokenSlot::default();
    let history = History::open_in_memory().unwrap();
    let notifier = Arc::new(RecordingNotifier::new());
    let (tx, rx) = mpsc::channel::<Delivery>(4096);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let mut settings = Settings::default();
    // Would fire on every backfilled Fridge value (the simulated ones are around 5 °C).
    settings.rules.push(ThresholdRule {
        id: "r1".into(),
        name: "Fridge above 0".into(),
        enabled: true,
        target: RuleTarget::Sensor(FRIDGE.into()),
        quantity: String::new(),
        limit: Limit::Above { value: 0.0 },
        hysteresis: 0.0,
        min_count: 1,
        min_duration_secs: 0,
        unit: String::new(),
    });
    let eng = engine::spawn(settings, history.clone(), notifier.clone(), rx, status_rx);
    let mut out = eng.subscribe();
    let mut status = alarm_tray::event::FeedStatus::new("saveris:acc".into(), "Saveris".into());
    status.state = alarm_tray::event::FeedState::Live;
    status_tx.send(status).unwrap();

    let (names_tx, mut names_rx) = mpsc::unbounded_channel::<NamesUpdate>();
    let forward = {
        let eng = eng.clone();
        tokio::spawn(async move {
            while let Some(u) = names_rx.recv().await {
                eng.update_names(u);
            }
        })
    };
    // Wired as the runtime wires it: the engine's "unknown sensor" to the task's poke.
    let (poke, wanted) = mpsc::unbounded_channel();
    let mut engine_wants = eng.take_names_wanted().unwrap();
    let pokes = tokio::spawn(async move {
        while engine_wants.recv().await.is_some() {
            let _ = poke.send(());
        }
    });
    let mut cfg = RefreshConfig::new("acc", client(&s, &slot), None);
    cfg.unknown_gap = Duration::from_secs(2);
    let task = refresh::spawn(cfg, slot.clone(), names_tx, tx.clone(), wanted);
    // Nothing happens before the push feed has a token.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.data_api_counts().posts, 0);
    push_feed_login(&s, &slot).await;

    let named = timeout(Duration::from_secs(20), async {
        loop {
            eng.poke().await;
            let st = eng.status();
            let names = st.feeds.iter().find_map(|f| f.names.clone());
            let stored = history.series(FRIDGE, 0).unwrap().len();
            if names.is_some() && stored >= 280 {
                return (names, stored);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("names and backfill within 20 s");
    assert_eq!(named.0.as_deref(), Some("names last refreshed just now"));
    eprintln!("backfilled {} Fridge readings", named.1);
    let popped_by_backfill = notifier.shown().len();
    assert_eq!(popped_by_backfill, 0, "backfilled values never pop");
    assert!(
        history.alarms(&AlarmFilter::default()).unwrap().is_empty(),
        "backfilled values raise nothing"
    );

    // A live alarm: the vendor's name, its area and the equipment's limit.
    let body = json!({
        "uuid": "a-1", "alarm_status": "Alarm", "alarm_condition_type": "Upper limit",
        "alarm_severity": "Alarm", "alarm_time": jiff::Timestamp::now().to_string(),
        "alarm_value": "9.5", "physical_unit": "°C", "physical_value": "Temperature",
        "alarm_source_uuid": FRIDGE, "alarm_type": "measurement alarm", "serial_number": "61234502"
    });
    let ev = payload::to_event(
        "acc",
        "alarms",
        body.to_string().as_bytes(),
        jiff::Timestamp::now(),
    );
    tx.send(Delivery {
        event: ev,
        ack: alarm_tray::event::Ack::none(),
    })
    .await
    .unwrap();
    eng.poke().await;
    let shown = notifier.shown();
    let popup = shown.last().expect("the live alarm pops");
    assert_eq!(
        popup.summary,
        "Alarm: Fridge 1 - Air Sensor \u{b7} Kitchen \u{2014} Upper limit"
    );
    assert!(
        popup.body.starts_with("9.5 °C, upper limit 8.0 °C"),
        "{}",
        popup.body
    );
    // No zone in the account: the tenant's main_timezone names the site's time, where it
    // reads differently from this desktop's (issue 20).
    let now = jiff::Timestamp::now();
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    if jiff::tz::TimeZone::system().to_offset(now) != berlin.to_offset(now) {
        assert!(
            popup.body.contains(" site time (Europe/Berlin)"),
            "{}",
            popup.body
        );
    }
    let row = &history.alarms(&AlarmFilter::default()).unwrap()[0];
    assert_eq!(
        row.limit.as_deref(),
        Some("upper limit 8.0 °C"),
        "history's Limit column"
    );
    let mut events = 0;
    while let Ok(o) = out.try_recv() {
        if let Output::Decision {
            decision: Decision::Popup { popup, .. },
        } = &o
        {
            assert!(
                !popup.summary.contains("Fridge above 0"),
                "no rule popup: {}",
                popup.summary
            );
        }
        if let Output::Event { event, .. } = o {
            if event.kind == EventKind::Measurement && event.sensor.as_deref() == Some(FRIDGE) {
                assert_eq!(
                    event.name.as_deref(),
                    Some("Fridge 1 - Air Sensor \u{b7} Kitchen")
                );
                events += 1;
            }
        }
    }
    assert!(events >= 280, "backfilled events carry the name: {events}");

    // The Data API goes down; an unknown sensor asks for a refresh (once within the gap).
    s.set_data_api_fault(Some(Fault::Down));
    let before = s.data_api_counts();
    for i in 0..20 {
        let m = json!({
            "uuid": format!("m-{i}"), "sensor_uuid": format!("new-sensor-{i}"), "channel_no": 1,
            "physical_property_name": "Temperature", "physical_unit": "°C",
            "timestamp": jiff::Timestamp::now().to_string(), "measurement": 4.0, "serial_no": "999"
        });
        let ev = payload::to_event(
            "acc",
            "measurements-v2",
            m.to_string().as_bytes(),
            jiff::Timestamp::now(),
        );
        tx.send(Delivery {
            event: ev,
            ack: alarm_tray::event::Ack::none(),
        })
        .await
        .unwrap();
    }
    let sentence = timeout(Duration::from_secs(30), async {
        loop {
            eng.poke().await;
            let s = eng.status().feeds.iter().find_map(|f| f.names.clone());
            if s.as_deref().is_some_and(|s| s.contains("failed")) {
                return s.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no failure sentence; engine says {:?}", eng.status().feeds));
    assert!(
        sentence.starts_with("names last refreshed just now; the last refresh failed: the Data API answered HTTP 503"),
        "{sentence}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = delta(s.data_api_counts(), before);
    // One refresh for 20 unknown readings: 4 exports, each POSTed at most twice.
    assert!(d.posts <= 8, "no tight loop: {d:?}");
    // The live readings were stored all the same, under their serial-based names.
    assert_eq!(history.series("new-sensor-19", 0).unwrap().len(), 1);
    // And the known names stay.
    assert_eq!(
        history.alarms(&AlarmFilter::default()).unwrap()[0]
            .name
            .as_deref(),
        Some("Fridge 1 - Air Sensor \u{b7} Kitchen")
    );

    task.stop().await;
    forward.abort();
    pokes.abort();
    eng.shutdown().await;
    s.stop().await;
}

/// `watch --demo`: Saveris lines carry the Data API's names, the cold room's breach popup
/// names it with its limit, and 24 h of backfilled readings print without a popup.
#[test]
fn watch_demo_lines_carry_names_limits_and_backfill() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let out = Command::new(desktop::app_bin())
        .args([
            "watch",
            "--demo",
            "--for",
            "25",
            "--seed",
            "1",
            "--no-notify",
        ])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("watch --demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names = std::collections::BTreeSet::new();
    let (mut backfilled, mut live) = (0, 0);
    // The demo tenant's site is in Berlin; this desktop is not (UTC): live lines name the
    // site's time (issue 20).
    let now = jiff::Timestamp::now();
    let away = jiff::tz::TimeZone::system().to_offset(now)
        != jiff::tz::TimeZone::get("Europe/Berlin")
            .unwrap()
            .to_offset(now);
    let mut site_times = 0;
    let mut popups = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("event") if v["event"]["source"] == "saveris" => {
                if let Some(n) = v["event"]["name"].as_str() {
                    names.insert(n.to_string());
                }
                if v["event"]["backfill"] == true {
                    backfilled += 1;
                } else {
                    live += 1;
                }
                if let Some(t) = v["site_time"].as_str() {
                    assert!(t.ends_with(" site time (Europe/Berlin)"), "{t}");
                    site_times += 1;
                }
            }
            Some("decision") if v["decision"]["kind"] == "popup" => {
                popups.push(format!(
                    "{} | {}",
                    v["decision"]["popup"]["summary"].as_str().unwrap_or(""),
                    v["decision"]["popup"]["body"].as_str().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
    eprintln!("names {names:?}\n{backfilled} backfilled, {live} live\npopups {popups:#?}");
    assert!(
        names.contains("Fridge 1 - Air Sensor \u{b7} Kitchen"),
        "{names:?}"
    );
    assert!(
        names.contains("Cold room - Air Sensor \u{b7} Storage"),
        "{names:?}"
    );
    assert!(backfilled >= 4 * 280, "24 h for 4 sensors: {backfilled}");
    if away {
        assert!(
            site_times >= backfilled,
            "{site_times} lines with the site's time"
        );
        assert!(
            popups
                .iter()
                .any(|p| p.contains("site time (Europe/Berlin)")),
            "{popups:#?}"
        );
    }
    assert!(live >= 5, "{live}");
    assert!(
        popups
            .iter()
            .any(|p| p.contains("Cold room - Air Sensor \u{b7} Storage")
                && p.contains("upper limit 8.0 °C")),
        "{popups:#?}"
    );
    assert!(
        popups.len() < 10,
        "backfilled values do not pop: {popups:#?}"
    );
}

/// The real app (monitor, private profile) logs in to the project's Saveris server, takes
/// its names from the Data API, and a live alarm's popup, read from the notification daemon
/// on D-Bus, names "Fridge 1 - Air Sensor · Kitchen" with its equipment's limit and the
/// site's time (the tenant's `main_timezone`, no zone set in the account) (issue 20).
#[test]
fn dbus_popup_names_the_fridge_with_its_limit_and_site_time() {
    use alarm_tray::ipc::client::Client;
    use alarm_tray::ipc::protocol::Request;
    use alarm_tray::secrets::SecretKey;
    use alarm_tray::settings::{Channels, CustomEndpoint, SaverisAccount};

    desktop::require_desktop();
    let _serial = desktop::serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(server(demo_tenant()));
    let profile = desktop::Profile::new();
    let _monitor = profile.start_monitor();
    let client = Client::new(&profile.socket());
    let id = crate::peers::unique("names-dbus");
    let mut settings: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    settings.saveris.push(SaverisAccount {
        id: id.clone(),
        username: USER.into(),
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: false,
        },
        custom: Some(CustomEndpoint {
            ws_url: s.ws_url(),
            token_url: s.token_url(),
            ..Default::default()
        }),
        ..Default::default()
    });
    rt.block_on(client.ask::<()>(Request::SaveSettings { settings }))
        .unwrap();
    rt.block_on(client.ask::<()>(Request::SetSecret {
        key: SecretKey::SaverisPassword(id.clone()),
        value: PASSWORD.into(),
    }))
    .unwrap();
    desktop::wait_for(Duration::from_secs(60), "names from the Data API", || {
        let st: alarm_tray::engine::model::Status =
            rt.block_on(client.ask(Request::Status)).unwrap();
        st.feeds
            .iter()
            .any(|f| f.names.as_deref() == Some("names last refreshed just now"))
    });
    let watch = desktop::NotifyWatch::start();
    let now = jiff::Timestamp::now();
    let body = json!({
        "uuid": crate::peers::unique("a"), "alarm_status": "Alarm",
        "alarm_condition_type": "Upper limit", "alarm_severity": "Alarm",
        "alarm_time": now.to_string(), "alarm_value": "9.5", "physical_unit": "°C",
        "physical_value": "Temperature", "alarm_source_uuid": FRIDGE,
        "alarm_type": "measurement alarm", "serial_number": "61234502"
    });
    s.publish(USER, "alarms", body.to_string());
    let text = watch.wait_for(
        "Fridge 1 - Air Sensor \u{b7} Kitchen",
        Duration::from_secs(30),
    );
    let call = text
        .split("\nmethod ")
        .find(|m| m.contains("Fridge 1 - Air Sensor \u{b7} Kitchen"))
        .unwrap_or_default()
        .to_string();
    eprintln!("{call}");
    assert!(call.contains("Upper limit"), "{call}");
    assert!(call.contains("9.5 °C, upper limit 8.0 °C"), "{call}");
    // The desktop here is not in Berlin's offset (the session runs in UTC): the site's
    // time is named beside it.
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    if jiff::tz::TimeZone::system().to_offset(now) != berlin.to_offset(now) {
        let site = now.to_zoned(berlin).strftime("%H:%M").to_string();
        assert!(
            call.contains(&format!("{site} site time (Europe/Berlin)")),
            "{call}"
        );
    }
    rt.block_on(s.stop());
}

/// While running: the push feed loses its link (the server drops it), reconnects, and the
/// Data API fills in the outage from `/v2/measurements` — one window of at least 5 min
/// ending at the reconnect, every sensor's readings through the outage, backfilled (no
/// popups); a second outage right after is not asked for in an overlapping window (issue 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_push_feed_is_filled_in_from_the_data_api() {
    use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
    use alarm_tray::settings::{Channels, CustomEndpoint, SaverisAccount};

    let mut tenant = demo_tenant();
    tenant.measuring_minutes = 1;
    let sensors = tenant.sensors.len();
    let s = server(tenant).await;
    let slot = TokenSlot::default();
    let account = SaverisAccount {
        id: "acc".into(),
        username: USER.into(),
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: false,
        },
        custom: Some(CustomEndpoint {
            ws_url: s.ws_url(),
            token_url: s.token_url(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut cfg =
        crate::saveris::fast(SaverisFeedConfig::new(account, Some(PASSWORD.into()), None));
    cfg.token = slot.clone();
    let (tx, mut rx) = mpsc::channel::<Delivery>(4096);
    let (status_tx, _status_rx) = mpsc::unbounded_channel();
    let feed = saveris::spawn(cfg, tx.clone(), status_tx);
    let (names_tx, _names_rx) = mpsc::unbounded_channel::<NamesUpdate>();
    let (_poke, wanted) = mpsc::unbounded_channel();
    // Readings stored a moment ago: no start backfill, only the outage's.
    let cfg = RefreshConfig::new("acc", client(&s, &slot), Some(jiff::Timestamp::now()));
    let task = refresh::spawn(cfg, slot.clone(), names_tx, tx.clone(), wanted);
    let live = |n: u64| {
        let s = &s;
        async move {
            timeout(Duration::from_secs(20), async {
                while s.connects() < n || s.connections(USER) == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("the push feed is live")
        }
    };
    live(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.data_api_posts_to("v2/measurements"),
        0,
        "nothing missed yet"
    );

    let down = jiff::Timestamp::now();
    s.drop_connections();
    live(2).await;
    let up = jiff::Timestamp::now();
    let mut got: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    let filled = timeout(Duration::from_secs(30), async {
        while got.values().map(Vec::len).sum::<usize>() < sensors * 5 {
            let d = rx.recv().await.expect("deliveries");
            let e = d.event;
            if e.kind == EventKind::Measurement {
                assert!(e.backfill, "from the Data API, stored without popups");
                let at = e.measured_at.unwrap().as_second();
                got.entry(e.sensor.clone().unwrap()).or_default().push(at);
            }
        }
    })
    .await;
    eprintln!("outage {down} .. {up}; filled in {got:?}");
    assert!(filled.is_ok(), "the outage filled in within 30 s: {got:?}");
    assert_eq!(s.data_api_posts_to("v2/measurements"), 1);
    assert_eq!(got.len(), sensors, "every sensor");
    for times in got.values() {
        // The simulated loggers measure every minute: five readings of the 5 min window
        // ending at the reconnect, the outage inside it, no hole.
        assert_eq!(times.len(), 5, "{times:?}");
        let (first, last) = (times[0], times[4]);
        assert!(
            first >= up.as_second() - 301 && first <= down.as_second(),
            "{times:?}"
        );
        assert!(last <= up.as_second(), "{times:?}");
        assert!(times.windows(2).all(|w| w[1] - w[0] == 60), "{times:?}");
    }

    // A second outage at once: its 5 min window would overlap the one just asked for, so
    // it waits until it can start where that one ended (no request within these seconds).
    s.drop_connections();
    live(3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        s.data_api_posts_to("v2/measurements"),
        1,
        "no overlapping window"
    );

    task.stop().await;
    feed.stop().await;
    s.stop().await;
}

/// CSV result files (the vendor's default format) give the same names, places, limits and
/// measurements as JSON ones; a CSV file cut short is malformed and not asked for again
/// (issue 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_result_files_give_the_same_names_and_a_cut_one_is_malformed() {
    use alarm_tray::feeds::saveris::dataapi::ResultFormat;

    let s = server(demo_tenant()).await;
    let slot = TokenSlot::default();
    push_feed_login(&s, &slot).await;
    let json_client = client(&s, &slot);
    let mut csv_client = client(&s, &slot);
    csv_client.format = ResultFormat::Csv;

    let sorted = |mut v: Vec<alarm_tray::event::NameEntry>| {
        v.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        v
    };
    let from_json = sorted(refresh::fetch_names(&json_client).await.unwrap());
    let from_csv = sorted(refresh::fetch_names(&csv_client).await.unwrap());
    assert!(!from_csv.is_empty());
    assert_eq!(from_csv, from_json, "the same names from either format");
    let fridge = from_csv.iter().find(|n| n.id == FRIDGE).unwrap();
    assert_eq!(fridge.label(), "Fridge 1 - Air Sensor \u{b7} Kitchen");
    assert_eq!(fridge.limits.upper_violation, Some(8.0));
    assert_eq!(fridge.timezone.as_deref(), Some("Europe/Berlin"));

    let now = jiff::Timestamp::now();
    let window = json!({
        "date_time_from": (now - jiff::SignedDuration::from_hours(1)).to_string(),
        "date_time_until": now.to_string(),
    });
    let rows = csv_client
        .export("v2/measurements", window.clone())
        .await
        .unwrap();
    assert!((4 * 11..=4 * 13).contains(&rows.len()), "{}", rows.len());
    // A CSV row is text: it maps to the same reading as the JSON one.
    let ev = |r: &serde_json::Map<String, serde_json::Value>| {
        let body = serde_json::Value::Object(r.clone()).to_string();
        payload::to_event("acc", "measurements-v2", body.as_bytes(), now)
    };
    let json_rows = json_client.export("v2/measurements", window).await.unwrap();
    let (a, b) = (ev(&rows[0]), ev(&json_rows[0]));
    assert_eq!((a.key, a.value, a.sensor), (b.key, b.value, b.sensor));

    s.set_data_api_fault(Some(Fault::Malformed));
    let before = s.data_api_counts();
    let e = csv_client
        .export("v4/equipments", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, DataApiError::Malformed(_)), "{e}");
    let d = delta(s.data_api_counts(), before);
    assert_eq!((d.posts, d.downloads), (1, 1), "not asked for again: {d:?}");
    s.stop().await;
}
