//! Notifiers: desktop popups and test recorders.
//! TEMPORARY interface placeholder in main until the engine branch lands (replaced wholesale by it).

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the desktop notification service refused the popup: {0}")]
    Desktop(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Low,
    Normal,
    Critical,
}

#[derive(Debug, Clone)]
pub struct Popup {
    pub tag: String,
    pub summary: String,
    pub body: String,
    pub urgency: Urgency,
    pub alarm_id: Option<i64>,
    pub actions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PopupAction {
    Acknowledge(i64),
    Open(Option<i64>),
}

pub trait Notifier: Send + Sync {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError>;
    fn close(&self, tag: &str);
}

pub struct DesktopNotifier {
    _actions: tokio::sync::mpsc::UnboundedSender<PopupAction>,
}

impl DesktopNotifier {
    pub fn new(actions: tokio::sync::mpsc::UnboundedSender<PopupAction>) -> Self {
        DesktopNotifier { _actions: actions }
    }
}

impl Notifier for DesktopNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        let urgency = match popup.urgency {
            Urgency::Low => notify_rust::Urgency::Low,
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        };
        notify_rust::Notification::new()
            .appname("Alarm Tray")
            .summary(&popup.summary)
            .body(&popup.body)
            .urgency(urgency)
            .show()
            .map(|_| ())
            .map_err(|e| NotifyError::Desktop(e.to_string()))
    }
    fn close(&self, _tag: &str) {}
}
