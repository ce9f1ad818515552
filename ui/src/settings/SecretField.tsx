// A write-only secret input. The value typed goes to the keyring when the form is saved and
// the input is emptied; afterwards the field only says that a secret is stored, never what.
import { useEffect, useId, useState } from "preact/hooks";
import { api, errorText } from "../api";
import type { SecretKey } from "../types";
import { Button } from "../widgets";

interface Props {
  label: string;
  secretKey: SecretKey;
  /** What the user typed and has not saved yet (held by the form so Save can send it). */
  value: string;
  onInput: (v: string) => void;
  testid: string;
  /** Bumped by the form after it stored the secret, so the field asks again. */
  tick: number;
  /** The account is not saved yet: nothing can be stored or removed. */
  isNew?: boolean;
  error?: string;
}

export function SecretField(p: Props) {
  const id = useId();
  const [stored, setStored] = useState<boolean | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (p.isNew) {
      setStored(false);
      return;
    }
    let live = true;
    api
      .hasSecret(p.secretKey)
      .then((s) => live && setStored(s))
      .catch((e) => live && setErr(errorText(e)));
    return () => {
      live = false;
    };
  }, [p.secretKey.kind, p.secretKey.account, p.tick, p.isNew]);

  const remove = async () => {
    setBusy(true);
    setErr(null);
    try {
      await api.deleteSecret(p.secretKey);
      setStored(false);
    } catch (e) {
      setErr(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const error = p.error ?? err;
  return (
    <div class={"field secret" + (error ? " invalid" : "")}>
      <label for={id}>{p.label}</label>
      <input
        id={id}
        type="password"
        value={p.value}
        autoComplete="new-password"
        placeholder={stored ? "Type a new one to replace the stored one" : ""}
        data-testid={p.testid}
        onInput={(e) => p.onInput((e.currentTarget as HTMLInputElement).value)}
      />
      <div class="secret-state">
        {stored ? (
          <>
            <span class="stored" data-testid={`${p.testid}-stored`}>
              ✓ stored in the system keyring
            </span>
            <Button testid={`${p.testid}-remove`} kind="danger" disabled={busy} onClick={remove}>
              Remove
            </Button>
          </>
        ) : stored === false ? (
          <span class="hint" data-testid={`${p.testid}-missing`}>
            not stored yet — it is kept in the system keyring when you save
          </span>
        ) : null}
      </div>
      {error && (
        <small class="error" role="alert" data-testid={`${p.testid}-error`}>
          {error}
        </small>
      )}
    </div>
  );
}
