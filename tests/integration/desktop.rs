//! Harness for end-to-end tests of the real app: the built binary in a private profile,
//! the tray menu on D-Bus, popups seen by `dbus-monitor`, and the real WebKit window
//! through tauri-driver (W3C WebDriver over plain HTTP).
//!
//! These run inside `scripts/desktop-session.sh` (private bus, Xvfb, keyring, dunst).
//! Every process started here is stopped by PID when its guard drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The app binary under test (`ALARM_TRAY_BIN`, else target/debug/alarm-tray).
pub fn app_bin() -> PathBuf {
    std::env::var_os("ALARM_TRAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/alarm-tray"))
}

/// Fails loudly when the desktop session is missing: these tests are never skipped.
pub fn require_desktop() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() && std::env::var_os("DISPLAY").is_some(),
        "end-to-end tests need the desktop session: run them through `make test` (scripts/desktop-session.sh)"
    );
    assert!(
        app_bin().exists(),
        "build the app first: {} is missing",
        app_bin().display()
    );
}

/// End-to-end tests share the session's keyring, display and notification daemon: one at a
/// time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills the child by PID on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.alive() {
            unsafe_kill(self.pid(), 15);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

pub fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Sets `env` on `cmd`; when any is given, the language variables not given are removed.
pub fn with_lang_env(cmd: &mut Command, env: &[(&str, &str)]) {
    if env.is_empty() {
        return;
    }
    for k in ["LANGUAGE", "LC_ALL", "LC_MESSAGES", "LC_NUMERIC", "LANG"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// A private profile: data dir (settings, history, logs, socket tag) of its own.
pub struct Profile {
    pub dir: tempfile::TempDir,
}

impl Profile {
    pub fn new() -> Profile {
        Profile {
            dir: tempfile::Builder::new()
                .prefix("at-e2e-")
                .tempdir()
                .unwrap(),
        }
    }
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn settings_file(&self) -> PathBuf {
        self.dir.path().join("settings.json")
    }
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(app_bin());
        c.args(args)
            .env("ALARM_TRAY_DATA_DIR", self.data_dir())
            .env("ALARM_TRAY_LOG", "info");
        c
    }
    /// Starts the monitor (`--hidden`) and waits until its socket answers.
    pub fn start_monitor(&self) -> Proc {
        self.start_monitor_env(&[])
    }
    /// [`Profile::start_monitor`] with environment variables set (`LANG`, issue 25); each
    /// language variable not given is removed, so the test's own locale does not leak in.
    pub fn start_monitor_env(&self, env: &[(&str, &str)]) -> Proc {
        let log = std::fs::File::create(self.dir.path().join("monitor.out")).unwrap();
        let mut cmd = self.command(&["--hidden"]);
        with_lang_env(&mut cmd, env);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start monitor");
        let p = Proc { child };
        let sock = self.socket();
        wait_for(Duration::from_secs(20), "the monitor's socket", || {
            sock.exists()
        });
        // The tray menu is exported on D-Bus once the event loop runs.
        wait_for(Duration::from_secs(20), "the tray menu on D-Bus", || {
            tray_bus_name(p.pid()).is_some()
        });
        p
    }
    pub fn socket(&self) -> PathBuf {
        alarm_tray::paths::socket_path_for(Some(self.data_dir()))
    }
}

/// Stores `secret` under the app's keyring entry `entry` with `secret-tool`, as a user
/// would: the value on stdin, never in the arguments. `cmd` is `secret-tool` with the
/// environment it needs (a private session bus, for instance).
pub fn secret_tool_store(mut cmd: Command, entry: &str, secret: &str) {
    use std::io::Write;
    let mut c = cmd
        .args([
            "store",
            "--label",
            entry,
            "service",
            alarm_tray::secrets::SERVICE,
        ])
        .args(["username", entry])
        .stdin(Stdio::piped())
        .spawn()
        .expect("secret-tool");
    c.stdin
        .take()
        .unwrap()
        .write_all(secret.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "secret-tool store {entry}");
}

pub fn wait_for(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn dbus_send(args: &[&str]) -> Option<String> {
    let out = Command::new("dbus-send")
        .args(["--session", "--print-reply", "--reply-timeout=800"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The unique bus name of the process `pid` that exports the tray menu.
pub fn tray_bus_name(pid: u32) -> Option<String> {
    let names = dbus_send(&[
        "--dest=org.freedesktop.DBus",
        "/",
        "org.freedesktop.DBus.ListNames",
    ])?;
    for name in names.split('"').filter(|s| s.starts_with(':')) {
        let owner = dbus_send(&[
            "--dest=org.freedesktop.DBus",
            "/",
            "org.freedesktop.DBus.GetConnectionUnixProcessID",
            &format!("string:{name}"),
        ]);
        let Some(owner) = owner else { continue };
        if owner.split_whitespace().last() != Some(&pid.to_string()) {
            continue;
        }
        if let Some(intro) = dbus_send(&[
            &format!("--dest={name}"),
            TRAY_PATH,
            "org.freedesktop.DBus.Introspectable.Introspect",
        ]) {
            if intro.contains("com.canonical.dbusmenu") {
                return Some(name.to_string());
            }
        }
    }
    None
}

const TRAY_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_alarm_tray/Menu";

/// The tray menu's layout as `dbus-send` prints it (GetLayout of the whole menu).
pub fn tray_menu_layout(pid: u32) -> String {
    let Some(name) = tray_bus_name(pid) else {
        return String::new();
    };
    dbus_send(&[
        &format!("--dest={name}"),
        TRAY_PATH,
        "com.canonical.dbusmenu.GetLayout",
        "int32:0",
        "int32:-1",
        "array:string:",
    ])
    .unwrap_or_default()
}

/// The tray menu's items: (dbusmenu id, label).
pub fn tray_menu(pid: u32) -> Vec<(i32, String)> {
    let layout = tray_menu_layout(pid);
    // The layout prints each item as `int32 <id>` followed by its properties; pick the
    // label following each id.
    let mut items = Vec::new();
    let mut current: Option<i32> = None;
    let mut lines = layout.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(id) = t.strip_prefix("int32 ") {
            current = id.trim().parse().ok();
        }
        if t.contains("string \"label\"") {
            if let (Some(id), Some(next)) = (current, lines.next()) {
                if let Some(label) = next.split('"').nth(1) {
                    items.push((id, label.to_string()));
                }
            }
        }
    }
    items
}

/// Clicks the tray menu item whose label starts with `label`, as a desktop would.
pub fn click_tray(pid: u32, label: &str) {
    let items = tray_menu(pid);
    let (id, _) = items
        .iter()
        .find(|(_, l)| l.starts_with(label))
        .unwrap_or_else(|| panic!("no tray item {label:?} in {items:?}"));
    let name = tray_bus_name(pid).expect("tray on the bus");
    let r = dbus_send(&[
        &format!("--dest={name}"),
        TRAY_PATH,
        "com.canonical.dbusmenu.Event",
        &format!("int32:{id}"),
        "string:clicked",
        "variant:int32:0",
        "uint32:0",
    ]);
    // No assertion on the reply: a busy or quitting monitor may answer after dbus-send's
    // timeout (or not at all, for Quit). Callers check the click's effect instead.
    if r.is_none() {
        eprintln!("no reply to the tray click on {label:?} (checked by its effect)");
    }
}

/// Records `Notify` calls on the session bus while alive.
pub struct NotifyWatch {
    proc: Proc,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl NotifyWatch {
    pub fn start() -> NotifyWatch {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("notify.txt");
        // Line-buffered: a popup's call and the daemon's answer reach the file at once.
        let child = Command::new("stdbuf")
            .args([
                "-oL",
                "dbus-monitor",
                "--session",
                "interface='org.freedesktop.Notifications',member='Notify'",
                // The daemon's answers: they carry the popups' ids.
                "type='method_return'",
            ])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor");
        // dbus-monitor prints its own NameAcquired signal once it listens.
        let w = NotifyWatch {
            proc: Proc { child },
            out,
            _dir: dir,
        };
        std::thread::sleep(Duration::from_millis(500));
        w
    }
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
    /// Waits until a Notify call containing `needle` was seen; returns the whole capture.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        wait_for(within, &format!("a Notify call with {needle:?}"), || {
            self.text().contains(needle)
        });
        self.text()
    }
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The id the daemon gave the popup whose Notify call contains `needle`.
    pub fn id_of(&self, needle: &str) -> Option<u32> {
        let text = self.text();
        let messages: Vec<&str> = text.split("\nmethod ").collect();
        let call = messages
            .iter()
            .find(|m| m.starts_with("call") && m.contains("member=Notify") && m.contains(needle))?;
        let serial = call
            .split_whitespace()
            .find_map(|w| w.strip_prefix("serial="))?;
        // Serials are per connection: the answer goes back to the caller.
        let sender = call
            .split_whitespace()
            .find_map(|w| w.strip_prefix("sender="))?;
        let ret = messages.iter().find(|m| {
            m.starts_with("return")
                && m.split_whitespace()
                    .any(|w| w == format!("reply_serial={serial}"))
                && m.split_whitespace()
                    .any(|w| w == format!("destination={sender}"))
        })?;
        ret.split("uint32 ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// Clicks an action of popup `id` the way the notification daemon reports a click: the
/// `ActionInvoked` signal.
pub fn invoke_popup_action(id: u32, action: &str) {
    let ok = Command::new("dbus-send")
        .args([
            "--session",
            "--type=signal",
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications.ActionInvoked",
            &format!("uint32:{id}"),
            &format!("string:{action}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "dbus-send ActionInvoked");
}

/// A W3C WebDriver session on the real window through tauri-driver.
pub struct Driver {
    _driver: Proc,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn tauri_driver_bin() -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tauri-driver");
    if local.exists() {
        local
    } else {
        PathBuf::from("tauri-driver")
    }
}

impl Driver {
    /// Launches `alarm-tray window <args>` in `profile` under tauri-driver.
    pub fn launch(profile: &Profile, args: &[&str]) -> Driver {
        Driver::launch_env(profile, args, &[])
    }
    /// [`Driver::launch`] with environment variables for the window (`LANG`, issue 25).
    pub fn launch_env(profile: &Profile, args: &[&str], env: &[(&str, &str)]) -> Driver {
        let port = free_port();
        let native = free_port();
        let mut cmd = Command::new(tauri_driver_bin());
        with_lang_env(&mut cmd, env);
        let child = cmd
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("ALARM_TRAY_DATA_DIR", profile.data_dir())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(
                    std::env::temp_dir().join(format!("alarm-tray-driver-{port}.err")),
                )
                .unwrap(),
            )
            .spawn()
            .expect("tauri-driver (make deps-tools installs it)");
        let driver = Proc { child };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        wait_for(Duration::from_secs(15), "tauri-driver", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let mut all_args = vec!["window"];
        all_args.extend_from_slice(args);
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "wry",
            "tauri:options": {"application": app_bin(), "args": all_args}}}});
        // Under load tauri-driver has dropped a first session request now and then: one retry.
        let mut attempt = 0;
        let r: Value = loop {
            attempt += 1;
            match http.post(format!("{base}/session")).json(&caps).send() {
                Ok(resp) => break resp.json().unwrap(),
                Err(e) if attempt < 2 => {
                    eprintln!("new session failed ({e}); retrying once");
                    std::thread::sleep(Duration::from_secs(3));
                }
                Err(e) => panic!("new session: {e}"),
            }
        };
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Driver {
            _driver: driver,
            base,
            session,
            http,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .expect("webdriver call")
            .json()
            .expect("webdriver json");
        v["value"].clone()
    }

    /// Finds an element by `data-testid`, waiting for it to appear.
    pub fn find(&self, testid: &str) -> String {
        self.find_css(&format!("[data-testid=\"{testid}\"]"))
    }

    pub fn find_css(&self, css: &str) -> String {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(obj) = v.as_object() {
                if let Some(id) = obj.values().next().and_then(|x| x.as_str()) {
                    if !obj.contains_key("error") {
                        return id.to_string();
                    }
                }
            }
            assert!(Instant::now() < end, "no element {css} in the window: {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether an element matching `css` exists right now (no waiting).
    pub fn exists_css(&self, css: &str) -> bool {
        let v = self.call(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    pub fn click(&self, testid: &str) {
        let el = self.find(testid);
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        );
    }

    pub fn text(&self, testid: &str) -> String {
        let el = self.find(testid);
        self.call(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the element's text contains `needle`; returns the text.
    pub fn wait_text(&self, testid: &str, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let t = self.text(testid);
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < end,
                "{testid} says {t:?}, expected {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn value(&self, testid: &str) -> String {
        let el = self.find(testid);
        self.call(
            reqwest::Method::GET,
            &format!("/element/{el}/property/value"),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Replaces the field's text by typing, and checks the field holds exactly `text`
    /// afterwards: on a loaded machine a controlled input can re-render its old value
    /// between WebDriver's clear and the keystrokes (seen: "90" + "45" → "9045").
    pub fn type_into(&self, testid: &str, text: &str) {
        for _ in 0..5 {
            let el = self.find(testid);
            self.call(
                reqwest::Method::POST,
                &format!("/element/{el}/clear"),
                Some(json!({})),
            );
            std::thread::sleep(Duration::from_millis(100));
            self.call(
                reqwest::Method::POST,
                &format!("/element/{el}/value"),
                Some(json!({"text": text})),
            );
            std::thread::sleep(Duration::from_millis(100));
            if self.value(testid) == text {
                return;
            }
        }
        panic!(
            "{testid} does not hold {text:?} after typing (it holds {:?})",
            self.value(testid)
        );
    }

    /// Chooses an option of a `<select>` by clicking it, as a user does.
    pub fn select(&self, testid: &str, value: &str) {
        let el = self.find_css(&format!(
            "[data-testid=\"{testid}\"] option[value=\"{value}\"]"
        ));
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        );
    }

    /// The `data-testid` of the first element matching `css`.
    pub fn testid_of(&self, css: &str) -> String {
        let el = self.find_css(css);
        self.call(
            reqwest::Method::GET,
            &format!("/element/{el}/attribute/data-testid"),
            None,
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn page_source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` in the page ("Execute Async Script"): the script's last argument is
    /// the callback that returns its result.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Saves a PNG of the window under target/screenshots/.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("png");
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Ends the WebDriver session and the window (see `Drop`).
    pub fn quit(self) {}
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Also on a failed assertion: the window must not outlive its test. Ending the
        // session may leave the app running, so every process under the driver is stopped
        // by PID afterwards.
        let mut under = Vec::new();
        let mut stack = vec![self._driver.pid()];
        while let Some(p) = stack.pop() {
            let kids = children_of(p);
            stack.extend(&kids);
            under.extend(kids);
        }
        // A monitor the window started on purpose (`--hidden`) outlives it; its test stops it.
        under.retain(|p| {
            !std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--hidden"))
        });
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        for p in under.iter().rev() {
            unsafe_kill(*p, 15);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end
            && under
                .iter()
                .any(|p| Path::new(&format!("/proc/{p}")).exists() && !is_zombie(*p))
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in &under {
            if Path::new(&format!("/proc/{p}")).exists() && !is_zombie(*p) {
                unsafe_kill(*p, 9);
            }
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|x| x.1.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// PIDs of processes whose command line contains `needle` (e.g. WebKit helpers).
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&cmd).contains(needle) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Children of `pid` (direct).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                // Field 4 after the ")" that closes the command name is the parent PID.
                if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                    if rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|x| x.parse::<u32>().ok())
                        == Some(pid)
                    {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// X11 helpers: find the app's top-level window and close it the way a close button does
/// (a `WM_DELETE_WINDOW` client message), not by destroying it.
pub mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{
        AtomEnum, ClientMessageEvent, ConnectionExt, EventMask, MapState, Window,
    };

    fn title_of(conn: &impl Connection, w: Window) -> Option<String> {
        let utf8 = conn
            .intern_atom(false, b"UTF8_STRING")
            .ok()?
            .reply()
            .ok()?
            .atom;
        let net_name = conn
            .intern_atom(false, b"_NET_WM_NAME")
            .ok()?
            .reply()
            .ok()?
            .atom;
        for (prop, ty) in [
            (net_name, utf8),
            (AtomEnum::WM_NAME.into(), AtomEnum::STRING.into()),
        ] {
            if let Ok(r) = conn.get_property(false, w, prop, ty, 0, 256).ok()?.reply() {
                if !r.value.is_empty() {
                    return Some(String::from_utf8_lossy(&r.value).into_owned());
                }
            }
        }
        None
    }

    /// Viewable windows titled exactly `title`.
    pub fn windows_titled(title: &str) -> Vec<Window> {
        let Ok((conn, screen)) = x11rb::connect(None) else {
            return vec![];
        };
        let root = conn.setup().roots[screen].root;
        let mut found = Vec::new();
        let mut stack = vec![root];
        while let Some(w) = stack.pop() {
            if let Ok(Ok(tree)) = conn.query_tree(w).map(|c| c.reply()) {
                stack.extend(tree.children);
            }
            if title_of(&conn, w).as_deref() == Some(title) {
                let viewable = conn
                    .get_window_attributes(w)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .is_some_and(|a| a.map_state == MapState::VIEWABLE);
                if viewable {
                    found.push(w);
                }
            }
        }
        found
    }

    /// Sends `WM_DELETE_WINDOW` to every viewable window titled `title`; returns how many.
    pub fn close_titled(title: &str) -> usize {
        let wins = windows_titled(title);
        let Ok((conn, _)) = x11rb::connect(None) else {
            return 0;
        };
        let (Ok(Ok(protocols)), Ok(Ok(delete))) = (
            conn.intern_atom(false, b"WM_PROTOCOLS").map(|c| c.reply()),
            conn.intern_atom(false, b"WM_DELETE_WINDOW")
                .map(|c| c.reply()),
        ) else {
            return 0;
        };
        for &w in &wins {
            let ev = ClientMessageEvent::new(32, w, protocols.atom, [delete.atom, 0, 0, 0, 0]);
            let _ = conn.send_event(false, w, EventMask::NO_EVENT, ev);
        }
        let _ = conn.flush();
        wins.len()
    }
}
