//! The tray icon: four drawn states, a one-line tooltip, and the menu
//! Open · Pause notifications/Resume · Quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Wry};

use crate::engine::model::{Status, TrayState};

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

/// The tray and the menu item whose text follows the pause state.
pub struct Tray {
    pub icon: TrayIcon<Wry>,
    pub pause_item: MenuItem<Wry>,
}

pub fn build(app: &AppHandle, tooltip: &str) -> tauri::Result<Tray> {
    let open = MenuItem::with_id(app, ID_OPEN, "Open Alarm Tray", true, None::<&str>)?;
    let history = MenuItem::with_id(app, ID_HISTORY, "Alarm history", true, None::<&str>)?;
    let pause_item = MenuItem::with_id(app, ID_PAUSE, "Pause notifications", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let quit = MenuItem::with_id(app, ID_QUIT, "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &history, &pause_item, &sep, &quit])?;
    let icon = TrayIconBuilder::with_id("alarm-tray")
        .icon(icon(TrayState::Ok)?)
        .tooltip(tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .build(app)?;
    Ok(Tray { icon, pause_item })
}

impl Tray {
    pub fn show(&self, status: &Status, prefix: &str) {
        let result = icon(status.tray)
            .and_then(|i| self.icon.set_icon(Some(i)))
            .and_then(|_| {
                self.icon
                    .set_tooltip(Some(format!("{prefix}{}", status.summary)))
            })
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
