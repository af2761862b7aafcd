import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MailfrontError } from '../../src/errors.js';
import { LabelGuard, createMetrics, startMetricsServer, type Metrics, type MetricsServer } from '../../src/metrics.js';
import type { ConnectionRecord, ListenerCounters, LoginRecord, NativeStats } from '../../src/native.js';

function counters(name: string, over: Partial<ListenerCounters> = {}): ListenerCounters {
  return {
    name,
    accepted: 0,
    active: 0,
    rejectedLimit: 0,
    rejectedPerClient: 0,
    handshakes: 0,
    handshakeFailures: 0,
    resumed: 0,
    bytesIn: 0,
    bytesOut: 0,
    backendFailures: 0,
    sniUnknown: 0,
    proxyRefused: 0,
    proxyMalformed: 0,
    earlyConnectsDeferred: 0,
    rejectedBanned: 0,
    rejectedRate: 0,
    recordLayer: 0,
    recordLayerDeclined: 0,
    ...over,
  };
}

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
    group: 'X25519',
    resumed: false,
    bytesIn: 100,
    bytesOut: 200,
    handshakeMs: 3,
    connectMs: 1,
    durationMs: 2500,
    reason: 'client_closed',
    detail: '',
    login: 'success',
    user: 'alice@example.org',
    loginFailures: 1,
    ...over,
  };
}

