//! `cargo bench --bench engine`: events/s through decode → dedupe → rules → history insert
//! on one core, and memory per tracked sensor. Prints figures; asserts nothing about speed.
//!
//! `BENCH_EVENTS` (default 200000) sets the number of events of the throughput run.
//! `BENCH_ONLY=audit` runs only the audit-trail section (issue 21): `audit verify` of an
//! untouched trail of `BENCH_AUDIT_RECORDS` (default 100000) records.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use alarm_tray::clock::ManualClock;
use alarm_tray::engine::{self, wording::Locale, History};
use alarm_tray::event::{Ack, Delivery, Event, EventKind, Severity, Source};
use alarm_tray::notify::RecordingNotifier;
use alarm_tray::settings::{Limit, Settings, ThresholdRule};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio::sync::mpsc;

/// Counts live heap bytes (Rust allocations only; SQLite allocates through libc).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU seconds (user + system) of this process so far: a figure that a busy shared
/// machine distorts less than wall time.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok())
        })
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// A Saveris measurements-v2 body, as on the wire.
fn body(i: usize, sensors: usize) -> String {
    // Each sensor's value climbs 0.3 per round from 4.0 to 9.9 and wraps: it crosses the
    // rule's limit now and then, so rules raise and clear alarms as in real life.
    let (round, s) = (i / sensors, i % sensors);
    let v = 4.0 + ((round * 3 + s * 7) % 60) as f64 / 10.0;
    format!(
        r#"{{"uuid":"m-{i:08}","customer_site":"site","tenant_uuid":"t-1","sensor_uuid":"sensor-{s:05}","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air","physical_unit":"°C","timestamp":"2024-05-01T10:{m:02}:{sec:02}Z","timestamp_local":"2024-05-01T12:00:00","measurement":{v},"serial_no":"6100{s:05}","model_code":"T1","processed_at":"2024-05-01T10:00:01Z"}}"#,
        m = (i / 60) % 60,
        sec = i % 60,
    )
}

/// Stand-in for the Saveris payload decoder (the feed's own decoder does the same work:
/// parse JSON, pick fields, build the Event).
fn decode(raw: String) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_str(&raw).ok()?;
    let uuid = v.get("uuid")?.as_str()?;
    let mut e = Event::new(
        Source::Saveris,
        "acc",
        "measurements-v2",
        EventKind::Measurement,
        format!("saveris:acc:m:{uuid}"),
    );
    e.sensor = v
        .get("sensor_uuid")
        .and_then(|s| s.as_str())
        .map(String::from);
    e.name = v
        .get("serial_no")
        .and_then(|s| s.as_str())
        .map(String::from);
    e.quantity = v
        .get("physical_property_name")
        .and_then(|s| s.as_str())
        .map(String::from);
    e.unit = v
        .get("physical_unit")
        .and_then(|s| s.as_str())
        .map(String::from);
    e.value = v.get("measurement").and_then(|m| m.as_f64());
    e.measured_at = v
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<Timestamp>().ok());
    e.severity = Severity::Info;
    e.raw = raw;
    Some(e)
}

fn settings() -> Settings {
    let mut s = Settings::default();
    s.rules.push(ThresholdRule {
        id: "r1".into(),
        name: "too warm".into(),
        limit: Limit::Above { value: 9.0 },
        hysteresis: 0.5,
        min_count: 2,
        ..Default::default()
    });
    s.rules.push(ThresholdRule {
        id: "r2".into(),
        name: "silent".into(),
        limit: Limit::NoData { minutes: 30 },
        ..Default::default()
    });
    s
}

