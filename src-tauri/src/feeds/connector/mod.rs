//! The reconnect loop both feeds share (as async-nats keeps one connector for all its
//! subscriptions): connect, serve, and on loss back off with full jitter — or wait as long
//! as the server asked — then connect again, until stopped or until the user must act.
//!
//! A feed brings its [`Session`]: one attempt from connecting to the end of the link, told
//! back as an [`Outcome`]. The loop owns what both feeds need around that: the status (one
//! watched value), the backoff with its stable-after reset, the suspend-aware wait and the
//! stop signal.

pub mod backoff;
pub mod status;
pub mod suspend;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::event::FeedState;

pub use backoff::Backoff;
pub use status::Status;
pub use suspend::{wait, Now, SuspendDetector, Woke};

/// Both feeds' default: a link must stay up this long before the backoff starts again from
/// its base, so a server that accepts and drops at once does not get a reconnect storm.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How a feed backs off between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    /// The first ceiling; it doubles per failed attempt…
    pub base: Duration,
    /// … up to this.
    pub max: Duration,
    /// A link up at least this long resets the backoff.
    pub stable_after: Duration,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Asked to stop, or the engine is gone.
    Stopped,
    /// Connect again at once (a fresh token is ready).
    Again,
    /// Connect again after a backoff step, or after `wait` when the server named one.
    /// `error` goes to the status' last error, `reason` to its "waiting" text.
    Retry {
        error: String,
        reason: String,
        wait: Option<Duration>,
    },
    /// Retrying cannot help (credentials or an id refused): show `state` and end.
    Halt { error: String, state: FeedState },
}

/// One feed connection's protocol: connect, serve until the link ends, say how it ended.
pub trait Session: Send {
    fn attempt(&mut self, conn: &mut Connector) -> impl Future<Output = Outcome> + Send;
}

/// The reconnect loop and what a [`Session`] may use of it.
pub struct Connector {
    pub status: Status,
    stop: watch::Receiver<bool>,
    clock: Arc<dyn Clock>,
    backoff: Backoff,
    stable_after: Duration,
    /// When this attempt's link went live.
    up_since: Option<Instant>,
    /// This attempt's link proved itself early (delivered an event).
    proven: bool,
}

impl Connector {
    pub fn new(
        status: Status,
        stop: watch::Receiver<bool>,
        clock: Arc<dyn Clock>,
        reconnect: Reconnect,
    ) -> Self {
        Connector {
            status,
            stop,
            clock,
            backoff: Backoff::new(reconnect.base, reconnect.max),
            stable_after: reconnect.stable_after,
            up_since: None,
            proven: false,
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn now(&self) -> Now {
        Now::read(self.clock.as_ref())
    }

    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// A receiver of the stop signal, for a session's own `select!`.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Runs `work` unless asked to stop first (`None` then).
    pub async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut stop = self.stop.clone();
        tokio::select! {
            r = work => Some(r),
            _ = until_stopped(&mut stop) => None,
        }
    }

    /// The link is up: the status says so, and the stable-after clock starts.
    pub fn live(&mut self) {
        let now = self.clock.now();
        self.status.note(|s| {
            s.live_since = Some(now);
            s.last_error = None;
        });
        self.status.set(FeedState::Live);
        self.up_since = Some(Instant::now());
    }

    /// The link did useful work: the backoff starts again from its base even if the link
    /// ends before the stable-after time.
    pub fn proven(&mut self) {
        self.proven = true;
    }

    /// Shows `state` with `error` as the last error; the feed then ends.
    pub fn halt(&self, error: String, state: FeedState) {
        self.status.note(|s| s.last_error = Some(error));
        self.status.set(state);
    }

    /// Connects, serves and reconnects until stopped or halted.
    pub async fn run(mut self, mut session: impl Session) {
        while !self.stopped() {
            self.status.set(FeedState::Connecting);
            (self.up_since, self.proven) = (None, false);
            let outcome = session.attempt(&mut self).await;
            let stable = self
                .up_since
                .is_some_and(|t| t.elapsed() >= self.stable_after);
            if stable || self.proven {
                self.backoff.reset();
            }
            match outcome {
                Outcome::Stopped => break,
                Outcome::Again => {}
                Outcome::Halt { error, state } => return self.halt(error, state),
                Outcome::Retry {
                    error,
                    reason,
                    wait,
                } => {
                    if self.back_off(error, reason, wait).await == Woke::Stopped {
                        break;
                    }
                }
            }
        }
        self.status.set(FeedState::Idle);
    }

    /// Shows the wait and sleeps it out (or less, on a resume or stop).
    async fn back_off(&mut self, error: String, reason: String, wait: Option<Duration>) -> Woke {
        let delay = wait.unwrap_or_else(|| self.backoff.next_delay());
        tracing::info!(feed = %self.status.feed(), %error, wait_ms = delay.as_millis() as u64, "link down; reconnecting");
        self.status.note(|s| {
            s.last_error = Some(error);
            s.state = FeedState::Waiting {
                secs: delay.as_secs_f64().ceil() as u64,
                reason,
            };
        });
        self.status.publish();
        let woke = suspend::wait(delay, self.clock.as_ref(), &mut self.stop).await;
        if woke == Woke::Resumed {
            tracing::info!(feed = %self.status.feed(), "the clock jumped (suspend/resume?); reconnecting now");
        }
        woke
    }
}

/// Resolves once the stop signal is set (or its sender is gone).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `url` points at this computer: the only place a secret may travel in clear.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::sync::mpsc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::event::FeedStatus;

