// The backend connect that starts inside the handshake (Conn::on_servername):
// bounded per pool, never for a ClientHello answered with a HelloRetryRequest,
// and a second ClientHello must name the same server as the first.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, fakeBackend, makePki, sleep, startProxy, waitFor, within } from './harness.js';
import type { Pki } from './harness.js';
import { clientHello, GROUP, rawTls, type RawTls } from './client-hello.js';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

const GREETING = '* OK backend ready\r\n';
const BUDGET = 32; // kEarlyConnectsPerPool (native/snapshot.h)

/** A client that sends one ClientHello and then nothing. */
async function silent(port: number, hello: Buffer): Promise<RawTls> {
  const c = await rawTls(port);
  c.socket.write(hello);
  return c;
}

describe('early backend connect', () => {
  it(`silent clients after a full ClientHello hold at most ${BUDGET} backend connections; the rest connect after their handshake`, async () => {
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], timeouts: { handshakeMs: 20_000 } }));
    const held: RawTls[] = [];
    try {
      const N = BUDGET + 8;
      for (let i = 0; i < N; i++) held.push(await silent(px.port, clientHello({ sni: 'mail.a.example', shares: [GROUP.x25519] })));
      // Every one got the server's flight (the server did its crypto), none finished.
      for (const c of held) expect(await c.reply(0)).toBe('server_hello');
      await sleep(200);
      expect(backend.received.length).toBe(BUDGET);
      expect(px.proxy.stats().listeners[0]!.earlyConnectsDeferred).toBe(N - BUDGET);

      // A real client still gets through: its backend connect follows its handshake.
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      expect(await c.waitData((d) => d.includes('backend ready'))).toBe(GREETING);
      expect(backend.received.length).toBe(BUDGET + 1);
      c.socket.end();
      await within(c.closed, 3000, 'client close');

      // Clients that give up give their slots back, and their backend connections go.
      for (const s of held) s.socket.destroy();
      await waitFor(() => px.proxy.stats().active === 0, 3000, 'silent clients closed');
      await waitFor(() => backend.sockets.filter((s) => !s.destroyed).length === 0, 3000, 'backend connections closed');
      const before = backend.received.length;
      held.length = 0;
      held.push(await silent(px.port, clientHello({ sni: 'mail.a.example', shares: [GROUP.x25519] })));
      expect(await held[0]!.reply(0)).toBe('server_hello');
      await waitFor(() => backend.received.length === before + 1, 2000, 'an early connect again');
    } finally {
      for (const s of held) s.socket.destroy();
      px.stop();
      await backend.close();
    }
  });

  it('a ClientHello without a usable key share (HelloRetryRequest) opens no backend connection, nor does the retry', async () => {
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    const held: RawTls[] = [];
    try {
      // X25519 offered without a share: the server asks again and does no crypto.
      for (let i = 0; i < 5; i++) held.push(await silent(px.port, clientHello({ sni: 'mail.a.example' })));
      for (const c of held) expect(await c.reply(0)).toBe('hrr');
      // A share only for a group the server does not take: the same.
      held.push(await silent(px.port, clientHello({ sni: 'mail.a.example', groups: [GROUP.p384, GROUP.x25519], shares: [GROUP.p384] })));
      expect(await held[5]!.reply(0)).toBe('hrr');
      // The retried ClientHello gets the server's flight, and still no early connect.
      const random = randomBytes(32);
      const sessionId = randomBytes(32);
      const retried = await silent(px.port, clientHello({ sni: 'mail.a.example', random, sessionId }));
      held.push(retried);
      expect(await retried.reply(0)).toBe('hrr');
      retried.socket.write(clientHello({ sni: 'mail.a.example', random, sessionId, shares: [GROUP.x25519] }));
      expect(await retried.reply(1)).toBe('server_hello');
      await sleep(300);
      expect(backend.received.length).toBe(0);
      expect(px.proxy.stats().listeners[0]!.earlyConnectsDeferred).toBe(0);

      // A real client that needs a retry (its only key share is P-384) is served, connecting after its handshake.
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ecdhCurve: 'P-384:X25519' });
      await c.waitData((d) => d.includes('backend ready'));
      expect(backend.received.length).toBe(1);
      c.socket.end();
      await within(c.closed, 3000, 'client close');
    } finally {
      for (const s of held) s.socket.destroy();
      px.stop();
      await backend.close();
    }
  });
});

describe('the ClientHello after a HelloRetryRequest', () => {
  const retry = async (port: number, first: string | undefined, second: string | undefined): Promise<string> => {
    const random = randomBytes(32);
    const sessionId = randomBytes(32);
    const c = await rawTls(port);
    try {
      c.socket.write(clientHello({ sni: first, random, sessionId }));
      expect(await c.reply(0)).toBe('hrr');
      c.socket.write(clientHello({ sni: second, random, sessionId, shares: [GROUP.x25519] }));
      return await c.reply(1);
    } finally {
      c.socket.destroy();
    }
  };

  it('naming another server (or none, or one after none) is refused with illegal_parameter (47)', async () => {
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      expect(await retry(px.port, 'mail.a.example', 'mail.b.example')).toBe('alert_47');
      expect(await retry(px.port, 'mail.a.example', 'MAIL.A.EXAMPLE')).toBe('alert_47');
      expect(await retry(px.port, 'mail.a.example', undefined)).toBe('alert_47');
      expect(await retry(px.port, undefined, 'mail.a.example')).toBe('alert_47');
      const recs = await px.waitRecords(4);
      for (const r of recs) {
        expect(r.reason).toBe('sni_changed');
        expect(r.server).toBe('');
      }
      expect(recs[0]!.sni).toBe('mail.a.example');
      // The same name goes on to the server's flight.
      expect(await retry(px.port, 'mail.b.example', 'mail.b.example')).toBe('server_hello');
      expect(await retry(px.port, undefined, undefined)).toBe('server_hello');
      expect(backend.received.length).toBe(0);
    } finally {
      px.stop();
      await backend.close();
    }
  });
});
