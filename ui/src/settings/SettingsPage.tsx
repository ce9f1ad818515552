import { useCallback, useEffect, useState } from "preact/hooks";
import { api, loadError } from "../api";
import { useApp } from "../context";
import type { Settings } from "../types";
import { Message } from "../widgets";
import { Accounts } from "./Accounts";
import { ChannelsSection } from "./Channels";
import { EscalationSection } from "./Escalation";
import { GeneralSection } from "./General";
import { RulesSection } from "./Rules";
import { TeamSection } from "./Team";

export type Section = "accounts" | "channels" | "rules" | "general" | "escalation" | "team";
const SECTIONS: { id: Section; label: string }[] = [
  { id: "accounts", label: "Accounts" },
  { id: "channels", label: "Channels & devices" },
  { id: "rules", label: "Rules" },
  { id: "general", label: "General" },
  { id: "escalation", label: "Escalation" },
  { id: "team", label: "Team" },
];

export function SettingsPage({ initialSection = "accounts" }: { initialSection?: Section }) {
  const { reloadTick } = useApp();
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
      <nav class="subnav" aria-label="Settings sections">
        {SECTIONS.map((s) => (
          <button
            type="button"
            key={s.id}
            class={section === s.id ? "active" : ""}
            aria-current={section === s.id ? "page" : undefined}
            data-testid={`section-${s.id}`}
            onClick={() => setSection(s.id)}
          >
            {s.label}
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
