//! The normalized event every feed delivers, and the handle that carries the engine's
//! confirmation back to the feed.
//!
//! Feeds and the engine both rest on this module and never import each other: a feed turns
//! what arrives into [`Event`]s and sends them as [`Delivery`]s; the engine stores them and
//! only then calls [`Ack::confirm`]. A delivery dropped without confirmation means "not
//! stored": the feed must not acknowledge it upstream, so the broker keeps it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Issue 26: the `subscription` of an event another PC shared through the team is
/// `team:<pc>`; such events are stored and decided on like the others, never shared again.
pub const TEAM_SUBSCRIPTION_PREFIX: &str = "team:";

/// Which upstream an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Saveris,
    Element,
    /// Raised by the app itself (feed silence, demo, test notification).
    App,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Saveris => "saveris",
            Source::Element => "element",
            Source::App => "app",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "saveris" => Source::Saveris,
            "element" => Source::Element,
            "app" => Source::App,
            _ => return None,
        })
    }
}

/// What an event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A measurement alarm was raised upstream (`alarm_status: Alarm`).
    AlarmRaised,
    /// A measurement or system alarm was cleared upstream (`alarm_status: Ok`).
    AlarmCleared,
    /// A device or sensor system alarm (battery, power, timeout, broken, calibration).
    SystemAlarm,
    /// A Saveris measurement (v1 or v2).
    Measurement,
    /// An ELEMENT reading: `data` holds several fields; `quantity`/`value` hold the first
    /// numeric one, the rules look at `fields`.
    Reading,
    /// An ELEMENT packet.
    Packet,
    /// A body that could not be parsed; kept so the user can see it.
    Unparsed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AlarmRaised => "alarm_raised",
            EventKind::AlarmCleared => "alarm_cleared",
            EventKind::SystemAlarm => "system_alarm",
            EventKind::Measurement => "measurement",
            EventKind::Reading => "reading",
            EventKind::Packet => "packet",
            EventKind::Unparsed => "unparsed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alarm_raised" => EventKind::AlarmRaised,
            "alarm_cleared" => EventKind::AlarmCleared,
            "system_alarm" => EventKind::SystemAlarm,
            "measurement" => EventKind::Measurement,
            "reading" => EventKind::Reading,
            "packet" => EventKind::Packet,
            "unparsed" => EventKind::Unparsed,
            _ => return None,
        })
    }
}

/// How serious an event is. Ordered: `Info < Warning < Alarm`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Alarm,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
        }
    }
}

/// One normalized event. Strings from the network are kept as they came; sinks escape them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Content identity, unique per real-world event: a redelivered STOMP message or a
    /// replayed ELEMENT reading has the same key (never the STOMP `message-id`, which changes
    /// on redelivery).
    pub key: String,
    pub source: Source,
    /// Account id from the settings.
    pub account: String,
    /// Subscription id within the account (Saveris channel, ELEMENT subscription id).
    pub subscription: String,
    pub kind: EventKind,
    /// Device identity (Saveris device uuid / serial, ELEMENT device id).
    pub device: Option<String>,
    /// Sensor identity: what rules target and what "latest value" is kept per.
    pub sensor: Option<String>,
    /// A display name as far as the payload tells (serial number, device name).
    pub name: Option<String>,
    /// Physical quantity or field name ("Temperature", "humidity").
    pub quantity: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// ELEMENT: the parser that decoded the reading (`parser_id`). The same parser means the
    /// same fields, so the units the user gives a parser's fields hold for all its devices
    /// (issue 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parser: Option<String>,
    /// For readings: every numeric field of `data` (field name, value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, f64)>,
    /// For readings: the units of `fields` other than the main one, as the user gave them
    /// for the parser (ELEMENT sends none; filled in by the engine, issue 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_units: Vec<(String, String)>,
    /// For alarms: identity of the alarm condition, so that a clear finds its raise
    /// (sensor + condition).
    pub alarm_id: Option<String>,
    /// For alarms: the condition in words ("Upper limit", "Battery nearly empty").
    pub condition: Option<String>,
    pub severity: Severity,
    pub measured_at: Option<Timestamp>,
    pub received_at: Timestamp,
    /// Delivered as part of a catch-up (ELEMENT `after=` replay, a first start's backlog):
    /// summarised instead of popped one by one.
    #[serde(default)]
    pub replayed: bool,
    /// The broker delivered it before and it was not acknowledged (STOMP `redelivered:
    /// true`, after a crash or a dropped connection). Not a catch-up: such an alarm may
    /// never have been shown, so it pops like a live one (deduplicated by `key`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redelivered: bool,
    /// Fetched afterwards from the vendor's history (Saveris Data API backfill, issue 20):
    /// stored for charts and reports only; no popup, no rule, never replaces a live value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// Saveris: the UTC offset of the site's local time (`alarm_time_local`, "+02:00"),
    /// the site's time when no zone is known (issue 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_offset: Option<String>,
    /// The subscription's position after this event (ELEMENT: `inserted_at`), stored with
    /// the event in one transaction so a reconnect resumes exactly after it.
    pub cursor: Option<String>,
    /// The raw body as received (UTF-8, lossily converted when it was not).
    pub raw: String,
}

