// Generated from the Rust types by ts-rs (src-tauri/src/gui/bindings.rs): do not edit.
// `make bindings` writes it anew; `make test` and `make check` fail while it is out of date.

export type Region = "eu" | "am" | "ap";

/**
 * Saveris environment: `i` (integration) or `p` (production).
 */
export type Environment = "integration" | "production";

export type LoginMethod = "data_api" | "cognito";

export type Channels = { alarms: boolean, measurements: boolean, measurements_v2: boolean, };

/**
 * Staging and on-premise brokers, and the tests: everything the cloud derives from
 * region/environment, given explicitly.
 */
export type CustomEndpoint = { 
/**
 * `ws://` or `wss://` URL of the STOMP WebSocket endpoint.
 */
ws_url: string, 
/**
 * Destination with `{username}` and `{channel}` placeholders;
 * empty means the Saveris form `/queue/{username}/{channel}`.
 */
destination_pattern: string, 
/**
 * Token endpoint (Data API style); empty means: no token, use STOMP login/passcode.
 */
token_url: string, 
/**
 * STOMP `login`; the passcode is a secret ([`crate::secrets::SecretKey::StompPasscode`]).
 */
stomp_login: string, 
/**
 * Data API base URL (issue 20: names, limits, history); empty means the origin of
 * `token_url`, so a self-hosted or test server serves both.
 */
data_api_url: string, };

export type SaverisAccount = { 
/**
 * Stable id, used for keyring entries and history.
 */
id: string, enabled: boolean, username: string, region: Region, environment: Environment, login: LoginMethod, 
/**
 * Cognito endpoint; empty = `https://cognito-idp.eu-central-1.amazonaws.com/`.
 */
cognito_endpoint: string, cognito_client_id: string, channels: Channels, custom: CustomEndpoint | null, 
/**
 * The site's time zone (IANA, "America/Chicago"; issue 20), e.g. the tenant's
 * `main_timezone` from the Data API. Empty: the zone of the payload's local time, if any.
 */
site_timezone: string, };

export type ElementScope = { "type": "device", "id": string } | { "type": "tag", "id": string } | { "type": "stream", "id": string } | { "type": "mandate" };

export type ElementKind = "readings" | "packets";

export type ElementSubscription = { id: string, enabled: boolean, scope: ElementScope, kind: ElementKind, 
/**
 * `preload=` values (`device`, `device.fields`, `packet`, …).
 */
preload: Array<string>, 
/**
 * On the very first start: replay this many hours (0 = live only).
 */
catch_up_hours: number, };

export type ElementAccount = { id: string, enabled: boolean, 
/**
 * Instance base URL, e.g. `https://element-iot.com`.
 */
base_url: string, subscriptions: Array<ElementSubscription>, 
/**
 * Send the text `ping` as well as WebSocket Ping frames.
 */
text_ping: boolean, };

/**
 * What a threshold rule looks at.
 */
export type RuleTarget = { "type": "all" } | { "type": "sensor", "id": string } | { "type": "device", "id": string } | { "type": "tag", "id": string };

export type Limit = { "type": "above", value: number, } | { "type": "below", value: number, } | { "type": "outside", low: number, high: number, } | { "type": "no_data", minutes: number, };

export type ThresholdRule = { id: string, name: string, enabled: boolean, target: RuleTarget, 
/**
 * Quantity or field name (case-insensitive); empty = any.
 */
quantity: string, limit: Limit, 
/**
 * Clears only once back past limit ∓ hysteresis.
 */
hysteresis: number, 
/**
 * Consecutive breaching values needed before raising (≥ 1).
 */
min_count: number, 
/**
 * Seconds the breach must last before raising (0 = at once).
 */
min_duration_secs: number, 
/**
 * The unit the limits are in ("°C"; issue 20). Values in °C/°F/K are converted to it
 * before comparing; other units compare only with the same unit, and a value whose
 * unit cannot apply is skipped. Empty (every rule saved before units existed) compares
 * the number as received, as those rules always did.
 */
unit: string, };

