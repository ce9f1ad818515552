//! The only module that imports tauri: the monitor's tray and shell, and the window
//! process with its thin commands.

mod badge;
/// `ui/src/bindings.ts` from the Rust types: written and checked by tests only.
#[cfg(test)]
mod bindings;
pub mod monitor_app;
pub mod process;
pub mod tray;
#[cfg(target_os = "linux")]
mod wayland;
pub mod window_app;

/// The one embedded Tauri context (config, UI assets), shared by both processes.
pub(crate) fn context() -> tauri::Context<tauri::Wry> {
    tauri::generate_context!()
}
