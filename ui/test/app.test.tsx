import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { emit } from "@tauri-apps/api/event";
import { describe, expect, it } from "vitest";
import { demoState, emptyState, installMock } from "../dev/mockBackend";
import { commandError, errorText } from "../src/api";
import { byId, findId, renderApp } from "./helpers";

describe("window", () => {
  it("shows the start banner when the monitor is not running, and starts it", async () => {
    const m = installMock(emptyState());
    m.fail.get_settings = { kind: "monitor_not_running", message: "Alarm Tray is not running." };
    m.fail.status = { kind: "monitor_not_running", message: "Alarm Tray is not running." };
    await renderApp();
    expect((await findId("not-running-banner")).textContent).toContain("Alarm Tray is not running");
    delete m.fail.get_settings;
    delete m.fail.status;
    fireEvent.click(byId("start-monitor"));
    await waitFor(() => expect(screen.queryByTestId("not-running-banner")).toBeNull());
    expect(m.calls.some((c) => c.cmd === "start_monitor")).toBe(true);
    // Everything was asked again.
    await waitFor(() => expect(m.calls.filter((c) => c.cmd === "get_settings").length).toBeGreaterThanOrEqual(2));
    await findId("add-saveris");
  });

  it("shows the banner when the monitor connection drops", async () => {
    installMock(demoState());
    await renderApp();
    expect(screen.queryByTestId("not-running-banner")).toBeNull();
    await emit("monitor://disconnected", "the socket closed");
    expect((await findId("not-running-banner")).textContent).toContain("the socket closed");
  });

  it("shows Demo, the settings notice and the live tray state", async () => {
    const m = demoState();
    m.info.notice = "The settings file was unusable; defaults are used.";
    installMock(m);
    await renderApp();
    await findId("demo-badge");
    expect(byId("notice-banner").textContent).toBe("The settings file was unusable; defaults are used.");
    expect(byId("tray-state").dataset.state).toBe("alarm");
    await emit("monitor://push", { type: "status", data: { ...m.status, tray: "ok", active_alarms: 0 } });
    await waitFor(() => expect(byId("tray-state").dataset.state).toBe("ok"));
    expect(screen.queryByTestId("demo-badge")).toBeTruthy();
  });

  it("no Demo badge or notice in normal mode", async () => {
    installMock(emptyState());
    await renderApp();
    await findId("add-saveris");
    expect(screen.queryByTestId("demo-badge")).toBeNull();
    expect(screen.queryByTestId("notice-banner")).toBeNull();
  });

  it("brings the page forward on a focus push and moves between tabs by keyboard", async () => {
    installMock(demoState());
    await renderApp();
    await emit("monitor://push", { type: "focus", data: { page: "dashboard", alarm_id: null } });
    await findId("page-dashboard");
    fireEvent.keyDown(byId("tab-dashboard"), { key: "ArrowLeft" });
    await findId("page-history");
    expect(byId("tab-history").getAttribute("aria-selected")).toBe("true");
  });

  it("decides 'not running' by the error's kind, never by its sentence", async () => {
    const m = installMock(demoState());
    // A sentence that reads like "not running" but is another kind: no banner.
    m.fail.status = { kind: "storage", message: "Alarm Tray is not running out of disk, but the history is locked." };
    await renderApp();
    await findId("add-saveris");
    expect(screen.queryByTestId("not-running-banner")).toBeNull();
    // The kind alone brings it, whatever the words.
    m.fail.get_settings = { kind: "monitor_not_running", message: "Keine Verbindung." };
    fireEvent.click(byId("tab-history"));
    fireEvent.click(byId("tab-settings"));
    await findId("not-running-banner");
  });

  it("keeps a command's kind and sentence apart", () => {
    const e = commandError({ kind: "login_failed", message: "Saveris rejected the user name or password." });
    expect(e.kind).toBe("login_failed");
    expect(e.message).toBe("Saveris rejected the user name or password.");
    expect(e.notRunning).toBe(false);
    // Tauri's own rejections are plain strings (e.g. a command not granted).
    expect(commandError("Command x not allowed by ACL").kind).toBe("internal");
    expect(commandError({ kind: "monitor_not_running", message: "" }).notRunning).toBe(true);
  });

  it("turns any rejection into a sentence", () => {
    expect(errorText({ message: "Login failed." })).toBe("Login failed.");
    expect(errorText("plain")).toBe("plain");
    expect(errorText({ code: 3 })).not.toContain("{");
    expect(errorText(undefined)).toContain("failed");
  });
});
