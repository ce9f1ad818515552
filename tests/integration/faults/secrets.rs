//! Secrets never reach a file, a log, the output or an IPC reply: the monitor's core runs
//! as a child process with known secrets and every flow that touches them, and everything
//! it left or said is searched for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alarm_tray::engine::History;
use alarm_tray::ipc::client::Client;
use alarm_tray::ipc::protocol::{AlarmFilter, ConnectionTest, Discover, Info, Request, Status};
use alarm_tray::monitor::Monitor;
use alarm_tray::notify::{Notifier, RecordingNotifier};
use alarm_tray::secrets::SecretKey;
use alarm_tray::settings::{
    CustomEndpoint, ElementAccount, ElementSubscription, LoginMethod, SaverisAccount, Settings,
};
use alarm_tray::simulate::element::{ElementServer, ElementServerConfig, KeyRole};
use serde_json::json;
use tokio::sync::mpsc;

use super::harness::{count_events, report};
use crate::peers::rabbit::Broker;
use crate::peers::{spawn_child, unique};

const SECRET_PASSCODE: &str = "Pc-7f3k9QzSECRETpasscode";
const SECRET_PASSWORD: &str = "Pw-4Lm2XySECRETpassword!";
const SECRET_KEY_OK: &str = "k-9vT6SECRETelementkey";
const SECRET_KEY_BAD: &str = "k-2hR8SECRETwrongkey";

// ---------------------------------------------------------------- the child

struct NoShell;

impl alarm_tray::monitor::Shell for NoShell {
    fn open_window(&self, _page: alarm_tray::ipc::protocol::Page, _alarm_id: Option<i64>) {}
    fn show_status(&self, _status: &Status) {}
    fn set_autostart(&self, _enabled: bool) -> Result<(), String> {
        Ok(())
    }
}

/// What the parent hands the child through its environment: its directory and the peers.
struct ChildEnv {
    dir: PathBuf,
    ws: String,
    moto: String,
    client_id: String,
    user: String,
}

impl ChildEnv {
    /// None when the test was not started as the parent's child.
    fn from_env() -> Option<ChildEnv> {
        let dir = std::env::var("SECRETS_CHILD_DIR").ok()?;
        let var = |name: &str| std::env::var(name).unwrap();
        Some(ChildEnv {
            dir: PathBuf::from(dir),
            ws: var("SECRETS_CHILD_WS"),
            moto: var("SECRETS_CHILD_MOTO"),
            client_id: var("SECRETS_CHILD_CLIENT"),
            user: var("SECRETS_CHILD_USER"),
        })
    }

    fn pass_to(&self, cmd: &mut Command) {
        cmd.env("SECRETS_CHILD_DIR", &self.dir)
            .env("SECRETS_CHILD_WS", &self.ws)
            .env("SECRETS_CHILD_MOTO", &self.moto)
            .env("SECRETS_CHILD_CLIENT", &self.client_id)
            .env("SECRETS_CHILD_USER", &self.user);
    }
}

/// The monitor's core as a child process with logging to a file (debug level), the
/// in-memory keyring and the real IPC socket: stores known secrets through IPC, runs a
/// Saveris account with a wrong STOMP passcode, a Cognito (moto) account whose token the
/// broker refuses, an ELEMENT account that works and one with a rejected key, then asks
/// every request and prints each reply as `IPC <name> <json>` (and pushes as `PUSH`).
#[test]
#[ignore = "run as a child process by secrets_never_reach_files_logs_output_or_ipc"]
fn secrets_monitor_child() {
    let Some(env) = ChildEnv::from_env() else {
        return;
    };
    let _log = alarm_tray::logging::init(Some(&env.dir.join("logs")), "monitor");
    alarm_tray::secrets::init_mock();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let srv = ElementServer::start(ElementServerConfig {
            api_keys: vec![(SECRET_KEY_OK.into(), KeyRole::Admin)],
            ..Default::default()
        })
        .await
        .unwrap();
        srv.add_device("d1", "Fridge <b>1</b>", &["cold"]);
        // Kept open to the end: the monitor's bridges read popup actions from it.
        let (_actions_tx, actions) = mpsc::unbounded_channel();
        let child = MonitorChild::start(&env.dir, actions).await;
        let settings = child_settings(&env, &srv.base_url());
        child.store_secrets_and_settings(&settings).await;
        for n in 0..5 {
            srv.push_reading(
                "d1",
                json!({"temperature": 4.5 + f64::from(n), "name": "<script>x</script>"}),
            );
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        child.ask_every_request(&settings).await;
        child.monitor.shutdown().await;
        srv.stop().await;
        println!("SECRETS-CHILD-DONE");
    });
}