impl Event {
    /// A minimal event of `kind`; the feeds fill in what they know.
    pub fn new(
        source: Source,
        account: &str,
        subscription: &str,
        kind: EventKind,
        key: String,
    ) -> Self {
        Event {
            key,
            source,
            account: account.to_string(),
            subscription: subscription.to_string(),
            kind,
            device: None,
            sensor: None,
            name: None,
            quantity: None,
            value: None,
            unit: None,
            parser: None,
            site_offset: None,
            fields: Vec::new(),
            field_units: Vec::new(),
            alarm_id: None,
            condition: None,
            severity: Severity::Info,
            measured_at: None,
            received_at: Timestamp::now(),
            replayed: false,
            redelivered: false,
            backfill: false,
            cursor: None,
            raw: String::new(),
        }
    }
}

/// A message back to the feed that produced a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckMsg {
    /// The feed's connection generation when the message arrived: acks for an old
    /// connection are dropped by the feed (their ids mean nothing on a new one).
    pub generation: u64,
    /// Feed-specific token (STOMP `ack` header value; ELEMENT cursor).
    pub token: String,
    /// The event was stored (or was already stored): the feed may confirm it upstream.
    pub stored: bool,
}

/// Carries the engine's verdict back to the feed. Dropping it unconfirmed tells the feed
/// the event was NOT stored.
#[derive(Debug)]
pub struct Ack {
    tx: Option<mpsc::UnboundedSender<AckMsg>>,
    generation: u64,
    token: String,
}

impl Ack {
    pub fn new(tx: mpsc::UnboundedSender<AckMsg>, generation: u64, token: String) -> Self {
        Ack {
            tx: Some(tx),
            generation,
            token,
        }
    }

    /// An ack that goes nowhere (tests, the app's own events).
    pub fn none() -> Self {
        Ack {
            tx: None,
            generation: 0,
            token: String::new(),
        }
    }

    /// The event is durably stored: let the feed confirm it upstream.
    pub fn confirm(mut self) {
        self.send(true);
    }

    /// The event could not be stored: the feed must not confirm it.
    pub fn reject(mut self) {
        self.send(false);
    }

    fn send(&mut self, stored: bool) {
        if let Some(tx) = self.tx.take() {
            // The feed may have gone away (reconnected, stopped): nothing to confirm then.
            let _ = tx.send(AckMsg {
                generation: self.generation,
                token: std::mem::take(&mut self.token),
                stored,
            });
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        self.send(false);
    }
}

/// An event on its way from a feed to the engine.
#[derive(Debug)]
pub struct Delivery {
    pub event: Event,
    pub ack: Ack,
}

/// The state of one feed connection as the user should read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FeedState {
    /// Not started yet or disabled.
    Idle,
    Connecting,
    Live,
    /// Waiting before the next attempt; `reason` in words ("rate limit", "connection lost").
    Waiting {
        secs: u64,
        reason: String,
    },
    /// Credentials rejected: stopped until the user acts.
    LoginFailed {
        message: String,
    },
    /// Stopped for another reason that needs the user (e.g. "API key rejected").
    Stopped {
        message: String,
    },
    /// Not started: its secret is stored but the keyring is locked, absent or silent
    /// (issue 24). `message` says why and that it goes on by itself once the keyring can be
    /// read; nothing of this account is watched meanwhile.
    WaitingForKeyring {
        message: String,
    },
    /// Issue 26: not live here (e.g. Saveris refused a fifth connection), while team sharing
    /// gets this account's alarms from `pc`, which holds it live. Set by the engine from the
    /// team's view, never by a feed; the feed keeps retrying on its own.
    ThroughTeam {
        pc: String,
    },
}

impl FeedState {
    /// A feed problem the tray should show.
    pub fn is_problem(&self) -> bool {
        !matches!(
            self,
            FeedState::Live
                | FeedState::Idle
                | FeedState::Connecting
                | FeedState::ThroughTeam { .. }
        )
    }

    /// One line for tooltips and status views.
    pub fn describe(&self) -> String {
        match self {
            FeedState::Idle => "idle".into(),
            FeedState::Connecting => "connecting".into(),
            FeedState::Live => "live".into(),
            FeedState::Waiting { secs, reason } => {
                format!("waiting {} ({reason})", human_secs(*secs))
            }
            FeedState::LoginFailed { message } => format!("login failed: {message}"),
            FeedState::Stopped { message } => format!("stopped: {message}"),
            FeedState::WaitingForKeyring { message } => {
                format!("not watched, waiting for the keyring: {message}")
            }
            FeedState::ThroughTeam { pc } => format!("watching through the team ({pc})"),
        }
    }
}

fn human_secs(secs: u64) -> String {
    if secs >= 120 {
        format!("{} min", secs.div_ceil(60))
    } else {
        format!("{secs} s")
    }
}

