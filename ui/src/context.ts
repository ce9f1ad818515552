import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { SensorTarget } from "./sensor/view";
import type { Info, Page, Status } from "./types";

export interface AppState {
  info: Info | null;
  status: Status | null;
  /** Bumped when the monitor says history changed: views that show history re-query. */
  historyTick: number;
  /** Bumped after the monitor was (re)started or settings were saved elsewhere: everything re-queries. */
  reloadTick: number;
  /** The alarm the window was opened on (popup "Open", tray), if any. */
  focusAlarm: number | null;
  go: (page: Page, alarmId?: number | null) => void;
  /** Asks the monitor for its status again (after pause, save…). */
  refreshStatus: () => void;
  /** Shows the sensor view (above the page) on a sensor, maybe around one alarm. */
  openSensor: (t: SensorTarget) => void;
}

export const AppContext = createContext<AppState>({
  info: null,
  status: null,
  historyTick: 0,
  reloadTick: 0,
  focusAlarm: null,
  go: () => {},
  refreshStatus: () => {},
  openSensor: () => {},
});

export const useApp = () => useContext(AppContext);
