// General: the app itself (version, folders, test popup, pause) and the notification settings.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, updateSettings } from "../api";
import { useApp } from "../context";
import { applyGeneral, generalDraft, validateGeneral, type GeneralDraft } from "../lib/validate";
import type { AuditReport, Settings } from "../types";
import { Button, Check, Field, Message, Select } from "../widgets";
import { FeedList } from "./feeds";
import { locale, useLang, useT, type T } from "../i18n";

/** The sounds shipped with the app (src-tauri/sounds/). */
const SOUNDS = [
  { value: "alarm", label: "sound-alarm" },
  { value: "alert", label: "sound-alert" },
  { value: "chime", label: "sound-chime" },
  { value: "", label: "sound-none" },
];

/** "audit trail intact (12,345 records)" or what is wrong. */
export function auditLine(r: AuditReport, t?: T, lang: string = "en-US"): { ok: boolean; text: string } {
  const n = r.records.toLocaleString(lang);
  if (t) {
    return r.intact
      ? { ok: true, text: t("general-audit-intact", { count: r.records }) }
      : { ok: false, text: t("general-audit-broken", { problem: r.problem ?? "" }) };
  }
  const noun = r.records === 1 ? "record" : "records";
  return r.intact ? { ok: true, text: `audit trail intact (${n} ${noun})` } : { ok: false, text: `audit trail NOT intact: ${r.problem}` };
}

