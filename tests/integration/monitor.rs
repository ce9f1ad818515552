//! The monitor as the window meets it: the real app (`--hidden`) in a private profile,
//! asked over its socket, with the desktop session's real keyring (Secret Service, read
//! back with `secret-tool`).

use std::process::Command;

use alarm_tray::ipc::client::Client;
use alarm_tray::ipc::protocol::Request;
use alarm_tray::secrets::SecretKey;
use alarm_tray::settings::{ElementAccount, SaverisAccount, Settings};

use crate::desktop::{self, Proc, Profile};

fn keyring_lookup(key: &SecretKey) -> Option<String> {
    let out = Command::new("secret-tool")
        .args([
            "lookup",
            "service",
            alarm_tray::secrets::SERVICE,
            "username",
            &key.entry_name(),
        ])
        .output()
        .expect("secret-tool runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

fn keyring_clear(key: &SecretKey) {
    let _ = Command::new("secret-tool")
        .args([
            "clear",
            "service",
            alarm_tray::secrets::SERVICE,
            "username",
            &key.entry_name(),
        ])
        .status();
}

/// The accounts in the settings file the monitor wrote, as `(saveris ids, element ids)`.
fn stored_account_ids(profile: &Profile) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(profile.settings_file()).expect("settings file");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids = |list: &str| -> Vec<String> {
        v["settings"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect()
    };
    (ids("saveris"), ids("element"))
}

/// The real monitor (`--hidden`) in a fresh profile, a runtime to ask it from, and a client
/// on its socket. Keep the process handle alive for as long as the monitor is needed.
fn monitor_in_private_profile() -> (Profile, Proc, tokio::runtime::Runtime, Client) {
    let profile = Profile::new();
    let monitor = profile.start_monitor();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(&profile.socket());
    (profile, monitor, rt, client)
}

/// One `RemoveAccount` request takes the account out of the settings (file and monitor)
/// and every secret stored under its id out of the keyring, while another account and its
/// key stay. Removing an id that is gone already is not an error.
#[test]
fn remove_account_takes_settings_and_keyring_entries_in_one_request() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let (profile, _monitor, rt, client) = monitor_in_private_profile();

    let gone = crate::peers::unique("rm-s");
    let kept = crate::peers::unique("rm-e");
    // Disabled: the monitor starts no feed, so nothing here reaches the network.
    let mut settings: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    settings.saveris.push(SaverisAccount {
        id: gone.clone(),
        enabled: false,
        username: "rm-alice".into(),
        ..Default::default()
    });
    settings.element.push(ElementAccount {
        id: kept.clone(),
        enabled: false,
        ..Default::default()
    });
    rt.block_on(client.ask::<()>(Request::SaveSettings { settings }))
        .unwrap();
    let secrets = [
        (SecretKey::SaverisPassword(gone.clone()), "Rm-pass-1"),
        (SecretKey::StompPasscode(gone.clone()), "Rm-code-2"),
        // A key of another kind under the same id (left by an older version): it goes too.
        (SecretKey::ElementApiKey(gone.clone()), "Rm-stale-3"),
        (SecretKey::ElementApiKey(kept.clone()), "Rm-key-4"),
    ];
    for (key, value) in &secrets {
        rt.block_on(client.ask::<()>(Request::SetSecret {
            key: key.clone(),
            value: (*value).into(),
        }))
        .unwrap();
        assert_eq!(
            keyring_lookup(key).as_deref(),
            Some(*value),
            "{key:?} stored"
        );
    }
    assert_eq!(
        stored_account_ids(&profile),
        (vec![gone.clone()], vec![kept.clone()])
    );

    rt.block_on(client.ask::<()>(Request::RemoveAccount {
        account_id: gone.clone(),
    }))
    .unwrap();
    for (key, _) in &secrets[..3] {
        assert_eq!(keyring_lookup(key), None, "{key:?} left in the keyring");
    }
    assert_eq!(
        keyring_lookup(&secrets[3].0).as_deref(),
        Some("Rm-key-4"),
        "the other account's key stays"
    );
    assert_eq!(
        stored_account_ids(&profile),
        (vec![], vec![kept.clone()]),
        "the settings file no longer lists the account"
    );
    let now: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    assert!(now.saveris.is_empty(), "{:?}", now.saveris);
    assert_eq!(now.element.len(), 1);

    // Again, and for an id no account ever had: nothing to do, no error.
    rt.block_on(client.ask::<()>(Request::RemoveAccount {
        account_id: gone.clone(),
    }))
    .unwrap();
    rt.block_on(client.ask::<()>(Request::RemoveAccount {
        account_id: crate::peers::unique("rm-none"),
    }))
    .unwrap();
    assert_eq!(stored_account_ids(&profile), (vec![], vec![kept.clone()]));

    rt.block_on(client.ask::<()>(Request::RemoveAccount {
        account_id: kept.clone(),
    }))
    .unwrap();
    assert_eq!(keyring_lookup(&secrets[3].0), None);
    assert_eq!(stored_account_ids(&profile), (vec![], vec![]));
    for (key, _) in &secrets {
        keyring_clear(key);
    }
}

/// Errors reach the window as `{kind, message}`: an invalid save is `invalid_input` with
/// the validator's sentence, an empty secret `invalid_input`, an unknown alarm `not_found`.
#[test]
fn monitor_errors_carry_a_kind() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    let (_profile, _monitor, rt, client) = monitor_in_private_profile();
    let mut settings: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    settings.retention_days = 0;
    let e = rt
        .block_on(client.ask::<()>(Request::SaveSettings { settings }))
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_input", "{e}");
    assert_eq!(
        e.message(),
        "invalid settings: history must be kept at least one day"
    );
    let e = rt
        .block_on(client.ask::<()>(Request::SetSecret {
            key: SecretKey::ElementApiKey("x".into()),
            value: String::new(),
        }))
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_input", "{e}");
    let e = rt
        .block_on(client.ask::<()>(Request::Acknowledge {
            alarm_id: 999_999,
            comment: None,
        }))
        .unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let wire = serde_json::to_value(&e).unwrap();
    assert_eq!(wire["kind"], "not_found");
    assert_eq!(wire["message"], e.message());
}

