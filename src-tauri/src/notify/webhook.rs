//! Escalation webhooks (issue 21): one POST of a critical alarm nobody acknowledged, in one of
//! three shapes — plain JSON, ntfy (text body with `Title`, `Priority` and `Tags` headers) and
//! `{"text": …}`, which Slack and Microsoft Teams incoming webhooks both accept.
//!
//! One call is one attempt; the engine decides when to try again (on its clock, so tests
//! drive retries with a simulated one). The token comes from the keyring at send time and
//! only goes to the origin it was stored for. Error texts never carry the URL (Slack and
//! Teams keep their secret in it) or the token.

use std::time::Duration;

use serde::Serialize;

use crate::secret_binding;
use crate::secrets::{SecretKey, SecretStore};
use crate::settings::{Webhook, WebhookKind};

/// Longest wait for one attempt: a hung receiver must not hold an escalation for long.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook URL is not valid")]
    Url,
    #[error("the URL needs a token ({{token}}) and none is stored")]
    TokenMissing,
    #[error("the stored token was saved for {stored_for}, not for {now}; save it again")]
    TokenElsewhere { stored_for: String, now: String },
    #[error("the keyring could not be read: {0}")]
    Keyring(String),
    #[error("the webhook could not be reached: {0}")]
    Unreachable(String),
    #[error("the webhook answered HTTP {0}")]
    Status(u16),
}

/// What is sent about one alarm. Plain text: receivers render it as they like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// 0 for a test message.
    pub alarm_id: i64,
    pub title: String,
    pub body: String,
    pub sensor: Option<String>,
    pub name: Option<String>,
    pub condition: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub limit: Option<String>,
    /// When the alarm became critical (Unix ms).
    pub critical_since_ms: i64,
    pub unacknowledged_mins: i64,
    pub test: bool,
}

impl Message {
    /// The message of the window's Test button.
    pub fn test(now_ms: i64) -> Self {
        Message {
            alarm_id: 0,
            title: "Alarm Tray test".into(),
            body: "This is a test of the escalation webhook. No alarm is active.".into(),
            sensor: None,
            name: None,
            condition: None,
            value: None,
            unit: None,
            limit: None,
            critical_since_ms: now_ms,
            unacknowledged_mins: 0,
            test: true,
        }
    }
}

/// Headers and body of one request: pure, so each shape is tested without a socket.
pub fn request_parts(kind: WebhookKind, m: &Message) -> (Vec<(&'static str, String)>, Vec<u8>) {
    match kind {
        WebhookKind::Json => {
            let body = serde_json::json!({
                "app": "Alarm Tray",
                "event": if m.test { "test" } else { "alarm_escalated" },
                "title": m.title,
                "text": m.body,
                "alarm": m,
            });
            (
                vec![("content-type", "application/json".into())],
                body.to_string().into_bytes(),
            )
        }
        WebhookKind::Ntfy => {
            // Header values must be visible ASCII for many proxies: ntfy reads RFC 2047
            // for the rest, so a non-ASCII title goes encoded.
            let (priority, tags) = if m.test {
                ("default", "test_tube")
            } else {
                ("urgent", "rotating_light,alarm")
            };
            (
                vec![
                    ("content-type", "text/plain; charset=utf-8".into()),
                    ("title", header_text(&m.title)),
                    ("priority", priority.into()),
                    ("tags", tags.into()),
                ],
                m.body.clone().into_bytes(),
            )
        }
        WebhookKind::Slack => {
            let body = serde_json::json!({ "text": format!("{}\n{}", m.title, m.body) });
            (
                vec![("content-type", "application/json".into())],
                body.to_string().into_bytes(),
            )
        }
    }
}

/// `text` as a header value: itself when printable ASCII, else RFC 2047 base64 UTF-8.
fn header_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        clean
    } else {
        use base64::Engine as _;
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
        )
    }
}

/// The stored token of `hook`, if it may go to the hook's URL. Blocking (keyring).
pub fn stored_token(store: &SecretStore, hook: &Webhook) -> Result<Option<String>, WebhookError> {
    let key = SecretKey::WebhookToken(hook.id.clone());
    let token = store
        .get(&key)
        .map_err(|e| WebhookError::Keyring(e.to_string()))?;
    if token.is_none() {
        return Ok(None);
    }
    let stored_for = store
        .binding(&key)
        .map_err(|e| WebhookError::Keyring(e.to_string()))?;
    let now = secret_binding::webhook_token_origin(hook);
    secret_binding::check(&key, stored_for.as_deref(), now.as_deref(), None).map_err(|m| {
        WebhookError::TokenElsewhere {
            stored_for: m.stored_for,
            now: m.now,
        }
    })?;
    Ok(token)
}

