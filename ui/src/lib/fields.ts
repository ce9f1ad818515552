// Which field of a sensor stands for it where one value must (the first dashboard card, a
// rule without a field): the one the user chose for the sensor, else by name —
// temperature-like first, battery and radio figures last, else alphabetical (the order
// ELEMENT sends). The same preference as the backend's `feeds/element/fields.rs`.
import type { LatestValue, Settings } from "../types";

function rank(name: string): number {
  const n = name.toLowerCase();
  if (n.includes("temp")) return 0;
  if (["batt", "voltage", "rssi", "snr", "vdd"].some((w) => n.includes(w))) return 2;
  return 1;
}

/** The main quantity among `quantities` (override first when it is among them). */
export function mainQuantity(quantities: string[], override?: string): string | undefined {
  if (override && quantities.some((q) => q.toLowerCase() === override.toLowerCase())) {
    return quantities.find((q) => q.toLowerCase() === override.toLowerCase());
  }
  return [...quantities].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0];
}

/** Per sensor, its main quantity, from the latest values and the user's choices. */
export function mainQuantities(latest: LatestValue[], settings: Settings | null): Map<string, string | undefined> {
  const by = new Map<string, string[]>();
  for (const l of latest) {
    const list = by.get(l.sensor) ?? [];
    if (l.quantity) list.push(l.quantity);
    by.set(l.sensor, list);
  }
  const out = new Map<string, string | undefined>();
  for (const [sensor, qs] of by) out.set(sensor, mainQuantity(qs, settings?.sensors[sensor]?.main_field || undefined));
  return out;
}
