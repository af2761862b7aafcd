// Field rules of the configuration schema (schema.ts): each a zod transform
// from the raw YAML value to its checked form, failing with a message meant
// for the person editing the file. Pure: no file access.
import os from 'node:os';
import { z, type Zod } from './zod.js';
import { parseListenAddress, parseServerAddress } from './address.js';
import { suggestKey } from './suggest.js';

/** Listener and backend names: they appear in logs, metrics labels and routes. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const NAME_RULE = 'letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters';

/**
 * A strict object whose unknown-key issue carries one message line per
 * unknown key, in the order of issue.keys (load.ts splits them to place each
 * on its own key's line).
 */
export function obj<S extends Zod.ZodRawShape>(shape: S) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code !== 'unrecognized_keys') return undefined;
      return iss.keys
        .map((k) => {
          const hint = suggestKey(k, known);
          return hint ? `unknown key "${k}" (did you mean "${hint}"?)` : `unknown key "${k}" (known keys: ${known.join(', ')})`;
        })
        .join('\n');
    },
  });
}

export type Ctx = Zod.core.$RefinementCtx<unknown>;

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return `${typeof v} ${String(v)}`;
}

export function fail(ctx: Ctx, message: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message, input: undefined });
  return z.NEVER;
}

export const positiveInt = (dflt: number, min: number, max: number, what: string) =>
  z.any().optional().transform((v: unknown, ctx) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) return fail(ctx, `expected a whole number of ${what}, got ${describe(v)}`);
    if (v < min || v > max) return fail(ctx, `${v} is out of range (${min}..${max})`);
    return v;
  });

export const enumOf = <const T extends readonly [string, ...string[]]>(values: T, dflt?: T[number], why?: (v: unknown) => string | undefined) =>
  z.any().optional().transform((v: unknown, ctx): T[number] => {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v;
    const extra = why?.(v);
    if (extra) return fail(ctx, extra);
    if (v === undefined) return fail(ctx, `is required: one of ${values.join(', ')}`);
    const hint = typeof v === 'string' ? values.find((x) => x.toLowerCase() === v.toLowerCase()) : undefined;
    return fail(ctx, `${describe(v)} is not one of ${values.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`);
  });

export const str = (what: string) =>
  z.any().optional().transform((v: unknown, ctx): string => {
    if (v === undefined) return fail(ctx, `is required (${what})`);
    if (typeof v !== 'string' || v === '') return fail(ctx, `expected ${what}, got ${describe(v)}`);
    return v;
  });

export const ident = (what: string) =>
  z.any().optional().transform((v: unknown, ctx): string => {
    if (v === undefined) return fail(ctx, `is required (a ${what} name)`);
    if (typeof v !== 'string' || !NAME_RE.test(v)) return fail(ctx, `${describe(v)} is not a valid ${what} name (${NAME_RULE})`);
    return v;
  });

export const filePath = str('a file or directory path').refine((p) => !p.includes('\0'), 'a path cannot hold a NUL byte');

/** A list; a single scalar is taken as a list of one when `single` is set. */
export const list = <T extends Zod.ZodType>(item: T, opts: { min?: number; single?: boolean; what: string }) =>
  z
    .any()
    .optional()
    .transform((v: unknown, ctx) => {
      if (v === undefined || v === null) {
        if (opts.min) return fail(ctx, `is required: a list of ${opts.what}`);
        return [];
      }
      if (!Array.isArray(v)) {
        if (opts.single && typeof v === 'string') return [v];
        return fail(ctx, `expected a list of ${opts.what}, got ${describe(v)}`);
      }
      if (opts.min && v.length < opts.min) return fail(ctx, `must list at least ${opts.min} ${opts.what}`);
      return v;
    })
    .pipe(z.array(item));

export const listenAddress = z.any().optional().transform((v: unknown, ctx): string => {
  if (typeof v !== 'string') return fail(ctx, `expected "ip:port" or "[v6]:port", got ${describe(v)}`);
  const r = parseListenAddress(v);
  return typeof r === 'string' ? fail(ctx, r) : v;
});

export const serverAddress = z.any().optional().transform((v: unknown, ctx): string => {
  if (typeof v !== 'string') return fail(ctx, `expected "ip:port", "[v6]:port" or a unix socket path, got ${describe(v)}`);
  const r = parseServerAddress(v);
  return typeof r === 'string' ? fail(ctx, r) : v;
});


export const bool = (dflt: boolean) =>
  z.any().optional().transform((v: unknown, ctx): boolean => (v === undefined ? dflt : typeof v === 'boolean' ? v : fail(ctx, `expected true or false, got ${describe(v)}`)));

/** A mapping; absent or null is an empty one (every key then takes its default). */
export const mapping = <T extends Zod.ZodType<unknown, Record<string, unknown>>>(inner: T, what: string) =>
  z
    .any()
    .optional()
    .transform((v: unknown, ctx) => {
      if (v === undefined || v === null) return {};
      if (typeof v !== 'object' || Array.isArray(v)) return fail(ctx, `expected a mapping (${what}), got ${describe(v)}`);
      return v as Record<string, unknown>;
    })
    .pipe(inner);

export const workers = z
  .any()
  .optional()
  .transform((v: unknown, ctx): number => {
    if (v === undefined || v === 'auto') return os.availableParallelism();
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1024) return v;
    return fail(ctx, `expected auto or a whole number 1..1024, got ${describe(v)}`);
  });

/** managesieve fallback capabilities: a block of lines or a list of lines, each a quoted capability. */
export const sieveCapabilityLines = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string | undefined => {
    if (v === undefined) return undefined;
    const lines = typeof v === 'string' ? v.split(/\r?\n/) : Array.isArray(v) ? v : undefined;
    if (!lines || lines.some((l) => typeof l !== 'string')) return fail(ctx, `expected a list of capability lines, got ${describe(v)}`);
    const kept = (lines as string[]).map((l) => l.trim()).filter((l) => l !== '');
    const bad = kept.find((l) => !/^"[^"\r\n]+"( "[^"\r\n]*")?$/.test(l));
    if (bad !== undefined) return fail(ctx, `capability line ${JSON.stringify(bad)} is not of the form "NAME" or "NAME" "value"`);
    if (kept.length === 0) return fail(ctx, 'lists no capability');
    return kept.map((l) => `${l}\r\n`).join('');
  });

export const alpn = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(v)) return fail(ctx, `expected an ALPN id such as "imap", got ${describe(v)}`);
    return v;
  });