    #[test]
    fn loopback_hosts() {
        let yes = [
            "ws://127.0.0.1:1/ws",
            "ws://[::1]:1/",
            "http://localhost/",
            "http://LocalHost./",
            "http://a.localhost/",
        ];
        let no = [
            "ws://10.0.0.1/",
            "https://example.com/",
            "http://localhost.example/",
        ];
        for u in yes {
            assert!(is_loopback(&url::Url::parse(u).unwrap()), "{u}");
        }
        for u in no {
            assert!(!is_loopback(&url::Url::parse(u).unwrap()), "{u}");
        }
    }

    /// One scripted attempt: live for `up` (if at all), maybe proven, then `outcome`.
    struct Step {
        up: Option<Duration>,
        proven: bool,
        outcome: Outcome,
    }

    fn step(up: Option<u64>, outcome: Outcome) -> Step {
        Step {
            up: up.map(Duration::from_millis),
            proven: false,
            outcome,
        }
    }

    /// A session that plays back steps and notes the backoff's attempt count at each.
    struct Script {
        steps: VecDeque<Step>,
        attempts: Arc<std::sync::Mutex<Vec<u32>>>,
    }

    impl Script {
        fn new(steps: impl IntoIterator<Item = Step>) -> Self {
            Script {
                steps: steps.into_iter().collect(),
                attempts: Default::default(),
            }
        }
    }

    impl Session for Script {
        async fn attempt(&mut self, conn: &mut Connector) -> Outcome {
            self.attempts.lock().unwrap().push(conn.backoff.attempts());
            let Some(step) = self.steps.pop_front() else {
                return Outcome::Stopped;
            };
            if let Some(up) = step.up {
                conn.live();
                if step.proven {
                    conn.proven();
                }
                tokio::time::sleep(up).await;
            }
            step.outcome
        }
    }

    fn retry(error: &str) -> Outcome {
        Outcome::Retry {
            error: error.into(),
            reason: "connection lost".into(),
            wait: None,
        }
    }

    fn connector(
        stable_after: Duration,
    ) -> (
        Connector,
        mpsc::UnboundedReceiver<FeedStatus>,
        watch::Sender<bool>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop) = watch::channel(false);
        let conn = Connector::new(
            Status::new(FeedStatus::new("f".into(), "F".into()), tx),
            stop,
            Arc::new(SystemClock),
            Reconnect {
                base: Duration::from_millis(10),
                max: Duration::from_millis(40),
                stable_after,
            },
        );
        (conn, rx, stop_tx)
    }

    fn states(rx: &mut mpsc::UnboundedReceiver<FeedStatus>) -> Vec<FeedStatus> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[tokio::test]
    async fn statuses_follow_the_attempts_and_a_halt_ends_the_loop() {
        let (conn, mut rx, _stop) = connector(Duration::from_secs(10));
        let rate_limit = Outcome::Retry {
            error: "server said: rate limit".into(),
            reason: "rate limit".into(),
            wait: Some(Duration::from_millis(1500)),
        };
        let halt = Outcome::Halt {
            error: "refused".into(),
            state: FeedState::LoginFailed {
                message: "refused".into(),
            },
        };
        let script = Script::new([
            step(None, retry("cannot connect")),
            step(Some(0), Outcome::Again),
            step(None, rate_limit),
            step(None, halt),
        ]);
        conn.run(script).await;
        let seen = states(&mut rx);
        let shown: Vec<FeedState> = seen.iter().map(|s| s.state.clone()).collect();
        assert_eq!(shown[0], FeedState::Connecting);
        assert!(matches!(shown[1], FeedState::Waiting { .. }), "{shown:?}");
        assert_eq!(seen[1].last_error.as_deref(), Some("cannot connect"));
        assert_eq!(
            shown[2..],
            [
                FeedState::Connecting,
                FeedState::Live,
                FeedState::Connecting,
                FeedState::Waiting {
                    secs: 2,
                    reason: "rate limit".into()
                },
                FeedState::Connecting,
                FeedState::LoginFailed {
                    message: "refused".into()
                },
            ]
        );
        assert_eq!(seen[3].last_error, None, "live clears the last error");
        assert!(seen[3].live_since.is_some());
        assert_eq!(seen.last().unwrap().last_error.as_deref(), Some("refused"));
    }

    #[tokio::test]
    async fn a_stable_or_proven_link_resets_the_backoff_a_short_one_does_not() {
        let (conn, _rx, _stop) = connector(Duration::from_millis(100));
        let proven = Step {
            up: Some(Duration::ZERO),
            proven: true,
            outcome: retry("lost"),
        };
        let script = Script::new([
            step(None, retry("refused")),
            step(None, retry("refused")),
            step(Some(150), retry("lost after a while")),
            step(Some(0), retry("lost at once")),
            proven,
        ]);
        let attempts = script.attempts.clone();
        conn.run(script).await;
        assert_eq!(*attempts.lock().unwrap(), [0, 1, 2, 1, 2, 1]);
    }

    #[tokio::test]
    async fn stop_ends_a_wait_and_the_loop_shows_idle() {
        let (mut conn, mut rx, stop) = connector(Duration::from_secs(10));
        conn.backoff = Backoff::new(Duration::from_secs(600), Duration::from_secs(600));
        conn.backoff.next_delay();
        let script = Script::new([step(None, retry("lost")), step(None, retry("lost"))]);
        let began = Instant::now();
        let run = tokio::spawn(conn.run(script));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = stop.send(true);
        run.await.unwrap();
        assert!(began.elapsed() < Duration::from_secs(5));
        assert_eq!(states(&mut rx).last().unwrap().state, FeedState::Idle);
    }
}
