//! One ELEMENT link as a state machine: the keep-alive (ping schedule, reply deadline,
//! text `ping`), what a frame means (events, a close, a pong), and the no-gap/no-double
//! books ([`Ledger`]) that say where to resume. It owns no socket and no timer: every
//! method takes the time, and the answer is a list of [`Action`]s for the I/O loop in
//! [`super::socket`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::mapping::{self, Origin};
use super::payload::{parse_frame_as, Parsed};
use super::socket::{scrub, SubscriptionRun};
use crate::event::{Ack, AckMsg, Delivery};
use crate::feeds::connector::{Now, SuspendDetector};
use crate::settings::ElementKind;

/// The status goes to the engine at most this often while messages flow.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// How one link ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEnd {
    Stopped,
    Lost(String),
    Fatal(String),
}

/// What the I/O loop is to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Send a WebSocket Ping.
    Ping,
    /// Send the text `ping` (for servers that answer only that).
    TextPing,
    Deliver(Box<Delivery>),
    /// A message arrived at `last_message_at`; `publish`: the engine is due to hear of it.
    Report {
        last_message_at: Timestamp,
        publish: bool,
    },
    End(LinkEnd),
}

/// One subscription's link state; the [`Ledger`] and the generation outlive a link.
pub struct LinkState {
    account: String,
    subscription: String,
    kind: ElementKind,
    text_ping: bool,
    ping_interval: Duration,
    pong_timeout: Duration,
    /// Only to keep it out of messages.
    api_key: String,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    ledger: Ledger,
    generation: u64,
    /// When this link was opened, by the server's clock where it told it: events inserted
    /// before it are a replay.
    connected_at: Timestamp,
    /// "Catch up N hours" on a first start, until the server's clock says where it begins.
    catch_up: Option<jiff::SignedDuration>,
    /// `after=` was given and no live event has come yet.
    replaying: bool,
    /// A ping went out and nothing came back yet.
    reply_due: Option<Instant>,
    suspend: SuspendDetector,
    last_report: Instant,
}

impl LinkState {
    /// Starts the books from the persisted cursor; without one, a catch-up waits for the
    /// server's clock ([`Self::set_server_clock`]).
    pub fn new(run: &SubscriptionRun, ack_tx: mpsc::UnboundedSender<AckMsg>, now: Now) -> Self {
        let catch_up = (run.cursor.is_none() && run.sub.catch_up_hours > 0)
            .then(|| jiff::SignedDuration::from_hours(i64::from(run.sub.catch_up_hours)));
        LinkState {
            account: run.account.id.clone(),
            subscription: run.sub.id.clone(),
            kind: run.sub.kind,
            text_ping: run.account.text_ping,
            ping_interval: run.timing.ping_interval,
            pong_timeout: run.timing.pong_timeout,
            api_key: run.api_key.clone(),
            ack_tx,
            ledger: Ledger {
                cursor_at: run.cursor.as_deref().and_then(mapping::parse_time),
                cursor: run.cursor.clone(),
                fallback: None,
                in_flight: VecDeque::new(),
                confirmed: HashMap::new(),
                hole: false,
            },
            generation: 0,
            connected_at: now.wall,
            catch_up,
            replaying: false,
            reply_due: None,
            suspend: SuspendDetector::new(now),
            last_report: now.mono,
        }
    }

    /// A first start that catches up and has no start point yet: the I/O loop asks the
    /// server for its clock.
    pub fn needs_server_clock(&self) -> bool {
        self.catch_up.is_some() && self.ledger.cursor.is_none() && self.ledger.fallback.is_none()
    }

    /// The server's clock now: the catch-up starts N hours before it.
    pub fn set_server_clock(&mut self, server_now: Timestamp) {
        if let Some(back) = self.catch_up.take() {
            self.ledger.fallback = Some(after_param(server_now - back));
        }
    }

