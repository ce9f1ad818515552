import type { AlarmRow } from "../types";

/** ISO 8601 in the desktop's zone with its offset ("2024-05-01T14:00:00+02:00"), so a
 *  spreadsheet or another site reads the same instant (issue 20). "" for no time. */
export function isoTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? "Z" : `${off < 0 ? "-" : "+"}${pad(off / 60)}:${pad(off % 60)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

/** One CSV field: quoted when needed; a leading =, +, - or @ is defused so spreadsheets do not run it. */
export function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
  if (/[",\r\n]/.test(s)) s = '"' + s.replace(/"/g, '""') + '"';
  return s;
}

export const ALARM_CSV_HEADER = [
  "id",
  "state",
  "severity",
  "source",
  "account",
  "device",
  "sensor",
  "name",
  "condition",
  "value",
  "unit",
  "limit",
  "raised",
  "cleared",
  "acknowledged",
  "acknowledged_by",
];

export function alarmsToCsv(rows: AlarmRow[]): string {
  const lines = [ALARM_CSV_HEADER.join(",")];
  for (const r of rows) {
    lines.push(
      [
        r.id,
        r.cleared_ms === null ? "active" : "cleared",
        r.severity,
        r.source,
        r.account,
        r.device,
        r.sensor,
        r.name,
        r.condition,
        r.value,
        r.unit,
        r.limit,
        isoTime(r.raised_ms),
        isoTime(r.cleared_ms),
        isoTime(r.acknowledged_ms),
        r.acknowledged_by,
      ]
        .map(csvField)
        .join(","),
    );
  }
  return lines.join("\r\n") + "\r\n";
}

/** Offers `text` as a file download through a Blob URL (no server, no remote URL). */
export function downloadText(filename: string, text: string, type = "text/csv;charset=utf-8"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
