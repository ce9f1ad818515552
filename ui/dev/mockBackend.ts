// A stand-in for the monitor behind the Tauri commands: canned, stateful data for the unit
// tests and the dev-only mock page (ui/mock.html). Never part of the app build.
import { mockIPC } from "@tauri-apps/api/mocks";
import type { InvokeArgs } from "@tauri-apps/api/core";
import type { AlarmFilter, AlarmRow, AuditReport, Info, LatestValue, LimitLine, MonitorError, SensorView, Settings, Snooze, Status, UnparsedRow } from "../src/types";

export interface MockState {
  info: Info;
  page: { page: "settings" | "history" | "dashboard"; alarm_id: number | null };
  settings: Settings;
  secrets: Set<string>;
  /** Every secret value sent, to prove one went to the backend (tests only). */
  secretWrites: { key: string; value: string }[];
  status: Status;
  alarms: AlarmRow[];
  latest: LatestValue[];
  series: Record<string, [number, number][]>;
  unparsed: UnparsedRow[];
  audit: AuditReport;
  /** Snoozed sensors (issue 21). */
  snoozes: Snooze[];
  calls: { cmd: string; args: InvokeArgs | undefined }[];
  /** Commands that fail with this error (e.g. kind `monitor_not_running`). */
  fail: Record<string, MonitorError>;
  /** Custom handlers that win over the defaults. */
  handlers: Record<string, (args: any) => unknown>;
}

export function defaultSettings(): Settings {
  return {
    version: 2,
    saveris: [],
    element: [],
    rules: [],
    notifications: {
      paused: false,
      quiet_hours: { enabled: false, start: "22:00", end: "07:00", allow_critical: true },
      group_window_secs: 10,
      group_max: 3,
      feed_silence_mins: 5,
      sound: true,
      critical: { sound: "alarm", repeat_mins: 5 },
      warning: { sound: "alert", repeat_mins: 0 },
    },
    sensors: {},
    retention_days: 90,
    escalation: { after_mins: 15, webhooks: [] },
    mkt_dh_r: 10000,
    autostart: false,
    display_name: "",
    comment_required_critical: false,
    audit_retention_days: 730,
    team: { enabled: false, broker_url: "mqtt://localhost:1883", pc_name: "", site: "", user: "" },
    language: "auto",
    element_units: {},
  };
}

export function emptyState(): MockState {
  return {
    info: { version: "0.1.0", data_dir: "/home/u/.local/share/alarm-tray", log_dir: "/home/u/.local/state/alarm-tray/logs", demo: false, notice: null, language: "en" },
    page: { page: "settings", alarm_id: null },
    settings: defaultSettings(),
    secrets: new Set(),
    secretWrites: [],
    status: { tray: "ok", summary: "Alarm Tray: all quiet", paused: false, active_alarms: 0, feeds: [] },
    alarms: [],
    audit: { intact: true, records: 12345, first_bad: null, problem: "", head: "ab".repeat(32) },
    latest: [],
    series: {},
    unparsed: [],
    snoozes: [],
    calls: [],
    fail: {},
    handlers: {},
  };
}

const secretName = (k: { kind: string; account: string }) => `${k.kind}:${k.account}`;

function matches(r: AlarmRow, f: AlarmFilter): boolean {
  if (f.state === "active" && r.cleared_ms !== null) return false;
  if (f.state === "cleared" && r.cleared_ms === null) return false;
  if (f.severity && r.severity !== f.severity) return false;
  if (f.source && r.source !== f.source) return false;
  if (f.device) {
    const hay = [r.device, r.sensor, r.name].filter(Boolean).join(" ").toLowerCase();
    if (!hay.includes(f.device.toLowerCase())) return false;
  }
  if (f.from_ms !== null && r.raised_ms < f.from_ms) return false;
  if (f.to_ms !== null && r.raised_ms > f.to_ms) return false;
  return true;
}

