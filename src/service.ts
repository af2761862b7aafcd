// The daemon's lifecycle: start -> ready -> reload (one at a time) -> drain -> stop.
// The only module that installs signal handlers.
import { createRequire } from 'node:module';
import { loadCertificates, watchCertificates, type CertStore } from './certs/index.js';
import { loadConfig } from './config/load.js';
import { configWarnings, type Config } from './config/schema.js';
import { MailfrontError } from './errors.js';
import { collectGarbage } from './gc.js';
import { probeSieveListeners } from './frontends/sieve-capabilities.js';
import { child, connectionLogThrottle, createLogger, logNativeEvents, type Logger } from './log.js';
import type { LogThrottle } from './log-throttle.js';
import { createMetrics, startMetricsServer, type Metrics, type MetricsServer } from './metrics.js';
import { createProxy, loadAddon, NativeError, type BoundListener, type NativeProxy, type NativeSnapshot } from './native.js';
import { buildSnapshot, nativeListeners } from './snapshot.js';
import { startHealthChecks } from './health.js';
import { createNotifier, listenFds, type Notifier } from './systemd.js';
import { readTicketKeys, ticketKeyInfo } from './ticket-keys.js';
import { runtimeSupport, tlsLibrary } from './tls-library.js';

const require = createRequire(import.meta.url);
export const VERSION: string = (require('../package.json') as { version: string }).version;

export interface ServiceOptions {
  configPath: string;
  /** Log destination (tests); stdout by default. */
  logger?: Logger;
  /** Install SIGHUP/SIGTERM/SIGINT handlers (the CLI does; tests may not). */
  signals?: boolean;
}

/** Everything a snapshot is built from; reloads build a new one beside the old. */
export interface Generation {
  config: Config;
  certs: CertStore;
  snapshot: NativeSnapshot;
  /** For the ready/reloaded log lines (ticketKeyInfo): taken before apply() zeroes the keys. */
  ticketKeys: Record<string, unknown>;
  /** Valid but probably not meant (configWarnings): `run` logs them at warn, `check` prints them. */
  warnings: string[];
}

/**
 * Builds what a config file describes, without touching the data plane.
 * <running>: the config being served; listeners and workers cannot change
 * without a restart, so theirs are kept (and resolved against the new backends).
 */
export async function prepare(configPath: string, log: Logger, running?: Config): Promise<Generation & { listenersNeedRestart: boolean }> {
  let config = await loadConfig(configPath);
  // The file changes listeners or workers: the running ones stay until a restart.
  const listenersNeedRestart = !!running && !sameListeners(running, config);
  if (running && listenersNeedRestart) config = { ...config, listeners: running.listeners, workers: running.workers };
  const certLog = child(log, 'certs');
  const certs = await loadCertificates({
    letsencrypt: [...config.certificates.letsencrypt],
    pemDirs: [...config.certificates.pemDirs],
    pairs: config.certificates.pairs.map((p) => ({ ...p })),
    defaultName: config.certificates.default,
  });
  for (const p of certs.problems) certLog[p.level === 'warning' ? 'warn' : p.level]({ path: p.path }, p.message);
  certLog.info(
    { certificates: certs.certificates.length, contexts: certs.contexts.length, default: certs.defaultName, default_from: certs.defaultFrom },
    'certificates loaded',
  );
  const sieve = await probeSieveListeners(config, Math.min(config.timeouts.connectMs, 3000));
  for (const e of sieve.errors) child(log, 'sieve').warn({ err: e.message }, 'sieve backend not probed: using fallback capabilities');
  const tk = config.tls.ticketKeys ? await readTicketKeys(config.tls.ticketKeys) : { keys: [] };
  if (tk.warning) child(log, 'tls').warn({ path: config.tls.ticketKeys }, tk.warning);
  return {
    config,
    certs,
    snapshot: buildSnapshot(config, certs, sieve.capabilities, tk.keys),
    ticketKeys: ticketKeyInfo(config.tls.ticketKeys, tk.keys),
    warnings: configWarnings(config),
    listenersNeedRestart,
  };
}

/**
 * A renewal that broke a pair being served (a key that does not match, a file
 * certbot left half-written) must not take that domain's certificate away: the
 * reload fails as a whole and the previous certificates go on serving.
 */
function refuseLosingCertificates(current: CertStore, next: CertStore): void {
  const served = new Set(current.certificates.flatMap((c) => [c.path, c.keyPath]));
  const broken = next.problems.filter((p) => p.level === 'error' && served.has(p.path));
  if (broken.length > 0)
    throw new MailfrontError(
      'MF_CERT_LOAD',
      `a certificate being served cannot be reloaded (${broken.map((p) => `${p.path}: ${p.message}`).join('; ')})`,
    );
}

/**
 * Hands <gen>'s snapshot to the data plane and returns what the control plane keeps of it.
 * Once applied, the PEM texts live in the data plane's SSL_CTXs and the ticket keys in its key
 * set: the control plane keeps only what it reports on (names, paths, expiry, the ticket key id),
 * so no private or ticket key sits in the JS heap for the life of the process. apply() zeroes the
 * ticket-key Buffers itself, also when it refuses the snapshot.
 */
