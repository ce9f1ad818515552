//! The cross-built `alarm-tray.exe` run for real under Wine 8 (issue 22).
//!
//! `make windows` cross-builds it for `x86_64-pc-windows-gnu` with Debian's MinGW; these
//! tests run it with Debian's Wine on the session's Xvfb display, in a `WINEPREFIX` they
//! create in a temp dir of their own. Its Wine server is a child of the test, every Wine
//! process of the prefix is stopped by PID and the prefix is removed at the end. All servers
//! listen on 127.0.0.1 and every wait is bounded.
//!
//! Nothing is skipped silently: without Wine, MinGW or the `.exe` these tests fail and say
//! what is missing. On a machine without Wine, `WINE_TEST=0` (README) turns them off: each
//! test then says so on stderr and passes. `make test` and CI never set it.
//!
//! What Wine 8 lacks and a real Windows 10/11 has:
//! - `ProcessPrng` in `bcryptprimitives.dll`, where Rust's standard library takes its random
//!   numbers: a stub built from `tests/wine/bcryptprimitives.c` goes into the prefix only;
//! - the toast notification service (WinRT answers 0x80040154): the app must say so once
//!   and keep running;
//! - Microsoft's WebView2 runtime: the window cannot open, and must say why.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::desktop::{self, Proc};
use crate::peers;

/// `WINE_TEST=0` turns these tests off on a machine without Wine.
const OFF_SWITCH: &str = "WINE_TEST";
const TARGET: &str = "x86_64-pc-windows-gnu";

/// The `.exe` under test: `ALARM_TRAY_EXE`, else where `make windows` puts it (debug build).
fn exe() -> PathBuf {
    std::env::var_os("ALARM_TRAY_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/windows")
                .join(TARGET)
                .join("debug/alarm-tray.exe")
        })
}

/// The prefix to run in, or `None` (said on stderr) when `WINE_TEST=0`.
fn wine_or_off(test: &str) -> Option<Arc<Prefix>> {
    if std::env::var(OFF_SWITCH).as_deref() == Ok("0") {
        eprintln!("{test}: SKIPPED — {OFF_SWITCH}=0 turns the Windows tests under Wine off");
        return None;
    }
    Some(Prefix::shared())
}

/// A throwaway Wine prefix shared by the tests running at the same time (making one takes
/// 15–40 s and ~700 MB); the last test to drop it stops its processes and removes it.
pub struct Prefix {
    dir: Option<tempfile::TempDir>,
    prefix: PathBuf,
    server: Proc,
}

impl Prefix {
    fn shared() -> Arc<Prefix> {
        static SLOT: Mutex<Weak<Prefix>> = Mutex::new(Weak::new());
        let mut slot = SLOT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.upgrade() {
            return p;
        }
        let p = Arc::new(Prefix::create());
        *slot = Arc::downgrade(&p);
        p
    }

