//! The monitor's side: accepts windows, answers requests, streams pushes.
// See client.rs on the deprecated `split`.
#![allow(deprecated)]

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use interprocess::local_socket::tokio::{prelude::*, Listener, Stream};
use interprocess::local_socket::ListenerOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

use super::protocol::{
    Envelope, Hello, Push, Reply, Request, Response, ServerLine, Welcome, MAX_LINE,
    PROTOCOL_VERSION,
};
use super::Error;

/// Answers the window's requests. An error's kind is for the window's code, its message
/// for people.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Result<Response, Error>> + Send;
}

/// Binds the monitor's socket (mode 0600). The caller holds the single-instance lock, so a
/// socket file already there is a leftover of a crashed monitor and is replaced.
pub fn bind(path: &Path) -> std::io::Result<Listener> {
    let name = super::socket_name(path)?;
    let opts = ListenerOptions::new().name(name).try_overwrite(true);
    #[cfg(unix)]
    let opts = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        opts.mode(0o600)
    };
    opts.create_tokio()
}

/// Serves connections until the listener fails. Each connection is handled on its own task.
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    pushes: broadcast::Sender<Push>,
) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                let handler = handler.clone();
                let pushes = pushes.subscribe();
                tokio::spawn(async move {
                    if let Err(e) = connection(conn, handler, pushes).await {
                        tracing::debug!(error = %e, "window connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a window connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of stream.
pub(crate) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut String,
) -> std::io::Result<Option<()>> {
    buf.clear();
    let n = r.take(MAX_LINE as u64 + 1).read_line(buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(Some(()))
}

pub(crate) async fn write_line<W: tokio::io::AsyncWrite + Unpin, T: serde::Serialize>(
    w: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.flush().await
}

async fn connection<H: Handler>(
    conn: Stream,
    handler: Arc<H>,
    mut pushes: broadcast::Receiver<Push>,
) -> std::io::Result<()> {
    let (recv, mut send) = conn.split();
    let mut recv = BufReader::new(recv);
    let mut line = String::new();
    if read_line(&mut recv, &mut line).await?.is_none() {
        return Ok(());
    }
    let hello: Hello = match serde_json::from_str(&line) {
        Ok(h) => h,
        Err(e) => {
            let refusal = Error::MonitorConnection(format!("expected a hello line ({e})"));
            write_line(&mut send, &ServerLine::Refused(refusal)).await?;
            return Ok(());
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        let refusal = Error::ProtocolMismatch(format!(
            "protocol {} is not supported (monitor speaks {PROTOCOL_VERSION})",
            hello.protocol
        ));
        write_line(&mut send, &ServerLine::Refused(refusal)).await?;
        return Ok(());
    }
    write_line(
        &mut send,
        &ServerLine::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            version: crate::VERSION.into(),
        }),
    )
    .await?;
    loop {
        if read_line(&mut recv, &mut line).await?.is_none() {
            return Ok(());
        }
        let env: Envelope = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(e) => {
                // An id we cannot read: answer with id 0 so the client sees why.
                let reply = Reply {
                    id: 0,
                    result: Err(Error::InvalidInput(format!("unreadable request ({e})"))),
                };
                write_line(&mut send, &ServerLine::Reply(reply)).await?;
                continue;
            }
        };
        if matches!(env.request, Request::Subscribe) {
            let reply = Reply {
                id: env.id,
                result: Ok(Response::Ok),
            };
            write_line(&mut send, &ServerLine::Reply(reply)).await?;
            return stream_pushes(recv, send, &mut pushes).await;
        }
        let result = handler.handle(env.request).await;
        write_line(&mut send, &ServerLine::Reply(Reply { id: env.id, result })).await?;
    }
}

async fn stream_pushes<R, W>(
    mut recv: R,
    mut send: W,
    pushes: &mut broadcast::Receiver<Push>,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut sink = String::new();
    loop {
        tokio::select! {
            // The window closed its end (or wrote something it should not): stop.
            r = read_line(&mut recv, &mut sink) => {
                if r?.is_none() { return Ok(()); }
            }
            p = pushes.recv() => match p {
                Ok(push) => write_line(&mut send, &ServerLine::Push(push)).await?,
                // A slow window missed some pushes: tell it to re-query everything.
                Err(broadcast::error::RecvError::Lagged(_)) => write_line(&mut send, &ServerLine::Push(Push::HistoryChanged)).await?,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}
