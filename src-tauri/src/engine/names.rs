//! Names, places and limits of sensors from the vendors (issue 20): the history's `names`
//! table, kept in memory for the events that pass.
//!
//! A feed's refresh replaces an account's names in one transaction; a failed refresh keeps
//! the last known ones and is remembered for the account's status ("names last refreshed
//! 3 days ago; the last refresh failed: …"). A name the user typed (settings `sensors`) wins
//! wherever a name is shown: that is decided where the name is shown, not here.

use std::collections::HashMap;

use rusqlite::params;

use super::history::{History, HistoryError};
use super::wording::Locale;
use crate::event::{Event, EventKind, Limits, NameEntry, NamesUpdate, Severity, Source};

/// Where a sensor is and what limits its equipment has, for the dashboard (issue 20).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, ts_rs::TS)]
pub struct SensorPlace {
    pub sensor: String,
    /// "Fridge 1 - Air Sensor · Kitchen".
    pub label: String,
    pub area: Option<String>,
    pub equipment: Option<String>,
    /// The configured limits (warning and violation, both sides), ascending.
    pub limits: Vec<f64>,
    /// The site's IANA zone (the tenant's `main_timezone`), for the site's time beside the
    /// desktop's.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Every named sensor's place and limits.
pub fn places(history: &History) -> Result<Vec<SensorPlace>, HistoryError> {
    history.with_read(|c| {
        let mut st = c.prepare_cached(
            "SELECT id, name, area, location, equipment, lower_violation, lower_warning, upper_warning, \
             upper_violation, timezone, kind FROM names \
             WHERE kind = 'sensor' OR (source = 'element' AND kind = 'device') ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let entry = NameEntry {
                id: r.get(0)?,
                name: r.get(1)?,
                area: r.get(2)?,
                location: r.get(3)?,
                equipment: r.get(4)?,
                ..Default::default()
            };
            let mut limits: Vec<f64> = [5, 6, 7, 8]
                .iter()
                .filter_map(|i| r.get::<_, Option<f64>>(*i).ok().flatten())
                .filter(|v| v.is_finite())
                .collect();
            limits.sort_by(f64::total_cmp);
            limits.dedup();
            // An ELEMENT device is its own sensor; its first tag (folder) is its area.
            let area = match r.get::<_, String>(10)?.as_str() {
                "device" => entry.area.clone().or_else(|| entry.location.clone()),
                _ => entry.area.clone(),
            };
            Ok(SensorPlace {
                sensor: entry.id.clone(),
                label: entry.label(),
                area,
                equipment: entry.equipment.clone(),
                limits,
                timezone: r.get(9)?,
            })
        })?;
        rows.collect()
    })
}

/// The equipment's limits of a sensor as chart lines: violation and warning.
pub fn limit_lines(history: &History, sensor: &str) -> Vec<super::reduce::LimitLine> {
    let read = history.with_read(|c| {
        c.query_row(
            "SELECT lower_violation, upper_violation, lower_warning, upper_warning FROM names \
             WHERE kind = 'sensor' AND id = ?1 LIMIT 1",
            params![sensor],
            |r| {
                Ok([
                    r.get::<_, Option<f64>>(0)?,
                    r.get::<_, Option<f64>>(1)?,
                    r.get::<_, Option<f64>>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                ])
            },
        )
    });
    let Ok([lv, uv, lw, uw]) = read else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if lv.is_some() || uv.is_some() {
        out.push(super::reduce::LimitLine {
            rule: "Saveris alarm limits".into(),
            low: lv,
            high: uv,
            origin: super::reduce::LimitOrigin::Saveris,
        });
    }
    if lw.is_some() || uw.is_some() {
        out.push(super::reduce::LimitLine {
            rule: "Saveris warning limits".into(),
            low: lw,
            high: uw,
            origin: super::reduce::LimitOrigin::Saveris,
        });
    }
    out
}

/// An unknown sensor asks for a refresh at most this often per account.
pub const UNKNOWN_GAP_MS: i64 = 10 * 60_000;

impl super::Engine {
    /// A refresh arrived: store it, then say so in the account's status.
    pub(super) fn on_names(&mut self, u: NamesUpdate) {
        let account = u.account.clone();
        let n = u.result.as_ref().map_or(0, Vec::len);
        match self.names.update(&self.history, u) {
            Ok(()) => tracing::info!(account, names = n, "names refreshed"),
            Err(e) => tracing::warn!(account, error = %e, "names could not be stored"),
        }
        self.publish_status();
    }

