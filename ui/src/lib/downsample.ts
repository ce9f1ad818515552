// Sparklines draw at most a few hundred pixels: more points only cost time. Min/max per
// bucket keeps spikes visible (an average would hide the very breach the user looks for).

export const MAX_POINTS = 300;

/** Reduces `points` (sorted by time) to at most `max` points, keeping each bucket's min and max. */
export function downsample(points: [number, number][], max: number = MAX_POINTS): [number, number][] {
  const clean = points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (clean.length <= max) return clean;
  const buckets = Math.max(1, Math.floor(max / 2));
  const size = clean.length / buckets;
  const out: [number, number][] = [];
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(clean.length, Math.floor((b + 1) * size));
    if (end <= start) continue;
    let lo = start;
    let hi = start;
    for (let i = start + 1; i < end; i++) {
      if (clean[i][1] < clean[lo][1]) lo = i;
      if (clean[i][1] > clean[hi][1]) hi = i;
    }
    if (lo === hi) out.push(clean[lo]);
    else if (lo < hi) out.push(clean[lo], clean[hi]);
    else out.push(clean[hi], clean[lo]);
  }
  return out;
}
