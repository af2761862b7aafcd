// Backend health checks: every interval, connect to each server of a pool that
// asks for them and read its greeting line. A server is up when a greeting that
// is not a refusal arrives in time. Observational: the result goes to the log
// (on a change) and to metrics; the data plane has its own back-off per server.
import net from 'node:net';
import { connectTarget } from './config/address.js';
import type { Config, ProxyProtocol } from './config/schema.js';
import { loadAddon } from './native.js';

export type HealthChange = (pool: string, server: string, up: boolean, detail: string) => void;

const MAX_GREETING = 4096;

/**
 * One check: resolves with "" when the server greeted, or with why it is down.
 * A pool that expects a PROXY header gets the LOCAL form first (a server with
 * haproxy=yes, such as Dovecot, waits for one and would never greet).
 */
export function checkServer(server: string, timeoutMs: number, proxyProtocol: ProxyProtocol = 'off'): Promise<string> {
  return new Promise((resolve) => {
    let target: ReturnType<typeof connectTarget>;
    try {
      target = connectTarget(server);
    } catch (e) {
      return resolve((e as Error).message);
    }
    const socket = net.connect(target);
    const header = loadAddon().localProxyHeader(proxyProtocol);
    if (header) socket.write(header);
    let buffered = '';
    const done = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no greeting within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      const nl = buffered.indexOf('\n');
      if (nl < 0) return void (buffered.length > MAX_GREETING && done('greeting too long'));
      const line = buffered.slice(0, nl).trim();
      // IMAP "* BYE", POP3 "-ERR", ManageSieve "BYE"/"NO": the server refuses service.
      done(/^(\* BYE|-ERR|BYE|NO)\b/i.test(line) ? `refused: ${line.slice(0, 200)}` : '');
    });
    socket.on('error', (e) => done(e.message));
    socket.on('close', () => done('closed before its greeting'));
  });
}

/** Checks every server of the pools with health_check set, until stop(). */
export function startHealthChecks(config: Config, onChange: HealthChange): { stop(): void } {
  const timers: NodeJS.Timeout[] = [];
  const state = new Map<string, boolean>();
  for (const [pool, backend] of Object.entries(config.backends)) {
    const interval = backend.healthCheckMs;
    if (!interval) continue;
    const timeout = Math.min(config.timeouts.connectMs, Math.max(100, Math.floor(interval / 2)));
    for (const server of backend.servers) {
      const key = `${pool}\n${server}`;
      let running = false;
      const run = async () => {
        if (running) return;
        running = true;
        const why = await checkServer(server, timeout, backend.proxyProtocol);
        running = false;
        const up = why === '';
        if (state.get(key) !== up) {
          state.set(key, up);
          onChange(pool, server, up, why);
        }
      };
      void run();
      const t = setInterval(() => void run(), interval);
      t.unref();
      timers.push(t);
    }
  }
  return { stop: () => timers.forEach((t) => clearInterval(t)) };
}