    /// Gives a batch the vendors' names, and asks for a refresh when a sensor is unknown.
    pub(super) fn name_events(&mut self, batch: &mut [crate::event::Delivery]) {
        let now = self.now_ms();
        for d in batch.iter_mut() {
            let e = &mut d.event;
            self.names.note_offset(e);
            if self.names.is_unknown(e) {
                let k = (e.source, e.account.clone());
                let due = self
                    .names_asked_ms
                    .get(&k)
                    .is_none_or(|at| now - at >= UNKNOWN_GAP_MS);
                if due {
                    self.names_asked_ms.insert(k.clone(), now);
                    if let Some(tx) = &self.names_wanted {
                        let _ = tx.send(k);
                    }
                }
                continue;
            }
            self.names.apply(e);
        }
    }

    /// The site's zone of an account's sensor: the account's setting, else the tenant's
    /// `main_timezone` from the names, else the offset of the account's latest
    /// `alarm_time_local` ("+02:00"). Empty when nothing tells.
    pub(super) fn site_zone(&self, source: Source, account: &str, sensor: Option<&str>) -> String {
        let set = self
            .settings
            .saveris
            .iter()
            .find(|s| source == Source::Saveris && s.id == account)
            .map(|s| s.site_timezone.trim())
            .filter(|z| !z.is_empty());
        if let Some(z) = set {
            return z.to_string();
        }
        self.names.zone(source, account, sensor).unwrap_or_default()
    }

    /// "13:20 site time (Europe/Berlin)" for an event whose site reads another time than
    /// the desktop (`watch` lines, issue 20).
    pub(super) fn site_time_of(&self, e: &Event) -> Option<String> {
        let at = e.measured_at.unwrap_or(e.received_at).as_millisecond();
        let zone = self.site_zone(e.source, &e.account, e.sensor.as_deref());
        super::wording::site_time(at, &zone, &self.locale, self.now_ms())
    }

    /// The names sentence of a feed's account (`saveris:<account>`,
    /// `element:<account>:<subscription>`).
    pub(super) fn names_sentence(&self, feed: &str) -> Option<String> {
        let mut parts = feed.split(':');
        let source = Source::parse(parts.next()?)?;
        let account = parts.next()?;
        self.names.sentence(source, account, self.now_ms())
    }

    /// "upper limit 8.0 °C" for an upstream limit alarm (issue 20).
    pub(super) fn upstream_limit(&self, e: &Event) -> Option<String> {
        self.names.limit_text(e, &self.locale)
    }
}

/// The state of an account's last refreshes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Refresh {
    ok_ms: Option<i64>,
    failed_ms: Option<i64>,
    message: Option<String>,
}

/// Names by (source, account, kind, id), and each account's refresh state.
#[derive(Debug, Default)]
pub struct Names {
    entries: HashMap<(Source, String, String, String), NameEntry>,
    refresh: HashMap<(Source, String), Refresh>,
    /// The newest `alarm_time_local` offset each account's payloads carried: the site's
    /// time when neither the settings nor the tenant give a zone.
    offsets: HashMap<(Source, String), String>,
}

type Key = (Source, String, String, String);

fn key(source: Source, account: &str, kind: &str, id: &str) -> Key {
    (
        source,
        account.to_string(),
        kind.to_string(),
        id.to_string(),
    )
}

