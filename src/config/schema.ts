// The configuration: its YAML shape (snake_case keys, the contract of
// DESIGN.md), defaults, validation, and the normalized camelCase Config the
// rest of the control plane uses. Pure: no file access (see load.ts).
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z, type Zod } from './zod.js';
import type { Protocol } from '../native.js';
import { isHostname, parseListenAddress, parseServerAddress } from './address.js';

// ---------------------------------------------------------------- Config type

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ListenerConfig {
  name: string;
  protocol: Protocol;
  /** "ip:port" or "[v6]:port". */
  listen: string[];
  /** Name of the default backend pool (a key of Config.backends). */
  backend: string;
  /** ALPN id override; default by protocol ("imap", "pop3", "managesieve"). */
  alpn?: string;
  /** managesieve only: fallback capability lines (CRLF-terminated) when the backend cannot be probed. */
  sieveCapabilities?: string;
  /** Behind an L4 balancer: each connection starts with a PROXY header (v1 or v2) naming the client. */
  acceptProxy: boolean;
  /** CIDR blocks allowed to send that header ("10.0.0.0/8", "::1/128"); required with acceptProxy. */
  trustedProxies: string[];
}

export interface BackendConfig {
  /** "ip:port", "[v6]:port" or an absolute unix socket path (no host names: the data plane does not resolve). */
  servers: string[];
  proxyProtocol: ProxyProtocol;
  balance: 'first' | 'roundrobin';
  /** Milliseconds between health checks of each server (connect, read the greeting); absent: no checks. */
  healthCheckMs?: number;
}

export interface RouteConfig {
  /** Lowercase exact name, or "*.suffix" (one label). */
  sni: string;
  /** Listener name -> backend name. */
  backends: Record<string, string>;
}

export interface Config {
  certificates: {
    /** Let's Encrypt trees holding live/<lineage>/ (absolute paths). */
    letsencrypt: string[];
    /** Directories of combined PEM files (absolute paths). */
    pemDirs: string[];
    pairs: { cert: string; key: string }[];
    /** DNS name whose certificate is served without SNI / for unknown names (lowercase). */
    default?: string;
    unknownSni: 'default' | 'reject';
    watch: boolean;
  };
  listeners: ListenerConfig[];
  /** In file order. */
  backends: Record<string, BackendConfig>;
  /** First match wins. */
  routes: RouteConfig[];
  tls: {
    minVersion: 'TLSv1.2' | 'TLSv1.3';
    /** What the file said: "intermediate", "modern" or "custom". */
    cipherProfile: 'intermediate' | 'modern' | 'custom';
    /** OpenSSL cipher string for TLS 1.2 (resolved from the profile). */
    ciphers: string;
    /** OpenSSL ciphersuites string for TLS 1.3. */
    ciphersuites: string;
    /** Key-exchange groups (OpenSSL list): the file's, else the default for the running library (load.ts). */
    groups: string;
    /** Absolute path of a session-ticket key file, if any. */
    ticketKeys?: string;
  };
  timeouts: { handshakeMs: number; pretlsMs: number; connectMs: number; idleMs: number; drainMs: number };
  limits: {
    connections: number;
    perClient: number;
    lineBytes: number;
    /** Follow logins after TLS: login log lines, mailfront_auth_total, bans. */
    loginTracking: boolean;
    /** Failed logins (count) within windowMs that ban the client network for banMs; count 0: no bans. */
    loginFailures: { count: number; windowMs: number; banMs: number };
    /** New connections per minute per client network; 0: unlimited. */
    connectionRate: number;
    /** An IPv6 client network is its /ipv6Prefix. */
    ipv6Prefix: number;
    /** CIDR blocks no per-client limit applies to (normalized "ip/prefix"). */
    exempt: string[];
  };
  /** Worker threads ("auto" resolved to os.availableParallelism()). */
  workers: number;
  metrics: { listen: string } | false;
  log: { level: LogLevel; usernames: boolean };
}

// ---------------------------------------------------------------- constants