    /// No server clock to be had: N hours before this PC's clock, and an hour more, so a
    /// PC clock that runs ahead (by less than that hour) skips nothing.
    pub fn fallback_to_pc_clock(&mut self, now: Timestamp) {
        if let Some(back) = self.catch_up.take() {
            let margin = jiff::SignedDuration::from_hours(1);
            self.ledger.fallback = Some(after_param(now - back - margin));
        }
    }

    /// A new link is about to be asked for: where it resumes (`after=`), if anywhere.
    pub fn prepare(&mut self, now: Timestamp) -> Option<String> {
        if self.needs_server_clock() {
            self.fallback_to_pc_clock(now);
        }
        self.generation += 1;
        if self.ledger.hole {
            // Acks still due for deliveries after the hole must not move the cursor past it.
            self.ledger.hole = false;
            self.ledger.in_flight.clear();
        }
        self.connected_at = now;
        let after = self.ledger.resume_from().map(str::to_string);
        self.replaying = after.is_some();
        after
    }

    /// The socket is open; `server_now` is the server's clock if it said (the upgrade's
    /// `Date`, to the second), else this PC's is used.
    pub fn connected(&mut self, now: Now, server_now: Option<Timestamp>) {
        if let Some(t) = server_now {
            self.connected_at = t;
        }
        if self.ledger.fallback.is_none() {
            // Live only: a later reconnect resumes from the first connect, by the server's
            // clock (a PC clock ahead of it would skip what came in between).
            self.ledger.fallback = Some(after_param(self.connected_at));
        }
        self.reply_due = None;
        self.suspend = SuspendDetector::new(now);
        self.last_report = now.mono;
    }

    /// The engine's answer for a delivery.
    pub fn on_ack(&mut self, ack: AckMsg) -> Vec<Action> {
        self.ledger.on_ack(ack);
        if self.ledger.hole {
            let why = "an event was not stored; replaying".to_string();
            return vec![Action::End(LinkEnd::Lost(why))];
        }
        Vec::new()
    }

    /// The ping interval is up.
    pub fn on_ping_due(&mut self, now: Now) -> Vec<Action> {
        // The machine slept: the socket is most likely dead although no error was seen yet.
        let slack = 2 * self.ping_interval + Duration::from_secs(5);
        if self.suspend.jumped(now, slack) {
            let why = "the clock jumped (suspend/resume?)".to_string();
            return vec![Action::End(LinkEnd::Lost(why))];
        }
        self.reply_due.get_or_insert(now.mono + self.pong_timeout);
        let mut actions = vec![Action::Ping];
        if self.text_ping {
            actions.push(Action::TextPing);
        }
        actions
    }

    /// When the link counts as dead unless something arrives.
    pub fn reply_deadline(&self) -> Option<Instant> {
        self.reply_due
    }

    /// Nothing came back in time after a ping.
    pub fn on_reply_missed(&self) -> Vec<Action> {
        let secs = self.pong_timeout.as_secs().max(1);
        let why = format!("no reply to ping within {secs} s");
        vec![Action::End(LinkEnd::Lost(why))]
    }

