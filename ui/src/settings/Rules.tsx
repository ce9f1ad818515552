// Threshold rules with inline validation. A rule targets "all sensors" or one that has been
// seen (latest values, ELEMENT subscriptions); a target that exists nowhere is refused.
import { useEffect, useState } from "preact/hooks";
import { api, errorText, loadError, updateSettings } from "../api";
import { useApp } from "../context";
import { newId } from "../lib/ids";
import { formatValue } from "../lib/format";
import { tid } from "../lib/testid";
import { UNIT_CHOICES, canonicalUnit, compatibleUnits, suggestUnit } from "../lib/units";
import {
  draftToRule,
  emptyRuleDraft,
  ruleToDraft,
  targetKey,
  validateRule,
  type Errors,
  type RuleDraft,
} from "../lib/validate";
import type { LatestValue, Limit, Settings, ThresholdRule } from "../types";
import { Button, Check, Field, Message, Select } from "../widgets";

export function describeLimit(l: Limit, unit?: string): string {
  const u = unit ? ` ${canonicalUnit(unit)}` : "";
  switch (l.type) {
    case "above":
      return `above ${l.value}${u}`;
    case "below":
      return `below ${l.value}${u}`;
    case "outside":
      return `outside ${l.low} … ${l.high}${u}`;
    case "no_data":
      return `no value for ${l.minutes} min`;
  }
}

export interface TargetOption {
  value: string;
  label: string;
}

/** The targets a rule may have: all, every sensor seen, ELEMENT devices and tags subscribed to. */
export function targetOptions(settings: Settings, latest: LatestValue[]): TargetOption[] {
  const opts: TargetOption[] = [{ value: "all", label: "All sensors" }];
  const seen = new Set<string>(["all"]);
  const add = (value: string, label: string) => {
    if (!seen.has(value)) {
      seen.add(value);
      opts.push({ value, label });
    }
  };
  for (const l of latest) {
    const custom = settings.sensors[l.sensor]?.name;
    const name = custom || l.name || l.sensor;
    add(`sensor:${l.sensor}`, `Sensor ${name}${l.quantity ? ` (${l.quantity})` : ""}`);
  }
  for (const a of settings.element) {
    for (const s of a.subscriptions) {
      if (s.scope.type === "device") add(`device:${s.scope.id}`, `ELEMENT device ${s.scope.id}`);
      if (s.scope.type === "tag") add(`tag:${s.scope.id}`, `ELEMENT tag ${s.scope.id}`);
    }
  }
  return opts;
}

/** The fields seen for a rule target (value `all`, `sensor:X`, `device:X`, `tag:X`), each with
 *  its newest value, ids and counters left out by the backend already. A tag's devices are
 *  not known here: every ELEMENT field is offered then. */
export function fieldsForTarget(target: string, latest: LatestValue[]): { quantity: string; value: number; unit: string | null }[] {
  const [type, ...rest] = target.split(":");
  const id = rest.join(":");
  const newest = new Map<string, LatestValue>();
  for (const l of latest) {
    if (!l.quantity) continue;
    const hit =
      type === "all" ||
      ((type === "sensor" || type === "device") && (l.sensor === id || l.sensor.startsWith(`${id}:`) || l.sensor.startsWith(`${id}/`))) ||
      (type === "tag" && l.source === "element");
    if (!hit) continue;
    const prev = newest.get(l.quantity.toLowerCase());
    if (!prev || prev.at_ms < l.at_ms) newest.set(l.quantity.toLowerCase(), l);
  }
  return [...newest.values()]
    .map((l) => ({ quantity: l.quantity ?? "", value: l.value, unit: l.unit }))
    .sort((a, b) => a.quantity.localeCompare(b.quantity));
}

/** What the editor must say about a rule's unit against the fields seen for its target:
 *  the fields whose unit cannot be compared (the rule never fires on them) and those with
 *  no unit at all (compared as received). */
