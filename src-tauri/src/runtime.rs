//! Feeds → engine wiring shared by the monitor and `watch`: builds the engine and one feed
//! per enabled account, restarts feeds when their settings or secrets change.

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use crate::engine::{EngineHandle, History};
use crate::event::{Delivery, FeedState, FeedStatus, NamedItem, Source};
use crate::feeds::{element, saveris, FeedHandle};
use crate::ipc::protocol::{ConnectionTest, Discover};
use crate::ipc::Error;
use crate::notify::Notifier;
use crate::secret_binding::{self, Mismatch};
use crate::secrets::{SecretKey, SecretStore};
use crate::settings::Settings;

/// Deliveries wait here when the engine is busy: back-pressure reaches the sockets.
const DELIVERY_QUEUE: usize = 4096;

pub struct Runtime {
    engine: EngineHandle,
    deliveries: mpsc::Sender<Delivery>,
    statuses: mpsc::UnboundedSender<FeedStatus>,
    feeds: Mutex<Vec<FeedHandle>>,
    secrets: SecretStore,
    /// Names refreshes of the Data API tasks, passed on to the engine (issue 20).
    names: mpsc::UnboundedSender<crate::event::NamesUpdate>,
    /// (source, account) → its names task's "unknown sensor" poke.
    names_pokes: NamesPokes,
}

type NamesPokes =
    Arc<std::sync::Mutex<std::collections::HashMap<(Source, String), mpsc::UnboundedSender<()>>>>;

impl Runtime {
    /// Starts the engine and the feeds of `settings`.
    pub async fn start(
        settings: &Settings,
        history: History,
        notifier: Arc<dyn Notifier>,
    ) -> Runtime {
        let (deliveries, deliveries_rx) = mpsc::channel(DELIVERY_QUEUE);
        let (statuses, statuses_rx) = mpsc::unbounded_channel();
        let engine = crate::engine::spawn(
            settings.clone(),
            history,
            notifier,
            deliveries_rx,
            statuses_rx,
        );
        let (names, mut names_rx) = mpsc::unbounded_channel::<crate::event::NamesUpdate>();
        let names_pokes: NamesPokes = Arc::default();
        {
            let engine = engine.clone();
            tokio::spawn(async move {
                while let Some(u) = names_rx.recv().await {
                    engine.update_names(u);
                }
            });
        }
        if let Some(mut wanted) = engine.take_names_wanted() {
            let pokes = names_pokes.clone();
            tokio::spawn(async move {
                while let Some(key) = wanted.recv().await {
                    let pokes = pokes.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(tx) = pokes.get(&key) {
                        let _ = tx.send(());
                    }
                }
            });
        }
        let rt = Runtime {
            engine,
            deliveries,
            statuses,
            feeds: Mutex::new(Vec::new()),
            secrets: SecretStore,
            names,
            names_pokes,
        };
        // Secrets stored before they were bound go where the saved settings send them, and
        // from now on only there (see `secret_binding`).
        let (store, saved) = (rt.secrets.clone(), settings.clone());
        match tokio::task::spawn_blocking(move || secret_binding::bind_unbound(&store, &saved))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(secrets = n, "stored secrets bound to their endpoints"),
            Ok(Err(e)) => tracing::warn!(error = %e, "stored secrets could not be bound"),
            Err(_) => {}
        }
        rt.restart_feeds(settings).await;
        rt
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Settings changed: the engine takes rules and notification settings at once; feeds are
    /// restarted only when accounts changed.
    pub async fn apply(&self, old: &Settings, new: &Settings) {
        self.engine.update_settings(new.clone());
        if old.saveris != new.saveris || old.element != new.element {
            self.restart_feeds(new).await;
        }
    }

    /// A password or key was stored or removed: reconnect with it.
    pub async fn secrets_changed(&self, settings: &Settings) {
        self.restart_feeds(settings).await;
    }