/// One attempt: POSTs `m` to `hook` with `token`. Any 2xx is delivered.
pub async fn send(hook: &Webhook, m: &Message, token: Option<&str>) -> Result<(), WebhookError> {
    let in_url = hook.url.contains("{token}");
    let url = match (in_url, token) {
        (true, Some(t)) => hook.url.replace("{token}", t),
        (true, None) => return Err(WebhookError::TokenMissing),
        (false, _) => hook.url.clone(),
    };
    let url = url::Url::parse(&url).map_err(|_| WebhookError::Url)?;
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| WebhookError::Unreachable(e.without_url().to_string()))?;
    let (headers, body) = request_parts(hook.kind, m);
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let (false, Some(t)) = (in_url, token) {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| WebhookError::Unreachable(e.without_url().to_string()))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(status.as_u16()))
    }
}

/// [`stored_token`] then [`send`]: what the engine runs per attempt. A keyring that cannot
/// be read stops only hooks that need a token in their URL; others go without one.
pub async fn deliver(hook: Webhook, m: Message) -> Result<(), WebhookError> {
    let h = hook.clone();
    let token = tokio::task::spawn_blocking(move || stored_token(&SecretStore, &h))
        .await
        .map_err(|e| WebhookError::Keyring(e.to_string()))?;
    let token = match token {
        Ok(t) => t,
        Err(WebhookError::Keyring(e)) if !hook.url.contains("{token}") => {
            tracing::warn!(webhook = %hook.id, "webhook token not read ({e}); sending without");
            None
        }
        Err(e) => return Err(e),
    };
    send(&hook, &m, token.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            alarm_id: 7,
            title: "Critical: Fridge 2 over 8 °C".into(),
            body: "9.5 °C (limit 8 °C) since 14:02, not acknowledged for 15 min".into(),
            sensor: Some("s1".into()),
            name: Some("Fridge 2".into()),
            condition: Some("Upper limit".into()),
            value: Some(9.5),
            unit: Some("°C".into()),
            limit: Some("8 °C".into()),
            critical_since_ms: 1_000,
            unacknowledged_mins: 15,
            test: false,
        }
    }

    #[test]
    fn json_body_carries_the_alarm() {
        let (h, b) = request_parts(WebhookKind::Json, &msg());
        assert_eq!(h, vec![("content-type", "application/json".to_string())]);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["event"], "alarm_escalated");
        assert_eq!(v["alarm"]["alarm_id"], 7);
        assert_eq!(v["alarm"]["unacknowledged_mins"], 15);
    }

    #[test]
    fn ntfy_puts_title_priority_and_tags_in_headers() {
        let (h, b) = request_parts(WebhookKind::Ntfy, &msg());
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        // The title has a degree sign: RFC 2047, which ntfy decodes.
        let title = get("title").unwrap();
        assert!(title.starts_with("=?UTF-8?B?"), "{title}");
        assert_eq!(get("priority").as_deref(), Some("urgent"));
        assert_eq!(get("tags").as_deref(), Some("rotating_light,alarm"));
        assert_eq!(String::from_utf8(b).unwrap(), msg().body);
        let (h, _) = request_parts(WebhookKind::Ntfy, &Message::test(0));
        assert!(h.contains(&("title", "Alarm Tray test".to_string())));
    }

    #[test]
    fn slack_and_teams_get_one_text() {
        let (_, b) = request_parts(WebhookKind::Slack, &msg());
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert!(v["text"]
            .as_str()
            .unwrap()
            .starts_with("Critical: Fridge 2"));
    }

    #[tokio::test]
    async fn a_token_in_the_url_never_reaches_the_error() {
        let hook = Webhook {
            id: "w".into(),
            url: "http://127.0.0.1:9/services/{token}".into(),
            ..Webhook::default()
        };
        assert_eq!(
            send(&hook, &msg(), None).await,
            Err(WebhookError::TokenMissing)
        );
        let e = send(&hook, &msg(), Some("T0P-SECRET")).await.unwrap_err();
        assert!(matches!(e, WebhookError::Unreachable(_)), "{e:?}");
        assert!(!e.to_string().contains("T0P-SECRET"), "{e}");
    }
}