export const PROTOCOLS = ['imaps', 'pop3s', 'imap', 'pop3', 'managesieve'] as const satisfies readonly Protocol[];
/** PROXY header to a backend; v2-ssl is HAProxy's send-proxy-v2-ssl (v2 with the TLS TLVs). */
export const PROXY_PROTOCOLS = ['off', 'v1', 'v2', 'v2-ssl'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Mozilla "intermediate" TLS 1.2 suites (server-side TLS guidelines 5.7 list,
 * ECDHE only). The DHE suites of older revisions are left out on purpose: they
 * need a dhparam file, cost far more CPU per handshake than ECDHE, and every
 * client of the intermediate profile's baseline speaks ECDHE.
 */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** TLS 1.3 suites; AES-128 first: cheapest with AES-NI, same security margin in practice. */
export const DEFAULT_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
const TLS13_SUITES = new Set([
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_CCM_SHA256',
  'TLS_AES_128_CCM_8_SHA256',
]);

export const DEFAULTS = {
  timeouts: { handshake: '10s', pretls: '60s', connect: '5s', idle: '31m', drain: '30s' },
  limits: {
    connections: 100000,
    per_client: 200,
    line_bytes: 8192,
    login_failures: { count: 10, window: '10m', ban: '15m' },
    connection_rate: 600,
    ipv6_prefix: 64,
  },
  metricsListen: '127.0.0.1:9187',
} as const;

/** Listener and backend names: they appear in logs, metrics labels and routes. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_RULE = 'letters, digits, "_", "." and "-", starting with a letter or digit, at most 63 characters';

// ---------------------------------------------------------------- "did you mean"

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** Names people reach for from other tools (HAProxy, nginx, Dovecot), by normalized spelling. */
const ALIASES: Record<string, string> = {
  certdir: 'pem_dirs', certdirs: 'pem_dirs', crt: 'pem_dirs', crtdir: 'pem_dirs', crtdirs: 'pem_dirs',
  pemdir: 'pem_dirs', pem: 'pem_dirs', pems: 'pem_dirs', le: 'letsencrypt', certbot: 'letsencrypt',
  acme: 'letsencrypt', cert: 'certificates', certs: 'certificates', ssl: 'tls', bind: 'listen',
  address: 'listen', addresses: 'listen', port: 'listen', upstream: 'backends', upstreams: 'backends',
  server: 'servers', proxy: 'proxy_protocol', sendproxy: 'proxy_protocol', proxyv2: 'proxy_protocol',
  threads: 'workers', logging: 'log', loglevel: 'level', minprotocol: 'min_version', protocols: 'min_version',
  ciphersuite: 'ciphersuites', tls13ciphers: 'ciphersuites', maxconn: 'connections', perip: 'per_client',
  defaultcert: 'default', sni: 'routes', route: 'routes', fallback: 'unknown_sni', timeout: 'timeouts',
};

function norm(key: string): string {
  return key.toLowerCase().replace(/[_\-\s]/g, '');
}

/** The known key that `key` most likely meant, or undefined. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const n = norm(key);
  for (const k of known) if (norm(k) === n || norm(k) === `${n}s` || `${norm(k)}s` === n) return k;
  const alias = ALIASES[n];
  if (alias && known.includes(alias)) return alias;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = levenshtein(n, norm(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(norm(best).length / 3)) ? best : undefined;
}

/**
 * A strict object whose unknown-key issue carries one message line per
 * unknown key, in the order of issue.keys (load.ts splits them to place each
 * on its own key's line).
 */
function obj<S extends Zod.ZodRawShape>(shape: S) {
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

// ---------------------------------------------------------------- field types

type Ctx = Zod.core.$RefinementCtx<unknown>;

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return `${typeof v} ${String(v)}`;
}

function fail(ctx: Ctx, message: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message, input: undefined });
  return z.NEVER;
}

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

const duration = (dflt: string) =>
  z.any().optional().transform((v: unknown, ctx) => {
    const r = parseDuration(v === undefined ? dflt : v);
    return typeof r === 'string' ? fail(ctx, r) : r;
  });

const positiveInt = (dflt: number, min: number, max: number, what: string) =>
  z.any().optional().transform((v: unknown, ctx) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) return fail(ctx, `expected a whole number of ${what}, got ${describe(v)}`);
    if (v < min || v > max) return fail(ctx, `${v} is out of range (${min}..${max})`);
    return v;
  });

