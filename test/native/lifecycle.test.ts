// Timeouts, limits, apply() while live, drain(), stop(), and a clean process exit.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSnapshot,
  checkPair,
  checkedPair,
  connectRaw,
  connectTls,
  fakeBackend,
  makePki,
  peerSan,
  sleep,
  startProxy,
  waitFor,
  within,
} from './harness.js';
import type { FakeBackend, Pki } from './harness.js';
import { connectionLogLine } from '../../src/log.js';

let pki: Pki;
let backend: FakeBackend;
const GREETING = '* OK [CAPABILITY IMAP4rev1] backend ready\r\n';

beforeAll(async () => {
  pki = makePki();
  // Answers every line with "<tag> OK pong".
  backend = await fakeBackend(GREETING, (s) => {
    s.on('data', (d) => {
      for (const line of d.toString().split('\r\n').filter(Boolean)) s.write(`${line.split(' ')[0]} OK pong\r\n`);
    });
  });
});
afterAll(async () => {
  await backend?.close();
  pki?.cleanup();
});

const tlsTo = (port: number, servername = 'mail.a.example') => connectTls(port, { ca: pki.ca.rootPem, servername });

describe('timeouts', () => {
  it('handshake_timeout: a client that sends nothing is closed', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], timeouts: { handshakeMs: 300 } }));
    try {
      const t0 = Date.now();
      const raw = await connectRaw(px.port);
      await within(raw.closed, 3000, 'close');
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(280);
      expect(took).toBeLessThan(1500);
      expect(raw.data()).toBe('');
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('handshake_timeout');
      expect(px.proxy.stats().listeners[0]!.handshakeFailures).toBe(1);
    } finally {
      px.stop();
    }
  });

  for (const [protocol, bye] of [
    ['imap', '* BYE Timeout before STARTTLS\r\n'],
    ['pop3', '-ERR Timeout before STARTTLS\r\n'],
    ['managesieve', 'BYE "Timeout before STARTTLS"\r\n'],
  ] as const) {
    it(`pretls_timeout (${protocol}): the client gets the protocol goodbye`, async () => {
      const px = startProxy(buildSnapshot(pki, { protocol, servers: [backend.address], timeouts: { pretlsMs: 300 } }));
      try {
        const t0 = Date.now();
        const raw = await connectRaw(px.port);
        await within(raw.closed, 3000, 'close');
        expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
        expect(raw.data()).toMatch(/ready(")?\r\n/);
        expect(raw.data().endsWith(bye)).toBe(true);
        const [rec] = await px.waitRecords(1);
        expect(rec!.reason).toBe('pretls_timeout');
      } finally {
        px.stop();
      }
    });
  }

  it('idle_timeout: an idle relayed connection gets * BYE and is closed; activity postpones it', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], timeouts: { idleMs: 500 } }));
    try {
      const c = await tlsTo(px.port);
      await c.waitData((d) => d.includes('backend ready'));
      // Activity every 250 ms for ~1 s keeps it open.
      for (let i = 0; i < 4; i++) {
        await sleep(250);
        c.socket.write(`k${i} NOOP\r\n`);
        await c.waitData((d) => d.includes(`k${i} OK pong`));
      }
      const t0 = Date.now();
      const { error } = await within(c.closed, 3000, 'idle close');
      expect(error).toBeUndefined();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
      expect(c.data()).toMatch(/\* BYE Autologout; idle for too long\r\n$/);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('idle_timeout');
      expect(rec!.bytesIn).toBe(4 * 'k0 NOOP\r\n'.length);
    } finally {
      px.stop();
    }
  });

  it('connect timeout: a backend that drops SYNs (full accept queue) -> backend_unavailable after connectMs', async () => {
    // A listener with backlog 0 that never accepts: one connection fills its
    // queue, and the kernel drops further SYNs, so connect() stays pending.
    const py: ChildProcess = spawn('python3', [
      '-c',
      'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(20)',
      // Not under the sanitizer suite's preloaded ASan runtime: python there took 4-5 s to start on a busy machine.
    ], { env: { ...process.env, LD_PRELOAD: '' } });
    const fillers: net.Socket[] = [];
    try {
      const port = Number(
        await within(new Promise<string>((r) => py.stdout!.once('data', (d: Buffer) => r(d.toString().trim()))), 15_000, 'python listener'),
      );
      for (let i = 0; i < 2; i++) {
        const f = net.connect({ host: '127.0.0.1', port });
        f.on('error', () => {});
        fillers.push(f);
      }
      await sleep(100);
      const px = startProxy(buildSnapshot(pki, { servers: [`127.0.0.1:${port}`], timeouts: { connectMs: 300 } }));
      try {
        const t0 = Date.now();
        const c = await tlsTo(px.port);
        await within(c.closed, 3000, 'close');
        expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
        expect(c.data()).toMatch(/^\* BYE \[UNAVAILABLE\]/);
        const [rec] = await px.waitRecords(1);
        expect(rec!.reason).toBe('backend_unavailable');
        expect(rec!.durationMs).toBeGreaterThanOrEqual(280);
        // One server, tried once: one connect timeout (plus a 100 ms wheel tick), not two.
        expect(rec!.durationMs).toBeLessThan(550);
        expect(rec!.detail).toMatch(/timed out/);
      } finally {
        px.stop();
      }
    } finally {
      for (const f of fillers) f.destroy();
      py.kill('SIGKILL');
    }
  });
});

