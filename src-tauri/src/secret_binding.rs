//! Where a stored secret may go (issue 18, item 10).
//!
//! A password, STOMP passcode or API key is stored bound to the endpoint it was typed for:
//! the origin (scheme, host, port) of the URL it is sent to — the Saveris token URL or
//! Cognito endpoint, the custom STOMP WebSocket URL, the ELEMENT base URL. The monitor and
//! `watch` send a stored secret only to that origin. After the endpoint changed, the secret
//! must be typed again (storing it binds it anew), or the request must carry an explicit
//! confirm naming the new origin ("send my stored password to host X"); otherwise it is an
//! [`Mismatch`], the `endpoint_changed` error kind at the monitor boundary.
//!
//! The binding is kept in the keyring beside the secret (see
//! [`crate::secrets::SecretStore::binding`]), never in the settings file: the window writes
//! the settings, and a compromised webview must not be able to move a binding along with the
//! endpoint. Secrets stored before bindings existed are bound at start-up to the endpoints of
//! the settings file the monitor wrote ([`bind_unbound`]).

use crate::feeds::saveris::auth::TokenSource;
use crate::secrets::{SecretError, SecretKey, SecretStore};
use crate::settings::{ElementAccount, SaverisAccount, Settings};

/// A stored secret asked for an endpoint other than the one it was stored for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The stored {what} was saved for {stored_for}, not for {now}. Type it again to use it with {now}, or confirm sending the stored {what} there.")]
pub struct Mismatch {
    /// "password", "STOMP passcode", "API key".
    pub what: &'static str,
    pub stored_for: String,
    pub now: String,
}

/// The origin (`https://host:port` form, scheme and host lowercased, default port left out)
/// of a URL; `None` when it is no URL (then nothing can be sent to it either).
pub fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url.trim()).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

/// The words for a secret in sentences.
pub fn what(key: &SecretKey) -> &'static str {
    match key {
        SecretKey::SaverisPassword(_) => "password",
        SecretKey::StompPasscode(_) => "STOMP passcode",
        SecretKey::ElementApiKey(_) => "API key",
        SecretKey::TeamPassword(_) => "broker password",
        SecretKey::TeamSiteKey(_) => "site key",
        SecretKey::WebhookToken(_) => "webhook token",
    }
}

/// Where a Saveris account sends its password: the token URL or the Cognito endpoint.
/// `None`: the account logs in with a STOMP passcode and sends no password.
pub fn saveris_password_origin(account: &SaverisAccount) -> Option<String> {
    match TokenSource::for_account(account)? {
        TokenSource::DataApi { url } => origin(&url),
        TokenSource::Cognito { endpoint, .. } => origin(&endpoint),
    }
}

/// Where a Saveris account sends its STOMP passcode: the custom WebSocket URL (the
/// built-in hosts take a token, never a passcode).
pub fn stomp_passcode_origin(account: &SaverisAccount) -> Option<String> {
    account.custom.as_ref().and_then(|c| origin(&c.ws_url))
}

/// Where an ELEMENT account sends its API key: the base URL (REST and sockets alike).
pub fn element_key_origin(account: &ElementAccount) -> Option<String> {
    origin(&account.base_url)
}

/// Where the team's broker password goes (issue 26): `mqtt://host:port` or
/// `mqtts://host:port` of the broker URL, host lowercased, port always written (`url` gives
/// mqtt:// URLs no tuple origin, so it is built here from the parsed URL).
pub fn team_password_origin(broker_url: &str) -> Option<String> {
    let (tls, host, port) = crate::team::parse_broker_url(broker_url).ok()?;
    let scheme = if tls { "mqtts" } else { "mqtt" };
    let host = host.to_ascii_lowercase();
    Some(if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    })
}

/// Where a webhook sends its token: the webhook's URL (with `{token}` standing in).
pub fn webhook_token_origin(hook: &crate::settings::Webhook) -> Option<String> {
    origin(&hook.url.replace("{token}", "token"))
}

