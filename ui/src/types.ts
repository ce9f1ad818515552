// Mirrors of the Rust types the window receives and sends. The JSON shapes follow the serde
// attributes in src-tauri/src/settings.rs, src-tauri/src/ipc/protocol.rs, src-tauri/src/event.rs
// and src-tauri/src/secrets.rs; keep them in step with those files.

// ---- settings.rs ----
export type Region = "eu" | "am" | "ap";
export type Environment = "integration" | "production";
export type LoginMethod = "data_api" | "cognito";

export interface Channels {
  alarms: boolean;
  measurements: boolean;
  measurements_v2: boolean;
}

export interface CustomEndpoint {
  ws_url: string;
  destination_pattern: string;
  token_url: string;
  stomp_login: string;
}

export interface SaverisAccount {
  id: string;
  enabled: boolean;
  username: string;
  region: Region;
  environment: Environment;
  login: LoginMethod;
  cognito_endpoint: string;
  cognito_client_id: string;
  channels: Channels;
  custom: CustomEndpoint | null;
}

export type ElementScope =
  | { type: "device"; id: string }
  | { type: "tag"; id: string }
  | { type: "stream"; id: string }
  | { type: "mandate" };

export type ElementKind = "readings" | "packets";

export interface ElementSubscription {
  id: string;
  enabled: boolean;
  scope: ElementScope;
  kind: ElementKind;
  preload: string[];
  catch_up_hours: number;
}

export interface ElementAccount {
  id: string;
  enabled: boolean;
  base_url: string;
  subscriptions: ElementSubscription[];
  text_ping: boolean;
}

export type RuleTarget =
  | { type: "all" }
  | { type: "sensor"; id: string }
  | { type: "device"; id: string }
  | { type: "tag"; id: string };

export type Limit =
  | { type: "above"; value: number }
  | { type: "below"; value: number }
  | { type: "outside"; low: number; high: number }
  | { type: "no_data"; minutes: number };

export interface ThresholdRule {
  id: string;
  name: string;
  enabled: boolean;
  target: RuleTarget;
  quantity: string;
  limit: Limit;
  hysteresis: number;
  min_count: number;
  min_duration_secs: number;
}

export interface QuietHours {
  enabled: boolean;
  start: string;
  end: string;
  allow_critical: boolean;
}

export interface Notifications {
  paused: boolean;
  quiet_hours: QuietHours;
  group_window_secs: number;
  group_max: number;
  repeat_mins: number;
  feed_silence_mins: number;
}

export interface SensorPrefs {
  name: string;
  notify: boolean;
}

export interface Settings {
  version: number;
  saveris: SaverisAccount[];
  element: ElementAccount[];
  rules: ThresholdRule[];
  notifications: Notifications;
  sensors: Record<string, SensorPrefs>;
  retention_days: number;
  autostart: boolean;
}

// ---- secrets.rs ----
export type SecretKind = "saveris_password" | "stomp_passcode" | "element_api_key";
export interface SecretKey {
  kind: SecretKind;
  account: string;
}

// ---- event.rs ----
export type Severity = "info" | "warning" | "alarm";

/** `FeedState` is flattened into `FeedStatus` with the tag `state`. */
export type FeedState =
  | { state: "idle" }
  | { state: "connecting" }
  | { state: "live" }
  | { state: "waiting"; secs: number; reason: string }
  | { state: "login_failed"; message: string }
  | { state: "stopped"; message: string };

export type FeedStatus = FeedState & {
  /** `saveris:<account>` or `element:<account>:<subscription>`. */
  feed: string;
  label: string;
  /** RFC 3339 timestamps (jiff). */
  last_message_at: string | null;
  live_since: string | null;
  last_error: string | null;
};

// ---- ipc/protocol.rs ----
export type Page = "settings" | "history" | "dashboard";

export interface InitialPage {
  page: Page;
  alarm_id: number | null;
}

export interface AlarmFilter {
  state: "" | "active" | "cleared";
  severity: Severity | null;
  source: "" | "saveris" | "element" | "app";
  device: string;
  from_ms: number | null;
  to_ms: number | null;
  limit: number;
  offset: number;
}

export type ConnectionTest =
  | { kind: "saveris"; account: SaverisAccount; password: string | null; passcode?: string | null }
  | { kind: "element"; account: ElementAccount; api_key: string | null };

/** A connection test that got through; a failed one rejects with a `MonitorError`. */
export interface Connected {
  message: string;
}

export type Discover = { what: "devices" } | { what: "tags" } | { what: "tag_devices"; id: string };

export interface AlarmRow {
  id: number;
  source: string;
  account: string;
  device: string | null;
  sensor: string | null;
  name: string | null;
  condition: string | null;
  severity: Severity;
  value: number | null;
  unit: string | null;
  limit: string | null;
  raised_ms: number;
  cleared_ms: number | null;
  acknowledged_ms: number | null;
  acknowledged_by: string | null;
}

export interface LatestValue {
  sensor: string;
  name: string | null;
  source: string;
  quantity: string | null;
  value: number;
  unit: string | null;
  at_ms: number;
}

export interface UnparsedRow {
  id: number;
  source: string;
  account: string;
  received_ms: number;
  raw: string;
}

export interface NamedItem {
  id: string;
  name: string;
}

export interface Info {
  version: string;
  data_dir: string;
  log_dir: string;
  demo: boolean;
  notice: string | null;
}

export type TrayState = "ok" | "alarm" | "problem" | "paused";

export interface Status {
  tray: TrayState;
  summary: string;
  paused: boolean;
  active_alarms: number;
  feeds: FeedStatus[];
}

export type Push =
  | { type: "status"; data: Status }
  | { type: "history_changed" }
  | { type: "focus"; data: { page: Page; alarm_id: number | null } };

// ---- ipc/error.rs ----
/** Why a command failed: `kind` is for code to branch on, `message` for people. */
export type MonitorError =
  | { kind: "monitor_not_running"; message: string }
  | { kind: "protocol_mismatch"; message: string }
  | { kind: "monitor_connection"; message: string }
  | { kind: "timeout"; message: string }
  | { kind: "invalid_input"; message: string }
  | { kind: "not_found"; message: string }
  | { kind: "secret_missing"; message: string }
  | { kind: "storage"; message: string }
  | { kind: "keyring"; message: string }
  | { kind: "login_failed"; message: string }
  | { kind: "connection_rejected"; message: string }
  | { kind: "network"; message: string }
  | { kind: "bad_response"; message: string }
  | { kind: "desktop"; message: string }
  | { kind: "internal"; message: string };
