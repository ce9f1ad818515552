//! Section 1: ingest through a real broker. The same preloaded durable queue (persistent
//! messages) is drained, one contender at a time, by:
//! - `alarm-tray`'s Saveris feed + engine (history on a temp file, popups to a counting
//!   notifier, each message ACKed after its batch committed) — a child process of this bench;
//! - a bare Rust consumer (tokio-tungstenite, split frames, parse JSON, ACK): the ceiling;
//! - the same bare consumer under `ack:auto` (no ACKs): what the broker delivers when it
//!   has no confirmations to process — shows how much of the ceiling is the broker's own
//!   ACK handling (a consumer like this loses whatever it held when it crashes);
//! - the Saveris docs' sample stack (`@stomp/stompjs` + `ws` on Node.js, parsing each JSON
//!   body), with `ws`'s default permessage-deflate and without;
//! - alarm-tray's feed alone (deliveries confirmed at once): the feed's share of the cost.
//!
//! The no-ACK consumer, the feed alone and Node without deflate are diagnostics: they run
//! with `BENCH_INGEST=all` (or when named), not by default.
//!
//! Each contender runs as its own process, measured by the kernel (wait4: CPU seconds and
//! peak RSS of exactly that process).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alarm_tray::engine::{self, History};
use alarm_tray::feeds::saveris::{self, SaverisFeedConfig};
use alarm_tray::notify::{Notifier, NotifyError, Popup};
use alarm_tray::settings::{Channels, CustomEndpoint, SaverisAccount, Settings};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::broker::{self, Broker, StompConn};
use crate::{messages, procs, Config};

/// Popups go nowhere; they are counted.
#[derive(Default)]
pub struct CountingNotifier {
    pub shown: AtomicU64,
    pub closed: AtomicU64,
}

