import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it, vi } from "vitest";

// uPlot needs a real canvas: record what it is asked to draw instead.
const drawn: { opts: any; data: number[][] }[] = [];
vi.mock("uplot", () => ({
  default: class {
    constructor(opts: any, data: number[][]) {
      drawn.push({ opts, data });
    }
    destroy() {}
  },
}));
vi.mock("uplot/dist/uPlot.min.css", () => ({}));

import { daySeries, demoState, installMock } from "../dev/mockBackend";
import { downsample, MAX_POINTS } from "../src/lib/downsample";
import { limitsFor } from "../src/dashboard/DashboardPage";
import { byId, findId, renderApp } from "./helpers";

describe("downsample", () => {
  it("keeps at most 300 points and the extremes", () => {
    const pts = daySeries(5, 1_700_000_000_000, 10);
    expect(pts.length).toBeGreaterThan(2800);
    const d = downsample(pts);
    expect(d.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(Math.max(...d.map((p) => p[1]))).toBe(Math.max(...pts.map((p) => p[1])));
    expect(Math.min(...d.map((p) => p[1]))).toBe(Math.min(...pts.map((p) => p[1])));
    for (let i = 1; i < d.length; i++) expect(d[i][0]).toBeGreaterThan(d[i - 1][0]);
  });
  it("leaves short series alone and drops non-numbers", () => {
    expect(downsample([[1, 2], [2, NaN], [3, 4]])).toEqual([[1, 2], [3, 4]]);
  });
});

describe("dashboard", () => {
  it("draws a card per sensor with a downsampled sparkline and the rule limits", async () => {
    drawn.length = 0;
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    await findId("card-dev-1_temperature");
    expect(screen.getAllByTestId(/^card-[^-]+.*$/).filter((e) => e.tagName === "ARTICLE")).toHaveLength(3);
    expect(byId("card-value-dev-1_temperature").textContent).toBe("9.1 °C");
    await waitFor(() => expect(drawn).toHaveLength(3));
    for (const d of drawn) {
      expect(d.data[0].length).toBeLessThanOrEqual(MAX_POINTS);
      expect(d.data[0][0]).toBeLessThan(1e12); // seconds, as uPlot expects
    }
    const fridge = drawn.find((d) => d.data[1].some((v) => v > 9));
    // The fridge sensor gets the "above 8" line of rule r1; humidity lines do not apply to it.
    expect(fridge?.data.slice(2).map((s) => s[0])).toEqual([8]);
    expect(m.calls.filter((c) => c.cmd === "series").every((c) => (c.args as any).sinceMs > Date.now() - 25 * 3600_000)).toBe(true);
  });

  it("acknowledges a sensor's active alarm from its card, through the comment dialog (issue 21)", async () => {
    const st = demoState();
    st.settings.comment_required_critical = true;
    const m = installMock(st);
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    const card = await findId("card-alarm-60A1B2_Temperature");
    expect(card.textContent).toContain("active alarm");
    fireEvent.click(byId("card-ack-60A1B2_Temperature"));
    await findId("ack-dialog");
    fireEvent.input(byId("ack-comment"), { target: { value: "door closed" } });
    fireEvent.click(byId("ack-confirm"));
    await waitFor(() => expect(screen.queryByTestId("ack-dialog")).toBeNull());
    const ack = m.calls.find((c) => c.cmd === "acknowledge")?.args as any;
    expect(ack.comment).toBe("door closed");
    expect(m.alarms.find((a) => a.id === ack.alarmId)?.sensor).toBe("60A1B2:Temperature");
  });

  it("marks sensors without a value for more than 15 minutes as stale", async () => {
    installMock(demoState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    await findId("card-stale-dev-3_humidity");
    expect(screen.queryByTestId("card-stale-dev-1_temperature")).toBeNull();
    expect(byId("dashboard-counts").textContent).toContain("1 stale");
  });

  it("applies limits by target and quantity", () => {
    const s = demoState();
    expect(limitsFor(s.latest[2], s.settings.rules)).toEqual([30, 60]);
    expect(limitsFor(s.latest[0], s.settings.rules)).toEqual([]);
  });
});
