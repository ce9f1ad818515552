// History: the alarms table with filters, acknowledge and CSV export, and the messages that
// could not be parsed. Everything is re-queried when the monitor says history changed.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, loadError } from "../api";
import { useApp } from "../context";
import { compactTime, formatTime, formatValue, localInputToMs, siteTime } from "../lib/format";
import type { AlarmFilter, AlarmRow, Saved, Severity, Snooze, SnoozeFor, UnparsedRow } from "../types";
import { Button, Choice, Field, Message, Select } from "../widgets";

export const PAGE_SIZE = 500;

export interface FilterForm {
  state: AlarmFilter["state"];
  severity: "" | Severity;
  source: AlarmFilter["source"];
  device: string;
  from: string;
  to: string;
}

export const EMPTY_FILTER: FilterForm = { state: "", severity: "", source: "", device: "", from: "", to: "" };

export function toFilter(f: FilterForm): AlarmFilter {
  return {
    state: f.state,
    severity: f.severity === "" ? null : f.severity,
    source: f.source,
    device: f.device.trim(),
    from_ms: localInputToMs(f.from),
    to_ms: localInputToMs(f.to),
    limit: PAGE_SIZE,
    offset: 0,
  };
}

export function HistoryPage() {
  const [view, setView] = useState<"alarms" | "unparsed">("alarms");
  return (
    <div class="history">
      <nav class="subnav" aria-label="History views">
        <button type="button" class={view === "alarms" ? "active" : ""} aria-current={view === "alarms" ? "page" : undefined} data-testid="history-alarms" onClick={() => setView("alarms")}>
          Alarms
        </button>
        <button type="button" class={view === "unparsed" ? "active" : ""} aria-current={view === "unparsed" ? "page" : undefined} data-testid="history-unparsed" onClick={() => setView("unparsed")}>
          Unparsed messages
        </button>
      </nav>
      <div class="section-body">{view === "alarms" ? <AlarmsView /> : <UnparsedView />}</div>
    </div>
  );
}

function who(r: AlarmRow): string {
  return r.name || r.sensor || r.device || "";
}