/// Two Saveris accounts on RabbitMQ (a STOMP passcode; a Cognito login on moto) and two
/// ELEMENT accounts on the simulator at `element_url`.
fn child_settings(env: &ChildEnv, element_url: &str) -> Settings {
    let mut settings = Settings::default();
    let rabbit = |id: &str, login: LoginMethod, token_url: &str| SaverisAccount {
        id: id.into(),
        username: env.user.clone(),
        login,
        cognito_endpoint: env.moto.clone(),
        cognito_client_id: env.client_id.clone(),
        custom: Some(CustomEndpoint {
            ws_url: format!("{}?vhost=%2F", env.ws),
            destination_pattern: "/queue/{username}.{channel}".into(),
            token_url: token_url.into(),
            stomp_login: "guest".into(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    };
    settings.saveris = vec![
        rabbit("sv-pass", LoginMethod::DataApi, ""),
        rabbit("sv-cog", LoginMethod::Cognito, "cognito"),
    ];
    let element_acc = |id: &str| ElementAccount {
        id: id.into(),
        base_url: element_url.into(),
        subscriptions: vec![ElementSubscription {
            id: "all".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    settings.element = vec![element_acc("el-ok"), element_acc("el-bad")];
    settings
}

/// The monitor's core wired as the app wires it, and a client on its real IPC socket.
struct MonitorChild {
    monitor: Arc<Monitor>,
    client: Client,
}

impl MonitorChild {
    async fn start(
        dir: &Path,
        actions: mpsc::UnboundedReceiver<alarm_tray::notify::PopupAction>,
    ) -> MonitorChild {
        let history = History::open(&dir.join("history.sqlite3")).unwrap();
        let notifier: Arc<dyn Notifier> = Arc::new(RecordingNotifier::new());
        let runtime =
            alarm_tray::runtime::Runtime::start(&Settings::default(), history, notifier.clone())
                .await;
        let (pushes, _) = tokio::sync::broadcast::channel(256);
        let info = Info {
            version: alarm_tray::VERSION.into(),
            data_dir: dir.display().to_string(),
            log_dir: dir.join("logs").display().to_string(),
            demo: false,
            notice: None,
            language: "en".into(),
        };
        let monitor = Monitor::new(
            Settings::default(),
            Box::new(alarm_tray::monitor::FilePersister(
                dir.join("settings.json"),
            )),
            runtime,
            notifier,
            Arc::new(NoShell),
            pushes.clone(),
            info,
        );
        monitor.spawn_bridges(actions);
        let sock = dir.join("ipc.sock");
        let listener = alarm_tray::ipc::server::bind(&sock).unwrap();
        tokio::spawn(alarm_tray::ipc::server::serve(
            listener,
            monitor.clone(),
            pushes,
        ));
        let client = Client::new(&sock);
        let mut push_rx = client.subscribe().await.unwrap();
        tokio::spawn(async move {
            while let Some(p) = push_rx.recv().await {
                println!("PUSH {}", serde_json::to_string(&p).unwrap());
            }
        });
        MonitorChild { monitor, client }
    }

    /// One request; prints its reply as `IPC <name> <json>` (or `IPC <name> error …`).
    async fn ask(&self, name: &str, req: Request) {
        let reply = match self.client.request(req).await {
            Ok(r) => serde_json::to_string(&r).unwrap(),
            Err(e) => format!("error {e}"),
        };
        println!("IPC {name} {reply}");
    }

    /// The four secrets through IPC, then the settings that use them.
    async fn store_secrets_and_settings(&self, settings: &Settings) {
        for (key, value) in [
            (SecretKey::StompPasscode("sv-pass".into()), SECRET_PASSCODE),
            (SecretKey::SaverisPassword("sv-cog".into()), SECRET_PASSWORD),
            (SecretKey::ElementApiKey("el-ok".into()), SECRET_KEY_OK),
            (SecretKey::ElementApiKey("el-bad".into()), SECRET_KEY_BAD),
        ] {
            self.ask(
                "set_secret",
                Request::SetSecret {
                    key,
                    value: value.into(),
                },
            )
            .await;
        }
        self.ask(
            "save_settings",
            Request::SaveSettings {
                settings: settings.clone(),
            },
        )
        .await;
    }

    /// Every request the window can send, in this order.
    async fn ask_every_request(&self, settings: &Settings) {
        self.ask("info", Request::Info).await;
        self.ask("get_settings", Request::GetSettings).await;
        for key in [
            SecretKey::StompPasscode("sv-pass".into()),
            SecretKey::SaverisPassword("sv-cog".into()),
            SecretKey::ElementApiKey("el-ok".into()),
            SecretKey::ElementApiKey("el-bad".into()),
        ] {
            self.ask("has_secret", Request::HasSecret { key }).await;
        }
        self.ask("status", Request::Status).await;
        self.ask_connection_tests(settings).await;
        self.ask(
            "alarms",
            Request::Alarms {
                filter: AlarmFilter::default(),
            },
        )
        .await;
        self.ask("latest", Request::LatestValues).await;
        self.ask(
            "series",
            Request::Series {
                sensor: "d1".into(),
                since_ms: 0,
            },
        )
        .await;
        self.ask("unparsed", Request::Unparsed { limit: 100 }).await;
        self.ask("test_notification", Request::SendTestNotification)
            .await;
        self.ask("pause", Request::SetPaused { paused: true }).await;
        self.ask("resume", Request::SetPaused { paused: false })
            .await;
        self.ask("status", Request::Status).await;
    }

    /// Connection tests with stored and with typed secrets, and discovery, for every account.
    async fn ask_connection_tests(&self, settings: &Settings) {
        for acc in &settings.saveris {
            self.ask(
                "test_saveris_stored",
                Request::TestConnection {
                    test: ConnectionTest::Saveris {
                        account: acc.clone(),
                        password: None,
                        passcode: None,
                        send_stored_to: None,
                    },
                },
            )
            .await;
        }
        self.ask(
            "test_saveris_typed",
            Request::TestConnection {
                test: ConnectionTest::Saveris {
                    account: settings.saveris[1].clone(),
                    password: Some(SECRET_PASSWORD.into()),
                    passcode: Some(SECRET_PASSCODE.into()),
                    send_stored_to: None,
                },
            },
        )
        .await;
        for acc in &settings.element {
            self.ask(
                "test_element_stored",
                Request::TestConnection {
                    test: ConnectionTest::Element {
                        account: acc.clone(),
                        api_key: None,
                        send_stored_to: None,
                    },
                },
            )
            .await;
            for what in [Discover::Devices, Discover::Tags] {
                self.ask(
                    "discover",
                    Request::Discover {
                        account: acc.id.clone(),
                        what,
                    },
                )
                .await;
            }
        }
        self.ask(
            "test_element_typed",
            Request::TestConnection {
                test: ConnectionTest::Element {
                    account: settings.element[1].clone(),
                    api_key: Some(SECRET_KEY_BAD.into()),
                    send_stored_to: None,
                },
            },
        )
        .await;
    }
}

// ---------------------------------------------------------------- the search

/// Runs [`secrets_monitor_child`] and `alarm-tray watch --demo`, then searches everything
/// they left or said (settings file, history database with its WAL, log files, stderr,
/// `watch` output, every IPC reply and push) for the secrets and for bearer tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_files_logs_output_or_ipc() {
    let broker = tokio::task::spawn_blocking(Broker::shared).await.unwrap();
    let moto = tokio::task::spawn_blocking(crate::peers::moto::Moto::shared)
        .await
        .unwrap();
    let user = unique("sec");
    let (pool, client) = moto.pool(&unique("pool")).await;
    moto.user(&pool, &user, SECRET_PASSWORD, true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_monitor_child(ChildEnv {
        dir: dir.path().to_path_buf(),
        ws: broker.ws_url(),
        moto: moto.endpoint(),
        client_id: client,
        user,
    })
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stdout.contains("SECRETS-CHILD-DONE"),
        "child failed:\n{stdout}\n{stderr}"
    );

    // The flows really ran: secrets stored, readings stored, the error paths were taken.
    let ipc: Vec<&str> = stdout.lines().filter(|l| l.contains("IPC ")).collect();
    assert!(
        ipc.iter()
            .filter(|l| l.contains("has_secret {\"type\":\"bool\",\"data\":true}"))
            .count()
            == 4,
        "{ipc:#?}"
    );
    assert!(
        count_events(&dir.path().join("history.sqlite3")) >= 3,
        "no readings stored: {ipc:#?}\n{stderr}"
    );
    assert!(
        stdout.contains("login failed") || stdout.contains("login_failed"),
        "{ipc:#?}"
    );
    assert!(stdout.contains("API key rejected"), "{ipc:#?}");

    let mut haystacks: Vec<(String, Vec<u8>)> = vec![
        (
            "child stdout (IPC replies, pushes)".into(),
            out.stdout.clone(),
        ),
        ("child stderr (log)".into(), out.stderr.clone()),
    ];
    let files = files_under(dir.path());
    let log_bytes: usize = files
        .iter()
        .filter(|(p, _)| p.starts_with(dir.path().join("logs")))
        .map(|(_, bytes)| bytes.len())
        .sum();
    assert!(log_bytes > 0, "the log file was written");
    let file_count = files.len();
    haystacks.extend(
        files
            .into_iter()
            .map(|(p, bytes)| (p.display().to_string(), bytes)),
    );

    let watch = run_watch_demo().await;
    assert!(
        !watch.stdout.is_empty(),
        "watch printed nothing: {}",
        String::from_utf8_lossy(&watch.stderr)
    );
    haystacks.push(("watch --demo stdout".into(), watch.stdout.clone()));
    haystacks.push(("watch --demo stderr".into(), watch.stderr.clone()));

    let found = leaks(&haystacks);
    report(
        "secrets",
        json!({"runs": 1, "places_searched": haystacks.len(), "files": file_count,
               "ipc_replies": ipc.len(), "log_bytes": log_bytes, "found": found.len()}),
    );
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
}

/// Runs [`secrets_monitor_child`] (this binary again) with debug logging, for at most 2 min.
async fn run_monitor_child(env: ChildEnv) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "faults::secrets::secrets_monitor_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    env.pass_to(&mut cmd);
    cmd.env("ALARM_TRAY_LOG", "debug")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = spawn_child(cmd).unwrap();
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the child finished within 2 min")
    .unwrap()
    .unwrap()
}

/// Every readable file under `root` (the settings file, the history database with its WAL
/// and SHM files, the log files), with its bytes.
fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                files.push((p, bytes));
            }
        }
    }
    files
}

