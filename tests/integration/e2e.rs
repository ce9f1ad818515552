//! End-to-end tests of the real app: the monitor with its tray on D-Bus, the window in the
//! real WebKitGTK webview through tauri-driver, the real Secret Service and the real
//! notification daemon. Screenshots land in target/screenshots/.

use std::process::Command;
use std::time::Duration;

use crate::desktop::{self, x11, Driver, NotifyWatch, Profile};

const TITLE: &str = "Alarm Tray";

fn secret_tool_lookup(entry: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "alarm-tray", "username", entry])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// Window processes (`alarm-tray window …`) of this profile.
fn window_pids(profile: &Profile) -> Vec<u32> {
    let exe = desktop::app_bin().to_string_lossy().to_string();
    let dir = profile.data_dir().display().to_string();
    desktop::pids_matching("window")
        .into_iter()
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            let env = std::fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
            args.first()
                .is_some_and(|a| a.ends_with("alarm-tray") || a == &exe)
                && args.get(1).is_some_and(|a| a == "window")
                && String::from_utf8_lossy(&env).contains(&dir)
        })
        .collect()
}

/// WebKit helper processes started by `parent` (a window process), at any depth.
fn webkit_children(parent: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut stack = vec![parent];
    while let Some(p) = stack.pop() {
        let kids = desktop::children_of(p);
        stack.extend(&kids);
        all.extend(kids);
    }
    all.into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("WebKit"))
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Settings window: version shown; a password typed into the UI lands in the Secret Service
/// and nowhere else; a saved setting survives a restart of the monitor.
#[test]
fn e2e_settings_secret_and_restart() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let mut monitor = profile.start_monitor();

    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.click("section-general");
    let version = d.wait_text("app-version", alarm_tray::VERSION);
    assert_eq!(version.trim(), alarm_tray::VERSION);
    assert!(
        d.text("log-dir")
            .contains(&profile.data_dir().display().to_string()),
        "the log dir is shown"
    );
    d.screenshot("settings-general");

    // Only what capabilities/window.json grants answers: a granted command works; a command
    // the app never declared, and a core command not granted, are refused by Tauri's ACL
    // before any handler runs.
    let probe = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const invoke = window.__TAURI_INTERNALS__.invoke;
           Promise.allSettled([
             invoke("info"),
             invoke("get_secret", { key: { kind: "saveris_password", account: "x" } }),
             invoke("plugin:event|emit", { event: "x", payload: null }),
           ]).then((r) => done(r.map((x) => (x.status === "fulfilled" ? "ok" : String(x.reason)))));"#,
        serde_json::json!([]),
    );
    let probe: Vec<String> = serde_json::from_value(probe).expect("three outcomes");
    assert_eq!(probe[0], "ok", "{probe:?}");
    for refused in &probe[1..] {
        assert!(refused.contains("not allowed"), "{probe:?}");
    }

    // A Saveris account with a password typed into the write-only field.
    let password = "E2e-s3cret-Pa55word";
    d.click("section-accounts");
    d.click("add-saveris");
    d.type_into("saveris-username", "e2e-alice");
    d.type_into("saveris-password", password);
    d.screenshot("settings-account-editor");
    d.click("saveris-save");
    let edit = d.find_css("[data-testid^='account-edit-']");
    let _ = edit;
    let settings_text = std::fs::read_to_string(profile.settings_file()).expect("settings saved");
    let v: serde_json::Value = serde_json::from_str(&settings_text).unwrap();
    let id = v["settings"]["saveris"][0]["id"]
        .as_str()
        .expect("account saved")
        .to_string();
    assert_eq!(v["settings"]["saveris"][0]["username"], "e2e-alice");
    desktop::wait_for(
        Duration::from_secs(10),
        "the password in the keyring",
        || secret_tool_lookup(&format!("saveris:{id}:password")).as_deref() == Some(password),
    );
    assert!(
        !settings_text.contains(password),
        "the password must not be in the settings file"
    );

    d.click(&format!("account-edit-{id}"));
    let stored = d.wait_text("saveris-password-stored", "stored in the system keyring");
    assert!(!stored.contains(password));
    assert_eq!(
        d.value("saveris-password"),
        "",
        "the field never shows the stored value"
    );
    assert!(
        !d.page_source().contains(password),
        "the secret never reaches the webview"
    );
    d.screenshot("settings-account-stored");
    d.click("saveris-cancel");

    // A setting saved in the UI survives a restart.
    d.click("section-general");
    d.type_into("retention-days", "45");
    d.click("general-save");
    d.wait_text("general-save-result", "");
    desktop::wait_for(Duration::from_secs(10), "retention saved", || {
        std::fs::read_to_string(profile.settings_file())
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["settings"]["retention_days"].as_u64())
            == Some(45)
    });
    d.quit();

    desktop::click_tray(monitor.pid(), "Quit");
    assert!(
        monitor.wait_exit(Duration::from_secs(10)).is_some(),
        "Quit in the tray ends the monitor"
    );
    let monitor2 = profile.start_monitor();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.click("section-general");
    desktop::wait_for(
        Duration::from_secs(10),
        "retention shown after restart",
        || d.value("retention-days") == "45",
    );
    d.screenshot("settings-after-restart");
    d.quit();
    drop(monitor2);
    // The keyring entry stays for the next test run only as long as this test: clean it.
    let _ = Command::new("secret-tool")
        .args([
            "clear",
            "service",
            "alarm-tray",
            "username",
            &format!("saveris:{id}:password"),
        ])
        .status();
}

/// The tray's Open starts the window process; closing the window (WM_DELETE_WINDOW, as a
/// close button does) ends it and its WebKit processes while the monitor keeps running;
/// Open brings it back. A second `alarm-tray` launch hands off to the first, and killing
/// the window leaves the monitor and its tray working.
#[test]
fn e2e_window_lifecycle_and_single_instance() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let mut monitor = profile.start_monitor();
    let items = desktop::tray_menu(monitor.pid());
    let labels: Vec<&str> = items.iter().map(|(_, l)| l.as_str()).collect();
    assert!(labels.contains(&"Open Alarm Tray"), "{labels:?}");
    assert!(labels.contains(&"Pause notifications"), "{labels:?}");
    assert!(labels.contains(&"Quit"), "{labels:?}");
    assert!(
        desktop::children_of(monitor.pid()).is_empty(),
        "the monitor alone makes no window and no webview"
    );

    desktop::click_tray(monitor.pid(), "Open Alarm Tray");
    desktop::wait_for(Duration::from_secs(20), "the window shown", || {
        !x11::windows_titled(TITLE).is_empty()
    });
    let win = desktop::children_of(monitor.pid());
    assert_eq!(win.len(), 1, "one window process, a child of the monitor");
    let mut webkit = Vec::new();
    desktop::wait_for(
        Duration::from_secs(10),
        "the window's WebKit helper processes",
        || {
            webkit = webkit_children(win[0]);
            !webkit.is_empty()
        },
    );

    // Open again: focuses the same window instead of a second one. (A process that
    // starts and hands off to the open window may exist for a moment: wait it out.)
    desktop::click_tray(monitor.pid(), "Open Alarm Tray");
    std::thread::sleep(Duration::from_secs(1));
    desktop::wait_for(Duration::from_secs(15), "a single window process", || {
        window_pids(&profile) == vec![win[0]]
    });
    assert!(
        !x11::windows_titled(TITLE).is_empty(),
        "the window stays open"
    );

    // Let the focus request of the second Open land before closing.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(x11::close_titled(TITLE), 1);
    // Under Xvfb (no window manager) a close request that lands while the window is
    // handling the focus request of the second Open is sometimes dropped (seen 2 times in
    // ~10 loaded runs): press close again every 5 s, as a user would, for at most 30 s.
    let mut last_close = std::time::Instant::now();
    desktop::wait_for(
        Duration::from_secs(30),
        "the window process to exit",
        || {
            if last_close.elapsed() > Duration::from_secs(5) {
                x11::close_titled(TITLE);
                last_close = std::time::Instant::now();
            }
            window_pids(&profile).is_empty()
        },
    );
    desktop::wait_for(Duration::from_secs(10), "WebKit processes to end", || {
        webkit.iter().all(|p| !alive(*p))
    });
    assert!(
        monitor.alive(),
        "closing the window leaves the monitor running"
    );

    // A second launch asks the first monitor to open its window, then exits.
    let second = profile.command(&[]).output().expect("second launch");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));
    desktop::wait_for(
        Duration::from_secs(20),
        "the window from the hand-off",
        || !x11::windows_titled(TITLE).is_empty(),
    );

    // Killing the window process leaves the monitor and its tray working.
    for p in window_pids(&profile) {
        desktop::unsafe_kill(p, 9);
    }
    desktop::wait_for(Duration::from_secs(10), "the killed window gone", || {
        window_pids(&profile).is_empty()
    });
    assert!(monitor.alive());
    assert!(
        desktop::tray_bus_name(monitor.pid()).is_some(),
        "the tray is still on D-Bus"
    );
    desktop::click_tray(monitor.pid(), "Open Alarm Tray");
    desktop::wait_for(Duration::from_secs(20), "the window again", || {
        !x11::windows_titled(TITLE).is_empty()
    });
    desktop::click_tray(monitor.pid(), "Quit");
    assert!(monitor.wait_exit(Duration::from_secs(10)).is_some());
    desktop::wait_for(
        Duration::from_secs(10),
        "the window to end with the monitor",
        || window_pids(&profile).is_empty(),
    );
}

