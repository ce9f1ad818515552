//! The monitor's core: owner of the settings, the keyring access and the runtime (feeds +
//! engine); answers the window's requests. Free of tauri — the tray and the window process
//! are reached through the [`Shell`] trait that `gui` implements.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::engine::model::Status;
use crate::ipc::protocol::{Connected, Info, Page, Push, Request, Response};
use crate::ipc::server::Handler;
use crate::ipc::Error;
use crate::notify::{Notifier, Popup, PopupAction, Urgency};
use crate::runtime::Runtime;
use crate::secrets::{SecretKey, SecretStore};
use crate::settings::Settings;

/// What the monitor asks of the desktop side (tray, window process, autostart entry).
pub trait Shell: Send + Sync + 'static {
    /// Opens the window process on `page`, or focuses the open one.
    fn open_window(&self, page: Page, alarm_id: Option<i64>);
    /// Shows the state in the tray icon and tooltip.
    fn show_status(&self, status: &Status);
    /// Writes or removes the login autostart entry.
    fn set_autostart(&self, enabled: bool) -> Result<(), String>;
    /// Ends the monitor as the tray's Quit does (after the reply was sent). Shells with no
    /// process of their own to end (tests) keep the default.
    fn quit(&self) {}
}

/// Where settings are written (tauri-plugin-store in the monitor, a plain file for demo
/// profiles and tests).
pub trait SettingsPersister: Send + Sync + 'static {
    fn save(&self, settings: &Settings) -> Result<(), String>;
}

/// A persister writing the store-file format with [`crate::settings::save`].
pub struct FilePersister(pub std::path::PathBuf);

impl SettingsPersister for FilePersister {
    fn save(&self, settings: &Settings) -> Result<(), String> {
        crate::settings::save(&self.0, settings).map_err(|e| e.to_string())
    }
}

pub struct Monitor {
    settings: RwLock<Settings>,
    persister: Box<dyn SettingsPersister>,
    secrets: SecretStore,
    runtime: Runtime,
    notifier: Arc<dyn Notifier>,
    shell: Arc<dyn Shell>,
    pushes: broadcast::Sender<Push>,
    info: Info,
}