describe('limits', () => {
  it('connections: 2 -> the third is closed at once', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], limits: { connections: 2 } }));
    try {
      const a = await tlsTo(px.port);
      const b = await tlsTo(px.port);
      await a.waitData((d) => d.includes('ready'));
      await b.waitData((d) => d.includes('ready'));
      const third = await connectRaw(px.port);
      await within(third.closed, 2000, 'third closed');
      expect(third.data()).toBe('');
      const l = px.proxy.stats().listeners[0]!;
      expect(l.rejectedLimit).toBe(1);
      expect(l.accepted).toBe(3);
      expect(px.proxy.stats().active).toBe(2);
      // The two keep working.
      a.socket.write('x NOOP\r\n');
      await a.waitData((d) => d.includes('x OK pong'));
      // One goes, and a new one fits again.
      b.socket.end();
      await within(b.closed, 2000, 'b closed');
      await waitFor(() => px.proxy.stats().active === 1, 2000, 'active 1');
      const c = await tlsTo(px.port);
      await c.waitData((d) => d.includes('ready'));
      a.socket.destroy();
      c.socket.destroy();
    } finally {
      px.stop();
    }
  });

  it('perClient: 1 -> a second connection from the same address is closed at once', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], limits: { perClient: 1 } }));
    try {
      const a = await tlsTo(px.port);
      await a.waitData((d) => d.includes('ready'));
      const second = await connectRaw(px.port);
      await within(second.closed, 2000, 'second closed');
      expect(second.data()).toBe('');
      expect(px.proxy.stats().listeners[0]!.rejectedPerClient).toBe(1);
      expect(px.proxy.stats().listeners[0]!.rejectedLimit).toBe(0);
      a.socket.end();
      await within(a.closed, 2000, 'a closed');
      await waitFor(() => px.proxy.stats().active === 0, 2000, 'released');
      const again = await tlsTo(px.port);
      await again.waitData((d) => d.includes('ready'));
      again.socket.destroy();
    } finally {
      px.stop();
    }
  });
});

