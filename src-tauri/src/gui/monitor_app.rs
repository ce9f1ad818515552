//! The monitor process: tray, feeds, engine, popups and the local socket. It never creates
//! a webview (ARCHITECTURE.md: a process that made one keeps ~130 MB after closing it).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager, RunEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt};
use tauri_plugin_store::StoreExt;
use tokio::sync::broadcast;

use super::tray::{self, Tray};
use crate::engine::model::Status;
use crate::engine::History;
use crate::instance;
use crate::ipc::protocol::{Info, Page, Push, Request};
use crate::monitor::{Monitor, SettingsPersister, Shell};
use crate::notify::DesktopNotifier;
use crate::runtime::Runtime;
use crate::settings::{self, Settings};

#[derive(Debug, Clone, Default)]
pub struct MonitorOptions {
    /// Start without opening the window (login autostart).
    pub hidden: bool,
    /// Demo mode with this scenario seed: own servers, demo profile, in-memory keyring.
    pub demo: Option<u64>,
}

struct GuiShell {
    app: AppHandle,
    tray: Tray,
    window_pid: Arc<Mutex<Option<u32>>>,
    pushes: broadcast::Sender<Push>,
    tooltip_prefix: String,
    /// Set by the first Quit (tray menu or IPC); later ones do nothing.
    quitting: AtomicBool,
}

impl Shell for GuiShell {
    fn open_window(&self, page: Page, alarm_id: Option<i64>) {
        if instance::is_held(&instance::window_lock()) {
            // One window at a time: bring the open one forward on the page asked for.
            let _ = self.pushes.send(Push::Focus { page, alarm_id });
            return;
        }
        let mut args = vec!["window".to_string(), "--page".into(), page.as_str().into()];
        if let Some(id) = alarm_id {
            args.extend(["--alarm".into(), id.to_string()]);
        }
        match super::process::spawn_child(&args) {
            Ok(mut child) => {
                let pid = child.id();
                if let Ok(mut p) = self.window_pid.lock() {
                    *p = Some(pid);
                }
                let slot = self.window_pid.clone();
                // Reap the window when it exits, or it lingers as <defunct>.
                std::thread::spawn(move || {
                    // A window that could not open says why in its own log; say here that
                    // it failed (an exit by signal is the monitor ending it).
                    if let Ok(status) = child.wait() {
                        if status.code().is_some_and(|c| c != 0) {
                            tracing::warn!(%status, "the window process failed");
                        }
                    }
                    if let Ok(mut p) = slot.lock() {
                        if *p == Some(pid) {
                            *p = None;
                        }
                    }
                    // Pages the monitor shared with the window are its own again.
                    crate::memory::trim_after(crate::memory::AFTER_WINDOW, "window closed");
                });
            }
            Err(e) => tracing::error!(error = %e, "could not start the window process"),
        }
    }

    fn show_status(&self, status: &Status) {
        self.tray.show(status, &self.tooltip_prefix);
    }

    fn set_autostart(&self, enabled: bool) -> Result<(), String> {
        let launcher = self.app.autolaunch();
        let r = if enabled {
            launcher.enable()
        } else {
            launcher.disable()
        };
        r.map_err(|e| e.to_string())?;
        #[cfg(target_os = "linux")]
        if enabled {
            add_try_exec(&self.app.package_info().name)?;
        }
        Ok(())
    }

    fn quit(&self) {
        if self.quitting.swap(true, Ordering::SeqCst) {
            return;
        }
        self.end_window();
        let handle = self.app.clone();
        let monitor = handle
            .try_state::<Arc<Monitor>>()
            .map(|m| m.inner().clone());
        tauri::async_runtime::spawn(async move {
            if let Some(m) = monitor {
                // Bounded: a hung feed must not keep a quitting app alive.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), m.shutdown()).await;
            }
            let _ = std::fs::remove_file(crate::paths::socket_path());
            // A demo profile is throwaway: tauri's exit ends the process without
            // running destructors, so remove it here.
            if handle.try_state::<crate::simulate::demo::Demo>().is_some() {
                let _ = std::fs::remove_dir_all(crate::paths::data_dir());
            }
            handle.exit(0);
        });
    }
}

