// The sensor view's pure parts: uPlot's data, the text summary, the table rows and the CSV.
// The monitor has reduced the range already (min/max per pixel column, gaps as null).
import type uPlot from "uplot";
import { csvField, isoTime } from "../lib/csv";
import { formatTime, formatValue } from "../lib/format";
import type { AlarmRow, Bucket, LatestValue, LimitLine, SensorView } from "../types";

export const RANGES = [
  { id: "1h", label: "1 h", ms: 3_600_000 },
  { id: "24h", label: "24 h", ms: 86_400_000 },
  { id: "7d", label: "7 d", ms: 7 * 86_400_000 },
  { id: "30d", label: "30 d", ms: 30 * 86_400_000 },
] as const;
export type RangeId = (typeof RANGES)[number]["id"] | "custom";

/** Longest range the monitor answers (it checks too): 400 days. */
export const MAX_RANGE_MS = 400 * 86_400_000;
/** Most sensors on one chart: the view's own and three to compare. */
export const MAX_COMPARED = 4;

/** A time as a `<input type="datetime-local">` value (local time, minutes). */
export function msToLocalInput(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/**
 * A custom range from the two inputs: `{ from, to }` in ms, or which input is wrong and why.
 * Both are needed, "to" after "from", not starting in the future, at most 400 days long.
 */
export function customRange(
  fromText: string,
  toText: string,
  now: number,
): { from: number; to: number } | { field: "from" | "to"; error: string } {
  const parse = (t: string) => {
    if (!t) return null;
    const ms = new Date(t).getTime();
    return Number.isFinite(ms) ? ms : null;
  };
  const from = parse(fromText);
  const to = parse(toText);
  if (from === null) return { field: "from", error: "Enter when the range starts." };
  if (to === null) return { field: "to", error: "Enter when the range ends." };
  if (from >= now) return { field: "from", error: "“From” is in the future." };
  if (to <= from) return { field: "to", error: "“To” must be after “From”." };
  if (to - from < 60_000) return { field: "to", error: "The range must be at least one minute." };
  if (to - from > MAX_RANGE_MS) return { field: "to", error: "The range can be at most 400 days." };
  return { from, to };
}

/** A sensor (field) offered for comparison. */
export interface CompareCandidate {
  sensor: string;
  quantity: string | null;
  label: string;
  unit: string | null;
}

const lowerQ = (q: string | null | undefined) => (q ?? "").trim().toLowerCase();

/**
 * The sensors that can join the chart: the same quantity as the view's own (case-insensitive),
 * not the view's own and not already on it. Units may differ: each unit gets its own axis.
 */
export function compareCandidates(latest: LatestValue[], main: SensorTarget, chosen: SensorTarget[]): CompareCandidate[] {
  const mainQ = lowerQ(main.quantity ?? latest.find((l) => l.sensor === main.sensor)?.quantity);
  const taken = (l: LatestValue) =>
    [main, ...chosen].some((t) => t.sensor === l.sensor && (t.quantity === null || lowerQ(t.quantity) === lowerQ(l.quantity)));
  return latest
    .filter((l) => lowerQ(l.quantity) === mainQ && !taken(l))
    .map((l) => ({
      sensor: l.sensor,
      quantity: l.quantity ?? null,
      label: (l.name || l.sensor) + (l.quantity ? `, ${l.quantity}` : ""),
      unit: l.unit ?? null,
    }))
    .sort((a, b) => a.label.localeCompare(b.label));
}

/** The units on a chart, in order of first use: one y axis each ("" for none). */
export function chartUnits(views: SensorView[]): string[] {
  const out: string[] = [];
  for (const v of views) if (!out.includes(v.unit ?? "")) out.push(v.unit ?? "");
  return out;
}

/**
 * uPlot's data for one or more sensors on one chart: x (s, bucket middles of the first
 * view), then min and max of each view, then one constant series per limit value of the
 * first view. Every view was asked for the same range and bucket count, so bucket i is the
 * same pixel column in each; a view whose buckets do not line up is drawn as empty.
 */
export function compareData(views: SensorView[]): uPlot.AlignedData {
  const [first, ...rest] = views;
  if (!first) return [[]];
  const base = chartData(first);
  const n = first.buckets.length;
  const pick = (v: SensorView, f: (b: Bucket) => number | null) =>
    v.buckets.length === n && v.from_ms === first.from_ms && v.to_ms === first.to_ms ? v.buckets.map(f) : first.buckets.map(() => null);
  const extra = rest.flatMap((v) => [pick(v, (b) => b.min), pick(v, (b) => b.max)]);
  return [base[0], base[1], base[2], ...extra, ...base.slice(3)];
}

/** What the view is opened on: a sensor (and field), maybe around one alarm. */
export interface SensorTarget {
  sensor: string;
  quantity: string | null;
  /** The alarm it was opened from: the range is placed around its raise. */
  alarm?: AlarmRow | null;
}

/** The range of `ms` length that shows `alarm` (its raise a quarter from the left), or ends now. */
export function rangeFor(ms: number, now: number, alarm?: AlarmRow | null): [number, number] {
  if (!alarm) return [now - ms, now];
  const to = Math.min(now, alarm.raised_ms + (ms * 3) / 4);
  return [to - ms, to];
}

/** The flat limit values, low and high, in order. */
export function limitValues(limits: LimitLine[]): number[] {
  const out: number[] = [];
  for (const l of limits) {
    if (l.low !== null) out.push(l.low);
    if (l.high !== null) out.push(l.high);
  }
  return out;
}

/**
 * uPlot's data: x (s, bucket middles), min, max, then one constant series per limit value.
 * An empty bucket is null in min and max, so uPlot draws a gap there (spanGaps stays off).
 */
export function chartData(v: SensorView): uPlot.AlignedData {
  const n = v.buckets.length;
  const width = n > 0 ? (v.to_ms - v.from_ms) / n : 0;
  const xs = v.buckets.map((b) => (b.t_ms + width / 2) / 1000);
  const lows = v.buckets.map((b) => b.min);
  const highs = v.buckets.map((b) => b.max);
  return [xs, lows, highs, ...limitValues(v.limits).map((l) => xs.map(() => l))];
}

/** The alarm periods to shade, clipped to the range: [start, end] ms (end = now if still active). */
export function alarmBands(v: SensorView, now: number): { id: number; from: number; to: number; severity: string }[] {
  return v.alarms.map((a) => ({
    id: a.id,
    from: Math.max(v.from_ms, a.raised_ms),
    to: Math.min(v.to_ms, a.cleared_ms ?? now),
    severity: a.severity,
  }));
}

/** "1 h 5 min", "12 min", "0 min". */
export function duration(ms: number): string {
  const min = Math.round(ms / 60_000);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  const d = Math.floor(h / 24);
  if (d > 0) return `${d} d ${h % 24} h`;
  return `${h} h ${min % 60} min`;
}

function limitText(limits: LimitLine[], unit: string | null): string {
  return limits
    .map((l) => {
      // A limit the sensor carries upstream says so; a rule's limit is named by the rule.
      const name = l.origin === "saveris" ? `${l.rule} (Saveris)` : l.rule;
      return l.low !== null && l.high !== null
        ? `${name}: ${formatValue(l.low)}–${formatValue(l.high, unit)}`
        : l.high !== null
          ? `${name}: above ${formatValue(l.high, unit)}`
          : `${name}: below ${formatValue(l.low, unit)}`;
    })
    .join("; ");
}

export function viewTitle(v: SensorView): string {
  const name = v.name || v.sensor;
  return v.quantity ? `${name}, ${v.quantity}` : name;
}

/** The figures beside the chart, as label/value pairs (also the text summary's source). */
export function figures(v: SensorView): [string, string][] {
  const s = v.stats;
  const rows: [string, string][] = [
    ["Min", formatValue(s.min, v.unit) || "—"],
    ["Max", formatValue(s.max, v.unit) || "—"],
    ["Mean", formatValue(s.mean === null ? null : Math.round(s.mean * 100) / 100, v.unit) || "—"],
    ["Outside the limits", v.limits.length ? duration(s.outside_ms) : "no limits"],
  ];
  if (s.mkt !== null) rows.push(["Mean kinetic temperature", formatValue(Math.round(s.mkt * 100) / 100, v.unit)]);
  rows.push(["Readings", String(s.count)]);
  return rows;
}

/** One paragraph for screen readers: everything the chart shows, in words. */
export function summary(v: SensorView): string {
  const s = v.stats;
  const head = `${viewTitle(v)} from ${formatTime(v.from_ms)} to ${formatTime(v.to_ms)}`;
  if (s.count === 0) return `${head}: no readings.`;
  const gaps = v.buckets.filter((b) => b.count === 0).length;
  const parts = [
    `${s.count} readings, min ${formatValue(s.min, v.unit)}, max ${formatValue(s.max, v.unit)}, mean ${formatValue(
      s.mean === null ? null : Math.round(s.mean * 100) / 100,
      v.unit,
    )}`,
  ];
  if (s.mkt !== null) parts.push(`mean kinetic temperature ${formatValue(Math.round(s.mkt * 100) / 100, v.unit)}`);
  if (v.limits.length) parts.push(`limits ${limitText(v.limits, v.unit)}, ${duration(s.outside_ms)} outside`);
  else parts.push("no limits");
  parts.push(v.alarms.length === 1 ? "1 alarm" : `${v.alarms.length} alarms`);
  if (gaps > 0) parts.push(`no readings in ${Math.round((gaps * 100) / Math.max(1, v.buckets.length))}% of the range`);
  return `${head}: ${parts.join("; ")}.`;
}

/** The table's rows: one per bucket with readings, a gap as one "no readings" row. */
export function tableRows(v: SensorView): { from: number; min: number | null; max: number | null; mean: number | null; count: number }[] {
  const out: { from: number; min: number | null; max: number | null; mean: number | null; count: number }[] = [];
  for (const b of v.buckets) {
    const last = out[out.length - 1];
    if (b.count === 0 && last && last.count === 0) continue;
    out.push({ from: b.t_ms, min: b.min, max: b.max, mean: b.mean, count: b.count });
  }
  return out;
}

/** The table's rows with compared sensors: bucket i of every view; a gap in all of them is one row. */
export function compareRows(views: SensorView[]): { from: number; cells: (Bucket | null)[] }[] {
  const [first] = views;
  if (!first) return [];
  const out: { from: number; cells: (Bucket | null)[]; empty: boolean }[] = [];
  first.buckets.forEach((b, i) => {
    const cells = views.map((v) => (v.buckets.length === first.buckets.length ? v.buckets[i] : null));
    const empty = cells.every((c) => !c || c.count === 0);
    const last = out[out.length - 1];
    if (empty && last && last.empty) return;
    out.push({ from: b.t_ms, cells, empty });
  });
  return out.map(({ from, cells }) => ({ from, cells }));
}

/** One sentence per compared sensor, for the text summary. */
export function compareSummary(others: SensorView[]): string {
  if (others.length === 0) return "";
  const parts = others.map((v) => {
    const s = v.stats;
    if (s.count === 0) return `${viewTitle(v)}: no readings`;
    const mean = s.mean === null ? null : Math.round(s.mean * 100) / 100;
    return `${viewTitle(v)}: min ${formatValue(s.min, v.unit)}, max ${formatValue(s.max, v.unit)}, mean ${formatValue(mean, v.unit)}`;
  });
  return ` Compared with ${parts.join("; ")}.`;
}

/**
 * The range's readings as CSV: a commented header with the sensor, unit and limits, then time,value rows.
 * With compared sensors (issue 27), each gets its own `# compared …` header lines and the rows gain a
 * sensor column: the view's sensor first, then each compared one, each oldest first.
 */
export function rangeCsv(v: SensorView, points: [number, number][], compared: { view: SensorView; points: [number, number][] }[] = []): string {
  const lines = [
    `# sensor,${csvField(v.sensor)}`,
    `# name,${csvField(v.name ?? "")}`,
    `# quantity,${csvField(v.quantity ?? "")}`,
    `# unit,${csvField(v.unit ?? "")}`,
    `# limits,${csvField(limitText(v.limits, v.unit))}`,
    `# from,${csvField(isoTime(v.from_ms))}`,
    `# to,${csvField(isoTime(v.to_ms))}`,
  ];
  for (const c of compared) {
    lines.push(
      `# compared sensor,${csvField(c.view.sensor)}`,
      `# compared name,${csvField(c.view.name ?? "")}`,
      `# compared unit,${csvField(c.view.unit ?? "")}`,
      `# compared limits,${csvField(limitText(c.view.limits, c.view.unit))}`,
    );
  }
  const withSensor = compared.length > 0;
  lines.push(withSensor ? "time,time_ms,value,sensor" : "time,time_ms,value");
  // Every sensor's rows within the view's range (the compared ones were asked for the same range).
  for (const { view: s, points: pts } of [{ view: v, points }, ...compared]) {
    const tail = withSensor ? `,${csvField(s.sensor)}` : "";
    for (const [t, val] of pts) {
      if (t < v.from_ms || t >= v.to_ms) continue;
      lines.push(`${csvField(isoTime(t))},${t},${val}${tail}`);
    }
  }
  return lines.join("\r\n") + "\r\n";
}

/** Offers a blob as a download (the same Blob-URL way as the History CSV export). */
export function downloadBlob(filename: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A file name part from a sensor id: safe characters only. */
export function fileStem(v: SensorView): string {
  const base = (v.name || v.sensor) + (v.quantity ? `-${v.quantity}` : "");
  return base.replace(/[^A-Za-z0-9_-]+/g, "_") + "-" + new Date(v.from_ms).toISOString().slice(0, 10);
}
