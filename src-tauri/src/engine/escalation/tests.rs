//! Escalation against a real HTTP receiver on loopback (one per test, stopped when the test
//! ends), a manual clock and the mock keyring.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};

use super::super::model::AlarmRow;
use super::super::wording::Locale;
use super::super::{spawn_with, Decision, EngineHandle, History, Output};
use crate::clock::{Clock, ManualClock};
use crate::event::{Ack, Delivery, Event, EventKind, Severity, Source};
use crate::notify::RecordingNotifier;
use crate::secrets::{self, SecretKey, SecretStore};
use crate::settings::{Settings, Webhook, WebhookKind};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60;

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// An HTTP receiver on 127.0.0.1 that records every request and answers with the next
/// status of its script (200 once the script is used up).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: Vec<u16>) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let (g, s) = (got.clone(), script.clone());
        let app =
            axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    g.lock().unwrap().push(Received {
                        path: uri.path().to_string(),
                        headers,
                        body,
                    });
                    let code = s.lock().unwrap().pop_front().unwrap_or(200);
                    StatusCode::from_u16(code).unwrap()
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { port, got, server }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Rig {
    engine: EngineHandle,
    tx: mpsc::Sender<Delivery>,
    acks_tx: mpsc::UnboundedSender<crate::event::AckMsg>,
    clock: ManualClock,
    out: broadcast::Receiver<Output>,
    _status_tx: mpsc::UnboundedSender<crate::event::FeedStatus>,
}

impl Rig {
    fn new(settings: Settings) -> Rig {
        let (tx, rx) = mpsc::channel(16);
        let (status_tx, status_rx) = mpsc::unbounded_channel();
        let (acks_tx, _acks) = mpsc::unbounded_channel();
        let clock = ManualClock::utc(Timestamp::from_millisecond(T0).unwrap());
        let engine = spawn_with(
            settings,
            History::open_in_memory().unwrap(),
            Arc::new(RecordingNotifier::new()),
            rx,
            status_rx,
            Arc::new(clock.clone()),
            Locale::plain(TimeZone::UTC),
        );
        let out = engine.subscribe();
        Rig {
            engine,
            tx,
            acks_tx,
            clock,
            out,
            _status_tx: status_tx,
        }
    }

    /// Raises a critical alarm now; its id.
    async fn raise(&mut self, sensor: &str) -> i64 {
        let mut e = Event::new(
            Source::Saveris,
            "a1",
            "alarms",
            EventKind::AlarmRaised,
            format!("raise-{sensor}"),
        );
        e.sensor = Some(sensor.into());
        e.name = Some(format!("Fridge {sensor}"));
        e.condition = Some("Upper limit".into());
        e.alarm_id = Some(format!("{sensor}:upper"));
        e.value = Some(9.5);
        e.unit = Some("°C".into());
        e.severity = Severity::Alarm;
        e.received_at = self.clock.now();
        e.measured_at = Some(self.clock.now());
        let token = e.key.clone();
        self.tx
            .send(Delivery {
                event: e,
                ack: Ack::new(self.acks_tx.clone(), 1, token),
            })
            .await
            .unwrap();
        self.engine.poke().await;
        let rows: Vec<AlarmRow> = self.engine.history().alarms(&Default::default()).unwrap();
        rows.iter()
            .find(|r| r.sensor.as_deref() == Some(sensor))
            .unwrap()
            .id
    }

    async fn at_min(&self, minutes: i64) {
        self.clock
            .set(Timestamp::from_millisecond(T0 + minutes * MIN * 1000).unwrap());
        self.engine.poke().await;
    }