/// A status report of one feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct FeedStatus {
    /// `saveris:<account>` or `element:<account>:<subscription>`.
    pub feed: String,
    /// For people: "Saveris eu/production (alice)".
    pub label: String,
    #[serde(flatten)]
    pub state: FeedState,
    pub last_message_at: Option<Timestamp>,
    /// When the feed was last live (for "not connected since 14:02").
    pub live_since: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Channels the server refused for this user (Saveris `subscription refused`): left
    /// out of the connection until the user turns them on again.
    #[serde(default)]
    pub refused: Vec<ChannelRefusal>,
    /// How the account's names stand (issue 20): "names last refreshed 3 days ago", or
    /// what failed. Filled in by the engine; `None` for feeds without a names source.
    #[serde(default)]
    pub names: Option<String>,
}

/// A channel the server refused, and the sentence to show next to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ChannelRefusal {
    pub channel: String,
    pub message: String,
}

impl FeedStatus {
    pub fn new(feed: String, label: String) -> Self {
        FeedStatus {
            feed,
            label,
            state: FeedState::Idle,
            last_message_at: None,
            live_since: None,
            last_error: None,
            refused: Vec::new(),
            names: None,
        }
    }
}

/// Something a feed lists by id and name (ELEMENT devices and tags, for discovery).
///
/// Here rather than in the engine's model: feeds produce it and the window shows it, and
/// feeds may not import the engine (nor the engine the feeds); this module is the one both
/// rest on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct NamedItem {
    pub id: String,
    pub name: String,
}

/// The configured limits of a sensor (Saveris equipment: warning and violation, both
/// sides), in the sensor's unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub lower_violation: Option<f64>,
    pub lower_warning: Option<f64>,
    pub upper_warning: Option<f64>,
    pub upper_violation: Option<f64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// What the vendor calls a sensor, device or tag, and where it is (issue 20): one row of
/// the history's `names` table. Feeds produce it (Saveris Data API, ELEMENT REST), the
/// engine stores it and shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameEntry {
    /// `sensor`, `device` or `tag`.
    pub kind: String,
    /// The id events carry (`Event::sensor` for sensors, `Event::device` for devices).
    pub id: String,
    /// "Fridge 1 - Air Sensor".
    pub name: String,
    pub device: Option<String>,
    pub device_name: Option<String>,
    /// "1 Temperature (Air Temperature)".
    pub channel: Option<String>,
    pub unit: Option<String>,
    /// "Fridge 1" (and its part: "Fridge 1 / Cooling compartment").
    pub equipment: Option<String>,
    /// "Kitchen".
    pub area: Option<String>,
    pub location: Option<String>,
    pub tenant: Option<String>,
    /// The site's IANA zone (tenant `main_timezone`).
    pub timezone: Option<String>,
    #[serde(default)]
    pub limits: Limits,
}

impl NameEntry {
    /// What people read: "Fridge 1 - Air Sensor · Kitchen" (the area, else the location).
    pub fn label(&self) -> String {
        match self.area.as_deref().or(self.location.as_deref()) {
            Some(place) if !place.trim().is_empty() && place != self.name => {
                format!("{} \u{b7} {place}", self.name)
            }
            _ => self.name.clone(),
        }
    }
}

/// A names refresh of one account: the full set (replacing the previous one), or why it
/// failed (the previous names stay).
#[derive(Debug, Clone, PartialEq)]
pub struct NamesUpdate {
    pub source: Source,
    pub account: String,
    pub at: Timestamp,
    pub result: Result<Vec<NameEntry>, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_reads_with_its_area_or_location() {
        let mut n = NameEntry {
            name: "Fridge 1 - Air Sensor".into(),
            location: Some("Demo Lab".into()),
            ..Default::default()
        };
        assert_eq!(n.label(), "Fridge 1 - Air Sensor \u{b7} Demo Lab");
        n.area = Some("Kitchen".into());
        assert_eq!(n.label(), "Fridge 1 - Air Sensor \u{b7} Kitchen");
    }

    #[test]
    fn dropped_ack_reports_not_stored() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(Ack::new(tx.clone(), 3, "m-1".into()));
        Ack::new(tx, 3, "m-2".into()).confirm();
        assert_eq!(
            rx.try_recv().unwrap(),
            AckMsg {
                generation: 3,
                token: "m-1".into(),
                stored: false
            }
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            AckMsg {
                generation: 3,
                token: "m-2".into(),
                stored: true
            }
        );
        assert!(rx.try_recv().is_err(), "confirm must send exactly once");
    }

    #[test]
    fn waiting_state_reads_in_minutes() {
        let s = FeedState::Waiting {
            secs: 600,
            reason: "rate limit".into(),
        };
        assert_eq!(s.describe(), "waiting 10 min (rate limit)");
        assert!(s.is_problem());
        assert!(!FeedState::Live.is_problem());
    }

    #[test]
    fn kind_names_round_trip() {
        for k in [
            EventKind::AlarmRaised,
            EventKind::AlarmCleared,
            EventKind::SystemAlarm,
            EventKind::Measurement,
            EventKind::Reading,
            EventKind::Packet,
            EventKind::Unparsed,
        ] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn source_names_round_trip() {
        for s in [Source::Saveris, Source::Element, Source::App] {
            assert_eq!(Source::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Source::parse("nope"), None);
    }
}
