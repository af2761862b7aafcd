// Medians, formatting, and ratios paired per repetition with their spread.
//
// A ratio A ÷ B is computed in each repetition from the two peers' figures of that repetition
// (peers interleaved, so both saw the same machine), then reported as the median of those
// per-repetition ratios with their min-max and "±x%": the largest distance from the median to
// min or max, relative to the median. With 5 repetitions the min-max is a 94% confidence interval
// for the median whatever the distribution (1 - 2/2^5), so ±5% says the ratio is known to 5%.

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

/** { median, min, max, pm (± as a fraction of the median), n } of ratios, or undefined when empty. */
export function spread(ratios) {
  if (!ratios.length) return undefined;
  const m = median(ratios), lo = Math.min(...ratios), hi = Math.max(...ratios);
  return { median: m, min: lo, max: hi, pm: Math.max(hi - m, m - lo) / m, n: ratios.length };
}

/** "1.23× (1.18-1.27, ±3.5%)"; one repetition: "1.23× (1 rep)". */
export function ratioCell(s, d = 2) {
  if (!s) return '–';
  if (s.n === 1) return `${fmt(s.median, d)}× (1 rep)`;
  return `${fmt(s.median, d)}× (${fmt(s.min, d)}-${fmt(s.max, d)}, ±${fmt(s.pm * 100, 1)}%)`;
}