/// A loopback TCP peer that answers every connection with `500` and records every byte it
/// was sent: where a secret would land if the monitor sent it to a changed host.
struct RecordingPeer {
    port: u16,
    got: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingPeer {
    fn start() -> RecordingPeer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (g, c) = (got.clone(), connections.clone());
        // Ends with the test process (the thread only accepts).
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        g.lock().unwrap().extend_from_slice(&buf[..n]);
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            let _ = s.write_all(
                                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            );
                        }
                    }
                });
            }
        });
        RecordingPeer {
            port,
            got,
            connections,
        }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn saw(&self, secret: &str) -> bool {
        let got = self.got.lock().unwrap();
        let text = String::from_utf8_lossy(&got);
        // In a JSON body, a query string, or form-encoded.
        text.contains(secret) || text.contains(&secret.replace('!', "%21"))
    }
    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Issue 18: a stored password (Saveris token URL) and a stored API key (ELEMENT base URL)
/// go only to the endpoint they were stored for. After the endpoint is edited to another
/// host — in a connection test, or saved — the new host (a recording peer) never gets them;
/// the test answers `endpoint_changed` and the saved account's feed stops with the sentence.
/// With the explicit confirm in the request the secret goes there (so the peer would have
/// seen it), and typing it again binds it to the new host.
#[test]
fn stored_secrets_never_reach_a_changed_endpoint() {
    use alarm_tray::ipc::protocol::{ConnectionTest, Status};
    use alarm_tray::settings::{CustomEndpoint, ElementSubscription};
    use std::time::Duration;

    desktop::require_desktop();
    let _serial = desktop::serial();
    let (_profile, _monitor, rt, client) = monitor_in_private_profile();
    let old = RecordingPeer::start();
    let new = RecordingPeer::start();
    let sid = crate::peers::unique("bind-s");
    let eid = crate::peers::unique("bind-e");
    const PASSWORD: &str = "Bind-Pw-7Qx!stored";
    const API_KEY: &str = "bind-key-9Zt3stored";

    let saveris_at = |token_url: String| SaverisAccount {
        id: sid.clone(),
        username: "bind-alice".into(),
        custom: Some(CustomEndpoint {
            // Nobody listens here: the feed fails after its login, which is all it needs.
            ws_url: "ws://127.0.0.1:9/ws".into(),
            token_url,
            ..Default::default()
        }),
        ..Default::default()
    };
    let element_at = |base_url: String| ElementAccount {
        id: eid.clone(),
        base_url,
        subscriptions: vec![ElementSubscription {
            id: "all".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    // Saved and typed for the old host.
    let mut settings: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    settings.saveris.push(saveris_at(old.url("/v1/token")));
    settings.element.push(element_at(old.url("")));
    rt.block_on(client.ask::<()>(Request::SaveSettings {
        settings: settings.clone(),
    }))
    .unwrap();
    for (key, value) in [
        (SecretKey::SaverisPassword(sid.clone()), PASSWORD),
        (SecretKey::ElementApiKey(eid.clone()), API_KEY),
    ] {
        rt.block_on(client.ask::<()>(Request::SetSecret {
            key,
            value: value.into(),
        }))
        .unwrap();
    }
    desktop::wait_for(
        Duration::from_secs(20),
        "both secrets at the old host",
        || old.saw(PASSWORD) && old.saw(API_KEY),
    );

    // 1. Test connection with the endpoint edited, nothing typed: refused by kind.
    let tests = [
        ConnectionTest::Saveris {
            account: saveris_at(new.url("/v1/token")),
            password: None,
            passcode: None,
            send_stored_to: None,
        },
        ConnectionTest::Element {
            account: element_at(new.url("")),
            api_key: None,
            send_stored_to: None,
        },
    ];
    for test in &tests {
        let e = rt
            .block_on(client.request(Request::TestConnection { test: test.clone() }))
            .expect_err("a stored secret for a changed host");
        assert_eq!(e.kind(), "endpoint_changed", "{e}");
        assert!(
            e.message().contains(&old.origin()) && e.message().contains(&new.origin()),
            "the sentence names both hosts: {e}"
        );
    }
    // A confirm naming another host does not count either.
    let mut wrong = tests[1].clone();
    if let ConnectionTest::Element { send_stored_to, .. } = &mut wrong {
        *send_stored_to = Some("http://127.0.0.1:1".into());
    }
    let e = rt
        .block_on(client.request(Request::TestConnection { test: wrong }))
        .unwrap_err();
    assert_eq!(e.kind(), "endpoint_changed");

    // 2. Saved with the new host: the feeds do not start with the stored secrets.
    let mut edited = settings.clone();
    edited.saveris.retain(|a| a.id != sid);
    edited.element.retain(|a| a.id != eid);
    edited.saveris.push(saveris_at(new.url("/v1/token")));
    edited.element.push(element_at(new.url("")));
    rt.block_on(client.ask::<()>(Request::SaveSettings { settings: edited }))
        .unwrap();
    let mut status = None;
    desktop::wait_for(
        Duration::from_secs(10),
        "both feeds stopped with the sentence",
        || {
            let s: Status = rt.block_on(client.ask(Request::Status)).unwrap();
            let stopped = |id: &str| {
                s.feeds.iter().any(|f| {
                    f.feed.contains(id)
                        && serde_json::to_string(&f.state)
                            .unwrap()
                            .contains("was saved for")
                })
            };
            let both = stopped(&sid) && stopped(&eid);
            status = Some(s);
            both
        },
    );
    // Time for a feed that would (wrongly) log in or connect.
    std::thread::sleep(Duration::from_secs(3));
    let report = format!(
        "new host: {} connections, saw password {}, saw key {}",
        new.connections(),
        new.saw(PASSWORD),
        new.saw(API_KEY)
    );
    eprintln!(
        "SECRET-BINDING {report}; status {:?}",
        status.map(|s| s.summary)
    );
    assert!(!new.saw(PASSWORD) && !new.saw(API_KEY), "{report}");
    assert_eq!(
        new.connections(),
        0,
        "nothing at all went to the new host: {report}"
    );

    // 3. The explicit confirm carried in the request: the peer gets it (it would have
    // recorded a leak above).
    let mut confirmed = tests[1].clone();
    if let ConnectionTest::Element { send_stored_to, .. } = &mut confirmed {
        *send_stored_to = Some(new.origin());
    }
    let _ = rt.block_on(client.request(Request::TestConnection { test: confirmed }));
    assert!(new.saw(API_KEY), "confirmed: sent to {}", new.origin());
    assert!(!new.saw(PASSWORD));

    // 4. Typed again: bound to the new host, the feed logs in there.
    rt.block_on(client.ask::<()>(Request::SetSecret {
        key: SecretKey::SaverisPassword(sid.clone()),
        value: PASSWORD.into(),
    }))
    .unwrap();
    desktop::wait_for(
        Duration::from_secs(20),
        "the password typed again reaches the new host",
        || new.saw(PASSWORD),
    );
    rt.block_on(client.ask::<()>(Request::RemoveAccount { account_id: sid }))
        .unwrap();
    rt.block_on(client.ask::<()>(Request::RemoveAccount { account_id: eid }))
        .unwrap();
}

/// A property of the monitor's StatusNotifierItem (e.g. `IconName`), as dbus-send prints it.
fn tray_item_property(pid: u32, prop: &str) -> Option<String> {
    let name = desktop::tray_bus_name(pid)?;
    let out = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--reply-timeout=800",
            &format!("--dest={name}"),
            "/org/ayatana/NotificationItem/tray_icon_tray_app_alarm_tray",
            "org.freedesktop.DBus.Properties.Get",
            "string:org.kde.StatusNotifierItem",
            &format!("string:{prop}"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split('"').nth(1).map(str::to_owned)
}

/// Copies the icon the tray exports now (libayatana writes it to a file and names it in
/// `IconThemePath`/`IconName`) to `target/screenshots/<name>`, for people to look at.
fn keep_tray_icon(pid: u32, name: &str) {
    let (Some(dir), Some(icon)) = (
        tray_item_property(pid, "IconThemePath"),
        tray_item_property(pid, "IconName"),
    ) else {
        eprintln!("the tray exports no icon file");
        return;
    };
    let file = if icon.ends_with(".png") {
        icon
    } else {
        format!("{icon}.png")
    };
    let src = std::path::Path::new(&dir).join(file);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let copied = std::fs::copy(&src, shots.join(name));
    eprintln!("tray icon {} kept as {name}: {copied:?}", src.display());
}

/// Issue 18: the tray menu's first line is the status, disabled, and follows it live — read
/// over D-Bus (dbusmenu GetLayout) as a desktop reads it: no alarm, then "1 active alarm"
/// when a Saveris alarm (RabbitMQ) is raised, then back when it clears. The alarm icon the
/// tray exports is kept in `target/screenshots/` for people to look at.
#[test]
fn tray_status_line_follows_alarms_on_dbus() {
    use std::time::Duration;
    desktop::require_desktop();
    let _serial = desktop::serial();
    let (_profile, monitor, rt, client) = monitor_in_private_profile();
    let broker = crate::peers::rabbit::Broker::shared();
    let user = crate::peers::unique("traybob");
    let account = crate::saveris::rabbit_account(&broker.ws_url(), &user);
    let mut settings: Settings = rt.block_on(client.ask(Request::GetSettings)).unwrap();
    settings.saveris.push(account.clone());
    rt.block_on(client.ask::<()>(Request::SaveSettings { settings }))
        .unwrap();
    rt.block_on(client.ask::<()>(Request::SetSecret {
        key: SecretKey::StompPasscode(account.id.clone()),
        value: "guest".into(),
    }))
    .unwrap();
    let first = || {
        desktop::tray_menu(monitor.pid())
            .first()
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    desktop::wait_for(
        Duration::from_secs(30),
        "the status line: live, no alarm",
        || first() == "no active alarms \u{b7} Saveris live",
    );
    // The line is not an action: its item is disabled (dbusmenu `enabled` false).
    let items = desktop::tray_menu(monitor.pid());
    assert_eq!(items[1].1, "Open Alarm Tray", "{items:?}");
    let layout = desktop::tray_menu_layout(monitor.pid());
    // The item's properties: the lines from its `int32 <id>` line to the next item's.
    let status_item: String = layout
        .lines()
        .skip_while(|l| l.trim() != format!("int32 {}", items[0].0))
        .skip(1)
        .take_while(|l| !l.trim().starts_with("int32 "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        status_item.contains("\"enabled\"") && status_item.contains("boolean false"),
        "the status line is disabled: {status_item}"
    );

    let uuid = crate::peers::unique("tray-alarm");
    let queue = format!("/queue/{user}.alarms");
    rt.block_on(crate::saveris::rabbit_publish(
        &broker.ws_url(),
        &queue,
        &[crate::saveris::alarm_body(&uuid)],
    ));
    desktop::wait_for(Duration::from_secs(15), "the status line: 1 alarm", || {
        first() == "1 active alarm \u{b7} Saveris live"
    });
    keep_tray_icon(monitor.pid(), "tray-alarm-count-1.png");
    let cleared = crate::saveris::alarm_body(&uuid)
        .replace(r#""alarm_status":"Alarm""#, r#""alarm_status":"Ok""#);
    rt.block_on(crate::saveris::rabbit_publish(
        &broker.ws_url(),
        &queue,
        &[cleared],
    ));
    desktop::wait_for(Duration::from_secs(15), "the status line: cleared", || {
        first() == "no active alarms \u{b7} Saveris live"
    });
    keep_tray_icon(monitor.pid(), "tray-cleared.png");
    rt.block_on(client.ask::<()>(Request::RemoveAccount {
        account_id: account.id,
    }))
    .unwrap();
}
