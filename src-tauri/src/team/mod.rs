//! Team sharing over the site's MQTT 5 broker (issue 26; design in docs/TEAM.md).
//!
//! A feed and a sink at once: what other PCs shared arrives as verified [`link::Incoming`]
//! messages, what this PC stored leaves from the history's outbox. Like the feeds it never
//! names the engine (the root wires both), and it never imports tauri.

pub mod envelope;
pub mod link;

use std::time::Duration;

pub use envelope::Kind;
pub use link::{Incoming, Outbox, OutboxRow, Peer, PresenceFeeds, TeamLink, TeamStatus};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TeamError {
    #[error("the broker URL is not valid: {0}")]
    Url(String),
    #[error("{0} may hold only letters, digits, '-' and '_'")]
    Name(&'static str),
    #[error("no site key is stored: every PC of the site needs the same key")]
    NoSiteKey,
    #[error("{0}")]
    Connect(String),
}

/// Everything the link needs. The password and the site key come from the keyring.
#[derive(Clone)]
pub struct TeamConfig {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
    pub broker_url: String,
    pub site: String,
    pub pc: String,
    pub user: String,
    pub password: Option<String>,
    pub site_key: Vec<u8>,
}

impl std::fmt::Debug for TeamConfig {
    // Never prints the password or the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamConfig")
            .field("broker_url", &self.broker_url)
            .field("site", &self.site)
            .field("pc", &self.pc)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl TeamConfig {
    /// Checks names (they become topic segments) and the key.
    pub fn validate(&self) -> Result<(), TeamError> {
        parse_broker_url(&self.broker_url)?;
        if !valid_name(&self.site) {
            return Err(TeamError::Name("the site name"));
        }
        if !valid_name(&self.pc) {
            return Err(TeamError::Name("the PC name"));
        }
        if self.site_key.is_empty() {
            return Err(TeamError::NoSiteKey);
        }
        Ok(())
    }

    /// `alarm-tray/<site>`.
    pub fn prefix(&self) -> String {
        format!("alarm-tray/{}", self.site)
    }

    /// `alarm-tray/<site>/<kind>/<tail>`.
    pub fn topic(&self, kind: Kind, tail: &str) -> String {
        format!("{}/{}/{tail}", self.prefix(), kind.as_str())
    }

    /// Fixed per site and PC, so the broker keeps this PC's session between runs.
    pub fn client_id(&self) -> String {
        format!("alarm-tray-{}-{}", self.site, self.pc)
    }
}

/// A topic segment: letters, digits, `-`, `_` (never `+`, `#`, `/`), 1 to 64 characters.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A PC name from a host name: the allowed characters kept, others turned into `-`.
pub fn pc_name_from_host(host: &str) -> String {
    let s: String = host
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "pc".to_string()
    } else {
        s
    }
}

/// This machine's host name, as the default PC name.
pub fn default_pc_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    pc_name_from_host(&host)
}

/// `(tls, host, port)` of a broker URL. `ws://`/`wss://` are refused in this build (the
/// client's websocket transport would add a second TLS stack).
pub fn parse_broker_url(s: &str) -> Result<(bool, String, u16), TeamError> {
    let url = url::Url::parse(s.trim()).map_err(|e| TeamError::Url(e.to_string()))?;
    let (tls, default_port) = match url.scheme() {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "ssl" => (true, 8883),
        // Refused on purpose (docs/TEAM.md, "WebSocket"): rumqttc's websocket transport
        // brings rustls (a second TLS stack beside native-tls) even for ws://.
        "ws" | "wss" => {
            return Err(TeamError::Url(
                "MQTT over WebSocket (ws://, wss://) is not supported: use the broker's MQTT \
                 port, mqtt://host:1883 or mqtts://host:8883 (mosquitto, EMQX and HiveMQ all \
                 serve it)"
                    .into(),
            ))
        }
        other => {
            return Err(TeamError::Url(format!(
                "unknown scheme {other}:// (use mqtt:// or mqtts://)"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TeamError::Url(
            "put the user name in its own field and the password in the keyring, not in the URL"
                .into(),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| TeamError::Url("no host".into()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((tls, host.to_string(), url.port().unwrap_or(default_port)))
}

/// "Test connection": CONNECT with the settings (a throwaway client id, clean start, so the
/// PC's own session is not touched) and wait for the broker's answer.
pub async fn test_connection(cfg: &TeamConfig) -> Result<String, TeamError> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event};
    // The site key only signs: a connection can be tried before it is stored.
    let mut check = cfg.clone();
    check.site_key = b"-".to_vec();
    check.validate()?;
    let mut o = link::options(&check)?;
    o.set_client_id(format!("{}-test", cfg.client_id()));
    o.set_clean_start(true);
    o.set_connect_properties(Default::default());
    let (client, mut el) = AsyncClient::new(o, 8);
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    match r {
        Ok(Ok(())) => Ok(format!(
            "connected to {} as {}",
            cfg.broker_url.trim(),
            if cfg.user.is_empty() {
                "anonymous"
            } else {
                cfg.user.as_str()
            }
        )),
        Ok(Err(e)) => Err(TeamError::Connect(format!(
            "the broker refused or failed: {e}"
        ))),
        Err(_) => Err(TeamError::Connect(
            "the broker did not answer within 10 s".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1"),
            Ok((false, "127.0.0.1".into(), 1883))
        );
        assert_eq!(
            parse_broker_url("mqtts://broker.lab:9000"),
            Ok((true, "broker.lab".into(), 9000))
        );
        assert!(parse_broker_url("mqtt://u:p@host").is_err());
        assert!(parse_broker_url("http://host").is_err());
        assert!(parse_broker_url("wss://host/mqtt").is_err());
    }

    #[test]
    fn names_become_safe_topic_segments() {
        assert!(valid_name("lab-2_b"));
        assert!(!valid_name("lab/2"));
        assert!(!valid_name("#"));
        assert!(!valid_name(""));
        assert_eq!(pc_name_from_host("pc.lab one"), "pc-lab-one");
        assert_eq!(pc_name_from_host(""), "pc");
    }

    #[test]
    fn the_session_is_persistent_and_the_will_is_signed() {
        let cfg = TeamConfig {
            broker_url: "mqtt://127.0.0.1:1".into(),
            site: "lab1".into(),
            pc: "pc-a".into(),
            user: "u".into(),
            password: Some("secret".into()),
            site_key: b"k".to_vec(),
        };
        let o = link::options(&cfg).expect("options");
        assert_eq!(o.client_id(), "alarm-tray-lab1-pc-a");
        assert!(!o.clean_start());
        assert!(o.session_expiry_interval() >= Some(7 * 24 * 3600));
        assert!(o.manual_acks());
        let will = o.last_will().expect("a last will");
        let topic = String::from_utf8_lossy(&will.topic).into_owned();
        assert_eq!(topic, "alarm-tray/lab1/presence/pc-a");
        assert!(will.retain);
        let env = envelope::open(b"k", &topic, &will.message).expect("signed");
        assert_eq!(env.body["online"], false);
        assert!(!format!("{cfg:?}").contains("secret"));
    }
}
