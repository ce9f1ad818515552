//! Logs with `tracing`: to stderr and to a daily-rolling file in the log dir.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. Keep the guard alive for the process' lifetime: it
/// flushes the file writer on drop. `file_prefix` distinguishes the monitor's and the
/// window's logs. Returns `None` for the guard when the log dir cannot be created (logs
/// then go to stderr only).
pub fn init(log_dir: Option<&Path>, file_prefix: &str) -> Option<WorkerGuard> {
    let filter =
        EnvFilter::try_from_env("ALARM_TRAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // keyring-core logs each entry's Debug form at debug level, and for some stores (the
    // in-memory one of demo mode) that holds the secret's bytes: never below warn.
    let filter = match "keyring_core=warn".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let stderr = fmt::layer().with_writer(std::io::stderr).with_target(false);
    let (file, guard) = match log_dir.map(|d| (d, std::fs::create_dir_all(d))) {
        Some((dir, Ok(()))) => {
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(file_prefix)
                .filename_suffix("log")
                .max_log_files(7)
                .build(dir)
                .ok();
            match appender {
                Some(a) => {
                    let (w, g) = tracing_appender::non_blocking(a);
                    (Some(fmt::layer().with_writer(w).with_ansi(false)), Some(g))
                }
                None => (None, None),
            }
        }
        _ => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .try_init();
    guard
}