    /// The next escalation decision (bounded wait).
    async fn next_escalation(&mut self) -> Decision {
        let wait = async {
            loop {
                match self.out.recv().await {
                    Ok(Output::Decision {
                        decision:
                            d @ (Decision::Escalated { .. } | Decision::EscalationFailed { .. }),
                    }) => return d,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("engine output ended: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("an escalation decision within 10 s")
    }
}

fn hook(id: &str, kind: WebhookKind, url: String) -> Webhook {
    Webhook {
        id: id.into(),
        name: format!("hook {id}"),
        kind,
        url,
        enabled: true,
    }
}

/// What a receiver got after a short quiet wait (for "nothing was sent").
async fn quiet(r: &Receiver) -> usize {
    tokio::time::sleep(Duration::from_millis(400)).await;
    r.got().len()
}

#[tokio::test]
async fn a_critical_alarm_reaches_each_kind_of_webhook_once_after_n_minutes() {
    secrets::init_mock();
    let r = Receiver::start(vec![]).await;
    let mut s = Settings::default();
    s.escalation.after_mins = 15;
    s.escalation.webhooks = vec![
        hook("esc-json", WebhookKind::Json, r.url("/json")),
        hook("esc-ntfy", WebhookKind::Ntfy, r.url("/ntfy/fridges")),
        hook("esc-slack", WebhookKind::Slack, r.url("/services/{token}")),
    ];
    // Tokens in the (mock) keyring, as the window stores them: bound to their origin.
    let store = SecretStore;
    let origin = format!("http://127.0.0.1:{}", r.port);
    store
        .set_bound(
            &SecretKey::WebhookToken("esc-ntfy".into()),
            "tk_ntfy",
            Some(&origin),
        )
        .unwrap();
    store
        .set_bound(
            &SecretKey::WebhookToken("esc-slack".into()),
            "T00/B00/xyz",
            Some(&origin),
        )
        .unwrap();
    let mut rig = Rig::new(s);
    let id = rig.raise("s1").await;

    rig.at_min(14).await;
    assert_eq!(quiet(&r).await, 0, "nothing before 15 minutes");

    rig.at_min(15).await;
    let mut sent = Vec::new();
    for _ in 0..3 {
        match rig.next_escalation().await {
            Decision::Escalated {
                alarm_id,
                webhook,
                attempts,
            } => {
                assert_eq!((alarm_id, attempts), (id, 1));
                sent.push(webhook);
            }
            d => panic!("not delivered: {d:?}"),
        }
    }
    sent.sort();
    assert_eq!(sent, ["esc-json", "esc-ntfy", "esc-slack"]);

    let got = r.got();
    assert_eq!(got.len(), 3);
    let by = |p: &str| got.iter().find(|g| g.path.starts_with(p)).unwrap().clone();
    let json = by("/json");
    let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(v["event"], "alarm_escalated");
    assert_eq!(v["alarm"]["alarm_id"], id);
    assert_eq!(v["alarm"]["unacknowledged_mins"], 15);
    assert!(
        json.headers.get("authorization").is_none(),
        "no token stored for it"
    );

    let ntfy = by("/ntfy/fridges");
    assert_eq!(ntfy.headers["priority"], "urgent");
    assert_eq!(ntfy.headers["tags"], "rotating_light,alarm");
    assert!(ntfy.headers["title"]
        .to_str()
        .unwrap()
        .starts_with("=?UTF-8?B?"));
    assert_eq!(ntfy.headers["authorization"], "Bearer tk_ntfy");
    assert!(
        ntfy.body.contains("not acknowledged for 15 min"),
        "{}",
        ntfy.body
    );

    let slack = by("/services/");
    assert_eq!(slack.path, "/services/T00/B00/xyz");
    let v: serde_json::Value = serde_json::from_str(&slack.body).unwrap();
    assert!(v["text"].as_str().unwrap().contains("Fridge s1"), "{v}");

    // Once: later ticks send nothing more.
    rig.at_min(30).await;
    rig.at_min(90).await;
    assert_eq!(quiet(&r).await, 3);

    let rows = rig.engine.history().escalations(id).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.state == "sent" && r.attempts == 1),
        "{rows:?}"
    );
    let audit = rig.engine.history().audit().unwrap().clone();
    audit.flush();
    let kinds: Vec<String> = audit
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "escalated").count(),
        3,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"escalation_started".to_string()));
    assert!(audit.verify().unwrap().intact);
}

#[tokio::test]
async fn an_alarm_acknowledged_in_time_is_not_escalated() {
    secrets::init_mock();
    let r = Receiver::start(vec![]).await;
    let mut s = Settings::default();
    s.escalation.after_mins = 15;
    s.escalation.webhooks = vec![hook("ack-json", WebhookKind::Json, r.url("/json"))];
    let mut rig = Rig::new(s);
    let id = rig.raise("s2").await;
    rig.at_min(14).await;
    rig.engine
        .acknowledge_with(id, "window", Some("door closed".into()))
        .await
        .unwrap();
    rig.at_min(15).await;
    rig.at_min(60).await;
    assert_eq!(quiet(&r).await, 0);
    assert!(rig.engine.history().escalations(id).unwrap().is_empty());
}

#[tokio::test]
async fn a_receiver_answering_500_is_tried_again_after_the_backoff() {
    secrets::init_mock();
    let r = Receiver::start(vec![500]).await;
    let mut s = Settings::default();
    s.escalation.after_mins = 15;
    s.escalation.webhooks = vec![hook("retry-ntfy", WebhookKind::Ntfy, r.url("/ntfy/lab"))];
    let mut rig = Rig::new(s);
    let id = rig.raise("s3").await;

    rig.at_min(15).await;
    match rig.next_escalation().await {
        Decision::EscalationFailed {
            alarm_id,
            attempts,
            message,
            retry_in_ms,
            ..
        } => {
            assert_eq!((alarm_id, attempts, retry_in_ms), (id, 1, Some(30_000)));
            assert_eq!(message, "the webhook answered HTTP 500");
        }
        d => panic!("expected a failure: {d:?}"),
    }
    // The failing webhook shows in the feeds area and the summary; popups went on.
    let st = rig.engine.status();
    let line = st
        .feeds
        .iter()
        .find(|f| f.feed == "webhook:retry-ntfy")
        .unwrap();
    assert_eq!(
        line.last_error.as_deref(),
        Some("the webhook answered HTTP 500")
    );
    assert!(
        st.summary.contains("webhook hook retry-ntfy failing"),
        "{}",
        st.summary
    );
    let row = &rig.engine.history().escalations(id).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("sending", 1));

    // Not before the backoff…
    rig.clock
        .set(Timestamp::from_millisecond(T0 + 15 * MIN * 1000 + 29_000).unwrap());
    rig.engine.poke().await;
    assert_eq!(quiet(&r).await, 1);
    // …then once more, and delivered.
    rig.clock
        .set(Timestamp::from_millisecond(T0 + 15 * MIN * 1000 + 30_000).unwrap());
    rig.engine.poke().await;
    match rig.next_escalation().await {
        Decision::Escalated { attempts, .. } => assert_eq!(attempts, 2),
        d => panic!("expected delivery: {d:?}"),
    }
    assert_eq!(r.got().len(), 2);
    let st = rig.engine.status();
    assert!(st.feeds.iter().all(|f| f.feed != "webhook:retry-ntfy"));
    let row = &rig.engine.history().escalations(id).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 2));
    assert_eq!(
        row.last_error.as_deref(),
        Some("the webhook answered HTTP 500")
    );
}
