import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it, vi } from "vitest";

// uPlot needs a real canvas: record what it is asked to draw instead.
const drawn: { opts: any; data: (number | null)[][] }[] = [];
vi.mock("uplot", () => ({
  default: class {
    ctx = { canvas: document.createElement("canvas") };
    constructor(opts: any, data: (number | null)[][]) {
      drawn.push({ opts, data });
    }
    destroy() {}
  },
}));
vi.mock("uplot/dist/uPlot.min.css", () => ({}));

import { demoState, installMock } from "../dev/mockBackend";
import { chartData, rangeCsv, summary, tableRows } from "../src/sensor/view";
import type { SensorView } from "../src/types";
import { byId, findId, renderApp } from "./helpers";


function view(): SensorView {
  return {
    sensor: "dev-1:temperature",
    name: "Cold room 1",
    quantity: null,
    unit: "°C",
    from_ms: 0,
    to_ms: 4000,
    buckets: [
      { t_ms: 0, min: 4, max: 5, mean: 4.5, count: 2 },
      { t_ms: 1000, min: null, max: null, mean: null, count: 0 },
      { t_ms: 2000, min: null, max: null, mean: null, count: 0 },
      { t_ms: 3000, min: 6, max: 9.5, mean: 7, count: 3 },
    ],
    limits: [{ rule: "Fridge too warm", low: null, high: 8 }],
    alarms: [],
    stats: { count: 5, min: 4, max: 9.5, mean: 6, outside_ms: 120_000, mkt: 6.4 },
  };
}

describe("sensor view data", () => {
  it("keeps gaps as nulls, both extremes per bucket, and a constant series per limit", () => {
    const d = chartData(view());
    expect(d[1]).toEqual([4, null, null, 6]);
    expect(d[2]).toEqual([5, null, null, 9.5]);
    expect(d[3]).toEqual([8, 8, 8, 8]);
    expect(d[0]).toEqual([0.5, 1.5, 2.5, 3.5]);
  });
  it("says everything in words and in rows (a gap is one row)", () => {
    const s = summary(view());
    expect(s).toContain("min 4 °C");
    expect(s).toContain("max 9.5 °C");
    expect(s).toContain("mean kinetic temperature 6.4 °C");
    expect(s).toContain("Fridge too warm: above 8 °C, 2 min outside");
    expect(s).toContain("no readings in 50% of the range");
    const rows = tableRows(view());
    expect(rows.map((r) => r.count)).toEqual([2, 0, 3]);
  });
  it("writes the range as CSV with the sensor, unit and limits in the header", () => {
    const csv = rangeCsv(view(), [
      [-1, 1],
      [100, 4.25],
      [3500, 9.5],
      [4000, 3],
    ]);
    const lines = csv.trim().split("\r\n");
    expect(lines[0]).toBe("# sensor,dev-1:temperature");
    expect(lines).toContain("# unit,°C");
    expect(lines).toContain("# limits,Fridge too warm: above 8 °C");
    expect(lines.filter((l) => /^[^#]/.test(l))).toHaveLength(3); // header row + 2 readings in range
    expect(lines[lines.length - 1]).toMatch(/,3500,9\.5$/);
  });
});

describe("sensor view in the window", () => {
  it("opens from an alarm in History with the alarm band and the limit line", async () => {
    drawn.length = 0;
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-history"));
    fireEvent.click(await findId("alarm-chart-2"));
    const panel = await findId("sensor-view");
    expect(panel.dataset.sensor).toBe("dev-1:temperature");
    await waitFor(() => expect(byId("sensor-chart").dataset.drawn).toBe("true"));
    expect(byId("sensor-chart").dataset.bands).toBe("1");
    expect(byId("sensor-chart").dataset.limits).toBe("8");
    const call = m.calls.find((c) => c.cmd === "sensor_view") as any;
    expect(call.args.sensor).toBe("dev-1:temperature");
    expect(call.args.toMs - call.args.fromMs).toBe(86_400_000);
    // Table toggle: the same numbers as rows.
    fireEvent.click(byId("sensor-table-toggle"));
    expect((await findId("sensor-table")).querySelectorAll("tbody tr").length).toBeGreaterThan(0);
    expect(byId("sensor-summary").textContent).toContain("Cold room 1");
    // 7 d asks the monitor again for a longer range.
    fireEvent.click(byId("sensor-range-7d"));
    await waitFor(() => {
      const last = m.calls.filter((c) => c.cmd === "sensor_view").pop() as any;
      expect(last.args.toMs - last.args.fromMs).toBe(7 * 86_400_000);
    });
  });
  it("opens from a dashboard card", async () => {
    installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    fireEvent.click(await findId("card-open-dev-1_temperature"));
    expect((await findId("sensor-view")).dataset.sensor).toBe("dev-1:temperature");
    fireEvent.click(byId("sensor-close"));
    await waitFor(() => expect(screen.queryByTestId("sensor-view")).toBeNull());
  });
  it("the popup's Open lands on the alarm's sensor view", async () => {
    const s = demoState();
    s.page = { page: "history", alarm_id: 2 };
    installMock(s);
    await renderApp();
    const panel = await findId("sensor-view");
    expect(panel.dataset.alarmId).toBe("2");
    expect(byId("alarm-row-2").className).toContain("focus");
  });
});
