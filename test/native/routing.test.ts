// Routing by SNI to another pool, round-robin balance, a unix-socket backend.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, fakeBackend, makePki, startProxy, waitFor, within } from './harness.js';
import type { Pki } from './harness.js';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

async function greetingVia(port: number, servername: string): Promise<{ greeting: string; clientPort: number }> {
  const c = await connectTls(port, { ca: pki.ca.rootPem, servername, checkServerIdentity: () => undefined });
  const clientPort = c.socket.localPort!;
  const greeting = await c.waitData((d) => d.includes('\r\n'));
  c.socket.end();
  await within(c.closed, 3000, 'close');
  return { greeting, clientPort };
}

describe('routing', () => {
  it('routes by exact name and one-label wildcard; others go to the listener default', async () => {
    const main = await fakeBackend('* OK main\r\n');
    const other = await fakeBackend('* OK other\r\n');
    const third = await fakeBackend('* OK third\r\n');
    const snap = buildSnapshot(pki, { servers: [main.address] });
    snap.backends.push({ name: 'other', servers: [other.address], proxyProtocol: 'off', balance: 'first' });
    snap.backends.push({ name: 'third', servers: [third.address], proxyProtocol: 'off', balance: 'first' });
    snap.listeners[0]!.routes = [
      { sni: 'mail.b.example', backend: 1 },
      { sni: '*.w.example', backend: 2 },
    ];
    const px = startProxy(snap);
    try {
      expect((await greetingVia(px.port, 'mail.b.example')).greeting).toBe('* OK other\r\n');
      expect((await greetingVia(px.port, 'MAIL.B.EXAMPLE.')).greeting).toBe('* OK other\r\n');
      expect((await greetingVia(px.port, 'imap.w.example')).greeting).toBe('* OK third\r\n');
      expect((await greetingVia(px.port, 'x.imap.w.example')).greeting).toBe('* OK main\r\n');
      expect((await greetingVia(px.port, 'w.example')).greeting).toBe('* OK main\r\n');
      expect((await greetingVia(px.port, 'mail.a.example')).greeting).toBe('* OK main\r\n');
      const recs = await px.waitRecords(6);
      const pools = recs.map((r) => `${r.sni}=${r.pool}`).sort();
      expect(pools).toEqual(
        ['imap.w.example=third', 'mail.a.example=pool', 'mail.b.example=other', 'mail.b.example=other', 'w.example=pool', 'x.imap.w.example=pool'].sort(),
      );
    } finally {
      px.stop();
      await Promise.all([main.close(), other.close(), third.close()]);
    }
  });

  it('round-robin alternates between the servers of a pool', async () => {
    const one = await fakeBackend('* OK one\r\n');
    const two = await fakeBackend('* OK two\r\n');
    const snap = buildSnapshot(pki, { servers: [one.address, two.address] });
    snap.backends[0]!.balance = 'roundrobin';
    const px = startProxy(snap);
    try {
      const seen: string[] = [];
      for (let i = 0; i < 4; i++) seen.push((await greetingVia(px.port, 'mail.a.example')).greeting.trim());
      expect(seen.filter((g) => g === '* OK one').length).toBe(2);
      expect(seen.filter((g) => g === '* OK two').length).toBe(2);
      expect(seen[0]).not.toBe(seen[1]);
    } finally {
      px.stop();
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('relays to a unix-socket backend', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mf-unix-'));
    const sock = path.join(dir, 'imap.sock');
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.write('* OK unix\r\n');
      s.on('data', (d) => s.write(`${d.toString().split(' ')[0]} OK via unix\r\n`));
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const px = startProxy(buildSnapshot(pki, { servers: [sock] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await c.waitData((d) => d.includes('* OK unix'));
      c.socket.write('u1 NOOP\r\n');
      await c.waitData((d) => d.includes('u1 OK via unix'));
      c.socket.end();
      await within(c.closed, 3000, 'close');
      await waitFor(() => px.records().length === 1, 3000, 'record');
      const rec = px.records()[0]!;
      expect(rec.server).toBe(sock);
      expect(rec.reason).toBe('client_closed');
      expect(rec.bytesIn).toBe(9);
    } finally {
      px.stop();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
