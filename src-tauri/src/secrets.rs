//! Passwords and API keys, in the OS keyring only.
//!
//! On Linux the Secret Service (gnome-keyring, KWallet); the native stores on macOS and
//! Windows are chosen by `cfg` in [`init`]. Unit tests use `keyring_core::mock`. Secrets
//! are never logged, never written to the settings file, and never sent to the window:
//! the window may store, delete and ask whether one exists ([`SecretStore::exists`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyring_core::Entry;

/// The keyring service name of every entry.
pub const SERVICE: &str = "alarm-tray";

/// How long one keyring call may take: a hung keyring daemon must never hang the monitor
/// (issue 24). Long enough for a slow D-Bus activation of gnome-keyring.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(10);

/// What reading the keyring ran into. The transient kinds ([`SecretError::is_transient`])
/// say the keyring may come back by itself (unlocked, started): feeds then wait for it
/// instead of asking the user to type a password that is stored. Messages name the
/// keyring's state, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Locked, or its unlock prompt was dismissed or could not be shown.
    #[error("The keyring is locked: unlock it and Alarm Tray goes on by itself.")]
    Locked(String),
    /// No Secret Service on the bus (gnome-keyring, KWallet not started yet).
    #[error("No keyring service is running: once it starts, Alarm Tray goes on by itself.")]
    NoService(String),
    /// The keyring did not answer in time.
    #[error("The keyring does not answer: Alarm Tray tries again by itself.")]
    Timeout,
    /// The keyring could not be reached for another reason.
    #[error("The system keyring is not available ({0}): Alarm Tray tries again by itself.")]
    Unavailable(String),
    /// The keyring answered and refused the request itself (not transient).
    #[error("the system keyring refused the request: {0}")]
    Keyring(String),
}

impl SecretError {
    /// The keyring may come back without the user typing anything: wait and retry.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SecretError::Keyring(_))
    }

    /// For logs: the platform's own words (never a secret).
    pub fn detail(&self) -> &str {
        match self {
            SecretError::Locked(d)
            | SecretError::NoService(d)
            | SecretError::Unavailable(d)
            | SecretError::Keyring(d) => d,
            SecretError::Timeout => "no answer in time",
        }
    }
}

/// Runs a keyring call on a blocking thread, bounded by [`KEYRING_TIMEOUT`]. On a timeout
/// the call is left behind on its thread and the store is rebuilt for the next call, so a
/// hung connection holds no one else up.
pub async fn bounded<T: Send + 'static>(
    f: impl FnOnce(SecretStore) -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    let call = tokio::task::spawn_blocking(move || f(SecretStore));
    match tokio::time::timeout(KEYRING_TIMEOUT, call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(SecretError::Unavailable(format!(
            "keyring task failed: {e}"
        ))),
        Err(_) => {
            tracing::warn!(
                secs = KEYRING_TIMEOUT.as_secs(),
                "the keyring did not answer in time"
            );
            std::thread::spawn(|| {
                let _ = reconnect();
            });
            Err(SecretError::Timeout)
        }
    }
}

/// The mock store is installed: never replace it with the platform's.
static MOCK: AtomicBool = AtomicBool::new(false);

/// Which secret. Its string form is the keyring entry's user name, e.g.
/// `saveris:acc1:password` — an id, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "kind", content = "account", rename_all = "snake_case")]
pub enum SecretKey {
    SaverisPassword(String),
    StompPasscode(String),
    ElementApiKey(String),
    /// An escalation webhook's token (issue 21), by webhook id.
    WebhookToken(String),
    /// Issue 26: the team broker's password and the site key, per site name.
    TeamPassword(String),
    TeamSiteKey(String),
}

impl SecretKey {
    pub fn entry_name(&self) -> String {
        match self {
            SecretKey::SaverisPassword(a) => format!("saveris:{a}:password"),
            SecretKey::StompPasscode(a) => format!("saveris:{a}:stomp-passcode"),
            SecretKey::ElementApiKey(a) => format!("element:{a}:api-key"),
            SecretKey::TeamPassword(site) => format!("team:{site}:broker-password"),
            SecretKey::TeamSiteKey(site) => format!("team:{site}:site-key"),
            SecretKey::WebhookToken(w) => format!("webhook:{w}:token"),
        }
    }

    /// The entry beside the secret that holds the endpoint it is bound to
    /// (`element:e1:api-key:endpoint`); its value is an origin, not a secret.
    pub fn binding_entry_name(&self) -> String {
        format!("{}:endpoint", self.entry_name())
    }
}