describe('apply() while live', () => {
  it('old connections keep working, new ones get the new certificate; a broken snapshot is refused', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const old = await tlsTo(px.port);
      expect(peerSan(old)).toBe('DNS:mail.a.example, DNS:a.example');
      await old.waitData((d) => d.includes('ready'));

      px.proxy.apply(buildSnapshot(pki, { servers: [backend.address], useA2: true }));
      const fresh = await tlsTo(px.port);
      expect(peerSan(fresh)).toBe('DNS:mail.a.example, DNS:second.a.example');
      expect(peerSan(await tlsTo(px.port, 'second.a.example'))).toBe('DNS:mail.a.example, DNS:second.a.example');

      old.socket.write('o1 NOOP\r\n');
      await old.waitData((d) => d.includes('o1 OK pong'));

      // A pair the check refused never reaches a snapshot; anything else in its place is refused.
      expect(checkPair(pki.b.fullchainPem, pki.a.keyPem)).toMatchObject({ error: 'mismatch', at: -1, keyType: 'ec', certType: 'ec' });
      expect(checkPair('-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n', pki.def.keyPem)).toMatchObject({ error: 'cert-parse', at: 0 });
      expect(() => px.proxy.apply(buildSnapshot(pki, { servers: [backend.address], badKey: true }))).toThrow(/snapshot refused: contexts\[2\]\.certs\[0\]: not a pair from checkCertificates/);
      expect(() => px.proxy.apply(buildSnapshot(pki, { servers: [backend.address], ciphers: 'NOT-A-CIPHER' }))).toThrow(/tls\.ciphers/);

      // Still the last good snapshot.
      const after = await tlsTo(px.port);
      expect(peerSan(after)).toBe('DNS:mail.a.example, DNS:second.a.example');
      await after.waitData((d) => d.includes('ready'));
      after.socket.write('n1 NOOP\r\n');
      await after.waitData((d) => d.includes('n1 OK pong'));
      for (const c of [old, fresh, after]) c.socket.destroy();
    } finally {
      px.stop();
    }
  });
});

