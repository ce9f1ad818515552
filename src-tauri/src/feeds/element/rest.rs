//! REST discovery for the settings pickers: devices, tags, and the devices of a tag.
//!
//! Answers are `{"ok": true, "status": 200, "body": [...], "retrieve_after_id": ...}`;
//! pages of at most 100 follow `retrieve_after` until the server gives no next id. The key
//! goes in the `auth` query parameter like on the sockets; reqwest errors are shown
//! without their URL so it never leaks.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::socket::{base, scrub};
use super::ElementError;
use crate::event::NamedItem;

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

async fn list(
    base_url: &str,
    api_key: &str,
    segments: &[&str],
    what: &str,
) -> Result<Vec<NamedItem>, ElementError> {
    let url = endpoint(base_url, segments)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| ElementError::Protocol(e.without_url().to_string()))?;
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut page_url = url.clone();
        {
            let mut q = page_url.query_pairs_mut();
            q.append_pair("auth", api_key)
                .append_pair("limit", &PAGE_LIMIT.to_string());
            if let Some(a) = &after {
                q.append_pair("retrieve_after", a);
            }
        }
        let resp = client
            .get(page_url)
            .send()
            .await
            .map_err(|e| from_reqwest(e, &url, api_key))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 => return Err(ElementError::KeyRejected),
            403 => return Err(ElementError::Forbidden(what.to_string())),
            404 => return Err(ElementError::NotFound(what.to_string())),
            s => return Err(ElementError::Http(s)),
        }
        let page: Value = resp
            .json()
            .await
            .map_err(|e| from_reqwest(e, &url, api_key))?;
        let Some(body) = page.get("body").and_then(Value::as_array) else {
            return Err(ElementError::Protocol(
                "the answer has no list in \"body\"".into(),
            ));
        };
        items.extend(body.iter().filter_map(named));
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
