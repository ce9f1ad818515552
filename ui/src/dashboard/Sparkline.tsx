// A 24 h sparkline drawn by uPlot (canvas, bundled). Points arrive already downsampled; rule
// limits are drawn as dashed horizontal lines across the whole span.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

interface Props {
  points: [number, number][];
  limits: number[];
  width: number;
  height: number;
  label: string;
  testid: string;
}

function cssVar(el: Element, name: string, fallback: string): string {
  const v = getComputedStyle(el).getPropertyValue(name).trim();
  return v || fallback;
}

export const SPARK_DRAWN = "sparkline-drawn";

/** The data uPlot draws: x in seconds, the values, then one constant series per limit. */
export function sparkData(points: [number, number][], limits: number[]): uPlot.AlignedData {
  const xs = points.map((p) => p[0] / 1000);
  const ys = points.map((p) => p[1]);
  return [xs, ys, ...limits.map((l) => xs.map(() => l))];
}

export function Sparkline({ points, limits, width, height, label, testid }: Props) {
  const host = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const el = host.current;
    if (!el || points.length < 2) return;
    const line = cssVar(el, "--accent", "#2563eb");
    const limit = cssVar(el, "--bad", "#c0392b");
    const all = [...points.map((p) => p[1]), ...limits];
    let lo = Math.min(...all);
    let hi = Math.max(...all);
    const pad = (hi - lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
    const opts: uPlot.Options = {
      // Fill the card; `width` is for when layout has not happened yet.
      width: el.clientWidth > 50 ? el.clientWidth : width,
      height,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true }, y: { range: [lo, hi] } },
      series: [
        {},
        { stroke: line, width: 1.5, points: { show: false } },
        ...limits.map(() => ({ stroke: limit, width: 1, dash: [4, 3], points: { show: false } })),
      ],
    };
    const chart = new uPlot(opts, sparkData(points, limits), el);
    // When the last sparkline was drawn, for the dashboard's end-to-end figure; one mark is
    // kept, so an all-day window does not pile them up.
    if (typeof performance.mark === "function") {
      performance.clearMarks(SPARK_DRAWN);
      performance.mark(SPARK_DRAWN);
    }
    return () => chart.destroy();
  }, [points, limits.join(","), width, height]);

  if (points.length < 2)
    return (
      <div class="spark empty" style={{ height }} data-testid={testid}>
        not enough values in the last 24 h
      </div>
    );
  // The drawn series' range, for tests that check which values a card plots.
  const ys = points.map((p) => p[1]);
  return (
    <div
      class="spark"
      ref={host}
      role="img"
      aria-label={label}
      data-testid={testid}
      data-points={points.length}
      data-min={Math.min(...ys)}
      data-max={Math.max(...ys)}
    />
  );
}
