//! Section "team" (issue 26): team sharing through Debian's mosquitto on a free loopback
//! port. 3 PCs (and 10 unless quick) as team links in this process, PC 1 publishing from
//! its outbox, every other PC receiving and confirming (the PUBACK after "stored").
//!
//! - latency: rows written to PC 1's outbox one every 5 ms; time from the write to its
//!   arrival (verified signature, handed to the receiver) on the last PC: p50/p99/max.
//! - burst: 10,000 rows written at once; messages/s until the last PC has all, and the
//!   CPU of this process per message delivered.
//!
//! What it leaves out: the engine's store of the arriving event on the receiving PC (the
//! ingest section measures that per event) and the popup decision.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alarm_tray::team::link::{self, Incoming, Outbox, OutboxRow};
use alarm_tray::team::{Kind, TeamConfig};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Config;

/// An outbox in memory; rows leave it on PUBACK.
#[derive(Default)]
struct MemOutbox(Mutex<Vec<OutboxRow>>);

impl MemOutbox {
    fn push(&self, id: i64, t0: Instant) {
        let us = t0.elapsed().as_micros() as u64;
        if let Ok(mut v) = self.0.lock() {
            v.push(OutboxRow {
                id,
                kind: Kind::Alarm,
                tail: "pc-1".into(),
                retain: false,
                body: Some(
                    json!({"identity": format!("rule:r1:s{id}"), "change": "raised", "t_us": us}),
                ),
                at_ms: 0,
            });
        }
    }
}