/// Installs the platform's keyring store as the default. Call once at start-up; when it
/// fails (no keyring yet) the next keyring call tries again.
pub fn init() -> Result<(), SecretError> {
    #[cfg(target_os = "linux")]
    {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(map_err)?;
        keyring_core::set_default_store(store);
        Ok(())
    }
    // The native stores of macOS (Keychain) and Windows (Credential Manager). Built by the
    // GitHub workflow only; this project's CI runs on Linux.
    #[cfg(target_os = "macos")]
    {
        let store = apple_native_keyring_store::keychain::Store::new().map_err(map_err)?;
        keyring_core::set_default_store(store);
        Ok(())
    }
    #[cfg(windows)]
    {
        let store = windows_native_keyring_store::Store::new().map_err(map_err)?;
        keyring_core::set_default_store(store);
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        Err(SecretError::Unavailable(
            "no keyring store for this platform in this build".into(),
        ))
    }
}

/// Installs the in-memory mock store (unit tests, `--demo`, which must not touch the
/// user's keyring).
pub fn init_mock() {
    // Once per process: a second store would drop what unit tests running in parallel
    // stored in the first.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        MOCK.store(true, Ordering::SeqCst);
        keyring_core::set_default_store(keyring_core::mock::Store::new().expect("mock store"));
    });
}

/// Builds the platform store again: its connection holds a session with the keyring daemon
/// that answered first, which a restarted daemon (`gnome-keyring-daemon --replace`) does
/// not know. Blocking. The mock store stays.
pub fn reconnect() -> Result<(), SecretError> {
    if MOCK.load(Ordering::SeqCst) {
        return Ok(());
    }
    init()
}

/// The keyring, as the monitor uses it. Blocking (D-Bus): call from a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct SecretStore;

impl SecretStore {
    fn entry(key: &SecretKey) -> Result<Entry, SecretError> {
        Self::named(&key.entry_name())
    }

    /// An entry of the default store; the store is installed first when start-up found no
    /// keyring.
    fn named(name: &str) -> Result<Entry, SecretError> {
        match Entry::new(SERVICE, name) {
            Err(keyring_core::Error::NoDefaultStore) => {
                reconnect()?;
                Entry::new(SERVICE, name).map_err(map_err)
            }
            r => r.map_err(map_err),
        }
    }

    /// Stores a secret bound to no endpoint (the demo, tests): it is bound to its
    /// account's endpoint when the runtime starts ([`crate::secret_binding::bind_unbound`]).
    pub fn set(&self, key: &SecretKey, value: &str) -> Result<(), SecretError> {
        Self::entry(key)?.set_password(value).map_err(map_err)?;
        self.unbind(key)
    }

    /// Stores a secret bound to `endpoint` (an origin; see [`crate::secret_binding`]), or
    /// unbound when `None`. The binding is written after the secret: if that fails the
    /// secret is unbound, which sends it nowhere after start-up.
    pub fn set_bound(
        &self,
        key: &SecretKey,
        value: &str,
        endpoint: Option<&str>,
    ) -> Result<(), SecretError> {
        self.set(key, value)?;
        match endpoint {
            Some(e) => self.bind(key, e),
            None => Ok(()),
        }
    }

