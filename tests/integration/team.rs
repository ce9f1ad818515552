//! Issue 26: team sharing against a real mosquitto (Debian's, started by the test on a free
//! loopback port with a password file, stopped by PID).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alarm_tray::team::envelope::{self, Envelope, Kind};
use alarm_tray::team::link::{self, Incoming, Outbox, OutboxRow};
use alarm_tray::team::{TeamConfig, TeamStatus};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::peers::mosquitto::{Mosquitto, PASSWORD, USER};

const KEY: &[u8] = b"the site key of lab one";

/// An outbox in memory: rows leave it on PUBACK as from the history's table.
#[derive(Default)]
struct MemOutbox(Mutex<Vec<OutboxRow>>);

impl MemOutbox {
    fn push(&self, id: i64, n: i64) {
        self.0.lock().unwrap().push(OutboxRow {
            id,
            kind: Kind::Alarm,
            tail: "pc-a".into(),
            retain: false,
            body: Some(json!({"identity": format!("rule:r1:s{n}"), "change": "raised"})),
            at_ms: 1,
        });
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Outbox for MemOutbox {
    fn pending(&self, after: i64, limit: usize) -> Result<Vec<OutboxRow>, String> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.id > after)
            .take(limit)
            .cloned()
            .collect())
    }
    fn done(&self, id: i64) -> Result<(), String> {
        self.0.lock().unwrap().retain(|r| r.id != id);
        Ok(())
    }
}

