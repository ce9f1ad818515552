//! Threshold rules the user defines on measurements and readings: a pure state machine
//! (no I/O, no clock of its own) fed with events and ticks.
//!
//! Per (rule, sensor) it keeps whether an alarm is raised, how many consecutive values
//! breached and since when. A raise needs `min_count` consecutive breaching values that
//! lasted `min_duration_secs`; a clear needs a value back past the limit ∓ hysteresis, so a
//! value flapping around the limit raises once.

use std::collections::HashMap;

use crate::event::{Event, EventKind, Source};
use crate::settings::{ElementScope, Limit, RuleTarget, Settings, ThresholdRule};
use crate::units::{self, Unit};

/// An alarm a rule raises.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAlarm {
    /// `rule:<rule id>:<sensor>`: what a later clear refers to.
    pub alarm_key: String,
    pub rule_id: String,
    pub rule_name: String,
    pub source: Source,
    pub account: String,
    pub sensor: String,
    pub device: Option<String>,
    pub name: Option<String>,
    pub quantity: Option<String>,
    /// `None` for a "no data" alarm.
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// The limit in words ("above 8", "outside 2 … 8", "no data for 30 min").
    pub limit: String,
    /// When the last value was measured (ms).
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleOutcome {
    Raise(RuleAlarm),
    Clear {
        alarm_key: String,
        rule_id: String,
        sensor: String,
        value: Option<f64>,
    },
}

/// What one (rule, sensor) pair remembers: numbers only, there is one per tracked sensor
/// and rule.
#[derive(Debug, Clone, Copy, Default)]
struct PairState {
    raised: bool,
    /// Consecutive breaching values so far.
    count: u32,
    /// When the current breach started (ms), while one is pending.
    since_ms: Option<i64>,
    last_value: f64,
    last_seen_ms: i64,
}

/// How a sensor is described in an alarm raised on a tick (no event at hand then); kept
/// once per sensor, shared by all rules.
#[derive(Debug, Clone)]
struct SensorInfo {
    sensor: Box<str>,
    source: Source,
    account: Box<str>,
    device: Option<Box<str>>,
    name: Option<Box<str>>,
    unit: Option<Box<str>>,
}

struct CompiledRule {
    rule: ThresholdRule,
    /// `rule.unit` parsed once; `None` compares values as received.
    unit: Option<Unit>,
    /// Per sensor index (see [`Rules::sensors`]).
    states: HashMap<u32, PairState>,
}

/// All enabled rules with their state.
#[derive(Default)]
pub struct Rules {
    rules: Vec<CompiledRule>,
    /// (account, subscription) → ELEMENT tag of the subscription's scope.
    tags: HashMap<(String, String), String>,
    /// Sensor identity → index into `sensors`.
    index: HashMap<Box<str>, u32>,
    /// Sensor identity → the field the user chose as its main value.
    main_fields: HashMap<String, String>,
    sensors: Vec<SensorInfo>,
    /// (ELEMENT parser, field in lower case) → the unit the user confirmed for it.
    field_units: HashMap<(String, String), Unit>,
}

fn refresh(opt: &mut Option<Box<str>>, new: Option<&str>) {
    // Allocates only when the value changed.
    if let Some(n) = new {
        if opt.as_deref() != Some(n) {
            *opt = Some(n.into());
        }
    }
}

/// The index of `sensor`, adding it (described by `e` when there is one).
fn intern(
    index: &mut HashMap<Box<str>, u32>,
    sensors: &mut Vec<SensorInfo>,
    sensor: &str,
    e: Option<&Event>,
) -> u32 {
    if let Some(&i) = index.get(sensor) {
        if let (Some(e), Some(info)) = (e, sensors.get_mut(i as usize)) {
            if e.source != Source::App {
                info.source = e.source;
            }
            if !e.account.is_empty() && *info.account != *e.account {
                info.account = e.account.as_str().into();
            }
            refresh(&mut info.device, e.device.as_deref());
            refresh(&mut info.name, e.name.as_deref());
            refresh(&mut info.unit, e.unit.as_deref());
        }
        return i;
    }
    let i = sensors.len() as u32;
    sensors.push(SensorInfo {
        sensor: sensor.into(),
        source: e.map_or(Source::App, |e| e.source),
        account: e.map_or("", |e| e.account.as_str()).into(),
        device: e.and_then(|e| e.device.as_deref()).map(Into::into),
        name: e.and_then(|e| e.name.as_deref()).map(Into::into),
        unit: e.and_then(|e| e.unit.as_deref()).map(Into::into),
    });
    index.insert(sensor.into(), i);
    i
}

