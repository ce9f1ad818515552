//! The Saveris Data REST API on the loopback Saveris server (SAVERIS-API.md §1), as strict
//! as the vendor's OpenAPI of 2026-09-23 and its integration notes:
//!
//! - `POST /v3/devices/properties`, `/v4/equipments`, `/v1/locations`, `/v3/tenants`,
//!   `/v2/measurements` start an export: `{status: "Submitted", request_uuid}`. The body is
//!   validated (only `options`, `odata` and, for measurements, the two dates; OData only
//!   `$filter`, `$select`, `$orderby`; `$select` names existing columns; measurement windows
//!   of 5 min to 7 days).
//! - `GET …/{request_uuid}` answers `In Progress` for the first poll(s), then `Completed`
//!   with `data_urls` (pre-signed, 24 h) and `metadata_url`, or `Error`.
//! - The "pre-signed" files are served from `/saveris-data-exports/…` with an
//!   `X-Amz-Signature` the server checks; JSON result files are JSON lines (one row per line,
//!   as Athena's UNLOAD writes them), CSV has a header row. At most 10 000 rows per file.
//! - Bearer tokens are the ones the token endpoint issued: none → 403
//!   `MISSING_AUTHENTICATION_TOKEN`, expired → 403 `EXPIRED_TOKEN`, unknown → 403
//!   `ACCESS_DENIED`, all as `application/problem+json`.
//!
//! Knobs ([`Fault`]) make it misbehave the ways the issue's "Bad input" lists, and counters
//! let tests prove that nothing is retried in a tight loop.

// The early returns of the handlers' helpers are the HTTP answers themselves; boxing them
// would buy nothing in a test server.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

/// Rows per result file (the real exports split large results into several files).
const ROWS_PER_FILE: usize = 10_000;

/// Looks a bearer token up in what the token endpoint issued: (user, expiry).
pub type TokenLookup = Arc<dyn Fn(&str) -> Option<(String, Timestamp)> + Send + Sync>;

/// One sensor channel of the simulated tenant, with what the Data API knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSensor {
    pub sensor_uuid: String,
    pub sensor_serial_no: String,
    pub sensor_display_name: String,
    pub device_uuid: String,
    pub device_serial_no: String,
    pub device_display_name: String,
    pub channel_no: i64,
    pub channel_id: i64,
    /// "Temperature", "Humidity".
    pub physical_property_name: String,
    /// "Air Temperature".
    pub physical_extension: String,
    /// The Data API's unit words: `CELSIUS`, `FAHRENHEIT`, `PERCENT_RH`.
    pub unit: String,
    pub equipment_uuid: String,
    pub equipment_title: String,
    pub equipment_parts_uuid: String,
    pub equipment_parts_title: String,
    pub area_uuid: String,
    pub area_title: String,
    pub lower_violation: Option<f64>,
    pub lower_warning: Option<f64>,
    pub upper_warning: Option<f64>,
    pub upper_violation: Option<f64>,
    /// The level the simulated history of measurements moves around.
    pub base: f64,
}

/// What the Data API serves: the tenant and its sensors.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTenant {
    pub tenant_uuid: String,
    pub organisation_name: String,
    pub main_timezone: String,
    pub customer_site: String,
    pub sensors: Vec<SimSensor>,
    /// Minutes between two simulated measurements in `/v2/measurements`.
    pub measuring_minutes: i64,
}

impl Default for SimTenant {
    fn default() -> Self {
        SimTenant {
            tenant_uuid: "7e1a0000-0000-4000-8000-00000000ten1".into(),
            organisation_name: "Demo Lab".into(),
            main_timezone: "Europe/Berlin".into(),
            customer_site: "site-1".into(),
            sensors: Vec::new(),
            measuring_minutes: 5,
        }
    }
}

/// Ways the Data API misbehaves, for tests (`None` of them: behaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every Data API request (not the token endpoint) answers 503, as a gateway in front of
    /// a dead service.
    Down,
    /// POSTs answer 403 `ACCESS_DENIED` ("Missing license or permission").
    Forbidden,
    /// POSTs answer 413 `REQUEST_TOO_LARGE`.
    TooLarge,
    /// Requests stay `In Progress` for ever.
    Stuck,
    /// Requests end in `Error`.
    Error,
    /// Result URLs answer 404 (`NoSuchKey`).
    ResultMissing,
    /// Result files are cut off in the middle of a row.
    Malformed,
}

