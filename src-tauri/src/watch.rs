//! `alarm-tray watch`: the same feeds and engine with no tray and no window. Prints one JSON
//! object per stored event, decision and status change on stdout (schema in the README),
//! logs to stderr, and exits cleanly on SIGINT/SIGTERM or after `--for` seconds, after the
//! engine flushed its history.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{History, Output};
use crate::notify::{DesktopNotifier, Notifier, NotifyError, Popup};
use crate::runtime::Runtime;

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Read this settings file instead of the profile's (never written).
    pub settings_file: Option<PathBuf>,
    /// Stop after this many seconds.
    pub for_secs: Option<u64>,
    /// Decide popups but show none.
    pub no_notify: bool,
    /// Demo scenario seed: own servers, in-memory keyring (the caller set a throwaway
    /// profile).
    pub demo: Option<u64>,
}

/// A notifier that shows nothing (`--no-notify`): decisions still print.
struct Silent;

impl Notifier for Silent {
    fn show(&self, _popup: &Popup) -> Result<(), NotifyError> {
        Ok(())
    }
    fn close(&self, _tag: &str) {}
}

/// Runs `watch` on the current profile; see the module docs.
pub async fn run(opts: WatchOptions) -> ExitCode {
    let _log = crate::logging::init(None, "watch");
    let _lock = match crate::instance::try_lock(&crate::instance::monitor_lock()) {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!("alarm-tray watch: Alarm Tray is already running with this profile; quit it first (or set ALARM_TRAY_DATA_DIR to another profile)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("alarm-tray watch: cannot take the profile lock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut demo = None;
    let settings = if let Some(seed) = opts.demo {
        crate::secrets::init_mock();
        match crate::simulate::demo::Demo::start(seed, 0).await {
            Ok(d) => {
                for (k, v) in d.secrets() {
                    let _ = crate::secrets::SecretStore.set(&k, &v);
                }
                let s = d.settings();
                demo = Some(d);
                s
            }
            Err(e) => {
                eprintln!("alarm-tray watch: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let path = opts
            .settings_file
            .clone()
            .unwrap_or_else(crate::paths::settings_file);
        if let Err(e) = crate::secrets::init() {
            tracing::warn!(error = %e, "keyring unavailable; accounts needing a password cannot connect");
        }
        match crate::settings::read(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("alarm-tray watch: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let history = match History::open(&crate::paths::history_db()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("alarm-tray watch: the history database could not be opened: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (actions_tx, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let notifier: Arc<dyn Notifier> = if opts.no_notify {
        Arc::new(Silent)
    } else {
        Arc::new(crate::notify::KeptNotifier::new(Arc::new(
            DesktopNotifier::new(actions_tx),
        )))
    };
    let runtime = Runtime::start(&settings, history, notifier).await;
    // Clicks are routed as in the monitor (the same function): Acknowledge acknowledges in
    // history ("by": "popup" on stdout). There is no window to open here, so Open only logs.
    let router = crate::engine::route_popup_actions(runtime.engine().clone(), actions_rx, |id| {
        tracing::info!(alarm = ?id, "Open clicked on a popup: watch has no window");
    });
    let code = print_until_stopped(&runtime, opts.for_secs).await;
    router.abort();
    runtime.shutdown().await;
    if let Some(d) = demo {
        d.stop().await;
    }
    code
}

/// `alarm-tray simulate`: the demo servers and scenario alone, for integration testing.
pub async fn simulate(
    seed: u64,
    for_secs: Option<u64>,
    speed: u32,
    settings_out: Option<PathBuf>,
) -> ExitCode {
    let _log = crate::logging::init(None, "simulate");
    let demo = match crate::simulate::demo::Demo::start_at(seed, 0, speed).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("alarm-tray simulate: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = settings_out {
        let text = crate::settings::to_store_json(&demo.settings()).to_string();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("alarm-tray simulate: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("Alarm Tray simulator (seed {seed})\n{}", demo.describe());
    let _ = std::io::stdout().flush();
    match for_secs {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => shutdown_signal().await,
    }
    demo.stop().await;
    ExitCode::SUCCESS
}

/// Prints engine output as JSON lines until a signal, `--for`, or the engine ends.
pub async fn print_until_stopped(runtime: &Runtime, for_secs: Option<u64>) -> ExitCode {
    let mut out = runtime.engine().subscribe();
    let deadline = async {
        match for_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    // Issue 26: team sharing's status (PCs, forged messages dropped) as `{"type":"team"}`.
    let mut team = runtime.team_status();
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}",
        serde_json::json!({"type": "status", "status": runtime.engine().status()})
    );
    loop {
        tokio::select! {
            _ = &mut deadline => return ExitCode::SUCCESS,
            _ = shutdown_signal() => return ExitCode::SUCCESS,
            Ok(()) = team.changed() => {
                let t = team.borrow_and_update().clone();
                if let Some(t) = t {
                    let _ = writeln!(stdout, "{}", serde_json::json!({"type": "team", "team": t}));
                    let _ = stdout.flush();
                }
            }
            o = out.recv() => match o {
                Ok(line) => {
                    if print(&mut stdout, &line).is_err() {
                        // stdout closed (pipe gone): nothing more to tell anyone.
                        return ExitCode::SUCCESS;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = writeln!(stdout, "{}", serde_json::json!({"type": "lagged", "missed": n}));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return ExitCode::SUCCESS,
            }
        }
    }
}

fn print(w: &mut impl Write, o: &Output) -> std::io::Result<()> {
    let text = serde_json::to_string(o).map_err(std::io::Error::other)?;
    writeln!(w, "{text}")?;
    w.flush()
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