/// "Send test notification" raises a real popup through the notification daemon; Pause in
/// the tray switches the tray state and the window shows it.
#[test]
fn e2e_test_notification_and_pause() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let watch = NotifyWatch::start();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.click("section-general");
    d.click("send-test-notification");
    let seen = watch.wait_for("Alarm Tray test notification", Duration::from_secs(10));
    assert!(seen.contains("string \"Alarm Tray\""), "app name: {seen}");
    assert!(seen.contains("Notifications work."), "body: {seen}");
    assert!(
        seen.contains("\"urgency\"") && seen.contains("byte 1"),
        "normal urgency: {seen}"
    );
    d.screenshot("settings-test-notification");

    desktop::click_tray(monitor.pid(), "Pause notifications");
    desktop::wait_for(
        Duration::from_secs(10),
        "paused state in the window",
        || {
            d.find_css("[data-testid='tray-state'][data-state='paused']");
            true
        },
    );
    desktop::wait_for(Duration::from_secs(10), "the tray's Resume item", || {
        desktop::tray_menu(monitor.pid())
            .iter()
            .any(|(_, l)| l == "Resume notifications")
    });
    d.wait_text("status-summary", "paused");
    assert!(!d
        .find_css("[data-testid='tray-state'][data-state='paused']")
        .is_empty());
    std::thread::sleep(Duration::from_millis(500));
    d.screenshot("settings-paused");
    d.quit();
    assert!(watch.pid() > 0);
}

/// The whole stack on loopback, driven through the real window: a Saveris custom-endpoint
/// account against RabbitMQ Web-STOMP (test connection, alarms channel), an alarm published
/// to the broker shows in the history table and as a popup, acknowledging it in the UI
/// changes the tray; a threshold rule on an ELEMENT reading from the project's ELEMENT
/// server raises a popup on a breach and clears inside the hysteresis band; a wrong Cognito
/// password (moto) gives the login error's sentence.
#[test]
fn e2e_full_stack_saveris_element_rules() {
    use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole, SimDevice};

    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let watch = NotifyWatch::start();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = crate::peers::rabbit::Broker::shared();
    let moto = crate::peers::moto::Moto::shared();
    let element = rt
        .block_on(ElementServer::start(ElementServerConfig {
            api_keys: vec![("e2e-element-key".into(), KeyRole::ReadOnly)],
            devices: vec![SimDevice {
                id: "dev-e2e-1".into(),
                name: "Vaccine fridge".into(),
                tags: vec![],
            }],
            ..Default::default()
        }))
        .unwrap();

    // --- Saveris through RabbitMQ (custom endpoint, STOMP login/passcode).
    let user = crate::peers::unique("e2ebob");
    d.click("section-accounts");
    d.click("add-saveris");
    d.type_into("saveris-username", &user);
    d.click("saveris-advanced");
    d.click("saveris-custom");
    // RabbitMQ reads the STOMP host header as its virtual host: the URL names it.
    d.type_into("saveris-ws-url", &format!("{}?vhost=%2F", broker.ws_url()));
    d.type_into("saveris-destination-pattern", "/queue/{username}.{channel}");
    d.type_into("saveris-stomp-login", "guest");
    d.type_into("saveris-stomp-passcode", "guest");
    d.click("saveris-test");
    let tested = d.wait_text("saveris-test-result", "Connected");
    assert!(tested.contains(&user), "{tested}");
    d.screenshot("accounts-saveris-custom-tested");
    d.click("saveris-save");
    d.click("section-general");
    d.find_css("[data-testid^='feed-saveris'][data-state='live']");
    // The feed subscribes to the alarms channel (the default): publish an alarm.
    let uuid = crate::peers::unique("e2e-alarm");
    let body = crate::saveris::alarm_body(&uuid);
    let queue = format!("/queue/{user}.alarms");
    let published = std::time::Instant::now();
    rt.block_on(crate::saveris::rabbit_publish(
        &broker.ws_url(),
        &queue,
        &[body],
    ));
    d.click("tab-history");
    let row = d.testid_of("[data-testid^='alarm-row-']");
    let in_history = published.elapsed();
    let id: i64 = row
        .trim_start_matches("alarm-row-")
        .parse()
        .expect("alarm id");
    assert!(
        in_history < Duration::from_secs(5),
        "alarm reached the history table after {in_history:?}"
    );
    let seen = watch.wait_for("Alarm", Duration::from_secs(5));
    assert!(
        seen.contains("byte 2"),
        "a measurement alarm pops up critical: {seen}"
    );
    desktop::wait_for(Duration::from_secs(10), "the tray in alarm state", || {
        d.page_source().contains("data-state=\"alarm\"")
    });
    d.screenshot("history-alarm-active");

    // The popup's Open action brings the window to this alarm (the window is open: it is
    // focused on the History page with the row marked).
    let mut popup = None;
    desktop::wait_for(Duration::from_secs(10), "the alarm popup's id", || {
        popup = watch.id_of("Alarm");
        popup.is_some()
    });
    let popup = popup.unwrap_or_default();
    d.click("tab-settings");
    let focused = format!("[data-testid='alarm-row-{id}'].focus");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // The monitor's waiter subscribes right after Notify returned: repeat until it acts.
        desktop::invoke_popup_action(popup, "open");
        std::thread::sleep(Duration::from_millis(700));
        if d.exists_css(&focused) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Open on the popup did not show alarm {id}"
        );
    }
    // Issue 27: Open lands on the alarm's sensor view, not only on its row.
    desktop::wait_for(
        Duration::from_secs(10),
        "the alarm's sensor view after Open",
        || {
            d.exists_css(&format!(
                "[data-testid='sensor-view'][data-alarm-id='{id}']"
            ))
        },
    );
    d.screenshot("history-opened-from-popup");
    d.click(&format!("ack-{id}"));
    d.click("ack-confirm");
    desktop::wait_for(Duration::from_secs(10), "acknowledged in the table", || {
        !d.exists_css(&format!("[data-testid='ack-{id}']"))
    });
    desktop::wait_for(Duration::from_secs(10), "the tray back to ok", || {
        d.page_source().contains("data-state=\"ok\"")
    });
    d.screenshot("history-alarm-acknowledged");

    // --- ELEMENT account, subscription and a threshold rule, all through the UI.
    d.click("tab-settings");
    d.click("section-accounts");
    d.click("add-element");
    d.type_into("element-base-url", &element.base_url());
    d.type_into("element-api-key", "e2e-element-key");
    d.click("element-save");
    let acc = d.testid_of("[data-testid^='account-'][data-kind='element']");
    let acc_id = acc.trim_start_matches("account-").to_string();
    d.click("section-channels");
    d.click(&format!("sub-add-{acc_id}"));
    d.select("sub-scope", "mandate");
    d.click("sub-kind-readings");
    d.click("sub-preload-device");
    d.screenshot("channels-subscription-editor");
    d.click("sub-save");
    desktop::wait_for(Duration::from_secs(10), "the subscription saved", || {
        !d.exists_css("[data-testid='sub-editor']")
    });
    d.click("section-rules");
    d.click("rule-add");
    d.type_into("rule-name", "Fridge above 8");
    d.select("rule-target", "all");
    d.type_into("rule-quantity", "temperature");
    d.select("rule-limit-type", "above");
    d.type_into("rule-value", "8");
    d.type_into("rule-hysteresis", "1");
    d.screenshot("rules-editor");
    d.click("rule-save");
    d.find("rules-table");
    d.screenshot("rules-saved");
    eprintln!(
        "settings now: {}",
        std::fs::read_to_string(profile.settings_file()).unwrap_or_default()
    );
    desktop::wait_for(Duration::from_secs(20), "the ELEMENT socket open", || {
        element.open_sockets() > 0
    });

    element.push_reading("dev-e2e-1", serde_json::json!({"temperature": 5.0}));
    element.push_reading("dev-e2e-1", serde_json::json!({"temperature": 9.5}));
    watch.wait_for("Vaccine fridge", Duration::from_secs(10));
    // Back below the limit but inside the hysteresis band (8 - 1): still active.
    element.push_reading("dev-e2e-1", serde_json::json!({"temperature": 7.5}));
    std::thread::sleep(Duration::from_secs(2));
    d.click("tab-history");
    d.select("filter-source", "element");
    let rule_row = d.testid_of("[data-testid^='alarm-row-']");
    let rid: i64 = rule_row.trim_start_matches("alarm-row-").parse().unwrap();
    assert_eq!(
        d.text(&format!("alarm-cleared-{rid}")).trim(),
        "",
        "7.5 is inside the hysteresis band: not cleared"
    );
    element.push_reading("dev-e2e-1", serde_json::json!({"temperature": 6.8}));
    desktop::wait_for(Duration::from_secs(10), "the rule alarm cleared", || {
        !d.text(&format!("alarm-cleared-{rid}")).trim().is_empty()
    });
    d.screenshot("history-rule-cleared");

    // --- A wrong password gives the login error's sentence (Cognito on moto).
    let (pool, client) = rt.block_on(moto.pool(&crate::peers::unique("pool")));
    rt.block_on(moto.user(&pool, "e2e-carol", "Right-Pass-1!", true));
    d.click("tab-settings");
    d.click("section-accounts");
    d.click("add-saveris");
    d.type_into("saveris-username", "e2e-carol");
    d.type_into("saveris-password", "Wrong-Pass-1!");
    d.click("saveris-login-cognito");
    d.type_into("saveris-cognito-client-id", &client);
    d.click("saveris-advanced");
    d.type_into("saveris-cognito-endpoint", &moto.endpoint());
    d.click("saveris-test");
    d.wait_text(
        "saveris-test-result",
        "Saveris rejected the user name or password (Saveris said: “Incorrect username or password”).",
    );
    d.screenshot("accounts-wrong-password");
    d.click("saveris-cancel");
    drop(d);
    drop(monitor);
    rt.block_on(element.stop());
}

