//! Desktop popups through notify-rust (freedesktop notifications over D-Bus on Linux).
//!
//! tauri's notification plugin drops the handle on desktop, so it has no actions; here each
//! popup with actions keeps its handle and a blocking thread waits for the user's click.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use notify_rust::{Hint, Notification, NotificationHandle, NotificationResponse, Timeout};
use tokio::sync::mpsc::UnboundedSender;

use crate::text::t;

use super::sound::{sounds_dir, SoundPlayer};
use super::{escape_markup, plain_text, Notifier, NotifyError, Popup, PopupAction, Urgency};

/// The name the daemon shows as the sender.
const APP_NAME: &str = "Alarm Tray";

struct Shown {
    id: u32,
    /// Bumped for every show, so a waiter of a replaced popup (same D-Bus id) stays quiet.
    generation: u64,
    handle: Arc<NotificationHandle>,
}

pub struct DesktopNotifier {
    actions: UnboundedSender<PopupAction>,
    shown: Arc<Mutex<HashMap<String, Shown>>>,
    next_generation: Mutex<u64>,
    /// Plays a popup's sound when the daemon cannot (no `sound` capability).
    player: Box<dyn Fn(super::Sound) + Send + Sync>,
    /// Whether the daemon plays sounds itself; asked once, asked again after a failure
    /// (another daemon may have taken over).
    daemon_sound: Mutex<Option<bool>>,
}

impl DesktopNotifier {
    /// Clicked actions are sent to `actions` (the root maps them to acknowledge / open).
    pub fn new(actions: UnboundedSender<PopupAction>) -> Self {
        let player = SoundPlayer::start();
        Self::with_player(actions, move |s| player.play(s))
    }

    /// [`DesktopNotifier::new`] with another way to play sounds the daemon cannot (tests
    /// count them).
    pub fn with_player(
        actions: UnboundedSender<PopupAction>,
        player: impl Fn(super::Sound) + Send + Sync + 'static,
    ) -> Self {
        DesktopNotifier {
            actions,
            shown: Arc::default(),
            next_generation: Mutex::new(0),
            player: Box::new(player),
            daemon_sound: Mutex::new(None),
        }
    }

    /// Whether the notification daemon announces the `sound` capability.
    fn daemon_plays_sounds(&self) -> bool {
        let mut known = self.daemon_sound.lock().unwrap_or_else(|p| p.into_inner());
        *known.get_or_insert_with(|| {
            notify_rust::get_capabilities().is_ok_and(|c| c.iter().any(|c| c == "sound"))
        })
    }

    /// The D-Bus notification id of the popup with `tag`, while it is open.
    pub fn id_of(&self, tag: &str) -> Option<u32> {
        self.shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tag)
            .map(|s| s.id)
    }

    fn build(popup: &Popup, replaces: Option<u32>) -> Notification {
        let mut n = Notification::new();
        n.appname(APP_NAME)
            .icon(crate::APP_ID)
            .hint(Hint::DesktopEntry(crate::APP_ID.into()))
            // The summary is plain text in the spec; only the body is markup.
            .summary(&plain_text(&popup.summary))
            .body(&escape_markup(&popup.body));
        n.urgency(match popup.urgency {
            Urgency::Low => notify_rust::Urgency::Low,
            Urgency::Normal => notify_rust::Urgency::Normal,
            Urgency::Critical => notify_rust::Urgency::Critical,
        });
        if popup.urgency == Urgency::Critical {
            // An alarm stays until the user reacts or it clears.
            n.timeout(Timeout::Never);
        }
        if popup.actions {
            if popup.alarm_id.is_some() {
                n.action("acknowledge", &t("action-acknowledge", &[]));
            }
            n.action("open", &t("action-open", &[]));
            // A click on the body opens as well (daemons invoke the `default` action).
            n.action("default", &t("action-open", &[]));
        }
        match popup.sound.map(|s| s.file_in(&sounds_dir())) {
            Some(Ok(path)) => {
                n.hint(Hint::SoundFile(path.to_string_lossy().into_owned()));
            }
            Some(Err(e)) => tracing::warn!("the alarm sound could not be written: {e}"),
            // Silent on purpose (sound off, quiet popups): no daemon sound either.
            None => {
                n.hint(Hint::SuppressSound(true));
            }
        }
        if let Some(id) = replaces {
            n.id(id);
        }
        n
    }
}

impl Notifier for DesktopNotifier {
    fn show(&self, popup: &Popup) -> Result<(), NotifyError> {
        let replaces = self.id_of(&popup.tag);
        let handle = match Self::build(popup, replaces).show() {
            Ok(h) => h,
            Err(e) => {
                *self.daemon_sound.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(NotifyError::Show(e.to_string()));
            }
        };
        if let Some(sound) = popup.sound {
            if !self.daemon_plays_sounds() {
                (self.player)(sound);
            }
        }
        let generation = {
            let mut g = self
                .next_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *g += 1;
            *g
        };
        let handle = Arc::new(handle);
        let id = handle.id();
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).insert(
            popup.tag.clone(),
            Shown {
                id,
                generation,
                handle: handle.clone(),
            },
        );

        if popup.actions {
            let shown = self.shown.clone();
            let actions = self.actions.clone();
            let tag = popup.tag.clone();
            let alarm_id = popup.alarm_id;
            // wait_for_action blocks until a click or close: one thread per open popup with
            // actions (storm control keeps that number small).
            let spawned = std::thread::Builder::new()
                .name("popup-actions".into())
                .spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    let mut clicked: Option<String> = None;
                    rt.block_on(handle.wait_for_action_async(|r| {
                        if let NotificationResponse::Action(a) = r {
                            clicked = Some(a.clone());
                        } else if let NotificationResponse::Default = r {
                            clicked = Some("default".into());
                        }
                    }));
                    let current = {
                        let mut map = shown.lock().unwrap_or_else(|p| p.into_inner());
                        let current = map.get(&tag).is_some_and(|s| s.generation == generation);
                        // Closed by the daemon (expired, dismissed): forget it. After a
                        // click it stays known, so acknowledging or clearing can close it.
                        if current && clicked.is_none() {
                            map.remove(&tag);
                        }
                        current
                    };
                    if !current {
                        return;
                    }
                    let action = match (clicked.as_deref(), alarm_id) {
                        (Some("acknowledge"), Some(id)) => Some(PopupAction::Acknowledge(id)),
                        (Some("open" | "default"), _) => Some(PopupAction::Open(alarm_id)),
                        _ => None,
                    };
                    if let Some(a) = action {
                        let _ = actions.send(a);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("no thread for popup actions: {e}");
            }
        }
        Ok(())
    }

    fn close(&self, tag: &str) {
        let Some(shown) = self
            .shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tag)
        else {
            return;
        };
        let handle = shown.handle;
        // CloseNotification is a D-Bus round trip: off the caller's thread.
        let _ = std::thread::Builder::new()
            .name("popup-close".into())
            .spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(handle.close_async());
                }
            });
    }
}
