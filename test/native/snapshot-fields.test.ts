// The strict boundary: apply() takes every field of NativeSnapshot as given and
// refuses anything else (missing, wrong type, unknown value, out of range) with
// MF_SNAPSHOT_FIELD and the field's path; OpenSSL's refusals come as MF_TLS_CONTEXT,
// a socket that cannot be opened as MF_LISTEN. A refused snapshot changes nothing.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy, NativeError, type NativeSnapshot } from '../../src/native.js';
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

type Spoil = (s: NativeSnapshot & Record<string, any>) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** [field path, how the snapshot is spoiled, what the message says after the path]. */
const CASES: [string, Spoil, RegExp][] = [
  ['tls.minVersion', (s) => delete (s.tls as any).minVersion, /expected one of "TLSv1.2", "TLSv1.3", got nothing \(missing\)/],
  ['tls.minVersion', (s) => ((s.tls as any).minVersion = 'TLSv1.1'), /expected one of "TLSv1.2", "TLSv1.3", got "TLSv1.1"/],
  ['tls.ciphers', (s) => ((s.tls as any).ciphers = 7), /expected a string, got 7/],
  ['tls.groups', (s) => (s.tls.groups = ''), /empty/],
  ['tls.recordLayer', (s) => ((s.tls as any).recordLayer = 'kernel'), /expected one of "mailfront", "openssl", got "kernel"/],
  ['tls.recordLayer', (s) => delete (s.tls as any).recordLayer, /got nothing \(missing\)/],
  ['contexts[2].certs[0]', (s) => ((s.contexts[2]!.certs as unknown[])[0] = {}), /not a pair from checkCertificates/],
  ['unknownSni', (s) => ((s as any).unknownSni = 'maybe'), /expected one of "default", "reject", got "maybe"/],
  ['defaultContext', (s) => (s.defaultContext = 4), /expected an integer from 0 to 3, got 4/],
  ['exact["mail.b.example"]', (s) => (s.exact['mail.b.example'] = 1.5), /expected an integer from 0 to 3/],
  ['backends[0].proxyProtocol', (s) => ((s.backends[0] as any).proxyProtocol = 'v3'), /expected one of "off", "v1", "v2", "v2-ssl", got "v3"/],
  ['backends[0].balance', (s) => delete (s.backends[0] as any).balance, /got nothing \(missing\)/],
  ['backends[0].servers[0]', (s) => (s.backends[0]!.servers[0] = 'no-port'), /expected an address/],
  ['backends[0].servers', (s) => (s.backends[0]!.servers = []), /no server/],
  ['listeners[0].protocol', (s) => ((s.listeners[0] as any).protocol = 'smtp'), /expected one of/],
  ['listeners[0].backend', (s) => (s.listeners[0]!.backend = 1), /expected an integer from 0 to 0, got 1/],
  ['listeners[0].routes[0].backend', (s) => (s.listeners[0]!.routes = [{ sni: 'x.example', backend: -1 }]), /expected an integer from 0 to 0, got -1/],
  ['listeners[0].acceptProxy', (s) => delete (s.listeners[0] as any).acceptProxy, /expected true or false, got nothing \(missing\)/],
  ['listeners[0].trustedProxies[0]', (s) => (s.listeners[0]!.trustedProxies = ['10.0.0.0/40']), /expected a CIDR block/],
  ['timeouts.idleMs', (s) => ((s.timeouts as any).idleMs = '30m'), /expected an integer .*, got "30m"/],
  ['limits.loginFailures', (s) => delete (s.limits as any).loginFailures, /expected an object, got nothing \(missing\)/],
  ['limits.loginFailures.banMs', (s) => (s.limits.loginFailures.banMs = -1), /expected an integer from 0 to/],
  ['limits.loginTracking', (s) => ((s.limits as any).loginTracking = 'yes'), /expected true or false, got "yes"/],
  ['limits.ipv6Prefix', (s) => (s.limits.ipv6Prefix = 129), /expected an integer from 0 to 128, got 129/],
  ['limits.exempt[1]', (s) => (s.limits.exempt = ['10.0.0.0/8', 'nope']), /expected a CIDR block/],
];

describe('apply() refuses a snapshot field it cannot take as given', () => {
  it.each(CASES)('%s', (path, spoil, message) => {
    const proxy = createProxy(1, () => {});
    try {
      const snap = buildSnapshot(pki, { servers: [backend.address] });
      spoil(snap);
      let err: unknown;
      try {
        proxy.apply(snap);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NativeError);
      const e = err as NativeError;
      expect({ code: e.code, path: e.path }).toEqual({ code: 'MF_SNAPSHOT_FIELD', path });
      expect(e.message.startsWith(`snapshot refused: ${path}: `), e.message).toBe(true);
      expect(e.message).toMatch(message);
    } finally {
      proxy.stop();
    }
  });

  it('the whole snapshot as src/snapshot.ts sends it is taken (the harness sends every field)', () => {
    const proxy = createProxy(1, () => {});
    expect(() => proxy.apply(buildSnapshot(pki, { servers: [backend.address] }))).not.toThrow();
    proxy.stop();
  });

  it('a refused snapshot leaves the running one serving', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const bad = buildSnapshot(pki, { servers: [backend.address] });
      (bad.limits as Partial<NativeSnapshot['limits']>).exempt = undefined;
      expect(() => px.proxy.apply(bad)).toThrow(/limits\.exempt: expected an array/);
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await c.waitData((d) => d.includes('backend ready'));
      c.socket.end();
      await within(c.closed, 3000, 'close');
    } finally {
      px.stop();
    }
  });
});

describe('the other refusals carry their code', () => {
  it('OpenSSL refusing a pair or a TLS setting: MF_TLS_CONTEXT', () => {
    const proxy = createProxy(1, () => {});
    try {
      for (const [snap, message] of [
        [buildSnapshot(pki, { servers: [backend.address], ciphers: 'NOT-A-CIPHER' }), /tls\.ciphers "NOT-A-CIPHER"/],
      ] as const) {
        expect(() => proxy.apply(snap)).toThrow(expect.objectContaining({ code: 'MF_TLS_CONTEXT', message: expect.stringMatching(message) }));
      }
    } finally {
      proxy.stop();
    }
  });

  it('a listening address in use: MF_LISTEN, naming the listener and the address', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const address = `127.0.0.1:${(taken.address() as net.AddressInfo).port}`;
    const proxy = createProxy(1, () => {});
    try {
      proxy.apply(buildSnapshot(pki, { servers: [backend.address] }));
      expect(() => proxy.start([{ name: 'l0', protocol: 'imaps', addresses: [address] }])).toThrow(
        expect.objectContaining({ code: 'MF_LISTEN', message: expect.stringContaining(`listener l0 on ${address}: `) }),
      );
    } finally {
      proxy.stop();
      await new Promise((r) => taken.close(r));
    }
  });
});
