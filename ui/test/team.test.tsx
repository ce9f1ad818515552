// Issue 26: the Team section and the account screen's warning about one Saveris login on
// several PCs.
import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import { demoState, installMock } from "../dev/mockBackend";
import { byId, findId, renderApp } from "./helpers";

describe("team", () => {
  it("warns on the account screen that one Saveris login splits the alarms while team sharing is off", async () => {
    const s = demoState();
    expect(s.settings.saveris.length).toBeGreaterThan(0);
    installMock(s);
    await renderApp();
    fireEvent.click(await findId("section-accounts"));
    expect((await findId("saveris-split-warning")).textContent).toContain("split the alarms");
  });

  it("says nothing of it when team sharing is on", async () => {
    const s = demoState();
    s.settings.team = { ...s.settings.team, enabled: true, site: "lab1" };
    installMock(s);
    await renderApp();
    fireEvent.click(await findId("section-accounts"));
    await findId("add-saveris");
    expect(document.querySelector("[data-testid='saveris-split-warning']")).toBeNull();
  });

  it("saves the team settings, stores the secrets and lists the PCs with their feeds", async () => {
    const m = installMock(demoState());
    m.handlers.team_status = () => ({
      state: "live",
      forged_dropped: 2,
      in_flight: 0,
      peers: [
        { pc: "pc-a", online: true, feeds: [["saveris:a1", "live"]], at_ms: 1 },
        { pc: "pc-b", online: false, feeds: [], at_ms: 1 },
      ],
    });
    await renderApp();
    fireEvent.click(await findId("section-team"));
    fireEvent.click(await findId("team-enabled"));
    fireEvent.input(byId("team-broker-url"), { target: { value: "mqtts://broker.lab:8883" } });
    fireEvent.input(byId("team-site"), { target: { value: "lab1" } });
    fireEvent.input(byId("team-pc"), { target: { value: "pc-a" } });
    fireEvent.input(byId("team-user"), { target: { value: "lab" } });
    fireEvent.input(await findId("team-password"), { target: { value: "pw" } });
    fireEvent.input(byId("team-site-key"), { target: { value: "key" } });
    fireEvent.click(byId("team-save"));
    await waitFor(() => expect(byId("team-save-msg").textContent).toBe("Saved."));
    expect(m.settings.team).toEqual({ enabled: true, broker_url: "mqtts://broker.lab:8883", site: "lab1", pc_name: "pc-a", user: "lab" });
    const sets = m.calls.filter((c) => c.cmd === "set_secret").map((c) => (c.args as any).key.kind);
    expect(sets).toEqual(["team_password", "team_site_key"]);
    expect((await findId("team-peer-pc-a")).textContent).toContain("saveris:a1: live");
    expect(byId("team-peer-pc-b").dataset.online).toBe("no");
    expect(byId("team-state").textContent).toContain("2 forged messages dropped");
  });

  it("refuses a site name that cannot be a topic segment", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-team"));
    fireEvent.click(await findId("team-enabled"));
    fireEvent.input(byId("team-site"), { target: { value: "lab/1" } });
    fireEvent.click(byId("team-save"));
    await waitFor(() => expect(byId("team-save-msg").textContent).toContain("Fix the fields"));
    expect(m.settings.team.enabled).toBe(false);
  });
});
