// The root logger (pino, JSON lines on stdout) and the translation of data
// plane events into log lines. stdout goes to journald under systemd, so no
// pretty printing, no transport threads, and one JSON object per line.
import { pino, stdTimeFunctions, type DestinationStream, type Level, type Logger } from 'pino';
import { DEFAULT_THROTTLE, LogThrottle } from './log-throttle.js';
import { loadAddon, type ConnectionRecord, type LoginRecord, type NativeEvent } from './native.js';

export type { Logger } from 'pino';
export type LogLevel = Level | 'silent';

export interface LoggerOptions {
  level?: LogLevel;
  /** Where the JSON lines go; stdout (fd 1, synchronous writes) when absent. */
  destination?: DestinationStream;
}

/**
 * Key paths that may hold private key material (NativeCertContext.certs[].keyPem,
 * snapshot ticket keys, whole snapshots). Redaction paths cannot express
 * "at any depth", so the PEM scrub in scrubPrivateKeys() is the last net.
 */
export const redactPaths: readonly string[] = [
  'keyPem',
  '*.keyPem',
  'privateKey',
  '*.privateKey',
  'certs[*].keyPem',
  '*.certs[*].keyPem',
  'contexts[*].certs[*].keyPem',
  '*.contexts[*].certs[*].keyPem',
  'ticketKeys',
  '*.ticketKeys',
  'tls.ticketKeys',
  '*.tls.ticketKeys',
];