    async fn restart_feeds(&self, settings: &Settings) {
        let mut feeds = self.feeds.lock().await;
        for f in feeds.drain(..) {
            f.stop().await;
        }
        for account in settings.saveris.iter().filter(|a| a.enabled) {
            let secrets = (
                self.stored_secret(
                    SecretKey::SaverisPassword(account.id.clone()),
                    secret_binding::saveris_password_origin(account),
                    None,
                )
                .await,
                self.stored_secret(
                    SecretKey::StompPasscode(account.id.clone()),
                    secret_binding::stomp_passcode_origin(account),
                    None,
                )
                .await,
            );
            let (password, passcode) = match secrets {
                (Ok(p), Ok(c)) => (p, c),
                (Err(m), _) | (_, Err(m)) => {
                    // Not started: its stored secret would go to a host it was not typed for.
                    let mut st =
                        FeedStatus::new(format!("saveris:{}", account.id), account.label());
                    st.state = FeedState::Stopped {
                        message: m.to_string(),
                    };
                    let _ = self.statuses.send(st);
                    continue;
                }
            };
            let cfg = saveris::SaverisFeedConfig::new(account.clone(), password, passcode);
            if let Some(h) = self.start_data_api(&cfg) {
                feeds.push(h);
            }
            feeds.push(saveris::spawn(
                cfg,
                self.deliveries.clone(),
                self.statuses.clone(),
            ));
        }
        for account in settings.element.iter().filter(|a| a.enabled) {
            let stored = self
                .stored_secret(
                    SecretKey::ElementApiKey(account.id.clone()),
                    secret_binding::element_key_origin(account),
                    None,
                )
                .await;
            let Ok(Some(key)) = stored else {
                let message = match stored {
                    Err(m) => m.to_string(),
                    Ok(_) => "no API key stored: enter it in the account settings".into(),
                };
                for sub in account.subscriptions.iter().filter(|s| s.enabled) {
                    let mut st = FeedStatus::new(
                        element::feed_id(account, sub),
                        element::label(account, sub),
                    );
                    st.state = FeedState::Stopped {
                        message: message.clone(),
                    };
                    let _ = self.statuses.send(st);
                }
                continue;
            };
            // Resume every subscription right after the newest event already stored.
            let cursors = self
                .engine
                .history()
                .cursors(Source::Element, &account.id)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cursors unreadable; subscriptions start live");
                    Default::default()
                });
            // Device and tag names for popups and the dashboard (issue 20).
            let (poke, wanted) = mpsc::unbounded_channel();
            self.names_pokes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((Source::Element, account.id.clone()), poke);
            feeds.push(element::names::spawn(
                account.id.clone(),
                account.base_url.clone(),
                key.clone(),
                self.names.clone(),
                wanted,
            ));
            let cfg = element::ElementFeedConfig::new(account.clone(), key, cursors);
            feeds.push(element::spawn(
                cfg,
                self.deliveries.clone(),
                self.statuses.clone(),
            ));
        }
        tracing::info!(feeds = feeds.len(), "feeds started");
    }

    /// The account's Data API task (names, limits, backfill; issue 20), sharing the push
    /// feed's token. `None` for accounts without one (STOMP login/passcode).
    fn start_data_api(&self, cfg: &saveris::SaverisFeedConfig) -> Option<FeedHandle> {
        use saveris::dataapi::{refresh, DataApiClient};
        let account = &cfg.account;
        let source = saveris::auth::TokenSource::for_account(account)?;
        let base = match saveris::dataapi::client::base_url(account) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(message) => {
                let _ = self.names.send(crate::event::NamesUpdate {
                    source: Source::Saveris,
                    account: account.id.clone(),
                    at: jiff::Timestamp::now(),
                    result: Err(message),
                });
                return None;
            }
        };
        let client = DataApiClient::new(
            base,
            cfg.token.clone(),
            source,
            &account.username,
            cfg.password.clone(),
            cfg.clock.clone(),
            cfg.http_timeout,
        );
        let last = self
            .engine
            .history()
            .last_reading_ms(Source::Saveris, &account.id)
            .ok()
            .flatten()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
        let (poke, wanted) = mpsc::unbounded_channel();
        self.names_pokes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((Source::Saveris, account.id.clone()), poke);
        Some(refresh::spawn(
            refresh::RefreshConfig::new(&account.id, client, last),
            cfg.token.clone(),
            self.names.clone(),
            self.deliveries.clone(),
            wanted,
        ))
    }

    /// A secret for a feed; `None` when none is stored or the keyring cannot be read (the
    /// feed then reports what is missing).
    async fn read_secret(&self, key: SecretKey) -> Option<String> {
        let store = self.secrets.clone();
        let name = key.entry_name();
        match tokio::task::spawn_blocking(move || store.get(&key)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(entry = %name, error = %e, "keyring read failed");
                None
            }
            Err(_) => None,
        }
    }

    /// A stored secret for sending to `origin`: refused ([`Mismatch`]) when it was stored
    /// for another endpoint and `confirmed` does not name this one; `Ok(None)` when none is
    /// stored or the keyring cannot be read.
    async fn stored_secret(
        &self,
        key: SecretKey,
        origin: Option<String>,
        confirmed: Option<&str>,
    ) -> Result<Option<String>, Mismatch> {
        let store = self.secrets.clone();
        let k = key.clone();
        let bound = tokio::task::spawn_blocking(move || store.binding(&k)).await;
        let stored_for = match bound {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!(entry = %key.entry_name(), error = %e, "keyring read failed");
                return Ok(None);
            }
            Err(_) => return Ok(None),
        };
        let Some(secret) = self.read_secret(key.clone()).await else {
            return Ok(None);
        };
        if let Err(m) =
            secret_binding::check(&key, stored_for.as_deref(), origin.as_deref(), confirmed)
        {
            tracing::warn!(entry = %key.entry_name(), stored_for = %m.stored_for, now = %m.now,
                "stored secret withheld: the endpoint changed since it was stored");
            return Err(m);
        }
        if let (None, Some(origin)) = (stored_for, origin) {
            // Unbound (typed before its account was saved): bound to its first endpoint.
            let store = self.secrets.clone();
            let _ = tokio::task::spawn_blocking(move || store.bind(&key, &origin)).await;
        }
        Ok(Some(secret))
    }

    /// Logs in / connects with the account as typed; a stored secret is used when none was
    /// typed, and only for the endpoint it was stored for (or the one `send_stored_to`
    /// confirms). What it reached, in words; a failure is an error of its kind.
    pub async fn test_connection(&self, test: ConnectionTest) -> Result<String, Error> {
        match test {
            ConnectionTest::Saveris {
                account,
                password,
                passcode,
                send_stored_to,
            } => {
                let confirmed = send_stored_to.as_deref();
                let password = match password {
                    Some(p) => Some(p),
                    None => {
                        self.stored_secret(
                            SecretKey::SaverisPassword(account.id.clone()),
                            secret_binding::saveris_password_origin(&account),
                            confirmed,
                        )
                        .await?
                    }
                };
                let passcode = match passcode {
                    Some(p) => Some(p),
                    None => {
                        self.stored_secret(
                            SecretKey::StompPasscode(account.id.clone()),
                            secret_binding::stomp_passcode_origin(&account),
                            confirmed,
                        )
                        .await?
                    }
                };
                Ok(
                    saveris::test_connection(&account, password.as_deref(), passcode.as_deref())
                        .await?,
                )
            }
            ConnectionTest::Element {
                account,
                api_key,
                send_stored_to,
            } => {
                let key = match api_key {
                    Some(k) => Some(k),
                    None => {
                        self.stored_secret(
                            SecretKey::ElementApiKey(account.id.clone()),
                            secret_binding::element_key_origin(&account),
                            send_stored_to.as_deref(),
                        )
                        .await?
                    }
                };
                let Some(key) = key else {
                    return Err(Error::SecretMissing("Enter the API key first.".into()));
                };
                Ok(element::test_connection(&account, &key).await?)
            }
        }
    }

    /// Lists devices or tags of a saved ELEMENT account for the pickers.
    pub async fn discover(
        &self,
        settings: &Settings,
        account: &str,
        what: Discover,
    ) -> Result<Vec<NamedItem>, Error> {
        let acc = settings
            .element
            .iter()
            .find(|a| a.id == account)
            .ok_or_else(|| Error::NotFound("Save the ELEMENT account first.".into()))?;
        let key = self
            .stored_secret(
                SecretKey::ElementApiKey(acc.id.clone()),
                secret_binding::element_key_origin(acc),
                None,
            )
            .await?
            .ok_or_else(|| Error::SecretMissing("No API key is stored for this account.".into()))?;
        let r = match what {
            Discover::Devices => element::rest::devices(&acc.base_url, &key).await,
            Discover::Tags => element::rest::tags(&acc.base_url, &key).await,
            Discover::TagDevices(tag) => {
                element::rest::tag_devices(&acc.base_url, &key, &tag).await
            }
        };
        Ok(r?)
    }

    /// Stops the feeds (nothing further is acknowledged), then lets the engine flush.
    pub async fn shutdown(&self) {
        let mut feeds = self.feeds.lock().await;
        for f in feeds.drain(..) {
            f.stop().await;
        }
        self.engine.clone().shutdown().await;
    }
}
