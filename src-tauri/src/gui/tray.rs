//! The tray icon: four drawn states (the alarm state with the count of unacknowledged
//! alarms drawn on it, see [`super::badge`]), and the menu
//! status line · Open · Alarm history · Pause notifications/Resume · Quit.
//!
//! The first menu line is the status ("2 active alarms · Saveris live · ELEMENT
//! reconnecting"), disabled so it cannot be clicked: Tauri's tray tooltip is not supported
//! on Linux (StatusNotifierItem hosts show no tooltip from it), so the menu is where the
//! one-line status can be read there. The tooltip is still set for the other systems.

use std::sync::Mutex;

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Wry};

use crate::engine::model::{Status, TrayState};
use crate::event::FeedState;

pub const ID_STATUS: &str = "status";
pub const ID_OPEN: &str = "open";
pub const ID_HISTORY: &str = "history";
pub const ID_PAUSE: &str = "pause";
pub const ID_QUIT: &str = "quit";

fn icon_bytes(state: TrayState) -> &'static [u8] {
    match state {
        TrayState::Ok => include_bytes!("../../../icons/tray-ok.png"),
        TrayState::Alarm => include_bytes!("../../../icons/tray-alarm.png"),
        TrayState::Problem => include_bytes!("../../../icons/tray-problem.png"),
        TrayState::Paused => include_bytes!("../../../icons/tray-paused.png"),
    }
}

pub fn icon(state: TrayState) -> tauri::Result<Image<'static>> {
    Image::from_bytes(icon_bytes(state))
}

/// The icon for `state`; the alarm icon carries `unacked` (1–9, 9+) on its badge.
pub fn icon_with_count(state: TrayState, unacked: u32) -> tauri::Result<Image<'static>> {
    let base = icon(state)?;
    if state != TrayState::Alarm || unacked == 0 {
        return Ok(base);
    }
    let (w, h) = (base.width(), base.height());
    let mut rgba = base.rgba().to_vec();
    super::badge::draw(&mut rgba, w, h, unacked);
    Ok(Image::new_owned(rgba, w, h))
}

/// The menu's status line: active alarms, each feed kind's state, and the pause.
pub fn status_line(status: &Status) -> String {
    let mut parts = vec![match status.active_alarms {
        0 => "no active alarms".to_string(),
        1 => "1 active alarm".to_string(),
        n => format!("{n} active alarms"),
    }];
    for (prefix, name) in [("saveris:", "Saveris"), ("element:", "ELEMENT")] {
        let states: Vec<&FeedState> = status
            .feeds
            .iter()
            .filter(|f| f.feed.starts_with(prefix))
            .map(|f| &f.state)
            .collect();
        // The worst state of the kind's feeds speaks for it.
        let word = if states.is_empty() {
            continue;
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::LoginFailed { .. }))
        {
            "login failed"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::Stopped { .. }))
        {
            "stopped"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::WaitingForKeyring { .. }))
        {
            "not watched (keyring locked or missing)"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::Waiting { .. }))
        {
            "reconnecting"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::ThroughTeam { .. }))
        {
            "watching through the team"
        } else if states.iter().any(|s| matches!(s, FeedState::Connecting)) {
            "connecting"
        } else if states.iter().any(|s| matches!(s, FeedState::Live)) {
            "live"
        } else {
            "idle"
        };
        parts.push(format!("{name} {word}"));
    }
    if status.summary.contains("keeps dropping the connection") {
        parts.push("connection unstable".into());
    }
    if status.summary.contains(crate::engine::POPUPS_FAILING) {
        parts.push("popups failing".into());
    }
    if status.summary.contains("history cannot be written") {
        parts.push("history cannot be written".into());
    }
    // Issue 26: team sharing is on.
    match status.team_pcs {
        Some(1) => parts.push("1 PC watching".into()),
        Some(n) => parts.push(format!("{n} PCs watching")),
        None => {}
    }
    if status.paused {
        parts.push("popups paused".into());
    }
    parts.join(" \u{b7} ")
}