const PEM_PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[^"\\]|\\.)*/g;

/**
 * Replaces anything from a "-----BEGIN ... PRIVATE KEY-----" marker to the end
 * of the JSON string holding it. Runs on every serialized line, so it also
 * covers PEM text inside error messages and free-form detail strings.
 */
export function scrubPrivateKeys(line: string): string {
  return line.includes('PRIVATE KEY-----') ? line.replace(PEM_PRIVATE_KEY, '[Redacted private key]') : line;
}

/**
 * Decisions: level as a label ("level":"info") because people grep the journal;
 * ISO time because the line may be shipped beyond journald; base keeps pid (tells
 * an old process from its successor in shipped logs) and drops hostname
 * (journald and every shipper add it).
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'mailfront', pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...redactPaths], censor: '[Redacted]' },
      hooks: { streamWrite: scrubPrivateKeys },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** A child logger whose lines carry {component}: "certs", "metrics", "service", ... */
export function child(logger: Logger, component: string): Logger {
  return logger.child({ component });
}

let ordinaryReasons: ReadonlySet<string> | undefined;
/**
 * Close reasons of connections that ended the way connections end, from the
 * data plane's table (native/close_reason.h). Anything else (handshake_failed,
 * backend_unavailable, ...) is logged at warn.
 */
export function ordinaryCloseReasons(): ReadonlySet<string> {
  ordinaryReasons ??= new Set(loadAddon().closeReasons.filter((r) => r.ordinary).map((r) => r.name));
  return ordinaryReasons;
}

export interface ConnectionLogFields {
  listener: string;
  protocol: string;
  client: string;
  /** The server relayed to (ConnectionRecord.server); named "backend" in the log since the first release. */
  backend: string;
  /** Local ip:port of the server-side socket: the peer address Cyrus logs. */
  backend_local: string;
  pool: string;
  sni: string;
  tls_version: string;
  cipher: string;
  /** Key-exchange group: X25519MLKEM768 is the hybrid post-quantum one. */
  group: string;
  resumed: boolean;
  bytes_in: number;
  bytes_out: number;
  handshake_ms: number;
  connect_ms: number;
  duration_ms: number;
  reason: string;
  detail?: string;
  /** Whether a login succeeded on the connection (false too when login tracking is off: see login). */
  authenticated: boolean;
  /** off | none | success | failure | bound (see ConnectionRecord.login). */
  login: string;
  login_failures: number;
  /** Omitted with log.usernames: false, and when no login named one. */
  user?: string;
}

/** What the log lines may show; log.usernames in the config. */
export interface LogPrivacy {
  usernames: boolean;
}

export interface LogLine<T> {
  level: 'info' | 'warn' | 'error';
  fields: T;
  msg: string;
}

/** The one line logged per finished connection. Pure; see logConnection(). */
export function connectionLogLine(record: ConnectionRecord, privacy: LogPrivacy = { usernames: true }): LogLine<ConnectionLogFields> {
  const fields: ConnectionLogFields = {
    listener: record.listener,
    protocol: record.protocol,
    client: record.client,
    backend: record.server,
    backend_local: record.serverLocal,
    pool: record.pool,
    sni: record.sni,
    tls_version: record.tlsVersion,
    cipher: record.cipher,
    group: record.group,
    resumed: record.resumed,
    bytes_in: record.bytesIn,
    bytes_out: record.bytesOut,
    handshake_ms: record.handshakeMs,
    connect_ms: record.connectMs,
    duration_ms: record.durationMs,
    reason: record.reason,
    authenticated: record.login === 'success',
    login: record.login,
    login_failures: record.loginFailures,
  };
  if (record.detail !== '') fields.detail = record.detail;
  if (privacy.usernames && record.user !== '') fields.user = record.user;
  return { level: connectionLogLevel(record), fields, msg: 'connection closed' };
}

/** info for an ordinary close, warn for the rest (the close-reason table in native/close_reason.h). */
export function connectionLogLevel(record: ConnectionRecord): 'info' | 'warn' {
  return ordinaryCloseReasons().has(record.reason) ? 'info' : 'warn';
}

export function logConnection(logger: Logger, record: ConnectionRecord, privacy?: LogPrivacy): void {
  const line = connectionLogLine(record, privacy);
  logger[line.level](line.fields, line.msg);
}

/**
 * Per-connection warn lines come from the network: past DEFAULT_THROTTLE.threshold per
 * close reason in an interval they are counted, and one line per reason sums them up.
 */
export function connectionLogThrottle(logger: Logger, o: { threshold: number; intervalMs: number } = DEFAULT_THROTTLE): LogThrottle {
  return new LogThrottle({
    ...o,
    summary: (reason, suppressed, intervalMs) =>
      logger.warn({ reason, suppressed, interval_s: intervalMs / 1000 }, `${suppressed} more connection(s) closed with ${reason}, not logged one by one`),
  });
}

export interface LoginLogFields {
  /** First, so that a fail2ban filter finds it before anything a client chose (user, sni). */
  client: string;
  result: LoginRecord['result'];
  network: string;
  listener: string;
  protocol: string;
  sni: string;
  mech: string;
  user?: string;
}

/**
 * One line per login outcome: "login succeeded", "login failed" (a wrong
 * password: what fail2ban counts), "login error" (BAD/BYE: no verdict).
 * Never a password: the data plane does not hand one over.
 */
export function loginLogLine(l: LoginRecord, privacy: LogPrivacy = { usernames: true }): LogLine<LoginLogFields> {
  const fields: LoginLogFields = {
    client: l.client,
    result: l.result,
    network: l.network,
    listener: l.listener,
    protocol: l.protocol,
    sni: l.sni,
    mech: l.mech,
  };
  if (privacy.usernames) fields.user = l.user;
  const msg = l.result === 'success' ? 'login succeeded' : l.result === 'failure' ? 'login failed' : 'login error';
  return { level: 'info', fields, msg };
}

/**
 * Logs one batch from the data plane (NativeProxy's onEvents). JS thread only.
 * With a throttle, warn lines beyond its threshold are summed up per reason.
 */
export function logNativeEvents(logger: Logger, events: readonly NativeEvent[], throttle?: LogThrottle, privacy?: LogPrivacy): void {
  for (const event of events) {
    if (event.kind === 'connection' && event.record) {
      // Most records are not logged at level warn: don't build their fields.
      if (!logger.isLevelEnabled(connectionLogLevel(event.record))) continue;
      const line = connectionLogLine(event.record, privacy);
      if (line.level === 'info' || !throttle || throttle.admit(event.record.reason)) logger[line.level](line.fields, line.msg);
    } else if (event.kind === 'login' && event.login) {
      const line = loginLogLine(event.login, privacy);
      logger[line.level](line.fields, line.msg);
    } else if (event.kind === 'ban') {
      const banMs = event.banMs ?? 0;
      logger.warn(
        { network: event.network, listener: event.listener, failures: event.failures, ban_s: Math.round(banMs / 1000), until: new Date(Date.now() + banMs).toISOString() },
        'client network banned',
      );
    } else if (event.kind === 'ban_ended') {
      logger.info({ network: event.network }, 'client network ban ended');
    } else if (event.kind === 'error') {
      logger.error({ listener: event.listener, detail: event.message }, 'data plane error');
    } else if (event.kind === 'dropped' && (!throttle || throttle.admit('records_dropped'))) {
      logger.warn({ dropped: event.count }, 'connection records dropped: logging (stdout) or the JavaScript thread fell behind');
    }
  }
}
