//! RabbitMQ with the Web-STOMP plugin, started from `/usr/lib/rabbitmq/bin/rabbitmq-server`
//! with all state in a temp dir, its own epmd bound to 127.0.0.1 and free ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{free_ports, spawn_child, stop_child, unique, wait_port};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const DIR_PREFIX: &str = "alarmtray-rabbit-";

pub struct Broker {
    dir: PathBuf,
    pub ws_port: u16,
    amqp_port: u16,
    stomp_port: u16,
    dist_port: u16,
    epmd_port: u16,
    node: String,
    beam: Mutex<Option<Child>>,
    epmd: Mutex<Option<Child>>,
}

impl Broker {
    /// A broker of one's own (for tests that restart it). Stopped when dropped.
    pub fn start() -> Result<Broker, String> {
        clean_stale_dirs();
        let dir = std::env::temp_dir().join(unique(DIR_PREFIX));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string())
            .map_err(|e| e.to_string())?;
        let p = free_ports(5);
        let broker = Broker {
            node: format!("{}@localhost", unique("at")),
            dir,
            ws_port: p[0],
            amqp_port: p[1],
            stomp_port: p[2],
            dist_port: p[3],
            epmd_port: p[4],
            beam: Mutex::new(None),
            epmd: Mutex::new(None),
        };
        broker.write_config()?;
        let mut epmd = Command::new("epmd");
        epmd.args([
            "-address",
            "127.0.0.1",
            "-port",
            &broker.epmd_port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        *broker.epmd.lock().unwrap() = Some(spawn_child(epmd).map_err(|e| format!("epmd: {e}"))?);
        if !wait_port(broker.epmd_port, Duration::from_secs(10)) {
            return Err("epmd did not start".into());
        }
        broker.start_node()?;
        Ok(broker)
    }

    /// One broker shared by the tests that don't restart it (each uses its own queue
    /// names). It lives until the test binary exits (PDEATHSIG kills it then).
    pub fn shared() -> Arc<Broker> {
        static SHARED: OnceLock<Arc<Broker>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(Broker::start().expect("RabbitMQ must start")))
            .clone()
    }

    fn write_config(&self) -> Result<(), String> {
        let conf = format!(
            "listeners.tcp.default = 127.0.0.1:{}\nstomp.listeners.tcp.1 = 127.0.0.1:{}\nweb_stomp.tcp.port = {}\n\
             web_stomp.tcp.ip = 127.0.0.1\nloopback_users = none\nlog.console = false\n",
            self.amqp_port, self.stomp_port, self.ws_port
        );
        std::fs::write(self.dir.join("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(
            self.dir.join("enabled_plugins"),
            "[rabbitmq_stomp,rabbitmq_web_stomp].\n",
        )
        .map_err(|e| e.to_string())
    }

    fn start_node(&self) -> Result<(), String> {
        let d = |p: &str| self.dir.join(p).to_string_lossy().into_owned();
        let dist = "-kernel inet_dist_use_interface {127,0,0,1}";
        let mut cmd = Command::new(SERVER);
        cmd.env("HOME", &self.dir)
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", dist)
            .env("RABBITMQ_CTL_ERL_ARGS", dist)
            // Makes the script exec the VM: the PID we hold is beam's own.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(self.dir.join("stdout.log")).map_err(|e| e.to_string())?,
            ))
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.join("stderr.log")).map_err(|e| e.to_string())?,
            ));
        let child = spawn_child(cmd).map_err(|e| format!("rabbitmq-server: {e}"))?;
        *self.beam.lock().unwrap() = Some(child);
        if !wait_port(self.ws_port, Duration::from_secs(90)) {
            self.stop_node();
            return Err(format!(
                "RabbitMQ did not open port {} (logs in {})",
                self.ws_port,
                self.dir.display()
            ));
        }
        Ok(())
    }

    fn stop_node(&self) {
        if let Some(mut c) = self.beam.lock().unwrap().take() {
            stop_child(&mut c, Duration::from_secs(20));
        }
    }

    /// Stops the node (SIGTERM to beam's PID) and starts it again on the same data and ports.
    pub fn restart(&self) -> Result<(), String> {
        self.stop_node();
        self.start_node()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.ws_port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop_node();
        if let Some(mut c) = self.epmd.lock().unwrap().take() {
            stop_child(&mut c, Duration::from_secs(2));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes temp dirs of earlier runs whose test binary is gone.
fn clean_stale_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        let alive = std::fs::read_to_string(e.path().join("owner.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
