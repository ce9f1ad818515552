//! The window's side: one short connection per request, and one long one for pushes.
// `split` is deprecated in interprocess 2.4 in favour of sharing `&Stream`; the halves are
// kept because they let the reader and the writer live in different tasks and structs.
#![allow(deprecated)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::{prelude::*, RecvHalf, SendHalf, Stream};
use tokio::io::BufReader;

use super::protocol::{Envelope, Hello, Push, Request, Response, ServerLine, PROTOCOL_VERSION};
use super::server::{read_line, write_line};
use super::Error;

/// How long a request may take. Connection tests reach the network: allow for a slow login.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
}

struct Conn {
    recv: BufReader<RecvHalf>,
    send: SendHalf,
}

impl Client {
    pub fn new(path: &Path) -> Self {
        Client {
            path: path.to_path_buf(),
        }
    }

    async fn open(&self) -> Result<Conn, Error> {
        let not_running = || {
            Error::MonitorNotRunning(format!(
                "Alarm Tray is not running (no monitor answers on {})",
                self.path.display()
            ))
        };
        let name = super::socket_name(&self.path).map_err(connection_failed)?;
        let stream = match tokio::time::timeout(Duration::from_secs(3), Stream::connect(name)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => return Err(not_running()),
        };
        let (recv, send) = stream.split();
        let mut conn = Conn {
            recv: BufReader::new(recv),
            send,
        };
        write_line(
            &mut conn.send,
            &Hello {
                protocol: PROTOCOL_VERSION,
                client: format!("window {}", crate::VERSION),
            },
        )
        .await
        .map_err(connection_failed)?;
        match next_line(&mut conn.recv).await? {
            ServerLine::Welcome(w) if w.protocol == PROTOCOL_VERSION => Ok(conn),
            ServerLine::Welcome(w) => Err(Error::ProtocolMismatch(format!(
                "the Alarm Tray monitor speaks protocol {}, this window {PROTOCOL_VERSION}: restart Alarm Tray",
                w.protocol
            ))),
            ServerLine::Refused(e) => Err(e),
            other => Err(unexpected(format!("expected welcome, got {other:?}"))),
        }
    }

    /// Sends one request and waits for its reply.
    pub async fn request(&self, request: Request) -> Result<Response, Error> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let mut conn = self.open().await?;
            write_line(&mut conn.send, &Envelope { id: 1, request })
                .await
                .map_err(connection_failed)?;
            match next_line(&mut conn.recv).await? {
                ServerLine::Reply(r) if r.id == 1 => r.result,
                // Id 0: the monitor could not read the request and says why.
                ServerLine::Reply(r) => Err(r
                    .result
                    .err()
                    .unwrap_or_else(|| unexpected(format!("a reply to request {}", r.id)))),
                other => Err(unexpected(format!("expected a reply, got {other:?}"))),
            }
        })
        .await
        .map_err(|_| Error::Timeout("the Alarm Tray monitor did not answer in time".into()))?
    }

    /// Sends one request and takes its answer as the type the request gives, e.g.
    /// `Info` for [`Request::Info`] or `()` for a request answered [`Response::Ok`].
    pub async fn ask<T: TryFrom<Response, Error = Error>>(
        &self,
        request: Request,
    ) -> Result<T, Error> {
        T::try_from(self.request(request).await?)
    }

    /// Opens the push stream: the receiver yields pushes until the monitor goes away.
    pub async fn subscribe(&self) -> Result<tokio::sync::mpsc::Receiver<Push>, Error> {
        let mut conn = self.open().await?;
        write_line(
            &mut conn.send,
            &Envelope {
                id: 1,
                request: Request::Subscribe,
            },
        )
        .await
        .map_err(connection_failed)?;
        match next_line(&mut conn.recv).await? {
            ServerLine::Reply(r) if r.result.is_ok() => {}
            other => return Err(unexpected(format!("subscription refused: {other:?}"))),
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            // Keep the send half alive: dropping it would tell the monitor we left.
            let _send = conn.send;
            while let Ok(ServerLine::Push(p)) = next_line(&mut conn.recv).await {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

async fn next_line(recv: &mut BufReader<RecvHalf>) -> Result<ServerLine, Error> {
    let mut line = String::new();
    match read_line(recv, &mut line)
        .await
        .map_err(connection_failed)?
    {
        None => Err(unexpected("the monitor closed the connection".into())),
        Some(()) => serde_json::from_str(&line).map_err(|e| unexpected(e.to_string())),
    }
}

fn connection_failed(e: std::io::Error) -> Error {
    Error::MonitorConnection(format!(
        "the connection to the Alarm Tray monitor failed: {e}"
    ))
}

fn unexpected(what: String) -> Error {
    Error::MonitorConnection(format!(
        "the Alarm Tray monitor sent something unexpected: {what}"
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::protocol::{Info, Response};
    use super::super::server::{bind, serve, Handler};
    use super::*;

    struct Echo;
    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Result<Response, Error> {
            match request {
                Request::Info => Ok(Response::Info(Info {
                    version: "t".into(),
                    data_dir: String::new(),
                    log_dir: String::new(),
                    demo: false,
                    notice: None,
                    language: "en".into(),
                })),
                Request::HasSecret { .. } => Err(Error::Keyring("keyring locked".into())),
                _ => Ok(Response::Ok),
            }
        }
    }

    #[tokio::test]
    async fn request_reply_push_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let (push_tx, _) = tokio::sync::broadcast::channel(8);
        let listener = bind(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only the user may open the socket");
        }
        let server = tokio::spawn(serve(listener, Arc::new(Echo), push_tx.clone()));
        let client = Client::new(&path);
        match client.request(Request::Info).await.unwrap() {
            Response::Info(i) => assert_eq!(i.version, "t"),
            other => panic!("unexpected {other:?}"),
        }
        let key = crate::secrets::SecretKey::ElementApiKey("a".into());
        let err = client
            .request(Request::HasSecret { key })
            .await
            .unwrap_err();
        assert_eq!(err, Error::Keyring("keyring locked".into()));
        assert_eq!(err.to_string(), "keyring locked");
        // Typed answers: the shape asked for, or an error when the monitor answers another.
        let info: Info = client.ask(Request::Info).await.unwrap();
        assert_eq!(info.version, "t");
        let wrong = client.ask::<Info>(Request::Status).await.unwrap_err();
        assert_eq!(wrong.kind(), "internal", "{wrong}");

        let mut pushes = client.subscribe().await.unwrap();
        // The subscription is registered once the reply came back; a push now must arrive.
        push_tx.send(Push::HistoryChanged).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(Push::HistoryChanged));
        server.abort();
    }

    #[tokio::test]
    async fn no_monitor_says_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let err = Client::new(&dir.path().join("none.sock"))
            .request(Request::Info)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "monitor_not_running", "{err}");
        assert!(
            err.to_string().starts_with("Alarm Tray is not running"),
            "{err}"
        );
    }
}
