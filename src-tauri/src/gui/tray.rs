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
use crate::text::{t, tr, Lang};

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
pub fn status_line(status: &Status, lang: Lang) -> String {
    let t = |id: &str| tr(lang, id, &[]);
    let mut parts = vec![tr(
        lang,
        "tray-active",
        &[("count", status.active_alarms.into())],
    )];
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
            "tray-login-failed"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::Stopped { .. }))
        {
            "tray-stopped"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::WaitingForKeyring { .. }))
        {
            "tray-keyring"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::Waiting { .. }))
        {
            "tray-reconnecting"
        } else if states
            .iter()
            .any(|s| matches!(s, FeedState::ThroughTeam { .. }))
        {
            "tray-through-team"
        } else if states.iter().any(|s| matches!(s, FeedState::Connecting)) {
            "tray-connecting"
        } else if states.iter().any(|s| matches!(s, FeedState::Live)) {
            "tray-live"
        } else {
            "tray-idle"
        };
        parts.push(tr(
            lang,
            "tray-feed",
            &[("kind", name.into()), ("state", t(word).into())],
        ));
    }
    if status.summary.contains(&t("status-unstable")) {
        parts.push(t("tray-unstable"));
    }
    if status.summary.contains(&t("status-popups-failing")) {
        parts.push(t("tray-popups-failing"));
    }
    if status.summary.contains(&t("status-history-failing")) {
        parts.push(t("tray-history-failing"));
    }
    // Issue 26: team sharing is on.
    if let Some(n) = status.team_pcs {
        parts.push(tr(lang, "team-pcs-watching", &[("count", n.into())]));
    }
    if status.paused {
        parts.push(t("tray-paused"));
    }
    parts.join(" \u{b7} ")
}

/// The tray, the menu items whose text follows the status, and the icon last drawn.
pub struct Tray {
    pub icon: TrayIcon<Wry>,
    pub status_item: MenuItem<Wry>,
    pub pause_item: MenuItem<Wry>,
    /// The items whose words change only with the language (issue 25).
    fixed_items: Vec<(MenuItem<Wry>, &'static str)>,
    shown_lang: Mutex<Option<Lang>>,
    shown_icon: Mutex<Option<(TrayState, u32)>>,
}

pub fn build(app: &AppHandle, tooltip: &str) -> tauri::Result<Tray> {
    let status_item =
        MenuItem::with_id(app, ID_STATUS, t("tray-starting", &[]), false, None::<&str>)?;
    let sep_top = PredefinedMenuItem::separator(app)?;
    let open = MenuItem::with_id(app, ID_OPEN, t("tray-open", &[]), true, None::<&str>)?;
    let history = MenuItem::with_id(app, ID_HISTORY, t("tray-history", &[]), true, None::<&str>)?;
    let pause_item = MenuItem::with_id(app, ID_PAUSE, t("tray-pause", &[]), true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let quit = MenuItem::with_id(app, ID_QUIT, t("tray-quit", &[]), true, None::<&str>)?;
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
        fixed_items: vec![
            (open, "tray-open"),
            (history, "tray-history"),
            (quit, "tray-quit"),
        ],
        shown_lang: Mutex::new(Some(crate::text::current())),
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
        // A language chosen under General re-labels the menu without a restart.
        let lang = crate::text::current();
        let mut shown_lang = self.shown_lang.lock().unwrap_or_else(|p| p.into_inner());
        if *shown_lang != Some(lang) {
            for (item, id) in &self.fixed_items {
                if let Err(e) = item.set_text(tr(lang, id, &[])) {
                    tracing::warn!(error = %e, "tray relabel failed");
                }
            }
            *shown_lang = Some(lang);
        }
        drop(shown_lang);
        let result = icon
            .and_then(|_| {
                self.icon
                    .set_tooltip(Some(format!("{prefix}{}", status.summary)))
            })
            .and_then(|_| self.status_item.set_text(status_line(status, lang)))
            .and_then(|_| {
                self.pause_item.set_text(tr(
                    lang,
                    if status.paused {
                        "tray-resume"
                    } else {
                        "tray-pause"
                    },
                    &[],
                ))
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
            status_line(&s, Lang::En),
            "2 active alarms \u{b7} Saveris live \u{b7} ELEMENT reconnecting"
        );
        s.active_alarms = 1;
        s.feeds.truncate(1);
        s.paused = true;
        assert_eq!(
            status_line(&s, Lang::En),
            "1 active alarm \u{b7} Saveris live \u{b7} popups paused"
        );
        s.active_alarms = 0;
        s.feeds.clear();
        s.paused = false;
        assert_eq!(status_line(&s, Lang::En), "no active alarms");
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
            status_line(&s, Lang::En),
            "no active alarms \u{b7} Saveris watching through the team \u{b7} 3 PCs watching"
        );
        assert!(status_line(&s, Lang::De).ends_with("3 PCs überwachen"));
    }
}
