//! The monitor ↔ window protocol: newline-delimited JSON over a local socket.
//!
//! A connection starts with the window's [`Hello`]; the monitor answers [`Welcome`] (or a
//! version error) and then serves [`Envelope`]s of requests, each answered by a [`Reply`]
//! with the same `id`. A window that sends [`Request::Subscribe`] also receives
//! [`Push`] lines (`"push"` instead of `"reply"`) for live events. Nothing secret ever
//! travels from the monitor to the window: secrets go one way (`SetSecret`) and come back
//! only as "stored or not".

use serde::{Deserialize, Serialize};

use super::Error;
use crate::secrets::SecretKey;
use crate::settings::Settings;

// The engine owns the rows, filters and status it stores and decides on; the wire carries
// them as they are (their serde names are part of this protocol).
pub use crate::engine::model::{
    AlarmFilter, AlarmRow, LatestValue, SeverityStep, Snooze, SnoozeFor, Status, TrayState,
    UnparsedRow,
};
pub use crate::engine::reduce::SensorView;
pub use crate::event::NamedItem;

/// Bumped on any incompatible change of the types below (2: errors as `{kind, message}`,
/// a connection test's failure as an error, `RemoveAccount`).
pub const PROTOCOL_VERSION: u32 = 2;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
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

/// Saveris or ELEMENT account to try with the settings as typed (not yet saved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectionTest {
    Saveris {
        account: crate::settings::SaverisAccount,
        password: Option<String>,
        /// STOMP passcode of a custom endpoint, as typed (None = the stored one).
        #[serde(default)]
        #[ts(optional = nullable)]
        passcode: Option<String>,
        /// The user's confirm to send the stored password or passcode to this endpoint
        /// (an origin or URL) although it was stored for another one.
        #[serde(default)]
        #[ts(optional = nullable)]
        send_stored_to: Option<String>,
    },
    Element {
        account: crate::settings::ElementAccount,
        api_key: Option<String>,
        /// As for Saveris: confirms sending the stored API key to this endpoint.
        #[serde(default)]
        #[ts(optional = nullable)]
        send_stored_to: Option<String>,
    },
    /// Issue 26: the team broker as typed; `None` secrets: the stored ones.
    Team {
        team: crate::settings::TeamSettings,
        #[serde(default)]
        #[ts(optional = nullable)]
        password: Option<String>,
        #[serde(default)]
        #[ts(optional = nullable)]
        site_key: Option<String>,
    },
}

/// What ELEMENT discovery lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
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
    /// Removes the account from the settings and every secret stored for it, in one go.
    RemoveAccount {
        account_id: String,
    },
    HasSecret {
        key: SecretKey,
    },
    Status,
    /// Issue 26: team sharing's status (`Response::Team`; `None` when it is off).
    Team,
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
        /// Why (required for critical alarms when the settings say so).
        #[serde(default)]
        comment: Option<String>,
    },
    /// Hold a sensor's popups back for a while, with a reason (issue 21).
    Snooze {
        sensor: String,
        length: SnoozeFor,
        reason: String,
    },
    /// End a sensor's snooze now.
    EndSnooze {
        sensor: String,
    },
    /// The snoozes running now.
    Snoozes,
    LatestValues,
    /// Vendor names, areas, equipment and limits of sensors (issue 20).
    Places,
    Series {
        sensor: String,
        since_ms: i64,
    },
    /// One quantity/field of a sensor (a dashboard card per field).
    FieldSeries {
        sensor: String,
        quantity: String,
        since_ms: i64,
    },
    Unparsed {
        limit: u32,
    },
    /// A sensor's range reduced for a chart `buckets` pixels wide, with its limits, alarms
    /// and figures (`quantity`: one field of it; `None`: its own value).
    SensorView {
        sensor: String,
        quantity: Option<String>,
        from_ms: i64,
        to_ms: i64,
        buckets: u32,
    },
    /// Verify the audit trail's hash chain (General page).
    AuditVerify,
    /// The shift report of `[from_ms, to_ms)` as PDF and CSV files in Downloads (issue 21).
    Report {
        from_ms: i64,
        to_ms: i64,
    },
    /// Every alarm the filter matches, no row cap, as a CSV file in Downloads (issue 21).
    ExportAlarms {
        filter: AlarmFilter,
    },
    /// Sends a test message to an escalation webhook as typed (issue 21); `token`: as typed,
    /// or `None` for the stored one (only to the origin it was stored for).
    TestWebhook {
        webhook: crate::settings::Webhook,
        #[serde(default)]
        token: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Info {
    pub version: String,
    pub data_dir: String,
    pub log_dir: String,
    pub demo: bool,
    /// Something the user must read (e.g. the settings file was corrupt).
    pub notice: Option<String>,
    /// Issue 25: the desktop's language as the monitor reads it ("en", "de", "fr"): the
    /// window's "auto" follows it, so window, tray and popups agree.
    #[serde(default)]
    pub language: String,
}

// Issue 26: the team settings made `Settings` the large variant; one answer at a time goes
// over the socket, so boxing it would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Info(Info),
    Settings(Settings),
    Bool(bool),
    Status(Status),
    /// A connection test that succeeded (a failed one is an [`Error`]).
    Connected(Connected),
    Saved(Saved),
    Items(Vec<NamedItem>),
    Alarms(Vec<AlarmRow>),
    Latest(Vec<LatestValue>),
    Places(Vec<crate::engine::names::SensorPlace>),
    Series(Vec<(i64, f64)>),
    Unparsed(Vec<UnparsedRow>),
    SensorView(Box<SensorView>),
    Audit(crate::engine::audit::AuditReport),
    /// Issue 26.
    Team(Option<crate::team::TeamStatus>),
    Snoozes(Vec<Snooze>),
}

