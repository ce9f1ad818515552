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
        // Keyring calls block on D-Bus: never on the async workers, and never longer than
        // the keyring timeout (a hung keyring daemon must not hang the monitor).
        Ok(crate::secrets::bounded(f).await?)
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
            // The test rings the critical alarms' sound, so the user hears what they chose.
            sound: {
                let n = self.settings().notifications;
                n.sound.then_some(n.critical.sound).flatten()
            },
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

/// Longest range the sensor view answers (a custom range is checked here as well as in
/// the window): a year and a bit, about 570,000 readings at one a minute.
const MAX_VIEW_RANGE_MS: i64 = 400 * 86_400_000;
/// Most readings one view reads (a year at one reading a minute fits).
const MAX_VIEW_READINGS: u32 = 1_000_000;

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
    if to_ms - from_ms > MAX_VIEW_RANGE_MS {
        return Err(Error::InvalidInput(
            "the range is longer than 400 days".into(),
        ));
    }
    let points = match &quantity {
        Some(q) => db(history.field_series_between(&sensor, q, from_ms, to_ms, MAX_VIEW_READINGS))?,
        None => db(history.series_between(&sensor, from_ms, to_ms, MAX_VIEW_READINGS))?,
    };
    let (name, unit) = db(history.sensor_unit(&sensor, quantity.as_deref()))?;
    let scope = sensor_scope(history, settings, &sensor)?;
    let mut limits = reduce::limit_lines(&settings.rules, &scope, quantity.as_deref());
    limits.extend(upstream_limits(history, &sensor, quantity.as_deref())?);
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

/// The devices and ELEMENT tags a sensor reports through, from its newest events and the
/// subscriptions' scopes in the settings: what device and tag rules are matched against.
fn sensor_scope(
    history: &crate::engine::history::History,
    settings: &Settings,
    sensor: &str,
) -> Result<crate::engine::reduce::SensorScope, Error> {
    use crate::settings::ElementScope;
    let mut scope = crate::engine::reduce::SensorScope {
        sensor: sensor.to_string(),
        ..Default::default()
    };
    for (device, account, subscription) in db(history.sensor_origins(sensor))? {
        if let Some(d) = device.filter(|d| !scope.devices.contains(d)) {
            scope.devices.push(d);
        }
        let tags = settings
            .element
            .iter()
            .filter(|a| a.id == account)
            .flat_map(|a| a.subscriptions.iter())
            .filter(|s| s.id == subscription)
            .filter_map(|s| match &s.scope {
                ElementScope::Tag(t) => Some(t.clone()),
                _ => None,
            });
        for t in tags {
            if !scope.tags.contains(&t) {
                scope.tags.push(t);
            }
        }
    }
    Ok(scope)
}

/// The limits the sensor carries upstream, drawn beside the rules' ones with
/// `LimitOrigin::Saveris`: the equipment limits the Data API stored in `names` (issue 20).
fn upstream_limits(
    history: &crate::engine::history::History,
    sensor: &str,
    quantity: Option<&str>,
) -> Result<Vec<crate::engine::reduce::LimitLine>, Error> {
    // The equipment's configured limits (Saveris Data API, issue 20) apply to its own value.
    Ok(match quantity {
        None => crate::engine::names::limit_lines(history, sensor),
        Some(_) => Vec::new(),
    })
}

fn report_error(e: crate::report::ReportError) -> Error {
    match e {
        crate::report::ReportError::EmptyRange | crate::report::ReportError::Time(_) => {
            Error::InvalidInput(e.to_string())
        }
        e => Error::Storage(e.to_string()),
    }
}

fn db<T>(r: Result<T, crate::engine::HistoryError>) -> Result<T, Error> {
    r.map_err(|e| Error::Storage(format!("The history could not be read: {e}")))
}

