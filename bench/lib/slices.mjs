// Time slices. This host's speed swings by up to 2x for tens of seconds at a time (other tenants of
// the hypervisor): in one repetition of 2026-11-30 mailfront's full run cost 1.63 s of CPU and
// HAProxy's 1.67 s, in the next 3.10 and 2.68 s, for the same ~4,500 handshakes. A peer measured
// in one 4 s run after another peer's 4 s run can land in another state than it, so a ratio
// paired per repetition swung 0.73-1.21. So the sliced scenarios run every peer in turn for a
// short slice, several times per repetition (the order rotated each round), and a peer's figure
// is the sum of its slices: each peer sees the same mix of fast and slow moments.

/** Scenarios measured in slices: the per-CPU-second ones; rtt and full-hybrid run whole. */
export const SLICED = new Set(['full', 'resumed', 'reuse', 'bulk']);

/** `list` rotated left by k (each round of slices starts with the next peer). */
export const rotate = (list, k) => list.map((_, i) => list[(i + k) % list.length]);

/**
 * One figure from the slices of one peer and scenario. Every figure is a count per CPU-second
 * (value = count / cpu), so the whole is Σ(value x cpu) / Σcpu: the slices' counts over their
 * CPU. A slice without a figure (NaN: a wrong certificate, group or suite) voids the whole.
 */
export function mergeSlices(runs) {
  if (runs.length === 1) return { ...runs[0], slices: 1 };
  const sum = (k) => runs.reduce((s, r) => s + (r[k] ?? 0), 0);
  const cpu = sum('cpu');
  const counts = runs.map((r) => r.value * r.cpu);
  const count = counts.reduce((a, b) => a + b, 0);
  const merged = {
    ...runs[0],
    slices: runs.length,
    value: count / cpu,
    raw: sum('raw') / runs.length,
    cpu,
    cpuTicks: sum('cpuTicks'),
    failures: sum('failures'),
    cipher: [...new Set(runs.map((r) => r.cipher).filter(Boolean))].join(', ') || runs[0].cipher,
    errors: runs.find((r) => r.errors && Object.keys(r.errors).length)?.errors ?? runs[0].errors,
    sliceValues: runs.map((r) => r.value),
  };
  if ('group' in runs[0]) merged.group = [...new Set(runs.map((r) => r.group).filter(Boolean))].join(', ');
  if ('p99_ms' in runs[0]) merged.p99_ms = Math.max(...runs.map((r) => r.p99_ms));
  if ('busiest' in runs[0]) merged.busiest = [0, 1].map((i) => runs.reduce((sum, r) => sum + (r.busiest[i] ?? 0), 0)); // workers2
  if ('resumedShare' in runs[0]) merged.resumedShare = runs.reduce((s, r, i) => s + r.resumedShare * counts[i], 0) / count;
  return merged;
}

/**
 * One figure per member (a started peer or config, named by key(member)): `slices` rounds in which
 * every member runs `run(member, seconds)` for seconds/slices in turn, the order rotated by round +
 * `rotation`. A member whose run throws gets no figure (onError is told): fewer slices would not
 * compare. Returns Map key -> merged figure (mergeSlices).
 */
export async function runSliced(members, { slices, seconds, rotation = 0, key, run, onError }) {
  const runs = new Map(members.map((m) => [key(m), []]));
  for (let k = 0; k < slices; k++)
    for (const m of rotate(members, k + rotation)) {
      if (runs.get(key(m)) === null) continue;
      try {
        runs.get(key(m)).push(await run(m, seconds === undefined ? undefined : seconds / slices));
      } catch (e) {
        runs.set(key(m), null);
        onError(m, e);
      }
    }
  return new Map([...runs].filter(([, list]) => list?.length).map(([k, list]) => [k, mergeSlices(list)]));
}
