// Dashboard: one card per sensor and field (an ELEMENT device has several: temperature,
// humidity, battery…) with that field's latest value, its own 24 h sparkline and the rule
// limits that apply to it, and a mark on sensors that have gone quiet. A sensor's main field
// (temperature first, or the user's choice) comes first. Sensors the vendor places (Saveris
// Data API, issue 20) are grouped by area, then equipment, and show the equipment's limits.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, loadError, updateSettings } from "../api";
import { useApp } from "../context";
import { downsample, MAX_POINTS } from "../lib/downsample";
import { mainQuantities } from "../lib/fields";
import { ago, formatValue, shortTime } from "../lib/format";
import { suggestUnit } from "../lib/units";
import { tid } from "../lib/testid";
import type { AlarmRow, LatestValue, SensorPlace, Settings, ThresholdRule } from "../types";
import { AckDialog } from "../history/HistoryPage";
import { Button, Message } from "../widgets";
import { Sparkline } from "./Sparkline";

export const STALE_MS = 15 * 60 * 1000;
const DAY_MS = 24 * 3600 * 1000;
/** New readings arrive all the time: the sparklines re-query at most this often. */
const SERIES_REFRESH_MS = 15_000;

export function isStale(l: LatestValue, now: number): boolean {
  return now - l.at_ms > STALE_MS;
}

/** Limits of the enabled rules that look at this sensor and field, as horizontal lines. A rule
 *  without a field looks at the sensor's main value only (`isMain`). */
export function limitsFor(l: LatestValue, rules: ThresholdRule[], isMain = true): number[] {
  const out = new Set<number>();
  for (const r of rules) {
    if (!r.enabled) continue;
    const t = r.target;
    const hits =
      t.type === "all" ||
      (t.type === "sensor" && t.id === l.sensor) ||
      (t.type === "device" && (l.sensor === t.id || l.sensor.startsWith(`${t.id}:`) || l.sensor.startsWith(`${t.id}/`)));
    if (!hits) continue;
    if (r.quantity && (l.quantity ?? "").toLowerCase() !== r.quantity.toLowerCase()) continue;
    if (!r.quantity && !isMain) continue;
    const lim = r.limit;
    if (lim.type === "above" || lim.type === "below") out.add(lim.value);
    if (lim.type === "outside") {
      out.add(lim.low);
      out.add(lim.high);
    }
  }
  return [...out].sort((a, b) => a - b);
}

/** `value` changes at most once per `ms` (the first change passes at once). */
function useThrottled<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = Math.max(0, last.current + ms - Date.now());
    const t = setTimeout(() => {
      last.current = Date.now();
      setV(value);
    }, wait);
    return () => clearTimeout(t);
  }, [value]);
  return v;
}

