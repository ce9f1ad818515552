//! The Data REST API's asynchronous export flow (SAVERIS-API.md §1.3): POST a request,
//! poll its `request_uuid` until `Completed`, download the pre-signed result files.
//!
//! The vendor's rules, as this client keeps them:
//! - a failed export is started again with a new POST (at most [`PollPolicy::posts`] per
//!   export), a failed GET (status or file) is never repeated for the same request;
//! - an authentication failure is not retried, except that 403 `EXPIRED_TOKEN` renews the
//!   token once;
//! - polling backs off (1 s, 2 s, 4 s … up to a ceiling) within an overall timeout, and a
//!   request that stays `In Progress` past it is given up, not resent (it would only queue
//!   another one behind it).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::token::TokenSlot;
use crate::clock::Clock;
use crate::feeds::saveris::auth::{self, AuthError, TokenSource};

/// One result row: column → value, as the file had it.
pub type Row = Map<String, Value>;

/// How long and how often to poll, and how often to start an export again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    pub first: Duration,
    pub max: Duration,
    /// From the POST to the last file downloaded.
    pub overall: Duration,
    /// POSTs per export (the first one included).
    pub posts: u32,
    /// Pause before a POST is sent again.
    pub repost_after: Duration,
    /// Rows accepted per export: more is a broken or hostile answer.
    pub max_rows: usize,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
            overall: Duration::from_secs(300),
            posts: 2,
            repost_after: Duration::from_secs(5),
            max_rows: 500_000,
        }
    }
}

/// Why an export gave no rows. Each `Display` completes "the names could not be refreshed: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataApiError {
    #[error("the Data API could not be reached ({0})")]
    Unreachable(String),
    #[error("the login failed: {0}")]
    Login(AuthError),
    #[error("the Data API refused the request (HTTP 403{}): the account may lack the licence or permission", kind_part(.0))]
    Refused(String),
    #[error("the Data API said the request is too large (HTTP 413)")]
    TooLarge,
    #[error("the Data API answered HTTP {status}{}", kind_part(.kind))]
    Http { status: u16, kind: String },
    #[error("the export ended in Error on the Data API")]
    ExportFailed,
    #[error("the export was still in progress after {0} s")]
    TimedOut(u64),
    #[error("a result file could not be downloaded (HTTP {0})")]
    ResultFile(u16),
    #[error("a result file was not readable ({0})")]
    Malformed(String),
}

fn kind_part(kind: &str) -> String {
    if kind.is_empty() {
        String::new()
    } else {
        format!(", {kind}")
    }
}

/// What one attempt ended with: done, or whether a new POST may help.
enum Attempt {
    Done(Vec<Row>),
    /// Resend the POST (after a pause), if the policy allows another.
    Repost(DataApiError),
    /// The token was called expired: renew once and POST again.
    Expired(String),
    Fail(DataApiError),
}

/// A Data API client for one account.
#[derive(Clone)]
pub struct DataApiClient {
    http: reqwest::Client,
    base: url::Url,
    tokens: TokenSlot,
    source: TokenSource,
    user: String,
    password: Option<String>,
    clock: Arc<dyn Clock>,
    pub policy: PollPolicy,
    /// The result files asked for (issue 20: JSON lines or the vendor's default CSV).
    pub format: ResultFormat,
}

/// `options.result_file_format` of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultFormat {
    #[default]
    Json,
    Csv,
}

impl ResultFormat {
    fn word(self) -> &'static str {
        match self {
            ResultFormat::Json => "JSON",
            ResultFormat::Csv => "CSV",
        }
    }
}