/// Requests the Data API has seen (tests count them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub posts: u64,
    pub polls: u64,
    pub downloads: u64,
    /// Answers 403 `EXPIRED_TOKEN`.
    pub expired: u64,
}

struct Export {
    resource: &'static str,
    polls: u32,
    /// JSON or CSV.
    json: bool,
    signature: String,
    rows: Vec<Map<String, Value>>,
    failed: bool,
}

#[derive(Default)]
struct Inner {
    tenant: SimTenant,
    fault: Option<Fault>,
    /// Extra generated rows appended to `/v3/devices/properties` (the 50 000-row case).
    extra_property_rows: usize,
    /// Polls answered `In Progress` before `Completed`.
    polls_in_progress: u32,
    exports: HashMap<String, Export>,
    /// Requests per resource path (POSTs).
    posts_by: HashMap<String, u64>,
    /// Tokens treated as expired from now on (the server's `revoke_tokens`).
    revoked: std::collections::HashSet<String>,
}

pub(crate) struct DataApi {
    addr: Mutex<Option<SocketAddr>>,
    inner: Mutex<Inner>,
    lookup: TokenLookup,
    posts: AtomicU64,
    polls: AtomicU64,
    downloads: AtomicU64,
    expired: AtomicU64,
}

/// The five current export resources this app uses: (path, its columns).
const RESOURCES: &[(&str, &[&str])] = &[
    ("v3/devices/properties", PROPERTY_COLUMNS),
    ("v4/equipments", EQUIPMENT_COLUMNS),
    ("v1/locations", LOCATION_COLUMNS),
    ("v3/tenants", TENANT_COLUMNS),
    ("v2/measurements", MEASUREMENT_COLUMNS),
];

const PROPERTY_COLUMNS: &[&str] = &[
    "tenant_uuid",
    "customer_site",
    "device_uuid",
    "device_category",
    "device_serial_no",
    "device_model_code",
    "device_display_name",
    "device_is_active",
    "sensor_uuid",
    "sensor_serial_no",
    "sensor_model_code",
    "sensor_display_name",
    "sensor_is_connected",
    "channel_id",
    "channel_no",
    "channel_physical_unit",
    "channel_physical_property_name",
    "channel_physical_extension",
    "equipment_uuid",
    "equipment_parts_uuid",
];
const EQUIPMENT_COLUMNS: &[&str] = &[
    "tenant_uuid",
    "equipment_uuid",
    "equipment_title",
    "equipment_parts_uuid",
    "equipment_parts_title",
    "equipment_type_title",
    "area_uuid",
    "area_title",
    "is_active",
    "limit_values_uuid",
    "display_unit",
    "lower_violation",
    "lower_warning",
    "upper_warning",
    "upper_violation",
    "alarm_delay",
    "last_modified_at",
];
const LOCATION_COLUMNS: &[&str] = &[
    "tenant_uuid",
    "location_uuid",
    "parent_uuid",
    "name",
    "location_type",
    "parent_location_type",
    "location_subtype",
    "valid_from",
    "last_modified_at",
];
const TENANT_COLUMNS: &[&str] = &[
    "tenant_uuid",
    "parent_uuid",
    "is_operator",
    "organisation_name",
    "organisation_id",
    "organisation_email",
    "country",
    "main_timezone",
    "main_language",
    "register_time",
];
const MEASUREMENT_COLUMNS: &[&str] = &[
    "uuid",
    "sensor_uuid",
    "channel_no",
    "serial_no",
    "model_code",
    "tenant_uuid",
    "customer_site",
    "timestamp",
    "timestamp_local",
    "measurement",
    "physical_property_name",
    "physical_unit",
    "physical_extension",
    "processed_at",
];