/// A window that finds no monitor says so and offers to start it; Start brings the monitor
/// up and the window carries on. A corrupt settings file is kept aside and the window shows
/// the notice.
#[test]
fn e2e_window_without_monitor_and_corrupt_settings() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    std::fs::write(
        profile.settings_file(),
        b"{\"settings\": {\"version\": 2, \"rules\": [{]",
    )
    .unwrap();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.wait_text("not-running-banner", "not running");
    d.screenshot("window-monitor-not-running");
    d.click("start-monitor");
    desktop::wait_for(Duration::from_secs(30), "the banner to go", || {
        !d.exists_css("[data-testid='not-running-banner']")
    });
    let notice = d.wait_text("notice-banner", "settings file was unusable");
    assert!(
        notice.contains(".broken-"),
        "the user is told where the old file went: {notice}"
    );
    d.screenshot("window-settings-notice");
    let kept: Vec<_> = std::fs::read_dir(profile.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("settings.json.broken-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the corrupt file is kept aside");
    assert_eq!(
        std::fs::read(kept[0].path()).unwrap(),
        b"{\"settings\": {\"version\": 2, \"rules\": [{]"
    );
    // The monitor started from the window runs detached and outlives it: the test stops it
    // through its tray.
    let monitors: Vec<u32> = desktop::pids_matching("--hidden")
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|e| {
                String::from_utf8_lossy(&e).contains(&profile.data_dir().display().to_string())
            })
        })
        .collect();
    assert_eq!(
        monitors.len(),
        1,
        "one monitor was started for this profile"
    );
    drop(d);
    assert!(
        std::path::Path::new(&format!("/proc/{}", monitors[0])).exists(),
        "the monitor outlives the window"
    );
    desktop::wait_for(Duration::from_secs(20), "its tray", || {
        desktop::tray_bus_name(monitors[0]).is_some()
    });
    desktop::click_tray(monitors[0], "Quit");
    desktop::wait_for(Duration::from_secs(15), "the monitor to quit", || {
        !std::path::Path::new(&format!("/proc/{}", monitors[0])).exists()
    });
}

/// PSS in kB of one process, from /proc/PID/smaps_rollup (0 if it is gone).
fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 24 h of readings for `sensors` sensors, one every `step_ms`, written into the profile's
/// history database before the monitor starts. Returns the last value of sensor 0.
fn seed_history(profile: &Profile, sensors: usize, per_sensor: usize, step_ms: i64) -> f64 {
    use alarm_tray::engine::model::LatestValue;
    use alarm_tray::engine::History;
    use alarm_tray::event::{Event, EventKind, Source};
    let h = History::open(&profile.data_dir().join("history.sqlite3")).unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let value = |s: usize, i: usize| {
        let v = 4.0 + 1.5 * (i as f64 / 60.0 + s as f64).sin();
        (v * 100.0).round() / 100.0
    };
    h.write(|w| {
        for s in 0..sensors {
            let sensor = format!("cold-room-{s:02}");
            let mut at = 0;
            for i in 0..per_sensor {
                at = now - (per_sensor - 1 - i) as i64 * step_ms;
                let mut e = Event::new(
                    Source::Saveris,
                    "a1",
                    "measurements",
                    EventKind::Measurement,
                    format!("dash-{s}-{i}"),
                );
                e.sensor = Some(sensor.clone());
                e.name = Some(format!("Cold room {s:02}"));
                e.quantity = Some("Temperature".into());
                e.value = Some(value(s, i));
                e.unit = Some("°C".into());
                e.measured_at = Some(jiff::Timestamp::from_millisecond(at).unwrap());
                w.insert_event(&e)?;
            }
            w.set_last_value(&LatestValue {
                sensor,
                name: Some(format!("Cold room {s:02}")),
                source: Source::Saveris,
                quantity: Some("Temperature".into()),
                value: value(s, per_sensor - 1),
                unit: Some("°C".into()),
                at_ms: at,
            })?;
        }
        Ok(())
    })
    .unwrap();
    value(0, per_sensor - 1)
}

