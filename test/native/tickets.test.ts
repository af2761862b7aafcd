// Session tickets: the keys handed to apply() (copied into the data plane, the
// Buffers zeroed, also when the snapshot is refused).
import { randomBytes } from 'node:crypto';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy } from '../../src/native.js';
import { buildSnapshot, connectTls, fakeBackend, makePki, startProxy, within } from './harness.js';
import type { FakeBackend, Pki } from './harness.js';

let pki: Pki;
let backend: FakeBackend;

beforeAll(async () => {
  pki = makePki();
  backend = await fakeBackend('* OK backend ready\r\n');
});

afterAll(async () => {
  await backend?.close();
  pki?.cleanup();
});

const zero = (b: Buffer) => b.equals(Buffer.alloc(b.length));

/**
 * One handshake on <port>, relayed; whether it resumed, and (with <ticket>) the ticket it got: a
 * serialized session, which holds the ticket as sent. (An OpenSSL client reports no new session
 * after a TLS 1.2 resumption.)
 */
async function handshake(port: number, opts: tls.ConnectionOptions, ticket = true): Promise<{ reused: boolean; session: Buffer }> {
  const c = await connectTls(port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ...opts });
  await c.waitData((d) => d.includes('backend ready'));
  if (ticket) await within(new Promise<void>((r) => (c.session() ? r() : c.socket.once('session', () => r()))), 3000, 'a ticket');
  const out = { reused: c.socket.isSessionReused(), session: c.session()! };
  c.socket.end();
  await within(c.closed, 3000, 'close');
  return out;
}

describe('ticket keys handed to apply()', () => {
  it('are copied into the data plane, and the Buffers given are zeroed', async () => {
    const keys = [randomBytes(80), randomBytes(80)];
    const names = keys.map((k) => Buffer.from(k.subarray(0, 16)));
    const snap = buildSnapshot(pki, { servers: [backend.address] });
    snap.tls.ticketKeys = keys;
    const px = startProxy(snap);
    try {
      expect(keys.map(zero)).toEqual([true, true]);
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const opts = { minVersion: version, maxVersion: version } as const;
        const first = await handshake(px.port, opts);
        // The ticket carries the name of the newest key given (in clear, RFC 5077 4): the data plane's copy encrypts.
        expect(first.session.includes(names[0]!)).toBe(true);
        expect(first.session.includes(names[1]!)).toBe(false);
        expect((await handshake(px.port, { ...opts, session: first.session }, false)).reused).toBe(true);
      }
    } finally {
      px.stop();
    }
  });

  it('are zeroed also when apply() refuses the snapshot', () => {
    const proxy = createProxy(1, () => {});
    const cases: [string, (s: ReturnType<typeof buildSnapshot>) => void, RegExp][] = [
      ['no certificate context', (s) => (s.contexts = []), /no certificate context/],
      ['no groups', (s) => (s.tls.groups = ''), /tls\.groups: missing/],
      ['a key of the wrong size among good ones', (s) => s.tls.ticketKeys.splice(1, 0, randomBytes(79)), /tls\.ticketKeys\[1\]: expected an 80-byte Buffer/],
    ];
    for (const [what, spoil, error] of cases) {
      const snap = buildSnapshot(pki, { servers: [backend.address] });
      snap.tls.ticketKeys = [randomBytes(80), randomBytes(80)];
      spoil(snap);
      expect(() => proxy.apply(snap), what).toThrow(error);
      expect(snap.tls.ticketKeys.map(zero), what).toEqual(snap.tls.ticketKeys.map(() => true));
    }
    proxy.stop();
  });
});
