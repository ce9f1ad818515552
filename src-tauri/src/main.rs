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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => alarm_tray::gui::monitor_app::run(alarm_tray::gui::monitor_app::MonitorOptions {
            hidden: cli.hidden,
        }),
        Some(Command::Window { page, alarm }) => alarm_tray::gui::window_app::run(page, alarm),
    }
}
