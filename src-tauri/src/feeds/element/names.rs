//! ELEMENT device and tag names for the history's `names` table (issue 20), from the same
//! REST API the pickers use: at start, once a day, and on an unknown device (at most once
//! per 10 minutes). A device's first tag is its place ("Warehouse freezer · Warehouse").

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use super::{rest, ElementError};
use crate::event::{NameEntry, NamesUpdate, Source};
use crate::feeds::FeedHandle;

/// Tags whose devices are listed (one request each): enough for a lab, bounded for a city.
const MAX_TAGS: usize = 50;

/// Starts the names task of one ELEMENT account.
pub fn spawn(
    account_id: String,
    base_url: String,
    api_key: String,
    names: mpsc::UnboundedSender<NamesUpdate>,
    wanted: mpsc::UnboundedReceiver<()>,
) -> FeedHandle {
    let (stop_tx, mut stop) = FeedHandle::channel();
    let task = tokio::spawn(async move {
        let refresh = || async {
            let result = fetch(&base_url, &api_key).await.map_err(|e| {
                tracing::warn!(account = %account_id, error = %e, "ELEMENT names could not be refreshed");
                format!("ELEMENT said: {e}")
            });
            let _ = names.send(NamesUpdate {
                source: Source::Element,
                account: account_id.clone(),
                at: Timestamp::now(),
                result,
            });
        };
        let work = async {
            refresh().await;
            crate::feeds::refresh::repeat(
                Duration::from_secs(86_400),
                Duration::from_secs(600),
                tokio::time::Instant::now(),
                wanted,
                refresh,
            )
            .await;
        };
        tokio::select! {
            _ = work => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    });
    FeedHandle::new(stop_tx, task, Vec::new())
}

async fn fetch(base_url: &str, api_key: &str) -> Result<Vec<NameEntry>, ElementError> {
    let devices = rest::devices(base_url, api_key).await?;
    let tags = rest::tags(base_url, api_key).await?;
    let mut place: HashMap<String, String> = HashMap::new();
    for t in tags.iter().take(MAX_TAGS) {
        // A tag that cannot be listed only costs its devices their place.
        if let Ok(ds) = rest::tag_devices(base_url, api_key, &t.id).await {
            for d in ds {
                place.entry(d.id).or_insert_with(|| t.name.clone());
            }
        }
    }
    let mut out: Vec<NameEntry> = devices
        .into_iter()
        .map(|d| NameEntry {
            kind: "device".into(),
            location: place.get(&d.id).cloned(),
            id: d.id,
            name: d.name,
            ..Default::default()
        })
        .collect();
    out.extend(tags.into_iter().map(|t| NameEntry {
        kind: "tag".into(),
        id: t.id,
        name: t.name,
        ..Default::default()
    }));
    Ok(out)
}
