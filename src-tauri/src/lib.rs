//! Alarm Tray: live subscriptions to Testo Saveris and ELEMENT IoT turned into desktop
//! alarm popups.
//!
//! Flow (see ARCHITECTURE.md): `feeds` → [`event::Delivery`] → `engine` → decisions →
//! sinks (`notify`, tray, window, `watch`). Only `gui` imports tauri.

pub mod clock;
pub mod engine;
pub mod event;
pub mod feeds;
pub mod gui;
pub mod instance;
pub mod ipc;
pub mod logging;
pub mod memory;
pub mod monitor;
pub mod notify;
pub mod paths;
pub mod report;
pub mod runtime;
pub mod secret_binding;
pub mod secrets;
pub mod settings;
pub mod simulate;
/// Issue 26: team sharing over MQTT.
pub mod team;
pub mod team_bridge;
pub mod text;
pub mod units;
pub mod watch;

#[cfg(test)]
mod architecture_tests;

/// The version shown in `--version`, the settings window and the package.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The app's identifier (data dir name, D-Bus names, keyring service).
pub const APP_ID: &str = "org.alarmtray.AlarmTray";