/// The origin `key`'s account in `settings` sends it to; `None` when the account is not in
/// the settings or sends the secret nowhere.
pub fn origin_in(settings: &Settings, key: &SecretKey) -> Option<String> {
    match key {
        SecretKey::SaverisPassword(id) => settings
            .saveris
            .iter()
            .find(|a| &a.id == id)
            .and_then(saveris_password_origin),
        SecretKey::StompPasscode(id) => settings
            .saveris
            .iter()
            .find(|a| &a.id == id)
            .and_then(stomp_passcode_origin),
        SecretKey::ElementApiKey(id) => settings
            .element
            .iter()
            .find(|a| &a.id == id)
            .and_then(element_key_origin),
        // Issue 26: the broker password goes to the broker (`mqtt://host:port`); the site
        // key never leaves this PC (it only signs).
        SecretKey::TeamPassword(site) => (settings.team.site.trim() == site)
            .then(|| team_password_origin(&settings.team.broker_url))
            .flatten(),
        SecretKey::TeamSiteKey(_) => None,
        SecretKey::WebhookToken(id) => settings
            .escalation
            .webhooks
            .iter()
            .find(|w| &w.id == id)
            .and_then(webhook_token_origin),
    }
}

/// Whether a stored secret bound to `stored_for` may go to `now`. `confirmed` is the origin
/// (or URL) the user confirmed sending it to; it counts only when it names `now`.
/// A secret going nowhere (`now` is `None`) is not refused: nothing is sent. An unbound
/// secret (`stored_for` is `None`: typed before its account was saved, or stored by the demo)
/// is not refused either: the caller binds it to `now`, its first endpoint.
pub fn check(
    key: &SecretKey,
    stored_for: Option<&str>,
    now: Option<&str>,
    confirmed: Option<&str>,
) -> Result<(), Mismatch> {
    let (Some(stored_for), Some(now)) = (stored_for, now) else {
        return Ok(());
    };
    if stored_for == now {
        return Ok(());
    }
    let confirmed = confirmed.and_then(|c| origin(c).or_else(|| Some(c.trim().to_string())));
    if confirmed.as_deref() == Some(now) {
        return Ok(());
    }
    Err(Mismatch {
        what: what(key),
        stored_for: stored_for.to_string(),
        now: now.to_string(),
    })
}