/// The dashboard in the real WebKitGTK window over a real history of 172,800 readings (60
/// sensors, one reading every 30 s for 24 h), queried through the monitor's socket: every
/// card gets its sparkline, downsampled, with the limits of a rule drawn on it; then the page is scrolled top to bottom and back
/// for 3 s while the frame intervals are recorded. The figures (time to the last sparkline,
/// frame intervals, memory) are printed as a DASHBOARD-FIGURES line for docs/BENCH.md; the
/// assertions are about what is drawn, not about time.
#[test]
fn e2e_dashboard_with_thousands_of_readings() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    const SENSORS: usize = 60;
    const PER_SENSOR: usize = 2880;
    let profile = Profile::new();
    let t = std::time::Instant::now();
    let last0 = seed_history(&profile, SENSORS, PER_SENSOR, 30_000);
    let seed_ms = t.elapsed().as_millis();
    // A rule on every sensor: each sparkline draws its two limits as well.
    let mut settings = alarm_tray::settings::Settings::default();
    settings.rules.push(alarm_tray::settings::ThresholdRule {
        id: "r1".into(),
        name: "Cold chain 2–6 °C".into(),
        limit: alarm_tray::settings::Limit::Outside {
            low: 2.0,
            high: 6.0,
        },
        ..Default::default()
    });
    std::fs::write(
        profile.settings_file(),
        serde_json::json!({ alarm_tray::settings::STORE_KEY: settings }).to_string(),
    )
    .unwrap();
    let monitor = profile.start_monitor();

    let t = std::time::Instant::now();
    let d = Driver::launch(&profile, &["--page", "dashboard"]);
    let session_ms = t.elapsed().as_millis();
    d.wait_text("dashboard-counts", &format!("{SENSORS} sensors"));
    let drawn = d.execute_async(
        r#"const want = arguments[0], done = arguments[arguments.length - 1];
           const t0 = performance.now();
           (function poll() {
             const canvases = document.querySelectorAll(".spark canvas").length;
             if (canvases >= want || performance.now() - t0 > 25000) {
               const marks = performance.getEntriesByName("sparkline-drawn");
               done({
                 canvases,
                 points: [...document.querySelectorAll(".spark[data-points]")].map((e) => +e.dataset.points),
                 last_drawn_ms: marks.length ? marks[marks.length - 1].startTime : null,
                 seen_ms: performance.now(),
               });
             } else requestAnimationFrame(poll);
           })();"#,
        serde_json::json!([SENSORS]),
    );
    let canvases = drawn["canvases"].as_u64().unwrap_or(0);
    assert_eq!(
        canvases, SENSORS as u64,
        "one sparkline per sensor: {drawn}"
    );
    let points: Vec<u64> = drawn["points"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(points.len(), SENSORS);
    assert!(
        points.iter().all(|&p| (100..=300).contains(&p)),
        "each 24 h series downsampled to at most 300 points: {points:?}"
    );
    assert!(
        d.text("card-cold-room-00").contains("limits 2 / 6"),
        "the rule's limits on the card"
    );
    let value = d.text("card-value-cold-room-00");
    assert_eq!(value, format!("{last0} °C"), "the newest value on the card");

    let frames = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const candidates = [document.scrollingElement, ...document.querySelectorAll("main, section, div")];
           const el = candidates.find((e) => e && e.scrollHeight > e.clientHeight + 10);
           if (!el) { done({ deltas: [], range: 0 }); return; }
           const range = el.scrollHeight - el.clientHeight;
           const deltas = [];
           let start = null, last = null;
           function step(t) {
             if (start === null) start = t;
             if (last !== null) deltas.push(t - last);
             last = t;
             const p = (t - start) / 3000;
             el.scrollTop = range * (p < 0.5 ? 2 * p : 2 * (1 - p));
             if (t - start < 3000) requestAnimationFrame(step); else done({ deltas, range });
           }
           requestAnimationFrame(step);"#,
        serde_json::json!([]),
    );
    let mut deltas: Vec<f64> = frames["deltas"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    assert!(
        frames["range"].as_f64().unwrap_or(0.0) > 0.0,
        "60 cards make the page scroll: {frames}"
    );
    assert!(!deltas.is_empty(), "frames were drawn while scrolling");
    deltas.sort_by(f64::total_cmp);
    let pct = |q: f64| deltas[((deltas.len() - 1) as f64 * q).round() as usize];
    let long = deltas.iter().filter(|&&d| d > 50.0).count();
    d.screenshot("dashboard-thousands-of-readings");

    let windows = window_pids(&profile);
    let mut pss = vec![("monitor".to_string(), pss_kb(monitor.pid()))];
    for w in &windows {
        pss.push(("window".into(), pss_kb(*w)));
        for k in webkit_children(*w) {
            let name = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap_or_default();
            pss.push((name.trim().to_string(), pss_kb(k)));
        }
    }
    println!(
        "DASHBOARD-FIGURES {}",
        serde_json::json!({
            "sensors": SENSORS, "readings": SENSORS * PER_SENSOR, "seed_ms": seed_ms,
            "window_session_ms": session_ms,
            "last_sparkline_ms_after_navigation": drawn["last_drawn_ms"],
            "frames": deltas.len(), "frame_ms_p50": pct(0.5), "frame_ms_p95": pct(0.95),
            "frame_ms_max": pct(1.0), "frames_over_50ms": long,
            "pss_kb": pss,
        })
    );
    d.quit();
}

/// A channel Saveris refuses for the user (licence missing), through the real window: the
/// account is set up in the UI against the project's Saveris-compatible server, which
/// refuses `measurements-v2` at SUBSCRIBE; the refusal shows next to the channel and in the
/// feed's status, `watch` prints it, and turning the channel off clears the mark.
#[test]
fn e2e_saveris_refused_channel_is_marked_in_the_window_and_in_watch() {
    use alarm_tray::simulate::saveris::SaverisServer;

    desktop::require_desktop();
    let _serial = desktop::serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let user = crate::peers::unique("e2erita");
    let password = "E2e-Rita-pw-1";
    let server = rt
        .block_on(SaverisServer::start(vec![(user.clone(), password.into())]))
        .unwrap();
    server.refuse_subscription(&user, "measurements-v2");
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.click("section-accounts");
    d.click("add-saveris");
    d.type_into("saveris-username", &user);
    d.type_into("saveris-password", password);
    d.click("saveris-advanced");
    d.click("saveris-custom");
    d.type_into("saveris-ws-url", &server.ws_url());
    d.type_into("saveris-token-url", &server.token_url());
    d.click("saveris-save");
    d.find_css("[data-testid^='account-edit-']");
    // Turn measurements-v2 on where the channels are chosen.
    d.click("section-channels");
    let v2 = d.testid_of("[data-testid^='channel-'][data-testid$='-measurements_v2']");
    d.click(&v2);
    let mark = d.testid_of("[data-testid^='channel-refused-']");
    assert!(mark.ends_with("-measurements_v2"), "{mark}");
    let text = d.wait_text(&mark, "Saveris refused measurements-v2 for this user");
    assert!(text.contains("licence or permission missing"), "{text}");
    d.find_css("[data-testid^='feed-refused-']");
    // The alarms channel stays live on the reopened connection.
    d.find_css("[data-testid^='feed-saveris'][data-state='live']");
    d.screenshot("channels-saveris-refused");

    // `watch` (its own profile dir, the same settings file and keyring) prints it too.
    let watch_dir = tempfile::tempdir().unwrap();
    let out = Command::new(desktop::app_bin())
        .args(["watch", "--settings"])
        .arg(profile.settings_file())
        .args(["--for", "8", "--no-notify"])
        .env("ALARM_TRAY_DATA_DIR", watch_dir.path())
        .output()
        .expect("watch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Saveris refused measurements-v2 for this user: licence or permission missing"
        ),
        "watch printed: {stdout}"
    );

    // Turning the channel off restarts the feed without it: the mark goes.
    d.click(&v2);
    desktop::wait_for(Duration::from_secs(15), "the mark to go", || {
        !d.exists_css("[data-testid^='channel-refused-']")
    });
    d.find_css("[data-testid^='feed-saveris'][data-state='live']");
    d.quit();
    drop(monitor);
    rt.block_on(server.stop());
}

/// ELEMENT readings in the real shape (keys in alphabetical order, the battery and the
/// parser's `device_id`/`protocol_version` beside the temperature), live from the simulator
/// through the monitor into the real window: the device's first card is its temperature and
/// its sparkline plots the temperature's series with the rule's limit, the battery has a card
/// of its own, the ids none. The screenshot is saved for people to look at.
#[test]
fn e2e_element_dashboard_one_card_per_field_temperature_first() {
    use alarm_tray::ipc::client::Client;
    use alarm_tray::ipc::protocol::Request;
    use alarm_tray::secrets::SecretKey;
    use alarm_tray::settings::{
        ElementAccount, ElementKind, ElementScope, ElementSubscription, Limit, RuleTarget,
        Settings, ThresholdRule,
    };
    use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole, SimDevice};
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let element = rt
        .block_on(ElementServer::start(ElementServerConfig {
            api_keys: vec![("e2e-fields-key".into(), KeyRole::ReadOnly)],
            devices: vec![SimDevice {
                id: "dev-fr-1".into(),
                name: "Warehouse freezer".into(),
                tags: vec![],
            }],
            ..Default::default()
        }))
        .unwrap();
    let client = Client::new(&profile.socket());
    let mut settings = Settings::default();
    settings.element.push(ElementAccount {
        id: "e2e-el".into(),
        enabled: true,
        base_url: element.base_url(),
        subscriptions: vec![ElementSubscription {
            id: "fr".into(),
            enabled: true,
            scope: ElementScope::Device("dev-fr-1".into()),
            kind: ElementKind::Readings,
            preload: vec!["device".into()],
            catch_up_hours: 0,
        }],
        text_ping: false,
    });
    settings.rules.push(ThresholdRule {
        id: "fr-warm".into(),
        name: "Freezer too warm".into(),
        target: RuleTarget::Device("dev-fr-1".into()),
        quantity: "temperature".into(),
        limit: Limit::Above { value: -15.0 },
        hysteresis: 1.0,
        ..Default::default()
    });
    rt.block_on(async {
        client
            .ask::<()>(Request::SetSecret {
                key: SecretKey::ElementApiKey("e2e-el".into()),
                value: "e2e-fields-key".into(),
            })
            .await
            .unwrap();
        client
            .ask::<()>(Request::SaveSettings { settings })
            .await
            .unwrap();
    });
    desktop::wait_for(Duration::from_secs(20), "the ELEMENT socket open", || {
        element.open_sockets() > 0
    });
    let temps = [-19.2, -18.9, -17.5, -15.8, -13.1, -12.4, -14.6, -18.1];
    for t in temps {
        element.push_reading(
            "dev-fr-1",
            serde_json::json!({"battery_voltage": 3.61, "device_id": 21670,
                "protocol_version": 2, "temperature": t}),
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let d = Driver::launch(&profile, &["--page", "dashboard"]);
    let seen = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const t0 = performance.now();
           (function poll() {
             const cards = [...document.querySelectorAll("article[data-sensor='dev-fr-1']")];
             const spark = (c) => c && c.querySelector(".spark[data-points]");
             const ready = cards.length >= 2 && cards.every((c) => spark(c) && +spark(c).dataset.points >= 8);
             if (ready || performance.now() - t0 > 20000) {
               done(cards.map((c) => ({
                 testid: c.dataset.testid, quantity: c.dataset.quantity, main: c.dataset.main,
                 points: spark(c) ? +spark(c).dataset.points : 0,
                 min: spark(c) ? +spark(c).dataset.min : null, max: spark(c) ? +spark(c).dataset.max : null,
                 text: c.textContent,
               })));
             } else setTimeout(poll, 200);
           })();"#,
        serde_json::json!([]),
    );
    // Let the compositor show the first frames before the picture is taken.
    std::thread::sleep(Duration::from_millis(1500));
    let shot = d.screenshot("dashboard-element-fields");
    eprintln!("ELEMENT cards: {seen:#}\nscreenshot: {}", shot.display());
    let cards = seen.as_array().cloned().unwrap_or_default();
    let quantities: Vec<&str> = cards
        .iter()
        .filter_map(|c| c["quantity"].as_str())
        .collect();
    assert_eq!(
        quantities,
        ["temperature", "battery_voltage"],
        "one card per field, the temperature first, no card for the ids: {seen:#}"
    );
    let first = &cards[0];
    assert_eq!(first["testid"], "card-dev-fr-1");
    assert_eq!(first["main"], "true");
    assert_eq!(first["points"], 8);
    assert_eq!(
        (first["min"].as_f64(), first["max"].as_f64()),
        (Some(-19.2), Some(-12.4)),
        "the sparkline plots the temperature, not the battery: {seen:#}"
    );
    assert!(
        first["text"].as_str().unwrap_or("").contains("limits -15"),
        "the rule's limit on the temperature card: {seen:#}"
    );
    let battery = &cards[1];
    assert_eq!(
        (battery["min"].as_f64(), battery["max"].as_f64()),
        (Some(3.61), Some(3.61)),
        "{seen:#}"
    );
    assert!(
        !battery["text"].as_str().unwrap_or("").contains("limits"),
        "the temperature rule draws nothing on the battery's card: {seen:#}"
    );
    drop(d);
    drop(monitor);
    rt.block_on(element.stop());
}

