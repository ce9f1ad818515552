// Issue 25: the window's words come from locales/*/ui.ftl, in every language, and the
// language chosen under General applies at once.
import { fireEvent, waitFor } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import deFtl from "../../locales/de/ui.ftl?raw";
import enFtl from "../../locales/en/ui.ftl?raw";
import frFtl from "../../locales/fr/ui.ftl?raw";
import { demoState, installMock } from "../dev/mockBackend";
import { format, pseudo } from "../src/i18n";
import { byId, findId, renderApp } from "./helpers";

const FTL: Record<string, string> = { en: enFtl, de: deFtl, fr: frFtl };
const ids = (lang: string) =>
  new Set(
    FTL[lang]
      .split("\n")
      .map((l: string) => /^([a-z][a-z0-9-]*) =/.exec(l)?.[1])
      .filter((x): x is string => !!x),
  );

/** Every .tsx of ui/src, by its path below src/. */
const SOURCES: Record<string, string> = Object.fromEntries(
  Object.entries(import.meta.glob("../src/**/*.tsx", { query: "?raw", import: "default", eager: true }) as Record<string, string>).map(
    ([k, v]) => [k.replace("../src/", ""), v],
  ),
);

/** The files already speaking through t(); the rest of ui/src is still English (see the README). */
const CONVERTED = ["App.tsx", "settings/SettingsPage.tsx", "settings/General.tsx", "settings/feeds.tsx"];

describe("i18n", () => {
  it("every id the window uses exists in English, German and French", () => {
    const en = ids("en");
    for (const lang of ["de", "fr"]) expect([...ids(lang)].sort()).toEqual([...en].sort());
    const used = new Set<string>();
    for (const src of Object.values(SOURCES)) {
      for (const m of src.matchAll(/\bt\(\s*"([a-z][a-z0-9-]+)"/g)) used.add(m[1]);
      for (const m of src.matchAll(/label: "([a-z]+-[a-z0-9-]+)"/g)) used.add(m[1]);
      for (const m of src.matchAll(/: "(app-tray-[a-z]+)"/g)) used.add(m[1]);
    }
    expect(used.size).toBeGreaterThan(60);
    const missing = [...used].filter((id) => !en.has(id));
    expect(missing).toEqual([]);
  });

  it("the converted files have no English text of their own in JSX", () => {
    const found: string[] = [];
    for (const f of CONVERTED) {
      expect(SOURCES[f], f).toBeTruthy();
      // Comments are for developers.
      const src = SOURCES[f].replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
      // Text between tags, and the attributes people read.
      for (const m of src.matchAll(/>([^<>{}();=]*[A-Za-z]{3,}[^<>{}();=]*)[<{]/g)) {
        if (!/^(Alarm Tray|English|Deutsch|Français)$/.test(m[1].trim()) && !m[1].includes("=>")) found.push(`${f}: ${m[1].trim()}`);
      }
      for (const m of src.matchAll(/\b(label|hint|placeholder|title|aria-label|empty)="([^"]*[A-Za-z]{3,}[^"]*)"/g)) found.push(`${f}: ${m[2]}`);
      for (const m of src.matchAll(/text: "([^"]+)"/g)) found.push(`${f}: ${m[1]}`);
    }
    expect(found).toEqual([]);
  });

  it("German and French read naturally, with plurals and number formats", () => {
    expect(format("de", "general-audit-intact", { count: 12345 })).toBe("Audit-Trail unversehrt (12.345 Einträge)");
    expect(format("fr", "settings-general")).toBe("Général");
    expect(format("de", "no-such-id")).toBe("no-such-id");
    expect(pseudo("Save").length).toBeGreaterThanOrEqual(Math.ceil(4 * 1.4));
  });

  it("choosing German under General turns the window German at once", async () => {
    const m = installMock(demoState());
    await renderApp();
    fireEvent.click(await findId("section-general"));
    expect(byId("tab-settings").textContent).toBe("Settings");
    const select = (await findId("language")) as HTMLSelectElement;
    fireEvent.change(select, { target: { value: "de" } });
    await waitFor(() => expect(byId("tab-settings").textContent).toBe("Einstellungen"));
    expect(byId("section-general").textContent).toBe("Allgemein");
    expect(m.settings.language).toBe("de");
    fireEvent.change(byId("language"), { target: { value: "fr" } });
    await waitFor(() => expect(byId("tab-history").textContent).toBe("Historique"));
  });
});
