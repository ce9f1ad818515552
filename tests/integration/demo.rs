//! Demo mode as a newcomer meets it: `watch --demo` in a terminal, `alarm-tray --demo` on
//! the desktop — and neither leaves a trace in the user's own profile or keyring.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::desktop::{self, x11, NotifyWatch, Proc};

fn user_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".local/share"));
    base.join(alarm_tray::APP_ID)
}

/// Everything the user's profile holds: files with their sizes, and keyring entries.
fn user_trace() -> (Vec<(String, u64)>, String) {
    let mut files = Vec::new();
    let mut stack = vec![user_data_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((
                    p.display().to_string(),
                    e.metadata().map(|m| m.len()).unwrap_or(0),
                ));
            }
        }
    }
    files.sort();
    let keyring = Command::new("secret-tool")
        .args(["search", "--all", "service", "alarm-tray"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default();
    (files, keyring)
}

fn demo_profiles() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("alarm-tray-demo-"))
        .collect()
}

/// `alarm-tray watch --demo --for 60 --seed 1`: in one minute at least one raised and one
/// cleared alarm, a system alarm, a threshold popup and readings from both feeds, asserted
/// on its JSON output. The user's profile and keyring are untouched and the throwaway demo
/// profile is gone afterwards.
#[test]
fn watch_demo_shows_everything_in_a_minute_and_leaves_no_trace() {
    desktop::require_desktop();
    // Alone: the desktop demo makes a profile of its own while it runs.
    let _serial = desktop::serial();
    let before = user_trace();
    let profiles_before = demo_profiles();
    let out = Command::new(desktop::app_bin())
        .args([
            "watch",
            "--demo",
            "--for",
            "60",
            "--seed",
            "1",
            "--no-notify",
        ])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("watch --demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut kinds = std::collections::HashMap::<(String, String), usize>::new();
    let mut decisions = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        match v["type"].as_str() {
            Some("event") => {
                let e = &v["event"];
                *kinds
                    .entry((
                        e["source"].as_str().unwrap().into(),
                        e["kind"].as_str().unwrap().into(),
                    ))
                    .or_default() += 1;
            }
            Some("decision") => decisions.push(v["decision"].clone()),
            _ => {}
        }
    }
    let count = |s: &str, k: &str| {
        kinds
            .get(&(s.to_string(), k.to_string()))
            .copied()
            .unwrap_or(0)
    };
    eprintln!(
        "watch --demo: events {kinds:?}, {} decisions",
        decisions.len()
    );
    assert!(
        count("saveris", "alarm_raised") >= 1,
        "a raised Saveris alarm: {kinds:?}"
    );
    assert!(
        count("saveris", "alarm_cleared") >= 1,
        "a cleared Saveris alarm: {kinds:?}"
    );
    assert!(
        count("saveris", "system_alarm") >= 1,
        "a system alarm: {kinds:?}"
    );
    assert!(
        count("saveris", "measurement") >= 10,
        "Saveris readings: {kinds:?}"
    );
    assert!(
        count("element", "reading") >= 10,
        "ELEMENT readings: {kinds:?}"
    );
    let popups: Vec<String> = decisions
        .iter()
        .filter(|d| d["kind"] == "popup")
        .map(|d| {
            d["popup"]["summary"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        popups.iter().any(|s| s.contains("Warehouse freezer")),
        "the threshold rule popped: {popups:?}"
    );
    assert!(
        popups.iter().any(|s| s.contains("battery")),
        "the battery alarm popped: {popups:?}"
    );
    assert!(
        decisions.iter().any(|d| d["kind"] == "alarm_cleared"),
        "an alarm cleared"
    );

    assert_eq!(
        user_trace(),
        before,
        "the demo must not touch the user's profile or keyring"
    );
    assert_eq!(
        demo_profiles(),
        profiles_before,
        "the throwaway demo profile is removed"
    );
}

/// `alarm-tray --demo` opens the dashboard by itself and a popup is on screen within 30 s
/// (dunst under Xvfb); the screenshot is saved for people to look at.
#[test]
fn desktop_demo_opens_dashboard_and_pops_up() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let watch = NotifyWatch::start();
    // Profiles another run left behind (a killed demo) are not this run's business.
    let before = demo_profiles();
    let started = Instant::now();
    let child = Command::new(desktop::app_bin())
        .args(["--demo", "--seed", "1"])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alarm-tray --demo");
    let mut app = Proc { child };
    desktop::wait_for(Duration::from_secs(30), "the demo window", || {
        !x11::windows_titled("Alarm Tray").is_empty()
    });
    let window_after = started.elapsed();
    let seen = watch.wait_for("string \"Alarm", Duration::from_secs(30));
    let popup_after = started.elapsed();
    eprintln!("demo: window after {window_after:?}, first popup after {popup_after:?}");
    assert!(seen.contains("Alarm Tray"), "{seen}");
    std::thread::sleep(Duration::from_millis(800));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("demo-with-popup.png");
    let ok = Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok && shot.exists(), "screenshot of the demo");
    let profiles: Vec<String> = demo_profiles()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!profiles.is_empty(), "the demo runs in a throwaway profile");
    desktop::click_tray(app.pid(), "Quit");
    assert!(
        app.wait_exit(Duration::from_secs(15)).is_some(),
        "Quit ends the demo"
    );
    let left: Vec<String> = demo_profiles()
        .into_iter()
        .filter(|p| profiles.contains(p))
        .collect();
    assert!(left.is_empty(), "Quit removes the demo profile: {left:?}");
}