impl std::fmt::Debug for DataApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataApiClient")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl DataApiClient {
    pub fn new(
        base: url::Url,
        tokens: TokenSlot,
        source: TokenSource,
        user: &str,
        password: Option<String>,
        clock: Arc<dyn Clock>,
        http_timeout: Duration,
    ) -> DataApiClient {
        DataApiClient {
            http: reqwest::Client::builder()
                .timeout(http_timeout)
                .build()
                .unwrap_or_default(),
            base,
            tokens,
            source,
            user: user.trim().to_string(),
            password,
            clock,
            policy: PollPolicy::default(),
            format: ResultFormat::default(),
        }
    }

    /// The shared token, logging in when there is none or it is due.
    async fn token(&self) -> Result<String, DataApiError> {
        if let Some(t) = self.tokens.fresh(self.clock.now()) {
            return Ok(t.id_token);
        }
        let password = self
            .password
            .as_deref()
            .ok_or(DataApiError::Login(AuthError::MissingPassword))?;
        let mut t = auth::login(&self.http, &self.source, &self.user, password)
            .await
            .map_err(|e| match e {
                AuthError::Unreachable { host, reason } => {
                    DataApiError::Unreachable(format!("{host}: {reason}"))
                }
                other => DataApiError::Login(other),
            })?;
        t.fetched_at = self.clock.now();
        self.tokens.put(t.clone());
        Ok(t.id_token)
    }

    /// Runs one export of `resource` (`v3/devices/properties`…) with `body` (JSON result
    /// files are asked for here) and returns its rows.
    pub async fn export(&self, resource: &str, mut body: Value) -> Result<Vec<Row>, DataApiError> {
        if let Value::Object(m) = &mut body {
            let options = m.entry("options").or_insert_with(|| json!({}));
            if let Value::Object(o) = options {
                o.insert("result_file_format".into(), json!(self.format.word()));
            }
        }
        let url = self
            .base
            .join(resource.trim_start_matches('/'))
            .map_err(|e| DataApiError::Unreachable(e.to_string()))?;
        let started = tokio::time::Instant::now();
        let mut renewed = false;
        let mut posts = 0;
        loop {
            posts += 1;
            let token = self.token().await?;
            match self.attempt(&url, &body, &token, started).await {
                Attempt::Done(rows) => return Ok(rows),
                Attempt::Fail(e) => return Err(e),
                Attempt::Expired(kind) => {
                    if renewed {
                        return Err(DataApiError::Refused(kind));
                    }
                    renewed = true;
                    self.tokens.forget(&token);
                    // The renewal is not a new attempt: the request never ran.
                    posts -= 1;
                }
                Attempt::Repost(e) => {
                    let left = self.policy.overall.saturating_sub(started.elapsed());
                    if posts >= self.policy.posts || left <= self.policy.repost_after {
                        return Err(e);
                    }
                    tracing::info!(resource, error = %e, "Data API export failed; starting it again");
                    tokio::time::sleep(self.policy.repost_after).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: &url::Url,
        body: &Value,
        token: &str,
        started: tokio::time::Instant,
    ) -> Attempt {
        let resp = match self
            .http
            .post(url.clone())
            .bearer_auth(token)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Attempt::Repost(DataApiError::Unreachable(reason(&e))),
        };
        let answer = match gateway_answer(resp).await {
            Ok(v) => v,
            Err(a) => return a,
        };
        let Some(id) = answer
            .get("request_uuid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() < 200)
        else {
            return Attempt::Repost(DataApiError::Malformed("no request_uuid".into()));
        };
        let status_url = match url.join(&format!(
            "{}/{}",
            url.path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default(),
            id
        )) {
            Ok(u) => u,
            Err(e) => return Attempt::Fail(DataApiError::Malformed(e.to_string())),
        };
        let mut wait = self.policy.first;
        let urls = loop {
            let left = self.policy.overall.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Attempt::Fail(DataApiError::TimedOut(self.policy.overall.as_secs()));
            }
            tokio::time::sleep(wait.min(left)).await;
            wait = (wait * 2).min(self.policy.max);
            let resp = match self
                .http
                .get(status_url.clone())
                .bearer_auth(token)
                .send()
                .await
            {
                Ok(r) => r,
                // Never retry a failed GET: the export starts again.
                Err(e) => return Attempt::Repost(DataApiError::Unreachable(reason(&e))),
            };
            let answer = match gateway_answer(resp).await {
                Ok(v) => v,
                Err(a) => return a,
            };
            match answer.get("status").and_then(Value::as_str) {
                Some("Completed") => break answer,
                Some("Error") => return Attempt::Repost(DataApiError::ExportFailed),
                // "In Progress", "Submitted" or a status the document does not list.
                _ => {}
            }
            if started.elapsed() >= self.policy.overall {
                return Attempt::Fail(DataApiError::TimedOut(self.policy.overall.as_secs()));
            }
        };
        let files: Vec<&str> = urls
            .get("data_urls")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for file in files {
            // Pre-signed: the URL is the credential, no Authorization header.
            let resp = match self.http.get(file).send().await {
                Ok(r) => r,
                Err(e) => return Attempt::Repost(DataApiError::Unreachable(reason(&e))),
            };
            if !resp.status().is_success() {
                return Attempt::Repost(DataApiError::ResultFile(resp.status().as_u16()));
            }
            // The file's type wins over what was asked for (a server may ignore the option).
            let csv = match resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                Some(t) if t.starts_with("text/csv") => true,
                Some(t) if t.contains("json") => false,
                _ => self.format == ResultFormat::Csv,
            };
            let text = match resp.text().await {
                Ok(t) => t,
                Err(e) => return Attempt::Repost(DataApiError::Unreachable(reason(&e))),
            };
            let left = self.policy.max_rows - rows.len().min(self.policy.max_rows);
            let parsed = if csv {
                parse_csv_rows(&text, left)
            } else {
                parse_rows(&text, left)
            };
            match parsed {
                Ok(mut r) => rows.append(&mut r),
                // The same export would give the same file: no resend.
                Err(e) => return Attempt::Fail(e),
            }
        }
        Attempt::Done(rows)
    }
}

