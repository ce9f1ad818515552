//! A sensor's readings over a range, reduced to what a chart can show: the minimum and
//! maximum of each bucket (one bucket per pixel column), so a one-minute spike stays visible
//! in a 30-day view, and an empty bucket stays empty (a gap is drawn as a gap, never
//! bridged). Also the range's figures: min, max, mean, time outside the limits and the mean
//! kinetic temperature. Pure functions: no I/O, no clock.

use serde::{Deserialize, Serialize};

use super::model::AlarmRow;
use crate::settings::{Limit, RuleTarget, ThresholdRule};

/// Most buckets a request may ask for (a 4K screen's width with room to spare).
pub const MAX_BUCKETS: u32 = 8192;

/// One pixel column of the chart: `t_ms` is the bucket's start; `min`/`max`/`mean` are
/// `None` when no reading fell in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Bucket {
    pub t_ms: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub count: u32,
}

/// A limit that applies to the sensor: `low` for "below", `high` for "above", both for
/// "outside". `rule` names where it comes from (the rule's name, or the device's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LimitLine {
    pub rule: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub origin: LimitOrigin,
}

/// Where a limit line comes from: one of this app's threshold rules, or the limits the
/// sensor carries upstream (Saveris's own alarm limits, read by the Data API of issue 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum LimitOrigin {
    Rule,
    Saveris,
}

/// What a rule can be aimed at, for one sensor: the sensor itself, the devices its events
/// came from and the ELEMENT tags of the subscriptions that delivered them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorScope {
    pub sensor: String,
    pub devices: Vec<String>,
    pub tags: Vec<String>,
}

/// The range's figures, from every reading (not from the buckets).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ts_rs::TS)]
pub struct RangeStats {
    pub count: u32,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Time the readings spent outside any limit line, in ms (a reading holds until the
    /// next one, but never across a gap).
    pub outside_ms: i64,
    /// Mean kinetic temperature (ΔH/R = 10,000 K), for temperatures in °C only.
    pub mkt: Option<f64>,
}

/// What the sensor view shows for one range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct SensorView {
    pub sensor: String,
    pub name: Option<String>,
    pub quantity: Option<String>,
    pub unit: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub buckets: Vec<Bucket>,
    pub limits: Vec<LimitLine>,
    /// The sensor's alarms that overlap the range (raised, steps, acknowledged, cleared).
    pub alarms: Vec<AlarmRow>,
    pub stats: RangeStats,
}

/// The limits of the enabled rules aimed at this sensor, at a device or ELEMENT tag it
/// reports through (`scope`), or at every sensor, for this quantity (or any) — the same
/// targets the rule engine matches events with.
pub fn limit_lines(
    rules: &[ThresholdRule],
    scope: &SensorScope,
    quantity: Option<&str>,
) -> Vec<LimitLine> {
    rules
        .iter()
        .filter(|r| r.enabled)
        .filter(|r| match &r.target {
            RuleTarget::All => true,
            RuleTarget::Sensor(s) => *s == scope.sensor,
            RuleTarget::Device(d) => scope.devices.iter().any(|x| x == d),
            RuleTarget::Tag(t) => scope.tags.iter().any(|x| x == t),
        })
        .filter(|r| {
            r.quantity.is_empty() || quantity.is_none_or(|q| q.eq_ignore_ascii_case(&r.quantity))
        })
        .filter_map(|r| {
            let (low, high) = match r.limit {
                Limit::Above { value } => (None, Some(value)),
                Limit::Below { value } => (Some(value), None),
                Limit::Outside { low, high } => (Some(low), Some(high)),
                Limit::NoData { .. } => return None,
            };
            Some(LimitLine {
                rule: r.name.clone(),
                low,
                high,
                origin: LimitOrigin::Rule,
            })
        })
        .collect()
}

/// True for a unit (or, without one, a quantity name) that says degrees Celsius.
pub fn is_celsius(unit: Option<&str>, quantity: Option<&str>) -> bool {
    match unit.map(str::trim) {
        Some(u) if !u.is_empty() => {
            matches!(
                u,
                "°C" | "℃" | "C" | "degC" | "deg C" | "celsius" | "Celsius"
            )
        }
        _ => quantity.is_some_and(|q| q.to_ascii_lowercase().contains("temp")),
    }
}

