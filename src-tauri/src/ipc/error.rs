//! The one error of the monitor boundary: what a request to the monitor, and so a window
//! command, fails with.
//!
//! On the socket and in the webview it is `{"kind": "…", "message": "…"}`. The `kind` is
//! stable snake_case for code to branch on (the window shows its "start Alarm Tray" banner
//! on `monitor_not_running`, never by reading a sentence); the message is a sentence for
//! people, shown as it is. Messages never hold a secret.
//!
//! Each domain error lands in one kind here (the `From` impls below), so the monitor, the
//! window process and `test_connection` answer alike.

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, HistoryError};
use crate::feeds::element::ElementError;
use crate::feeds::saveris::{AuthError, SaverisError};
use crate::notify::NotifyError;
use crate::secrets::SecretError;
use crate::settings::SettingsError;

/// What went wrong at the monitor boundary, by kind; each variant holds the sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[ts(rename = "MonitorError")]
#[non_exhaustive]
pub enum Error {
    /// No monitor answers on the socket, or it went away.
    #[error("{0}")]
    MonitorNotRunning(String),
    /// The monitor speaks another protocol version (an update half done).
    #[error("{0}")]
    ProtocolMismatch(String),
    /// The socket to the monitor failed or carried something unreadable.
    #[error("{0}")]
    MonitorConnection(String),
    /// Something did not answer in time (the monitor, a login server, a broker).
    #[error("{0}")]
    Timeout(String),
    /// The request itself is wrong (invalid settings, an empty secret, a bad address).
    #[error("{0}")]
    InvalidInput(String),
    /// What the request names does not exist (an alarm, an account, an ELEMENT device).
    #[error("{0}")]
    NotFound(String),
    /// A password, passcode or API key is needed and none is typed or stored.
    #[error("{0}")]
    SecretMissing(String),
    /// The settings file or the history database could not be read or written.
    #[error("{0}")]
    Storage(String),
    /// The system keyring is unavailable or refused.
    #[error("{0}")]
    Keyring(String),
    /// A stored secret would go to an endpoint other than the one it was stored for: type
    /// it again, or confirm sending it there (`send_stored_to` in a connection test).
    #[error("{0}")]
    EndpointChanged(String),
    /// The credentials were rejected (user name, password, API key).
    #[error("{0}")]
    LoginFailed(String),
    /// The server refused the connection for another reason (limits, refusals).
    #[error("{0}")]
    ConnectionRejected(String),
    /// The server could not be reached, or dropped the connection.
    #[error("{0}")]
    Network(String),
    /// The server answered, but not as its protocol says.
    #[error("{0}")]
    BadResponse(String),
    /// The desktop refused: notification daemon, autostart entry, starting a process.
    #[error("{0}")]
    Desktop(String),
    /// A fault of Alarm Tray itself (a task that died, a lock poisoned).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The stable name code branches on; the `kind` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MonitorNotRunning(_) => "monitor_not_running",
            Error::ProtocolMismatch(_) => "protocol_mismatch",
            Error::MonitorConnection(_) => "monitor_connection",
            Error::Timeout(_) => "timeout",
            Error::InvalidInput(_) => "invalid_input",
            Error::NotFound(_) => "not_found",
            Error::SecretMissing(_) => "secret_missing",
            Error::Storage(_) => "storage",
            Error::Keyring(_) => "keyring",
            Error::EndpointChanged(_) => "endpoint_changed",
            Error::LoginFailed(_) => "login_failed",
            Error::ConnectionRejected(_) => "connection_rejected",
            Error::Network(_) => "network",
            Error::BadResponse(_) => "bad_response",
            Error::Desktop(_) => "desktop",
            Error::Internal(_) => "internal",
        }
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        match self {
            Error::MonitorNotRunning(m)
            | Error::ProtocolMismatch(m)
            | Error::MonitorConnection(m)
            | Error::Timeout(m)
            | Error::InvalidInput(m)
            | Error::NotFound(m)
            | Error::SecretMissing(m)
            | Error::Storage(m)
            | Error::Keyring(m)
            | Error::EndpointChanged(m)
            | Error::LoginFailed(m)
            | Error::ConnectionRejected(m)
            | Error::Network(m)
            | Error::BadResponse(m)
            | Error::Desktop(m)
            | Error::Internal(m) => m,
        }
    }
}

/// A result of the monitor boundary.
pub type Result<T> = std::result::Result<T, Error>;

impl From<SecretError> for Error {
    fn from(e: SecretError) -> Self {
        Error::Keyring(e.to_string())
    }
}

impl From<crate::secret_binding::Mismatch> for Error {
    fn from(e: crate::secret_binding::Mismatch) -> Self {
        Error::EndpointChanged(e.to_string())
    }
}

impl From<SettingsError> for Error {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Invalid(_) => Error::InvalidInput(e.to_string()),
            SettingsError::Read { .. } | SettingsError::Write { .. } => {
                Error::Storage(e.to_string())
            }
        }
    }
}

