//! `alarm-tray`: the monitor with its tray (default), the window, and the headless modes.

// On Windows a console program gets a console window of its own when started from the
// Start menu or the login entry, and the monitor would keep it open all day (closing it ends
// the monitor). As a GUI program it gets none; the modes that print attach to the terminal
// they were started from (`attach_console`).
#![cfg_attr(windows, windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use alarm_tray::ipc::protocol::Page;

/// `--page`: the CLI's names for the window's pages (the protocol does not know clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PageArg {
    Settings,
    History,
    Dashboard,
}

impl From<PageArg> for Page {
    fn from(p: PageArg) -> Self {
        match p {
            PageArg::Settings => Page::Settings,
            PageArg::History => Page::History,
            PageArg::Dashboard => Page::Dashboard,
        }
    }
}

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
    /// Demo mode: the app against its own simulated Saveris and ELEMENT servers, in a
    /// separate throwaway profile (your settings, keyring and history are not touched).
    #[arg(long)]
    demo: bool,
    /// Scenario seed for --demo.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The settings/history/dashboard window (started by the monitor; exits when closed).
    Window {
        #[arg(long, value_enum, default_value_t = PageArg::Settings)]
        page: PageArg,
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
        /// Watch the demo scenario (own servers, throwaway profile).
        #[arg(long)]
        demo: bool,
        /// Scenario seed for --demo.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Talk to the running monitor over its local socket (scripts, tests): one JSON request
    /// per line on stdin (`{"type":"status"}`, `{"type":"quit"}`, …), one JSON answer per
    /// line on stdout (`{"ok":…}` or `{"error":"…"}`). Secrets go in on stdin, never as
    /// arguments, and never come back out.
    Ipc,
    /// The audit trail of the profile ALARM_TRAY_DATA_DIR names (default: the user's).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// The shift report of the profile ALARM_TRAY_DATA_DIR names: per sensor its alarms,
    /// time outside each limit, min/max/mean and mean kinetic temperature. Times are in the
    /// system's time zone unless they carry an offset. With no file, CSV on stdout.
    Report {
        /// Start: 2026-12-07, 2026-12-07T06:00 or RFC 3339.
        #[arg(long)]
        from: String,
        /// End (excluded), as --from.
        #[arg(long)]
        to: String,
        #[arg(long, value_name = "FILE")]
        pdf: Option<std::path::PathBuf>,
        #[arg(long, value_name = "FILE")]
        csv: Option<std::path::PathBuf>,
    },
    /// Run the demo servers and scenario standalone; prints their URLs and credentials.
    Simulate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        for_secs: Option<u64>,
        /// Run the scenario this many times as fast as the demo (the soak uses 50).
        #[arg(long, default_value_t = 1)]
        speed: u32,
        /// Write the settings of accounts pointing at these servers to FILE (a settings
        /// file as the monitor keeps it), for tests that run the tray app against them.
        #[arg(long, value_name = "FILE")]
        settings_out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Check the hash chain; names the first record changed, removed or moved and exits 1.
    Verify,
}

/// Points this process (and the window it starts) at a fresh throwaway profile.
fn use_demo_profile() -> Option<tempfile::TempDir> {
    match tempfile::Builder::new()
        .prefix("alarm-tray-demo-")
        .tempdir()
    {
        Ok(dir) => {
            // Set before any thread starts: the window child inherits it.
            std::env::set_var("ALARM_TRAY_DATA_DIR", dir.path());
            Some(dir)
        }
        Err(e) => {
            eprintln!("alarm-tray: no demo profile could be made: {e}");
            None
        }
    }
}

