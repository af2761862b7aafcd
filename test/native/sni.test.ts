// imaps: the certificate chosen by SNI (exact, wildcard, unknown, none, IP
// literal, reject), ALPN (ALPACA), TLS policy (TLSv1.1 refused), resumption.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSnapshot,
  checkPair,
  checkedPair,
  connectTls,
  fakeBackend,
  makePki,
  peerSan,
  sClient,
  servedSan,
  startProxy,
  waitFor,
  within,
} from './harness.js';
import type { FakeBackend, Pki, Running } from './harness.js';
import type tls from 'node:tls';
import path from 'node:path';
import { issue } from '../helpers/pki.js';
import { createProxy } from '../../src/native.js';

let pki: Pki;
let backend: FakeBackend;
let px: Running;

beforeAll(async () => {
  pki = makePki();
  backend = await fakeBackend('* OK [CAPABILITY IMAP4rev1] backend ready\r\n');
  px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
});

afterAll(async () => {
  px?.stop();
  await backend?.close();
  pki?.cleanup();
});

const sanFor = (servername: string | undefined, r: Running = px) => servedSan(r.port, pki, servername);

describe('imaps certificate selection', () => {
  it('picks the exact certificate for two different names', async () => {
    expect(await sanFor('mail.a.example')).toBe('DNS:mail.a.example, DNS:a.example');
    expect(await sanFor('mail.b.example')).toBe('DNS:mail.b.example');
    expect(await sanFor('A.Example.')).toBe('DNS:mail.a.example, DNS:a.example');
  });

  it('verifies the chain against the root with the hostname checked', async () => {
    const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.b.example' });
    expect(c.socket.authorized).toBe(true);
    c.socket.destroy();
  });

  it('uses the wildcard context for one label, not two', async () => {
    expect(await sanFor('imap.w.example')).toBe('DNS:*.w.example');
    expect(await sanFor('x.imap.w.example')).toBe('DNS:default.example');
  });

  it('serves the default for an unknown name and for no SNI', async () => {
    expect(await sanFor('nobody.example')).toBe('DNS:default.example');
    expect(await sanFor(undefined)).toBe('DNS:default.example');
    // Records reach JS in batches (up to ~150 ms late): wait for this one.
    await waitFor(() => px.records().some((r) => r.sni === 'nobody.example'), 3000, 'the record of nobody.example');
    expect(px.records().find((r) => r.sni === 'nobody.example')!.reason).not.toBe('sni_rejected');
  });

  it('treats an IP literal SNI as unknown: default certificate, no error', async () => {
    const r = await sClient(px.port, ['-servername', '127.0.0.1', '-CAfile', pki.rootPath], 'a1 NOOP\n');
    expect(r.stdout).toContain('subject=CN = default.example');
    expect(r.stdout).toContain('backend ready');
    expect(r.stdout).toContain('Verify return code: 0 (ok)');
  });
});

describe('unknownSni: reject', () => {
  let strict: Running;
  beforeAll(() => {
    strict = startProxy(buildSnapshot(pki, { servers: [backend.address], unknownSni: 'reject' }));
  });
  afterAll(() => strict?.stop());

  it('refuses an unknown name with unrecognized_name and records sni_rejected', async () => {
    const err = await connectTls(strict.port, { ca: pki.ca.rootPem, servername: 'nobody.example' }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).not.toBeNull();
    expect(String(err?.message)).toMatch(/unrecognized name|alert number 112/i);
    const recs = await strict.waitRecords(1);
    expect(recs[0]!.reason).toBe('sni_rejected');
    expect(recs[0]!.sni).toBe('nobody.example');
    expect(strict.proxy.stats().listeners[0]!.handshakeFailures).toBe(1);
  });

  it('still serves known names and clients without SNI', async () => {
    expect(await sanFor('mail.b.example', strict)).toBe('DNS:mail.b.example');
    expect(await sanFor(undefined, strict)).toBe('DNS:default.example');
  });
});

describe('ALPN (ALPACA)', () => {
  it('accepts "imap" and selects it', async () => {
    const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ALPNProtocols: ['imap'] });
    expect(c.socket.alpnProtocol).toBe('imap');
    c.socket.destroy();
  });

  it('accepts a client that offers none', async () => {
    const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
    expect(c.socket.alpnProtocol).toBe(false);
    c.socket.destroy();
  });

  it('refuses a client that offers only http/1.1 with no_application_protocol', async () => {
    const before = px.records().length;
    const err = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ALPNProtocols: ['http/1.1'] }).then(
      () => null,
      (e: Error) => e,
    );
    expect(String(err?.message)).toMatch(/no application protocol|alert number 120/i);
    // Records of earlier connections may still arrive: look for this one by its reason.
    await waitFor(() => px.records().some((r) => r.reason === 'alpn_rejected'), 3000, 'alpn_rejected record');
    expect(px.records().length).toBeGreaterThan(before);
  });
});

