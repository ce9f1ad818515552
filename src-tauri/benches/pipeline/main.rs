//! `make bench` (or `cargo bench -p alarm-tray --bench pipeline`): Alarm Tray measured side
//! by side, one run, one report. Writes `target/bench/report.json` and prints a table.
//!
//! Sections (issue 9): ingest through a real RabbitMQ Web-STOMP broker against the vendor's
//! Node.js sample stack and a bare consumer; publish → popup-decision latency; idle
//! footprint of the tray app and of gotify-tray; history queries on 1,000,000 events;
//! ELEMENT readings/s. Prints figures; asserts nothing about speed.
//!
//! Environment:
//! - `BENCH_SECTIONS` — comma list of `ingest,latency,history,element,footprint,sensor_view`
//!   (all; `sensor_view` is issue 27's sensor view on 864,000 readings);
//!   and `team` (issue 26: team sharing through mosquitto; `BENCH_ONLY=team` runs it alone);
//! - `BENCH_QUICK=1` — small counts and short idle periods (a smoke run);
//! - `BENCH_MESSAGES` (200000), `BENCH_HISTORY_EVENTS` (1000000), `BENCH_IDLE_SECS` (60);
//! - `BENCH_NODE` (node), `BENCH_NODE_DIR` (bench/node), `ALARM_TRAY_BIN` (release binary),
//!   `BENCH_GOTIFY_TRAY` (.tools/gotify-venv/bin/gotify-tray), `BENCH_REPORT`.

mod broker;
mod element;
mod footprint;
mod history;
mod ingest;
mod latency;
mod messages;
mod procs;
mod report;
mod sensorview;
mod team;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

/// What to run, from the environment.
pub struct Config {
    pub quick: bool,
    pub sections: Vec<String>,
    pub messages: usize,
    pub history_events: usize,
    pub idle_secs: u64,
    pub node: PathBuf,
    pub node_dir: PathBuf,
    pub app_bin: PathBuf,
    pub gotify_tray: PathBuf,
    pub report: PathBuf,
}

impl Config {
    fn from_env() -> Config {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let num = |k: &str, d: usize| var(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let quick = var("BENCH_QUICK").is_some_and(|v| v != "0");
        let all = "ingest,latency,history,element,footprint,sensor_view,team";
        Config {
            quick,
            sections: var("BENCH_SECTIONS")
                .or_else(|| var("BENCH_ONLY"))
                .unwrap_or_else(|| all.into())
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            messages: num("BENCH_MESSAGES", if quick { 5_000 } else { 200_000 }),
            history_events: num(
                "BENCH_HISTORY_EVENTS",
                if quick { 50_000 } else { 1_000_000 },
            ),
            idle_secs: num("BENCH_IDLE_SECS", if quick { 5 } else { 60 }) as u64,
            node: var("BENCH_NODE")
                .map(PathBuf::from)
                .unwrap_or("node".into()),
            node_dir: var("BENCH_NODE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("bench/node")),
            // cargo builds the app's binary along with a bench, in the same profile.
            app_bin: var("ALARM_TRAY_BIN")
                .map(PathBuf::from)
                .or_else(|| option_env!("CARGO_BIN_EXE_alarm-tray").map(PathBuf::from))
                .unwrap_or_else(|| root.join("target/release/alarm-tray")),
            gotify_tray: var("BENCH_GOTIFY_TRAY")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join(".tools/gotify-venv/bin/gotify-tray")),
            report: var("BENCH_REPORT")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/bench/report.json")),
        }
    }

    pub fn wants(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    pub fn node_available(&self) -> bool {
        self.node_dir.join("node_modules/@stomp/stompjs").exists()
            && std::process::Command::new(&self.node)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        std::process::exit(child(&args[pos + 1..]));
    }
    let cfg = Config::from_env();
    match run(&cfg) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench failed: {e}");
            std::process::exit(1);
        }
    }
}

