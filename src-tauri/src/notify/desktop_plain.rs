//! Desktop popups on Windows and macOS: notify-rust shows them, but has no actions, urgency
//! or close there, so Acknowledge and Open live in the window only. Not built on this
//! project's CI (Linux); the GitHub workflow builds it.

use tokio::sync::mpsc::UnboundedSender;

use super::sound::SoundPlayer;
use super::{plain_text, Notifier, NotifyError, Popup, PopupAction, Sound};

pub struct DesktopNotifier {
    _actions: UnboundedSender<PopupAction>,
    /// Toasts here carry no sound file of ours: the app plays the popup's sound itself.
    player: Box<dyn Fn(Sound) + Send + Sync>,
}

impl DesktopNotifier {
    pub fn new(actions: UnboundedSender<PopupAction>) -> Self {
        let player = SoundPlayer::start();
        Self::with_player(actions, move |s| player.play(s))
    }

    pub fn with_player(
        actions: UnboundedSender<PopupAction>,
        player: impl Fn(Sound) + Send + Sync + 'static,
    ) -> Self {
        DesktopNotifier {
            _actions: actions,
            player: Box::new(player),
        }
    }

    /// Popups have no ids on these platforms.
    pub fn id_of(&self, _tag: &str) -> Option<u32> {
        None
    }
}

impl Notifier for DesktopNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        if let Some(s) = popup.sound {
            (self.player)(s);
        }
        notify_rust::Notification::new()
            .appname("Alarm Tray")
            .summary(&plain_text(&popup.summary))
            // Plain text: these platforms do not read the freedesktop markup subset.
            .body(&plain_text(&popup.body))
            .show()
            .map(|_| ())
            .map_err(|e| NotifyError::Show(describe(&e.to_string())))
    }

    fn close(&self, _tag: &str) {}
}

/// The notifier's error as a sentence. Windows without the toast service (Wine, some
/// stripped-down Windows editions) answers "class not registered" (HRESULT 0x80040154),
/// which says nothing to a person.
fn describe(error: &str) -> String {
    if cfg!(windows) && error.contains("0x80040154") {
        format!(
            "this Windows has no notification (toast) service, so alarms show in the tray \
             and the window only ({error})"
        )
    } else {
        error.to_string()
    }
}
