//! Notifiers: desktop popups and test recorders.
//!
//! The engine decides *what* to show ([`Popup`]); a [`Notifier`] shows it. Popups carry plain
//! text: the desktop notifier escapes it for the markup subset Linux daemons render, so
//! text from the network can never inject markup.

// Freedesktop notifications (Linux, BSD): actions, urgency, hints, replace and close.
#[cfg(all(unix, not(target_os = "macos")))]
mod desktop;
// Windows and macOS: notify-rust offers neither actions nor a close there; plain popups.
#[cfg(not(all(unix, not(target_os = "macos"))))]
#[path = "desktop_plain.rs"]
mod desktop;
mod kept;
mod recording;
pub mod sound;
pub mod webhook;

pub use desktop::DesktopNotifier;
pub use kept::KeptNotifier;
pub use recording::{Recorded, RecordingNotifier};
pub use sound::{Sound, SoundPlayer};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No notification daemon, no session bus, or the daemon refused the call.
    #[error("the desktop notification could not be shown: {0}")]
    Show(String),
}

/// How loudly a popup asks for attention (the freedesktop urgency levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    Critical,
}

/// One popup as the engine wants it shown. Texts are plain (unescaped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Popup {
    /// Identifies what the popup is about (`alarm:17`, `feed:saveris:a1`, `summary`): a popup
    /// with the same tag replaces the earlier one, and [`Notifier::close`] closes it.
    pub tag: String,
    pub summary: String,
    pub body: String,
    pub urgency: Urgency,
    /// The alarm the Acknowledge action refers to.
    pub alarm_id: Option<i64>,
    /// Offer the Acknowledge (when there is an alarm) and Open actions.
    pub actions: bool,
    /// The sound that rings with it (issue 21); None: silent (sound off, or not an alarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<Sound>,
}

/// What the user did with a popup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PopupAction {
    Acknowledge(i64),
    /// Open the window (on the alarm, when there is one).
    Open(Option<i64>),
}

/// Shows and closes popups. Calls may block (D-Bus round trips): the engine calls it from
/// its own thread, never from the event loop.
pub trait Notifier: Send + Sync {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError>;
    fn close(&self, tag: &str);
    /// Popups cannot be shown right now (they are kept for later, see [`KeptNotifier`]).
    fn failing(&self) -> bool {
        false
    }
}

/// Escapes text for the body markup subset of the freedesktop notification spec
/// (`<b>`, `<i>`, `<a>`, … and entities): `&`, `<` and `>` become entities, so text from the
/// network shows as written and never as markup.
/// Control characters other than line breaks and tabs are dropped (see [`plain_text`]).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in plain_text(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Text from the network as a popup may show it: control characters other than `\n` and
/// `\t` are dropped (a NUL is not even a valid D-Bus string, so the popup would be lost;
/// ESC sequences and bells have no place in a notification).
pub fn plain_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_markup("<b>Fridge & co</b>"),
            "&lt;b&gt;Fridge &amp; co&lt;/b&gt;"
        );
        assert_eq!(
            escape_markup("&amp;"),
            "&amp;amp;",
            "entities from the network are shown as typed"
        );
        assert_eq!(escape_markup("22 °C"), "22 °C");
        assert_eq!(escape_markup("a\u{0}<b>\u{1b}[31m\n"), "a&lt;b&gt;[31m\n");
        assert_eq!(plain_text("Fridge\u{7}\u{0} 1\tx"), "Fridge 1\tx");
    }
}
