// Escalation (issue 21): where critical alarms nobody acknowledged go, and after how long.
// Tokens go to the keyring through SecretField; the window never reads them back.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, updateSettings } from "../api";
import { useApp } from "../context";
import { newId } from "../lib/ids";
import type { Settings, Webhook, WebhookKind } from "../types";
import { Button, Check, Field, Message, Select } from "../widgets";
import { FeedList } from "./feeds";
import { SecretField } from "./SecretField";

const KINDS: { value: WebhookKind; label: string }[] = [
  { value: "json", label: "Plain JSON" },
  { value: "ntfy", label: "ntfy (Title, Priority, Tags headers)" },
  { value: "slack", label: "Slack / Teams ({\"text\": …})" },
];

/** What is wrong with a webhook as typed, by field. */
export function webhookErrors(w: Webhook): { name?: string; url?: string } {
  const e: { name?: string; url?: string } = {};
  if (!w.name.trim()) e.name = "Give it a name";
  try {
    const u = new URL(w.url.replaceAll("{token}", "token"));
    if (u.protocol !== "http:" && u.protocol !== "https:") e.url = "An http:// or https:// URL";
  } catch {
    e.url = "An http:// or https:// URL";
  }
  return e;
}

/** Minutes as typed: a whole number from 1 to 1440, or null. */
export function parseAfterMins(text: string): number | null {
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 1 && n <= 1440 ? n : null;
}

function WebhookCard({ hook, isNew, onSaved, onCancel }: { hook: Webhook; isNew: boolean; onSaved: () => void; onCancel: () => void }) {
  const [w, setW] = useState<Webhook>(hook);
  const [token, setToken] = useState("");
  const [tick, setTick] = useState(0);
  const [touched, setTouched] = useState(false);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const errors = touched ? webhookErrors(w) : {};
  const t = `webhook-${w.id}`;
  const set = (patch: Partial<Webhook>) => {
    setW({ ...w, ...patch });
    setTouched(true);
    setMsg(null);
  };

  const save = async () => {
    setTouched(true);
    if (Object.keys(webhookErrors(w)).length) {
      setMsg({ ok: false, text: "Fix the fields marked above, then save." });
      return;
    }
    setBusy(true);
    try {
      await updateSettings((s) => {
        const i = s.escalation.webhooks.findIndex((x) => x.id === w.id);
        if (i >= 0) s.escalation.webhooks[i] = w;
        else s.escalation.webhooks.push(w);
      });
      if (token) {
        await api.setSecret({ kind: "webhook_token", account: w.id }, token);
        setToken("");
        setTick(tick + 1);
      }
      setMsg({ ok: true, text: "Saved." });
      onSaved();
    } catch (e) {
      setMsg({ ok: false, text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  const test = async () => {
    setTouched(true);
    if (Object.keys(webhookErrors(w)).length) return;
    setBusy(true);
    setMsg(null);
    try {
      const r = await api.testWebhook(w, token || null);
      setMsg({ ok: true, text: r.message });
    } catch (e) {
      setMsg({ ok: false, text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    try {
      await updateSettings((s) => {
        s.escalation.webhooks = s.escalation.webhooks.filter((x) => x.id !== w.id);
      });
      await api.deleteSecret({ kind: "webhook_token", account: w.id });
      onSaved();
    } catch (e) {
      setMsg({ ok: false, text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="card" data-testid={t}>
      <div class="row">
        <Field label="Name" value={w.name} onInput={(v) => set({ name: v })} testid={`${t}-name`} error={errors.name} />
        <Select label="Body" value={w.kind} options={KINDS} onChange={(v) => set({ kind: v as WebhookKind })} testid={`${t}-kind`} />
        <Check label="On" checked={w.enabled} onChange={(v) => set({ enabled: v })} testid={`${t}-enabled`} />
      </div>
      <Field
        label="URL"
        value={w.url}
        onInput={(v) => set({ url: v })}
        testid={`${t}-url`}
        inputMode="url"
        wide
        placeholder="https://ntfy.example.org/fridges"
        hint="{token} in the URL is replaced by the token (Slack and Teams keep it in the path); otherwise the token is sent as a Bearer header."
        error={errors.url}
      />
      <SecretField label="Token (optional)" secretKey={{ kind: "webhook_token", account: w.id }} value={token} onInput={setToken} testid={`${t}-token`} tick={tick} isNew={isNew} />
      <div class="actions">
        <Button testid={`${t}-test`} disabled={busy} onClick={test}>
          Test
        </Button>
        {!isNew && (
          <Button testid={`${t}-remove`} kind="danger" disabled={busy} onClick={remove}>
            Remove
          </Button>
        )}
        {isNew && (
          <Button testid={`${t}-cancel`} disabled={busy} onClick={onCancel}>
            Cancel
          </Button>
        )}
        <span class="spacer" />
        <Button testid={`${t}-save`} kind="primary" disabled={busy} onClick={save}>
          Save
        </Button>
      </div>
      {msg && <Message ok={msg.ok} text={msg.text} testid={`${t}-result`} />}
    </div>
  );
}

export function EscalationSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { status } = useApp();
  const [after, setAfter] = useState(String(settings.escalation.after_mins));
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [adding, setAdding] = useState<Webhook | null>(null);
  useEffect(() => setAfter(String(settings.escalation.after_mins)), [settings]);
  const afterError = parseAfterMins(after) === null ? "A whole number of minutes, 1 to 1440" : undefined;

  const saveAfter = async () => {
    const n = parseAfterMins(after);
    if (n === null) return;
    try {
      await updateSettings((s) => {
        s.escalation.after_mins = n;
      });
      setMsg({ ok: true, text: "Saved." });
      reload();
    } catch (e) {
      setMsg({ ok: false, text: errorText(e) });
    }
  };

  const failing = (status?.feeds ?? []).filter((f) => f.feed.startsWith("webhook:"));
  return (
    <section aria-labelledby="escalation-h">
      <h2 id="escalation-h">Escalation</h2>
      <div class="card">
        <p class="hint">
          A critical alarm that nobody acknowledges is sent once to every webhook below. Failed deliveries are tried again (30 s, doubling to 10 min, 10 attempts); each one is kept in
          the history and the audit trail.
        </p>
        <div class="row">
          <Field label="Send after (min) unacknowledged" value={after} onInput={setAfter} testid="escalation-after" inputMode="numeric" error={afterError} />
          <div class="actions">
            <Button testid="escalation-after-save" kind="primary" disabled={!!afterError} onClick={saveAfter}>
              Save
            </Button>
          </div>
        </div>
        {msg && <Message ok={msg.ok} text={msg.text} testid="escalation-after-result" />}
        {failing.length > 0 && <FeedList feeds={failing} empty="" />}
      </div>
      {settings.escalation.webhooks.map((w) => (
        <WebhookCard key={w.id} hook={w} isNew={false} onSaved={reload} onCancel={() => {}} />
      ))}
      {adding ? (
        <WebhookCard
          key={adding.id}
          hook={adding}
          isNew={true}
          onSaved={() => {
            setAdding(null);
            reload();
          }}
          onCancel={() => setAdding(null)}
        />
      ) : (
        <div class="actions">
          <Button testid="webhook-add" kind="primary" onClick={() => setAdding({ id: newId("w"), name: "", kind: "ntfy", url: "", enabled: true })}>
            Add webhook
          </Button>
        </div>
      )}
    </section>
  );
}
