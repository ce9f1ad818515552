//! The keyring as a login session meets it (issue 24): locked at start (gnome-keyring
//! brought back by D-Bus activation without its password, no prompter), or not running at
//! all for a while. `watch` against the demo servers, on a private session bus of its own
//! with a real gnome-keyring, must wait in `waiting_for_keyring` with a sentence, go live
//! by itself once the keyring is unlocked or started, and never tell the user to enter a
//! password that is stored.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alarm_tray::secrets::SecretKey;
use alarm_tray::simulate::demo::Demo;

use crate::desktop::{self, Proc};

const KEYRING_PASSWORD: &str = "keyring-test-password";
const LOCKED: &str = "The keyring is locked: unlock it and Alarm Tray goes on by itself.";
const NO_SERVICE: &str =
    "No keyring service is running: once it starts, Alarm Tray goes on by itself.";

/// A session bus of the test's own, with its own HOME and XDG_RUNTIME_DIR, that can start
/// gnome-keyring by D-Bus activation (`activation`) or has no Secret Service at all.
struct PrivateBus {
    dir: tempfile::TempDir,
    address: String,
    daemon: Proc,
    /// Keyring daemons started here, stopped by PID on drop.
    keyrings: Vec<u32>,
}

impl PrivateBus {
    fn start(activation: bool) -> PrivateBus {
        let dir = tempfile::Builder::new()
            .prefix("at-keyring-")
            .tempdir()
            .unwrap();
        let root = dir.path();
        for d in ["home", "services"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::set_permissions(
            root.join("run"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        if activation {
            // As Debian ships it: the daemon starts locked when nobody hands it a password.
            std::fs::write(
                root.join("services/org.freedesktop.secrets.service"),
                "[D-BUS Service]\nName=org.freedesktop.secrets\n\
                 Exec=/usr/bin/gnome-keyring-daemon --start --foreground --components=secrets\n",
            )
            .unwrap();
        }
        let conf = root.join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>session</type><listen>unix:path={}/bus</listen>\
                 <servicedir>{}/services</servicedir>\
                 <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
                 <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
                root.display(),
                root.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("dbus-daemon");
        cmd.args(["--nofork", "--print-address=1"])
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Activated services inherit this environment: no display, so no unlock prompt.
        Self::env(root, &mut cmd);
        let mut child = cmd.spawn().expect("dbus-daemon");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon said {line:?}");
        PrivateBus {
            dir,
            address,
            daemon: Proc { child },
            keyrings: Vec::new(),
        }
    }

    fn env(root: &Path, cmd: &mut Command) {
        cmd.env("HOME", root.join("home"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("XDG_DATA_HOME", root.join("home/.local/share"))
            .env("XDG_CONFIG_HOME", root.join("home/.config"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("GNOME_KEYRING_CONTROL")
            .env_remove("SSH_AUTH_SOCK");
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        Self::env(self.dir.path(), &mut cmd);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        cmd
    }

    /// The PID owning `name` on this bus.
    fn owner_pid(&self, name: &str) -> Option<u32> {
        let out = self
            .command("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--reply-timeout=2000",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                &format!("string:{name}"),
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    }

    /// An unlocked gnome-keyring (its password on stdin), as a login with the keyring
    /// password does; `replace` stands for the user unlocking a locked one.
    fn start_unlocked_keyring(&mut self, replace: bool) {
        let mut cmd = self.command("gnome-keyring-daemon");
        if replace {
            cmd.arg("--replace");
        }
        let mut child = cmd
            .args(["--unlock", "--components=secrets", "--daemonize"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(KEYRING_PASSWORD.as_bytes())
            .unwrap();
        let _ = child.wait();
        let mut pid = None;
        desktop::wait_for(Duration::from_secs(10), "gnome-keyring on the bus", || {
            pid = self.owner_pid("org.freedesktop.secrets");
            pid.is_some()
        });
        self.keyrings.push(pid.unwrap());
    }

    /// Stops the keyring daemon owning the Secret Service name, by its PID.
    fn stop_keyring(&mut self) {
        if let Some(pid) = self.owner_pid("org.freedesktop.secrets") {
            desktop::unsafe_kill(pid, 15);
            desktop::wait_for(Duration::from_secs(10), "gnome-keyring gone", || {
                self.owner_pid("org.freedesktop.secrets") != Some(pid)
            });
        }
    }

    fn store_secret(&self, key: &SecretKey, value: &str) {
        desktop::secret_tool_store(self.command("secret-tool"), &key.entry_name(), value);
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        if let Some(pid) = self.owner_pid("org.freedesktop.secrets") {
            self.keyrings.push(pid);
        }
        for pid in &self.keyrings {
            desktop::unsafe_kill(*pid, 15);
        }
        desktop::unsafe_kill(self.daemon.pid(), 15);
    }
}

/// `watch` on the demo accounts, on `bus`; its stdout and stderr land in files.
struct Watch {
    _proc: Proc,
    out: PathBuf,
    err: PathBuf,
    _profile: tempfile::TempDir,
}

impl Watch {
    fn start(bus: &PrivateBus, demo: &Demo) -> Watch {
        let profile = tempfile::Builder::new()
            .prefix("at-keyring-profile-")
            .tempdir()
            .unwrap();
        let settings = profile.path().join("watch-settings.json");
        std::fs::write(
            &settings,
            alarm_tray::settings::to_store_json(&demo.settings()).to_string(),
        )
        .unwrap();
        let (out, err) = (profile.path().join("out"), profile.path().join("err"));
        let child = bus
            .command(desktop::app_bin())
            .arg("watch")
            .arg("--settings")
            .arg(&settings)
            .args(["--no-notify", "--for", "150"])
            .env("ALARM_TRAY_DATA_DIR", profile.path())
            .env("ALARM_TRAY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("alarm-tray watch");
        Watch {
            _proc: Proc { child },
            out,
            err,
            _profile: profile,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn all(&self) -> String {
        format!(
            "{}\n{}",
            self.stdout(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// The newest state of every feed, from the status lines.
    fn states(&self) -> Vec<(String, String)> {
        let mut last = None;
        for l in self.stdout().lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if v["type"] == "status" {
                    last = Some(v);
                }
            }
        }
        let Some(v) = last else { return vec![] };
        v["status"]["feeds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    f["feed"].as_str().unwrap_or_default().to_string(),
                    f["state"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn events(&self) -> usize {
        self.stdout()
            .lines()
            .filter(|l| l.starts_with("{\"type\":\"event\""))
            .count()
    }
}

fn assert_waits_then_goes_live(
    bus: &mut PrivateBus,
    watch: &Watch,
    sentence: &str,
    come_back: impl FnOnce(&mut PrivateBus),
) {
    desktop::wait_for(
        Duration::from_secs(30),
        "every feed waiting for the keyring",
        || {
            let s = watch.states();
            !s.is_empty() && s.iter().all(|(_, st)| st == "waiting_for_keyring")
        },
    );
    let out = watch.stdout();
    assert!(out.contains(sentence), "the sentence is missing:\n{out}");
    desktop::wait_for(Duration::from_secs(5), "the once-per-start popup", || {
        watch
            .stdout()
            .contains("Alarms are not watched: the keyring cannot be read")
    });
    assert_eq!(watch.events(), 0, "nothing is watched while waiting");
    let back = Instant::now();
    come_back(bus);
    desktop::wait_for(Duration::from_secs(35), "every feed live", || {
        let s = watch.states();
        !s.is_empty() && s.iter().all(|(_, st)| st == "live")
    });
    eprintln!(
        "live {:.1} s after the keyring came back",
        back.elapsed().as_secs_f64()
    );
    desktop::wait_for(Duration::from_secs(30), "the scenario's events", || {
        watch.events() >= 5
    });
    let popups = watch
        .stdout()
        .matches("Alarms are not watched: the keyring cannot be read")
        .count();
    assert_eq!(popups, 1, "one keyring popup per start");
    let all = watch.all().to_lowercase();
    for wrong in [
        "no password",
        "no api key stored",
        "enter it in the account settings",
    ] {
        assert!(!all.contains(wrong), "{wrong:?} was said:\n{all}");
    }
}

fn demo_and_bus(activation: bool) -> (tokio::runtime::Runtime, Demo, PrivateBus) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let demo = rt.block_on(Demo::start(1, 0)).expect("demo servers");
    let mut bus = PrivateBus::start(activation);
    bus.start_unlocked_keyring(false);
    for (k, v) in demo.secrets() {
        bus.store_secret(&k, &v);
    }
    (rt, demo, bus)
}

/// Locked at start: the secrets were stored, the daemon stopped; the next call brings it
/// back by D-Bus activation without a password and the unlock prompt cannot be shown
/// ("prompt dismissed"). Then the user unlocks it (`--replace --unlock`).
#[test]
fn locked_keyring_waits_then_goes_live_when_unlocked() {
    desktop::require_desktop();
    let (_rt, demo, mut bus) = demo_and_bus(true);
    bus.stop_keyring();
    let watch = Watch::start(&bus, &demo);
    assert_waits_then_goes_live(&mut bus, &watch, LOCKED, |bus| {
        bus.start_unlocked_keyring(true)
    });
}

/// No Secret Service on the bus at all for 20 s (KWallet or gnome-keyring starting after
/// the autostart entries), then it starts.
#[test]
fn absent_keyring_waits_then_goes_live_when_it_starts() {
    desktop::require_desktop();
    let (_rt, demo, mut bus) = demo_and_bus(false);
    bus.stop_keyring();
    let watch = Watch::start(&bus, &demo);
    std::thread::sleep(Duration::from_secs(20));
    assert_waits_then_goes_live(&mut bus, &watch, NO_SERVICE, |bus| {
        bus.start_unlocked_keyring(false)
    });
}

/// Popups the desktop could not show are kept (issue 24): the notification service is
/// away while an alarm pops (no daemon on the bus), the status says popups are failing;
/// once dunst is back the kept popup (or a summary of them) reaches it on D-Bus.
#[test]
fn popups_missed_while_the_notification_service_is_away_are_shown_when_it_is_back() {
    desktop::require_desktop();
    let bus = PrivateBus::start(false);
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("watch.out");
    let child = bus
        .command(desktop::app_bin())
        .args(["watch", "--demo", "--seed", "1", "--for", "120"])
        .env_remove("ALARM_TRAY_DATA_DIR")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("watch.err")).unwrap())
        .spawn()
        .expect("watch --demo");
    let _watch = Proc { child };
    let out = || std::fs::read_to_string(&out_path).unwrap_or_default();
    // An alarm popup decided while no notification service answers.
    let mut summary = None;
    desktop::wait_for(Duration::from_secs(60), "an alarm popup decided", || {
        summary = out()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| {
                let d = &v["decision"];
                (d["kind"] == "popup" && d["popup"]["alarm_id"].is_i64())
                    .then(|| d["popup"]["summary"].as_str().unwrap().to_string())
            });
        summary.is_some()
    });
    desktop::wait_for(
        Duration::from_secs(10),
        "the status saying popups fail",
        || out().contains("popups failing: kept until the notification service is back"),
    );
    // The service comes back; only what is sent from now on is recorded.
    let capture = tmp.path().join("notify.txt");
    let monitor = bus
        .command("stdbuf")
        .args([
            "-oL",
            "dbus-monitor",
            "--session",
            "interface='org.freedesktop.Notifications',member='Notify'",
        ])
        .stdout(std::fs::File::create(&capture).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor");
    let _monitor = Proc { child: monitor };
    std::thread::sleep(Duration::from_millis(500));
    let mut dunst = bus.command("dunst");
    if let Some(d) = std::env::var_os("DISPLAY") {
        dunst.env("DISPLAY", d);
    }
    let dunst = dunst
        .args(["-config", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dunst");
    let _dunst = Proc { child: dunst };
    let summary = summary.unwrap();
    desktop::wait_for(Duration::from_secs(30), "the kept popup on D-Bus", || {
        let seen = std::fs::read_to_string(&capture).unwrap_or_default();
        seen.contains(&summary) || seen.contains("popups could not be shown")
    });
    desktop::wait_for(
        Duration::from_secs(15),
        "the status no longer failing",
        || {
            let text = out();
            let last = text
                .lines()
                .rfind(|l| l.contains("\"type\":\"status\""))
                .unwrap_or_default()
                .to_string();
            !last.contains("popups failing")
        },
    );
}
