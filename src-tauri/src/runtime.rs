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
    /// Issue 26: team sharing, when on.
    team: Mutex<Option<crate::team_bridge::TeamRun>>,
    team_status: tokio::sync::watch::Sender<Option<crate::team::TeamStatus>>,
}

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
        let rt = Runtime {
            engine,
            deliveries,
            statuses,
            feeds: Mutex::new(Vec::new()),
            secrets: SecretStore,
            team: Mutex::new(None),
            team_status: tokio::sync::watch::channel(None).0,
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
        rt.restart_team(settings).await;
        rt
    }

    /// Issue 26: (re)starts team sharing as the settings say.
    async fn restart_team(&self, settings: &Settings) {
        let mut team = self.team.lock().await;
        if let Some(t) = team.take() {
            t.stop().await;
        }
        self.team_status.send_replace(None);
        match crate::team_bridge::start(
            settings,
            &self.secrets,
            self.engine.clone(),
            self.deliveries.clone(),
        )
        .await
        {
            Ok(Some(t)) => {
                let mut st = t.status();
                let out = self.team_status.clone();
                out.send_replace(Some(st.borrow_and_update().clone()));
                tokio::spawn(async move {
                    while st.changed().await.is_ok() {
                        let v = st.borrow_and_update().clone();
                        out.send_replace(Some(v));
                    }
                });
                *team = Some(t);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "team sharing could not start");
                self.team_status.send_replace(Some(crate::team::TeamStatus {
                    state: e,
                    ..Default::default()
                }));
            }
        }
    }

    /// Issue 26: the team link's status (`None`: team sharing is off).
    pub fn team_status(&self) -> tokio::sync::watch::Receiver<Option<crate::team::TeamStatus>> {
        self.team_status.subscribe()
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
        if old.team != new.team || (new.team.enabled && old.saveris != new.saveris) {
            self.restart_team(new).await;
        }
    }

    /// A password or key was stored or removed: reconnect with it.
    pub async fn secrets_changed(&self, settings: &Settings) {
        self.restart_feeds(settings).await;
        self.restart_team(settings).await;
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
            let cfg = element::ElementFeedConfig::new(account.clone(), key, cursors);
            feeds.push(element::spawn(
                cfg,
                self.deliveries.clone(),
                self.statuses.clone(),
            ));
        }
        tracing::info!(feeds = feeds.len(), "feeds started");
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
            ConnectionTest::Team {
                team,
                password,
                site_key,
            } => {
                let site = team.site.trim().to_string();
                let password = match password {
                    Some(p) => Some(p),
                    None => {
                        self.read_secret(SecretKey::TeamPassword(site.clone()))
                            .await
                    }
                };
                let site_key = match site_key {
                    Some(k) => Some(k),
                    None => self.read_secret(SecretKey::TeamSiteKey(site.clone())).await,
                };
                let cfg = crate::team::TeamConfig {
                    broker_url: team.broker_url.trim().to_string(),
                    site,
                    pc: team.pc(),
                    user: team.user.trim().to_string(),
                    password,
                    site_key: site_key.unwrap_or_default().into_bytes(),
                };
                crate::team::test_connection(&cfg)
                    .await
                    .map_err(|e| match e {
                        crate::team::TeamError::Connect(m) => Error::Network(m),
                        crate::team::TeamError::NoSiteKey => Error::SecretMissing(e.to_string()),
                        other => Error::InvalidInput(other.to_string()),
                    })
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
        if let Some(t) = self.team.lock().await.take() {
            t.stop().await;
        }
        let mut feeds = self.feeds.lock().await;
        for f in feeds.drain(..) {
            f.stop().await;
        }
        self.engine.clone().shutdown().await;
    }
}