impl Monitor {
    /// The Test button of a webhook: one test message, no retry; the answer in words.
    async fn test_webhook(
        &self,
        webhook: crate::settings::Webhook,
        token: Option<String>,
    ) -> Result<Response, Error> {
        use crate::notify::webhook::{self, Message, WebhookError};
        let token = match token.filter(|t| !t.trim().is_empty()) {
            Some(t) => Some(t.trim().to_string()),
            None => {
                // Bounded like every keyring call: a hung keyring must not hang the monitor.
                let hook = webhook.clone();
                self.secret(move |store| Ok(webhook::stored_token(&store, &hook)))
                    .await?
                    .map_err(|e| match e {
                        WebhookError::TokenElsewhere { .. } => {
                            Error::EndpointChanged(e.to_string())
                        }
                        e => Error::Keyring(e.to_string()),
                    })?
            }
        };
        let now = jiff::Timestamp::now().as_millisecond();
        match webhook::send(&webhook, &Message::test(now), token.as_deref()).await {
            Ok(()) => Ok(Response::Connected(Connected {
                message: "The webhook took the test message.".into(),
            })),
            Err(e @ WebhookError::TokenMissing) => Err(Error::SecretMissing(e.to_string())),
            Err(e @ WebhookError::Url) => Err(Error::InvalidInput(e.to_string())),
            Err(e @ WebhookError::Status(_)) => Err(Error::BadResponse(e.to_string())),
            Err(e) => Err(Error::Network(e.to_string())),
        }
    }
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
            Request::Snooze {
                sensor,
                length,
                reason,
            } => {
                self.runtime
                    .engine()
                    .snooze(&sensor, length, &reason)
                    .await?;
                let _ = self.pushes.send(Push::HistoryChanged);
                Ok(Response::Ok)
            }
            Request::EndSnooze { sensor } => {
                self.runtime.engine().end_snooze(&sensor).await?;
                let _ = self.pushes.send(Push::HistoryChanged);
                Ok(Response::Ok)
            }
            Request::Snoozes => {
                let now = jiff::Timestamp::now().as_millisecond();
                db(history.snoozes()).map(|list| {
                    Response::Snoozes(list.into_iter().filter(|s| s.until_ms > now).collect())
                })
            }
            Request::LatestValues => db(history.latest_values()).map(Response::Latest),
            Request::Places => db(crate::engine::names::places(&history)).map(Response::Places),
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
            Request::TestWebhook { webhook, token } => self.test_webhook(webhook, token).await,
            Request::Report { from_ms, to_ms } => {
                let settings = self.settings();
                // Reads every reading of the range and the whole audit chain: off the
                // async workers.
                tokio::task::spawn_blocking(move || {
                    crate::report::save_for_window(&history, &settings, (from_ms, to_ms))
                })
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map(|files| {
                    Response::Saved(crate::ipc::protocol::Saved {
                        message: format!("Report saved: {}", files.join(" and ")),
                        files,
                    })
                })
                .map_err(report_error)
            }
            Request::ExportAlarms { filter } => {
                tokio::task::spawn_blocking(move || crate::report::export_alarms(&history, &filter))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .map(|(file, n)| {
                        Response::Saved(crate::ipc::protocol::Saved {
                            message: format!(
                                "{n} {} saved to {file}",
                                if n == 1 { "alarm" } else { "alarms" }
                            ),
                            files: vec![file],
                        })
                    })
                    .map_err(report_error)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::history::History;
    use crate::event::{Event, EventKind, Source};
    use crate::settings::{
        ElementAccount, ElementScope, ElementSubscription, Limit, RuleTarget, ThresholdRule,
    };

    fn reading(h: &History, sensor: &str, device: &str, sub: &str, at: i64, v: f64) {
        h.write(|w| {
            let mut e = Event::new(
                Source::Element,
                "acc",
                sub,
                EventKind::Reading,
                format!("{sensor}-{sub}-{at}"),
            );
            e.sensor = Some(sensor.into());
            e.device = Some(device.into());
            e.value = Some(v);
            e.measured_at = jiff::Timestamp::from_millisecond(at).ok();
            w.insert_event(&e)?;
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn the_view_draws_the_limits_of_rules_on_the_sensors_device_and_tag() {
        let h = History::open_in_memory().unwrap();
        reading(&h, "s1", "dev-1", "cold-sub", 1_000, 4.0);
        reading(&h, "s1", "dev-1", "cold-sub", 61_000, 9.0);
        let mut settings = Settings::default();
        settings.element.push(ElementAccount {
            id: "acc".into(),
            subscriptions: vec![ElementSubscription {
                id: "cold-sub".into(),
                scope: ElementScope::Tag("cold".into()),
                ..Default::default()
            }],
            ..Default::default()
        });
        let rule = |name: &str, target: RuleTarget, limit: Limit| ThresholdRule {
            id: name.into(),
            name: name.into(),
            target,
            limit,
            ..Default::default()
        };
        settings.rules = vec![
            rule(
                "by device",
                RuleTarget::Device("dev-1".into()),
                Limit::Above { value: 8.0 },
            ),
            rule(
                "by tag",
                RuleTarget::Tag("cold".into()),
                Limit::Below { value: 2.0 },
            ),
            rule(
                "elsewhere",
                RuleTarget::Device("dev-9".into()),
                Limit::Above { value: 1.0 },
            ),
        ];
        let v = sensor_view(&h, &settings, "s1".into(), None, (0, 120_000), 10).unwrap();
        let names: Vec<&str> = v.limits.iter().map(|l| l.rule.as_str()).collect();
        assert_eq!(names, vec!["by device", "by tag"]);
        assert_eq!(v.stats.outside_ms, 0, "the last reading counts for nothing");
        assert_eq!(v.stats.max, Some(9.0));
        // A custom range in the past reads only that range; a reversed or too long one is refused.
        let past = sensor_view(&h, &settings, "s1".into(), None, (0, 30_000), 10).unwrap();
        assert_eq!(past.stats.count, 1);
        assert!(sensor_view(&h, &settings, "s1".into(), None, (5, 5), 10).is_err());
        assert!(sensor_view(
            &h,
            &settings,
            "s1".into(),
            None,
            (0, MAX_VIEW_RANGE_MS + 1),
            10
        )
        .is_err());
    }
}
