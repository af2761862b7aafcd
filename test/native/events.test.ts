// The queue of connection records to JS is bounded: when the JS thread stalls
// (stdout blocked), records beyond maxPendingEvents are dropped and counted.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy } from '../../src/native.js';
import type { NativeEvent } from '../../src/native.js';
import { buildSnapshot, deadAddress, makePki, waitFor } from './harness.js';
import { freePorts } from '../helpers/mailfront.js';
import type { Pki } from './harness.js';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

/** N plain TCP connections opened and dropped one after the other, from another process. */
const CHURN = `
const net = require('node:net');
const [port, n] = process.argv.slice(1).map(Number);
(async () => {
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(); });
      s.on('error', resolve);
    });
  }
  // Let the proxy close the last ones before the parent's thread runs again.
  setTimeout(() => {}, 500);
})();
`;

describe('event queue', () => {
  it('holds at most maxPendingEvents records while the JS thread is blocked; the rest are dropped and counted', async () => {
    const events: NativeEvent[] = [];
    const proxy = createProxy(1, (batch) => events.push(...batch), { maxPendingEvents: 10 });
    try {
      proxy.apply(buildSnapshot(pki, { servers: [await deadAddress()] }));
      const [bound] = proxy.start([{ name: 'l0', protocol: 'imaps', addresses: ['127.0.0.1:0'] }]);
      const port = Number(bound!.addresses[0]!.split(':').pop());
      // spawnSync keeps this thread (the one records are delivered on) busy throughout.
      const r = spawnSync(process.execPath, ['-e', CHURN, String(port), '40'], { timeout: 20_000 });
      expect(r.status).toBe(0);
      await waitFor(() => events.some((e) => e.kind === 'dropped'), 3000, 'the delivery after the stall');
      const records = events.filter((e) => e.kind === 'connection');
      const dropped = events.filter((e) => e.kind === 'dropped').reduce((n, e) => n + e.count!, 0);
      expect(records).toHaveLength(10);
      expect(dropped).toBe(30);
      expect(proxy.stats().eventsDropped).toBe(30);
      // Once the thread runs again, records flow as before.
      spawnSync(process.execPath, ['-e', CHURN, String(port), '3'], { timeout: 20_000 });
      await waitFor(() => events.filter((e) => e.kind === 'connection').length >= 13, 3000, 'records after the stall');
      expect(proxy.stats().eventsDropped).toBe(30);
    } finally {
      proxy.stop();
    }
  });

  it('keeps a ban while the queue is full: a ban is logged once, so it is never dropped', async () => {
    const events: NativeEvent[] = [];
    const proxy = createProxy(1, (batch) => events.push(...batch), { maxPendingEvents: 5 });
    // Another process: an IMAP backend refusing every LOGIN, 20 dropped connections
    // to fill the queue, then two failed logins from 127.0.0.2 over TLS.
    const child = `
const net = require('node:net'), tls = require('node:tls');
const [port, bport] = process.argv.slice(1).map(Number);
net.createServer((s) => {
  s.write('* OK fake\\r\\n');
  s.on('data', (d) => { for (const l of d.toString().split('\\r\\n')) if (/ LOGIN /.test(l)) s.write(l.split(' ')[0] + ' NO nope\\r\\n'); });
  s.on('error', () => {});
}).listen(bport, '127.0.0.1', async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => { const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); r(); }); s.on('error', r); });
  const c = tls.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2', servername: 'mail.a.example', rejectUnauthorized: false });
  let n = 0;
  c.on('data', (d) => { if (/^\\* OK/.test(d.toString()) || / NO /.test(d.toString())) { if (n < 2) c.write('t' + (++n) + ' LOGIN a b\\r\\n'); } });
  c.on('error', () => {});
  c.on('close', () => setTimeout(() => process.exit(0), 300));
  setTimeout(() => process.exit(1), 10000);
});`;
    try {
      const [bport] = (await freePorts(1)) as [number];
      proxy.apply(buildSnapshot(pki, { servers: [`127.0.0.1:${bport}`], limits: { loginFailures: { count: 2, windowMs: 60_000, banMs: 60_000 } } }));
      const [bound] = proxy.start([{ name: 'l0', protocol: 'imaps', addresses: ['127.0.0.1:0'] }]);
      const port = Number(bound!.addresses[0]!.split(':').pop());
      const r = spawnSync(process.execPath, ['-e', child, String(port), String(bport)], { timeout: 20_000 });
      expect(r.status, String(r.stderr)).toBe(0);
      await waitFor(() => events.some((e) => e.kind === 'dropped'), 3000, 'the delivery after the stall');
      expect(events.filter((e) => e.kind === 'connection')).toHaveLength(5);
      expect(proxy.stats().eventsDropped).toBeGreaterThanOrEqual(15);
      expect(events.filter((e) => e.kind === 'ban')).toEqual([{ kind: 'ban', network: '127.0.0.2', listener: 'l0', banMs: 60_000, failures: 2 }]);
    } finally {
      proxy.stop();
    }
  });
});