export function applyGeneration<G extends Generation>(proxy: NativeProxy, gen: G): G {
  proxy.apply(gen.snapshot);
  return {
    ...gen,
    certs: { ...gen.certs, contexts: [] },
    snapshot: { ...gen.snapshot, contexts: [], tls: { ...gen.snapshot.tls, ticketKeys: [] } },
  };
}

function sameListeners(a: Config, b: Config): boolean {
  const shape = (c: Config) => JSON.stringify(c.listeners.map((l) => [l.name, l.protocol, l.listen]));
  return shape(a) === shape(b) && a.workers === b.workers;
}

export class Service {
  readonly log: Logger;
  readonly metrics: Metrics;
  bound: BoundListener[] = [];
  #options: ServiceOptions;
  #proxy?: NativeProxy;
  #current?: Generation;
  #metricsServer?: MetricsServer;
  #notifier: Notifier;
  #reloading?: Promise<boolean>;
  #stopping?: Promise<void>;
  #watcher?: { close(): void };
  #signalHandlers: [NodeJS.Signals, () => void][] = [];
  #hurry = false;
  #health?: { stop(): void };
  #connLog: Logger;
  #connThrottle: LogThrottle;

  constructor(options: ServiceOptions) {
    this.#options = options;
    this.log = options.logger ?? createLogger();
    this.#notifier = createNotifier(loadAddon().sdNotify);
    // Process metrics (prom-client's defaults) only with a metrics listener: their event-loop
    // monitor wakes the JS thread every 10 ms whether anyone scrapes or not (bench/PROFILE.md).
    this.metrics = createMetrics({ version: VERSION, opensslVersion: loadAddon().opensslVersion, defaultMetrics: false });
    this.#connLog = child(this.log, 'conn');
    this.#connThrottle = connectionLogThrottle(this.#connLog);
  }

  get config(): Config | undefined {
    return this.#current?.config;
  }

