//! The readable table printed at the end of a run, from the report JSON.

use std::fmt::Write;

use serde_json::Value;

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "—".into(),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "—",
    }
}

pub fn table(r: &Value) -> String {
    let mut s = String::new();
    let m = &r["machine"];
    let _ = writeln!(
        s,
        "Alarm Tray bench — {} cores ({}), load {} → {}, {} build, {}",
        m["cores"],
        m["cpu"].as_str().unwrap_or(""),
        m["load_avg"].as_str().unwrap_or(""),
        m["load_avg_end"].as_str().unwrap_or(""),
        if m["release_build"].as_bool() == Some(true) {
            "release"
        } else {
            "DEBUG"
        },
        m["at"].as_str().unwrap_or("")
    );
    let ing = &r["ingest"];
    if let Some(runs) = ing["runs"].as_array() {
        let _ = writeln!(
            s,
            "\n1. Ingest through RabbitMQ Web-STOMP: {} preloaded persistent alarm messages of {} bytes, drained",
            ing["messages"], ing["bytes_per_message"]
        );
        let _ = writeln!(
            s,
            "   {:<24} {:>10} {:>8} {:>10} {:>10} {:>10}",
            "client", "msg/s", "CPU-s", "µs CPU/msg", "peak RSS", "broker CPU"
        );
        for run in runs {
            let _ = writeln!(
                s,
                "   {:<24} {:>10} {:>8} {:>10} {:>7} MB {:>8} s",
                run["name"].as_str().unwrap_or(""),
                f(&run["msg_per_s"], 0),
                f(&run["cpu_secs"], 2),
                f(&run["cpu_us_per_msg"], 1),
                f(&run["peak_rss_mb"], 1),
                f(&run["broker_cpu_secs"], 1)
            );
        }
        let q = &ing["ratios"];
        let _ = writeln!(
            s,
            "   alarm-tray vs Node default: {}× throughput (target ≥ 5×: {}), {} of its CPU per message (target ≤ 0.20: {})",
            f(&q["vs_node_default_throughput"], 2),
            verdict(q["vs_node_default_throughput"].as_f64().map(|x| x >= 5.0)),
            f(&q["cpu_per_msg_vs_node_default"], 3),
            verdict(q["cpu_per_msg_vs_node_default"].as_f64().map(|x| x <= 0.2)),
        );
        let ours = runs.iter().find(|x| x["name"] == "alarm-tray");
        let _ = writeln!(
            s,
            "   alarm-tray vs bare consumer: {} (target ≥ 0.80: {}); ≥ 30,000 msg/s: {}",
            f(&q["vs_bare_throughput"], 2),
            verdict(q["vs_bare_throughput"].as_f64().map(|x| x >= 0.8)),
            verdict(
                ours.and_then(|o| o["msg_per_s"].as_f64())
                    .map(|x| x >= 30_000.0)
            ),
        );
        let _ = writeln!(
            s,
            "   alarm-tray CPU per message vs bare consumer: {}× (target ≤ 2.0: {}); ingest vs bare {} (target ≥ 0.95: {}); fsyncs per 1,000 messages: {}",
            f(&q["cpu_per_msg_vs_bare"], 2),
            verdict(q["cpu_per_msg_vs_bare"].as_f64().map(|x| x <= 2.0)),
            f(&q["vs_bare_throughput"], 2),
            verdict(q["vs_bare_throughput"].as_f64().map(|x| x >= 0.95)),
            f(&q["fsyncs_per_1000_msgs"], 1),
        );
        if !q["vs_node_nodeflate_throughput"].is_null() {
            let _ = writeln!(
                s,
                "   alarm-tray vs Node without deflate: {}×",
                f(&q["vs_node_nodeflate_throughput"], 2),
            );
        }
        if let Some(skipped) = ing["skipped"].as_array().filter(|a| !a.is_empty()) {
            let names: Vec<&str> = skipped.iter().filter_map(Value::as_str).collect();
            let _ = writeln!(
                s,
                "   (not run: {}; BENCH_INGEST=all runs every contender)",
                names.join(", ")
            );
        }
        if !q["vs_bare_noack_throughput"].is_null() {
            let _ = writeln!(
                s,
                "   alarm-tray vs a consumer that confirms nothing (ack:auto): {}",
                f(&q["vs_bare_noack_throughput"], 2),
            );
        }
    } else if let Some(e) = ing["error"].as_str() {
        let _ = writeln!(s, "\n1. Ingest: FAILED: {e}");
    }
    let lat = &r["latency"];
    if let Some(runs) = lat["runs"].as_array() {
        let _ = writeln!(
            s,
            "\n2. Latency, publish → popup decision (through the broker)"
        );
        let _ = writeln!(
            s,
            "   {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "msg/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "alarms"
        );
        for run in runs {
            latency_row(&mut s, run);
        }
        if let Some(bare) = lat["broker_only"].as_array() {
            let _ = writeln!(
                s,
                "   the same traffic to a bare consumer (broker and machine alone):"
            );
            for run in bare {
                latency_row(&mut s, run);
            }
        }
        let p99 = runs
            .iter()
            .find(|x| x["rate"] == 2000)
            .and_then(|x| x["p99_ms"].as_f64());
        let bare99 = lat["broker_only"]
            .as_array()
            .and_then(|b| b.iter().find(|x| x["rate"] == 2000))
            .and_then(|x| x["p99_ms"].as_f64());
        let vs = p99.zip(bare99).map(|(a, b)| a / b);
        let _ = writeln!(
            s,
            "   p99 at 2,000 msg/s under 20 ms: {}; vs the broker alone: {}× (target ≤ 2: {})",
            verdict(p99.map(|x| x < 20.0)),
            vs.map_or("—".into(), |x| format!("{x:.2}")),
            verdict(vs.map(|x| x <= 2.0))
        );
    } else if let Some(e) = lat["error"].as_str() {
        let _ = writeln!(s, "\n2. Latency: FAILED: {e}");
    }
    let fp = &r["footprint"];
    if fp.is_object() && fp.get("error").is_none() {
        let _ = writeln!(
            s,
            "\n3. Footprint (release, Xvfb; idle {} s each)",
            fp["idle_secs"]
        );
        let _ = writeln!(s, "   {:<44} {:>9} {:>9}", "state", "RSS MB", "PSS MB");
        for (label, key) in [
            ("tray, first GTK client on the display", "first_gtk_client"),
            ("tray, window never opened", "tray_never_opened"),
            ("window open (monitor + window + WebKit)", "window_open"),
            (
                "tray alone after the window was closed",
                "tray_after_window",
            ),
            ("gotify-tray (first-run dialog)", "gotify_tray"),
        ] {
            let v = &fp[key];
            if let Some(e) = v["error"].as_str() {
                let _ = writeln!(s, "   {label:<44} FAILED: {e}");
                continue;
            }
            let _ = writeln!(
                s,
                "   {label:<44} {:>9} {:>9}",
                f(&v["total_rss_mb"], 1),
                f(&v["total_pss_mb"], 1)
            );
            if let Some(ps) = v["processes"].as_array() {
                if ps.len() > 1 {
                    for p in ps {
                        let _ = writeln!(
                            s,
                            "     {:<42} {:>9} {:>9}",
                            format!(
                                "{} ({})",
                                p["role"].as_str().unwrap_or(""),
                                p["comm"].as_str().unwrap_or("")
                            ),
                            f(&p["rss_mb"], 1),
                            f(&p["pss_mb"], 1)
                        );
                    }
                }
            }
        }
        let alone = fp["tray_after_window"]["total_pss_mb"].as_f64();
        let _ = writeln!(
            s,
            "   tray alone < 60 MB PSS: {}; no WebKit process: {}; idle CPU {} s/min with {} live feeds (< 0.5: {}); start-up to live {} ms",
            verdict(alone.map(|x| x < 60.0)),
            verdict(fp["tray_after_window_webkit"].as_bool().map(|w| !w)),
            f(&fp["idle_cpu_secs_per_min"], 3),
            fp["live_feeds_during_idle"],
            verdict(fp["idle_cpu_secs_per_min"].as_f64().map(|x| x < 0.5)),
            f(&fp["startup_to_live_ms"], 0),
        );
        if let Some(left) = fp["window_children_left"].as_array() {
            let _ = writeln!(
                s,
                "   the window did not close after {} close requests: {} of its processes are in the \"tray alone\" figures",
                fp["close_requests"],
                left.len()
            );
        } else if fp["close_requests"].as_u64().is_some_and(|n| n > 1) {
            let _ = writeln!(
                s,
                "   the window closed only after {} close requests",
                fp["close_requests"]
            );
        }
        let _ = writeln!(s, "   note: {}", fp["caveat"].as_str().unwrap_or(""));
    } else if let Some(e) = fp["error"].as_str() {
        let _ = writeln!(s, "\n3. Footprint: FAILED: {e}");
    }
    let h = &r["history"];
    if let Some(qs) = h["queries"].as_array() {
        let _ = writeln!(
            s,
            "\n4. History queries on {} events ({} MB)",
            h["events"],
            f(&h["db_mb"], 0)
        );
        for q in qs {
            let med = q["median_ms"].as_f64();
            let _ = writeln!(
                s,
                "   {:<22} {:>9} ms median ({:>9} ms first, {} rows)  < 50 ms: {}",
                q["query"].as_str().unwrap_or(""),
                f(&q["median_ms"], 2),
                f(&q["first_ms"], 2),
                q["rows"],
                verdict(med.map(|x| x < 50.0))
            );
        }
    } else if let Some(e) = h["error"].as_str() {
        let _ = writeln!(s, "\n4. History: FAILED: {e}");
    }
    let el = &r["element"];
    if let Some(runs) = el["runs"].as_array() {
        let _ = writeln!(
            s,
            "\n5. ELEMENT feed + engine from the project's ELEMENT server"
        );
        for run in runs {
            match run["error"].as_str() {
                Some(e) => {
                    let _ = writeln!(
                        s,
                        "   {:<9} FAILED: {e}",
                        run["mode"].as_str().unwrap_or("")
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "   {:<9} {:>9} readings/s ({} readings)",
                        run["mode"].as_str().unwrap_or(""),
                        f(&run["readings_per_s"], 0),
                        run["readings"]
                    );
                }
            }
        }
        let cpu = &el["cpu_per_reading"];
        match cpu["error"].as_str() {
            Some(e) => {
                let _ = writeln!(s, "   CPU per reading: FAILED: {e}");
            }
            None if cpu.is_object() => {
                let _ = writeln!(
                    s,
                    "   CPU per reading (catch-up, own processes): alarm-tray {} µs at {}/s, bare WebSocket reader {} µs at {}/s: {}×",
                    f(&cpu["alarm-tray"]["cpu_us_per_reading"], 1),
                    f(&cpu["alarm-tray"]["readings_per_s"], 0),
                    f(&cpu["bare"]["cpu_us_per_reading"], 1),
                    f(&cpu["bare"]["readings_per_s"], 0),
                    f(&cpu["cpu_vs_bare"], 2),
                );
            }
            None => {}
        }
    } else if let Some(e) = el["error"].as_str() {
        let _ = writeln!(s, "\n5. ELEMENT: FAILED: {e}");
    }
    let sv = &r["sensor_view"];
    if sv["answer"].is_object() {
        let _ = writeln!(
            s,
            "\n6. Sensor view: {} readings ({} sensors × {} days), {} buckets",
            sv["readings"], sv["sensors"], sv["days"], sv["buckets"]
        );
        let a = &sv["answer"];
        let _ = writeln!(
            s,
            "   monitor answer        {:>9} ms median ({:>9} ms first, {:>9} ms max)  ≤ 50 ms: {}",
            f(&a["median_ms"], 1),
            f(&a["first_ms"], 1),
            f(&a["max_ms"], 1),
            verdict(a["median_ms"].as_f64().map(|x| x <= 50.0))
        );
        let w = &sv["window"];
        if let Some(e) = w["error"].as_str() {
            let _ = writeln!(s, "   window: FAILED: {e}");
        } else {
            let _ = writeln!(
                s,
                "   window round trip     {:>9} ms median",
                f(&w["round_trip"]["median_ms"], 1)
            );
            let _ = writeln!(
                s,
                "   window draw           {:>9} ms median ({:>9} ms max)  ≤ 200 ms: {}",
                f(&w["drawn"]["median_ms"], 1),
                f(&w["drawn"]["max_ms"], 1),
                verdict(w["drawn"]["median_ms"].as_f64().map(|x| x <= 200.0))
            );
        }
    } else if let Some(e) = sv["error"].as_str() {
        let _ = writeln!(s, "\n6. Sensor view: FAILED: {e}");
    }
    let parts: Vec<String> = r["section_secs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{} {} s",
                        x["section"].as_str().unwrap_or("?"),
                        f(&x["secs"], 0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "\ntotal {} s ({})",
        f(&r["total_secs"], 0),
        parts.join(", ")
    );
    s
}

/// One line of the latency table: rate, percentiles, max and sample count.
fn latency_row(s: &mut String, run: &Value) {
    let commits = match run["commits_per_1000_msgs"].as_f64() {
        Some(c) => format!("   {c:.0} commits (fsyncs) per 1,000 msgs"),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "   {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}{commits}",
        f(&run["rate"], 0),
        f(&run["p50_ms"], 2),
        f(&run["p95_ms"], 2),
        f(&run["p99_ms"], 2),
        f(&run["max_ms"], 1),
        f(&run["samples"], 0)
    );
}