export function unitProblems(
  unit: string,
  quantity: string,
  fields: { quantity: string; unit: string | null }[],
): { incompatible: string[]; unitless: string[] } {
  const q = quantity.trim().toLowerCase();
  const relevant = fields.filter((f) => !q || f.quantity.toLowerCase() === q);
  if (!unit.trim()) return { incompatible: [], unitless: [] };
  return {
    incompatible: relevant.filter((f) => f.unit && !compatibleUnits(f.unit, unit)).map((f) => `${f.quantity} (${f.unit})`),
    unitless: relevant.filter((f) => !f.unit).map((f) => f.quantity),
  };
}

const TEMPERATURES = ["°C", "°F", "K"];

/** Issue 20: a rule without a unit whose target's values come in a unit (or, for an ELEMENT
 *  field without one, likely do): the editor asks which unit the limits are in, since an
 *  8 typed as °C compared with a °F sensor is not what was meant. `seen` are the values'
 *  units (suggested ones marked "?"), `choices` what the picker offers, `suggested` first. */
export function unitToConfirm(
  unit: string,
  quantity: string,
  fields: { quantity: string; unit: string | null }[],
): { seen: string[]; choices: string[]; suggested: string } | null {
  if (unit.trim()) return null;
  const q = quantity.trim().toLowerCase();
  const relevant = fields.filter((f) => !q || f.quantity.toLowerCase() === q);
  const units: string[] = [];
  const seen: string[] = [];
  for (const f of relevant) {
    const sent = canonicalUnit(f.unit);
    const u = sent || suggestUnit(f.quantity) || "";
    if (!u) continue;
    if (!units.includes(u)) units.push(u);
    const label = sent ? `${f.quantity} in ${u}` : `${f.quantity} (likely ${u}?)`;
    if (!seen.includes(label)) seen.push(label);
  }
  if (!units.length) return null;
  const choices = [...units];
  // Temperatures convert into each other: offer all three whenever one is seen.
  if (units.some((u) => TEMPERATURES.includes(u))) for (const t of TEMPERATURES) if (!choices.includes(t)) choices.push(t);
  return { seen, choices, suggested: units[0] };
}

