// The configuration: its YAML shape (snake_case keys, the contract of
// DESIGN.md), defaults, and the one transform to the camelCase Config the rest
// of the control plane uses. The types come from the schema: RawConfig is what
// zod checked, Config what toConfig makes of it. Field rules live in
// fields.ts, durations.ts, hostnames.ts, cidr.ts and tls-fields.ts;
// whole-document checks in cross-check.ts; "did you mean" in suggest.ts.
// Pure: no file access (see load.ts).
import path from 'node:path';
import { z, type Zod } from './zod.js';
import type { Protocol } from '../native.js';
import { cidr } from './cidr.js';
import { duration, parseDuration } from './durations.js';
import {
  alpn, bool, describe, enumOf, fail, filePath, ident, list, listenAddress, mapping, obj, positiveInt,
  serverAddress, sieveCapabilityLines, workers, type Ctx,
} from './fields.js';
import { dnsName, sniPattern } from './hostnames.js';
import { ciphers, ciphersuites, groups, INTERMEDIATE_CIPHERS, minVersion, recordLayer } from './tls-fields.js';

export { crossCheck, type SchemaIssue } from './cross-check.js';
export { parseDuration } from './durations.js';
export { suggestKey } from './suggest.js';
export { DEFAULT_CIPHERSUITES, INTERMEDIATE_CIPHERS } from './tls-fields.js';

// ---------------------------------------------------------------- constants

export const PROTOCOLS = ['imaps', 'pop3s', 'imap', 'pop3', 'managesieve'] as const satisfies readonly Protocol[];
/** PROXY header to a backend; v2-ssl is HAProxy's send-proxy-v2-ssl (v2 with the TLS TLVs). */
export const PROXY_PROTOCOLS = ['off', 'v1', 'v2', 'v2-ssl'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Defaults of numbers, durations and tables; the others (enums, switches)
 * stand beside their field in the schema below. This file holds every default:
 * the data plane has none of its own (src/snapshot.ts sends every field).
 */
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
  /** The ALPN id a listener accepts, by protocol, unless it names its own. */
  alpn: { imaps: 'imap', imap: 'imap', pop3s: 'pop3', pop3: 'pop3', managesieve: 'managesieve' } satisfies Record<Protocol, string>,
} as const;

// ---------------------------------------------------------------- the schema

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

