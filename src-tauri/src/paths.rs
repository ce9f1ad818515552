//! Where the app keeps its files. `ALARM_TRAY_DATA_DIR` overrides the data dir (demo
//! profile, tests); everything else derives from it so a profile is one folder.

use std::path::PathBuf;

/// The per-user data dir: settings store, history database, logs.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ALARM_TRAY_DATA_DIR") {
        return PathBuf::from(d);
    }
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join(crate::APP_ID)
}

pub fn settings_file() -> PathBuf {
    data_dir().join(crate::settings::FILE_NAME)
}

pub fn history_db() -> PathBuf {
    data_dir().join("history.sqlite3")
}

pub fn log_dir() -> PathBuf {
    data_dir().join("logs")
}

/// The monitor's local socket. In `$XDG_RUNTIME_DIR` (per user, mode 0700) when there is
/// one; the socket file itself is made 0600. A data-dir override gets its own socket so a
/// demo or test profile never talks to the user's monitor.
pub fn socket_path() -> PathBuf {
    socket_path_for(
        std::env::var_os("ALARM_TRAY_DATA_DIR")
            .map(PathBuf::from)
            .as_deref(),
    )
}

/// The socket of the monitor whose data dir is overridden to `data_dir` (`None`: the
/// user's own monitor). Tests use it to reach a profile's monitor.
pub fn socket_path_for(data_dir: Option<&std::path::Path>) -> PathBuf {
    // Windows has no XDG_RUNTIME_DIR, but Wine passes the Linux one through: there the lock
    // and the pipe's name would depend on how the program was started. The per-user temp
    // dir is the same for every start.
    #[cfg(windows)]
    let base = std::env::temp_dir();
    #[cfg(not(windows))]
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    match data_dir {
        Some(d) => {
            // A short stable tag of the profile path: socket paths are limited to ~108 bytes.
            let tag = d
                .to_string_lossy()
                .bytes()
                .fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100000001b3)
                });
            base.join(format!("alarm-tray-{tag:016x}.sock"))
        }
        None => base.join("alarm-tray.sock"),
    }
}
