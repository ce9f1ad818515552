//! Feed health and the tray's text: what each feed last reported, when the engine last
//! heard from it, a popup for a feed silent too long, and the one-line [`Status`].

use super::model::{Status, TrayState};
use super::{wording, Decision, Engine, Output};
use crate::event::{Delivery, FeedState, FeedStatus, Source};
use crate::notify::{Popup, Urgency};

pub(super) struct FeedWatch {
    pub(super) status: FeedStatus,
    /// Since when the feed is not live (None while live or idle).
    pub(super) not_live_since_ms: Option<i64>,
    pub(super) silence_popup: bool,
}

impl Engine {
    /// Remembers the last message time per feed (`saveris:<account>`,
    /// `element:<account>:<subscription>`), once per feed and batch.
    pub(super) fn note_messages(&mut self, batch: &[Delivery]) {
        let mut last: Option<(Source, &str, &str, i64)> = None;
        for d in batch.iter().rev() {
            let e = &d.event;
            let key = (e.source, e.account.as_str(), e.subscription.as_str());
            if last.is_some_and(|(s, a, sub, _)| (s, a, sub) == key) {
                continue;
            }
            let at = e.received_at.as_millisecond();
            last = Some((key.0, key.1, key.2, at));
            let feed = match e.source {
                Source::Saveris => format!("saveris:{}", e.account),
                Source::Element => format!("element:{}:{}", e.account, e.subscription),
                Source::App => continue,
            };
            let slot = self.last_message_ms.entry(feed).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    pub(super) fn on_status(&mut self, s: FeedStatus) {
        let now = self.now_ms();
        let w = self
            .feeds
            .entry(s.feed.clone())
            .or_insert_with(|| FeedWatch {
                status: s.clone(),
                not_live_since_ms: None,
                silence_popup: false,
            });
        match s.state {
            FeedState::Live | FeedState::Idle => w.not_live_since_ms = None,
            _ => {
                if w.not_live_since_ms.is_none() {
                    w.not_live_since_ms = Some(now);
                }
            }
        }
        w.status = s;
        let back = w.not_live_since_ms.is_none() && std::mem::take(&mut w.silence_popup);
        if back {
            let tag = format!("feed:{}", w.status.feed);
            self.popups.close(tag.clone());
            self.decide(Decision::Closed { tag });
        }
        self.publish_status();
    }

    pub(super) fn check_feed_silence(&mut self, now: i64) {
        let limit = i64::try_from(
            self.settings
                .notifications
                .feed_silence_mins
                .saturating_mul(60_000),
        )
        .unwrap_or(i64::MAX);
        let mut due = Vec::new();
        for w in self.feeds.values_mut() {
            if let Some(since) = w.not_live_since_ms {
                if !w.silence_popup && now - since > limit {
                    w.silence_popup = true;
                    due.push((w.status.clone(), since));
                }
            }
        }
        for (status, since) in due {
            let (summary, body) = wording::feed_silence_text(&status, since, &self.locale, now);
            let popup = Popup {
                tag: format!("feed:{}", status.feed),
                summary,
                body,
                urgency: Urgency::Normal,
                alarm_id: None,
                actions: true,
            };
            self.show(popup, false);
        }
        if !self.feeds.is_empty() {
            self.publish_status();
        }
    }

    pub(super) fn compute_status(&self) -> Status {
        let unacked = self.active.values().filter(|a| !a.acked()).count() as u32;
        let problems: Vec<&FeedWatch> = self
            .feeds
            .values()
            .filter(|w| w.status.state.is_problem() || w.silence_popup)
            .collect();
        let paused = self.settings.notifications.paused || self.in_quiet_hours();
        let tray = if unacked > 0 {
            TrayState::Alarm
        } else if !problems.is_empty() || self.storage_error.is_some() {
            TrayState::Problem
        } else if paused {
            TrayState::Paused
        } else {
            TrayState::Ok
        };
        let mut parts = vec![match unacked {
            0 => "no active alarms".to_string(),
            1 => "1 active alarm".to_string(),
            n => format!("{n} active alarms"),
        }];
        let acked = self.active.len() as u32 - unacked;
        if acked > 0 {
            parts.push(format!("{acked} acknowledged"));
        }
        for w in &problems {
            parts.push(format!("{}: {}", w.status.label, w.status.state.describe()));
        }
        if self.storage_error.is_some() {
            parts.push("history cannot be written".into());
        }
        if self.settings.notifications.paused {
            parts.push("popups paused".into());
        } else if paused {
            parts.push("quiet hours".into());
        }
        Status {
            tray,
            summary: parts.join(" \u{b7} "),
            paused,
            active_alarms: unacked,
            feeds: self
                .feeds
                .values()
                .map(|w| {
                    let mut st = w.status.clone();
                    // What the engine saw, to the minute (the tooltip's resolution, and the
                    // status changes at most once a minute because of it).
                    let seen = self.last_message_ms.get(&w.status.feed).and_then(|ms| {
                        jiff::Timestamp::from_millisecond(ms - ms.rem_euclid(60_000)).ok()
                    });
                    if seen > st.last_message_at {
                        st.last_message_at = seen;
                    }
                    st
                })
                .collect(),
        }
    }

    /// Publishes the status when it changed.
    pub(super) fn publish_status(&self) {
        let Some(tx) = &self.status_tx else { return };
        let status = self.compute_status();
        let changed = tx.send_if_modified(|cur| {
            if *cur == status {
                false
            } else {
                *cur = status.clone();
                true
            }
        });
        if changed {
            self.emit(Output::Status { status });
        }
    }
}