fn cfg(m: &Mosquitto, pc: &str) -> TeamConfig {
    TeamConfig {
        broker_url: m.url(),
        site: "lab1".into(),
        pc: pc.into(),
        user: USER.into(),
        password: Some(PASSWORD.into()),
        site_key: KEY.to_vec(),
    }
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Takes what arrives, confirming each as stored; returns the identities.
async fn take(rx: &mut mpsc::Receiver<Incoming>, n: usize, within: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + within;
    while got.len() < n {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(m)) => {
                got.push(
                    m.envelope.body["identity"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                m.ack.confirm();
            }
            _ => break,
        }
    }
    got
}

fn status(s: &watch::Receiver<TeamStatus>) -> TeamStatus {
    s.borrow().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_link_shares_signed_outbox_rows_drops_forged_ones_and_keeps_the_session() {
    let m = Mosquitto::start().expect("mosquitto");
    let out_a = Arc::new(MemOutbox::default());
    let out_b = Arc::new(MemOutbox::default());
    for i in 1..=50 {
        out_a.push(i, i);
    }
    let (tx_b, mut rx_b) = mpsc::channel(1024);
    let b = link::spawn(cfg(&m, "pc-b"), out_b.clone(), tx_b).expect("link b");
    let sb = b.status();
    until("pc-b live", Duration::from_secs(10), || {
        status(&sb).state == "live"
    })
    .await;
    // pc-b subscribed (its session now holds the subscription) before pc-a publishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx_a, _rx_a) = mpsc::channel(1024);
    let a = link::spawn(cfg(&m, "pc-a"), out_a.clone(), tx_a).expect("link a");
    let sa = a.status();

    // 50 rows arrive at pc-b, in order, once each; pc-a's outbox empties on PUBACK.
    let got = take(&mut rx_b, 50, Duration::from_secs(15)).await;
    let want: Vec<String> = (1..=50).map(|n| format!("rule:r1:s{n}")).collect();
    assert_eq!(got, want);
    until("pc-a's outbox to empty", Duration::from_secs(5), || {
        out_a.len() == 0
    })
    .await;

    // Both see each other online (retained presence).
    until("presence of both", Duration::from_secs(5), || {
        let p = status(&sb).peers;
        p.iter().any(|p| p.pc == "pc-a" && p.online) && p.iter().any(|p| p.pc == "pc-b" && p.online)
    })
    .await;

    // A forged acknowledgement (a wrong signature) and an unsigned one: dropped and counted.
    let forged = json!({"v":1,"pc":"pc-a","at_ms":1,"kind":"alarm",
        "body":{"identity":"rule:r1:s1","change":"acked","user":"mallory"},"sig":"00".repeat(32)});
    assert!(m.publish("alarm-tray/lab1/alarm/pc-a", &forged.to_string()));
    let mut unsigned = forged.clone();
    unsigned.as_object_mut().unwrap().remove("sig");
    assert!(m.publish("alarm-tray/lab1/alarm/pc-a", &unsigned.to_string()));
    until("2 forged messages counted", Duration::from_secs(5), || {
        status(&sb).forged_dropped == 2
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx_b.recv())
            .await
            .is_err(),
        "a forged message reached the receiver"
    );
    // A genuine one published with the site key by hand does arrive.
    let topic = "alarm-tray/lab1/alarm/pc-a";
    let genuine = envelope::seal(
        KEY,
        topic,
        &Envelope {
            v: 1,
            pc: "pc-a".into(),
            at_ms: 2,
            kind: Kind::Alarm,
            body: json!({"identity":"rule:r1:s1","change":"acked","user":"ana"}),
        },
    );
    assert!(m.publish(topic, &String::from_utf8(genuine).unwrap()));
    assert_eq!(
        take(&mut rx_b, 1, Duration::from_secs(5)).await,
        vec!["rule:r1:s1"]
    );

    // pc-b goes away; pc-a shares 20 more; pc-b comes back with the same client id and its
    // persistent session brings them.
    let cfg_b = cfg(&m, "pc-b");
    b.stop(&cfg_b).await;
    drop(rx_b);
    until("pc-b offline at pc-a", Duration::from_secs(5), || {
        status(&sa)
            .peers
            .iter()
            .any(|p| p.pc == "pc-b" && !p.online)
    })
    .await;
    for i in 51..=70 {
        out_a.push(i, i);
    }
    a.poke().notify_one();
    until(
        "pc-a's outbox to empty again",
        Duration::from_secs(10),
        || out_a.len() == 0,
    )
    .await;
    let (tx_b, mut rx_b) = mpsc::channel(1024);
    let b = link::spawn(cfg_b.clone(), out_b, tx_b).expect("link b again");
    // At least once: a message pc-b confirmed just before it stopped may come again (its
    // PUBACK can lose the race with the DISCONNECT); receivers drop it by identity.
    let want: Vec<String> = (51..=70).map(|n| format!("rule:r1:s{n}")).collect();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(15);
    while !want.iter().all(|w| got.contains(w)) && Instant::now() < end {
        got.extend(take(&mut rx_b, 1, Duration::from_secs(2)).await);
    }
    let missed: Vec<&String> = got.iter().filter(|g| want.contains(g)).collect();
    assert_eq!(
        missed,
        want.iter().collect::<Vec<_>>(),
        "what pc-b missed while it was off, in order"
    );
    assert!(
        got.iter().all(|g| want.contains(g) || g == "rule:r1:s1"),
        "only the last confirmed message may come again: {got:?}"
    );

    // The broker goes away for a while: rows written meanwhile wait in the outbox and are
    // published after it is back; nothing is lost.
    m.stop();
    until("pc-a not live", Duration::from_secs(10), || {
        status(&sa).state != "live"
    })
    .await;
    for i in 71..=80 {
        out_a.push(i, i);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(out_a.len(), 10, "rows leave the outbox only on PUBACK");
    m.restart().expect("mosquitto again");
    // QoS 1 is at least once: after the restart the broker may send messages again that
    // pc-b had acknowledged just before (receivers drop them by identity). What counts is
    // that every row written while the broker was down arrives.
    let want: Vec<String> = (71..=80).map(|n| format!("rule:r1:s{n}")).collect();
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(40);
    while !want.iter().all(|w| seen.contains(w)) && Instant::now() < end {
        seen.extend(take(&mut rx_b, 1, Duration::from_secs(2)).await);
    }
    let missing: Vec<&String> = want.iter().filter(|w| !seen.contains(w)).collect();
    assert!(
        missing.is_empty(),
        "rows written while the broker was down, missing: {missing:?}"
    );
    let again = seen.iter().filter(|s| !want.contains(s)).count();
    eprintln!(
        "after the broker restart: {} messages, {again} of them sent again",
        seen.len()
    );
    until(
        "pc-a's outbox to empty after the outage",
        Duration::from_secs(10),
        || out_a.len() == 0,
    )
    .await;
    a.stop(&cfg(&m, "pc-a")).await;
    b.stop(&cfg_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_test_connection_says_what_the_broker_answered() {
    let m = Mosquitto::start().expect("mosquitto");
    let ok = alarm_tray::team::test_connection(&cfg(&m, "pc-t")).await;
    assert!(ok.as_ref().is_ok_and(|s| s.contains("connected")), "{ok:?}");
    let mut bad = cfg(&m, "pc-t");
    bad.password = Some("wrong".into());
    let err = alarm_tray::team::test_connection(&bad).await;
    assert!(err.is_err(), "a wrong password connected: {err:?}");
}

// ------------------------------------------------- three PCs, one Saveris user, one broker

/// A Saveris measurement alarm on its own sensor (so each is its own alarm).
fn saveris_alarm(i: usize) -> String {
    format!(
        r#"{{"uuid":"team-{i}","alarm_status":"Alarm","last_status_change_time":"2024-05-01T10:00:00Z","alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"2024-05-01T10:00:00Z","alarm_value":"9.5","physical_unit":"°C","physical_value":"Temperature","alarm_source_uuid":"sensor-{i}","alarm_type":"measurement alarm","serial_number":"{i}"}}"#
    )
}

fn keyring_store(entry: &str, secret: &str) {
    crate::desktop::secret_tool_store(std::process::Command::new("secret-tool"), entry, secret);
}

fn keyring_clear(entry: &str) {
    let _ = std::process::Command::new("secret-tool")
        .args(["clear", "service", "alarm-tray", "username", entry])
        .status();
}

fn team_settings(
    server: &alarm_tray::simulate::saveris::SaverisServer,
    user: &str,
    broker: &str,
    site: &str,
    pc: &str,
) -> alarm_tray::settings::Settings {
    use alarm_tray::settings::{Channels, CustomEndpoint, LoginMethod, SaverisAccount, Settings};
    let mut s = Settings::default();
    s.saveris.push(SaverisAccount {
        // The site is unique per test: so are the keyring entries of tests running at
        // the same time (one test clearing its entries must not take another's).
        id: format!("acc-{site}-{pc}"),
        enabled: true,
        username: user.into(),
        login: LoginMethod::DataApi,
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: false,
        },
        custom: Some(CustomEndpoint {
            ws_url: server.ws_url(),
            destination_pattern: String::new(),
            token_url: server.token_url(),
            stomp_login: String::new(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    });
    s.team.enabled = true;
    s.team.broker_url = broker.into();
    s.team.site = site.into();
    s.team.pc_name = pc.into();
    s.team.user = USER.into();
    s
}

/// `watch` of one PC, its stdout in a file.
struct WatchPc {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl WatchPc {
    fn start(settings: &alarm_tray::settings::Settings) -> WatchPc {
        use std::process::{Command, Stdio};
        let dir = tempfile::Builder::new()
            .prefix("at-team-pc-")
            .tempdir()
            .unwrap();
        let file = dir.path().join("settings.json");
        alarm_tray::settings::save(&file, settings).unwrap();
        let out = std::fs::File::create(dir.path().join("stdout.jsonl")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(crate::desktop::app_bin());
        cmd.args(["watch", "--settings"])
            .arg(&file)
            .args(["--no-notify"])
            .env("ALARM_TRAY_DATA_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = crate::peers::spawn_child(cmd).expect("alarm-tray watch");
        WatchPc { dir, child }
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("stdout.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn decisions(&self, kind: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["type"] == "decision" && v["decision"]["kind"] == kind)
            .map(|v| v["decision"].clone())
            .collect()
    }

    fn team(&self) -> Option<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["type"] == "team")
            .map(|v| v["team"].clone())
            .next_back()
    }

    /// Alarms this PC took from the Saveris queue itself (not through the team).
    fn direct_alarms(&self) -> usize {
        self.lines()
            .iter()
            .filter(|v| {
                v["type"] == "event"
                    && v["event"]["kind"] == "alarm_raised"
                    && !v["event"]["subscription"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("team:")
            })
            .count()
    }

    /// Saveris alarms raised here, by sensor.
    fn raised_sensors(&self) -> Vec<String> {
        self.decisions("alarm_raised")
            .iter()
            .filter_map(|d| d["alarm"]["sensor"].as_str().map(String::from))
            .collect()
    }

    fn stop(&mut self) {
        crate::peers::stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for WatchPc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The site's key in every team test.
const SITE_KEY: &str = "0123456789abcdef-site-key";

/// One site for a team test: a runtime, mosquitto, one Saveris login on the simulator, and
/// in the real keyring the Saveris passwords of the `watch` PCs named, the broker password
/// and the site key (`entries`, which the test clears at its end).
struct Lab {
    rt: tokio::runtime::Runtime,
    m: Mosquitto,
    user: String,
    site: String,
    server: alarm_tray::simulate::saveris::SaverisServer,
    entries: Vec<String>,
}

impl Lab {
    fn start(user_prefix: &str, watch_pcs: &[&str]) -> Lab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let m = Mosquitto::start().expect("mosquitto");
        let user = crate::peers::unique(user_prefix);
        let site = crate::peers::unique("site").replace(['.', ':'], "-");
        let server = rt
            .block_on(alarm_tray::simulate::saveris::SaverisServer::start(vec![(
                user.clone(),
                "pw-lab".into(),
            )]))
            .unwrap();
        let mut secrets: Vec<(String, &str)> = watch_pcs
            .iter()
            .map(|pc| (format!("saveris:acc-{site}-{pc}:password"), "pw-lab"))
            .collect();
        secrets.push((format!("team:{site}:broker-password"), PASSWORD));
        secrets.push((format!("team:{site}:site-key"), SITE_KEY));
        for (e, s) in &secrets {
            keyring_store(e, s);
        }
        let entries = secrets.into_iter().map(|(e, _)| e).collect();
        Lab {
            rt,
            m,
            user,
            site,
            server,
            entries,
        }
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three PCs with one Saveris login: the queue splits the 500 alarms between them, the
/// team puts them back together. Each PC shows all 500, each once; an acknowledgement on
/// PC a reaches b and c within 2 s with who and where; a forged one is dropped and counted.
#[test]
fn team_three_pcs_one_saveris_user_see_every_alarm_once_and_share_acknowledgements() {
    crate::desktop::require_desktop();
    let Lab {
        rt,
        m,
        user,
        site,
        server,
        entries,
    } = Lab::start("teamlab", &["pc-b", "pc-c"]);
    // PC a runs in this process (so the test can acknowledge on it as the window does,
    // with its secrets in the in-memory keyring); b and c are `watch` processes.
    alarm_tray::secrets::init_mock();
    let store = alarm_tray::secrets::SecretStore;
    use alarm_tray::secrets::SecretKey;
    store
        .set(
            &SecretKey::SaverisPassword(format!("acc-{site}-pc-a")),
            "pw-lab",
        )
        .unwrap();
    store
        .set(&SecretKey::TeamPassword(site.clone()), PASSWORD)
        .unwrap();
    store
        .set(&SecretKey::TeamSiteKey(site.clone()), SITE_KEY)
        .unwrap();
    let dir_a = tempfile::Builder::new()
        .prefix("at-team-pc-a-")
        .tempdir()
        .unwrap();
    let db_a = dir_a.path().join("history.sqlite3");
    let history_a = alarm_tray::engine::History::open(&db_a).unwrap();
    let settings_a = team_settings(&server, &user, &m.url(), &site, "pc-a");
    let notifier_a = Arc::new(alarm_tray::notify::RecordingNotifier::new());
    let runtime_a = rt.block_on(alarm_tray::runtime::Runtime::start(
        &settings_a,
        history_a,
        notifier_a.clone(),
    ));
    let team_a = runtime_a.team_status();
    let pcs: Vec<WatchPc> = ["pc-b", "pc-c"]
        .iter()
        .map(|pc| WatchPc::start(&team_settings(&server, &user, &m.url(), &site, pc)))
        .collect();
    let online = |t: &serde_json::Value| {
        t["state"] == "live"
            && t["peers"]
                .as_array()
                .is_some_and(|a| a.iter().filter(|p| p["online"] == true).count() == 3)
    };
    wait_for("three PCs online at each", Duration::from_secs(60), || {
        pcs.iter().all(|p| p.team().is_some_and(|t| online(&t)))
            && team_a
                .borrow()
                .as_ref()
                .is_some_and(|t| online(&serde_json::to_value(t).unwrap()))
    });
    wait_for("three Saveris feeds live", Duration::from_secs(30), || {
        pcs.iter().all(|p| {
            p.lines()
                .iter()
                .rev()
                .find(|v| v["type"] == "status")
                .is_some_and(|v| {
                    v["status"]["feeds"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f["state"] == "live"))
                })
        }) && runtime_a
            .engine()
            .status()
            .feeds
            .iter()
            .any(|f| matches!(f.state, alarm_tray::event::FeedState::Live))
    });

    let count_a = || -> (i64, i64) {
        let c = rusqlite::Connection::open(&db_a).unwrap();
        c.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT sensor) FROM alarms WHERE source = 'saveris'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let started = Instant::now();
    for i in 0..500 {
        server.publish(&user, "alarms", saveris_alarm(i));
    }
    let all_arrived = || pcs.iter().all(|p| p.raised_sensors().len() >= 500) && count_a().0 >= 500;
    let end = Instant::now() + Duration::from_secs(120);
    while !all_arrived() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    if !all_arrived() {
        let direct_b_c: Vec<usize> = pcs.iter().map(|p| p.direct_alarms()).collect();
        let missing: Vec<Vec<usize>> = pcs
            .iter()
            .map(|p| {
                let have: std::collections::HashSet<String> =
                    p.raised_sensors().into_iter().collect();
                (0..500)
                    .filter(|i| !have.contains(&format!("sensor-{i}")))
                    .take(20)
                    .collect()
            })
            .collect();
        panic!(
            "timed out waiting for 500 alarms on every PC: a has {:?}, b and c raised {:?} \
             (taken from Saveris by b and c: {direct_b_c:?}, missing on b and c: {missing:?}); team status on a: {:?}, b and c: {:?}",
            count_a(),
            pcs.iter().map(|p| p.raised_sensors().len()).collect::<Vec<_>>(),
            team_a.borrow().as_ref().map(|t| serde_json::to_value(t).unwrap()),
            pcs.iter().map(|p| p.team()).collect::<Vec<_>>(),
        );
    }
    eprintln!("500 alarms on all three PCs after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count_a(), (500, 500), "PC a: alarms, distinct sensors");
    for (p, name) in pcs.iter().zip(["b", "c"]) {
        let mut s = p.raised_sensors();
        assert_eq!(s.len(), 500, "PC {name}: raised {} times", s.len());
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 500, "PC {name}: {} distinct alarms", s.len());
        // Popped (or summarised) once: never a second popup decision for one alarm.
        let mut popped: Vec<i64> = p
            .decisions("popup")
            .iter()
            .filter(|d| d["repeat"] == false)
            .filter_map(|d| d["popup"]["alarm_id"].as_i64())
            .chain(
                p.decisions("grouped")
                    .iter()
                    .filter_map(|d| d["alarm_id"].as_i64()),
            )
            .collect();
        let n = popped.len();
        popped.sort();
        popped.dedup();
        assert_eq!(popped.len(), n, "PC {name}: an alarm popped twice");
    }
    // The queue split them: each PC took only a part from Saveris itself.
    let direct: Vec<usize> = pcs.iter().map(WatchPc::direct_alarms).collect();
    let direct_a: i64 = rusqlite::Connection::open(&db_a)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'alarm_raised' AND subscription NOT LIKE 'team:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    eprintln!("taken from the Saveris queue by a: {direct_a}, b and c: {direct:?}");
    assert_eq!(direct.iter().sum::<usize>() as i64 + direct_a, 500);

    // A forged acknowledgement of sensor-7's alarm: dropped, counted, the alarm stays open.
    let identity_7: String = rusqlite::Connection::open(&db_a)
        .unwrap()
        .query_row(
            "SELECT alarm_key FROM alarms WHERE sensor = 'sensor-7'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let forged = json!({"v":1,"pc":"pc-a","at_ms":1,"kind":"alarm",
        "body":{"identity": identity_7, "change":"acked","user":"mallory"},"sig":"ab".repeat(32)});
    assert!(m.publish(
        &format!("alarm-tray/{site}/alarm/pc-a"),
        &forged.to_string()
    ));
    wait_for(
        "the forged message counted on b and c",
        Duration::from_secs(10),
        || {
            pcs.iter().all(|p| {
                p.team()
                    .is_some_and(|t| t["forged_dropped"].as_u64().unwrap_or(0) >= 1)
            })
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(pcs.iter().all(|p| p.decisions("acknowledged").is_empty()));

    // Acknowledge sensor-7's alarm on PC a (as the window does, with a comment): b and c
    // show it acknowledged by the person on pc-a within 2 s.
    let id_7: i64 = rusqlite::Connection::open(&db_a)
        .unwrap()
        .query_row("SELECT id FROM alarms WHERE sensor = 'sensor-7'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let t0 = Instant::now();
    rt.block_on(
        runtime_a
            .engine()
            .acknowledge_with(id_7, "window", Some("door closed".into())),
    )
    .expect("acknowledged on a");
    wait_for(
        "the acknowledgement on b and c",
        Duration::from_secs(2),
        || pcs.iter().all(|p| !p.decisions("acknowledged").is_empty()),
    );
    eprintln!(
        "acknowledgement from a reached b and c after {:?}",
        t0.elapsed()
    );
    for p in &pcs {
        let acks = p.decisions("acknowledged");
        assert_eq!(acks.len(), 1, "{acks:?}");
        assert_eq!(acks[0]["by"], "team:pc-a");
        assert!(
            acks[0]["user"].as_str().unwrap_or("").ends_with(" on pc-a"),
            "{acks:?}"
        );
        assert_eq!(acks[0]["comment"], "door closed");
    }

    rt.block_on(runtime_a.shutdown());
    drop(pcs);
    rt.block_on(server.stop());
    for e in &entries {
        keyring_clear(e);
    }
}

impl WatchPc {
    /// The last status line `watch` printed.
    fn status(&self) -> Option<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["type"] == "status")
            .map(|v| v["status"].clone())
            .next_back()
    }
}

/// Issue 26, item 6: Saveris refuses PC b (`max-connections-reached`, the simulator's ERROR
/// frame) while PC a holds the same login live. PC b's feed reads "watching through the
/// team (pc-a)", its tray is not in "feed problem", its status says "2 PCs watching", and
/// it still gets every alarm through the team; its own connection waits (a minute at
/// least) before it tries again.
#[test]
fn team_max_connections_reads_watching_through_the_team() {
    use alarm_tray::simulate::saveris::ErrorKind;
    crate::desktop::require_desktop();
    let Lab {
        rt,
        m,
        user,
        site,
        server,
        entries,
    } = Lab::start("teammax", &["pc-a", "pc-b"]);
    let a = WatchPc::start(&team_settings(&server, &user, &m.url(), &site, "pc-a"));
    let feed_state = |p: &WatchPc| -> Option<serde_json::Value> {
        p.status()?["feeds"]
            .as_array()?
            .iter()
            .find(|f| {
                f["feed"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("saveris:"))
            })
            .cloned()
    };
    wait_for("PC a's Saveris feed live", Duration::from_secs(30), || {
        feed_state(&a).is_some_and(|f| f["state"] == "live")
    });
    let opened = server.connections_opened();
    server.fail_next_connect_with(ErrorKind::MaxConnections);
    let b = WatchPc::start(&team_settings(&server, &user, &m.url(), &site, "pc-b"));
    wait_for(
        "PC b watching through the team",
        Duration::from_secs(40),
        || feed_state(&b).is_some_and(|f| f["state"] == "through_team" && f["pc"] == "pc-a"),
    );
    let status_b = b.status().unwrap();
    assert_ne!(status_b["tray"], "problem", "{status_b}");
    let summary = status_b["summary"].as_str().unwrap_or("");
    assert!(summary.contains("2 PCs watching"), "{summary}");
    assert!(
        summary.contains("watching through the team (pc-a)"),
        "{summary}"
    );
    assert_eq!(status_b["team_pcs"], 2, "{status_b}");
    wait_for("PC a says 2 PCs watching", Duration::from_secs(10), || {
        a.status().is_some_and(|s| s["team_pcs"] == 2)
    });
    // PC a is the only one Saveris gives this login's alarms to, and says so.
    wait_for(
        "PC a says only it receives the account",
        Duration::from_secs(10),
        || {
            a.status().is_some_and(|s| {
                s["summary"]
                    .as_str()
                    .is_some_and(|t| t.contains("only this PC receives Saveris"))
            })
        },
    );
    assert!(
        !b.status().unwrap()["summary"]
            .as_str()
            .unwrap_or("")
            .contains("only this PC"),
        "PC b holds no Saveris feed"
    );
    // The alarms reach b through the team.
    for i in 0..5 {
        server.publish(&user, "alarms", saveris_alarm(i));
    }
    wait_for("5 alarms on b", Duration::from_secs(20), || {
        b.raised_sensors().len() >= 5
    });
    assert_eq!(
        b.direct_alarms(),
        0,
        "b has no Saveris connection of its own"
    );
    // Refused once, then a slow retry: not another attempt within these seconds.
    assert_eq!(
        server.connections_opened() - opened,
        1,
        "PC b tried Saveris again at once"
    );
    assert_eq!(server.connections(&user), 1, "only PC a is connected");
    assert!(b.decisions("popup").iter().all(|d| !d["popup"]["summary"]
        .as_str()
        .unwrap_or("")
        .contains("not connected")));
    drop(b);
    drop(a);
    rt.block_on(server.stop());
    for e in &entries {
        keyring_clear(e);
    }
}

impl WatchPc {
    /// Starts this PC's `watch` again with the same profile (history, settings); its output
    /// goes on in the same file, so what it printed before counts too.
    fn restart(&mut self) {
        use std::process::{Command, Stdio};
        self.stop();
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .unwrap()
        };
        let mut cmd = Command::new(crate::desktop::app_bin());
        cmd.args(["watch", "--settings"])
            .arg(self.dir.path().join("settings.json"))
            .args(["--no-notify"])
            .env("ALARM_TRAY_DATA_DIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(open("stdout.jsonl"))
            .stderr(open("stderr.log"));
        self.child = crate::peers::spawn_child(cmd).expect("alarm-tray watch again");
    }

    /// Every Saveris alarm this PC raised, each exactly once, `n` in all.
    fn has_each_once(&self, n: usize) -> Result<(), String> {
        let mut s = self.raised_sensors();
        let total = s.len();
        s.sort();
        s.dedup();
        if s.len() != total {
            return Err(format!("{} raised twice", total - s.len()));
        }
        let missing: Vec<usize> = (0..n)
            .filter(|i| s.binary_search(&format!("sensor-{i}")).is_err())
            .take(20)
            .collect();
        if missing.is_empty() && total == n {
            Ok(())
        } else {
            Err(format!("{total} raised, missing {missing:?}"))
        }
    }
}

/// Issue 26 tests 3 and 4 with three `watch` processes and one Saveris login: the broker
/// stopped (SIGTERM by PID) for 30 s while alarms arrive — the PCs that take them from
/// Saveris keep popping them, and after the restart every PC has every alarm once; then PC
/// c stopped for 60 s while more arrive — on its return it catches up, nothing twice.
#[test]
fn team_three_pcs_survive_a_broker_outage_and_a_pc_away() {
    crate::desktop::require_desktop();
    let names = ["pc-a", "pc-b", "pc-c"];
    let Lab {
        rt,
        m,
        user,
        site,
        server,
        entries,
    } = Lab::start("teamout", &names);
    let mut pcs: Vec<WatchPc> = names
        .iter()
        .map(|pc| WatchPc::start(&team_settings(&server, &user, &m.url(), &site, pc)))
        .collect();
    let online = |p: &WatchPc, n: usize| {
        p.team().is_some_and(|t| {
            t["state"] == "live"
                && t["peers"]
                    .as_array()
                    .is_some_and(|a| a.iter().filter(|p| p["online"] == true).count() == n)
        })
    };
    wait_for("three PCs online", Duration::from_secs(60), || {
        pcs.iter().all(|p| online(p, 3))
    });
    wait_for("three Saveris feeds live", Duration::from_secs(30), || {
        pcs.iter().all(|p| {
            p.status().is_some_and(|s| {
                s["feeds"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["state"] == "live"))
            })
        })
    });
    let all_have = |pcs: &[WatchPc], n: usize, within: Duration| {
        let end = Instant::now() + within;
        loop {
            let r: Vec<Result<(), String>> = pcs.iter().map(|p| p.has_each_once(n)).collect();
            if r.iter().all(Result::is_ok) {
                return;
            }
            assert!(
                Instant::now() < end,
                "every PC to have {n} alarms once: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let direct = |pcs: &[WatchPc]| pcs.iter().map(WatchPc::direct_alarms).sum::<usize>();

    // 50 alarms with the broker up.
    for i in 0..50 {
        server.publish(&user, "alarms", saveris_alarm(i));
    }
    all_have(&pcs, 50, Duration::from_secs(60));

    // The broker goes away for 30 s; 60 alarms arrive meanwhile, 2 a second.
    let popups = |pcs: &[WatchPc]| -> usize {
        pcs.iter()
            .map(|p| p.decisions("popup").len() + p.decisions("grouped").len())
            .sum()
    };
    let popups_before = popups(&pcs);
    let down = Instant::now();
    m.stop();
    for i in 50..110 {
        server.publish(&user, "alarms", saveris_alarm(i));
        std::thread::sleep(Duration::from_millis(400));
    }
    // Taken from Saveris, stored and popped locally while the broker was down.
    wait_for(
        "60 alarms taken from Saveris while the broker was down",
        Duration::from_secs(5),
        || direct(&pcs) == 110,
    );
    assert!(
        popups(&pcs) > popups_before,
        "no popup while the broker was down"
    );
    assert!(
        down.elapsed() < Duration::from_secs(30),
        "the outage ended early"
    );
    while down.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    m.run_again().expect("mosquitto again");
    let t = Instant::now();
    all_have(&pcs, 110, Duration::from_secs(60));
    eprintln!(
        "after the broker's return every PC had all 110 after {:?}",
        t.elapsed()
    );

    // PC c is away for 60 s while 50 more arrive.
    pcs[2].stop();
    wait_for("a and b see c offline", Duration::from_secs(15), || {
        online(&pcs[0], 2) && online(&pcs[1], 2)
    });
    let away = Instant::now();
    for i in 110..160 {
        server.publish(&user, "alarms", saveris_alarm(i));
    }
    all_have(&pcs[..2], 160, Duration::from_secs(40));
    while away.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    pcs[2].restart();
    let t = Instant::now();
    all_have(&pcs, 160, Duration::from_secs(60));
    eprintln!("PC c caught up 50 missed alarms after {:?}", t.elapsed());
    assert_eq!(direct(&pcs), 160, "each alarm taken from Saveris once");

    drop(pcs);
    rt.block_on(server.stop());
    for e in &entries {
        keyring_clear(e);
    }
}
