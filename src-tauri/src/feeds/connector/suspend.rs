//! Suspend/resume: the wall clock runs ahead of the monotonic one while the machine sleeps.
//!
//! tokio's timers stand still during a suspend, so a backoff planned before it would be
//! slept out in full after the resume, and a socket that died meanwhile would be trusted
//! until its next keep-alive. Comparing the two clocks shows the jump.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;

/// Both clocks read at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The injected wall clock (what events and tokens are dated by).
    pub wall: Timestamp,
    /// tokio's monotonic clock (what timers run on).
    pub mono: Instant,
}

impl Now {
    pub fn read(clock: &dyn Clock) -> Now {
        Now {
            wall: clock.now(),
            mono: Instant::now(),
        }
    }
}

/// Remembers both clocks at the last look.
#[derive(Debug, Clone, Copy)]
pub struct SuspendDetector {
    last: Now,
}

impl SuspendDetector {
    pub fn new(now: Now) -> Self {
        SuspendDetector { last: now }
    }

    /// The wall clock ran ahead of the monotonic one by more than `slack` since the last
    /// look: the machine slept.
    pub fn jumped(&mut self, now: Now, slack: Duration) -> bool {
        let wall = now.wall.duration_since(self.last.wall);
        let mono = SignedDuration::try_from(now.mono.saturating_duration_since(self.last.mono))
            .unwrap_or(SignedDuration::MAX);
        self.last = now;
        wall.saturating_sub(mono) > SignedDuration::try_from(slack).unwrap_or(SignedDuration::MAX)
    }
}

/// How a [`wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    Elapsed,
    /// The machine slept meanwhile: the wait is over early.
    Resumed,
    Stopped,
}

/// Sleeps `delay`, but wakes early on a suspend/resume (checked every second) and on stop
/// (the signal set, or its sender gone).
pub async fn wait(delay: Duration, clock: &dyn Clock, stop: &mut watch::Receiver<bool>) -> Woke {
    let resumed = async {
        let mut detector = SuspendDetector::new(Now::read(clock));
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if detector.jumped(Now::read(clock), Duration::from_secs(5)) {
                return;
            }
        }
    };
    let woke = tokio::select! {
        _ = tokio::time::sleep(delay) => Woke::Elapsed,
        _ = resumed => Woke::Resumed,
        _ = super::until_stopped(stop) => Woke::Stopped,
    };
    if *stop.borrow() {
        Woke::Stopped
    } else {
        woke
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_wall_clock_ahead_of_the_monotonic_one_is_a_suspend() {
        let clock = ManualClock::utc(Timestamp::from_second(1_700_000_000).unwrap());
        let t0 = Now::read(&clock);
        let mut d = SuspendDetector::new(t0);
        let slack = Duration::from_secs(5);
        clock.advance_secs(4);
        let now = Now {
            wall: clock.now(),
            mono: t0.mono,
        };
        assert!(!d.jumped(now, slack), "4 s ahead is within the slack");
        clock.advance_secs(3600);
        let now = Now {
            wall: clock.now(),
            mono: t0.mono + Duration::from_secs(1),
        };
        assert!(d.jumped(now, slack));
        clock.advance_secs(-7200);
        let now = Now {
            wall: clock.now(),
            mono: t0.mono + Duration::from_secs(2),
        };
        assert!(!d.jumped(now, slack), "a clock set back is no suspend");
    }

    #[tokio::test]
    async fn wait_ends_on_time_on_resume_and_on_stop() {
        let clock = ManualClock::utc(Timestamp::from_second(1_700_000_000).unwrap());
        let (stop_tx, mut stop) = watch::channel(false);
        let began = Instant::now();
        let woke = wait(Duration::from_millis(200), &clock, &mut stop).await;
        assert_eq!(woke, Woke::Elapsed);
        assert!(began.elapsed() >= Duration::from_millis(200));

        let began = Instant::now();
        let sleeper = clock.clone();
        let (woke, ()) = tokio::join!(wait(Duration::from_secs(300), &clock, &mut stop), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sleeper.advance_secs(3600);
        });
        assert_eq!(woke, Woke::Resumed);
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "checked every second"
        );

        let began = Instant::now();
        let (woke, ()) = tokio::join!(wait(Duration::from_secs(300), &clock, &mut stop), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = stop_tx.send(true);
        });
        assert_eq!(woke, Woke::Stopped);
        assert!(began.elapsed() < Duration::from_secs(1));
    }
}