describe('stats, drain, stop', () => {
  it('drain() stops accepting while a live connection goes on; stop() says goodbye and closes', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }), 2);
    try {
      const live = await tlsTo(px.port);
      await live.waitData((d) => d.includes('ready'));
      live.socket.write('a NOOP\r\n');
      await live.waitData((d) => d.includes('a OK pong'));
      let st = px.proxy.stats();
      expect(st.workers).toBe(2);
      expect(st.active).toBe(1);
      expect(st.listeners[0]!.accepted).toBe(1);
      expect(st.listeners[0]!.handshakes).toBe(1);
      expect(st.listeners[0]!.bytesIn).toBe(8);
      expect(st.listeners[0]!.bytesOut).toBe(GREETING.length + 'a OK pong\r\n'.length);

      px.proxy.drain();
      await sleep(250);
      // A new client is refused or never served.
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: px.port });
        const t = setTimeout(() => {
          s.destroy();
          resolve('never served');
        }, 1000);
        s.on('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(t);
          resolve(e.code ?? 'error');
        });
        s.on('data', () => {
          clearTimeout(t);
          s.destroy();
          resolve('served');
        });
        s.on('connect', () => s.write(Buffer.from('16030100', 'hex')));
      });
      expect(['ECONNREFUSED', 'ECONNRESET', 'never served']).toContain(outcome);
      expect(px.proxy.stats().listeners[0]!.accepted).toBe(1);

      live.socket.write('b NOOP\r\n');
      await live.waitData((d) => d.includes('b OK pong'));

      px.proxy.stop();
      const { error } = await within(live.closed, 3000, 'close after stop');
      expect(error).toBeUndefined();
      expect(live.data()).toMatch(/\* BYE \[UNAVAILABLE\] Server shutting down\r\n$/);
      await waitFor(() => px.records().length >= 1, 3000, 'record');
      expect(px.records()[0]!.reason).toBe('shutdown');
      st = px.proxy.stats();
      expect(st.active).toBe(0);
    } finally {
      px.stop();
    }
  });

  it('stop() during the pre-TLS dialog says the protocol goodbye', async () => {
    const px = startProxy(buildSnapshot(pki, { protocol: 'managesieve', servers: [backend.address] }));
    try {
      const raw = await connectRaw(px.port);
      await raw.waitData((d) => d.includes('mailfront ready'));
      px.proxy.stop();
      await within(raw.closed, 3000, 'close');
      expect(raw.data().endsWith('BYE (TRYLATER) "Server shutting down"\r\n')).toBe(true);
      await waitFor(() => px.records().length === 1, 3000, 'record');
      expect(px.records()[0]!.reason).toBe('shutdown');
    } finally {
      px.stop();
    }
  });

  it('a client reset mid-relay ends the connection (client_error) and frees its slot', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], limits: { perClient: 1 } }));
    try {
      const raw = await connectRaw(px.port);
      const c = await connectTls(px.port, { socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await c.waitData((d) => d.includes('ready'));
      c.socket.write('r1 NOOP\r\n');
      await c.waitData((d) => d.includes('r1 OK pong'));
      raw.socket.resetAndDestroy();
      await waitFor(() => px.records().length === 1, 3000, 'record');
      const rec = px.records()[0]!;
      expect(rec.reason).toBe('client_error');
      expect(rec.detail).toMatch(/reset/i);
      expect(rec.bytesIn).toBe(9);
      expect(px.proxy.stats().active).toBe(0);
      const again = await tlsTo(px.port);
      await again.waitData((d) => d.includes('ready'));
      again.socket.destroy();
    } finally {
      px.stop();
    }
  });

  it('a client reset once the backend closed (after LOGOUT, as sieve-connect does) is an ordinary end, logged at info', async () => {
    const bye = await fakeBackend('OK "ready"\r\n', (s) => s.on('data', (d) => d.includes('LOGOUT') && s.end('OK "Logout Complete"\r\n')));
    const px = startProxy(buildSnapshot(pki, { servers: [bye.address] }));
    try {
      // Half-open: no close_notify of its own in answer to mailfront's; the reset is its only goodbye.
      const raw = net.connect({ host: '127.0.0.1', port: px.port, allowHalfOpen: true });
      raw.on('error', () => {});
      const c = await connectTls(px.port, { socket: raw, ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await c.waitData((d) => d.includes('ready'));
      c.socket.write('LOGOUT\r\n');
      await c.waitData((d) => d.includes('Logout Complete'));
      await waitFor(() => c.socket.readableEnded, 3000, "mailfront's close_notify");
      raw.resetAndDestroy();
      await waitFor(() => px.records().length === 1, 3000, 'record');
      const rec = px.records()[0]!;
      expect(rec.reason).toBe('backend_closed');
      expect(rec.detail).toMatch(/^then the client: .*reset/i);
      expect(connectionLogLine(rec).level).toBe('info');
    } finally {
      px.stop();
      await bye.close();
    }
  });

  it('the process exits by itself after stop() (the event callback does not hold it)', async () => {
    const dir = path.dirname(fileURLToPath(import.meta.url));
    const addonPath = path.resolve(dir, '../../build/Release/mailfront.node');
    const snapPath = path.join(pki.dir, 'snap.json');
    // Pairs are handles into the addon, not data: the child checks the PEM text itself.
    const pems = [pki.def, pki.a, pki.b, pki.w].map((i) => ({ certs: i.fullchainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g), keys: [i.keyPem] }));
    writeFileSync(snapPath, JSON.stringify({ ...buildSnapshot(pki, { servers: [backend.address] }), contexts: pems }));
    const script = `
      const tls = require('node:tls');
      const fs = require('node:fs');
      const { Proxy, checkCertificates } = require(${JSON.stringify(addonPath)});
      const snap = JSON.parse(fs.readFileSync(${JSON.stringify(snapPath)}, 'utf8'));
      snap.contexts = checkCertificates(snap.contexts).map((r) => ({ certs: [r.pair] }));
      const p = new Proxy({ workers: 2, onEvents: (ev) => console.log('events', ev.length) });
      p.apply(snap);
      const [b] = p.start([{ name: 'l0', protocol: 'imaps', addresses: ['127.0.0.1:0'] }]);
      const port = Number(b.addresses[0].split(':').pop());
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'mail.a.example' });
      s.on('data', () => { p.stop(); console.log('stopped'); });
      s.on('error', () => {});
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await within(
      new Promise<number | null>((r) => child.on('exit', (c) => r(c))),
      8000,
      'child exit',
    ).catch((e: Error) => {
      child.kill('SIGKILL');
      throw new Error(`${e.message}; output: ${out}`);
    });
    expect(code).toBe(0);
    expect(out).toContain('stopped');
  });
});
