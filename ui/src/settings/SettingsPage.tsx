import { useCallback, useEffect, useState } from "preact/hooks";
import { api, loadError } from "../api";
import { useApp } from "../context";
import type { Settings } from "../types";
import { Message } from "../widgets";
import { useT } from "../i18n";
import { Accounts } from "./Accounts";
import { ChannelsSection } from "./Channels";
import { EscalationSection } from "./Escalation";
import { GeneralSection } from "./General";
import { RulesSection } from "./Rules";
import { TeamSection } from "./Team";

export type Section = "accounts" | "channels" | "rules" | "general" | "escalation" | "team";
const SECTIONS: { id: Section; label: string }[] = [
  { id: "accounts", label: "settings-accounts" },
  { id: "channels", label: "settings-channels" },
  { id: "rules", label: "settings-rules" },
  { id: "general", label: "settings-general" },
  { id: "escalation", label: "settings-escalation" },
  { id: "team", label: "settings-team" },
];

export function SettingsPage({ initialSection = "accounts" }: { initialSection?: Section }) {
  const { reloadTick } = useApp();
  const t = useT();
  const [section, setSection] = useState<Section>(initialSection);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(() => {
    api
      .getSettings()
      .then((s) => {
        setSettings(s);
        setError(null);
      })
      .catch((e) => setError(loadError(e)));
  }, []);
  useEffect(reload, [reloadTick]);

  return (
    <div class="settings">
      <nav class="subnav" aria-label={t("settings-sections")}>
        {SECTIONS.map((s) => (
          <button
            type="button"
            key={s.id}
            class={section === s.id ? "active" : ""}
            aria-current={section === s.id ? "page" : undefined}
            data-testid={`section-${s.id}`}
            onClick={() => setSection(s.id)}
          >
            {t(s.label)}
          </button>
        ))}
      </nav>
      <div class="section-body">
        <Message text={error} testid="settings-load-error" />
        {settings && section === "accounts" && <Accounts settings={settings} reload={reload} />}
        {settings && section === "channels" && <ChannelsSection settings={settings} reload={reload} />}
        {settings && section === "team" && <TeamSection settings={settings} reload={reload} />}
        {settings && section === "rules" && <RulesSection settings={settings} reload={reload} />}
        {settings && section === "general" && <GeneralSection settings={settings} reload={reload} />}
        {settings && section === "escalation" && <EscalationSection settings={settings} reload={reload} />}
      </div>
    </div>
  );
}
