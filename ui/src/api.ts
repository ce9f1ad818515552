// Thin typed wrappers over the app's Tauri commands. The window keeps no state of record:
// every view asks through these and re-asks when the monitor pushes an event.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AlarmFilter,
  AlarmRow,
  Connected,
  ConnectionTest,
  Discover,
  DownloadDone,
  Info,
  InitialPage,
  LatestValue,
  SensorPlace,
  MonitorError,
  NamedItem,
  Push,
  SecretKey,
  SensorView,
  Settings,
  Snooze,
  SnoozeFor,
  Status,
  UnparsedRow,
  AuditReport,
  TeamStatus,
  Webhook,
  Saved,
} from "./types";

export type ErrorKind = MonitorError["kind"];

/**
 * An error from a command: its `kind` for code to branch on, its message (the sentence to
 * show) as `message`. Code never reads the sentence.
 */
export class CommandError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.name = "CommandError";
    this.kind = kind;
  }
  /** The monitor process is not reachable: the window offers to start it. */
  get notRunning(): boolean {
    return this.kind === "monitor_not_running";
  }
}

/**
 * The command's rejection as a `CommandError`. The app's commands reject with
 * `{kind, message}`; Tauri itself rejects with a plain string (a command not granted, an
 * argument of the wrong shape), which is a fault of the window: `internal`.
 */
export function commandError(e: unknown): CommandError {
  if (e instanceof CommandError) return e;
  const kind =
    e && typeof e === "object" && "kind" in e && typeof (e as { kind: unknown }).kind === "string"
      ? ((e as { kind: string }).kind as ErrorKind)
      : "internal";
  return new CommandError(kind, errorText(e));
}

/** Turns whatever a command rejected with into a sentence; never a debug dump. */
export function errorText(e: unknown): string {
  if (typeof e === "string" && e.trim() !== "") return e;
  if (e && typeof e === "object" && "message" in e) {
    const m = (e as { message: unknown }).message;
    if (typeof m === "string" && m.trim() !== "") return m;
  }
  return "The request failed for an unknown reason. See the log for details.";
}

type Listener = (notRunning: boolean) => void;
const runningListeners = new Set<Listener>();

/** Called with `true` whenever a command finds the monitor gone, `false` when one succeeds. */
export function onRunningChange(l: Listener): () => void {
  runningListeners.add(l);
  return () => runningListeners.delete(l);
}

/** Answered by the window process itself: their success says nothing about the monitor. */
const LOCAL_COMMANDS = new Set(["info", "initial_page", "start_monitor"]);

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    const r = await invoke<T>(cmd, args);
    if (!LOCAL_COMMANDS.has(cmd)) runningListeners.forEach((l) => l(false));
    return r;
  } catch (e) {
    const err = commandError(e);
    if (err.notRunning) runningListeners.forEach((l) => l(true));
    throw err;
  }
}