    /// The endpoint (origin) the secret is bound to.
    pub fn binding(&self, key: &SecretKey) -> Result<Option<String>, SecretError> {
        let entry = Self::named(&key.binding_entry_name())?;
        match entry.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Binds the stored secret to `endpoint` (an origin).
    pub fn bind(&self, key: &SecretKey, endpoint: &str) -> Result<(), SecretError> {
        Self::named(&key.binding_entry_name())?
            .set_password(endpoint)
            .map_err(map_err)
    }

    fn unbind(&self, key: &SecretKey) -> Result<(), SecretError> {
        let entry = Self::named(&key.binding_entry_name())?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// The secret, for the feeds. Never for the window. `Ok(None)`: no entry (only then is
    /// the user asked to enter it); a locked or absent keyring is an error of its kind.
    pub fn get(&self, key: &SecretKey) -> Result<Option<String>, SecretError> {
        match Self::entry(key)?.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    pub fn exists(&self, key: &SecretKey) -> Result<bool, SecretError> {
        Ok(self.get(key)?.is_some())
    }

    /// Removes the secret and its binding.
    pub fn delete(&self, key: &SecretKey) -> Result<(), SecretError> {
        match Self::entry(key)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => {}
            Err(e) => return Err(map_err(e)),
        }
        self.unbind(key)
    }
}

/// Sorts a keyring error into the states the user is told about.
fn map_err(e: keyring_core::Error) -> SecretError {
    match e {
        keyring_core::Error::NoStorageAccess(inner) => classify(&*inner, true),
        keyring_core::Error::PlatformFailure(inner) => classify(&*inner, false),
        keyring_core::Error::NoDefaultStore => {
            SecretError::NoService("no keyring store installed".into())
        }
        // Other variants describe the request, never the secret.
        other => SecretError::Keyring(other.to_string()),
    }
}

/// The Secret Service's own error when there is one; otherwise `NoStorageAccess` (the
/// platform's "locked" on macOS and Windows) counts as locked.
fn classify(
    inner: &(dyn std::error::Error + Send + Sync + 'static),
    no_access: bool,
) -> SecretError {
    let text = inner.to_string();
    #[cfg(target_os = "linux")]
    if let Some(ss) = inner.downcast_ref::<secret_service::Error>() {
        use secret_service::Error as Ss;
        return match ss {
            Ss::Locked | Ss::Prompt | Ss::PromptDisconnected => SecretError::Locked(text),
            Ss::Unavailable => SecretError::NoService(text),
            Ss::Zbus(_) | Ss::ZbusFdo(_) if names_no_service(&text) => SecretError::NoService(text),
            _ => SecretError::Unavailable(text),
        };
    }
    if no_access {
        SecretError::Locked(text)
    } else if names_no_service(&text) {
        SecretError::NoService(text)
    } else {
        SecretError::Unavailable(text)
    }
}

/// D-Bus's words for "nobody owns that name" (and cannot be started), or a bus gone.
fn names_no_service(text: &str) -> bool {
    [
        "ServiceUnknown",
        "NameHasNoOwner",
        "was not provided by any .service files",
        "not activatable",
        "Disconnected",
        "UnknownObject",
    ]
    .iter()
    .any(|n| text.contains(n))
}

/// Wakes whoever waits for the keyring: counts the D-Bus signals that say it may be
/// readable now (the Secret Service's name got an owner; a collection was created,
/// changed or unlocked). Callers still retry on a timer: not every keyring signals.
pub fn changes() -> tokio::sync::watch::Receiver<u64> {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    #[cfg(target_os = "linux")]
    tokio::spawn(async move {
        if let Err(e) = watch_signals(&tx).await {
            tracing::info!(error = %e, "keyring signals not watched; retrying on a timer");
        }
    });
    #[cfg(not(target_os = "linux"))]
    drop(tx);
    rx
}

#[cfg(target_os = "linux")]
async fn watch_signals(tx: &tokio::sync::watch::Sender<u64>) -> zbus::Result<()> {
    use futures_util::StreamExt;
    let conn = zbus::Connection::session().await?;
    let owner = zbus::MessageStream::for_match_rule(
        "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',\
         member='NameOwnerChanged',arg0='org.freedesktop.secrets'",
        &conn,
        Some(16),
    )
    .await?;
    // Service and collection signals (CollectionCreated/Changed, ItemCreated…) live under
    // this path on every Secret Service.
    let secrets = zbus::MessageStream::for_match_rule(
        "type='signal',path_namespace='/org/freedesktop/secrets'",
        &conn,
        Some(64),
    )
    .await?;
    let mut both = futures_util::stream::select(owner, secrets);
    while let Some(m) = both.next().await {
        if m.is_ok() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
        if tx.is_closed() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_exists_delete_with_mock_store() {
        init_mock();
        let s = SecretStore;
        let k = SecretKey::SaverisPassword("unit-acc".into());
        assert!(!s.exists(&k).unwrap());
        s.set(&k, "hunter2").unwrap();
        assert!(s.exists(&k).unwrap());
        assert_eq!(s.get(&k).unwrap().as_deref(), Some("hunter2"));
        s.delete(&k).unwrap();
        assert!(!s.exists(&k).unwrap());
        s.delete(&k)
            .expect("deleting a missing secret is not an error");
    }

    /// Issue 24: only a missing entry asks the user to type; the keyring's own states wait.
    #[cfg(target_os = "linux")]
    #[test]
    fn keyring_errors_are_told_apart() {
        let ss = |e: secret_service::Error| keyring_core::Error::NoStorageAccess(Box::new(e));
        assert!(matches!(
            map_err(ss(secret_service::Error::Prompt)),
            SecretError::Locked(_)
        ));
        assert!(matches!(
            map_err(ss(secret_service::Error::Locked)),
            SecretError::Locked(_)
        ));
        assert!(matches!(
            map_err(keyring_core::Error::PlatformFailure(Box::new(
                secret_service::Error::Unavailable
            ))),
            SecretError::NoService(_)
        ));
        let e = map_err(ss(secret_service::Error::Prompt));
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "The keyring is locked: unlock it and Alarm Tray goes on by itself."
        );
        assert!(!map_err(keyring_core::Error::BadEncoding(vec![])).is_transient());
    }

    #[test]
    fn entry_names_are_ids_not_secrets() {
        assert_eq!(
            SecretKey::ElementApiKey("e1".into()).entry_name(),
            "element:e1:api-key"
        );
    }
}
