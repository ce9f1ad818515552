// Dev-only entry (ui/mock.html): the real UI against the canned backend, to look at the pages
// in a plain browser. `#history`, `#dashboard`, `#empty`, `#notrunning` pick what to show.
import { demoState, emptyState, installMock } from "./mockBackend";

const flags = new Set(location.hash.replace(/^#/, "").split(","));
const state = flags.has("empty") ? emptyState() : demoState();
if (flags.has("history")) state.page = { page: "history", alarm_id: flags.has("focus") ? 1 : null };
if (flags.has("dashboard")) state.page = { page: "dashboard", alarm_id: null };
if (flags.has("notrunning")) {
  for (const c of ["info", "status", "get_settings", "alarms", "latest_values"]) state.fail[c] = "Alarm Tray is not running. Start it from the application menu.";
}
if (flags.has("notice")) state.info.notice = "The settings file was unusable: not valid JSON; it was kept as settings.json.broken-1700000000. Alarm Tray started with default settings.";
installMock(state);
(window as unknown as { __mock: unknown }).__mock = state;

await import("../src/main");

// `#click=a+b` clicks the elements with these data-testids in turn (to screenshot sub-pages).
const click = [...flags].find((f) => f.startsWith("click="));
if (click) {
  for (const id of click.slice(6).split("+")) {
    await new Promise((r) => setTimeout(r, 150));
    (document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null)?.click();
  }
}
