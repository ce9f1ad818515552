import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it, vi } from "vitest";

vi.mock("uplot", () => ({
  default: class {
    destroy() {}
  },
}));
vi.mock("uplot/dist/uPlot.min.css", () => ({}));
import { demoState, installMock } from "../dev/mockBackend";
import { alarmsToCsv, isoTime } from "../src/lib/csv";
import { canonicalUnit, compatibleUnits, suggestUnit } from "../src/lib/units";
import { describeLimit, unitProblems, unitToConfirm } from "../src/settings/Rules";
import { byId, findId, renderApp } from "./helpers";

describe("units (issue 20)", () => {
  it("maps Saveris and push spellings to one unit and keeps unknown ones", () => {
    expect(canonicalUnit("CELSIUS")).toBe("°C");
    expect(canonicalUnit("FAHRENHEIT")).toBe("°F");
    expect(canonicalUnit("% rh")).toBe("%RH");
    expect(canonicalUnit("m³/h")).toBe("m³/h");
    expect(compatibleUnits("°F", "CELSIUS")).toBe(true);
    expect(compatibleUnits("K", "°C")).toBe(true);
    expect(compatibleUnits("%RH", "°C")).toBe(false);
    expect(suggestUnit("air_temperature")).toBe("°C");
    expect(suggestUnit("air_humidity")).toBe("%RH");
    expect(suggestUnit("battery_voltage")).toBe("V");
    expect(suggestUnit("door_open")).toBeNull();
    expect(describeLimit({ type: "above", value: 8 }, "°C")).toBe("above 8 °C");
  });

  it("finds the fields a rule's unit cannot apply to", () => {
    const fields = [
      { quantity: "temperature", unit: "°F" },
      { quantity: "humidity", unit: "%" },
      { quantity: "co2", unit: null },
    ];
    expect(unitProblems("°C", "", fields)).toEqual({ incompatible: ["humidity (%)"], unitless: ["co2"] });
    expect(unitProblems("°C", "temperature", fields)).toEqual({ incompatible: [], unitless: [] });
    expect(unitProblems("", "", fields)).toEqual({ incompatible: [], unitless: [] });
  });

  it("the rule editor offers the unit, warns about incompatible units and about All + any field, and saves the unit", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-rules"));
    fireEvent.click(await findId("rule-add"));
    fireEvent.input(await findId("rule-name"), { target: { value: "Everything above 8 °C" } });
    // Target All, no field: the one-limit-for-every-field warning.
    expect(byId("rule-all-fields-warning").textContent).toContain("humidity");
    fireEvent.change(byId("rule-unit"), { target: { value: "°C" } });
    // The demo's humidity (in %) cannot be compared with °C.
    expect((await findId("rule-unit-warning")).textContent).toContain("humidity (%)");
    fireEvent.click(byId("rule-save"));
    await waitFor(() => expect(m.settings.rules).toHaveLength(3));
    expect(m.settings.rules[2]).toMatchObject({ unit: "°C", target: { type: "all" }, quantity: "" });
    // The rule table shows the unit with the limit.
    expect((await findId("rules-table")).textContent).toContain("above 8 °C");
  });

  it("asks for the limits' unit where the values have one and the rule none", () => {
    const fields = [
      { quantity: "Temperature", unit: "FAHRENHEIT" },
      { quantity: "air_humidity", unit: null },
      { quantity: "counter", unit: null },
    ];
    expect(unitToConfirm("", "temperature", fields)).toEqual({
      seen: ["Temperature in °F"],
      choices: ["°F", "°C", "K"],
      suggested: "°F",
    });
    expect(unitToConfirm("", "air_humidity", fields)).toEqual({
      seen: ["air_humidity (likely %RH?)"],
      choices: ["%RH"],
      suggested: "%RH",
    });
    expect(unitToConfirm("°C", "temperature", fields)).toBeNull();
    expect(unitToConfirm("", "counter", fields)).toBeNull();
  });

  it("the rule editor's picker confirms the unit for a °F sensor and saves it", async () => {
    const s = demoState();
    s.latest.push({ sensor: "amp-1", name: "Walk-in (am.p)", source: "saveris", quantity: "Temperature", value: 46.4, unit: "°F", at_ms: Date.now() - 30_000 });
    const m = installMock(s);
    await renderApp();
    fireEvent.click(await findId("section-rules"));
    fireEvent.click(await findId("rule-add"));
    fireEvent.input(await findId("rule-name"), { target: { value: "Walk-in above 8" } });
    fireEvent.change(byId("rule-target"), { target: { value: "sensor:amp-1" } });
    const picker = await findId("rule-unit-confirm");
    expect(picker.textContent).toContain("Temperature in °F");
    expect(byId("rule-unit-confirm-_F").className).toContain("selected");
    fireEvent.click(byId("rule-unit-confirm-_C"));
    await waitFor(() => expect((byId("rule-unit") as HTMLSelectElement).value).toBe("°C"));
    expect(document.querySelector('[data-testid="rule-unit-confirm"]')).toBeNull();
    fireEvent.click(byId("rule-save"));
    await waitFor(() => expect(m.settings.rules).toHaveLength(3));
    expect(m.settings.rules[2]).toMatchObject({ unit: "°C", target: { type: "sensor", id: "amp-1" } });
  });

  it("CSV times are ISO 8601 with the offset", () => {
    const t = Date.UTC(2024, 4, 1, 12, 0, 0);
    const s = isoTime(t);
    expect(s).toMatch(/^2024-05-01T\d\d:00:00(Z|[+-]\d\d:\d\d)$/);
    expect(Date.parse(s)).toBe(t);
    const csv = alarmsToCsv([
      {
        id: 1, source: "saveris", account: "s1", device: null, sensor: "x", name: "x", condition: "Upper limit",
        severity: "alarm", value: 46.6, unit: "°F", limit: "above 8 °C", raised_ms: t, cleared_ms: null,
        acknowledged_ms: null, acknowledged_by: null,
      } as any,
    ]);
    expect(csv).toContain(`46.6,°F,above 8 °C,${s}`);
  });
});

