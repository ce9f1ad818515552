//! Issue 26: the root's wiring of team sharing. `team/` and the engine never name each
//! other; this file (used by `runtime`, like the feeds' wiring) connects them:
//! - the history's outbox → the link's publisher ([`HistoryOutbox`]);
//! - verified events from other PCs → the engine's delivery channel, acknowledged to the
//!   broker only once stored;
//! - acknowledgements from other PCs → the engine, by the alarm's identity;
//! - this PC's feed states → its presence message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::engine::model::TeamView;
use crate::engine::{EngineHandle, History};
use crate::event::{Delivery, Event, TEAM_SUBSCRIPTION_PREFIX};
use crate::secrets::{SecretKey, SecretStore};
use crate::settings::Settings;
use crate::team::{self, Incoming, Kind, Outbox, OutboxRow, TeamConfig, TeamLink, TeamStatus};

/// The history's outbox table as the link reads it.
pub struct HistoryOutbox(pub History);

impl Outbox for HistoryOutbox {
    fn pending(&self, after: i64, limit: usize) -> Result<Vec<OutboxRow>, String> {
        let rows = self
            .0
            .outbox_pending(after, limit)
            .map_err(|e| e.to_string())?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(OutboxRow {
                    id: r.id,
                    kind: Kind::parse(&r.kind)?,
                    tail: r.tail,
                    retain: r.retain,
                    body: match r.body {
                        Some(b) => Some(serde_json::from_str(&b).ok()?),
                        None => None,
                    },
                    at_ms: r.at_ms,
                })
            })
            .collect())
    }

    fn done(&self, id: i64) -> Result<(), String> {
        self.0.outbox_done(id).map_err(|e| e.to_string())
    }
}

/// The running team link and its helpers.
pub struct TeamRun {
    link: TeamLink,
    engine: EngineHandle,
    cfg: TeamConfig,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TeamRun {
    pub fn status(&self) -> watch::Receiver<TeamStatus> {
        self.link.status()
    }

    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.engine.set_team(None);
        self.link.stop(&self.cfg).await;
    }
}

