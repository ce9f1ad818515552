//! Section 2: publish → popup decision. A publisher sends alarm messages at a fixed rate
//! through RabbitMQ; the Saveris feed + engine of this process take them (history on a temp
//! file, counting notifier). Each message carries its sequence number as `alarm_value`; the
//! time from just before its SEND left to the engine's popup decision about the alarm it
//! raised (shown, grouped into a storm summary, or held back) is its latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alarm_tray::engine::{self, Decision, History, Output};
use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
use alarm_tray::settings::Settings;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::broker::{self, Broker, StompConn};
use crate::ingest::{account, CountingNotifier};
use crate::{messages, procs, Config};

pub async fn run(cfg: &Config, broker: &Broker) -> Result<Value, String> {
    let secs = if cfg.quick { 3 } else { 10 };
    let mut out = Vec::new();
    let mut broker_only = Vec::new();
    for rate in [100u32, 2000] {
        let r = one_rate(broker, rate, secs).await?;
        progress("latency", rate, &r);
        out.push(r);
        let b = broker_rate(broker, rate, secs).await?;
        progress("broker alone", rate, &b);
        broker_only.push(b);
    }
    Ok(json!({"runs": out, "broker_only": broker_only}))
}

/// A progress line on stdout (the table comes at the end).
fn progress(what: &str, rate: u32, r: &Value) {
    let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "{what} at {rate} msg/s: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  ({} samples)",
        ms("p50_ms"),
        ms("p95_ms"),
        ms("p99_ms"),
        r["samples"]
    );
}

type SentTimes = Arc<Mutex<HashMap<u64, Instant>>>;

/// Sends `n` alarm messages at `rate`, each with its sequence number as `alarm_value`,
/// noting when each SEND left. Returns how long it took.
fn spawn_publisher(
    url: String,
    dest: String,
    rate: u32,
    n: u64,
    sensors: usize,
    sent: SentTimes,
) -> tokio::task::JoinHandle<Result<Duration, String>> {
    tokio::spawn(async move {
        let mut c = StompConn::connect(&url).await?;
        let start = Instant::now();
        for i in 0..n {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let body = messages::alarm_body(i as usize, sensors, Some(i as f64));
            let frame = broker::send_frame(&dest, &body);
            let now = Instant::now();
            if let Ok(mut m) = sent.lock() {
                m.insert(i, now);
            }
            c.send(&frame).await?;
            c.flush().await?;
        }
        c.close().await;
        Ok::<Duration, String>(start.elapsed())
    })
}

/// The same traffic taken by a bare consumer (split frames, parse JSON, ACK): the share of
/// the latency that is the broker's and the machine's, not the app's.
async fn broker_rate(broker: &Broker, rate: u32, secs: u64) -> Result<Value, String> {
    let url = broker.ws_url();
    let dest = format!("/queue/benchlatbare{rate}.alarms");
    let mut c = StompConn::connect(&url).await?;
    c.subscribe(&dest, "client-individual").await?;
    let sent: SentTimes = Arc::default();
    let n = rate as u64 * secs;
    let publisher = spawn_publisher(url, dest, rate, n, (rate as usize).max(100), sent.clone());
    let mut ms = Vec::with_capacity(n as usize);
    let mut taken = 0;
    while taken < n as usize {
        taken += c
            .take_messages(|f, at| {
                let seq = serde_json::from_slice::<Value>(&f.body)
                    .ok()
                    .and_then(|v| {
                        let a = &v["alarm_value"];
                        a.as_f64().or_else(|| a.as_str()?.parse().ok())
                    })
                    .map(|v| v as u64);
                if let Some(t0) = seq.and_then(|s| sent.lock().ok()?.get(&s).copied()) {
                    ms.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                }
            })
            .await?;
    }
    publisher.await.map_err(|e| e.to_string())??;
    c.close().await;
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "rate": rate,
        "samples": ms.len(),
        "p50_ms": procs::percentile(&ms, 50.0),
        "p95_ms": procs::percentile(&ms, 95.0),
        "p99_ms": procs::percentile(&ms, 99.0),
        "max_ms": ms.last().copied(),
    }))
}

