// Display helpers. Times are shown in the user's local time zone.

export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "14:02" today, the full date and time otherwise. */
export function shortTime(ms: number, now: number = Date.now()): string {
  const d = new Date(ms);
  const n = new Date(now);
  const pad = (x: number) => String(x).padStart(2, "0");
  if (d.toDateString() === n.toDateString()) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return formatTime(ms).slice(0, 16);
}

export function formatValue(v: number | null | undefined, unit?: string | null): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "";
  const text = Math.abs(v) >= 1000 || Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, "");
  return unit ? `${text} ${unit}` : text;
}

/** For table cells: "05:02:13" today, "22 Nov 05:02" this year, the full date otherwise. */
export function compactTime(ms: number | null | undefined, now: number = Date.now()): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const n = new Date(now);
  const pad = (x: number) => String(x).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === n.toDateString()) return `${hm}:${pad(d.getSeconds())}`;
  const month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][d.getMonth()];
  if (d.getFullYear() === n.getFullYear()) return `${d.getDate()} ${month} ${hm}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** "YYYY-MM-DD HH:MM" of `ms` in the IANA zone `zone`, or null for an unknown zone. */
function wallClock(ms: number, zone?: string): string | null {
  try {
    const f = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    });
    const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  } catch {
    return null;
  }
}

/** The site's time where its zone reads differently from the desktop's at that instant:
 *  "07:00 site time (America/Chicago)", with the date when the site's day differs; null
 *  otherwise (issue 20; the same rule as the popups' `wording::site_time`). */
export function siteTime(ms: number | null | undefined, zone: string | null | undefined): string | null {
  const z = (zone ?? "").trim();
  if (!z || ms === null || ms === undefined || !Number.isFinite(ms)) return null;
  const site = wallClock(ms, z);
  const here = wallClock(ms);
  if (!site || !here || site === here) return null;
  return `${site.slice(0, 10) === here.slice(0, 10) ? site.slice(11) : site} site time (${z})`;
}

/** "3 min ago", "2 h ago". */
export function ago(ms: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

/** RFC 3339 (as jiff writes it) to ms, or null. */
export function parseTimestamp(t: string | null | undefined): number | null {
  if (!t) return null;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : null;
}

/** A `<input type="datetime-local">` value to Unix ms, or null when empty/invalid. */
export function localInputToMs(v: string): number | null {
  if (!v) return null;
  const ms = new Date(v).getTime();
  return Number.isFinite(ms) ? ms : null;
}
