// Units (issue 20): the same mapping as the backend's `units.rs`. Saveris writes "CELSIUS"
// or "°C", ELEMENT nothing; temperatures convert into each other, other units compare only
// with the same unit.

const ALIASES: Record<string, string> = {
  "°C": "°C", "℃": "°C", C: "°C", DEGC: "°C", CELSIUS: "°C", DEG_C: "°C",
  "°F": "°F", "℉": "°F", F: "°F", DEGF: "°F", FAHRENHEIT: "°F", DEG_F: "°F",
  K: "K", KELVIN: "K",
  "%RH": "%RH", RH: "%RH", RELATIVE_HUMIDITY: "%RH", RELATIVEHUMIDITY: "%RH",
  "%": "%", PERCENT: "%",
  V: "V", VOLT: "V", VOLTS: "V",
  DBM: "dBm", DB: "dB", HPA: "hPa", HECTOPASCAL: "hPa", MBAR: "hPa", PPM: "ppm", LX: "lx", LUX: "lx",
};

/** The units the rule editor and the field-unit picker offer. */
export const UNIT_CHOICES = ["°C", "°F", "K", "%RH", "%", "V", "mV", "dBm", "dB", "hPa", "ppm", "lx"];

/** "CELSIUS" → "°C"; an unknown unit as received (trimmed); "" for none. */
export function canonicalUnit(text: string | null | undefined): string {
  const t = (text ?? "").trim();
  if (!t) return "";
  if (t === "mV" || t.toLowerCase() === "millivolt") return "mV";
  return ALIASES[t.toUpperCase().replace(/\s+/g, "")] ?? t;
}

function dimension(u: string): string | null {
  if (u === "°C" || u === "°F" || u === "K") return "temperature";
  if (u === "%RH" || u === "%") return "fraction";
  if (u === "V" || u === "mV") return "voltage";
  return null;
}

/** Whether a value in `a` can be compared with a limit in `b` (both given, canonical or not). */
export function compatibleUnits(a: string, b: string): boolean {
  const x = canonicalUnit(a);
  const y = canonicalUnit(b);
  if (x === y) return true;
  const d = dimension(x);
  return d !== null && d === dimension(y);
}

/** A likely unit for an ELEMENT field from its name; only ever a suggestion. */
export function suggestUnit(field: string): string | null {
  const n = field.toLowerCase();
  const has = (w: string) => n.includes(w);
  if (has("temp")) return "°C";
  if (has("humid")) return "%RH";
  if (n.endsWith("_mv") || has("millivolt")) return "mV";
  if (has("voltage") || has("vdd") || n === "battery" || n.endsWith("_v")) return "V";
  if (has("percent") || has("battery_level")) return "%";
  if (has("rssi")) return "dBm";
  if (has("snr")) return "dB";
  if (has("pressure")) return "hPa";
  if (has("co2") || has("voc")) return "ppm";
  if (has("lux") || has("illuminance") || has("light")) return "lx";
  return null;
}