fn block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("alarm-tray: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `alarm-tray ipc`: each stdin line is a request to the profile's monitor; each answer is
/// printed as one line. Fails (exit 1) on the first line that is not a request, or when no
/// monitor answers; a request the monitor refuses is an answer like any other.
async fn ipc_lines() -> ExitCode {
    use alarm_tray::ipc::{client::Client, protocol::Request, Error};
    use std::io::{BufRead, Write};
    let client = Client::new(&alarm_tray::paths::socket_path());
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("alarm-tray ipc: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("alarm-tray ipc: not a request ({e})");
                return ExitCode::FAILURE;
            }
        };
        let answer = match client.request(request).await {
            Ok(response) => serde_json::json!({ "ok": response }),
            // No monitor, or no usable link to it: nothing more can be asked.
            Err(
                e @ (Error::MonitorNotRunning(_)
                | Error::ProtocolMismatch(_)
                | Error::MonitorConnection(_)),
            ) => {
                eprintln!("alarm-tray ipc: {e}");
                return ExitCode::FAILURE;
            }
            // The monitor answered with a refusal: an answer like any other.
            Err(e) => serde_json::json!({ "error": e.to_string(), "kind": e.kind() }),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Windows: lets `--help`, `--version`, `watch`, `simulate` and `ipc` print to the terminal
/// that started them. Output that is already redirected (a pipe or file) is left alone.
#[cfg(windows)]
fn attach_console() {
    use std::ffi::c_void;
    #[link(name = "kernel32")]
    extern "system" {
        fn GetStdHandle(which: u32) -> *mut c_void;
        fn AttachConsole(process_id: u32) -> i32;
    }
    const STD_OUTPUT_HANDLE: u32 = -11i32 as u32;
    const ATTACH_PARENT_PROCESS: u32 = u32::MAX;
    // SAFETY: plain Win32 calls without pointers; failure (no parent console) changes nothing.
    unsafe {
        if GetStdHandle(STD_OUTPUT_HANDLE).is_null() {
            AttachConsole(ATTACH_PARENT_PROCESS);
        }
    }
}

#[cfg(not(windows))]
fn attach_console() {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help, --version or a usage error: said on the terminal.
            attach_console();
            e.exit()
        }
    };
    if matches!(
        cli.command,
        Some(
            Command::Watch { .. }
                | Command::Simulate { .. }
                | Command::Ipc
                | Command::Audit { .. }
                | Command::Report { .. }
        )
    ) {
        attach_console();
    }
    match cli.command {
        None => {
            let _profile = if cli.demo { use_demo_profile() } else { None };
            let demo = cli.demo.then_some(cli.seed);
            let opts = alarm_tray::gui::monitor_app::MonitorOptions {
                hidden: cli.hidden,
                demo,
            };
            alarm_tray::gui::monitor_app::run(opts)
        }
        Some(Command::Window { page, alarm }) => {
            alarm_tray::gui::window_app::run(page.into(), alarm)
        }
        Some(Command::Watch {
            settings,
            for_secs,
            no_notify,
            demo,
            seed,
        }) => {
            let _profile = if demo { use_demo_profile() } else { None };
            let opts = alarm_tray::watch::WatchOptions {
                settings_file: settings,
                for_secs,
                no_notify,
                demo: demo.then_some(seed),
            };
            block_on(alarm_tray::watch::run(opts))
        }
        Some(Command::Ipc) => block_on(ipc_lines()),
        Some(Command::Audit {
            action: AuditAction::Verify,
        }) => audit_verify(),
        Some(Command::Report { from, to, pdf, csv }) => {
            let out = alarm_tray::report::Outputs { pdf, csv };
            match alarm_tray::report::for_profile(&from, &to, &out) {
                Ok(said) => {
                    eprintln!("{said}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("alarm-tray report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Simulate {
            seed,
            for_secs,
            speed,
            settings_out,
        }) => block_on(alarm_tray::watch::simulate(
            seed,
            for_secs,
            speed,
            settings_out,
        )),
    }
}

/// `alarm-tray audit verify`: one line of result; exit 0 only when the chain is intact.
fn audit_verify() -> ExitCode {
    let path =
        alarm_tray::paths::history_db().with_file_name(alarm_tray::engine::audit::AUDIT_FILE);
    match alarm_tray::engine::audit::verify_file(&path) {
        Ok(r) if r.intact => {
            println!(
                "audit trail intact ({} {}), {}\nnewest record's hash: {}",
                r.records,
                if r.records == 1 { "record" } else { "records" },
                path.display(),
                r.head
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "audit trail NOT intact: {} ({} records verified before it), {}",
                r.problem,
                r.records,
                path.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("alarm-tray audit verify: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_are_the_ones_the_monitor_passes() {
        // The monitor starts the window with `--page <Page::as_str()>`.
        for p in PageArg::value_variants() {
            let name = p.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(name.as_deref(), Some(Page::from(*p).as_str()));
        }
    }
}
