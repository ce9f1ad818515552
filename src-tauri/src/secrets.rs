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
}

impl SecretKey {
    pub fn entry_name(&self) -> String {
        match self {
            SecretKey::SaverisPassword(a) => format!("saveris:{a}:password"),
            SecretKey::StompPasscode(a) => format!("saveris:{a}:stomp-passcode"),
            SecretKey::ElementApiKey(a) => format!("element:{a}:api-key"),
        }
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
    keyring_core::set_default_store(keyring_core::mock::Store::new().expect("mock store"));
}

/// The keyring, as the monitor uses it. Blocking (D-Bus): call from a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct SecretStore;

impl SecretStore {
    fn entry(key: &SecretKey) -> Result<Entry, SecretError> {
        Entry::new(SERVICE, &key.entry_name()).map_err(map_err)
    }

    pub fn set(&self, key: &SecretKey, value: &str) -> Result<(), SecretError> {
        Self::entry(key)?.set_password(value).map_err(map_err)
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

    pub fn delete(&self, key: &SecretKey) -> Result<(), SecretError> {
        match Self::entry(key)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
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
