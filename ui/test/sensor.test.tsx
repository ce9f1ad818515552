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
import {
  chartData,
  chartUnits,
  compareCandidates,
  compareData,
  compareRows,
  compareSummary,
  customRange,
  rangeCsv,
  summary,
  tableRows,
} from "../src/sensor/view";
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
    limits: [{ rule: "Fridge too warm", low: null, high: 8, origin: "rule" }],
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

describe("sensor view CSV with compared sensors", () => {
  it("names every compared sensor in the header and each row's sensor, within the view's range", () => {
    const other: SensorView = { ...view(), sensor: "dev-2:temperature", name: "Cold room 2", limits: [{ rule: "Room 2", low: 2, high: 6, origin: "rule" }] };
    const csv = rangeCsv(
      view(),
      [
        [100, 4.25],
        [3500, 9.5],
      ],
      [
        {
          view: other,
          points: [
            [-5, 1],
            [200, 3.5],
            [3600, 5],
          ],
        },
      ],
    );
    const lines = csv.trim().split("\r\n");
    expect(lines[0]).toBe("# sensor,dev-1:temperature");
    expect(lines).toContain("# compared sensor,dev-2:temperature");
    expect(lines).toContain("# compared name,Cold room 2");
    expect(lines).toContain("# compared unit,°C");
    expect(lines).toContain("# compared limits,Room 2: 2–6 °C");
    const rows = lines.filter((l) => /^[^#]/.test(l));
    expect(rows[0]).toBe("time,time_ms,value,sensor");
    expect(rows.slice(1).map((r) => r.split(",").slice(1).join(","))).toEqual([
      "100,4.25,dev-1:temperature",
      "3500,9.5,dev-1:temperature",
      "200,3.5,dev-2:temperature",
      "3600,5,dev-2:temperature",
    ]);
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
    // The table of 800 rows takes jsdom 7 s on a machine shared by 7 builds (seen 12-07).
  }, 30_000);
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

describe("sensor view: compare and custom range", () => {
  const other = (sensor: string, unit: string | null): SensorView => ({
    ...view(),
    sensor,
    name: sensor,
    unit,
    limits: [],
    buckets: [
      { t_ms: 0, min: 1, max: 2, mean: 1.5, count: 2 },
      { t_ms: 1000, min: 3, max: 3, mean: 3, count: 1 },
      { t_ms: 2000, min: null, max: null, mean: null, count: 0 },
      { t_ms: 3000, min: 4, max: 4, mean: 4, count: 1 },
    ],
  });
  it("puts every sensor's min and max on the same pixel columns, limits last, one axis per unit", () => {
    const d = compareData([view(), other("b", "°F")]);
    expect(d).toHaveLength(1 + 2 + 2 + 1);
    expect(d[3]).toEqual([1, 3, null, 4]);
    expect(d[4]).toEqual([2, 3, null, 4]);
    expect(d[5]).toEqual([8, 8, 8, 8]);
    // A view over another range is not drawn on this one's columns.
    const shifted = { ...other("c", "°C"), from_ms: 500 };
    expect(compareData([view(), shifted])[3]).toEqual([null, null, null, null]);
    expect(chartUnits([view(), other("b", "°F"), other("c", "°C")])).toEqual(["°C", "°F"]);
  });
  it("offers only sensors of the same quantity that are not on the chart yet", () => {
    const latest = [
      { sensor: "a", name: "Fridge A", source: "saveris", quantity: "Temperature", value: 4, unit: "°C", at_ms: 0 },
      { sensor: "b", name: "Fridge B", source: "saveris", quantity: "temperature", value: 40, unit: "°F", at_ms: 0 },
      { sensor: "c", name: "Lab", source: "element", quantity: "humidity", value: 40, unit: "%", at_ms: 0 },
      { sensor: "d", name: "Freezer", source: "saveris", quantity: "Temperature", value: -20, unit: "°C", at_ms: 0 },
    ] as const;
    const c = compareCandidates([...latest], { sensor: "a", quantity: null }, [{ sensor: "d", quantity: "Temperature" }]);
    expect(c.map((x) => x.sensor)).toEqual(["b"]);
    expect(c[0].unit).toBe("°F");
  });
  it("keeps a row where only a compared sensor has readings, and says the others in words", () => {
    const rows = compareRows([view(), other("b", "°C")]);
    // Bucket 1: the view's own is empty, b has a reading: a row of its own.
    expect(rows.map((r) => r.from)).toEqual([0, 1000, 2000, 3000]);
    expect(rows[1].cells[1]?.max).toBe(3);
    expect(compareSummary([other("b", "°C")])).toContain("Compared with b: min 4 °C, max 9.5 °C");
  });
  it("checks a custom range: both ends, in order, not in the future, at most 400 days", () => {
    const now = new Date("2026-12-07T12:00").getTime();
    expect(customRange("", "2026-12-07T10:00", now)).toEqual({ field: "from", error: "Enter when the range starts." });
    expect(customRange("2026-12-07T10:00", "", now)).toMatchObject({ field: "to" });
    expect(customRange("2026-12-07T10:00", "2026-12-07T09:00", now)).toMatchObject({ field: "to", error: "“To” must be after “From”." });
    expect(customRange("2026-12-08T10:00", "2026-12-09T09:00", now)).toMatchObject({ field: "from" });
    expect(customRange("2024-01-01T00:00", "2026-12-01T00:00", now)).toMatchObject({ field: "to", error: "The range can be at most 400 days." });
    expect(customRange("2026-12-01T00:00", "2026-12-02T00:00", now)).toEqual({
      from: new Date("2026-12-01T00:00").getTime(),
      to: new Date("2026-12-02T00:00").getTime(),
    });
  });
  it("names a Saveris limit as the sensor's own in words and in the CSV", () => {
    const v = { ...view(), limits: [{ rule: "Upper limit", low: null, high: 8, origin: "saveris" as const }] };
    expect(summary(v)).toContain("Upper limit (Saveris): above 8 °C");
    expect(rangeCsv(v, [])).toContain("# limits,Upper limit (Saveris): above 8 °C");
  });

  it("adds a sensor of the same quantity from the picker and draws both on one chart", async () => {
    drawn.length = 0;
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    fireEvent.click(await findId("card-open-dev-1_temperature"));
    await waitFor(() => expect(byId("sensor-chart").dataset.drawn).toBe("true"));
    const pick = byId("sensor-compare-pick") as HTMLSelectElement;
    await waitFor(() => expect(pick.disabled).toBe(false));
    // Only the other temperature is offered, not the humidity.
    const offered = [...pick.options].slice(1).map((o) => o.textContent);
    expect(offered).toEqual(["60A1B2, Temperature (°C)"]);
    fireEvent.change(pick, { target: { value: "0" } });
    await waitFor(() => expect(byId("sensor-chart").dataset.sensors).toBe("dev-1:temperature|60A1B2:Temperature"));
    const calls = m.calls.filter((c) => c.cmd === "sensor_view").slice(-2) as any[];
    expect(calls[1].args.sensor).toBe("60A1B2:Temperature");
    expect([calls[1].args.fromMs, calls[1].args.toMs, calls[1].args.buckets]).toEqual([calls[0].args.fromMs, calls[0].args.toMs, calls[0].args.buckets]);
    expect(byId("sensor-chart").dataset.axes).toBe("°C");
    const last = drawn[drawn.length - 1];
    expect(last.data).toHaveLength(1 + 4 + 1); // x, two sensors × min/max, the rule's limit
    expect(byId("sensor-summary").textContent).toContain("Compared with 60A1B2, Temperature");
    // Nothing left of that quantity: the picker says so.
    expect((byId("sensor-compare-pick") as HTMLSelectElement).disabled).toBe(true);
    fireEvent.click(byId("sensor-compare-remove-0"));
    await waitFor(() => expect(byId("sensor-chart").dataset.sensors).toBe("dev-1:temperature"));
  });

  it("asks for a custom range only once both ends are valid", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    fireEvent.click(await findId("card-open-dev-1_temperature"));
    await waitFor(() => expect(byId("sensor-chart").dataset.drawn).toBe("true"));
    fireEvent.click(byId("sensor-range-custom"));
    const before = m.calls.filter((c) => c.cmd === "sensor_view").length;
    fireEvent.input(byId("sensor-custom-from"), { target: { value: "2026-12-05T10:00" } });
    fireEvent.input(byId("sensor-custom-to"), { target: { value: "2026-12-05T09:00" } });
    fireEvent.click(byId("sensor-custom-apply"));
    expect((await findId("sensor-custom-to-error")).textContent).toContain("after");
    expect(m.calls.filter((c) => c.cmd === "sensor_view").length).toBe(before);
    fireEvent.input(byId("sensor-custom-to"), { target: { value: "2026-12-06T10:30" } });
    fireEvent.click(byId("sensor-custom-apply"));
    await waitFor(() => {
      const last = m.calls.filter((c) => c.cmd === "sensor_view").pop() as any;
      expect(last.args.fromMs).toBe(new Date("2026-12-05T10:00").getTime());
      expect(last.args.toMs).toBe(new Date("2026-12-06T10:30").getTime());
    });
    expect(screen.queryByTestId("sensor-custom-to-error")).toBeNull();
  });
});