async fn one_rate(broker: &Broker, rate: u32, secs: u64) -> Result<Value, String> {
    let url = broker.ws_url();
    let user = format!("benchlat{rate}");
    let dest = format!("/queue/{user}.alarms");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let history = History::open(&dir.path().join("history.sqlite3")).map_err(|e| e.to_string())?;
    let acc = account(&url, &user);
    let mut settings = Settings::default();
    settings.saveris.push(acc.clone());
    let (tx, rx) = mpsc::channel(4096);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let notifier = Arc::new(CountingNotifier::default());
    let engine = engine::spawn(settings, history.clone(), notifier, rx, status_rx);
    let mut outputs = engine.subscribe();
    let feed = saveris::spawn(
        SaverisFeedConfig::new(acc, None, Some("guest".into())),
        tx,
        status_tx,
    );
    // Live before the clock starts.
    let live = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if engine
                .status()
                .feeds
                .iter()
                .any(|f| f.state == alarm_tray::event::FeedState::Live)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if live.is_err() {
        return Err(format!(
            "the feed did not go live: {:?}",
            engine.status().feeds
        ));
    }

    let sent: SentTimes = Arc::default();
    let n = rate as u64 * secs;
    // Enough sensors that a sensor's raise and clear are ~1 s apart at either rate.
    let sensors = (rate as usize).max(100);
    let publisher = spawn_publisher(url.clone(), dest.clone(), rate, n, sensors, sent.clone());

    let mut alarm_seq: HashMap<i64, u64> = HashMap::new();
    let mut decided: HashMap<u64, f64> = HashMap::new();
    let mut kinds: HashMap<&'static str, u64> = HashMap::new();
    let mut lagged = 0u64;
    let raises = (0..n)
        .filter(|i| (*i as usize / sensors).is_multiple_of(2))
        .count();
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while decided.len() < raises && Instant::now() < deadline {
        let o = match tokio::time::timeout(Duration::from_millis(500), outputs.recv()).await {
            Err(_) => continue,
            Ok(Err(broadcast::error::RecvError::Lagged(k))) => {
                lagged += k;
                continue;
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => break,
            Ok(Ok(o)) => o,
        };
        let at = Instant::now();
        let Output::Decision { decision } = o else {
            continue;
        };
        let (kind, alarm_id) = match &decision {
            Decision::AlarmRaised { alarm } => {
                if let Some(v) = alarm.value {
                    alarm_seq.insert(alarm.id, v as u64);
                }
                continue;
            }
            Decision::Popup {
                popup,
                repeat: false,
            } => ("popup", popup.alarm_id),
            Decision::Grouped { alarm_id } => ("grouped", Some(*alarm_id)),
            Decision::HeldBack { popup, .. } => ("held_back", popup.alarm_id),
            _ => continue,
        };
        let Some(seq) = alarm_id.and_then(|id| alarm_seq.get(&id).copied()) else {
            continue;
        };
        let Some(t0) = sent.lock().ok().and_then(|m| m.get(&seq).copied()) else {
            continue;
        };
        if let std::collections::hash_map::Entry::Vacant(e) = decided.entry(seq) {
            e.insert(at.duration_since(t0).as_secs_f64() * 1000.0);
            *kinds.entry(kind).or_default() += 1;
        }
    }
    let pub_secs = publisher.await.map_err(|e| e.to_string())??.as_secs_f64();
    feed.stop().await;
    engine.shutdown().await;
    // One commit is one fsync of the history's log (synchronous=FULL): how well
    // deliveries arriving together share it at this rate.
    let commits = history.commits();
    let mut ms: Vec<f64> = decided.into_values().collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "rate": rate,
        "achieved_rate": n as f64 / pub_secs,
        "messages": n,
        "raises": raises,
        "samples": ms.len(),
        "p50_ms": procs::percentile(&ms, 50.0),
        "p95_ms": procs::percentile(&ms, 95.0),
        "p99_ms": procs::percentile(&ms, 99.0),
        "max_ms": ms.last().copied(),
        "decisions": kinds,
        "outputs_lagged": lagged,
        "history_commits": commits,
        "commits_per_1000_msgs": commits as f64 * 1000.0 / n as f64,
    }))
}
