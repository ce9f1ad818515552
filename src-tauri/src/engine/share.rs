//! Issue 26: what this PC shares with the team, written to the history's outbox inside the
//! transaction that stores it (so before the Saveris ACK). The engine knows nothing of MQTT:
//! it writes rows (kind, topic tail, body); the team link signs and publishes them.
//!
//! Shared: events taken from a Saveris queue (ELEMENT readings reach every PC anyway), and
//! alarm state changes (raised, acknowledged, cleared) with a retained state per alarm.
//! Nothing that arrived through the team is shared again.

use std::collections::HashSet;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::history::{self, HistoryError};
use super::store::{Active, Effect};
use super::Engine;
use crate::event::{Delivery, Source, TEAM_SUBSCRIPTION_PREFIX};

/// The retained-state topic's tail of an alarm identity: no sensor name or upstream id in
/// topics.
pub fn identity_hash(identity: &str) -> String {
    let d = Sha256::digest(identity.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// An outbox row to write with an acknowledgement.
pub struct NewOutbox {
    pub kind: &'static str,
    pub tail: String,
    pub retain: bool,
    pub body: Option<String>,
}

impl Engine {
    fn team_pc(&self) -> Option<String> {
        self.settings.team.enabled.then(|| self.settings.team.pc())
    }

    /// The Saveris login of an account (so other PCs map the alarm to their own account
    /// with the same login: one identity on every PC).
    fn saveris_user(&self, account: &str) -> Option<&str> {
        self.settings
            .saveris
            .iter()
            .find(|a| a.id == account)
            .map(|a| a.username.as_str())
    }

    /// Alarm change body: identity, change, what the alarm is, who.
    pub(super) fn alarm_body(
        &self,
        a: &Active,
        change: &str,
        at_ms: i64,
        who: Option<(&str, Option<&str>)>,
    ) -> Value {
        let r = &a.row;
        json!({
            "identity": a.key,
            "saveris_user": (r.source == Source::Saveris).then(|| self.saveris_user(&r.account)).flatten(),
            "change": change,
            "source": r.source,
            "severity": r.severity,
            "sensor": r.sensor,
            "name": r.name,
            "condition": r.condition,
            "value": r.value,
            "unit": r.unit,
            "raised_ms": r.raised_ms,
            "at_ms": at_ms,
            "user": who.map(|w| w.0),
            "comment": who.and_then(|w| w.1),
        })
    }

    /// Rows of an alarm change: the change itself and the retained state (emptied when it
    /// cleared).
    pub(super) fn alarm_rows(
        &self,
        a: &Active,
        change: &str,
        at_ms: i64,
        who: Option<(&str, Option<&str>)>,
    ) -> Vec<NewOutbox> {
        let Some(pc) = self.team_pc() else {
            return Vec::new();
        };
        let body = self.alarm_body(a, change, at_ms, who).to_string();
        let state = (change != "cleared").then(|| body.clone());
        vec![
            NewOutbox {
                kind: "alarm",
                tail: pc,
                retain: false,
                body: Some(body),
            },
            NewOutbox {
                kind: "state",
                tail: identity_hash(&a.key),
                retain: true,
                body: state,
            },
        ]
    }

    /// The one hook in `store`: inside the batch's transaction, after its events were
    /// applied. `new_events`: (batch index, event id) of events stored now; `from_team`:
    /// indices into `effects` caused by events that came through the team.
    pub(super) fn share(
        &self,
        w: &mut history::Writer<'_>,
        batch: &[Delivery],
        new_events: &[(usize, i64)],
        effects: &[Effect],
        from_team: &HashSet<usize>,
        now: i64,
    ) -> Result<(), HistoryError> {
        let Some(pc) = self.team_pc() else {
            return Ok(());
        };
        for (i, _) in new_events {
            let e = &batch[*i].event;
            if e.source != Source::Saveris || e.subscription.starts_with(TEAM_SUBSCRIPTION_PREFIX) {
                continue;
            }
            let body = json!({"event": e, "saveris_user": self.saveris_user(&e.account)});
            w.outbox_push("event", &pc, false, Some(&body.to_string()), now)?;
        }
        for (i, eff) in effects.iter().enumerate() {
            if from_team.contains(&i) {
                continue;
            }
            let rows = match eff {
                Effect::Raised { key, .. } => match self.active.get(key) {
                    Some(a) => self.alarm_rows(a, "raised", now, None),
                    None => continue,
                },
                Effect::Cleared(a) => self.alarm_rows(a, "cleared", now, None),
                Effect::SeverityChanged { .. } => continue,
            };
            for r in rows {
                w.outbox_push(r.kind, &r.tail, r.retain, r.body.as_deref(), now)?;
            }
        }
        Ok(())
    }
}
