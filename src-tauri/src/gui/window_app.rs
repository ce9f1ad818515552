//! The window process: the Tauri webview for settings, history and dashboard. Its commands
//! are thin clients of the monitor's socket: no state of record, no business logic.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use tauri::{Emitter, Manager, State, WebviewUrl, WebviewWindowBuilder};

use crate::engine::reduce::SensorView;
use crate::instance;
use crate::ipc::client::Client;
use crate::ipc::protocol::{
    AlarmFilter, AlarmRow, Connected, ConnectionTest, Discover, Info, LatestValue, NamedItem, Page,
    Push, Request, Response, Snooze, SnoozeFor, Status, UnparsedRow,
};
use crate::ipc::Error;
use crate::secrets::SecretKey;
use crate::settings::Settings;

struct WindowState {
    client: Client,
    page: Page,
    alarm_id: Option<i64>,
}

/// What a command answers: its own type, or the boundary's `{kind, message}` error.
type Res<T> = Result<T, Error>;

/// The page the window was opened on (`alarm-tray window --page … --alarm …`).
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct InitialPage {
    pub page: Page,
    pub alarm_id: Option<i64>,
}

/// A file the window offered for download (sensor view CSV/PNG export) was written, or
/// failed: sent to the web UI as `window://download`, so it can say where the file went.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct DownloadDone {
    pub path: Option<String>,
    pub ok: bool,
}

/// Where the window's downloads go: the user's Downloads folder (XDG user dirs), else
/// `~/Downloads`; never the working directory, which is wherever the app was started.
fn download_dir(app: &tauri::AppHandle) -> Option<std::path::PathBuf> {
    app.path()
        .download_dir()
        .ok()
        .or_else(|| app.path().home_dir().ok().map(|h| h.join("Downloads")))
}

/// The download handler of the window: a file lands in the Downloads folder under the name
/// the page gave it (numbered, never overwriting one), and the page is told where.
fn on_download(webview: tauri::Webview, event: tauri::webview::DownloadEvent<'_>) -> bool {
    use tauri::webview::DownloadEvent;
    match event {
        DownloadEvent::Requested { destination, .. } => {
            let Some(dir) = download_dir(webview.app_handle()) else {
                return false;
            };
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!(error = %e, dir = %dir.display(), "no Downloads folder");
                return false;
            }
            let name = destination
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "download".into());
            let (stem, ext) = match name.rsplit_once('.') {
                Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
                _ => (name.clone(), String::new()),
            };
            let mut path = dir.join(&name);
            let mut n = 1;
            while path.exists() {
                path = dir.join(format!("{stem} ({n}){ext}"));
                n += 1;
            }
            *destination = path;
            true
        }
        DownloadEvent::Finished { path, success, .. } => {
            let done = DownloadDone {
                path: path.map(|p| p.display().to_string()),
                ok: success,
            };
            tracing::info!(path = ?done.path, ok = done.ok, "download finished");
            let _ = webview.emit("window://download", &done);
            true
        }
        _ => true,
    }
}

/// Sends one request and takes the answer as the type the command returns.
async fn ask<T: TryFrom<Response, Error = Error>>(
    state: &State<'_, WindowState>,
    request: Request,
) -> Res<T> {
    state.client.ask(request).await
}

