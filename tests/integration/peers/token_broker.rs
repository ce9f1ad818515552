//! A Saveris-compatible peer for token expiry, in process on 127.0.0.1: a Data-API-style
//! login that hands out short-lived JWTs, and a STOMP-over-WebSocket broker that refuses
//! expired tokens at CONNECT and throws a session out with an ERROR frame the moment its
//! token expires. Messages wait in one queue; unacknowledged ones go back to it (flagged
//! redelivered) when a session ends.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alarm_tray::feeds::saveris::stomp::{self, Command as StompCommand, Decoder, Frame};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

pub struct TokenBroker {
    state: Arc<Mutex<TokenState>>,
    more: Arc<Notify>,
    pub login_port: u16,
    pub ws_port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the broker saw, for the test's figures and assertions.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenCounts {
    pub logins: u32,
    /// Sessions accepted at CONNECT.
    pub connects: u32,
    /// CONNECTs refused because their token had already expired.
    pub refused_expired: u32,
    /// Sessions thrown out because their token expired while they ran.
    pub kicked_expired: u32,
}

#[derive(Default)]
struct TokenState {
    /// (ack id, body, redelivered), oldest first; not yet acknowledged.
    queue: Vec<(String, String, bool)>,
    in_flight: HashSet<String>,
    next: u64,
    counts: TokenCounts,
}

impl TokenBroker {
    /// Starts both listeners; every token the login hands out lives `token_life`.
    pub async fn start(token_life: Duration) -> TokenBroker {
        let state: Arc<Mutex<TokenState>> = Default::default();
        let more = Arc::new(Notify::new());
        let login = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (login_port, ws_port) = (
            login.local_addr().unwrap().port(),
            ws.local_addr().unwrap().port(),
        );
        let st = state.clone();
        let login_task = tokio::spawn(async move {
            while let Ok((s, _)) = login.accept().await {
                tokio::spawn(serve_login(s, st.clone(), token_life));
            }
        });
        let (st, mo) = (state.clone(), more.clone());
        let ws_task = tokio::spawn(async move {
            while let Ok((s, _)) = ws.accept().await {
                tokio::spawn(session(s, st.clone(), mo.clone()));
            }
        });
        TokenBroker {
            state,
            more,
            login_port,
            ws_port,
            tasks: vec![login_task, ws_task],
        }
    }

    /// Queues one message for whichever session takes it.
    pub fn publish(&self, body: String) {
        let mut st = self.state.lock().unwrap();
        st.next += 1;
        let id = format!("m-{}", st.next);
        st.queue.push((id, body, false));
        drop(st);
        self.more.notify_waiters();
    }

    pub fn counts(&self) -> TokenCounts {
        self.state.lock().unwrap().counts
    }
}

impl Drop for TokenBroker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// An unsigned JWT with `exp` and a serial number (so that no two tokens are equal).
fn jwt(exp: i64, n: u32) -> String {
    use base64::Engine;
    let b = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2ln",
        b(json!({"alg": "none"})),
        b(json!({"exp": exp, "n": n}))
    )
}

fn jwt_exp(token: &str) -> i64 {
    alarm_tray::feeds::saveris::auth::jwt_claims(token)
        .and_then(|c| c["exp"].as_i64())
        .unwrap_or(0)
}

/// One login: any request gets a fresh token as `{"IdToken": …}`.
async fn serve_login(mut s: TcpStream, st: Arc<Mutex<TokenState>>, token_life: Duration) {
    use tokio::io::AsyncWriteExt;
    if !read_request(&mut s).await {
        return;
    }
    let n = {
        let mut st = st.lock().unwrap();
        st.counts.logins += 1;
        st.counts.logins
    };
    let exp =
        (jiff::Timestamp::now() + jiff::SignedDuration::try_from(token_life).unwrap()).as_second();
    let body = json!({"IdToken": jwt(exp, n)}).to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Reads an HTTP request's headers, then the body of content-length bytes; false when the
/// client went away first.
async fn read_request(s: &mut TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return true;
            }
        }
    }
}

fn message(f: Frame) -> Message {
    Message::binary(stomp::encode(&f))
}