/// `points` (time ms, value), oldest first, into `buckets` equal buckets over
/// `[from_ms, to_ms)`. Points outside the range are ignored.
pub fn reduce(points: &[(i64, f64)], from_ms: i64, to_ms: i64, buckets: u32) -> Vec<Bucket> {
    let n = buckets.clamp(1, MAX_BUCKETS) as i64;
    let span = (to_ms - from_ms).max(1);
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            t_ms: from_ms + span * i / n,
            min: None,
            max: None,
            mean: None,
            count: 0,
        })
        .collect();
    let mut sums = vec![0.0f64; n as usize];
    for &(t, v) in points {
        if t < from_ms || t >= to_ms || !v.is_finite() {
            continue;
        }
        // i128: span × n cannot overflow for any i64 times.
        let i = (((t - from_ms) as i128 * n as i128) / span as i128) as usize;
        let Some(b) = out.get_mut(i) else { continue };
        b.min = Some(b.min.map_or(v, |m| m.min(v)));
        b.max = Some(b.max.map_or(v, |m| m.max(v)));
        b.count += 1;
        sums[i] += v;
    }
    for (b, s) in out.iter_mut().zip(sums) {
        if b.count > 0 {
            b.mean = Some(s / b.count as f64);
        }
    }
    out
}

/// True when `v` is past any of the limits.
fn outside(v: f64, limits: &[LimitLine]) -> bool {
    limits
        .iter()
        .any(|l| l.low.is_some_and(|lo| v < lo) || l.high.is_some_and(|hi| v > hi))
}

/// Figures of the readings in `[from_ms, to_ms)`. A reading counts as lasting until the
/// next one, unless that is more than `gap_ms` away (a gap): then it counts for nothing
/// beyond the gap threshold. `temperature_c`: the values are °C, so the MKT is computed.
pub fn stats(
    points: &[(i64, f64)],
    from_ms: i64,
    to_ms: i64,
    limits: &[LimitLine],
    gap_ms: i64,
    temperature_c: bool,
) -> RangeStats {
    let inside: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|&(t, v)| t >= from_ms && t < to_ms && v.is_finite())
        .collect();
    if inside.is_empty() {
        return RangeStats::default();
    }
    let mut s = RangeStats {
        count: inside.len() as u32,
        ..Default::default()
    };
    let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    for &(_, v) in &inside {
        lo = lo.min(v);
        hi = hi.max(v);
        sum += v;
    }
    s.min = Some(lo);
    s.max = Some(hi);
    s.mean = Some(sum / inside.len() as f64);
    for w in inside.windows(2) {
        let (t0, v0) = w[0];
        let dt = w[1].0 - t0;
        if outside(v0, limits) && dt <= gap_ms {
            s.outside_ms += dt;
        }
    }
    if temperature_c {
        s.mkt = mean_kinetic_temperature(inside.iter().map(|&(_, v)| v));
    }
    s
}

/// Mean kinetic temperature in °C of equally weighted readings in °C, with ΔH/R = 10,000 K
/// (USP <1079>): T = (ΔH/R) / −ln(Σ e^(−ΔH/(R·Tᵢ)) / n).
pub fn mean_kinetic_temperature(values: impl Iterator<Item = f64>) -> Option<f64> {
    const DH_R: f64 = 10_000.0;
    let (mut sum, mut n) = (0.0, 0u64);
    for c in values {
        let k = c + 273.15;
        if k <= 0.0 {
            return None;
        }
        sum += (-DH_R / k).exp();
        n += 1;
    }
    if n == 0 || sum <= 0.0 {
        return None;
    }
    Some(DH_R / -(sum / n as f64).ln() - 273.15)
}