    /// What the socket gave (`None`: it closed).
    pub fn on_message(
        &mut self,
        msg: Option<Result<Message, tungstenite::Error>>,
        now: Now,
    ) -> Vec<Action> {
        // Any frame shows the link is alive.
        self.reply_due = None;
        let lost = |why: String| vec![Action::End(LinkEnd::Lost(why))];
        let text = match msg {
            None => return lost("the server closed the connection".into()),
            Some(Err(e)) => return lost(scrub(&format!("connection lost ({e})"), &self.api_key)),
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(frame))) => {
                let end = match frame {
                    Some(f) if is_auth_close(&f) => LinkEnd::Fatal("API key rejected".into()),
                    Some(f) => LinkEnd::Lost(format!(
                        "the server closed the connection ({} {})",
                        u16::from(f.code),
                        scrub(&f.reason, &self.api_key)
                    )),
                    None => LinkEnd::Lost("the server closed the connection".into()),
                };
                return vec![Action::End(end)];
            }
            Some(Ok(_)) => return Vec::new(),
        };
        if text.trim().eq_ignore_ascii_case("pong") {
            return Vec::new();
        }
        let mut actions = self.deliveries(&text, now.wall);
        let publish = now.mono.saturating_duration_since(self.last_report) >= REPORT_EVERY;
        if publish {
            self.last_report = now.mono;
        }
        actions.push(Action::Report {
            last_message_at: now.wall,
            publish,
        });
        actions
    }

    /// Parses a frame into deliveries, minus events already confirmed in this process.
    fn deliveries(&mut self, text: &str, now: Timestamp) -> Vec<Action> {
        let origin = Origin {
            account: &self.account,
            subscription: &self.subscription,
            received_at: now,
        };
        let mut out = Vec::new();
        for item in parse_frame_as(text, Some(self.kind)) {
            let (id, mut event) = match item {
                Ok(parsed) => {
                    let id = match &parsed {
                        Parsed::Reading(r) => r.id.clone(),
                        Parsed::Packet(p) => p.id.clone(),
                        Parsed::Other { .. } => continue,
                    };
                    match mapping::to_event(parsed, origin) {
                        Some(e) => (id, e),
                        None => continue,
                    }
                }
                Err(err) => {
                    tracing::warn!(feed = %self.subscription, reason = %err.reason, "unparsable ELEMENT frame");
                    (String::new(), mapping::unparsed_event(err, origin))
                }
            };
            // The event's own place; what is persisted with it is where a restart may
            // safely resume: the newest point before which everything was stored.
            let inserted_at = event.cursor.take();
            let at = inserted_at.as_deref().and_then(mapping::parse_time);
            if inserted_at.is_some() && self.ledger.confirmed.contains_key(&id) {
                continue;
            }
            event.cursor = self.ledger.resume_from().map(str::to_string);
            if self.replaying {
                match at {
                    Some(t) if t < self.connected_at => event.replayed = true,
                    _ => self.replaying = false,
                }
            }
            let token = inserted_at.unwrap_or_default();
            if !token.is_empty() {
                self.ledger.in_flight.push_back(InFlight {
                    token: token.clone(),
                    id,
                    at,
                    state: None,
                });
            }
            let ack = Ack::new(self.ack_tx.clone(), self.generation, token);
            out.push(Action::Deliver(Box::new(Delivery { event, ack })));
        }
        out
    }
}

/// A time for `after=`: microseconds (what ELEMENT stores), truncated so that nothing at
/// the boundary is skipped.
pub fn after_param(t: Timestamp) -> String {
    format!("{t:.6}")
}

/// A close frame that says the key is not (or no longer) accepted.
fn is_auth_close(frame: &CloseFrame) -> bool {
    let code = u16::from(frame.code);
    let reason = frame.reason.to_ascii_lowercase();
    matches!(code, 4001 | 4003 | 4401 | 4403)
        || [
            "auth",
            "unauthori",
            "forbidden",
            "api key",
            "api-key",
            "apikey",
        ]
        .iter()
        .any(|w| reason.contains(w))
}

/// An event handed to the engine and not yet answered.
struct InFlight {
    token: String,
    id: String,
    at: Option<Timestamp>,
    state: Option<bool>,
}

/// The no-gap/no-double book-keeping: what the engine confirmed, and where to resume.
struct Ledger {
    /// The newest confirmed cursor with every earlier delivery confirmed too (as received).
    cursor: Option<String>,
    cursor_at: Option<Timestamp>,
    /// Where to resume when nothing was confirmed yet (catch-up start, or the first
    /// connect time for live-only subscriptions).
    fallback: Option<String>,
    in_flight: VecDeque<InFlight>,
    /// Ids confirmed as stored, with their insertion time (pruned below the cursor).
    confirmed: HashMap<String, Option<Timestamp>>,
    /// An event was not stored: the cursor must not pass it; the link replays.
    hole: bool,
}

