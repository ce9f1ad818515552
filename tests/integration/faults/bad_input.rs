//! Bad input is stored, shown as text, and never blocks what comes after it: hostile
//! Saveris payloads (deep JSON, no JSON, markup and control characters), a 10 MB message,
//! invalid UTF-8, huge and nested ELEMENT readings, and a corrupted history file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alarm_tray::event::FeedState;
use alarm_tray::feeds::element::{self, ElementFeedConfig};
use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
use serde_json::json;
use tokio::time::Instant;

use super::app_child::AppChild;
use super::harness::{
    element_account, element_server, element_timing, ms, read_keys, report, saveris_key,
    try_publish, wait_for, Stack, KEY,
};
use crate::peers::rabbit::Broker;
use crate::peers::unique;
use crate::saveris::{alarm_body, fast, rabbit_account, rabbit_publish};

/// A Saveris alarm whose serial number (the sensor's display name) is `name` (JSON-escaped).
fn alarm_named(uuid: &str, name: &str) -> String {
    let quoted = serde_json::to_string(name).unwrap();
    alarm_body(uuid)
        .replace("\"4711\"", &quoted)
        .replace("\"sensor-1\"", &format!("\"sensor-{uuid}\""))
}

/// Text for people must not carry control characters (a NUL is not even a valid D-Bus
/// string) nor live markup.
fn assert_clean_for_popup(what: &str, text: &str) {
    let shown = alarm_tray::notify::escape_markup(text);
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{what}: control characters reach the popup: {shown:?}"
    );
    assert!(
        !shown.contains('<') && !shown.contains('>'),
        "{what}: markup reaches the popup: {shown:?}"
    );
}

/// Hostile Saveris payloads over the real broker: JSON nested 100,000 deep, bytes that are
/// no JSON at all, markup and control characters (NUL, ESC, BEL) in the sensor name. Every message is stored (unreadable
/// ones as `unparsed`, for the user to see), the feed stays up, popups show names as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_saveris_hostile_payloads_are_stored_and_shown_as_text() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("bad");
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
    let hostile_name = "<b>Fridge</b> & <script>alert(1)</script>\u{7}\u{1b}[31m\u{0}end";
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<Vec<u8>> = vec![
        alarm_named("plain", "Freezer").into_bytes(),
        nested.into_bytes(),
        alarm_named("markup", hostile_name).into_bytes(),
        b"\x00\x01\x02 not json at all".to_vec(),
        alarm_named("after", "Cold room").into_bytes(),
    ];
    publish_surely_bytes(&broker.ws_url(), &dest, &bodies).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while stack.stored() < 5 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stack.engine.poke().await;
    let keys = stack.keys();
    let popups = stack.notifier.shown();
    let unparsed = stack.engine.history().unparsed(100).unwrap();
    report(
        "bad input: Saveris hostile payloads",
        json!({"runs": 1, "sent": bodies.len(), "stored": keys.len(), "unparsed": unparsed.len(),
               "popups": popups.len(), "feed": format!("{:?}", stack.last_state())}),
    );
    assert_eq!(
        keys.len(),
        5,
        "{keys:?} {:?}",
        stack
            .states
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, s)| s.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(unparsed.len(), 2, "unreadable bodies are kept as unparsed");
    assert!(
        keys.iter()
            .any(|(k, _)| k == &saveris_key(&account, "after")),
        "the feed went on after the hostile ones"
    );
    assert_eq!(stack.last_state(), Some(FeedState::Live));
    assert!(!popups.is_empty());
    for p in &popups {
        // What the desktop notifier sends: the summary as plain text, the body as markup.
        let summary = alarm_tray::notify::plain_text(&p.summary);
        assert!(
            !summary.chars().any(|c| c.is_control()),
            "summary: control characters reach the popup: {summary:?}"
        );
        assert_clean_for_popup("body", &p.body);
    }
    feed.stop().await;
    stack.shutdown().await;
}

