//! The only module that imports tauri: tray, window, commands.
