//! The monitor ↔ window protocol: newline-delimited JSON over a local socket.
//!
//! A connection starts with the window's [`Hello`]; the monitor answers [`Welcome`] (or a
//! version error) and then serves [`Envelope`]s of requests, each answered by a [`Reply`]
//! with the same `id`. A window that sends [`Request::Subscribe`] also receives
//! [`Push`] lines (`"push"` instead of `"reply"`) for live events. Nothing secret ever
//! travels from the monitor to the window: secrets go one way (`SetSecret`) and come back
//! only as "stored or not".

use serde::{Deserialize, Serialize};

use crate::event::{FeedStatus, Severity};
use crate::secrets::SecretKey;
use crate::settings::Settings;

/// Bumped on any incompatible change of the types below.
pub const PROTOCOL_VERSION: u32 = 1;
/// A line longer than this is a protocol error (a settings object is a few KB).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    pub version: String,
}

/// Which page a window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Page {
    #[default]
    Settings,
    History,
    Dashboard,
}

impl Page {
    pub fn as_str(self) -> &'static str {
        match self {
            Page::Settings => "settings",
            Page::History => "history",
            Page::Dashboard => "dashboard",
        }
    }
}

/// Filters of the alarms table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AlarmFilter {
    /// "active", "cleared" or empty for all.
    pub state: String,
    pub severity: Option<Severity>,
    /// "saveris", "element", "app" or empty.
    pub source: String,
    /// Substring of device, sensor or name.
    pub device: String,
    /// Unix ms, inclusive.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// Saveris or ELEMENT account to try with the settings as typed (not yet saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectionTest {
    Saveris {
        account: crate::settings::SaverisAccount,
        password: Option<String>,
        /// STOMP passcode of a custom endpoint, as typed (None = the stored one).
        #[serde(default)]
        passcode: Option<String>,
    },
    Element {
        account: crate::settings::ElementAccount,
        api_key: Option<String>,
    },
}

/// What ELEMENT discovery lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", content = "id", rename_all = "snake_case")]
pub enum Discover {
    Devices,
    Tags,
    TagDevices(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Version, data/log dirs, demo flag, settings notice.
    Info,
    GetSettings,
    /// Validated, saved through the store, applied (feeds restarted as needed).
    SaveSettings {
        settings: Settings,
    },
    SetSecret {
        key: SecretKey,
        value: String,
    },
    DeleteSecret {
        key: SecretKey,
    },
    HasSecret {
        key: SecretKey,
    },
    Status,
    TestConnection {
        test: ConnectionTest,
    },
    Discover {
        account: String,
        what: Discover,
    },
    Alarms {
        filter: AlarmFilter,
    },
    Acknowledge {
        alarm_id: i64,
    },
    LatestValues,
    Series {
        sensor: String,
        since_ms: i64,
    },
    Unparsed {
        limit: u32,
    },
    SendTestNotification,
    SetPaused {
        paused: bool,
    },
    /// Open (or focus) the window on `page`: a second launch asks this.
    OpenWindow {
        page: Page,
        alarm_id: Option<i64>,
    },
    /// Start receiving [`Push`] lines on this connection.
    Subscribe,
    /// End the monitor as the tray's Quit does (scripts, tests, an uninstaller).
    Quit,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: u64,
    #[serde(flatten)]
    pub request: Request,
}

/// A row of the alarms table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRow {
    pub id: i64,
    pub source: String,
    pub account: String,
    pub device: Option<String>,
    pub sensor: Option<String>,
    pub name: Option<String>,
    pub condition: Option<String>,
    pub severity: Severity,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub limit: Option<String>,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    pub acknowledged_ms: Option<i64>,
    pub acknowledged_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestValue {
    pub sensor: String,
    pub name: Option<String>,
    pub source: String,
    pub quantity: Option<String>,
    pub value: f64,
    pub unit: Option<String>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnparsedRow {
    pub id: i64,
    pub source: String,
    pub account: String,
    pub received_ms: i64,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedItem {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub version: String,
    pub data_dir: String,
    pub log_dir: String,
    pub demo: bool,
    /// Something the user must read (e.g. the settings file was corrupt).
    pub notice: Option<String>,
}

/// The tray's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TrayState {
    #[default]
    Ok,
    Alarm,
    Problem,
    Paused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub tray: TrayState,
    /// One line, as in the tooltip.
    pub summary: String,
    pub paused: bool,
    pub active_alarms: u32,
    pub feeds: Vec<FeedStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Info(Info),
    Settings(Settings),
    Bool(bool),
    Status(Status),
    /// A connection test's outcome in words.
    Tested {
        ok: bool,
        message: String,
    },
    Items(Vec<NamedItem>),
    Alarms(Vec<AlarmRow>),
    Latest(Vec<LatestValue>),
    Series(Vec<(i64, f64)>),
    Unparsed(Vec<UnparsedRow>),
}

/// An error the window shows as it is: a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub result: Result<Response, ErrorReply>,
}

/// Live events pushed to a subscribed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Push {
    Status(Status),
    /// Something new in history (alarm raised/cleared/acknowledged, new readings):
    /// the window re-queries what it shows.
    HistoryChanged,
    /// Bring the page forward (sent to an open window instead of starting a second one).
    Focus {
        page: Page,
        alarm_id: Option<i64>,
    },
}

/// One line from the monitor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLine {
    Welcome(Welcome),
    Reply(Reply),
    Push(Push),
    /// The connection is refused (wrong protocol version).
    Refused(ErrorReply),
}