/// A minute, in ms.
const MIN: i64 = 60_000;

/// Fridge 7's last 24 h in the profile's history: one reading a minute (device
/// `logger-7`), an excursion to 9.5 °C 6 h ago lasting 40 min (an alarm, raised, acknowledged
/// after 5 min and cleared) and no readings from 3 h to 2 h ago. Returns the alarm's id.
fn seed_fridge_day(profile: &Profile, now: i64) -> i64 {
    use alarm_tray::engine::history::NewAlarm;
    use alarm_tray::engine::model::LatestValue;
    use alarm_tray::engine::History;
    use alarm_tray::event::{Event, EventKind, Severity, Source};
    let raised = now - 6 * 60 * MIN;
    let cleared = raised + 40 * MIN;
    let h = History::open(&profile.data_dir().join("history.sqlite3")).unwrap();
    let alarm_id = h
        .write(|w| {
            for i in 0..24 * 60 {
                let at = now - (24 * 60 - i) * MIN;
                // No readings from 3 h to 2 h ago: a gap.
                if at > now - 3 * 60 * MIN && at < now - 2 * 60 * MIN {
                    continue;
                }
                let v = if at >= raised && at < cleared {
                    9.5
                } else {
                    4.0 + (i as f64 / 30.0).sin()
                };
                let mut e = Event::new(
                    Source::Saveris,
                    "a1",
                    "measurements",
                    EventKind::Measurement,
                    format!("fridge-{i}"),
                );
                e.sensor = Some("fridge-7".into());
                e.device = Some("logger-7".into());
                e.name = Some("Fridge 7".into());
                e.quantity = Some("Temperature".into());
                e.value = Some((v * 100.0_f64).round() / 100.0);
                e.unit = Some("°C".into());
                e.measured_at = Some(jiff::Timestamp::from_millisecond(at).unwrap());
                w.insert_event(&e)?;
            }
            w.set_last_value(&LatestValue {
                sensor: "fridge-7".into(),
                name: Some("Fridge 7".into()),
                source: Source::Saveris,
                quantity: Some("Temperature".into()),
                value: 4.0,
                unit: Some("°C".into()),
                at_ms: now - MIN,
            })?;
            let id = w.raise_alarm(&NewAlarm {
                alarm_key: "fridge-7:upper".into(),
                source: Source::Saveris,
                account: "a1".into(),
                device: Some("fridge-7".into()),
                sensor: Some("fridge-7".into()),
                name: Some("Fridge 7".into()),
                condition: Some("Upper limit".into()),
                severity: Severity::Alarm,
                value: Some(9.5),
                unit: Some("°C".into()),
                limit: Some("> 6".into()),
                rule_id: None,
                event_id: None,
                raised_ms: raised,
            })?;
            w.clear_alarm(id, cleared)?;
            Ok(id)
        })
        .unwrap();
    h.acknowledge(alarm_id, "window", raised + 5 * MIN).unwrap();
    drop(h);
    alarm_id
}

/// The sensor view in the real window: from an alarm in History to its sensor's chart. A
/// fridge's 24 h at one reading a minute, with an excursion to 9.5 °C (the alarm, raised,
/// acknowledged and cleared) and an hour without readings; a rule's limits 2–6 °C. The
/// chart's canvas is drawn with one alarm band, both limit lines and the gap kept as empty
/// buckets; the figures show the excursion. Screenshot: target/screenshots/sensor-view.png.
#[test]
fn e2e_sensor_view_from_an_alarm_in_history() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let now = jiff::Timestamp::now().as_millisecond();
    let alarm_id = seed_fridge_day(&profile, now);
    let mut settings = alarm_tray::settings::Settings::default();
    settings.rules.push(alarm_tray::settings::ThresholdRule {
        id: "r1".into(),
        name: "Fridge 2–6 °C".into(),
        target: alarm_tray::settings::RuleTarget::Sensor("fridge-7".into()),
        limit: alarm_tray::settings::Limit::Outside {
            low: 2.0,
            high: 6.0,
        },
        ..Default::default()
    });
    std::fs::write(
        profile.settings_file(),
        serde_json::json!({ alarm_tray::settings::STORE_KEY: settings }).to_string(),
    )
    .unwrap();
    let monitor = profile.start_monitor();

    let d = Driver::launch(&profile, &["--page", "history"]);
    d.click(&format!("alarm-chart-{alarm_id}"));
    let drawn = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const t0 = performance.now();
           (function poll() {
             const el = document.querySelector("[data-testid='sensor-chart']");
             const canvas = el && el.querySelector("canvas");
             if ((el && el.dataset.drawn === "true" && canvas) || performance.now() - t0 > 15000) {
               done(el ? {
                 drawn: el.dataset.drawn || null,
                 bands: el.dataset.bands || null,
                 limits: el.dataset.limits || null,
                 gaps: Number(el.dataset.gaps || 0),
                 canvas: canvas ? [canvas.width, canvas.height] : null,
                 sensor: document.querySelector("[data-testid='sensor-view']").dataset.sensor,
               } : null);
             } else setTimeout(poll, 100);
           })();"#,
        serde_json::json!([]),
    );
    eprintln!("sensor view: {drawn:#}");
    assert_eq!(drawn["drawn"], "true", "the chart is drawn: {drawn}");
    assert_eq!(drawn["sensor"], "fridge-7");
    assert_eq!(drawn["bands"], "1", "one alarm band: {drawn}");
    assert_eq!(drawn["limits"], "2,6", "both limit lines: {drawn}");
    assert!(
        drawn["gaps"].as_u64().unwrap_or(0) > 0,
        "the hour without readings is empty buckets: {drawn}"
    );
    assert!(
        drawn["canvas"][0].as_u64().unwrap_or(0) > 200,
        "a canvas wide enough to see: {drawn}"
    );
    assert!(
        d.text("sensor-fig-max").contains("9.5"),
        "the excursion's max"
    );
    assert!(
        d.text("sensor-summary").contains("1 alarm"),
        "{}",
        d.text("sensor-summary")
    );
    assert!(
        d.text(&format!("sensor-alarm-{alarm_id}"))
            .contains("acknowledged"),
        "the alarm's acknowledgement is listed"
    );
    let shot = d.screenshot("sensor-view");
    eprintln!("screenshot: {}", shot.display());
    drop(d);
    drop(monitor);
}