impl DataApi {
    pub(crate) fn new(lookup: TokenLookup) -> Arc<DataApi> {
        Arc::new(DataApi {
            addr: Mutex::new(None),
            inner: Mutex::new(Inner {
                polls_in_progress: 1,
                ..Default::default()
            }),
            lookup,
            posts: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            expired: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }

    fn base(&self) -> String {
        let addr = *self.addr.lock().unwrap_or_else(|e| e.into_inner());
        addr.map(|a| format!("http://{a}"))
            .unwrap_or_else(|| "http://127.0.0.1".into())
    }

    pub(crate) fn set_tenant(&self, t: SimTenant) {
        self.lock().tenant = t;
    }

    pub(crate) fn set_fault(&self, f: Option<Fault>) {
        self.lock().fault = f;
    }

    pub(crate) fn set_extra_property_rows(&self, n: usize) {
        self.lock().extra_property_rows = n;
    }

    pub(crate) fn set_polls_in_progress(&self, n: u32) {
        self.lock().polls_in_progress = n;
    }

    pub(crate) fn revoke_tokens(&self, tokens: Vec<String>) {
        self.lock().revoked.extend(tokens);
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            posts: self.posts.load(Ordering::SeqCst),
            polls: self.polls.load(Ordering::SeqCst),
            downloads: self.downloads.load(Ordering::SeqCst),
            expired: self.expired.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn posts_to(&self, resource: &str) -> u64 {
        let r = resource.trim_start_matches('/');
        self.lock().posts_by.get(r).copied().unwrap_or(0)
    }

    /// The routes, to merge into the Saveris server's router.
    pub(crate) fn routes(self: &Arc<Self>) -> Router {
        let mut r = Router::new();
        for (path, _) in RESOURCES {
            let p: &'static str = path;
            r = r
                .route(
                    &format!("/{p}"),
                    post(
                        move |State(s): State<Arc<DataApi>>,
                              h: HeaderMap,
                              body: axum::body::Bytes| async move {
                            s.start(p, &h, &body)
                        },
                    ),
                )
                .route(
                    &format!("/{p}/{{request_uuid}}"),
                    get(
                        move |State(s): State<Arc<DataApi>>,
                              h: HeaderMap,
                              Path(id): Path<String>| async move {
                            s.status(p, &h, &id)
                        },
                    ),
                );
        }
        r.route("/saveris-data-exports/{request_uuid}/{file}", get(download))
            .with_state(self.clone())
    }

    /// The bearer check of the gateway's authorizers; `Err` is the 403 to send.
    fn authorize(&self, h: &HeaderMap) -> Result<(), Response> {
        let Some(bearer) = h
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "MISSING_AUTHENTICATION_TOKEN",
                "Missing Authentication Token",
            ));
        };
        let Some((_, exp)) = (self.lookup)(bearer) else {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "ACCESS_DENIED",
                "User is not authorized to access this resource",
            ));
        };
        let revoked = self.lock().revoked.contains(bearer);
        if exp <= Timestamp::now() || revoked {
            self.expired.fetch_add(1, Ordering::SeqCst);
            return Err(problem(
                StatusCode::FORBIDDEN,
                "EXPIRED_TOKEN",
                "The incoming token has expired",
            ));
        }
        Ok(())
    }

    fn start(&self, resource: &'static str, h: &HeaderMap, body: &[u8]) -> Response {
        self.posts.fetch_add(1, Ordering::SeqCst);
        *self.lock().posts_by.entry(resource.into()).or_default() += 1;
        let fault = self.lock().fault.clone();
        if fault == Some(Fault::Down) {
            return unavailable();
        }
        if let Err(r) = self.authorize(h) {
            return r;
        }
        match fault {
            Some(Fault::Forbidden) => {
                return lambda_error(StatusCode::FORBIDDEN, "Missing license or permission")
            }
            Some(Fault::TooLarge) => {
                return problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "REQUEST_TOO_LARGE",
                    "Request Too Large",
                )
            }
            _ => {}
        }
        let request = match validate(resource, body) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let rows = {
            let inner = self.lock();
            let rows = rows_of(&inner, resource, &request);
            project(rows, request.select.as_deref())
        };
        let id = uuid4();
        let failed = fault == Some(Fault::Error);
        self.lock().exports.insert(
            id.clone(),
            Export {
                resource,
                polls: 0,
                json: request.json,
                signature: format!("{:064x}", rand::random::<u128>()),
                rows,
                failed,
            },
        );
        axum::Json(json!({"status": "Submitted", "request_uuid": id})).into_response()
    }

    fn status(&self, resource: &'static str, h: &HeaderMap, id: &str) -> Response {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let fault = self.lock().fault.clone();
        if fault == Some(Fault::Down) {
            return unavailable();
        }
        if let Err(r) = self.authorize(h) {
            return r;
        }
        let base = self.base();
        let mut inner = self.lock();
        let wait = inner.polls_in_progress;
        let Some(export) = inner.exports.get_mut(id).filter(|e| e.resource == resource) else {
            return lambda_error(StatusCode::NOT_FOUND, "Request not found");
        };
        export.polls += 1;
        if fault == Some(Fault::Stuck) || export.polls <= wait {
            return axum::Json(json!({"status": "In Progress"})).into_response();
        }
        if export.failed {
            return axum::Json(json!({"status": "Error"})).into_response();
        }
        let ext = if export.json { "json" } else { "csv" };
        let files = export.rows.len().div_ceil(ROWS_PER_FILE).max(1);
        let sign = |name: String| {
            format!(
                "{base}/saveris-data-exports/{id}/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=86400&X-Amz-Signature={}",
                export.signature
            )
        };
        let data_urls: Vec<String> = (0..files)
            .map(|i| sign(format!("part-{i:05}.{ext}")))
            .collect();
        let metadata_url = sign(format!("part-00000.{ext}.metadata"));
        axum::Json(json!({
            "status": "Completed",
            "data_urls": data_urls,
            "metadata_url": metadata_url,
        }))
        .into_response()
    }
}