const enumOf = <const T extends readonly [string, ...string[]]>(values: T, dflt?: T[number], why?: (v: unknown) => string | undefined) =>
  z.any().optional().transform((v: unknown, ctx): T[number] => {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v;
    const extra = why?.(v);
    if (extra) return fail(ctx, extra);
    if (v === undefined) return fail(ctx, `is required: one of ${values.join(', ')}`);
    const hint = typeof v === 'string' ? values.find((x) => x.toLowerCase() === v.toLowerCase()) : undefined;
    return fail(ctx, `${describe(v)} is not one of ${values.join(', ')}${hint ? ` (did you mean "${hint}"?)` : ''}`);
  });

const str = (what: string) =>
  z.any().optional().transform((v: unknown, ctx): string => {
    if (v === undefined) return fail(ctx, `is required (${what})`);
    if (typeof v !== 'string' || v === '') return fail(ctx, `expected ${what}, got ${describe(v)}`);
    return v;
  });

const ident = (what: string) =>
  z.any().optional().transform((v: unknown, ctx): string => {
    if (v === undefined) return fail(ctx, `is required (a ${what} name)`);
    if (typeof v !== 'string' || !NAME_RE.test(v)) return fail(ctx, `${describe(v)} is not a valid ${what} name (${NAME_RULE})`);
    return v;
  });

const filePath = str('a file or directory path').refine((p) => !p.includes('\0'), 'a path cannot hold a NUL byte');

/** A list; a single scalar is taken as a list of one when `single` is set. */
const list = <T extends Zod.ZodType>(item: T, opts: { min?: number; single?: boolean; what: string }) =>
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

const listenAddress = z.any().optional().transform((v: unknown, ctx): string => {
  if (typeof v !== 'string') return fail(ctx, `expected "ip:port" or "[v6]:port", got ${describe(v)}`);
  const r = parseListenAddress(v);
  return typeof r === 'string' ? fail(ctx, r) : v;
});

const serverAddress = z.any().optional().transform((v: unknown, ctx): string => {
  if (typeof v !== 'string') return fail(ctx, `expected "ip:port", "[v6]:port" or a unix socket path, got ${describe(v)}`);
  const r = parseServerAddress(v);
  return typeof r === 'string' ? fail(ctx, r) : v;
});

/** An exact DNS name or "*.suffix"; lowercased. */
export function parseSniPattern(v: unknown): string | { error: string } {
  if (typeof v !== 'string' || v === '') return { error: `expected a host name or "*.domain", got ${describe(v)}` };
  const s = v.toLowerCase().replace(/\.$/, '');
  const base = s.startsWith('*.') ? s.slice(2) : s;
  if (base.includes('*')) {
    return { error: `"${v}": only a whole leftmost label can be a wildcard, as in "*.example.org"` };
  }
  if (!isHostname(base) || !base.includes('.') && s.startsWith('*.')) {
    return { error: `"${v}" is not a host name${s.startsWith('*.') ? ' pattern' : ''}` };
  }
  return s;
}

const sniPattern = z.any().optional().transform((v: unknown, ctx): string => {
  const r = parseSniPattern(v);
  return typeof r === 'string' ? r : fail(ctx, r.error);
});

const dnsName = z.any().optional().transform((v: unknown, ctx): string => {
  if (typeof v !== 'string' || !isHostname(v) || /^[\d.]+$/.test(v)) return fail(ctx, `expected a DNS name such as mail.example.com, got ${describe(v)}`);
  return v.toLowerCase().replace(/\.$/, '');
});

const minVersion = enumOf(['TLSv1.2', 'TLSv1.3'] as const, 'TLSv1.2', (v) => {
  if (typeof v === 'number') return `write the version as a string: TLSv1.2 or TLSv1.3`;
  if (typeof v !== 'string') return undefined;
  const n = v.toLowerCase().replace(/[^a-z0-9.]/g, '');
  if (/^(ssl|sslv)[23]|^(tlsv?)?1(\.0)?$|^(tlsv?)?1\.1$/.test(n)) {
    return `${v} is refused: SSL, TLS 1.0 and TLS 1.1 are broken and deprecated (RFC 8996); use TLSv1.2 or TLSv1.3`;
  }
  if (/^(tlsv?)?1\.2$/.test(n)) return `write "TLSv1.2"`;
  if (/^(tlsv?)?1\.3$/.test(n)) return `write "TLSv1.3"`;
  return undefined;
});

