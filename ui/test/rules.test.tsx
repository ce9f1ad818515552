import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it, vi } from "vitest";

// The dashboard test below draws sparklines; uPlot needs a real canvas, which jsdom lacks.
vi.mock("uplot", () => ({
  default: class {
    destroy() {}
  },
}));
vi.mock("uplot/dist/uPlot.min.css", () => ({}));
import { demoState, installMock } from "../dev/mockBackend";
import { emptyRuleDraft, validateRule } from "../src/lib/validate";
import { byId, findId, renderApp } from "./helpers";

const targets = new Set(["all", "sensor:a"]);

describe("rule validation", () => {
  it("accepts a plain rule", () => {
    expect(validateRule({ ...emptyRuleDraft("r"), name: "x" }, targets)).toEqual({});
  });
  it("needs a name, lower < upper, hysteresis >= 0, min count >= 1, a known target", () => {
    const e = validateRule(
      { ...emptyRuleDraft("r"), name: " ", limitType: "outside", low: "8", high: "2", hysteresis: "-1", minCount: "0", target: "sensor:gone" },
      targets,
    );
    expect(Object.keys(e).sort()).toEqual(["high", "hysteresis", "minCount", "name", "target"]);
    expect(e.high).toContain("above the lower");
  });
  it("rejects text where numbers belong and equal limits", () => {
    expect(validateRule({ ...emptyRuleDraft("r"), name: "x", value: "eight" }, targets).value).toBeTruthy();
    expect(validateRule({ ...emptyRuleDraft("r"), name: "x", limitType: "outside", low: "3", high: "3" }, targets).high).toBeTruthy();
    expect(validateRule({ ...emptyRuleDraft("r"), name: "x", value: "7,5" }, targets)).toEqual({});
    expect(validateRule({ ...emptyRuleDraft("r"), name: "x", limitType: "no_data", minutes: "0" }, targets).minutes).toBeTruthy();
  });
});

describe("rules form", () => {
  it("shows errors inline and saves only a valid rule", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-rules"));
    fireEvent.click(await findId("rule-add"));
    fireEvent.input(await findId("rule-name"), { target: { value: "Cold room range" } });
    fireEvent.change(byId("rule-limit-type"), { target: { value: "outside" } });
    fireEvent.input(await findId("rule-low"), { target: { value: "9" } });
    fireEvent.input(byId("rule-high"), { target: { value: "2" } });
    fireEvent.input(byId("rule-hysteresis"), { target: { value: "-0.5" } });
    expect((await findId("rule-high-error")).textContent).toContain("above the lower limit");
    expect(byId("rule-hysteresis-error").textContent).toContain("0 or more");
    fireEvent.click(byId("rule-save"));
    expect(m.calls.some((c) => c.cmd === "save_settings")).toBe(false);

    fireEvent.input(byId("rule-low"), { target: { value: "2" } });
    fireEvent.input(byId("rule-high"), { target: { value: "8" } });
    fireEvent.input(byId("rule-hysteresis"), { target: { value: "0.3" } });
    fireEvent.change(byId("rule-target"), { target: { value: "sensor:60A1B2:Temperature" } });
    fireEvent.click(byId("rule-save"));
    await waitFor(() => expect(m.settings.rules).toHaveLength(3));
    const r = m.settings.rules[2];
    expect(r).toMatchObject({
      name: "Cold room range",
      target: { type: "sensor", id: "60A1B2:Temperature" },
      limit: { type: "outside", low: 2, high: 8 },
      hysteresis: 0.3,
      min_count: 1,
      enabled: true,
    });
  });

  it("edits and deletes a rule", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-rules"));
    fireEvent.click(await findId("rule-edit-r1"));
    expect((await findId("rule-value") as HTMLInputElement).value).toBe("8");
    fireEvent.input(byId("rule-value"), { target: { value: "7.5" } });
    fireEvent.click(byId("rule-save"));
    await waitFor(() => expect(m.settings.rules[0].limit).toEqual({ type: "above", value: 7.5 }));
    fireEvent.click(await findId("rule-delete-r2"));
    await waitFor(() => expect(m.settings.rules.map((r) => r.id)).toEqual(["r1"]));
  });
});

describe("fields of an ELEMENT device", () => {
  /** A climate sensor as ELEMENT sends it: several fields per device. */
  function climateState() {
    const s = demoState();
    const now = Date.now();
    const v = (quantity: string, value: number, unit: string | null) => ({ sensor: "dev-9", name: "Vaccine fridge", source: "element" as const, quantity, value, unit, at_ms: now - 30_000 });
    s.latest.push(v("air_humidity", 46.9, null), v("air_temperature", 5.2, null), v("battery_voltage", 3.13, null));
    s.settings.element[0].subscriptions.push({ id: "sub9", enabled: true, scope: { type: "device", id: "dev-9" }, kind: "readings", preload: [], catch_up_hours: 0 });
    s.series["dev-9\u0000air_temperature"] = [[now - 60_000, 5.0], [now - 30_000, 5.2]];
    s.series["dev-9\u0000air_humidity"] = [[now - 60_000, 47.1], [now - 30_000, 46.9]];
    s.series["dev-9\u0000battery_voltage"] = [[now - 60_000, 3.13], [now - 30_000, 3.13]];
    return s;
  }

  it("offers the fields seen for the target with their last values, and warns without one", async () => {
    const m = installMock(climateState());
    await renderApp();
    fireEvent.click(await findId("section-rules"));
    fireEvent.click(await findId("rule-add"));
    fireEvent.input(await findId("rule-name"), { target: { value: "Fridge warm" } });
    fireEvent.change(byId("rule-target"), { target: { value: "device:dev-9" } });
    const offered = (await findId("rule-fields")).textContent ?? "";
    expect(offered).toContain("air_temperature");
    expect(offered).toContain("5.2");
    expect(offered).toContain("air_humidity");
    expect(offered).not.toContain("device_id");
    expect(byId("rule-any-field-warning").textContent).toContain("main value");
    fireEvent.click(byId("rule-field-air_temperature"));
    expect((byId("rule-quantity") as HTMLInputElement).value).toBe("air_temperature");
    await waitFor(() => expect(document.querySelector("[data-testid='rule-any-field-warning']")).toBeNull());
    fireEvent.click(byId("rule-save"));
    await waitFor(() => expect(m.settings.rules.at(-1)?.quantity).toBe("air_temperature"));
  });

  it("draws one card per field, each with its own series, the temperature first", async () => {
    const m = installMock(climateState());
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    const main = await findId("card-dev-9");
    expect(main.getAttribute("data-quantity")).toBe("air_temperature");
    expect(byId("card-dev-9-air_humidity").getAttribute("data-main")).toBe("false");
    expect(byId("card-dev-9-battery_voltage")).toBeTruthy();
    const cards = [...document.querySelectorAll("article[data-sensor='dev-9']")].map((e) => e.getAttribute("data-quantity"));
    expect(cards).toEqual(["air_temperature", "air_humidity", "battery_voltage"]);
    await waitFor(() =>
      expect(m.calls.filter((c) => c.cmd === "series" && (c.args as any).sensor === "dev-9").map((c) => (c.args as any).quantity).sort()).toEqual([
        "air_humidity",
        "air_temperature",
        "battery_voltage",
      ]),
    );
    // The user makes the humidity the main value of this device.
    fireEvent.click(byId("card-make-main-dev-9-air_humidity"));
    await waitFor(() => expect(m.settings.sensors["dev-9"]?.main_field).toBe("air_humidity"));
  });
});
