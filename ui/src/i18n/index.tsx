// The window's words (issue 25): the same .ftl files as the Rust side (repository's locales/),
// bundled through Vite `?raw` imports so there is one copy. `useT()` gives components a
// `t(id, args)` that follows the language chosen under General without a restart.
import { FluentBundle, FluentResource, type FluentVariable } from "@fluent/bundle";
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import deUi from "../../../locales/de/ui.ftl?raw";
import enUi from "../../../locales/en/ui.ftl?raw";
import frUi from "../../../locales/fr/ui.ftl?raw";

export type Lang = "en" | "de" | "fr" | "pseudo";
export type Args = Record<string, FluentVariable>;

const SOURCES: Record<Exclude<Lang, "pseudo">, string> = { en: enUi, de: deUi, fr: frUi };

/** Accented and 40 % longer English, to find text that is cut off (screenshots only). */
export function pseudo(s: string): string {
  const map: Record<string, string> = { a: "á", e: "é", i: "í", o: "ö", u: "ü", A: "Å", E: "É", O: "Ö", c: "ç", n: "ñ" };
  const accented = s.replace(/[aeiouAEOcn]/g, (c) => map[c] ?? c);
  const pad = "~".repeat(Math.ceil(s.length * 0.4));
  return s.length ? `[${accented}${pad}]` : s;
}

const bundles = new Map<Lang, FluentBundle>();
function bundle(lang: Lang): FluentBundle {
  let b = bundles.get(lang);
  if (!b) {
    const code = lang === "pseudo" ? "en" : lang;
    // No Unicode isolation marks: they confuse text checks and show as boxes in some fonts.
    b = new FluentBundle(code, { useIsolating: false });
    b.addResource(new FluentResource(SOURCES[lang === "pseudo" ? "en" : lang]));
    bundles.set(lang, b);
  }
  return b;
}

/** The message `id` in `lang`; English when missing, the id itself only if English lacks it too. */
export function format(lang: Lang, id: string, args?: Args): string {
  for (const l of [lang, "en"] as Lang[]) {
    const b = bundle(l);
    const m = b.getMessage(id);
    if (m?.value) {
      const s = b.formatPattern(m.value, args ?? null, []);
      return l === "pseudo" ? pseudo(s) : s;
    }
  }
  return id;
}

/** The settings' `language` → a language. "auto" is the desktop's: as the monitor read it from
 * the environment (`desktop`, from `info`), else as the webview reports it. */
export function resolve(setting: string | undefined | null, desktop?: string | null): Lang {
  const s = (setting ?? "auto").trim().toLowerCase();
  if (s === "pseudo") return "pseudo";
  const wanted = s === "auto" || s === "" ? desktop || navigator.language || "en" : s;
  const code = wanted.split(/[-_.@]/)[0];
  return code === "de" || code === "fr" ? code : "en";
}

/** Decimal comma and 24 h clock follow the language. */
export function locale(lang: Lang): string {
  return lang === "de" ? "de-DE" : lang === "fr" ? "fr-FR" : "en-GB";
}

export const LangContext = createContext<{ lang: Lang; setLanguage: (setting: string) => void }>({
  lang: "en",
  setLanguage: () => {},
});

export type T = (id: string, args?: Args) => string;

/** `t(id, args)` in the window's current language. */
export function useT(): T {
  const { lang } = useContext(LangContext);
  return (id, args) => format(lang, id, args);
}

export const useLang = () => useContext(LangContext);
