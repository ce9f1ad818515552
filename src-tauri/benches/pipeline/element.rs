//! Section 5: readings/s through the ELEMENT feed + engine (history on a temp file, a
//! threshold rule on temperature, counting notifier) from the project's ELEMENT server
//! (`alarm_tray::simulate::element`): a catch-up replay of a stored backlog (`after=`,
//! batched frames), then a live burst.
//!
//! CPU per reading (issue 28): the same catch-up replay drained by two child processes,
//! measured by the kernel (wait4) — the ELEMENT feed + engine, and a bare WebSocket reader
//! of the same socket (tokio-tungstenite, parse each frame's JSON, count readings).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alarm_tray::engine::{self, History};
use alarm_tray::feeds::element::{self, ElementFeedConfig};
use alarm_tray::settings::{
    ElementAccount, ElementKind, ElementScope, ElementSubscription, Limit, Settings, ThresholdRule,
};
use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole, SimDevice};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::ingest::CountingNotifier;
use crate::{procs, Config};

const KEY: &str = "bench-element-key-0123456789";
const DEVICES: usize = 50;

fn reading(i: usize) -> Value {
    json!({
        "temperature": 3.0 + (i % 100) as f64 / 10.0,
        "humidity": 40 + i % 30,
        "battery": 3.61,
        "alarm": false,
    })
}

fn device(i: usize) -> String {
    format!("c0ffee00-1111-4222-8333-{:012x}", i % DEVICES)
}