const ciphers = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string => {
    if (v === undefined) return 'intermediate';
    if (typeof v !== 'string' || v.trim() === '') return fail(ctx, `expected intermediate, modern or an OpenSSL cipher string, got ${describe(v)}`);
    if (v === 'intermediate' || v === 'modern') return v;
    if (/^(intermediate|modern|old)$/i.test(v)) {
      return fail(ctx, v.toLowerCase() === 'old' ? `the "old" profile is not offered: use intermediate` : `write "${v.toLowerCase()}"`);
    }
    if (!/^[A-Za-z0-9!+\-:@=_.,]+$/.test(v)) return fail(ctx, `"${v}" is not an OpenSSL cipher string`);
    if (v.split(/[:,]/).some((c) => TLS13_SUITES.has(c))) {
      return fail(ctx, `TLS 1.3 suites (TLS_AES_...) belong in tls.ciphersuites; tls.ciphers is for TLS 1.2`);
    }
    return v;
  });

const ciphersuites = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string => {
    if (v === undefined) return DEFAULT_CIPHERSUITES;
    if (typeof v !== 'string' || v === '') return fail(ctx, `expected a list such as ${DEFAULT_CIPHERSUITES}, got ${describe(v)}`);
    const bad = v.split(':').filter((s) => !TLS13_SUITES.has(s));
    if (bad.length) return fail(ctx, `unknown TLS 1.3 suite ${bad.map((b) => `"${b}"`).join(', ')} (known: ${[...TLS13_SUITES].join(', ')})`);
    return v;
  });

const GROUP_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** tls.groups: the syntax here; whether the running OpenSSL has each group is checked at load (load.ts). */
const groups = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (Array.isArray(v)) return fail(ctx, `write the groups as one OpenSSL list separated by ":", e.g. "${v.join(':')}"`);
    if (typeof v !== 'string' || v.trim() === '') return fail(ctx, `expected an OpenSSL group list such as X25519MLKEM768:X25519:P-256, got ${describe(v)}`);
    const names = v.split(':');
    const bad = names.filter((n) => !GROUP_NAME.test(n));
    if (bad.length) return fail(ctx, `${bad.map((b) => `"${b}"`).join(', ')} is not a group name: list names separated by ":" (OpenSSL's "?", "*" and "/" forms are not accepted)`);
    const seen = new Set<string>();
    const dup = names.find((n) => seen.size === seen.add(n.toLowerCase()).size);
    if (dup) return fail(ctx, `group "${dup}" is listed twice`);
    if (names.length > 16) return fail(ctx, `${names.length} groups: at most 16`);
    return v;
  });

const workers = z
  .any()
  .optional()
  .transform((v: unknown, ctx): number => {
    if (v === undefined || v === 'auto') return os.availableParallelism();
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1024) return v;
    return fail(ctx, `expected auto or a whole number 1..1024, got ${describe(v)}`);
  });

const MetricsObj = obj({ listen: listenAddress });
const metrics = z
  .any()
  .optional()
  .transform((v: unknown, ctx): { listen: string } | false => {
    if (v === false) return false;
    const r = MetricsObj.safeParse(v === undefined || v === null ? { listen: DEFAULTS.metricsListen } : v);
    if (r.success) return r.data;
    for (const iss of r.error.issues) ctx.addIssue(iss as Parameters<Ctx['addIssue']>[0]);
    return z.NEVER;
  });

/** managesieve fallback capabilities: a block of lines or a list of lines, each a quoted capability. */
const sieveCapabilityLines = z
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

const alpn = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(v)) return fail(ctx, `expected an ALPN id such as "imap", got ${describe(v)}`);
    return v;
  });

