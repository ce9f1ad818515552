//! An account's names, places and limits from the Data API, and the history the app
//! missed (issue 20).
//!
//! - Names: `/v3/devices/properties` (sensor and device names, channel units),
//!   `/v4/equipments` (equipment, area, limits), `/v1/locations`, `/v3/tenants` (time
//!   zone), joined by `equipment_parts_uuid` / `equipment_uuid` (SAVERIS-API.md §1.5), at
//!   start, once a day, and when the engine meets an unknown sensor (at most once per
//!   10 min). A failure keeps the last names; the engine says so in the account's status.
//! - Backfill: at start, when nothing was stored for over an hour, the last 24 h of
//!   `/v2/measurements` (one window: 5 min to 7 days, never overlapping what is stored)
//!   go to the engine as backfilled events: stored for charts, never a popup or a rule.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::client::{DataApiClient, DataApiError};
use crate::event::{Ack, Delivery, Limits, NameEntry, NamesUpdate, Source};
use crate::feeds::saveris::payload;
use crate::feeds::FeedHandle;

/// What one account's refresh task needs.
#[derive(Debug, Clone)]
pub struct RefreshConfig {
    pub account_id: String,
    pub client: DataApiClient,
    /// The newest stored measurement of the account (`None`: never any).
    pub last_reading: Option<Timestamp>,
    /// How far back a backfill reaches.
    pub backfill: Duration,
    /// A gap longer than this is backfilled.
    pub gap: Duration,
    /// Names are refreshed this often.
    pub every: Duration,
    /// An unknown sensor refreshes at most this often.
    pub unknown_gap: Duration,
}

impl RefreshConfig {
    pub fn new(account_id: &str, client: DataApiClient, last_reading: Option<Timestamp>) -> Self {
        RefreshConfig {
            account_id: account_id.to_string(),
            client,
            last_reading,
            backfill: Duration::from_secs(24 * 3600),
            gap: Duration::from_secs(3600),
            every: Duration::from_secs(24 * 3600),
            unknown_gap: Duration::from_secs(600),
        }
    }
}

/// Starts the task. `wanted` pokes it (an unknown sensor); names go to `names`, backfilled
/// events to `deliveries` (confirmed by nobody: the Data API keeps them anyway).
pub fn spawn(
    cfg: RefreshConfig,
    tokens: super::TokenSlot,
    names: mpsc::UnboundedSender<NamesUpdate>,
    deliveries: mpsc::Sender<Delivery>,
    wanted: mpsc::UnboundedReceiver<()>,
) -> FeedHandle {
    let (stop_tx, stop_rx) = FeedHandle::channel();
    let task = tokio::spawn(run(cfg, tokens, names, deliveries, wanted, stop_rx));
    FeedHandle::new(stop_tx, task, Vec::new())
}

async fn run(
    cfg: RefreshConfig,
    tokens: super::TokenSlot,
    names: mpsc::UnboundedSender<NamesUpdate>,
    deliveries: mpsc::Sender<Delivery>,
    mut wanted: mpsc::UnboundedReceiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let work = async {
        // The push feed logs in; its token serves both (one login, and a refused one is
        // not tried again from here).
        tokens.wait().await;
        let last_refresh = tokio::time::Instant::now();
        // Names first: the backfilled readings are then stored under them.
        refresh_names(&cfg, &names).await;
        // Sensors met before these names arrived are known now (or not listed); sensors
        // met from here on may still ask.
        while wanted.try_recv().is_ok() {}
        let asked = backfill(&cfg, &deliveries).await;
        let names_loop =
            crate::feeds::refresh::repeat(cfg.every, cfg.unknown_gap, last_refresh, wanted, || {
                refresh_names(&cfg, &names)
            });
        tokio::join!(names_loop, fill_outages(&cfg, &tokens, &deliveries, asked));
    };
    tokio::select! {
        _ = work => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// The columns used from each export (`$select`: smaller files, less memory for 50 000
/// sensors).
const PROPERTY_COLUMNS: &str = "sensor_uuid,sensor_serial_no,sensor_display_name,device_uuid,device_display_name,channel_no,channel_physical_unit,channel_physical_property_name,channel_physical_extension,equipment_uuid,equipment_parts_uuid,customer_site";
const EQUIPMENT_COLUMNS: &str = "equipment_uuid,equipment_title,equipment_parts_uuid,equipment_parts_title,area_uuid,area_title,display_unit,lower_violation,lower_warning,upper_warning,upper_violation";
const LOCATION_COLUMNS: &str = "location_uuid,name,location_type";
const TENANT_COLUMNS: &str = "tenant_uuid,organisation_name,main_timezone";

/// Values as the exports give them: strings, numbers, or null (the documents disagree on
/// types between versions).
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    })
}

fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Debug, Deserialize)]
struct PropertyRow {
    #[serde(default, deserialize_with = "text")]
    sensor_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    sensor_serial_no: Option<String>,
    #[serde(default, deserialize_with = "text")]
    sensor_display_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    device_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    device_display_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    channel_no: Option<String>,
    #[serde(default, deserialize_with = "text")]
    channel_physical_unit: Option<String>,
    #[serde(default, deserialize_with = "text")]
    channel_physical_property_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    channel_physical_extension: Option<String>,
    #[serde(default, deserialize_with = "text")]
    equipment_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    equipment_parts_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    customer_site: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EquipmentRow {
    #[serde(default, deserialize_with = "text")]
    equipment_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    equipment_title: Option<String>,
    #[serde(default, deserialize_with = "text")]
    equipment_parts_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    equipment_parts_title: Option<String>,
    #[serde(default, deserialize_with = "text")]
    area_title: Option<String>,
    #[serde(default, deserialize_with = "number")]
    lower_violation: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    lower_warning: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    upper_warning: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    upper_violation: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct LocationRow {
    #[serde(default, deserialize_with = "text")]
    location_uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TenantRow {
    #[serde(default, deserialize_with = "text")]
    organisation_name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    main_timezone: Option<String>,
}

fn rows<T: serde::de::DeserializeOwned>(rows: Vec<super::Row>) -> Vec<T> {
    rows.into_iter()
        .filter_map(|r| serde_json::from_value(Value::Object(r)).ok())
        .collect()
}

/// The Data API's unit words as the Push API writes them.
pub fn unit_symbol(unit: &str) -> String {
    match unit.trim().to_ascii_uppercase().as_str() {
        "CELSIUS" | "DEGREE_CELSIUS" => "°C".into(),
        "FAHRENHEIT" | "DEGREE_FAHRENHEIT" => "°F".into(),
        "KELVIN" => "K".into(),
        "PERCENT_RH" | "RELATIVE_HUMIDITY" => "%RH".into(),
        "PERCENT" => "%".into(),
        _ => unit.trim().to_string(),
    }
}

/// The account's names, places, limits and site zone, joined from the four exports.
pub async fn fetch_names(client: &DataApiClient) -> Result<Vec<NameEntry>, DataApiError> {
    let select = |cols: &str| json!({"odata": {"$select": cols}});
    // Four independent exports: side by side, so names arrive in one export's time.
    let (props, equipment, locations, tenants) = tokio::join!(
        client.export("v3/devices/properties", select(PROPERTY_COLUMNS)),
        client.export("v4/equipments", select(EQUIPMENT_COLUMNS)),
        client.export("v1/locations", select(LOCATION_COLUMNS)),
        client.export("v3/tenants", select(TENANT_COLUMNS)),
    );
    Ok(join(
        rows(props?),
        rows(equipment?),
        rows(locations?),
        rows(tenants?),
    ))
}

/// One entry per sensor (the first channel's unit; a sensor's channels share its name),
/// plus one per device.
fn join(
    props: Vec<PropertyRow>,
    equipment: Vec<EquipmentRow>,
    locations: Vec<LocationRow>,
    tenants: Vec<TenantRow>,
) -> Vec<NameEntry> {
    let by_part: HashMap<&str, &EquipmentRow> = equipment
        .iter()
        .filter_map(|e| e.equipment_parts_uuid.as_deref().map(|p| (p, e)))
        .collect();
    let by_equipment: HashMap<&str, &EquipmentRow> = equipment
        .iter()
        .filter_map(|e| e.equipment_uuid.as_deref().map(|p| (p, e)))
        .collect();
    let places: HashMap<&str, &str> = locations
        .iter()
        .filter_map(|l| Some((l.location_uuid.as_deref()?, l.name.as_deref()?)))
        .collect();
    let tenant = tenants.first();
    let mut out: Vec<NameEntry> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut devices: HashMap<String, NameEntry> = HashMap::new();
    for p in &props {
        let Some(sensor) = p.sensor_uuid.clone() else {
            continue;
        };
        let eq = p
            .equipment_parts_uuid
            .as_deref()
            .and_then(|u| by_part.get(u))
            .or_else(|| {
                p.equipment_uuid
                    .as_deref()
                    .and_then(|u| by_equipment.get(u))
            });
        let equipment = eq.and_then(|e| match (&e.equipment_title, &e.equipment_parts_title) {
            (Some(t), Some(part)) => Some(format!("{t} / {part}")),
            (Some(t), None) => Some(t.clone()),
            _ => None,
        });
        let location = p
            .customer_site
            .as_deref()
            .and_then(|s| places.get(s))
            .map(|s| s.to_string());
        let name = p
            .sensor_display_name
            .clone()
            .or_else(|| p.sensor_serial_no.clone())
            .unwrap_or_else(|| sensor.clone());
        let entry = NameEntry {
            kind: "sensor".into(),
            id: sensor.clone(),
            name,
            device: p.device_uuid.clone(),
            device_name: p.device_display_name.clone(),
            channel: match (&p.channel_no, &p.channel_physical_property_name) {
                (Some(n), Some(q)) => Some(match &p.channel_physical_extension {
                    Some(x) if x != q => format!("{n} {q} ({x})"),
                    _ => format!("{n} {q}"),
                }),
                (Some(n), None) => Some(n.clone()),
                (None, q) => q.clone(),
            },
            unit: p.channel_physical_unit.as_deref().map(unit_symbol),
            equipment,
            area: eq.and_then(|e| e.area_title.clone()),
            location,
            tenant: tenant.and_then(|t| t.organisation_name.clone()),
            timezone: tenant.and_then(|t| t.main_timezone.clone()),
            limits: eq.map_or_else(Limits::default, |e| Limits {
                lower_violation: e.lower_violation,
                lower_warning: e.lower_warning,
                upper_warning: e.upper_warning,
                upper_violation: e.upper_violation,
            }),
        };
        if let (Some(d), Some(dn)) = (&p.device_uuid, &p.device_display_name) {
            devices.entry(d.clone()).or_insert_with(|| NameEntry {
                kind: "device".into(),
                id: d.clone(),
                name: dn.clone(),
                area: entry.area.clone(),
                location: entry.location.clone(),
                tenant: entry.tenant.clone(),
                timezone: entry.timezone.clone(),
                ..Default::default()
            });
        }
        // One row per channel: the first channel names the sensor.
        if seen.contains_key(&sensor) {
            continue;
        }
        seen.insert(sensor, out.len());
        out.push(entry);
    }
    let mut devices: Vec<NameEntry> = devices.into_values().collect();
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    out.extend(devices);
    out
}

async fn refresh_names(cfg: &RefreshConfig, names: &mpsc::UnboundedSender<NamesUpdate>) {
    let result = fetch_names(&cfg.client).await.map_err(|e| {
        tracing::warn!(account = %cfg.account_id, error = %e, "names could not be refreshed");
        e.to_string()
    });
    let _ = names.send(NamesUpdate {
        source: Source::Saveris,
        account: cfg.account_id.clone(),
        at: Timestamp::now(),
        result,
    });
}

/// The window to backfill: from the newest stored reading (or 24 h ago) to now, when that
/// is more than `gap`; `None` otherwise. Never under 5 min nor over 7 days.
pub fn backfill_window(
    last: Option<Timestamp>,
    now: Timestamp,
    reach: Duration,
    gap: Duration,
) -> Option<(Timestamp, Timestamp)> {
    let reach = SignedDuration::try_from(reach)
        .unwrap_or(SignedDuration::from_hours(24))
        .min(SignedDuration::from_hours(7 * 24));
    let earliest = now.checked_sub(reach).ok()?;
    let from = match last {
        None => earliest,
        Some(l) if now.duration_since(l) > SignedDuration::try_from(gap).ok()? => l.max(earliest),
        Some(_) => return None,
    };
    (now.duration_since(from) >= SignedDuration::from_mins(5)).then_some((from, now))
}

/// The shortest and longest window the vendor allows for `/v2/measurements`.
const MIN_WINDOW: SignedDuration = SignedDuration::from_mins(5);
const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(7 * 24);

/// The window that fills in a push-feed outage `(down, up)`, given the end of the last
/// window asked for: at least 5 min (reaching back before the outage when it was
/// shorter), at most 7 days (the newest part), and never overlapping an earlier window.
/// Returns `(from, until)`; `until` may lie ahead of `up`: the caller waits for it.
pub fn outage_window(
    down: Timestamp,
    up: Timestamp,
    asked_until: Option<Timestamp>,
) -> Option<(Timestamp, Timestamp)> {
    let up = up.max(down);
    let mut from = down
        .min(up.checked_sub(MIN_WINDOW).ok()?)
        .max(up.checked_sub(MAX_WINDOW).ok()?);
    if let Some(asked) = asked_until {
        if asked >= up {
            // Asked for already: nothing of it is missing.
            return None;
        }
        from = from.max(asked);
    }
    let until = up.max(from.checked_add(MIN_WINDOW).ok()?);
    Some((from, until))
}

/// Fills in every outage of the push feed from the Data API, one window each (issue 20):
/// the live feed missed those readings, the history and charts would have a hole.
async fn fill_outages(
    cfg: &RefreshConfig,
    tokens: &super::TokenSlot,
    deliveries: &mpsc::Sender<Delivery>,
    mut asked_until: Option<Timestamp>,
) {
    loop {
        let (down, up) = tokens.next_outage().await;
        let Some((from, until)) = outage_window(down, up, asked_until) else {
            continue;
        };
        // A window may not end in the future: wait until it has passed (a short outage
        // right after another window).
        let ahead = until.duration_since(Timestamp::now());
        if ahead.is_positive() {
            tokio::time::sleep(Duration::try_from(ahead).unwrap_or(Duration::ZERO)).await;
        }
        tracing::info!(account = %cfg.account_id, %from, %until, "filling in the push feed's outage");
        asked_until = Some(until);
        fetch_measurements(cfg, deliveries, from, until).await;
    }
}

/// The start's backfill; returns the end of the window asked for, if one was.
async fn backfill(cfg: &RefreshConfig, deliveries: &mpsc::Sender<Delivery>) -> Option<Timestamp> {
    let now = Timestamp::now();
    let (from, until) = backfill_window(cfg.last_reading, now, cfg.backfill, cfg.gap)?;
    fetch_measurements(cfg, deliveries, from, until).await;
    Some(until)
}

/// `/v2/measurements` of `[from, until]` to the engine as backfilled readings.
async fn fetch_measurements(
    cfg: &RefreshConfig,
    deliveries: &mpsc::Sender<Delivery>,
    from: Timestamp,
    until: Timestamp,
) {
    let now = Timestamp::now();
    let body = json!({
        "date_time_from": from.to_string(),
        "date_time_until": until.to_string(),
        "odata": {"$select": "uuid,sensor_uuid,channel_no,serial_no,model_code,timestamp,timestamp_local,measurement,physical_property_name,physical_unit,physical_extension"},
    });
    let rows = match cfg.client.export("v2/measurements", body).await {
        Ok(r) => r,
        Err(e) => {
            // The live feed goes on; the charts start empty.
            tracing::warn!(account = %cfg.account_id, error = %e, "history backfill failed");
            return;
        }
    };
    let n = rows.len();
    for row in rows {
        let mut row = row;
        // The Data API writes CELSIUS where the Push API writes °C.
        if let Some(Value::String(u)) = row.get("physical_unit") {
            let sym = unit_symbol(u);
            row.insert("physical_unit".into(), Value::String(sym));
        }
        let body = Value::Object(row).to_string();
        let mut event = payload::to_event(&cfg.account_id, "measurements-v2", body.as_bytes(), now);
        if event.kind != crate::event::EventKind::Measurement {
            continue;
        }
        // The key is sensor + quantity + time, as for live readings: whichever of the two
        // comes second is a duplicate and stored once.
        event.backfill = true;
        event.replayed = true;
        let d = Delivery {
            event,
            ack: Ack::none(),
        };
        if deliveries.send(d).await.is_err() {
            return;
        }
    }
    tracing::info!(account = %cfg.account_id, readings = n, "history backfilled");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_windows_are_5_min_to_7_days_and_never_overlap() {
        let t = |m: i64| Timestamp::from_second(1_800_000_000 + m * 60).unwrap();
        // A 40 s outage: 5 min ending at its end.
        let up = t(100) + SignedDuration::from_secs(40);
        assert_eq!(outage_window(t(100), up, None), Some((up - MIN_WINDOW, up)));
        // An hour: exactly that.
        assert_eq!(outage_window(t(100), t(160), None), Some((t(100), t(160))));
        // Ten days: the newest 7.
        let ten = t(100) + SignedDuration::from_hours(240);
        assert_eq!(
            outage_window(t(100), ten, None),
            Some((ten - MAX_WINDOW, ten))
        );
        // Right after a window that ended at 158: starts there, and is still 5 min long,
        // ending ahead of the outage's end (the caller waits).
        assert_eq!(
            outage_window(t(159), t(160), Some(t(158))),
            Some((t(158), t(163)))
        );
        // Everything already asked for: nothing.
        assert_eq!(outage_window(t(100), t(120), Some(t(130))), None);
        for (down, up, asked) in [(t(100), up, None), (t(159), t(160), Some(t(158)))] {
            let (f, u) = outage_window(down, up, asked).unwrap();
            assert!(u.duration_since(f) >= MIN_WINDOW && u.duration_since(f) <= MAX_WINDOW);
            assert!(asked.is_none_or(|a| f >= a), "no overlap");
        }
    }

    #[test]
    fn backfill_covers_first_starts_and_gaps_over_an_hour_only() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let day = Duration::from_secs(86_400);
        let hour = Duration::from_secs(3600);
        let h = |n: i64| now - SignedDuration::from_hours(n);
        assert_eq!(backfill_window(None, now, day, hour), Some((h(24), now)));
        assert_eq!(
            backfill_window(Some(h(3)), now, day, hour),
            Some((h(3), now))
        );
        assert_eq!(
            backfill_window(Some(h(72)), now, day, hour),
            Some((h(24), now))
        );
        assert_eq!(
            backfill_window(Some(now - SignedDuration::from_mins(30)), now, day, hour),
            None
        );
    }

    #[test]
    fn names_join_sensors_to_equipment_areas_limits_and_the_tenant() {
        let p: PropertyRow = serde_json::from_value(json!({
            "sensor_uuid": "s1", "sensor_display_name": "Fridge 1 - Air Sensor",
            "device_uuid": "d1", "device_display_name": "Fridge 1 - Logger",
            "channel_no": 1, "channel_physical_unit": "CELSIUS",
            "channel_physical_property_name": "Temperature",
            "equipment_uuid": "e1", "equipment_parts_uuid": "p1", "customer_site": "site-1"
        }))
        .unwrap();
        let e: EquipmentRow = serde_json::from_value(json!({
            "equipment_uuid": "e1", "equipment_title": "Fridge 1", "equipment_parts_uuid": "p1",
            "area_title": "Kitchen", "upper_violation": 8.0, "upper_warning": "7.5",
            "lower_violation": null
        }))
        .unwrap();
        let l: LocationRow =
            serde_json::from_value(json!({"location_uuid": "site-1", "name": "Demo Lab"})).unwrap();
        let t: TenantRow = serde_json::from_value(
            json!({"organisation_name": "Demo Lab", "main_timezone": "Europe/Berlin"}),
        )
        .unwrap();
        let names = join(vec![p], vec![e], vec![l], vec![t]);
        assert_eq!(names.len(), 2, "{names:?}");
        let s = &names[0];
        assert_eq!(s.label(), "Fridge 1 - Air Sensor \u{b7} Kitchen");
        assert_eq!(s.unit.as_deref(), Some("°C"));
        assert_eq!(s.limits.upper_violation, Some(8.0));
        assert_eq!(s.limits.upper_warning, Some(7.5));
        assert_eq!(s.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(s.location.as_deref(), Some("Demo Lab"));
        assert_eq!(names[1].kind, "device");
        assert_eq!(names[1].name, "Fridge 1 - Logger");
    }
}