/// Reads a gateway answer: the JSON of a 2xx, else what to do about the error.
async fn gateway_answer(resp: reqwest::Response) -> Result<Value, Attempt> {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    // problem+json names the case in `type`; a Lambda error has `message`.
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect::<String>();
    Err(match status.as_u16() {
        403 if kind == "EXPIRED_TOKEN" => Attempt::Expired(kind),
        401 | 403 => Attempt::Fail(DataApiError::Refused(kind)),
        413 => Attempt::Fail(DataApiError::TooLarge),
        400 | 404 => Attempt::Fail(DataApiError::Http {
            status: status.as_u16(),
            kind,
        }),
        s => Attempt::Repost(DataApiError::Http { status: s, kind }),
    })
}

fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // Without the URL: a pre-signed URL is a credential for a day.
        e.without_url_ref().to_string()
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(u) => text.replace(u.as_str(), "<url>"),
            None => text,
        }
    }
}

/// Rows of a JSON result file: JSON lines (one object per line, as the exports write
/// them) or one JSON array of objects.
pub fn parse_rows(text: &str, max_rows: usize) -> Result<Vec<Row>, DataApiError> {
    let trimmed = text.trim_start();
    let too_many = || DataApiError::Malformed(format!("more than {max_rows} rows"));
    if trimmed.starts_with('[') {
        let rows: Vec<Row> = serde_json::from_str(trimmed)
            .map_err(|e| DataApiError::Malformed(format!("not JSON: {e}")))?;
        if rows.len() > max_rows {
            return Err(too_many());
        }
        return Ok(rows);
    }
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() >= max_rows {
            return Err(too_many());
        }
        let row: Row = serde_json::from_str(line)
            .map_err(|e| DataApiError::Malformed(format!("line {}: {e}", n + 1)))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Rows of a CSV result file (a header line, then one line per row, every cell text; an
/// empty cell is no value). A file cut short, or a line with another number of cells than
/// the header, is malformed.
pub fn parse_csv_rows(text: &str, max_rows: usize) -> Result<Vec<Row>, DataApiError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    // The exports end every line: a file without the last one was cut.
    if !text.ends_with('\n') {
        return Err(DataApiError::Malformed(
            "the CSV file ends in the middle of a line".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| DataApiError::Malformed(format!("not CSV: {e}"));
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if header.iter().any(String::is_empty) {
        return Err(DataApiError::Malformed("a CSV column has no name".into()));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        if rows.len() >= max_rows {
            return Err(DataApiError::Malformed(format!(
                "more than {max_rows} rows"
            )));
        }
        let row: Row = header
            .iter()
            .zip(record.iter())
            .map(|(h, cell)| {
                let v = if cell.is_empty() {
                    Value::Null
                } else {
                    Value::String(cell.to_string())
                };
                (h.clone(), v)
            })
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

/// The Data API base URL of an account: the custom endpoint's, else the origin of its
/// token URL, else the vendor's host for its region and environment. `None`: the account
/// logs in with a STOMP passcode and has no Data API.
pub fn base_url(account: &crate::settings::SaverisAccount) -> Result<Option<url::Url>, String> {
    let text = match &account.custom {
        Some(c) if !c.data_api_url.trim().is_empty() => c.data_api_url.trim().to_string(),
        Some(c) if !c.token_url.trim().is_empty() => {
            let u = url::Url::parse(c.token_url.trim())
                .map_err(|e| format!("the token URL is invalid ({e})"))?;
            u.origin().ascii_serialization()
        }
        Some(_) => return Ok(None),
        None => format!(
            "https://data-api.{}.{}.savr.saveris.net",
            account.region.as_str(),
            account.environment.letter()
        ),
    };
    let mut u = url::Url::parse(&text).map_err(|e| format!("the Data API URL is invalid ({e})"))?;
    match u.scheme() {
        "https" => {}
        "http" if crate::feeds::connector::is_loopback(&u) => {}
        _ => {
            return Err(
                "the Data API URL must start with https:// (http:// only for this computer)".into(),
            )
        }
    }
    // Joined paths go below the base, not beside its last segment.
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(Some(u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{CustomEndpoint, SaverisAccount};

    #[test]
    fn csv_result_files_read_as_rows_and_broken_ones_are_malformed() {
        let text = "\"sensor_uuid\",\"sensor_display_name\",\"upper_violation\"\n\
                    \"s-1\",\"Fridge 1 - Air Sensor, left\",\"8.0\"\n\
                    \"s-2\",\"Say \"\"hi\"\"\",\"\"\n";
        let rows = super::parse_csv_rows(text, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0]["sensor_display_name"],
            "Fridge 1 - Air Sensor, left"
        );
        assert_eq!(rows[0]["upper_violation"], "8.0");
        assert_eq!(rows[1]["sensor_display_name"], "Say \"hi\"");
        assert_eq!(rows[1]["upper_violation"], serde_json::Value::Null);
        assert!(super::parse_csv_rows("", 10).unwrap().is_empty());
        for bad in [
            // Cut in the middle of a line.
            "\"a\",\"b\"\n\"1\",\"2",
            // A row with a cell too many.
            "\"a\",\"b\"\n\"1\",\"2\",\"3\"\n",
            // A column without a name.
            "\"a\",\"\"\n\"1\",\"2\"\n",
        ] {
            assert!(
                matches!(
                    super::parse_csv_rows(bad, 10),
                    Err(DataApiError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let many = "\"a\"\n\"1\"\n\"2\"\n\"3\"\n";
        assert!(matches!(
            super::parse_csv_rows(many, 2),
            Err(DataApiError::Malformed(_))
        ));
    }

    #[test]
    fn json_lines_and_arrays_parse_and_a_cut_file_does_not() {
        let rows = parse_rows("{\"a\":1}\n\n{\"a\":2}\n", 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(parse_rows("[{\"a\":1}]", 10).unwrap()[0]["a"], 1);
        assert!(matches!(
            parse_rows("{\"a\":1}\n{\"sensor_uuid\": \"", 10),
            Err(DataApiError::Malformed(m)) if m.starts_with("line 2")
        ));
        assert!(matches!(
            parse_rows("{}\n{}\n{}\n", 2),
            Err(DataApiError::Malformed(_))
        ));
    }

    #[test]
    fn the_base_url_is_the_custom_one_or_the_token_urls_origin_or_the_vendors() {
        let mut a = SaverisAccount {
            username: "u".into(),
            ..Default::default()
        };
        assert_eq!(
            base_url(&a).unwrap().unwrap().as_str(),
            "https://data-api.eu.p.savr.saveris.net/"
        );
        a.custom = Some(CustomEndpoint {
            ws_url: "ws://127.0.0.1:9/web-socket".into(),
            token_url: "http://127.0.0.1:9/v1/token".into(),
            ..Default::default()
        });
        assert_eq!(
            base_url(&a).unwrap().unwrap().as_str(),
            "http://127.0.0.1:9/"
        );
        a.custom.as_mut().unwrap().data_api_url = "https://data.example.org/api".into();
        assert_eq!(
            base_url(&a).unwrap().unwrap().as_str(),
            "https://data.example.org/api/"
        );
        a.custom.as_mut().unwrap().data_api_url = "http://data.example.org/".into();
        assert!(base_url(&a).is_err());
        a.custom = Some(CustomEndpoint::default());
        assert_eq!(base_url(&a).unwrap(), None);
    }
}
