// Certificate contexts are built on the first handshake that names them (native/ctx_cache.h):
// apply() builds only the default one and proves the others; a reload keeps what was built.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, fakeBackend, makePki, servedSan, startProxy } from './harness.js';
import type { FakeBackend, Pki, Running } from './harness.js';
import { createProxy } from '../../src/native.js';

let pki: Pki;
let backend: FakeBackend;

beforeAll(async () => {
  pki = makePki();
  backend = await fakeBackend('* OK [CAPABILITY IMAP4rev1] backend ready\r\n');
});

afterAll(async () => {
  await backend?.close();
  pki?.cleanup();
});

const sanFor = (r: Running, servername: string) => servedSan(r.port, pki, servername);

const built = (r: Running) => ({ contexts: r.proxy.stats().contexts, built: r.proxy.stats().contextsBuilt });

describe('certificate contexts built on first use', () => {
  it('apply() builds the default context only; a name builds its own on its first handshake, once', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      expect(built(px)).toEqual({ contexts: 4, built: 1 });
      expect(await sanFor(px, 'mail.b.example')).toBe('DNS:mail.b.example');
      expect(built(px)).toEqual({ contexts: 4, built: 2 });
      expect(await sanFor(px, 'mail.b.example')).toBe('DNS:mail.b.example');
      expect(await sanFor(px, 'x.w.example')).toBe('DNS:*.w.example');
      expect(built(px)).toEqual({ contexts: 4, built: 3 });
    } finally {
      px.stop();
    }
  });

  it('two workers asking for the same unbuilt context at once both get it, built once', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }), 2);
    try {
      const sans = await Promise.all(Array.from({ length: 24 }, () => sanFor(px, 'mail.a.example')));
      expect(new Set(sans)).toEqual(new Set(['DNS:mail.a.example, DNS:a.example']));
      expect(built(px)).toEqual({ contexts: 4, built: 2 });
    } finally {
      px.stop();
    }
  });

  it('a reload with the same pairs keeps the built contexts; a changed pair waits for its first handshake', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      await sanFor(px, 'mail.a.example');
      await sanFor(px, 'mail.b.example');
      expect(built(px)).toEqual({ contexts: 4, built: 3 });
      px.proxy.apply(buildSnapshot(pki, { servers: [backend.address] }));
      expect(built(px)).toEqual({ contexts: 4, built: 3 });
      // a2: another certificate for a's names: its context is new, not built until asked for.
      px.proxy.apply(buildSnapshot(pki, { servers: [backend.address], useA2: true }));
      expect(built(px)).toEqual({ contexts: 4, built: 2 });
      expect(await sanFor(px, 'mail.a.example')).toBe('DNS:mail.a.example, DNS:second.a.example');
      expect(built(px)).toEqual({ contexts: 4, built: 3 });
    } finally {
      px.stop();
    }
  });

  it('a policy OpenSSL refuses is still refused by apply(), before any handshake', () => {
    const proxy = createProxy(1, () => {});
    try {
      const snap = buildSnapshot(pki, { servers: [backend.address] });
      snap.tls.ciphersuites = 'TLS_NO_SUCH_SUITE';
      expect(() => proxy.apply(snap)).toThrow(/contexts\[0\]: tls\.ciphersuites "TLS_NO_SUCH_SUITE"/);
    } finally {
      proxy.stop();
    }
  });
});