impl Ledger {
    fn resume_from(&self) -> Option<&str> {
        self.cursor.as_deref().or(self.fallback.as_deref())
    }

    fn on_ack(&mut self, ack: AckMsg) {
        if ack.token.is_empty() {
            return;
        }
        if let Some(entry) = self
            .in_flight
            .iter_mut()
            .find(|e| e.state.is_none() && e.token == ack.token)
        {
            entry.state = Some(ack.stored);
        }
        while self.in_flight.front().is_some_and(|e| e.state.is_some()) {
            let Some(done) = self.in_flight.pop_front() else {
                break;
            };
            if done.state != Some(true) {
                self.hole = true;
                continue;
            }
            self.confirmed.insert(done.id, done.at);
            if !self.hole
                && (self.cursor_at.is_none() || done.at.is_none() || done.at >= self.cursor_at)
            {
                self.cursor_at = done.at;
                self.cursor = Some(done.token);
            }
        }
        if self.confirmed.len() > 4096 {
            // Only ids at or after the cursor can come back in a replay.
            if let Some(c) = self.cursor_at {
                self.confirmed.retain(|_, at| at.is_none_or(|t| t >= c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::feeds::element::Timing;
    use crate::settings::{ElementAccount, ElementScope, ElementSubscription};

    const KEY: &str = "s3cr3t-key";

    fn run(text_ping: bool, cursor: Option<&str>) -> SubscriptionRun {
        SubscriptionRun {
            account: ElementAccount {
                id: "acc".into(),
                text_ping,
                ..Default::default()
            },
            sub: ElementSubscription {
                id: "s".into(),
                scope: ElementScope::Device("d1".into()),
                ..Default::default()
            },
            api_key: KEY.into(),
            cursor: cursor.map(str::to_string),
            timing: Timing::default(),
            clock: Arc::new(SystemClock),
        }
    }

    fn now(wall: &str, mono: Instant) -> Now {
        Now {
            wall: wall.parse().unwrap(),
            mono,
        }
    }

    /// A link state connected at `wall` (monotonic time `mono`).
    fn live(
        text_ping: bool,
        cursor: Option<&str>,
        wall: &str,
        mono: Instant,
    ) -> (LinkState, mpsc::UnboundedReceiver<AckMsg>, Option<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = LinkState::new(&run(text_ping, cursor), tx, now(wall, mono));
        let after = s.prepare(wall.parse().unwrap());
        s.connected(now(wall, mono), None);
        (s, rx, after)
    }

    fn reading(id: &str, inserted_at: &str) -> Message {
        Message::text(format!(
            r#"{{"event":"reading_added","body":{{"id":"{id}","device_id":"d1","data":{{"t":1}},"inserted_at":"{inserted_at}"}}}}"#
        ))
    }

    fn body(id: &str, inserted_at: &str) -> String {
        format!(
            r#"{{"event":"reading_added","body":{{"id":"{id}","device_id":"d1","data":{{"t":1}},"inserted_at":"{inserted_at}"}}}}"#
        )
    }

    fn delivered(actions: Vec<Action>) -> Vec<Delivery> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Deliver(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    fn end(actions: &[Action]) -> Option<&LinkEnd> {
        actions.iter().find_map(|a| match a {
            Action::End(e) => Some(e),
            _ => None,
        })
    }

    const T: &str = "2024-01-01T00:00:00Z";

    #[test]
    fn pings_go_out_and_a_missing_reply_ends_the_link() {
        let m0 = Instant::now();
        let (mut s, _rx, _) = live(false, None, T, m0);
        assert_eq!(s.reply_deadline(), None);
        let a = s.on_ping_due(now("2024-01-01T00:00:20Z", m0 + Duration::from_secs(20)));
        assert!(matches!(a[..], [Action::Ping]), "{a:?}");
        let due = m0 + Duration::from_secs(30);
        assert_eq!(s.reply_deadline(), Some(due));
        // A second ping does not push the deadline out.
        s.on_ping_due(now("2024-01-01T00:00:25Z", m0 + Duration::from_secs(25)));
        assert_eq!(s.reply_deadline(), Some(due));
        // Any frame is a sign of life.
        let a = s.on_message(Some(Ok(Message::Pong(Default::default()))), now(T, m0));
        assert!(a.is_empty());
        assert_eq!(s.reply_deadline(), None);
        assert_eq!(
            end(&s.on_reply_missed()),
            Some(&LinkEnd::Lost("no reply to ping within 10 s".into()))
        );
    }

    #[test]
    fn a_text_ping_goes_with_each_ping_and_its_pong_is_no_event() {
        let m0 = Instant::now();
        let (mut s, _rx, _) = live(true, None, T, m0);
        let a = s.on_ping_due(now("2024-01-01T00:00:20Z", m0 + Duration::from_secs(20)));
        assert!(matches!(a[..], [Action::Ping, Action::TextPing]), "{a:?}");
        assert!(s
            .on_message(Some(Ok(Message::text(" PONG "))), now(T, m0))
            .is_empty());
        assert_eq!(s.reply_deadline(), None);
    }

    #[test]
    fn a_wall_clock_far_ahead_at_a_ping_means_the_machine_slept() {
        let m0 = Instant::now();
        let (mut s, _rx, _) = live(false, None, T, m0);
        let a = s.on_ping_due(now("2024-01-01T01:00:20Z", m0 + Duration::from_secs(20)));
        assert_eq!(
            end(&a),
            Some(&LinkEnd::Lost("the clock jumped (suspend/resume?)".into()))
        );
    }

    #[test]
    fn closes_say_whether_the_key_was_refused_and_never_show_it() {
        let m0 = Instant::now();
        let (mut s, _rx, _) = live(false, None, T, m0);
        let close = |code: u16, reason: &str| {
            Some(Ok(Message::Close(Some(CloseFrame {
                code: code.into(),
                reason: reason.to_string().into(),
            }))))
        };
        let a = s.on_message(close(4001, ""), now(T, m0));
        assert_eq!(end(&a), Some(&LinkEnd::Fatal("API key rejected".into())));
        let a = s.on_message(close(1001, &format!("bye {KEY}")), now(T, m0));
        assert_eq!(
            end(&a),
            Some(&LinkEnd::Lost(
                "the server closed the connection (1001 bye ***)".into()
            ))
        );
        let a = s.on_message(None, now(T, m0));
        assert!(matches!(end(&a), Some(LinkEnd::Lost(_))));
    }

    #[test]
    fn frames_become_deliveries_marked_as_replay_until_the_first_live_one() {
        let m0 = Instant::now();
        let cursor = "2023-12-31T23:00:00Z";
        let (mut s, _rx, after) = live(false, Some(cursor), T, m0);
        assert_eq!(
            after.as_deref(),
            Some(cursor),
            "resumes from the stored cursor"
        );
        let mut got =
            delivered(s.on_message(Some(Ok(reading("r1", "2023-12-31T23:30:00Z"))), now(T, m0)));
        got.extend(delivered(s.on_message(
            Some(Ok(reading("r2", "2024-01-01T00:00:01Z"))),
            now(T, m0),
        )));
        got.extend(delivered(s.on_message(
            Some(Ok(reading("r3", "2023-12-31T23:40:00Z"))),
            now(T, m0),
        )));
        let shown: Vec<(&str, bool)> = got
            .iter()
            .map(|d| (d.event.key.as_str(), d.event.replayed))
            .collect();
        assert_eq!(
            shown,
            [
                ("element:acc:reading:r1", true),
                ("element:acc:reading:r2", false),
                ("element:acc:reading:r3", false)
            ]
        );
        // Unreadable text is an event too (without a cursor to confirm).
        let bad = delivered(s.on_message(Some(Ok(Message::text("{oops"))), now(T, m0)));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].event.kind, crate::event::EventKind::Unparsed);
    }

    #[test]
    fn confirmed_events_are_not_delivered_twice_and_the_cursor_follows_them() {
        let m0 = Instant::now();
        let (mut s, mut rx, after) = live(false, None, T, m0);
        assert_eq!(after, None, "live only: no after= on the first connect");
        let at = "2024-01-01T00:00:05Z";
        for d in delivered(s.on_message(Some(Ok(reading("r1", at))), now(T, m0))) {
            d.ack.confirm();
        }
        assert!(s.on_ack(rx.try_recv().unwrap()).is_empty());
        assert_eq!(s.prepare(T.parse().unwrap()).as_deref(), Some(at));
        s.connected(now(T, m0), None);
        let again = delivered(s.on_message(Some(Ok(reading("r1", at))), now(T, m0)));
        assert!(again.is_empty(), "already stored in this process");
    }

    #[test]
    fn an_event_not_stored_ends_the_link_and_the_next_one_replays_it() {
        let m0 = Instant::now();
        let (mut s, mut rx, _) = live(false, None, T, m0);
        let first = s.connected_at;
        drop(delivered(s.on_message(
            Some(Ok(reading("r1", "2024-01-01T00:00:05Z"))),
            now(T, m0),
        )));
        let a = s.on_ack(rx.try_recv().unwrap());
        assert_eq!(
            end(&a),
            Some(&LinkEnd::Lost("an event was not stored; replaying".into()))
        );
        let after = s.prepare("2024-01-01T00:01:00Z".parse().unwrap());
        assert_eq!(after, Some(after_param(first)), "from the first connect");
        assert!(!s.ledger.hole);
    }

    #[test]
    fn the_cursor_stored_with_an_event_never_passes_one_not_yet_stored() {
        let m0 = Instant::now();
        let start = "2023-12-31T23:00:00Z";
        let (mut s, mut rx, _) = live(false, Some(start), T, m0);
        // One replay frame of three: nothing is confirmed while it is handed over.
        let frame = format!(
            "[{},{},{}]",
            body("a", "2023-12-31T23:10:00Z"),
            body("b", "2023-12-31T23:20:00Z"),
            body("c", "2023-12-31T23:30:00Z")
        );
        let got = delivered(s.on_message(Some(Ok(Message::text(frame))), now(T, m0)));
        let cursors: Vec<Option<&str>> = got.iter().map(|d| d.event.cursor.as_deref()).collect();
        assert_eq!(cursors, [Some(start); 3], "only the stored start is safe");
        // a and b fail, c is stored: whatever c carries into the database is before a.
        let mut it = got.into_iter();
        it.next().unwrap().ack.reject();
        it.next().unwrap().ack.reject();
        it.next().unwrap().ack.confirm();
        while let Ok(a) = rx.try_recv() {
            s.on_ack(a);
        }
        assert_eq!(s.prepare(T.parse().unwrap()).as_deref(), Some(start));
        // After the replay stores them, the cursor moves on and later events carry it.
        s.connected(now(T, m0), None);
        for d in delivered(s.on_message(Some(Ok(reading("a", "2023-12-31T23:10:00Z"))), now(T, m0)))
        {
            d.ack.confirm();
        }
        s.on_ack(rx.try_recv().unwrap());
        let next =
            delivered(s.on_message(Some(Ok(reading("d", "2024-01-01T00:00:01Z"))), now(T, m0)));
        assert_eq!(
            next[0].event.cursor.as_deref(),
            Some("2023-12-31T23:10:00Z")
        );
    }

    #[test]
    fn the_server_clock_sets_the_catch_up_start_and_the_live_boundary() {
        let m0 = Instant::now();
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut r = run(false, None);
        r.sub.catch_up_hours = 2;
        // This PC runs 10 minutes ahead of the server.
        let pc = "2024-01-01T00:10:00Z";
        let mut s = LinkState::new(&r, tx, now(pc, m0));
        assert!(s.needs_server_clock());
        s.set_server_clock("2024-01-01T00:00:00Z".parse().unwrap());
        assert!(!s.needs_server_clock());
        let after = s.prepare(pc.parse().unwrap());
        assert_eq!(after.as_deref(), Some("2023-12-31T22:00:00.000000Z"));
        s.connected(now(pc, m0), Some("2024-01-01T00:00:00Z".parse().unwrap()));
        // An event the server stored after the connect is live, although this PC's clock
        // is past it.
        let got =
            delivered(s.on_message(Some(Ok(reading("r", "2024-01-01T00:00:03Z"))), now(pc, m0)));
        assert!(!got[0].event.replayed);
    }

    #[test]
    fn the_engine_hears_of_messages_at_most_every_5_s() {
        let m0 = Instant::now();
        let (mut s, _rx, _) = live(false, None, T, m0);
        let report = |a: &[Action]| {
            a.iter().find_map(|a| match a {
                Action::Report { publish, .. } => Some(*publish),
                _ => None,
            })
        };
        let msg = || Some(Ok(reading("r", "2024-01-01T00:00:01Z")));
        assert_eq!(report(&s.on_message(msg(), now(T, m0))), Some(false));
        let later = now(T, m0 + Duration::from_secs(5));
        assert_eq!(report(&s.on_message(msg(), later)), Some(true));
        assert_eq!(report(&s.on_message(msg(), later)), Some(false));
    }

    #[test]
    fn auth_close_is_recognised() {
        let f = |code: u16, reason: &str| CloseFrame {
            code: code.into(),
            reason: reason.to_string().into(),
        };
        assert!(is_auth_close(&f(4001, "")));
        assert!(is_auth_close(&f(1008, "Unauthorized")));
        assert!(is_auth_close(&f(1000, "invalid api key")));
        assert!(!is_auth_close(&f(1000, "idle timeout")));
        assert!(!is_auth_close(&f(1001, "going away")));
    }

    fn entry(token: &str, id: &str) -> InFlight {
        InFlight {
            token: token.into(),
            id: id.into(),
            at: mapping::parse_time(token),
            state: None,
        }
    }

    fn ledger() -> Ledger {
        Ledger {
            cursor: None,
            cursor_at: None,
            fallback: Some("f".into()),
            in_flight: VecDeque::new(),
            confirmed: HashMap::new(),
            hole: false,
        }
    }

    #[test]
    fn cursor_advances_only_over_confirmed_events() {
        let mut l = ledger();
        assert_eq!(l.resume_from(), Some("f"));
        let (a, b, c) = (
            "2024-01-01T00:00:01Z",
            "2024-01-01T00:00:02Z",
            "2024-01-01T00:00:03Z",
        );
        l.in_flight
            .extend([entry(a, "1"), entry(b, "2"), entry(c, "3")]);
        l.on_ack(AckMsg {
            generation: 1,
            token: a.into(),
            stored: true,
        });
        assert_eq!(l.resume_from(), Some(a));
        l.on_ack(AckMsg {
            generation: 1,
            token: b.into(),
            stored: false,
        });
        l.on_ack(AckMsg {
            generation: 1,
            token: c.into(),
            stored: true,
        });
        assert!(l.hole, "a rejected event must force a replay");
        assert_eq!(
            l.resume_from(),
            Some(a),
            "the cursor must not pass an event that was not stored"
        );
        assert!(
            l.confirmed.contains_key("1")
                && l.confirmed.contains_key("3")
                && !l.confirmed.contains_key("2")
        );
    }

    #[test]
    fn equal_cursors_are_matched_in_order() {
        let mut l = ledger();
        let a = "2024-01-01T00:00:01Z";
        l.in_flight.extend([entry(a, "1"), entry(a, "2")]);
        l.on_ack(AckMsg {
            generation: 1,
            token: a.into(),
            stored: true,
        });
        assert!(l.confirmed.contains_key("1") && !l.confirmed.contains_key("2"));
        assert_eq!(l.in_flight.len(), 1);
    }
}
