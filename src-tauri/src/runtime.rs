//! Feeds → engine wiring shared by the monitor and `watch`: builds the engine and one feed
//! per enabled account, restarts feeds when their settings or secrets change.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use crate::engine::{EngineHandle, History};
use crate::event::{Delivery, FeedState, FeedStatus, NamedItem, Source};
use crate::feeds::{element, saveris, FeedHandle};
use crate::ipc::protocol::{ConnectionTest, Discover};
use crate::ipc::Error;
use crate::notify::Notifier;
use crate::secret_binding::{self, Mismatch};
use crate::secrets::{self, SecretError, SecretKey};
use crate::settings::Settings;

/// Deliveries wait here when the engine is busy: back-pressure reaches the sockets.
const DELIVERY_QUEUE: usize = 4096;

/// How often feeds waiting for the keyring try again when no D-Bus signal woke them.
const KEYRING_RETRY: Duration = Duration::from_secs(30);

/// Why a stored secret was not handed to a feed.
#[derive(Debug)]
enum Withheld {
    /// Stored for another endpoint.
    Mismatch(Mismatch),
    /// The keyring could not be read (locked, absent, silent, refused).
    Keyring(SecretError),
}

impl From<Withheld> for Error {
    fn from(w: Withheld) -> Self {
        match w {
            Withheld::Mismatch(m) => m.into(),
            Withheld::Keyring(e) => e.into(),
        }
    }
}

/// An account whose feeds wait for the keyring: the secrets to try and the feeds to report.
struct Waiting {
    keys: Vec<SecretKey>,
    feeds: Vec<(String, String)>,
}

/// The feeds → engine wiring; see the module docs. Dereferences to its shared state, which
/// the keyring waiter holds too.
pub struct Runtime(Arc<Shared>);

#[doc(hidden)]
pub struct Shared {
    engine: EngineHandle,
    deliveries: mpsc::Sender<Delivery>,
    statuses: mpsc::UnboundedSender<FeedStatus>,
    feeds: Mutex<Vec<FeedHandle>>,
    /// Counts feed restarts: a keyring waiter of an older start ends.
    generation: AtomicU64,
    /// Names refreshes of the Data API tasks, passed on to the engine (issue 20).
    names: mpsc::UnboundedSender<crate::event::NamesUpdate>,
    /// (source, account) → its names task's "unknown sensor" poke.
    names_pokes: NamesPokes,
    /// Issue 26: team sharing, when on.
    team: Mutex<Option<crate::team_bridge::TeamRun>>,
    team_status: tokio::sync::watch::Sender<Option<crate::team::TeamStatus>>,
}

impl std::ops::Deref for Runtime {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
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
        let rt = Runtime(Arc::new(Shared {
            engine,
            deliveries,
            statuses,
            feeds: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            names,
            names_pokes,
            team: Mutex::new(None),
            team_status: tokio::sync::watch::channel(None).0,
        }));
        // Secrets stored before they were bound go where the saved settings send them, and
        // from now on only there (see `secret_binding`).
        let saved = settings.clone();
        match secrets::bounded(move |store| secret_binding::bind_unbound(&store, &saved)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(secrets = n, "stored secrets bound to their endpoints"),
            Err(e) => tracing::warn!(error = %e.detail(), "stored secrets could not be bound"),
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
            &crate::secrets::SecretStore,
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
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        Shared::start_feeds(&self.0, &mut feeds, settings, generation).await;
    }
}