/// Files the monitor wrote for the window (report, export), and a line about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Saved {
    pub files: Vec<String>,
    pub message: String,
}

/// A connection test that got through: what it reached, in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Connected {
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub id: u64,
    pub result: Result<Response, Error>,
}

/// Live events pushed to a subscribed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
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
// A line lives only between the socket and its reader, one at a time: the size of the
// largest answer (the settings) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLine {
    Welcome(Welcome),
    Reply(Reply),
    Push(Push),
    /// The connection is refused (wrong protocol version).
    Refused(Error),
}

/// Takes the answer of the shape a request expects: `Response::Info(i)` → `Info`, and so on.
/// Any other shape is the monitor's fault, an [`Error::Internal`].
macro_rules! answers {
    ($($variant:ident => $ty:ty),* $(,)?) => {$(
        impl TryFrom<Response> for $ty {
            type Error = Error;
            fn try_from(r: Response) -> Result<Self, Error> {
                match r {
                    Response::$variant(v) => Ok(v),
                    other => Err(unexpected(&other)),
                }
            }
        }
    )*};
}

answers! {
    Info => Info,
    Settings => Settings,
    Bool => bool,
    Status => Status,
    Connected => Connected,
    Items => Vec<NamedItem>,
    Alarms => Vec<AlarmRow>,
    Latest => Vec<LatestValue>,
    Places => Vec<crate::engine::names::SensorPlace>,
    Series => Vec<(i64, f64)>,
    Unparsed => Vec<UnparsedRow>,
    SensorView => Box<SensorView>,
    Saved => Saved,
    Audit => crate::engine::audit::AuditReport,
    Team => Option<crate::team::TeamStatus>,
    Snoozes => Vec<Snooze>,
}

impl TryFrom<Response> for () {
    type Error = Error;
    fn try_from(r: Response) -> Result<Self, Error> {
        match r {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(r: &Response) -> Error {
    let shape = serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Error::Internal(format!(
        "the Alarm Tray monitor answered with {shape:?}, not what was asked"
    ))
}

#[cfg(test)]
mod tests {
    use super::PROTOCOL_VERSION;

    /// The package test's own client (packaging/ipc.py) must speak this version: the monitor
    /// refuses any other, and the package test then fails for a reason far from its cause.
    #[test]
    fn the_package_tests_client_speaks_this_protocol() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/ipc.py");
        let text = std::fs::read_to_string(path).expect("packaging/ipc.py");
        let declared = text
            .lines()
            .find_map(|l| l.strip_prefix("PROTOCOL = "))
            .and_then(|v| v.trim().parse::<u32>().ok());
        assert_eq!(
            declared,
            Some(PROTOCOL_VERSION),
            "PROTOCOL in packaging/ipc.py"
        );
    }
}