#[tauri::command]
async fn info(state: State<'_, WindowState>) -> Res<Info> {
    ask(&state, Request::Info).await
}
#[tauri::command]
async fn initial_page(state: State<'_, WindowState>) -> Res<InitialPage> {
    Ok(InitialPage {
        page: state.page,
        alarm_id: state.alarm_id,
    })
}
#[tauri::command]
async fn get_settings(state: State<'_, WindowState>) -> Res<Settings> {
    ask(&state, Request::GetSettings).await
}
#[tauri::command]
async fn save_settings(state: State<'_, WindowState>, settings: Settings) -> Res<()> {
    ask(&state, Request::SaveSettings { settings }).await
}
#[tauri::command]
async fn set_secret(state: State<'_, WindowState>, key: SecretKey, value: String) -> Res<()> {
    ask(&state, Request::SetSecret { key, value }).await
}
#[tauri::command]
async fn delete_secret(state: State<'_, WindowState>, key: SecretKey) -> Res<()> {
    ask(&state, Request::DeleteSecret { key }).await
}
#[tauri::command]
async fn has_secret(state: State<'_, WindowState>, key: SecretKey) -> Res<bool> {
    ask(&state, Request::HasSecret { key }).await
}
#[tauri::command]
async fn remove_account(state: State<'_, WindowState>, account_id: String) -> Res<()> {
    ask(&state, Request::RemoveAccount { account_id }).await
}
#[tauri::command]
async fn status(state: State<'_, WindowState>) -> Res<Status> {
    ask(&state, Request::Status).await
}
/// Issue 26: team sharing's status (`None`: off).
#[tauri::command]
async fn team_status(state: State<'_, WindowState>) -> Res<Option<crate::team::TeamStatus>> {
    ask(&state, Request::Team).await
}
#[tauri::command]
async fn report(
    state: State<'_, WindowState>,
    from_ms: i64,
    to_ms: i64,
) -> Res<crate::ipc::protocol::Saved> {
    ask(&state, Request::Report { from_ms, to_ms }).await
}
#[tauri::command]
async fn export_alarms(
    state: State<'_, WindowState>,
    filter: AlarmFilter,
) -> Res<crate::ipc::protocol::Saved> {
    ask(&state, Request::ExportAlarms { filter }).await
}
#[tauri::command]
async fn test_webhook(
    state: State<'_, WindowState>,
    webhook: crate::settings::Webhook,
    token: Option<String>,
) -> Res<Connected> {
    ask(&state, Request::TestWebhook { webhook, token }).await
}
#[tauri::command]
async fn test_connection(state: State<'_, WindowState>, test: ConnectionTest) -> Res<Connected> {
    ask(&state, Request::TestConnection { test }).await
}
#[tauri::command]
async fn discover(
    state: State<'_, WindowState>,
    account: String,
    what: Discover,
) -> Res<Vec<NamedItem>> {
    ask(&state, Request::Discover { account, what }).await
}
#[tauri::command]
async fn alarms(state: State<'_, WindowState>, filter: AlarmFilter) -> Res<Vec<AlarmRow>> {
    ask(&state, Request::Alarms { filter }).await
}
#[tauri::command]
async fn acknowledge(
    state: State<'_, WindowState>,
    alarm_id: i64,
    comment: Option<String>,
) -> Res<()> {
    ask(&state, Request::Acknowledge { alarm_id, comment }).await
}
#[tauri::command]
async fn snooze(
    state: State<'_, WindowState>,
    sensor: String,
    length: SnoozeFor,
    reason: String,
) -> Res<()> {
    ask(
        &state,
        Request::Snooze {
            sensor,
            length,
            reason,
        },
    )
    .await
}
#[tauri::command]
async fn end_snooze(state: State<'_, WindowState>, sensor: String) -> Res<()> {
    ask(&state, Request::EndSnooze { sensor }).await
}
#[tauri::command]
async fn snoozes(state: State<'_, WindowState>) -> Res<Vec<Snooze>> {
    ask(&state, Request::Snoozes).await
}
#[tauri::command]
async fn latest_values(state: State<'_, WindowState>) -> Res<Vec<LatestValue>> {
    ask(&state, Request::LatestValues).await
}
#[tauri::command]
async fn places(state: State<'_, WindowState>) -> Res<Vec<crate::engine::names::SensorPlace>> {
    ask(&state, Request::Places).await
}
#[tauri::command]
async fn series(
    state: State<'_, WindowState>,
    sensor: String,
    since_ms: i64,
    quantity: Option<String>,
) -> Res<Vec<(i64, f64)>> {
    let req = match quantity.filter(|q| !q.is_empty()) {
        Some(quantity) => Request::FieldSeries {
            sensor,
            quantity,
            since_ms,
        },
        None => Request::Series { sensor, since_ms },
    };
    ask(&state, req).await
}
#[tauri::command]
async fn sensor_view(
    state: State<'_, WindowState>,
    sensor: String,
    quantity: Option<String>,
    from_ms: i64,
    to_ms: i64,
    buckets: u32,
) -> Res<Box<SensorView>> {
    let req = Request::SensorView {
        sensor,
        quantity,
        from_ms,
        to_ms,
        buckets,
    };
    ask(&state, req).await
}
#[tauri::command]
async fn unparsed(state: State<'_, WindowState>, limit: u32) -> Res<Vec<UnparsedRow>> {
    ask(&state, Request::Unparsed { limit }).await
}
#[tauri::command]
async fn audit_verify(state: State<'_, WindowState>) -> Res<crate::engine::audit::AuditReport> {
    ask(&state, Request::AuditVerify).await
}
#[tauri::command]
async fn send_test_notification(state: State<'_, WindowState>) -> Res<()> {
    ask(&state, Request::SendTestNotification).await
}
#[tauri::command]
async fn set_paused(state: State<'_, WindowState>, paused: bool) -> Res<()> {
    ask(&state, Request::SetPaused { paused }).await
}
/// "Alarm Tray is not running — Start it": starts the monitor detached and waits until it
/// answers.
#[tauri::command]
async fn start_monitor(state: State<'_, WindowState>) -> Res<()> {
    super::process::spawn_detached(&["--hidden".to_string()])
        .map_err(|e| Error::Desktop(format!("Alarm Tray could not be started: {e}")))?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if state.client.request(Request::Info).await.is_ok() {
            return Ok(());
        }
    }
    Err(Error::Timeout(
        "Alarm Tray was started but does not answer yet; try again in a moment.".into(),
    ))
}

/// What a person needs to know when no webview could be made.
#[cfg(windows)]
const WEBVIEW_HINT: &str = " (the window needs the Microsoft Edge WebView2 Runtime)";
#[cfg(not(windows))]
const WEBVIEW_HINT: &str = "";

