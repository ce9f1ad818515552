//! The long run (issue 24): the tray app (the monitor, in the test desktop session, real
//! keyring) against `simulate --speed 50` for a long stretch, its window opened and closed
//! now and then, sampling the monitor's RSS and PSS. It fails if the second half grew by
//! more than 1 MB. Only under `make soak` (`ALARM_TRAY_SOAK=1`); `ALARM_TRAY_SOAK_MINS` sets
//! the length (25 by default). Prints one `SOAK-FIGURES` line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alarm_tray::secrets::SecretKey;
use alarm_tray::simulate::demo::{ELEMENT_ACCOUNT, ELEMENT_KEY, SAVERIS_ACCOUNT, SAVERIS_PASSWORD};

use crate::desktop::{self, Proc, Profile};

fn soak_enabled() -> bool {
    std::env::var_os("ALARM_TRAY_SOAK").is_some_and(|v| v != "0" && !v.is_empty())
}

/// (RSS, PSS) in kB from /proc.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("Rss:")?, field("Pss:")?))
}

fn store_secret(key: &SecretKey, value: &str) {
    desktop::secret_tool_store(Command::new("secret-tool"), &key.entry_name(), value);
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

#[test]
fn monitor_footprint_stays_flat_against_simulate_at_50x() {
    if !soak_enabled() {
        eprintln!("soak: set ALARM_TRAY_SOAK=1 (make soak)");
        return;
    }
    desktop::require_desktop();
    let _serial = desktop::serial();
    let mins: u64 = std::env::var("ALARM_TRAY_SOAK_MINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let profile = Profile::new();
    let mut sim = Command::new(desktop::app_bin())
        .args(["simulate", "--seed", "1", "--speed", "50", "--settings-out"])
        .arg(profile.settings_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("simulate");
    let mut first = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _sim = Proc { child: sim };
    assert!(
        profile.settings_file().exists(),
        "simulate wrote no settings"
    );
    store_secret(
        &SecretKey::ElementApiKey(ELEMENT_ACCOUNT.into()),
        ELEMENT_KEY,
    );
    store_secret(
        &SecretKey::SaverisPassword(SAVERIS_ACCOUNT.into()),
        SAVERIS_PASSWORD,
    );
    let monitor = profile.start_monitor();
    let pid = monitor.pid();
    let start = Instant::now();
    let total = Duration::from_secs(mins * 60);
    let mut samples: Vec<(u64, u64, u64)> = Vec::new(); // (secs, rss, pss)
    let mut next_window = Duration::from_secs(120);
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_secs(10));
        let t = start.elapsed();
        if let Some((rss, pss)) = memory(pid) {
            samples.push((t.as_secs(), rss, pss));
        } else {
            panic!("the monitor is gone after {} s", t.as_secs());
        }
        if t >= next_window && t + Duration::from_secs(60) < total {
            next_window = t + Duration::from_secs(240);
            desktop::click_tray(pid, "Open Alarm Tray");
            std::thread::sleep(Duration::from_secs(15));
            desktop::x11::close_titled("Alarm Tray");
        }
    }
    let half = samples.len() / 2;
    let second = &samples[half..];
    let k = 3.min(second.len());
    let rss: Vec<u64> = second.iter().map(|s| s.1).collect();
    let grew = mean(&rss[rss.len() - k..]) - mean(&rss[..k]);
    println!(
        "SOAK-FIGURES minutes={mins} samples={} rss_kb_start={} rss_kb_half={} rss_kb_end={} pss_kb_start={} pss_kb_half={} pss_kb_end={} second_half_growth_kb={:.0}",
        samples.len(),
        samples[0].1,
        samples[half].1,
        samples[samples.len() - 1].1,
        samples[0].2,
        samples[half].2,
        samples[samples.len() - 1].2,
        grew
    );
    assert!(
        grew <= 1024.0,
        "the monitor's RSS grew {grew:.0} kB in the second half: {second:?}"
    );
}
