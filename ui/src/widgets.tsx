// Small labelled form controls. Every input has a visible <label>, its error is tied to it
// with aria-describedby, and each carries a data-testid for the end-to-end tests.
import type { ButtonHTMLAttributes, ComponentChildren } from "preact";
import { useId } from "preact/hooks";

interface FieldProps {
  label: string;
  value: string;
  onInput: (v: string) => void;
  testid: string;
  error?: string;
  type?: "text" | "search" | "datetime-local";
  placeholder?: string;
  hint?: string;
  disabled?: boolean;
  inputMode?: "numeric" | "decimal" | "text" | "url";
  autoComplete?: string;
  wide?: boolean;
}

export function Field(p: FieldProps) {
  const id = useId();
  const errId = `${id}-err`;
  return (
    <div class={"field" + (p.wide ? " wide" : "") + (p.error ? " invalid" : "")}>
      <label for={id}>{p.label}</label>
      <input
        id={id}
        // The type only changes how the value is typed, not which attributes apply.
        type={(p.type ?? "text") as "text"}
        value={p.value}
        placeholder={p.placeholder}
        disabled={p.disabled}
        inputMode={p.inputMode}
        autoComplete={p.autoComplete ?? "off"}
        spellcheck={false}
        aria-invalid={p.error ? true : undefined}
        aria-describedby={p.error ? errId : undefined}
        data-testid={p.testid}
        onInput={(e) => p.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      {p.hint && !p.error && <small class="hint">{p.hint}</small>}
      {p.error && (
        <small class="error" id={errId} role="alert" data-testid={`${p.testid}-error`}>
          {p.error}
        </small>
      )}
    </div>
  );
}

interface CheckProps {
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  testid: string;
  disabled?: boolean;
}

export function Check(p: CheckProps) {
  const id = useId();
  return (
    <div class="check">
      <input
        id={id}
        type="checkbox"
        checked={p.checked}
        disabled={p.disabled}
        data-testid={p.testid}
        onChange={(e) => p.onChange((e.currentTarget as HTMLInputElement).checked)}
      />
      <label for={id}>{p.label}</label>
    </div>
  );
}

interface SelectProps {
  label: string;
  value: string;
  options: { value: string; label: string }[];
  onChange: (v: string) => void;
  testid: string;
  error?: string;
  disabled?: boolean;
}

export function Select(p: SelectProps) {
  const id = useId();
  const errId = `${id}-err`;
  return (
    <div class={"field" + (p.error ? " invalid" : "")}>
      <label for={id}>{p.label}</label>
      <select
        id={id}
        value={p.value}
        disabled={p.disabled}
        data-testid={p.testid}
        aria-invalid={p.error ? true : undefined}
        aria-describedby={p.error ? errId : undefined}
        onChange={(e) => p.onChange((e.currentTarget as HTMLSelectElement).value)}
      >
        {p.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {p.error && (
        <small class="error" id={errId} role="alert" data-testid={`${p.testid}-error`}>
          {p.error}
        </small>
      )}
    </div>
  );
}

/** A set of radio buttons: for choices that should all be visible (region, environment, login). */
export function Choice(p: {
  legend: string;
  value: string;
  options: { value: string; label: string }[];
  onChange: (v: string) => void;
  testid: string;
}) {
  const name = useId();
  return (
    <fieldset class="choice" data-testid={p.testid}>
      <legend>{p.legend}</legend>
      {p.options.map((o) => (
        <label key={o.value} class="radio">
          <input
            type="radio"
            name={name}
            value={o.value}
            checked={p.value === o.value}
            data-testid={`${p.testid}-${o.value}`}
            onChange={() => p.onChange(o.value)}
          />
          {o.label}
        </label>
      ))}
    </fieldset>
  );
}

export function Button(
  p: { testid: string; children: ComponentChildren; kind?: "primary" | "danger" | "plain" } & Omit<ButtonHTMLAttributes<HTMLButtonElement>, "children">,
) {
  const { testid, kind, children, ...rest } = p;
  return (
    <button type="button" class={`btn ${kind ?? "plain"}`} data-testid={testid} {...rest}>
      {children}
    </button>
  );
}

/** A result line: success or error, read out by screen readers. */
export function Message(p: { ok?: boolean; text: string | null; testid: string }) {
  if (!p.text) return null;
  return (
    <p class={p.ok ? "msg ok" : "msg bad"} role={p.ok ? "status" : "alert"} data-testid={p.testid}>
      {p.text}
    </p>
  );
}