/** Installs the mock; returns the state the test can inspect and change. */
export function installMock(state: MockState = emptyState()): MockState {
  mockIPC(
    (cmd, args) => {
      state.calls.push({ cmd, args });
      if (state.fail[cmd]) throw state.fail[cmd];
      if (state.handlers[cmd]) return state.handlers[cmd](args as any);
      const a = (args ?? {}) as any;
      switch (cmd) {
        case "info":
          return state.info;
        case "initial_page":
          return state.page;
        case "get_settings":
          return structuredClone(state.settings);
        case "save_settings": {
          const s = a.settings as Settings;
          for (const r of s.rules) {
            if (r.limit.type === "outside" && !(r.limit.low < r.limit.high))
              throw { kind: "invalid_input", message: `invalid settings: rule "${r.name}": the lower limit must be below the upper limit` };
          }
          if (s.retention_days < 1) throw { kind: "invalid_input", message: "invalid settings: history must be kept at least one day" };
          state.settings = structuredClone(s);
          return null;
        }
        case "set_secret":
          state.secrets.add(secretName(a.key));
          state.secretWrites.push({ key: secretName(a.key), value: a.value });
          return null;
        case "delete_secret":
          state.secrets.delete(secretName(a.key));
          return null;
        case "has_secret":
          return state.secrets.has(secretName(a.key));
        case "remove_account":
          for (const kind of ["saveris_password", "stomp_passcode", "element_api_key"])
            state.secrets.delete(secretName({ kind, account: a.accountId }));
          state.settings.saveris = state.settings.saveris.filter((x) => x.id !== a.accountId);
          state.settings.element = state.settings.element.filter((x) => x.id !== a.accountId);
          return null;
        case "status":
          return state.status;
        case "team_status":
          return null;
        case "test_connection": {
          const t = a.test;
          if (t.kind === "saveris") {
            const pw = t.password ?? (state.secrets.has(`saveris_password:${t.account.id}`) ? "stored" : null);
            if (!pw) throw { kind: "secret_missing", message: "No password is stored for this account; enter one." };
            if (pw === "wrong") throw { kind: "login_failed", message: "Login failed: the user name or password is wrong." };
            return { message: `Logged in as ${t.account.username} and subscribed to the alarms channel.` };
          }
          return { message: "Connected to ELEMENT: 3 devices visible with this API key." };
        }
        case "export_alarms": {
          const n = state.alarms.filter((r) => matches(r, { ...a.filter, limit: 0 })).length;
          return { files: ["/home/you/Downloads/alarm-history.csv"], message: `${n} alarms saved to /home/you/Downloads/alarm-history.csv` };
        }
        case "report":
          if (a.toMs <= a.fromMs) throw { kind: "invalid_input", message: "the range ends before it starts" };
          return { files: ["/home/you/Downloads/report.pdf", "/home/you/Downloads/report.csv"], message: "Report saved: /home/you/Downloads/report.pdf and /home/you/Downloads/report.csv" };
        case "test_webhook": {
          const w = a.webhook;
          const token = a.token ?? (state.secrets.has(`webhook_token:${w.id}`) ? "stored" : null);
          if (w.url.includes("{token}") && !token) throw { kind: "secret_missing", message: "the URL needs a token ({token}) and none is stored" };
          if (w.url.includes("fail")) throw { kind: "bad_response", message: "the webhook answered HTTP 500" };
          return { message: "The webhook took the test message." };
        }
        case "discover":
          if (a.what.what === "tags") return [{ id: "tag-cold", name: "Cold rooms" }, { id: "tag-lab", name: "Lab" }];
          if (a.what.what === "tag_devices") return [{ id: "dev-1", name: "Cold room 1" }];
          return [
            { id: "dev-1", name: "Cold room 1" },
            { id: "dev-2", name: "Cold room 2" },
            { id: "dev-3", name: "Lab freezer" },
          ];
        case "alarms":
          return state.alarms.filter((r) => matches(r, a.filter)).slice(0, a.filter.limit || 500);
        case "acknowledge": {
          const r = state.alarms.find((x) => x.id === a.alarmId);
          if (!r) throw { kind: "not_found", message: "There is no alarm with this id." };
          const comment = typeof a.comment === "string" && a.comment.trim() ? a.comment.trim() : null;
          if (!comment && state.settings.comment_required_critical && r.severity === "alarm")
            throw { kind: "invalid_input", message: `a comment is required to acknowledge alarm ${r.id}` };
          r.acknowledged_ms = Date.now();
          r.acknowledged_by = "you";
          r.acknowledged_user = state.settings.display_name ? `${state.settings.display_name} (you)` : "you";
          r.acknowledged_comment = comment;
          return null;
        }
        case "snooze": {
          if (!String(a.reason ?? "").trim()) throw { kind: "invalid_input", message: "write why this sensor is snoozed" };
          const hours = a.length.kind === "hours" ? a.length.hours : 16;
          const now = Date.now();
          state.snoozes = state.snoozes.filter((z) => z.sensor !== a.sensor);
          state.snoozes.push({ sensor: a.sensor, name: null, at_ms: now, until_ms: now + hours * 3_600_000, reason: String(a.reason).trim(), user: "you" });
          return null;
        }
        case "end_snooze":
          state.snoozes = state.snoozes.filter((z) => z.sensor !== a.sensor);
          return null;
        case "snoozes":
          return structuredClone(state.snoozes);
        case "latest_values":
          return state.latest;
        case "places":
          // The mock has no vendor names: the dashboard shows its cards ungrouped.
          return [];
        case "series":
          return state.series[a.quantity ? `${a.sensor}\u0000${a.quantity}` : a.sensor] ?? state.series[a.sensor] ?? [];
        case "sensor_view":
          return mockSensorView(state, a.sensor, a.quantity ?? null, a.fromMs, a.toMs, a.buckets);
        case "unparsed":
          return state.unparsed.slice(0, a.limit);
        case "audit_verify":
          return structuredClone(state.audit);
        case "send_test_notification":
          return null;
        case "set_paused":
          state.status = { ...state.status, paused: a.paused, tray: a.paused ? "paused" : "ok" };
          return null;
        case "start_monitor":
          return null;
        default:
          throw `unknown command ${cmd}`;
      }
    },
    { shouldMockEvents: true },
  );
  return state;
}