export function DashboardPage() {
  const { historyTick, reloadTick } = useApp();
  const tick = useThrottled(historyTick, SERIES_REFRESH_MS);
  const [latest, setLatest] = useState<LatestValue[] | null>(null);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(Date.now());
  const [places, setPlaces] = useState<Map<string, SensorPlace>>(new Map());
  // Issue 21: active unacknowledged alarms by sensor, newest first, for the cards' Acknowledge.
  const [unacked, setUnacked] = useState<Map<string, AlarmRow[]>>(new Map());
  const [acking, setAcking] = useState<AlarmRow | null>(null);
  const [ackTick, setAckTick] = useState(0);

  useEffect(() => {
    api
      .alarms({ state: "active", severity: null, source: "", device: "", from_ms: null, to_ms: null, limit: 500, offset: 0 })
      .then((rows) => {
        const m = new Map<string, AlarmRow[]>();
        for (const r of rows) {
          if (r.acknowledged_ms !== null) continue;
          for (const k of new Set([r.sensor, r.device])) {
            if (k) m.set(k, [...(m.get(k) ?? []), r]);
          }
        }
        setUnacked(m);
      })
      .catch(() => {});
  }, [historyTick, reloadTick, ackTick]);

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    api
      .getSettings()
      .then(setSettings)
      .catch((e) => setError(loadError(e)));
  }, [reloadTick]);

  useEffect(() => {
    api
      .latestValues()
      .then((l) => {
        setLatest(l);
        setNow(Date.now());
      })
      .catch((e) => setError(loadError(e)));
  }, [historyTick, reloadTick]);

  useEffect(() => {
    api
      .places()
      .then((ps) => setPlaces(new Map(ps.map((p) => [p.sensor, p]))))
      // Names are a comfort: without them the cards show ids, as before.
      .catch(() => setPlaces(new Map()));
  }, [tick, reloadTick]);

  const rules = settings?.rules ?? [];
  const nameOf = (l: LatestValue) => displayName(l, settings, places.get(l.sensor));
  const limitsOf = (l: LatestValue) => {
    const own = limitsFor(l, rules, isMain(l));
    const vendor = isMain(l) ? places.get(l.sensor)?.limits ?? [] : [];
    return [...new Set([...own, ...vendor])].sort((a, b) => a - b);
  };
  const mains = mainQuantities(latest ?? [], settings);
  const isMain = (l: LatestValue) => (mains.get(l.sensor) ?? null) === (l.quantity ?? null);
  const fieldsOf = new Map<string, number>();
  for (const l of latest ?? []) fieldsOf.set(l.sensor, (fieldsOf.get(l.sensor) ?? 0) + 1);
  // By sensor name, the main field first, then the other fields by name.
  const sorted = [...(latest ?? [])].sort(
    (a, b) =>
      nameOf(a).localeCompare(nameOf(b), undefined, { numeric: true }) ||
      a.sensor.localeCompare(b.sensor) ||
      Number(isMain(b)) - Number(isMain(a)) ||
      (a.quantity ?? "").localeCompare(b.quantity ?? ""),
  );
  const sensorCount = fieldsOf.size;
  const stale = new Set(sorted.filter((l) => isStale(l, now)).map((l) => l.sensor)).size;

  return (
    <section class="dashboard" aria-labelledby="dash-h">
      <h2 id="dash-h">
        Latest values
        {latest && (
          <span class="muted small" data-testid="dashboard-counts">
            {" "}
            · {sensorCount} {sensorCount === 1 ? "sensor" : "sensors"}
            {latest.length > sensorCount ? `, ${latest.length} fields` : ""}
            {stale > 0 ? `, ${stale} stale` : ""}
          </span>
        )}
      </h2>
      <Message text={error} testid="dashboard-error" />
      {acking && (
        <AckDialog
          row={acking}
          required={!!settings?.comment_required_critical && acking.severity === "alarm"}
          onDone={() => {
            setAcking(null);
            setAckTick((t) => t + 1);
          }}
          onCancel={() => setAcking(null)}
        />
      )}
      {latest && latest.length === 0 && (
        <p class="muted" data-testid="dashboard-empty">
          No values yet. Values appear here as soon as a feed delivers measurements or readings.
        </p>
      )}
      {groupByPlace(sorted, places).map((g) => (
        <div class="place-group" key={g.area} data-testid={g.area ? `area-${tid(g.area)}` : "area-none"}>
          {places.size > 0 && <h3 class="area-title">{g.area || "Other sensors"}</h3>}
          {g.equipment.map((eq) => (
            <div class="equipment-group" key={eq.name} data-testid={eq.name ? `equipment-${tid(eq.name)}` : undefined}>
              {eq.name && <h4 class="equipment-title">{eq.name}</h4>}
              <div class="cards">
                {eq.values.map((l) => (
                  <SensorCard
                    key={`${l.sensor}\u0000${l.quantity ?? ""}`}
                    l={l}
                    name={nameOf(l)}
                    limits={limitsOf(l)}
                    now={now}
                    tick={tick}
                    main={isMain(l)}
                    several={(fieldsOf.get(l.sensor) ?? 0) > 1}
                    alarms={isMain(l) ? (unacked.get(l.sensor) ?? []) : []}
                    onAcknowledge={setAcking}
                  />
                ))}
              </div>
            </div>
          ))}
        </div>
      ))}
    </section>
  );
}

/** A name the user typed wins; then the vendor's ("Fridge 1 - Air Sensor · Kitchen"). */
function displayName(l: LatestValue, s: Settings | null, p?: SensorPlace): string {
  return s?.sensors[l.sensor]?.name || p?.label || l.name || l.sensor;
}

interface PlaceGroup {
  area: string;
  equipment: { name: string; values: LatestValue[] }[];
}

/** Areas by name (unplaced sensors last), equipment by name inside each, order kept within. */
export function groupByPlace(sorted: LatestValue[], places: Map<string, SensorPlace>): PlaceGroup[] {
  const areas = new Map<string, Map<string, LatestValue[]>>();
  for (const l of sorted) {
    const p = places.get(l.sensor);
    const area = p?.area ?? "";
    const eq = p?.equipment ?? "";
    if (!areas.has(area)) areas.set(area, new Map());
    const m = areas.get(area)!;
    if (!m.has(eq)) m.set(eq, []);
    m.get(eq)!.push(l);
  }
  const byName = (a: string, b: string) =>
    (a === "" ? 1 : 0) - (b === "" ? 1 : 0) || a.localeCompare(b, undefined, { numeric: true });
  return [...areas.keys()].sort(byName).map((area) => {
    const m = areas.get(area)!;
    return {
      area,
      equipment: [...m.keys()].sort(byName).map((name) => ({ name, values: m.get(name)! })),
    };
  });
}

