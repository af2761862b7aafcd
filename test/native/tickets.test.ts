// Session tickets: the keys handed to apply() (copied into the data plane, the
// Buffers zeroed, also when the snapshot is refused), and tickets bound to the
// application protocol of the listener that issued them (ALPACA).
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy, type Protocol } from '../../src/native.js';
import { buildSnapshot, connectRaw, listenerPolicy, connectTls, fakeBackend, makePki, startProxy, within, wrapTls } from './harness.js';
import type { FakeBackend, Pki, Running } from './harness.js';

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
      ['no certificate context', (s) => (s.contexts = []), /contexts: expected at least one certificate context/],
      ['no groups', (s) => (s.tls.groups = ''), /tls\.groups: expected a non-empty OpenSSL group list/],
      ['a field missing elsewhere', (s) => delete (s.limits as Partial<typeof s.limits>).exempt, /limits\.exempt: expected an array/],
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

describe('tickets are bound to the application protocol of the listener that issued them', () => {
  // One proxy, one certificate context for every listener (contexts are per certificate).
  const PROTOCOLS = ['imaps', 'pop3s', 'imap', 'managesieve'] as const;
  let px: Running;
  const port = (p: Protocol) => px.ports[PROTOCOLS.indexOf(p as (typeof PROTOCOLS)[number])]!;

  beforeAll(() => {
    const snap = buildSnapshot(pki, { servers: [backend.address] });
    snap.listeners = PROTOCOLS.map((protocol) => listenerPolicy(protocol, protocol));
    px = startProxy(snap);
  });
  afterAll(() => px?.stop());

  /** A handshake on a STARTTLS listener (after the plaintext dialog); whether it resumed. */
  async function starttlsResumes(protocol: 'imap' | 'managesieve', session: Buffer, opts: tls.ConnectionOptions): Promise<boolean> {
    const raw = await connectRaw(port(protocol));
    await raw.waitData((d) => /OK[^\r\n]*\r\n/.test(d));
    raw.socket.write(protocol === 'imap' ? 'a0 STARTTLS\r\n' : 'STARTTLS\r\n');
    await raw.waitData((d) => d.includes(protocol === 'imap' ? 'a0 OK' : 'OK "Begin'));
    raw.socket.removeAllListeners('data');
    const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example', session, ...opts });
    const c = wrapTls(t);
    await within(new Promise((r) => t.once('secureConnect', r)), 5000, `${protocol} handshake`);
    const reused = t.isSessionReused();
    t.destroy();
    await within(c.closed, 3000, 'close');
    return reused;
  }

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const opts = { minVersion: version, maxVersion: version } as const;

    it(`${version}: an imaps ticket resumes on imaps and IMAP STARTTLS, not on pop3s or ManageSieve`, async () => {
      const { session } = await handshake(port('imaps'), opts);
      expect((await handshake(port('imaps'), { ...opts, session }, false)).reused).toBe(true);
      // Same application protocol (ALPN "imap"), same Cyrus imapd: one context.
      expect(await starttlsResumes('imap', session, opts)).toBe(true);
      // Refused as a session, not as a connection: a full handshake, then relayed.
      const other = await handshake(port('pop3s'), { ...opts, session }, false);
      expect(other.reused).toBe(false);
      expect(await starttlsResumes('managesieve', session, opts)).toBe(false);
      // Still good where it came from.
      expect((await handshake(port('imaps'), { ...opts, session }, false)).reused).toBe(true);
    });

    it(`${version}: a pop3s ticket resumes on pop3s, not on imaps`, async () => {
      const { session } = await handshake(port('pop3s'), opts);
      expect((await handshake(port('pop3s'), { ...opts, session }, false)).reused).toBe(true);
      expect((await handshake(port('imaps'), { ...opts, session }, false)).reused).toBe(false);
    });
  }
});