/** A day of values every 30 s (2,880 points) around `base`, with one excursion. */
export function daySeries(base: number, now = Date.now(), spike = 4): [number, number][] {
  const out: [number, number][] = [];
  for (let t = now - 24 * 3600 * 1000; t <= now; t += 30_000) {
    const h = (t - now) / 3600_000;
    let v = base + Math.sin(h / 2) * 0.8 + Math.sin(t / 97_000) * 0.04;
    if (h > -7 && h < -6) v += spike;
    out.push([t, Math.round(v * 100) / 100]);
  }
  return out;
}

/** The monitor's reduction, roughly (min/max/mean per bucket, empty = null), for the mock only. */
export function mockSensorView(state: MockState, sensor: string, quantity: string | null, from: number, to: number, n: number): SensorView {
  const pts = (state.series[quantity ? `${sensor}\u0000${quantity}` : sensor] ?? state.series[sensor] ?? []).filter(([t]) => t >= from && t < to);
  const span = Math.max(1, to - from);
  const buckets = Array.from({ length: n }, (_, i) => ({ t_ms: from + Math.floor((span * i) / n), min: null as number | null, max: null as number | null, mean: null as number | null, count: 0 }));
  const sums = new Array(n).fill(0);
  for (const [t, v] of pts) {
    const i = Math.floor(((t - from) * n) / span);
    const b = buckets[i];
    b.min = b.min === null ? v : Math.min(b.min, v);
    b.max = b.max === null ? v : Math.max(b.max, v);
    b.count += 1;
    sums[i] += v;
  }
  buckets.forEach((b, i) => (b.mean = b.count ? sums[i] / b.count : null));
  const q = (quantity ?? state.latest.find((l) => l.sensor === sensor)?.quantity ?? "").toLowerCase();
  const limits: LimitLine[] = state.settings.rules
    .filter((r) => r.enabled && (r.target.type === "all" || (r.target.type === "sensor" && r.target.id === sensor)))
    .filter((r) => r.quantity === "" || r.quantity.toLowerCase() === q)
    .flatMap((r): LimitLine[] =>
      r.limit.type === "above"
        ? [{ rule: r.name, low: null, high: r.limit.value, origin: "rule" }]
        : r.limit.type === "below"
          ? [{ rule: r.name, low: r.limit.value, high: null, origin: "rule" }]
          : r.limit.type === "outside"
            ? [{ rule: r.name, low: r.limit.low, high: r.limit.high, origin: "rule" }]
            : [],
    );
  const vals = pts.map((p) => p[1]);
  const latest = state.latest.find((l) => l.sensor === sensor);
  return {
    sensor,
    name: latest?.name ?? null,
    quantity,
    unit: latest?.unit ?? null,
    from_ms: from,
    to_ms: to,
    buckets,
    limits,
    alarms: state.alarms.filter((a) => a.sensor === sensor && a.raised_ms <= to && (a.cleared_ms === null || a.cleared_ms >= from)),
    stats: {
      count: vals.length,
      min: vals.length ? Math.min(...vals) : null,
      max: vals.length ? Math.max(...vals) : null,
      mean: vals.length ? vals.reduce((x, y) => x + y, 0) / vals.length : null,
      outside_ms: 0,
      mkt: null,
    },
  };
}