impl Names {
    /// What the history holds (empty when it cannot be read: names are a comfort).
    pub fn load(history: &History) -> Names {
        let mut names = Names::default();
        let read = history.with_read(|c| {
            let mut st = c.prepare(
                "SELECT source, account, kind, id, name, device, device_name, channel, unit, equipment, \
                 area, location, tenant, timezone, lower_violation, lower_warning, upper_warning, \
                 upper_violation FROM names",
            )?;
            let rows = st.query_map([], |r| {
                let source: String = r.get(0)?;
                Ok((
                    source,
                    r.get::<_, String>(1)?,
                    NameEntry {
                        kind: r.get(2)?,
                        id: r.get(3)?,
                        name: r.get(4)?,
                        device: r.get(5)?,
                        device_name: r.get(6)?,
                        channel: r.get(7)?,
                        unit: r.get(8)?,
                        equipment: r.get(9)?,
                        area: r.get(10)?,
                        location: r.get(11)?,
                        tenant: r.get(12)?,
                        timezone: r.get(13)?,
                        limits: Limits {
                            lower_violation: r.get(14)?,
                            lower_warning: r.get(15)?,
                            upper_warning: r.get(16)?,
                            upper_violation: r.get(17)?,
                        },
                    },
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row?);
            }
            let mut st = c.prepare(
                "SELECT source, account, ok_ms, failed_ms, message FROM names_refresh",
            )?;
            let refresh = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        Refresh {
                            ok_ms: r.get(2)?,
                            failed_ms: r.get(3)?,
                            message: r.get(4)?,
                        },
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((out, refresh))
        });
        match read {
            Ok((entries, refresh)) => {
                for (source, account, e) in entries {
                    let Some(source) = Source::parse(&source) else {
                        continue;
                    };
                    names
                        .entries
                        .insert(key(source, &account, &e.kind, &e.id), e);
                }
                for (source, account, r) in refresh {
                    if let Some(source) = Source::parse(&source) {
                        names.refresh.insert((source, account), r);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "names could not be read"),
        }
        names
    }

    /// Stores a refresh (all names of the account, or the failure) and keeps it in memory.
    pub fn update(&mut self, history: &History, u: NamesUpdate) -> Result<(), HistoryError> {
        let at = u.at.as_millisecond();
        let source = u.source.as_str();
        match u.result {
            Ok(entries) => {
                history.write(|w| {
                    let tx = w.tx();
                    tx.execute(
                        "DELETE FROM names WHERE source = ?1 AND account = ?2",
                        params![source, u.account],
                    )?;
                    let mut st = tx.prepare_cached(
                        "INSERT OR REPLACE INTO names (source, account, kind, id, name, device, device_name, \
                         channel, unit, equipment, area, location, tenant, timezone, lower_violation, \
                         lower_warning, upper_warning, upper_violation, updated_ms) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                    )?;
                    for e in &entries {
                        st.execute(params![
                            source,
                            u.account,
                            e.kind,
                            e.id,
                            e.name,
                            e.device,
                            e.device_name,
                            e.channel,
                            e.unit,
                            e.equipment,
                            e.area,
                            e.location,
                            e.tenant,
                            e.timezone,
                            e.limits.lower_violation,
                            e.limits.lower_warning,
                            e.limits.upper_warning,
                            e.limits.upper_violation,
                            at,
                        ])?;
                    }
                    tx.execute(
                        "INSERT INTO names_refresh (source, account, ok_ms, failed_ms, message) \
                         VALUES (?1, ?2, ?3, NULL, NULL) ON CONFLICT (source, account) DO UPDATE \
                         SET ok_ms = excluded.ok_ms, failed_ms = NULL, message = NULL",
                        params![source, u.account, at],
                    )?;
                    Ok(())
                })?;
                self.entries
                    .retain(|(s, a, _, _), _| !(*s == u.source && *a == u.account));
                for e in entries {
                    self.entries
                        .insert(key(u.source, &u.account, &e.kind, &e.id), e);
                }
                self.refresh.insert(
                    (u.source, u.account),
                    Refresh {
                        ok_ms: Some(at),
                        ..Default::default()
                    },
                );
            }
            Err(message) => {
                history.write(|w| {
                    w.tx().execute(
                        "INSERT INTO names_refresh (source, account, ok_ms, failed_ms, message) \
                         VALUES (?1, ?2, NULL, ?3, ?4) ON CONFLICT (source, account) DO UPDATE \
                         SET failed_ms = excluded.failed_ms, message = excluded.message",
                        params![source, u.account, at, message],
                    )?;
                    Ok(())
                })?;
                let r = self.refresh.entry((u.source, u.account)).or_default();
                r.failed_ms = Some(at);
                r.message = Some(message);
            }
        }
        Ok(())
    }

    /// The entry of an event's sensor (or, failing that, its device).
    pub fn of(&self, e: &Event) -> Option<&NameEntry> {
        let get = |kind: &str, id: &Option<String>| {
            id.as_deref()
                .and_then(|id| self.entries.get(&key(e.source, &e.account, kind, id)))
        };
        get("sensor", &e.sensor).or_else(|| get("device", &e.device))
    }

    /// The site's zone as the vendor tells it: the tenant's `main_timezone` of the sensor's
    /// names, else the account's latest payload offset.
    pub fn zone(&self, source: Source, account: &str, sensor: Option<&str>) -> Option<String> {
        let tenant = sensor
            .and_then(|id| self.entries.get(&key(source, account, "sensor", id)))
            .and_then(|n| n.timezone.as_deref())
            .map(str::trim)
            .filter(|z| !z.is_empty());
        tenant
            .map(str::to_string)
            .or_else(|| self.offsets.get(&(source, account.to_string())).cloned())
    }

    /// Remembers the site offset an event's payload carried.
    pub fn note_offset(&mut self, e: &Event) {
        if let Some(o) = &e.site_offset {
            self.offsets
                .insert((e.source, e.account.clone()), o.clone());
        }
    }

    /// An entry by sensor id alone, whatever the account (the window asks by sensor).
    pub fn of_sensor(&self, sensor: &str) -> Option<&NameEntry> {
        self.entries
            .iter()
            .find(|((_, _, kind, id), _)| kind == "sensor" && id == sensor)
            .map(|(_, e)| e)
    }

    /// Gives the event the vendor's name, when there is one.
    pub fn apply(&self, e: &mut Event) {
        if let Some(n) = self.of(e) {
            e.name = Some(n.label());
        }
    }

    /// A Saveris event about a sensor the names do not know (a refresh may tell).
    pub fn is_unknown(&self, e: &Event) -> bool {
        matches!(e.source, Source::Saveris | Source::Element)
            && !e.backfill
            && (e.sensor.is_some() || e.device.is_some())
            && !matches!(e.kind, EventKind::Unparsed | EventKind::SystemAlarm)
            && self.of(e).is_none()
    }

    /// "upper limit 8.0 °C" for a Saveris limit alarm, from the equipment's configured
    /// limits: the warning limit for a warning, the violation limit for an alarm.
    pub fn limit_text(&self, e: &Event, loc: &Locale) -> Option<String> {
        let n = self.of(e)?;
        let condition = e.condition.as_deref()?.to_ascii_lowercase();
        let l = &n.limits;
        let warning = e.severity == Severity::Warning;
        let (word, value) = if condition.contains("upper") {
            let v = if warning {
                l.upper_warning.or(l.upper_violation)
            } else {
                l.upper_violation.or(l.upper_warning)
            };
            ("upper limit", v?)
        } else if condition.contains("lower") {
            let v = if warning {
                l.lower_warning.or(l.lower_violation)
            } else {
                l.lower_violation.or(l.lower_warning)
            };
            ("lower limit", v?)
        } else {
            return None;
        };
        let unit = e.unit.as_deref().or(n.unit.as_deref()).unwrap_or("");
        // One decimal at least, as the vendor's app writes limits ("8.0 °C").
        let mut number = format!("{value:.1}");
        if loc.number(value).len() > number.len() {
            number = loc.number(value);
        } else if loc.decimal_comma {
            number = number.replace('.', ",");
        }
        Some(format!("{word} {number} {unit}").trim_end().to_string())
    }

    /// The account's names in a sentence, for its status.
    pub fn sentence(&self, source: Source, account: &str, now_ms: i64) -> Option<String> {
        let r = self.refresh.get(&(source, account.to_string()))?;
        let failed = r.message.as_deref().unwrap_or("unknown error");
        Some(match (r.ok_ms, r.failed_ms) {
            (Some(ok), Some(f)) if f >= ok => format!(
                "names last refreshed {}; the last refresh failed: {failed}",
                ago(now_ms - ok)
            ),
            (Some(ok), _) => format!("names last refreshed {}", ago(now_ms - ok)),
            (None, Some(_)) => format!("names could not be loaded: {failed}"),
            (None, None) => return None,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// "just now", "5 min ago", "3 h ago", "3 days ago".
fn ago(ms: i64) -> String {
    let min = ms.max(0) / 60_000;
    match min {
        0 => "just now".into(),
        1..=59 => format!("{min} min ago"),
        60..=2879 => format!("{} h ago", min / 60),
        _ => format!("{} days ago", min / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn fridge() -> NameEntry {
        NameEntry {
            kind: "sensor".into(),
            id: "s-1".into(),
            name: "Fridge 1 - Air Sensor".into(),
            area: Some("Kitchen".into()),
            unit: Some("°C".into()),
            limits: Limits {
                upper_warning: Some(7.0),
                upper_violation: Some(8.0),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn update(at_ms: i64, result: Result<Vec<NameEntry>, String>) -> NamesUpdate {
        NamesUpdate {
            source: Source::Saveris,
            account: "a1".into(),
            at: Timestamp::from_millisecond(at_ms).unwrap(),
            result,
        }
    }

    #[test]
    fn names_survive_a_restart_and_a_failed_refresh_keeps_them() {
        let h = History::open_in_memory().unwrap();
        let mut names = Names::load(&h);
        assert!(names.is_empty());
        names.update(&h, update(1_000, Ok(vec![fridge()]))).unwrap();
        let day = 86_400_000;
        names
            .update(
                &h,
                update(
                    1_000 + 3 * day,
                    Err("the Data API could not be reached".into()),
                ),
            )
            .unwrap();
        let names = Names::load(&h);
        assert_eq!(names.len(), 1);
        let mut e = Event::new(
            Source::Saveris,
            "a1",
            "alarms",
            EventKind::AlarmRaised,
            "k".into(),
        );
        e.sensor = Some("s-1".into());
        e.condition = Some("Upper limit".into());
        e.severity = Severity::Alarm;
        names.apply(&mut e);
        assert_eq!(
            e.name.as_deref(),
            Some("Fridge 1 - Air Sensor \u{b7} Kitchen")
        );
        let loc = Locale::plain(jiff::tz::TimeZone::UTC);
        assert_eq!(
            names.limit_text(&e, &loc).as_deref(),
            Some("upper limit 8.0 °C")
        );
        e.severity = Severity::Warning;
        assert_eq!(
            names.limit_text(&e, &loc).as_deref(),
            Some("upper limit 7.0 °C")
        );
        assert_eq!(
            names.sentence(Source::Saveris, "a1", 1_000 + 3 * day + 60_000).as_deref(),
            Some("names last refreshed 3 days ago; the last refresh failed: the Data API could not be reached")
        );
        e.account = "other".into();
        assert!(names.is_unknown(&e), "names are per account");
    }

    #[test]
    fn the_site_zone_is_the_tenants_else_the_payloads_offset_and_element_devices_have_places() {
        let h = History::open_in_memory().unwrap();
        let mut names = Names::load(&h);
        let mut f = fridge();
        f.timezone = Some("America/Chicago".into());
        names.update(&h, update(1_000, Ok(vec![f]))).unwrap();
        assert_eq!(
            names.zone(Source::Saveris, "a1", Some("s-1")).as_deref(),
            Some("America/Chicago")
        );
        // An unknown sensor: nothing, until a payload told the account's offset.
        assert_eq!(names.zone(Source::Saveris, "a1", Some("s-9")), None);
        let mut e = Event::new(
            Source::Saveris,
            "a1",
            "alarms",
            EventKind::AlarmRaised,
            "k".into(),
        );
        e.site_offset = Some("+05:30".into());
        names.note_offset(&e);
        assert_eq!(
            names.zone(Source::Saveris, "a1", Some("s-9")).as_deref(),
            Some("+05:30")
        );
        assert_eq!(
            names.zone(Source::Saveris, "a2", Some("s-9")),
            None,
            "per account"
        );
        // The tenant's zone wins over a payload's offset.
        assert_eq!(
            names.zone(Source::Saveris, "a1", Some("s-1")).as_deref(),
            Some("America/Chicago")
        );

        // ELEMENT devices are places too: their first folder is their area.
        let device = NameEntry {
            kind: "device".into(),
            id: "dev-1".into(),
            name: "Warehouse freezer".into(),
            location: Some("Warehouse".into()),
            ..Default::default()
        };
        let tag = NameEntry {
            kind: "tag".into(),
            id: "t-1".into(),
            name: "Warehouse".into(),
            ..Default::default()
        };
        let mut u = update(2_000, Ok(vec![device, tag]));
        u.source = Source::Element;
        u.account = "e1".into();
        names.update(&h, u).unwrap();
        let places = places(&h).unwrap();
        assert_eq!(places.len(), 2, "{places:?}");
        let freezer = places.iter().find(|p| p.sensor == "dev-1").unwrap();
        assert_eq!(freezer.area.as_deref(), Some("Warehouse"));
        assert_eq!(freezer.label, "Warehouse freezer \u{b7} Warehouse");
        let fridge = places.iter().find(|p| p.sensor == "s-1").unwrap();
        assert_eq!(fridge.timezone.as_deref(), Some("America/Chicago"));
        assert_eq!(fridge.limits, vec![7.0, 8.0]);
    }

    #[test]
    fn a_refresh_replaces_the_accounts_names() {
        let h = History::open_in_memory().unwrap();
        let mut names = Names::load(&h);
        names.update(&h, update(1_000, Ok(vec![fridge()]))).unwrap();
        let mut other = fridge();
        other.id = "s-2".into();
        names.update(&h, update(2_000, Ok(vec![other]))).unwrap();
        let names = Names::load(&h);
        assert_eq!(names.len(), 1);
        assert!(names.of_sensor("s-2").is_some());
        assert_eq!(
            names
                .sentence(Source::Saveris, "a1", 2_000 + 5 * 60_000)
                .as_deref(),
            Some("names last refreshed 5 min ago")
        );
    }
}
