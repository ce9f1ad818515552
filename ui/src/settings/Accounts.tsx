// Accounts: Saveris and ELEMENT logins. Passwords and API keys are write-only (SecretField).
import { useState } from "preact/hooks";
import { api, errorText, updateSettings } from "../api";
import { useApp } from "../context";
import { newId } from "../lib/ids";
import { tid } from "../lib/testid";
import { validateElement, validateSaveris, type Errors } from "../lib/validate";
import type { Connected, ElementAccount, SaverisAccount, Settings } from "../types";
import { Button, Check, Choice, Field, Message } from "../widgets";
import { FeedList, feedsOf } from "./feeds";
import { SecretField } from "./SecretField";

export function saverisLabel(a: SaverisAccount): string {
  return a.custom
    ? `Saveris custom ${a.custom.ws_url} (${a.username})`
    : `Saveris ${a.region}/${a.environment} (${a.username})`;
}

export function elementLabel(a: ElementAccount): string {
  return `ELEMENT ${a.base_url}`;
}

export function newSaveris(): SaverisAccount {
  return {
    id: newId("s"),
    enabled: true,
    username: "",
    region: "eu",
    environment: "production",
    login: "data_api",
    cognito_endpoint: "",
    cognito_client_id: "",
    channels: { alarms: true, measurements: false, measurements_v2: false },
    custom: null,
    site_timezone: "",
  };
}

export function newElement(): ElementAccount {
  return { id: newId("e"), enabled: true, base_url: "https://element-iot.com", subscriptions: [], text_ping: false };
}

type Editing = { kind: "saveris"; account: SaverisAccount; isNew: boolean } | { kind: "element"; account: ElementAccount; isNew: boolean };