/// A validated request body.
struct Request {
    json: bool,
    select: Option<Vec<String>>,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
}

fn validate(resource: &str, body: &[u8]) -> Result<Request, Response> {
    let bad = |detail: &str| {
        problem_detail(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST_BODY",
            "Invalid request body",
            detail,
        )
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad("the body is not a JSON object"));
    };
    let dated = resource == "v2/measurements";
    for k in map.keys() {
        let allowed = matches!(k.as_str(), "options" | "odata")
            || (dated && matches!(k.as_str(), "date_time_from" | "date_time_until"));
        if !allowed {
            return Err(bad(&format!("property {k} is not allowed")));
        }
    }
    let format = map
        .get("options")
        .and_then(|o| o.get("result_file_format"))
        .map(|f| f.as_str().unwrap_or("?"))
        .unwrap_or("CSV");
    let json = match format {
        "JSON" => true,
        "CSV" => false,
        "ORC" | "PARQUET" | "AVRO" | "TEXTFILE" => {
            return Err(bad(&format!("{format} is not served by this test server")))
        }
        other => return Err(bad(&format!("result_file_format {other} is not allowed"))),
    };
    let mut select = None;
    if let Some(odata) = map.get("odata") {
        let Value::Object(o) = odata else {
            return Err(bad("odata must be an object"));
        };
        for (k, v) in o {
            if !matches!(k.as_str(), "$filter" | "$select" | "$orderby") {
                return Err(bad(&format!("odata property {k} is not allowed")));
            }
            if !v.is_string() {
                return Err(bad(&format!("odata {k} must be a string")));
            }
        }
        if let Some(s) = o.get("$select").and_then(Value::as_str) {
            let columns = RESOURCES
                .iter()
                .find(|(p, _)| *p == resource)
                .map_or(&[][..], |(_, c)| *c);
            let cols: Vec<String> = s.split(',').map(|c| c.trim().to_string()).collect();
            if let Some(unknown) = cols.iter().find(|c| !columns.contains(&c.as_str())) {
                return Err(problem_detail(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST_PARAMETERS",
                    "Invalid request parameters",
                    &format!("unknown column in $select: {unknown}"),
                ));
            }
            select = Some(cols);
        }
    }
    let date = |k: &str| -> Result<Option<Timestamp>, Response> {
        match map.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .map(Some)
                .ok_or_else(|| bad(&format!("{k} is not a date-time"))),
        }
    };
    let (mut from, mut until) = (date("date_time_from")?, date("date_time_until")?);
    if dated {
        // The OpenAPI's defaults: from = now − 1 h, until = from + 1 h.
        let f = from.unwrap_or_else(|| Timestamp::now() - SignedDuration::from_hours(1));
        let u = until.unwrap_or_else(|| f + SignedDuration::from_hours(1));
        let span = u.duration_since(f);
        // The vendor's integration notes: at least 5 min, at most 7 days per request.
        if span < SignedDuration::from_mins(5) || span > SignedDuration::from_hours(7 * 24) {
            return Err(lambda_error(
                StatusCode::BAD_REQUEST,
                "The time window must be between 5 minutes and 7 days",
            ));
        }
        (from, until) = (Some(f), Some(u));
    }
    Ok(Request {
        json,
        select,
        from,
        until,
    })
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn rows_of(inner: &Inner, resource: &str, req: &Request) -> Vec<Map<String, Value>> {
    let t = &inner.tenant;
    let now = Timestamp::now().to_string();
    match resource {
        "v3/devices/properties" => {
            let mut rows: Vec<Map<String, Value>> = t
                .sensors
                .iter()
                .map(|s| {
                    obj(json!({
                        "tenant_uuid": t.tenant_uuid,
                        "customer_site": t.customer_site,
                        "device_uuid": s.device_uuid,
                        "device_category": "LOGGER",
                        "device_serial_no": s.device_serial_no,
                        "device_model_code": "0572 2031",
                        "device_display_name": s.device_display_name,
                        "device_is_active": "true",
                        "sensor_uuid": s.sensor_uuid,
                        "sensor_serial_no": s.sensor_serial_no,
                        "sensor_model_code": "0572 0001",
                        "sensor_display_name": s.sensor_display_name,
                        "sensor_is_connected": "true",
                        "channel_id": s.channel_id,
                        "channel_no": s.channel_no,
                        "channel_physical_unit": s.unit,
                        "channel_physical_property_name": s.physical_property_name,
                        "channel_physical_extension": s.physical_extension,
                        "equipment_uuid": s.equipment_uuid,
                        "equipment_parts_uuid": s.equipment_parts_uuid,
                    }))
                })
                .collect();
            for i in 0..inner.extra_property_rows {
                rows.push(obj(json!({
                    "tenant_uuid": t.tenant_uuid,
                    "customer_site": t.customer_site,
                    "device_uuid": format!("bulk-device-{}", i / 4),
                    "device_category": "LOGGER",
                    "device_serial_no": format!("{:08}", 70_000_000 + i / 4),
                    "device_model_code": "0572 2031",
                    "device_display_name": format!("Bulk logger {}", i / 4),
                    "device_is_active": "true",
                    "sensor_uuid": format!("bulk-sensor-{i}"),
                    "sensor_serial_no": format!("{:08}", 80_000_000 + i),
                    "sensor_model_code": "0572 0001",
                    "sensor_display_name": format!("Bulk sensor {i}"),
                    "sensor_is_connected": "true",
                    "channel_id": 900_000_000 + i,
                    "channel_no": 1,
                    "channel_physical_unit": "CELSIUS",
                    "channel_physical_property_name": "Temperature",
                    "channel_physical_extension": "Air Temperature",
                    "equipment_uuid": Value::Null,
                    "equipment_parts_uuid": Value::Null,
                })));
            }
            rows
        }
        "v4/equipments" => t
            .sensors
            .iter()
            .filter(|s| !s.equipment_uuid.is_empty())
            .map(|s| {
                obj(json!({
                    "tenant_uuid": t.tenant_uuid,
                    "equipment_uuid": s.equipment_uuid,
                    "equipment_title": s.equipment_title,
                    "equipment_parts_uuid": s.equipment_parts_uuid,
                    "equipment_parts_title": s.equipment_parts_title,
                    "equipment_type_title": "Fridge",
                    "area_uuid": s.area_uuid,
                    "area_title": s.area_title,
                    "is_active": true,
                    "limit_values_uuid": format!("limits-{}", s.equipment_parts_uuid),
                    "display_unit": if s.unit == "FAHRENHEIT" { "fahrenheit" } else { "celsius" },
                    "lower_violation": s.lower_violation,
                    "lower_warning": s.lower_warning,
                    "upper_warning": s.upper_warning,
                    "upper_violation": s.upper_violation,
                    "alarm_delay": 300_000,
                    "last_modified_at": now,
                }))
            })
            .collect(),
        "v1/locations" => {
            let mut rows = vec![obj(json!({
                "tenant_uuid": t.tenant_uuid,
                "location_uuid": t.customer_site,
                "parent_uuid": Value::Null,
                "name": t.organisation_name,
                "location_type": "customer",
                "parent_location_type": Value::Null,
                "location_subtype": Value::Null,
                "valid_from": "2026-01-01T00:00:00Z",
                "last_modified_at": now,
            }))];
            let mut seen = Vec::new();
            for s in &t.sensors {
                if s.area_uuid.is_empty() || seen.contains(&s.area_uuid) {
                    continue;
                }
                seen.push(s.area_uuid.clone());
                rows.push(obj(json!({
                    "tenant_uuid": t.tenant_uuid,
                    "location_uuid": s.area_uuid,
                    "parent_uuid": t.customer_site,
                    "name": s.area_title,
                    "location_type": "measurement site",
                    "parent_location_type": "customer",
                    "location_subtype": Value::Null,
                    "valid_from": "2026-01-01T00:00:00Z",
                    "last_modified_at": now,
                })));
            }
            rows
        }
        "v3/tenants" => vec![obj(json!({
            "tenant_uuid": t.tenant_uuid,
            "parent_uuid": Value::Null,
            "is_operator": false,
            "organisation_name": t.organisation_name,
            "organisation_id": "100001",
            "organisation_email": "lab@example.org",
            "country": "DE",
            "main_timezone": t.main_timezone,
            "main_language": "en",
            "register_time": "2026-01-01T00:00:00Z",
        }))],
        "v2/measurements" => {
            let (Some(from), Some(until)) = (req.from, req.until) else {
                return Vec::new();
            };
            let step = t.measuring_minutes.max(1) * 60;
            // Aligned to the measuring cycle, like a logger's clock.
            let first = (from.as_second() + step - 1) / step * step;
            let mut rows = Vec::new();
            for s in &t.sensors {
                let mut at = first;
                while at < until.as_second() {
                    let ts = Timestamp::from_second(at).unwrap_or(from);
                    let value =
                        ((s.base + (at as f64 / 3600.0).sin() * 0.8) * 100.0).round() / 100.0;
                    rows.push(obj(json!({
                        "uuid": format!("{}-{at}", s.sensor_uuid),
                        "sensor_uuid": s.sensor_uuid,
                        "channel_no": s.channel_no,
                        "serial_no": s.sensor_serial_no,
                        "model_code": "0572 0001",
                        "tenant_uuid": t.tenant_uuid,
                        "customer_site": t.customer_site,
                        "timestamp": ts.to_string(),
                        "timestamp_local": ts.to_string(),
                        "measurement": value,
                        "physical_property_name": s.physical_property_name,
                        "physical_unit": s.unit,
                        "physical_extension": s.physical_extension,
                        "processed_at": ts.to_string(),
                    })));
                    at += step;
                }
            }
            rows
        }
        _ => Vec::new(),
    }
}

