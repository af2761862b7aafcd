// Prometheus metrics on mailfront's own registry. Three sources:
//  - the data plane's cumulative counters, pulled from stats() at scrape time;
//  - finished-connection records (histograms and close reasons), fed per record;
//  - the control plane (certificates, reloads, backend health, build info).
// Every label value is bounded: listener, pool and backend names come from the
// config, everything that comes from the network (SNI, close reason text, TLS
// version) is either not a label or folded into a fixed set.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConnectionRecord, ListenerCounters, LoginRecord, NativeStats } from './native.js';
import { RecordCounter, RecordHistogram } from './record-metrics.js';

export { startMetricsServer, type MetricsServer, type HealthCheck } from './metrics-server.js';

export interface MetricsOptions {
  /** Reads the data plane's counters; may be set later with setStatsSource(). */
  stats?: () => NativeStats;
  version: string;
  opensslVersion: string;
  /** process_* and nodejs_* metrics (prom-client defaults); default true. */
  defaultMetrics?: boolean;
}

/** What the certificate store reports per loaded certificate (one per name and key type). */
export interface LoadedCertificate {
  /** The certificate's primary name (first subjectAltName), e.g. "mail.example.org". */
  name: string;
  /** "rsa", "ecdsa", ... */
  keyType: string;
  notAfter: Date;
}

export interface Metrics {
  readonly registry: Registry;
  /** Replaces the stats getter (a new NativeProxy) and restarts the delta baseline. */
  setStatsSource(stats: (() => NativeStats) | undefined): void;
  observeConnection(record: ConnectionRecord): void;
  /** One login outcome (mailfront_auth_total). */
  observeLogin(login: LoginRecord): void;
  /** A client network was banned (mailfront_bans_total). */
  observeBan(listener: string): void;
  /** Replaces the whole certificate set: certificates no longer loaded lose their series. */
  setCertificates(certs: readonly LoadedCertificate[]): void;
  reloaded(result: 'ok' | 'failed', at?: Date): void;
  setBackendHealth(pool: string, server: string, up: boolean): void;
  /** Drops every backend health series (before re-reporting after a config reload). */
  clearBackendHealth(): void;
  /** Adds the process_* and nodejs_* metrics if they are not there yet (once a listener serves them). */
  collectProcessMetrics(): void;
}

export const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const CONNECT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** IMAP sessions live for hours (IDLE); probes and failures for milliseconds. */
export const DURATION_BUCKETS = [0.01, 0.1, 1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600];

