// Must be the first import of main.tsx. Under a "C"/POSIX locale WebKitGTK reports
// navigator.language as "C", which Intl rejects with a RangeError — and uPlot builds an
// Intl.NumberFormat from it when its module loads, so the whole UI would fail to start.
// Fall back to a valid tag before any other module runs.
function valid(tag: string | undefined): boolean {
  if (!tag) return false;
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

if (typeof navigator !== "undefined" && !valid(navigator.language)) {
  const fallback = (navigator.languages ?? []).find(valid) ?? "en-US";
  Object.defineProperty(navigator, "language", { get: () => fallback, configurable: true });
  Object.defineProperty(navigator, "languages", { get: () => [fallback], configurable: true });
}

export {};
