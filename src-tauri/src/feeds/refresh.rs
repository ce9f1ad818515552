//! When vendor names are fetched again (issue 20), the same for both feeds: once a day, and
//! when the engine meets an unknown sensor — but never more often than a gap per account,
//! so a sensor the vendor never lists cannot make a tight loop of requests.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Runs `refresh` every `every`, or on a poke from `wanted` at least `gap` after the last
/// refresh (several pokes in a row are one refresh). `last` is when the caller last
/// refreshed. Never returns; the caller stops it by dropping the future.
pub async fn repeat<F, Fut>(
    every: Duration,
    gap: Duration,
    mut last: Instant,
    mut wanted: mpsc::UnboundedReceiver<()>,
    mut refresh: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut wanted_open = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(last + every) => {}
            w = wanted.recv(), if wanted_open => match w {
                None => {
                    wanted_open = false;
                    continue;
                }
                Some(()) => {
                    while wanted.try_recv().is_ok() {}
                    let earliest = last + gap;
                    if Instant::now() < earliest {
                        tokio::time::sleep_until(earliest).await;
                        while wanted.try_recv().is_ok() {}
                    }
                }
            },
        }
        last = Instant::now();
        refresh().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn pokes_refresh_at_most_once_per_gap_and_the_period_refreshes_anyway() {
        let n = Arc::new(AtomicU32::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let count = n.clone();
        let task = tokio::spawn(repeat(
            Duration::from_millis(1500),
            Duration::from_millis(600),
            Instant::now(),
            rx,
            move || {
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        for _ in 0..20 {
            tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n.load(Ordering::SeqCst), 0, "not before the gap");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(n.load(Ordering::SeqCst), 1, "20 pokes, one refresh");
        tokio::time::sleep(Duration::from_millis(1700)).await;
        assert_eq!(n.load(Ordering::SeqCst), 2, "and the periodic one");
        task.abort();
    }
}