/// `alarm-tray watch --demo` for 6 s with debug logging, in a data dir of its own.
async fn run_watch_demo() -> Output {
    let demo_dir = tempfile::tempdir().unwrap();
    let bin = crate::desktop::app_bin();
    tokio::task::spawn_blocking({
        let demo_dir = demo_dir.path().to_path_buf();
        move || {
            Command::new(bin)
                .args([
                    "watch",
                    "--demo",
                    "--seed",
                    "7",
                    "--for",
                    "6",
                    "--no-notify",
                ])
                .env("ALARM_TRAY_DATA_DIR", &demo_dir)
                .env("ALARM_TRAY_LOG", "debug")
                .stdin(Stdio::null())
                .output()
        }
    })
    .await
    .unwrap()
    .expect("alarm-tray watch runs (make build first)")
}

/// What must never appear: each secret as text and as a Debug byte array (`[80, 99, 45,
/// …]`, the form a `Vec<u8>` takes in logs), the demo ELEMENT key, and JWTs.
fn needles() -> Vec<String> {
    let secrets = [
        SECRET_PASSCODE,
        SECRET_PASSWORD,
        SECRET_KEY_OK,
        SECRET_KEY_BAD,
        alarm_tray::simulate::demo::ELEMENT_KEY,
    ];
    let as_debug_bytes = secrets.iter().map(|n| {
        n.bytes()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    });
    secrets
        .iter()
        .map(|s| s.to_string())
        // JWTs (id/access tokens) start with base64 of `{"`.
        .chain(["eyJ".to_string()])
        .chain(as_debug_bytes)
        .collect()
}

