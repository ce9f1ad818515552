//! The engine: dedupe, history, rules, decisions.
//!
//! One task owns all state. It takes every delivery available (up to [`BATCH`]), stores the
//! batch in ONE transaction (dedupe by `Event::key`, alarm raise/clear, rule alarms, cursors,
//! last values), and only after the commit confirms each delivery's ack — duplicates too, as
//! they were stored before. On a storage error it rejects the acks (the feed keeps the
//! messages upstream) and reports the problem as a status; it never panics.
//!
//! Then it decides what the user sees: popups (through a [`Notifier`] on its own thread, so
//! a slow D-Bus never stalls storage), summaries of alarm storms, popups held back in quiet
//! hours or pause, repeats of unacknowledged alarms, and feeds that went silent.

pub mod clock;
pub mod history;
pub mod model;
pub mod policy;
pub mod rules;
pub mod wording;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::event::{Delivery, Event, EventKind, FeedState, FeedStatus, Severity, Source};
use crate::notify::{Notifier, Popup, PopupAction, Urgency};
use crate::settings::Settings;

pub use clock::{Clock, ManualClock, SystemClock};
pub use history::{History, HistoryError};

use history::NewAlarm;
use model::{AlarmRow, LatestValue, Status, TrayState};
use policy::{Admit, Grouper};
use rules::{RuleOutcome, Rules};
use wording::Locale;

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
}

