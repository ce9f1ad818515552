//! Exponential backoff with full jitter.
//!
//! Written here rather than taken from a crate because the feeds need two things the usual
//! crates don't give together: "full jitter" (a uniform draw in `[0, cap]`, which spreads a
//! fleet of clients after a server restart; `backon` adds its jitter on top of the delay
//! instead) and a reset the moment a link has proved stable.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// `base` doubles per failed attempt up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The upper bound for the next wait (no jitter): base · 2^attempt, capped.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next wait: uniform in `[0, ceiling]`, then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// After a link was live: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_millis());
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(60));
        }
        assert_eq!(&ceilings[..4], &[500, 1000, 2000, 4000]);
        assert_eq!(ceilings[9], 60_000);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60));
            seen.insert(b.next_delay().as_millis());
        }
        assert!(
            seen.len() > 10,
            "full jitter must not give the same delay each time"
        );
    }
}
