//! Section 6 (issue 27): the sensor view on a long history. 20 sensors × 30 days at one
//! reading a minute (864,000 readings) are written into a profile's history; the release
//! monitor is started on it and then:
//! 1. the monitor's answer to a 30-day `SensorView` request (800 buckets, a chart's width),
//!    timed over its socket as the window asks it, one sensor after the other;
//! 2. the real window (WebKitGTK, driven by tauri-driver over plain WebDriver HTTP) opens a
//!    sensor's view from its dashboard card and switches to 30 d; the page's own marks
//!    (`sensor-view-asked` → `-answered` → `-drawn`) give the round trip as the window sees
//!    it and the time to draw the chart.
//!
//! Goals (issue 27): answered ≤ 50 ms, drawn ≤ 200 ms.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alarm_tray::engine::model::LatestValue;
use alarm_tray::engine::History;
use alarm_tray::event::{Event, EventKind, Source};
use alarm_tray::ipc::protocol::{Request, Response};
use alarm_tray::settings::{Limit, Settings, ThresholdRule};
use serde_json::{json, Value};

use crate::footprint::Monitor;
use crate::{procs, Config};

const SENSORS: usize = 20;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const BUCKETS: u32 = 800;

fn sensor_id(s: usize) -> String {
    format!("fridge{s:02}")
}

