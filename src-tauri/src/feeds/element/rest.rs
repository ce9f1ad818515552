//! REST discovery for the settings pickers: devices, tags, and the devices of a tag.
//!
//! Answers are `{"body": [...], "ok": true, "retrieve_after_id": "<last id>", "status": 200}`
//! with `retrieve_after_id` absent on the last page; pages of 100 (the maximum; the default
//! is 10) follow `retrieve_after`, oldest first. A 429 is waited out as long as
//! `x-ratelimit-reset` asks (up to 10 s, 3 times), else reported as "ELEMENT asks to wait". The key
//! goes in the `auth` query parameter like on the sockets; reqwest errors are shown
//! without their URL so it never leaks.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use jiff::Timestamp;

use super::socket::{base, scrub};
use super::ElementError;
use crate::event::NamedItem;
use crate::settings::ElementScope;

/// Page size: the API's maximum.
pub const PAGE_LIMIT: u32 = 100;
/// A guard against a server that pages forever.
const MAX_PAGES: usize = 1000;

/// All devices of the mandate (as far as the key may see), with names for display.
pub async fn devices(base_url: &str, api_key: &str) -> Result<Vec<NamedItem>, ElementError> {
    list(base_url, api_key, &["devices"], "the device list").await
}

/// All tags.
pub async fn tags(base_url: &str, api_key: &str) -> Result<Vec<NamedItem>, ElementError> {
    list(base_url, api_key, &["tags"], "the tag list").await
}

/// The devices of one tag.
pub async fn tag_devices(
    base_url: &str,
    api_key: &str,
    tag_id: &str,
) -> Result<Vec<NamedItem>, ElementError> {
    list(
        base_url,
        api_key,
        &["tags", tag_id, "devices"],
        &format!("tag {tag_id}"),
    )
    .await
}

fn endpoint(base_url: &str, segments: &[&str]) -> Result<Url, ElementError> {
    let mut url = base(base_url)?;
    let scheme = match url.scheme() {
        "wss" | "https" => "https",
        _ => "http",
    };
    url.set_scheme(scheme)
        .map_err(|()| ElementError::InvalidUrl(base_url.to_string()))?;
    url.set_query(None);
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| ElementError::InvalidUrl(base_url.to_string()))?;
        segs.pop_if_empty().extend(["api", "v1"]).extend(segments);
    }
    Ok(url)
}

fn client() -> Result<reqwest::Client, ElementError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| ElementError::Protocol(e.without_url().to_string()))
}

/// A 429 asking to wait up to this long is waited out here; a longer one is reported
/// ("ELEMENT asks to wait 40 s") so the picker can say so.
const WAIT_AT_MOST: Duration = Duration::from_secs(10);
/// 429s waited out for one request before giving up: the key's budget is shared with
/// everyone using it.
const MAX_WAITS: usize = 3;