/// The link's configuration from the settings and the keyring. `Err`: why it cannot start.
pub async fn config(settings: &Settings, secrets: &SecretStore) -> Result<TeamConfig, String> {
    let t = &settings.team;
    let site = t.site.trim().to_string();
    let (store, s1, s2) = (secrets.clone(), site.clone(), site.clone());
    let origin = crate::secret_binding::team_password_origin(&t.broker_url);
    let (password, stored_for, key) = tokio::task::spawn_blocking(move || {
        let k = SecretKey::TeamPassword(s1);
        (
            store.get(&k),
            store.binding(&k),
            store.get(&SecretKey::TeamSiteKey(s2)),
        )
    })
    .await
    .map_err(|e| e.to_string())?;
    let password = password.map_err(|e| e.to_string())?;
    // The broker password goes only to the broker it was stored for (issue 26, like the
    // feeds' secrets): after the URL changed to another host it must be typed again.
    let pw_key = SecretKey::TeamPassword(site.clone());
    let stored_for = stored_for.map_err(|e| e.to_string())?;
    if password.is_some() {
        crate::secret_binding::check(&pw_key, stored_for.as_deref(), origin.as_deref(), None)
            .map_err(|m| m.to_string())?;
        if let (None, Some(origin)) = (stored_for, origin) {
            // Unbound (stored before the binding existed): bound to its first broker.
            let store = secrets.clone();
            let _ = tokio::task::spawn_blocking(move || store.bind(&pw_key, &origin)).await;
        }
    }
    let key = key.map_err(|e| e.to_string())?.unwrap_or_default();
    let cfg = TeamConfig {
        broker_url: t.broker_url.trim().to_string(),
        site,
        pc: t.pc(),
        user: t.user.trim().to_string(),
        password,
        site_key: key.into_bytes(),
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Starts team sharing when it is on. `Ok(None)`: off.
pub async fn start(
    settings: &Settings,
    secrets: &SecretStore,
    engine: EngineHandle,
    deliveries: mpsc::Sender<Delivery>,
) -> Result<Option<TeamRun>, String> {
    if !settings.team.enabled {
        return Ok(None);
    }
    let cfg = config(settings, secrets).await?;
    let (in_tx, in_rx) = mpsc::channel(1024);
    let outbox: Arc<dyn Outbox> = Arc::new(HistoryOutbox(engine.history().clone()));
    let link = team::link::spawn(cfg.clone(), outbox, in_tx).map_err(|e| e.to_string())?;
    let poke = link.poke();
    let accounts: Vec<(String, String)> = settings
        .saveris
        .iter()
        .map(|a| (a.username.to_lowercase(), a.id.clone()))
        .collect();
    let mut tasks = vec![tokio::spawn(receive(
        in_rx,
        engine.clone(),
        deliveries,
        accounts,
    ))];
    // New outbox rows: the engine stores them with what it stores; publish them soon.
    let mut out = engine.subscribe();
    tasks.push(tokio::spawn(async move {
        loop {
            match out.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    poke.notify_one()
                }
                Err(_) => return,
            }
        }
    }));
    // This PC's feeds for its presence message, and the team's view for the engine's status
    // ("3 PCs watching", a feed another PC holds live: "watching through the team").
    let feeds_engine = engine.clone();
    let feeds_link = link.feeds_sender();
    let link_status = link.status();
    let me = cfg.pc.clone();
    let logins: Vec<(String, String)> = settings
        .saveris
        .iter()
        .map(|a| {
            (
                format!("saveris:{}", a.id),
                a.username.trim().to_lowercase(),
            )
        })
        .collect();
    tasks.push(tokio::spawn(async move {
        loop {
            let status = feeds_engine.status();
            let feeds: Vec<(String, String)> = status
                .feeds
                .iter()
                .map(|f| {
                    let state = serde_json::to_value(&f.state)
                        .ok()
                        .and_then(|v| v.get("state").and_then(Value::as_str).map(String::from))
                        .unwrap_or_default();
                    (f.feed.clone(), state)
                })
                .collect();
            let presence = team::PresenceFeeds {
                feeds,
                logins: logins.clone(),
            };
            feeds_link.send_if_modified(|f| {
                let changed = *f != presence;
                *f = presence;
                changed
            });
            let view = team_view(&link_status.borrow(), &me, &logins);
            feeds_engine.set_team(Some(view));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }));
    let run = TeamRun {
        link,
        engine,
        cfg,
        tasks,
    };
    Ok(Some(run))
}

/// The engine's view of the team: the PCs online (this one included; just this one while
/// the broker is unreachable, as nothing else is known then), and this PC's Saveris feeds
/// whose login another online PC holds live (`logins`: local feed id → login).
fn team_view(status: &TeamStatus, me: &str, logins: &[(String, String)]) -> TeamView {
    let live = status.state == "live";
    let online: Vec<&team::Peer> = status.peers.iter().filter(|p| live && p.online).collect();
    let pcs_watching = 1 + online.iter().filter(|p| p.pc != me).count() as u32;
    let mut covered = BTreeMap::new();
    let mut sole = BTreeSet::new();
    for (feed, login) in logins {
        let holder = online.iter().find(|p| {
            p.pc != me
                && p.logins.iter().any(|(their_feed, their_login)| {
                    their_login == login
                        && p.feeds
                            .iter()
                            .any(|(f, state)| f == their_feed && state == "live")
                })
        });
        match holder {
            Some(p) => {
                covered.insert(feed.clone(), p.pc.clone());
            }
            // Known only while the link is live: without the broker nothing is known of
            // the others.
            None if live => {
                sole.insert(feed.clone());
            }
            None => {}
        }
    }
    TeamView {
        pcs_watching,
        covered,
        sole,
    }
}

/// `saveris:<origin account>:…` → `saveris:<local account>:…` when this PC has an account
/// with the same Saveris login: one identity on every PC.
fn local_identity(
    key: &str,
    user: Option<&str>,
    accounts: &[(String, String)],
) -> (String, Option<String>) {
    let Some(rest) = key.strip_prefix("saveris:") else {
        return (key.to_string(), None);
    };
    let Some(user) = user.map(str::to_lowercase) else {
        return (key.to_string(), None);
    };
    let Some((_, local)) = accounts.iter().find(|(u, _)| *u == user) else {
        return (key.to_string(), None);
    };
    match rest.split_once(':') {
        Some((_, tail)) => (format!("saveris:{local}:{tail}"), Some(local.clone())),
        None => (key.to_string(), None),
    }
}

async fn receive(
    mut rx: mpsc::Receiver<Incoming>,
    engine: EngineHandle,
    deliveries: mpsc::Sender<Delivery>,
    accounts: Vec<(String, String)>,
) {
    while let Some(m) = rx.recv().await {
        let env = m.envelope;
        let user = env.body.get("saveris_user").and_then(Value::as_str);
        match env.kind {
            Kind::Event => {
                let Some(mut e) = env
                    .body
                    .get("event")
                    .cloned()
                    .and_then(|v| serde_json::from_value::<Event>(v).ok())
                else {
                    // Signed but unreadable (a newer version): nothing to store.
                    m.ack.confirm();
                    continue;
                };
                let (key, local) = local_identity(&e.key, user, &accounts);
                e.key = key;
                if let Some(a) = local {
                    e.account = a;
                }
                e.subscription = format!("{TEAM_SUBSCRIPTION_PREFIX}{}", env.pc);
                e.cursor = None;
                if deliveries
                    .send(Delivery {
                        event: e,
                        ack: m.ack,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Kind::Alarm | Kind::State => {
                let change = env.body.get("change").and_then(Value::as_str);
                let identity = env.body.get("identity").and_then(Value::as_str);
                if let (Some("acked"), Some(identity)) = (change, identity) {
                    let (identity, _) = local_identity(identity, user, &accounts);
                    let who = env
                        .body
                        .get("user")
                        .and_then(Value::as_str)
                        .unwrap_or("someone");
                    let comment = env
                        .body
                        .get("comment")
                        .and_then(Value::as_str)
                        .map(String::from);
                    let by = format!("team:{}", env.pc);
                    let user = format!("{who} on {}", env.pc);
                    match engine
                        .acknowledge_remote(&identity, &by, &user, comment)
                        .await
                    {
                        Ok(_) => m.ack.confirm(),
                        Err(e) => {
                            tracing::warn!(error = %e, "a team acknowledgement could not be applied")
                        }
                    }
                } else {
                    m.ack.confirm();
                }
            }
            Kind::Presence => m.ack.confirm(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saveris_identity_maps_to_the_local_account_with_the_same_login() {
        let accounts = vec![("lab@example.org".to_string(), "local1".to_string())];
        assert_eq!(
            local_identity(
                "saveris:acc9:alarm:u1:Alarm:t",
                Some("Lab@Example.org"),
                &accounts
            ),
            (
                "saveris:local1:alarm:u1:Alarm:t".to_string(),
                Some("local1".to_string())
            )
        );
        assert_eq!(
            local_identity("saveris:acc9:u1", Some("other"), &accounts).0,
            "saveris:acc9:u1"
        );
        assert_eq!(local_identity("rule:r1:s", None, &accounts).0, "rule:r1:s");
    }

    fn peer(pc: &str, online: bool, feed: &str, state: &str, login: &str) -> team::Peer {
        team::Peer {
            pc: pc.into(),
            online,
            feeds: vec![(feed.into(), state.into())],
            logins: vec![(feed.into(), login.into())],
            at_ms: 0,
        }
    }

    #[test]
    fn a_feed_another_pc_holds_live_with_the_same_login_is_watched_through_the_team() {
        let logins = vec![("saveris:mine".to_string(), "lab@x".to_string())];
        let mut status = TeamStatus {
            state: "live".into(),
            peers: vec![
                peer("pc-a", true, "saveris:mine", "waiting", "lab@x"),
                peer("pc-b", true, "saveris:theirs", "live", "lab@x"),
                peer("pc-c", false, "saveris:c", "live", "lab@x"),
                peer("pc-d", true, "saveris:d", "live", "other@x"),
            ],
            ..TeamStatus::default()
        };
        let v = team_view(&status, "pc-a", &logins);
        assert_eq!(v.pcs_watching, 3);
        assert_eq!(
            v.covered.get("saveris:mine").map(String::as_str),
            Some("pc-b")
        );
        assert!(v.sole.is_empty());
        // pc-b's feed not live (e.g. refused too): nobody else holds it; this PC alone does.
        status.peers[1].feeds[0].1 = "through_team".into();
        let v = team_view(&status, "pc-a", &logins);
        assert!(v.covered.is_empty());
        assert!(v.sole.contains("saveris:mine"));
        // The broker is unreachable: nothing is known of the others.
        status.peers[1].feeds[0].1 = "live".into();
        status.state = "connecting".into();
        let v = team_view(&status, "pc-a", &logins);
        assert_eq!((v.pcs_watching, v.covered.len(), v.sole.len()), (1, 0, 0));
    }
}