impl Shared {
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Stops the running feeds and starts those of `settings`; feeds whose secrets the
    /// keyring cannot give now wait for it (a task of this `generation`). Called with the
    /// feeds locked.
    ///
    /// Boxed: it spawns the keyring waiter, which calls it again; a cycle of plain `async
    /// fn`s has no type the compiler can prove `Send`.
    fn start_feeds<'a>(
        this: &'a Arc<Shared>,
        feeds: &'a mut Vec<FeedHandle>,
        settings: &'a Settings,
        generation: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            for f in feeds.drain(..) {
                f.stop().await;
            }
            let mut waiting = Vec::new();
            for account in settings.saveris.iter().filter(|a| a.enabled) {
                let keys = [
                    SecretKey::SaverisPassword(account.id.clone()),
                    SecretKey::StompPasscode(account.id.clone()),
                ];
                let secrets = (
                    this.stored_secret(
                        keys[0].clone(),
                        secret_binding::saveris_password_origin(account),
                        None,
                    )
                    .await,
                    this.stored_secret(
                        keys[1].clone(),
                        secret_binding::stomp_passcode_origin(account),
                        None,
                    )
                    .await,
                );
                let feed = (format!("saveris:{}", account.id), account.label());
                let (password, passcode) = match secrets {
                    (Ok(p), Ok(c)) => (p, c),
                    (Err(Withheld::Keyring(e)), _) | (_, Err(Withheld::Keyring(e)))
                        if e.is_transient() =>
                    {
                        this.report_waiting(std::slice::from_ref(&feed), &e);
                        waiting.push(Waiting {
                            keys: keys.to_vec(),
                            feeds: vec![feed],
                        });
                        continue;
                    }
                    (Err(w), _) | (_, Err(w)) => {
                        // Not started: its stored secret would go to a host it was not typed
                        // for, or the keyring refused outright.
                        let message = match w {
                            Withheld::Mismatch(m) => m.to_string(),
                            Withheld::Keyring(e) => e.to_string(),
                        };
                        let mut st = FeedStatus::new(feed.0, feed.1);
                        st.state = FeedState::Stopped { message };
                        let _ = this.statuses.send(st);
                        continue;
                    }
                };
                let cfg = saveris::SaverisFeedConfig::new(account.clone(), password, passcode);
                if let Some(h) = this.start_data_api(&cfg) {
                    feeds.push(h);
                }
                feeds.push(saveris::spawn(
                    cfg,
                    this.deliveries.clone(),
                    this.statuses.clone(),
                ));
            }
            for account in settings.element.iter().filter(|a| a.enabled) {
                let key = SecretKey::ElementApiKey(account.id.clone());
                let stored = this
                    .stored_secret(
                        key.clone(),
                        secret_binding::element_key_origin(account),
                        None,
                    )
                    .await;
                let subs: Vec<(String, String)> = account
                    .subscriptions
                    .iter()
                    .filter(|s| s.enabled)
                    .map(|sub| (element::feed_id(account, sub), element::label(account, sub)))
                    .collect();
                let message = match stored {
                    Ok(Some(key)) => {
                        // Resume every subscription right after the newest event already stored.
                        let cursors = this
                            .engine
                            .history()
                            .cursors(Source::Element, &account.id)
                            .unwrap_or_else(|e| {
                                tracing::warn!(error = %e, "cursors unreadable; subscriptions start live");
                                Default::default()
                            });
                        // Device and tag names for popups and the dashboard (issue 20).
                        let (poke, wanted) = mpsc::unbounded_channel();
                        this.names_pokes
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert((Source::Element, account.id.clone()), poke);
                        feeds.push(element::names::spawn(
                            account.id.clone(),
                            account.base_url.clone(),
                            key.clone(),
                            this.names.clone(),
                            wanted,
                        ));
                        let cfg = element::ElementFeedConfig::new(account.clone(), key, cursors);
                        feeds.push(element::spawn(
                            cfg,
                            this.deliveries.clone(),
                            this.statuses.clone(),
                        ));
                        continue;
                    }
                    Err(Withheld::Keyring(e)) if e.is_transient() => {
                        this.report_waiting(&subs, &e);
                        waiting.push(Waiting {
                            keys: vec![key],
                            feeds: subs,
                        });
                        continue;
                    }
                    Err(Withheld::Keyring(e)) => e.to_string(),
                    Err(Withheld::Mismatch(m)) => m.to_string(),
                    // The one case where the user is asked to type it.
                    Ok(None) => "no API key stored: enter it in the account settings".into(),
                };
                for (id, label) in subs {
                    let mut st = FeedStatus::new(id, label);
                    st.state = FeedState::Stopped {
                        message: message.clone(),
                    };
                    let _ = this.statuses.send(st);
                }
            }
            tracing::info!(
                feeds = feeds.len(),
                waiting_for_keyring = waiting.len(),
                "feeds started"
            );
            if !waiting.is_empty() {
                tokio::spawn(Shared::wait_for_keyring(
                    this.clone(),
                    settings.clone(),
                    waiting,
                    generation,
                ));
            }
        })
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

    fn report_waiting(&self, feeds: &[(String, String)], e: &SecretError) {
        tracing::warn!(error = %e.detail(), "keyring not readable; feeds wait for it");
        for (id, label) in feeds {
            let mut st = FeedStatus::new(id.clone(), label.clone());
            st.state = FeedState::WaitingForKeyring {
                message: e.to_string(),
            };
            st.last_error = Some(e.detail().to_string());
            let _ = self.statuses.send(st);
        }
    }

    /// Tries the keyring again at once when its D-Bus signals say it may be readable, and
    /// every [`KEYRING_RETRY`] otherwise; once every waiting secret can be read the feeds
    /// start (all of them, with `settings`), unless a newer start came first.
    async fn wait_for_keyring(
        this: Arc<Shared>,
        settings: Settings,
        mut waiting: Vec<Waiting>,
        generation: u64,
    ) {
        let mut changes = secrets::changes();
        let mut shown: Vec<Option<SecretError>> = vec![None; waiting.len()];
        loop {
            tokio::select! {
                c = changes.changed() => {
                    if c.is_err() {
                        // No signals here: the timer alone.
                        changes = tokio::sync::watch::channel(0).1;
                        tokio::time::sleep(KEYRING_RETRY).await;
                    } else {
                        // A daemon that just took its name may not answer yet.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                _ = tokio::time::sleep(KEYRING_RETRY) => {}
            }
            if this.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            // A fresh connection: the daemon may have been replaced since the last try.
            let _ = secrets::bounded(|_| secrets::reconnect()).await;
            let mut still = Vec::new();
            for (w, last) in waiting.drain(..).zip(shown.drain(..)) {
                let mut problem = None;
                for k in &w.keys {
                    let k = k.clone();
                    match secrets::bounded(move |s| s.get(&k)).await {
                        Err(e) if e.is_transient() => {
                            problem = Some(e);
                            break;
                        }
                        _ => {}
                    }
                }
                if let Some(e) = problem {
                    // The reason changed (locked → absent…): say so.
                    if last.as_ref() != Some(&e) {
                        this.report_waiting(&w.feeds, &e);
                    }
                    still.push((w, Some(e)));
                }
            }
            if still.is_empty() {
                tracing::info!("the keyring can be read again; starting the feeds");
                let mut feeds = this.feeds.lock().await;
                if this
                    .generation
                    .compare_exchange(
                        generation,
                        generation + 1,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
                {
                    Shared::start_feeds(&this, &mut feeds, &settings, generation + 1).await;
                }
                return;
            }
            (waiting, shown) = still.into_iter().unzip();
        }
    }

    /// A stored secret for sending to `origin`: refused when it was stored for another
    /// endpoint and `confirmed` does not name this one, or when the keyring cannot be read;
    /// `Ok(None)` only when no entry is stored.
    async fn stored_secret(
        &self,
        key: SecretKey,
        origin: Option<String>,
        confirmed: Option<&str>,
    ) -> Result<Option<String>, Withheld> {
        let k = key.clone();
        let stored_for = secrets::bounded(move |store| store.binding(&k))
            .await
            .map_err(|e| {
                tracing::warn!(entry = %key.entry_name(), error = %e.detail(), "keyring read failed");
                Withheld::Keyring(e)
            })?;
        let k = key.clone();
        let Some(secret) = secrets::bounded(move |store| store.get(&k))
            .await
            .map_err(|e| {
                tracing::warn!(entry = %key.entry_name(), error = %e.detail(), "keyring read failed");
                Withheld::Keyring(e)
            })?
        else {
            return Ok(None);
        };
        if let Err(m) =
            secret_binding::check(&key, stored_for.as_deref(), origin.as_deref(), confirmed)
        {
            tracing::warn!(entry = %key.entry_name(), stored_for = %m.stored_for, now = %m.now,
                "stored secret withheld: the endpoint changed since it was stored");
            return Err(Withheld::Mismatch(m));
        }
        if let (None, Some(origin)) = (stored_for, origin) {
            // Unbound (typed before its account was saved): bound to its first endpoint.
            let _ = secrets::bounded(move |store| store.bind(&key, &origin)).await;
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
                    // Issue 26: only to the broker it was stored for.
                    None => self
                        .stored_secret(
                            SecretKey::TeamPassword(site.clone()),
                            secret_binding::team_password_origin(&team.broker_url),
                            None,
                        )
                        .await
                        .map_err(Error::from)?,
                };
                let site_key = match site_key {
                    Some(k) => Some(k),
                    None => team_secret(SecretKey::TeamSiteKey(site.clone())).await,
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
        // A keyring waiter starts nothing after this.
        self.generation.fetch_add(1, Ordering::SeqCst);
        for f in feeds.drain(..) {
            f.stop().await;
        }
        self.engine.clone().shutdown().await;
    }
}

/// A team secret for Test connection; `None` when none is stored or the keyring cannot be
/// read (the test then says what is missing).
async fn team_secret(key: SecretKey) -> Option<String> {
    let name = key.entry_name();
    match secrets::bounded(move |s| s.get(&key)).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(entry = %name, error = %e.detail(), "keyring read failed");
            None
        }
    }
}
