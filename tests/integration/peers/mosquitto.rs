//! Issue 26: Debian's mosquitto on a free loopback port, with a password file and its own
//! persistence directory, stopped (and restarted) by PID.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{free_ports, spawn_child, stop_child, unique, wait_port};

pub const USER: &str = "lab";
pub const PASSWORD: &str = "broker-pw-1";

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Mosquitto {
    pub fn start() -> Result<Mosquitto, String> {
        let dir = tempfile::Builder::new()
            .prefix(&unique("alarmtray-mosquitto-"))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = free_ports(1)[0];
        let pw = dir.path().join("passwd");
        let st = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&pw)
            .args([USER, PASSWORD])
            .status()
            .map_err(|e| format!("mosquitto_passwd: {e} (apt-get install mosquitto)"))?;
        if !st.success() {
            return Err("mosquitto_passwd failed".into());
        }
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             persistence true\npersistence_location {}/\nuser root\n\
             max_queued_messages 100000\n",
            pw.display(),
            dir.path().display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).map_err(|e| e.to_string())?;
        let m = Mosquitto {
            port,
            dir,
            child: Mutex::new(None),
        };
        m.run()?;
        Ok(m)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn run(&self) -> Result<(), String> {
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c")
            .arg(self.conf())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_child(cmd).map_err(|e| format!("mosquitto: {e}"))?;
        *self.child.lock().unwrap() = Some(child);
        if !wait_port(self.port, Duration::from_secs(10)) {
            return Err("mosquitto did not open its port".into());
        }
        Ok(())
    }

    /// Stops it by PID (SIGTERM: it saves its persistence file).
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
    }

    /// Starts it again after [`Self::stop`], on the same port with the same persistence.
    pub fn run_again(&self) -> Result<(), String> {
        self.run()
    }

    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        self.run()
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// `mosquitto_pub` one QoS 1 message as the site's broker user.
    pub fn publish(&self, topic: &str, payload: &str) -> bool {
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-u", USER, "-P", PASSWORD, "-q", "1", "-t", topic, "-m", payload,
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
