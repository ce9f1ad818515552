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

/// The sensor view in the real window: from an alarm in History to its sensor's chart. A
/// fridge's 24 h at one reading a minute, with an excursion to 9.5 °C (the alarm, raised,
/// acknowledged and cleared) and an hour without readings; a rule's limits 2–6 °C. The
/// chart's canvas is drawn with one alarm band, both limit lines and the gap kept as empty
/// buckets; the figures show the excursion. Screenshot: target/screenshots/sensor-view.png.
#[test]
fn e2e_sensor_view_from_an_alarm_in_history() {
    use alarm_tray::engine::history::NewAlarm;
    use alarm_tray::engine::model::LatestValue;
    use alarm_tray::engine::History;
    use alarm_tray::event::{Event, EventKind, Severity, Source};
    desktop::require_desktop();
    let _serial = desktop::serial();
    let profile = Profile::new();
    let now = jiff::Timestamp::now().as_millisecond();
    const MIN: i64 = 60_000;
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
