//! Typed, versioned settings.
//!
//! On disk the settings live in the store file of tauri-plugin-store (a JSON object) under
//! the key [`STORE_KEY`]. The monitor is their one owner and writes them through the store
//! plugin; `watch` reads the same file with serde and never writes it. Nothing secret is
//! here: passwords and API keys live in the keyring under [`crate::secrets::SecretKey`]s.
//!
//! A file that does not parse, or that a newer version wrote, is moved aside as a backup
//! and the app starts with defaults and says so ([`Loaded::notice`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 2;
/// The key of the settings object inside the store file.
pub const STORE_KEY: &str = "settings";
/// The store file's name in the data dir.
pub const FILE_NAME: &str = "settings.json";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("could not read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write the settings file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Eu,
    Am,
    Ap,
}

/// The Saveris environments the vendor lists (SAVERIS-API.md §1.1): `eu.i`, `eu.p`,
/// `am.p`, `ap.p`. America and Asia-Pacific have no integration stage.
pub const SAVERIS_ENVIRONMENTS: [(Region, Environment); 4] = [
    (Region::Eu, Environment::Integration),
    (Region::Eu, Environment::Production),
    (Region::Am, Environment::Production),
    (Region::Ap, Environment::Production),
];

/// Whether Saveris offers this region/environment pair.
pub fn saveris_environment_exists(region: Region, environment: Environment) -> bool {
    SAVERIS_ENVIRONMENTS.contains(&(region, environment))
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "eu",
            Region::Am => "am",
            Region::Ap => "ap",
        }
    }
}

/// Saveris environment: `i` (integration) or `p` (production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Integration,
    #[default]
    Production,
}

