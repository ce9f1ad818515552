// Team (issue 26): sharing alarms with the site's other PCs over its MQTT broker. The broker
// password and the site key are write-only (SecretField, in the keyring); the list of PCs
// comes from their retained presence messages.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, updateSettings } from "../api";
import type { Settings, TeamSettings, TeamStatus } from "../types";
import { Button, Check, Field, Message } from "../widgets";
import { SecretField } from "./SecretField";

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function validate(t: TeamSettings): Record<string, string> {
  const e: Record<string, string> = {};
  if (!/^mqtts?:\/\/[^/@\s]+/.test(t.broker_url.trim())) e.broker_url = "mqtt://host:1883 or mqtts://host:8883";
  if (t.enabled && !NAME.test(t.site.trim())) e.site = "Letters, digits, '-' and '_' only";
  if (t.pc_name.trim() && !NAME.test(t.pc_name.trim())) e.pc_name = "Letters, digits, '-' and '_' only";
  return e;
}

export function TeamSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const [t, setT] = useState<TeamSettings>(settings.team);
  const [password, setPassword] = useState("");
  const [siteKey, setSiteKey] = useState("");
  const [tick, setTick] = useState(0);
  const [msg, setMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [testMsg, setTestMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [status, setStatus] = useState<TeamStatus | null>(null);
  useEffect(() => setT(settings.team), [settings]);

  // The list of PCs follows the broker's presence messages.
  useEffect(() => {
    let live = true;
    const load = () =>
      api
        .teamStatus()
        .then((s) => live && setStatus(s))
        .catch(() => live && setStatus(null));
    load();
    const timer = setInterval(load, 2000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);

  const errors = validate(t);
  const set = (patch: Partial<TeamSettings>) => {
    setT({ ...t, ...patch });
    setMsg(null);
  };
  const site = t.site.trim();

  const storeSecrets = async () => {
    if (password) await api.setSecret({ kind: "team_password", account: site }, password);
    if (siteKey) await api.setSecret({ kind: "team_site_key", account: site }, siteKey);
    setPassword("");
    setSiteKey("");
    setTick(tick + 1);
  };

  const save = async () => {
    if (Object.keys(errors).length) {
      setMsg({ ok: false, text: "Fix the fields marked above, then save." });
      return;
    }
    try {
      if (site) await storeSecrets();
      await updateSettings((s) => {
        s.team = { ...t, broker_url: t.broker_url.trim(), site, pc_name: t.pc_name.trim(), user: t.user.trim() };
      });
      setMsg({ ok: true, text: "Saved." });
      reload();
    } catch (e) {
      setMsg({ ok: false, text: errorText(e) });
    }
  };

  const test = async () => {
    setTestMsg(null);
    try {
      const r = await api.testConnection({
        kind: "team",
        team: t,
        password: password || null,
        site_key: siteKey || null,
      });
      setTestMsg({ ok: true, text: r.message });
    } catch (e) {
      setTestMsg({ ok: false, text: errorText(e) });
    }
  };

  return (
    <section aria-labelledby="team-h">
      <h2 id="team-h">Team</h2>
      <p class="muted">
        Share alarms with the other PCs of this site through its MQTT broker: every PC sees every alarm once, and an
        acknowledgement on one PC closes it on all. Every PC needs the same site name and site key.
      </p>
      <Check label="Share alarms with the team" checked={t.enabled} onChange={(v) => set({ enabled: v })} testid="team-enabled" />
      <Field label="Broker URL" value={t.broker_url} onInput={(v) => set({ broker_url: v })} testid="team-broker-url" error={errors.broker_url} inputMode="url" wide />
      <Field label="Site name" value={t.site} onInput={(v) => set({ site: v })} testid="team-site" error={errors.site} hint="The topic prefix alarm-tray/<site>/…" />
      <Field label="This PC's name" value={t.pc_name} onInput={(v) => set({ pc_name: v })} testid="team-pc" error={errors.pc_name} placeholder="the host name" />
      <Field label="Broker user" value={t.user} onInput={(v) => set({ user: v })} testid="team-user" autoComplete="off" />
      {site && NAME.test(site) ? (
        <>
          <SecretField label="Broker password" secretKey={{ kind: "team_password", account: site }} value={password} onInput={setPassword} testid="team-password" tick={tick} />
          <SecretField label="Site key" secretKey={{ kind: "team_site_key", account: site }} value={siteKey} onInput={setSiteKey} testid="team-site-key" tick={tick} />
        </>
      ) : (
        <p class="muted">Enter the site name to set the broker password and the site key.</p>
      )}
      <div class="actions">
        <Button testid="team-save" kind="primary" onClick={save}>
          Save
        </Button>
        <Button testid="team-test" onClick={test}>
          Test connection
        </Button>
      </div>
      <Message ok={msg?.ok} text={msg?.text ?? null} testid="team-save-msg" />
      <Message ok={testMsg?.ok} text={testMsg?.text ?? null} testid="team-test-msg" />
      <h3>PCs watching</h3>
      {!status ? (
        <p class="muted" data-testid="team-off">
          Team sharing is off.
        </p>
      ) : (
        <>
          <p data-testid="team-state">
            Broker: {status.state}
            {status.forged_dropped > 0 && ` · ${status.forged_dropped} forged messages dropped`}
          </p>
          <ul class="accounts" data-testid="team-peers">
            {status.peers.map((p) => (
              <li key={p.pc} data-testid={`team-peer-${p.pc}`} data-online={p.online ? "yes" : "no"}>
                <strong>{p.pc}</strong> {p.online ? "online" : "offline"}
                {p.feeds.length > 0 && " · " + p.feeds.map(([f, s]) => `${f}: ${s}`).join(", ")}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