/// The tray, the menu items whose text follows the status, and the icon last drawn.
pub struct Tray {
    pub icon: TrayIcon<Wry>,
    pub status_item: MenuItem<Wry>,
    pub pause_item: MenuItem<Wry>,
    shown_icon: Mutex<Option<(TrayState, u32)>>,
}

pub fn build(app: &AppHandle, tooltip: &str) -> tauri::Result<Tray> {
    let status_item = MenuItem::with_id(app, ID_STATUS, "starting", false, None::<&str>)?;
    let sep_top = PredefinedMenuItem::separator(app)?;
    let open = MenuItem::with_id(app, ID_OPEN, "Open Alarm Tray", true, None::<&str>)?;
    let history = MenuItem::with_id(app, ID_HISTORY, "Alarm history", true, None::<&str>)?;
    let pause_item = MenuItem::with_id(app, ID_PAUSE, "Pause notifications", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let quit = MenuItem::with_id(app, ID_QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status_item,
            &sep_top,
            &open,
            &history,
            &pause_item,
            &sep,
            &quit,
        ],
    )?;
    let icon = TrayIconBuilder::with_id("alarm-tray")
        .icon(icon(TrayState::Ok)?)
        .tooltip(tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .build(app)?;
    Ok(Tray {
        icon,
        status_item,
        pause_item,
        shown_icon: Mutex::new(Some((TrayState::Ok, 0))),
    })
}

impl Tray {
    pub fn show(&self, status: &Status, prefix: &str) {
        // Redrawn only when what it shows changed: every new icon is a D-Bus signal.
        let key = (status.tray, status.active_alarms);
        let mut shown = self.shown_icon.lock().unwrap_or_else(|p| p.into_inner());
        let icon = if *shown == Some(key) {
            Ok(())
        } else {
            icon_with_count(status.tray, status.active_alarms)
                .and_then(|i| self.icon.set_icon(Some(i)))
                .map(|_| *shown = Some(key))
        };
        drop(shown);
        let result = icon
            .and_then(|_| {
                self.icon
                    .set_tooltip(Some(format!("{prefix}{}", status.summary)))
            })
            .and_then(|_| self.status_item.set_text(status_line(status)))
            .and_then(|_| {
                self.pause_item.set_text(if status.paused {
                    "Resume notifications"
                } else {
                    "Pause notifications"
                })
            });
        if let Err(e) = result {
            tracing::warn!(error = %e, "tray update failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FeedStatus;

    fn feed(id: &str, state: FeedState) -> FeedStatus {
        let mut f = FeedStatus::new(id.into(), id.into());
        f.state = state;
        f
    }

    #[test]
    fn the_status_line_names_alarms_and_each_feed_kind() {
        let mut s = Status {
            tray: TrayState::Alarm,
            summary: String::new(),
            paused: false,
            active_alarms: 2,
            feeds: vec![
                feed("saveris:a", FeedState::Live),
                feed("element:e:1", FeedState::Live),
                feed(
                    "element:e:2",
                    FeedState::Waiting {
                        secs: 5,
                        reason: "connection lost".into(),
                    },
                ),
            ],
            team_pcs: None,
        };
        assert_eq!(
            status_line(&s),
            "2 active alarms \u{b7} Saveris live \u{b7} ELEMENT reconnecting"
        );
        s.active_alarms = 1;
        s.feeds.truncate(1);
        s.paused = true;
        assert_eq!(
            status_line(&s),
            "1 active alarm \u{b7} Saveris live \u{b7} popups paused"
        );
        s.active_alarms = 0;
        s.feeds.clear();
        s.paused = false;
        assert_eq!(status_line(&s), "no active alarms");
    }

    /// Issue 26: the PCs watching, and a feed another PC holds for this one.
    #[test]
    fn the_status_line_says_how_many_pcs_watch_and_what_the_team_holds() {
        let s = Status {
            tray: TrayState::Ok,
            summary: String::new(),
            paused: false,
            active_alarms: 0,
            feeds: vec![feed(
                "saveris:a",
                FeedState::ThroughTeam { pc: "pc-b".into() },
            )],
            team_pcs: Some(3),
        };
        assert_eq!(
            status_line(&s),
            "no active alarms \u{b7} Saveris watching through the team \u{b7} 3 PCs watching"
        );
    }
}