/// Every secret of an account in `settings` that has no binding yet is bound to the
/// account's endpoint as the settings name it. Blocking (keyring): call from a blocking
/// thread, at start-up with the settings file the monitor wrote, before any request.
pub fn bind_unbound(store: &SecretStore, settings: &Settings) -> Result<usize, SecretError> {
    let keys = settings
        .saveris
        .iter()
        .flat_map(|a| {
            [
                SecretKey::SaverisPassword(a.id.clone()),
                SecretKey::StompPasscode(a.id.clone()),
            ]
        })
        .chain(
            settings
                .element
                .iter()
                .map(|a| SecretKey::ElementApiKey(a.id.clone())),
        )
        .chain(
            Some(SecretKey::TeamPassword(
                settings.team.site.trim().to_string(),
            ))
            .filter(|_| settings.team.enabled),
        );
    let mut bound = 0;
    for key in keys {
        let Some(origin) = origin_in(settings, &key) else {
            continue;
        };
        if store.binding(&key)?.is_none() && store.exists(&key)? {
            store.bind(&key, &origin)?;
            bound += 1;
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{CustomEndpoint, LoginMethod};

    /// Issue 26: the broker password is bound to the broker's host and port.
    #[test]
    fn the_broker_password_is_bound_to_its_broker() {
        assert_eq!(
            team_password_origin("mqtt://Broker.Lab").as_deref(),
            Some("mqtt://broker.lab:1883")
        );
        assert_eq!(
            team_password_origin("mqtts://broker.lab:8883/").as_deref(),
            Some("mqtts://broker.lab:8883")
        );
        assert_eq!(team_password_origin("wss://broker.lab/mqtt"), None);
        let mut s = Settings::default();
        s.team.site = "lab1".into();
        s.team.broker_url = "mqtt://broker.lab".into();
        let key = SecretKey::TeamPassword("lab1".into());
        let stored = origin_in(&s, &key);
        assert_eq!(stored.as_deref(), Some("mqtt://broker.lab:1883"));
        assert_eq!(
            origin_in(&s, &SecretKey::TeamPassword("other".into())),
            None
        );
        assert_eq!(origin_in(&s, &SecretKey::TeamSiteKey("lab1".into())), None);
        // The URL changed to another host: the stored password is withheld.
        s.team.broker_url = "mqtt://elsewhere.example:1883".into();
        let now = origin_in(&s, &key);
        let m = check(&key, stored.as_deref(), now.as_deref(), None).unwrap_err();
        assert_eq!(m.what, "broker password");
        assert_eq!(m.now, "mqtt://elsewhere.example:1883");
        assert!(check(&key, stored.as_deref(), now.as_deref(), now.as_deref()).is_ok());
    }

    #[test]
    fn origins_of_each_secret() {
        assert_eq!(
            origin("HTTPS://Acme.Element-IoT.com/api/v1?x=1").as_deref(),
            Some("https://acme.element-iot.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/x").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("not a url"), None);
        let mut a = SaverisAccount {
            username: "u".into(),
            ..Default::default()
        };
        assert_eq!(
            saveris_password_origin(&a).as_deref(),
            Some("https://data-api.eu.p.savr.saveris.net")
        );
        assert_eq!(
            stomp_passcode_origin(&a),
            None,
            "the cloud takes no passcode"
        );
        a.login = LoginMethod::Cognito;
        a.cognito_endpoint = "http://127.0.0.1:5000/".into();
        assert_eq!(
            saveris_password_origin(&a).as_deref(),
            Some("http://127.0.0.1:5000")
        );
        a.login = LoginMethod::DataApi;
        a.custom = Some(CustomEndpoint {
            ws_url: "ws://127.0.0.1:15674/ws".into(),
            ..Default::default()
        });
        assert_eq!(saveris_password_origin(&a), None, "login/passcode only");
        assert_eq!(
            stomp_passcode_origin(&a).as_deref(),
            Some("ws://127.0.0.1:15674")
        );
    }

    #[test]
    fn a_stored_secret_goes_only_where_it_was_stored_for_or_confirmed() {
        let k = SecretKey::ElementApiKey("e".into());
        let a = "https://a.example";
        let b = "https://b.example";
        assert!(check(&k, Some(a), Some(a), None).is_ok());
        assert!(check(&k, Some(a), None, None).is_ok(), "sent nowhere");
        let e = check(&k, Some(a), Some(b), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The stored API key was saved for https://a.example, not for https://b.example. \
             Type it again to use it with https://b.example, or confirm sending the stored API key there."
        );
        assert!(
            check(&k, None, Some(b), None).is_ok(),
            "unbound: bound on first use"
        );
        assert!(
            check(&k, Some(a), Some(b), Some(a)).is_err(),
            "confirm names the new host"
        );
        assert!(check(&k, Some(a), Some(b), Some("https://b.example/api/v1")).is_ok());
        assert!(check(&k, Some(a), Some(b), Some(b)).is_ok());
    }

    #[test]
    fn unbound_secrets_are_bound_to_the_saved_endpoints_once() {
        crate::secrets::init_mock();
        let store = SecretStore;
        let mut s = Settings::default();
        s.element.push(ElementAccount {
            id: "bind-e1".into(),
            base_url: "https://a.example".into(),
            ..Default::default()
        });
        let k = SecretKey::ElementApiKey("bind-e1".into());
        store.set(&k, "key-1").unwrap();
        assert_eq!(store.binding(&k).unwrap(), None);
        assert_eq!(bind_unbound(&store, &s).unwrap(), 1);
        assert_eq!(
            store.binding(&k).unwrap().as_deref(),
            Some("https://a.example")
        );
        s.element[0].base_url = "https://b.example".into();
        assert_eq!(
            bind_unbound(&store, &s).unwrap(),
            0,
            "a binding is never moved"
        );
        assert_eq!(
            store.binding(&k).unwrap().as_deref(),
            Some("https://a.example")
        );
        store.delete(&k).unwrap();
        assert_eq!(store.binding(&k).unwrap(), None, "deleted with the secret");
    }
}