impl Monitor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        persister: Box<dyn SettingsPersister>,
        runtime: Runtime,
        notifier: Arc<dyn Notifier>,
        shell: Arc<dyn Shell>,
        pushes: broadcast::Sender<Push>,
        info: Info,
    ) -> Arc<Self> {
        Arc::new(Monitor {
            settings: RwLock::new(settings),
            persister,
            secrets: SecretStore,
            runtime,
            notifier,
            shell,
            pushes,
            info,
        })
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn status(&self) -> Status {
        self.runtime.engine().status()
    }

    /// Forwards engine output to the tray and to subscribed windows, and popup actions to
    /// the engine and the shell. Runs until the engine stops.
    pub fn spawn_bridges(
        self: &Arc<Self>,
        actions: tokio::sync::mpsc::UnboundedReceiver<PopupAction>,
    ) {
        let me = self.clone();
        let mut out = self.runtime.engine().subscribe();
        tokio::spawn(async move {
            me.shell.show_status(&me.status());
            let mut last_history_push = tokio::time::Instant::now() - Duration::from_secs(1);
            let mut last_active = me.status().active_alarms;
            loop {
                match out.recv().await {
                    Ok(crate::engine::Output::Status { status }) => {
                        me.shell.show_status(&status);
                        // Acknowledged from a popup (or cleared): the window's table changes.
                        if std::mem::replace(&mut last_active, status.active_alarms)
                            != status.active_alarms
                        {
                            let _ = me.pushes.send(Push::HistoryChanged);
                        }
                        let _ = me.pushes.send(Push::Status(status));
                    }
                    Ok(_) => {
                        // A burst of stored events: at most a few re-queries a second.
                        if last_history_push.elapsed() >= Duration::from_millis(300) {
                            last_history_push = tokio::time::Instant::now();
                            let _ = me.pushes.send(Push::HistoryChanged);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        me.shell.show_status(&me.status());
                        let _ = me.pushes.send(Push::HistoryChanged);
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        // Clicks go through the engine's one router, as in `watch` and the tests; Open
        // opens the window on the alarm. An acknowledgement shows as a Status output (the
        // unacknowledged count changes), which pushes HistoryChanged above.
        let me = self.clone();
        crate::engine::route_popup_actions(self.runtime.engine().clone(), actions, move |id| {
            me.shell.open_window(Page::History, id)
        });
    }

    /// Applies and persists new settings. Nothing is stored unless it validates.
    async fn save_settings(&self, new: Settings) -> Result<(), Error> {
        new.validate()?;
        self.persister
            .save(&new)
            .map_err(|e| Error::Storage(format!("The settings could not be saved: {e}")))?;
        let old = std::mem::replace(
            &mut *self
                .settings
                .write()
                .map_err(|_| Error::Internal("settings lock poisoned".into()))?,
            new.clone(),
        );
        if old.autostart != new.autostart {
            self.shell
                .set_autostart(new.autostart)
                .map_err(|e| Error::Desktop(format!("Autostart could not be changed: {e}")))?;
        }
        self.runtime.apply(&old, &new).await;
        self.shell.show_status(&self.status());
        let _ = self.pushes.send(Push::Status(self.status()));
        Ok(())
    }

    async fn secret<T: Send + 'static>(
        &self,
        f: impl FnOnce(SecretStore) -> Result<T, crate::secrets::SecretError> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.secrets.clone();
        // Keyring calls block on D-Bus: never on the async workers.
        Ok(tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??)
    }

    async fn set_secret(&self, key: SecretKey, value: String) -> Result<(), Error> {
        if value.is_empty() {
            return Err(Error::InvalidInput(
                "An empty secret cannot be stored; use Remove instead.".into(),
            ));
        }
        let k = key.clone();
        // Typed now for the account's endpoint as saved: bound to it (the window saves the
        // settings before the secret).
        let origin = crate::secret_binding::origin_in(&self.settings(), &key);
        self.secret(move |s| s.set_bound(&k, &value, origin.as_deref()))
            .await?;
        tracing::info!(entry = %key.entry_name(), "secret stored in the keyring");
        self.runtime.secrets_changed(&self.settings()).await;
        Ok(())
    }

    /// Removes an account and everything the keyring holds for it. The secrets go first: if
    /// the keyring refuses, the account stays listed and Remove can be tried again, instead
    /// of leaving entries behind that no account names any more. An id no account has is
    /// not an error: its leftover secrets are removed all the same.
    async fn remove_account(&self, account_id: String) -> Result<(), Error> {
        let keys = [
            SecretKey::SaverisPassword(account_id.clone()),
            SecretKey::StompPasscode(account_id.clone()),
            SecretKey::ElementApiKey(account_id.clone()),
        ];
        self.secret(move |s| keys.iter().try_for_each(|k| s.delete(k)))
            .await?;
        let old = self.settings();
        let mut new = old.clone();
        new.saveris.retain(|a| a.id != account_id);
        new.element.retain(|a| a.id != account_id);
        if new != old {
            // Feeds restart without the account, as after any save of the accounts.
            self.save_settings(new).await?;
        }
        tracing::info!(account = %account_id, "account and its secrets removed");
        Ok(())
    }

    fn test_popup(&self) -> Result<(), Error> {
        let popup = Popup {
            tag: "test".into(),
            summary: "Alarm Tray test notification".into(),
            body: "Notifications work. Alarms will look like this.".into(),
            urgency: Urgency::Normal,
            alarm_id: None,
            actions: false,
        };
        Ok(self.notifier.show(&popup)?)
    }

    async fn set_paused(&self, paused: bool) -> Result<(), Error> {
        let mut s = self.settings();
        s.notifications.paused = paused;
        self.save_settings(s).await
    }

    /// The tray's Pause/Resume item.
    pub async fn toggle_pause(&self) {
        let paused = !self.settings().notifications.paused;
        if let Err(e) = self.set_paused(paused).await {
            tracing::warn!(error = %e, "pause toggle failed");
        }
    }

    pub async fn shutdown(&self) {
        self.runtime.shutdown().await;
    }
}

/// The sensor view of one range: the readings reduced in the monitor, so a 30-day range
/// crosses the socket as a few thousand buckets, not tens of thousands of readings.
fn sensor_view(
    history: &crate::engine::history::History,
    settings: &Settings,
    sensor: String,
    quantity: Option<String>,
    (from_ms, to_ms): (i64, i64),
    buckets: u32,
) -> Result<crate::engine::reduce::SensorView, Error> {
    use crate::engine::reduce;
    if to_ms <= from_ms {
        return Err(Error::InvalidInput(
            "the range ends before it starts".into(),
        ));
    }
    let points = match &quantity {
        Some(q) => db(history.field_series(&sensor, q, from_ms))?,
        None => db(history.series(&sensor, from_ms))?,
    };
    let (name, unit) = db(history.sensor_unit(&sensor, quantity.as_deref()))?;
    let limits = reduce::limit_lines(&settings.rules, &sensor, quantity.as_deref());
    let bucket_ms = (to_ms - from_ms) / i64::from(buckets.clamp(1, reduce::MAX_BUCKETS));
    let gap_ms = reduce::gap_threshold(&points, bucket_ms.max(60_000));
    let celsius = reduce::is_celsius(unit.as_deref(), quantity.as_deref());
    Ok(reduce::SensorView {
        buckets: reduce::reduce(&points, from_ms, to_ms, buckets),
        stats: reduce::stats(&points, from_ms, to_ms, &limits, gap_ms, celsius),
        alarms: db(history.sensor_alarms(&sensor, from_ms, to_ms))?,
        limits,
        sensor,
        name,
        quantity,
        unit,
        from_ms,
        to_ms,
    })
}

fn db<T>(r: Result<T, crate::engine::HistoryError>) -> Result<T, Error> {
    r.map_err(|e| Error::Storage(format!("The history could not be read: {e}")))
}

impl Handler for Monitor {
    async fn handle(&self, request: Request) -> Result<Response, Error> {
        let history = self.runtime.engine().history().clone();
        match request {
            Request::Info => Ok(Response::Info(self.info.clone())),
            Request::GetSettings => Ok(Response::Settings(self.settings())),
            Request::SaveSettings { settings } => {
                self.save_settings(settings).await.map(|_| Response::Ok)
            }
            Request::SetSecret { key, value } => {
                self.set_secret(key, value).await.map(|_| Response::Ok)
            }
            Request::DeleteSecret { key } => {
                self.secret(move |s| s.delete(&key)).await?;
                self.runtime.secrets_changed(&self.settings()).await;
                Ok(Response::Ok)
            }
            Request::RemoveAccount { account_id } => {
                self.remove_account(account_id).await.map(|_| Response::Ok)
            }
            Request::HasSecret { key } => self
                .secret(move |s| s.exists(&key))
                .await
                .map(Response::Bool),
            Request::Status => Ok(Response::Status(self.status())),
            Request::Team => Ok(Response::Team(self.runtime.team_status().borrow().clone())),
            Request::TestConnection { test } => {
                let message = self.runtime.test_connection(test).await?;
                Ok(Response::Connected(Connected { message }))
            }
            Request::Discover { account, what } => self
                .runtime
                .discover(&self.settings(), &account, what)
                .await
                .map(Response::Items),
            Request::Alarms { filter } => db(history.alarms(&filter)).map(Response::Alarms),
            Request::Acknowledge { alarm_id, comment } => {
                self.runtime
                    .engine()
                    .acknowledge_with(alarm_id, "window", comment)
                    .await?;
                let _ = self.pushes.send(Push::HistoryChanged);
                Ok(Response::Ok)
            }
            Request::LatestValues => db(history.latest_values()).map(Response::Latest),
            Request::Series { sensor, since_ms } => {
                db(history.series(&sensor, since_ms)).map(Response::Series)
            }
            Request::FieldSeries {
                sensor,
                quantity,
                since_ms,
            } => db(history.field_series(&sensor, &quantity, since_ms)).map(Response::Series),
            Request::Unparsed { limit } => {
                db(history.unparsed(limit.clamp(1, 1000))).map(Response::Unparsed)
            }
            Request::SensorView {
                sensor,
                quantity,
                from_ms,
                to_ms,
                buckets,
            } => sensor_view(
                &history,
                &self.settings(),
                sensor,
                quantity.filter(|q| !q.is_empty()),
                (from_ms, to_ms),
                buckets,
            )
            .map(|v| Response::SensorView(Box::new(v))),
            Request::AuditVerify => {
                let audit = history
                    .audit()
                    .map_err(|e| {
                        Error::Storage(format!("The audit trail could not be opened: {e}"))
                    })?
                    .clone();
                // Reads the whole chain: off the async workers.
                tokio::task::spawn_blocking(move || audit.verify())
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map(Response::Audit)
                    .map_err(|e| Error::Storage(format!("The audit trail could not be read: {e}")))
            }
            Request::SendTestNotification => self.test_popup().map(|_| Response::Ok),
            Request::SetPaused { paused } => self.set_paused(paused).await.map(|_| Response::Ok),
            Request::OpenWindow { page, alarm_id } => {
                self.shell.open_window(page, alarm_id);
                Ok(Response::Ok)
            }
            Request::Quit => {
                tracing::info!("quit asked over the local socket");
                self.shell.quit();
                Ok(Response::Ok)
            }
            // Handled by the server before it reaches here.
            Request::Subscribe => Ok(Response::Ok),
        }
    }
}