impl From<HistoryError> for Error {
    fn from(e: HistoryError) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::History(h) => h.into(),
            EngineError::NoSuchAlarm(_) => Error::NotFound(e.to_string()),
            EngineError::Stopped => Error::Internal(e.to_string()),
            EngineError::CommentRequired(_) | EngineError::InvalidSnooze(_) => {
                Error::InvalidInput(e.to_string())
            }
        }
    }
}

impl From<NotifyError> for Error {
    fn from(e: NotifyError) -> Self {
        Error::Desktop(e.to_string())
    }
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Self {
        let m = e.to_string();
        match e {
            AuthError::WrongCredentials { .. }
            | AuthError::UnknownUser { .. }
            | AuthError::NotConfirmed { .. }
            | AuthError::UnknownClient
            | AuthError::NewPasswordRequired { .. }
            | AuthError::Challenge { .. } => Error::LoginFailed(m),
            AuthError::MissingPassword => Error::SecretMissing(m),
            AuthError::Unreachable { .. } => Error::Network(m),
            AuthError::BadResponse(_) => Error::BadResponse(m),
        }
    }
}

impl From<SaverisError> for Error {
    fn from(e: SaverisError) -> Self {
        let m = e.to_string();
        match e {
            SaverisError::Auth(a) => a.into(),
            SaverisError::Connect { .. } | SaverisError::Closed => Error::Network(m),
            SaverisError::HandshakeTimeout(_) => Error::Timeout(m),
            SaverisError::Refused(_) => Error::ConnectionRejected(m),
            SaverisError::Protocol(_) => Error::BadResponse(m),
            SaverisError::Config(_) => Error::InvalidInput(m),
        }
    }
}

impl From<ElementError> for Error {
    fn from(e: ElementError) -> Self {
        let m = e.to_string();
        match e {
            ElementError::InvalidUrl(_) => Error::InvalidInput(m),
            ElementError::KeyRejected | ElementError::Forbidden(_) => Error::LoginFailed(m),
            ElementError::NotFound(_) => Error::NotFound(m),
            ElementError::Unreachable(_) => Error::Network(m),
            ElementError::Timeout(_) => Error::Timeout(m),
            ElementError::Http(_) | ElementError::Protocol(_) => Error::BadResponse(m),
            ElementError::Refused(..) => Error::ConnectionRejected(m),
            // "ELEMENT asks to wait 40 s": a refusal for now, with the words the picker shows.
            ElementError::RateLimited(_) => Error::ConnectionRejected(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_kind_and_message() {
        let e = Error::MonitorNotRunning("Alarm Tray is not running".into());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "monitor_not_running", "message": "Alarm Tray is not running"})
        );
        let back: Error = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.to_string(), "Alarm Tray is not running");
    }

    #[test]
    fn kind_names_match_the_wire() {
        let all = [
            Error::MonitorNotRunning(String::new()),
            Error::ProtocolMismatch(String::new()),
            Error::MonitorConnection(String::new()),
            Error::Timeout(String::new()),
            Error::InvalidInput(String::new()),
            Error::NotFound(String::new()),
            Error::SecretMissing(String::new()),
            Error::Storage(String::new()),
            Error::Keyring(String::new()),
            Error::EndpointChanged(String::new()),
            Error::LoginFailed(String::new()),
            Error::ConnectionRejected(String::new()),
            Error::Network(String::new()),
            Error::BadResponse(String::new()),
            Error::Desktop(String::new()),
            Error::Internal(String::new()),
        ];
        for e in all {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["kind"], e.kind(), "{e:?}");
        }
    }

    #[test]
    fn feed_errors_land_in_their_kind_with_their_sentence() {
        let wrong: Error = SaverisError::Auth(AuthError::WrongCredentials {
            said: String::new(),
        })
        .into();
        assert_eq!(wrong.kind(), "login_failed");
        assert_eq!(
            wrong.message(),
            "Saveris rejected the user name or password."
        );
        let missing: Error = SaverisError::Auth(AuthError::MissingPassword).into();
        assert_eq!(missing.kind(), "secret_missing");
        let timeout: Error = SaverisError::HandshakeTimeout(10).into();
        assert_eq!(timeout.kind(), "timeout");
        let key: Error = ElementError::KeyRejected.into();
        assert_eq!(
            (key.kind(), key.message()),
            ("login_failed", "API key rejected")
        );
        let gone: Error = ElementError::Unreachable("no route".into()).into();
        assert_eq!(gone.kind(), "network");
        let invalid: Error = SettingsError::Invalid("a rule needs a name".into()).into();
        assert_eq!(
            (invalid.kind(), invalid.message()),
            ("invalid_input", "invalid settings: a rule needs a name")
        );
        let alarm: Error = EngineError::NoSuchAlarm(7).into();
        assert_eq!(alarm.kind(), "not_found");
    }
}