/** A filled-in state to look at: accounts, rules, feeds, alarms, sensors. */
export function demoState(): MockState {
  const s = emptyState();
  const now = Date.now();
  s.info.demo = true;
  s.settings.saveris.push({
    id: "s1",
    enabled: true,
    username: "alice",
    region: "eu",
    environment: "production",
    login: "data_api",
    cognito_endpoint: "",
    cognito_client_id: "",
    channels: { alarms: true, measurements: true, measurements_v2: false },
    custom: null,
    site_timezone: "",
  });
  s.settings.element.push({
    id: "e1",
    enabled: true,
    base_url: "https://element-iot.com",
    text_ping: false,
    subscriptions: [
      { id: "sub1", enabled: true, scope: { type: "device", id: "dev-1" }, kind: "readings", preload: ["device"], catch_up_hours: 2 },
      { id: "sub2", enabled: true, scope: { type: "tag", id: "tag-lab" }, kind: "readings", preload: [], catch_up_hours: 0 },
    ],
  });
  s.secrets.add("saveris_password:s1");
  s.secrets.add("element_api_key:e1");
  s.settings.rules.push(
    { id: "r1", name: "Fridge too warm", enabled: true, target: { type: "sensor", id: "dev-1:temperature" }, quantity: "temperature", limit: { type: "above", value: 8 }, hysteresis: 0.5, min_count: 1, min_duration_secs: 0, unit: "°C" },
    { id: "r2", name: "Lab humidity", enabled: true, target: { type: "all" }, quantity: "humidity", limit: { type: "outside", low: 30, high: 60 }, hysteresis: 2, min_count: 3, min_duration_secs: 60, unit: "" },
  );
  s.settings.sensors["60A1B2:Temperature"] = { name: "Cold room A", notify: true, main_field: "" };
  s.status = {
    tray: "alarm",
    summary: "Alarm Tray: 2 active alarms; ELEMENT waiting",
    paused: false,
    active_alarms: 2,
    feeds: [
      { feed: "saveris:s1", label: "Saveris eu/production (alice)", state: "live", last_message_at: new Date(now - 40_000).toISOString(), live_since: new Date(now - 3600_000).toISOString(), last_error: null, refused: [{ channel: "measurements-v2", message: "Saveris refused measurements-v2 for this user: licence or permission missing" }], names: "names last refreshed 3 h ago" },
      { feed: "element:e1:sub1", label: "ELEMENT device dev-1", state: "live", last_message_at: new Date(now - 90_000).toISOString(), live_since: new Date(now - 7200_000).toISOString(), last_error: null, refused: [], names: null },
      { feed: "element:e1:sub2", label: "ELEMENT tag tag-lab", state: "waiting", secs: 600, reason: "rate limit", last_message_at: null, live_since: null, last_error: "ELEMENT answered 429 Too Many Requests; waiting 10 minutes before the next attempt.", refused: [], names: null },
    ],
  };
  s.latest = [
    { sensor: "60A1B2:Temperature", name: "60A1B2", source: "saveris", quantity: "Temperature", value: 4.3, unit: "°C", at_ms: now - 60_000 },
    { sensor: "dev-1:temperature", name: "Cold room 1", source: "element", quantity: "temperature", value: 9.1, unit: "°C", at_ms: now - 120_000 },
    { sensor: "dev-3:humidity", name: "Lab freezer", source: "element", quantity: "humidity", value: 41.5, unit: "%", at_ms: now - 50 * 60_000 },
  ];
  s.series["60A1B2:Temperature"] = daySeries(4.2, now, 1);
  s.series["dev-1:temperature"] = daySeries(6.5, now, 3);
  s.series["dev-3:humidity"] = daySeries(45, now - 50 * 60_000, 18);
  const mk = (id: number, p: Partial<AlarmRow>): AlarmRow => ({
    id,
    source: "saveris",
    account: "s1",
    device: "60A1B2",
    sensor: "60A1B2:Temperature",
    name: "60A1B2",
    condition: "Upper limit",
    severity: "alarm",
    value: 9.4,
    unit: "°C",
    limit: "> 8",
    raised_ms: now - id * 3600_000,
    cleared_ms: null,
    acknowledged_ms: null,
    acknowledged_by: null,
    acknowledged_user: null,
    acknowledged_comment: null,
    steps: [{ at_ms: p.raised_ms ?? now - id * 3600_000, severity: p.severity ?? "alarm" }],
    ...p,
  });
  s.alarms = [
    // Warning first, then worse: two steps of one alarm.
    mk(1, {
      raised_ms: now - 5 * 60_000,
      steps: [
        { at_ms: now - 5 * 60_000, severity: "warning" },
        { at_ms: now - 2 * 60_000, severity: "alarm" },
      ],
    }),
    mk(2, { source: "element", account: "e1", device: "dev-1", sensor: "dev-1:temperature", name: "Cold room 1", condition: "Fridge too warm", value: 9.1, raised_ms: now - 20 * 60_000, acknowledged_ms: now - 10 * 60_000, acknowledged_by: "you" }),
    mk(3, { severity: "warning", condition: "Battery nearly empty", value: null, unit: null, limit: null, cleared_ms: now - 2 * 3600_000 }),
    mk(4, { cleared_ms: now - 3 * 3600_000, acknowledged_ms: now - 3.5 * 3600_000, acknowledged_by: "you" }),
    mk(5, { source: "app", account: "", device: null, sensor: null, name: "ELEMENT tag tag-lab", condition: "Feed silent for 5 minutes", severity: "warning", value: null, unit: null, limit: null, cleared_ms: now - 4 * 3600_000 }),
  ];
  s.unparsed = [
    { id: 1, source: "saveris", account: "s1", received_ms: now - 3600_000, raw: '{"alarm_status": "Alarm", "sensor_uuid": 12, <script>alert(1)</script>' },
    { id: 2, source: "element", account: "e1", received_ms: now - 7200_000, raw: "not json at all" },
  ];
  return s;
}