export const api = {
  info: () => call<Info>("info"),
  initialPage: () => call<InitialPage>("initial_page"),
  getSettings: () => call<Settings>("get_settings"),
  saveSettings: (settings: Settings) => call<null>("save_settings", { settings }),
  setSecret: (key: SecretKey, value: string) => call<null>("set_secret", { key, value }),
  deleteSecret: (key: SecretKey) => call<null>("delete_secret", { key }),
  hasSecret: (key: SecretKey) => call<boolean>("has_secret", { key }),
  /** Removes the account from the settings and its secrets from the keyring, in one request. */
  removeAccount: (accountId: string) => call<null>("remove_account", { accountId }),
  status: () => call<Status>("status"),
  testConnection: (test: ConnectionTest) => call<Connected>("test_connection", { test }),
  /** One test message to an escalation webhook as typed; `token` null: the stored one. */
  testWebhook: (webhook: Webhook, token: string | null) => call<Connected>("test_webhook", { webhook, token }),
  discover: (account: string, what: Discover) => call<NamedItem[]>("discover", { account, what }),
  alarms: (filter: AlarmFilter) => call<AlarmRow[]>("alarms", { filter }),
  /** `comment`: why (required for critical alarms when the settings say so). */
  acknowledge: (alarmId: number, comment: string | null = null) => call<null>("acknowledge", { alarmId, comment }),
  /** Holds a sensor's popups back for a while, with a reason (issue 21). */
  snooze: (sensor: string, length: SnoozeFor, reason: string) => call<null>("snooze", { sensor, length, reason }),
  endSnooze: (sensor: string) => call<null>("end_snooze", { sensor }),
  snoozes: () => call<Snooze[]>("snoozes"),
  latestValues: () => call<LatestValue[]>("latest_values"),
  /** Vendor names, areas, equipment and limits of sensors (issue 20). */
  places: () => call<SensorPlace[]>("places"),
  /** One sensor's values since `sinceMs`; with `quantity`, that field's own series. */
  series: (sensor: string, sinceMs: number, quantity?: string) =>
    call<[number, number][]>("series", quantity ? { sensor, sinceMs, quantity } : { sensor, sinceMs }),
  /** A sensor's range reduced by the monitor to `buckets` columns, with limits, alarms and figures. */
  sensorView: (sensor: string, quantity: string | null, fromMs: number, toMs: number, buckets: number) =>
    call<SensorView>("sensor_view", { sensor, quantity, fromMs, toMs, buckets }),
  unparsed: (limit: number) => call<UnparsedRow[]>("unparsed", { limit }),
  /** The shift report of a range, written by the monitor as PDF and CSV into Downloads. */
  report: (fromMs: number, toMs: number) => call<Saved>("report", { fromMs, toMs }),
  /** Every alarm the filter matches (no row cap), streamed by the monitor into a CSV in Downloads. */
  exportAlarms: (filter: AlarmFilter) => call<Saved>("export_alarms", { filter }),
  /** Walks the audit trail's hash chain. */
  auditVerify: () => call<AuditReport>("audit_verify"),
  sendTestNotification: () => call<null>("send_test_notification"),
  setPaused: (paused: boolean) => call<null>("set_paused", { paused }),
  startMonitor: () => call<null>("start_monitor"),
  /** Issue 26: team sharing's status; null when it is off. */
  teamStatus: () => call<TeamStatus | null>("team_status"),
};

/**
 * Reads the settings fresh, applies `change` and saves them: the edit is made on what the
 * monitor holds now, not on a copy this window loaded minutes ago.
 */
export async function updateSettings(change: (s: Settings) => void): Promise<Settings> {
  const s = await api.getSettings();
  change(s);
  await api.saveSettings(s);
  return s;
}

export const PUSH_EVENT = "monitor://push";
/** The window process says where a download (CSV/PNG export) was written. */
export const DOWNLOAD_EVENT = "window://download";

/** Subscribes to finished downloads; resolves to a function that unsubscribes. */
export async function listenDownloads(onDone: (d: DownloadDone) => void): Promise<() => void> {
  const off = await listen<DownloadDone>(DOWNLOAD_EVENT, (e) => onDone(e.payload));
  return () => {
    Promise.resolve()
      .then(off)
      .catch(() => {});
  };
}
export const DISCONNECTED_EVENT = "monitor://disconnected";

/** Subscribes to the monitor's pushes; resolves to a function that unsubscribes. */
export async function listenMonitor(
  onPush: (p: Push) => void,
  onDisconnected: (why: string) => void,
): Promise<() => void> {
  const offs: UnlistenFn[] = [];
  offs.push(await listen<Push>(PUSH_EVENT, (e) => onPush(e.payload)));
  offs.push(await listen<string>(DISCONNECTED_EVENT, (e) => onDisconnected(String(e.payload ?? ""))));
  return () =>
    offs.forEach((f) => {
      // Unlistening while the webview is being torn down may fail; nothing is left to undo then.
      Promise.resolve()
        .then(f)
        .catch(() => {});
    });
}

/**
 * The error to show where a view failed to load: none when the monitor is not running,
 * because the banner at the top already says so and offers to start it.
 */
export function loadError(e: unknown): string | null {
  if (e instanceof CommandError && e.notRunning) return null;
  return errorText(e);
}