  async start(): Promise<void> {
    const log = child(this.log, 'service');
    const runtime = runtimeSupport(tlsLibrary());
    if (runtime.problems.length) log.warn({ runtime: runtime.summary, problems: runtime.problems }, `runtime out of support: ${runtime.advice}`);
    const gen = await prepare(this.#options.configPath, this.log);
    this.log.level = gen.config.log.level;
    for (const w of gen.warnings) child(this.log, 'config').warn(w);
    const proxy = createProxy(gen.config.workers, (events) => {
      logNativeEvents(this.#connLog, events, this.#connThrottle, { usernames: this.#current?.config.log.usernames ?? gen.config.log.usernames });
      for (const e of events) {
        if (e.kind === 'connection' && e.record) this.metrics.observeConnection(e.record);
        else if (e.kind === 'login' && e.login) this.metrics.observeLogin(e.login);
        else if (e.kind === 'ban') this.metrics.observeBan(e.listener ?? '');
      }
    });
    // Refusals arrive typed from the boundary (src/native.ts): MF_TLS_CONTEXT, MF_SNAPSHOT_FIELD, MF_LISTEN...
    const kept = applyGeneration(proxy, gen);
    const fds = listenFds();
    const listeners = nativeListeners(gen.config).map((l) => {
      const adopted = fds.get(l.name);
      return adopted ? { ...l, addresses: [], fds: adopted } : l;
    });
    this.bound = proxy.start(listeners);
    this.#proxy = proxy;
    this.#current = kept;
    this.metrics.setStatsSource(() => proxy.stats());
    this.#publishCertificates(gen.certs);
    this.metrics.reloaded('ok');
    if (gen.config.metrics) {
      this.metrics.collectProcessMetrics();
      this.#metricsServer = await startMetricsServer(gen.config.metrics.listen, this.metrics.registry, () => ({
        ok: !!this.#proxy && !this.#stopping,
        detail: { active: this.#proxy?.stats().active ?? 0 },
      }));
    }
    if (gen.config.certificates.watch) this.#watch(gen.config);
    this.#startHealthChecks(gen.config);
    if (this.#options.signals) this.#installSignals();
    log.info(
      {
        version: VERSION,
        node: process.version,
        openssl: loadAddon().opensslVersion,
        groups: gen.config.tls.groups,
        workers: gen.config.workers,
        listeners: this.bound,
        metrics: this.#metricsServer?.address,
        ...gen.ticketKeys,
      },
      'mailfront ready',
    );
    this.#notifier.ready(`serving ${gen.certs.certificates.length} certificates`);
    // A worker that has not gone round its loop for 5 s is wedged: stop the pings and let systemd restart us.
    this.#notifier.startWatchdog({
      healthy: () => !!this.#proxy && this.#proxy.stats().maxLoopAgeMs < 5000,
      onUnhealthy: () => log.error({ loop_age_ms: this.#proxy?.stats().maxLoopAgeMs }, 'a data plane worker is stuck: watchdog pings stop'),
    });
  }

  /** Re-reads config and certificates and swaps them in; keeps the old ones on any failure. One at a time. */
  reload(why: string): Promise<boolean> {
    if (this.#reloading) return this.#reloading;
    this.#reloading = this.#reload(why).finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reload(why: string): Promise<boolean> {
    const log = child(this.log, 'reload');
    const proxy = this.#proxy;
    const current = this.#current;
    if (!proxy || !current || this.#stopping) return false;
    this.#notifier.reloading();
    const started = Date.now();
    try {
      const next = await prepare(this.#options.configPath, this.log, current.config);
      if (this.#stopping) return false;
      refuseLosingCertificates(current.certs, next.certs);
      for (const w of next.warnings) child(this.log, 'config').warn(w);
      if (next.listenersNeedRestart)
        log.warn('listeners or workers changed: restart mailfront to apply that part; the rest is applied now');
      this.#current = applyGeneration(proxy, next);
      this.log.level = next.config.log.level;
      this.#publishCertificates(next.certs);
      this.#startHealthChecks(next.config);
      this.metrics.reloaded('ok');
      // The previous store is garbage now: collected at once, not whenever V8's old space fills.
      setTimeout(collectGarbage, 100).unref();
      log.info(
        {
          why,
          ms: Date.now() - started,
          certificates: next.certs.certificates.length,
          ...next.ticketKeys,
        },
        'reloaded',
      );
      return true;
    } catch (err) {
      this.metrics.reloaded('failed');
      const path = err instanceof NativeError ? err.path : undefined;
      log.error({ why, err: (err as Error).message, code: (err as MailfrontError).code, ...(path ? { path } : {}) }, 'reload failed: still serving the previous configuration');
      return false;
    } finally {
      // A stop that began while the certificates were checked (the JS thread runs meanwhile,
      // native/cert_check_async.h) has said STOPPING=1: no READY=1 after it.
      if (!this.#stopping) this.#notifier.ready();
    }
  }

  /** Stops accepting, lets connections finish for up to timeouts.drain, then closes the rest. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** Ends a drain in progress: the remaining connections are closed at once. */
  hurry(): void {
    this.#hurry = true;
  }

  async #stop(): Promise<void> {
    const log = child(this.log, 'service');
    this.#notifier.stopping();
    this.#notifier.stopWatchdog();
    this.#watcher?.close();
    this.#health?.stop();
    const proxy = this.#proxy;
    if (proxy) {
      proxy.drain();
      const deadline = Date.now() + (this.#current?.config.timeouts.drainMs ?? 0);
      let active = proxy.stats().active;
      if (active > 0) log.info({ active }, 'draining');
      while (active > 0 && Date.now() < deadline && !this.#hurry) {
        await new Promise((r) => setTimeout(r, 100));
        active = proxy.stats().active;
      }
      proxy.stop();
      log.info({ closed: active }, 'stopped');
    }
    await this.#metricsServer?.close();
    for (const [sig, fn] of this.#signalHandlers) process.off(sig, fn);
    // Let the last batch of connection records reach the log.
    await new Promise((r) => setImmediate(r));
    this.#connThrottle.flush();
  }

  #publishCertificates(certs: CertStore): void {
    this.metrics.setCertificates(
      certs.certificates.map((c) => ({ name: c.names[0] ?? '', keyType: c.keyType, notAfter: c.notAfter })),
    );
  }

  #startHealthChecks(config: Config): void {
    this.#health?.stop();
    this.metrics.clearBackendHealth();
    const log = child(this.log, 'health');
    this.#health = startHealthChecks(config, (pool, server, up, why) => {
      this.metrics.setBackendHealth(pool, server, up);
      if (up) log.info({ pool, server }, 'backend server up');
      else log.warn({ pool, server, why }, 'backend server down');
    });
  }

  #watch(config: Config): void {
    const dirs = [...config.certificates.letsencrypt, ...config.certificates.pemDirs];
    this.#watcher = watchCertificates(dirs, () => void this.reload('certificate files changed'), {
      onError: (err, dir) => child(this.log, 'certs').warn({ dir, err: err.message }, 'cannot watch'),
    });
  }

  #installSignals(): void {
    const on = (sig: NodeJS.Signals, fn: () => void) => {
      process.on(sig, fn);
      this.#signalHandlers.push([sig, fn]);
    };
    on('SIGHUP', () => void this.reload('SIGHUP'));
    const stop = (sig: string) => () => {
      if (this.#stopping) {
        child(this.log, 'service').warn({ signal: sig }, 'second signal: closing the remaining connections now');
        return this.hurry();
      }
      child(this.log, 'service').info({ signal: sig }, 'stopping');
      void this.stop().then(() => process.exit(0));
    };
    on('SIGTERM', stop('SIGTERM'));
    on('SIGINT', stop('SIGINT'));
  }
}
