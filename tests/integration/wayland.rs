//! The tray app on both GDK backends (issue 24): the demo under X11 (Xvfb) and under a
//! headless Wayland compositor (weston), its tray item's icon read from D-Bus before and
//! after an alarm (StatusNotifierItem `IconName` and the `NewIcon` signal), no GTK critical
//! or warning in either process's log, and a StatusNotifierWatcher that appears 10 s
//! after the app (a panel started late) receives the item's registration.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::desktop::{self, Proc};

const ITEM_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_alarm_tray";

/// A headless weston on a socket of its own; stopped by PID.
struct Weston {
    _proc: Proc,
    socket: String,
    runtime_dir: std::path::PathBuf,
}

impl Weston {
    fn start(dir: &Path) -> Weston {
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| dir.to_path_buf());
        let socket = format!("wl-at-{}", std::process::id());
        let child = Command::new("weston")
            .args(["--backend=headless-backend.so", "--idle-time=0"])
            .arg(format!("--socket={socket}"))
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("weston.log")).unwrap())
            .spawn()
            .expect("weston (Debian package weston)");
        let w = Weston {
            _proc: Proc { child },
            socket,
            runtime_dir,
        };
        let path = w.runtime_dir.join(&w.socket);
        desktop::wait_for(Duration::from_secs(15), "weston's socket", || path.exists());
        w
    }
}

fn icon_name(bus_name: &str) -> Option<String> {
    let out = Command::new("dbus-send")
        .args(["--session", "--print-reply", "--reply-timeout=800"])
        .arg(format!("--dest={bus_name}"))
        .args([
            ITEM_PATH,
            "org.freedesktop.DBus.Properties.Get",
            "string:org.kde.StatusNotifierItem",
            "string:IconName",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split('"').nth(1).map(str::to_string)
}

/// Runs the demo (monitor and its window) on `wayland` or X11, reads the tray icon before
/// and after the first alarm, and returns the processes' stderr.
fn demo_icon_and_log(wayland: bool) -> String {
    desktop::require_desktop();
    let tmp = tempfile::tempdir().unwrap();
    let weston = wayland.then(|| Weston::start(tmp.path()));
    let signals = tmp.path().join("signals.txt");
    let monitor = Command::new("stdbuf")
        .args([
            "-oL",
            "dbus-monitor",
            "--session",
            "interface='org.kde.StatusNotifierItem',member='NewIcon'",
        ])
        .stdout(std::fs::File::create(&signals).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor");
    let _monitor = Proc { child: monitor };
    std::thread::sleep(Duration::from_millis(500));
    let err_path = tmp.path().join("app.err");
    let mut cmd = Command::new(desktop::app_bin());
    cmd.args(["--demo", "--seed", "1"])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    if let Some(w) = &weston {
        cmd.env_remove("DISPLAY")
            .env("GDK_BACKEND", "wayland")
            .env("WAYLAND_DISPLAY", &w.socket)
            .env("XDG_RUNTIME_DIR", &w.runtime_dir);
    }
    let mut app = Proc {
        child: cmd.spawn().expect("alarm-tray --demo"),
    };
    let mut name = None;
    desktop::wait_for(Duration::from_secs(30), "the tray item on D-Bus", || {
        name = desktop::tray_bus_name(app.pid());
        name.is_some()
    });
    let name = name.unwrap();
    let before = icon_name(&name).expect("IconName of the tray item");
    // The demo's freezer alarm comes within a minute: the icon changes with it.
    let mut after = None;
    desktop::wait_for(
        Duration::from_secs(75),
        "another tray icon after an alarm",
        || {
            after = icon_name(&name).filter(|n| *n != before);
            after.is_some()
        },
    );
    let seen = std::fs::read_to_string(&signals).unwrap_or_default();
    assert!(
        seen.contains("member=NewIcon"),
        "no NewIcon signal for {before:?} -> {after:?}:\n{seen}"
    );
    // Icon updates go on for a while (count badge): let the log collect them.
    std::thread::sleep(Duration::from_secs(10));
    desktop::unsafe_kill(app.pid(), 15);
    assert!(
        app.wait_exit(Duration::from_secs(15)).is_some(),
        "the demo did not quit on SIGTERM"
    );
    std::fs::read_to_string(&err_path).unwrap_or_default()
}

/// GTK's own complaints; on headless weston (a compositor without any input device, so
/// without a wl_seat) GDK also says `gdk_seat_get_keyboard: assertion 'GDK_IS_SEAT
/// (seat)'` when a window takes focus: that is the seatless test compositor, not the app.
fn gtk_complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            (l.contains("Gtk-CRITICAL")
                || l.contains("Gtk-WARNING")
                || l.contains("Gdk-CRITICAL")
                || l.contains("Gdk-WARNING"))
                && !l.contains("gdk_seat_get_keyboard")
        })
        .collect()
}

#[test]
fn demo_under_x11_tray_icon_on_dbus_and_no_gtk_criticals() {
    let _serial = desktop::serial();
    let log = demo_icon_and_log(false);
    assert_eq!(gtk_complaints(&log), Vec::<&str>::new());
}

#[test]
fn demo_under_wayland_tray_icon_on_dbus_and_no_gtk_criticals() {
    let _serial = desktop::serial();
    let log = demo_icon_and_log(true);
    assert!(
        !log.contains("gtk_widget_get_scale_factor"),
        "the GtkStatusIcon fallback is back:\n{log}"
    );
    assert_eq!(gtk_complaints(&log), Vec::<&str>::new());
}

/// A panel that starts after the autostart entries: its StatusNotifierWatcher appears 10 s
/// after the app and still receives the tray item's registration.
#[test]
fn a_late_status_notifier_watcher_receives_the_tray_item() {
    desktop::require_desktop();
    let _serial = desktop::serial();
    // The session has no watcher of its own (Xvfb, no panel); this test owns the name.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("watcher.out");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/fixtures/late_sni_watcher.py");
    let watcher = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg("10")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("watcher.err")).unwrap())
        .spawn()
        .expect("python3 (python3-gi)");
    let _watcher = Proc { child: watcher };
    let profile = desktop::Profile::new();
    let app = profile.start_monitor();
    let text = || std::fs::read_to_string(&out).unwrap_or_default();
    assert!(!text().contains("WATCHER UP"), "the watcher came too early");
    desktop::wait_for(
        Duration::from_secs(30),
        "the item registered with the late watcher",
        || text().contains("REGISTERED"),
    );
    let line = text();
    let name = desktop::tray_bus_name(app.pid()).expect("the app's bus name");
    assert!(
        line.contains(&name) || line.contains(ITEM_PATH),
        "registered by someone else: {line} (app is {name})"
    );
}