const Certificates = obj({
  letsencrypt: list(filePath, { single: true, what: 'directories' }),
  pem_dirs: list(filePath, { single: true, what: 'directories' }),
  pairs: list(obj({ cert: filePath, key: filePath }), { what: '{cert, key} pairs' }),
  default: dnsName.optional(),
  unknown_sni: enumOf(['default', 'reject'] as const, 'default'),
  watch: bool(false),
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
    obj({ min_version: minVersion, ciphers, ciphersuites, groups, ticket_keys: filePath.optional(), record_layer: recordLayer }),
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

// ---------------------------------------------------------------- the transform

/**
 * The validated snake_case document -> Config (camelCase, absolute paths,
 * durations in ms). Relative paths resolve against `baseDir`; `defaultGroups`
 * is tls.groups when the file names none (it depends on the running OpenSSL).
 */
export function toConfig(raw: RawConfig, baseDir: string, defaultGroups: string) {
  const abs = (p: string) => path.resolve(baseDir, p);
  const c = raw.certificates;
  const t = raw.tls;
  const tm = raw.timeouts;
  const profile = t.ciphers === 'intermediate' || t.ciphers === 'modern' ? t.ciphers : 'custom';
  const backends = Object.fromEntries(
    Object.entries(raw.backends).map(([name, b]) => [
      name,
      {
        /** "ip:port", "[v6]:port" or an absolute unix socket path (no host names: the data plane does not resolve). */
        servers: b.servers,
        proxyProtocol: b.proxy_protocol,
        balance: b.balance,
        /** Milliseconds between health checks of each server (connect, read the greeting); absent: no checks. */
        ...(b.health_check !== undefined ? { healthCheckMs: b.health_check } : {}),
      },
    ]),
  );
  return {
    certificates: {
      /** Let's Encrypt trees holding live/<lineage>/ (absolute paths). */
      letsencrypt: c.letsencrypt.map(abs),
      /** Directories of combined PEM files (absolute paths). */
      pemDirs: c.pem_dirs.map(abs),
      pairs: c.pairs.map((p) => ({ cert: abs(p.cert), key: abs(p.key) })),
      /** DNS name whose certificate is served without SNI / for unknown names (lowercase). */
      ...(c.default !== undefined ? { default: c.default } : {}),
      unknownSni: c.unknown_sni,
      watch: c.watch,
    },
    listeners: raw.listeners.map((l) => ({
      name: l.name,
      protocol: l.protocol,
      /** "ip:port" or "[v6]:port". */
      listen: l.listen,
      /** Name of the default backend pool (a key of Config.backends). */
      backend: l.backend,
      /** The ALPN id it accepts when a client offers ALPN: the file's, else DEFAULTS.alpn by protocol. */
      alpn: l.alpn ?? DEFAULTS.alpn[l.protocol],
      /** managesieve only: fallback capability lines (CRLF-terminated) when the backend cannot be probed. */
      ...(l.sieve_capabilities !== undefined ? { sieveCapabilities: l.sieve_capabilities } : {}),
      /** Behind an L4 balancer: each connection starts with a PROXY header (v1 or v2) naming the client. */
      acceptProxy: l.accept_proxy,
      /** CIDR blocks allowed to send that header ("10.0.0.0/8", "::1/128"); required with acceptProxy. */
      trustedProxies: l.trusted_proxies,
    })),
    /** Backend pools by name, in file order. */
    backends,
    /** First match wins. */
    /** Lowercase exact name, or "*.suffix" (one label) -> backend pool name per listener. */
    routes: raw.routes.map((r) => ({ sni: r.sni, backends: { ...r.backends } })),
    tls: {
      minVersion: profile === 'modern' ? 'TLSv1.3' : t.min_version,
      /** OpenSSL cipher string for TLS 1.2 ("modern" disables TLS 1.2; the intermediate list stays as a harmless, valid string). */
      ciphers: profile === 'custom' ? t.ciphers : INTERMEDIATE_CIPHERS,
      /** OpenSSL ciphersuites string for TLS 1.3. */
      ciphersuites: t.ciphersuites,
      /** Key-exchange groups (OpenSSL list): the file's, else the default for the running library (load.ts). */
      groups: t.groups ?? defaultGroups,
      /** After a TLS 1.3 handshake: mailfront's record layer (the SSL freed) or OpenSSL's to the end. */
      recordLayer: t.record_layer,
      /** Absolute path of a session-ticket key file, if any. */
      ...(t.ticket_keys !== undefined ? { ticketKeys: abs(t.ticket_keys) } : {}),
    },
    timeouts: { handshakeMs: tm.handshake, pretlsMs: tm.pretls, connectMs: tm.connect, idleMs: tm.idle, drainMs: tm.drain },
    limits: {
      connections: raw.limits.connections,
      perClient: raw.limits.per_client,
      lineBytes: raw.limits.line_bytes,
      /** Follow logins after TLS: login log lines, mailfront_auth_total, bans. */
      loginTracking: raw.limits.login_tracking,
      /** Failed logins (count) within windowMs that ban the client network for banMs; count 0: no bans. */
      loginFailures: {
        count: raw.limits.login_failures.count,
        windowMs: raw.limits.login_failures.window,
        banMs: raw.limits.login_failures.ban,
      },
      /** New connections per minute per client network; 0: unlimited. */
      connectionRate: raw.limits.connection_rate,
      /** An IPv6 client network is its /ipv6Prefix. */
      ipv6Prefix: raw.limits.ipv6_prefix,
      /** CIDR blocks no per-client limit applies to (normalized "ip/prefix"). */
      exempt: raw.limits.exempt,
    },
    /** Worker threads ("auto" resolved to os.availableParallelism()). */
    workers: raw.workers,
    metrics: raw.metrics,
    log: { level: raw.log.level, usernames: raw.log.usernames },
  };
}

/**
 * The checked configuration the control plane runs on: what toConfig returns
 * (frozen by load.ts). "backend" names a pool here, as in the file.
 */
export type Config = ReturnType<typeof toConfig>;

export type ListenerConfig = Config['listeners'][number];
/** A backend pool: the servers a listener or route sends its clients to. */
export type BackendConfig = Config['backends'][string];
export type RouteConfig = Config['routes'][number];

// ---------------------------------------------------------------- warnings

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
