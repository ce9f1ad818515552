// General: the app itself (version, folders, test popup, pause) and the notification settings.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, updateSettings } from "../api";
import { useApp } from "../context";
import { applyGeneral, generalDraft, validateGeneral, type GeneralDraft } from "../lib/validate";
import type { AuditReport, Settings } from "../types";
import { Button, Check, Field, Message, Select } from "../widgets";
import { FeedList } from "./feeds";

/** The sounds shipped with the app (src-tauri/sounds/). */
const SOUNDS = [
  { value: "alarm", label: "Alarm (three urgent beeps)" },
  { value: "alert", label: "Alert (two calm beeps)" },
  { value: "chime", label: "Chime" },
  { value: "", label: "None (silent)" },
];

/** "audit trail intact (12,345 records)" or what is wrong. */
export function auditLine(r: AuditReport): { ok: boolean; text: string } {
  const n = r.records.toLocaleString("en-US");
  const noun = r.records === 1 ? "record" : "records";
  return r.intact ? { ok: true, text: `audit trail intact (${n} ${noun})` } : { ok: false, text: `audit trail NOT intact: ${r.problem}` };
}

export function GeneralSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { info, status, refreshStatus } = useApp();
  const [d, setD] = useState<GeneralDraft>(generalDraft(settings));
  const [touched, setTouched] = useState(false);
  const [saveMsg, setSaveMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [testMsg, setTestMsg] = useState<{ ok: boolean; text: string } | null>(null);
  const [pauseError, setPauseError] = useState<string | null>(null);
  const [audit, setAudit] = useState<{ ok: boolean; text: string } | null>(null);

  // The audit trail is checked each time the page opens (a walk over its hash chain).
  useEffect(() => {
    let live = true;
    api
      .auditVerify()
      .then((r) => live && setAudit(auditLine(r)))
      .catch((e) => live && setAudit({ ok: false, text: `Audit trail: ${errorText(e)}` }));
    return () => {
      live = false;
    };
  }, []);

  // The form follows the settings the monitor holds whenever they are reloaded.
  useEffect(() => {
    setD(generalDraft(settings));
    setTouched(false);
  }, [settings]);

  const errors = touched ? validateGeneral(d) : {};
  const set = (patch: Partial<GeneralDraft>) => {
    setD({ ...d, ...patch });
    setTouched(true);
    setSaveMsg(null);
  };

  const save = async () => {
    setTouched(true);
    if (Object.keys(validateGeneral(d)).length) {
      setSaveMsg({ ok: false, text: "Fix the fields marked above, then save." });
      return;
    }
    try {
      await updateSettings((s) => applyGeneral(s, d));
      setSaveMsg({ ok: true, text: "Saved." });
      reload();
    } catch (e) {
      setSaveMsg({ ok: false, text: errorText(e) });
    }
  };

  const testNotification = async () => {
    setTestMsg(null);
    try {
      await api.sendTestNotification();
      setTestMsg({ ok: true, text: "A test notification was sent. If no popup appeared, check the system's notification settings." });
    } catch (e) {
      setTestMsg({ ok: false, text: errorText(e) });
    }
  };

  const paused = status?.paused ?? settings.notifications.paused;
  const setPaused = async (p: boolean) => {
    setPauseError(null);
    try {
      await api.setPaused(p);
      refreshStatus();
    } catch (e) {
      setPauseError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="general-h">
      <h2 id="general-h">General</h2>
      <div class="card">
        <dl class="facts">
          <dt>Version</dt>
          <dd data-testid="app-version">{info?.version ?? ""}</dd>
          <dt>Data folder</dt>
          <dd data-testid="data-dir" class="path">
            {info?.data_dir ?? ""}
          </dd>
          <dt>Log folder</dt>
          <dd data-testid="log-dir" class="path">
            {info?.log_dir ?? ""}
          </dd>
          <dt>Status</dt>
          <dd data-testid="status-summary">{status?.summary ?? ""}</dd>
          <dt>Audit trail</dt>
          <dd data-testid="audit-status" data-ok={audit ? String(audit.ok) : undefined} class={audit && !audit.ok ? "bad" : undefined}>
            {audit?.text ?? "checking…"}
          </dd>
        </dl>
        <div class="actions">
          <Button testid="send-test-notification" onClick={testNotification}>
            Send test notification
          </Button>
          <Check label="Pause notifications" checked={paused} onChange={setPaused} testid="pause-toggle" />
        </div>
        {testMsg && <Message ok={testMsg.ok} text={testMsg.text} testid="test-notification-result" />}
        <Message text={pauseError} testid="pause-error" />
      </div>

      <div class="card">
        <h3>Feeds</h3>
        <FeedList feeds={status?.feeds ?? []} empty="No feed is running. Add an account to start one." />
      </div>

      <div class="card">
        <h3>Notifications</h3>
        <fieldset class="inline">
          <legend>Quiet hours</legend>
          <Check label="On" checked={d.quietEnabled} onChange={(v) => set({ quietEnabled: v })} testid="quiet-enabled" />
          <Field label="From" value={d.quietStart} onInput={(v) => set({ quietStart: v })} testid="quiet-start" placeholder="22:00" error={errors.quietStart} />
          <Field label="To" value={d.quietEnd} onInput={(v) => set({ quietEnd: v })} testid="quiet-end" placeholder="07:00" error={errors.quietEnd} />
          <Check label="Critical alarms still pop up" checked={d.allowCritical} onChange={(v) => set({ allowCritical: v })} testid="quiet-allow-critical" />
        </fieldset>
        <div class="row">
          <Field
            label="Grouping window (s)"
            value={d.groupWindowSecs}
            onInput={(v) => set({ groupWindowSecs: v })}
            testid="group-window"
            inputMode="numeric"
            hint="More alarms than the maximum in this window become one summary"
            error={errors.groupWindowSecs}
          />
          <Field label="Maximum popups per window" value={d.groupMax} onInput={(v) => set({ groupMax: v })} testid="group-max" inputMode="numeric" error={errors.groupMax} />
        </div>
        <div class="row">
          <Field
            label="Warn when a feed is silent for (min)"
            value={d.feedSilenceMins}
            onInput={(v) => set({ feedSilenceMins: v })}
            testid="feed-silence"
            inputMode="numeric"
            error={errors.feedSilenceMins}
          />
        </div>
        <h3>Sound and repeat until acknowledged</h3>
        <div class="row">
          <Check label="Play alarm sounds" checked={d.sound} onChange={(v) => set({ sound: v })} testid="sound-on" />
        </div>
        <div class="row">
          <Select label="Critical alarms: sound" value={d.criticalSound} options={SOUNDS} onChange={(v) => set({ criticalSound: v })} testid="critical-sound" disabled={!d.sound} />
          <Field
            label="Critical alarms: repeat every (min)"
            value={d.criticalRepeatMins}
            onInput={(v) => set({ criticalRepeatMins: v })}
            testid="critical-repeat-mins"
            inputMode="numeric"
            hint="Pops again with its sound until acknowledged or cleared; 0 = never"
            error={errors.criticalRepeatMins}
          />
        </div>
        <div class="row">
          <Select label="Warnings: sound" value={d.warningSound} options={SOUNDS} onChange={(v) => set({ warningSound: v })} testid="warning-sound" disabled={!d.sound} />
          <Field
            label="Warnings: repeat every (min)"
            value={d.warningRepeatMins}
            onInput={(v) => set({ warningRepeatMins: v })}
            testid="warning-repeat-mins"
            inputMode="numeric"
            hint="Quiet hours hold warnings and their sounds; 0 = never"
            error={errors.warningRepeatMins}
          />
        </div>
        <h3>App</h3>
        <div class="row">
          <Check label="Start Alarm Tray when I log in" checked={d.autostart} onChange={(v) => set({ autostart: v })} testid="autostart" />
          <Field label="Keep history (days)" value={d.retentionDays} onInput={(v) => set({ retentionDays: v })} testid="retention-days" inputMode="numeric" error={errors.retentionDays} />
        </div>
        <h3>Acknowledging and audit trail</h3>
        <div class="row">
          <Field label="Your name on acknowledgements" value={d.displayName} onInput={(v) => set({ displayName: v })} testid="display-name" error={errors.displayName} />
          <Check label="A comment is required to acknowledge critical alarms" checked={d.commentRequired} onChange={(v) => set({ commentRequired: v })} testid="comment-required" />
          <Field label="Keep the audit trail (days)" value={d.auditRetentionDays} onInput={(v) => set({ auditRetentionDays: v })} testid="audit-retention-days" inputMode="numeric" error={errors.auditRetentionDays} />
        </div>
        <div class="actions">
          <span class="spacer" />
          <Button testid="general-save" kind="primary" onClick={save}>
            Save
          </Button>
        </div>
        {saveMsg && <Message ok={saveMsg.ok} text={saveMsg.text} testid="general-save-result" />}
      </div>
    </section>
  );
}