/// `$select`: only the chosen columns, in the chosen order.
fn project(rows: Vec<Map<String, Value>>, select: Option<&[String]>) -> Vec<Map<String, Value>> {
    let Some(cols) = select else { return rows };
    rows.into_iter()
        .map(|r| {
            cols.iter()
                .map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null)))
                .collect()
        })
        .collect()
}

async fn download(
    State(s): State<Arc<DataApi>>,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.downloads.fetch_add(1, Ordering::SeqCst);
    let inner = s.lock();
    let no_such_key = || {
        s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
    };
    if inner.fault == Some(Fault::ResultMissing) {
        return no_such_key();
    }
    let Some(export) = inner.exports.get(&id) else {
        return no_such_key();
    };
    if q.get("X-Amz-Signature") != Some(&export.signature) {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let columns: Vec<String> = export
        .rows
        .first()
        .map_or_else(Vec::new, |r| r.keys().cloned().collect());
    if let Some(name) = file.strip_suffix(".metadata") {
        let _ = name;
        return axum::Json(json!({"columns": columns})).into_response();
    }
    let ext = if export.json { "json" } else { "csv" };
    let Some(index) = file
        .strip_prefix("part-")
        .and_then(|f| f.strip_suffix(&format!(".{ext}")))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return no_such_key();
    };
    let start = index * ROWS_PER_FILE;
    if start > 0 && start >= export.rows.len() {
        return no_such_key();
    }
    let part =
        &export.rows[start.min(export.rows.len())..(start + ROWS_PER_FILE).min(export.rows.len())];
    let mut text = String::new();
    if export.json {
        for r in part {
            text.push_str(&Value::Object(r.clone()).to_string());
            text.push('\n');
        }
    } else {
        text.push_str(&csv_line(columns.iter().map(String::as_str)));
        for r in part {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| match r.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                })
                .collect();
            text.push_str(&csv_line(cells.iter().map(String::as_str)));
        }
    }
    if inner.fault == Some(Fault::Malformed) {
        // Cut in the middle of the first row: no file format survives that.
        let mut cut = text.len().min(40);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("{\"sensor_uuid\": \"");
    }
    let ty = if export.json {
        "application/json"
    } else {
        "text/csv"
    };
    ([(header::CONTENT_TYPE, ty)], Body::from(text)).into_response()
}