function SensorCard(p: {
  l: LatestValue;
  name: string;
  limits: number[];
  now: number;
  tick: number;
  main: boolean;
  several: boolean;
  /** The sensor's active unacknowledged alarms, newest first (on its main card only). */
  alarms: AlarmRow[];
  onAcknowledge: (a: AlarmRow) => void;
}) {
  const { l, name, limits, now, tick } = p;
  const { openSensor } = useApp();
  const open = () => openSensor({ sensor: l.sensor, quantity: l.quantity ?? null });
  const [points, setPoints] = useState<[number, number][] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // The main field's card keeps the sensor's plain id; the other fields add their name.
  const id = p.main || !l.quantity ? tid(l.sensor) : `${tid(l.sensor)}-${tid(l.quantity)}`;
  const stale = isStale(l, now);

  const makeMain = async () => {
    try {
      await updateSettings((s) => {
        const prev = s.sensors[l.sensor] ?? { name: "", notify: true, main_field: "" };
        s.sensors[l.sensor] = { ...prev, main_field: l.quantity ?? "" };
      });
    } catch (e) {
      setError(errorText(e));
    }
  };

  useEffect(() => {
    let live = true;
    api
      .series(l.sensor, Date.now() - DAY_MS, l.quantity ?? undefined)
      .then((p) => {
        if (!live) return;
        setPoints(downsample(p, MAX_POINTS));
        setError(null);
      })
      .catch((e) => live && setError(loadError(e)));
    return () => {
      live = false;
    };
  }, [l.sensor, l.quantity, tick]);

  return (
    <article
      class={"sensor-card" + (stale ? " stale" : "")}
      data-testid={`card-${id}`}
      data-sensor={l.sensor}
      data-quantity={l.quantity ?? ""}
      data-main={p.main ? "true" : "false"}
      aria-label={l.quantity ? `${name}, ${l.quantity}` : name}
      // A click anywhere on the card (but on its own buttons) opens its sensor view.
      onClick={(e) => !(e.target as Element).closest?.("button") && open()}
    >
      <header>
        <h3 title={l.sensor}>
          <button type="button" class="link" data-testid={`card-open-${id}`} onClick={open} title="Open the sensor view">
            {name}
          </button>
        </h3>
        {stale && (
          <span class="badge warn" data-testid={`card-stale-${id}`} title={`No value since ${shortTime(l.at_ms, now)}`}>
            stale
          </span>
        )}
      </header>
      <div class="reading">
        <span class="value" data-testid={`card-value-${id}`}>
          {formatValue(l.value, l.unit)}
        </span>
        {/* ELEMENT sends no units: a guess from the field name, marked as such (issue 20). */}
        {l.source === "element" && !l.unit && l.quantity && suggestUnit(l.quantity) && (
          <span
            class="suggested-unit"
            data-testid={`card-unit-suggestion-${id}`}
            title="Suggested from the field name (ELEMENT sends no units); not used until confirmed"
          >
            {suggestUnit(l.quantity)}?
          </span>
        )}
        {l.quantity && <span class="muted"> {l.quantity}</span>}
        {p.several &&
          (p.main ? (
            <span class="badge main-field" title="This field stands for the sensor (rules without a field, the first card)" data-testid={`card-main-${id}`}>
              main
            </span>
          ) : (
            <button type="button" class="link small" data-testid={`card-make-main-${id}`} onClick={makeMain} title="Rules without a field will look at this field">
              make main
            </button>
          ))}
      </div>
      <div class="muted small" data-testid={`card-time-${id}`}>
        {shortTime(l.at_ms, now)} · {ago(l.at_ms, now)} · {l.source}
      </div>
      {error ? (
        <Message text={error} testid={`card-error-${id}`} />
      ) : points ? (
        <Sparkline points={points} limits={limits} width={240} height={56} label={`${name}, last 24 hours`} testid={`spark-${id}`} />
      ) : (
        <div class="spark loading" style={{ height: 56 }} />
      )}
      {limits.length > 0 && <div class="muted small">limits {limits.join(" / ")}</div>}
      {p.alarms.length > 0 && (
        <div class="card-alarm" data-testid={`card-alarm-${id}`}>
          <span class={`sev ${p.alarms[0].severity}`}>
            {p.alarms.length === 1 ? "1 active alarm" : `${p.alarms.length} active alarms`}
          </span>{" "}
          <span class="muted small">{p.alarms[0].condition ?? ""}</span>
          <Button testid={`card-ack-${id}`} kind="primary" onClick={() => p.onAcknowledge(p.alarms[0])} aria-label={`Acknowledge the alarm of ${name}`}>
            Acknowledge
          </Button>
        </div>
      )}
    </article>
  );
}
