// The sensor view: one sensor's readings over 1 h … 30 d, reduced by the monitor, drawn by
// uPlot with its limit lines, its alarm periods shaded and gaps left as gaps; the range's
// figures beside it, a text summary and a table of the same numbers, and CSV/PNG export.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, errorText, listenDownloads } from "../api";
import { useApp } from "../context";
import { formatTime, formatValue } from "../lib/format";
import type { LatestValue, SensorView } from "../types";
import { Button, Field, Message } from "../widgets";
import {
  alarmBands,
  chartUnits,
  compareCandidates,
  compareData,
  compareRows,
  compareSummary,
  customRange,
  downloadBlob,
  figures,
  fileStem,
  limitValues,
  MAX_COMPARED,
  msToLocalInput,
  RANGES,
  rangeCsv,
  rangeFor,
  summary,
  viewTitle,
  type RangeId,
  type SensorTarget,
} from "./view";

const HEIGHT = 300;
/** One colour per sensor on the chart: the view's own first. */
const COLOURS = ["#2563eb", "#16a34a", "#9333ea", "#ea580c"];

function cssVar(el: Element, name: string, fallback: string): string {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

function alpha(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

/** A performance mark, where the page has them (not in every test DOM). */
function mark(name: string) {
  if (typeof performance !== "undefined" && typeof performance.mark === "function") performance.mark(name);
}

const targetKey = (t: SensorTarget) => `${t.sensor}\u0000${t.quantity ?? ""}`;

export function SensorPanel(p: { target: SensorTarget; onClose: () => void }) {
  const { target } = p;
  const { historyTick } = useApp();
  const [range, setRange] = useState<RangeId>("24h");
  // The custom range: what is typed, and the last range that passed the checks.
  const [customText, setCustomText] = useState<{ from: string; to: string }>({ from: "", to: "" });
  const [customError, setCustomError] = useState<{ field: "from" | "to"; error: string } | null>(null);
  const [custom, setCustom] = useState<{ from: number; to: number } | null>(null);
  const [others, setOthers] = useState<SensorTarget[]>([]);
  const [latest, setLatest] = useState<LatestValue[] | null>(null);
  const [view, setView] = useState<SensorView | null>(null);
  const [otherViews, setOtherViews] = useState<SensorView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [table, setTable] = useState(false);
  const [exportMsg, setExportMsg] = useState<string | null>(null);
  const [exportDone, setExportDone] = useState<string | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);

  // The window process says where an export landed (the Downloads folder), or that it failed.
  useEffect(() => {
    let off: (() => void) | null = null;
    let gone = false;
    listenDownloads((d) => {
      if (d.ok) setExportDone(d.path ? `Saved to ${d.path}` : "Saved in the Downloads folder.");
      else setExportMsg("The file could not be saved.");
    })
      .then((f) => (gone ? f() : (off = f)))
      .catch(() => {});
    return () => {
      gone = true;
      off?.();
    };
  }, []);

  // The sensors offered for comparison come from the dashboard's list of latest values.
  useEffect(() => {
    let live = true;
    api
      .latestValues()
      .then((l) => live && setLatest(l))
      .catch(() => live && setLatest([]));
    return () => {
      live = false;
    };
  }, [target.sensor]);

  const othersKey = others.map(targetKey).join("|");
  useEffect(() => {
    let live = true;
    if (range === "custom" && !custom) return;
    const ms = RANGES.find((r) => r.id === range)?.ms ?? 86_400_000;
    const [from, to] = range === "custom" && custom ? [custom.from, custom.to] : rangeFor(ms, Date.now(), target.alarm);
    const width = Math.max(100, Math.round(host.current?.clientWidth || 800));
    // Every sensor over the same range and the same number of buckets: bucket i is the
    // same pixel column for all of them.
    // Marks for `make bench` (sensor view): asked → answered is the monitor's round trip
    // as the window sees it, answered → drawn is the chart's drawing.
    mark("sensor-view-asked");
    Promise.all([target, ...others].map((t) => api.sensorView(t.sensor, t.quantity, from, to, width)))
      .then(([v, ...rest]) => {
        if (!live) return;
        mark("sensor-view-answered");
        setView(v);
        setOtherViews(rest);
        setError(null);
      })
      .catch((e) => live && setError(errorText(e)));
    return () => {
      live = false;
    };
  }, [target.sensor, target.quantity, target.alarm?.id, range, custom, othersKey, historyTick]);

  useEffect(() => {
    const el = host.current;
    if (!el || !view) return;
    const now = Date.now();
    const bad = cssVar(el, "--bad", "#c0392b");
    const views = [view, ...otherViews];
    const units = chartUnits(views);
    const scaleOf = (v: SensorView) => `y${units.indexOf(v.unit ?? "")}`;
    const limits = limitValues(view.limits);
    const bands = alarmBands(view, now);
    const colour = (i: number) => (i === 0 ? cssVar(el, "--accent", COLOURS[0]) : COLOURS[i % COLOURS.length]);
    const scales: uPlot.Scales = { x: { time: true, range: [view.from_ms / 1000, view.to_ms / 1000] } };
    units.forEach((_, i) => (scales[`y${i}`] = {}));
    const opts: uPlot.Options = {
      width: el.clientWidth > 100 ? el.clientWidth : 800,
      height: HEIGHT,
      // Drag selects a span to zoom into (x only); a double click zooms out again.
      cursor: { drag: { x: true, y: false } },
      legend: { show: false },
      scales,
      // One y axis per unit: the first on the left, a second on the right.
      axes: [
        {},
        ...units.map((u, i) => ({
          scale: `y${i}`,
          side: i % 2 === 0 ? 3 : 1,
          label: u || undefined,
          grid: { show: i === 0 },
        })),
      ] as uPlot.Axis[],
      series: [
        {},
        ...views.flatMap((v, i) => [
          { label: `${viewTitle(v)} min`, scale: scaleOf(v), stroke: colour(i), width: 1, points: { show: false } },
          { label: `${viewTitle(v)} max`, scale: scaleOf(v), stroke: colour(i), width: 1, points: { show: false } },
        ]),
        ...limits.map((_, i) => ({ label: `limit ${i + 1}`, scale: scaleOf(view), stroke: bad, width: 1, dash: [6, 4], points: { show: false } })),
      ],
      // The band between min and max of each sensor: a one-minute spike keeps its full height.
      bands: views.map((_, i) => ({ series: [2 + 2 * i, 1 + 2 * i] as [number, number], fill: alpha(COLOURS[i % COLOURS.length], i === 0 ? 0.25 : 0.18) })),
      hooks: {
        // Alarm periods shaded behind the series, on the canvas itself (so the PNG has them).
        drawClear: [
          (u: uPlot) => {
            const ctx = u.ctx;
            ctx.save();
            for (const b of bands) {
              const x0 = u.valToPos(b.from / 1000, "x", true);
              const x1 = u.valToPos(b.to / 1000, "x", true);
              ctx.fillStyle = b.severity === "critical" ? "rgba(192,57,43,0.22)" : "rgba(230,126,34,0.22)";
              ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
            }
            ctx.restore();
          },
        ],
        // With several sensors, their names in their colours on the canvas (so the PNG says which is which).
        draw: [
          (u: uPlot) => {
            mark("sensor-view-drawn");
            if (views.length < 2) return;
            const ctx = u.ctx;
            ctx.save();
            // Canvas pixels, whatever transform uPlot left set; one name a line, top left
            // of the plot, so no text width has to be measured.
            ctx.setTransform(1, 0, 0, 1, 0, 0);
            const px = devicePixelRatio || 1;
            ctx.font = `${Math.round(12 * px)}px sans-serif`;
            ctx.textBaseline = "top";
            ctx.textAlign = "left";
            views.forEach((v, i) => {
              ctx.fillStyle = colour(i);
              ctx.fillText(viewTitle(v) + (v.unit ? ` (${v.unit})` : ""), u.bbox.left + 6 * px, u.bbox.top + (4 + 15 * i) * px);
            });
            ctx.restore();
          },
        ],
      },
    };
    const u = new uPlot(opts, compareData(views), el);
    chart.current = u;
    // What was drawn, for tests and tools that read the page rather than the pixels.
    el.dataset.drawn = "true";
    el.dataset.bands = String(bands.length);
    el.dataset.limits = limits.join(",");
    el.dataset.gaps = String(view.buckets.filter((b) => b.count === 0).length);
    el.dataset.sensors = views.map((v) => v.sensor).join("|");
    el.dataset.axes = units.join("|");
    el.dataset.span = String(view.to_ms - view.from_ms);
    return () => {
      u.destroy();
      chart.current = null;
      delete el.dataset.drawn;
    };
  }, [view, otherViews]);

  const chooseRange = (r: RangeId) => {
    if (r === "custom") {
      // Start from the range on screen, so only the end that changes needs typing.
      if (view && !customText.from && !customText.to) setCustomText({ from: msToLocalInput(view.from_ms), to: msToLocalInput(view.to_ms) });
      setCustomError(null);
    }
    setRange(r);
  };

  const applyCustom = () => {
    const r = customRange(customText.from, customText.to, Date.now());
    if ("error" in r) {
      setCustomError(r);
      return;
    }
    setCustomError(null);
    setCustom(r);
  };

  const candidates = latest ? compareCandidates(latest, target, others) : [];
  const full = others.length + 1 >= MAX_COMPARED;

  const exportCsv = async () => {
    if (!view) return;
    setExportMsg(null);
    setExportDone(null);
    try {
      const pts = await api.series(view.sensor, view.from_ms, view.quantity ?? undefined);
      // Issue 27: the compared sensors' readings go into the same file, each row naming its sensor.
      const compared = await Promise.all(
        otherViews.map(async (o) => ({ view: o, points: await api.series(o.sensor, view.from_ms, o.quantity ?? undefined) })),
      );
      downloadBlob(`${fileStem(view)}.csv`, new Blob([rangeCsv(view, pts, compared)], { type: "text/csv;charset=utf-8" }));
    } catch (e) {
      setExportMsg(errorText(e));
    }
  };

  const exportPng = () => {
    const canvas = chart.current?.ctx.canvas;
    if (!view || !canvas) return;
    setExportMsg(null);
    setExportDone(null);
    canvas.toBlob((blob) => {
      if (blob) downloadBlob(`${fileStem(view)}.png`, blob);
      else setExportMsg("The chart could not be turned into a picture.");
    }, "image/png");
  };

  const alarmId = target.alarm?.id;
  return (
    <section class="sensor-view" data-testid="sensor-view" data-sensor={target.sensor} data-alarm-id={alarmId ?? ""} aria-label="Sensor view">
      <header class="toolbar">
        <h2 data-testid="sensor-title">{view ? viewTitle(view) : target.sensor}</h2>
        <div class="range-buttons" role="group" aria-label="Range">
          {[...RANGES, { id: "custom" as const, label: "Custom" }].map((r) => (
            <button
              type="button"
              key={r.id}
              class={range === r.id ? "btn primary" : "btn plain"}
              aria-pressed={range === r.id}
              data-testid={`sensor-range-${r.id}`}
              onClick={() => chooseRange(r.id)}
            >
              {r.label}
            </button>
          ))}
        </div>
        <Button testid="sensor-table-toggle" aria-pressed={table} onClick={() => setTable(!table)}>
          {table ? "Chart" : "Table"}
        </Button>
        <Button testid="sensor-export-csv" onClick={exportCsv} disabled={!view}>
          Export CSV
        </Button>
        <Button testid="sensor-export-png" onClick={exportPng} disabled={!view || table}>
          Export PNG
        </Button>
        <Button testid="sensor-close" onClick={p.onClose}>
          Close
        </Button>
      </header>
      {range === "custom" && (
        <form
          class="sensor-custom filters"
          data-testid="sensor-custom"
          aria-label="Custom range"
          onSubmit={(e) => {
            e.preventDefault();
            applyCustom();
          }}
        >
          <Field
            label="From"
            type="datetime-local"
            value={customText.from}
            onInput={(v) => setCustomText({ ...customText, from: v })}
            testid="sensor-custom-from"
            error={customError?.field === "from" ? customError.error : undefined}
          />
          <Field
            label="To"
            type="datetime-local"
            value={customText.to}
            onInput={(v) => setCustomText({ ...customText, to: v })}
            testid="sensor-custom-to"
            error={customError?.field === "to" ? customError.error : undefined}
          />
          <Button testid="sensor-custom-apply" type="submit">
            Show
          </Button>
        </form>
      )}
      <div class="sensor-compare" role="group" aria-label="Compare" data-testid="sensor-compare">
        <label for="sensor-compare-pick">Compare with</label>
        <select
          id="sensor-compare-pick"
          data-testid="sensor-compare-pick"
          value=""
          disabled={full || candidates.length === 0}
          onChange={(e) => {
            const i = Number((e.currentTarget as HTMLSelectElement).value);
            const c = candidates[i];
            if (c && !full) setOthers([...others, { sensor: c.sensor, quantity: c.quantity }]);
          }}
        >
          <option value="">{full ? `Up to ${MAX_COMPARED} sensors` : candidates.length ? "Add a sensor…" : "No other sensor of this quantity"}</option>
          {candidates.map((c, i) => (
            <option key={`${c.sensor}|${c.quantity}`} value={String(i)}>
              {c.label}
              {c.unit ? ` (${c.unit})` : ""}
            </option>
          ))}
        </select>
        {others.map((o, i) => {
          const v = otherViews[i];
          return (
            <span class="chip" key={targetKey(o)} data-testid={`sensor-compare-${i}`} style={{ borderColor: COLOURS[(i + 1) % COLOURS.length] }}>
              {v ? viewTitle(v) : o.sensor}
              <button
                type="button"
                class="btn plain small"
                aria-label={`Remove ${v ? viewTitle(v) : o.sensor} from the chart`}
                data-testid={`sensor-compare-remove-${i}`}
                onClick={() => setOthers(others.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </span>
          );
        })}
      </div>
      <Message text={error} testid="sensor-error" />
      <Message text={exportMsg} testid="sensor-export-error" />
      <Message ok text={exportDone} testid="sensor-export-done" />
      <div class="sensor-body">
        <div
          class="sensor-chart"
          ref={host}
          role="img"
          aria-label={view ? summary(view) + compareSummary(otherViews) : "loading"}
          data-testid="sensor-chart"
          style={{ display: table ? "none" : undefined, minHeight: HEIGHT }}
        />
        {view && table && (
          <div class="table-wrap">
            <table class="table" data-testid="sensor-table">
              <caption class="muted">
                {[view, ...otherViews].map(viewTitle).join(" · ")} by {Math.round((view.to_ms - view.from_ms) / Math.max(1, view.buckets.length) / 1000)} s bucket
              </caption>
              <thead>
                <tr>
                  <th scope="col">From</th>
                  <th scope="col">Min</th>
                  <th scope="col">Max</th>
                  <th scope="col">Mean</th>
                  <th scope="col">Readings</th>
                  {otherViews.map((o) => (
                    <th scope="col" key={o.sensor}>
                      {viewTitle(o)} min–max
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {compareRows([view, ...otherViews]).map(({ from, cells: [r, ...rest] }) => (
                  <tr key={from}>
                    <td class="nowrap">{formatTime(from)}</td>
                    {!r || r.count === 0 ? (
                      <td colSpan={4} class="muted">
                        no readings (gap)
                      </td>
                    ) : (
                      <>
                        <td class="num">{formatValue(r.min, view.unit)}</td>
                        <td class="num">{formatValue(r.max, view.unit)}</td>
                        <td class="num">{formatValue(r.mean === null ? null : Math.round(r.mean * 100) / 100, view.unit)}</td>
                        <td class="num">{r.count}</td>
                      </>
                    )}
                    {rest.map((c, i) => (
                      <td class="num" key={i}>
                        {c && c.count > 0 ? `${formatValue(c.min)}–${formatValue(c.max, otherViews[i]?.unit)}` : "—"}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {view && (
          <dl class="sensor-figures" data-testid="sensor-figures">
            {figures(view).map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd data-testid={`sensor-fig-${k.toLowerCase().replace(/[^a-z]+/g, "-")}`}>{v}</dd>
              </div>
            ))}
          </dl>
        )}
      </div>
      {view && (
        <p class="muted small" data-testid="sensor-summary">
          {summary(view)}
          {compareSummary(otherViews)}
        </p>
      )}
      {view && view.alarms.length > 0 && (
        <ul class="sensor-alarms small" data-testid="sensor-alarms">
          {view.alarms.map((a) => (
            <li key={a.id} data-testid={`sensor-alarm-${a.id}`}>
              <span class={`sev ${a.severity}`}>{a.severity}</span> raised {formatTime(a.raised_ms)}
              {a.steps.length > 1 && <> · {a.steps.map((s) => `${s.severity} ${formatTime(s.at_ms)}`).join(" → ")}</>}
              {a.acknowledged_ms !== null && <> · acknowledged {formatTime(a.acknowledged_ms)}{a.acknowledged_by ? ` by ${a.acknowledged_by}` : ""}</>}
              {a.cleared_ms !== null ? <> · cleared {formatTime(a.cleared_ms)}</> : <> · active</>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