/// One CSV line, every cell quoted (the quote doubled inside), as Athena writes them.
fn csv_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let mut line = cells
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

fn problem(status: StatusCode, kind: &str, title: &str) -> Response {
    problem_detail(status, kind, title, title)
}

/// The gateway's `application/problem+json` answer.
fn problem_detail(status: StatusCode, kind: &str, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": kind,
        "title": title,
        "detail": detail,
        "instance": format!("/{}", uuid4()),
        "status": status.as_u16(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The Lambda's own error schema: `{status: "Error", message}`.
fn lambda_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"status": "Error", "message": message})),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"message": "Service Unavailable"})),
    )
        .into_response()
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn uuid4() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_windows_outside_5_min_to_7_days_are_refused() {
        let body = |from: &str, until: &str| {
            json!({"date_time_from": from, "date_time_until": until, "options": {"result_file_format": "JSON"}})
                .to_string()
        };
        let ok = validate(
            "v2/measurements",
            body("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z").as_bytes(),
        );
        assert!(ok.is_ok());
        for (f, u) in [
            ("2026-12-01T00:00:00Z", "2026-12-01T00:04:00Z"),
            ("2026-12-01T00:00:00Z", "2026-12-08T00:00:01Z"),
            ("2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z"),
        ] {
            let r = validate("v2/measurements", body(f, u).as_bytes());
            assert_eq!(
                r.err().map(|r| r.status()),
                Some(StatusCode::BAD_REQUEST),
                "{f}..{u}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_columns_are_refused() {
        for b in [
            json!({"odata": {"$top": "1"}}),
            json!({"odata": {"$select": "sensor_uuid,nope"}}),
            json!({"date_time_from": "2026-12-01T00:00:00Z"}),
            json!({"options": {"result_file_format": "XML"}}),
        ] {
            let r = validate("v3/devices/properties", b.to_string().as_bytes());
            assert_eq!(
                r.err().map(|r| r.status()),
                Some(StatusCode::BAD_REQUEST),
                "{b}"
            );
        }
        let r = validate(
            "v3/devices/properties",
            br#"{"odata":{"$select":"sensor_uuid, sensor_display_name"},"options":{"result_file_format":"JSON"}}"#,
        );
        let r = r.ok().unwrap();
        assert!(r.json);
        assert_eq!(
            r.select,
            Some(vec![
                "sensor_uuid".to_string(),
                "sensor_display_name".to_string()
            ])
        );
    }
}
