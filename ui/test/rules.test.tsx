import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
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
