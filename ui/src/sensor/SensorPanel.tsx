// The sensor view: one sensor's readings over 1 h … 30 d, reduced by the monitor, drawn by
// uPlot with its limit lines, its alarm periods shaded and gaps left as gaps; the range's
// figures beside it, a text summary and a table of the same numbers, and CSV/PNG export.
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, errorText } from "../api";
import { useApp } from "../context";
import { formatTime, formatValue } from "../lib/format";
import type { SensorView } from "../types";
import { Button, Message } from "../widgets";
import {
  alarmBands,
  chartData,
  downloadBlob,
  figures,
  fileStem,
  limitValues,
  RANGES,
  rangeCsv,
  rangeFor,
  summary,
  tableRows,
  viewTitle,
  type RangeId,
  type SensorTarget,
} from "./view";

const HEIGHT = 300;

function cssVar(el: Element, name: string, fallback: string): string {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

export function SensorPanel(p: { target: SensorTarget; onClose: () => void }) {
  const { target } = p;
  const { historyTick } = useApp();
  const [range, setRange] = useState<RangeId>(target.alarm ? "24h" : "24h");
  const [view, setView] = useState<SensorView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [table, setTable] = useState(false);
  const [exportMsg, setExportMsg] = useState<string | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);

  useEffect(() => {
    let live = true;
    const ms = RANGES.find((r) => r.id === range)?.ms ?? 86_400_000;
    const [from, to] = rangeFor(ms, Date.now(), target.alarm);
    const width = Math.max(100, Math.round(host.current?.clientWidth || 800));
    api
      .sensorView(target.sensor, target.quantity, from, to, width)
      .then((v) => {
        if (!live) return;
        setView(v);
        setError(null);
      })
      .catch((e) => live && setError(errorText(e)));
    return () => {
      live = false;
    };
  }, [target.sensor, target.quantity, target.alarm?.id, range, historyTick]);

  useEffect(() => {
    const el = host.current;
    if (!el || !view) return;
    const now = Date.now();
    const line = cssVar(el, "--accent", "#2563eb");
    const bad = cssVar(el, "--bad", "#c0392b");
    const limits = limitValues(view.limits);
    const bands = alarmBands(view, now);
    const opts: uPlot.Options = {
      width: el.clientWidth > 100 ? el.clientWidth : 800,
      height: HEIGHT,
      // Drag selects a span to zoom into (x only); a double click zooms out again.
      cursor: { drag: { x: true, y: false } },
      legend: { show: false },
      scales: { x: { time: true, range: [view.from_ms / 1000, view.to_ms / 1000] } },
      series: [
        {},
        { label: "min", stroke: line, width: 1, points: { show: false } },
        { label: "max", stroke: line, width: 1, points: { show: false } },
        ...limits.map((_, i) => ({ label: `limit ${i + 1}`, stroke: bad, width: 1, dash: [6, 4], points: { show: false } })),
      ],
      // The band between min and max: a one-minute spike keeps its full height.
      bands: [{ series: [2, 1], fill: "rgba(37,99,235,0.25)" }],
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
      },
    };
    const u = new uPlot(opts, chartData(view), el);
    chart.current = u;
    // What was drawn, for tests and tools that read the page rather than the pixels.
    el.dataset.drawn = "true";
    el.dataset.bands = String(bands.length);
    el.dataset.limits = limits.join(",");
    el.dataset.gaps = String(view.buckets.filter((b) => b.count === 0).length);
    return () => {
      u.destroy();
      chart.current = null;
      delete el.dataset.drawn;
    };
  }, [view]);

  const exportCsv = async () => {
    if (!view) return;
    setExportMsg(null);
    try {
      const pts = await api.series(view.sensor, view.from_ms, view.quantity ?? undefined);
      downloadBlob(`${fileStem(view)}.csv`, new Blob([rangeCsv(view, pts)], { type: "text/csv;charset=utf-8" }));
    } catch (e) {
      setExportMsg(errorText(e));
    }
  };

  const exportPng = () => {
    const canvas = chart.current?.ctx.canvas;
    if (!view || !canvas) return;
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
          {RANGES.map((r) => (
            <button
              type="button"
              key={r.id}
              class={range === r.id ? "btn primary" : "btn plain"}
              aria-pressed={range === r.id}
              data-testid={`sensor-range-${r.id}`}
              onClick={() => setRange(r.id)}
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
      <Message text={error} testid="sensor-error" />
      <Message text={exportMsg} testid="sensor-export-error" />
      <div class="sensor-body">
        <div
          class="sensor-chart"
          ref={host}
          role="img"
          aria-label={view ? summary(view) : "loading"}
          data-testid="sensor-chart"
          style={{ display: table ? "none" : undefined, minHeight: HEIGHT }}
        />
        {view && table && (
          <div class="table-wrap">
            <table class="table" data-testid="sensor-table">
              <caption class="muted">{viewTitle(view)} by {Math.round((view.to_ms - view.from_ms) / Math.max(1, view.buckets.length) / 1000)} s bucket</caption>
              <thead>
                <tr>
                  <th scope="col">From</th>
                  <th scope="col">Min</th>
                  <th scope="col">Max</th>
                  <th scope="col">Mean</th>
                  <th scope="col">Readings</th>
                </tr>
              </thead>
              <tbody>
                {tableRows(view).map((r) => (
                  <tr key={r.from}>
                    <td class="nowrap">{formatTime(r.from)}</td>
                    {r.count === 0 ? (
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