/** "a.b.c.d" or an IPv6 text -> its bytes (4 or 16); undefined if neither. */
function ipBytes(ip: string): number[] | undefined {
  if (net.isIPv4(ip)) return ip.split('.').map(Number);
  if (!net.isIPv6(ip)) return undefined;
  let text = ip;
  let tail: number[] = [];
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    text = text.slice(0, v4.index + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const r = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...Array<number>(8 - h.length - r.length).fill(0), ...r];
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * An address block for trusted_proxies: "10.0.0.0/8", "2001:db8::/32", or a
 * bare address (one host). Returns the normalized text or an error text.
 */
export function parseCidr(v: unknown): string | { error: string } {
  if (typeof v !== 'string' || v === '') return { error: `expected an address block such as "10.0.0.0/8" or "::1/128", got ${describe(v)}` };
  const [ip, prefixText, extra] = v.split('/');
  const bytes = ipBytes(ip ?? '');
  if (!bytes || extra !== undefined) return { error: `"${v}" is not an address block (examples: 10.0.0.0/8, 127.0.0.1/32, ::1/128)` };
  const max = bytes.length * 8;
  if (prefixText === undefined) return `${ip}/${max}`;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return { error: `"${v}": the prefix length must be 0..${max}` };
  const prefix = Number(prefixText);
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

const cidr = z.any().optional().transform((v: unknown, ctx): string => {
  const r = parseCidr(v);
  return typeof r === 'string' ? r : fail(ctx, r.error);
});

const bool = (dflt: boolean) =>
  z.any().optional().transform((v: unknown, ctx): boolean => (v === undefined ? dflt : typeof v === 'boolean' ? v : fail(ctx, `expected true or false, got ${describe(v)}`)));

// ---------------------------------------------------------------- the schema

const Certificates = obj({
  letsencrypt: list(filePath, { single: true, what: 'directories' }),
  pem_dirs: list(filePath, { single: true, what: 'directories' }),
  pairs: list(obj({ cert: filePath, key: filePath }), { what: '{cert, key} pairs' }),
  default: dnsName.optional(),
  unknown_sni: enumOf(['default', 'reject'] as const, 'default'),
  watch: z
    .any()
    .optional()
    .transform((v: unknown, ctx): boolean => (v === undefined ? false : typeof v === 'boolean' ? v : fail(ctx, `expected true or false, got ${describe(v)}`))),
});

const Listener = obj({
  name: ident('listener'),
  protocol: enumOf(PROTOCOLS),
  listen: list(listenAddress, { min: 1, single: true, what: 'addresses ("ip:port" or "[v6]:port")' }),
  backend: ident('backend'),
  alpn,
  sieve_capabilities: sieveCapabilityLines,
  accept_proxy: bool(false),
  trusted_proxies: list(cidr, { single: true, what: 'address blocks ("10.0.0.0/8", "::1/128")' }),
});

const Backend = obj({
  servers: list(serverAddress, { min: 1, single: true, what: 'servers ("ip:port", "[v6]:port" or a unix socket path)' }),
  // YAML 1.1 documents read a bare `off` as false: take it as "off".
  proxy_protocol: z.preprocess((v) => (v === false ? 'off' : v), enumOf(PROXY_PROTOCOLS, 'off')),
  balance: enumOf(['first', 'roundrobin'] as const, 'first'),
  // Interval of the health checks ("10s"), or off (the default).
  health_check: z
    .any()
    .optional()
    .transform((v: unknown, ctx): number | undefined => {
      if (v === undefined || v === false || v === 'off') return undefined;
      const r = parseDuration(v);
      return typeof r === 'string' ? fail(ctx, `${r}, or off`) : r;
    }),
});

const Route = obj({
  sni: sniPattern,
  backends: z
    .any()
    .optional()
    .transform((v: unknown, ctx): Record<string, string> => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(ctx, `expected a mapping listener name -> backend name, got ${describe(v)}`);
      if (Object.keys(v).length === 0) return fail(ctx, 'maps no listener to a backend');
      return v as Record<string, string>;
    })
    .pipe(z.record(z.string(), ident('backend'))),
});

const mapping = <T extends Zod.ZodType<unknown, Record<string, unknown>>>(inner: T, what: string) =>
  z
    .any()
    .optional()
    .transform((v: unknown, ctx) => {
      if (v === undefined || v === null) return {};
      if (typeof v !== 'object' || Array.isArray(v)) return fail(ctx, `expected a mapping (${what}), got ${describe(v)}`);
      return v as Record<string, unknown>;
    })
    .pipe(inner);

export const ConfigSchema = obj({
  certificates: mapping(Certificates, 'certificate sources'),
  listeners: list(Listener, { min: 1, what: 'listeners' }),
  backends: z
    .any()
    .optional()
    .transform((v: unknown, ctx): Record<string, unknown> => {
      if (v === undefined || v === null) return fail(ctx, 'is required: a mapping of backend name -> {servers: [...]}');
      if (typeof v !== 'object' || Array.isArray(v)) return fail(ctx, `expected a mapping of backend name -> {servers: [...]}, got ${describe(v)}`);
      if (Object.keys(v).length === 0) return fail(ctx, 'defines no backend');
      return v as Record<string, unknown>;
    })
    .pipe(z.record(z.string(), Backend)),
  routes: list(Route, { what: 'routes' }),
  tls: mapping(
    obj({ min_version: minVersion, ciphers, ciphersuites, groups, ticket_keys: filePath.optional() }),
    'TLS settings',
  ),
  timeouts: mapping(
    obj({
      handshake: duration(DEFAULTS.timeouts.handshake),
      pretls: duration(DEFAULTS.timeouts.pretls),
      connect: duration(DEFAULTS.timeouts.connect),
      idle: duration(DEFAULTS.timeouts.idle),
      drain: duration(DEFAULTS.timeouts.drain),
    }),
    'timeouts',
  ),
  limits: mapping(
    obj({
      connections: positiveInt(DEFAULTS.limits.connections, 1, 10_000_000, 'connections'),
      per_client: positiveInt(DEFAULTS.limits.per_client, 1, 10_000_000, 'connections'),
      line_bytes: positiveInt(DEFAULTS.limits.line_bytes, 512, 1 << 20, 'bytes'),
      login_tracking: bool(true),
      // "off" (or false) turns bans off; login outcomes are still logged and counted.
      login_failures: z.preprocess(
        (v) => (v === 'off' || v === false ? { count: 0 } : v),
        mapping(
          obj({
            count: positiveInt(DEFAULTS.limits.login_failures.count, 0, 1_000_000, 'failed logins'),
            window: duration(DEFAULTS.limits.login_failures.window),
            ban: duration(DEFAULTS.limits.login_failures.ban),
          }),
          'count, window and ban, or off',
        ),
      ),
      connection_rate: z.preprocess(
        (v) => (v === 'off' || v === false ? 0 : v),
        positiveInt(DEFAULTS.limits.connection_rate, 0, 10_000_000, 'new connections per minute (or off)'),
      ),
      ipv6_prefix: positiveInt(DEFAULTS.limits.ipv6_prefix, 16, 128, 'prefix bits'),
      exempt: list(cidr, { single: true, what: 'address blocks ("127.0.0.1/32", "2001:db8::/48")' }),
    }),
    'limits',
  ),
  workers,
  metrics,
  log: mapping(obj({ level: enumOf(LOG_LEVELS, 'info'), usernames: bool(true) }), 'log settings'),
});

export type RawConfig = Zod.output<typeof ConfigSchema>;

// ---------------------------------------------------------------- cross references

export interface SchemaIssue {
  /** Path into the YAML document (keys and list indexes). */
  path: (string | number)[];
  message: string;
  /** Point at the key itself rather than its value (unknown or misnamed keys). */
  atKey?: boolean;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Checks that need the whole document: unique names, references between
 * listeners, backends and routes, and option combinations. Runs on the raw
 * parsed YAML, defensively, so that its findings are reported together with
 * the schema's own.
 */
export function crossCheck(raw: unknown): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  if (!isObj(raw)) return out;
  const backends = isObj(raw.backends) ? raw.backends : undefined;
  const backendNames = new Set(backends ? Object.keys(backends) : []);
  if (backends) {
    for (const k of Object.keys(backends)) {
      if (!NAME_RE.test(k)) out.push({ path: ['backends', k], atKey: true, message: `"${k}" is not a valid backend name (${NAME_RULE})` });
    }
  }
  const listeners = Array.isArray(raw.listeners) ? raw.listeners : [];
  const listenerNames = new Map<string, number>();
  const bound = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (!isObj(l)) return;
    if (typeof l.name === 'string') {
      const first = listenerNames.get(l.name);
      if (first !== undefined) out.push({ path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}" (also listeners[${first}])` });
      else listenerNames.set(l.name, i);
    }
    if (typeof l.backend === 'string' && backends && !backendNames.has(l.backend)) {
      out.push({ path: ['listeners', i, 'backend'], message: unknownRef('backend', l.backend, backendNames) });
    }
    const addrs = Array.isArray(l.listen) ? l.listen : typeof l.listen === 'string' ? [l.listen] : [];
    addrs.forEach((a, j) => {
      if (typeof a !== 'string' || a.endsWith(':0')) return;
      const owner = bound.get(a);
      const p: (string | number)[] = Array.isArray(l.listen) ? ['listeners', i, 'listen', j] : ['listeners', i, 'listen'];
      if (owner !== undefined) out.push({ path: p, message: `"${a}" is already used by ${owner}` });
      else bound.set(a, `listeners[${i}]`);
    });
    if (l.accept_proxy === true) {
      const t = l.trusted_proxies;
      if (t === undefined || t === null || (Array.isArray(t) && t.length === 0)) {
        out.push({
          path: ['listeners', i, 'accept_proxy'],
          message: 'accept_proxy needs trusted_proxies: the address blocks of the balancers allowed to name the client (e.g. ["10.0.0.0/8"])',
        });
      }
    }
    if (l.sieve_capabilities !== undefined && l.protocol !== 'managesieve') {
      out.push({ path: ['listeners', i, 'sieve_capabilities'], atKey: true, message: 'only a managesieve listener takes sieve_capabilities' });
    }
  });
  const routes = Array.isArray(raw.routes) ? raw.routes : [];
  routes.forEach((r, i) => {
    if (!isObj(r) || !isObj(r.backends)) return;
    for (const [ln, bn] of Object.entries(r.backends)) {
      if (!listenerNames.has(ln)) {
        out.push({ path: ['routes', i, 'backends', ln], atKey: true, message: unknownRef('listener', ln, new Set(listenerNames.keys())) });
      }
      if (typeof bn === 'string' && backends && !backendNames.has(bn)) {
        out.push({ path: ['routes', i, 'backends', ln], message: unknownRef('backend', bn, backendNames) });
      }
    }
  });
  const tls = isObj(raw.tls) ? raw.tls : undefined;
  if (tls && tls.ciphers === 'modern' && tls.min_version === 'TLSv1.2') {
    out.push({ path: ['tls', 'min_version'], message: 'ciphers: modern means TLS 1.3 only; set min_version to TLSv1.3 or remove it' });
  }
  const certs = isObj(raw.certificates) ? raw.certificates : undefined;
  const hasSource = certs && ['letsencrypt', 'pem_dirs', 'pairs'].some((k) => {
    const v = certs[k];
    return Array.isArray(v) ? v.length > 0 : typeof v === 'string';
  });
  if (!hasSource) {
    out.push({
      path: certs ? ['certificates'] : [],
      atKey: true,
      message: 'no certificate source: list at least one of certificates.letsencrypt, certificates.pem_dirs, certificates.pairs',
    });
  }
  return out;
}

