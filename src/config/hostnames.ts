// Host names in the configuration: route SNI patterns and the default
// certificate name. The host-name rule is the data plane's (native/sni.h);
// these fields word its refusals.
import { z } from './zod.js';
import { normalizeHostName, normalizeName } from '../certs/names.js';
import { describe, fail } from './fields.js';

/** An exact DNS name or "*.suffix" (the suffix of two labels or more); lowercased, no trailing dot. */
export function parseSniPattern(v: unknown): string | { error: string } {
  if (typeof v !== 'string' || v === '') return { error: `expected a host name or "*.domain", got ${describe(v)}` };
  const wildcard = v.startsWith('*.');
  if ((wildcard ? v.slice(2) : v).includes('*')) {
    return { error: `"${v}": only a whole leftmost label can be a wildcard, as in "*.example.org"` };
  }
  const n = v.trim() === v ? normalizeName(v) : null;
  return n ?? { error: `"${v}" is not a host name${wildcard ? ' pattern' : ''}` };
}

export const sniPattern = z.any().optional().transform((v: unknown, ctx): string => {
  const r = parseSniPattern(v);
  return typeof r === 'string' ? r : fail(ctx, r.error);
});

export const dnsName = z.any().optional().transform((v: unknown, ctx): string => {
  const n = typeof v === 'string' ? normalizeHostName(v) : null;
  return n ?? fail(ctx, `expected a DNS name such as mail.example.com, got ${describe(v)}`);
});
