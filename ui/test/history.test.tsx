import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { emit } from "@tauri-apps/api/event";
import { describe, expect, it } from "vitest";
import { demoState, installMock } from "../dev/mockBackend";
import { alarmsToCsv, csvField } from "../src/lib/csv";
import { EMPTY_FILTER, reportRange } from "../src/history/HistoryPage";
import type { AlarmRow } from "../src/types";
import { byId, findId, renderApp } from "./helpers";

async function openHistory() {
  await renderApp();
  fireEvent.click(byId("tab-history"));
  await findId("alarms-table");
}

const lastFilter = (m: ReturnType<typeof installMock>) => (m.calls.filter((c) => c.cmd === "alarms").at(-1)?.args as any).filter;

describe("history", () => {
  it("shows an alarm's severity steps when it changed", async () => {
    installMock(demoState());
    await openHistory();
    const steps = await findId("alarm-steps-1");
    expect(steps.textContent).toMatch(/^warning .+ → alarm .+$/);
    expect(screen.queryByTestId("alarm-steps-2")).toBeNull();
  });
  it("lists alarms and filters them through the backend", async () => {
    const m = installMock(demoState());
    await openHistory();
    expect(screen.getAllByTestId(/^alarm-row-/)).toHaveLength(5);
    fireEvent.change(byId("filter-state"), { target: { value: "active" } });
    await waitFor(() => expect(screen.getAllByTestId(/^alarm-row-/)).toHaveLength(2));
    expect(lastFilter(m)).toMatchObject({ state: "active", severity: null, source: "", device: "" });
    fireEvent.change(byId("filter-source"), { target: { value: "element" } });
    await waitFor(() => expect(screen.getAllByTestId(/^alarm-row-/)).toHaveLength(1));
    expect(byId("alarm-row-2")).toBeTruthy();
    fireEvent.click(byId("filter-clear"));
    fireEvent.input(byId("filter-device"), { target: { value: "tag-lab" } });
    await waitFor(() => expect(lastFilter(m).device).toBe("tag-lab"), { timeout: 2000 });
    await waitFor(() => expect(screen.getAllByTestId(/^alarm-row-/).map((e) => e.dataset.alarmId)).toEqual(["5"]));
    fireEvent.input(byId("filter-from"), { target: { value: "2024-03-01T10:00" } });
    await waitFor(() => expect(lastFilter(m).from_ms).toBe(new Date("2024-03-01T10:00").getTime()));
  });

  it("acknowledges an alarm and shows who and when", async () => {
    const m = installMock(demoState());
    await openHistory();
    expect(byId("alarm-state-1").textContent).toBe("active");
    fireEvent.click(byId("ack-1"));
    fireEvent.click(await findId("ack-confirm"));
    await waitFor(() => expect(byId("alarm-ack-1").textContent).toContain("you"));
    expect(screen.queryByTestId("ack-1")).toBeNull();
    expect(screen.queryByTestId("ack-dialog")).toBeNull();
    expect(m.calls.find((c) => c.cmd === "acknowledge")?.args).toEqual({ alarmId: 1, comment: null });
  });

  it("asks for a comment on a critical alarm when the settings require one, and shows it", async () => {
    const s = demoState();
    s.settings.comment_required_critical = true;
    s.settings.display_name = "Ana Ruiz";
    const m = installMock(s);
    await openHistory();
    expect(m.alarms.find((r) => r.id === 1)?.severity).toBe("alarm");
    fireEvent.click(byId("ack-1"));
    const confirm = await findId("ack-confirm");
    expect((confirm as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(confirm);
    expect(m.calls.some((c) => c.cmd === "acknowledge")).toBe(false);
    fireEvent.input(byId("ack-comment"), { target: { value: "  door was open, closed it  " } });
    await waitFor(() => expect((byId("ack-confirm") as HTMLButtonElement).disabled).toBe(false));
    fireEvent.click(byId("ack-confirm"));
    await waitFor(() => expect(screen.queryByTestId("ack-dialog")).toBeNull());
    expect(m.calls.find((c) => c.cmd === "acknowledge")?.args).toEqual({ alarmId: 1, comment: "door was open, closed it" });
    await waitFor(() => expect(byId("alarm-ack-comment-1").textContent).toContain("door was open, closed it"));
    expect(byId("alarm-ack-user-1").textContent).toBe("Ana Ruiz (you)");
  });

  it("opens the comment dialog by itself when the window is opened on an alarm that needs one", async () => {
    const s = demoState();
    s.settings.comment_required_critical = true;
    s.page = { page: "history", alarm_id: 1 };
    installMock(s);
    await renderApp();
    const dialog = await findId("ack-dialog");
    expect(dialog.dataset.alarmId).toBe("1");
    fireEvent.click(byId("ack-cancel"));
    await waitFor(() => expect(screen.queryByTestId("ack-dialog")).toBeNull());
  });

  it("snoozes an alarm's sensor with a required reason and lists it with End snooze (issue 21)", async () => {
    const m = installMock(demoState());
    await openHistory();
    fireEvent.click(byId("alarm-snooze-1"));
    await findId("snooze-dialog");
    expect((byId("snooze-confirm") as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(byId("snooze-length-4h"));
    fireEvent.input(byId("snooze-reason"), { target: { value: " defrosting " } });
    fireEvent.click(byId("snooze-confirm"));
    await findId("snooze-list");
    const call = m.calls.find((c) => c.cmd === "snooze")?.args as any;
    expect(call.length).toEqual({ kind: "hours", hours: 4 });
    expect(call.reason).toBe("defrosting");
    expect(screen.queryByTestId("snooze-dialog")).toBeNull();
    expect(byId("alarm-snoozed-1")).toBeTruthy();
    expect(screen.queryByTestId("alarm-snooze-1")).toBeNull();
    expect(byId("snooze-list").textContent).toContain("“defrosting”");
    fireEvent.click(screen.getByTestId(/^end-snooze-/));
    await waitFor(() => expect(screen.queryByTestId("snooze-list")).toBeNull());
    expect(m.calls.some((c) => c.cmd === "end_snooze")).toBe(true);
  });

  it("re-queries when the monitor says history changed", async () => {
    const m = installMock(demoState());
    await openHistory();
    m.alarms.unshift({ ...m.alarms[0], id: 99, name: "New one" });
    await emit("monitor://push", { type: "history_changed" });
    await findId("alarm-row-99");
  });

  it("a burst of history pushes costs one re-query", async () => {
    const m = installMock(demoState());
    await openHistory();
    const before = m.calls.filter((c) => c.cmd === "alarms").length;
    for (let i = 0; i < 20; i++) await emit("monitor://push", { type: "history_changed" });
    await waitFor(() => expect(m.calls.filter((c) => c.cmd === "alarms").length).toBe(before + 1));
    await new Promise((r) => setTimeout(r, 700));
    expect(m.calls.filter((c) => c.cmd === "alarms").length).toBe(before + 1);
  });

  it("opens on the alarm the popup was about", async () => {
    const m = demoState();
    m.page = { page: "history", alarm_id: 3 };
    installMock(m);
    await renderApp();
    await waitFor(() => expect(byId("alarm-row-3").className).toContain("focus"));
  });

  // Issue 21 changed this: the export is every alarm the filter matches, streamed by the
  // monitor into a file (no row cap), not the rows the page has loaded.
  it("exports every alarm the filter matches through the monitor", async () => {
    const m = installMock(demoState());
    await openHistory();
    fireEvent.change(byId("filter-state"), { target: { value: "active" } });
    await waitFor(() => expect(screen.getAllByTestId(/^alarm-row-/)).toHaveLength(2));
    fireEvent.click(byId("export-csv"));
    await waitFor(() => expect(byId("history-saved").textContent).toBe("2 alarms saved to /home/you/Downloads/alarm-history.csv"));
    const call = m.calls.find((c) => c.cmd === "export_alarms")!;
    expect((call.args as any).filter.state).toBe("active");
  });

  it("makes the shift report of the filter's range, or of the last 12 hours", async () => {
    const m = installMock(demoState());
    await openHistory();
    fireEvent.click(byId("history-report"));
    await waitFor(() => expect(byId("history-saved").textContent).toContain("Report saved: /home/you/Downloads/report.pdf"));
    const a = m.calls.find((c) => c.cmd === "report")!.args as any;
    expect(a.toMs - a.fromMs).toBe(12 * 3_600_000);
    expect(reportRange({ ...EMPTY_FILTER, from: "2026-12-06T22:00", to: "2026-12-07T06:00" }, 0)).toEqual([
      new Date("2026-12-06T22:00").getTime(),
      new Date("2026-12-07T06:00").getTime(),
    ]);
  });

  it("shows unparsed messages as text", async () => {
    installMock(demoState());
    await openHistory();
    fireEvent.click(byId("history-unparsed"));
    const raw = await findId("unparsed-raw-1");
    expect(raw.textContent).toContain("<script>alert(1)</script>");
    expect(raw.querySelector("script")).toBeNull();
  });
});

describe("csv", () => {
  const row: AlarmRow = {
    id: 7, source: "element", account: "e1", device: "d", sensor: "s", name: 'Room "A", north',
    condition: "=HYPERLINK(1)", severity: "warning", value: -1.5, unit: "°C", limit: "< 0",
    raised_ms: 0, cleared_ms: null, acknowledged_ms: null, acknowledged_by: null, steps: [], acknowledged_user: null, acknowledged_comment: null,
  };
  it("quotes, escapes and defuses formulas", () => {
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField("line\nbreak")).toBe('"line\nbreak"');
    expect(csvField("=1+1")).toBe("'=1+1");
    expect(csvField(-2)).toBe("-2");
    expect(csvField(null)).toBe("");
    const lines = alarmsToCsv([row]).split("\r\n");
    expect(lines[1]).toContain(`"Room ""A"", north",'=HYPERLINK(1),-1.5,°C,< 0`);
    expect(lines[1].split(",")[1]).toBe("active");
  });
});
