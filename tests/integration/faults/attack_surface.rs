//! The attack surface as configured: unencrypted endpoints only on this computer,
//! self-signed certificates refused by both feeds, and a window whose CSP and capabilities
//! admit nothing remote.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use alarm_tray::feeds::{element, saveris};
use serde_json::json;

use super::harness::{closed_port, element_account, report};
use crate::peers::spawn_child;
use crate::saveris::rabbit_account;

/// Unencrypted `ws://` / `http://` endpoints are refused unless they are this computer: a
/// STOMP passcode or an ELEMENT key (which travels in the URL) never crosses a network in
/// clear. Loopback stays allowed for local brokers and the simulators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_unencrypted_endpoints_only_on_loopback() {
    use alarm_tray::feeds::element::ElementError;
    use alarm_tray::feeds::saveris::SaverisError;
    let remote_saveris = rabbit_account("ws://192.0.2.1:9/ws", "u");
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        saveris::test_connection(&remote_saveris, None, Some("x")),
    )
    .await
    .expect("refused at once")
    .unwrap_err();
    assert!(matches!(err, SaverisError::Config(_)), "{err}");
    for local in [
        "ws://127.0.0.1:1/ws",
        "ws://localhost:1/ws",
        "ws://[::1]:1/ws",
    ] {
        let err = saveris::test_connection(&rabbit_account(local, "u"), None, Some("x"))
            .await
            .unwrap_err();
        assert!(!matches!(err, SaverisError::Config(_)), "{local}: {err}");
    }

    let remote_element = element_account("http://192.0.2.1:9".into(), 0);
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        element::test_connection(&remote_element, "k"),
    )
    .await
    .expect("refused at once")
    .unwrap_err();
    assert!(matches!(err, ElementError::InvalidUrl(_)), "{err}");
    let err = element::test_connection(&element_account("http://127.0.0.1:1".into(), 0), "k")
        .await
        .unwrap_err();
    assert!(!matches!(err, ElementError::InvalidUrl(_)), "{err}");
    report(
        "security: unencrypted endpoints",
        json!({"runs": 1, "remote_ws_refused": true, "remote_http_refused": true}),
    );
}

/// A `wss://`/`https://` peer with a self-signed certificate is refused by both feeds:
/// there is no setting that turns verification off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_self_signed_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (package openssl) is needed");
    assert!(made.success());
    let port = closed_port();
    let mut server = Command::new("openssl");
    server
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = spawn_child(server).unwrap();
    assert!(crate::peers::wait_port(port, Duration::from_secs(10)));

    let account = rabbit_account(&format!("wss://127.0.0.1:{port}/ws"), "u");
    let s_err = saveris::test_connection(&account, None, Some("x"))
        .await
        .unwrap_err()
        .to_string();
    let e_err = element::test_connection(
        &element_account(format!("https://127.0.0.1:{port}"), 0),
        "k",
    )
    .await
    .unwrap_err()
    .to_string();
    crate::peers::stop_child(&mut server, Duration::from_secs(2));
    report(
        "security: self-signed certificate",
        json!({"runs": 1, "saveris": s_err, "element": e_err}),
    );
    assert!(s_err.to_lowercase().contains("certificate"), "{s_err}");
    assert!(e_err.to_lowercase().contains("certificate"), "{e_err}");
}

/// The window's attack surface as configured: a CSP without inline scripts, `eval` or
/// remote origins; capabilities that only let the window listen to events; no escape
/// hatch for remote pages.
#[test]
fn security_tauri_csp_and_capabilities_admit_nothing_remote() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-tauri");
    let conf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tauri.conf.json")).unwrap())
            .unwrap();
    let conf_text = conf.to_string();
    for hatch in [
        "dangerousRemoteDomainIpcAccess",
        "dangerousDisableAssetCspModification",
        "dangerousUseHttpScheme",
        "devUrl",
    ] {
        assert!(!conf_text.contains(hatch), "tauri.conf.json uses {hatch}");
    }
    assert_eq!(conf["app"]["withGlobalTauri"], json!(false));
    let csp = conf["app"]["security"]["csp"]
        .as_str()
        .expect("a CSP is set");
    let directives: HashMap<&str, Vec<&str>> = csp
        .split(';')
        .filter_map(|d| {
            let mut it = d.split_whitespace();
            Some((it.next()?, it.collect()))
        })
        .collect();
    assert_eq!(directives["default-src"], vec!["'self'"]);
    assert_eq!(
        directives["script-src"],
        vec!["'self'"],
        "no inline scripts, no eval"
    );
    assert_eq!(directives["object-src"], vec!["'none'"]);
    for (name, sources) in &directives {
        for s in sources {
            let remote = (s.starts_with("http") || s.starts_with("ws") || *s == "*")
                && *s != "http://ipc.localhost";
            assert!(!remote, "{name} admits the remote origin {s}");
        }
    }
    let mut permissions = Vec::new();
    for e in std::fs::read_dir(root.join("capabilities"))
        .unwrap()
        .flatten()
    {
        let cap: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        assert!(
            cap.get("remote").is_none(),
            "{:?} opens IPC to remote URLs",
            e.path()
        );
        for p in cap["permissions"].as_array().unwrap() {
            permissions.push(p.as_str().unwrap_or("(object)").to_string());
        }
    }
    // Core permissions carry a plugin prefix; the app's own are `allow-<command>` for the
    // commands build.rs declares, granted one by one (never a wildcard or a default set).
    let (mut core, own): (Vec<String>, Vec<String>) =
        permissions.into_iter().partition(|p| p.contains(':'));
    core.sort();
    assert_eq!(
        core,
        vec!["core:event:allow-listen", "core:event:allow-unlisten"],
        "every permission is listed with its reason in docs/RELIABILITY.md"
    );
    let build_rs = std::fs::read_to_string(root.join("build.rs")).unwrap();
    let declared = build_rs
        .split_once("const COMMANDS")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(list, _)| list)
        .expect("build.rs declares COMMANDS");
    let mut declared: Vec<String> = declared
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    declared.sort();
    let mut own = own;
    own.sort();
    assert!(!declared.is_empty(), "no command found in build.rs");
    assert_eq!(
        own, declared,
        "the window is granted exactly its declared commands"
    );
}
