// Inline validation: the same checks the backend makes (settings.rs `validate`), done as the
// user types so a save that would be rejected is not sent. The backend checks again.
import type { ElementAccount, Limit, RuleTarget, SaverisAccount, Settings, Sound, ThresholdRule } from "../types";

export type Errors = Record<string, string>;

/** Parses a number the way a person types it ("7,5" too); NaN when it is not one. */
export function num(text: string): number {
  const t = text.trim().replace(",", ".");
  if (t === "" || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return NaN;
  return Number(t);
}

/** A whole number ≥ min, or NaN. */
export function int(text: string, min = 0): number {
  const n = num(text);
  return Number.isInteger(n) && n >= min ? n : NaN;
}

/** The rule form as typed: numbers stay text until they are valid. */
export interface RuleDraft {
  id: string;
  name: string;
  enabled: boolean;
  /** "all", "sensor:<id>", "device:<id>", "tag:<id>". */
  target: string;
  quantity: string;
  /** The limits' unit ("°C"); "" compares the number as received. */
  unit: string;
  limitType: Limit["type"];
  value: string;
  low: string;
  high: string;
  minutes: string;
  hysteresis: string;
  minCount: string;
  minDurationSecs: string;
}

export function targetKey(t: RuleTarget): string {
  return t.type === "all" ? "all" : `${t.type}:${t.id}`;
}

export function parseTargetKey(k: string): RuleTarget {
  if (k === "all" || k === "") return { type: "all" };
  const i = k.indexOf(":");
  const type = k.slice(0, i);
  const id = k.slice(i + 1);
  if (type === "sensor" || type === "device" || type === "tag") return { type, id };
  return { type: "all" };
}

export function ruleToDraft(r: ThresholdRule): RuleDraft {
  const l = r.limit;
  return {
    id: r.id,
    name: r.name,
    enabled: r.enabled,
    target: targetKey(r.target),
    quantity: r.quantity,
    unit: r.unit ?? "",
    limitType: l.type,
    value: l.type === "above" || l.type === "below" ? String(l.value) : "",
    low: l.type === "outside" ? String(l.low) : "",
    high: l.type === "outside" ? String(l.high) : "",
    minutes: l.type === "no_data" ? String(l.minutes) : "10",
    hysteresis: String(r.hysteresis),
    minCount: String(r.min_count),
    minDurationSecs: String(r.min_duration_secs),
  };
}

export function emptyRuleDraft(id: string): RuleDraft {
  return {
    id,
    name: "",
    enabled: true,
    target: "all",
    quantity: "",
    unit: "",
    limitType: "above",
    value: "8",
    low: "2",
    high: "8",
    minutes: "10",
    hysteresis: "0.5",
    minCount: "1",
    minDurationSecs: "0",
  };
}

/** Errors keyed by field name; empty when the draft can be saved. */
export function validateRule(d: RuleDraft, targets: Set<string>, otherNames: string[] = []): Errors {
  const e: Errors = {};
  if (d.name.trim() === "") e.name = "Give the rule a name.";
  else if (otherNames.some((n) => n.trim().toLowerCase() === d.name.trim().toLowerCase()))
    e.name = "Another rule already has this name.";
  if (d.target !== "all" && !targets.has(d.target))
    e.target = "This sensor or device has not been seen; choose one from the list or \"All sensors\".";
  switch (d.limitType) {
    case "above":
    case "below":
      if (!Number.isFinite(num(d.value))) e.value = "Enter the limit as a number, e.g. 8 or 7.5.";
      break;
    case "outside": {
      const lo = num(d.low);
      const hi = num(d.high);
      if (!Number.isFinite(lo)) e.low = "Enter the lower limit as a number.";
      if (!Number.isFinite(hi)) e.high = "Enter the upper limit as a number.";
      if (Number.isFinite(lo) && Number.isFinite(hi) && !(lo < hi))
        e.high = "The upper limit must be above the lower limit.";
      break;
    }
    case "no_data":
      if (!Number.isFinite(int(d.minutes, 1))) e.minutes = "Enter whole minutes, at least 1.";
      break;
  }
  const h = num(d.hysteresis);
  if (!Number.isFinite(h) || h < 0) e.hysteresis = "Hysteresis must be a number, 0 or more.";
  if (!Number.isFinite(int(d.minCount, 1))) e.minCount = "At least 1 value must breach (a whole number).";
  if (!Number.isFinite(int(d.minDurationSecs, 0))) e.minDurationSecs = "Enter whole seconds, 0 or more.";
  return e;
}

/** The rule a valid draft stands for. */
export function draftToRule(d: RuleDraft): ThresholdRule {
  let limit: Limit;
  switch (d.limitType) {
    case "above":
      limit = { type: "above", value: num(d.value) };
      break;
    case "below":
      limit = { type: "below", value: num(d.value) };
      break;
    case "outside":
      limit = { type: "outside", low: num(d.low), high: num(d.high) };
      break;
    case "no_data":
      limit = { type: "no_data", minutes: int(d.minutes, 1) };
      break;
  }
  return {
    id: d.id,
    name: d.name.trim(),
    enabled: d.enabled,
    target: parseTargetKey(d.target),
    quantity: d.quantity.trim(),
    unit: d.unit.trim(),
    limit,
    hysteresis: num(d.hysteresis),
    min_count: int(d.minCount, 1),
    min_duration_secs: int(d.minDurationSecs, 0),
  };
}

function isUrl(text: string, schemes: string[]): boolean {
  try {
    const u = new URL(text.trim());
    return schemes.includes(u.protocol) && u.hostname !== "";
  } catch {
    return false;
  }
}

/** An IANA zone name the platform knows ("Europe/Berlin"). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export function validateSaveris(a: SaverisAccount): Errors {
  const e: Errors = {};
  if (a.username.trim() === "") e.username = "Enter the Saveris user name.";
  else if (/\s/.test(a.username.trim())) e.username = "A user name has no spaces.";
  if (a.login === "cognito" && a.cognito_client_id.trim() === "")
    e.cognito_client_id = "Cognito login needs the app client id.";
  if (a.cognito_endpoint.trim() !== "" && !isUrl(a.cognito_endpoint, ["https:", "http:"]))
    e.cognito_endpoint = "Enter an http:// or https:// URL, or leave it empty for AWS.";
  if ((a.site_timezone ?? "").trim() !== "" && !isTimeZone(a.site_timezone.trim()))
    e.site_timezone = "Enter a time zone name such as Europe/Berlin or America/Chicago, or leave it empty.";
  if (a.custom) {
    if (!isUrl(a.custom.ws_url, ["ws:", "wss:"])) e.ws_url = "Enter the broker's ws:// or wss:// URL.";
    if (a.custom.token_url.trim() !== "" && !isUrl(a.custom.token_url, ["https:", "http:"]))
      e.token_url = "Enter an http:// or https:// URL, or leave it empty to log in with STOMP login/passcode.";
    if ((a.custom.data_api_url ?? "").trim() !== "" && !isUrl(a.custom.data_api_url, ["https:", "http:"]))
      e.data_api_url = "Enter an http:// or https:// URL, or leave it empty to use the token URL's server.";
    const p = a.custom.destination_pattern.trim();
    if (p !== "" && !p.includes("{channel}"))
      e.destination_pattern = "The pattern must contain {channel}, e.g. /queue/{username}/{channel}.";
  }
  return e;
}

export function validateElement(a: ElementAccount): Errors {
  const e: Errors = {};
  if (!isUrl(a.base_url, ["https:", "http:"])) e.base_url = "Enter the instance URL, e.g. https://element-iot.com.";
  a.subscriptions.forEach((s, i) => {
    if (s.scope.type !== "mandate" && s.scope.id.trim() === "")
      e[`sub${i}`] = `Subscription ${i + 1}: choose a ${s.scope.type === "stream" ? "stream id" : s.scope.type}.`;
    if (!Number.isInteger(s.catch_up_hours) || s.catch_up_hours < 0)
      e[`sub${i}`] = `Subscription ${i + 1}: catch-up must be whole hours, 0 or more.`;
  });
  return e;
}

/** "HH:MM", 24 h. */
export function isClock(t: string): boolean {
  const m = /^(\d{1,2}):(\d{2})$/.exec(t.trim());
  return !!m && Number(m[1]) < 24 && Number(m[2]) < 60;
}

export interface GeneralDraft {
  autostart: boolean;
  retentionDays: string;
  auditRetentionDays: string;
  displayName: string;
  commentRequired: boolean;
  quietEnabled: boolean;
  quietStart: string;
  quietEnd: string;
  allowCritical: boolean;
  groupWindowSecs: string;
  groupMax: string;
  feedSilenceMins: string;
  /** Issue 21: sounds at all, and per severity a sound ("" = none) and a repeat. */
  sound: boolean;
  criticalSound: string;
  criticalRepeatMins: string;
  warningSound: string;
  warningRepeatMins: string;
}

export function generalDraft(s: Settings): GeneralDraft {
  const n = s.notifications;
  return {
    autostart: s.autostart,
    retentionDays: String(s.retention_days),
    auditRetentionDays: String(s.audit_retention_days),
    displayName: s.display_name,
    commentRequired: s.comment_required_critical,
    quietEnabled: n.quiet_hours.enabled,
    quietStart: n.quiet_hours.start,
    quietEnd: n.quiet_hours.end,
    allowCritical: n.quiet_hours.allow_critical,
    groupWindowSecs: String(n.group_window_secs),
    groupMax: String(n.group_max),
    feedSilenceMins: String(n.feed_silence_mins),
    sound: n.sound,
    criticalSound: n.critical.sound ?? "",
    criticalRepeatMins: String(n.critical.repeat_mins),
    warningSound: n.warning.sound ?? "",
    warningRepeatMins: String(n.warning.repeat_mins),
  };
}

export function validateGeneral(d: GeneralDraft): Errors {
  const e: Errors = {};
  if (!Number.isFinite(int(d.retentionDays, 1))) e.retentionDays = "Keep history at least 1 day (whole days).";
  if (!Number.isFinite(int(d.auditRetentionDays, 30))) e.auditRetentionDays = "Keep the audit trail at least 30 days (whole days).";
  if ([...d.displayName.trim()].length > 100) e.displayName = "At most 100 characters.";
  if (!isClock(d.quietStart)) e.quietStart = "Enter a time as HH:MM, e.g. 22:00.";
  if (!isClock(d.quietEnd)) e.quietEnd = "Enter a time as HH:MM, e.g. 07:00.";
  if (!Number.isFinite(int(d.groupWindowSecs, 0))) e.groupWindowSecs = "Enter whole seconds, 0 or more.";
  if (!Number.isFinite(int(d.groupMax, 1))) e.groupMax = "Enter a whole number, at least 1.";
  if (!Number.isFinite(int(d.criticalRepeatMins, 0))) e.criticalRepeatMins = "Enter whole minutes, 0 or more (0 = never).";
  if (!Number.isFinite(int(d.warningRepeatMins, 0))) e.warningRepeatMins = "Enter whole minutes, 0 or more (0 = never).";
  if (!Number.isFinite(int(d.feedSilenceMins, 1))) e.feedSilenceMins = "Enter whole minutes, at least 1.";
  return e;
}

export function applyGeneral(s: Settings, d: GeneralDraft): void {
  s.autostart = d.autostart;
  s.retention_days = int(d.retentionDays, 1);
  s.audit_retention_days = int(d.auditRetentionDays, 30);
  s.display_name = d.displayName.trim();
  s.comment_required_critical = d.commentRequired;
  const n = s.notifications;
  n.quiet_hours = {
    enabled: d.quietEnabled,
    start: d.quietStart.trim().padStart(5, "0"),
    end: d.quietEnd.trim().padStart(5, "0"),
    allow_critical: d.allowCritical,
  };
  n.group_window_secs = int(d.groupWindowSecs, 0);
  n.group_max = int(d.groupMax, 1);
  n.feed_silence_mins = int(d.feedSilenceMins, 1);
  n.sound = d.sound;
  const sound = (v: string): Sound | null => (v === "" ? null : (v as Sound));
  n.critical = { sound: sound(d.criticalSound), repeat_mins: int(d.criticalRepeatMins, 0) };
  n.warning = { sound: sound(d.warningSound), repeat_mins: int(d.warningRepeatMins, 0) };
}