/// A logout or shutdown (SIGTERM), Ctrl-C in the terminal that ran `make demo` (SIGINT) or
/// that terminal closing (SIGHUP) quits as the menu's Quit does: the feeds stop and send the
/// ACKs they owe, the window ends, and a demo's throwaway profile is removed. Without this
/// the default action killed the process on the spot.
fn quit_on_signal(shell: Arc<GuiShell>) {
    #[cfg(unix)]
    tauri::async_runtime::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::warn!("no signal handlers: a logout ends the monitor without a clean stop");
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
        tracing::info!("asked to stop by a signal (logout, shutdown or terminal): quitting");
        shell.quit();
    });
    #[cfg(not(unix))]
    let _ = shell;
}

/// The arguments the login entry starts the monitor with.
const AUTOSTART_ARGS: &str = "--hidden";

/// Adds `TryExec=` to the XDG autostart entry the plugin wrote: a package removal cannot
/// delete a file in the user's home, and with `TryExec` the desktop skips the entry once
/// the program is gone instead of failing at every login.
#[cfg(target_os = "linux")]
fn add_try_exec(app_name: &str) -> Result<(), String> {
    let path = dirs::home_dir()
        .ok_or("no home directory")?
        .join(".config/autostart")
        .join(format!("{app_name}.desktop"));
    let entry = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    if let Some(updated) = with_try_exec(&entry) {
        std::fs::write(&path, updated).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The entry with a `TryExec=` naming the program of its `Exec=` line; `None` if it has
/// one already or no `Exec=`.
#[cfg(target_os = "linux")]
fn with_try_exec(entry: &str) -> Option<String> {
    if entry.lines().any(|l| l.starts_with("TryExec=")) {
        return None;
    }
    let exec = entry.lines().find_map(|l| l.strip_prefix("Exec="))?;
    let program = exec
        .trim_end()
        .strip_suffix(AUTOSTART_ARGS)
        .unwrap_or(exec)
        .trim_end();
    let mut out = String::with_capacity(entry.len() + program.len() + 10);
    for line in entry.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Exec=") {
            out.push_str("TryExec=");
            out.push_str(program);
            out.push('\n');
        }
    }
    Some(out)
}

