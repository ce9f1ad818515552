//! RabbitMQ with Web-STOMP for the bench, run from `/usr/lib/rabbitmq/bin/rabbitmq-server`
//! with all state in a temp dir, its own epmd on 127.0.0.1 and free ports (the approach of
//! the integration tests' harness), plus a fast STOMP publisher for preloading a queue.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alarm_tray::feeds::saveris::stomp::{self, Command as Stomp, Decoder, Frame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::procs;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

pub struct Broker {
    dir: tempfile::TempDir,
    pub ws_port: u16,
    beam: Option<Child>,
    epmd: Option<Child>,
}

impl Broker {
    pub fn start() -> Result<Broker, String> {
        let dir = tempfile::Builder::new()
            .prefix("alarmtray-bench-rabbit-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let p = procs::free_ports(5).map_err(|e| e.to_string())?;
        let (ws_port, amqp_port, stomp_port, dist_port, epmd_port) = (p[0], p[1], p[2], p[3], p[4]);
        let conf = format!(
            "listeners.tcp.default = 127.0.0.1:{amqp_port}\nstomp.listeners.tcp.1 = 127.0.0.1:{stomp_port}\n\
             web_stomp.tcp.port = {ws_port}\nweb_stomp.tcp.ip = 127.0.0.1\nloopback_users = none\nlog.console = false\n"
        );
        let path = |p: &str| dir.path().join(p);
        std::fs::write(path("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        std::fs::write(
            path("enabled_plugins"),
            "[rabbitmq_stomp,rabbitmq_web_stomp].\n",
        )
        .map_err(|e| e.to_string())?;
        let mut epmd = Command::new("epmd");
        epmd.args(["-address", "127.0.0.1", "-port", &epmd_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut broker = Broker {
            ws_port,
            beam: None,
            epmd: Some(procs::spawn(epmd).map_err(|e| format!("epmd: {e}"))?),
            dir,
        };
        if !procs::wait_port(epmd_port, Duration::from_secs(10)) {
            return Err("epmd did not start".into());
        }
        let d = |p: &str| broker.dir.path().join(p).to_string_lossy().into_owned();
        let dist = "-kernel inet_dist_use_interface {127,0,0,1}";
        let log = |name: &str| -> Result<Stdio, String> {
            Ok(Stdio::from(
                std::fs::File::create(broker.dir.path().join(name)).map_err(|e| e.to_string())?,
            ))
        };
        let mut cmd = Command::new(SERVER);
        cmd.env("HOME", broker.dir.path())
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env(
                "RABBITMQ_NODENAME",
                format!("atbench{}@localhost", std::process::id()),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", dist)
            .env("RABBITMQ_CTL_ERL_ARGS", dist)
            // Makes the script exec the VM: the PID we hold is beam's own.
            .env("RUNNING_UNDER_SYSTEMD", "1")
            .stdin(Stdio::null())
            .stdout(log("stdout.log")?)
            .stderr(log("stderr.log")?);
        broker.beam = Some(procs::spawn(cmd).map_err(|e| format!("rabbitmq-server: {e}"))?);
        if !procs::wait_port(ws_port, Duration::from_secs(120)) {
            return Err(format!(
                "RabbitMQ did not open its Web-STOMP port (logs in {})",
                broker.dir.path().display()
            ));
        }
        Ok(broker)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.ws_port)
    }

    /// The broker's Erlang VM (for its CPU seconds).
    pub fn pid(&self) -> Option<u32> {
        self.beam.as_ref().map(|c| c.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.beam.take() {
            procs::stop(&mut c, Duration::from_secs(20));
        }
        if let Some(mut c) = self.epmd.take() {
            procs::stop(&mut c, Duration::from_secs(2));
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A plain STOMP 1.2 session over WebSocket (guest/guest, vhost `/`, no heart-beats).
pub struct StompConn {
    ws: Ws,
    dec: Decoder,
}

impl StompConn {
    pub async fn connect(ws_url: &str) -> Result<StompConn, String> {
        let mut req = ws_url.into_client_request().map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("v12.stomp"),
        );
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(30),
            // No Nagle: a publisher sending one message at a time must not wait for the
            // broker's delayed TCP ACK (the feed's own socket disables it too).
            tokio_tungstenite::connect_async_with_config(req, None, true),
        )
        .await
        .map_err(|_| "WebSocket connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
        let mut c = StompConn {
            ws,
            dec: Decoder::new(),
        };
        let connect = Frame::new(Stomp::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "/")
            .with_header("login", "guest")
            .with_header("passcode", "guest")
            .with_header("heart-beat", "0,0");
        c.send(&connect).await?;
        c.flush().await?;
        let f = c.next().await?;
        if f.command != Stomp::Connected {
            return Err(format!("no CONNECTED: {:?}", f.command));
        }
        Ok(c)
    }

    /// Queues a frame (see [`StompConn::flush`]).
    pub async fn send(&mut self, f: &Frame) -> Result<(), String> {
        self.ws
            .feed(Message::binary(stomp::encode(f)))
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        self.ws.flush().await.map_err(|e| e.to_string())
    }

    /// The next frame (heart-beat EOLs skipped), within 60 s.
    pub async fn next(&mut self) -> Result<Frame, String> {
        self.next_within(Duration::from_secs(60)).await
    }

    /// The next frame, within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Frame, String> {
        loop {
            if let Some(f) = self.dec.next_frame().map_err(|e| e.to_string())? {
                return Ok(f);
            }
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Err(format!("no frame within {} s", wait.as_secs())),
                Ok(None) => return Err("connection closed".into()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => self.dec.push(t.as_bytes()),
                Ok(Some(Ok(Message::Binary(b)))) => self.dec.push(&b),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Subscribes to `dest` with `ack` (`client-individual`, as the app does, or `auto`
    /// for the broker's own ceiling: no confirmations, so nothing waits for them).
    pub async fn subscribe(&mut self, dest: &str, ack: &str) -> Result<(), String> {
        self.send(
            &Frame::new(Stomp::Subscribe)
                .with_header("id", "0")
                .with_header("destination", dest)
                .with_header("ack", ack),
        )
        .await?;
        self.flush().await
    }

    /// The bare consumer's turn: waits for the next frame, takes every MESSAGE received by
    /// then, hands each to `f` with the time the turn's first frame arrived, and ACKs them
    /// all in one write (a message without an `ack` header, under `ack:auto`, needs none).
    /// Returns how many messages it took.
    pub async fn take_messages(
        &mut self,
        mut f: impl FnMut(&Frame, Instant),
    ) -> Result<usize, String> {
        let first = self.next().await?;
        let at = Instant::now();
        let mut frames = vec![first];
        while let Some(fr) = self.buffered()? {
            frames.push(fr);
        }
        let mut taken = 0;
        for fr in frames {
            if fr.command != Stomp::Message {
                continue;
            }
            f(&fr, at);
            if let Some(ack) = fr.header("ack") {
                self.send(&Frame::new(Stomp::Ack).with_header("id", ack))
                    .await?;
            }
            taken += 1;
        }
        self.flush().await?;
        Ok(taken)
    }

    /// A frame already received, without waiting.
    pub fn buffered(&mut self) -> Result<Option<Frame>, String> {
        self.dec.next_frame().map_err(|e| e.to_string())
    }

    pub async fn close(mut self) {
        let _ = self.send(&Frame::new(Stomp::Disconnect)).await;
        let _ = self.flush().await;
        let _ = self.ws.close(None).await;
    }
}

/// A persistent SEND of `body` to `dest`.
pub fn send_frame(dest: &str, body: &str) -> Frame {
    Frame::new(Stomp::Send)
        .with_header("destination", dest)
        .with_header("persistent", "true")
        .with_header("content-type", "application/json")
        .with_body(body.as_bytes().to_vec())
}

/// Sends every body to `dest` (persistent, durable queue) and waits for the broker's
/// receipt of the last one, so the queue holds them all when this returns.
pub async fn preload(
    ws_url: &str,
    dest: &str,
    n: usize,
    body: impl Fn(usize) -> String,
) -> Result<(), String> {
    let mut c = StompConn::connect(ws_url).await?;
    for i in 0..n {
        let mut f = send_frame(dest, &body(i));
        if i + 1 == n {
            f = f.with_header("receipt", "preloaded");
        }
        c.send(&f).await?;
        if i % 256 == 255 {
            c.flush().await?;
        }
    }
    c.flush().await?;
    if n > 0 {
        // The broker confirms only once every persistent message is on disk: on a busy
        // machine that took over a minute for 200,000 (the one failed full run).
        let f = c.next_within(Duration::from_secs(600)).await?;
        if f.command != Stomp::Receipt {
            return Err(format!(
                "no RECEIPT after preloading: {:?} {}",
                f.command,
                f.body_text()
            ));
        }
    }
    c.close().await;
    Ok(())
}