async fn drain(server: &ElementServer, n: usize, live: bool) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let history = History::open(&dir.path().join("history.sqlite3")).map_err(|e| e.to_string())?;
    let account = ElementAccount {
        id: "bench-element".into(),
        enabled: true,
        base_url: server.base_url(),
        subscriptions: vec![ElementSubscription {
            id: "readings".into(),
            enabled: true,
            scope: ElementScope::Mandate,
            kind: ElementKind::Readings,
            preload: vec![],
            catch_up_hours: if live { 0 } else { 2 },
        }],
        text_ping: false,
    };
    let mut settings = Settings::default();
    settings.element.push(account.clone());
    settings.rules.push(rule());
    let (tx, rx) = mpsc::channel(4096);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let notifier = Arc::new(CountingNotifier::default());
    let engine = engine::spawn(settings, history.clone(), notifier, rx, status_rx);
    let start = Instant::now();
    let feed = element::spawn(
        ElementFeedConfig::new(account, KEY.into(), HashMap::new()),
        tx,
        status_tx,
    );
    let mut start = start;
    if live {
        // Live: the socket is up first, then the server stores and pushes as fast as it can.
        let up = tokio::time::timeout(Duration::from_secs(30), async {
            while !engine
                .status()
                .feeds
                .iter()
                .any(|f| f.state == alarm_tray::event::FeedState::Live)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if up.is_err() {
            return Err("the ELEMENT feed did not go live".into());
        }
        start = Instant::now();
        for i in 0..n {
            server.push_reading(&device(i), reading(i));
            if i % 500 == 499 {
                // Let the socket task run: the server closes a socket that falls too far
                // behind, as the real one would.
                tokio::task::yield_now().await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stored = history.event_count().map_err(|e| e.to_string())? as usize;
        if stored >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {stored} of {n} readings stored after 600 s"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    feed.stop().await;
    engine.shutdown().await;
    Ok(
        json!({"mode": if live {"live"} else {"catch_up"}, "readings": n, "secs": secs, "readings_per_s": n as f64 / secs}),
    )
}

fn account(base_url: &str) -> ElementAccount {
    ElementAccount {
        id: "bench-element".into(),
        enabled: true,
        base_url: base_url.into(),
        subscriptions: vec![ElementSubscription {
            id: "readings".into(),
            enabled: true,
            scope: ElementScope::Mandate,
            kind: ElementKind::Readings,
            preload: vec![],
            catch_up_hours: 2,
        }],
        text_ping: false,
    }
}

/// Child `element`: the ELEMENT feed + engine (history on `db`, the threshold rule) drain
/// `n` readings of the server's backlog. Prints one JSON line.
pub async fn child_ours(base_url: &str, n: usize, db: &std::path::Path) -> Result<Value, String> {
    let history = History::open(db).map_err(|e| e.to_string())?;
    let account = account(base_url);
    let mut settings = Settings::default();
    settings.element.push(account.clone());
    settings.rules.push(rule());
    let (tx, rx) = mpsc::channel(4096);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let engine = engine::spawn(
        settings,
        history.clone(),
        Arc::new(CountingNotifier::default()),
        rx,
        status_rx,
    );
    let start = Instant::now();
    let feed = element::spawn(
        ElementFeedConfig::new(account, KEY.into(), HashMap::new()),
        tx,
        status_tx,
    );
    let deadline = start + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if history.event_count().map_err(|e| e.to_string())? as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("fewer than {n} readings stored after 600 s"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    feed.stop().await;
    engine.shutdown().await;
    Ok(json!({"readings": n, "secs": secs}))
}

/// Child `element-bare`: the same socket (same `after=`), read by tokio-tungstenite; each
/// text frame parsed as JSON and its readings counted. Prints one JSON line.
pub async fn child_bare(base_url: &str, n: usize) -> Result<Value, String> {
    use futures_util::StreamExt;
    let after =
        element::link::after_param(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2));
    let url = element::socket::socket_url(
        base_url,
        &ElementScope::Mandate,
        ElementKind::Readings,
        KEY,
        Some(&after),
        &[],
    )
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let mut got = 0usize;
    while got < n {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .map_err(|_| format!("only {got} of {n} readings after a 60 s pause"))?
            .ok_or_else(|| format!("the server closed after {got} readings"))?
            .map_err(|e| e.to_string())?;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            got += match serde_json::from_str::<Value>(t.as_str()) {
                Ok(Value::Array(a)) => a.len(),
                Ok(_) => 1,
                Err(_) => 0,
            };
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = ws.close(None).await;
    Ok(json!({"readings": got, "secs": secs}))
}

/// CPU per reading of the feed + engine and of the bare reader, each draining a fresh
/// server's backlog of `n` in its own process.
async fn cpu_per_reading(sim_cfg: &ElementServerConfig, n: usize) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut out = serde_json::Map::new();
    for who in ["alarm-tray", "bare"] {
        let server = ElementServer::start(sim_cfg.clone())
            .await
            .map_err(|e| e.to_string())?;
        backlog(&server, n);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cmd = std::process::Command::new(&exe);
        if who == "bare" {
            cmd.args([
                "--child",
                "element-bare",
                &server.base_url(),
                "",
                &n.to_string(),
            ]);
        } else {
            cmd.args(["--child", "element", &server.base_url(), "", &n.to_string()])
                .arg(dir.path().join("history.sqlite3"));
        }
        let m =
            tokio::task::spawn_blocking(move || procs::run_measured(cmd, Duration::from_secs(900)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        server.stop().await;
        if !m.success {
            return Err(format!(
                "element child {who} failed: {} {}",
                m.stdout.trim(),
                m.stderr.trim()
            ));
        }
        let own: Value = m
            .stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| format!("element child {who} printed no result"))?;
        let secs = own["secs"].as_f64().unwrap_or(f64::NAN);
        out.insert(
            who.into(),
            json!({
                "readings": n,
                "secs": secs,
                "readings_per_s": n as f64 / secs,
                "cpu_secs": m.cpu_secs,
                "cpu_us_per_reading": m.cpu_secs * 1e6 / n as f64,
                "peak_rss_mb": m.max_rss_kb as f64 / 1024.0,
            }),
        );
    }
    let ratio = out["alarm-tray"]["cpu_us_per_reading"]
        .as_f64()
        .zip(out["bare"]["cpu_us_per_reading"].as_f64())
        .map(|(a, b)| a / b);
    out.insert("cpu_vs_bare".into(), json!(ratio));
    Ok(Value::Object(out))
}

fn rule() -> ThresholdRule {
    ThresholdRule {
        id: "warm".into(),
        name: "too warm".into(),
        enabled: true,
        quantity: "temperature".into(),
        limit: Limit::Above { value: 12.5 },
        hysteresis: 0.5,
        min_count: 2,
        ..Default::default()
    }
}

/// A backlog of `n` readings over the last hour, earliest first.
fn backlog(server: &ElementServer, n: usize) {
    let now = jiff::Timestamp::now();
    for i in 0..n {
        let ago = jiff::SignedDuration::from_micros(((n - i) as i64) * 30_000);
        server.insert_reading_at(&device(i), reading(i), now - ago);
    }
}

pub async fn run(cfg: &Config) -> Result<Value, String> {
    let n = if cfg.quick { 5_000 } else { 100_000 };
    let sim_cfg = ElementServerConfig {
        api_keys: vec![(KEY.into(), KeyRole::ReadOnly)],
        devices: (0..DEVICES)
            .map(|i| SimDevice {
                id: device(i),
                name: format!("Cold room sensor {i}"),
                tags: vec![],
            })
            .collect(),
        ..Default::default()
    };
    let mut runs = Vec::new();
    // Catch-up: a backlog of the last hour, replayed earliest first.
    {
        let server = ElementServer::start(sim_cfg.clone())
            .await
            .map_err(|e| e.to_string())?;
        backlog(&server, n);
        runs.push(drain(&server, n, false).await?);
        server.stop().await;
    }
    {
        let server = ElementServer::start(sim_cfg.clone())
            .await
            .map_err(|e| e.to_string())?;
        match drain(&server, n, true).await {
            Ok(r) => runs.push(r),
            Err(e) => runs.push(json!({"mode": "live", "error": e})),
        }
        server.stop().await;
    }
    for r in &runs {
        println!(
            "element {:<9} {:>9.0} readings/s ({} readings)",
            r["mode"].as_str().unwrap_or(""),
            r["readings_per_s"].as_f64().unwrap_or(f64::NAN),
            r["readings"]
        );
    }
    let cpu = match cpu_per_reading(&sim_cfg, n).await {
        Ok(v) => {
            println!(
                "element CPU per reading (catch-up, own processes): alarm-tray {:.1} µs, bare reader {:.1} µs ({:.2}×)",
                v["alarm-tray"]["cpu_us_per_reading"].as_f64().unwrap_or(f64::NAN),
                v["bare"]["cpu_us_per_reading"].as_f64().unwrap_or(f64::NAN),
                v["cpu_vs_bare"].as_f64().unwrap_or(f64::NAN),
            );
            v
        }
        Err(e) => json!({"error": e}),
    };
    Ok(json!({"runs": runs, "replay_batch": 20, "cpu_per_reading": cpu}))
}