/// A child process of the ingest section; prints one JSON line.
fn child(args: &[String]) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return 1;
        }
    };
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    // <kind> <ws url> <user or destination> <messages> [history file (ours) or ack mode (bare)]
    let n: usize = arg(3).parse().unwrap_or(0);
    let r = match arg(0) {
        "ours" => rt.block_on(ingest::child_ours(arg(1), arg(2), n, Path::new(arg(4)))),
        "bare" => rt.block_on(ingest::child_bare(arg(1), arg(2), n, arg(4))),
        "feed" => rt.block_on(ingest::child_feed(arg(1), arg(2), n)),
        "element" => rt.block_on(element::child_ours(arg(1), n, Path::new(arg(4)))),
        "element-bare" => rt.block_on(element::child_bare(arg(1), n)),
        other => Err(format!("unknown child {other:?}")),
    };
    match r {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// The machine the figures come from: cores, load, memory.
fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let mem_mb = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": cpu_model,
        "load_avg": load,
        "mem_mb": mem_mb,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "release_build": !cfg!(debug_assertions),
        "at": jiff::Timestamp::now().to_string(),
    })
}

fn run(cfg: &Config) -> Result<(), String> {
    if cfg!(debug_assertions) {
        println!(
            "(debug build: the figures of a release build (`make bench`) are the ones to quote)"
        );
    }
    messages::self_check()?;
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut report = json!({"machine": machine(), "quick": cfg.quick, "section_secs": []});
    let needs_broker = cfg.wants("ingest") || cfg.wants("latency") || cfg.wants("footprint");
    let broker = if needs_broker {
        let t = Instant::now();
        let b = broker::Broker::start()?;
        println!(
            "RabbitMQ Web-STOMP up in {:.1} s on {}",
            t.elapsed().as_secs_f64(),
            b.ws_url()
        );
        Some(b)
    } else {
        None
    };
    let mut failures = Vec::new();
    let mut section_start = Instant::now();
    // Each section's wall time goes into the report (`section_secs`): what a run spends where.
    let mut section = |name: &str, r: Result<Value, String>, report: &mut Value| {
        // A list, not an object: the table prints them in the order they ran.
        if let Some(list) = report["section_secs"].as_array_mut() {
            list.push(json!({"section": name, "secs": section_start.elapsed().as_secs_f64()}));
        }
        section_start = Instant::now();
        match r {
            Ok(v) => report[name] = v,
            Err(e) => {
                eprintln!("{name}: FAILED: {e}");
                failures.push(format!("{name}: {e}"));
                report[name] = json!({"error": e});
            }
        }
    };
    if let (true, Some(b)) = (cfg.wants("ingest"), broker.as_ref()) {
        let r = rt.block_on(ingest::run(cfg, b));
        section("ingest", r, &mut report);
    }
    if let (true, Some(b)) = (cfg.wants("latency"), broker.as_ref()) {
        let r = rt.block_on(latency::run(cfg, b));
        section("latency", r, &mut report);
    }
    // gotify-tray's idle minute (footprint) passes while history and ELEMENT measure: it
    // only sleeps and they do not use the display; ~40 s less per run.
    let gotify =
        (cfg.wants("footprint") && broker.is_some()).then(|| footprint::Gotify::start(cfg));
    if cfg.wants("history") {
        let r = history::run(cfg);
        section("history", r, &mut report);
    }
    if cfg.wants("element") {
        let r = rt.block_on(element::run(cfg));
        section("element", r, &mut report);
    }
    // `gotify` is there exactly when the footprint section is wanted and has a broker.
    if let (Some(g), Some(b)) = (gotify, broker.as_ref()) {
        let r = footprint::run(cfg, b, &rt, g);
        section("footprint", r, &mut report);
    }
    // After footprint: the sensor view opens a window of its own on the same display.
    if cfg.wants("sensor_view") {
        let r = sensorview::run(cfg, &rt);
        section("sensor_view", r, &mut report);
    }
    // Issue 26: team sharing through its own mosquitto.
    if cfg.wants("team") {
        let r = rt.block_on(team::run(cfg));
        section("team", r, &mut report);
    }
    drop(broker);
    report["machine"]["load_avg_end"] = json!(std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "));
    report["total_secs"] = json!(started.elapsed().as_secs_f64());
    if let Some(dir) = cfg.report.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&cfg.report, text).map_err(|e| e.to_string())?;
    println!();
    print!("{}", report::table(&report));
    println!("\nreport: {}", cfg.report.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
