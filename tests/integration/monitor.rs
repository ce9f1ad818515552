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
        .block_on(client.ask::<()>(Request::Acknowledge { alarm_id: 999_999 }))
        .unwrap_err();
    assert_eq!(e.kind(), "not_found", "{e}");
    let wire = serde_json::to_value(&e).unwrap();
    assert_eq!(wire["kind"], "not_found");
    assert_eq!(wire["message"], e.message());
}