/** The small dialog that acknowledges one alarm with a comment (required or optional). */
export function AckDialog({ row, required, onDone, onCancel }: { row: AlarmRow; required: boolean; onDone: () => void; onCancel: () => void }) {
  const [comment, setComment] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const blank = comment.trim() === "";
  const submit = async () => {
    if (required && blank) {
      setError("Write why you acknowledge this critical alarm (what you found or did).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.acknowledge(row.id, blank ? null : comment.trim());
      onDone();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="ack-dialog" role="dialog" aria-modal="true" aria-labelledby="ack-dialog-h" data-testid="ack-dialog" data-alarm-id={row.id}>
      <h3 id="ack-dialog-h">Acknowledge: {who(row)}</h3>
      <p class="muted small">
        {row.severity} · {row.condition ?? ""} · raised {formatTime(row.raised_ms)}
      </p>
      <label class="field">
        <span>{required ? "Comment (required for critical alarms)" : "Comment (optional)"}</span>
        <textarea
          data-testid="ack-comment"
          rows={3}
          maxLength={2000}
          value={comment}
          aria-required={required}
          onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      <Message text={error} testid="ack-dialog-error" />
      <div class="actions">
        <span class="spacer" />
        <Button testid="ack-cancel" onClick={onCancel}>
          Cancel
        </Button>
        <Button testid="ack-confirm" kind="primary" disabled={busy || (required && blank)} onClick={submit}>
          Acknowledge
        </Button>
      </div>
    </div>
  );
}

/** The sensor a snooze of this alarm holds back: its sensor, else its device. */
export function snoozeKey(r: AlarmRow): string | null {
  return r.sensor ?? r.device ?? null;
}

const SNOOZE_LENGTHS: { value: string; label: string; length: SnoozeFor }[] = [
  { value: "1h", label: "1 hour", length: { kind: "hours", hours: 1 } },
  { value: "4h", label: "4 hours", length: { kind: "hours", hours: 4 } },
  { value: "tomorrow", label: "Until tomorrow 07:00", length: { kind: "until_tomorrow" } },
];

/** "Mute this sensor for 1 h / 4 h / until tomorrow", with a reason (required). */
export function SnoozeDialog({ row, onDone, onCancel }: { row: AlarmRow; onDone: () => void; onCancel: () => void }) {
  const [length, setLength] = useState("1h");
  const [reason, setReason] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const sensor = snoozeKey(row);
  const blank = reason.trim() === "";
  const submit = async () => {
    const chosen = SNOOZE_LENGTHS.find((l) => l.value === length);
    if (!sensor || !chosen) return;
    if (blank) {
      setError("Write why this sensor is snoozed (e.g. defrosting, door open for loading).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.snooze(sensor, chosen.length, reason.trim());
      onDone();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="ack-dialog" role="dialog" aria-modal="true" aria-labelledby="snooze-dialog-h" data-testid="snooze-dialog">
      <h3 id="snooze-dialog-h">Snooze: {who(row)}</h3>
      <p class="muted small">No popups or sounds for this sensor until the snooze ends; its alarms are still recorded.</p>
      <Choice legend="For" value={length} options={SNOOZE_LENGTHS} onChange={setLength} testid="snooze-length" />
      <label class="field">
        <span>Reason (required)</span>
        <textarea data-testid="snooze-reason" rows={2} maxLength={500} value={reason} aria-required={true} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
      </label>
      <Message text={error} testid="snooze-dialog-error" />
      <div class="actions">
        <span class="spacer" />
        <Button testid="snooze-cancel" onClick={onCancel}>
          Cancel
        </Button>
        <Button testid="snooze-confirm" kind="primary" disabled={busy || blank} onClick={submit}>
          Snooze
        </Button>
      </div>
    </div>
  );
}

/** The sensors snoozed now, each with who, why, until when and "End snooze". */
export function SnoozeList({ snoozes, onChanged }: { snoozes: Snooze[]; onChanged: () => void }) {
  const [error, setError] = useState<string | null>(null);
  if (snoozes.length === 0) return null;
  const end = async (sensor: string) => {
    try {
      await api.endSnooze(sensor);
      setError(null);
      onChanged();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div class="snoozes" data-testid="snooze-list">
      <strong>Snoozed sensors</strong>
      <ul>
        {snoozes.map((z) => (
          <li key={z.sensor} data-testid={`snoozed-${z.sensor}`}>
            {z.name ?? z.sensor} until {formatTime(z.until_ms)} · {z.user} · “{z.reason}”{" "}
            <Button testid={`end-snooze-${z.sensor}`} onClick={() => end(z.sensor)}>
              End snooze
            </Button>
          </li>
        ))}
      </ul>
      <Message text={error} testid="snooze-error" />
    </div>
  );
}

export function AlarmsView() {
  const { historyTick, focusAlarm, openSensor, reloadTick } = useApp();
  const openedFor = useRef<number | null>(null);
  const [commentRequired, setCommentRequired] = useState(false);
  /** Saveris account id → its site's time zone (issue 20). */
  const [siteZones, setSiteZones] = useState<Record<string, string>>({});
  // Issue 20: a Saveris tenant's `main_timezone` (from the names) where the account sets none.
  const [tenantZones, setTenantZones] = useState<Record<string, string>>({});
  const zoneOf = (r: AlarmRow) => siteZones[r.account] || (r.sensor ? tenantZones[r.sensor] : "") || "";
  const [acking, setAcking] = useState<AlarmRow | null>(null);
  const [snoozing, setSnoozing] = useState<AlarmRow | null>(null);
  const [snoozes, setSnoozes] = useState<Snooze[]>([]);
  const [snoozeTick, setSnoozeTick] = useState(0);
  const autoOpened = useRef<number | null>(null);
  const [form, setForm] = useState<FilterForm>(EMPTY_FILTER);
  const [query, setQuery] = useState<FilterForm>(EMPTY_FILTER);
  const [rows, setRows] = useState<AlarmRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [ackError, setAckError] = useState<string | null>(null);
  const [saved, setSaved] = useState<{ ok: boolean; text: string } | null>(null);
  const [saving, setSaving] = useState(false);
  const focused = useRef<HTMLTableRowElement>(null);

  // Text filters wait for a pause in typing; choices apply at once.
  useEffect(() => {
    const t = setTimeout(() => setQuery(form), form.device === query.device ? 0 : 300);
    return () => clearTimeout(t);
  }, [form]);

  useEffect(() => {
    let live = true;
    api
      .alarms(toFilter(query))
      .then((r) => {
        if (!live) return;
        setRows(r);
        setError(null);
      })
      .catch((e) => live && setError(loadError(e)));
    return () => {
      live = false;
    };
  }, [query, historyTick]);

  useEffect(() => {
    api
      .snoozes()
      .then(setSnoozes)
      .catch(() => {});
  }, [historyTick, snoozeTick]);

  useEffect(() => {
    focused.current?.scrollIntoView?.({ block: "center" });
  }, [rows, focusAlarm]);

  // Opened on an alarm (the popup's Open): its sensor's chart around it comes up too, once.
  useEffect(() => {
    if (focusAlarm === null || openedFor.current === focusAlarm) return;
    const r = rows?.find((x) => x.id === focusAlarm);
    if (!r?.sensor) return;
    openedFor.current = focusAlarm;
    openSensor({ sensor: r.sensor, quantity: null, alarm: r });
  }, [rows, focusAlarm]);

  useEffect(() => {
    api
      .getSettings()
      .then((s) => {
        setCommentRequired(s.comment_required_critical);
        setSiteZones(Object.fromEntries(s.saveris.map((a) => [a.id, a.site_timezone ?? ""])));
      })
      .catch(() => {});
    api
      .places()
      .then((ps) => setTenantZones(Object.fromEntries(ps.filter((p) => p.timezone).map((p) => [p.sensor, p.timezone ?? ""]))))
      .catch(() => {});
  }, [reloadTick]);

  // Report and Export are written by the monitor (every row, no cap) into Downloads.
  const save = async (ask: () => Promise<Saved>) => {
    setSaving(true);
    setSaved(null);
    try {
      setSaved({ ok: true, text: (await ask()).message });
    } catch (e) {
      setSaved({ ok: false, text: errorText(e) });
    } finally {
      setSaving(false);
    }
  };
  const needsComment = (r: AlarmRow) => commentRequired && r.severity === "alarm";

  // Opened on an alarm that cannot be acknowledged without a comment (the popup's
  // Acknowledge does that): the dialog opens at once, once per alarm.
  useEffect(() => {
    if (!rows || focusAlarm === null || autoOpened.current === focusAlarm) return;
    const r = rows.find((x) => x.id === focusAlarm);
    if (r && r.acknowledged_ms === null && needsComment(r)) {
      autoOpened.current = focusAlarm;
      setAcking(r);
    }
  }, [rows, focusAlarm, commentRequired]);

  const acked = async () => {
    setAcking(null);
    setAckError(null);
    try {
      setRows(await api.alarms(toFilter(query)));
    } catch (e) {
      setAckError(errorText(e));
    }
  };

  const set = (patch: Partial<FilterForm>) => setForm({ ...form, ...patch });
  const badRange = form.from && form.to && (localInputToMs(form.from) ?? 0) > (localInputToMs(form.to) ?? 0);

  return (
    <section aria-labelledby="alarms-h">
      <h2 id="alarms-h" class="sr-only">
        Alarms
      </h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <div class="filter-row">
        <Select
          label="State"
          value={form.state}
          testid="filter-state"
          options={[
            { value: "", label: "All" },
            { value: "active", label: "Active" },
            { value: "cleared", label: "Cleared" },
          ]}
          onChange={(v) => set({ state: v as FilterForm["state"] })}
        />
        <Select
          label="Severity"
          value={form.severity}
          testid="filter-severity"
          options={[
            { value: "", label: "Any" },
            { value: "alarm", label: "Alarm" },
            { value: "warning", label: "Warning" },
            { value: "info", label: "Info" },
          ]}
          onChange={(v) => set({ severity: v as FilterForm["severity"] })}
        />
        <Select
          label="Source"
          value={form.source}
          testid="filter-source"
          options={[
            { value: "", label: "Any" },
            { value: "saveris", label: "Saveris" },
            { value: "element", label: "ELEMENT" },
            { value: "app", label: "Alarm Tray" },
          ]}
          onChange={(v) => set({ source: v as FilterForm["source"] })}
        />
        <Field label="Device or sensor" value={form.device} onInput={(v) => set({ device: v })} testid="filter-device" type="search" />
        </div>
        <div class="filter-row">
        <Field label="From" type="datetime-local" value={form.from} onInput={(v) => set({ from: v })} testid="filter-from" />
        <Field label="To" type="datetime-local" value={form.to} onInput={(v) => set({ to: v })} testid="filter-to" error={badRange ? "“To” is before “From”." : undefined} />
        <div class="filter-actions">
          <Button testid="filter-clear" onClick={() => setForm(EMPTY_FILTER)}>
            Clear
          </Button>
          <Button testid="export-csv" disabled={!rows || rows.length === 0 || saving} onClick={() => save(() => api.exportAlarms(toFilter(form)))}>
            Export CSV
          </Button>
          <Button testid="history-report" disabled={saving || !!badRange} onClick={() => save(() => api.report(...reportRange(form, Date.now())))}>
            Report
          </Button>
        </div>
        </div>
      </form>
      <Message text={error} testid="alarms-error" />
      <Message text={ackError} testid="ack-error" />
      {saved && <Message ok={saved.ok} text={saved.text} testid="history-saved" />}
      {acking && <AckDialog row={acking} required={needsComment(acking)} onDone={acked} onCancel={() => setAcking(null)} />}
      <SnoozeList snoozes={snoozes} onChanged={() => setSnoozeTick((t) => t + 1)} />
      {snoozing && (
        <SnoozeDialog
          row={snoozing}
          onDone={() => {
            setSnoozing(null);
            setSnoozeTick((t) => t + 1);
          }}
          onCancel={() => setSnoozing(null)}
        />
      )}
      {rows && rows.length === 0 && (
        <p class="muted" data-testid="alarms-empty">
          No alarms match these filters.
        </p>
      )}
      {rows && rows.length > 0 && (
        <div class="table-wrap">
          <table class="table alarms" data-testid="alarms-table">
            <thead>
              <tr>
                <th scope="col">State</th>
                <th scope="col">Severity</th>
                <th scope="col">Sensor</th>
                <th scope="col">Value</th>
                <th scope="col">Limit</th>
                <th scope="col">Raised</th>
                <th scope="col">Cleared</th>
                <th scope="col">Acknowledged</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => {
                const active = r.cleared_ms === null;
                return (
                  <tr
                    key={r.id}
                    ref={r.id === focusAlarm ? focused : undefined}
                    class={(r.id === focusAlarm ? "focus " : "") + (active ? "active" : "")}
                    data-testid={`alarm-row-${r.id}`}
                    data-alarm-id={r.id}
                  >
                    <td data-testid={`alarm-state-${r.id}`}>
                      <span class={`pill ${active ? "bad" : "neutral"}`}>{active ? "active" : "cleared"}</span>
                    </td>
                    <td>
                      <span class={`sev ${r.severity}`}>{r.severity}</span>
                      {r.steps.length > 1 && (
                        <div
                          class="muted small nowrap"
                          data-testid={`alarm-steps-${r.id}`}
                          title={r.steps.map((s) => `${s.severity} from ${formatTime(s.at_ms)}`).join("\n")}
                        >
                          {r.steps.map((s) => `${s.severity} ${compactTime(s.at_ms)}`).join(" → ")}
                        </div>
                      )}
                    </td>
                    <td data-testid={`alarm-sensor-${r.id}`}>
                      <div>{who(r)}</div>
                      {r.sensor && (
                        <button
                          type="button"
                          class="link small"
                          data-testid={`alarm-chart-${r.id}`}
                          aria-label={`Chart of ${who(r)} around this alarm`}
                          onClick={() => r.sensor && openSensor({ sensor: r.sensor, quantity: null, alarm: r })}
                        >
                          chart
                        </button>
                      )}
                      {active && snoozeKey(r) && !snoozes.some((z) => z.sensor === snoozeKey(r)) && (
                        <button type="button" class="link small" data-testid={`alarm-snooze-${r.id}`} aria-label={`Snooze ${who(r)}`} onClick={() => setSnoozing(r)}>
                          snooze
                        </button>
                      )}
                      {snoozes.some((z) => z.sensor === snoozeKey(r)) && (
                        <span class="pill neutral small" data-testid={`alarm-snoozed-${r.id}`}>
                          snoozed
                        </span>
                      )}
                      {r.condition && <div class="muted small">{r.condition}</div>}
                      <div class="muted small">{r.source}</div>
                    </td>
                    <td data-testid={`alarm-value-${r.id}`} class="num nowrap">
                      {formatValue(r.value, r.unit)}
                    </td>
                    <td>{r.limit ?? ""}</td>
                    <td class="nowrap" title={formatTime(r.raised_ms)} data-testid={`alarm-raised-${r.id}`}>
                      {compactTime(r.raised_ms)}
                      {siteTime(r.raised_ms, zoneOf(r)) && (
                        <div class="muted small" data-testid={`alarm-site-time-${r.id}`}>
                          {siteTime(r.raised_ms, zoneOf(r))}
                        </div>
                      )}
                    </td>
                    <td class="nowrap" title={formatTime(r.cleared_ms)} data-testid={`alarm-cleared-${r.id}`}>
                      {compactTime(r.cleared_ms)}
                    </td>
                    <td data-testid={`alarm-ack-${r.id}`}>
                      {r.acknowledged_ms !== null ? (
                        <span>
                          <span data-testid={`alarm-ack-user-${r.id}`}>{r.acknowledged_user ?? r.acknowledged_by ?? "acknowledged"}</span>
                          <div class="muted small" title={formatTime(r.acknowledged_ms)}>
                            {compactTime(r.acknowledged_ms)}
                            {r.acknowledged_user && r.acknowledged_by ? ` · ${r.acknowledged_by}` : ""}
                          </div>
                          {r.acknowledged_comment && (
                            <div class="ack-comment small" data-testid={`alarm-ack-comment-${r.id}`}>
                              “{r.acknowledged_comment}”
                            </div>
                          )}
                        </span>
                      ) : (
                        <Button testid={`ack-${r.id}`} kind={active ? "primary" : "plain"} onClick={() => setAcking(r)} aria-label={`Acknowledge alarm ${who(r)}`}>
                          Acknowledge
                        </Button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {rows.length >= PAGE_SIZE && <p class="muted">Showing the newest {PAGE_SIZE}; narrow the filters to see older alarms.</p>}
        </div>
      )}
    </section>
  );
}

export function UnparsedView() {
  const { historyTick } = useApp();
  const [rows, setRows] = useState<UnparsedRow[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .unparsed(200)
      .then(setRows)
      .catch((e) => setError(loadError(e)));
  }, [historyTick]);
  return (
    <section aria-labelledby="unparsed-h">
      <h2 id="unparsed-h" class="sr-only">
        Unparsed messages
      </h2>
      <p class="muted">Messages that arrived but could not be read. They are kept so you can report them.</p>
      <Message text={error} testid="unparsed-error" />
      {rows && rows.length === 0 && (
        <p class="muted" data-testid="unparsed-empty">
          No unparsed messages.
        </p>
      )}
      {rows && rows.length > 0 && (
        <table class="table unparsed" data-testid="unparsed-table">
          <thead>
            <tr>
              <th scope="col">Received</th>
              <th scope="col">Source</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-testid={`unparsed-row-${r.id}`}>
                <td class="nowrap">{formatTime(r.received_ms)}</td>
                <td>
                  {r.source}
                  <div class="muted small">{r.account}</div>
                </td>
                <td>
                  {/* Shown as text: Preact escapes it, so markup in a message is never run. */}
                  <pre class="raw" data-testid={`unparsed-raw-${r.id}`}>
                    {r.raw}
                  </pre>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The shift report's range: the filter's From/To, else the last 12 hours up to now. */
export function reportRange(f: FilterForm, nowMs: number): [number, number] {
  const to = localInputToMs(f.to) ?? nowMs;
  const from = localInputToMs(f.from) ?? to - 12 * 3_600_000;
  return [from, to];
}