fn main() {
    if cfg!(debug_assertions) {
        println!("(built with debug assertions: a release build (cargo bench) is faster)");
    }
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "audit" {
        let records: i64 = std::env::var("BENCH_AUDIT_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        audit_verify(records);
    }
    if only == "audit" {
        return;
    }
    // Memory first, while the heap and RSS are not yet shaped by the big run.
    rt.block_on(memory(10_000));
    rt.block_on(throughput(n));
}

/// `alarm-tray audit verify` of an untouched trail (issue 21): written by the app's own
/// writer thread, then verified from the file as the command does, 3 runs.
fn audit_verify(n: i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(alarm_tray::engine::audit::AUDIT_FILE);
    let log = alarm_tray::engine::audit::AuditLog::open(&path).expect("audit trail");
    let start = Instant::now();
    for i in 1..=n {
        log.record(
            1_714_557_600_000 + i * 1000,
            "alarm_raised",
            serde_json::json!({"alarm_id": i, "sensor": format!("fridge-{}", i % 500),
                "condition": "Upper limit", "severity": "alarm", "value": 9.5, "unit": "°C"}),
        );
    }
    // `flush` waits 5 s at most: wait until the writer has stored every record.
    let count = || -> i64 {
        rusqlite::Connection::open(&path)
            .and_then(|c| c.query_row("SELECT count(*) FROM audit", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    while count() < n && start.elapsed().as_secs() < 600 {
        log.flush();
    }
    let write = start.elapsed().as_secs_f64();
    drop(log);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let cpu = cpu_secs();
        let r = alarm_tray::engine::audit::verify_file(&path).expect("verify");
        assert!(r.intact && r.records == n as u64, "{r:?}");
        runs.push((t.elapsed().as_secs_f64(), cpu_secs() - cpu));
    }
    let best = runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    println!(
        "audit verify of an untouched trail: {n} records ({:.1} MB) in {best:.2} s (best of 3; runs {}), {:.0} records/s",
        size as f64 / 1e6,
        runs.iter()
            .map(|(w, c)| format!("{w:.2} s wall / {c:.2} s CPU"))
            .collect::<Vec<_>>()
            .join(", "),
        n as f64 / best
    );
    println!("  (written by the app's writer thread in {write:.2} s)");
}

async fn throughput(n: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = History::open(&dir.path().join("history.sqlite3")).expect("history");
    let (tx, rx) = mpsc::channel(4096);
    let (_status_tx, status_rx) = mpsc::unbounded_channel();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let clock = ManualClock::utc(Timestamp::from_second(1_714_557_600).expect("time"));
    let notifier = Arc::new(RecordingNotifier::new());
    let engine = engine::spawn_with(
        settings(),
        history.clone(),
        notifier.clone(),
        rx,
        status_rx,
        Arc::new(clock),
        Locale::plain(TimeZone::UTC),
    );
    // Bodies are made before the clock starts: the network hands them over as strings.
    // One in 100 is a redelivery of an earlier message (dedupe work).
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            if i % 100 == 99 {
                body(i - 50, 1000)
            } else {
                body(i, 1000)
            }
        })
        .collect();
    let start = Instant::now();
    let cpu_start = cpu_secs();
    let producer = tokio::spawn(async move {
        for (i, raw) in bodies.into_iter().enumerate() {
            let Some(event) = decode(raw) else { continue };
            let ack = Ack::new(ack_tx.clone(), 1, i.to_string());
            if tx.send(Delivery { event, ack }).await.is_err() {
                break;
            }
        }
    });
    let mut stored = 0usize;
    while stored < n {
        match ack_rx.recv().await {
            Some(a) if a.stored => stored += 1,
            Some(_) => panic!("an event was not stored"),
            None => break,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_start;
    let _ = producer.await;
    engine.poke().await;
    let events = history.event_count().expect("count");
    let all = alarm_tray::engine::model::AlarmFilter {
        limit: 10_000,
        ..Default::default()
    };
    let alarms = history.alarms(&all).map(|a| a.len()).unwrap_or(0);
    println!(
        "pipeline (decode → dedupe → rules → SQLite insert → ack), one core: {n} deliveries in {secs:.2} s = {:.0} events/s",
        n as f64 / secs
    );
    println!(
        "  CPU time {cpu:.2} s = {:.0} events per CPU-second",
        n as f64 / cpu.max(0.01)
    );
    println!(
        "  stored {events} distinct events ({} redeliveries deduplicated), {alarms} rule alarms",
        n as i64 - events
    );
    engine.shutdown().await;
}

async fn memory(sensors: usize) {
    let history = History::open_in_memory().expect("history");
    let (tx, rx) = mpsc::channel(4096);
    let (_status_tx, status_rx) = mpsc::unbounded_channel();
    let clock = ManualClock::utc(Timestamp::from_second(1_714_557_600).expect("time"));
    let engine = engine::spawn_with(
        settings(),
        history,
        Arc::new(RecordingNotifier::new()),
        rx,
        status_rx,
        Arc::new(clock),
        Locale::plain(TimeZone::UTC),
    );
    engine.poke().await;
    let before = LIVE.load(Ordering::Relaxed);
    let rss_before = rss_kb();
    for i in 0..sensors {
        // Values below every limit: tracked, no alarm.
        let Some(mut event) = decode(body(i, sensors)) else {
            continue;
        };
        event.value = Some(5.0);
        if tx
            .send(Delivery {
                event,
                ack: Ack::none(),
            })
            .await
            .is_err()
        {
            break;
        }
    }
    engine.poke().await;
    let after = LIVE.load(Ordering::Relaxed);
    let rss_after = rss_kb();
    let per = (after - before) as f64 / sensors as f64;
    println!(
        "memory: {sensors} tracked sensors (2 rules each) hold {:.0} KiB of Rust heap = {per:.0} bytes per sensor; \
         process RSS grew {} KiB (includes SQLite's in-memory history pages)",
        (after - before) as f64 / 1024.0,
        rss_after - rss_before
    );
    engine.shutdown().await;
}
