//! The engine: dedupe, history, rules, decisions.
//!
//! One task owns all state. It takes every delivery available (up to [`BATCH`]), stores the
//! batch in ONE transaction (dedupe by `Event::key`, alarm raise/clear and severity steps,
//! rule alarms, cursors, last values), and only after the commit is on disk confirms each
//! delivery's ack — duplicates too, as they were stored before. On a storage error it
//! reports the problem at once, keeps the batch in memory unconfirmed and tries it again
//! with backoff (0.5 s doubling to 5 s) before taking anything new; stored, it is confirmed
//! as usual. After a minute of failures it rejects the acks (the feed then has the upstream
//! deliver them again) and goes on with the next batch. It never panics.
//!
//! Then it decides what the user sees: popups (through a [`Notifier`] on its own thread, so
//! a slow D-Bus never stalls storage), summaries of alarm storms, popups held back in quiet
//! hours or pause, repeats of unacknowledged alarms, and feeds that went silent.
//!
//! This file holds the public face ([`EngineHandle`], [`spawn`], [`Decision`], [`Output`])
//! and the run loop; the one `Engine` task's methods are spread by idea over `store`
//! (transactions and the alarm lifecycle), `popups` (popup policy), `health` (feed health
//! and the status) and `worker` (the popup thread).

pub mod audit;
mod escalation;
mod health;
pub mod history;
pub mod model;
pub mod names;
pub mod policy;
mod popups;
pub mod reduce;
pub mod ringing;
pub mod rules;
/// Issue 26: the team outbox rows.
pub mod share;
mod store;
pub mod wording;
mod worker;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::clock::{Clock, SystemClock};
use crate::event::{Delivery, Event, FeedStatus, Severity};
use crate::notify::{Notifier, Popup, PopupAction};
use crate::settings::Settings;

pub use health::POPUPS_FAILING;
pub use history::{History, HistoryError};
pub use popups::urgency;

use health::FeedWatch;
use model::{AlarmRow, Status};
use policy::Grouper;
use rules::{RuleOutcome, Rules};
use store::Active;
use wording::Locale;
use worker::Popups;

/// Most deliveries stored in one transaction.
pub const BATCH: usize = 512;
/// How often time-driven rules, repeats and feed silence are checked.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest wait for the notifier thread in `poke` and `shutdown`.
const NOTIFIER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often old history is pruned.
const PRUNE_EVERY_MS: i64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("there is no alarm {0}")]
    NoSuchAlarm(i64),
    #[error("the engine has stopped")]
    Stopped,
    /// The settings ask for a comment on critical alarms and none was given.
    #[error("a comment is required to acknowledge alarm {0}")]
    CommentRequired(i64),
    /// A snooze without a reason, or of a length not offered (issue 21).
    #[error("{0}")]
    InvalidSnooze(String),
}

/// What the engine decided, as `watch` prints it and the monitor maps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// A new alarm (upstream or rule) is active.
    AlarmRaised { alarm: AlarmRow },
    /// An active alarm cleared.
    AlarmCleared { alarm: AlarmRow },
    /// An active alarm's severity changed (`alarm.severity` is the new one, its last step
    /// says when). Worse pops again ("got worse: now Alarm"); milder is quiet.
    SeverityChanged { alarm: AlarmRow, from: Severity },
    /// `by`: the way (popup, window); `user`: the person (display name and OS user).
    Acknowledged {
        alarm_id: i64,
        by: String,
        user: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// A popup was handed to the notifier (`repeat`: an unacknowledged alarm shown again).
    Popup { popup: Popup, repeat: bool },
    /// Many alarms became one summary popup.
    Summary {
        popup: Popup,
        alarms: u32,
        sensors: u32,
    },
    /// A new alarm waits for the storm summary instead of popping now.
    Grouped { alarm_id: i64 },
    /// A critical alarm nobody acknowledged in time reached a webhook (issue 21).
    Escalated {
        alarm_id: i64,
        webhook: String,
        attempts: u32,
    },
    /// An attempt to send an escalation failed: tried again in `retry_in_ms`, or given up
    /// (`None`).
    EscalationFailed {
        alarm_id: i64,
        webhook: String,
        attempts: u32,
        message: String,
        retry_in_ms: Option<i64>,
    },
    /// A popup was not shown: "quiet hours", "paused" or "sensor muted".
    HeldBack { popup: Popup, reason: String },
    /// The popup with this tag was closed (alarm cleared or acknowledged, feed back).
    Closed { tag: String },
    /// A batch could not be stored: its deliveries were not confirmed.
    StorageFailed { message: String, events: usize },
    /// A sensor's popups are held back until `snooze.until_ms` (issue 21).
    Snoozed { snooze: model::Snooze },
    /// A snooze ended: its time was up, or (`early`) the user ended it.
    SnoozeEnded { sensor: String, early: bool },
}

