import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import { demoState, installMock } from "../dev/mockBackend";
import { byId, findId, renderApp } from "./helpers";

describe("settings", () => {
  it("loads and shows version, log dir, feeds and the general settings", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    expect((await findId("app-version")).textContent).toBe("0.1.0");
    expect(byId("log-dir").textContent).toBe(m.info.log_dir);
    expect((byId("retention-days") as HTMLInputElement).value).toBe("90");
    expect((byId("feed-silence") as HTMLInputElement).value).toBe("5");
    // A feed's state and last error are shown in words.
    expect(byId("feed-state-element_e1_sub2").textContent).toBe("waiting 10 min (rate limit)");
    expect(byId("feed-error-element_e1_sub2").textContent).toContain("429 Too Many Requests");
  });

  it("shows that the audit trail is intact, with its record count", async () => {
    installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    await waitFor(() => expect(byId("audit-status").textContent).toBe("audit trail intact (12,345 records)"));
    expect(byId("audit-status").dataset.ok).toBe("true");
  });

  it("shows the first record of the audit trail that is not intact", async () => {
    const s = demoState();
    s.audit = { intact: false, records: 6, first_bad: 7, problem: "record 7 was changed or moved (its content does not match its hash)", head: "" };
    installMock(s);
    await renderApp();
    fireEvent.click(await findId("section-general"));
    await waitFor(() => expect(byId("audit-status").textContent).toContain("NOT intact: record 7 was changed"));
    expect(byId("audit-status").dataset.ok).toBe("false");
  });

  it("saves the acknowledgement settings: display name, required comment, audit retention", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    expect((await findId("audit-retention-days") as HTMLInputElement).value).toBe("730");
    fireEvent.input(byId("display-name"), { target: { value: " Ana Ruiz " } });
    fireEvent.click(byId("comment-required"));
    fireEvent.input(byId("audit-retention-days"), { target: { value: "3650" } });
    fireEvent.click(byId("general-save"));
    await findId("general-save-result");
    expect(byId("general-save-result").textContent).toBe("Saved.");
    expect(m.settings.display_name).toBe("Ana Ruiz");
    expect(m.settings.comment_required_critical).toBe(true);
    expect(m.settings.audit_retention_days).toBe(3650);
  });

  it("saves sound and repeat per severity (issue 21)", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    expect(((await findId("critical-repeat-mins")) as HTMLInputElement).value).toBe("5");
    expect((byId("critical-sound") as HTMLSelectElement).value).toBe("alarm");
    fireEvent.input(byId("critical-repeat-mins"), { target: { value: "2" } });
    fireEvent.change(byId("warning-sound"), { target: { value: "chime" } });
    fireEvent.input(byId("warning-repeat-mins"), { target: { value: "15" } });
    fireEvent.change(byId("critical-sound"), { target: { value: "" } });
    fireEvent.click(byId("general-save"));
    await findId("general-save-result");
    expect(m.settings.notifications.critical).toEqual({ sound: null, repeat_mins: 2 });
    expect(m.settings.notifications.warning).toEqual({ sound: "chime", repeat_mins: 15 });
    expect(m.settings.notifications.sound).toBe(true);
    fireEvent.click(byId("sound-on"));
    fireEvent.click(byId("general-save"));
    await waitFor(() => expect(m.settings.notifications.sound).toBe(false));
  });

  it("saves edited general settings to the backend", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    fireEvent.input(await findId("retention-days"), { target: { value: "30" } });
    fireEvent.input(byId("quiet-start"), { target: { value: "21:30" } });
    fireEvent.click(byId("quiet-enabled"));
    fireEvent.click(byId("general-save"));
    await findId("general-save-result");
    expect(byId("general-save-result").textContent).toBe("Saved.");
    expect(m.settings.retention_days).toBe(30);
    expect(m.settings.notifications.quiet_hours).toEqual({ enabled: true, start: "21:30", end: "07:00", allow_critical: true });
    // Everything else is kept as it was.
    expect(m.settings.saveris.map((a) => a.id)).toEqual(["s1"]);
    expect(m.settings.rules).toHaveLength(2);
  });

  it("refuses bad input inline and sends nothing", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    fireEvent.input(await findId("retention-days"), { target: { value: "0" } });
    fireEvent.input(byId("quiet-end"), { target: { value: "25:00" } });
    fireEvent.click(byId("general-save"));
    expect((await findId("retention-days-error")).textContent).toContain("at least 1 day");
    expect(byId("quiet-end-error").textContent).toContain("HH:MM");
    expect(m.calls.filter((c) => c.cmd === "save_settings")).toHaveLength(0);
    expect(m.settings.retention_days).toBe(90);
  });

  it("shows the backend's sentence when it rejects a save", async () => {
    const m = installMock(demoState());
    m.fail.save_settings = { kind: "storage", message: "The settings could not be written: disk full." };
    await renderApp();
    fireEvent.click(await findId("section-general"));
    fireEvent.input(await findId("retention-days"), { target: { value: "31" } });
    fireEvent.click(byId("general-save"));
    expect((await findId("general-save-result")).textContent).toBe("The settings could not be written: disk full.");
  });

  it("pauses and sends a test notification", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    fireEvent.click(await findId("pause-toggle"));
    await waitFor(() => expect(m.calls.some((c) => c.cmd === "set_paused" && (c.args as any).paused === true)).toBe(true));
    await waitFor(() => expect((byId("pause-toggle") as HTMLInputElement).checked).toBe(true));
    fireEvent.click(byId("send-test-notification"));
    expect((await findId("test-notification-result")).textContent).toContain("test notification was sent");
    expect(m.calls.some((c) => c.cmd === "send_test_notification")).toBe(true);
  });

  it("toggles a Saveris channel and renames a sensor", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-channels"));
    const v2 = (await findId("channel-s1-measurements_v2")) as HTMLInputElement;
    expect(v2.checked).toBe(false);
    fireEvent.click(v2);
    await waitFor(() => expect(m.settings.saveris[0].channels.measurements_v2).toBe(true));
    const name = (await findId("sensor-name-dev-1_temperature")) as HTMLInputElement;
    fireEvent.input(name, { target: { value: "Fridge 1" } });
    fireEvent.click(byId("sensor-save-dev-1_temperature"));
    await waitFor(() => expect(m.settings.sensors["dev-1:temperature"]).toEqual({ name: "Fridge 1", notify: true, main_field: "" }));
    fireEvent.click(byId("sensor-notify-dev-1_temperature"));
    await waitFor(() => expect(m.settings.sensors["dev-1:temperature"]).toEqual({ name: "Fridge 1", notify: false, main_field: "" }));
  });

  it("adds an ELEMENT subscription from the discovered devices", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-channels"));
    fireEvent.click(await findId("sub-add-e1"));
    const device = (await screen.findByRole("option", { name: "Lab freezer (dev-3)" })).closest("select") as HTMLSelectElement;
    fireEvent.change(device, { target: { value: "dev-3" } });
    // preload=device is on for a new subscription (issue 20): names come with the readings.
    expect((byId("sub-preload-device") as HTMLInputElement).checked).toBe(true);
    fireEvent.click(byId("sub-save"));
    await waitFor(() => expect(m.settings.element[0].subscriptions).toHaveLength(3));
    const sub = m.settings.element[0].subscriptions[2];
    expect(sub.scope).toEqual({ type: "device", id: "dev-3" });
    expect(sub.kind).toBe("readings");
    expect(sub.preload).toEqual(["device"]);
  });
});

describe("ELEMENT preloads", () => {
  it("offers per socket kind exactly what the vendor lists", async () => {
    installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-channels"));
    fireEvent.click(await findId("sub-add-e1"));
    const offered = () => [...document.querySelectorAll("[data-testid^='sub-preload-']")].map((e) => e.getAttribute("data-testid"));
    await findId("sub-preload-device");
    expect(offered()).toEqual(["sub-preload-device", "sub-preload-device-fields", "sub-preload-device-interfaces", "sub-preload-packet", "sub-preload-packet-interface"]);
    fireEvent.click(byId("sub-preload-packet"));
    fireEvent.click(byId("sub-kind-packets"));
    await waitFor(() => expect(offered()).toEqual(["sub-preload-device", "sub-preload-device-fields", "sub-preload-device-interfaces"]));
  });
});