/// One STOMP session: CONNECT with a bearer token, then messages out and ACKs in until the
/// client leaves or its token expires.
async fn session(s: TcpStream, st: Arc<Mutex<TokenState>>, more: Arc<Notify>) {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let cb = |_req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        resp.headers_mut()
            .insert("Sec-WebSocket-Protocol", "v12.stomp".parse().unwrap());
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
        return;
    };
    let mut dec = Decoder::new();
    let Some(exp) = accept_connect(&mut ws, &mut dec, &st).await else {
        return;
    };
    let mut sub: Option<String> = None;
    let mut mine: HashSet<String> = HashSet::new();
    let expires = tokio::time::sleep(Duration::from_millis(
        ((exp - jiff::Timestamp::now().as_second()).max(0) * 1000) as u64,
    ));
    tokio::pin!(expires);
    loop {
        if let Some(sid) = &sub {
            hand_out(&mut ws, sid, &st, &mut mine).await;
        }
        let notified = more.notified();
        tokio::select! {
            _ = &mut expires => {
                st.lock().unwrap().counts.kicked_expired += 1;
                let _ = ws.send(message(Frame::new(StompCommand::Error).with_header("message", "invalid authorization: token expired"))).await;
                break;
            }
            _ = notified => {}
            msg = ws.next() => {
                match msg {
                    Some(Ok(Message::Text(t))) => dec.push(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => dec.push(&b),
                    Some(Ok(_)) => {}
                    _ => break,
                }
                if take_client_frames(&mut dec, &mut sub, &st, &mut mine) {
                    break;
                }
            }
        }
    }
    give_back(&st, &mine);
    more.notify_waiters();
    let _ = ws.close(None).await;
}

/// Reads the first frame as a CONNECT and checks its bearer token: the token's expiry when
/// the session is accepted, None when it was refused (or the client left first).
async fn accept_connect(ws: &mut Ws, dec: &mut Decoder, st: &Mutex<TokenState>) -> Option<i64> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => dec.push(t.as_bytes()),
            Some(Ok(Message::Binary(b))) => dec.push(&b),
            Some(Ok(_)) => continue,
            _ => return None,
        }
        if let Ok(Some(f)) = dec.next_frame() {
            let token = f
                .header("Authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or("");
            let exp = jwt_exp(token);
            if exp <= jiff::Timestamp::now().as_second() {
                st.lock().unwrap().counts.refused_expired += 1;
                let _ = ws
                    .send(message(
                        Frame::new(StompCommand::Error)
                            .with_header("message", "invalid authorization"),
                    ))
                    .await;
                let _ = ws.close(None).await;
                return None;
            }
            st.lock().unwrap().counts.connects += 1;
            let _ = ws
                .send(message(
                    Frame::new(StompCommand::Connected)
                        .with_header("version", "1.2")
                        .with_header("heart-beat", "0,0")
                        .with_header("server", "token-broker"),
                ))
                .await;
            return Some(exp);
        }
    }
}

/// Sends subscription `sid` what is waiting and not in flight in another session.
async fn hand_out(ws: &mut Ws, sid: &str, st: &Mutex<TokenState>, mine: &mut HashSet<String>) {
    let batch: Vec<(String, String, bool)> = {
        let mut st = st.lock().unwrap();
        let todo: Vec<(String, String, bool)> = st
            .queue
            .iter()
            .filter(|(id, _, _)| !st.in_flight.contains(id))
            .cloned()
            .collect();
        for (id, _, _) in &todo {
            st.in_flight.insert(id.clone());
        }
        todo
    };
    for (id, body, again) in batch {
        mine.insert(id.clone());
        let mut f = Frame::new(StompCommand::Message)
            .with_header("subscription", sid)
            .with_header("destination", "/queue/u/alarms")
            .with_header("message-id", id.clone())
            .with_header("ack", id.clone());
        if again {
            f = f.with_header("redelivered", "true");
        }
        if ws
            .send(message(f.with_body(body.into_bytes())))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Acts on every complete client frame (SUBSCRIBE, ACK, DISCONNECT); true when the client
/// said DISCONNECT.
fn take_client_frames(
    dec: &mut Decoder,
    sub: &mut Option<String>,
    st: &Mutex<TokenState>,
    mine: &mut HashSet<String>,
) -> bool {
    let mut done = false;
    while let Ok(Some(f)) = dec.next_frame() {
        match f.command {
            StompCommand::Subscribe => *sub = f.header("id").map(str::to_owned),
            StompCommand::Ack => {
                if let Some(id) = f.header("id") {
                    let mut st = st.lock().unwrap();
                    st.queue.retain(|(q, _, _)| q != id);
                    st.in_flight.remove(id);
                    mine.remove(id);
                }
            }
            StompCommand::Disconnect => done = true,
            _ => {}
        }
    }
    done
}

/// What a session did not acknowledge goes back to the queue, flagged as redelivered.
fn give_back(st: &Mutex<TokenState>, mine: &HashSet<String>) {
    let mut st = st.lock().unwrap();
    for id in mine {
        st.in_flight.remove(id);
    }
    for m in st.queue.iter_mut() {
        if mine.contains(&m.0) {
            m.2 = true;
        }
    }
}