/// What the engine decided, as `watch` prints it and the monitor maps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// A new alarm (upstream or rule) is active.
    AlarmRaised {
        alarm: AlarmRow,
    },
    /// An active alarm cleared.
    AlarmCleared {
        alarm: AlarmRow,
    },
    Acknowledged {
        alarm_id: i64,
        by: String,
    },
    /// A popup was handed to the notifier (`repeat`: an unacknowledged alarm shown again).
    Popup {
        popup: Popup,
        repeat: bool,
    },
    /// Many alarms became one summary popup.
    Summary {
        popup: Popup,
        alarms: u32,
        sensors: u32,
    },
    /// A new alarm waits for the storm summary instead of popping now.
    Grouped {
        alarm_id: i64,
    },
    /// A popup was not shown: "quiet hours", "paused" or "sensor muted".
    HeldBack {
        popup: Popup,
        reason: String,
    },
    /// The popup with this tag was closed (alarm cleared or acknowledged, feed back).
    Closed {
        tag: String,
    },
    /// A batch could not be stored: its deliveries were not confirmed.
    StorageFailed {
        message: String,
        events: usize,
    },
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
/// {"type":"decision","decision":{"kind":"summary","popup":{…},"alarms":17,"sensors":5}}
/// {"type":"decision","decision":{"kind":"grouped","alarm_id":7}}
/// {"type":"decision","decision":{"kind":"held_back","popup":{…},"reason":"quiet hours"}}
/// {"type":"decision","decision":{"kind":"closed","tag":"alarm:3"}}
/// {"type":"decision","decision":{"kind":"alarm_cleared","alarm":{…,"cleared_ms":1714557600000}}}
/// {"type":"decision","decision":{"kind":"acknowledged","alarm_id":3,"by":"popup"}}
/// {"type":"decision","decision":{"kind":"storage_failed","message":"…","events":12}}
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
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Poke(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// The running engine.
#[derive(Clone)]
pub struct EngineHandle {
    cmd: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
    out: broadcast::Sender<Output>,
    history: History,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl EngineHandle {
    /// Rules, notifications (paused, quiet hours, grouping), sensors (notify on/off, names).
    pub fn update_settings(&self, settings: Settings) {
        let _ = self.cmd.send(Command::Settings(Box::new(settings)));
    }

    /// From a popup or the UI: stops repeats, closes the popup, recounts the tray.
    pub async fn acknowledge(&self, alarm_id: i64, by: &str) -> Result<(), EngineError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Acknowledge {
                alarm_id,
                by: by.to_string(),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
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
/// `open` (the root opens the window, on the alarm when there is one).
pub fn route_popup_actions(
    engine: EngineHandle,
    mut actions: mpsc::UnboundedReceiver<PopupAction>,
    open: impl Fn(Option<i64>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(a) = actions.recv().await {
            match a {
                PopupAction::Acknowledge(id) => {
                    if let Err(e) = engine.acknowledge(id, "popup").await {
                        tracing::warn!("acknowledge from a popup: {e}");
                    }
                }
                PopupAction::Open(id) => open(id),
            }
        }
    })
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
    let locale = Locale::from_env(clock.tz());
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
    let (out, _) = broadcast::channel(4096);
    let mut engine = Engine::new(
        settings,
        history.clone(),
        notifier,
        clock,
        locale,
        out.clone(),
    );
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
    }
}

/// An alarm that is active (not cleared), as the engine keeps it in memory.
#[derive(Debug, Clone)]
struct Active {
    row: AlarmRow,
    key: String,
    rule: bool,
    /// Popup on screen (or handed to the notifier) under `alarm:<id>`.
    shown: bool,
    /// Last time a popup was shown or held back (for repeats).
    last_considered_ms: Option<i64>,
}

impl Active {
    fn tag(&self) -> String {
        format!("alarm:{}", self.row.id)
    }
    fn acked(&self) -> bool {
        self.row.acknowledged_ms.is_some()
    }
}

/// What happened to alarms inside a transaction; acted on after the commit.
enum Effect {
    Raised { key: String, replayed: bool },
    Cleared(Box<Active>),
}

struct FeedWatch {
    status: FeedStatus,
    /// Since when the feed is not live (None while live or idle).
    not_live_since_ms: Option<i64>,
    silence_popup: bool,
}

enum Job {
    Show(Popup),
    Close(String),
    Flush(oneshot::Sender<()>),
}

/// Runs the notifier on its own thread, in order.
fn popup_worker(notifier: Arc<dyn Notifier>) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("popups".into())
        .spawn(move || {
            let mut failing = false;
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Show(p) => match notifier.show(&p) {
                        Ok(()) => failing = false,
                        Err(e) => {
                            // Said once per outage, not once per popup.
                            if !failing {
                                tracing::warn!("{e}");
                            }
                            failing = true;
                        }
                    },
                    Job::Close(tag) => notifier.close(&tag),
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("no thread for popups: {e}");
    }
    tx
}

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
    popups: std::sync::mpsc::Sender<Job>,
    out: broadcast::Sender<Output>,
    status_tx: Option<watch::Sender<Status>>,
    storage_error: Option<String>,
    last_prune_ms: i64,
    /// Alarms told to the user (shown, held back, grouped) since the last write of that fact.
    notified: Vec<i64>,
    /// Alarms whose popup quiet hours or the pause held back.
    held_back: std::collections::BTreeSet<i64>,
    scratch: Vec<RuleOutcome>,
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
        Engine {
            rules: Rules::new(&settings),
            grouper: Grouper::new(n.group_window_secs, n.group_max),
            settings,
            history,
            clock,
            locale,
            active: HashMap::new(),
            ids: HashMap::new(),
            feeds: BTreeMap::new(),
            last_message_ms: HashMap::new(),
            popups: popup_worker(notifier),
            out,
            status_tx: None,
            storage_error: None,
            last_prune_ms: 0,
            notified: Vec::new(),
            held_back: std::collections::BTreeSet::new(),
            scratch: Vec::new(),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// Reloads active alarms, restores rule states and pops what was never told (a crash
    /// between commit and popup).
    fn start(&mut self) {
        if let Some(n) = self.history.notice() {
            tracing::warn!("{n}");
        }
        let now = self.now_ms();
        let untold = self.reload_active();
        if let Ok(latest) = self.history.latest_values() {
            for lv in latest {
                let mut e = Event::new(lv.source, "", "", EventKind::Measurement, String::new());
                e.sensor = Some(lv.sensor);
                e.name = lv.name;
                e.value = Some(lv.value);
                e.unit = lv.unit;
                e.quantity = lv.quantity;
                e.measured_at = jiff::Timestamp::from_millisecond(lv.at_ms).ok();
                self.rules.seed_seen(&e);
            }
        }
        for key in untold {
            self.consider_new(&key, false, now);
        }
        self.write_notified(now);
    }

    /// Loads active alarms from history; returns the keys of those never told to the user.
    fn reload_active(&mut self) -> Vec<String> {
        let now = self.now_ms();
        self.active.clear();
        self.ids.clear();
        let rows = match self.history.active_alarms() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("could not load active alarms: {e}");
                self.storage_error = Some(e.to_string());
                return Vec::new();
            }
        };
        let mut untold = Vec::new();
        for a in rows {
            if let (Some(rule), Some(sensor)) = (&a.rule_id, &a.row.sensor) {
                self.rules.restore_raised(rule, sensor, now);
            }
            if a.notified_ms.is_none() && a.row.acknowledged_ms.is_none() {
                untold.push(a.alarm_key.clone());
            }
            self.ids.insert(a.row.id, a.alarm_key.clone());
            self.active.insert(
                a.alarm_key.clone(),
                Active {
                    row: a.row,
                    key: a.alarm_key,
                    rule: a.rule_id.is_some(),
                    shown: false,
                    last_considered_ms: a.notified_ms,
                },
            );
        }
        untold
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
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_status();
        loop {
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(Command::Settings(s)) => self.apply_settings(*s),
                    Some(Command::Acknowledge { alarm_id, by, reply }) => {
                        let r = self.acknowledge(alarm_id, &by);
                        let _ = reply.send(r);
                    }
                    Some(Command::Poke(done)) => {
                        self.drain(&mut deliveries, &mut batch);
                        while let Ok(s) = statuses.try_recv() {
                            self.on_status(s);
                        }
                        self.on_tick();
                        self.flush_popups(done);
                    }
                    Some(Command::Shutdown(done)) => {
                        self.drain(&mut deliveries, &mut batch);
                        self.write_notified(self.now_ms());
                        self.flush_popups(done);
                        return;
                    }
                    // Every handle is gone: nobody can ask for anything any more.
                    None => {
                        self.drain(&mut deliveries, &mut batch);
                        return;
                    }
                },
                n = deliveries.recv_many(&mut batch, BATCH), if deliveries_open => {
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
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn drain(&mut self, deliveries: &mut mpsc::Receiver<Delivery>, batch: &mut Vec<Delivery>) {
        loop {
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

    fn flush_popups(&self, done: oneshot::Sender<()>) {
        if let Err(std::sync::mpsc::SendError(Job::Flush(done))) =
            self.popups.send(Job::Flush(done))
        {
            let _ = done.send(());
        }
    }

    fn emit(&self, o: Output) {
        // No receiver is normal (the monitor without a window).
        let _ = self.out.send(o);
    }

    fn decide(&self, d: Decision) {
        tracing::debug!(?d, "decision");
        self.emit(Output::Decision { decision: d });
    }

    /// Stores a batch in one transaction, then confirms, then decides.
    fn process(&mut self, batch: &mut Vec<Delivery>) {
        let now = self.now_ms();
        let history = self.history.clone();
        let mut new_events: Vec<(usize, i64)> = Vec::new();
        let mut effects: Vec<Effect> = Vec::new();
        let result = history.write(|w| {
            let mut last: HashMap<(&str, &str), LatestValue> = HashMap::new();
            let mut cursors: HashMap<(Source, &str, &str), &str> = HashMap::new();
            for (i, d) in batch.iter().enumerate() {
                let e = &d.event;
                if let Some(c) = &e.cursor {
                    cursors.insert(
                        (e.source, e.account.as_str(), e.subscription.as_str()),
                        c.as_str(),
                    );
                }
                let Some(id) = w.insert_event(e)? else {
                    continue;
                };
                new_events.push((i, id));
                collect_last_values(e, &mut last);
                self.apply_event(w, e, id, now, &mut effects)?;
            }
            for v in last.values() {
                w.set_last_value(v)?;
            }
            for ((source, account, sub), cursor) in cursors {
                w.set_cursor(source, account, sub, cursor, now)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                let recovered = self.storage_error.take().is_some();
                self.note_messages(batch);
                if self.out.receiver_count() > 0 {
                    for (i, id) in &new_events {
                        self.emit(Output::Event {
                            id: *id,
                            event: batch[*i].event.clone(),
                        });
                    }
                }
                for d in batch.drain(..) {
                    d.ack.confirm();
                }
                self.after_commit(effects, now);
                if recovered {
                    tracing::info!("history is writable again");
                    self.publish_status();
                }
            }
            Err(e) => {
                let n = batch.len();
                for d in batch.drain(..) {
                    d.ack.reject();
                }
                let message = format!("events could not be stored, they stay upstream: {e}");
                if self.storage_error.is_none() {
                    tracing::error!("{message}");
                }
                self.storage_error = Some(message.clone());
                // The transaction rolled back: memory must match the database again.
                let _ = self.reload_active();
                self.decide(Decision::StorageFailed { message, events: n });
                self.publish_status();
            }
        }
    }

    /// Remembers the last message time per feed (`saveris:<account>`,
    /// `element:<account>:<subscription>`), once per feed and batch.
    fn note_messages(&mut self, batch: &[Delivery]) {
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

    /// Alarm logic of one newly stored event, inside the batch's transaction.
    fn apply_event(
        &mut self,
        w: &mut history::Writer<'_>,
        e: &Event,
        event_id: i64,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        match e.kind {
            EventKind::AlarmRaised | EventKind::SystemAlarm => {
                let key = upstream_alarm_key(e);
                if let Some(a) = self.active.get_mut(&key) {
                    // Raised again while active: the same alarm, a newer value.
                    w.update_alarm_value(a.row.id, e.value)?;
                    if e.value.is_some() {
                        a.row.value = e.value;
                    }
                    return Ok(());
                }
                let severity = if e.severity == Severity::Info {
                    Severity::Alarm
                } else {
                    e.severity
                };
                let alarm = NewAlarm {
                    alarm_key: key.clone(),
                    source: e.source,
                    account: e.account.clone(),
                    device: e.device.clone(),
                    sensor: e.sensor.clone(),
                    name: e.name.clone(),
                    condition: e.condition.clone(),
                    severity,
                    value: e.value,
                    unit: e.unit.clone(),
                    limit: None,
                    rule_id: None,
                    event_id: Some(event_id),
                    raised_ms: e.measured_at.unwrap_or(e.received_at).as_millisecond(),
                };
                self.insert_alarm(w, alarm, false, e.replayed, effects)?;
            }
            EventKind::AlarmCleared => {
                let key = upstream_alarm_key(e);
                if self.active.contains_key(&key) {
                    self.clear_alarm(w, &key, now, effects)?;
                } else {
                    // A clear without a raise (raised before the app ran): history only.
                    tracing::debug!(key, "clear without an active alarm");
                }
            }
            EventKind::Measurement | EventKind::Reading => {
                let mut outcomes = std::mem::take(&mut self.scratch);
                self.rules.on_event(e, &mut outcomes);
                let r =
                    self.apply_outcomes(w, &mut outcomes, Some(event_id), e.replayed, now, effects);
                outcomes.clear();
                self.scratch = outcomes;
                r?;
            }
            EventKind::Packet | EventKind::Unparsed => {}
        }
        Ok(())
    }

    fn apply_outcomes(
        &mut self,
        w: &mut history::Writer<'_>,
        outcomes: &mut Vec<RuleOutcome>,
        event_id: Option<i64>,
        replayed: bool,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        for o in outcomes.drain(..) {
            match o {
                RuleOutcome::Raise(a) => {
                    if self.active.contains_key(&a.alarm_key) {
                        continue;
                    }
                    let alarm = NewAlarm {
                        alarm_key: a.alarm_key,
                        source: a.source,
                        account: a.account,
                        device: a.device,
                        sensor: Some(a.sensor),
                        name: a.name,
                        condition: Some(a.rule_name),
                        severity: Severity::Alarm,
                        value: a.value,
                        unit: a.unit,
                        limit: Some(a.limit),
                        rule_id: Some(a.rule_id),
                        event_id,
                        raised_ms: if a.value.is_some() { a.at_ms } else { now },
                    };
                    self.insert_alarm(w, alarm, true, replayed, effects)?;
                }
                RuleOutcome::Clear {
                    alarm_key, value, ..
                } => {
                    if let Some(a) = self.active.get_mut(&alarm_key) {
                        a.row.value = value.or(a.row.value);
                    }
                    if self.active.contains_key(&alarm_key) {
                        self.clear_alarm(w, &alarm_key, now, effects)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn insert_alarm(
        &mut self,
        w: &mut history::Writer<'_>,
        a: NewAlarm,
        rule: bool,
        replayed: bool,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        let id = w.raise_alarm(&a)?;
        let row = AlarmRow {
            id,
            source: a.source,
            account: a.account,
            device: a.device,
            sensor: a.sensor,
            name: a.name,
            condition: a.condition,
            severity: a.severity,
            value: a.value,
            unit: a.unit,
            limit: a.limit,
            raised_ms: a.raised_ms,
            cleared_ms: None,
            acknowledged_ms: None,
            acknowledged_by: None,
        };
        self.ids.insert(id, a.alarm_key.clone());
        self.active.insert(
            a.alarm_key.clone(),
            Active {
                row,
                key: a.alarm_key.clone(),
                rule,
                shown: false,
                last_considered_ms: None,
            },
        );
        effects.push(Effect::Raised {
            key: a.alarm_key,
            replayed,
        });
        Ok(())
    }

    fn clear_alarm(
        &mut self,
        w: &mut history::Writer<'_>,
        key: &str,
        now: i64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), HistoryError> {
        let Some(mut a) = self.active.remove(key) else {
            return Ok(());
        };
        w.clear_alarm(a.row.id, now)?;
        self.ids.remove(&a.row.id);
        a.row.cleared_ms = Some(now);
        effects.push(Effect::Cleared(Box::new(a)));
        Ok(())
    }

    fn after_commit(&mut self, effects: Vec<Effect>, now: i64) {
        if effects.is_empty() {
            return;
        }
        for eff in effects {
            match eff {
                Effect::Raised { key, replayed } => {
                    if let Some(a) = self.active.get(&key) {
                        self.decide(Decision::AlarmRaised {
                            alarm: a.row.clone(),
                        });
                        self.consider_new(&key, replayed, now);
                    }
                }
                Effect::Cleared(a) => {
                    self.decide(Decision::AlarmCleared {
                        alarm: a.row.clone(),
                    });
                    if a.shown {
                        let tag = a.tag();
                        let _ = self.popups.send(Job::Close(tag.clone()));
                        self.decide(Decision::Closed { tag });
                    }
                }
            }
        }
        self.write_notified(now);
        self.publish_status();
    }

    fn write_notified(&mut self, now: i64) {
        if self.notified.is_empty() {
            return;
        }
        if let Err(e) = self.history.mark_notified(&self.notified, now) {
            tracing::warn!("could not record shown popups: {e}");
        }
        self.notified.clear();
    }

    fn display_name(&self, row: &AlarmRow) -> String {
        if let Some(p) = row
            .sensor
            .as_ref()
            .and_then(|s| self.settings.sensors.get(s))
        {
            if !p.name.trim().is_empty() {
                return p.name.clone();
            }
        }
        row.name
            .clone()
            .or_else(|| row.sensor.clone())
            .or_else(|| row.device.clone())
            .unwrap_or_else(|| "Unknown sensor".into())
    }

    fn popup_for(&self, a: &Active, now: i64) -> Popup {
        let display = self.display_name(&a.row);
        let (summary, body) = wording::alarm_text(&a.row, &display, a.rule, &self.locale, now);
        Popup {
            tag: a.tag(),
            summary,
            body,
            urgency: urgency(a.row.severity),
            alarm_id: Some(a.row.id),
            actions: true,
        }
    }

    fn sensor_muted(&self, row: &AlarmRow) -> bool {
        [&row.sensor, &row.device]
            .into_iter()
            .flatten()
            .any(|s| self.settings.sensors.get(s).is_some_and(|p| !p.notify))
    }

    /// A new alarm: pops now, waits for the storm summary, or is held back.
    fn consider_new(&mut self, key: &str, replayed: bool, now: i64) {
        self.flush_group(now);
        let Some(a) = self.active.get(key) else {
            return;
        };
        let id = a.row.id;
        let popup = self.popup_for(a, now);
        self.notified.push(id);
        if self.sensor_muted(&a.row) {
            self.mark_considered(key, now, false);
            self.decide(Decision::HeldBack {
                popup,
                reason: "sensor muted".into(),
            });
            return;
        }
        let sensor = a
            .row
            .sensor
            .clone()
            .or_else(|| a.row.device.clone())
            .unwrap_or_default();
        match self.grouper.admit(now, id, &sensor, replayed) {
            Admit::Now => {
                let shown = self.show(popup, false);
                self.mark_considered(key, now, shown);
            }
            Admit::Grouped => {
                self.mark_considered(key, now, false);
                self.decide(Decision::Grouped { alarm_id: id });
            }
        }
    }

    fn mark_considered(&mut self, key: &str, now: i64, shown: bool) {
        if let Some(a) = self.active.get_mut(key) {
            a.last_considered_ms = Some(now);
            a.shown |= shown;
        }
    }

    /// Why popups are held back right now, if they are.
    fn held_reason(&self, urgency: Urgency) -> Option<&'static str> {
        let n = &self.settings.notifications;
        let critical_passes = n.quiet_hours.allow_critical && urgency == Urgency::Critical;
        if n.paused && !critical_passes {
            return Some("paused");
        }
        if self.in_quiet_hours() && !critical_passes {
            return Some("quiet hours");
        }
        None
    }

    fn in_quiet_hours(&self) -> bool {
        let local = self.clock.now().to_zoned(self.locale.tz.clone()).time();
        policy::in_quiet_hours(&self.settings.notifications.quiet_hours, local)
    }

    /// Shows a popup unless pause or quiet hours hold it back. Returns whether it was shown.
    fn show(&mut self, popup: Popup, repeat: bool) -> bool {
        if let Some(reason) = self.held_reason(popup.urgency) {
            if let Some(id) = popup.alarm_id {
                self.held_back.insert(id);
            }
            self.decide(Decision::HeldBack {
                popup,
                reason: reason.into(),
            });
            return false;
        }
        let _ = self.popups.send(Job::Show(popup.clone()));
        self.decide(Decision::Popup { popup, repeat });
        true
    }

    /// Closes an ended grouping window: one summary for what it held (a single held alarm
    /// pops on its own).
    fn flush_group(&mut self, now: i64) {
        let Some(f) = self.grouper.flush(now) else {
            return;
        };
        let held: Vec<&Active> = f
            .held
            .iter()
            .filter_map(|id| self.ids.get(id))
            .filter_map(|k| self.active.get(k))
            .filter(|a| !a.acked())
            .collect();
        match held.as_slice() {
            [] => {}
            [one] => {
                let key = one.key.clone();
                let popup = self.popup_for(one, now);
                let shown = self.show(popup, false);
                self.mark_considered(&key, now, shown);
            }
            many => {
                let names: Vec<String> = many.iter().map(|a| self.display_name(&a.row)).collect();
                let ids: Vec<i64> = many.iter().map(|a| a.row.id).collect();
                let urgency = many
                    .iter()
                    .map(|a| urgency(a.row.severity))
                    .max()
                    .unwrap_or(Urgency::Normal);
                let all_held = f.total as usize == many.len();
                let (total, sensors) = if all_held {
                    let mut s: Vec<&str> = many
                        .iter()
                        .filter_map(|a| a.row.sensor.as_deref())
                        .collect();
                    s.sort_unstable();
                    s.dedup();
                    (many.len() as u32, s.len().max(1) as u32)
                } else {
                    (f.total, f.sensors)
                };
                let context = all_held.then_some("while disconnected");
                let (summary, body) = wording::summary_text(total, sensors, &names, context);
                let popup = Popup {
                    tag: "summary".into(),
                    summary,
                    body,
                    urgency,
                    alarm_id: None,
                    actions: true,
                };
                if let Some(reason) = self.held_reason(urgency) {
                    // Released with the others when quiet hours or the pause end.
                    self.held_back.extend(ids);
                    self.decide(Decision::HeldBack {
                        popup,
                        reason: reason.into(),
                    });
                } else {
                    let _ = self.popups.send(Job::Show(popup.clone()));
                    self.decide(Decision::Summary {
                        popup,
                        alarms: total,
                        sensors,
                    });
                }
            }
        }
    }

    /// When quiet hours or the pause end: what was held back and is still active and
    /// unacknowledged pops now (one summary when there are several).
    fn release_held(&mut self, now: i64) {
        if self.held_back.is_empty() || self.held_reason(Urgency::Low).is_some() {
            return;
        }
        let ids = std::mem::take(&mut self.held_back);
        let still: Vec<&Active> = ids
            .iter()
            .filter_map(|id| self.ids.get(id))
            .filter_map(|k| self.active.get(k))
            .filter(|a| !a.acked() && !a.shown)
            .collect();
        match still.as_slice() {
            [] => {}
            [one] => {
                let key = one.key.clone();
                let popup = self.popup_for(one, now);
                let shown = self.show(popup, false);
                self.mark_considered(&key, now, shown);
            }
            many => {
                let names: Vec<String> = many.iter().map(|a| self.display_name(&a.row)).collect();
                let mut sensors: Vec<&str> = many
                    .iter()
                    .filter_map(|a| a.row.sensor.as_deref().or(a.row.device.as_deref()))
                    .collect();
                sensors.sort_unstable();
                sensors.dedup();
                let urgency = many
                    .iter()
                    .map(|a| urgency(a.row.severity))
                    .max()
                    .unwrap_or(Urgency::Normal);
                let (total, sensors) = (many.len() as u32, sensors.len().max(1) as u32);
                let (summary, body) = wording::summary_text(
                    total,
                    sensors,
                    &names,
                    Some("while popups were held back"),
                );
                let popup = Popup {
                    tag: "summary".into(),
                    summary,
                    body,
                    urgency,
                    alarm_id: None,
                    actions: true,
                };
                let _ = self.popups.send(Job::Show(popup.clone()));
                self.decide(Decision::Summary {
                    popup,
                    alarms: total,
                    sensors,
                });
            }
        }
    }

    fn acknowledge(&mut self, alarm_id: i64, by: &str) -> Result<(), EngineError> {
        let now = self.now_ms();
        if !self.history.acknowledge(alarm_id, by, now)? {
            return Err(EngineError::NoSuchAlarm(alarm_id));
        }
        if let Some(a) = self.ids.get(&alarm_id).and_then(|k| self.active.get_mut(k)) {
            if a.row.acknowledged_ms.is_none() {
                a.row.acknowledged_ms = Some(now);
                a.row.acknowledged_by = Some(by.to_string());
            }
            if std::mem::take(&mut a.shown) {
                let tag = a.tag();
                let _ = self.popups.send(Job::Close(tag.clone()));
                self.decide(Decision::Closed { tag });
            }
        }
        self.decide(Decision::Acknowledged {
            alarm_id,
            by: by.to_string(),
        });
        self.publish_status();
        Ok(())
    }

    fn apply_settings(&mut self, s: Settings) {
        let dropped = self.rules.update(&s);
        let n = &s.notifications;
        self.grouper.configure(n.group_window_secs, n.group_max);
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

    fn on_status(&mut self, s: FeedStatus) {
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
            let _ = self.popups.send(Job::Close(tag.clone()));
            self.decide(Decision::Closed { tag });
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

        self.repeat_unacknowledged(now);
        self.check_feed_silence(now);
        self.write_notified(now);

        if now - self.last_prune_ms >= PRUNE_EVERY_MS {
            self.last_prune_ms = now;
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

    fn repeat_unacknowledged(&mut self, now: i64) {
        let every = i64::try_from(
            self.settings
                .notifications
                .repeat_mins
                .saturating_mul(60_000),
        )
        .unwrap_or(i64::MAX);
        if every == 0 {
            return;
        }
        let due: Vec<String> = self
            .active
            .values()
            .filter(|a| !a.acked() && a.last_considered_ms.is_some_and(|t| now - t >= every))
            .map(|a| a.key.clone())
            .collect();
        for key in due {
            let Some(a) = self.active.get(&key) else {
                continue;
            };
            if self.sensor_muted(&a.row) {
                self.mark_considered(&key, now, false);
                continue;
            }
            let popup = self.popup_for(a, now);
            let shown = self.show(popup, true);
            self.mark_considered(&key, now, shown);
        }
    }

    fn check_feed_silence(&mut self, now: i64) {
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

    fn compute_status(&self) -> Status {
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
    fn publish_status(&self) {
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

/// Severity → urgency: Alarm is critical, Warning normal.
pub fn urgency(s: Severity) -> Urgency {
    match s {
        Severity::Alarm => Urgency::Critical,
        Severity::Warning => Urgency::Normal,
        Severity::Info => Urgency::Low,
    }
}

/// Identity of an upstream alarm condition: the feed's `alarm_id`, else sensor + condition.
fn upstream_alarm_key(e: &Event) -> String {
    match &e.alarm_id {
        Some(id) => format!("{}:{}:{id}", e.source.as_str(), e.account),
        None => format!(
            "{}:{}:{}:{}",
            e.source.as_str(),
            e.account,
            e.sensor.as_deref().or(e.device.as_deref()).unwrap_or(""),
            e.condition.as_deref().unwrap_or("")
        ),
    }
}

/// The newest value per (sensor, quantity) of a batch: one upsert per pair, not per event.
fn collect_last_values<'a>(e: &'a Event, last: &mut HashMap<(&'a str, &'a str), LatestValue>) {
    if !matches!(e.kind, EventKind::Measurement | EventKind::Reading) {
        return;
    }
    let Some(sensor) = e.sensor.as_deref().or(e.device.as_deref()) else {
        return;
    };
    let at = e.measured_at.unwrap_or(e.received_at).as_millisecond();
    let mut put = |quantity: &'a str, value: f64, unit: Option<&String>| {
        if !value.is_finite() {
            return;
        }
        let slot = last
            .entry((sensor, quantity))
            .or_insert_with(|| LatestValue {
                sensor: sensor.to_string(),
                name: None,
                source: e.source,
                quantity: (!quantity.is_empty()).then(|| quantity.to_string()),
                value,
                unit: None,
                at_ms: i64::MIN,
            });
        if at >= slot.at_ms {
            slot.value = value;
            slot.at_ms = at;
            slot.unit = unit.cloned();
            slot.name = e.name.clone();
        }
    };
    if e.fields.is_empty() {
        if let Some(v) = e.value {
            put(e.quantity.as_deref().unwrap_or(""), v, e.unit.as_ref());
        }
    } else {
        for (k, v) in &e.fields {
            // Only the primary field has a known unit.
            let unit = if Some(k.as_str()) == e.quantity.as_deref() {
                e.unit.as_ref()
            } else {
                None
            };
            put(k.as_str(), *v, unit);
        }
    }
}

#[cfg(test)]
mod tests;