/// Compare and export in the real window. Fridge 7's day (as above) with a rule on the
/// sensor (2–6 °C) and one on its logger device (above 8 °C); Fridge 8 beside it and a
/// humidity sensor. From the alarm in History: both rules' limit lines are drawn; the
/// picker offers Fridge 8 only (same quantity) and draws it on the same chart; Export CSV
/// writes the range's readings into the Downloads folder with the sensor's name, unit and
/// limits in the header; Export PNG writes the chart as drawn. Screenshot:
/// target/screenshots/sensor-view-compare.png (the README's picture).
#[test]
fn e2e_sensor_view_compares_and_exports_png_and_csv() {
    use alarm_tray::engine::model::LatestValue;
    use alarm_tray::engine::History;
    use alarm_tray::event::{Event, EventKind, Source};
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let now = jiff::Timestamp::now().as_millisecond();
    let alarm_id = seed_fridge_day(&profile, now);
    let h = History::open(&profile.data_dir().join("history.sqlite3")).unwrap();
    h.write(|w| {
        for (sensor, name, quantity, unit, base) in [
            ("fridge-8", "Fridge 8", "Temperature", "°C", 5.0),
            ("room-hum", "Room", "Humidity", "%", 45.0),
        ] {
            for i in 0..24 * 60 {
                let mut e = Event::new(
                    Source::Saveris,
                    "a1",
                    "measurements",
                    EventKind::Measurement,
                    format!("{sensor}-{i}"),
                );
                e.sensor = Some(sensor.into());
                e.name = Some(name.into());
                e.quantity = Some(quantity.into());
                e.value = Some(base + (i as f64 / 50.0).cos());
                e.unit = Some(unit.into());
                let at = now - (24 * 60 - i) * MIN;
                e.measured_at = Some(jiff::Timestamp::from_millisecond(at).unwrap());
                w.insert_event(&e)?;
            }
            w.set_last_value(&LatestValue {
                sensor: sensor.into(),
                name: Some(name.into()),
                source: Source::Saveris,
                quantity: Some(quantity.into()),
                value: base,
                unit: Some(unit.into()),
                at_ms: now - MIN,
            })?;
        }
        Ok(())
    })
    .unwrap();
    drop(h);
    let mut settings = alarm_tray::settings::Settings::default();
    use alarm_tray::settings::{Limit, RuleTarget, ThresholdRule};
    settings.rules.push(ThresholdRule {
        id: "r1".into(),
        name: "Fridge 2–6 °C".into(),
        target: RuleTarget::Sensor("fridge-7".into()),
        limit: Limit::Outside {
            low: 2.0,
            high: 6.0,
        },
        ..Default::default()
    });
    settings.rules.push(ThresholdRule {
        id: "r2".into(),
        name: "Logger 7 above 8 °C".into(),
        target: RuleTarget::Device("logger-7".into()),
        limit: Limit::Above { value: 8.0 },
        ..Default::default()
    });
    std::fs::write(
        profile.settings_file(),
        serde_json::json!({ alarm_tray::settings::STORE_KEY: settings }).to_string(),
    )
    .unwrap();
    let monitor = profile.start_monitor();
    let d = Driver::launch(&profile, &["--page", "history"]);
    d.click(&format!("alarm-chart-{alarm_id}"));
    let chart = |want_sensors: &str| {
        d.execute_async(
            r#"const want = arguments[0], done = arguments[arguments.length - 1];
               const t0 = performance.now();
               (function poll() {
                 const el = document.querySelector("[data-testid='sensor-chart']");
                 const ok = el && el.dataset.drawn === "true" && el.dataset.sensors === want;
                 if (ok || performance.now() - t0 > 15000) {
                   const pick = document.querySelector("[data-testid='sensor-compare-pick']");
                   done(el ? {
                     sensors: el.dataset.sensors || null,
                     limits: el.dataset.limits || null,
                     axes: el.dataset.axes || null,
                     canvas: (el.querySelector("canvas") || {}).width || 0,
                     offered: pick ? [...pick.options].slice(1).map((o) => o.textContent) : null,
                   } : null);
                 } else setTimeout(poll, 100);
               })();"#,
            serde_json::json!([want_sensors]),
        )
    };
    let one = chart("fridge-7");
    eprintln!("sensor view: {one:#}");
    assert_eq!(one["sensors"], "fridge-7", "{one}");
    assert_eq!(
        one["limits"], "2,6,8",
        "the sensor rule's limits and the device rule's: {one}"
    );
    assert_eq!(
        one["offered"],
        serde_json::json!(["Fridge 8, Temperature (°C)"]),
        "only the other temperature is offered: {one}"
    );
    d.select("sensor-compare-pick", "0");
    let two = chart("fridge-7|fridge-8");
    assert_eq!(
        two["sensors"], "fridge-7|fridge-8",
        "both on one chart: {two}"
    );
    assert_eq!(two["axes"], "°C", "one axis for the one unit: {two}");
    assert!(
        d.text("sensor-summary").contains("Compared with Fridge 8"),
        "{}",
        d.text("sensor-summary")
    );
    let shot = d.screenshot("sensor-view-compare");
    eprintln!("screenshot: {}", shot.display());

    // Export CSV: the range's readings of Fridge 7 land in the Downloads folder.
    let readings: usize = d.text("sensor-fig-readings").trim().parse().unwrap_or(0);
    d.click("sensor-export-csv");
    let said = d.wait_text("sensor-export-done", ".csv");
    let csv_path = std::path::PathBuf::from(said.trim().trim_start_matches("Saved to ").trim());
    eprintln!("csv: {}", csv_path.display());
    assert!(
        csv_path.parent().is_some_and(|p| p.ends_with("Downloads")),
        "into the Downloads folder: {said}"
    );
    let csv = std::fs::read_to_string(&csv_path).expect("the CSV was written");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines.contains(&"# sensor,fridge-7"), "{:?}", &lines[..8]);
    assert!(lines.contains(&"# name,Fridge 7"), "{:?}", &lines[..8]);
    assert!(lines.contains(&"# unit,°C"), "{:?}", &lines[..8]);
    assert!(
        lines.contains(&"# limits,Fridge 2–6 °C: 2–6 °C; Logger 7 above 8 °C: above 8 °C"),
        "{:?}",
        &lines[..8]
    );
    // Issue 27: Fridge 8 is compared, so it is in the file too, each row naming its sensor.
    assert!(
        lines.contains(&"# compared sensor,fridge-8"),
        "{:?}",
        &lines[..14]
    );
    assert!(
        lines.contains(&"# compared name,Fridge 8"),
        "{:?}",
        &lines[..14]
    );
    let header = lines.iter().position(|l| *l == "time,time_ms,value,sensor");
    let all: Vec<(i64, f64, &str)> = lines[header.expect("a column header") + 1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3])
        })
        .collect();
    assert!(
        all.iter().filter(|r| r.2 == "fridge-8").count() > 1000,
        "the compared sensor's readings are in the file"
    );
    let rows: Vec<(i64, f64)> = all
        .iter()
        .filter(|r| r.2 == "fridge-7")
        .map(|r| (r.0, r.1))
        .collect();
    // 24 h at one a minute, less the hour's gap (59 readings) and the first reading, which
    // falls just before a range that ends when the view was opened.
    assert_eq!(
        rows.len(),
        24 * 60 - 59 - 1,
        "one row per reading in the range"
    );
    assert_eq!(rows.len(), readings, "as many rows as the view counts");
    assert!(
        rows.windows(2).all(|w| w[0].0 < w[1].0),
        "oldest first, no duplicates"
    );
    assert!(
        !rows
            .iter()
            .any(|(t, _)| *t > now - 180 * MIN && *t < now - 120 * MIN),
        "no row inside the gap"
    );
    assert_eq!(
        rows.iter().filter(|(_, v)| *v == 9.5).count(),
        40,
        "the 40 minutes of the excursion"
    );

    // Export PNG: the chart's canvas as drawn.
    d.click("sensor-export-png");
    let said = d.wait_text("sensor-export-done", ".png");
    let png_path = std::path::PathBuf::from(said.trim().trim_start_matches("Saved to ").trim());
    let png = std::fs::read(&png_path).expect("the PNG was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG file");
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(
        u64::from(width),
        two["canvas"].as_u64().unwrap_or(0),
        "the chart's canvas, full width"
    );
    assert!(
        png.len() > 5_000,
        "more than an empty canvas: {} bytes",
        png.len()
    );
    drop(d);
    drop(monitor);
}