impl Notifier for CountingNotifier {
    fn show(&self, _popup: &Popup) -> Result<(), NotifyError> {
        self.shown.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn close(&self, _tag: &str) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A Saveris account on a custom endpoint: the bench's RabbitMQ, queue `<username>.alarms`.
pub fn account(ws_url: &str, username: &str) -> SaverisAccount {
    SaverisAccount {
        id: format!("bench-{username}"),
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

/// Child `ours`: the feed + engine drain `n` messages of `username`'s alarm queue. Prints
/// one JSON line.
pub async fn child_ours(
    ws_url: &str,
    username: &str,
    n: usize,
    db: &Path,
) -> Result<Value, String> {
    let account = account(ws_url, username);
    let mut settings = Settings::default();
    settings.saveris.push(account.clone());
    let history = History::open(db).map_err(|e| e.to_string())?;
    // Issue 27: BENCH_SENSOR_INDEX=narrow measures ingest with the index the covering one replaced.
    let index = crate::history::sensor_index(db)?;
    let notifier = Arc::new(CountingNotifier::default());
    // The same wiring as `runtime::Runtime` (its queue size), without the keyring.
    let (tx, rx) = mpsc::channel(4096);
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    let engine = engine::spawn(settings, history.clone(), notifier.clone(), rx, status_rx);
    let start = Instant::now();
    let feed = saveris::spawn(
        SaverisFeedConfig::new(account, None, Some("guest".into())),
        tx,
        status_tx,
    );
    let deadline = start + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stored = history.event_count().map_err(|e| e.to_string())?;
        if stored as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {stored} of {n} messages stored after 600 s"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // The ACKs of the last batch leave right after its commit; give them a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    feed.stop().await;
    engine.poke().await;
    let alarms = history
        .alarms(&alarm_tray::engine::model::AlarmFilter {
            limit: 1,
            ..Default::default()
        })
        .map(|a| a.first().map(|r| r.id).unwrap_or(0))
        .unwrap_or(0);
    engine.shutdown().await;
    Ok(json!({
        "messages": n,
        "secs": secs,
        "popups_shown": notifier.shown.load(Ordering::Relaxed),
        "popups_closed": notifier.closed.load(Ordering::Relaxed),
        "alarms_raised": alarms,
        "history_commits": history.commits(),
        "audit_commits": history.audit().map(|a| a.commits()).unwrap_or(0),
        "sensor_index": index,
    }))
}

/// Child `feed`: the Saveris feed alone; a stand-in engine confirms each delivery at once
/// (no storage, no rules). Next to `ours` it splits the cost between feed and engine.
pub async fn child_feed(ws_url: &str, username: &str, n: usize) -> Result<Value, String> {
    let account = account(ws_url, username);
    let (tx, mut rx) = mpsc::channel::<alarm_tray::event::Delivery>(4096);
    let (status_tx, _status_rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let feed = saveris::spawn(
        SaverisFeedConfig::new(account, None, Some("guest".into())),
        tx,
        status_tx,
    );
    let mut got = 0usize;
    let mut batch = Vec::with_capacity(512);
    while got < n {
        let k = tokio::time::timeout(Duration::from_secs(60), rx.recv_many(&mut batch, 512))
            .await
            .map_err(|_| format!("only {got} of {n} deliveries after a 60 s pause"))?;
        if k == 0 {
            return Err("the feed stopped".into());
        }
        got += k;
        for d in batch.drain(..) {
            d.ack.confirm();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    feed.stop().await;
    Ok(json!({"messages": got, "secs": secs}))
}

/// Child `bare`: split frames, parse each JSON body, ACK each message (under `ack`
/// `client-individual`; `auto` needs none); nothing else.
pub async fn child_bare(ws_url: &str, dest: &str, n: usize, ack: &str) -> Result<Value, String> {
    let start = Instant::now();
    let mut c = StompConn::connect(ws_url).await?;
    c.subscribe(dest, ack).await?;
    let mut got = 0usize;
    let mut parse_errors = 0usize;
    while got < n {
        got += c
            .take_messages(|f, _| {
                if serde_json::from_slice::<Value>(&f.body).is_err() {
                    parse_errors += 1;
                }
            })
            .await?;
    }
    let secs = start.elapsed().as_secs_f64();
    c.close().await;
    Ok(json!({"messages": got, "secs": secs, "parse_errors": parse_errors}))
}

/// strace is there to count fsyncs (`BENCH_FSYNCS=0` leaves it out).
fn strace_available() -> bool {
    std::env::var("BENCH_FSYNCS").map_or(true, |v| v != "0")
        && Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// fsync + fdatasync calls in a `strace -c` summary (its `calls` column).
fn fsyncs_counted(summary: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(summary).ok()?;
    let mut total = None;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if matches!(cols.last(), Some(&"fsync") | Some(&"fdatasync")) && cols.len() >= 5 {
            *total.get_or_insert(0) += cols[3].parse::<u64>().ok()?;
        }
    }
    // strace ran but saw none: no line at all.
    Some(total.unwrap_or(0))
}

fn bench_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| e.to_string())
}

/// One contender's run, as the report shows it.
fn row(name: &str, what: &str, m: &procs::Measured, n: usize) -> Result<Value, String> {
    if !m.success {
        return Err(format!(
            "{name} failed: {}{}",
            m.stdout.trim(),
            m.stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let line = m
        .stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{name} printed no result: {}", m.stdout))?;
    let own: Value = serde_json::from_str(line).map_err(|e| format!("{name}: {e}"))?;
    let secs = own["secs"].as_f64().unwrap_or(m.wall.as_secs_f64());
    Ok(json!({
        "name": name,
        "what": what,
        "messages": n,
        "secs": secs,
        "msg_per_s": n as f64 / secs,
        "cpu_secs": m.cpu_secs,
        "cpu_us_per_msg": m.cpu_secs * 1e6 / n as f64,
        "peak_rss_mb": m.max_rss_kb as f64 / 1024.0,
        "wall_secs_process": m.wall.as_secs_f64(),
        "details": own,
    }))
}

pub async fn run(cfg: &Config, broker: &Broker) -> Result<Value, String> {
    let n = cfg.messages;
    let url = broker.ws_url();
    let sensors = 2000;
    let sample = messages::alarm_body(0, sensors, None);
    println!(
        "ingest: {n} messages of ~{} bytes per contender ({} sensors raising and clearing)",
        sample.len(),
        sensors
    );
    let mut rows = Vec::new();
    // (name, what it is, diagnostic). The contenders run by default; the
    // diagnostics (what the broker gives without ACKs, the feed's share, Node without
    // deflate) add ~100 s and run with BENCH_INGEST=all or when named.
    let contenders: Vec<(&str, &str, bool)> = vec![
        (
            "alarm-tray",
            "Saveris feed + engine: parse, dedupe, rules, SQLite history, popups, ACK after commit",
            false,
        ),
        (
            "bare-rust",
            "tokio-tungstenite: split frames, parse JSON, ACK (the ceiling)",
            false,
        ),
        (
            "bare-rust-noack",
            "the same under ack:auto, no ACKs (loses messages on a crash): the broker's delivery ceiling",
            true,
        ),
        (
            "feed-only",
            "alarm-tray's Saveris feed, deliveries confirmed at once (no engine): the feed's share",
            true,
        ),
        (
            "node-stompjs",
            "@stomp/stompjs + ws (Saveris docs' sample stack), default: permessage-deflate",
            false,
        ),
        (
            "node-stompjs-nodeflate",
            "@stomp/stompjs + ws, permessage-deflate off",
            true,
        ),
    ];
    let only = std::env::var("BENCH_INGEST").unwrap_or_default();
    let mut skipped = Vec::new();
    for (round, (name, what, diagnostic)) in contenders.iter().enumerate() {
        // BENCH_INGEST=alarm-tray,bare-rust runs only those; =all runs every one.
        let wanted = match only.trim() {
            "" => !diagnostic,
            "all" => true,
            list => list.split(',').any(|o| o.trim() == *name),
        };
        if !wanted {
            skipped.push(*name);
            continue;
        }
        if !cfg.node_available() && name.starts_with("node") {
            println!(
                "  {name}: skipped, Node.js or bench/node/node_modules missing (run `make bench`)"
            );
            continue;
        }
        let user = format!("bench{round}");
        let dest = format!("/queue/{user}.alarms");
        let t = Instant::now();
        broker::preload(&url, &dest, n, |i| messages::alarm_body(i, sensors, None)).await?;
        let preload_secs = t.elapsed().as_secs_f64();
        let limit = Duration::from_secs(900);
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cmd = match *name {
            "alarm-tray" => {
                // BENCH_WRAP_OURS="perf record -g -o /tmp/ours.perf --" profiles this child.
                let wrap: Vec<String> = std::env::var("BENCH_WRAP_OURS")
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                let mut c = match wrap.split_first() {
                    Some((first, rest)) => {
                        let mut c = Command::new(first);
                        c.args(rest).arg(bench_exe()?);
                        c
                    }
                    // fsyncs are counted by strace, stopping only at those two calls
                    // (seccomp filter): the child runs at full speed in between, and
                    // wait4 on strace includes the child's CPU.
                    None if strace_available() => {
                        let mut c = Command::new("strace");
                        c.args([
                            "-f",
                            "-qq",
                            "--seccomp-bpf",
                            "-e",
                            "trace=fsync,fdatasync",
                            "-c",
                            "-o",
                        ])
                        .arg(tmp.path().join("fsyncs.txt"))
                        .arg(bench_exe()?);
                        c
                    }
                    None => Command::new(bench_exe()?),
                };
                c.args(["--child", "ours", &url, &user, &n.to_string()])
                    .arg(tmp.path().join("history.sqlite3"));
                c
            }
            "feed-only" => {
                let mut c = Command::new(bench_exe()?);
                c.args(["--child", "feed", &url, &user, &n.to_string()]);
                c
            }
            "bare-rust" | "bare-rust-noack" => {
                let ack = if *name == "bare-rust" {
                    "client-individual"
                } else {
                    "auto"
                };
                let mut c = Command::new(bench_exe()?);
                c.args(["--child", "bare", &url, &dest, &n.to_string(), ack]);
                c
            }
            _ => {
                let mut c = Command::new(&cfg.node);
                c.arg(cfg.node_dir.join("drain.mjs"))
                    .args([&url, &dest, &n.to_string()]);
                if name.ends_with("nodeflate") {
                    c.arg("--no-deflate");
                }
                c
            }
        };
        let broker_cpu0 = broker.pid().and_then(procs::cpu_secs);
        let m = tokio::task::spawn_blocking(move || procs::run_measured(cmd, limit))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{name}: {e}"))?;
        let broker_cpu = broker
            .pid()
            .and_then(procs::cpu_secs)
            .zip(broker_cpu0)
            .map(|(b, a)| b - a);
        let mut r = row(name, what, &m, n)?;
        if let Some(k) = fsyncs_counted(&tmp.path().join("fsyncs.txt")) {
            r["fsyncs"] = json!(k);
            r["fsyncs_per_1000_msgs"] = json!(k as f64 * 1000.0 / n as f64);
        }
        r["preload_secs"] = json!(preload_secs);
        r["broker_cpu_secs"] = json!(broker_cpu);
        println!(
            "  {name:<24} {:>8.0} msg/s  {:>6.2} CPU-s  {:>6.1} MB peak RSS  (preload {preload_secs:.1} s, broker {:.1} CPU-s)",
            r["msg_per_s"].as_f64().unwrap_or(0.0),
            m.cpu_secs,
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
            broker_cpu.unwrap_or(f64::NAN),
        );
        rows.push(r);
    }
    let get = |name: &str, k: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r[k].as_f64())
    };
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    let ours = get("alarm-tray", "msg_per_s");
    let summary = json!({
        "vs_node_default_throughput": ratio(ours, get("node-stompjs", "msg_per_s")),
        "vs_node_nodeflate_throughput": ratio(ours, get("node-stompjs-nodeflate", "msg_per_s")),
        "vs_bare_throughput": ratio(ours, get("bare-rust", "msg_per_s")),
        "vs_bare_noack_throughput": ratio(ours, get("bare-rust-noack", "msg_per_s")),
        "cpu_per_msg_vs_bare": ratio(get("alarm-tray", "cpu_us_per_msg"), get("bare-rust", "cpu_us_per_msg")),
        "fsyncs_per_1000_msgs": get("alarm-tray", "fsyncs_per_1000_msgs"),
        "cpu_per_msg_vs_node_default": ratio(get("alarm-tray", "cpu_us_per_msg"), get("node-stompjs", "cpu_us_per_msg")),
    });
    Ok(
        json!({"messages": n, "bytes_per_message": sample.len(), "sensors": sensors, "runs": rows, "skipped": skipped, "ratios": summary}),
    )
}
