import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { child, connectionLogLine, connectionLogThrottle, createLogger, logConnection, loginLogLine, logNativeEvents, scrubPrivateKeys } from '../../src/log.js';
import { LogThrottle } from '../../src/log-throttle.js';
import type { ConnectionRecord, LoginRecord } from '../../src/native.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      cb();
    },
  });
  // pino writes synchronously to a plain stream's write(); no flush needed.
  return { lines, destination, json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';
const EC_KEY = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIL\n-----END EC PRIVATE KEY-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';

function record(over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    listener: 'imaps',
    protocol: 'imaps',
    client: '203.0.113.7:51234',
    server: '127.0.0.1:1143',
    serverLocal: '127.0.0.1:40022',
    pool: 'cyrus-imap',
    sni: 'mail.example.org',
    tlsVersion: 'TLSv1.3',
    cipher: 'TLS_AES_256_GCM_SHA384',
    group: 'X25519MLKEM768',
    resumed: false,
    bytesIn: 1200,
    bytesOut: 34000,
    handshakeMs: 3,
    connectMs: 1,
    durationMs: 95000,
    reason: 'client_closed',
    detail: '',
    login: 'success',
    user: 'alice@example.org',
    loginFailures: 1,
    ...over,
  };
}

describe('createLogger', () => {
  it('writes one JSON line with service, pid, label level and ISO time, no hostname', () => {
    const c = capture();
    const log = createLogger({ level: 'info', destination: c.destination });
    log.info({ a: 1 }, 'hello');
    log.debug('not shown');
    expect(c.lines).toHaveLength(1);
    const [line] = c.json();
    expect(line).toMatchObject({ level: 'info', service: 'mailfront', pid: process.pid, a: 1, msg: 'hello' });
    expect(line).not.toHaveProperty('hostname');
    expect(String(line?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('child() adds the component', () => {
    const c = capture();
    const log = child(createLogger({ destination: c.destination }), 'certs');
    log.warn('skipped');
    expect(c.json()[0]).toMatchObject({ level: 'warn', component: 'certs', msg: 'skipped' });
  });
});

describe('private key safety net', () => {
  const snapshot = {
    contexts: [{ certs: [{ chainPem: CERT, keyPem: KEY }, { chainPem: CERT, keyPem: EC_KEY }] }],
    exact: { 'mail.example.org': 0 },
    tls: { ticketKeys: [Buffer.alloc(80, 7)] },
  };

  it.each([
    ['a snapshot at the top level', (l: ReturnType<typeof createLogger>) => l.info(snapshot, 'applied')],
    ['a snapshot under a key', (l: ReturnType<typeof createLogger>) => l.info({ snapshot }, 'applied')],
    ['a context', (l: ReturnType<typeof createLogger>) => l.info({ ctx: snapshot.contexts[0] }, 'ctx')],
    ['keyPem and privateKey keys', (l: ReturnType<typeof createLogger>) => l.info({ keyPem: KEY, pair: { privateKey: EC_KEY } }, 'pair')],
    ['a PEM deep in an unknown shape', (l: ReturnType<typeof createLogger>) => l.info({ a: { b: { c: [{ d: KEY }] } } }, 'deep')],
    ['a PEM inside an error message', (l: ReturnType<typeof createLogger>) => l.error({ err: new Error(`bad key ${KEY}`) }, 'failed')],
    ['a PEM in the message text', (l: ReturnType<typeof createLogger>) => l.warn(`cannot parse ${EC_KEY} in file`)],
  ])('never prints PRIVATE KEY: %s', (_name, write) => {
    const c = capture();
    write(createLogger({ destination: c.destination }));
    expect(c.lines).toHaveLength(1);
    expect(c.lines[0]).not.toContain('PRIVATE KEY');
    expect(c.lines[0]).not.toContain('MIGHAgEAMBMGByqGSM49');
    expect(c.lines[0]).not.toContain('MHcCAQEEIL');
    expect(() => JSON.parse(c.lines[0] ?? '')).not.toThrow();
  });

  it('redacts known paths and keeps certificates', () => {
    const c = capture();
    createLogger({ destination: c.destination }).info({ snapshot }, 'applied');
    const line = c.json()[0] as { snapshot: typeof snapshot };
    expect(line.snapshot.contexts[0]?.certs[0]?.keyPem).toBe('[Redacted]');
    expect(line.snapshot.contexts[0]?.certs[0]?.chainPem).toBe(CERT);
    expect(line.snapshot.tls.ticketKeys).toBe('[Redacted]');
    expect(line.snapshot.exact).toEqual({ 'mail.example.org': 0 });
  });

  it('scrubs from the PEM marker to the end of the JSON string only', () => {
    const line = JSON.stringify({ a: `x ${KEY} y`, b: 'kept' });
    expect(JSON.parse(scrubPrivateKeys(line))).toEqual({ a: 'x [Redacted private key]', b: 'kept' });
    expect(scrubPrivateKeys('{"a":"plain"}')).toBe('{"a":"plain"}');
  });
});

describe('connection lines', () => {
  it('maps a normal close to info with snake_case fields and no empty detail', () => {
    expect(connectionLogLine(record())).toEqual({
      level: 'info',
      msg: 'connection closed',
      fields: {
        listener: 'imaps',
        protocol: 'imaps',
        client: '203.0.113.7:51234',
        backend: '127.0.0.1:1143',
        backend_local: '127.0.0.1:40022',
        pool: 'cyrus-imap',
        sni: 'mail.example.org',
        tls_version: 'TLSv1.3',
        cipher: 'TLS_AES_256_GCM_SHA384',
        group: 'X25519MLKEM768',
        resumed: false,
        bytes_in: 1200,
        bytes_out: 34000,
        handshake_ms: 3,
        connect_ms: 1,
        duration_ms: 95000,
        reason: 'client_closed',
        authenticated: true,
        login: 'success',
        login_failures: 1,
        user: 'alice@example.org',
      },
    });
  });

  it.each([
    ['client_closed', 'info'],
    ['backend_closed', 'info'],
    ['pretls_closed', 'info'],
    ['idle_timeout', 'info'],
    ['shutdown', 'info'],
    ['handshake_failed', 'warn'],
    ['backend_unavailable', 'warn'],
    ['handshake_timeout', 'warn'],
    ['per_client_limit', 'warn'],
    // Named by an older hand-kept list, never emitted by the data plane.
    ['client_logout', 'warn'],
    ['drained', 'warn'],
    ['some_new_reason', 'warn'],
  ])('reason %s logs at %s', (reason, level) => {
    expect(connectionLogLine(record({ reason })).level).toBe(level);
  });

  it('logs a failure with its detail at warn', () => {
    const c = capture();
    const log = createLogger({ destination: c.destination });
    logConnection(
      log,
      record({ reason: 'handshake_failed', detail: 'no shared cipher', server: '', serverLocal: '', tlsVersion: '', cipher: '' }),
    );
    expect(c.json()[0]).toMatchObject({
      level: 'warn',
      msg: 'connection closed',
      reason: 'handshake_failed',
      detail: 'no shared cipher',
      client: '203.0.113.7:51234',
      backend_local: '',
    });
  });

  it('logs a batch of native events', () => {
    const c = capture();
    logNativeEvents(createLogger({ destination: c.destination }), [
      { kind: 'connection', record: record() },
      { kind: 'error', listener: 'sieve', message: 'accept: EMFILE' },
      { kind: 'connection', record: record({ reason: 'backend_unavailable', client: '[2001:db8::1]:4000' }) },
    ]);
    expect(c.json().map((l) => [l.level, l.msg, l.client ?? l.detail])).toEqual([
      ['info', 'connection closed', '203.0.113.7:51234'],
      ['error', 'data plane error', 'accept: EMFILE'],
      ['warn', 'connection closed', '[2001:db8::1]:4000'],
    ]);
    expect(c.json()[1]).toMatchObject({ listener: 'sieve' });
  });

  it('at level warn, logs the failed connections and not the ordinary closes, nor throttles them', () => {
    const c = capture();
    const logger = createLogger({ destination: c.destination, level: 'warn' });
    const throttle = new LogThrottle({ threshold: 1, intervalMs: 60_000, summary: () => {} });
    logNativeEvents(logger, [
      { kind: 'connection', record: record() },
      { kind: 'connection', record: record({ reason: 'backend_unavailable' }) },
    ], throttle);
    expect(c.json().map((l) => [l.level, l.reason])).toEqual([['warn', 'backend_unavailable']]);
  });
});

describe('connection failure lines, throttled per reason', () => {
  it('writes the first lines of an interval, then one summary per reason with the count', () => {
    let now = 1_000_000;
    const summaries: [string, number][] = [];
    const t = new LogThrottle({ threshold: 3, intervalMs: 10_000, now: () => now, summary: (r, n) => summaries.push([r, n]) });
    const admitted = (reason: string, n: number) => Array.from({ length: n }, () => t.admit(reason)).filter(Boolean).length;
    expect(admitted('handshake_failed', 50)).toBe(3);
    expect(admitted('proxy_header_refused', 2)).toBe(2);
    expect(summaries).toEqual([]);
    now += 10_000;
    // The next line opens a new interval: the last one's summary comes first.
    expect(t.admit('handshake_failed')).toBe(true);
    expect(summaries).toEqual([['handshake_failed', 47]]);
    t.flush();
    expect(summaries).toEqual([['handshake_failed', 47]]);
  });

  it('sums up at the end of the interval even when no failure follows', async () => {
    const summaries: [string, number][] = [];
    const t = new LogThrottle({ threshold: 1, intervalMs: 50, summary: (r, n) => summaries.push([r, n]) });
    t.admit('handshake_timeout');
    t.admit('handshake_timeout');
    t.admit('handshake_timeout');
    await new Promise((r) => setTimeout(r, 120));
    expect(summaries).toEqual([['handshake_timeout', 2]]);
  });

  it('logNativeEvents: 1,000 failed handshakes and 1,000 normal closes give 1,000 info lines, the threshold of warn lines and one summary', () => {
    const c = capture();
    const log = createLogger({ destination: c.destination });
    const throttle = connectionLogThrottle(log, { threshold: 20, intervalMs: 60_000 });
    const events = [];
    for (let i = 0; i < 1000; i++) {
      events.push({ kind: 'connection' as const, record: record({ reason: 'handshake_failed', detail: 'wrong version number' }) });
      events.push({ kind: 'connection' as const, record: record() });
    }
    logNativeEvents(log, events, throttle);
    events.length = 0;
    logNativeEvents(log, [{ kind: 'dropped', count: 5000 }], throttle);
    throttle.flush();
    const lines = c.json();
    expect(lines.filter((l) => l.level === 'info')).toHaveLength(1000);
    expect(lines.filter((l) => l.reason === 'handshake_failed' && l.msg === 'connection closed')).toHaveLength(20);
    expect(lines.find((l) => l.msg === 'connection records dropped: logging (stdout) or the JavaScript thread fell behind')).toMatchObject({ level: 'warn', dropped: 5000 });
    const summary = lines.filter((l) => l.suppressed !== undefined);
    expect(summary).toEqual([expect.objectContaining({ level: 'warn', reason: 'handshake_failed', suppressed: 980, interval_s: 60 })]);
    expect(lines).toHaveLength(1000 + 20 + 1 + 1);
  });
});

describe('login and ban lines', () => {
  const login = (over: Partial<LoginRecord> = {}): LoginRecord => ({
    listener: 'imaps', protocol: 'imaps', client: '[2001:db8::7]:5123', network: '2001:db8::/64', sni: 'mail.example.org',
    user: 'alice@example.org', mech: 'PLAIN', result: 'failure', ...over,
  });

  it('a login line has client first, then result, network, listener, sni, mechanism and user', () => {
    const line = loginLogLine(login());
    expect(line).toEqual({
      level: 'info',
      msg: 'login failed',
      fields: { client: '[2001:db8::7]:5123', result: 'failure', network: '2001:db8::/64', listener: 'imaps', protocol: 'imaps', sni: 'mail.example.org', mech: 'PLAIN', user: 'alice@example.org' },
    });
    expect(Object.keys(line.fields).slice(0, 2)).toEqual(['client', 'result']);
    expect(loginLogLine(login({ result: 'success' })).msg).toBe('login succeeded');
    expect(loginLogLine(login({ result: 'error' })).msg).toBe('login error');
  });

  it('log.usernames: false leaves the user out of login and connection lines', () => {
    expect(loginLogLine(login(), { usernames: false }).fields).not.toHaveProperty('user');
    expect(connectionLogLine(record(), { usernames: false }).fields).not.toHaveProperty('user');
    expect(connectionLogLine(record({ login: 'none', user: '', loginFailures: 0 })).fields).toMatchObject({ authenticated: false, login: 'none', login_failures: 0 });
    expect(connectionLogLine(record({ login: 'none', user: '' })).fields).not.toHaveProperty('user');
  });

  it('logNativeEvents writes login, ban and ban-ended lines', () => {
    const c = capture();
    logNativeEvents(createLogger({ destination: c.destination }), [
      { kind: 'login', login: login() },
      { kind: 'ban', network: '203.0.113.7', listener: 'imaps', banMs: 900_000, failures: 10 },
      { kind: 'ban_ended', network: '203.0.113.7' },
    ], undefined, { usernames: false });
    const [l, b, e] = c.json();
    expect(l).toMatchObject({ level: 'info', msg: 'login failed', client: '[2001:db8::7]:5123', result: 'failure' });
    expect(l).not.toHaveProperty('user');
    expect(b).toMatchObject({ level: 'warn', msg: 'client network banned', network: '203.0.113.7', failures: 10, ban_s: 900 });
    expect(Date.parse(String(b!.until)) - Date.now()).toBeGreaterThan(890_000);
    expect(e).toMatchObject({ level: 'info', msg: 'client network ban ended', network: '203.0.113.7' });
  });
});