/// Issue 20 in the real window: a Saveris account on the project's server with the demo
/// tenant's Data API. The dashboard groups the cards by area and equipment under the
/// vendor's names with full 24 h sparklines (backfilled) and the equipment's limits; History
/// shows the live alarm under its name with the configured limit in the Limit column.
/// Screenshots: target/screenshots/dashboard-names-areas.png, history-with-limits.png.
#[test]
fn e2e_saveris_names_areas_limits_and_backfill_in_the_window() {
    use alarm_tray::ipc::client::Client;
    use alarm_tray::ipc::protocol::Request;
    use alarm_tray::secrets::SecretKey;
    use alarm_tray::settings::{Channels, CustomEndpoint, SaverisAccount, Settings};
    use alarm_tray::simulate::demo::demo_tenant;
    use alarm_tray::simulate::saveris::SaverisServer;
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let user = crate::peers::unique("e2enames");
    let server = rt
        .block_on(SaverisServer::start(vec![(
            user.clone(),
            "e2e-names-pw".into(),
        )]))
        .unwrap();
    server.set_data_api_tenant(demo_tenant());
    let client = Client::new(&profile.socket());
    let mut settings = Settings::default();
    settings.saveris.push(SaverisAccount {
        id: "e2e-sv".into(),
        username: user.clone(),
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: true,
        },
        custom: Some(CustomEndpoint {
            ws_url: server.ws_url(),
            token_url: server.token_url(),
            ..Default::default()
        }),
        ..Default::default()
    });
    rt.block_on(async {
        client
            .ask::<()>(Request::SetSecret {
                key: SecretKey::SaverisPassword("e2e-sv".into()),
                value: "e2e-names-pw".into(),
            })
            .await
            .unwrap();
        client
            .ask::<()>(Request::SaveSettings { settings })
            .await
            .unwrap();
    });
    desktop::wait_for(Duration::from_secs(30), "names and the backfill", || {
        server.data_api_posts_to("v2/measurements") >= 1 && server.data_api_counts().downloads >= 5
    });
    // A live breach on the fridge: 9.5 °C against its upper limit of 8.0 °C.
    let now = jiff::Timestamp::now().to_string();
    let alarm = serde_json::json!({
        "uuid": "e2e-names-alarm", "alarm_status": "Alarm", "alarm_condition_type": "Upper limit",
        "alarm_severity": "Alarm", "alarm_time": now, "last_status_change_time": now,
        "alarm_value": "9.5", "physical_unit": "°C", "physical_value": "Temperature",
        "alarm_source_uuid": "5d1c0f7e-0003-4c1a-9a11-labfridgetemp",
        "alarm_type": "measurement alarm", "serial_number": "61234502"
    });
    server.publish(&user, "alarms", alarm.to_string());
    let d = Driver::launch(&profile, &["--page", "dashboard"]);
    let seen = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const t0 = performance.now();
           (function poll() {
             const areas = [...document.querySelectorAll("[data-testid^='area-']")];
             const cards = [...document.querySelectorAll("article[data-sensor]")];
             const spark = (c) => c.querySelector(".spark[data-points]");
             const full = cards.filter((c) => spark(c) && +spark(c).dataset.points >= 200);
             if ((areas.length >= 3 && full.length >= 4) || performance.now() - t0 > 30000) {
               done({
                 areas: areas.map((a) => a.dataset.testid),
                 titles: [...document.querySelectorAll(".area-title")].map((h) => h.textContent),
                 equipment: [...document.querySelectorAll(".equipment-title")].map((h) => h.textContent),
                 cards: cards.map((c) => ({ sensor: c.dataset.sensor, text: c.textContent,
                   points: spark(c) ? +spark(c).dataset.points : 0 })),
               });
             } else setTimeout(poll, 300);
           })();"#,
        serde_json::json!([]),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let shot = d.screenshot("dashboard-names-areas");
    eprintln!("dashboard: {seen:#}\nscreenshot: {}", shot.display());
    let titles: Vec<&str> = seen["titles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(titles, ["IT room", "Kitchen", "Storage"], "{seen:#}");
    let cards = seen["cards"].as_array().unwrap();
    let fridge = cards
        .iter()
        .find(|c| c["sensor"] == "5d1c0f7e-0003-4c1a-9a11-labfridgetemp")
        .unwrap_or_else(|| panic!("the fridge's card: {seen:#}"));
    let text = fridge["text"].as_str().unwrap_or("");
    assert!(text.contains("Fridge 1 - Air Sensor"), "{text}");
    assert!(
        text.contains("limits 2 / 3 / 7 / 8"),
        "the equipment's limits: {text}"
    );
    assert!(
        cards
            .iter()
            .all(|c| c["points"].as_u64().unwrap_or(0) >= 200),
        "24 h backfilled on every card: {seen:#}"
    );

    d.click("tab-history");
    let row = d.find_css("[data-testid^='alarm-row-']");
    let _ = row;
    let history = d.execute_async(
        r#"const done = arguments[arguments.length - 1];
           const t0 = performance.now();
           (function poll() {
             const r = document.querySelector("[data-testid^='alarm-row-']");
             if ((r && r.textContent.includes("upper limit")) || performance.now() - t0 > 15000)
               done(r ? r.textContent : "");
             else setTimeout(poll, 200);
           })();"#,
        serde_json::json!([]),
    );
    std::thread::sleep(Duration::from_millis(800));
    let shot = d.screenshot("history-with-limits");
    eprintln!("history row: {history}\nscreenshot: {}", shot.display());
    let row = history.as_str().unwrap_or("");
    assert!(
        row.contains("Fridge 1 - Air Sensor \u{b7} Kitchen"),
        "{row}"
    );
    assert!(row.contains("upper limit 8.0 °C"), "{row}");
    drop(d);
    drop(monitor);
    rt.block_on(server.stop());
}

/// Issue 21 item 2, in the real window: with "a comment is required to acknowledge critical
/// alarms" on, the popup's Acknowledge opens the comment dialog in the window; the comment is
/// stored, shown in History and written to the audit trail. A dashboard card acknowledges its
/// sensor's alarm through the same dialog.
#[test]
fn e2e_required_comment_dialog_opens_from_the_popups_acknowledge() {
    use alarm_tray::engine::history::NewAlarm;
    use alarm_tray::engine::model::LatestValue;
    use alarm_tray::engine::History;
    use alarm_tray::event::{Severity, Source};
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let now = jiff::Timestamp::now().as_millisecond();
    // Two active critical alarms never told to the user: the monitor pops them at start.
    let h = History::open(&profile.data_dir().join("history.sqlite3")).unwrap();
    let ids = h
        .write(|w| {
            let mut ids = Vec::new();
            for (sensor, name) in [
                ("fridge-9", "Vaccine fridge 9"),
                ("fridge-10", "Blood bank 10"),
            ] {
                w.set_last_value(&LatestValue {
                    sensor: sensor.into(),
                    name: Some(name.into()),
                    source: Source::Saveris,
                    quantity: Some("Temperature".into()),
                    value: 9.5,
                    unit: Some("°C".into()),
                    at_ms: now - 60_000,
                })?;
                ids.push(w.raise_alarm(&NewAlarm {
                    alarm_key: format!("{sensor}:upper"),
                    source: Source::Saveris,
                    account: "a1".into(),
                    device: Some(sensor.into()),
                    sensor: Some(sensor.into()),
                    name: Some(name.into()),
                    condition: Some("Upper limit".into()),
                    severity: Severity::Alarm,
                    value: Some(9.5),
                    unit: Some("°C".into()),
                    limit: Some("> 8".into()),
                    rule_id: None,
                    event_id: None,
                    raised_ms: now - 120_000,
                })?);
            }
            Ok(ids)
        })
        .unwrap();
    drop(h);
    let (popup_alarm, card_alarm) = (ids[0], ids[1]);
    let settings = alarm_tray::settings::Settings {
        comment_required_critical: true,
        display_name: "Ana Ruiz".into(),
        ..Default::default()
    };
    std::fs::write(
        profile.settings_file(),
        serde_json::json!({ alarm_tray::settings::STORE_KEY: settings }).to_string(),
    )
    .unwrap();
    let watch = NotifyWatch::start();
    let monitor = profile.start_monitor();
    let mut popup = None;
    desktop::wait_for(Duration::from_secs(15), "the popup of fridge 9", || {
        popup = watch.id_of("Vaccine fridge 9");
        popup.is_some()
    });
    let popup = popup.unwrap_or_default();

    let d = Driver::launch(&profile, &["--page", "dashboard"]);
    // The dashboard card of fridge 10 acknowledges its alarm: a comment is required.
    d.click("card-ack-fridge-10");
    d.find("ack-dialog");
    assert!(
        d.exists_css("[data-testid='ack-confirm'][disabled]"),
        "no acknowledging without a comment"
    );
    d.type_into("ack-comment", "checked the probe, door was ajar");
    d.click("ack-confirm");
    desktop::wait_for(
        Duration::from_secs(10),
        "the card's alarm acknowledged",
        || !d.exists_css("[data-testid='card-alarm-fridge-10']"),
    );

    // The popup's Acknowledge: the monitor refuses it without a comment and brings the
    // window to the alarm, where the dialog opens by itself.
    let dialog = format!("[data-testid='ack-dialog'][data-alarm-id='{popup_alarm}']");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // The popup's waiter subscribes right after Notify returned: repeat until it acts.
        desktop::invoke_popup_action(popup, "acknowledge");
        std::thread::sleep(Duration::from_millis(700));
        if d.exists_css(&dialog) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the popup's Acknowledge did not open the comment dialog"
        );
    }
    d.screenshot("ack-dialog-from-popup");
    d.type_into("ack-comment", "door left open, closed it");
    d.click("ack-confirm");
    let shown = d.wait_text(
        &format!("alarm-ack-comment-{popup_alarm}"),
        "door left open, closed it",
    );
    assert!(shown.contains("door left open"), "{shown}");
    let user = d.text(&format!("alarm-ack-user-{popup_alarm}"));
    assert!(user.starts_with("Ana Ruiz ("), "{user}");
    d.screenshot("ack-comment-in-history");

    // Stored with who and why, and in the audit trail (written by its own thread).
    let h = History::open(&profile.data_dir().join("history.sqlite3")).unwrap();
    for (id, comment, by) in [
        (popup_alarm, "door left open, closed it", "window"),
        (card_alarm, "checked the probe, door was ajar", "window"),
    ] {
        let row = h.alarm(id).unwrap().unwrap();
        assert_eq!(row.acknowledged_comment.as_deref(), Some(comment));
        assert_eq!(row.acknowledged_by.as_deref(), Some(by));
    }
    drop(h);
    let audit = profile.data_dir().join("audit.sqlite3");
    let mut acks = Vec::new();
    desktop::wait_for(
        Duration::from_secs(10),
        "both acknowledgements audited",
        || {
            let c = rusqlite::Connection::open(&audit).unwrap();
            let mut st = c
                .prepare("SELECT detail FROM audit WHERE kind = 'acknowledged' ORDER BY seq")
                .unwrap();
            acks = st
                .query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            acks.len() >= 2
        },
    );
    let popup_record: serde_json::Value = acks
        .iter()
        .map(|a| serde_json::from_str::<serde_json::Value>(a).unwrap())
        .find(|v| v["alarm_id"] == popup_alarm)
        .expect("the popup alarm's acknowledgement is audited");
    assert_eq!(popup_record["comment"], "door left open, closed it");
    assert!(popup_record["user"]
        .as_str()
        .unwrap_or("")
        .starts_with("Ana Ruiz ("));
    d.quit();
    drop(monitor);
    drop(watch);
}

