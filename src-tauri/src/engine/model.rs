//! What the engine stores and decides on: alarm rows and their filter, latest values,
//! unparsed bodies, the status and the tray's look.
//!
//! The window protocol (`ipc/`) re-exports these types as they are; their serde names are
//! the wire format, so a rename here is a protocol change (`PROTOCOL_VERSION`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{FeedStatus, Severity, Source};

/// Filters of the alarms table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(default)]
pub struct AlarmFilter {
    /// "active", "cleared" or empty for all.
    #[ts(type = "\"\" | \"active\" | \"cleared\"")]
    pub state: String,
    pub severity: Option<Severity>,
    /// None for all; on the wire the empty string, as the window sends it.
    #[serde(with = "source_or_empty")]
    #[ts(type = "\"\" | Source")]
    pub source: Option<Source>,
    /// Substring of device, sensor or name.
    pub device: String,
    /// Unix ms, inclusive.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

/// `Option<Source>` written as `""` for None, so the wire keeps the window's "all sources".
mod source_or_empty {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::event::Source;

    pub fn serialize<S: Serializer>(v: &Option<Source>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.map_or("", Source::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Source>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        if text.is_empty() {
            return Ok(None);
        }
        Source::parse(&text).map(Some).ok_or_else(|| {
            serde::de::Error::unknown_variant(&text, &["", "saveris", "element", "app"])
        })
    }
}

/// A row of the alarms table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AlarmRow {
    pub id: i64,
    pub source: Source,
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
    /// The alarm's severity over its life, oldest first: the raise, then every change
    /// (Warning → Alarm on the same sensor and condition, and back). Empty for alarms
    /// stored before the history kept steps.
    #[serde(default)]
    pub steps: Vec<SeverityStep>,
    /// Who acknowledged (`acknowledged_by` is the way: popup, window): the display name set
    /// in General and the OS user, e.g. "Ana Ruiz (ana)".
    #[serde(default)]
    pub acknowledged_user: Option<String>,
    /// The reason given when acknowledging.
    #[serde(default)]
    pub acknowledged_comment: Option<String>,
}

/// One step of an alarm's life: from `at_ms` on, its severity was `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SeverityStep {
    pub at_ms: i64,
    pub severity: Severity,
}

/// The newest value of one (sensor, quantity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LatestValue {
    pub sensor: String,
    pub name: Option<String>,
    pub source: Source,
    pub quantity: Option<String>,
    pub value: f64,
    pub unit: Option<String>,
    pub at_ms: i64,
}

/// A body that could not be parsed, kept so the user can see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct UnparsedRow {
    pub id: i64,
    pub source: Source,
    pub account: String,
    pub received_ms: i64,
    pub raw: String,
}

/// The tray's look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TrayState {
    #[default]
    Ok,
    Alarm,
    Problem,
    Paused,
}

/// Issue 26: what team sharing tells the engine (the root builds it from the team link;
/// the engine never names `team`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamView {
    /// PCs online on the site, this one included.
    pub pcs_watching: u32,
    /// This PC's feeds that are not live here while another PC holds the same account live:
    /// feed id → that PC's name. They read "watching through the team (pc-b)", not a problem.
    pub covered: BTreeMap<String, String>,
    /// This PC's Saveris feeds whose login no other online PC holds live: when this PC
    /// stops, nobody receives that account's alarms, so the status line says so.
    pub sole: BTreeSet<String>,
}

/// What the tray, the window and `watch` show of the engine's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Status {
    pub tray: TrayState,
    /// One line, as in the tooltip.
    pub summary: String,
    pub paused: bool,
    pub active_alarms: u32,
    pub feeds: Vec<FeedStatus>,
    /// Issue 26: PCs watching on the site while team sharing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub team_pcs: Option<u32>,
}

/// A sensor's popups held back for a while, with why and by whom (issue 21: "mute this
/// sensor for 1 h / 4 h / until tomorrow").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Snooze {
    /// The sensor identity (as alarms carry it; the device where there is no sensor).
    pub sensor: String,
    /// The sensor's name when it was snoozed, for lists.
    pub name: Option<String>,
    pub at_ms: i64,
    pub until_ms: i64,
    pub reason: String,
    /// Display name and OS user, as on acknowledgements.
    pub user: String,
}

/// How long a snooze lasts, as the window offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnoozeFor {
    /// 1 to 24 hours from now.
    Hours { hours: u32 },
    /// Until 07:00 tomorrow, the user's time.
    UntilTomorrow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_source_is_the_empty_string_for_all() {
        let all = serde_json::to_value(AlarmFilter::default()).unwrap();
        assert_eq!(all["source"], "");
        let f: AlarmFilter = serde_json::from_str(r#"{"source":""}"#).unwrap();
        assert_eq!(f.source, None);
        let f: AlarmFilter = serde_json::from_str(r#"{"source":"element"}"#).unwrap();
        assert_eq!(f.source, Some(Source::Element));
        assert_eq!(serde_json::to_value(&f).unwrap()["source"], "element");
        // Missing and null mean "all", as the struct's defaults do.
        let f: AlarmFilter = serde_json::from_str(r#"{"source":null}"#).unwrap();
        assert_eq!(f.source, None);
        let f: AlarmFilter = serde_json::from_str("{}").unwrap();
        assert_eq!(f.source, None);
        assert!(serde_json::from_str::<AlarmFilter>(r#"{"source":"mqtt"}"#).is_err());
    }

    #[test]
    fn row_source_is_the_lowercase_name() {
        let v = serde_json::to_value(UnparsedRow {
            id: 1,
            source: Source::Saveris,
            account: "a".into(),
            received_ms: 0,
            raw: String::new(),
        })
        .unwrap();
        assert_eq!(v["source"], "saveris");
    }
}
