// The window: a header, the three pages behind a tab bar, and the banners that must not be
// missed (monitor not running, settings notice).
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, listenMonitor, onRunningChange } from "./api";
import { AppContext, type AppState } from "./context";
import { DashboardPage } from "./dashboard/DashboardPage";
import { HistoryPage } from "./history/HistoryPage";
import { SensorPanel } from "./sensor/SensorPanel";
import type { SensorTarget } from "./sensor/view";
import { SettingsPage } from "./settings/SettingsPage";
import type { Info, Page, Push, Status } from "./types";
import { Button } from "./widgets";
import { LangContext, format, resolve, type Lang } from "./i18n";

const PAGES: { id: Page; label: string }[] = [
  { id: "settings", label: "app-page-settings" },
  { id: "history", label: "app-page-history" },
  { id: "dashboard", label: "app-page-dashboard" },
];

const HISTORY_THROTTLE_MS = 500;

const TRAY_TEXT: Record<Status["tray"], string> = {
  ok: "app-tray-ok",
  alarm: "app-tray-alarm",
  problem: "app-tray-problem",
  paused: "app-tray-paused",
};

export function App() {
  const [info, setInfo] = useState<Info | null>(null);
  const [status, setStatus] = useState<Status | null>(null);
  const [page, setPage] = useState<Page>("settings");
  const [focusAlarm, setFocusAlarm] = useState<number | null>(null);
  const [sensorTarget, setSensorTarget] = useState<SensorTarget | null>(null);
  const [historyTick, setHistoryTick] = useState(0);
  const [reloadTick, setReloadTick] = useState(0);
  const [notRunning, setNotRunning] = useState(false);
  const [disconnected, setDisconnected] = useState<string | null>(null);
  const [startError, setStartError] = useState<string | null>(null);
  const [starting, setStarting] = useState(false);
  // Issue 25: the language chosen under General ("auto" = the desktop's); a change re-renders
  // every component through LangContext.
  const [lang, setLang] = useState<Lang>(resolve("auto"));
  const [langSetting, setLangSetting] = useState("auto");
  const setLanguage = useCallback((setting: string) => setLangSetting(setting), []);
  useEffect(() => setLang(resolve(langSetting, info?.language)), [langSetting, info]);
  const t = (id: string, args?: Record<string, string | number>) => format(lang, id, args);
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);
  const historyTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Readings may change history many times a second: views re-query at most once a second.
  const historyChanged = useCallback(() => {
    if (historyTimer.current) return;
    historyTimer.current = setTimeout(() => {
      historyTimer.current = null;
      setHistoryTick((t) => t + 1);
    }, HISTORY_THROTTLE_MS);
  }, []);

  const refreshStatus = useCallback(() => {
    api.status().then(setStatus).catch(() => {});
  }, []);

  const go = useCallback((p: Page, alarmId: number | null = null) => {
    setPage(p);
    setFocusAlarm(alarmId);
    // Another page, or the window opened on an alarm (whose view History opens): the
    // sensor view of before goes.
    setSensorTarget(null);
  }, []);

  // What the window shows after the monitor (re)appeared.
  const loadAll = useCallback(() => {
    api.info().then(setInfo).catch(() => {});
    api
      .getSettings()
      .then((s) => setLanguage(s.language))
      .catch(() => {});
    refreshStatus();
  }, [refreshStatus]);

  useEffect(() => onRunningChange((nr) => setNotRunning(nr)), []);

  useEffect(() => {
    loadAll();
    api
      .initialPage()
      .then((p) => go(p.page, p.alarm_id))
      .catch(() => {});
    let off: (() => void) | null = null;
    let gone = false;
    listenMonitor(
      (p: Push) => {
        setDisconnected(null);
        if (p.type === "status") setStatus(p.data);
        else if (p.type === "history_changed") historyChanged();
        else if (p.type === "focus") go(p.data.page, p.data.alarm_id);
      },
      (why) => {
        setDisconnected(why || t("app-connection-lost"));
        setNotRunning(true);
      },
    )
      .then((f) => {
        if (gone) f();
        else off = f;
      })
      .catch(() => {});
    return () => {
      gone = true;
      off?.();
      if (historyTimer.current) clearTimeout(historyTimer.current);
    };
  }, []);

  const start = async () => {
    setStarting(true);
    setStartError(null);
    try {
      await api.startMonitor();
      setNotRunning(false);
      setDisconnected(null);
      loadAll();
      setReloadTick((t) => t + 1);
      setHistoryTick((t) => t + 1);
    } catch (e) {
      setStartError(errorText(e));
    } finally {
      setStarting(false);
    }
  };

  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  const onTabKey = (e: KeyboardEvent, i: number) => {
    let j = -1;
    if (e.key === "ArrowRight") j = (i + 1) % PAGES.length;
    else if (e.key === "ArrowLeft") j = (i + PAGES.length - 1) % PAGES.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = PAGES.length - 1;
    if (j < 0) return;
    e.preventDefault();
    go(PAGES[j].id);
    tabs.current[j]?.focus();
  };

  const openSensor = useCallback((t: SensorTarget) => setSensorTarget(t), []);
  const state: AppState = { info, status, historyTick, reloadTick, focusAlarm, go, refreshStatus, openSensor };

  return (
    <LangContext.Provider value={{ lang, setLanguage }}>
    <AppContext.Provider value={state}>
      <header class="top">
        <h1>
          Alarm Tray
          {info?.demo && (
            <span class="badge demo" data-testid="demo-badge">
              {t("app-demo")}
            </span>
          )}
        </h1>
        {status && (
          <span class={`tray-state ${status.tray}`} data-testid="tray-state" data-state={status.tray} title={status.summary}>
            <span class="dot" aria-hidden="true" />
            {t(TRAY_TEXT[status.tray])}
            {status.active_alarms > 0 && (
              <span data-testid="active-alarms">
                {" "}
                {t("app-active", { count: status.active_alarms })}
              </span>
            )}
          </span>
        )}
        <nav class="tabs" role="tablist" aria-label={t("app-pages")}>
          {PAGES.map((p, i) => (
            <button
              type="button"
              key={p.id}
              role="tab"
              id={`tab-${p.id}`}
              aria-selected={page === p.id}
              aria-controls="page"
              tabIndex={page === p.id ? 0 : -1}
              class={page === p.id ? "active" : ""}
              data-testid={`tab-${p.id}`}
              ref={(el) => {
                tabs.current[i] = el;
              }}
              onClick={() => go(p.id)}
              onKeyDown={(e) => onTabKey(e, i)}
            >
              {t(p.label)}
            </button>
          ))}
        </nav>
      </header>
      {notRunning && (
        <div class="banner bad" role="alert" data-testid="not-running-banner">
          <span>
            {t("app-not-running")}
            {disconnected && <span class="muted"> ({disconnected})</span>}
          </span>
          <Button testid="start-monitor" kind="primary" onClick={start} disabled={starting}>
            {t("app-start")}
          </Button>
          {startError && <span data-testid="start-error">{startError}</span>}
        </div>
      )}
      {info?.notice && (
        <div class="banner warn" role="status" data-testid="notice-banner">
          {info.notice}
        </div>
      )}
      <main>
        {sensorTarget && <SensorPanel key={`${sensorTarget.sensor}|${sensorTarget.quantity}|${sensorTarget.alarm?.id}`} target={sensorTarget} onClose={() => setSensorTarget(null)} />}
        <div id="page" role="tabpanel" aria-labelledby={`tab-${page}`} data-testid={`page-${page}`}>
          {page === "settings" && <SettingsPage />}
          {page === "history" && <HistoryPage />}
          {page === "dashboard" && <DashboardPage />}
        </div>
      </main>
    </AppContext.Provider>
    </LangContext.Provider>
  );
}