/// `watch` (here on the demo scenario) with dunst: a click on a popup's Acknowledge — the
/// daemon's `ActionInvoked` signal — acknowledges the alarm in the history, by "popup",
/// as the monitor does (issue 18: `watch` used to drop the clicks).
#[test]
fn watch_popup_acknowledge_acknowledges_in_history() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("watch.out");
    let notify = NotifyWatch::start();
    let child = Command::new(desktop::app_bin())
        .args(["watch", "--demo", "--seed", "1", "--for", "120"])
        .env_remove("ALARM_TRAY_DATA_DIR")
        // The throwaway demo profile is made under TMPDIR: here, so the test finds it.
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("watch.err")).unwrap())
        .spawn()
        .expect("watch --demo");
    let _watch = Proc { child };
    let decisions = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "decision")
            .map(|v| v["decision"].clone())
            .collect()
    };
    // The first alarm popup that offers Acknowledge.
    let mut alarm = None;
    desktop::wait_for(Duration::from_secs(60), "an alarm popup", || {
        alarm = decisions().into_iter().find_map(|d| {
            let p = &d["popup"];
            (d["kind"] == "popup" && p["actions"] == true && p["alarm_id"].is_i64()).then(|| {
                (
                    p["alarm_id"].as_i64().unwrap(),
                    p["summary"].as_str().unwrap().to_string(),
                )
            })
        });
        alarm.is_some()
    });
    let (alarm_id, summary) = alarm.unwrap();
    let mut popup = None;
    desktop::wait_for(
        Duration::from_secs(10),
        "the popup's notification id",
        || {
            popup = notify.id_of(&summary);
            popup.is_some()
        },
    );
    let popup = popup.unwrap();
    let acked = || {
        decisions()
            .iter()
            .any(|d| d["kind"] == "acknowledged" && d["alarm_id"] == alarm_id && d["by"] == "popup")
    };
    // The waiter subscribes just after Notify returned: repeat the click until it lands.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !acked() {
        assert!(
            Instant::now() < deadline,
            "Acknowledge on popup {popup} did not acknowledge alarm {alarm_id}:\n{}",
            std::fs::read_to_string(&out_path).unwrap_or_default()
        );
        desktop::invoke_popup_action(popup, "acknowledge");
        std::thread::sleep(Duration::from_millis(700));
    }
    // In the history itself (read-only, beside the running watch).
    let profile = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("alarm-tray-demo-")
        })
        .expect("the demo profile")
        .path();
    let db = rusqlite::Connection::open_with_flags(
        profile.join("history.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let by: Option<String> = db
        .query_row(
            "SELECT acknowledged_by FROM alarms WHERE id = ?1",
            [alarm_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by.as_deref(), Some("popup"), "alarm {alarm_id} in history");
}

/// A logout sends SIGTERM: the tray app quits as from its menu (window gone, demo profile
/// removed, exit code 0) instead of dying on the spot and leaving its profile behind.
#[test]
fn demo_quits_cleanly_on_sigterm() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let before = demo_profiles();
    let child = Command::new(desktop::app_bin())
        .args(["--demo", "--seed", "1"])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alarm-tray --demo");
    let mut app = Proc { child };
    desktop::wait_for(Duration::from_secs(30), "the demo window", || {
        !x11::windows_titled("Alarm Tray").is_empty()
    });
    let ours: Vec<String> = demo_profiles()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(ours.len(), 1, "one throwaway profile: {ours:?}");
    let rc = unsafe { libc::kill(app.pid() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "SIGTERM sent");
    let status = app.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM quits cleanly (exit 0, not killed by the signal): {status:?}"
    );
    desktop::wait_for(Duration::from_secs(10), "the window to go", || {
        x11::windows_titled("Alarm Tray").is_empty()
    });
    let left: Vec<String> = demo_profiles()
        .into_iter()
        .filter(|p| ours.contains(p))
        .collect();
    assert!(left.is_empty(), "the demo profile is removed: {left:?}");
}