/// The gap threshold for a series: three times its typical (median) step, at least
/// `min_ms` — so a sensor that reports every 15 minutes is not shown as all gaps.
pub fn gap_threshold(points: &[(i64, f64)], min_ms: i64) -> i64 {
    let mut steps: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if steps.is_empty() {
        return min_ms;
    }
    let mid = steps.len() / 2;
    let (_, median, _) = steps.select_nth_unstable(mid);
    (*median * 3).max(min_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extremes_of_every_bucket_survive() {
        // 30 days at one reading per minute, around 5; one one-minute spike to 12 and one
        // dip to -3 somewhere in the middle.
        let from = 0i64;
        let minute = 60_000i64;
        let to = 30 * 24 * 60 * minute;
        let mut pts: Vec<(i64, f64)> = (0..30 * 24 * 60)
            .map(|i| (i * minute, 5.0 + ((i % 7) as f64) * 0.1))
            .collect();
        pts[20_001].1 = 12.0;
        pts[33_333].1 = -3.0;
        let b = reduce(&pts, from, to, 800);
        assert_eq!(b.len(), 800);
        // Every bucket's min and max are the true extremes of the points in it.
        for (i, bucket) in b.iter().enumerate() {
            let end = b.get(i + 1).map_or(to, |n| n.t_ms);
            let inside: Vec<f64> = pts
                .iter()
                .filter(|(t, _)| *t >= bucket.t_ms && *t < end)
                .map(|p| p.1)
                .collect();
            let lo = inside.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(bucket.min, Some(lo), "bucket {i}");
            assert_eq!(bucket.max, Some(hi), "bucket {i}");
            assert_eq!(bucket.count as usize, inside.len());
        }
        assert_eq!(
            b.iter().filter_map(|x| x.max).fold(f64::MIN, f64::max),
            12.0
        );
        assert_eq!(
            b.iter().filter_map(|x| x.min).fold(f64::MAX, f64::min),
            -3.0
        );
    }

    #[test]
    fn gaps_stay_gaps() {
        // Readings in the first and last quarter only: the middle buckets are empty.
        let pts: Vec<(i64, f64)> = (0..100)
            .filter(|i| !(25..75).contains(i))
            .map(|i| (i * 1000, 4.0))
            .collect();
        let b = reduce(&pts, 0, 100_000, 10);
        let empty: Vec<usize> = (0..10).filter(|&i| b[i].count == 0).collect();
        assert_eq!(empty, vec![3, 4, 5, 6]);
        for i in empty {
            assert_eq!((b[i].min, b[i].max, b[i].mean), (None, None, None));
        }
        assert_eq!(b[2].max, Some(4.0), "a bucket half filled is not a gap");
        // Time outside a limit never runs across the gap.
        let lim = [LimitLine {
            rule: "r".into(),
            low: None,
            high: Some(3.0),
            origin: LimitOrigin::Rule,
        }];
        let s = stats(&pts, 0, 100_000, &lim, 3000, false);
        assert_eq!(
            s.outside_ms, 48_000,
            "48 steps of 1 s; the 51 s gap is not counted"
        );
        assert_eq!(s.count, 50);
    }

    #[test]
    fn points_outside_the_range_are_ignored_and_buckets_start_at_from() {
        let pts = [(-5, 100.0), (0, 1.0), (9_999, 2.0), (10_000, 100.0)];
        let b = reduce(&pts, 0, 10_000, 2);
        assert_eq!(b[0].t_ms, 0);
        assert_eq!(b[1].t_ms, 5_000);
        assert_eq!(b[0].max, Some(1.0));
        assert_eq!(b[1].max, Some(2.0));
    }

    #[test]
    fn stats_and_mean_kinetic_temperature() {
        let lim = [LimitLine {
            rule: "fridge".into(),
            low: Some(2.0),
            high: Some(8.0),
            origin: LimitOrigin::Rule,
        }];
        // 2, 10 (outside for 60 s), 5, 1 (outside, the last reading counts for nothing).
        let pts = [(0, 2.0), (60_000, 10.0), (120_000, 5.0), (180_000, 1.0)];
        let s = stats(&pts, 0, 200_000, &lim, 120_000, true);
        assert_eq!(s.min, Some(1.0));
        assert_eq!(s.max, Some(10.0));
        assert_eq!(s.mean, Some(4.5));
        assert_eq!(s.outside_ms, 60_000);
        // MKT of a constant is that constant; of a spread it lies above the mean.
        let flat = mean_kinetic_temperature([5.0, 5.0].into_iter()).unwrap_or_default();
        assert!((flat - 5.0).abs() < 1e-9, "{flat}");
        let mkt = s.mkt.unwrap_or_default();
        assert!(mkt > 4.5 && mkt < 10.0, "{mkt}");
        // Known value: 20 °C and 30 °C equally → 26.26 °C (ΔH/R = 10,000 K).
        let two = mean_kinetic_temperature([20.0, 30.0].into_iter()).unwrap_or_default();
        assert!((two - 26.26).abs() < 0.01, "{two}");
        assert_eq!(stats(&pts, 0, 200_000, &lim, 120_000, false).mkt, None);
    }

    #[test]
    fn the_limits_of_the_rules_for_the_sensor_are_returned() {
        let rule = |name: &str, target: RuleTarget, quantity: &str, limit: Limit| ThresholdRule {
            name: name.into(),
            target,
            quantity: quantity.into(),
            limit,
            ..Default::default()
        };
        let mut off = rule("off", RuleTarget::All, "", Limit::Above { value: 1.0 });
        off.enabled = false;
        let rules = vec![
            rule(
                "fridge",
                RuleTarget::Sensor("s1".into()),
                "",
                Limit::Outside {
                    low: 2.0,
                    high: 8.0,
                },
            ),
            rule(
                "other",
                RuleTarget::Sensor("s2".into()),
                "",
                Limit::Above { value: 9.0 },
            ),
            rule(
                "hum",
                RuleTarget::All,
                "humidity",
                Limit::Above { value: 70.0 },
            ),
            rule("silence", RuleTarget::All, "", Limit::NoData { minutes: 5 }),
            off,
        ];
        let s1 = SensorScope {
            sensor: "s1".into(),
            ..Default::default()
        };
        let l = limit_lines(&rules, &s1, Some("temperature"));
        assert_eq!(
            l,
            vec![LimitLine {
                rule: "fridge".into(),
                low: Some(2.0),
                high: Some(8.0),
                origin: LimitOrigin::Rule,
            }]
        );
        let names: Vec<String> = limit_lines(&rules, &s1, Some("Humidity"))
            .into_iter()
            .map(|l| l.rule)
            .collect();
        assert_eq!(names, vec!["fridge", "hum"]);
        assert!(is_celsius(Some("°C"), None));
        assert!(!is_celsius(Some("%RH"), Some("temperature")));
        assert!(is_celsius(None, Some("Temperature")));
    }

    #[test]
    fn rules_aimed_at_the_sensors_device_or_tag_draw_their_limits() {
        let rule = |name: &str, target: RuleTarget, limit: Limit| ThresholdRule {
            name: name.into(),
            target,
            limit,
            ..Default::default()
        };
        let rules = vec![
            rule(
                "device",
                RuleTarget::Device("dev-1".into()),
                Limit::Above { value: 8.0 },
            ),
            rule(
                "tag",
                RuleTarget::Tag("cold".into()),
                Limit::Below { value: 2.0 },
            ),
            rule(
                "other device",
                RuleTarget::Device("dev-2".into()),
                Limit::Above { value: 30.0 },
            ),
            rule(
                "other tag",
                RuleTarget::Tag("warm".into()),
                Limit::Above { value: 30.0 },
            ),
        ];
        let scope = SensorScope {
            sensor: "s1".into(),
            devices: vec!["dev-1".into()],
            tags: vec!["cold".into()],
        };
        let l = limit_lines(&rules, &scope, Some("temperature"));
        let got: Vec<(&str, Option<f64>, Option<f64>)> =
            l.iter().map(|l| (l.rule.as_str(), l.low, l.high)).collect();
        assert_eq!(
            got,
            vec![("device", None, Some(8.0)), ("tag", Some(2.0), None)]
        );
        // The same sensor seen without its device and tags: no line from them.
        let bare = SensorScope {
            sensor: "s1".into(),
            ..Default::default()
        };
        assert!(limit_lines(&rules, &bare, None).is_empty());
    }

    #[test]
    fn gap_threshold_follows_the_typical_step() {
        let pts: Vec<(i64, f64)> = (0..10).map(|i| (i * 900_000, 1.0)).collect();
        assert_eq!(gap_threshold(&pts, 60_000), 2_700_000);
        assert_eq!(gap_threshold(&[], 60_000), 60_000);
    }
}