function unknownRef(kind: string, value: string, known: Set<string>): string {
  const names = [...known];
  const hint = suggestKey(value, names);
  return `no ${kind} named "${value}"${hint ? ` (did you mean "${hint}"?)` : names.length ? ` (${kind}s: ${names.join(', ')})` : ''}`;
}

// ---------------------------------------------------------------- normalization

/**
 * The validated snake_case document -> Config. Relative paths resolve against `baseDir`;
 * `defaultGroups` is tls.groups when the file names none (it depends on the running OpenSSL).
 */
export function toConfig(raw: RawConfig, baseDir: string, defaultGroups: string): Config {
  const abs = (p: string) => path.resolve(baseDir, p);
  const c = raw.certificates;
  const t = raw.tls;
  const tm = raw.timeouts;
  const cipherProfile = t.ciphers === 'intermediate' || t.ciphers === 'modern' ? t.ciphers : 'custom';
  const backends: Record<string, BackendConfig> = {};
  for (const [n, b] of Object.entries(raw.backends)) {
    backends[n] = { servers: b.servers, proxyProtocol: b.proxy_protocol, balance: b.balance };
    if (b.health_check !== undefined) backends[n].healthCheckMs = b.health_check;
  }
  return {
    certificates: {
      letsencrypt: c.letsencrypt.map(abs),
      pemDirs: c.pem_dirs.map(abs),
      pairs: c.pairs.map((p) => ({ cert: abs(p.cert), key: abs(p.key) })),
      ...(c.default !== undefined ? { default: c.default } : {}),
      unknownSni: c.unknown_sni,
      watch: c.watch,
    },
    listeners: raw.listeners.map((l) => ({
      name: l.name,
      protocol: l.protocol,
      listen: l.listen,
      backend: l.backend,
      ...(l.alpn !== undefined ? { alpn: l.alpn } : {}),
      ...(l.sieve_capabilities !== undefined ? { sieveCapabilities: l.sieve_capabilities } : {}),
      acceptProxy: l.accept_proxy,
      trustedProxies: l.trusted_proxies,
    })),
    backends,
    routes: raw.routes.map((r) => ({ sni: r.sni, backends: { ...r.backends } })),
    tls: {
      minVersion: cipherProfile === 'modern' ? 'TLSv1.3' : t.min_version,
      cipherProfile,
      // "modern" disables TLS 1.2; the intermediate list stays as a harmless, valid cipher string.
      ciphers: cipherProfile === 'custom' ? t.ciphers : INTERMEDIATE_CIPHERS,
      ciphersuites: t.ciphersuites,
      groups: t.groups ?? defaultGroups,
      ...(t.ticket_keys !== undefined ? { ticketKeys: abs(t.ticket_keys) } : {}),
    },
    timeouts: { handshakeMs: tm.handshake, pretlsMs: tm.pretls, connectMs: tm.connect, idleMs: tm.idle, drainMs: tm.drain },
    limits: {
      connections: raw.limits.connections,
      perClient: raw.limits.per_client,
      lineBytes: raw.limits.line_bytes,
      loginTracking: raw.limits.login_tracking,
      loginFailures: {
        count: raw.limits.login_failures.count,
        windowMs: raw.limits.login_failures.window,
        banMs: raw.limits.login_failures.ban,
      },
      connectionRate: raw.limits.connection_rate,
      ipv6Prefix: raw.limits.ipv6_prefix,
      exempt: raw.limits.exempt,
    },
    workers: raw.workers,
    metrics: raw.metrics,
    log: { level: raw.log.level, usernames: raw.log.usernames },
  };
}