export type QuietHours = { enabled: boolean, 
/**
 * "22:00"
 */
start: string, 
/**
 * "07:00"
 */
end: string, 
/**
 * Critical popups still show during quiet hours and pause.
 */
allow_critical: boolean, };

/**
 * One of the shipped sounds.
 */
export type Sound = "alarm" | "alert" | "chime";

/**
 * Team sharing (issue 26). The broker password and the site key are in the keyring
 * (`SecretKey::TeamPassword` / `TeamSiteKey`, keyed by the site name), never here.
 */
export type TeamSettings = { enabled: boolean, 
/**
 * `mqtt://host[:port]` or `mqtts://host[:port]`.
 */
broker_url: string, 
/**
 * This PC's name among the site's; empty = the host name.
 */
pc_name: string, 
/**
 * The topic prefix `alarm-tray/<site>/…`.
 */
site: string, 
/**
 * The broker user name (empty: anonymous).
 */
user: string, };

/**
 * How an alarm of one severity rings until it is acknowledged or cleared (issue 21).
 */
export type Ringing = { 
/**
 * The shipped sound played with its popup; None: silent.
 */
sound: Sound | null, 
/**
 * Re-show the popup, with its sound, of an unacknowledged active alarm after this many
 * minutes (0 = never).
 */
repeat_mins: number, };

export type Notifications = { paused: boolean, quiet_hours: QuietHours, 
/**
 * Storm control: more than `group_max` new alarms within this window → one summary.
 */
group_window_secs: number, group_max: number, 
/**
 * A feed not live for this long raises its own popup.
 */
feed_silence_mins: number, 
/**
 * Alarm sounds at all (issue 21): off makes every popup silent.
 */
sound: boolean, 
/**
 * How critical (Alarm) alarms ring: sound and repeat until acknowledged or cleared.
 */
critical: Ringing, 
/**
 * How warnings (and info alarms) ring.
 */
warning: Ringing, };

/**
 * What the user chose for one sensor seen so far.
 */
export type SensorPrefs = { name: string, notify: boolean, 
/**
 * The field that stands for this sensor where one value must (a rule without a
 * field, the first dashboard card); empty = the app's preference, temperature first.
 */
main_field: string, };

/**
 * Escalation (issue 21): a critical alarm nobody acknowledged for `after_mins` minutes is
 * sent to every enabled webhook. Tokens are in the keyring
 * ([`crate::secrets::SecretKey::WebhookToken`]), never here.
 */
export type Escalation = { after_mins: number, webhooks: Array<Webhook>, };

/**
 * One receiver of escalations.
 */
export type Webhook = { id: string, name: string, kind: WebhookKind, 
/**
 * http(s) URL. `{token}` in it is replaced by the stored token (Slack and Teams keep
 * their secret in the path); otherwise a stored token goes as `Authorization: Bearer`.
 */
url: string, enabled: boolean, };

/**
 * The body a webhook receives.
 */
export type WebhookKind = "json" | "ntfy" | "slack";

export type Settings = { version: number, saveris: Array<SaverisAccount>, element: Array<ElementAccount>, rules: Array<ThresholdRule>, notifications: Notifications, 
/**
 * Keyed by sensor identity.
 */
sensors: { [key in string]: SensorPrefs }, retention_days: number, autostart: boolean, 
/**
 * Shown beside the OS user on acknowledgements ("Ana Ruiz (ana)"); empty = the OS user.
 */
display_name: string, 
/**
 * Acknowledging a critical (Alarm) alarm needs a comment; the popup's Acknowledge then
 * opens the window's comment dialog.
 */
comment_required_critical: boolean, 
/**
 * The audit trail keeps records this long, apart from the history's retention.
 */
audit_retention_days: number, 
/**
 * Issue 21: critical alarms left unacknowledged are sent to webhooks.
 */
escalation: Escalation, 
/**
 * Issue 21: ΔH/R in kelvin for the shift report's mean kinetic temperature (USP <1079>
 * uses 10,000 K, i.e. ΔH ≈ 83.144 kJ/mol).
 */
mkt_dh_r: number, 
/**
 * ELEMENT sends no units (issue 20): per parser id, field → unit the user confirmed
 * ("°C"). Suggestions from field names are not stored here until confirmed.
 */
element_units: { [key in string]: { [key in string]: string } }, 
/**
 * Issue 26: sharing alarms with the site's other PCs over MQTT (off by default).
 */
team: TeamSettings, 
/**
 * Issue 25: "auto" (the desktop's language), "en", "de" or "fr".
 */
language: string, };

