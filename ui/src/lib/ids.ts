/**
 * A short random id for new accounts, subscriptions and rules (stable once saved).
 * getRandomValues works in every context; randomUUID needs a secure one, which a custom
 * URL scheme in a webview may not be.
 */
export function newId(prefix = ""): string {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