/**
 * Things that are valid but probably not meant; the CLI logs them at warn.
 * The idle timeout is one: RFC 2177 clients re-issue IDLE every 29 minutes,
 * so an idle timeout under 30 minutes cuts IMAP IDLE sessions. It is accepted
 * (a site may want it, e.g. with POP3 only) but reported.
 */
export function configWarnings(config: Config): string[] {
  const w: string[] = [];
  const imap = config.listeners.filter((l) => l.protocol === 'imap' || l.protocol === 'imaps');
  if (imap.length && config.timeouts.idleMs < 30 * 60_000) {
    w.push(`timeouts.idle is under 30m: IMAP IDLE clients (listeners ${imap.map((l) => l.name).join(', ')}) will be cut off (RFC 2177 asks for at least 30 minutes)`);
  }
  if (!config.limits.loginTracking && config.limits.loginFailures.count > 0) {
    w.push('limits.login_failures has no effect with limits.login_tracking: false (no login is seen, so none fails)');
  }
  if (config.limits.perClient > config.limits.connections) {
    w.push('limits.per_client is above limits.connections, so it never applies');
  }
  const used = new Set<string>();
  for (const l of config.listeners) used.add(l.backend);
  for (const r of config.routes) for (const b of Object.values(r.backends)) used.add(b);
  for (const b of Object.keys(config.backends)) if (!used.has(b)) w.push(`backends.${b} is not used by any listener or route`);
  for (const l of config.listeners) {
    if (!l.acceptProxy && l.trustedProxies.length > 0) w.push(`listeners ${l.name}: trusted_proxies has no effect without accept_proxy: true`);
  }
  if (config.certificates.unknownSni === 'default' && config.certificates.default === undefined) {
    w.push('certificates.default is not set: clients without SNI get whichever certificate the store ranks first');
  }
  return w;
}