/**
 * Which secret. Its string form is the keyring entry's user name, e.g.
 * `saveris:acc1:password` — an id, never the secret.
 */
export type SecretKey = { "kind": "saveris_password", "account": string } | { "kind": "stomp_passcode", "account": string } | { "kind": "element_api_key", "account": string } | { "kind": "webhook_token", "account": string } | { "kind": "team_password", "account": string } | { "kind": "team_site_key", "account": string };

/**
 * Which upstream an event came from.
 */
export type Source = "saveris" | "element" | "app";

/**
 * How serious an event is. Ordered: `Info < Warning < Alarm`.
 */
export type Severity = "info" | "warning" | "alarm";

/**
 * The state of one feed connection as the user should read it.
 */
export type FeedState = { "state": "idle" } | { "state": "connecting" } | { "state": "live" } | { "state": "waiting", secs: number, reason: string, } | { "state": "login_failed", message: string, } | { "state": "stopped", message: string, } | { "state": "waiting_for_keyring", message: string, } | { "state": "through_team", pc: string, };

/**
 * A status report of one feed.
 */
export type FeedStatus = { 
/**
 * `saveris:<account>` or `element:<account>:<subscription>`.
 */
feed: string, 
/**
 * For people: "Saveris eu/production (alice)".
 */
label: string, last_message_at: string | null, 
/**
 * When the feed was last live (for "not connected since 14:02").
 */
live_since: string | null, last_error: string | null, 
/**
 * Channels the server refused for this user (Saveris `subscription refused`): left
 * out of the connection until the user turns them on again.
 */
refused: Array<ChannelRefusal>, 
/**
 * How the account's names stand (issue 20): "names last refreshed 3 days ago", or
 * what failed. Filled in by the engine; `None` for feeds without a names source.
 */
names: string | null, } & ({ "state": "idle" } | { "state": "connecting" } | { "state": "live" } | { "state": "waiting", secs: number, reason: string, } | { "state": "login_failed", message: string, } | { "state": "stopped", message: string, } | { "state": "waiting_for_keyring", message: string, } | { "state": "through_team", pc: string, });

/**
 * A channel the server refused, and the sentence to show next to it.
 */
export type ChannelRefusal = { channel: string, message: string, };

/**
 * Something a feed lists by id and name (ELEMENT devices and tags, for discovery).
 *
 * Here rather than in the engine's model: feeds produce it and the window shows it, and
 * feeds may not import the engine (nor the engine the feeds); this module is the one both
 * rest on.
 */
export type NamedItem = { id: string, name: string, };

/**
 * Filters of the alarms table.
 */
export type AlarmFilter = { 
/**
 * "active", "cleared" or empty for all.
 */
state: "" | "active" | "cleared", severity: Severity | null, 
/**
 * None for all; on the wire the empty string, as the window sends it.
 */
source: "" | Source, 
/**
 * Substring of device, sensor or name.
 */
device: string, 
/**
 * Unix ms, inclusive.
 */
from_ms: number | null, to_ms: number | null, limit: number, offset: number, };

/**
 * A row of the alarms table.
 */
export type AlarmRow = { id: number, source: Source, account: string, device: string | null, sensor: string | null, name: string | null, condition: string | null, severity: Severity, value: number | null, unit: string | null, limit: string | null, raised_ms: number, cleared_ms: number | null, acknowledged_ms: number | null, acknowledged_by: string | null, 
/**
 * The alarm's severity over its life, oldest first: the raise, then every change
 * (Warning → Alarm on the same sensor and condition, and back). Empty for alarms
 * stored before the history kept steps.
 */
steps: Array<SeverityStep>, 
/**
 * Who acknowledged (`acknowledged_by` is the way: popup, window): the display name set
 * in General and the OS user, e.g. "Ana Ruiz (ana)".
 */
acknowledged_user: string | null, 
/**
 * The reason given when acknowledging.
 */
acknowledged_comment: string | null, };

