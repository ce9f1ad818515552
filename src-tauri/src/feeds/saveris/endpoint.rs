//! Where a Saveris account connects, how its CONNECT logs in, and what it subscribes.

use super::auth::TokenSource;
use super::payload::Channel;
use super::SaverisError;
use crate::feeds::connector::is_loopback;
use crate::settings::SaverisAccount;

/// The default Saveris destination form.
pub const DEFAULT_DESTINATION: &str = "/queue/{username}/{channel}";

/// How the STOMP CONNECT authenticates.
#[derive(Clone)]
pub enum StompAuth {
    Bearer(String),
    Login { login: String, passcode: String },
}

impl StompAuth {
    /// STOMP login/passcode: the login from the custom endpoint, the passcode from the
    /// keyring.
    pub fn login(account: &SaverisAccount, passcode: Option<&str>) -> StompAuth {
        StompAuth::Login {
            login: (account.custom.as_ref())
                .map(|c| c.stomp_login.clone())
                .unwrap_or_default(),
            passcode: passcode.unwrap_or_default().to_string(),
        }
    }
}

impl std::fmt::Debug for StompAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StompAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            StompAuth::Login { login, .. } => write!(f, "Login({login}, <redacted>)"),
        }
    }
}

/// Where and what to subscribe, resolved from the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ws_url: String,
    /// The STOMP `host` header.
    pub host: String,
    /// (channel, destination) in subscription order.
    pub destinations: Vec<(Channel, String)>,
    /// `None`: STOMP login/passcode (custom endpoints without a token URL).
    pub token_source: Option<TokenSource>,
}

impl Endpoint {
    pub fn resolve(account: &SaverisAccount) -> Result<Endpoint, SaverisError> {
        if account.username.trim().is_empty() {
            return Err(SaverisError::Config("the user name is empty".into()));
        }
        let (ws_url, pattern) = match &account.custom {
            Some(c) => (
                c.ws_url.trim().to_string(),
                if c.destination_pattern.trim().is_empty() {
                    DEFAULT_DESTINATION
                } else {
                    c.destination_pattern.trim()
                }
                .to_string(),
            ),
            None => (
                format!(
                    "wss://tds-real-time-api.{}.{}.savr.saveris.net/web-socket",
                    account.region.as_str(),
                    account.environment.letter()
                ),
                DEFAULT_DESTINATION.to_string(),
            ),
        };
        let url = url::Url::parse(&ws_url)
            .map_err(|e| SaverisError::Config(format!("the WebSocket URL is invalid ({e})")))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(SaverisError::Config(
                "the WebSocket URL must start with ws:// or wss://".into(),
            ));
        }
        // The passcode or token would cross the network in clear.
        if url.scheme() == "ws" && !is_loopback(&url) {
            return Err(SaverisError::Config(
                "ws:// is only allowed for this computer (127.0.0.1, ::1, localhost); use wss://"
                    .into(),
            ));
        }
        // The STOMP `host` header is the server's host name, as the spec recommends; brokers
        // that read it as a virtual host (RabbitMQ) get it from a `vhost` query parameter
        // of a custom URL.
        let host = url
            .query_pairs()
            .find(|(k, _)| k == "vhost")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| url.host_str().unwrap_or_default().to_string());
        let ch = &account.channels;
        let destinations: Vec<(Channel, String)> = [
            (ch.alarms, Channel::Alarms),
            (ch.measurements, Channel::Measurements),
            (ch.measurements_v2, Channel::MeasurementsV2),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| {
            (
                c,
                pattern
                    .replace("{username}", account.username.trim())
                    .replace("{channel}", c.as_str()),
            )
        })
        .collect();
        if destinations.is_empty() {
            return Err(SaverisError::Config("no channel is chosen".into()));
        }
        Ok(Endpoint {
            ws_url,
            host,
            destinations,
            token_source: TokenSource::for_account(account),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Channels, CustomEndpoint};

    #[test]
    fn endpoint_from_account() {
        let mut a = SaverisAccount {
            username: "alice".into(),
            channels: Channels {
                alarms: true,
                measurements: false,
                measurements_v2: true,
            },
            ..Default::default()
        };
        let e = Endpoint::resolve(&a).unwrap();
        assert_eq!(
            e.ws_url,
            "wss://tds-real-time-api.eu.p.savr.saveris.net/web-socket"
        );
        assert_eq!(e.host, "tds-real-time-api.eu.p.savr.saveris.net");
        assert_eq!(
            e.destinations,
            vec![
                (Channel::Alarms, "/queue/alice/alarms".to_string()),
                (
                    Channel::MeasurementsV2,
                    "/queue/alice/measurements-v2".to_string()
                )
            ]
        );
        a.custom = Some(CustomEndpoint {
            ws_url: "ws://127.0.0.1:1/ws".into(),
            destination_pattern: "/queue/{username}.{channel}".into(),
            ..Default::default()
        });
        let e = Endpoint::resolve(&a).unwrap();
        assert_eq!(e.destinations[0].1, "/queue/alice.alarms");
        assert_eq!(e.host, "127.0.0.1");
        a.custom.as_mut().unwrap().ws_url = "ws://127.0.0.1:1/ws?vhost=%2F".into();
        assert_eq!(Endpoint::resolve(&a).unwrap().host, "/");
        assert!(e.token_source.is_none());
        a.channels = Channels {
            alarms: false,
            measurements: false,
            measurements_v2: false,
        };
        assert!(Endpoint::resolve(&a).is_err());
    }
}