describe("site time zone (issue 20)", () => {
  it("accepts an IANA zone or nothing, refuses anything else", async () => {
    const { validateSaveris } = await import("../src/lib/validate");
    const { newSaveris } = await import("../src/settings/Accounts");
    const a = { ...newSaveris(), username: "bob" };
    expect(validateSaveris({ ...a, site_timezone: "America/Chicago" })).toEqual({});
    expect(validateSaveris({ ...a, site_timezone: "" })).toEqual({});
    expect(validateSaveris({ ...a, site_timezone: "Mars/Olympus" }).site_timezone).toContain("time zone");
  });
});

describe("site time in History (issue 20)", () => {
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const away = local === "Asia/Tokyo" ? "America/Chicago" : "Asia/Tokyo";

  it("is shown only where the site's zone reads differently", async () => {
    const { siteTime } = await import("../src/lib/format");
    const t = Date.UTC(2024, 4, 1, 12, 0, 0);
    expect(siteTime(t, local)).toBeNull();
    expect(siteTime(t, "")).toBeNull();
    expect(siteTime(t, "Mars/Olympus")).toBeNull();
    expect(siteTime(t, away)).toMatch(new RegExp(`^(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d site time \\(${away}\\)$`));
  });

  it("the alarm table shows the site's time beside the desktop's", async () => {
    const s = demoState();
    s.settings.saveris[0].site_timezone = away;
    installMock(s);
    await renderApp();
    fireEvent.click(byId("tab-history"));
    expect((await findId("alarm-site-time-1")).textContent).toContain(`site time (${away})`);
  });

  it("without a zone in the account, the tenant's main_timezone from the names is used", async () => {
    const s = demoState();
    s.settings.saveris[0].site_timezone = "";
    const row = s.alarms.find((a) => a.id === 1)!;
    s.handlers.places = () => [
      { sensor: row.sensor ?? "", label: "Fridge 1 - Air Sensor · Kitchen", area: "Kitchen", equipment: "Fridge 1", limits: [], timezone: away },
    ];
    installMock(s);
    await renderApp();
    fireEvent.click(byId("tab-history"));
    expect((await findId("alarm-site-time-1")).textContent).toContain(`site time (${away})`);
  });
});

describe("ELEMENT unit suggestions (issue 20)", () => {
  it("a card without a unit shows the suggestion marked as one, a card with a unit none", async () => {
    const s = demoState();
    const now = Date.now();
    s.latest.push({ sensor: "dev-9", name: "Vaccine fridge", source: "element", quantity: "air_temperature", value: 5.2, unit: null, at_ms: now - 30_000 });
    installMock(s);
    await renderApp();
    fireEvent.click(byId("tab-dashboard"));
    const hint = await findId("card-unit-suggestion-dev-9");
    expect(hint.textContent).toBe("°C?");
    expect(hint.getAttribute("title")).toContain("not used until confirmed");
    expect(byId("card-value-dev-9").textContent).toBe("5.2");
    expect(document.querySelector("[data-testid='card-unit-suggestion-dev-1_temperature']")).toBeNull();
  });
});
