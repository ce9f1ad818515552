import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import { demoState, installMock } from "../dev/mockBackend";
import { parseAfterMins, webhookErrors } from "../src/settings/Escalation";
import { byId, findId, renderApp } from "./helpers";

describe("escalation settings", () => {
  it("checks the URL and the minutes as typed", () => {
    const ok = { id: "w1", name: "Phones", kind: "ntfy" as const, url: "https://ntfy.example.org/fridges", enabled: true };
    expect(webhookErrors(ok)).toEqual({});
    expect(webhookErrors({ ...ok, url: "https://hooks.slack.com/services/{token}" })).toEqual({});
    expect(webhookErrors({ ...ok, url: "ftp://x" }).url).toBeTruthy();
    expect(webhookErrors({ ...ok, name: " " }).name).toBeTruthy();
    expect(parseAfterMins("15")).toBe(15);
    expect(parseAfterMins("0")).toBeNull();
    expect(parseAfterMins("1.5")).toBeNull();
  });

  it("adds a webhook, stores its token in the keyring, tests it and sets the minutes", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-escalation"));
    expect((await findId("escalation-after") as HTMLInputElement).value).toBe("15");
    fireEvent.click(byId("webhook-add"));
    const card = document.querySelector("[data-testid^='webhook-w']") as HTMLElement;
    const t = card.dataset.testid!;
    fireEvent.input(byId(`${t}-name`), { target: { value: "Lab phones" } });
    fireEvent.input(byId(`${t}-url`), { target: { value: "https://ntfy.example.org/fridges" } });
    fireEvent.input(byId(`${t}-token`), { target: { value: "tk_secret" } });
    fireEvent.click(byId(`${t}-test`));
    await waitFor(() => expect(byId(`${t}-result`).textContent).toBe("The webhook took the test message."));
    const test = m.calls.find((c) => c.cmd === "test_webhook")!;
    expect((test.args as any).token).toBe("tk_secret");
    fireEvent.click(byId(`${t}-save`));
    await waitFor(() => expect(m.settings.escalation.webhooks.length).toBe(1));
    const w = m.settings.escalation.webhooks[0];
    expect(w).toMatchObject({ name: "Lab phones", kind: "ntfy", url: "https://ntfy.example.org/fridges", enabled: true });
    // The token went to the keyring, not into the settings.
    expect(JSON.stringify(m.settings)).not.toContain("tk_secret");
    expect(m.secrets.has(`webhook_token:${w.id}`)).toBe(true);

    fireEvent.input(byId("escalation-after"), { target: { value: "30" } });
    fireEvent.click(byId("escalation-after-save"));
    await waitFor(() => expect(m.settings.escalation.after_mins).toBe(30));
  });

  it("shows a failing webhook from the status", async () => {
    const s = demoState();
    s.status = {
      ...s.status,
      feeds: [
        ...s.status.feeds,
        {
          feed: "webhook:w1",
          label: "Webhook Lab phones",
          state: "stopped",
          message: "escalations are not getting through",
          last_message_at: null,
          live_since: null,
          last_error: "the webhook answered HTTP 500",
          refused: [],
        } as any,
      ],
    };
    installMock(s);
    await renderApp();
    fireEvent.click(await findId("section-escalation"));
    await waitFor(() => expect(byId("feed-error-webhook_w1").textContent).toContain("HTTP 500"));
  });
});