const TLS_VERSIONS = new Set(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
const MAX_LABEL_VALUES = 64;

/**
 * Folds values outside a fixed shape, or beyond the first `max` distinct ones,
 * into "other". Protects against a data-plane bug turning free text into labels.
 */
export class LabelGuard {
  private readonly seen = new Set<string>();
  constructor(
    private readonly max = MAX_LABEL_VALUES,
    private readonly shape = /^[A-Za-z0-9_.:\-[\]/]{1,64}$/,
  ) {}
  value(v: string): string {
    if (this.seen.has(v)) return v;
    if (!this.shape.test(v) || this.seen.size >= this.max) return 'other';
    this.seen.add(v);
    return v;
  }
}

type CounterField = Exclude<keyof ListenerCounters, 'name' | 'active'>;

/**
 * Native counters are cumulative since the proxy started. They are exposed as
 * real Prometheus counters: at each scrape the delta since the previous one is
 * added with inc(). A value lower than the last one means the data plane's
 * counters restarted (new NativeProxy), so the whole new value is the delta.
 * Result: the exposed series never go backwards while this process lives, and
 * nothing is lost across a data-plane restart.
 */
class NativeDeltas {
  private last = new Map<string, number>();
  delta(listener: string, field: CounterField | 'eventsDropped', value: number): number {
    const key = `${listener}\0${field}`;
    const prev = this.last.get(key) ?? 0;
    this.last.set(key, value);
    return value >= prev ? value - prev : value;
  }
  reset(): void {
    this.last = new Map();
  }
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  let processMetrics = false;
  const collectProcessMetrics = (): void => {
    if (processMetrics) return;
    processMetrics = true;
    collectDefaultMetrics({ register: registry });
  };
  if (options.defaultMetrics ?? true) collectProcessMetrics();
  let stats = options.stats;
  const deltas = new NativeDeltas();
  const listeners = new LabelGuard();
  const pools = new LabelGuard();
  const reasons = new LabelGuard(32, /^[a-z0-9_]{1,40}$/);
  // Group names come from the library (a handful); the guard keeps a bug from making them unbounded.
  const groups = new LabelGuard(16, /^[A-Za-z0-9_-]{1,64}$/);

  // One stats() call per scrape: registry.metrics() calls every collect() in
  // one synchronous pass, so the first one pulls and the rest reuse it until
  // the microtask queue runs.
  let pulled = false;
  const pull = (): void => {
    if (pulled) return;
    pulled = true;
    queueMicrotask(() => (pulled = false));
    if (!stats) return;
    let s: NativeStats;
    try {
      s = stats();
    } catch {
      return; // proxy stopped or not started: keep the last values
    }
    sync(s);
  };

  const nativeCounter = (name: string, help: string, labelNames: string[] = ['listener']) =>
    new Counter({ name, help, labelNames, registers: [registry], collect: pull });

  const accepted = nativeCounter('mailfront_connections_accepted_total', 'Connections accepted, by listener.');
  const active = new Gauge({
    name: 'mailfront_connections_active',
    help: 'Connections open now, by listener.',
    labelNames: ['listener'],
    registers: [registry],
    collect: pull,
  });
  const workers = new Gauge({ name: 'mailfront_workers', help: 'Data plane worker threads.', registers: [registry], collect: pull });
  const recordsDropped = new Counter({
    name: 'mailfront_connection_records_dropped_total',
    help: 'Connection records the data plane dropped because the JavaScript thread (logging, metrics) fell behind by more than its queue holds.',
    registers: [registry],
    collect: pull,
  });
  const bannedNetworks = new Gauge({
    name: 'mailfront_banned_networks',
    help: 'Client networks banned now for failed logins (this instance).',
    registers: [registry],
    collect: pull,
  });
  const contexts = new Gauge({
    name: 'mailfront_tls_contexts',
    help: 'Certificate contexts served now, by state (built: its OpenSSL context exists; waiting: built on the first handshake that names it).',
    labelNames: ['state'],
    registers: [registry],
    collect: pull,
  });
  const rejected = nativeCounter(
    'mailfront_connections_rejected_total',
    'Connections refused by a limit, by listener and kind (total: limits.connections, per_client: limits.per_client, banned: a login ban of the client network, rate: limits.connection_rate).',
    ['listener', 'kind'],
  );
  const handshakes = nativeCounter('mailfront_tls_handshakes_total', 'Completed TLS handshakes, by listener.');
  const handshakeFailures = nativeCounter('mailfront_tls_handshake_failures_total', 'Failed TLS handshakes, by listener.');
  const resumed = nativeCounter('mailfront_tls_resumed_handshakes_total', 'TLS handshakes that resumed a session, by listener.');
  const sniUnknown = nativeCounter(
    'mailfront_tls_sni_unknown_total',
    'Handshakes whose SNI matched no certificate (default served, or rejected with unknown_sni: reject), by listener.',
  );
  const bytes = nativeCounter(
    'mailfront_relayed_bytes_total',
    'Plaintext bytes relayed, by listener and direction (in: client to backend, out: backend to client).',
    ['listener', 'direction'],
  );
  const backendFailures = nativeCounter(
    'mailfront_backend_connect_failures_total',
    'Failed connection attempts to backend servers, by listener.',
  );
  const earlyDeferred = nativeCounter(
    'mailfront_backend_early_connects_deferred_total',
    'Backend connects that waited for the end of the TLS handshake because the pool already had 32 opened for clients still in theirs, by listener.',
  );
  const recordLayer = nativeCounter(
    'mailfront_tls_record_layer_total',
    'Handshakes under tls.record_layer mailfront, by listener and the record layer that carries the connection after it (mailfront: TLS 1.3, the SSL freed; openssl: TLS 1.2, or a state not handed over).',
    ['listener', 'layer'],
  );
  const proxyRejected = nativeCounter(
    'mailfront_proxy_headers_rejected_total',
    'Connections to an accept_proxy listener closed for their PROXY header, by listener and kind (refused: the sender is not in trusted_proxies; malformed: a malformed, unfinished or timed-out header).',
    ['listener', 'kind'],
  );

  function sync(s: NativeStats): void {
    workers.set(s.workers);
    recordsDropped.inc(deltas.delta('', 'eventsDropped', s.eventsDropped ?? 0));
    bannedNetworks.set(s.bannedNetworks ?? 0);
    contexts.set({ state: 'built' }, s.contextsBuilt ?? 0);
    contexts.set({ state: 'waiting' }, (s.contexts ?? 0) - (s.contextsBuilt ?? 0));
    active.reset(); // listeners that went away lose their series
    for (const l of s.listeners) {
      const listener = listeners.value(l.name);
      const add = (c: Counter, field: CounterField, labels: Record<string, string> = {}) => {
        const d = deltas.delta(l.name, field, l[field]);
        c.inc({ listener, ...labels }, d);
      };
      active.set({ listener }, l.active);
      add(accepted, 'accepted');
      add(rejected, 'rejectedLimit', { kind: 'total' });
      add(rejected, 'rejectedPerClient', { kind: 'per_client' });
      add(rejected, 'rejectedBanned', { kind: 'banned' });
      add(rejected, 'rejectedRate', { kind: 'rate' });
      add(handshakes, 'handshakes');
      add(handshakeFailures, 'handshakeFailures');
      add(resumed, 'resumed');
      add(sniUnknown, 'sniUnknown');
      add(bytes, 'bytesIn', { direction: 'in' });
      add(bytes, 'bytesOut', { direction: 'out' });
      add(backendFailures, 'backendFailures');
      add(earlyDeferred, 'earlyConnectsDeferred');
      add(recordLayer, 'recordLayer', { layer: 'mailfront' });
      add(recordLayer, 'recordLayerDeclined', { layer: 'openssl' });
      add(proxyRejected, 'proxyRefused', { kind: 'refused' });
      add(proxyRejected, 'proxyMalformed', { kind: 'malformed' });
    }
  }

  // Fed per finished connection: src/record-metrics.ts, a Map look-up per series.
  const closed = new RecordCounter('mailfront_connections_closed_total', 'Finished connections, by listener and close reason.', ['listener', 'reason'], registry);
  const handshakeResults = new RecordCounter(
    'mailfront_tls_handshake_results_total',
    'TLS handshakes of finished connections, by listener, result (ok, failed) and TLS version ("none" when failed).',
    ['listener', 'result', 'version'],
    registry,
  );
  const handshakeGroups = new RecordCounter(
    'mailfront_tls_handshake_groups_total',
    'Successful TLS handshakes of finished connections, by listener and key-exchange group (X25519MLKEM768: hybrid post-quantum).',
    ['listener', 'group'],
    registry,
  );
  const handshakeSeconds = new RecordHistogram(
    'mailfront_tls_handshake_duration_seconds',
    'Duration of successful TLS handshakes, by listener.',
    'listener',
    HANDSHAKE_BUCKETS,
    registry,
  );
  const connectSeconds = new RecordHistogram(
    'mailfront_backend_connect_duration_seconds',
    'Time to connect to the backend server that was used, by pool.',
    'pool',
    CONNECT_BUCKETS,
    registry,
  );
  const connectionSeconds = new RecordHistogram(
    'mailfront_connection_duration_seconds',
    'Lifetime of finished connections, by listener.',
    'listener',
    DURATION_BUCKETS,
    registry,
  );

  const auth = new Counter({
    name: 'mailfront_auth_total',
    help: 'Login outcomes seen after TLS, by listener and result (success, failure: a refused password, error: BAD/BYE).',
    labelNames: ['listener', 'result'],
    registers: [registry],
  });
  const bans = new Counter({
    name: 'mailfront_bans_total',
    help: 'Client networks banned for failed logins, by the listener of the failure that started the ban.',
    labelNames: ['listener'],
    registers: [registry],
  });
  const RESULTS = new Set(['success', 'failure', 'error']);

  function observeConnection(r: ConnectionRecord): void {
    const listener = listeners.value(r.listener);
    closed.inc(listener, reasons.value(r.reason));
    connectionSeconds.observe(listener, r.durationMs / 1000);
    // A STARTTLS client that leaves before STARTTLS never attempted a handshake.
    const attempted = r.tlsVersion !== '' || r.reason.startsWith('handshake_');
    if (attempted) {
      const ok = r.tlsVersion !== '';
      const version = ok ? (TLS_VERSIONS.has(r.tlsVersion) ? r.tlsVersion : 'other') : 'none';
      handshakeResults.inc(listener, ok ? 'ok' : 'failed', version);
      if (ok) {
        handshakeSeconds.observe(listener, r.handshakeMs / 1000);
        handshakeGroups.inc(listener, groups.value(r.group || 'none'));
      }
    }
    if (r.server !== '') connectSeconds.observe(pools.value(r.pool || 'none'), r.connectMs / 1000);
  }

  const certsLoaded = new Gauge({
    name: 'mailfront_certificates_loaded',
    help: 'Certificates in the live store.',
    registers: [registry],
  });
  const certExpiry = new Gauge({
    name: 'mailfront_certificate_expiry_timestamp_seconds',
    help: 'notAfter of each loaded certificate, by primary name and key type.',
    labelNames: ['name', 'key_type'],
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'mailfront_reloads_total',
    help: 'Certificate and configuration reloads, by result (ok, failed).',
    labelNames: ['result'],
    registers: [registry],
  });
  const lastReloadOk = new Gauge({
    name: 'mailfront_last_reload_successful',
    help: '1 if the last reload succeeded (or none happened yet), 0 if it failed and the old store still serves.',
    registers: [registry],
  });
  const lastReloadSuccess = new Gauge({
    name: 'mailfront_last_reload_success_timestamp_seconds',
    help: 'Time of the last successful load of certificates and configuration.',
    registers: [registry],
  });
  const backendUp = new Gauge({
    name: 'mailfront_backend_up',
    help: 'Backend server health as last checked: 1 up, 0 down, by pool and server.',
    labelNames: ['pool', 'server'],
    registers: [registry],
  });
  const buildInfo = new Gauge({
    name: 'mailfront_build_info',
    help: 'Always 1; labels carry the mailfront, OpenSSL and Node.js versions.',
    labelNames: ['version', 'openssl_version', 'node_version'],
    registers: [registry],
  });
  buildInfo.set({ version: options.version, openssl_version: options.opensslVersion, node_version: process.version }, 1);
  reloads.inc({ result: 'ok' }, 0);
  reloads.inc({ result: 'failed' }, 0);
  lastReloadOk.set(1);

  return {
    registry,
    collectProcessMetrics,
    setStatsSource(next) {
      stats = next;
      deltas.reset();
    },
    observeConnection,
    observeLogin(l) {
      auth.inc({ listener: listeners.value(l.listener), result: RESULTS.has(l.result) ? l.result : 'other' });
    },
    observeBan(listener) {
      bans.inc({ listener: listeners.value(listener) });
    },
    setCertificates(certs) {
      certExpiry.reset();
      for (const c of certs) certExpiry.set({ name: c.name, key_type: c.keyType }, Math.floor(c.notAfter.getTime() / 1000));
      certsLoaded.set(certs.length);
    },
    reloaded(result, at = new Date()) {
      reloads.inc({ result });
      lastReloadOk.set(result === 'ok' ? 1 : 0);
      if (result === 'ok') lastReloadSuccess.set(at.getTime() / 1000);
    },
    setBackendHealth(pool, server, up) {
      backendUp.set({ pool, server }, up ? 1 : 0);
    },
    clearBackendHealth() {
      backendUp.reset();
    },
  };
}