    fn create() -> Prefix {
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "the Windows tests need an X display: run them through `make test` \
             (scripts/desktop-session.sh), or set {OFF_SWITCH}=0 on a machine without Wine"
        );
        for tool in ["wine", "wineserver", "x86_64-w64-mingw32-gcc"] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "`{tool}` is missing: `make deps` installs Debian's wine, wine64 and \
                 gcc-mingw-w64-x86-64 (or set {OFF_SWITCH}=0 on a machine without Wine)"
            );
        }
        assert!(
            exe().exists(),
            "{} is missing: run `make windows` first",
            exe().display()
        );
        let dir = tempfile::Builder::new()
            .prefix("at-wine-")
            .tempdir()
            .unwrap();
        let prefix = dir.path().join("prefix");
        std::fs::create_dir(&prefix).unwrap();
        let started = Instant::now();
        // Our own server for the prefix, so it is stopped by its PID.
        let mut cmd = Command::new("wineserver");
        cmd.args(["--foreground", "--persistent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        set_wine_env(&mut cmd, &prefix);
        let server = Proc {
            child: peers::spawn_child(cmd).expect("wineserver"),
        };
        let p = Prefix {
            dir: Some(dir),
            prefix,
            server,
        };
        let boot = p.run(
            p.wine(&["wineboot", "--init"]),
            None,
            Duration::from_secs(240),
            "wineboot --init",
        );
        assert!(boot.status.success(), "wineboot --init: {}", boot.stderr);
        let dll = p.dir().join("bcryptprimitives.dll");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("wine");
        let gcc = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-s", "-o"])
            .arg(&dll)
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32")
            .output()
            .expect("x86_64-w64-mingw32-gcc");
        assert!(
            gcc.status.success(),
            "the ProcessPrng stub does not build: {}",
            String::from_utf8_lossy(&gcc.stderr)
        );
        std::fs::copy(
            &dll,
            p.prefix
                .join("drive_c/windows/system32/bcryptprimitives.dll"),
        )
        .unwrap();
        eprintln!(
            "WINE-FIGURES prefix made in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        p
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap()
    }

    /// `wine <args>` in this prefix.
    fn wine(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("wine");
        cmd.args(args).current_dir(self.dir());
        set_wine_env(&mut cmd, &self.prefix);
        cmd
    }

    /// `wine alarm-tray.exe <args>` in this prefix, logging at info.
    fn app(&self, args: &[&str]) -> Command {
        let mut cmd = self.wine(&[]);
        cmd.arg(exe())
            .args(args)
            .env("ALARM_TRAY_LOG", "info")
            .env_remove("ALARM_TRAY_DATA_DIR");
        cmd
    }

    /// The Windows user's folder in the prefix (`C:\users\<name>`), as a Linux path.
    fn user_dir(&self) -> (String, PathBuf) {
        let users = self.prefix.join("drive_c/users");
        let names: Vec<String> = std::fs::read_dir(&users)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "Public")
            .collect();
        assert_eq!(names.len(), 1, "one Windows user in the prefix: {names:?}");
        (names[0].clone(), users.join(&names[0]))
    }

    /// Runs `cmd` to its end within `within`; a command still running then is killed by its
    /// PID and the test fails with what it printed so far. Output goes through files: Wine's
    /// service processes inherit the handles and outlive the command, so a pipe would never
    /// reach its end.
    fn run(&self, mut cmd: Command, stdin: Option<&str>, within: Duration, what: &str) -> Ran {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out = self.dir().join(format!("run-{n}.out"));
        let err = self.dir().join(format!("run-{n}.err"));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
        let started = Instant::now();
        let mut child = peers::spawn_child(cmd).unwrap_or_else(|e| panic!("{what}: {e}"));
        if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
            w.write_all(text.as_bytes()).unwrap();
        }
        let mut proc = Proc { child };
        let status = proc.wait_exit(within);
        let (stdout, stderr) = (read_text(&out), read_text(&err));
        match status {
            Some(status) => Ran {
                status,
                stdout,
                stderr,
                took: started.elapsed(),
            },
            None => {
                desktop::unsafe_kill(proc.pid(), 9);
                panic!("{what} did not end within {within:?}\nstdout: {stdout}\nstderr: {stderr}");
            }
        }
    }

    /// Starts `cmd` in the background with stdout and stderr going to files in the prefix's
    /// temp dir; stopped by PID when the returned guard drops.
    fn start(&self, mut cmd: Command, name: &str) -> (Proc, PathBuf, PathBuf) {
        let out = self.dir().join(format!("{name}.out"));
        let err = self.dir().join(format!("{name}.err"));
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let child = peers::spawn_child(cmd).unwrap_or_else(|e| panic!("{name}: {e}"));
        (Proc { child }, out, err)
    }

    /// Sends requests through `alarm-tray.exe ipc` (a Windows client of the named pipe) and
    /// returns one answer per request.
    fn ipc(&self, requests: &[Value]) -> Vec<Value> {
        let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
        let ran = self.run(
            self.app(&["ipc"]),
            Some(&input),
            Duration::from_secs(60),
            "alarm-tray.exe ipc",
        );
        assert!(
            ran.status.success(),
            "alarm-tray.exe ipc failed ({}): {}",
            ran.status,
            ran.stderr
        );
        let answers: Vec<Value> = ran
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert_eq!(answers.len(), requests.len(), "{}", ran.stdout);
        answers
    }

    /// Wine processes of this prefix (found by their environment), other than its server.
    fn processes(&self) -> Vec<u32> {
        let needle = format!("WINEPREFIX={}", self.prefix.display());
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == self.server.child.id() || pid == std::process::id() {
                continue;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                out.push(pid);
            }
        }
        out
    }

    /// Generic credentials in the prefix's Credential Manager (Wine keeps them under
    /// `HKCU\Software\Wine\Credential Manager`), read by Windows' own `reg.exe`.
    fn credentials(&self) -> Vec<String> {
        let ran = self.run(
            self.wine(&["reg", "query", r"HKCU\Software\Wine\Credential Manager"]),
            None,
            Duration::from_secs(60),
            "reg query",
        );
        ran.stdout
            .lines()
            .filter_map(|l| l.trim().split_once(r"\Credential Manager\"))
            .map(|(_, name)| name.to_string())
            .collect()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        for round in 0..2 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            for pid in &pids {
                desktop::unsafe_kill(*pid, if round == 0 { 15 } else { 9 });
            }
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && !self.processes().is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        peers::stop_child(&mut self.server.child, Duration::from_secs(3));
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}

fn set_wine_env(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono/Gecko installer prompts (they would download), no menu entries in $HOME.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d");
}

struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// The `Subsystem` field of a PE image's optional header (2: GUI, 3: console).
fn pe_subsystem(exe: &Path) -> u16 {
    let b = std::fs::read(exe).unwrap();
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let pe = u32_at(0x3c);
    assert_eq!(
        &b[pe..pe + 4],
        b"PE\0\0",
        "not a PE image: {}",
        exe.display()
    );
    // The optional header follows the 4-byte signature and the 20-byte file header; the
    // subsystem sits at offset 68 in both PE32 and PE32+.
    let at = pe + 24 + 68;
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_text(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

fn wait_for_text(file: &Path, needle: &str, within: Duration, proc: &mut Proc) -> String {
    let end = Instant::now() + within;
    loop {
        let text = read_text(file);
        if text.contains(needle) {
            return text;
        }
        assert!(
            proc.alive(),
            "the process ended while waiting for {needle:?}:\n{text}"
        );
        assert!(
            Instant::now() < end,
            "timed out after {within:?} waiting for {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Event kinds (`source:kind`) with the offset of their first arrival from the first event,
/// and decision kinds, of `watch` output.
struct Kinds {
    events: BTreeMap<String, f64>,
    decisions: BTreeSet<String>,
    counts: BTreeMap<String, usize>,
}

fn kinds(stdout: &str) -> Kinds {
    let mut first_at: BTreeMap<String, jiff::Timestamp> = BTreeMap::new();
    let mut decisions = BTreeSet::new();
    let mut counts = BTreeMap::new();
    for line in stdout.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let kind = match v["type"].as_str() {
            Some("event") => {
                let e = &v["event"];
                let k = format!(
                    "{}:{}",
                    e["source"].as_str().unwrap(),
                    e["kind"].as_str().unwrap()
                );
                let at: jiff::Timestamp = e["received_at"].as_str().unwrap().parse().unwrap();
                first_at.entry(k.clone()).or_insert(at);
                k
            }
            Some("decision") => {
                let k = v["decision"]["kind"].as_str().unwrap().to_string();
                decisions.insert(k.clone());
                format!("decision:{k}")
            }
            Some(other) => other.to_string(),
            None => panic!("no type: {line}"),
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    let t0 = first_at.values().min().copied();
    let events = first_at
        .into_iter()
        .map(|(k, at)| {
            let secs = t0
                .map(|t0| (at - t0).total(jiff::Unit::Second).unwrap_or(0.0))
                .unwrap_or(0.0);
            (k, secs)
        })
        .collect();
    Kinds {
        events,
        decisions,
        counts,
    }
}

/// `alarm-tray.exe --version` says what the Linux build says, and `ipc` with no monitor
/// behind the named pipe fails in words, quickly.
#[test]
fn windows_exe_version_and_no_monitor() {
    let Some(wine) = wine_or_off("windows_exe_version_and_no_monitor") else {
        return;
    };
    desktop::require_desktop();
    let linux = Command::new(desktop::app_bin())
        .arg("--version")
        .output()
        .expect("alarm-tray --version");
    let ran = wine.run(
        wine.app(&["--version"]),
        None,
        Duration::from_secs(60),
        "alarm-tray.exe --version",
    );
    assert!(
        ran.status.success(),
        "alarm-tray.exe --version ({}): {}",
        ran.status,
        ran.stderr
    );
    assert_eq!(ran.stdout, String::from_utf8_lossy(&linux.stdout));
    assert_eq!(
        pe_subsystem(&exe()),
        2,
        "a GUI program (2), not a console one (3): the tray app must not open a console window"
    );
    eprintln!("WINE-FIGURES --version in {:.1} s", ran.took.as_secs_f64());

    // A profile of its own: no monitor runs for it.
    let profile = wine.dir().join("no-monitor-profile");
    let mut cmd = wine.app(&["ipc"]);
    cmd.env("ALARM_TRAY_DATA_DIR", &profile);
    let ran = wine.run(
        cmd,
        Some("{\"type\":\"status\"}\n"),
        Duration::from_secs(60),
        "alarm-tray.exe ipc without a monitor",
    );
    assert!(!ran.status.success(), "no monitor, yet: {}", ran.stdout);
    assert!(
        ran.stderr.contains("Alarm Tray is not running"),
        "{}",
        ran.stderr
    );
}

/// `watch --demo --for 40 --seed 1 --no-notify` under Wine and on Linux, at the same time:
/// the same event kinds (per source) and decision kinds. Timing may differ: a kind seen only
/// in the last 4 s of one run (the Saveris alarm clears about 38 s in) may miss the other.
#[test]
fn windows_watch_demo_same_kinds_as_linux() {
    let Some(wine) = wine_or_off("windows_watch_demo_same_kinds_as_linux") else {
        return;
    };
    desktop::require_desktop();
    let args = [
        "watch",
        "--demo",
        "--for",
        "40",
        "--seed",
        "1",
        "--no-notify",
    ];
    let linux = {
        let mut cmd = Command::new(desktop::app_bin());
        cmd.args(args).env_remove("ALARM_TRAY_DATA_DIR");
        std::thread::spawn(move || {
            let out = cmd.stdin(Stdio::null()).output().expect("alarm-tray watch");
            (
                out.status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let win = wine.run(
        wine.app(&args),
        None,
        Duration::from_secs(120),
        "alarm-tray.exe watch --demo",
    );
    let (status, linux_out, linux_err) = linux.join().unwrap();
    assert!(status.success(), "Linux watch: {linux_err}");
    assert!(
        win.status.success(),
        "alarm-tray.exe watch ({}): {}",
        win.status,
        win.stderr
    );
    let (l, w) = (kinds(&linux_out), kinds(&win.stdout));
    eprintln!("watch --demo on Linux: {:?}", l.counts);
    eprintln!("watch --demo under Wine: {:?}", w.counts);
    eprintln!(
        "WINE-FIGURES watch --demo --for 40 took {:.1} s under Wine",
        win.took.as_secs_f64()
    );
    assert!(
        w.events.len() >= 5 && w.decisions.contains("popup"),
        "the Wine run saw too little: {:?}",
        w.counts
    );
    assert_eq!(l.decisions, w.decisions, "decision kinds");
    const EDGE: f64 = 36.0;
    for (name, one, other) in [("Linux", &l, &w), ("Wine", &w, &l)] {
        for (kind, at) in &one.events {
            if !other.events.contains_key(kind) {
                assert!(
                    *at >= EDGE,
                    "event kind {kind} came {at:.1} s into the {name} run and never in the \
                     other: Linux {:?}, Wine {:?}",
                    l.events,
                    w.events
                );
                eprintln!("{kind}: only in the {name} run, {at:.1} s in (the edge of 40 s)");
            }
        }
    }
}

/// `alarm-tray.exe simulate` under Wine serves a Linux `alarm-tray watch`: both feeds go
/// live across the platforms and the scenario's alarm and readings arrive.
#[test]
fn windows_simulate_serves_a_linux_watch() {
    let Some(wine) = wine_or_off("windows_simulate_serves_a_linux_watch") else {
        return;
    };
    desktop::require_desktop();
    let (mut sim, out, err) = wine.start(
        wine.app(&["simulate", "--seed", "1", "--for", "120"]),
        "simulate",
    );
    let text = wait_for_text(&out, "readings socket:", Duration::from_secs(60), &mut sim);
    let url_after = |label: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?} in: {text}"));
        let at = line
            .find("http")
            .unwrap_or_else(|| line.find("ws").unwrap());
        line[at..].split_whitespace().next().unwrap().to_string()
    };
    let token_url = url_after("token endpoint");
    let ws_url = url_after("STOMP over WebSocket");
    let element_url = url_after("ELEMENT-compatible server");
    for u in [&token_url, &ws_url, &element_url] {
        assert!(u.contains("://127.0.0.1:"), "loopback only: {u}");
    }

    use alarm_tray::settings::{
        Channels, CustomEndpoint, ElementAccount, ElementKind, ElementScope, ElementSubscription,
        SaverisAccount, Settings,
    };
    let tag = format!("wine-sim-{}", std::process::id());
    let mut settings = Settings::default();
    settings.saveris.push(SaverisAccount {
        id: tag.clone(),
        username: alarm_tray::simulate::demo::SAVERIS_USER.into(),
        channels: Channels {
            alarms: true,
            measurements: false,
            measurements_v2: true,
        },
        custom: Some(CustomEndpoint {
            ws_url,
            destination_pattern: String::new(),
            token_url,
            stomp_login: String::new(),
            data_api_url: String::new(),
        }),
        ..Default::default()
    });
    settings.element.push(ElementAccount {
        id: tag.clone(),
        enabled: true,
        base_url: element_url,
        subscriptions: vec![ElementSubscription {
            id: "readings".into(),
            enabled: true,
            scope: ElementScope::Mandate,
            kind: ElementKind::Readings,
            preload: vec![],
            catch_up_hours: 0,
        }],
        text_ping: false,
    });
    let profile = tempfile::Builder::new()
        .prefix("at-wine-watch-")
        .tempdir()
        .unwrap();
    let file = profile.path().join("settings.json");
    alarm_tray::settings::save(&file, &settings).unwrap();
    // The Linux watch reads its secrets from the session's keyring.
    let entries = [
        (
            format!("saveris:{tag}:password"),
            alarm_tray::simulate::demo::SAVERIS_PASSWORD,
        ),
        (
            format!("element:{tag}:api-key"),
            alarm_tray::simulate::demo::ELEMENT_KEY,
        ),
    ];
    for (entry, secret) in &entries {
        desktop::secret_tool_store(Command::new("secret-tool"), entry, secret);
    }
    let watch = Command::new(desktop::app_bin())
        .args(["watch", "--settings"])
        .arg(&file)
        .args(["--for", "25", "--no-notify"])
        .env("ALARM_TRAY_DATA_DIR", profile.path())
        .stdin(Stdio::null())
        .output()
        .expect("alarm-tray watch");
    for (entry, _) in &entries {
        let _ = Command::new("secret-tool")
            .args(["clear", "service", "alarm-tray", "username", entry])
            .status();
    }
    let stdout = String::from_utf8_lossy(&watch.stdout);
    assert!(
        watch.status.success(),
        "{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    assert!(
        sim.alive(),
        "the simulator under Wine ended early: {}",
        read_text(&err)
    );
    let k = kinds(&stdout);
    eprintln!("Linux watch of the Wine simulator: {:?}", k.counts);
    let count = |kind: &str| k.counts.get(kind).copied().unwrap_or(0);
    assert!(count("saveris:measurement") >= 3, "{:?}", k.counts);
    assert!(count("saveris:alarm_raised") >= 1, "{:?}", k.counts);
    assert!(count("element:reading") >= 3, "{:?}", k.counts);
    let live: BTreeSet<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "status")
        .flat_map(|v| v["status"]["feeds"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["state"] == "live")
        .filter_map(|f| f["feed"].as_str().map(str::to_string))
        .collect();
    assert!(
        live.iter().any(|f| f.starts_with("saveris:"))
            && live.iter().any(|f| f.starts_with("element:")),
        "both feeds live: {live:?}"
    );
    peers::stop_child(&mut sim.child, Duration::from_secs(5));
}

/// The monitor under Wine, as a Windows user meets it: started `--hidden` on the profile's
/// `%APPDATA%` folder against demo servers on the Linux side, its tray icon in Wine's system
/// tray (screenshot in target/screenshots/); a Windows client on its named
/// pipe stores the accounts' secrets in the Credential Manager and sees the feeds go live and
/// alarms come in; popups fail (Wine has no toast service) with one clear log line and the
/// monitor keeps running; a second `alarm-tray.exe` hands off to it (its window cannot open
/// without WebView2, and says so); Quit over the pipe ends it with the history written; a
/// restarted monitor still finds the secrets, deletes them, and quits.
#[test]
fn windows_monitor_pipe_credentials_history_popups_quit() {
    let Some(wine) = wine_or_off("windows_monitor_pipe_credentials_history_popups_quit") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let demo = rt
        .block_on(alarm_tray::simulate::demo::Demo::start(1, 0))
        .expect("demo servers");
    let (user, home) = wine.user_dir();
    let data = home.join("AppData/Roaming").join(alarm_tray::APP_ID);
    alarm_tray::settings::save(&data.join("settings.json"), &demo.settings()).unwrap();

    let started = Instant::now();
    let (mut monitor, _, log) = wine.start(wine.app(&["--hidden"]), "monitor");
    wait_for_text(&log, "monitor ready", Duration::from_secs(90), &mut monitor);
    eprintln!(
        "WINE-FIGURES monitor ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The tray icon: Wine draws Windows tray icons in its own "Wine System Tray" window, which
    // is only shown while it holds one.
    desktop::wait_for(Duration::from_secs(30), "Wine's system tray window", || {
        !desktop::x11::windows_titled("Wine System Tray").is_empty()
    });
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let _ = Command::new("import")
        .args(["-window", "root"])
        .arg(shots.join("windows-tray-under-wine.png"))
        .status();

    let key = |kind: &str, account: &str| json!({"kind": kind, "account": account});
    let saveris = key(
        "saveris_password",
        alarm_tray::simulate::demo::SAVERIS_ACCOUNT,
    );
    let element = key(
        "element_api_key",
        alarm_tray::simulate::demo::ELEMENT_ACCOUNT,
    );
    let has = |k: &Value| json!({"type": "has_secret", "key": k});
    let a = wine.ipc(&[
        json!({"type": "info"}),
        has(&saveris),
        json!({"type": "set_secret", "key": saveris, "value": alarm_tray::simulate::demo::SAVERIS_PASSWORD}),
        json!({"type": "set_secret", "key": element, "value": alarm_tray::simulate::demo::ELEMENT_KEY}),
        has(&saveris),
        has(&element),
    ]);
    let data_dir = a[0]["ok"]["data"]["data_dir"].as_str().unwrap_or_default();
    assert_eq!(
        data_dir.to_lowercase(),
        format!(r"c:\users\{user}\appdata\roaming\{}", alarm_tray::APP_ID).to_lowercase(),
        "the profile lives under %APPDATA%: {}",
        a[0]
    );
    assert_eq!(a[1]["ok"]["data"], false, "{}", a[1]);
    assert_eq!(a[2]["ok"]["type"], "ok", "{}", a[2]);
    assert_eq!(a[3]["ok"]["type"], "ok", "{}", a[3]);
    assert_eq!(a[4]["ok"]["data"], true, "{}", a[4]);
    assert_eq!(a[5]["ok"]["data"], true, "{}", a[5]);
    let creds = wine.credentials();
    for entry in [
        "saveris:demo-saveris:password",
        "element:demo-element:api-key",
    ] {
        assert!(
            creds.iter().any(|c| c.contains(entry)),
            "{entry} in the Credential Manager: {creds:?}"
        );
    }

    // The feeds connect with the secrets just stored; alarms arrive.
    let end = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let mut a = wine.ipc(&[
            json!({"type": "status"}),
            json!({"type": "alarms", "filter": {}}),
        ]);
        let (s, alarms) = (a.remove(0), a.remove(0));
        let feeds = s["ok"]["data"]["feeds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all_live = feeds.len() == 2 && feeds.iter().all(|f| f["state"] == "live");
        // Raised ones, active or (on a slow run) already cleared again.
        let raised = alarms["ok"]["data"].as_array().map_or(0, |a| a.len());
        if all_live && raised >= 2 {
            break s;
        }
        assert!(
            Instant::now() < end,
            "feeds live and 2 alarms within 120 s: {s}\n{alarms}\n{}",
            read_text(&log)
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!("status over the named pipe: {status}");

    // Popups: Wine has no toast service. One clear line, however many popups; still running.
    let text = read_text(&log);
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("notification"))
        .collect();
    assert_eq!(said.len(), 1, "one line about popups: {said:#?}");
    assert!(
        said[0].contains("no notification (toast) service"),
        "{}",
        said[0]
    );
    assert!(monitor.alive(), "the monitor keeps running without popups");
    let t = wine.ipc(&[json!({"type": "send_test_notification"})]);
    assert!(
        t[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no notification (toast) service"),
        "the window's test button says why: {}",
        t[0]
    );

    // A second start hands off over the pipe; the window it asks for cannot open under Wine.
    let second = wine.run(
        wine.app(&[]),
        None,
        Duration::from_secs(60),
        "a second alarm-tray.exe",
    );
    assert!(
        second.status.success(),
        "hand-off ({}): {}",
        second.status,
        second.stderr
    );
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    // The window cannot open without WebView2. A debug build exits at once; a release build
    // first shows tauri's "Could not find the WebView2 Runtime" dialog, which a person closes.
    let end = Instant::now() + Duration::from_secs(60);
    let mut dialog = false;
    let text = loop {
        let text = read_text(&log);
        if text.contains("the window process failed") {
            break text;
        }
        if !desktop::x11::windows_titled("Error").is_empty() && !dialog {
            dialog = true;
            let _ = Command::new("import")
                .args(["-window", "root"])
                .arg(shots.join("windows-no-webview2-under-wine.png"))
                .status();
            eprintln!("the window shows the missing-WebView2 dialog; closing it");
        }
        if dialog {
            desktop::x11::close_titled("Error");
        }
        assert!(monitor.alive(), "the monitor ended:\n{text}");
        assert!(
            Instant::now() < end,
            "the window process did not end within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.contains("WebView2"), "the window says why:\n{text}");
    assert!(!text.contains("panicked"), "no panic:\n{text}");
    assert!(monitor.alive());

    // Quit over the pipe.
    let q = wine.ipc(&[json!({"type": "quit"})]);
    assert_eq!(q[0]["ok"]["type"], "ok", "{}", q[0]);
    let exit = monitor.wait_exit(Duration::from_secs(30));
    assert!(
        exit.is_some_and(|s| s.success()),
        "Quit ends the monitor cleanly: {exit:?}\n{}",
        read_text(&log)
    );
    let db =
        rusqlite::Connection::open(data.join("history.sqlite3")).expect("history under %APPDATA%");
    let events: i64 = db
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let alarms: i64 = db
        .query_row("SELECT count(*) FROM alarms", [], |r| r.get(0))
        .unwrap();
    drop(db);
    eprintln!("history under %APPDATA%: {events} events, {alarms} alarms");
    assert!(
        events >= 10 && alarms >= 2,
        "{events} events, {alarms} alarms"
    );
    assert!(
        data.join("logs").read_dir().unwrap().count() >= 1,
        "log file"
    );

    // A new monitor process finds the secrets in the Credential Manager and deletes them.
    let (mut monitor, _, log) = wine.start(wine.app(&["--hidden"]), "monitor2");
    wait_for_text(&log, "monitor ready", Duration::from_secs(90), &mut monitor);
    let a = wine.ipc(&[
        has(&saveris),
        json!({"type": "delete_secret", "key": saveris}),
        json!({"type": "delete_secret", "key": element}),
        has(&saveris),
        has(&element),
    ]);
    assert_eq!(a[0]["ok"]["data"], true, "kept across restarts: {}", a[0]);
    assert_eq!(a[1]["ok"]["type"], "ok", "{}", a[1]);
    assert_eq!(a[2]["ok"]["type"], "ok", "{}", a[2]);
    assert_eq!(a[3]["ok"]["data"], false, "{}", a[3]);
    assert_eq!(a[4]["ok"]["data"], false, "{}", a[4]);
    let creds = wine.credentials();
    assert!(
        !creds.iter().any(|c| c.contains("alarm-tray")),
        "deleted from the Credential Manager: {creds:?}"
    );
    let q = wine.ipc(&[json!({"type": "quit"})]);
    assert_eq!(q[0]["ok"]["type"], "ok", "{}", q[0]);
    assert!(
        monitor
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        read_text(&log)
    );
    rt.block_on(demo.stop());
}