export function RulesSection({ settings, reload }: { settings: Settings; reload: () => void }) {
  const { historyTick } = useApp();
  const [latest, setLatest] = useState<LatestValue[]>([]);
  const [editing, setEditing] = useState<RuleDraft | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api
      .latestValues()
      .then(setLatest)
      .catch((e) => setError(loadError(e)));
  }, [historyTick]);

  const options = targetOptions(settings, latest);
  const label = (r: ThresholdRule) => options.find((o) => o.value === targetKey(r.target))?.label ?? targetKey(r.target);

  const remove = async (id: string) => {
    setError(null);
    try {
      await updateSettings((s) => {
        s.rules = s.rules.filter((r) => r.id !== id);
      });
      reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  const toggle = async (id: string, enabled: boolean) => {
    setError(null);
    try {
      await updateSettings((s) => {
        const r = s.rules.find((x) => x.id === id);
        if (r) r.enabled = enabled;
      });
      reload();
    } catch (e) {
      setError(errorText(e));
    }
  };

  return (
    <section aria-labelledby="rules-h">
      <h2 id="rules-h">Threshold rules</h2>
      <Message text={error} testid="rules-error" />
      {settings.rules.length === 0 ? (
        <p class="muted">No rule yet. A rule raises a popup when a value crosses a limit.</p>
      ) : (
        <table class="table" data-testid="rules-table">
          <thead>
            <tr>
              <th scope="col">On</th>
              <th scope="col">Name</th>
              <th scope="col">Target</th>
              <th scope="col">Limit</th>
              <th scope="col">Hysteresis</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {settings.rules.map((r) => (
              <tr key={r.id} data-testid={`rule-${tid(r.id)}`}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`Rule ${r.name} enabled`}
                    checked={r.enabled}
                    data-testid={`rule-enabled-${tid(r.id)}`}
                    onChange={(e) => toggle(r.id, (e.currentTarget as HTMLInputElement).checked)}
                  />
                </td>
                <td data-testid={`rule-name-${tid(r.id)}`}>{r.name}</td>
                <td>
                  {label(r)}
                  {r.quantity && <span class="muted"> · {r.quantity}</span>}
                </td>
                <td>{describeLimit(r.limit, r.unit)}</td>
                <td>{r.hysteresis}</td>
                <td class="nowrap">
                  <Button testid={`rule-edit-${tid(r.id)}`} onClick={() => setEditing(ruleToDraft(r))}>
                    Edit
                  </Button>
                  <Button testid={`rule-delete-${tid(r.id)}`} kind="danger" onClick={() => remove(r.id)}>
                    Delete
                  </Button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing ? (
        <RuleEditor
          draft={editing}
          options={options}
          latest={latest}
          otherNames={settings.rules.filter((r) => r.id !== editing.id).map((r) => r.name)}
          onCancel={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            reload();
          }}
        />
      ) : (
        <Button testid="rule-add" kind="primary" onClick={() => setEditing(emptyRuleDraft(newId("r")))}>
          Add rule
        </Button>
      )}
    </section>
  );
}

export function RuleEditor(p: {
  draft: RuleDraft;
  options: TargetOption[];
  /** Latest values: the fields offered for the target. */
  latest?: LatestValue[];
  otherNames: string[];
  onCancel: () => void;
  onDone: () => void;
}) {
  const [d, setD] = useState<RuleDraft>(p.draft);
  const [touched, setTouched] = useState(false);
  const [saveError, setSaveError] = useState<string | null>(null);
  const targets = new Set(p.options.map((o) => o.value));
  const errors: Errors = validateRule(d, targets, p.otherNames);
  // Inline: a field's error shows once the user has typed in the form or tried to save.
  const shown = touched ? errors : {};
  const set = (patch: Partial<RuleDraft>) => {
    setD({ ...d, ...patch });
    setTouched(true);
  };

  const fields = fieldsForTarget(d.target, p.latest ?? []);
  const problems = unitProblems(d.unit, d.quantity, fields);
  const confirm = unitToConfirm(d.unit, d.quantity, fields);
  const unitOpts = [{ value: "", label: "none: compare the number as received" }, ...UNIT_CHOICES.map((u) => ({ value: u, label: u }))];
  for (const f of fields) {
    const u = canonicalUnit(f.unit);
    if (u && !unitOpts.some((o) => o.value === u)) unitOpts.push({ value: u, label: u });
  }
  if (d.unit && !unitOpts.some((o) => o.value === d.unit)) unitOpts.push({ value: d.unit, label: d.unit });
  const opts = [...p.options];
  if (!targets.has(d.target)) opts.push({ value: d.target, label: `${d.target} (not seen)` });

  const save = async () => {
    setTouched(true);
    setSaveError(null);
    if (Object.keys(errors).length) return;
    const rule = draftToRule(d);
    try {
      await updateSettings((s) => {
        const i = s.rules.findIndex((r) => r.id === rule.id);
        if (i >= 0) s.rules[i] = rule;
        else s.rules.push(rule);
      });
      p.onDone();
    } catch (e) {
      setSaveError(errorText(e));
    }
  };

  const numeric = (label: string, key: keyof RuleDraft, testid: string, hint?: string) => (
    <Field
      label={label}
      value={String(d[key])}
      onInput={(v) => set({ [key]: v } as Partial<RuleDraft>)}
      testid={testid}
      inputMode="decimal"
      error={shown[key]}
      hint={hint}
    />
  );

  return (
    <div class="editor" data-testid="rule-editor">
      <h3>{p.draft.name ? `Edit rule “${p.draft.name}”` : "New rule"}</h3>
      <div class="row">
        <Field label="Name" value={d.name} onInput={(v) => set({ name: v })} testid="rule-name" error={shown.name} />
        <Check label="Enabled" checked={d.enabled} onChange={(v) => set({ enabled: v })} testid="rule-enabled" />
      </div>
      <div class="row">
        <Select label="Target" value={d.target} options={opts} onChange={(v) => set({ target: v })} testid="rule-target" error={shown.target} />
        <Field
          label="Quantity or field"
          value={d.quantity}
          onInput={(v) => set({ quantity: v })}
          testid="rule-quantity"
          placeholder="any (main value)"
          hint="e.g. air_temperature; pick one of the fields below"
        />
      </div>
      {fields.length > 0 && (
        <div class="row field-choices" data-testid="rule-fields">
          <span class="muted small">Fields seen for this target:</span>
          {fields.map((f) => (
            <button
              type="button"
              key={f.quantity}
              class={"chip" + (f.quantity.toLowerCase() === d.quantity.trim().toLowerCase() ? " selected" : "")}
              data-testid={`rule-field-${tid(f.quantity)}`}
              onClick={() => set({ quantity: f.quantity })}
            >
              {f.quantity} <span class="muted">{formatValue(f.value, f.unit)}</span>
            </button>
          ))}
        </div>
      )}
      {d.limitType !== "no_data" && !d.quantity.trim() && d.target === "all" && (
        <p class="warn small" role="note" data-testid="rule-all-fields-warning">
          Target “All sensors” with no field named: this one limit is compared with every sensor's value — temperatures, but
          also humidity, battery and radio (RSSI) figures. Name a field, or choose a unit so that values in other units are
          skipped.
        </p>
      )}
      {d.limitType !== "no_data" && !d.quantity.trim() && (
        <p class="warn small" role="note" data-testid="rule-any-field-warning">
          No field named: the rule compares each reading's main value — temperature first, else the field chosen as “main” on the
          dashboard. An ELEMENT reading has several fields (humidity, battery…); name the one you mean.
        </p>
      )}
      <div class="row">
        <Select
          label="Unit of the limits"
          value={d.unit}
          options={unitOpts}
          onChange={(v) => set({ unit: v })}
          testid="rule-unit"
        />
      </div>
      {d.limitType !== "no_data" && confirm && (
        <div class="warn small" role="group" aria-label="Unit of the limits" data-testid="rule-unit-confirm">
          <p>
            Which unit are the limits in? Values seen: {confirm.seen.join(", ")}. Without a unit the number is compared as
            received.
          </p>
          {confirm.choices.map((u) => (
            <button
              type="button"
              key={u}
              class={"chip" + (u === confirm.suggested ? " selected" : "")}
              data-testid={`rule-unit-confirm-${tid(u)}`}
              onClick={() => set({ unit: u })}
            >
              {u}
            </button>
          ))}
        </div>
      )}
      {d.limitType !== "no_data" && problems.incompatible.length > 0 && (
        <p class="warn small" role="note" data-testid="rule-unit-warning">
          Limits in {d.unit} cannot be compared with {problems.incompatible.join(", ")}: °C, °F and K convert into each other,
          other units compare only with the same unit. This rule will not fire on those values.
        </p>
      )}
      {d.limitType !== "no_data" && problems.unitless.length > 0 && (
        <p class="muted small" role="note" data-testid="rule-unitless-note">
          No unit known for {problems.unitless.join(", ")}: compared as received. Set the field's unit on its dashboard card.
        </p>
      )}
      <div class="row">
        <Select
          label="Raise when the value is"
          value={d.limitType}
          testid="rule-limit-type"
          options={[
            { value: "above", label: "above a limit" },
            { value: "below", label: "below a limit" },
            { value: "outside", label: "outside a range" },
            { value: "no_data", label: "missing for a while" },
          ]}
          onChange={(v) => set({ limitType: v as RuleDraft["limitType"] })}
        />
        {(d.limitType === "above" || d.limitType === "below") && numeric("Limit", "value", "rule-value")}
        {d.limitType === "outside" && numeric("Lower limit", "low", "rule-low")}
        {d.limitType === "outside" && numeric("Upper limit", "high", "rule-high")}
        {d.limitType === "no_data" && numeric("Minutes without a value", "minutes", "rule-minutes")}
      </div>
      <div class="row">
        {numeric("Hysteresis", "hysteresis", "rule-hysteresis", "Clears only this far back inside the limit")}
        {numeric("Values in a row", "minCount", "rule-min-count", "Breaching values needed to raise")}
        {numeric("Lasting at least (s)", "minDurationSecs", "rule-min-duration", "0 = at once")}
      </div>
      <div class="actions">
        <span class="spacer" />
        <Button testid="rule-cancel" onClick={p.onCancel}>
          Cancel
        </Button>
        <Button testid="rule-save" kind="primary" onClick={save}>
          Save rule
        </Button>
      </div>
      <Message text={saveError} testid="rule-save-error" />
    </div>
  );
}
