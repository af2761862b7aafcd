// Medians, formatting, and ratios paired per repetition with their spread.
//
// A ratio A ÷ B is computed in each repetition from the two peers' figures of that repetition
// (peers interleaved, so both saw the same machine), then reported as the median of those
// per-repetition ratios with a distribution-free confidence interval for that median, from the
// order statistics: min-max for 5-7 repetitions (coverage 94-98%), second smallest to second
// largest for 8-10 (93-98%), and so on (the widest cut with coverage >= 92.5%); below 5 repetitions,
// min-max with less coverage. "±x%" is the farther end of the interval from the median, relative
// to it: ±5% says the ratio is known to about 5%. More repetitions narrow it.

export const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
export const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');

/** Values of `key` in runs, finite ones only. */
const values = (runs, key) => (runs ?? []).map((r) => r[key]).filter(Number.isFinite);

/** "median (min-max)" of runs' `key`. */
export function cell(runs, key = 'value', d = 0) {
  const v = values(runs, key);
  if (!v.length) return '–';
  if (v.length === 1) return fmt(v[0], d);
  return `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)})`;
}
export const med = (runs, key = 'value') => { const v = values(runs, key); return v.length ? median(v) : NaN; };

/** Per-repetition ratios a[key] ÷ b[key], pairing runs by their `rep` field. */
export function pairedRatios(aRuns, bRuns, key = 'value') {
  const byRep = new Map((bRuns ?? []).map((r) => [r.rep, r[key]]));
  return (aRuns ?? []).map((r) => r[key] / byRep.get(r.rep)).filter(Number.isFinite);
}

/** Coverage of [x(k), x(n+1-k)] (1-based order statistics) as an interval for the median of n values. */
function coverage(n, k) {
  let below = 0, c = 1; // P(Binomial(n, 1/2) <= k - 1)
  for (let i = 0; i < k; i++) { below += c; c = (c * (n - i)) / (i + 1); }
  return 1 - (2 * below) / 2 ** n;
}

/**
 * { median, min, max (the interval's ends), coverage, pm (± as a fraction of the median), n } of
 * ratios, or undefined when empty.
 */
export function spread(ratios) {
  if (!ratios.length) return undefined;
  const v = [...ratios].sort((x, y) => x - y), n = v.length, m = median(v);
  let k = 1;
  while (k + 1 <= n / 2 && coverage(n, k + 1) >= 0.925) k++;
  const lo = v[k - 1], hi = v[n - k];
  return { median: m, min: lo, max: hi, coverage: coverage(n, k), pm: Math.max(hi - m, m - lo) / m, n };
}

/** "1.23× (1.18-1.27, ±3.5%)"; below 5 repetitions the count is added, one repetition: "1.23× (1 rep)". */
export function ratioCell(s, d = 2) {
  if (!s) return '–';
  if (s.n === 1) return `${fmt(s.median, d)}× (1 rep)`;
  return `${fmt(s.median, d)}× (${fmt(s.min, d)}-${fmt(s.max, d)}, ±${fmt(s.pm * 100, 1)}%${s.n < 5 ? `, ${s.n} reps` : ''})`;
}