/// `days` of one reading a minute for every sensor, ending at `end_ms`, written minute by
/// minute (the sensors interleaved, as a feed delivers them, so one sensor's rows are spread
/// over the file as in a real history) with a raw body of a v2 measurement's size.
fn seed(history: &History, days: i64, end_ms: i64) -> Result<usize, String> {
    let minutes = (days * DAY / MIN) as usize;
    let start = end_ms - minutes as i64 * MIN;
    let chunk = 1000;
    for first in (0..minutes).step_by(chunk) {
        history
            .write(|w| {
                for i in first..(first + chunk).min(minutes) {
                    let at = start + i as i64 * MIN;
                    let ts = jiff::Timestamp::from_millisecond(at)
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                    for s in 0..SENSORS {
                        let mut e = Event::new(
                            Source::Saveris,
                            "site-a",
                            "measurements-v2",
                            EventKind::Measurement,
                            format!("saveris:site-a:m:{i:08x}-5d1e-4c1a-9b7e-{s:012x}"),
                        );
                        // A slow daily wave with a one-minute spike every 5 days.
                        let spike = if i % 7200 == 3600 { 6.0 } else { 0.0 };
                        let v = 4.0 + (i as f64 / 1440.0 * std::f64::consts::TAU).sin() + spike + s as f64 * 0.1;
                        e.sensor = Some(sensor_id(s));
                        e.device = Some(format!("logger{s:02}"));
                        e.name = Some(format!("Fridge {s:02}"));
                        e.quantity = Some("Temperature".into());
                        e.value = Some(v);
                        e.unit = Some("°C".into());
                        e.measured_at = Some(ts);
                        e.received_at = ts;
                        e.raw = format!(
                            r#"{{"uuid":"{i:08x}-5d1e-4c1a-9b7e-{s:012x}","customer_site":"site-a","sensor_uuid":"7c2e4a18-0b3d-4f6e-8a9c-{s:012x}","channel_no":1,"physical_property_name":"Temperature","physical_extension":"Air Temperature","physical_unit":"°C","timestamp":"{ts}","measurement":{v:.2},"serial_no":"6{s:07}","model_code":"T1","processed_at":"{ts}"}}"#
                        );
                        w.insert_event(&e)?;
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    history
        .write(|w| {
            for s in 0..SENSORS {
                w.set_last_value(&LatestValue {
                    sensor: sensor_id(s),
                    name: Some(format!("Fridge {s:02}")),
                    source: Source::Saveris,
                    quantity: Some("Temperature".into()),
                    value: 4.0,
                    unit: Some("°C".into()),
                    at_ms: end_ms - MIN,
                })?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    Ok(minutes * SENSORS)
}

fn stats(ms: &[f64]) -> Value {
    let mut sorted = ms.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    json!({
        "runs": ms.len(),
        "first_ms": ms.first(),
        "median_ms": procs::percentile(&sorted, 50.0),
        "max_ms": sorted.last(),
    })
}

pub fn run(cfg: &Config, rt: &tokio::runtime::Runtime) -> Result<Value, String> {
    let days: i64 = if cfg.quick { 2 } else { 30 };
    let dir = tempfile::Builder::new()
        .prefix("bench-sensor-view-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let end_ms = jiff::Timestamp::now().as_millisecond();
    let t = Instant::now();
    let history = History::open(&dir.path().join("history.sqlite3")).map_err(|e| e.to_string())?;
    let rows = seed(&history, days, end_ms)?;
    drop(history);
    let load_secs = t.elapsed().as_secs_f64();
    println!("sensor view: {rows} readings of {SENSORS} sensors × {days} days in {load_secs:.1} s");
    // A rule for every sensor: the answer carries its limit lines, as a user's would.
    let mut settings = Settings::default();
    settings.rules.push(ThresholdRule {
        id: "cold-chain".into(),
        name: "Cold chain 2–8 °C".into(),
        limit: Limit::Outside {
            low: 2.0,
            high: 8.0,
        },
        ..Default::default()
    });
    std::fs::write(
        dir.path().join("settings.json"),
        json!({ alarm_tray::settings::STORE_KEY: settings }).to_string(),
    )
    .map_err(|e| e.to_string())?;

    let monitor = Monitor::start(&cfg.app_bin, dir.path())?;
    let client = monitor.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rt.block_on(client.request(Request::Info)).is_err() {
        if Instant::now() > deadline {
            return Err("the monitor did not answer within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // 1. The monitor's answer, one sensor after the other (each read once from disk).
    let mut ms = Vec::new();
    let mut buckets = 0;
    for s in 0..SENSORS {
        let req = Request::SensorView {
            sensor: sensor_id(s),
            quantity: None,
            from_ms: end_ms - days * DAY,
            to_ms: end_ms,
            buckets: BUCKETS,
        };
        let t = Instant::now();
        match rt.block_on(client.request(req)) {
            Ok(Response::SensorView(v)) => {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                buckets = v.buckets.len();
                if v.stats.count as i64 != days * DAY / MIN {
                    return Err(format!(
                        "{}: {} readings in the answer, {} written",
                        sensor_id(s),
                        v.stats.count,
                        days * DAY / MIN
                    ));
                }
            }
            other => return Err(format!("SensorView answered {other:?}")),
        }
    }
    let answer = stats(&ms);
    println!(
        "  monitor answer, {days} d → {buckets} buckets: median {:.1} ms, first {:.1} ms, max {:.1} ms",
        answer["median_ms"].as_f64().unwrap_or(f64::NAN),
        answer["first_ms"].as_f64().unwrap_or(f64::NAN),
        answer["max_ms"].as_f64().unwrap_or(f64::NAN),
    );

    // 2. The real window.
    let window = match window_draw(cfg, dir.path(), days) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sensor view: window: FAILED: {e}");
            json!({"error": e})
        }
    };
    drop(monitor);
    Ok(json!({
        "sensors": SENSORS,
        "days": days,
        "readings": rows,
        "load_secs": load_secs,
        "buckets": BUCKETS,
        "answer": answer,
        "window": window,
        "goal_answer_ms": 50,
        "goal_drawn_ms": 200,
    }))
}

/// tauri-driver: `BENCH_TAURI_DRIVER`, else the one `make deps-tools` installs.
fn tauri_driver() -> PathBuf {
    std::env::var_os("BENCH_TAURI_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tauri-driver"))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Opens the window on the dashboard under tauri-driver, opens the first sensor's view and
/// switches between 24 h and the long range a few times; each switch to the long range is
/// one measurement from the page's marks.
fn window_draw(cfg: &Config, data_dir: &Path, days: i64) -> Result<Value, String> {
    let port = free_port()?;
    let native = free_port()?;
    let mut cmd = Command::new(tauri_driver());
    cmd.args([
        "--port",
        &port.to_string(),
        "--native-port",
        &native.to_string(),
    ])
    .env("ALARM_TRAY_DATA_DIR", data_dir)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut driver = procs::spawn(cmd).map_err(|e| format!("tauri-driver: {e}"))?;
    let result = (|| {
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("tauri-driver did not listen".to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "wry",
            "tauri:options": {"application": cfg.app_bin, "args": ["window", "--page", "dashboard"]}}}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .map_err(|e| format!("new session: {e}"))?;
        let session = r["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {r}"))?
            .to_string();
        // WebDriver's default script timeout is 30 s: a debug build on a loaded machine
        // needs longer to load the dashboard and five 30-day views (seen: "script timeout").
        let _ = http
            .post(format!("{base}/session/{session}/timeouts"))
            .json(&json!({"script": 600_000}))
            .send();
        let script = |body: &str, args: Value| -> Result<Value, String> {
            let r: Value = http
                .post(format!("{base}/session/{session}/execute/async"))
                .json(&json!({"script": body, "args": args}))
                .send()
                .and_then(|r| r.json())
                .map_err(|e| e.to_string())?;
            Ok(r["value"].clone())
        };
        let runs = if cfg.quick { 2 } else { 5 };
        let measured = script(MEASURE_JS, json!([sensor_id(0), runs, 30 * DAY]));
        let _ = http.delete(format!("{base}/session/{session}")).send();
        let measured = measured?;
        if let Some(e) = measured["error"].as_str() {
            return Err(e.to_string());
        }
        let pick = |k: &str| -> Vec<f64> {
            measured["runs"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r[k].as_f64()).collect())
                .unwrap_or_default()
        };
        let round_trip = stats(&pick("answered_ms"));
        let drawn = stats(&pick("drawn_ms"));
        println!(
            "  window, {days} d: answered in {:.1} ms, drawn in {:.1} ms after the answer (medians of {runs})",
            round_trip["median_ms"].as_f64().unwrap_or(f64::NAN),
            drawn["median_ms"].as_f64().unwrap_or(f64::NAN),
        );
        Ok(json!({"round_trip": round_trip, "drawn": drawn, "runs": measured["runs"]}))
    })();
    procs::stop(&mut driver, Duration::from_secs(5));
    result
}

/// In the page: open the sensor's view from its card, then `runs` times 24 h → long range,
/// each time reading the marks of the long range's request.
const MEASURE_JS: &str = r#"
const [sensor, runs, span] = arguments, done = arguments[arguments.length - 1];
const q = (id) => document.querySelector(`[data-testid='${id}']`);
const wait = (ok, ms) => new Promise((res, rej) => {
  const t0 = performance.now();
  (function poll() {
    if (ok()) res(); else if (performance.now() - t0 > ms) rej(new Error("timed out")); else setTimeout(poll, 20);
  })();
});
const last = (n) => { const m = performance.getEntriesByName(n); return m.length ? m[m.length - 1].startTime : null; };
(async () => {
  await wait(() => q(`card-open-${sensor}`), 60000);
  q(`card-open-${sensor}`).click();
  await wait(() => q("sensor-chart") && q("sensor-chart").dataset.drawn === "true", 60000);
  const out = [];
  for (let i = 0; i < runs; i++) {
    q("sensor-range-24h").click();
    await wait(() => q("sensor-chart").dataset.drawn === "true" && q("sensor-chart").dataset.span === String(86400000), 30000);
    performance.clearMarks();
    q("sensor-range-30d").click();
    await wait(() => q("sensor-chart").dataset.drawn === "true" && q("sensor-chart").dataset.span === String(span), 30000);
    // The draw hook runs inside uPlot's first paint; one more frame for the mark to land.
    await new Promise((r) => requestAnimationFrame(() => r()));
    const asked = last("sensor-view-asked"), answered = last("sensor-view-answered"), drawn = last("sensor-view-drawn");
    out.push({ answered_ms: answered - asked, drawn_ms: drawn - answered });
  }
  done({ runs: out });
})().catch((e) => done({ error: String(e) }));
"#;