/// What `watch` prints as JSON lines, and what the monitor maps to tray/UI pushes.
///
/// One object per line, told apart by `type`:
///
/// ```text
/// {"type":"event","id":12,"event":{"key":"…","source":"saveris","account":"a1","subscription":"alarms",
///   "kind":"alarm_raised","device":"…","sensor":"…","name":"…","quantity":"Temperature","value":9.5,
///   "unit":"°C","alarm_id":"…","condition":"Upper limit","severity":"alarm","measured_at":"2024-…Z",
///   "received_at":"2024-…Z","replayed":false,"cursor":null,"raw":"{…}"}}
/// {"type":"decision","decision":{"kind":"alarm_raised","alarm":{"id":3,"source":"saveris",…}}}
/// {"type":"decision","decision":{"kind":"popup","popup":{"tag":"alarm:3","summary":"…","body":"…",
///   "urgency":"critical","alarm_id":3,"actions":true},"repeat":false}}
/// {"type":"decision","decision":{"kind":"escalated","alarm_id":3,"webhook":"ntfy","attempts":1}}
/// {"type":"decision","decision":{"kind":"escalation_failed","alarm_id":3,"webhook":"ntfy","attempts":1,
///   "message":"the webhook answered HTTP 500","retry_in_ms":30000}}
/// {"type":"decision","decision":{"kind":"summary","popup":{…},"alarms":17,"sensors":5}}
/// {"type":"decision","decision":{"kind":"grouped","alarm_id":7}}
/// {"type":"decision","decision":{"kind":"held_back","popup":{…},"reason":"quiet hours"}}
/// {"type":"decision","decision":{"kind":"closed","tag":"alarm:3"}}
/// {"type":"decision","decision":{"kind":"severity_changed","alarm":{…,"severity":"alarm","steps":[…]},"from":"warning"}}
/// {"type":"decision","decision":{"kind":"alarm_cleared","alarm":{…,"cleared_ms":1714557600000}}}
/// {"type":"decision","decision":{"kind":"acknowledged","alarm_id":3,"by":"window","user":"Ana Ruiz (ana)",
///   "comment":"door left open, closed it"}}
/// {"type":"decision","decision":{"kind":"storage_failed","message":"…","events":12}}
/// {"type":"decision","decision":{"kind":"snoozed","snooze":{"sensor":"…","name":"Fridge 2","at_ms":…,
///   "until_ms":…,"reason":"defrosting","user":"Ana Ruiz (ana)"}}}
/// {"type":"decision","decision":{"kind":"snooze_ended","sensor":"…","early":false}}
/// {"type":"status","status":{"tray":"alarm","summary":"1 active alarm","paused":false,
///   "active_alarms":1,"feeds":[{"feed":"saveris:a1","label":"…","state":"live",…}]}}
/// ```
#[derive(Serialize, Clone, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// Newly stored (not duplicates).
    Event {
        id: i64,
        event: Event,
        /// "13:20 site time (Europe/Berlin)" where the site's clock differs (issue 20).
        #[serde(skip_serializing_if = "Option::is_none")]
        site_time: Option<String>,
    },
    Decision {
        decision: Decision,
    },
    /// The tray state or a feed status changed.
    Status {
        status: Status,
    },
}

