// Dev-only entry (ui/mock.html): the real UI against the canned backend, to look at the pages
// in a plain browser. `#history`, `#dashboard`, `#empty`, `#notrunning` pick what to show.
import { daySeries, demoState, emptyState, installMock } from "./mockBackend";

const flags = new Set(location.hash.replace(/^#/, "").split(","));
const state = flags.has("empty") ? emptyState() : demoState();
if (flags.has("history")) state.page = { page: "history", alarm_id: flags.has("focus") ? 1 : null };
if (flags.has("dashboard")) state.page = { page: "dashboard", alarm_id: null };
if (flags.has("notrunning")) {
  for (const c of ["info", "status", "get_settings", "alarms", "latest_values"]) state.fail[c] = { kind: "monitor_not_running", message: "Alarm Tray is not running. Start it from the application menu." };
}
if (flags.has("notice")) state.info.notice = "The settings file was unusable: not valid JSON; it was kept as settings.json.broken-1700000000. Alarm Tray started with default settings.";
if (flags.has("many")) {
  // 60 sensors with a day of values every 30 s each (172,800 points in all).
  const now = Date.now();
  state.latest = [];
  for (let i = 0; i < 60; i++) {
    const sensor = `load-${i}:temperature`;
    state.latest.push({ sensor, name: `Load ${i}`, source: "element", quantity: "temperature", value: 5, unit: "°C", at_ms: now });
    state.series[sensor] = daySeries(4 + (i % 5), now, 2);
  }
}
installMock(state);
(window as unknown as { __mock: unknown }).__mock = state;

const t0 = performance.now();
await import("../src/main");
if (flags.has("many")) {
  // Reports in the title how long until every sparkline was drawn (read with --dump-dom).
  const poll = () => {
    const n = document.querySelectorAll(".spark canvas").length;
    if (n >= state.latest.length) {
      document.title = `drawn ${n} sparklines in ${Math.round(performance.now() - t0)} ms`;
      console.log(document.title);
    }
    else setTimeout(poll, 10);
  };
  poll();
}

// `#click=a+b` clicks the elements with these data-testids in turn (to screenshot sub-pages).
const click = [...flags].find((f) => f.startsWith("click="));
if (click) {
  for (const id of click.slice(6).split("+")) {
    await new Promise((r) => setTimeout(r, 150));
    (document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null)?.click();
  }
}
