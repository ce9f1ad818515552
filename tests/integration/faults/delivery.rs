//! Nothing lost, nothing stored or shown twice, when what carries the alarms dies: the
//! broker killed and restarted mid-stream (case 1), tokens expiring mid-stream (case 3),
//! the ELEMENT server killed during a replay (case 4), the app killed during a burst
//! (case 5), and a full disk (case 8). Then the edges of issue 18: every ACK follows a sync
//! of the history (case 9), a storage failure on a live connection heals without a
//! reconnect (case 10), and what a killed app left unacknowledged pops one by one (case 11).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alarm_tray::event::FeedState;
use alarm_tray::feeds::element::{self, ElementFeedConfig};
use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
use alarm_tray::ipc::protocol::Status;
use alarm_tray::settings::SaverisAccount;
use serde_json::json;
use tokio::time::Instant;

use super::app_child::{AppChild, ChildOptions};
use super::harness::{
    alarm_of_sensor, count_events, duplicate_alarm_popups, element_account, element_server,
    element_timing, loss_and_duplicates, ms, pid_listening_on, publish_surely, read_keys, report,
    saveris_key, soak, wait_for, Proxy, Rng, Stack, KEY,
};
use crate::peers::rabbit::Broker;
use crate::peers::token_broker::{TokenBroker, TokenCounts};
use crate::peers::unique;
use crate::saveris::{alarm_body, fast, rabbit_account, rabbit_publish};

// ---------------------------------------------------------------- case 1

/// RabbitMQ Web-STOMP killed (SIGKILL) and restarted during a stream of persistent alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_1_broker_killed_and_restarted_during_a_stream_loses_nothing() {
    let (kills, total) = if soak() {
        (20usize, 5000usize)
    } else {
        (3, 1000)
    };
    let broker = Arc::new(
        tokio::task::spawn_blocking(Broker::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let user = unique("f1");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    let stack = Stack::new();
    let feed = saveris::spawn(
        fast(SaverisFeedConfig::new(
            account.clone(),
            None,
            Some("guest".into()),
        )),
        stack.deliveries.clone(),
        stack.statuses.clone(),
    );
    let uuids: Vec<String> = (0..total).map(|i| format!("f1-{i}")).collect();
    let expected: Vec<String> = uuids.iter().map(|u| saveris_key(&account, u)).collect();

    let started = Instant::now();
    let batches: Vec<Vec<String>> = uuids
        .chunks(50)
        .enumerate()
        .map(|(b, c)| {
            c.iter()
                .enumerate()
                .map(|(i, u)| alarm_of_sensor(u, (b * 50 + i) % 40))
                .collect()
        })
        .collect();
    // Spread the stream over the kills: about 3 s of stream per kill.
    let pace = Duration::from_millis((kills as u64 * 3000) / batches.len() as u64);
    let publisher = {
        let (url, dest) = (broker.ws_url(), dest.clone());
        tokio::spawn(async move {
            let mut retries = 0;
            for b in batches {
                retries += publish_surely(&url, &dest, &b).await;
                tokio::time::sleep(pace).await;
            }
            retries
        })
    };
    let mut rng = Rng::seeded();
    let mut restart_ms = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(rng.between_ms(500, 2500)).await;
        let pid = pid_listening_on(broker.ws_port).expect("the broker's PID");
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        let t = Instant::now();
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.restart())
            .await
            .unwrap()
            .unwrap();
        restart_ms.push(ms(t.elapsed()));
    }
    let publish_retries = publisher.await.unwrap();
    let within = Duration::from_secs(if soak() { 600 } else { 120 });
    wait_for("every alarm stored", within, || {
        stack.stored() >= total as i64
    })
    .await;
    let all_in = started.elapsed();
    // Late redeliveries would show up now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.engine.poke().await;
    let keys = stack.keys();
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    let (notified, dup_popups) = stack.popups();
    let lives = stack.count_states(|s| *s == FeedState::Live);
    report(
        "1 broker SIGKILL + restart",
        json!({"runs": 1, "kills": kills, "sent": total, "stored": keys.len(), "lost": lost,
               "duplicates": dups, "duplicate_popups": dup_popups, "notified": notified,
               "deliveries": stack.seen.load(Ordering::Relaxed),
               "redelivered": stack.redelivered.load(Ordering::Relaxed),
               "publisher_retries": publish_retries, "reconnects": lives.saturating_sub(1),
               "broker_restart_ms": restart_ms, "all_stored_ms": ms(all_in)}),
    );
    assert_eq!((lost, dups), (0, 0), "no loss, no duplicate");
    assert_eq!(keys.len(), total);
    assert_eq!(dup_popups, 0, "no popup twice");
    assert!(
        lives > kills,
        "reconnected after every kill: {lives} live states"
    );
    feed.stop().await;
    stack.shutdown().await;
    let b = Arc::try_unwrap(broker).ok().unwrap();
    tokio::task::spawn_blocking(move || drop(b)).await.unwrap();
}

