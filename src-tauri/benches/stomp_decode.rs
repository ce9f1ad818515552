//! Decode throughput of the STOMP codec (frames/s), printed rather than asserted.
//!
//! `cargo bench -p alarm-tray --bench stomp_decode` (add
//! `--config 'profile.dev.package.alarm-tray.opt-level=3' --profile dev` to measure the
//! optimized codec without a release build of the whole app).

use std::time::Instant;

use alarm_tray::feeds::saveris::stomp::{encode, Command, Decoder, Frame};

const BODY: &str = r#"{"uuid":"11111111-2222-3333-4444-555555555555","tenant_uuid":"11111111-2222-3333-4444-555555555555","alarm_reason":"Alarm condition is violated","alarm_status":"Alarm","last_status_change_time":"2023-08-01T11:20:00Z","alarm_condition_type":"Upper limit","alarm_severity":"Alarm","alarm_time":"2023-08-01T11:20:00Z","alarm_time_local":"2023-08-01T13:20:00+02:00","alarm_value":"25.2","physical_unit":"°C","physical_value":"Temperature","physical_value_extension":"Air Temperature","alarm_source_uuid":"11111111-2222-3333-4444-555555555555","alarm_type":"measurement alarm","processed_at":"2023-08-01T11:21:25Z"}"#;

fn message(i: usize, with_length: bool) -> Vec<u8> {
    let mut f = Frame::new(Command::Message)
        .with_header("destination", "/queue/alice/alarms")
        .with_header("content-type", "application/json")
        .with_header("subscription", "sub-0")
        .with_header("message-id", format!("ID:broker-1234-5678-1:1:1:1:{i}"))
        .with_header("ack", format!("ID:broker-1234-5678-1:1:1:1:{i}"))
        .with_header("timestamp", "1690888885000")
        .with_header("priority", "4")
        .with_header("expires", "0");
    if with_length {
        f = f.with_body(BODY.as_bytes().to_vec());
    } else {
        f.body = BODY.as_bytes().to_vec();
    }
    let mut bytes = encode(&f);
    bytes.push(b'\n'); // RabbitMQ and ActiveMQ end every frame with an EOL
    bytes
}

/// Decodes `chunks` `rounds` times; returns frames per second.
fn run(chunks: &[Vec<u8>], frames_per_round: usize, rounds: usize) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        let mut d = Decoder::new();
        for c in chunks {
            d.push(c);
            while let Ok(Some(f)) = d.next_frame() {
                n += std::hint::black_box(f).body.len().min(1);
            }
        }
    }
    assert_eq!(n, frames_per_round * rounds, "every frame decoded");
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, and then a
    // quick smoke run is enough.
    let full = std::env::args().any(|a| a == "--bench");
    let frames_n: usize = if full { 10_000 } else { 500 };
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 5 } else { 1 });
    for (label, with_length) in [("content-length", true), ("NUL-terminated", false)] {
        let frames: Vec<Vec<u8>> = (0..frames_n).map(|i| message(i, with_length)).collect();
        let size = frames[0].len();
        // One frame per WebSocket message (what brokers send)...
        let one_each = run(&frames, frames_n, rounds);
        // ...and the same bytes cut into 4 KiB pieces regardless of frame borders.
        let all: Vec<u8> = frames.concat();
        let pieces: Vec<Vec<u8>> = all.chunks(4096).map(<[u8]>::to_vec).collect();
        let split = run(&pieces, frames_n, rounds);
        println!(
            "stomp_decode {label:>15} ({size} B frames): {one_each:>10.0} frames/s one per message, {split:>10.0} frames/s in 4 KiB pieces"
        );
    }
}