/// Every needle, `auth=` value other than the redaction mark, and Authorization header
/// found in `haystacks` (name, bytes), as "what in where".
fn leaks(haystacks: &[(String, Vec<u8>)]) -> Vec<String> {
    let needles = needles();
    let mut found = Vec::new();
    for (name, bytes) in haystacks {
        for n in &needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                found.push(format!(
                    "{} in {name}",
                    n.chars().take(24).collect::<String>()
                ));
            }
        }
        let text = String::from_utf8_lossy(bytes);
        for (i, _) in text.match_indices("auth=") {
            let v: String = text[i + 5..].chars().take(3).collect();
            if v != "***" {
                found.push(format!("auth={v}… in {name}"));
            }
        }
        if text.contains("Authorization: Bearer") || text.contains("\"authorization\"") {
            found.push(format!("an Authorization header in {name}"));
        }
    }
    found
}

/// ELEMENT packets and the `device.interfaces` / `packet.interface` preloads carry a
/// device's LoRaWAN keys (the simulator plants fake ones, as real interfaces hold them):
/// the history file (with its WAL), the engine's output (what `watch` prints, line by line)
/// and the stored bodies keep none of them, yet the bodies are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_lorawan_keys_of_element_packets_and_preloads_are_stored_nowhere() {
    use alarm_tray::feeds::element::{self, ElementFeedConfig};
    use alarm_tray::settings::{ElementKind, ElementScope};
    let srv = ElementServer::start(ElementServerConfig {
        api_keys: vec![(SECRET_KEY_OK.into(), KeyRole::Admin)],
        ..Default::default()
    })
    .await
    .unwrap();
    srv.add_device("d1", "Cold room", &["cold"]);
    srv.add_device("d2", "Freezer", &["cold"]);
    let planted = srv.planted_secrets();
    assert!(planted.len() >= 10, "{planted:?}");

    let dir = tempfile::tempdir().unwrap();
    let history = History::open(&dir.path().join("history.sqlite3")).unwrap();
    let sub = |id: &str, kind: ElementKind, preload: &[&str]| ElementSubscription {
        id: id.into(),
        scope: ElementScope::Tag("cold".into()),
        kind,
        preload: preload.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let account = ElementAccount {
        id: "lora".into(),
        base_url: srv.base_url(),
        subscriptions: vec![
            sub("packets", ElementKind::Packets, &["device.interfaces"]),
            sub(
                "readings",
                ElementKind::Readings,
                &["device.interfaces", "packet.interface"],
            ),
        ],
        ..Default::default()
    };
    let (dtx, drx) = mpsc::channel(256);
    let (stx, srx) = mpsc::unbounded_channel();
    let engine = alarm_tray::engine::spawn(
        Settings::default(),
        history.clone(),
        Arc::new(RecordingNotifier::new()),
        drx,
        srx,
    );
    let mut out = engine.subscribe();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let printed = lines.clone();
    tokio::spawn(async move {
        loop {
            match out.recv().await {
                Ok(o) => printed
                    .lock()
                    .unwrap()
                    .push(serde_json::to_string(&o).unwrap()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    });
    let feed = element::spawn(
        ElementFeedConfig::new(account, SECRET_KEY_OK.into(), Default::default()),
        dtx,
        stx,
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    for n in 0..4 {
        srv.push_packet(["d1", "d2"][n % 2], "0254A60003758A61B80C17");
        srv.push_reading(
            ["d1", "d2"][n % 2],
            json!({"temperature": 4.0, "device_id": 7}),
        );
    }
    let db = dir.path().join("history.sqlite3");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while count_events(&db) < 8 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    feed.stop().await;
    engine.shutdown().await;
    assert_eq!(count_events(&db), 8, "4 packets and 4 readings stored");

    let mut haystacks: Vec<(String, Vec<u8>)> = files_under(dir.path())
        .into_iter()
        .map(|(p, b)| (p.display().to_string(), b))
        .collect();
    let printed = lines.lock().unwrap().join("\n");
    assert!(
        printed.contains("driver_instance_id") && printed.contains("gateway_stats"),
        "the bodies with their interfaces were printed: {}",
        &printed[..printed.len().min(400)]
    );
    haystacks.push(("engine output (watch lines)".into(), printed.into_bytes()));
    let mut found = Vec::new();
    for (name, bytes) in &haystacks {
        for s in &planted {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                found.push(format!("{s} in {name}"));
            }
        }
    }
    report(
        "lorawan_keys",
        json!({"planted": planted.len(), "places_searched": haystacks.len(), "found": found.len()}),
    );
    assert!(found.is_empty(), "LoRaWAN keys stored: {found:#?}");
    srv.stop().await;
}