export function GeneralSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { info, status, refreshStatus } = useApp();
  const t = useT();
  const { lang, setLanguage } = useLang();
  const [langMsg, setLangMsg] = useState<string | null>(null);
  const sounds = SOUNDS.map((s) => ({ ...s, label: t(s.label) }));
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
      .then((r) => live && setAudit(auditLine(r, t, locale(lang))))
      .catch((e) => live && setAudit({ ok: false, text: t("general-audit-error", { error: errorText(e) }) }));
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
      setSaveMsg({ ok: false, text: t("general-fix-fields") });
      return;
    }
    try {
      await updateSettings((s) => applyGeneral(s, d));
      setSaveMsg({ ok: true, text: t("general-saved") });
      reload();
    } catch (e) {
      setSaveMsg({ ok: false, text: errorText(e) });
    }
  };

  const testNotification = async () => {
    setTestMsg(null);
    try {
      await api.sendTestNotification();
      setTestMsg({ ok: true, text: t("general-test-sent") });
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

  // The language applies at once (window, tray, new popups): saved on its own, like the pause.
  const chooseLanguage = async (v: string) => {
    setLangMsg(null);
    try {
      await updateSettings((s) => {
        s.language = v;
      });
      setLanguage(v);
      // The select shows the saved choice (a controlled select would snap back otherwise).
      reload();
    } catch (e) {
      setLangMsg(errorText(e));
    }
  };

  return (
    <section aria-labelledby="general-h">
      <h2 id="general-h">{t("general-title")}</h2>
      <div class="card">
        <dl class="facts">
          <dt>{t("general-version")}</dt>
          <dd data-testid="app-version">{info?.version ?? ""}</dd>
          <dt>{t("general-data-folder")}</dt>
          <dd data-testid="data-dir" class="path">
            {info?.data_dir ?? ""}
          </dd>
          <dt>{t("general-log-folder")}</dt>
          <dd data-testid="log-dir" class="path">
            {info?.log_dir ?? ""}
          </dd>
          <dt>{t("general-status")}</dt>
          <dd data-testid="status-summary">{status?.summary ?? ""}</dd>
          <dt>{t("general-audit")}</dt>
          <dd data-testid="audit-status" data-ok={audit ? String(audit.ok) : undefined} class={audit && !audit.ok ? "bad" : undefined}>
            {audit?.text ?? t("general-audit-checking")}
          </dd>
        </dl>
        <div class="actions">
          <Button testid="send-test-notification" onClick={testNotification}>
            {t("general-send-test")}
          </Button>
          <Check label={t("general-pause")} checked={paused} onChange={setPaused} testid="pause-toggle" />
        </div>
        {testMsg && <Message ok={testMsg.ok} text={testMsg.text} testid="test-notification-result" />}
        <div class="row">
          <Select
            label={t("general-language")}
            value={settings.language || "auto"}
            options={[
              { value: "auto", label: t("general-language-auto") },
              { value: "en", label: "English" },
              { value: "de", label: "Deutsch" },
              { value: "fr", label: "Français" },
            ]}
            onChange={chooseLanguage}
            testid="language"
          />
          <span class="muted">{t("general-language-hint")}</span>
        </div>
        <Message text={langMsg} testid="language-error" />
        <Message text={pauseError} testid="pause-error" />
      </div>

      <div class="card">
        <h3>{t("general-feeds")}</h3>
        <FeedList feeds={status?.feeds ?? []} empty={t("general-no-feeds")} />
      </div>

      <div class="card">
        <h3>{t("general-notifications")}</h3>
        <fieldset class="inline">
          <legend>{t("general-quiet-hours")}</legend>
          <Check label={t("general-on")} checked={d.quietEnabled} onChange={(v) => set({ quietEnabled: v })} testid="quiet-enabled" />
          <Field label={t("general-from")} value={d.quietStart} onInput={(v) => set({ quietStart: v })} testid="quiet-start" placeholder="22:00" error={errors.quietStart} />
          <Field label={t("general-to")} value={d.quietEnd} onInput={(v) => set({ quietEnd: v })} testid="quiet-end" placeholder="07:00" error={errors.quietEnd} />
          <Check label={t("general-quiet-critical")} checked={d.allowCritical} onChange={(v) => set({ allowCritical: v })} testid="quiet-allow-critical" />
        </fieldset>
        <div class="row">
          <Field
            label={t("general-group-window")}
            value={d.groupWindowSecs}
            onInput={(v) => set({ groupWindowSecs: v })}
            testid="group-window"
            inputMode="numeric"
            hint={t("general-group-window-hint")}
            error={errors.groupWindowSecs}
          />
          <Field label={t("general-group-max")} value={d.groupMax} onInput={(v) => set({ groupMax: v })} testid="group-max" inputMode="numeric" error={errors.groupMax} />
        </div>
        <div class="row">
          <Field
            label={t("general-feed-silence")}
            value={d.feedSilenceMins}
            onInput={(v) => set({ feedSilenceMins: v })}
            testid="feed-silence"
            inputMode="numeric"
            error={errors.feedSilenceMins}
          />
        </div>
        <h3>{t("general-sound-title")}</h3>
        <div class="row">
          <Check label={t("general-sound-on")} checked={d.sound} onChange={(v) => set({ sound: v })} testid="sound-on" />
        </div>
        <div class="row">
          <Select label={t("general-critical-sound")} value={d.criticalSound} options={sounds} onChange={(v) => set({ criticalSound: v })} testid="critical-sound" disabled={!d.sound} />
          <Field
            label={t("general-critical-repeat")}
            value={d.criticalRepeatMins}
            onInput={(v) => set({ criticalRepeatMins: v })}
            testid="critical-repeat-mins"
            inputMode="numeric"
            hint={t("general-critical-repeat-hint")}
            error={errors.criticalRepeatMins}
          />
        </div>
        <div class="row">
          <Select label={t("general-warning-sound")} value={d.warningSound} options={sounds} onChange={(v) => set({ warningSound: v })} testid="warning-sound" disabled={!d.sound} />
          <Field
            label={t("general-warning-repeat")}
            value={d.warningRepeatMins}
            onInput={(v) => set({ warningRepeatMins: v })}
            testid="warning-repeat-mins"
            inputMode="numeric"
            hint={t("general-warning-repeat-hint")}
            error={errors.warningRepeatMins}
          />
        </div>
        <h3>{t("general-app")}</h3>
        <div class="row">
          <Check label={t("general-autostart")} checked={d.autostart} onChange={(v) => set({ autostart: v })} testid="autostart" />
          <Field label={t("general-retention")} value={d.retentionDays} onInput={(v) => set({ retentionDays: v })} testid="retention-days" inputMode="numeric" error={errors.retentionDays} />
        </div>
        <h3>{t("general-ack-title")}</h3>
        <div class="row">
          <Field label={t("general-display-name")} value={d.displayName} onInput={(v) => set({ displayName: v })} testid="display-name" error={errors.displayName} />
          <Check label={t("general-comment-required")} checked={d.commentRequired} onChange={(v) => set({ commentRequired: v })} testid="comment-required" />
          <Field label={t("general-audit-retention")} value={d.auditRetentionDays} onInput={(v) => set({ auditRetentionDays: v })} testid="audit-retention-days" inputMode="numeric" error={errors.auditRetentionDays} />
        </div>
        <div class="actions">
          <span class="spacer" />
          <Button testid="general-save" kind="primary" onClick={save}>
            {t("general-save")}
          </Button>
        </div>
        {saveMsg && <Message ok={saveMsg.ok} text={saveMsg.text} testid="general-save-result" />}
      </div>
    </section>
  );
}
