//! The engine: dedupe, history, rules, decisions.
//! TEMPORARY interface placeholder in main until the engine branch lands (replaced wholesale by it).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::event::{Delivery, Event, FeedStatus, Source};
use crate::ipc::protocol::{AlarmFilter, AlarmRow, LatestValue, Status, TrayState, UnparsedRow};
use crate::notify::Notifier;
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history: {0}")]
    Db(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    History(#[from] HistoryError),
}

#[derive(Clone, Debug)]
pub struct History;

impl History {
    pub fn open(_path: &std::path::Path) -> Result<History, HistoryError> {
        Ok(History)
    }
    pub fn open_in_memory() -> Result<History, HistoryError> {
        Ok(History)
    }
    pub fn notice(&self) -> Option<String> {
        None
    }
    pub fn cursors(
        &self,
        _source: Source,
        _account: &str,
    ) -> Result<std::collections::HashMap<String, String>, HistoryError> {
        Ok(Default::default())
    }
    pub fn alarms(&self, _f: &AlarmFilter) -> Result<Vec<AlarmRow>, HistoryError> {
        Ok(vec![])
    }
    pub fn latest_values(&self) -> Result<Vec<LatestValue>, HistoryError> {
        Ok(vec![])
    }
    pub fn series(&self, _sensor: &str, _since_ms: i64) -> Result<Vec<(i64, f64)>, HistoryError> {
        Ok(vec![])
    }
    pub fn unparsed(&self, _limit: u32) -> Result<Vec<UnparsedRow>, HistoryError> {
        Ok(vec![])
    }
}

#[derive(Debug, Clone, Serialize)]
pub enum Decision {}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Output {
    Event { id: i64, event: Event },
    Decision { decision: Decision },
    Status { status: Status },
}

#[derive(Clone)]
pub struct EngineHandle {
    history: History,
    out: broadcast::Sender<Output>,
    settings: Arc<std::sync::Mutex<Settings>>,
}

pub fn spawn(
    settings: Settings,
    history: History,
    _notifier: Arc<dyn Notifier>,
    _deliveries: mpsc::Receiver<Delivery>,
    _statuses: mpsc::UnboundedReceiver<FeedStatus>,
) -> EngineHandle {
    let (out, _) = broadcast::channel(16);
    EngineHandle {
        history,
        out,
        settings: Arc::new(std::sync::Mutex::new(settings)),
    }
}

impl EngineHandle {
    pub fn update_settings(&self, settings: Settings) {
        if let Ok(mut s) = self.settings.lock() {
            *s = settings;
        }
    }
    pub async fn acknowledge(&self, _alarm_id: i64, _by: &str) -> Result<(), EngineError> {
        Ok(())
    }
    pub fn status(&self) -> Status {
        let paused = self
            .settings
            .lock()
            .map(|s| s.notifications.paused)
            .unwrap_or(false);
        Status {
            tray: if paused {
                TrayState::Paused
            } else {
                TrayState::Ok
            },
            summary: if paused {
                "Paused".into()
            } else {
                "All ok".into()
            },
            paused,
            active_alarms: 0,
            feeds: vec![],
        }
    }
    pub fn subscribe(&self) -> broadcast::Receiver<Output> {
        self.out.subscribe()
    }
    pub fn history(&self) -> &History {
        &self.history
    }
    pub async fn shutdown(self) {}
}