/**
 * One step of an alarm's life: from `at_ms` on, its severity was `severity`.
 */
export type SeverityStep = { at_ms: number, severity: Severity, };

/**
 * The newest value of one (sensor, quantity).
 */
export type LatestValue = { sensor: string, name: string | null, source: Source, quantity: string | null, value: number, unit: string | null, at_ms: number, };

/**
 * Where a sensor is and what limits its equipment has, for the dashboard (issue 20).
 */
export type SensorPlace = { sensor: string, 
/**
 * "Fridge 1 - Air Sensor · Kitchen".
 */
label: string, area: string | null, equipment: string | null, 
/**
 * The configured limits (warning and violation, both sides), ascending.
 */
limits: Array<number>, 
/**
 * The site's IANA zone (the tenant's `main_timezone`), for the site's time beside the
 * desktop's.
 */
timezone: string | null, };

/**
 * A body that could not be parsed, kept so the user can see it.
 */
export type UnparsedRow = { id: number, source: Source, account: string, received_ms: number, raw: string, };

/**
 * A sensor's popups held back for a while, with why and by whom (issue 21: "mute this
 * sensor for 1 h / 4 h / until tomorrow").
 */
export type Snooze = { 
/**
 * The sensor identity (as alarms carry it; the device where there is no sensor).
 */
sensor: string, 
/**
 * The sensor's name when it was snoozed, for lists.
 */
name: string | null, at_ms: number, until_ms: number, reason: string, 
/**
 * Display name and OS user, as on acknowledgements.
 */
user: string, };

/**
 * How long a snooze lasts, as the window offers it.
 */
export type SnoozeFor = { "kind": "hours", hours: number, } | { "kind": "until_tomorrow" };

/**
 * The tray's look.
 */
export type TrayState = "ok" | "alarm" | "problem" | "paused";

/**
 * What [`verify`] found.
 */
export type AuditReport = { intact: boolean, 
/**
 * Records checked (all of them when intact).
 */
records: number, 
/**
 * The number of the first record changed, removed or moved.
 */
first_bad: number | null, 
/**
 * What is wrong, in words (empty when intact).
 */
problem: string, 
/**
 * The hash of the newest record: written down elsewhere, it also proves that no
 * record was removed from the end.
 */
head: string, };

/**
 * What the tray, the window and `watch` show of the engine's state.
 */
export type Status = { tray: TrayState, 
/**
 * One line, as in the tooltip.
 */
summary: string, paused: boolean, active_alarms: number, feeds: Array<FeedStatus>, 
/**
 * Issue 26: PCs watching on the site while team sharing is on.
 */
team_pcs?: number, };

/**
 * Another PC of the site, as its retained presence says.
 */
export type Peer = { pc: string, online: boolean, 
/**
 * Its feeds and their states in words (`saveris:a1` → `live`).
 */
feeds: Array<[string, string]>, 
/**
 * Its Saveris feeds' logins (`saveris:a1` → `lab@example.org`, lower case), so another
 * PC with the same login knows who holds it (account ids differ between PCs).
 */
logins: Array<[string, string]>, at_ms: number, };

/**
 * The link's state, as the status line and the Team page show it.
 */
export type TeamStatus = { 
/**
 * `off`, `connecting`, `live`, or a sentence saying what is wrong.
 */
state: string, 
/**
 * Messages dropped because their signature was missing or wrong.
 */
forged_dropped: number, 
/**
 * Rows published and not yet acknowledged by the broker.
 */
in_flight: number, 
/**
 * Every PC seen on the site, this one included.
 */
peers: Array<Peer>, };

/**
 * One pixel column of the chart: `t_ms` is the bucket's start; `min`/`max`/`mean` are
 * `None` when no reading fell in it.
 */
export type Bucket = { t_ms: number, min: number | null, max: number | null, mean: number | null, count: number, };

/**
 * A limit that applies to the sensor: `low` for "below", `high` for "above", both for
 * "outside". `rule` names where it comes from (the rule's name, or the device's own).
 */