async fn publish_surely_bytes(ws_url: &str, dest: &str, bodies: &[Vec<u8>]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = try_publish(ws_url, dest, bodies).await {
        assert!(Instant::now() < deadline, "could not publish: {e}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A 10 MB Saveris message between two ordinary ones: it must not wedge the queue (a
/// message the feed can never take would come back on every reconnect). The decoder keeps
/// its headers, skips the body, and the feed stores it as unparsed and acknowledges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_saveris_10mb_message_does_not_block_the_queue() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("big");
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
    let big = alarm_named("big", &"A".repeat(10 * 1024 * 1024));
    let bodies = vec![
        alarm_named("before", "Cold room").into_bytes(),
        big.into_bytes(),
        alarm_named("after", "Cold room 2").into_bytes(),
    ];
    publish_surely_bytes(&broker.ws_url(), &dest, &bodies).await;
    let t0 = Instant::now();
    let after = saveris_key(&account, "after");
    let got_after = tokio::time::timeout(Duration::from_secs(30), async {
        while !stack.keys().iter().any(|(k, _)| *k == after) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let reconnects = stack
        .count_states(|s| *s == FeedState::Live)
        .saturating_sub(1);
    report(
        "bad input: 10 MB Saveris message",
        json!({"runs": 1, "sent": 3, "stored": stack.stored(), "after_stored": got_after,
               "reconnects": reconnects, "ms": ms(t0.elapsed())}),
    );
    assert!(
        got_after,
        "the message after the 10 MB one never arrived ({reconnects} reconnects)"
    );
    assert_eq!(stack.stored(), 3, "each of the three stored once");
    assert_eq!(
        stack.redelivered.load(Ordering::Relaxed),
        0,
        "nothing came back: the bad message was acknowledged"
    );
    feed.stop().await;
    stack.shutdown().await;
}

/// Hostile ELEMENT readings: a 10 MB value, JSON nested deeper than any parser limit, markup
/// and control characters in field names and values. All stored in order, the link stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_element_huge_and_nested_readings_are_stored_in_order() {
    let srv = element_server().await;
    let stack = Stack::new();
    let mut cfg = ElementFeedConfig::new(
        element_account(srv.base_url(), 0),
        KEY.into(),
        HashMap::new(),
    );
    cfg.timing = element_timing();
    let feed = element::spawn(cfg, stack.deliveries.clone(), stack.statuses.clone());
    wait_for("live", Duration::from_secs(10), || {
        stack.last_state() == Some(FeedState::Live)
    })
    .await;
    let mut nested = json!(1);
    for _ in 0..1000 {
        nested = json!([nested]);
    }
    let ids = [
        srv.push_reading("d1", json!({"temperature": 4.0})),
        srv.push_reading(
            "d1",
            json!({"blob": "B".repeat(10 * 1024 * 1024), "temperature": 5.0}),
        ),
        srv.push_reading("d1", json!({"deep": nested})),
        srv.push_reading(
            "d1",
            json!({"<img src=x onerror=alert(1)>\u{0}": 1.0, "label": "<b>x</b>\u{1b}[2J"}),
        ),
        srv.push_reading("d1", json!({"temperature": 6.0})),
    ];
    wait_for("all five stored", Duration::from_secs(60), || {
        stack.stored() >= 5
    })
    .await;
    let keys: Vec<String> = stack.keys().into_iter().map(|(k, _)| k).collect();
    let want: Vec<String> = ids
        .iter()
        .map(|id| format!("element:acc:reading:{id}"))
        .collect();
    report(
        "bad input: ELEMENT huge and nested readings",
        json!({"runs": 1, "sent": 5, "stored": keys.len(),
               "reconnects": stack.count_states(|s| *s == FeedState::Live).saturating_sub(1)}),
    );
    // JSON nested beyond the parser's depth limit cannot be read: it is kept as unparsed,
    // in its place.
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys[2].starts_with("element:acc:all:unparsed:"), "{keys:?}");
    assert_eq!(
        [&keys[..2], &keys[3..]].concat(),
        [&want[..2], &want[3..]].concat(),
        "all stored once, in order"
    );
    assert_eq!(stack.last_state(), Some(FeedState::Live));
    feed.stop().await;
    stack.shutdown().await;
    srv.stop().await;
}

/// A corrupted history file: moved aside, a new one created, the user told, and the app
/// goes on storing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corrupt_history_is_moved_aside_and_the_user_told() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite3");
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.extend((0..64 * 1024).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&db, &garbage).unwrap();
    let user = unique("corrupt");
    let account = rabbit_account(&broker.ws_url(), &user);
    let dest = format!("/queue/{user}.alarms");
    let app = AppChild::start(&db, &broker.ws_url(), &user, None);
    wait_for("ready", Duration::from_secs(60), || {
        !app.lines_with("READY").is_empty() || !app.lines_with("OPEN_FAILED").is_empty()
    })
    .await;
    assert!(
        app.lines_with("OPEN_FAILED").is_empty(),
        "{:?}",
        app.lines_with("OPEN_FAILED")
    );
    let notice = app.lines_with("NOTICE ");
    assert!(
        notice.iter().any(|n| n.contains("damaged")),
        "the user is told: {notice:?}"
    );
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".broken-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept aside");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage, "kept unchanged");
    rabbit_publish(&broker.ws_url(), &dest, &[alarm_body("c-1")]).await;
    wait_for("stored in the new file", Duration::from_secs(30), || {
        app.stored() >= 1
    })
    .await;
    assert_eq!(
        read_keys(&db)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec![saveris_key(&account, "c-1")]
    );
    report(
        "bad input: corrupt history",
        json!({"runs": 1, "sent": 1, "stored": 1, "notice": notice.first()}),
    );
}

/// Invalid UTF-8 in a Saveris body. RabbitMQ Web-STOMP sends STOMP in WebSocket *text*
/// frames, which should be UTF-8; a WebSocket layer that refuses the frame ends the stream
/// before the STOMP layer sees the ack id, and the message comes back on every reconnect.
/// The feed reads payload bytes below that check (feeds/saveris/wire.rs): the body is
/// stored as unparsed, acknowledged, and the link stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_saveris_invalid_utf8_does_not_block_the_queue() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let user = unique("utf8");
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
    let mut invalid_utf8 = alarm_named("bad-utf8", "Freezer").into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3(");
    let bodies = vec![invalid_utf8, alarm_named("after", "Cold room").into_bytes()];
    publish_surely_bytes(&broker.ws_url(), &dest, &bodies).await;
    let after = saveris_key(&account, "after");
    let got_after = tokio::time::timeout(Duration::from_secs(20), async {
        while !stack.keys().iter().any(|(k, _)| *k == after) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok();
    let reconnects = stack
        .count_states(|s| *s == FeedState::Live)
        .saturating_sub(1);
    report(
        "bad input: invalid UTF-8 Saveris body",
        json!({"runs": 1, "sent": 2, "stored": stack.stored(), "after_stored": got_after,
               "reconnects": reconnects}),
    );
    assert!(
        got_after,
        "the message after the invalid one never arrived ({reconnects} reconnects)"
    );
    assert_eq!(stack.stored(), 2, "both stored once");
    assert_eq!(
        stack.redelivered.load(Ordering::Relaxed),
        0,
        "nothing came back: the bad message was acknowledged"
    );
    feed.stop().await;
    stack.shutdown().await;
}