export function Accounts({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { status } = useApp();
  const [editing, setEditing] = useState<Editing | null>(null);
  const [confirm, setConfirm] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  // One request: the monitor removes the account and its secrets together, so a window
  // closed halfway leaves nothing behind in the keyring.
  const remove = async (id: string) => {
    setError(null);
    try {
      await api.removeAccount(id);
      setConfirm(null);
      reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const done = () => {
    setEditing(null);
    reload();
  };

  if (editing?.kind === "saveris")
    return <SaverisEditor initial={editing.account} isNew={editing.isNew} onDone={done} onCancel={() => setEditing(null)} />;
  if (editing?.kind === "element")
    return <ElementEditor initial={editing.account} isNew={editing.isNew} onDone={done} onCancel={() => setEditing(null)} />;

  const row = (kind: "saveris" | "element", id: string, label: string, enabled: boolean, edit: () => void) => (
    <li class="account" key={id} data-testid={`account-${tid(id)}`} data-account-id={id} data-kind={kind}>
      <div class="account-head">
        <strong data-testid={`account-label-${tid(id)}`}>{label}</strong>
        {!enabled && <span class="badge">disabled</span>}
        <span class="spacer" />
        {confirm === id ? (
          <>
            <span>Remove this account and its stored secrets?</span>
            <Button testid={`account-remove-confirm-${tid(id)}`} kind="danger" onClick={() => remove(id)}>
              Yes, remove
            </Button>
            <Button testid={`account-remove-cancel-${tid(id)}`} onClick={() => setConfirm(null)}>
              Keep
            </Button>
          </>
        ) : (
          <>
            <Button testid={`account-edit-${tid(id)}`} onClick={edit}>
              Edit
            </Button>
            <Button testid={`account-remove-${tid(id)}`} kind="danger" onClick={() => setConfirm(id)}>
              Remove
            </Button>
          </>
        )}
      </div>
      <FeedList feeds={feedsOf(status?.feeds, id)} />
    </li>
  );

  return (
    <section aria-labelledby="accounts-h">
      <h2 id="accounts-h">Accounts</h2>
      <Message text={error} testid="accounts-error" />
      <h3>Testo Saveris</h3>
      {settings.saveris.length === 0 ? (
        <p class="muted">No Saveris account yet.</p>
      ) : (
        <ul class="accounts">
          {settings.saveris.map((a) =>
            row("saveris", a.id, saverisLabel(a), a.enabled, () =>
              setEditing({ kind: "saveris", account: structuredClone(a), isNew: false }),
            ),
          )}
        </ul>
      )}
      {settings.saveris.length > 0 && !settings.team?.enabled && (
        // Issue 26: a Saveris channel is a queue; each extra PC with the same login takes a share.
        <p class="muted" data-testid="saveris-split-warning">
          Two PCs logged in with the same Saveris user split the alarms between them: each alarm
          reaches only one of them. Turn on team sharing on every PC (README, "For a team"), or
          give each PC its own Saveris user.
        </p>
      )}
      <Button testid="add-saveris" kind="primary" onClick={() => setEditing({ kind: "saveris", account: newSaveris(), isNew: true })}>
        Add Saveris account
      </Button>
      <h3>ELEMENT IoT</h3>
      {settings.element.length === 0 ? (
        <p class="muted">No ELEMENT account yet.</p>
      ) : (
        <ul class="accounts">
          {settings.element.map((a) =>
            row("element", a.id, elementLabel(a), a.enabled, () =>
              setEditing({ kind: "element", account: structuredClone(a), isNew: false }),
            ),
          )}
        </ul>
      )}
      <Button testid="add-element" kind="primary" onClick={() => setEditing({ kind: "element", account: newElement(), isNew: true })}>
        Add ELEMENT account
      </Button>
    </section>
  );
}

interface EditorProps<A> {
  initial: A;
  isNew: boolean;
  onDone: () => void;
  onCancel: () => void;
}

/** Test-connection state shared by both editors: a failed test is a rejected command. */
function useTester() {
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<Connected>) => {
    setBusy(true);
    setResult({ ok: true, message: "Testing…" });
    try {
      setResult({ ok: true, message: (await f()).message });
    } catch (e) {
      setResult({ ok: false, message: errorText(e) });
    } finally {
      setBusy(false);
    }
  };
  return { result, busy, run };
}

function SaverisEditor({ initial, isNew, onDone, onCancel }: EditorProps<SaverisAccount>) {
  const [a, setA] = useState<SaverisAccount>(initial);
  const [password, setPassword] = useState("");
  const [passcode, setPasscode] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [saveError, setSaveError] = useState<string | null>(null);
  const [secretError, setSecretError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [saving, setSaving] = useState(false);
  const tester = useTester();
  const custom = a.custom;

  const set = (patch: Partial<SaverisAccount>) => {
    const next = { ...a, ...patch };
    setA(next);
    if (Object.keys(errors).length) setErrors(validateSaveris(next));
  };
  const setCustom = (patch: Partial<NonNullable<SaverisAccount["custom"]>>) => {
    if (custom) set({ custom: { ...custom, ...patch } });
  };

  const check = () => {
    const e = validateSaveris(a);
    setErrors(e);
    return Object.keys(e).length === 0;
  };

  const test = () => {
    if (!check()) return;
    tester.run(() =>
      api.testConnection({ kind: "saveris", account: a, password: password === "" ? null : password, passcode: passcode === "" ? null : passcode }),
    );
  };

  const save = async () => {
    setSaveError(null);
    setSecretError(null);
    if (!check()) return;
    setSaving(true);
    const account: SaverisAccount = { ...a, username: a.username.trim() };
    try {
      await updateSettings((s) => {
        const i = s.saveris.findIndex((x) => x.id === account.id);
        if (i >= 0) s.saveris[i] = account;
        else s.saveris.push(account);
      });
    } catch (e) {
      setSaveError(errorText(e));
      setSaving(false);
      return;
    }
    try {
      if (password !== "") await api.setSecret({ kind: "saveris_password", account: account.id }, password);
      setPassword("");
      if (passcode !== "") await api.setSecret({ kind: "stomp_passcode", account: account.id }, passcode);
      setPasscode("");
    } catch (e) {
      setSecretError(errorText(e));
      setTick((t) => t + 1);
      setSaving(false);
      return;
    }
    setSaving(false);
    onDone();
  };

  return (
    <section class="editor" aria-labelledby="saveris-h" data-testid="saveris-editor">
      <h2 id="saveris-h">{isNew ? "New Saveris account" : `Saveris account ${initial.username}`}</h2>
      <Check label="Enabled" checked={a.enabled} onChange={(v) => set({ enabled: v })} testid="saveris-enabled" />
      <div class="row">
        <Field label="User name" value={a.username} onInput={(v) => set({ username: v })} testid="saveris-username" error={errors.username} autoComplete="username" />
        <SecretField
          label="Password"
          secretKey={{ kind: "saveris_password", account: a.id }}
          value={password}
          onInput={setPassword}
          testid="saveris-password"
          tick={tick}
          isNew={isNew && tick === 0}
          error={secretError ?? undefined}
        />
      </div>
      <div class="row">
        <Field
          label="Site time zone"
          value={a.site_timezone}
          onInput={(v) => set({ site_timezone: v })}
          testid="saveris-site-timezone"
          placeholder="e.g. America/Chicago"
          hint="Popups show the site's time beside yours where the zones differ; empty = none"
          error={errors.site_timezone}
        />
      </div>
      {!custom && (
        <div class="row">
          {/* The four environments Saveris offers (eu.i, eu.p, am.p, ap.p): America and
              Asia-Pacific have no integration stage. */}
          <Choice
            legend="Environment"
            value={`${a.region}.${a.environment === "integration" ? "i" : "p"}`}
            testid="saveris-environment"
            options={[
              { value: "eu.p", label: "Europe, production (eu.p)" },
              { value: "eu.i", label: "Europe, integration (eu.i)" },
              { value: "am.p", label: "Americas, production (am.p)" },
              { value: "ap.p", label: "Asia-Pacific, production (ap.p)" },
            ]}
            onChange={(v) => {
              const [region, stage] = v.split(".");
              set({
                region: region as SaverisAccount["region"],
                environment: stage === "i" ? "integration" : "production",
              });
            }}
          />
        </div>
      )}
      <div class="row">
        <Choice
          legend="Login method"
          value={a.login}
          testid="saveris-login"
          options={[
            { value: "data_api", label: "Data API" },
            { value: "cognito", label: "Cognito" },
          ]}
          onChange={(v) => set({ login: v as SaverisAccount["login"] })}
        />
        {a.login === "cognito" && (
          <Field
            label="Cognito app client id"
            value={a.cognito_client_id}
            onInput={(v) => set({ cognito_client_id: v })}
            testid="saveris-cognito-client-id"
            error={errors.cognito_client_id}
          />
        )}
      </div>
      <details class="advanced" open={!!custom || a.cognito_endpoint !== ""}>
        <summary data-testid="saveris-advanced">Advanced</summary>
        {a.login === "cognito" && (
          <Field
            label="Cognito endpoint"
            value={a.cognito_endpoint}
            onInput={(v) => set({ cognito_endpoint: v })}
            testid="saveris-cognito-endpoint"
            placeholder="https://cognito-idp.eu-central-1.amazonaws.com/"
            hint="Leave empty for AWS."
            error={errors.cognito_endpoint}
            wide
          />
        )}
        <Check
          label="Use a custom endpoint (staging, on-premise broker)"
          checked={!!custom}
          testid="saveris-custom"
          onChange={(v) =>
            set({ custom: v ? { ws_url: "", destination_pattern: "", token_url: "", stomp_login: "", data_api_url: "" } : null })
          }
        />
        {custom && (
          <div class="grid2">
            <Field label="WebSocket URL" value={custom.ws_url} onInput={(v) => setCustom({ ws_url: v })} testid="saveris-ws-url" placeholder="wss://broker.example/ws" error={errors.ws_url} />
            <Field
              label="Destination pattern"
              value={custom.destination_pattern}
              onInput={(v) => setCustom({ destination_pattern: v })}
              testid="saveris-destination-pattern"
              placeholder="/queue/{username}/{channel}"
              hint="Empty = /queue/{username}/{channel}"
              error={errors.destination_pattern}
            />
            <Field
              label="Token URL"
              value={custom.token_url}
              onInput={(v) => setCustom({ token_url: v })}
              testid="saveris-token-url"
              hint="Empty = log in with STOMP login and passcode"
              error={errors.token_url}
            />
            <Field
              label="Data API URL"
              value={custom.data_api_url ?? ""}
              onInput={(v) => setCustom({ data_api_url: v })}
              testid="saveris-data-api-url"
              hint="Names, limits and history. Empty = the token URL's server"
              error={errors.data_api_url}
            />
            <Field label="STOMP login" value={custom.stomp_login} onInput={(v) => setCustom({ stomp_login: v })} testid="saveris-stomp-login" />
            <SecretField
              label="STOMP passcode"
              secretKey={{ kind: "stomp_passcode", account: a.id }}
              value={passcode}
              onInput={setPasscode}
              testid="saveris-stomp-passcode"
              tick={tick}
              isNew={isNew && tick === 0}
            />
          </div>
        )}
      </details>
      <div class="actions">
        <Button testid="saveris-test" onClick={test} disabled={tester.busy}>
          Test connection
        </Button>
        <span class="spacer" />
        <Button testid="saveris-cancel" onClick={onCancel}>
          Cancel
        </Button>
        <Button testid="saveris-save" kind="primary" onClick={save} disabled={saving}>
          Save
        </Button>
      </div>
      {tester.result && <Message ok={tester.result.ok} text={tester.result.message} testid="saveris-test-result" />}
      <Message text={saveError} testid="saveris-save-error" />
      {Object.keys(errors).length > 0 && <Message text="Fix the fields marked above, then save." testid="saveris-invalid" />}
    </section>
  );
}

function ElementEditor({ initial, isNew, onDone, onCancel }: EditorProps<ElementAccount>) {
  const [a, setA] = useState<ElementAccount>(initial);
  const [apiKey, setApiKey] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [saveError, setSaveError] = useState<string | null>(null);
  const [secretError, setSecretError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [saving, setSaving] = useState(false);
  const tester = useTester();

  const set = (patch: Partial<ElementAccount>) => {
    const next = { ...a, ...patch };
    setA(next);
    if (Object.keys(errors).length) setErrors(validateElement(next));
  };
  const check = () => {
    const e = validateElement(a);
    setErrors(e);
    return Object.keys(e).length === 0;
  };
  const test = () => {
    if (!check()) return;
    tester.run(() => api.testConnection({ kind: "element", account: a, api_key: apiKey === "" ? null : apiKey }));
  };
  const save = async () => {
    setSaveError(null);
    setSecretError(null);
    if (!check()) return;
    setSaving(true);
    const account: ElementAccount = { ...a, base_url: a.base_url.trim().replace(/\/+$/, "") };
    try {
      await updateSettings((s) => {
        const i = s.element.findIndex((x) => x.id === account.id);
        // Subscriptions are edited under "Channels & devices": keep what is stored there.
        if (i >= 0) s.element[i] = { ...account, subscriptions: s.element[i].subscriptions };
        else s.element.push(account);
      });
    } catch (e) {
      setSaveError(errorText(e));
      setSaving(false);
      return;
    }
    try {
      if (apiKey !== "") await api.setSecret({ kind: "element_api_key", account: account.id }, apiKey);
      setApiKey("");
    } catch (e) {
      setSecretError(errorText(e));
      setTick((t) => t + 1);
      setSaving(false);
      return;
    }
    setSaving(false);
    onDone();
  };

  return (
    <section class="editor" aria-labelledby="element-h" data-testid="element-editor">
      <h2 id="element-h">{isNew ? "New ELEMENT account" : `ELEMENT account ${initial.base_url}`}</h2>
      <Check label="Enabled" checked={a.enabled} onChange={(v) => set({ enabled: v })} testid="element-enabled" />
      <div class="row">
        <Field label="Instance URL" value={a.base_url} onInput={(v) => set({ base_url: v })} testid="element-base-url" error={errors.base_url} inputMode="url" />
        <SecretField
          label="API key"
          secretKey={{ kind: "element_api_key", account: a.id }}
          value={apiKey}
          onInput={setApiKey}
          testid="element-api-key"
          tick={tick}
          isNew={isNew && tick === 0}
          error={secretError ?? undefined}
        />
      </div>
      <details class="advanced">
        <summary data-testid="element-advanced">Advanced</summary>
        <Check label='Also send the text "ping" to keep the socket open' checked={a.text_ping} onChange={(v) => set({ text_ping: v })} testid="element-text-ping" />
      </details>
      <p class="muted">Choose devices, tags or streams under “Channels &amp; devices” after saving.</p>
      <div class="actions">
        <Button testid="element-test" onClick={test} disabled={tester.busy}>
          Test connection
        </Button>
        <span class="spacer" />
        <Button testid="element-cancel" onClick={onCancel}>
          Cancel
        </Button>
        <Button testid="element-save" kind="primary" onClick={save} disabled={saving}>
          Save
        </Button>
      </div>
      {tester.result && <Message ok={tester.result.ok} text={tester.result.message} testid="element-test-result" />}
      <Message text={saveError} testid="element-save-error" />
    </section>
  );
}