// ---------------------------------------------------------------- case 3

/// Tokens that expire every few seconds during a steady stream: the feed renews each one
/// before it runs out and switches sessions without losing or doubling a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_3_token_expiry_mid_stream_renews_and_loses_nothing() {
    let (life, total) = if soak() {
        (Duration::from_secs(8), 3000usize)
    } else {
        (Duration::from_secs(8), 600)
    };
    let broker = TokenBroker::start(life).await;
    let account = SaverisAccount {
        id: "acc-tok".into(),
        username: "u".into(),
        custom: Some(alarm_tray::settings::CustomEndpoint {
            ws_url: format!("ws://127.0.0.1:{}/ws", broker.ws_port),
            destination_pattern: "/queue/{username}/{channel}".into(),
            token_url: format!("http://127.0.0.1:{}/v1/token", broker.login_port),
            stomp_login: String::new(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    };
    let stack = Stack::new();
    let feed = saveris::spawn(
        fast(SaverisFeedConfig::new(
            account.clone(),
            Some("pw".into()),
            None,
        )),
        stack.deliveries.clone(),
        stack.statuses.clone(),
    );
    // A steady stream over about three token lifetimes.
    let pace = (life * 3) / total as u32;
    let uuids: Vec<String> = (0..total).map(|i| format!("f3-{i}")).collect();
    for u in &uuids {
        broker.publish(alarm_body(u));
        tokio::time::sleep(pace).await;
    }
    let within = Duration::from_secs(60);
    wait_for("every alarm stored", within, || {
        stack.stored() >= total as i64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = stack.keys();
    let expected: Vec<String> = uuids.iter().map(|u| saveris_key(&account, u)).collect();
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    let TokenCounts {
        logins,
        connects,
        refused_expired: refused,
        kicked_expired: kicked,
    } = broker.counts();
    report(
        "3 token expiry mid-stream",
        json!({"runs": 1, "token_life_s": life.as_secs(), "sent": total, "stored": keys.len(),
               "lost": lost, "duplicates": dups, "logins": logins, "sessions": connects,
               "refused_expired": refused, "kicked_at_expiry": kicked,
               "redelivered": stack.redelivered.load(Ordering::Relaxed)}),
    );
    assert_eq!((lost, dups), (0, 0));
    assert!(logins >= 3, "tokens were renewed ({logins} logins)");
    assert_eq!(kicked, 0, "every token was renewed before it expired");
    assert_eq!(refused, 0, "no expired token was ever presented");
    feed.stop().await;
    stack.shutdown().await;
}

// ---------------------------------------------------------------- case 4

/// The ELEMENT server killed every 1–3 s (sockets dropped, or the listener gone for a
/// moment) while the feed replays 10,000 readings with `after=` and new ones keep coming:
/// every reading stored once, in order per device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_4_element_server_killed_during_a_replay_stores_all_once_in_order() {
    let (history, live) = if soak() {
        (10_000usize, 5_000usize)
    } else {
        (10_000, 1_000)
    };
    let srv = Arc::new(element_server().await);
    let devices = ["d1", "d2", "d3"];
    let mut per_device: HashMap<&str, Vec<String>> = HashMap::new();
    // The backlog: inserted over the last 50 minutes, replayed with the 1 h catch-up.
    let now = jiff::Timestamp::now();
    for n in 0..history {
        let d = devices[n % 3];
        let at = now - jiff::SignedDuration::from_millis(3_000_000 - (n as i64) * 250);
        let id = srv.insert_reading_at(d, json!({"n": n, "temperature": n as f64 / 10.0}), at);
        per_device
            .entry(d)
            .or_default()
            .push(format!("element:acc:reading:{id}"));
    }
    let stack = Stack::new();
    // A slow disk: 0.4 ms per event keeps the replay going across several kills.
    stack.throttle.store(400, Ordering::Relaxed);
    let mut cfg = ElementFeedConfig::new(
        element_account(srv.base_url(), 1),
        KEY.into(),
        HashMap::new(),
    );
    cfg.timing = element_timing();
    let feed = element::spawn(cfg, stack.deliveries.clone(), stack.statuses.clone());
    let started = Instant::now();
    let total = history + live;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chaos = {
        let (srv, stop) = (srv.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = Rng::seeded();
            let mut kills = 0u32;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(rng.between_ms(1000, 3000)).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if rng.below(2) == 0 {
                    srv.kill_sockets();
                } else {
                    srv.stop_listening().await;
                    tokio::time::sleep(rng.between_ms(0, 300)).await;
                    srv.restart().await.unwrap();
                }
                kills += 1;
            }
            kills
        })
    };
    for n in 0..live {
        let d = devices[n % 3];
        let id = srv.push_reading(d, json!({"live": n}));
        per_device
            .entry(d)
            .or_default()
            .push(format!("element:acc:reading:{id}"));
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let within = Duration::from_secs(if soak() { 600 } else { 150 });
    wait_for("every reading stored", within, || {
        stack.stored() >= total as i64
    })
    .await;
    let all_in = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let kills = chaos.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let keys = stack.keys();
    let expected: Vec<String> = per_device.values().flatten().cloned().collect();
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    let mut out_of_order = 0;
    for (d, want) in &per_device {
        let got: Vec<&String> = keys
            .iter()
            .filter(|(_, dev)| dev.as_deref() == Some(*d))
            .map(|(k, _)| k)
            .collect();
        if got.iter().copied().ne(want.iter()) {
            out_of_order += 1;
        }
    }
    report(
        "4 ELEMENT server killed every 1-3 s during replay",
        json!({"runs": 1, "kills": kills, "sent": total, "replayed_backlog": history, "stored": keys.len(),
               "lost": lost, "duplicates": dups, "devices_out_of_order": out_of_order,
               "deliveries": stack.seen.load(Ordering::Relaxed),
               "reconnects": stack.count_states(|s| *s == FeedState::Live).saturating_sub(1),
               "all_stored_ms": ms(all_in)}),
    );
    assert_eq!((lost, dups), (0, 0));
    assert_eq!(out_of_order, 0, "readings stored in order per device");
    assert!(
        kills >= 2,
        "the server was killed during the replay ({kills})"
    );
    feed.stop().await;
    stack.shutdown().await;
    if let Ok(s) = Arc::try_unwrap(srv) {
        s.stop().await;
    }
}

// ---------------------------------------------------------------- case 5

/// The app killed with SIGKILL in the middle of a burst, then started again on the same
/// history: everything stored once, what was not acknowledged comes again, no popup twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_5_app_killed_during_a_burst_keeps_history_and_pops_nothing_twice() {
    let (rounds, total) = if soak() {
        (5usize, 5000usize)
    } else {
        (1, 2000)
    };
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let mut all_popups: Vec<String> = Vec::new();
    let mut redelivered = 0usize;
    let mut sent = 0usize;
    let mut expected = Vec::new();
    let mut restart_ms = Vec::new();
    for round in 0..rounds {
        let user = unique("f5");
        let account = rabbit_account(&broker.ws_url(), &user);
        let dest = format!("/queue/{user}.alarms");
        let base = count_events(&db);
        let uuids: Vec<String> = (0..total).map(|i| format!("f5-{round}-{i}")).collect();
        expected.extend(uuids.iter().map(|u| saveris_key(&account, u)));
        sent += total;
        // The burst waits in the broker; the app takes it all at once (no prefetch limit),
        // so most of it is in flight, unacknowledged, when the app dies.
        let bodies: Vec<String> = uuids
            .iter()
            .enumerate()
            .map(|(i, u)| alarm_of_sensor(u, i % 25))
            .collect();
        for b in bodies.chunks(250) {
            rabbit_publish(&broker.ws_url(), &dest, b).await;
        }
        let mut first = AppChild::start(&db, &broker.ws_url(), &user, None);
        wait_for("a fifth stored", Duration::from_secs(60), || {
            count_events(&db) >= base + (total / 5) as i64
        })
        .await;
        first.kill();
        let killed_at = Instant::now();
        let stored_at_kill = count_events(&db) - base;
        all_popups.extend(first.popups());

        let second = AppChild::start(&db, &broker.ws_url(), &user, None);
        wait_for(
            "the rest stored after the restart",
            Duration::from_secs(120),
            || second.stored() >= base + total as i64,
        )
        .await;
        restart_ms.push(ms(killed_at.elapsed()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        redelivered += second.lines_with("REDELIVERED ").len();
        assert!(
            second.lines_with("NOTICE ").is_empty(),
            "a killed process must not damage the database: {:?}",
            second.lines_with("NOTICE ")
        );
        all_popups.extend(second.popups());
        println!("round {round}: {stored_at_kill} stored when killed");
        drop(second);
    }
    let keys = read_keys(&db);
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    let dup_popups = duplicate_alarm_popups(&all_popups);
    report(
        "5 app SIGKILL during a burst",
        json!({"runs": rounds, "sent": sent, "stored": keys.len(), "lost": lost, "duplicates": dups,
               "notified": all_popups.len(), "duplicate_popups": dup_popups,
               "redelivered_after_restart": redelivered, "kill_to_all_stored_ms": restart_ms}),
    );
    assert_eq!((lost, dups), (0, 0), "history intact: every alarm once");
    assert_eq!(keys.len(), sent);
    assert_eq!(dup_popups, 0, "no popup twice: {all_popups:?}");
}

// ---------------------------------------------------------------- case 8

/// Writes fail (RLIMIT_FSIZE on the app process: its files cannot grow, as on a full
/// disk): the user is told, the feed stops acknowledging, the process stays up; started
/// again with room, every message comes from the broker and is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_8_full_disk_tells_the_user_and_keeps_messages_upstream() {
    let total = if soak() { 3000usize } else { 800 };
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let user = unique("f8");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    // Room for the empty database and some events, not for all of them.
    let limit = 256 * 1024;
    let mut full = AppChild::start(&db, &broker.ws_url(), &user, Some(limit));
    wait_for("child ready", Duration::from_secs(60), || {
        !full.lines_with("READY").is_empty() || !full.lines_with("OPEN_FAILED").is_empty()
    })
    .await;
    assert!(
        full.lines_with("OPEN_FAILED").is_empty(),
        "{:?}",
        full.lines_with("OPEN_FAILED")
    );
    let uuids: Vec<String> = (0..total).map(|i| format!("f8-{i}")).collect();
    let expected: Vec<String> = uuids.iter().map(|u| saveris_key(&account, u)).collect();
    let bodies: Vec<String> = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| alarm_of_sensor(u, i % 25))
        .collect();
    let t0 = Instant::now();
    for b in bodies.chunks(100) {
        rabbit_publish(&broker.ws_url(), &dest, b).await;
    }
    wait_for(
        "the storage failure reported",
        Duration::from_secs(60),
        || !full.lines_with("STORAGE_FAILED ").is_empty(),
    )
    .await;
    let detected = t0.elapsed();
    wait_for(
        "the user told in the status",
        Duration::from_secs(10),
        || {
            full.lines_with("STATUS ").iter().any(|s| {
                serde_json::from_str::<Status>(s)
                    .is_ok_and(|st| st.summary.contains("history cannot be written"))
            })
        },
    )
    .await;
    // Still up a while later, still failing, never crashed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(full.alive(), "the app must not crash on a full disk");
    let stored_while_full = read_keys(&db).len();
    let failed_batches = full.lines_with("STORAGE_FAILED ").len();
    assert!(
        stored_while_full < total,
        "the limit was meant to stop writes ({stored_while_full} stored)"
    );
    full.kill();

    // Room again: nothing was acknowledged that was not stored, so the broker still has it.
    let roomy = AppChild::start(&db, &broker.ws_url(), &user, None);
    wait_for(
        "everything stored once there is room",
        Duration::from_secs(120),
        || roomy.stored() >= total as i64,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys = read_keys(&db);
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    let mut popups = full.popups();
    popups.extend(roomy.popups());
    let dup_popups = duplicate_alarm_popups(&popups);
    report(
        "8 disk full (RLIMIT_FSIZE 256 KiB)",
        json!({"runs": 1, "sent": total, "stored_while_full": stored_while_full,
               "failed_batches": failed_batches, "stored": keys.len(), "lost": lost,
               "duplicates": dups, "duplicate_popups": dup_popups,
               "detection_ms": ms(detected)}),
    );
    assert_eq!((lost, dups, dup_popups), (0, 0, 0));
}

// ---------------------------------------------------------------- case 9

/// What the trace of the app says about one ACK: the history's log was written, then
/// synced, then the ACK went out.
#[derive(Debug, Default)]
struct AckOrder {
    acks: usize,
    acks_after_a_sync: usize,
    log_writes: usize,
    log_syncs: usize,
}

/// Reads an `strace -f -yy` log. Log writes are `pwrite*` on `…-wal`; syncs are
/// `fsync`/`fdatasync` of `…-wal` that returned 0 (also when strace printed them as
/// `<unfinished …>` then `<… resumed>`); ACKs are the app's writes of more than a
/// heart-beat (a masked 1-byte WebSocket frame is 7 bytes) to the broker's port, once the
/// first MESSAGE arrived (before that it writes the handshake, CONNECT and SUBSCRIBE).
fn ack_order(trace: &str, broker_port: u16) -> AckOrder {
    let peer = format!("->127.0.0.1:{broker_port}]>");
    let mut o = AckOrder::default();
    let mut receiving = false;
    // Index of the last log write, and of the last completed log sync.
    let (mut last_write, mut last_sync) = (None::<usize>, None::<usize>);
    let mut syncing: Vec<String> = Vec::new();
    for (i, line) in trace.lines().enumerate() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        let result: Option<i64> = line
            .rsplit_once(") = ")
            .and_then(|(_, r)| r.split_whitespace().next()?.parse().ok());
        let is_sync = line.contains("fsync(") || line.contains("fdatasync(");
        if is_sync && line.contains("-wal>") {
            if line.contains("<unfinished") {
                syncing.push(pid);
            } else if result == Some(0) {
                last_sync = Some(i);
                o.log_syncs += 1;
            }
        } else if line.contains("sync resumed>") && syncing.contains(&pid) {
            syncing.retain(|p| *p != pid);
            if result == Some(0) {
                last_sync = Some(i);
                o.log_syncs += 1;
            }
        } else if line.contains("pwrite") && line.contains("-wal>") {
            last_write = Some(i);
            o.log_writes += 1;
        } else if line.contains("recvfrom(") && line.contains(&peer) && line.contains("MESSAGE") {
            receiving = true;
        } else if receiving
            && line.contains(&peer)
            && (line.contains("sendto(") || line.contains("write(") || line.contains("writev("))
            && result.is_some_and(|n| n > 7)
        {
            o.acks += 1;
            if last_sync.is_some() && last_sync >= last_write {
                o.acks_after_a_sync += 1;
            }
        }
    }
    o
}

/// Durable before ACK: the app runs under strace against RabbitMQ; messages come one at a
/// time (clears of alarms never raised: stored, acknowledged, nothing else written), and
/// every ACK it writes to the broker must follow a sync of the history's log that came
/// after the log's last write. With `synchronous=NORMAL` a commit is not synced at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_9_every_ack_follows_a_sync_of_the_history() {
    let total = if soak() { 100usize } else { 20 };
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let port: u16 = broker
        .ws_url()
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let trace = dir.path().join("strace.log");
    let ptrace = std::process::Command::new("/usr/bin/strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .status();
    assert!(
        ptrace.is_ok_and(|s| s.success()),
        "this case needs strace (Debian package strace, in `make deps`) and ptrace allowed"
    );
    let user = unique("f9");
    let dest = format!("/queue/{user}.alarms");
    let mut app = AppChild::start_with(
        &db,
        &broker.ws_url(),
        &user,
        ChildOptions {
            strace_to: Some(trace.clone()),
            ..Default::default()
        },
    );
    app.wait_ready().await;
    for i in 0..total {
        let body = alarm_body(&format!("f9-{i}"))
            .replace("\"alarm_status\":\"Alarm\"", "\"alarm_status\":\"Ok\"");
        rabbit_publish(&broker.ws_url(), &dest, &[body]).await;
        wait_for("the message stored", Duration::from_secs(30), || {
            app.stored() > i as i64
        })
        .await;
        // Its ACK goes out within milliseconds of the commit; the next message well after
        // it, so the next commit's log writes never come between a commit and its ACK.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.kill();
    let text = std::fs::read_to_string(&trace).unwrap();
    let o = ack_order(&text, port);
    report(
        "9 durable before ACK (strace)",
        json!({"messages": total, "acks": o.acks, "acks_after_a_log_sync": o.acks_after_a_sync,
               "log_writes": o.log_writes, "log_syncs": o.log_syncs}),
    );
    assert!(
        o.acks >= total / 2,
        "the ACKs were found in the trace: {o:?}"
    );
    assert_eq!(
        o.acks_after_a_sync, o.acks,
        "an ACK went out before the history's log was synced: {o:?}"
    );
}

// ---------------------------------------------------------------- case 10

/// Storage fails for 20 s on a live connection (RLIMIT_FSIZE on the app: its files cannot
/// grow), then there is room again: the batch held in memory and everything behind it is
/// stored within seconds, on the same connection (the proxy in front of the broker counts
/// them), each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_10_storage_failing_for_20_s_heals_without_a_reconnect() {
    let total = 800usize;
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let port: u16 = broker
        .ws_url()
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let proxy = Proxy::start(port).await;
    let via_proxy = format!("ws://127.0.0.1:{}/ws", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let user = unique("f10");
    let account = saveris_account_for(&broker, &user);
    let dest = format!("/queue/{user}.alarms");
    let mut app = AppChild::start_with(
        &db,
        &via_proxy,
        &user,
        ChildOptions {
            file_size_limit: Some(256 * 1024),
            ..Default::default()
        },
    );
    wait_for("child ready", Duration::from_secs(60), || {
        !app.lines_with("READY").is_empty() || !app.lines_with("OPEN_FAILED").is_empty()
    })
    .await;
    assert!(app.lines_with("OPEN_FAILED").is_empty());
    let uuids: Vec<String> = (0..total).map(|i| format!("f10-{i}")).collect();
    let expected: Vec<String> = uuids.iter().map(|u| saveris_key(&account, u)).collect();
    let bodies: Vec<String> = uuids
        .iter()
        .enumerate()
        .map(|(i, u)| alarm_of_sensor(u, i % 25))
        .collect();
    for b in bodies.chunks(100) {
        rabbit_publish(&broker.ws_url(), &dest, b).await;
    }
    wait_for("the storage failure", Duration::from_secs(60), || {
        !app.lines_with("STORAGE_FAILED ").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let stored_while_full = read_keys(&db).len();
    assert!(app.alive(), "the app must not crash on a full disk");
    assert!(
        stored_while_full < total,
        "the limit was meant to stop writes ({stored_while_full} stored)"
    );
    app.give_room();
    let room_at = Instant::now();
    wait_for(
        "everything stored once there is room again",
        Duration::from_secs(60),
        || app.stored() >= total as i64,
    )
    .await;
    let healed = room_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connections = proxy.accepted.load(Ordering::SeqCst);
    let keys = read_keys(&db);
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    report(
        "10 storage fails 20 s on a live connection, then recovers",
        json!({"sent": total, "stored_while_full": stored_while_full,
               "storage_failed_reports": app.lines_with("STORAGE_FAILED ").len(),
               "all_stored_after_room_ms": ms(healed), "connections": connections,
               "lost": lost, "duplicates": dups}),
    );
    assert_eq!((lost, dups), (0, 0));
    assert!(
        healed < Duration::from_secs(10),
        "stored {healed:?} after there was room again"
    );
    assert_eq!(connections, 1, "healed without a reconnect of the feed");
    app.kill();
}

fn saveris_account_for(broker: &Broker, user: &str) -> SaverisAccount {
    rabbit_account(&broker.ws_url(), user)
}

// ---------------------------------------------------------------- case 11

/// The app killed while messages it received were not acknowledged (its history refused
/// writes, so it held them): started again, the broker redelivers them (`redelivered:true`)
/// and each pops on its own like a live alarm, no summary; nothing pops twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_11_redelivered_alarms_pop_one_by_one_after_a_kill() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let flag = dir.path().join("fail-writes");
    let user = unique("f11");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    let body = |i: usize| alarm_of_sensor(&format!("f11-{i}"), i);
    let expected: Vec<String> = (0..5)
        .map(|i| saveris_key(&account, &format!("f11-{i}")))
        .collect();

    let mut first = AppChild::start_with(
        &db,
        &broker.ws_url(),
        &user,
        ChildOptions {
            fail_flag: Some(flag.clone()),
            ..Default::default()
        },
    );
    first.wait_ready().await;
    // Two alarms stored, acknowledged and shown.
    rabbit_publish(&broker.ws_url(), &dest, &[body(0), body(1)]).await;
    wait_for("two shown", Duration::from_secs(30), || {
        first.popups().len() >= 2
    })
    .await;
    // Then the history refuses writes: three more arrive and are held, unacknowledged.
    std::fs::write(&flag, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbit_publish(&broker.ws_url(), &dest, &[body(2), body(3), body(4)]).await;
    wait_for("the storage failure", Duration::from_secs(30), || {
        !first.lines_with("STORAGE_FAILED ").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill();
    std::fs::remove_file(&flag).unwrap();

    let second = AppChild::start(&db, &broker.ws_url(), &user, None);
    wait_for("all five stored", Duration::from_secs(60), || {
        second.stored() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let redelivered = second.lines_with("REDELIVERED ").len();
    let after_restart = second.popups();
    let mut all = first.popups();
    all.extend(after_restart.clone());
    let keys = read_keys(&db);
    let (lost, dups) = loss_and_duplicates(&expected, &keys);
    report(
        "11 app killed with unacknowledged alarms, restarted",
        json!({"sent": 5, "shown_before_kill": first.popups().len(), "redelivered": redelivered,
               "popups_after_restart": after_restart, "lost": lost, "duplicates": dups,
               "duplicate_popups": duplicate_alarm_popups(&all)}),
    );
    assert_eq!((lost, dups), (0, 0));
    assert_eq!(redelivered, 3, "the held ones came back from the broker");
    assert_eq!(
        after_restart.len(),
        3,
        "each redelivered alarm pops on its own: {after_restart:?}"
    );
    assert!(
        after_restart.iter().all(|t| t.starts_with("alarm:")),
        "no summary: {after_restart:?}"
    );
    assert_eq!(
        duplicate_alarm_popups(&all),
        0,
        "nothing pops twice: {all:?}"
    );
}
