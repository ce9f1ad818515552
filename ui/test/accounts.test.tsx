import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import { demoState, emptyState, installMock } from "../dev/mockBackend";
import { byId, findId, renderApp } from "./helpers";

describe("accounts and write-only secrets", () => {
  it("stores a new account's password in the keyring, clears it and never shows it", async () => {
    const m = installMock(emptyState());
    await renderApp();
    fireEvent.click(await findId("add-saveris"));
    fireEvent.input(await findId("saveris-username"), { target: { value: "alice" } });
    expect(screen.getByTestId("saveris-password-missing")).toBeTruthy();
    fireEvent.input(byId("saveris-password"), { target: { value: "s3cret-pass" } });
    fireEvent.click(byId("saveris-save"));
    await waitFor(() => expect(m.settings.saveris).toHaveLength(1));
    const id = m.settings.saveris[0].id;
    await waitFor(() => expect(m.secretWrites).toEqual([{ key: `saveris_password:${id}`, value: "s3cret-pass" }]));
    // Nothing secret in the settings object.
    expect(JSON.stringify(m.settings)).not.toContain("s3cret-pass");
    // Back on the list; open the account again: the field says stored, holds nothing.
    fireEvent.click(await findId(`account-edit-${id}`));
    expect((await findId("saveris-password-stored")).textContent).toContain("stored in the system keyring");
    expect((byId("saveris-password") as HTMLInputElement).value).toBe("");
    expect(document.body.innerHTML).not.toContain("s3cret-pass");
    // Remove deletes it from the keyring.
    fireEvent.click(byId("saveris-password-remove"));
    await findId("saveris-password-missing");
    expect(m.secrets.has(`saveris_password:${id}`)).toBe(false);
  });

  it("validates fields next to them and saves nothing", async () => {
    const m = installMock(emptyState());
    await renderApp();
    fireEvent.click(await findId("add-saveris"));
    fireEvent.click(await findId("saveris-login-cognito"));
    fireEvent.click(byId("saveris-custom"));
    fireEvent.input(byId("saveris-ws-url"), { target: { value: "http://127.0.0.1:15674/ws" } });
    fireEvent.click(byId("saveris-save"));
    expect((await findId("saveris-username-error")).textContent).toContain("user name");
    expect(byId("saveris-cognito-client-id-error").textContent).toContain("client id");
    expect(byId("saveris-ws-url-error").textContent).toContain("ws://");
    expect(m.calls.some((c) => c.cmd === "save_settings")).toBe(false);
  });

  it("saves a custom-endpoint account with its STOMP passcode", async () => {
    const m = installMock(emptyState());
    await renderApp();
    fireEvent.click(await findId("add-saveris"));
    fireEvent.input(await findId("saveris-username"), { target: { value: "alice" } });
    fireEvent.click(byId("saveris-custom"));
    fireEvent.input(byId("saveris-ws-url"), { target: { value: "ws://127.0.0.1:15674/ws" } });
    fireEvent.input(byId("saveris-destination-pattern"), { target: { value: "/queue/{username}.{channel}" } });
    fireEvent.input(byId("saveris-stomp-login"), { target: { value: "guest" } });
    fireEvent.input(byId("saveris-stomp-passcode"), { target: { value: "guestpw" } });
    fireEvent.click(byId("saveris-save"));
    await waitFor(() => expect(m.secretWrites).toHaveLength(1));
    const a = m.settings.saveris[0];
    expect(a.custom).toEqual({ ws_url: "ws://127.0.0.1:15674/ws", destination_pattern: "/queue/{username}.{channel}", token_url: "", stomp_login: "guest", data_api_url: "" });
    expect(a.channels.alarms).toBe(true);
    expect(m.secretWrites[0]).toEqual({ key: `stomp_passcode:${a.id}`, value: "guestpw" });
  });

  it("tests the connection and shows the login error in words", async () => {
    const m = installMock(emptyState());
    await renderApp();
    fireEvent.click(await findId("add-saveris"));
    fireEvent.input(await findId("saveris-username"), { target: { value: "alice" } });
    fireEvent.input(byId("saveris-password"), { target: { value: "wrong" } });
    fireEvent.click(byId("saveris-test"));
    await waitFor(() => expect(byId("saveris-test-result").textContent).toBe("Login failed: the user name or password is wrong."));
    const call = m.calls.find((c) => c.cmd === "test_connection");
    expect((call?.args as any).test.kind).toBe("saveris");
    expect((call?.args as any).test.password).toBe("wrong");
    expect(m.calls.some((c) => c.cmd === "save_settings")).toBe(false);
  });

  it("shows a rejected test as its sentence, not a dump", async () => {
    const m = installMock(demoState());
    m.fail.test_connection = { kind: "network", message: "Could not reach element-iot.com: connection refused." };
    await renderApp();
    fireEvent.click(await findId("account-edit-e1"));
    expect((await findId("element-api-key-stored")).textContent).toContain("stored in the system keyring");
    fireEvent.click(byId("element-test"));
    await waitFor(() => expect(byId("element-test-result").textContent).toBe("Could not reach element-iot.com: connection refused."));
    // No stored key sent back: null means "use the stored one".
    expect((m.calls.find((c) => c.cmd === "test_connection")?.args as any).test.api_key).toBeNull();
  });

  it("removing an account deletes its secrets too, in one request to the monitor", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("account-remove-s1"));
    fireEvent.click(await findId("account-remove-confirm-s1"));
    await waitFor(() => expect(m.settings.saveris).toHaveLength(0));
    await waitFor(() => expect(m.secrets.has("saveris_password:s1")).toBe(false));
    expect(m.secrets.has("element_api_key:e1")).toBe(true);
    // The window does not delete secrets one by one (a window closed halfway would orphan them).
    expect(m.calls.filter((c) => c.cmd === "remove_account").map((c) => c.args)).toEqual([{ accountId: "s1" }]);
    expect(m.calls.some((c) => c.cmd === "delete_secret" || c.cmd === "save_settings")).toBe(false);
    await waitFor(() => expect(screen.queryByTestId("account-s1")).toBeNull());
  });

  it("shows why a removal failed and keeps the account", async () => {
    const m = installMock(demoState());
    m.fail.remove_account = { kind: "keyring", message: "the system keyring is not available: locked" };
    await renderApp();
    fireEvent.click(await findId("account-remove-e1"));
    fireEvent.click(await findId("account-remove-confirm-e1"));
    await waitFor(() => expect(byId("accounts-error").textContent).toBe("the system keyring is not available: locked"));
    expect(m.settings.element).toHaveLength(1);
    expect(screen.queryByTestId("not-running-banner")).toBeNull();
  });
});