fn fmt_num(v: f64) -> String {
    // 8 → "8", 8.25 → "8.25": limits read as the user typed them.
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The limit of a rule in words.
pub fn describe_limit(limit: &Limit) -> String {
    match limit {
        Limit::Above { value } => format!("above {}", fmt_num(*value)),
        Limit::Below { value } => format!("below {}", fmt_num(*value)),
        Limit::Outside { low, high } => format!("outside {} … {}", fmt_num(*low), fmt_num(*high)),
        Limit::NoData { minutes } => format!("no data for {minutes} min"),
    }
}

/// The limit in words with the rule's unit ("above 8 °C"); without one as [`describe_limit`].
pub fn describe_limit_in(limit: &Limit, unit: &str) -> String {
    let unit = units::canonical(unit);
    if unit.is_empty() {
        return describe_limit(limit);
    }
    match limit {
        Limit::Above { value } => format!("above {} {unit}", fmt_num(*value)),
        Limit::Below { value } => format!("below {} {unit}", fmt_num(*value)),
        Limit::Outside { low, high } => {
            format!("outside {} … {} {unit}", fmt_num(*low), fmt_num(*high))
        }
        Limit::NoData { .. } => describe_limit(limit),
    }
}

/// The unit of the value a rule looks at: the event's unit when the value is the event's
/// own quantity (Saveris measurements), else for an ELEMENT field the unit the user
/// confirmed for that field of the reading's parser.
fn unit_of(
    e: &Event,
    field: Option<&str>,
    field_units: &HashMap<(String, String), Unit>,
) -> Option<Unit> {
    let own = match (field, e.quantity.as_deref()) {
        (None, _) | (_, None) => true,
        (Some(f), Some(q)) => f.eq_ignore_ascii_case(q),
    };
    let sent = if own {
        e.unit.as_deref().and_then(Unit::parse)
    } else {
        None
    };
    sent.or_else(|| {
        let parser = e.parser.as_deref()?;
        let f = field.or(e.quantity.as_deref())?;
        field_units
            .get(&(parser.to_string(), f.to_lowercase()))
            .cloned()
    })
}

/// `x` (in `reading`) expressed in the rule's unit. A rule without a unit, or a value
/// without one, compares the number as received (rules saved before units existed, and
/// ELEMENT fields no one gave a unit yet); units that do not convert give `None`.
fn in_rule_unit(rule: Option<&Unit>, reading: Option<&Unit>, x: f64) -> Option<f64> {
    match (rule, reading) {
        (Some(r), Some(u)) => units::convert(x, u, r),
        _ => Some(x),
    }
}

fn breaches(limit: &Limit, x: f64) -> bool {
    match *limit {
        Limit::Above { value } => x > value,
        Limit::Below { value } => x < value,
        Limit::Outside { low, high } => x < low || x > high,
        Limit::NoData { .. } => false,
    }
}

/// Back past the limit ∓ hysteresis.
fn cleared(limit: &Limit, h: f64, x: f64) -> bool {
    match *limit {
        Limit::Above { value } => x <= value - h,
        Limit::Below { value } => x >= value + h,
        Limit::Outside { low, high } => {
            // A hysteresis wider than half the band would make clearing impossible.
            let h = h.min((high - low) / 2.0);
            x >= low + h && x <= high - h
        }
        Limit::NoData { .. } => true,
    }
}

impl Rules {
    pub fn new(settings: &Settings) -> Self {
        let mut r = Rules::default();
        r.update(settings);
        r
    }

    /// Applies new settings. A rule whose definition changed (or that went away) loses its
    /// state; the keys of its raised alarms are returned so the engine clears them.
    pub fn update(&mut self, settings: &Settings) -> Vec<String> {
        let mut old: HashMap<String, CompiledRule> = self
            .rules
            .drain(..)
            .map(|c| (c.rule.id.clone(), c))
            .collect();
        for rule in settings
            .rules
            .iter()
            .filter(|r| r.enabled && r.validate().is_ok())
        {
            let states = match old.remove(&rule.id) {
                Some(prev) if prev.rule == *rule => prev.states,
                Some(prev) => {
                    old.insert(rule.id.clone(), prev);
                    HashMap::new()
                }
                None => HashMap::new(),
            };
            self.rules.push(CompiledRule {
                unit: Unit::parse(&rule.unit),
                rule: rule.clone(),
                states,
            });
        }
        self.main_fields = settings
            .sensors
            .iter()
            .filter(|(_, p)| !p.main_field.trim().is_empty())
            .map(|(s, p)| (s.clone(), p.main_field.trim().to_string()))
            .collect();
        self.field_units = settings
            .element_units
            .iter()
            .flat_map(|(parser, fields)| {
                fields.iter().filter_map(move |(f, u)| {
                    Some(((parser.clone(), f.to_lowercase()), Unit::parse(u)?))
                })
            })
            .collect();
        self.tags.clear();
        for acc in &settings.element {
            for sub in &acc.subscriptions {
                if let ElementScope::Tag(t) = &sub.scope {
                    self.tags
                        .insert((acc.id.clone(), sub.id.clone()), t.clone());
                }
            }
        }
        let mut dropped = Vec::new();
        for (id, c) in old {
            for (i, st) in c.states {
                if let (true, Some(info)) = (st.raised, self.sensors.get(i as usize)) {
                    dropped.push(alarm_key(&id, &info.sensor));
                }
            }
        }
        dropped
    }

    /// After a restart: the alarm of (rule, sensor) is still active in history.
    pub fn restore_raised(&mut self, rule_id: &str, sensor: &str, now_ms: i64) {
        if let Some(c) = self.rules.iter_mut().find(|c| c.rule.id == rule_id) {
            let i = intern(&mut self.index, &mut self.sensors, sensor, None);
            let st = c.states.entry(i).or_default();
            st.raised = true;
            st.last_seen_ms = st.last_seen_ms.max(now_ms);
        }
    }

    /// Starts the silence clock of "no data" rules for a sensor known from history.
    pub fn seed_seen(&mut self, e: &Event) {
        let at = e.measured_at.unwrap_or(e.received_at).as_millisecond();
        let Some(sensor) = sensor_of(e) else { return };
        for c in &mut self.rules {
            if matches!(c.rule.limit, Limit::NoData { .. })
                && matches_target(&c.rule, e, &self.tags)
            {
                let i = intern(&mut self.index, &mut self.sensors, sensor, Some(e));
                let st = c.states.entry(i).or_default();
                st.last_seen_ms = st.last_seen_ms.max(at);
            }
        }
    }

    /// Gives an ELEMENT reading (which arrives without units) the unit the user confirmed
    /// for its main field's parser, so history, popups and the dashboard carry it.
    pub fn fill_unit(&self, e: &mut Event) {
        if e.unit.is_none() && e.parser.is_some() {
            e.unit = unit_of(e, None, &self.field_units).map(|u| u.symbol().to_string());
        }
        // The other fields' units too, for their last values (issue 20).
        if e.parser.is_some() && e.field_units.is_empty() {
            let main = e.quantity.as_deref();
            e.field_units = (e.fields.iter())
                .filter(|(f, _)| Some(f.as_str()) != main)
                .filter_map(|(f, _)| {
                    let u = unit_of(e, Some(f), &self.field_units)?;
                    Some((f.clone(), u.symbol().to_string()))
                })
                .collect();
        }
    }

    /// Number of tracked (rule, sensor) pairs.
    pub fn tracked(&self) -> usize {
        self.rules.iter().map(|c| c.states.len()).sum()
    }

    /// Evaluates one stored event; outcomes are appended to `out`.
    pub fn on_event(&mut self, e: &Event, out: &mut Vec<RuleOutcome>) {
        if !matches!(e.kind, EventKind::Measurement | EventKind::Reading) || self.rules.is_empty() {
            return;
        }
        let Some(sensor) = sensor_of(e) else { return };
        let at = e.measured_at.unwrap_or(e.received_at).as_millisecond();
        // The sensor's index, looked up (and its description refreshed) once per event and
        // only when a rule applies.
        let mut idx: Option<u32> = None;
        for c in &mut self.rules {
            if !matches_target(&c.rule, e, &self.tags) {
                continue;
            }
            let main = self.main_fields.get(sensor).map(String::as_str);
            let Some((field, x)) = value_for(&c.rule, e, main) else {
                continue;
            };
            let rule = &c.rule;
            let reading_unit = unit_of(e, field, &self.field_units);
            // In the rule's unit; a value whose unit cannot apply is not this rule's input.
            let cx = if matches!(rule.limit, Limit::NoData { .. }) {
                x
            } else {
                match in_rule_unit(c.unit.as_ref(), reading_unit.as_ref(), x) {
                    Some(cx) => cx,
                    None => continue,
                }
            };
            let i = match idx {
                Some(i) => i,
                None => {
                    let i = intern(&mut self.index, &mut self.sensors, sensor, Some(e));
                    idx = Some(i);
                    i
                }
            };
            let st = c.states.entry(i).or_default();
            st.last_seen_ms = st.last_seen_ms.max(at);
            st.last_value = x;
            if matches!(rule.limit, Limit::NoData { .. }) {
                if st.raised {
                    st.raised = false;
                    out.push(RuleOutcome::Clear {
                        alarm_key: alarm_key(&rule.id, sensor),
                        rule_id: rule.id.clone(),
                        sensor: sensor.to_string(),
                        value: Some(x),
                    });
                }
                continue;
            }
            if st.raised {
                if cleared(&rule.limit, rule.hysteresis, cx) {
                    st.raised = false;
                    st.count = 0;
                    st.since_ms = None;
                    out.push(RuleOutcome::Clear {
                        alarm_key: alarm_key(&rule.id, sensor),
                        rule_id: rule.id.clone(),
                        sensor: sensor.to_string(),
                        value: Some(x),
                    });
                }
                continue;
            }
            if breaches(&rule.limit, cx) {
                st.count = st.count.saturating_add(1);
                let since = *st.since_ms.get_or_insert(at);
                if st.count >= rule.min_count && at - since >= duration_ms(rule) {
                    st.raised = true;
                    let info = self.sensors.get(i as usize);
                    let mut a = raise(rule, sensor, info, st, field.map(str::to_string), at);
                    a.unit = reading_unit.map(|u| u.symbol().to_string());
                    out.push(RuleOutcome::Raise(a));
                }
            } else {
                st.count = 0;
                st.since_ms = None;
            }
        }
    }

    /// Time-driven decisions: minimum durations reached without a new value, and sensors
    /// gone silent.
    pub fn on_tick(&mut self, now_ms: i64, out: &mut Vec<RuleOutcome>) {
        for c in &mut self.rules {
            let rule = &c.rule;
            match rule.limit {
                Limit::NoData { minutes } => {
                    let silence = i64::from(minutes) * 60_000;
                    for (i, st) in c.states.iter_mut() {
                        if !st.raised && st.last_seen_ms > 0 && now_ms - st.last_seen_ms > silence {
                            st.raised = true;
                            let info = self.sensors.get(*i as usize);
                            let sensor = info.map_or("", |s| &*s.sensor);
                            let mut a = raise(rule, sensor, info, st, None, st.last_seen_ms);
                            a.value = None;
                            out.push(RuleOutcome::Raise(a));
                        }
                    }
                }
                _ if rule.min_duration_secs > 0 => {
                    for (i, st) in c.states.iter_mut() {
                        let due = st.since_ms.is_some_and(|s| now_ms - s >= duration_ms(rule));
                        if !st.raised && st.count >= rule.min_count && due {
                            st.raised = true;
                            let at = st.last_seen_ms;
                            let info = self.sensors.get(*i as usize);
                            let sensor = info.map_or("", |s| &*s.sensor);
                            out.push(RuleOutcome::Raise(raise(rule, sensor, info, st, None, at)));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn duration_ms(rule: &ThresholdRule) -> i64 {
    i64::try_from(rule.min_duration_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn alarm_key(rule_id: &str, sensor: &str) -> String {
    format!("rule:{rule_id}:{sensor}")
}

fn sensor_of(e: &Event) -> Option<&str> {
    e.sensor.as_deref().or(e.device.as_deref())
}

fn raise(
    rule: &ThresholdRule,
    sensor: &str,
    info: Option<&SensorInfo>,
    st: &PairState,
    quantity: Option<String>,
    at_ms: i64,
) -> RuleAlarm {
    RuleAlarm {
        alarm_key: alarm_key(&rule.id, sensor),
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        source: info.map_or(Source::App, |i| i.source),
        account: info.map(|i| i.account.to_string()).unwrap_or_default(),
        sensor: sensor.to_string(),
        device: info.and_then(|i| i.device.as_deref()).map(String::from),
        name: info.and_then(|i| i.name.as_deref()).map(String::from),
        quantity: quantity.or_else(|| (!rule.quantity.is_empty()).then(|| rule.quantity.clone())),
        value: Some(st.last_value),
        unit: info.and_then(|i| i.unit.as_deref()).map(String::from),
        limit: describe_limit_in(&rule.limit, &rule.unit),
        at_ms,
    }
}

fn matches_target(
    rule: &ThresholdRule,
    e: &Event,
    tags: &HashMap<(String, String), String>,
) -> bool {
    match &rule.target {
        RuleTarget::All => true,
        RuleTarget::Sensor(s) => e.sensor.as_deref() == Some(s.as_str()),
        RuleTarget::Device(d) => e.device.as_deref() == Some(d.as_str()),
        RuleTarget::Tag(t) => {
            // Look up without allocating a key per event.
            tags.iter()
                .any(|((acc, sub), tag)| tag == t && *acc == e.account && *sub == e.subscription)
        }
    }
}

/// The (field name, value) a rule looks at: the quantity (Saveris) or field (ELEMENT
/// reading) the rule names, case-insensitive. A rule without one ("any field", which the
/// editor warns about) looks at the sensor's main value: the field the user chose for the
/// sensor if the event has it, else the event's own main value (for ELEMENT chosen by
/// name, temperature first: `feeds::element::fields`).
fn value_for<'e>(
    rule: &ThresholdRule,
    e: &'e Event,
    main_field: Option<&str>,
) -> Option<(Option<&'e str>, f64)> {
    let named = |name: &str| -> Option<(Option<&'e str>, f64)> {
        if let (Some(q), Some(v)) = (e.quantity.as_deref(), e.value) {
            if q.eq_ignore_ascii_case(name) {
                return Some((Some(q), v));
            }
        }
        e.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (Some(k.as_str()), *v))
    };
    let found = if !rule.quantity.is_empty() {
        named(&rule.quantity)
    } else {
        main_field
            .and_then(named)
            .or_else(|| e.value.map(|v| (e.quantity.as_deref(), v)))
    };
    found.filter(|(_, v)| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{ElementAccount, ElementSubscription};

    fn rule(limit: Limit) -> ThresholdRule {
        ThresholdRule {
            id: "r1".into(),
            name: "fridge".into(),
            limit,
            ..Default::default()
        }
    }

    fn rules(r: ThresholdRule) -> Rules {
        Rules::new(&Settings {
            rules: vec![r],
            ..Default::default()
        })
    }

    fn m(sensor: &str, v: f64, at_s: i64) -> Event {
        let mut e = Event::new(
            Source::Saveris,
            "a1",
            "measurements",
            EventKind::Measurement,
            format!("{sensor}-{at_s}"),
        );
        e.sensor = Some(sensor.into());
        e.quantity = Some("Temperature".into());
        e.value = Some(v);
        e.unit = Some("°C".into());
        e.measured_at = Some(jiff::Timestamp::from_second(at_s).unwrap());
        e
    }

    /// Feeds values (one per second) and returns "R"/"C" per outcome.
    fn run(r: &mut Rules, sensor: &str, values: &[f64], start_s: i64) -> String {
        let mut s = String::new();
        for (i, v) in values.iter().enumerate() {
            let mut out = Vec::new();
            r.on_event(&m(sensor, *v, start_s + i as i64), &mut out);
            for o in out {
                s.push(match o {
                    RuleOutcome::Raise(_) => 'R',
                    RuleOutcome::Clear { .. } => 'C',
                });
            }
            s.push('.');
        }
        s
    }

    #[test]
    fn hysteresis_keeps_a_flapping_value_raised_once() {
        let mut r = rules(ThresholdRule {
            hysteresis: 0.5,
            ..rule(Limit::Above { value: 8.0 })
        });
        // 8.1 raises; 7.9 / 8.2 / 7.6 flap inside the band; 7.5 (= 8 - 0.5) clears.
        assert_eq!(
            run(&mut r, "s", &[7.0, 8.1, 7.9, 8.2, 7.6, 7.5, 7.4, 8.01], 0),
            ".R....C..R."
        );
    }

    #[test]
    fn below_and_outside_limits_with_hysteresis() {
        let mut r = rules(ThresholdRule {
            hysteresis: 1.0,
            ..rule(Limit::Below { value: 2.0 })
        });
        assert_eq!(run(&mut r, "s", &[3.0, 1.9, 2.5, 3.0], 0), ".R..C.");
        let mut r = rules(ThresholdRule {
            hysteresis: 0.5,
            ..rule(Limit::Outside {
                low: 2.0,
                high: 8.0,
            })
        });
        assert_eq!(
            run(&mut r, "s", &[5.0, 8.5, 7.8, 7.4, 1.0, 2.2, 3.0], 0),
            ".R..C.R..C."
        );
    }

    #[test]
    fn a_value_on_the_limit_neither_raises_nor_stays_raised_without_hysteresis() {
        let mut r = rules(rule(Limit::Above { value: 8.0 }));
        assert_eq!(run(&mut r, "s", &[8.0, 8.5, 8.0], 0), ".R.C.");
    }

    #[test]
    fn min_count_needs_consecutive_breaches() {
        let mut r = rules(ThresholdRule {
            min_count: 3,
            ..rule(Limit::Above { value: 8.0 })
        });
        // Two breaches, a good value resets the count, then three in a row raise.
        assert_eq!(
            run(&mut r, "s", &[9.0, 9.0, 7.0, 9.0, 9.0, 9.0, 9.0], 0),
            ".....R.."
        );
    }

    #[test]
    fn min_duration_raises_on_a_value_or_on_a_tick() {
        let mut r = rules(ThresholdRule {
            min_duration_secs: 60,
            ..rule(Limit::Above { value: 8.0 })
        });
        // Values every second: raised once the breach has lasted 60 s (at t = 1060).
        let mut vals = vec![9.0; 61];
        vals[0] = 9.0;
        let s = run(&mut r, "s", &vals, 1000);
        assert_eq!(s.matches('R').count(), 1);
        assert!(s.ends_with("R."), "raised by the value at +60 s: {s}");

        let mut r = rules(ThresholdRule {
            min_duration_secs: 60,
            ..rule(Limit::Above { value: 8.0 })
        });
        assert_eq!(run(&mut r, "s", &[9.0], 1000), ".");
        let mut out = Vec::new();
        r.on_tick(1_059_000, &mut out);
        assert!(out.is_empty(), "59 s is not yet 60 s");
        r.on_tick(1_060_000, &mut out);
        assert!(
            matches!(&out[..], [RuleOutcome::Raise(a)] if a.value == Some(9.0)),
            "{out:?}"
        );
        out.clear();
        r.on_tick(1_070_000, &mut out);
        assert!(out.is_empty(), "raised once");
    }

    #[test]
    fn a_breach_interrupted_before_the_duration_does_not_raise() {
        let mut r = rules(ThresholdRule {
            min_duration_secs: 10,
            ..rule(Limit::Above { value: 8.0 })
        });
        assert_eq!(run(&mut r, "s", &[9.0, 9.0, 7.0], 0), "...");
        let mut out = Vec::new();
        r.on_tick(100_000, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn no_data_rule_raises_after_silence_and_clears_on_data() {
        let mut r = rules(rule(Limit::NoData { minutes: 30 }));
        assert_eq!(run(&mut r, "s", &[5.0], 60), ".");
        let mut out = Vec::new();
        r.on_tick(60_000 + 30 * 60_000, &mut out);
        assert!(out.is_empty(), "exactly 30 min is not more than 30 min");
        r.on_tick(60_000 + 30 * 60_000 + 1, &mut out);
        match &out[..] {
            [RuleOutcome::Raise(a)] => {
                assert_eq!(a.value, None);
                assert_eq!(a.limit, "no data for 30 min");
                assert_eq!(a.alarm_key, "rule:r1:s");
            }
            o => panic!("{o:?}"),
        }
        out.clear();
        r.on_tick(40 * 60_000, &mut out);
        assert!(out.is_empty(), "raised once");
        assert_eq!(run(&mut r, "s", &[5.0], 3000), "C.");
    }

    #[test]
    fn targets_and_fields() {
        let mut r = rules(ThresholdRule {
            target: RuleTarget::Sensor("s1".into()),
            quantity: "humidity".into(),
            ..rule(Limit::Above { value: 80.0 })
        });
        let mut e = m("s1", 20.0, 0);
        e.kind = EventKind::Reading;
        e.fields = vec![("temperature".into(), 20.0), ("Humidity".into(), 85.0)];
        let mut out = Vec::new();
        r.on_event(&e, &mut out);
        assert_eq!(out.len(), 1, "the humidity field breaches");
        let mut other = e.clone();
        other.sensor = Some("s2".into());
        out.clear();
        r.on_event(&other, &mut out);
        assert!(out.is_empty(), "another sensor is not targeted");

        // A tag rule matches events of subscriptions whose scope is that tag.
        let settings = Settings {
            rules: vec![ThresholdRule {
                target: RuleTarget::Tag("cold".into()),
                ..rule(Limit::Above { value: 8.0 })
            }],
            element: vec![ElementAccount {
                id: "e1".into(),
                subscriptions: vec![ElementSubscription {
                    id: "sub1".into(),
                    scope: ElementScope::Tag("cold".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut r = Rules::new(&settings);
        let mut e = Event::new(
            Source::Element,
            "e1",
            "sub1",
            EventKind::Reading,
            "k".into(),
        );
        e.device = Some("d1".into());
        e.value = Some(9.0);
        out.clear();
        r.on_event(&e, &mut out);
        assert_eq!(out.len(), 1);
        e.subscription = "sub2".into();
        e.device = Some("d2".into());
        out.clear();
        r.on_event(&e, &mut out);
        assert!(out.is_empty(), "another subscription is not in the tag");
    }

    /// A reading as ELEMENT sends it: keys sorted, the feed's main value the temperature.
    fn sorted_reading(temp: f64) -> Event {
        let mut e = Event::new(Source::Element, "e1", "sub", EventKind::Reading, "k".into());
        e.sensor = Some("d1".into());
        e.fields = vec![
            ("air_humidity".into(), 46.9),
            ("air_temperature".into(), temp),
            ("battery_voltage".into(), 3.1),
        ];
        e.quantity = Some("air_temperature".into());
        e.value = Some(temp);
        e
    }

    #[test]
    fn a_named_field_is_compared_and_named_in_the_alarm() {
        let mut r = rules(ThresholdRule {
            quantity: "air_humidity".into(),
            ..rule(Limit::Above { value: 40.0 })
        });
        let mut out = Vec::new();
        r.on_event(&sorted_reading(5.0), &mut out);
        let [RuleOutcome::Raise(a)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(a.quantity.as_deref(), Some("air_humidity"));
        assert_eq!(a.value, Some(46.9));
    }

    #[test]
    fn without_a_field_the_main_value_counts_and_the_user_may_choose_it() {
        let base = rule(Limit::Above { value: 8.0 });
        let mut r = rules(base.clone());
        let mut out = Vec::new();
        r.on_event(&sorted_reading(5.0), &mut out);
        assert!(out.is_empty(), "humidity 46.9 is not the main value");
        r.on_event(&sorted_reading(9.0), &mut out);
        assert!(
            matches!(&out[..], [RuleOutcome::Raise(a)] if a.quantity.as_deref() == Some("air_temperature"))
        );
        // The user made the humidity this device's main value.
        let mut s = Settings {
            rules: vec![base],
            ..Default::default()
        };
        s.sensors.insert(
            "d1".into(),
            crate::settings::SensorPrefs {
                main_field: "air_humidity".into(),
                ..Default::default()
            },
        );
        let mut r = Rules::new(&s);
        out.clear();
        r.on_event(&sorted_reading(5.0), &mut out);
        assert!(
            matches!(&out[..], [RuleOutcome::Raise(a)] if a.quantity.as_deref() == Some("air_humidity")),
            "{out:?}"
        );
    }

    #[test]
    fn alarms_and_packets_are_not_rule_input() {
        let mut r = rules(rule(Limit::Above { value: 8.0 }));
        let mut e = m("s", 9.0, 0);
        e.kind = EventKind::AlarmRaised;
        let mut out = Vec::new();
        r.on_event(&e, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn changed_rule_drops_state_and_reports_raised_alarms() {
        let mut r = rules(rule(Limit::Above { value: 8.0 }));
        assert_eq!(run(&mut r, "s", &[9.0], 0), "R.");
        let same = Settings {
            rules: vec![rule(Limit::Above { value: 8.0 })],
            ..Default::default()
        };
        assert!(
            r.update(&same).is_empty(),
            "an unchanged rule keeps its state"
        );
        let changed = Settings {
            rules: vec![rule(Limit::Above { value: 10.0 })],
            ..Default::default()
        };
        assert_eq!(r.update(&changed), vec!["rule:r1:s".to_string()]);
        assert_eq!(run(&mut r, "s", &[9.0, 11.0], 10), ".R.");
    }

    /// A Saveris sensor of an `am.p` tenant: Fahrenheit.
    fn fahrenheit(sensor: &str, v: f64, at_s: i64) -> Event {
        let mut e = m(sensor, v, at_s);
        e.unit = Some("°F".into());
        e
    }

    #[test]
    fn a_celsius_rule_fires_on_a_fahrenheit_sensor_at_the_converted_value() {
        let mut r = rules(ThresholdRule {
            unit: "°C".into(),
            hysteresis: 0.5,
            ..rule(Limit::Above { value: 8.0 })
        });
        let mut seq = String::new();
        // 46.4 °F = 8 °C is not above 8 °C; 46.5 °F (8.06 °C) is. 45.5 °F (7.5 °C) is back
        // past 8 − 0.5 °C and clears; 45.6 °F (7.56 °C) would not have.
        for (i, v) in [46.4, 46.5, 45.6, 45.5, 20.0].iter().enumerate() {
            let mut out = Vec::new();
            r.on_event(&fahrenheit("s", *v, i as i64), &mut out);
            for o in &out {
                match o {
                    RuleOutcome::Raise(a) => {
                        seq.push('R');
                        assert_eq!(a.value, Some(46.5), "the value as measured");
                        assert_eq!(a.unit.as_deref(), Some("°F"));
                        assert_eq!(a.limit, "above 8 °C");
                    }
                    RuleOutcome::Clear { .. } => seq.push('C'),
                }
            }
            seq.push('.');
        }
        assert_eq!(seq, ".R..C..");
        // A °F rule on a °C sensor and a Kelvin rule likewise.
        let mut r = rules(ThresholdRule {
            unit: "FAHRENHEIT".into(),
            ..rule(Limit::Below { value: 32.0 })
        });
        assert_eq!(run(&mut r, "s", &[0.0, -0.1], 0), ".R.");
        let mut r = rules(ThresholdRule {
            unit: "K".into(),
            ..rule(Limit::Above { value: 300.0 })
        });
        assert_eq!(run(&mut r, "s", &[26.85, 26.9], 0), ".R.");
    }

    #[test]
    fn a_rule_whose_unit_cannot_apply_does_not_fire() {
        let mut r = rules(ThresholdRule {
            unit: "°C".into(),
            ..rule(Limit::Above { value: 8.0 })
        });
        let mut e = m("h", 85.0, 0);
        e.quantity = Some("Humidity".into());
        e.unit = Some("%RH".into());
        let mut out = Vec::new();
        r.on_event(&e, &mut out);
        assert!(out.is_empty(), "85 %RH is not compared with 8 °C: {out:?}");
        // The same unit compares; % and %RH are one scale.
        let mut r = rules(ThresholdRule {
            unit: "%RH".into(),
            ..rule(Limit::Above { value: 80.0 })
        });
        e.unit = Some("%".into());
        r.on_event(&e, &mut out);
        assert_eq!(out.len(), 1);
        // An unknown unit compares only with exactly that unit.
        let mut r = rules(ThresholdRule {
            unit: "m³/h".into(),
            ..rule(Limit::Above { value: 1.0 })
        });
        out.clear();
        e.unit = Some("l/min".into());
        r.on_event(&e, &mut out);
        assert!(out.is_empty());
        e.unit = Some("m³/h".into());
        r.on_event(&e, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn element_field_units_are_remembered_per_parser() {
        let rule = ThresholdRule {
            unit: "°F".into(),
            quantity: "air_temperature".into(),
            ..rule(Limit::Above { value: 60.0 })
        };
        let mut e = sorted_reading(20.0); // 20 °C = 68 °F
        e.parser = Some("parser-lht".into());
        let mut out = Vec::new();
        // No unit confirmed yet: 20 is compared as received, below 60.
        rules(rule.clone()).on_event(&e, &mut out);
        assert!(out.is_empty());
        let mut s = Settings {
            rules: vec![rule],
            ..Default::default()
        };
        s.element_units.insert(
            "parser-lht".into(),
            [("Air_Temperature".to_string(), "°C".to_string())].into(),
        );
        let mut r = Rules::new(&s);
        r.on_event(&e, &mut out);
        let [RuleOutcome::Raise(a)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            a.unit.as_deref(),
            Some("°C"),
            "the field's unit in the alarm"
        );
        // Another parser's field of the same name has no unit yet.
        let mut other = sorted_reading(20.0);
        other.parser = Some("parser-other".into());
        other.sensor = Some("d2".into());
        out.clear();
        r.on_event(&other, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_reading_gets_the_confirmed_unit_of_its_main_field() {
        let mut s = Settings::default();
        s.element_units.insert(
            "p1".into(),
            [("air_temperature".to_string(), "CELSIUS".to_string())].into(),
        );
        let r = Rules::new(&s);
        let mut e = sorted_reading(5.0);
        r.fill_unit(&mut e);
        assert_eq!(e.unit, None, "no parser, no unit");
        e.parser = Some("p1".into());
        r.fill_unit(&mut e);
        assert_eq!(e.unit.as_deref(), Some("°C"));
        let mut other = sorted_reading(5.0);
        other.parser = Some("p2".into());
        r.fill_unit(&mut other);
        assert_eq!(other.unit, None, "another parser");
        assert!(other.field_units.is_empty());
    }

    #[test]
    fn the_other_fields_get_their_confirmed_units_too() {
        let mut s = Settings::default();
        s.element_units.insert(
            "p1".into(),
            [
                ("air_temperature".to_string(), "°C".to_string()),
                ("battery_voltage".to_string(), "V".to_string()),
            ]
            .into(),
        );
        let r = Rules::new(&s);
        let mut e = sorted_reading(5.0);
        e.parser = Some("p1".into());
        r.fill_unit(&mut e);
        // The main field's unit is the event's; humidity was never confirmed: none.
        assert_eq!(e.unit.as_deref(), Some("°C"));
        assert_eq!(
            e.field_units,
            [("battery_voltage".to_string(), "V".to_string())]
        );
    }

    #[test]
    fn a_rule_without_a_unit_compares_the_number_as_received() {
        // Rules saved before units existed: 46.5 is above 8 whatever the sensor's unit.
        let mut r = rules(rule(Limit::Above { value: 8.0 }));
        let mut out = Vec::new();
        r.on_event(&fahrenheit("s", 46.5, 0), &mut out);
        assert_eq!(out.len(), 1);
        let [RuleOutcome::Raise(a)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(a.limit, "above 8");
    }

    #[test]
    fn limits_read_as_typed() {
        assert_eq!(describe_limit(&Limit::Above { value: 8.0 }), "above 8");
        assert_eq!(
            describe_limit(&Limit::Outside {
                low: -2.5,
                high: 8.25
            }),
            "outside -2.5 … 8.25"
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// For any values: raises and clears alternate, a raise only follows `min_count`
        /// breaching values in a row, and a clear only comes with a value back past
        /// limit − hysteresis.
        #[test]
        fn raises_and_clears_alternate(
            values in proptest::collection::vec(0.0f64..16.0, 1..200),
            h in 0.0f64..3.0,
            min_count in 1u32..4,
        ) {
            let rule = ThresholdRule {
                id: "r".into(),
                name: "p".into(),
                limit: Limit::Above { value: 8.0 },
                hysteresis: h,
                min_count,
                ..Default::default()
            };
            let mut r = Rules::new(&Settings { rules: vec![rule], ..Default::default() });
            let mut raised = false;
            let mut run = 0u32;
            for (i, v) in values.iter().enumerate() {
                let mut e = Event::new(Source::Saveris, "a", "m", EventKind::Measurement, format!("k{i}"));
                e.sensor = Some("s".into());
                e.value = Some(*v);
                e.measured_at = Some(jiff::Timestamp::from_second(i as i64).unwrap());
                let mut out = Vec::new();
                r.on_event(&e, &mut out);
                prop_assert!(out.len() <= 1);
                run = if *v > 8.0 { run + 1 } else { 0 };
                match out.first() {
                    Some(RuleOutcome::Raise(a)) => {
                        prop_assert!(!raised, "raised twice");
                        prop_assert!(run >= min_count);
                        prop_assert_eq!(a.value, Some(*v));
                        raised = true;
                    }
                    Some(RuleOutcome::Clear { .. }) => {
                        prop_assert!(raised, "cleared without a raise");
                        prop_assert!(*v <= 8.0 - h);
                        raised = false;
                        run = 0;
                    }
                    None => {
                        if raised {
                            prop_assert!(*v > 8.0 - h, "should have cleared at {}", v);
                        } else {
                            prop_assert!(run < min_count, "should have raised at {}", v);
                        }
                    }
                }
            }
        }
    }
}