impl GuiShell {
    fn end_window(&self) {
        #[cfg(unix)]
        if let Ok(Some(pid)) = self.window_pid.lock().map(|p| *p) {
            // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
}

struct StorePersister(Arc<tauri_plugin_store::Store<tauri::Wry>>);

impl SettingsPersister for StorePersister {
    fn save(&self, settings: &Settings) -> Result<(), String> {
        let value = serde_json::to_value(settings).map_err(|e| e.to_string())?;
        self.0.set(settings::STORE_KEY, value);
        self.0.save().map_err(|e| e.to_string())
    }
}

/// Runs the monitor until Quit. A second monitor asks the first to open its window.
pub fn run(opts: MonitorOptions) -> ExitCode {
    // The monitor draws no GL: without this GTK probes the graphics stack at start and maps
    // Mesa and LLVM for the whole day (measured: 64 → 46 MB PSS, 139 → 86 MB RSS idle).
    // Set before any thread starts; the window process gets the user's setting back
    // (see `process::spawn_child`).
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
        std::env::set_var(super::process::GL_MARKER, "1");
    }
    let lock = match instance::try_lock(&instance::monitor_lock()) {
        Ok(Some(lock)) => lock,
        Ok(None) => return hand_off_to_running_monitor(),
        Err(e) => {
            eprintln!("alarm-tray: cannot take the single-instance lock: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = crate::logging::init(Some(&crate::paths::log_dir()), "monitor");
    tracing::info!(version = crate::VERSION, data_dir = %crate::paths::data_dir().display(), "monitor starting");
    if opts.demo.is_some() {
        // The demo must never touch the user's keyring.
        crate::secrets::init_mock();
    } else if let Err(e) = crate::secrets::init() {
        tracing::warn!(error = %e, "keyring unavailable; accounts needing a password cannot connect");
    }
    let loaded = settings::load(&crate::paths::settings_file());

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::new().build())
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec![AUTOSTART_ARGS]),
        ))
        .setup(move |app| {
            let handle = app.handle().clone();
            let tray = tray::build(&handle, &crate::text::t("tray-tooltip-starting", &[]))?;
            #[cfg(target_os = "linux")]
            super::wayland::no_status_icon_fallback();
            // The demo's throwaway profile is written as a plain file: the store plugin
            // would save it again on exit, after the profile was removed.
            let persister: Box<dyn SettingsPersister> = if opts.demo.is_some() {
                Box::new(crate::monitor::FilePersister(crate::paths::settings_file()))
            } else {
                Box::new(StorePersister(handle.store(crate::paths::settings_file())?))
            };
            let (pushes, _) = broadcast::channel(256);
            let shell = Arc::new(GuiShell {
                app: handle.clone(),
                tray,
                window_pid: Arc::new(Mutex::new(None)),
                pushes: pushes.clone(),
                tooltip_prefix: if opts.demo.is_some() {
                    "Alarm Tray (Demo): ".into()
                } else {
                    "Alarm Tray: ".into()
                },
                quitting: AtomicBool::new(false),
            });
            app.manage(shell.clone());
            quit_on_signal(shell.clone());
            let settings = loaded.settings.clone();
            let notice = loaded.notice.clone();
            let hidden = opts.hidden;
            let demo_seed = opts.demo;
            tauri::async_runtime::spawn(async move {
                let (settings, demo) = match demo_seed {
                    Some(seed) => match crate::simulate::demo::Demo::start(seed, 0).await {
                        Ok(d) => {
                            let s = d.settings();
                            for (k, v) in d.secrets() {
                                let _ = crate::secrets::SecretStore.set(&k, &v);
                            }
                            if let Err(e) = persister.save(&s) {
                                tracing::warn!(error = %e, "demo settings not saved");
                            }
                            (s, Some(d))
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "demo servers could not start");
                            (settings, None)
                        }
                    },
                    None => (settings, None),
                };
                let is_demo = demo.is_some();
                if let Some(d) = demo {
                    handle.manage(d);
                }
                let monitor =
                    start_core(settings, notice, persister, shell.clone(), pushes, is_demo).await;
                if let Some(m) = monitor {
                    handle.manage(m);
                    crate::memory::trim_after(crate::memory::AFTER_START, "start-up");
                    if is_demo {
                        // A newcomer sees the readings move first.
                        shell.open_window(Page::Dashboard, None);
                    } else if !hidden {
                        shell.open_window(Page::Settings, None);
                    }
                }
            });
            Ok(())
        })
        .build(super::context());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "the tray could not start");
            eprintln!("alarm-tray: the tray could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demo = opts.demo.is_some();
    app.run(move |handle, event| match event {
        RunEvent::MenuEvent(e) => on_menu(handle, e.id().as_ref()),
        // Last chance before the process ends (tauri exits without running destructors).
        RunEvent::Exit if demo => {
            let _ = std::fs::remove_dir_all(crate::paths::data_dir());
        }
        // No windows is the normal state of the monitor: only Quit ends it.
        RunEvent::ExitRequested {
            api, code: None, ..
        } => api.prevent_exit(),
        _ => {}
    });
    drop(lock);
    ExitCode::SUCCESS
}