impl Environment {
    /// The letter used in host names.
    pub fn letter(self) -> &'static str {
        match self {
            Environment::Integration => "i",
            Environment::Production => "p",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Integration => "integration",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// `POST https://data-api.{region}.{env}.savr.saveris.net/v1/token`.
    #[default]
    DataApi,
    /// Cognito `InitiateAuth` with `USER_PASSWORD_AUTH`.
    Cognito,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Channels {
    pub alarms: bool,
    pub measurements: bool,
    pub measurements_v2: bool,
}

impl Default for Channels {
    fn default() -> Self {
        Channels {
            alarms: true,
            measurements: false,
            measurements_v2: false,
        }
    }
}

/// Staging and on-premise brokers, and the tests: everything the cloud derives from
/// region/environment, given explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(default)]
pub struct CustomEndpoint {
    /// `ws://` or `wss://` URL of the STOMP WebSocket endpoint.
    pub ws_url: String,
    /// Destination with `{username}` and `{channel}` placeholders;
    /// empty means the Saveris form `/queue/{username}/{channel}`.
    pub destination_pattern: String,
    /// Token endpoint (Data API style); empty means: no token, use STOMP login/passcode.
    pub token_url: String,
    /// STOMP `login`; the passcode is a secret ([`crate::secrets::SecretKey::StompPasscode`]).
    pub stomp_login: String,
    /// Data API base URL (issue 20: names, limits, history); empty means the origin of
    /// `token_url`, so a self-hosted or test server serves both.
    pub data_api_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct SaverisAccount {
    /// Stable id, used for keyring entries and history.
    pub id: String,
    pub enabled: bool,
    pub username: String,
    pub region: Region,
    pub environment: Environment,
    pub login: LoginMethod,
    /// Cognito endpoint; empty = `https://cognito-idp.eu-central-1.amazonaws.com/`.
    pub cognito_endpoint: String,
    pub cognito_client_id: String,
    pub channels: Channels,
    pub custom: Option<CustomEndpoint>,
    /// The site's time zone (IANA, "America/Chicago"; issue 20), e.g. the tenant's
    /// `main_timezone` from the Data API. Empty: the zone of the payload's local time, if any.
    pub site_timezone: String,
}

impl Default for SaverisAccount {
    fn default() -> Self {
        SaverisAccount {
            id: String::new(),
            enabled: true,
            username: String::new(),
            region: Region::Eu,
            environment: Environment::Production,
            login: LoginMethod::DataApi,
            cognito_endpoint: String::new(),
            cognito_client_id: String::new(),
            channels: Channels::default(),
            custom: None,
            site_timezone: String::new(),
        }
    }
}

impl SaverisAccount {
    /// "Saveris eu/production (alice)".
    pub fn label(&self) -> String {
        match &self.custom {
            Some(c) => format!("Saveris custom {} ({})", c.ws_url, self.username),
            None => format!(
                "Saveris {}/{} ({})",
                self.region.as_str(),
                self.environment.as_str(),
                self.username
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum ElementScope {
    Device(String),
    Tag(String),
    Stream(String),
    /// The whole mandate (needs a `read_only` or `admin` key).
    Mandate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ElementKind {
    #[default]
    Readings,
    Packets,
}

impl ElementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ElementKind::Readings => "readings",
            ElementKind::Packets => "packets",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct ElementSubscription {
    pub id: String,
    pub enabled: bool,
    pub scope: ElementScope,
    pub kind: ElementKind,
    /// `preload=` values (`device`, `device.fields`, `packet`, …).
    pub preload: Vec<String>,
    /// On the very first start: replay this many hours (0 = live only).
    pub catch_up_hours: u32,
}

impl Default for ElementSubscription {
    fn default() -> Self {
        ElementSubscription {
            id: String::new(),
            enabled: true,
            scope: ElementScope::Mandate,
            kind: ElementKind::Readings,
            preload: Vec::new(),
            catch_up_hours: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct ElementAccount {
    pub id: String,
    pub enabled: bool,
    /// Instance base URL, e.g. `https://element-iot.com`.
    pub base_url: String,
    pub subscriptions: Vec<ElementSubscription>,
    /// Send the text `ping` as well as WebSocket Ping frames.
    pub text_ping: bool,
}

impl Default for ElementAccount {
    fn default() -> Self {
        ElementAccount {
            id: String::new(),
            enabled: true,
            base_url: "https://element-iot.com".into(),
            subscriptions: Vec::new(),
            text_ping: false,
        }
    }
}

/// What a threshold rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum RuleTarget {
    #[default]
    All,
    Sensor(String),
    Device(String),
    /// ELEMENT tag: matches events of subscriptions whose scope is this tag.
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Limit {
    Above {
        value: f64,
    },
    Below {
        value: f64,
    },
    Outside {
        low: f64,
        high: f64,
    },
    /// No value for this many minutes.
    NoData {
        minutes: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct ThresholdRule {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub target: RuleTarget,
    /// Quantity or field name (case-insensitive); empty = any.
    pub quantity: String,
    pub limit: Limit,
    /// Clears only once back past limit ∓ hysteresis.
    pub hysteresis: f64,
    /// Consecutive breaching values needed before raising (≥ 1).
    pub min_count: u32,
    /// Seconds the breach must last before raising (0 = at once).
    pub min_duration_secs: u64,
    /// The unit the limits are in ("°C"; issue 20). Values in °C/°F/K are converted to it
    /// before comparing; other units compare only with the same unit, and a value whose
    /// unit cannot apply is skipped. Empty (every rule saved before units existed) compares
    /// the number as received, as those rules always did.
    pub unit: String,
}

impl Default for ThresholdRule {
    fn default() -> Self {
        ThresholdRule {
            id: String::new(),
            name: String::new(),
            enabled: true,
            target: RuleTarget::All,
            quantity: String::new(),
            limit: Limit::Above { value: 8.0 },
            hysteresis: 0.0,
            min_count: 1,
            min_duration_secs: 0,
            unit: String::new(),
        }
    }
}

impl ThresholdRule {
    /// Checks what the form checks inline, for anything that reaches the monitor.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: &str| {
            Err(SettingsError::Invalid(format!(
                "rule \"{}\": {m}",
                self.name
            )))
        };
        if self.name.trim().is_empty() {
            return Err(SettingsError::Invalid("a rule needs a name".into()));
        }
        if self.hysteresis.is_nan() || self.hysteresis < 0.0 || !self.hysteresis.is_finite() {
            return bad("hysteresis must be 0 or more");
        }
        if self.min_count == 0 {
            return bad("at least one value must breach");
        }
        match &self.limit {
            Limit::Above { value } | Limit::Below { value } if !value.is_finite() => {
                bad("the limit must be a number")
            }
            Limit::Outside { low, high }
                if low.partial_cmp(high) != Some(std::cmp::Ordering::Less) =>
            {
                bad("the lower limit must be below the upper limit")
            }
            Limit::NoData { minutes } if *minutes == 0 => {
                bad("the silence must last at least one minute")
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct QuietHours {
    pub enabled: bool,
    /// "22:00"
    pub start: String,
    /// "07:00"
    pub end: String,
    /// Critical popups still show during quiet hours and pause.
    pub allow_critical: bool,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            enabled: false,
            start: "22:00".into(),
            end: "07:00".into(),
            allow_critical: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Notifications {
    pub paused: bool,
    pub quiet_hours: QuietHours,
    /// Storm control: more than `group_max` new alarms within this window → one summary.
    pub group_window_secs: u64,
    pub group_max: u32,
    /// A feed not live for this long raises its own popup.
    pub feed_silence_mins: u64,
    /// Alarm sounds at all (issue 21): off makes every popup silent.
    pub sound: bool,
    /// How critical (Alarm) alarms ring: sound and repeat until acknowledged or cleared.
    pub critical: Ringing,
    /// How warnings (and info alarms) ring.
    pub warning: Ringing,
}

/// How an alarm of one severity rings until it is acknowledged or cleared (issue 21).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, ts_rs::TS)]
#[serde(default)]
pub struct Ringing {
    /// The shipped sound played with its popup; None: silent.
    pub sound: Option<crate::notify::Sound>,
    /// Re-show the popup, with its sound, of an unacknowledged active alarm after this many
    /// minutes (0 = never).
    pub repeat_mins: u64,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            paused: false,
            quiet_hours: QuietHours::default(),
            group_window_secs: 10,
            group_max: 3,
            feed_silence_mins: 5,
            sound: true,
            critical: Ringing {
                sound: Some(crate::notify::Sound::Alarm),
                repeat_mins: 5,
            },
            warning: Ringing {
                sound: Some(crate::notify::Sound::Alert),
                repeat_mins: 0,
            },
        }
    }
}

/// Escalation (issue 21): a critical alarm nobody acknowledged for `after_mins` minutes is
/// sent to every enabled webhook. Tokens are in the keyring
/// ([`crate::secrets::SecretKey::WebhookToken`]), never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Escalation {
    pub after_mins: u32,
    pub webhooks: Vec<Webhook>,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            after_mins: 15,
            webhooks: Vec::new(),
        }
    }
}

impl Escalation {
    fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=1440).contains(&self.after_mins) {
            return Err(SettingsError::Invalid(
                "escalation waits between 1 and 1440 minutes".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for w in &self.webhooks {
            if w.id.is_empty() || !ids.insert(&w.id) {
                return Err(SettingsError::Invalid(format!(
                    "webhook id \"{}\" is empty or used twice",
                    w.id
                )));
            }
            w.validate()?;
        }
        Ok(())
    }
}

/// One receiver of escalations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub kind: WebhookKind,
    /// http(s) URL. `{token}` in it is replaced by the stored token (Slack and Teams keep
    /// their secret in the path); otherwise a stored token goes as `Authorization: Bearer`.
    pub url: String,
    pub enabled: bool,
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            id: String::new(),
            name: String::new(),
            kind: WebhookKind::Json,
            url: String::new(),
            enabled: true,
        }
    }
}

impl Webhook {
    fn validate(&self) -> Result<(), SettingsError> {
        let name = if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        };
        // `{token}` is not valid in every URL part: check the URL with a stand-in.
        match url::Url::parse(&self.url.replace("{token}", "token")) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            _ => Err(SettingsError::Invalid(format!(
                "webhook \"{name}\" needs an http:// or https:// URL"
            ))),
        }
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS, Default)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// `application/json` with the alarm's fields.
    #[default]
    Json,
    /// ntfy: the text as body, `Title`, `Priority` and `Tags` headers.
    Ntfy,
    /// `{"text": …}`, which Slack and Microsoft Teams incoming webhooks both take.
    Slack,
}

/// What the user chose for one sensor seen so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct SensorPrefs {
    pub name: String,
    pub notify: bool,
    /// The field that stands for this sensor where one value must (a rule without a
    /// field, the first dashboard card); empty = the app's preference, temperature first.
    pub main_field: String,
}

impl Default for SensorPrefs {
    fn default() -> Self {
        SensorPrefs {
            name: String::new(),
            notify: true,
            main_field: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct Settings {
    pub version: u32,
    pub saveris: Vec<SaverisAccount>,
    pub element: Vec<ElementAccount>,
    pub rules: Vec<ThresholdRule>,
    pub notifications: Notifications,
    /// Keyed by sensor identity.
    pub sensors: BTreeMap<String, SensorPrefs>,
    pub retention_days: u32,
    pub autostart: bool,
    /// Shown beside the OS user on acknowledgements ("Ana Ruiz (ana)"); empty = the OS user.
    pub display_name: String,
    /// Acknowledging a critical (Alarm) alarm needs a comment; the popup's Acknowledge then
    /// opens the window's comment dialog.
    pub comment_required_critical: bool,
    /// The audit trail keeps records this long, apart from the history's retention.
    pub audit_retention_days: u32,
    /// Issue 21: critical alarms left unacknowledged are sent to webhooks.
    pub escalation: Escalation,
    /// Issue 21: ΔH/R in kelvin for the shift report's mean kinetic temperature (USP <1079>
    /// uses 10,000 K, i.e. ΔH ≈ 83.144 kJ/mol).
    pub mkt_dh_r: f64,
    /// ELEMENT sends no units (issue 20): per parser id, field → unit the user confirmed
    /// ("°C"). Suggestions from field names are not stored here until confirmed.
    pub element_units: BTreeMap<String, BTreeMap<String, String>>,
    /// Issue 26: sharing alarms with the site's other PCs over MQTT (off by default).
    pub team: TeamSettings,
    /// Issue 25: "auto" (the desktop's language), "en", "de" or "fr".
    pub language: String,
}

/// Team sharing (issue 26). The broker password and the site key are in the keyring
/// (`SecretKey::TeamPassword` / `TeamSiteKey`, keyed by the site name), never here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(default)]
pub struct TeamSettings {
    pub enabled: bool,
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub broker_url: String,
    /// This PC's name among the site's; empty = the host name.
    pub pc_name: String,
    /// The topic prefix `alarm-tray/<site>/…`.
    pub site: String,
    /// The broker user name (empty: anonymous).
    pub user: String,
}

impl TeamSettings {
    /// This PC's name: the one set, else the host name.
    pub fn pc(&self) -> String {
        match self.pc_name.trim() {
            "" => crate::team::default_pc_name(),
            n => n.to_string(),
        }
    }
}

impl Default for TeamSettings {
    fn default() -> Self {
        TeamSettings {
            enabled: false,
            broker_url: "mqtt://localhost:1883".into(),
            pc_name: String::new(),
            site: String::new(),
            user: String::new(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: SCHEMA_VERSION,
            saveris: Vec::new(),
            element: Vec::new(),
            rules: Vec::new(),
            notifications: Notifications::default(),
            sensors: BTreeMap::new(),
            retention_days: 90,
            autostart: false,
            escalation: Escalation::default(),
            mkt_dh_r: 10_000.0,
            display_name: String::new(),
            comment_required_critical: false,
            audit_retention_days: 730,
            team: TeamSettings::default(),
            language: "auto".into(),
            element_units: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Rejects what the monitor must never store.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for r in &self.rules {
            r.validate()?;
        }
        if self.audit_retention_days < 30 {
            return Err(SettingsError::Invalid(
                "the audit trail must be kept at least 30 days".into(),
            ));
        }
        if self.display_name.chars().count() > 100 {
            return Err(SettingsError::Invalid(
                "the display name is longer than 100 characters".into(),
            ));
        }
        if self.team.enabled {
            // Issue 26: the names become topic segments.
            let pc = self.team.pc_name.trim();
            if !crate::team::valid_name(self.team.site.trim())
                || !(pc.is_empty() || crate::team::valid_name(pc))
            {
                return Err(SettingsError::Invalid(
                    "the site and PC names of team sharing may hold only letters, digits, '-' and '_'"
                        .into(),
                ));
            }
            crate::team::parse_broker_url(&self.team.broker_url)
                .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        }
        if self.retention_days == 0 {
            return Err(SettingsError::Invalid(
                "history must be kept at least one day".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for id in self
            .saveris
            .iter()
            .map(|a| &a.id)
            .chain(self.element.iter().map(|a| &a.id))
        {
            if id.is_empty() || !ids.insert(id) {
                return Err(SettingsError::Invalid(format!(
                    "account id \"{id}\" is empty or used twice"
                )));
            }
        }
        self.escalation.validate()?;
        if !(1_000.0..=50_000.0).contains(&self.mkt_dh_r) {
            return Err(SettingsError::Invalid(
                "ΔH/R for the mean kinetic temperature is between 1,000 and 50,000 K".into(),
            ));
        }
        for a in self.saveris.iter().filter(|a| a.custom.is_none()) {
            if !saveris_environment_exists(a.region, a.environment) {
                return Err(SettingsError::Invalid(format!(
                    "Saveris has no {}.{} environment (only eu.i, eu.p, am.p, ap.p)",
                    a.region.as_str(),
                    a.environment.letter()
                )));
            }
        }
        Ok(())
    }
}

/// Settings as loaded, with what the user must be told.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// "The settings file was unreadable; it was kept as … and defaults are used."
    pub notice: Option<String>,
}

/// Turns a store-file JSON object into settings, migrating older schema versions.
pub fn from_store_json(text: &str) -> Result<Settings, String> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let Some(obj) = root.get(STORE_KEY) else {
        // The store plugin writes `{}` on exit when nothing was ever saved (a first start
        // ended with Quit): nothing to read, nothing broken.
        if root.as_object().is_some_and(|o| o.is_empty()) {
            return Ok(Settings::default());
        }
        return Err("no settings object in the file".into());
    };
    let version = obj.get("version").and_then(|v| v.as_u64()).unwrap_or(1);
    if version > u64::from(SCHEMA_VERSION) {
        return Err(format!(
            "written by a newer version of Alarm Tray (schema {version})"
        ));
    }
    let migrated = migrate(obj.clone(), version as u32);
    let mut s: Settings =
        serde_json::from_value(migrated).map_err(|e| format!("unexpected content ({e})"))?;
    s.version = SCHEMA_VERSION;
    Ok(s)
}

/// Accounts saved for `am`/`ap` integration, which Saveris does not offer (older builds
/// offered six pairs): each now points at its region's production and is turned off, so
/// nothing connects with integration credentials to production unasked. The sentence for
/// the user, if any account was changed.
pub fn retire_missing_environments(s: &mut Settings) -> Option<String> {
    let mut names = Vec::new();
    for a in s.saveris.iter_mut() {
        if a.custom.is_none() && !saveris_environment_exists(a.region, a.environment) {
            let was = format!("{}.{}", a.region.as_str(), a.environment.letter());
            a.environment = Environment::Production;
            a.enabled = false;
            names.push(format!(
                "“{}” ({was} → {}.p)",
                a.username,
                a.region.as_str()
            ));
        }
    }
    (!names.is_empty()).then(|| {
        format!(
            "Saveris offers only the environments eu.i, eu.p, am.p and ap.p. These Saveris accounts were set to one that does not exist: {}. Each now points at its region's production and is turned off: check it in Settings → Accounts and turn it on.",
            names.join(", ")
        )
    })
}

/// Schema 1 (0.0.x) kept a single `paused` flag and `quiet_start`/`quiet_end` at the top
/// level; schema 2 groups them under `notifications`.
fn migrate(mut v: serde_json::Value, from: u32) -> serde_json::Value {
    // Issue 21: one `repeat_mins` for every alarm became one per severity. A repeat the user
    // had set keeps applying to both; unset (0) leaves the new defaults (critical: 5 min).
    if let Some(n) = v.get_mut("notifications").and_then(|n| n.as_object_mut()) {
        if let Some(old) = n.remove("repeat_mins").and_then(|r| r.as_u64()) {
            if old > 0 && !n.contains_key("critical") && !n.contains_key("warning") {
                n.insert(
                    "critical".into(),
                    serde_json::json!({"sound": "alarm", "repeat_mins": old}),
                );
                n.insert(
                    "warning".into(),
                    serde_json::json!({"sound": "alert", "repeat_mins": old}),
                );
            }
        }
    }
    if from < 2 {
        if let Some(obj) = v.as_object_mut() {
            let mut n = serde_json::Map::new();
            if let Some(p) = obj.remove("paused") {
                n.insert("paused".into(), p);
            }
            let start = obj.remove("quiet_start");
            let end = obj.remove("quiet_end");
            if let (Some(s), Some(e)) = (start, end) {
                n.insert(
                    "quiet_hours".into(),
                    serde_json::json!({"enabled": true, "start": s, "end": e}),
                );
            }
            obj.entry("notifications")
                .or_insert(serde_json::Value::Object(n));
        }
    }
    v
}

/// The store-file form of `settings`.
pub fn to_store_json(settings: &Settings) -> serde_json::Value {
    serde_json::json!({ STORE_KEY: settings })
}

/// Reads the settings file at `path`. A missing file gives defaults; an unreadable one is
/// renamed to `<name>.broken-<unix time>` (nothing is lost) and defaults are used.
pub fn load(path: &Path) -> Loaded {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Loaded {
                settings: Settings::default(),
                notice: None,
            };
        }
        Err(e) => {
            return Loaded {
                settings: Settings::default(),
                notice: Some(format!(
                    "The settings file {} could not be read ({e}); defaults are used.",
                    path.display()
                )),
            };
        }
    };
    let parsed = String::from_utf8(text)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(|t| from_store_json(&t));
    match parsed {
        Ok(mut settings) => {
            let notice = retire_missing_environments(&mut settings);
            Loaded { settings, notice }
        }
        Err(why) => {
            let backup = backup_path(path);
            let kept = match std::fs::rename(path, &backup) {
                Ok(()) => format!("it was kept as {}", backup.display()),
                Err(e) => format!("it could not be moved aside ({e})"),
            };
            tracing::warn!(file = %path.display(), %why, "settings file unusable; starting with defaults");
            Loaded {
                settings: Settings::default(),
                notice: Some(format!("The settings file was unusable: {why}; {kept}. Alarm Tray started with default settings.")),
            }
        }
    }
}

fn backup_path(path: &Path) -> PathBuf {
    let secs = jiff::Timestamp::now().as_second();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.into());
    path.with_file_name(format!("{name}.broken-{secs}"))
}

/// Reads the settings file without changing it (for `watch`, which never writes). A missing
/// file gives defaults; an unusable one is an error in words.
pub fn read(path: &Path) -> Result<Settings, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("the settings file {} is not UTF-8 text", path.display()))?;
            let mut settings = from_store_json(&text).map_err(|why| {
                format!("the settings file {} is unusable: {why}", path.display())
            })?;
            // As at the monitor's start, but the file is not written: `watch` only says so.
            if let Some(notice) = retire_missing_environments(&mut settings) {
                tracing::warn!("{notice}");
            }
            Ok(settings)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(format!(
            "the settings file {} could not be read: {e}",
            path.display()
        )),
    }
}

/// Writes the store-file form atomically (temp file + rename). The monitor saves through
/// tauri-plugin-store; this is for `watch --demo` profiles and tests.
pub fn save(path: &Path, settings: &Settings) -> Result<(), SettingsError> {
    let text = serde_json::to_vec_pretty(&to_store_json(settings))
        .map_err(|e| SettingsError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let write = |p: &Path| -> std::io::Result<()> {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, &text)
    };
    write(&tmp).map_err(|source| SettingsError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| SettingsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_store_json() {
        let mut s = Settings::default();
        s.saveris.push(SaverisAccount {
            id: "a1".into(),
            username: "alice".into(),
            ..Default::default()
        });
        s.rules.push(ThresholdRule {
            id: "r".into(),
            name: "fridge".into(),
            ..Default::default()
        });
        let text = to_store_json(&s).to_string();
        assert_eq!(from_store_json(&text).unwrap(), s);
    }

    #[test]
    fn corrupt_file_is_kept_aside_and_defaults_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{\"settings\": {\"version\": 2, \"saveris\": [tru").unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, Settings::default());
        let notice = loaded.notice.expect("the user must be told");
        assert!(notice.contains("kept as"), "{notice}");
        assert!(!path.exists(), "the broken file must be moved aside");
        let backups: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(backups.len(), 1);
        assert_eq!(
            std::fs::read(backups[0].path()).unwrap(),
            b"{\"settings\": {\"version\": 2, \"saveris\": [tru"
        );
    }

    #[test]
    fn empty_store_file_of_a_first_start_is_not_broken() {
        // What the store plugin leaves after a first start ended with Quit (found under
        // Wine, the same on Linux): no notice, file kept.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, b"{}").unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.settings, Settings::default());
        assert_eq!(loaded.notice, None);
        assert!(path.exists(), "nothing to move aside");
        assert!(
            from_store_json(r#"{"other":1}"#).is_err(),
            "other content is still unusable"
        );
    }

    #[test]
    fn newer_schema_is_not_silently_dropped() {
        let err = from_store_json(r#"{"settings":{"version":99}}"#).unwrap_err();
        assert!(err.contains("newer version"), "{err}");
    }

    #[test]
    fn schema_1_file_is_migrated() {
        let v1 = r#"{"settings":{"version":1,"paused":true,"quiet_start":"23:00","quiet_end":"06:30",
            "saveris":[{"id":"x","username":"bob","region":"am","environment":"integration"}]}}"#;
        let s = from_store_json(v1).unwrap();
        assert_eq!(s.version, SCHEMA_VERSION);
        assert!(s.notifications.paused);
        assert!(s.notifications.quiet_hours.enabled);
        assert_eq!(s.notifications.quiet_hours.start, "23:00");
        assert_eq!(s.saveris[0].region, Region::Am);
        assert_eq!(s.saveris[0].environment, Environment::Integration);
    }

    #[test]
    fn rules_saved_before_units_compare_as_received() {
        // Issue 20: a rule without a unit keeps comparing the number as the sensor sends
        // it (no guess that might silently move a limit from °F to °C).
        let old = r#"{"settings":{"version":2,"rules":[{"id":"r","name":"fridge","limit":{"type":"above","value":8}}]}}"#;
        let s = from_store_json(old).unwrap();
        assert_eq!(s.rules[0].unit, "");
        assert!(s.element_units.is_empty());
        assert_eq!(s.saveris.len(), 0);
        let back: Settings = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn one_repeat_for_all_becomes_one_per_severity() {
        let old = r#"{"settings":{"version":2,"notifications":{"repeat_mins":10}}}"#;
        let n = from_store_json(old).unwrap().notifications;
        assert_eq!((n.critical.repeat_mins, n.warning.repeat_mins), (10, 10));
        assert_eq!(n.critical.sound, Some(crate::notify::Sound::Alarm));
        let unset = r#"{"settings":{"version":2,"notifications":{"repeat_mins":0}}}"#;
        let n = from_store_json(unset).unwrap().notifications;
        assert_eq!((n.critical.repeat_mins, n.warning.repeat_mins), (5, 0));
        assert!(n.sound);
    }

    #[test]
    fn rule_validation_catches_bad_ranges() {
        let mut r = ThresholdRule {
            name: "x".into(),
            ..Default::default()
        };
        r.limit = Limit::Outside {
            low: 5.0,
            high: 2.0,
        };
        assert!(r.validate().is_err());
        r.limit = Limit::Outside {
            low: 2.0,
            high: 5.0,
        };
        r.hysteresis = -1.0;
        assert!(r.validate().is_err());
        r.hysteresis = 0.5;
        assert!(r.validate().is_ok());
    }

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let s = Settings {
            retention_days: 30,
            ..Default::default()
        };
        save(&path, &s).unwrap();
        let l = load(&path);
        assert!(l.notice.is_none());
        assert_eq!(l.settings.retention_days, 30);
    }

    #[test]
    fn am_and_ap_integration_accounts_are_retired_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut s = Settings::default();
        for (id, region, environment) in [
            ("a", Region::Am, Environment::Integration),
            ("b", Region::Eu, Environment::Integration),
            ("c", Region::Ap, Environment::Production),
        ] {
            s.saveris.push(SaverisAccount {
                id: id.into(),
                username: format!("user-{id}"),
                region,
                environment,
                ..Default::default()
            });
        }
        std::fs::write(&path, to_store_json(&s).to_string()).unwrap();
        let loaded = load(&path);
        let notice = loaded.notice.expect("the user is told");
        assert!(notice.contains("“user-a” (am.i → am.p)"), "{notice}");
        assert!(
            !notice.contains("user-b") && !notice.contains("user-c"),
            "{notice}"
        );
        let a = &loaded.settings.saveris[0];
        assert_eq!((a.environment, a.enabled), (Environment::Production, false));
        assert!(loaded.settings.saveris[1].enabled && loaded.settings.saveris[2].enabled);
        assert_eq!(SAVERIS_ENVIRONMENTS.len(), 4);
    }
}