/// GET with the key and `query`; 429 honoured with `x-ratelimit-reset`. The answer's JSON
/// and the server's clock (`Date`) if it sent one.
async fn get_json(
    client: &reqwest::Client,
    url: &Url,
    api_key: &str,
    query: &[(&str, String)],
    what: &str,
) -> Result<(Value, Option<Timestamp>), ElementError> {
    let mut waits = 0;
    loop {
        let mut page_url = url.clone();
        {
            let mut q = page_url.query_pairs_mut();
            q.append_pair("auth", api_key);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        let resp = client
            .get(page_url)
            .send()
            .await
            .map_err(|e| from_reqwest(e, url, api_key))?;
        let status = resp.status().as_u16();
        if status == 429 {
            let wait = rate_limit_wait(resp.headers());
            if wait > WAIT_AT_MOST || waits >= MAX_WAITS {
                return Err(ElementError::RateLimited(wait.as_secs_f64().ceil() as u64));
            }
            waits += 1;
            tracing::info!(
                what,
                wait_ms = wait.as_millis() as u64,
                "ELEMENT asks to wait (rate limit)"
            );
            tokio::time::sleep(wait).await;
            continue;
        }
        let date = super::socket::server_date(resp.headers());
        match status {
            200..=299 => {}
            401 => return Err(ElementError::KeyRejected),
            403 => return Err(ElementError::Forbidden(what.to_string())),
            404 => return Err(ElementError::NotFound(what.to_string())),
            s @ 400..=499 if s != 408 => {
                let body = resp.bytes().await.unwrap_or_default();
                let words = scrub(&super::socket::server_words(&body), api_key);
                return Err(ElementError::Refused(s, words));
            }
            s => return Err(ElementError::Http(s)),
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| from_reqwest(e, url, api_key))?;
        return Ok((v, date));
    }
}

/// How long a 429 asks to wait: `x-ratelimit-reset` in milliseconds (the vendor's rate
/// limiting page), else `retry-after` in seconds, else one second.
fn rate_limit_wait(h: &reqwest::header::HeaderMap) -> Duration {
    let num = |name: &str| -> Option<f64> {
        h.get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = num("x-ratelimit-reset") {
        return Duration::from_millis(ms.min(3_600_000.0) as u64);
    }
    if let Some(s) = num("retry-after") {
        return Duration::from_secs_f64(s.min(3600.0));
    }
    Duration::from_secs(1)
}

async fn list(
    base_url: &str,
    api_key: &str,
    segments: &[&str],
    what: &str,
) -> Result<Vec<NamedItem>, ElementError> {
    let url = endpoint(base_url, segments)?;
    let client = client()?;
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        // Oldest first: an item added while we page lands on a later page instead of
        // shifting the pages we already have (one client reports a paging bug without
        // an explicit direction).
        let mut query = vec![
            ("limit", PAGE_LIMIT.to_string()),
            ("sort", "inserted_at".to_string()),
            ("sort_direction", "asc".to_string()),
        ];
        if let Some(a) = &after {
            query.push(("retrieve_after", a.clone()));
        }
        let (page, _) = get_json(&client, &url, api_key, &query, what).await?;
        let Some(body) = page.get("body").and_then(Value::as_array) else {
            return Err(ElementError::Protocol(
                "the answer has no list in \"body\"".into(),
            ));
        };
        items.extend(body.iter().filter_map(named));
        // `retrieve_after_id` is absent on the last page (and on an empty one).
        let next = match page.get("retrieve_after_id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        // No next id, an empty page or the same id again: the listing is complete.
        if next.is_none() || body.is_empty() || next == after {
            return Ok(items);
        }
        after = next;
    }
    Err(ElementError::Protocol(format!(
        "{what} did not end after {MAX_PAGES} pages"
    )))
}

/// The server's clock, for where a first "catch up N hours" starts: the `Date` of a REST
/// answer (for a device or tag, its readings newest first, limit 1), else the newest
/// reading's `inserted_at`.
pub async fn server_clock(
    base_url: &str,
    api_key: &str,
    scope: &ElementScope,
) -> Result<Timestamp, ElementError> {
    let (segments, what): (Vec<&str>, String) = match scope {
        ElementScope::Device(id) => (vec!["devices", id, "readings"], format!("device {id}")),
        ElementScope::Tag(id) => (vec!["tags", id, "readings"], format!("tag {id}")),
        // No documented readings listing for these: any answer carries the clock.
        ElementScope::Stream(_) | ElementScope::Mandate => {
            (vec!["devices"], "the device list".to_string())
        }
    };
    let url = endpoint(base_url, &segments)?;
    let query = [
        ("limit", "1".to_string()),
        ("sort", "inserted_at".to_string()),
        ("sort_direction", "desc".to_string()),
    ];
    let (v, date) = get_json(&client()?, &url, api_key, &query, &what).await?;
    let newest = v
        .get("body")
        .and_then(Value::as_array)
        .and_then(|b| b.first())
        .and_then(|r| r.get("inserted_at"))
        .and_then(Value::as_str)
        .and_then(super::mapping::parse_time);
    date.or(newest).ok_or_else(|| {
        ElementError::Protocol("the server told no time (no Date, no reading)".into())
    })
}

fn named(v: &Value) -> Option<NamedItem> {
    let id = match v.get("id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| id.clone());
    Some(NamedItem { id, name })
}

fn from_reqwest(e: reqwest::Error, url: &Url, api_key: &str) -> ElementError {
    let host = url.host_str().unwrap_or("?").to_string();
    if e.is_timeout() {
        ElementError::Timeout(20)
    } else if e.is_connect() {
        ElementError::Unreachable(host)
    } else if e.is_decode() {
        ElementError::Protocol("the answer is not the expected JSON".into())
    } else {
        ElementError::Protocol(scrub(&e.without_url().to_string(), api_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_built_and_encoded() {
        assert_eq!(
            endpoint("https://h.element-iot.com", &["devices"])
                .unwrap()
                .as_str(),
            "https://h.element-iot.com/api/v1/devices"
        );
        assert_eq!(
            endpoint("wss://h/x/", &["tags", "a/b", "devices"])
                .unwrap()
                .as_str(),
            "https://h/x/api/v1/tags/a%2Fb/devices"
        );
    }

    #[test]
    fn names_fall_back_to_ids() {
        let n = named(&serde_json::json!({"id": 5, "name": ""})).unwrap();
        assert_eq!((n.id.as_str(), n.name.as_str()), ("5", "5"));
        assert!(named(&serde_json::json!({"name": "x"})).is_none());
    }
}