impl Outbox for MemOutbox {
    fn pending(&self, after: i64, limit: usize) -> Result<Vec<OutboxRow>, String> {
        let v = self.0.lock().map_err(|e| e.to_string())?;
        Ok(v.iter()
            .filter(|r| r.id > after)
            .take(limit)
            .cloned()
            .collect())
    }
    fn done(&self, id: i64) -> Result<(), String> {
        let mut v = self.0.lock().map_err(|e| e.to_string())?;
        v.retain(|r| r.id != id);
        Ok(())
    }
}

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Result<Broker, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 user root\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("mosquitto: {e} (apt-get install mosquitto)"))?;
        let b = Broker {
            child,
            port,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > end {
                return Err("mosquitto did not open its port".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(b)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Stopped by PID: SIGTERM, then kill after 5 s.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Arrival times (µs since `t0`, minus the write time) at each receiver.
type Seen = Arc<Mutex<Vec<Vec<f64>>>>;

async fn one(port: u16, pcs: usize, paced: usize, burst: usize) -> Result<Value, String> {
    let site = format!("bench{}", std::process::id());
    let cfg = |i: usize| TeamConfig {
        broker_url: format!("mqtt://127.0.0.1:{port}"),
        site: site.clone(),
        pc: format!("pc-{i}"),
        user: String::new(),
        password: None,
        site_key: b"bench site key".to_vec(),
    };
    let t0 = Instant::now();
    let seen: Seen = Arc::new(Mutex::new(vec![Vec::new(); pcs]));
    let mut links = Vec::new();
    let mut tasks = Vec::new();
    for i in 2..=pcs {
        let (tx, mut rx) = mpsc::channel::<Incoming>(4096);
        let out: Arc<dyn Outbox> = Arc::new(MemOutbox::default());
        links.push((
            link::spawn(cfg(i), out, tx).map_err(|e| e.to_string())?,
            cfg(i),
        ));
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if m.envelope.kind == Kind::Alarm {
                    let sent = m.envelope.body["t_us"].as_f64().unwrap_or(0.0);
                    let now = t0.elapsed().as_micros() as f64;
                    if let Ok(mut s) = seen.lock() {
                        s[i - 1].push(now - sent);
                    }
                }
                m.ack.confirm();
            }
        }));
    }
    let outbox = Arc::new(MemOutbox::default());
    let (tx1, mut rx1) = mpsc::channel::<Incoming>(4096);
    tasks.push(tokio::spawn(async move {
        while let Some(m) = rx1.recv().await {
            m.ack.confirm();
        }
    }));
    let a = link::spawn(cfg(1), outbox.clone(), tx1).map_err(|e| e.to_string())?;
    // Everyone connected and subscribed: wait for every presence at PC 1.
    let status = a.status();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let online = status.borrow().peers.iter().filter(|p| p.online).count();
        if status.borrow().state == "live" && online >= pcs {
            break;
        }
        if Instant::now() > end {
            return Err(format!("only {online} of {pcs} PCs online after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let count_last = |seen: &Seen| seen.lock().map(|s| s[pcs - 1].len()).unwrap_or(0);
    let count_all = |seen: &Seen| {
        seen.lock()
            .map(|s| s[1..].iter().map(Vec::len).min().unwrap_or(0))
            .unwrap_or(0)
    };
    // Paced: one row every 5 ms.
    for id in 1..=paced as i64 {
        outbox.push(id, t0);
        a.poke().notify_one();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end = Instant::now() + Duration::from_secs(60);
    while count_all(&seen) < paced && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat: Vec<f64> = seen
        .lock()
        .map(|s| s[pcs - 1].iter().map(|us| us / 1000.0).collect())
        .unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    if lat.len() < paced {
        return Err(format!("paced: the last PC got {} of {paced}", lat.len()));
    }
    // Burst: all rows at once.
    if let Ok(mut s) = seen.lock() {
        s.iter_mut().for_each(Vec::clear);
    }
    let cpu0 = cpu_secs();
    let start = Instant::now();
    for id in 1..=burst as i64 {
        outbox.push(paced as i64 + id, t0);
    }
    a.poke().notify_one();
    let end = Instant::now() + Duration::from_secs(600);
    while count_all(&seen) < burst && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let got = count_last(&seen);
    let delivered = seen
        .lock()
        .map(|s| s[1..].iter().map(Vec::len).sum::<usize>())
        .unwrap_or(0);
    let link_cfg = cfg(1);
    a.stop(&link_cfg).await;
    for (l, c) in links {
        l.stop(&c).await;
    }
    for t in tasks {
        t.abort();
    }
    if got < burst {
        return Err(format!("burst: the last PC got {got} of {burst}"));
    }
    let r = json!({
        "pcs": pcs,
        "paced_messages": paced,
        "latency_ms_p50": pct(&lat, 0.5),
        "latency_ms_p99": pct(&lat, 0.99),
        "latency_ms_max": lat.last().copied().unwrap_or(f64::NAN),
        "burst_messages": burst,
        "burst_secs": secs,
        "burst_msgs_per_s_to_last_pc": burst as f64 / secs,
        "cpu_us_per_delivery": cpu * 1e6 / delivered.max(1) as f64,
    });
    println!(
        "team, {pcs} PCs: publish → arrival on the last PC p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({paced} paced); \
         {burst} at once: {:.2} s, {:.0} msgs/s to the last PC, {:.0} µs CPU per delivery (all links in one process)",
        r["latency_ms_p50"].as_f64().unwrap_or(f64::NAN),
        r["latency_ms_p99"].as_f64().unwrap_or(f64::NAN),
        r["latency_ms_max"].as_f64().unwrap_or(f64::NAN),
        secs,
        burst as f64 / secs,
        r["cpu_us_per_delivery"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(r)
}

pub async fn run(cfg: &Config) -> Result<Value, String> {
    let broker = Broker::start()?;
    let burst = if cfg.quick { 1_000 } else { 10_000 };
    let paced = if cfg.quick { 200 } else { 1_000 };
    let mut runs = Vec::new();
    let sizes: &[usize] = if cfg.quick { &[3] } else { &[3, 10] };
    for &pcs in sizes {
        runs.push(one(broker.port, pcs, paced, burst).await?);
    }
    drop(broker);
    Ok(json!({ "runs": runs }))
}
