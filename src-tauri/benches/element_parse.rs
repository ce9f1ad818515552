//! Parse throughput of ELEMENT socket frames: readings per second through the tolerant
//! parser alone, and through parser + mapping to normalized events.
//! Run: `cargo bench -p alarm-tray --bench element_parse`. Prints numbers, asserts nothing
//! about speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use alarm_tray::feeds::element::mapping::{to_event, Origin};
use alarm_tray::feeds::element::payload::parse_frame;

/// Frames as the simulator and third-party clients show them: arrays of wrapped readings.
fn frames(count: usize, per_frame: usize) -> Vec<String> {
    (0..count)
        .map(|f| {
            let items: Vec<String> = (0..per_frame)
                .map(|i| {
                    let n = f * per_frame + i;
                    format!(
                        r#"{{"event":"reading_added","body":{{"id":"6d1d9e5c-0a0e-4b9c-9c55-{n:012x}","device_id":"c0ffee00-1111-4222-8333-{d:012x}","packet_id":"a1b2c3d4-0000-4000-8000-{n:012x}","parser_id":"f00dcafe-0000-4000-8000-000000000002","data":{{"temperature":{t:.2},"humidity":{h},"battery":3.61,"alarm":false}},"inserted_at":"2024-03-05T10:15:02.{us:06}Z","measured_at":"2024-03-05T10:15:00.000000Z","location":null}}}}"#,
                        d = n % 50,
                        t = 3.0 + (n % 100) as f64 / 10.0,
                        h = 40 + n % 30,
                        us = n % 1_000_000
                    )
                })
                .collect();
            format!("[{}]", items.join(","))
        })
        .collect()
}

fn measure(name: &str, frames: &[String], per_frame: usize, mut work: impl FnMut(&str) -> usize) {
    // Warm up, then run for a fixed wall time.
    for f in frames.iter().take(50) {
        black_box(work(f));
    }
    let start = Instant::now();
    let mut readings = 0usize;
    let mut bytes = 0usize;
    while start.elapsed() < Duration::from_secs(2) {
        for f in frames {
            readings += black_box(work(f));
            bytes += f.len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<28} {per_frame:>3}/frame: {:>10.0} readings/s  {:>7.1} MB/s",
        readings as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

fn main() {
    for per_frame in [1, 20] {
        let fs = frames(2000 / per_frame, per_frame);
        measure("parse_frame", &fs, per_frame, |f| {
            parse_frame(f).into_iter().filter(|r| r.is_ok()).count()
        });
        let origin = Origin {
            account: "acc",
            subscription: "sub",
            received_at: jiff::Timestamp::UNIX_EPOCH,
        };
        measure("parse_frame + to_event", &fs, per_frame, |f| {
            parse_frame(f)
                .into_iter()
                .filter_map(|r| r.ok())
                .filter_map(|p| to_event(p, origin))
                .count()
        });
    }
}