describe('TLS policy', () => {
  it('refuses TLSv1.1', async () => {
    const r = await sClient(px.port, ['-tls1_1', '-servername', 'mail.a.example'], '', { delayMs: 500 });
    expect(r.stdout + r.stderr).not.toContain('backend ready');
    expect(r.stdout + r.stderr).toMatch(/alert|no protocols available|wrong version|unsupported protocol/i);
  });

  it('negotiates TLSv1.3 and records version and cipher', async () => {
    const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
    const port = c.socket.localPort;
    await c.waitData((d) => d.includes('backend ready'));
    expect(c.socket.getProtocol()).toBe('TLSv1.3');
    const cipher = c.socket.getCipher().standardName;
    c.socket.end();
    const mine = () => px.records().findLast((r) => r.client === `127.0.0.1:${port}`);
    await waitFor(() => mine() !== undefined, 3000, 'record');
    const rec = mine()!;
    expect(rec.tlsVersion).toBe('TLSv1.3');
    expect(rec.cipher).toBe(cipher);
    expect(rec.sni).toBe('mail.a.example');
  });

  it('a resumed TLS 1.3 session gets a fresh ticket: a chain of single-use tickets keeps resuming', async () => {
    const opts = { ca: pki.ca.rootPem, servername: 'mail.a.example', minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as tls.ConnectionOptions;
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await connectTls(px.port, session ? { ...opts, session } : opts);
      await c.waitData((d) => d.includes('backend ready'));
      reused.push(c.socket.isSessionReused());
      // Each connection's own (new) ticket is the one used next: as OpenSSL clients do.
      await waitFor(() => c.session() !== undefined && c.session() !== session, 3000, 'a new ticket');
      session = c.session();
      c.socket.end();
      await within(c.closed, 3000, 'close');
    }
    expect(reused).toEqual([false, true, true, true, true]);
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`resumes a session with a ticket (${version}), also across apply()`, async () => {
      const opts = { ca: pki.ca.rootPem, servername: 'mail.a.example', minVersion: version, maxVersion: version } as tls.ConnectionOptions;
      const first = await connectTls(px.port, opts);
      await first.waitData((d) => d.includes('backend ready'));
      const session = first.session();
      expect(session).toBeDefined();
      first.socket.end();
      await within(first.closed, 3000, 'close');

      const second = await connectTls(px.port, { ...opts, session });
      expect(second.socket.isSessionReused()).toBe(true);
      await second.waitData((d) => d.includes('backend ready'));
      second.socket.end();
      await within(second.closed, 3000, 'close');

      px.proxy.apply(buildSnapshot(pki, { servers: [backend.address] }));
      const third = await connectTls(px.port, { ...opts, session });
      expect(third.socket.isSessionReused()).toBe(true);
      third.socket.end();
      await within(third.closed, 3000, 'close');
      const before = px.proxy.stats().listeners[0]!.resumed;
      expect(before).toBeGreaterThanOrEqual(2);
    });
  }
});

describe('OpenSSL security level 2 in every context', () => {
  it('the check refuses an RSA key under 2048 bits, whatever the cipher string; @SECLEVEL=0 in it does not refuse a 2048-bit key', () => {
    const weak = issue(pki.ca, { names: ['mail.b.example'], keyType: 'rsa', rsaBits: 1024, dir: path.join(pki.dir, 'b-rsa1024') });
    expect(checkPair(weak.fullchainPem, weak.keyPem)).toEqual({ error: 'weak', at: 0, detail: 'RSA, 1024 bits; 2048 or more needed' });
    const proxy = createProxy(1, () => {});
    try {
      // The same string with a 2048-bit key: taken (the level does not refuse the suites).
      const rsa = issue(pki.ca, { names: ['mail.b.example'], keyType: 'rsa', dir: path.join(pki.dir, 'b-rsa2048') });
      const snap = buildSnapshot(pki, { servers: [backend.address], ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0' });
      snap.contexts[2] = { certs: [checkedPair(rsa.fullchainPem, rsa.keyPem)] };
      proxy.apply(snap);
    } finally {
      proxy.stop();
    }
  });
});

describe('ECDSA and RSA certificates for the same name in one context', () => {
  it('serves ECDSA to a client that accepts it, RSA to one that only verifies RSA signatures', async () => {
    const rsa = issue(pki.ca, { names: ['mail.b.example'], keyType: 'rsa', dir: path.join(pki.dir, 'b-rsa') });
    const snap = buildSnapshot(pki, { servers: [backend.address] });
    snap.contexts[2] = { certs: [checkedPair(pki.b.fullchainPem, pki.b.keyPem), checkedPair(rsa.fullchainPem, rsa.keyPem)] };
    const two = startProxy(snap);
    try {
      const keyType = async (extra: tls.ConnectionOptions) => {
        const c = await connectTls(two.port, { ca: pki.ca.rootPem, servername: 'mail.b.example', ...extra });
        const cert = c.socket.getPeerCertificate();
        c.socket.end();
        return cert.asn1Curve ? 'ec' : cert.bits ? 'rsa' : '?';
      };
      expect(await keyType({})).toBe('ec');
      expect(await keyType({ sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' })).toBe('rsa');
      expect(await keyType({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).toBe('rsa');
    } finally {
      two.stop();
    }
  });
});
