// Address blocks (trusted_proxies, limits.exempt). The syntax is the data
// plane's (native/proxy_parse.h parse_cidr, through the parseCidr export); this
// file adds the configuration's own check (no bits past the prefix) and words
// the refusals.
import { z } from './zod.js';
import { loadAddon } from '../native.js';
import { describe, fail } from './fields.js';

/**
 * An address block for trusted_proxies: "10.0.0.0/8", "2001:db8::/32", or a
 * bare address (one host). Returns the normalized text or an error text.
 */
export function parseCidr(v: unknown): string | { error: string } {
  if (typeof v !== 'string' || v === '') return { error: `expected an address block such as "10.0.0.0/8" or "::1/128", got ${describe(v)}` };
  const [ip, prefixText, extra] = v.split('/');
  const addr = extra === undefined ? loadAddon().parseCidr(ip ?? '') : null;
  if (!addr) return { error: `"${v}" is not an address block (examples: 10.0.0.0/8, 127.0.0.1/32, ::1/128)` };
  const { bytes } = addr;
  const max = bytes.length * 8;
  if (prefixText === undefined) return `${ip}/${max}`;
  const block = loadAddon().parseCidr(v);
  if (!block) return { error: `"${v}": the prefix length must be 0..${max}` };
  const { prefix } = block;
  const hostBits = bytes.some((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return (b & (0xff >> keep)) !== 0;
  });
  if (hostBits) {
    const masked = bytes.map((b, i) => b & (0xff << (8 - Math.max(0, Math.min(8, prefix - i * 8)))) & 0xff);
    const text =
      bytes.length === 4
        ? masked.join('.')
        : Array.from({ length: 8 }, (_, i) => ((masked[2 * i]! << 8) | masked[2 * i + 1]!).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
    return { error: `"${v}" has bits set past its /${prefix} prefix (did you mean "${text}/${prefix}"?)` };
  }
  return `${ip}/${prefix}`;
}

export const cidr = z.any().optional().transform((v: unknown, ctx): string => {
  const r = parseCidr(v);
  return typeof r === 'string' ? r : fail(ctx, r.error);
});

