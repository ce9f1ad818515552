/** A short random id for new accounts, subscriptions and rules (stable once saved). */
export function newId(prefix = ""): string {
  const raw =
    typeof crypto !== "undefined" && "randomUUID" in crypto
      ? crypto.randomUUID().replace(/-/g, "")
      : Math.random().toString(16).slice(2) + Date.now().toString(16);
  return prefix + raw.slice(0, 12);
}
