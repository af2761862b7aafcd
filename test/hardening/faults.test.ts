// Faults: backend resets, client resets, a silent backend, descriptor
// exhaustion, reloads under a stream of new connections. Opt-in:
// MF_HARDENING=1 (npm run test:faults).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, fakeBackend, makePki, sleep, startProxy, waitFor, within } from '../native/harness.js';
import type { Pki, TlsClient } from '../native/harness.js';
import { CLI, ROOT, freePorts, makeTwoDomainPki, startMailfront } from '../helpers/mailfront.js';
import type { LogLine } from '../helpers/mailfront.js';
import { IMAP_GREETING, closesWithin, echoBackend, echoRoundTrip, loadgenBin, sha } from './util.js';

// Part of npm test; MF_HARDENING=1 also prints the figures for docs/hardening-report.md.
const ON = process.env.MF_HARDENING === '1';
export const figures: Record<string, unknown> = {};

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

/** A real ClientHello (node's), captured once from a fake server. */
async function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, servername: 'mail.a.example', rejectUnauthorized: false });
      c.on('error', () => {});
    });
  });
}

describe('faults', () => {
  it('backend RST mid-transfer: that client is closed (backend_error), the others go on intact', async () => {
    const CHUNK = randomBytes(64 * 1024);
    // Connection 0 (the victim) gets a stream and an RST after ~1 MiB; the others echo.
    const backend = await fakeBackend(IMAP_GREETING, (s, i) => {
      if (i === 0) {
        let sent = 0;
        const pump = setInterval(() => {
          s.write(CHUNK);
          sent += CHUNK.length;
          if (sent >= 1024 * 1024) {
            clearInterval(pump);
            s.resetAndDestroy();
          }
        }, 5);
        s.on('close', () => clearInterval(pump));
      } else {
        s.on('data', (d) => s.write(d));
      }
    });
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }), 2);
    try {
      const victim = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      const victimPort = victim.socket.localPort;
      await waitFor(() => backend.sockets.length === 1, 3000, 'victim at backend');
      const others: TlsClient[] = [];
      for (let i = 0; i < 4; i++) others.push(await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' }));
      for (const o of others) await o.waitData((d) => d.startsWith(IMAP_GREETING));
      // Others round-trip 256 KiB each while the victim's backend streams and resets.
      let compared = 0;
      const payloads = others.map(() => randomBytes(256 * 1024));
      const echoes = await Promise.all(others.map((o, i) => echoRoundTrip(o.socket, payloads[i]!, 0, 10_000)));
      for (let i = 0; i < others.length; i++) {
        expect(sha(echoes[i]!)).toBe(sha(payloads[i]!));
        compared += payloads[i]!.length;
      }
      const { error } = await within(victim.closed, 10_000, 'victim closed after the backend RST');
      void error;
      const recs = await px.waitRecords(1, 5000);
      const rec = recs.find((r) => r.client.endsWith(`:${victimPort}`));
      expect(rec, JSON.stringify(recs)).toBeDefined();
      if (!rec) return;
      expect(rec.reason).toBe('backend_error');
      expect(rec.detail).toMatch(/reset/i);
      // Still relaying after the RST.
      const again = randomBytes(64 * 1024);
      for (const [i, o] of others.entries()) {
        const e = await echoRoundTrip(o.socket, again, 0, 5000);
        expect(sha(e)).toBe(sha(again));
        compared += again.length;
        expect(o.socket.destroyed, `other ${i}`).toBe(false);
      }
      expect(px.proxy.stats().active).toBe(4);
      for (const o of others) o.socket.end();
      await waitFor(() => px.proxy.stats().active === 0, 5000, 'active 0');
      figures.backendRst = { victimBytesOut: rec.bytesOut, othersBytesCompared: compared * 2 };
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('client RST mid-handshake and mid-transfer: no leak, per-client slots come back', async () => {
    const hello = await captureClientHello();
    const backend = await fakeBackend(IMAP_GREETING, (s) => {
      // Streams to whoever connects until they go away.
      const chunk = Buffer.alloc(32 * 1024, 'x');
      const pump = setInterval(() => s.writable && s.write(chunk), 2);
      s.on('close', () => clearInterval(pump));
      s.on('data', () => {});
    });
    const PER_CLIENT = 3;
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], limits: { perClient: PER_CLIENT } }), 2);
    let injected = 0;
    try {
      for (let round = 0; round < 3; round++) {
        // (a) a partial ClientHello, then RST
        for (let i = 0; i < PER_CLIENT; i++) {
          const s = net.connect({ host: '127.0.0.1', port: px.port });
          s.on('error', () => {});
          await new Promise<void>((r) => s.once('connect', () => r()));
          s.write(hello.subarray(0, 40));
          await sleep(20);
          s.resetAndDestroy();
          injected++;
        }
        // (b) a whole ClientHello, wait for the server's flight, then RST
        for (let i = 0; i < PER_CLIENT; i++) {
          const s = net.connect({ host: '127.0.0.1', port: px.port });
          s.on('error', () => {});
          await new Promise<void>((r) => s.once('connect', () => r()));
          const got = new Promise<void>((r) => s.once('data', () => r()));
          s.write(hello);
          await within(got, 3000, 'ServerHello');
          s.resetAndDestroy();
          injected++;
        }
        // (c) mid-transfer: the backend is streaming to the client, the client resets
        for (let i = 0; i < PER_CLIENT; i++) {
          const raw = net.connect({ host: '127.0.0.1', port: px.port });
          raw.on('error', () => {});
          const c = tls.connect({ socket: raw, ca: pki.ca.rootPem, servername: 'mail.a.example' });
          c.on('error', () => {});
          let got = 0;
          await within(new Promise<void>((r) => c.on('data', (d: Buffer) => (got += d.length) > 256 * 1024 && r())), 5000, 'stream');
          c.write(randomBytes(100_000));
          raw.resetAndDestroy();
          injected++;
        }
        await waitFor(() => px.proxy.stats().active === 0, 5000, `active back to 0 (round ${round}): ${JSON.stringify(px.proxy.stats())}`);
      }
      const recs = await px.waitRecords(9 * PER_CLIENT, 5000);
      const reasons = recs.reduce<Record<string, number>>((m, r) => ((m[r.reason] = (m[r.reason] ?? 0) + 1), m), {});
      expect(reasons.handshake_failed).toBe(6 * PER_CLIENT);
      expect(reasons.client_error).toBe(3 * PER_CLIENT);
      const st = px.proxy.stats();
      expect(st.active).toBe(0);
      expect(st.listeners[0]!.rejectedPerClient).toBe(0);
      // Every per-client slot of 127.0.0.1 is free: PER_CLIENT clients at once are served.
      const ok = await Promise.all(Array.from({ length: PER_CLIENT }, () => connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' })));
      for (const c of ok) await c.waitData((d) => d.startsWith(IMAP_GREETING));
      for (const c of ok) c.socket.destroy();
      expect(px.proxy.stats().listeners[0]!.rejectedPerClient).toBe(0);
      figures.clientRst = { injected, reasons };
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('a backend that accepts but never greets: the client sees nothing, then the idle timeout closes it', async () => {
    const backend = await fakeBackend('', (s) => s.on('data', () => {}));
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], timeouts: { idleMs: 1500 } }), 1);
    try {
      const t0 = Date.now();
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await sleep(1000);
      expect(c.data()).toBe('');
      await within(c.closed, 5000, 'closed by the idle timeout');
      const waited = Date.now() - t0;
      expect(waited).toBeGreaterThanOrEqual(1400);
      // What the client finally gets is the proxy's own autologout line.
      expect(c.data()).toMatch(/^\* BYE .*idle/i);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('idle_timeout');
      expect(rec!.server).toBe(backend.address);
      expect(rec!.bytesOut).toBe(0);
      figures.silentBackend = { closedAfterMs: waited, idleMs: 1500, clientGot: c.data() };
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('descriptor exhaustion (RLIMIT_NOFILE 128; node cannot even start mailfront at 96): pauses accepting, open connections keep working, recovers', async () => {
    const dir = mkdtempSync('/tmp/mf-hard-emfile-');
    const backend = await echoBackend(IMAP_GREETING);
    const two = makeTwoDomainPki(dir);
    const [port] = await freePorts(1);
    const yaml = `certificates: {letsencrypt: [${two.letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: imap}
backends:
  imap: {servers: ["${backend.address}"]}
# 2,000 connections from one loopback address: no connection rate here.
limits: {connection_rate: off}
workers: 1
metrics: false
log: {level: info}
`;
    // startMailfront spawns node directly: run it under prlimit instead, with the same log reading.
    const lines: LogLine[] = [];
    const cfg = path.join(dir, 'mailfront.yaml');
    (await import('node:fs')).writeFileSync(cfg, yaml);
    const child = spawn('prlimit', ['--nofile=128:128', process.execPath, CLI, 'run', '--config', cfg], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      let nl;
      while ((nl = partial.indexOf('\n')) >= 0) {
        try {
          lines.push(JSON.parse(partial.slice(0, nl)));
        } catch { /* not JSON */ }
        partial = partial.slice(nl + 1);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const open: tls.TLSSocket[] = [];
    const pending: tls.TLSSocket[] = [];
    try {
      await waitFor(() => lines.some((l) => l.msg === 'mailfront ready'), 20_000, `ready; stderr ${stderr}`);
      const fdsAtStart = (await import('node:fs')).readdirSync(`/proc/${child.pid}/fd`).length;
      const opts = { host: '127.0.0.1', port, ca: two.ca.rootPem, servername: 'mail.example.com' };
      // Open connections one at a time until one is not served within 1.5 s.
      let refusedAt = -1;
      for (let i = 0; i < 150; i++) {
        const s = tls.connect(opts);
        s.on('error', () => {});
        const greeted = await new Promise<boolean>((r) => {
          let buf = '';
          const t = setTimeout(() => r(false), 1500);
          s.on('data', (d: Buffer) => {
            buf += d.toString();
            if (buf.includes('\r\n')) {
              clearTimeout(t);
              r(buf.startsWith('* OK'));
            }
          });
          s.once('close', () => {
            clearTimeout(t);
            r(false);
          });
        });
        if (greeted) open.push(s);
        else {
          refusedAt = i;
          pending.push(s);
          break;
        }
      }
      expect(refusedAt, 'some connection must hit the descriptor limit').toBeGreaterThan(0);
      const ev = await waitFor(() => lines.some((l) => l.msg === 'data plane error' && /EMFILE|Too many open files/.test(String(l.detail)) && /pausing new connections/.test(String(l.detail))), 5000, `EMFILE log; have ${JSON.stringify(lines.slice(-5))}`);
      void ev;
      // Every connection already open still relays.
      let compared = 0;
      for (const s of open) {
        const p = randomBytes(4096);
        const e = await echoRoundTrip(s, p, 0, 5000);
        expect(sha(e)).toBe(sha(p));
        compared += p.length;
      }
      // Free some descriptors: the waiting connection and new ones are served again.
      for (const s of open.splice(0, 6)) s.destroy();
      const served: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        const s = tls.connect(opts);
        s.on('error', () => {});
        served.push(await new Promise<boolean>((r) => {
          const t = setTimeout(() => r(false), 5000);
          s.on('data', (d: Buffer) => {
            if (d.toString().startsWith('* OK')) {
              clearTimeout(t);
              r(true);
            }
          });
        }));
        open.push(s);
      }
      expect(served).toEqual([true, true, true]);
      expect(child.exitCode).toBeNull();
      const recs = lines.filter((l) => l.msg === 'connection closed' || l.reason !== undefined);
      figures.emfile = {
        fdsAtStart,
        servedBeforeLimit: refusedAt,
        bytesCompared: compared * 2,
        errorEvent: lines.find((l) => l.msg === 'data plane error')?.detail,
        recordReasons: [...new Set(recs.map((l) => l.reason))],
      };
    } finally {
      for (const s of [...open, ...pending]) s.destroy();
      child.kill('SIGKILL');
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('10 SIGHUP reloads while 2,000 TLS connections arrive at 200/s: no handshake lost', async () => {
    const loadgen = loadgenBin();
    const dir = mkdtempSync('/tmp/mf-hard-reload-');
    const backend = await echoBackend(IMAP_GREETING);
    const two = makeTwoDomainPki(dir);
    const [port] = await freePorts(1);
    const mf = await startMailfront(`certificates: {letsencrypt: [${two.letsencrypt}], default: mail.example.com}
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: imap}
backends:
  imap: {servers: ["${backend.address}"]}
# 2,000 connections from one loopback address: no connection rate here.
limits: {connection_rate: off}
workers: 2
metrics: false
log: {level: info}
`);
    try {
      const lg = spawn(loadgen, ['--port', String(port), '--mode', 'full', '-c', '40', '-n', '2000', '--rate', '200', '-t', '30',
        '--names', '1', '--sni-fmt', 'mail.example.com', '--ca', two.caFile, '--conn-timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      lg.stdout.on('data', (d) => (out += d));
      lg.stderr.on('data', (d) => (err += d));
      const done = new Promise<number | null>((r) => lg.on('close', r));
      await sleep(500);
      let reloads = 0;
      for (let i = 0; i < 10; i++) {
        const from = mf.lines.length;
        mf.signal('SIGHUP');
        await mf.waitForLog((l) => l.msg === 'reloaded' || /reload failed/.test(l.msg), 5000, from);
        reloads++;
        await sleep(700);
      }
      const code = await within(done, 40_000, 'loadgen');
      expect(code, err).toBe(0);
      const res = JSON.parse(out.trim().split('\n').pop()!);
      expect(mf.lines.filter((l) => l.msg === 'reloaded').length).toBe(10);
      expect(mf.lines.filter((l) => /reload failed/.test(l.msg))).toEqual([]);
      expect(res.failures, JSON.stringify(res)).toBe(0);
      expect(res.ok).toBe(2000);
      figures.reload = { reloads, connections: res.ok, failures: res.failures, elapsedS: res.elapsed_s, rate: res.rate, p99us: res.conn_us.p99 };
    } finally {
      await mf.stop();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

afterAll(() => {
  if (ON) console.log(`HARDENING-FIGURES faults ${JSON.stringify(figures)}`);
});
void closesWithin;
