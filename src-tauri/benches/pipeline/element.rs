//! Section 5: readings/s through the ELEMENT feed + engine (history on a temp file, a
//! threshold rule on temperature, counting notifier) from the project's ELEMENT server
//! (`alarm_tray::simulate::element`): a catch-up replay of a stored backlog (`after=`,
//! batched frames), then a live burst.

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
use crate::Config;

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
    settings.rules.push(ThresholdRule {
        id: "warm".into(),
        name: "too warm".into(),
        enabled: true,
        quantity: "temperature".into(),
        limit: Limit::Above { value: 12.5 },
        hysteresis: 0.5,
        min_count: 2,
        ..Default::default()
    });
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
        let now = jiff::Timestamp::now();
        for i in 0..n {
            let ago = jiff::SignedDuration::from_micros(((n - i) as i64) * 30_000);
            server.insert_reading_at(&device(i), reading(i), now - ago);
        }
        runs.push(drain(&server, n, false).await?);
        server.stop().await;
    }
    {
        let server = ElementServer::start(sim_cfg)
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
    Ok(json!({"runs": runs, "replay_batch": 20}))
}
