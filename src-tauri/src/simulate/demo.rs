//! Demo mode: the project's own Saveris- and ELEMENT-compatible servers on free loopback
//! ports, driven by the [`super::scenario`], and the settings and secrets of two demo
//! accounts pointing at them. Used by `alarm-tray --demo`, `watch --demo` and `simulate`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::dataapi::{SimSensor, SimTenant};
use super::element::{ElementServer, ElementServerConfig, KeyRole, SimDevice};
use super::saveris::SaverisServer;
use super::scenario::{self, Emit, Scenario};
use crate::secrets::SecretKey;
use crate::settings::{
    Channels, CustomEndpoint, ElementAccount, ElementKind, ElementScope, ElementSubscription,
    Limit, RuleTarget, SaverisAccount, Settings, ThresholdRule,
};

pub const ELEMENT_KEY: &str = "demo-element-key-0123456789";
pub const ELEMENT_ACCOUNT: &str = "demo-element";
pub const SAVERIS_ACCOUNT: &str = "demo-saveris";
pub const SAVERIS_USER: &str = "demo";
pub const SAVERIS_PASSWORD: &str = "demo-password";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo ELEMENT server could not start: {0}")]
    Element(#[from] super::element::SimError),
    #[error("the demo Saveris server could not start: {0}")]
    Saveris(#[from] super::saveris::SimulateError),
}

/// The running demo servers and scenario.
pub struct Demo {
    pub element: Arc<ElementServer>,
    pub saveris: Arc<SaverisServer>,
    pub seed: u64,
    scenario: JoinHandle<()>,
}

impl Demo {
    /// Starts the servers (port 0 = any free port) and the scenario.
    pub async fn start(seed: u64, element_port: u16) -> Result<Demo, DemoError> {
        Self::start_at(seed, element_port, 1).await
    }

    /// As [`Demo::start`], the scenario `speed` times as fast (ticks `speed` times as
    /// often; `simulate --speed`, the long-run soak of issue 24).
    pub async fn start_at(seed: u64, element_port: u16, speed: u32) -> Result<Demo, DemoError> {
        let cfg = ElementServerConfig {
            api_keys: vec![(ELEMENT_KEY.into(), KeyRole::ReadOnly)],
            devices: scenario::ELEMENT_DEVICES
                .iter()
                .map(|(id, name, tag)| SimDevice {
                    id: (*id).into(),
                    name: (*name).into(),
                    tags: vec![(*tag).into()],
                })
                .collect(),
            tags: vec![
                ("tag-warehouse".into(), "Warehouse".into()),
                ("tag-pharmacy".into(), "Pharmacy".into()),
            ],
            ..Default::default()
        };
        let _ = element_port; // fixed ports: see `simulate --port`
        let element = Arc::new(ElementServer::start(cfg).await?);
        let users = vec![(SAVERIS_USER.into(), SAVERIS_PASSWORD.into())];
        let saveris = Arc::new(SaverisServer::start(users).await?);
        saveris.set_data_api_tenant(demo_tenant());
        let scenario = tokio::spawn(run_scenario(
            seed,
            element.clone(),
            saveris.clone(),
            speed.max(1),
        ));
        Ok(Demo {
            element,
            saveris,
            seed,
            scenario,
        })
    }

    /// Demo accounts and rules: what a newcomer would have set up.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.saveris.push(SaverisAccount {
            id: SAVERIS_ACCOUNT.into(),
            username: SAVERIS_USER.into(),
            channels: Channels {
                alarms: true,
                measurements: false,
                measurements_v2: true,
            },
            custom: Some(CustomEndpoint {
                ws_url: self.saveris.ws_url(),
                destination_pattern: String::new(),
                token_url: self.saveris.token_url(),
                stomp_login: String::new(),
                data_api_url: String::new(),
            }),
            ..Default::default()
        });
        s.element.push(ElementAccount {
            id: ELEMENT_ACCOUNT.into(),
            enabled: true,
            base_url: self.element.base_url(),
            subscriptions: vec![ElementSubscription {
                id: "demo-readings".into(),
                enabled: true,
                scope: ElementScope::Mandate,
                kind: ElementKind::Readings,
                preload: vec!["device".into()],
                catch_up_hours: 0,
            }],
            text_ping: false,
        });
        s.rules.push(ThresholdRule {
            id: "demo-freezer".into(),
            name: "Freezer too warm".into(),
            enabled: true,
            target: RuleTarget::Device(scenario::FREEZER.into()),
            quantity: "temperature".into(),
            limit: Limit::Above {
                value: scenario::FREEZER_LIMIT,
            },
            hysteresis: 1.0,
            min_count: 1,
            min_duration_secs: 0,
            unit: "°C".into(),
        });
        // Short grouping so a newcomer sees single popups, not a summary, at start.
        s.notifications.group_window_secs = 5;
        s
    }

    /// The secrets the demo accounts need (stored in the in-memory demo keyring).
    pub fn secrets(&self) -> Vec<(SecretKey, String)> {
        vec![
            (
                SecretKey::ElementApiKey(ELEMENT_ACCOUNT.into()),
                ELEMENT_KEY.into(),
            ),
            (
                SecretKey::SaverisPassword(SAVERIS_ACCOUNT.into()),
                SAVERIS_PASSWORD.into(),
            ),
        ]
    }

    /// Lines for `simulate`: where the servers are and how to log in.
    pub fn describe(&self) -> String {
        format!(
            "Saveris-compatible server:\n  token endpoint (Data API style): POST {}\n  STOMP over WebSocket: {}\n  user: {SAVERIS_USER}  password: {SAVERIS_PASSWORD}\n  destinations: /queue/{SAVERIS_USER}/alarms, /queue/{SAVERIS_USER}/measurements-v2\n\
             ELEMENT-compatible server: {}\n  API key: {ELEMENT_KEY}\n  devices: {}\n  readings socket: {}/api/v1/readings/socket?auth={ELEMENT_KEY}",
            self.saveris.token_url(),
            self.saveris.ws_url(),
            self.element.base_url(),
            scenario::ELEMENT_DEVICES.iter().map(|d| d.0).collect::<Vec<_>>().join(", "),
            self.element.base_url().replacen("http", "ws", 1),
        )
    }

    pub async fn stop(self) {
        self.scenario.abort();
        if let Ok(e) = Arc::try_unwrap(self.element) {
            e.stop().await;
        }
        if let Ok(s) = Arc::try_unwrap(self.saveris) {
            s.stop().await;
        }
    }
}