/// Issue 26: the Team page in the real window against a real mosquitto: settings saved,
/// secrets to the keyring, Test connection says what the broker answered, and the list of
/// PCs shows this one online (its own retained presence, signed with the site key).
#[test]
fn e2e_team_page_saves_tests_the_broker_and_lists_the_pcs() {
    use crate::peers::mosquitto::{Mosquitto, PASSWORD, USER};
    desktop::require_desktop();
    let _serial = desktop::serial();
    let broker = Mosquitto::start().expect("mosquitto");
    let site = crate::peers::unique("e2esite").replace(['.', ':'], "-");
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let d = Driver::launch(&profile, &["--page", "settings"]);
    d.click("section-team");
    d.find("team-off");
    d.click("team-enabled");
    d.type_into("team-broker-url", &broker.url());
    d.type_into("team-site", &site);
    d.type_into("team-pc", "e2e-pc");
    d.type_into("team-user", USER);
    d.type_into("team-password", "wrong-password");
    d.click("team-test");
    let refused = d.wait_text("team-test-msg", "refused");
    assert!(!refused.contains("wrong-password"), "{refused}");
    // Typed again right, then Test connection and Save.
    d.type_into("team-password", PASSWORD);
    d.type_into("team-site-key", "e2e site key");
    d.click("team-test");
    d.wait_text("team-test-msg", "connected to");
    d.click("team-save");
    d.wait_text("team-save-msg", "Saved.");
    // The monitor starts the link with the stored secrets: this PC appears online.
    desktop::wait_for(Duration::from_secs(20), "this PC in the list", || {
        d.exists_css("[data-testid='team-peer-e2e-pc'][data-online='yes']")
    });
    d.wait_text("team-state", "live");
    d.screenshot("settings-team");
    let settings = std::fs::read_to_string(profile.settings_file()).unwrap();
    assert!(settings.contains(&site), "site saved");
    assert!(
        !settings.contains(PASSWORD) && !settings.contains("e2e site key"),
        "no secret in the settings file"
    );
    d.quit();
    drop(monitor);
    for e in [
        format!("team:{site}:broker-password"),
        format!("team:{site}:site-key"),
    ] {
        let _ = Command::new("secret-tool")
            .args(["clear", "service", "alarm-tray", "username", &e])
            .status();
    }
}

/// Issue 25: under `LANG=de_DE.UTF-8` the demo's popups (read from dunst on D-Bus) are German
/// with the decimal comma, and so is the tray menu; under `LANG=fr_FR.UTF-8` the tray is French.
#[test]
fn e2e_popups_and_tray_speak_the_desktops_language() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    for (lang, since, quit, history) in [
        ("de_DE.UTF-8", "seit ", "Beenden", "Alarmverlauf"),
        (
            "fr_FR.UTF-8",
            "depuis ",
            "Quitter",
            "Historique des alarmes",
        ),
    ] {
        let watch = NotifyWatch::start();
        let mut cmd = Command::new(desktop::app_bin());
        cmd.args(["--demo", "--seed", "1"])
            .env_remove("ALARM_TRAY_DATA_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        desktop::with_lang_env(&mut cmd, &[("LANG", lang)]);
        let child = cmd.spawn().expect("alarm-tray --demo");
        let mut app = desktop::Proc { child };
        // A popup whose body has a measured value written with the decimal comma ("8,4 °C").
        let has_comma = |b: &str| {
            b.as_bytes()
                .windows(3)
                .any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit())
        };
        let mut popup = String::new();
        desktop::wait_for(
            Duration::from_secs(60),
            "a popup in the language with a decimal comma",
            || {
                let text = watch.text();
                popup = text
                    .split("method call")
                    .find(|b| b.contains("member=Notify") && b.contains(since) && has_comma(b))
                    .unwrap_or("")
                    .to_string();
                !popup.is_empty()
            },
        );
        let all = watch.text();
        assert!(!all.contains("\nsince "), "{lang}: English left: {all}");
        eprintln!("{lang} popup: {popup}");
        desktop::wait_for(
            Duration::from_secs(15),
            "the tray menu in the language",
            || {
                let items = desktop::tray_menu(app.pid());
                items.iter().any(|(_, l)| l == quit) && items.iter().any(|(_, l)| l == history)
            },
        );
        desktop::click_tray(app.pid(), quit);
        assert!(
            app.wait_exit(Duration::from_secs(15)).is_some(),
            "{lang}: {quit} ends the demo"
        );
    }
}

/// Issue 25: the window under `LANG=de_DE.UTF-8` is German; choosing French under General
/// turns the window and the tray menu French at once, without a restart; "Same as the
/// desktop" brings German back.
#[test]
fn e2e_window_in_german_and_switched_to_french_under_general() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let de = [("LANG", "de_DE.UTF-8")];
    let monitor = profile.start_monitor_env(&de);
    let d = Driver::launch_env(&profile, &["--page", "settings"], &de);
    d.wait_text("tab-settings", "Einstellungen");
    assert_eq!(d.text("tab-history"), "Verlauf");
    d.click("section-general");
    d.wait_text("section-general", "Allgemein");
    d.wait_text("general-save", "Speichern");
    desktop::wait_for(Duration::from_secs(10), "the German tray menu", || {
        desktop::tray_menu(monitor.pid())
            .iter()
            .any(|(_, l)| l == "Alarm Tray öffnen")
    });
    d.screenshot("i18n-general-de");

    d.select("language", "fr");
    d.wait_text("tab-settings", "Paramètres");
    d.wait_text("general-save", "Enregistrer");
    desktop::wait_for(Duration::from_secs(10), "the French tray menu", || {
        desktop::tray_menu(monitor.pid())
            .iter()
            .any(|(_, l)| l == "Ouvrir Alarm Tray")
    });
    let saved = std::fs::read_to_string(profile.settings_file()).unwrap();
    assert!(
        saved.contains("\"language\": \"fr\"") || saved.contains("\"language\":\"fr\""),
        "{saved}"
    );
    d.screenshot("i18n-general-fr");

    d.select("language", "auto");
    d.wait_text("tab-settings", "Einstellungen");
    d.quit();
}
