//! Passwords and API keys, in the OS keyring only.
//!
//! On Linux the Secret Service (gnome-keyring, KWallet); the native stores on macOS and
//! Windows are chosen by `cfg` in [`init`]. Unit tests use `keyring_core::mock`. Secrets
//! are never logged, never written to the settings file, and never sent to the window:
//! the window may store, delete and ask whether one exists ([`SecretStore::exists`]).

use keyring_core::Entry;

/// The keyring service name of every entry.
pub const SERVICE: &str = "alarm-tray";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the system keyring is not available: {0}")]
    Unavailable(String),
    #[error("the system keyring refused the request: {0}")]
    Keyring(String),
}

/// Which secret. Its string form is the keyring entry's user name, e.g.
/// `saveris:acc1:password` — an id, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "kind", content = "account", rename_all = "snake_case")]
pub enum SecretKey {
    SaverisPassword(String),
    StompPasscode(String),
    ElementApiKey(String),
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
        }
    }

    /// The entry beside the secret that holds the endpoint it is bound to
    /// (`element:e1:api-key:endpoint`); its value is an origin, not a secret.
    pub fn binding_entry_name(&self) -> String {
        format!("{}:endpoint", self.entry_name())
    }
}

/// Installs the platform's keyring store as the default. Call once at start-up.
pub fn init() -> Result<(), SecretError> {
    #[cfg(target_os = "linux")]
    {
        let store = zbus_secret_service_keyring_store::Store::new()
            .map_err(|e| SecretError::Unavailable(e.to_string()))?;
        keyring_core::set_default_store(store);
        Ok(())
    }
    // The native stores of macOS (Keychain) and Windows (Credential Manager). Built by the
    // GitHub workflow only; this project's CI runs on Linux.
    #[cfg(target_os = "macos")]
    {
        let store = apple_native_keyring_store::keychain::Store::new()
            .map_err(|e| SecretError::Unavailable(e.to_string()))?;
        keyring_core::set_default_store(store);
        Ok(())
    }
    #[cfg(windows)]
    {
        let store = windows_native_keyring_store::Store::new()
            .map_err(|e| SecretError::Unavailable(e.to_string()))?;
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
        keyring_core::set_default_store(keyring_core::mock::Store::new().expect("mock store"));
    });
}

/// The keyring, as the monitor uses it. Blocking (D-Bus): call from a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct SecretStore;

impl SecretStore {
    fn entry(key: &SecretKey) -> Result<Entry, SecretError> {
        Entry::new(SERVICE, &key.entry_name()).map_err(map_err)
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
        let entry = Entry::new(SERVICE, &key.binding_entry_name()).map_err(map_err)?;
        match entry.get_password() {
            Ok(p) => Ok(Some(p)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Binds the stored secret to `endpoint` (an origin).
    pub fn bind(&self, key: &SecretKey, endpoint: &str) -> Result<(), SecretError> {
        Entry::new(SERVICE, &key.binding_entry_name())
            .map_err(map_err)?
            .set_password(endpoint)
            .map_err(map_err)
    }

    fn unbind(&self, key: &SecretKey) -> Result<(), SecretError> {
        let entry = Entry::new(SERVICE, &key.binding_entry_name()).map_err(map_err)?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    /// The secret, for the feeds. Never for the window.
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

fn map_err(e: keyring_core::Error) -> SecretError {
    match e {
        keyring_core::Error::NoStorageAccess(inner) => SecretError::Unavailable(inner.to_string()),
        keyring_core::Error::PlatformFailure(inner) => SecretError::Unavailable(inner.to_string()),
        // Other variants describe the request, never the secret.
        other => SecretError::Keyring(other.to_string()),
    }
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

    #[test]
    fn entry_names_are_ids_not_secrets() {
        assert_eq!(
            SecretKey::ElementApiKey("e1".into()).entry_name(),
            "element:e1:api-key"
        );
    }
}
