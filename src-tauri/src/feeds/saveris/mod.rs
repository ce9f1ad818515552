//! Saveris Push API feed (STOMP 1.2 over WebSocket).
//!
//! One connection per account carries all chosen channels (the server allows 4 per user).
//! Messages are acknowledged (`ack:client-individual`) only after the engine has stored
//! them, so a crash loses nothing and the broker redelivers what was not stored.

pub mod auth;
pub mod dataapi;
pub mod endpoint;
pub mod gate;
pub mod payload;
pub mod session;
pub mod state;
pub mod stomp;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::{Clock, SystemClock};
use crate::event::{Delivery, FeedStatus};
use crate::feeds::connector::{self, Status};
use crate::feeds::FeedHandle;
use crate::settings::SaverisAccount;

pub use auth::{AuthError, Token};

/// Everything one feed needs. `Debug` hides the secrets.
#[derive(Clone)]
pub struct SaverisFeedConfig {
    pub account: SaverisAccount,
    /// For the token login (Data API or Cognito).
    pub password: Option<String>,
    /// STOMP passcode for custom endpoints without a token URL.
    pub passcode: Option<String>,
    /// Limit for the WebSocket handshake plus CONNECT → CONNECTED.
    pub connect_timeout: Duration,
    /// Heart-beats we offer (ms): (we send every, we want every).
    pub heart_beat: (u32, u32),
    /// Largest STOMP frame accepted.
    pub max_frame: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A link up at least this long resets the backoff.
    pub stable_after: Duration,
    /// The least a rate limit makes us wait (the vendor advises 10 min whatever the figure
    /// says), and the ceiling of the growing max-connections wait.
    pub default_wait: Duration,
    /// Token renewal: how long to wait for in-flight confirmations before reconnecting.
    pub drain_timeout: Duration,
    pub http_timeout: Duration,
    pub clock: Arc<dyn Clock>,
    /// The account's token, shared with its Data API client (issue 20).
    pub token: dataapi::TokenSlot,
}

impl fmt::Debug for SaverisFeedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaverisFeedConfig")
            .field("account", &self.account)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("passcode", &self.passcode.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("heart_beat", &self.heart_beat)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl SaverisFeedConfig {
    /// The defaults of the issue: heart-beats 10 s both ways, backoff 0.5 s … 60 s with
    /// full jitter, 10 min wait when a limit names no figure, 1 MiB frames.
    pub fn new(
        account: SaverisAccount,
        password: Option<String>,
        passcode: Option<String>,
    ) -> Self {
        SaverisFeedConfig {
            account,
            password,
            passcode,
            connect_timeout: Duration::from_secs(15),
            heart_beat: (10_000, 10_000),
            max_frame: stomp::DEFAULT_MAX_FRAME,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            stable_after: connector::STABLE_AFTER,
            default_wait: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(15),
            clock: Arc::new(SystemClock),
            token: dataapi::TokenSlot::default(),
        }
    }
}

/// Errors for people: each `Display` is a sentence the settings window can show.
#[derive(Debug, thiserror::Error)]
pub enum SaverisError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Could not connect to {host}: {reason}.")]
    Connect { host: String, reason: String },
    #[error("The server did not complete the STOMP handshake within {0} s.")]
    HandshakeTimeout(u64),
    #[error("The server refused the connection: {0}.")]
    Refused(String),
    #[error("The server does not speak STOMP as expected: {0}.")]
    Protocol(String),
    #[error("The server closed the connection during the handshake.")]
    Closed,
    #[error("The account settings are incomplete: {0}.")]
    Config(String),
}

/// Starts the feed task. Statuses go to `status` (and to the handle's watchers);
/// deliveries to `deliveries` (bounded: back-pressure slows reading, never drops).
pub fn spawn(
    cfg: SaverisFeedConfig,
    deliveries: mpsc::Sender<Delivery>,
    status: mpsc::UnboundedSender<FeedStatus>,
) -> FeedHandle {
    let (stop_tx, stop_rx) = FeedHandle::channel();
    let status = Status::new(
        FeedStatus::new(format!("saveris:{}", cfg.account.id), cfg.account.label()),
        status,
    );
    let watched = vec![status.subscribe()];
    let task = tokio::spawn(session::run(cfg, deliveries, status, stop_rx));
    FeedHandle::new(stop_tx, task, watched)
}

/// Logs in and opens a STOMP session, then disconnects: `Ok("Connected to <server> as
/// <username>")` or an error whose `Display` is a sentence for people.
pub async fn test_connection(
    account: &SaverisAccount,
    password: Option<&str>,
    passcode: Option<&str>,
) -> Result<String, SaverisError> {
    session::test_connection(account, password, passcode).await
}
