// Dashboard: the latest value of every sensor, a 24 h sparkline with the rule limits that
// apply, and a mark on sensors that have gone quiet.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, loadError } from "../api";
import { useApp } from "../context";
import { downsample, MAX_POINTS } from "../lib/downsample";
import { ago, formatValue, shortTime } from "../lib/format";
import { tid } from "../lib/testid";
import type { LatestValue, Settings, ThresholdRule } from "../types";
import { Message } from "../widgets";
import { Sparkline } from "./Sparkline";

export const STALE_MS = 15 * 60 * 1000;
const DAY_MS = 24 * 3600 * 1000;
/** New readings arrive all the time: the sparklines re-query at most this often. */
const SERIES_REFRESH_MS = 15_000;

export function isStale(l: LatestValue, now: number): boolean {
  return now - l.at_ms > STALE_MS;
}

/** Limits of the enabled rules that look at this sensor, as horizontal lines. */
export function limitsFor(l: LatestValue, rules: ThresholdRule[]): number[] {
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

  const rules = settings?.rules ?? [];
  const sorted = [...(latest ?? [])].sort((a, b) => displayName(a, settings).localeCompare(displayName(b, settings), undefined, { numeric: true }));
  const stale = sorted.filter((l) => isStale(l, now)).length;

  return (
    <section class="dashboard" aria-labelledby="dash-h">
      <h2 id="dash-h">
        Latest values
        {latest && (
          <span class="muted small" data-testid="dashboard-counts">
            {" "}
            · {latest.length} sensors{stale > 0 ? `, ${stale} stale` : ""}
          </span>
        )}
      </h2>
      <Message text={error} testid="dashboard-error" />
      {latest && latest.length === 0 && (
        <p class="muted" data-testid="dashboard-empty">
          No values yet. Values appear here as soon as a feed delivers measurements or readings.
        </p>
      )}
      <div class="cards">
        {sorted.map((l) => (
          <SensorCard key={l.sensor} l={l} name={displayName(l, settings)} limits={limitsFor(l, rules)} now={now} tick={tick} />
        ))}
      </div>
    </section>
  );
}

function displayName(l: LatestValue, s: Settings | null): string {
  return s?.sensors[l.sensor]?.name || l.name || l.sensor;
}

function SensorCard({ l, name, limits, now, tick }: { l: LatestValue; name: string; limits: number[]; now: number; tick: number }) {
  const [points, setPoints] = useState<[number, number][] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const id = tid(l.sensor);
  const stale = isStale(l, now);

  useEffect(() => {
    let live = true;
    api
      .series(l.sensor, Date.now() - DAY_MS)
      .then((p) => {
        if (!live) return;
        setPoints(downsample(p, MAX_POINTS));
        setError(null);
      })
      .catch((e) => live && setError(loadError(e)));
    return () => {
      live = false;
    };
  }, [l.sensor, tick]);

  return (
    <article class={"sensor-card" + (stale ? " stale" : "")} data-testid={`card-${id}`} data-sensor={l.sensor} aria-label={name}>
      <header>
        <h3 title={l.sensor}>{name}</h3>
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
        {l.quantity && <span class="muted"> {l.quantity}</span>}
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
    </article>
  );
}