/** Parses exposition text into "name{labels}" -> value (labels as printed by prom-client). */
async function scrape(m: Metrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function make(stats?: () => NativeStats): Metrics {
  return createMetrics({ stats, version: '0.1.0', opensslVersion: 'OpenSSL 3.0.19', defaultMetrics: false });
}

describe('native counters pulled at scrape time', () => {
  it('exposes the data plane counters with their values', async () => {
    const stats: NativeStats = {
      workers: 4,
      active: 5,
      maxLoopAgeMs: 0,
      eventsDropped: 12,
      listeners: [
        counters('imaps', {
          accepted: 10,
          active: 3,
          rejectedLimit: 1,
          rejectedPerClient: 2,
          handshakes: 8,
          handshakeFailures: 2,
          resumed: 4,
          bytesIn: 1000,
          bytesOut: 50000,
          backendFailures: 1,
          earlyConnectsDeferred: 6,
        }),
        counters('sieve', { accepted: 7, active: 2 }),
      ],
    };
    const s = await scrape(make(() => stats));
    expect(s.get('mailfront_workers')).toBe(4);
    expect(s.get('mailfront_connection_records_dropped_total')).toBe(12);
    expect(s.get('mailfront_connections_accepted_total{listener="imaps"}')).toBe(10);
    expect(s.get('mailfront_connections_accepted_total{listener="sieve"}')).toBe(7);
    expect(s.get('mailfront_connections_active{listener="imaps"}')).toBe(3);
    expect(s.get('mailfront_connections_active{listener="sieve"}')).toBe(2);
    expect(s.get('mailfront_connections_rejected_total{listener="imaps",kind="total"}')).toBe(1);
    expect(s.get('mailfront_connections_rejected_total{listener="imaps",kind="per_client"}')).toBe(2);
    expect(s.get('mailfront_tls_handshakes_total{listener="imaps"}')).toBe(8);
    expect(s.get('mailfront_tls_handshake_failures_total{listener="imaps"}')).toBe(2);
    expect(s.get('mailfront_tls_resumed_handshakes_total{listener="imaps"}')).toBe(4);
    expect(s.get('mailfront_relayed_bytes_total{listener="imaps",direction="in"}')).toBe(1000);
    expect(s.get('mailfront_relayed_bytes_total{listener="imaps",direction="out"}')).toBe(50000);
    expect(s.get('mailfront_backend_connect_failures_total{listener="imaps"}')).toBe(1);
    expect(s.get('mailfront_backend_early_connects_deferred_total{listener="imaps"}')).toBe(6);
  });

  it('exports every counter the data plane keeps, the PROXY header ones included', async () => {
    // Each field gets its own value: one that no sample shows is counted but never exported.
    const fields = Object.keys(counters('imaps')).filter((k) => k !== 'name') as (keyof Omit<ListenerCounters, 'name'>)[];
    const values = Object.fromEntries(fields.map((f, i) => [f, 1001 + 7 * i]));
    const s = await scrape(make(() => ({ workers: 1, active: 0, listeners: [counters('imaps', values)] })));
    const shown = new Set([...s].filter(([k]) => k.includes('listener="imaps"')).map(([, v]) => v));
    expect(fields.filter((f) => !shown.has(values[f]!))).toEqual([]);
    expect(s.get('mailfront_proxy_headers_rejected_total{listener="imaps",kind="refused"}')).toBe(values.proxyRefused);
    expect(s.get('mailfront_proxy_headers_rejected_total{listener="imaps",kind="malformed"}')).toBe(values.proxyMalformed);
  });

  it('calls stats() once per scrape', async () => {
    let calls = 0;
    const m = make(() => (calls++, { workers: 1, active: 0, listeners: [counters('imaps')] }));
    await m.registry.metrics();
    expect(calls).toBe(1);
    await m.registry.metrics();
    expect(calls).toBe(2);
  });

  it('stays monotonic across scrapes, and across a data plane restart', async () => {
    let accepted = 0;
    const m = make(() => ({ workers: 1, active: 0, listeners: [counters('imaps', { accepted })] }));
    const seen: number[] = [];
    for (const v of [5, 12, 12, 3 /* native restarted */, 9, 20]) {
      accepted = v;
      seen.push((await scrape(m)).get('mailfront_connections_accepted_total{listener="imaps"}') ?? NaN);
    }
    // 5, +7, +0, reset: +3, +6, +11
    expect(seen).toEqual([5, 12, 12, 15, 21, 32]);
  });

  it('setStatsSource() restarts the baseline for a new proxy', async () => {
    const m = make(() => ({ workers: 1, active: 0, listeners: [counters('imaps', { accepted: 40 })] }));
    expect((await scrape(m)).get('mailfront_connections_accepted_total{listener="imaps"}')).toBe(40);
    // The new proxy already counted 50 before the first scrape: 50 more, not 10.
    m.setStatsSource(() => ({ workers: 1, active: 0, listeners: [counters('imaps', { accepted: 50 })] }));
    expect((await scrape(m)).get('mailfront_connections_accepted_total{listener="imaps"}')).toBe(90);
  });

  it('keeps the last values when stats() throws or no source is set', async () => {
    let fail = false;
    const m = make(() => {
      if (fail) throw new Error('proxy stopped');
      return { workers: 2, active: 1, listeners: [counters('imaps', { accepted: 6, active: 1 })] };
    });
    expect((await scrape(m)).get('mailfront_connections_accepted_total{listener="imaps"}')).toBe(6);
    fail = true;
    const s = await scrape(m);
    expect(s.get('mailfront_connections_accepted_total{listener="imaps"}')).toBe(6);
    expect(s.get('mailfront_workers')).toBe(2);
    const empty = await scrape(make());
    expect(empty.get('mailfront_build_info{version="0.1.0",openssl_version="OpenSSL 3.0.19",node_version="' + process.version + '"}')).toBe(1);
  });
});

describe('connection records', () => {
  it('counts closes by reason and handshakes by result and version', async () => {
    const m = make();
    m.observeConnection(record());
    m.observeConnection(record({ tlsVersion: 'TLSv1.2' }));
    m.observeConnection(record({ reason: 'handshake_failed', tlsVersion: '', cipher: '', server: '', pool: '' }));
    // A STARTTLS client that leaves before STARTTLS: no handshake at all.
    m.observeConnection(record({ listener: 'sieve', protocol: 'managesieve', tlsVersion: '', server: '', pool: '' }));
    m.observeConnection(record({ reason: 'backend_unavailable', server: '', pool: 'cyrus-imap' }));
    const s = await scrape(m);
    expect(s.get('mailfront_connections_closed_total{listener="imaps",reason="client_closed"}')).toBe(2);
    expect(s.get('mailfront_connections_closed_total{listener="imaps",reason="handshake_failed"}')).toBe(1);
    expect(s.get('mailfront_connections_closed_total{listener="imaps",reason="backend_unavailable"}')).toBe(1);
    expect(s.get('mailfront_connections_closed_total{listener="sieve",reason="client_closed"}')).toBe(1);
    expect(s.get('mailfront_tls_handshake_results_total{listener="imaps",result="ok",version="TLSv1.3"}')).toBe(2);
    expect(s.get('mailfront_tls_handshake_results_total{listener="imaps",result="ok",version="TLSv1.2"}')).toBe(1);
    expect(s.get('mailfront_tls_handshake_results_total{listener="imaps",result="failed",version="none"}')).toBe(1);
    expect([...s.keys()].some((k) => k.startsWith('mailfront_tls_handshake_results_total{listener="sieve"'))).toBe(false);
  });

  it('counts successful handshakes by key-exchange group, with a bounded label', async () => {
    const m = make();
    m.observeConnection(record({ group: 'X25519MLKEM768' }));
    m.observeConnection(record({ group: 'X25519MLKEM768', listener: 'sieve', protocol: 'managesieve' }));
    m.observeConnection(record({ group: 'X25519' }));
    m.observeConnection(record({ group: 'X25519MLKEM768' }));
    m.observeConnection(record({ reason: 'handshake_failed', tlsVersion: '', cipher: '', group: '', server: '', pool: '' }));
    m.observeConnection(record({ group: 'bad group\nname' }));
    const s = await scrape(m);
    expect(s.get('mailfront_tls_handshake_groups_total{listener="imaps",group="X25519MLKEM768"}')).toBe(2);
    expect(s.get('mailfront_tls_handshake_groups_total{listener="sieve",group="X25519MLKEM768"}')).toBe(1);
    expect(s.get('mailfront_tls_handshake_groups_total{listener="imaps",group="X25519"}')).toBe(1);
    expect(s.get('mailfront_tls_handshake_groups_total{listener="imaps",group="other"}')).toBe(1);
    const total = [...s.entries()].filter(([k]) => k.startsWith('mailfront_tls_handshake_groups_total')).reduce((a, [, v]) => a + v, 0);
    expect(total).toBe(5); // the failed handshake has no group
  });

  it('fills the histograms in seconds', async () => {
    const m = make();
    m.observeConnection(record({ handshakeMs: 3, connectMs: 1, durationMs: 2500 }));
    m.observeConnection(record({ handshakeMs: 40, connectMs: 2, durationMs: 1_900_000 }));
    const s = await scrape(m);
    expect(s.get('mailfront_tls_handshake_duration_seconds_bucket{le="0.001",listener="imaps"}')).toBe(0);
    expect(s.get('mailfront_tls_handshake_duration_seconds_bucket{le="0.005",listener="imaps"}')).toBe(1);
    expect(s.get('mailfront_tls_handshake_duration_seconds_bucket{le="0.05",listener="imaps"}')).toBe(2);
    expect(s.get('mailfront_tls_handshake_duration_seconds_sum{listener="imaps"}')).toBeCloseTo(0.043, 9);
    expect(s.get('mailfront_tls_handshake_duration_seconds_count{listener="imaps"}')).toBe(2);
    expect(s.get('mailfront_backend_connect_duration_seconds_bucket{le="0.001",pool="cyrus-imap"}')).toBe(1);
    expect(s.get('mailfront_backend_connect_duration_seconds_count{pool="cyrus-imap"}')).toBe(2);
    expect(s.get('mailfront_connection_duration_seconds_bucket{le="10",listener="imaps"}')).toBe(1);
    expect(s.get('mailfront_connection_duration_seconds_bucket{le="3600",listener="imaps"}')).toBe(2);
    expect(s.get('mailfront_connection_duration_seconds_sum{listener="imaps"}')).toBe(1902.5);
  });

  it('keeps label cardinality bounded: 1000 SNI names, odd reasons and versions', async () => {
    const m = make();
    const before = (await m.registry.metrics()).split('\n').length;
    for (let i = 0; i < 1000; i++) {
      m.observeConnection(
        record({
          sni: `host${i}.example.org`,
          client: `198.51.100.${i % 250}:${1000 + i}`,
          reason: i % 2 ? `weird reason ${i}` : `reason_${i}`,
          tlsVersion: i % 3 ? 'TLSv1.3' : `SSLv${i}`,
        }),
      );
    }
    const text = await m.registry.metrics();
    expect(text).not.toContain('example.org');
    expect(text).not.toContain('198.51.100');
    const reasons = new Set([...text.matchAll(/reason="([^"]*)"/g)].map((x) => x[1]));
    expect(reasons.size).toBe(33); // 32 distinct, then "other"
    expect(reasons.has('other')).toBe(true);
    const versions = new Set([...text.matchAll(/[{,]version="([^"]*)"/g)].map((x) => x[1]));
    expect([...versions].sort()).toEqual(['0.1.0', 'TLSv1.3', 'other']);
    // Series count grows by the bounded sets only, not by 1000.
    expect(text.split('\n').length - before).toBeLessThan(120);
  });

  it('LabelGuard folds bad shapes and overflow into "other"', () => {
    const g = new LabelGuard(2);
    expect(['a', 'b', 'a', 'c', 'x y', 'b'].map((v) => g.value(v))).toEqual(['a', 'b', 'a', 'other', 'other', 'b']);
  });
});

describe('control plane metrics', () => {
  it('certificates: only the loaded set, by name and key type', async () => {
    const m = make();
    m.setCertificates([
      { name: 'mail.example.org', keyType: 'ecdsa', notAfter: new Date('2030-01-02T03:04:05Z') },
      { name: 'mail.example.org', keyType: 'rsa', notAfter: new Date('2030-02-01T00:00:00Z') },
      { name: 'old.example.net', keyType: 'rsa', notAfter: new Date('2029-01-01T00:00:00Z') },
    ]);
    let s = await scrape(m);
    expect(s.get('mailfront_certificates_loaded')).toBe(3);
    expect(s.get('mailfront_certificate_expiry_timestamp_seconds{name="mail.example.org",key_type="ecdsa"}')).toBe(1893553445);
    expect(s.get('mailfront_certificate_expiry_timestamp_seconds{name="old.example.net",key_type="rsa"}')).toBe(1861920000);
    m.setCertificates([{ name: 'mail.example.org', keyType: 'ecdsa', notAfter: new Date('2030-04-01T00:00:00Z') }]);
    s = await scrape(m);
    expect(s.get('mailfront_certificates_loaded')).toBe(1);
    expect(s.get('mailfront_certificate_expiry_timestamp_seconds{name="mail.example.org",key_type="ecdsa"}')).toBe(1901232000);
    expect(s.has('mailfront_certificate_expiry_timestamp_seconds{name="old.example.net",key_type="rsa"}')).toBe(false);
  });

  it('reloads, backend health and build info', async () => {
    const m = make();
    let s = await scrape(m);
    expect(s.get('mailfront_reloads_total{result="ok"}')).toBe(0);
    expect(s.get('mailfront_reloads_total{result="failed"}')).toBe(0);
    expect(s.get('mailfront_last_reload_successful')).toBe(1);
    m.reloaded('ok', new Date('2026-03-01T12:00:00Z'));
    m.reloaded('failed', new Date('2026-03-01T13:00:00Z'));
    m.setBackendHealth('cyrus-imap', '127.0.0.1:1143', true);
    m.setBackendHealth('cyrus-sieve', '127.0.0.1:2000', false);
    s = await scrape(m);
    expect(s.get('mailfront_reloads_total{result="ok"}')).toBe(1);
    expect(s.get('mailfront_reloads_total{result="failed"}')).toBe(1);
    expect(s.get('mailfront_last_reload_successful')).toBe(0);
    expect(s.get('mailfront_last_reload_success_timestamp_seconds')).toBe(1772366400);
    expect(s.get('mailfront_backend_up{pool="cyrus-imap",server="127.0.0.1:1143"}')).toBe(1);
    expect(s.get('mailfront_backend_up{pool="cyrus-sieve",server="127.0.0.1:2000"}')).toBe(0);
    m.clearBackendHealth();
    s = await scrape(m);
    expect([...s.keys()].filter((k) => k.startsWith('mailfront_backend_up'))).toEqual([]);
  });

  it('includes default process metrics when asked', async () => {
    const m = createMetrics({ version: '0.1.0', opensslVersion: 'x' });
    const text = await m.registry.metrics();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('adds them later, once, when a listener is about to serve them', async () => {
    const m = make();
    expect(await m.registry.metrics()).not.toContain('process_cpu_seconds_total');
    m.collectProcessMetrics();
    m.collectProcessMetrics(); // a second call must not register the same names again (prom-client throws)
    const text = await m.registry.metrics();
    expect(text).toContain('process_cpu_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });
});

describe('metrics HTTP server', () => {
  let server: MetricsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics, /healthz, 404 and 405 on 127.0.0.1:0', async () => {
    let ok = true;
    const m = make(() => ({ workers: 1, active: 0, listeners: [counters('imaps', { accepted: 42 })] }));
    server = await startMetricsServer('127.0.0.1:0', m.registry, () => ({ ok, detail: { listeners: 2 } }));
    expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    const base = `http://${server.address}`;

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await metrics.text()).toContain('mailfront_connections_accepted_total{listener="imaps"} 42\n');

    const healthy = await fetch(`${base}/healthz?verbose=1`);
    expect(healthy.status).toBe(200);
    expect(healthy.headers.get('content-type')).toBe('application/json');
    expect(await healthy.json()).toEqual({ status: 'ok', listeners: 2 });
    ok = false;
    const sick = await fetch(`${base}/healthz`);
    expect(sick.status).toBe(503);
    expect(await sick.json()).toEqual({ status: 'unhealthy', listeners: 2 });

    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await head.text()).toBe('');

    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics/x`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('turns a bind error into MF_LISTEN naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const err = await startMetricsServer(`127.0.0.1:${port}`, make().registry, () => ({ ok: true, detail: {} })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MailfrontError);
      expect((err as MailfrontError).code).toBe('MF_LISTEN');
      expect((err as MailfrontError).message).toBe(`metrics listener 127.0.0.1:${port}: EADDRINUSE address already in use 127.0.0.1:${port}`);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('rejects a malformed address with MF_LISTEN', async () => {
    await expect(startMetricsServer('nonsense', make().registry, () => ({ ok: true, detail: {} }))).rejects.toMatchObject({
      code: 'MF_LISTEN',
      message: 'metrics listener nonsense: "nonsense": expected "ip:port" or "[v6]:port" (the port is missing)',
    });
  });
});

describe('logins and bans', () => {
  const login = (over: Partial<LoginRecord> = {}): LoginRecord => ({
    listener: 'imaps', protocol: 'imaps', client: '203.0.113.7:5123', network: '203.0.113.7', sni: 'mail.example.org',
    user: 'alice', mech: 'LOGIN', result: 'failure', ...over,
  });

  it('mailfront_auth_total counts outcomes by listener and result; bans and refusals by kind', async () => {
    const stats: NativeStats = {
      workers: 1, active: 0, maxLoopAgeMs: 0, bannedNetworks: 2, trackedNetworks: 9, contexts: 10, contextsBuilt: 3,
      listeners: [counters('imaps', { rejectedBanned: 5, rejectedRate: 3 })],
    };
    const m = make(() => stats);
    m.observeLogin(login());
    m.observeLogin(login());
    m.observeLogin(login({ result: 'success' }));
    m.observeLogin(login({ listener: 'sieve', result: 'error' }));
    m.observeBan('imaps');
    const s = await scrape(m);
    expect(s.get('mailfront_auth_total{listener="imaps",result="failure"}')).toBe(2);
    expect(s.get('mailfront_auth_total{listener="imaps",result="success"}')).toBe(1);
    expect(s.get('mailfront_auth_total{listener="sieve",result="error"}')).toBe(1);
    expect(s.get('mailfront_bans_total{listener="imaps"}')).toBe(1);
    expect(s.get('mailfront_banned_networks')).toBe(2);
    expect(s.get('mailfront_tls_contexts{state="built"}')).toBe(3);
    expect(s.get('mailfront_tls_contexts{state="waiting"}')).toBe(7);
    expect(s.get('mailfront_connections_rejected_total{listener="imaps",kind="banned"}')).toBe(5);
    expect(s.get('mailfront_connections_rejected_total{listener="imaps",kind="rate"}')).toBe(3);
  });

  it('no label carries a user name or a client address', async () => {
    const m = make();
    m.observeLogin(login({ user: 'mallory', client: '198.51.100.1:1' }));
    const text = await m.registry.metrics();
    expect(text).not.toContain('mallory');
    expect(text).not.toContain('198.51.100.1');
  });
});