/// What the demo's Data API knows of the scenario's sensors: names, equipment in areas,
/// configured limits (issue 20), so the demo shows names and limit lines at once.
pub fn demo_tenant() -> SimTenant {
    // (name, device, equipment, area, lower violation/warning, upper warning/violation)
    type About = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        [Option<f64>; 4],
    );
    let about: [About; 4] = [
        (
            "Cold room - Air Sensor",
            "Cold room - Logger",
            "Cold room",
            "Storage",
            [Some(0.0), Some(1.0), Some(7.0), Some(8.0)],
        ),
        (
            "Cold room - Humidity Sensor",
            "Cold room - Logger",
            "Cold room",
            "Storage",
            [None, None, Some(92.0), Some(95.0)],
        ),
        (
            "Fridge 1 - Air Sensor",
            "Fridge 1 - Logger",
            "Fridge 1",
            "Kitchen",
            [Some(2.0), Some(3.0), Some(7.0), Some(8.0)],
        ),
        (
            "Server rack - Air Sensor",
            "Server rack - Logger",
            "Server rack",
            "IT room",
            [None, Some(15.0), Some(25.0), Some(27.0)],
        ),
    ];
    let sensors = scenario::SAVERIS_SENSORS
        .iter()
        .zip(about)
        .enumerate()
        .map(|(i, (s, (name, device, equipment, area, l)))| SimSensor {
            sensor_uuid: s.uuid.into(),
            sensor_serial_no: s.serial.into(),
            sensor_display_name: name.into(),
            device_uuid: format!("device-{}", s.serial),
            device_serial_no: s.serial.into(),
            device_display_name: device.into(),
            channel_no: if s.quantity == "Humidity" { 2 } else { 1 },
            channel_id: 1_913_253_100 + i as i64,
            physical_property_name: s.quantity.into(),
            physical_extension: if s.quantity == "Humidity" {
                "Relative Humidity".into()
            } else {
                "Air Temperature".into()
            },
            unit: if s.unit == "°C" {
                "CELSIUS"
            } else {
                "PERCENT_RH"
            }
            .into(),
            equipment_uuid: format!("eq-{}", equipment.to_ascii_lowercase().replace(' ', "-")),
            equipment_title: equipment.into(),
            equipment_parts_uuid: format!("part-{}", s.uuid),
            equipment_parts_title: String::new(),
            area_uuid: format!("area-{}", area.to_ascii_lowercase().replace(' ', "-")),
            area_title: area.into(),
            lower_violation: l[0],
            lower_warning: l[1],
            upper_warning: l[2],
            upper_violation: l[3],
            base: s.base,
        })
        .collect();
    SimTenant {
        tenant_uuid: scenario::TENANT.into(),
        organisation_name: "Demo Lab".into(),
        main_timezone: "Europe/Berlin".into(),
        customer_site: "site-1".into(),
        sensors,
        measuring_minutes: 5,
    }
}

async fn run_scenario(
    seed: u64,
    element: Arc<ElementServer>,
    saveris: Arc<SaverisServer>,
    speed: u32,
) {
    let mut scenario = Scenario::new(seed);
    let mut tick = tokio::time::interval(scenario::TICK / speed);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Let the feeds connect before the first values.
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        tick.tick().await;
        for e in scenario.step() {
            match e {
                Emit::Element { device, data } => {
                    element.push_reading(device, data);
                }
                Emit::Saveris { channel, body } => {
                    saveris.publish(SAVERIS_USER, channel, body.to_string())
                }
            }
        }
    }
}