export type LimitLine = { rule: string, low: number | null, high: number | null, origin: LimitOrigin, };

/**
 * Where a limit line comes from: one of this app's threshold rules, or the limits the
 * sensor carries upstream (Saveris's own alarm limits, read by the Data API of issue 20).
 */
export type LimitOrigin = "rule" | "saveris";

/**
 * The range's figures, from every reading (not from the buckets).
 */
export type RangeStats = { count: number, min: number | null, max: number | null, mean: number | null, 
/**
 * Time the readings spent outside any limit line, in ms (a reading holds until the
 * next one, but never across a gap).
 */
outside_ms: number, 
/**
 * Mean kinetic temperature (ΔH/R = 10,000 K), for temperatures in °C only.
 */
mkt: number | null, };

/**
 * What the sensor view shows for one range.
 */
export type SensorView = { sensor: string, name: string | null, quantity: string | null, unit: string | null, from_ms: number, to_ms: number, buckets: Array<Bucket>, limits: Array<LimitLine>, 
/**
 * The sensor's alarms that overlap the range (raised, steps, acknowledged, cleared).
 */
alarms: Array<AlarmRow>, stats: RangeStats, };

/**
 * Which page a window shows.
 */
export type Page = "settings" | "history" | "dashboard";

/**
 * The page the window was opened on (`alarm-tray window --page … --alarm …`).
 */
export type InitialPage = { page: Page, alarm_id: number | null, };

/**
 * A file the window offered for download (sensor view CSV/PNG export) was written, or
 * failed: sent to the web UI as `window://download`, so it can say where the file went.
 */
export type DownloadDone = { path: string | null, ok: boolean, };

/**
 * Saveris or ELEMENT account to try with the settings as typed (not yet saved).
 */
export type ConnectionTest = { "kind": "saveris", account: SaverisAccount, password: string | null, 
/**
 * STOMP passcode of a custom endpoint, as typed (None = the stored one).
 */
passcode?: string | null, 
/**
 * The user's confirm to send the stored password or passcode to this endpoint
 * (an origin or URL) although it was stored for another one.
 */
send_stored_to?: string | null, } | { "kind": "element", account: ElementAccount, api_key: string | null, 
/**
 * As for Saveris: confirms sending the stored API key to this endpoint.
 */
send_stored_to?: string | null, } | { "kind": "team", team: TeamSettings, password?: string | null, site_key?: string | null, };

/**
 * A connection test that got through: what it reached, in words.
 */
export type Connected = { message: string, };

/**
 * Files the monitor wrote for the window (report, export), and a line about them.
 */
export type Saved = { files: Array<string>, message: string, };

/**
 * What ELEMENT discovery lists.
 */
export type Discover = { "what": "devices" } | { "what": "tags" } | { "what": "tag_devices", "id": string };

export type Info = { version: string, data_dir: string, log_dir: string, demo: boolean, 
/**
 * Something the user must read (e.g. the settings file was corrupt).
 */
notice: string | null, 
/**
 * Issue 25: the desktop's language as the monitor reads it ("en", "de", "fr"): the
 * window's "auto" follows it, so window, tray and popups agree.
 */
language: string, };

/**
 * Live events pushed to a subscribed window.
 */
export type Push = { "type": "status", "data": Status } | { "type": "history_changed" } | { "type": "focus", "data": { page: Page, alarm_id: number | null, } };

/**
 * What went wrong at the monitor boundary, by kind; each variant holds the sentence.
 */
export type MonitorError = { "kind": "monitor_not_running", "message": string } | { "kind": "protocol_mismatch", "message": string } | { "kind": "monitor_connection", "message": string } | { "kind": "timeout", "message": string } | { "kind": "invalid_input", "message": string } | { "kind": "not_found", "message": string } | { "kind": "secret_missing", "message": string } | { "kind": "storage", "message": string } | { "kind": "keyring", "message": string } | { "kind": "endpoint_changed", "message": string } | { "kind": "login_failed", "message": string } | { "kind": "connection_rejected", "message": string } | { "kind": "network", "message": string } | { "kind": "bad_response", "message": string } | { "kind": "desktop", "message": string } | { "kind": "internal", "message": string };
