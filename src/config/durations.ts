// Durations in the configuration: "500ms", "10s", "31m", "1h30m" -> milliseconds.
import { z } from './zod.js';
import { describe, fail } from './fields.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const MAX_MS = 2 ** 31 - 1;

/** "10s", "31m", "500ms", "1h", "1h30m" -> milliseconds; an error text otherwise. */
export function parseDuration(v: unknown): number | string {
  if (typeof v === 'number') return `a duration needs a unit: write "${v}s" or "${v}ms" (units: ms, s, m, h)`;
  if (typeof v !== 'string') return `expected a duration such as "10s", got ${describe(v)}`;
  const text = v.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return `a duration needs a unit: write "${text}s" or "${text}ms" (units: ms, s, m, h)`;
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return `"${v}" is not a duration (examples: 500ms, 10s, 31m, 1h)`;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  ms = Math.round(ms);
  if (ms <= 0) return `"${v}" must be longer than zero`;
  if (ms > MAX_MS) return `"${v}" is too long (at most 24 days)`;
  return ms;
}

export const duration = (dflt: string) =>
  z.any().optional().transform((v: unknown, ctx) => {
    const r = parseDuration(v === undefined ? dflt : v);
    return typeof r === 'string' ? fail(ctx, r) : r;
  });

