//! `alarm-tray`: the monitor with its tray (default), the window, and the headless modes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use alarm_tray::ipc::protocol::Page;

#[derive(Parser, Debug)]
#[command(
    name = "alarm-tray",
    version,
    about = "Desktop alarms for Testo Saveris and ELEMENT IoT sensors"
)]
struct Cli {
    /// Start in the tray without opening the window (used by the login autostart entry).
    #[arg(long)]
    hidden: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The settings/history/dashboard window (started by the monitor; exits when closed).
    Window {
        #[arg(long, value_enum, default_value_t = Page::Settings)]
        page: Page,
        /// Show this alarm.
        #[arg(long)]
        alarm: Option<i64>,
    },
    /// Headless: the same feeds and engine, one JSON line per event/decision on stdout.
    Watch {
        /// Read this settings file (never written) instead of the profile's.
        #[arg(long)]
        settings: Option<std::path::PathBuf>,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        for_secs: Option<u64>,
        /// Decide popups but show none.
        #[arg(long)]
        no_notify: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => alarm_tray::gui::monitor_app::run(alarm_tray::gui::monitor_app::MonitorOptions {
            hidden: cli.hidden,
        }),
        Some(Command::Window { page, alarm }) => alarm_tray::gui::window_app::run(page, alarm),
        Some(Command::Watch {
            settings,
            for_secs,
            no_notify,
        }) => {
            let opts = alarm_tray::watch::WatchOptions {
                settings_file: settings,
                for_secs,
                no_notify,
            };
            match tokio::runtime::Runtime::new() {
                Ok(rt) => rt.block_on(alarm_tray::watch::run(opts)),
                Err(e) => {
                    eprintln!("alarm-tray: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