async fn start_core(
    settings: Settings,
    notice: Option<String>,
    persister: Box<dyn SettingsPersister>,
    shell: Arc<GuiShell>,
    pushes: broadcast::Sender<Push>,
    demo: bool,
) -> Option<Arc<Monitor>> {
    let (history, history_notice) = match History::open(&crate::paths::history_db()) {
        Ok(h) => {
            let n = h.notice().map(str::to_string);
            (h, n)
        }
        Err(e) => {
            tracing::error!(error = %e, "history unavailable; keeping it in memory");
            let n = Some(format!("The history database could not be opened ({e}); alarms are kept in memory until restart."));
            (History::open_in_memory().ok()?, n)
        }
    };
    let (actions_tx, actions_rx) = tokio::sync::mpsc::unbounded_channel();
    let notifier = Arc::new(DesktopNotifier::new(actions_tx));
    // Popups the desktop cannot show now are kept and shown when it can (issue 24).
    let kept = Arc::new(crate::notify::KeptNotifier::new(notifier.clone()));
    let runtime = Runtime::start(&settings, history, kept).await;
    let info = Info {
        version: crate::VERSION.into(),
        data_dir: crate::paths::data_dir().display().to_string(),
        log_dir: crate::paths::log_dir().display().to_string(),
        demo,
        notice: [notice, history_notice]
            .into_iter()
            .flatten()
            .reduce(|a, b| format!("{a} {b}")),
        language: crate::text::Lang::from_env().code().into(),
    };
    let monitor = Monitor::new(
        settings,
        persister,
        runtime,
        notifier,
        shell,
        pushes.clone(),
        info,
    );
    monitor.spawn_bridges(actions_rx);
    match crate::ipc::server::bind(&crate::paths::socket_path()) {
        Ok(listener) => {
            tokio::spawn(crate::ipc::server::serve(listener, monitor.clone(), pushes));
        }
        Err(e) => {
            tracing::error!(error = %e, "the window socket could not be opened; windows cannot connect")
        }
    }
    tracing::info!("monitor ready");
    Some(monitor)
}

fn on_menu(handle: &AppHandle, id: &str) {
    let shell = handle.state::<Arc<GuiShell>>().inner().clone();
    match id {
        tray::ID_OPEN => shell.open_window(Page::Settings, None),
        tray::ID_HISTORY => shell.open_window(Page::History, None),
        tray::ID_PAUSE => {
            if let Some(m) = handle.try_state::<Arc<Monitor>>() {
                let m = m.inner().clone();
                tauri::async_runtime::spawn(async move { m.toggle_pause().await });
            }
        }
        tray::ID_QUIT => {
            tracing::info!("quit from the tray menu");
            shell.quit()
        }
        _ => {}
    }
}

fn hand_off_to_running_monitor() -> ExitCode {
    let client = crate::ipc::client::Client::new(&crate::paths::socket_path());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alarm-tray: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(client.request(Request::OpenWindow {
        page: Page::Settings,
        alarm_id: None,
    })) {
        Ok(_) => {
            eprintln!("alarm-tray: already running; asked it to open its window");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("alarm-tray: another Alarm Tray holds the lock but does not answer ({e})");
            ExitCode::FAILURE
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::with_try_exec;

    #[test]
    fn autostart_entry_gets_try_exec_once() {
        let entry = "[Desktop Entry]\nType=Application\nName=Alarm Tray\n\
                     Exec=/opt/Alarm Tray/alarm-tray --hidden\nTerminal=false";
        let updated = with_try_exec(entry).unwrap();
        assert!(
            updated.contains(
                "Exec=/opt/Alarm Tray/alarm-tray --hidden\nTryExec=/opt/Alarm Tray/alarm-tray\n"
            ),
            "{updated}"
        );
        assert!(updated.ends_with("Terminal=false\n"));
        assert_eq!(with_try_exec(&updated), None, "added once");
        assert_eq!(with_try_exec("[Desktop Entry]\nName=x"), None);
    }
}