/// Runs the window until it is closed. If a window is open already, asks the monitor to
/// bring it forward instead.
pub fn run(page: Page, alarm_id: Option<i64>) -> ExitCode {
    let client = Client::new(&crate::paths::socket_path());
    let _lock = match instance::try_lock(&instance::window_lock()) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let asked =
                rt.map(|rt| rt.block_on(client.request(Request::OpenWindow { page, alarm_id })));
            eprintln!(
                "alarm-tray: a window is open already; asked it to come forward ({})",
                if matches!(asked, Ok(Ok(_))) {
                    "done"
                } else {
                    "no monitor answered"
                }
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("alarm-tray: cannot take the window lock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = crate::logging::init(Some(&crate::paths::log_dir()), "window");
    let result = tauri::Builder::default()
        .manage(WindowState {
            client: client.clone(),
            page,
            alarm_id,
        })
        .invoke_handler(tauri::generate_handler![
            info,
            initial_page,
            get_settings,
            save_settings,
            set_secret,
            delete_secret,
            has_secret,
            remove_account,
            status,
            test_connection,
            discover,
            alarms,
            acknowledge,
            snooze,
            end_snooze,
            snoozes,
            latest_values,
            places,
            series,
            sensor_view,
            unparsed,
            audit_verify,
            test_webhook,
            report,
            export_alarms,
            send_test_notification,
            set_paused,
            start_monitor,
            team_status
        ])
        .setup(move |app| {
            let built =
                WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
                    .title("Alarm Tray")
                    .inner_size(980.0, 720.0)
                    .min_inner_size(720.0, 520.0)
                    // WebKit's caches and storage go into the profile too, so a demo or test
                    // profile leaves nothing in the user's data dir.
                    .data_directory(crate::paths::data_dir().join("webview"))
                    .on_download(on_download)
                    .build();
            let window = match built {
                Ok(w) => w,
                Err(e) => {
                    // An error returned from setup makes tauri panic: say it and exit instead.
                    // Seen on Windows without the WebView2 runtime (and under Wine).
                    tracing::error!(error = %e, "the window could not open");
                    eprintln!("alarm-tray: the window could not open: {e}{WEBVIEW_HINT}");
                    app.handle().exit(1);
                    return Ok(());
                }
            };
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move { forward_pushes(handle, client).await });
            let _ = window.set_focus();
            Ok(())
        })
        .run(super::context());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alarm-tray: the window could not open: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Relays the monitor's pushes to the web UI as `monitor://push` events; reconnects while the
/// window lives and tells the UI when the monitor is gone.
async fn forward_pushes(app: tauri::AppHandle, client: Client) {
    loop {
        match client.subscribe().await {
            Ok(mut rx) => {
                while let Some(push) = rx.recv().await {
                    if let Push::Focus { .. } = &push {
                        if let Some(w) = app.get_webview_window("main") {
                            // No show(): calling it on a visible window left it deaf to its
                            // close button (WM_DELETE_WINDOW) under Xvfb — found by the e2e test.
                            if w.is_minimized().unwrap_or(false) {
                                let _ = w.unminimize();
                            }
                            let _ = w.set_focus();
                        }
                    }
                    let _ = app.emit("monitor://push", &push);
                }
                let _ = app.emit(
                    "monitor://disconnected",
                    "Alarm Tray is not running (the monitor went away)",
                );
            }
            Err(e) => {
                let _ = app.emit("monitor://disconnected", e.to_string());
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    /// The quoted names between `start` and the next `]`.
    fn quoted_after<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
        let from = text.find(start).expect("list start") + start.len();
        let body = &text[from..from + text[from..].find(']').expect("list end")];
        body.split('"').skip(1).step_by(2).collect()
    }

    /// `build.rs` declares the window's commands, `capabilities/window.json` grants each by
    /// name and `generate_handler!` registers each: one list in three places, kept equal. A
    /// command missing from the first two is refused by Tauri at run time.
    #[test]
    fn declared_granted_and_registered_commands_agree() {
        let declared = quoted_after(include_str!("../../build.rs"), "COMMANDS: &[&str] = &[");
        assert!(declared.len() >= 19, "{declared:?}");
        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../../capabilities/window.json")).unwrap();
        let granted: Vec<String> = capability["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p.as_str()?.strip_prefix("allow-").map(str::to_owned))
            .collect();
        let wanted: Vec<String> = declared.iter().map(|c| c.replace('_', "-")).collect();
        assert_eq!(
            granted, wanted,
            "window.json grants the declared commands, one by one"
        );
        let source = include_str!("window_app.rs");
        let from = source.find("generate_handler![").unwrap();
        let handler = &source[from..from + source[from..].find(']').unwrap()];
        let registered: Vec<&str> = handler["generate_handler![".len()..]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(
            registered, declared,
            "generate_handler! registers the declared commands"
        );
    }
}