enum Command {
    Settings(Box<Settings>),
    Acknowledge {
        alarm_id: i64,
        by: String,
        comment: Option<String>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Snooze {
        sensor: String,
        length: model::SnoozeFor,
        reason: String,
        reply: oneshot::Sender<Result<model::Snooze, EngineError>>,
    },
    EndSnooze {
        sensor: String,
        reply: oneshot::Sender<Result<bool, EngineError>>,
    },
    /// Issue 26: acknowledged on another PC.
    AcknowledgeRemote {
        identity: String,
        by: String,
        user: String,
        comment: Option<String>,
        reply: oneshot::Sender<Result<bool, EngineError>>,
    },
    /// Issue 26: what team sharing says (`None`: off).
    Team(Option<model::TeamView>),
    Poke(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
    /// A names refresh of one account (issue 20).
    Names(Box<crate::event::NamesUpdate>),
}

/// The running engine.
#[derive(Clone)]
pub struct EngineHandle {
    cmd: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    out: broadcast::Sender<Output>,
    history: History,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// Accounts whose events name sensors the names do not know (issue 20), for the root
    /// to pass to the account's names refresh; taken once.
    names_wanted: Arc<Mutex<Option<NamesWanted>>>,
}

/// (source, account) of events naming an unknown sensor (issue 20).
type NamesWanted = mpsc::UnboundedReceiver<(crate::event::Source, String)>;

impl EngineHandle {
    /// Stores an account's names refresh (or its failure) and shows them from now on.
    pub fn update_names(&self, update: crate::event::NamesUpdate) {
        let _ = self.cmd.send(Command::Names(Box::new(update)));
    }

    /// The stream of (source, account) whose events named an unknown sensor, at most one
    /// per account every [`names::UNKNOWN_GAP_MS`]. `None` after the first call.
    pub fn take_names_wanted(&self) -> Option<NamesWanted> {
        self.names_wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Rules, notifications (paused, quiet hours, grouping), sensors (notify on/off, names).
    pub fn update_settings(&self, settings: Settings) {
        let _ = self.cmd.send(Command::Settings(Box::new(settings)));
    }

    /// From a popup or the UI: stops repeats, closes the popup, recounts the tray.
    pub async fn acknowledge(&self, alarm_id: i64, by: &str) -> Result<(), EngineError> {
        self.acknowledge_with(alarm_id, by, None).await
    }

    /// [`EngineHandle::acknowledge`] with a comment. `CommentRequired` when the settings ask
    /// for one on a critical alarm and it is missing or blank.
    pub async fn acknowledge_with(
        &self,
        alarm_id: i64,
        by: &str,
        comment: Option<String>,
    ) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Acknowledge {
                alarm_id,
                by: by.to_string(),
                comment,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Holds the popups of `sensor` (its alarms' sensor or device identity) back for
    /// `length`, with a reason (required): "mute this sensor for 1 h / 4 h / until tomorrow".
    pub async fn snooze(
        &self,
        sensor: &str,
        length: model::SnoozeFor,
        reason: &str,
    ) -> Result<model::Snooze, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Snooze {
                sensor: sensor.to_string(),
                length,
                reason: reason.to_string(),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Ends a sensor's snooze now (its active alarms pop). `false`: it was not snoozed.
    pub async fn end_snooze(&self, sensor: &str) -> Result<bool, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::EndSnooze {
                sensor: sensor.to_string(),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Issue 26: an acknowledgement made on another PC, by the alarm's identity; `user` is
    /// "NAME on PC". `Ok(false)`: the alarm is not active here.
    pub async fn acknowledge_remote(
        &self,
        identity: &str,
        by: &str,
        user: &str,
        comment: Option<String>,
    ) -> Result<bool, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::AcknowledgeRemote {
                identity: identity.to_string(),
                by: by.to_string(),
                user: user.to_string(),
                comment,
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Issue 26: the PCs watching and the feeds other PCs hold for this one (`None`: team
    /// sharing is off). The status changes only when it differs.
    pub fn set_team(&self, view: Option<model::TeamView>) {
        let _ = self.cmd.send(Command::Team(view));
    }

    /// Tray state, summary line, feeds.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Output> {
        self.out.subscribe()
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Processes every delivery already queued, runs the time checks once (with the clock's
    /// current time) and waits until the notifier has done what was asked of it. For tests
    /// and for `watch --for` before it exits.
    pub async fn poke(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Poke(tx)).is_ok() {
            // The reply comes from the popup thread: a hung D-Bus must not hang the caller.
            let _ = tokio::time::timeout(NOTIFIER_WAIT, rx).await;
        }
    }

    /// Drains queued deliveries, flushes history and stops. Waits a few seconds at most for
    /// popups still being shown (history is committed before that).
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(NOTIFIER_WAIT, rx).await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Routes popup clicks: Acknowledge goes to the engine (acknowledged by "popup"), Open to
/// `open` (the root opens the window, on the alarm when there is one). When the alarm needs
/// a comment, Acknowledge opens the window on it instead: the History page opened on an
/// unacknowledged alarm that needs a comment shows the comment dialog.
pub fn route_popup_actions(
    engine: EngineHandle,
    mut actions: mpsc::UnboundedReceiver<PopupAction>,
    open: impl Fn(Option<i64>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(a) = actions.recv().await {
            match a {
                PopupAction::Acknowledge(id) => match engine.acknowledge(id, "popup").await {
                    Ok(()) => {}
                    Err(EngineError::CommentRequired(_)) => open(Some(id)),
                    Err(e) => tracing::warn!("acknowledge from a popup: {e}"),
                },
                PopupAction::Open(id) => open(id),
            }
        }
    })
}

/// What the audit trail keeps of a decision: the alarm's life, popups and acknowledgements.
fn audit_of(d: &Decision) -> Option<(&'static str, serde_json::Value)> {
    let alarm = |a: &AlarmRow| {
        serde_json::json!({
            "alarm_id": a.id, "source": a.source, "account": a.account, "sensor": a.sensor,
            "name": a.name, "condition": a.condition, "severity": a.severity, "value": a.value,
            "unit": a.unit, "limit": a.limit,
        })
    };
    Some(match d {
        Decision::AlarmRaised { alarm: a } => ("alarm_raised", alarm(a)),
        Decision::AlarmCleared { alarm: a } => ("alarm_cleared", alarm(a)),
        Decision::SeverityChanged { alarm: a, from } => {
            let mut v = alarm(a);
            v["from"] = serde_json::json!(from);
            let worse = a.severity > *from;
            (if worse { "alarm_worse" } else { "alarm_milder" }, v)
        }
        Decision::Acknowledged {
            alarm_id,
            by,
            user,
            comment,
        } => (
            "acknowledged",
            serde_json::json!({"alarm_id": alarm_id, "by": by, "user": user, "comment": comment}),
        ),
        Decision::Popup { popup, repeat } => (
            if *repeat {
                "popup_repeated"
            } else {
                "popup_shown"
            },
            serde_json::json!({"alarm_id": popup.alarm_id, "tag": popup.tag, "summary": popup.summary, "repeat": repeat}),
        ),
        Decision::Summary {
            popup,
            alarms,
            sensors,
        } => (
            "popup_shown",
            serde_json::json!({"tag": popup.tag, "summary": popup.summary, "alarms": alarms, "sensors": sensors}),
        ),
        Decision::Snoozed { snooze } => {
            ("snoozed", serde_json::to_value(snooze).unwrap_or_default())
        }
        Decision::SnoozeEnded { sensor, early } => (
            "snooze_ended",
            serde_json::json!({"sensor": sensor, "early": early}),
        ),
        Decision::Escalated {
            alarm_id,
            webhook,
            attempts,
        } => (
            "escalated",
            serde_json::json!({"alarm_id": alarm_id, "webhook": webhook, "attempts": attempts}),
        ),
        Decision::EscalationFailed {
            alarm_id,
            webhook,
            attempts,
            message,
            retry_in_ms,
        } => (
            "escalation_failed",
            serde_json::json!({"alarm_id": alarm_id, "webhook": webhook, "attempts": attempts,
                "message": message, "gave_up": retry_in_ms.is_none()}),
        ),
        Decision::HeldBack { popup, reason } => (
            "popup_held_back",
            serde_json::json!({"alarm_id": popup.alarm_id, "tag": popup.tag, "reason": reason}),
        ),
        _ => return None,
    })
}

/// Sleeps for `wait`, or forever when there is nothing to wait for.
async fn sleep_or_never(wait: Option<std::time::Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Starts the engine with the system clock.
pub fn spawn(
    settings: Settings,
    history: History,
    notifier: Arc<dyn Notifier>,
    deliveries: mpsc::Receiver<Delivery>,
    statuses: mpsc::UnboundedReceiver<FeedStatus>,
) -> EngineHandle {
    let clock = Arc::new(SystemClock);
    let locale = Locale::for_setting(&settings.language, clock.tz());
    // The tray and the popups' buttons follow the same language (issue 25).
    crate::text::set_current(locale.lang);
    spawn_with(
        settings, history, notifier, deliveries, statuses, clock, locale,
    )
}

/// [`spawn`] with an injected clock and locale (tests, benchmarks).
pub fn spawn_with(
    settings: Settings,
    history: History,
    notifier: Arc<dyn Notifier>,
    deliveries: mpsc::Receiver<Delivery>,
    statuses: mpsc::UnboundedReceiver<FeedStatus>,
    clock: Arc<dyn Clock>,
    locale: Locale,
) -> EngineHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (wanted_tx, wanted_rx) = mpsc::unbounded_channel();
    let (out, _) = broadcast::channel(4096);
    let mut engine = Engine::new(
        settings,
        history.clone(),
        notifier,
        clock,
        locale,
        out.clone(),
    );
    engine.names_wanted = Some(wanted_tx);
    engine.audit(
        "app_started",
        serde_json::json!({"version": env!("CARGO_PKG_VERSION")}),
    );
    engine.load_snoozes();
    engine.start();
    let (status_tx, status_rx) = watch::channel(engine.compute_status());
    engine.status_tx = Some(status_tx);
    let task = tokio::spawn(engine.run(deliveries, statuses, cmd_rx));
    EngineHandle {
        cmd: cmd_tx,
        status: status_rx,
        out,
        history,
        task: Arc::new(Mutex::new(Some(task))),
        names_wanted: Arc::new(Mutex::new(Some(wanted_rx))),
    }
}

/// The engine task's state: one owner, no locks. Its methods are spread by idea over this
/// file's submodules.
struct Engine {
    settings: Settings,
    history: History,
    clock: Arc<dyn Clock>,
    locale: Locale,
    rules: Rules,
    grouper: Grouper,
    active: HashMap<String, Active>,
    ids: HashMap<i64, String>,
    feeds: BTreeMap<String, FeedWatch>,
    /// Feed id (as in `FeedStatus::feed`) → when the engine last received an event of it.
    last_message_ms: HashMap<String, i64>,
    popups: Popups,
    out: broadcast::Sender<Output>,
    status_tx: Option<watch::Sender<Status>>,
    storage_error: Option<String>,
    /// The "not watched: keyring" popup was shown (once per start, issue 24).
    keyring_popup: bool,
    keyring_popup_open: bool,
    /// Critical alarms sent to webhooks (issue 21).
    escalator: escalation::Escalator,
    /// Asked whether popups are failing (kept until the notification service is back).
    popups_failing: Arc<dyn Notifier>,
    /// A batch that failed to store, tried again with backoff before anything new.
    retry: Option<store::Retry>,
    last_prune_ms: i64,
    /// Alarms told to the user (shown, held back, grouped) since the last write of that fact.
    notified: Vec<i64>,
    /// Alarms whose popup quiet hours or the pause held back.
    held_back: BTreeSet<i64>,
    /// Snoozed sensors (issue 21), by sensor identity.
    snoozes: BTreeMap<String, model::Snooze>,
    scratch: Vec<RuleOutcome>,
    /// Vendor names, places and limits (issue 20).
    names: names::Names,
    names_wanted: Option<mpsc::UnboundedSender<(crate::event::Source, String)>>,
    /// When each account last asked for a names refresh because of an unknown sensor.
    names_asked_ms: HashMap<(crate::event::Source, String), i64>,
    /// Issue 26: team sharing's view (`None`: off).
    team: Option<model::TeamView>,
}

impl Engine {
    fn new(
        settings: Settings,
        history: History,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        locale: Locale,
        out: broadcast::Sender<Output>,
    ) -> Self {
        let n = &settings.notifications;
        let history_for_names = history.clone();
        // Alarms escalated before a restart are not sent again.
        let escalator = escalation::Escalator::new(history.escalated_active().unwrap_or_default());
        Engine {
            rules: Rules::new(&settings),
            grouper: Grouper::new(n.group_window_secs, n.group_max),
            escalator,
            settings,
            history,
            clock,
            locale,
            active: HashMap::new(),
            ids: HashMap::new(),
            feeds: BTreeMap::new(),
            last_message_ms: HashMap::new(),
            popups_failing: notifier.clone(),
            team: None,
            popups: Popups::start(notifier),
            out,
            status_tx: None,
            storage_error: None,
            keyring_popup: false,
            keyring_popup_open: false,
            retry: None,
            last_prune_ms: 0,
            notified: Vec::new(),
            held_back: BTreeSet::new(),
            snoozes: BTreeMap::new(),
            scratch: Vec::new(),
            names: names::Names::load(&history_for_names),
            names_wanted: None,
            names_asked_ms: HashMap::new(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    async fn run(
        mut self,
        mut deliveries: mpsc::Receiver<Delivery>,
        mut statuses: mpsc::UnboundedReceiver<FeedStatus>,
        mut cmds: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut batch: Vec<Delivery> = Vec::with_capacity(BATCH);
        let mut deliveries_open = true;
        let mut statuses_open = true;
        let mut attempts = self.escalator.take_results();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        loop {
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(Command::Settings(s)) => self.apply_settings(*s),
                    Some(Command::Acknowledge { alarm_id, by, comment, reply }) => {
                        let r = self.acknowledge(alarm_id, &by, comment);
                        let _ = reply.send(r);
                    }
                    Some(Command::Names(u)) => self.on_names(*u),
                    Some(Command::Snooze { sensor, length, reason, reply }) => {
                        let _ = reply.send(self.snooze(&sensor, length, &reason));
                    }
                    Some(Command::EndSnooze { sensor, reply }) => {
                        let _ = reply.send(self.end_snooze(&sensor));
                    }
                    Some(Command::AcknowledgeRemote { identity, by, user, comment, reply }) => {
                        let r = self.acknowledge_remote(&identity, &by, user, comment);
                        let _ = reply.send(r);
                    }
                    Some(Command::Team(view)) => {
                        if self.team != view {
                            self.team = view;
                            self.publish_status();
                        }
                    }
                    Some(Command::Poke(done)) => {
                        self.drain(&mut deliveries, &mut batch);
                        while let Ok(s) = statuses.try_recv() {
                            self.on_status(s);
                        }
                        self.on_tick();
                        self.popups.flush(done);
                    }
                    Some(Command::Shutdown(done)) => {
                        self.drain(&mut deliveries, &mut batch);
                        self.drop_held();
                        self.write_notified(self.now_ms());
                        self.audit("app_stopped", serde_json::json!({"version": env!("CARGO_PKG_VERSION")}));
                        if let Ok(a) = self.history.audit() {
                            a.flush();
                        }
                        self.popups.flush(done);
                        return;
                    }
                    // Every handle is gone: nobody can ask for anything any more.
                    None => {
                        self.drain(&mut deliveries, &mut batch);
                        self.drop_held();
                        return;
                    }
                },
                _ = sleep_or_never(self.retry_wait()) => self.retry_held(false),
                n = deliveries.recv_many(&mut batch, BATCH), if deliveries_open && self.retry.is_none() => {
                    if n == 0 {
                        deliveries_open = false;
                    } else {
                        self.process(&mut batch);
                    }
                }
                s = statuses.recv(), if statuses_open => match s {
                    Some(s) => self.on_status(s),
                    None => statuses_open = false,
                },
                Some(a) = attempts.recv() => self.on_attempt(a),
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    /// Stores everything queued. A held batch is tried first (now); while it still fails
    /// the rest stays queued.
    fn drain(&mut self, deliveries: &mut mpsc::Receiver<Delivery>, batch: &mut Vec<Delivery>) {
        self.retry_held(true);
        loop {
            if self.retry.is_some() {
                return;
            }
            while batch.len() < BATCH {
                match deliveries.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.process(batch);
        }
    }

    fn emit(&self, o: Output) {
        // No receiver is normal (the monitor without a window).
        let _ = self.out.send(o);
    }

    fn decide(&self, d: Decision) {
        tracing::debug!(?d, "decision");
        if let Some((kind, detail)) = audit_of(&d) {
            self.audit(kind, detail);
        }
        self.emit(Output::Decision { decision: d });
    }

    /// Adds a record to the audit trail (written by its own thread).
    fn audit(&self, kind: &str, detail: serde_json::Value) {
        if let Ok(a) = self.history.audit() {
            a.record(self.now_ms(), kind, detail);
        }
    }

    /// Audit records of a settings change: pause, rules and accounts (ids and names only;
    /// secrets are never in the settings).
    fn audit_settings(&self, old: &Settings, new: &Settings) {
        if old.notifications.paused != new.notifications.paused {
            let kind = if new.notifications.paused {
                "notifications_paused"
            } else {
                "notifications_resumed"
            };
            self.audit(kind, serde_json::json!({}));
        }
        let rules = |s: &Settings| -> BTreeMap<String, String> {
            s.rules
                .iter()
                .map(|r| (r.id.clone(), serde_json::to_string(r).unwrap_or_default()))
                .collect()
        };
        let (before, after) = (rules(old), rules(new));
        if before != after {
            let name = |s: &Settings, id: &str| {
                s.rules
                    .iter()
                    .find(|r| r.id == id)
                    .map(|r| format!("{} ({id})", r.name))
                    .unwrap_or_else(|| id.to_string())
            };
            let added: Vec<_> = after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|k| name(new, k))
                .collect();
            let removed: Vec<_> = before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(|k| name(old, k))
                .collect();
            let changed: Vec<_> = after
                .iter()
                .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
                .map(|(k, _)| name(new, k))
                .collect();
            self.audit(
                "rules_changed",
                serde_json::json!({"added": added, "removed": removed, "changed": changed}),
            );
        }
        let accounts = |s: &Settings| -> BTreeMap<String, String> {
            s.saveris
                .iter()
                .map(|a| (a.id.clone(), serde_json::to_string(a).unwrap_or_default()))
                .chain(
                    s.element
                        .iter()
                        .map(|a| (a.id.clone(), serde_json::to_string(a).unwrap_or_default())),
                )
                .collect()
        };
        let (before, after) = (accounts(old), accounts(new));
        if before != after {
            let ids = |f: &dyn Fn(&String) -> bool, m: &BTreeMap<String, String>| -> Vec<String> {
                m.keys().filter(|k| f(k)).cloned().collect()
            };
            let added = ids(&|k| !before.contains_key(k), &after);
            let removed = ids(&|k| !after.contains_key(k), &before);
            let changed = ids(
                &|k| before.get(k).is_some_and(|b| Some(b) != after.get(k)),
                &after,
            );
            self.audit(
                "accounts_changed",
                serde_json::json!({"added": added, "removed": removed, "changed": changed}),
            );
        }
    }

    fn apply_settings(&mut self, s: Settings) {
        self.audit_settings(&self.settings.clone(), &s);
        let dropped = self.rules.update(&s);
        let n = &s.notifications;
        self.grouper.configure(n.group_window_secs, n.group_max);
        if s.language != self.settings.language {
            // Issue 25: new popups speak the newly chosen language at once.
            self.locale = Locale::for_setting(&s.language, self.locale.tz.clone());
            crate::text::set_current(self.locale.lang);
        }
        self.settings = s;
        if !dropped.is_empty() {
            // Alarms of rules that changed or went away end now.
            let now = self.now_ms();
            let mut effects = Vec::new();
            let history = self.history.clone();
            let r = history.write(|w| {
                for key in &dropped {
                    self.clear_alarm(w, key, now, &mut effects)?;
                }
                Ok(())
            });
            match r {
                Ok(()) => self.after_commit(effects, now),
                Err(e) => {
                    tracing::error!("could not clear alarms of changed rules: {e}");
                    let _ = self.reload_active();
                }
            }
        }
        self.publish_status();
    }

    fn on_tick(&mut self) {
        let now = self.now_ms();
        self.flush_group(now);
        self.release_held(now);

        // Time-driven rules: minimum durations and silent sensors.
        let mut outcomes = std::mem::take(&mut self.scratch);
        self.rules.on_tick(now, &mut outcomes);
        if !outcomes.is_empty() {
            let mut effects = Vec::new();
            let history = self.history.clone();
            let r = history
                .write(|w| self.apply_outcomes(w, &mut outcomes, None, false, now, &mut effects));
            match r {
                Ok(()) => self.after_commit(effects, now),
                Err(e) => {
                    tracing::error!("could not store rule alarms: {e}");
                    self.storage_error = Some(e.to_string());
                    let _ = self.reload_active();
                    self.publish_status();
                }
            }
        }
        outcomes.clear();
        self.scratch = outcomes;

        self.expire_snoozes(now);
        self.repeat_unacknowledged(now);
        self.escalate(now);
        self.check_feed_silence(now);
        self.write_notified(now);

        if now - self.last_prune_ms >= PRUNE_EVERY_MS {
            self.last_prune_ms = now;
            if let Ok(a) = self.history.audit() {
                // Its own retention, apart from the history's.
                a.prune_before(
                    now - i64::from(self.settings.audit_retention_days.max(30)) * 86_400_000,
                );
            }
            let history = self.history.clone();
            let cutoff = now - i64::from(self.settings.retention_days.max(1)) * 86_400_000;
            // Chunked deletes in the background; the writer lock is held per chunk only.
            tokio::task::spawn_blocking(move || match history.prune_before(cutoff) {
                Ok(n) if n > 0 => tracing::info!("pruned {n} old history rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!("could not prune history: {e}"),
            });
        }
        // Quiet hours begin and end with time alone.
        self.publish_status();
    }
}

#[cfg(test)]
mod tests;
