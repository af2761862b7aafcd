// Key-exchange groups (tls.groups): the default follows the running OpenSSL
// (hybrid X25519MLKEM768 first on 3.5), the negotiated group reaches the
// connection record, and a group the library lacks is refused at apply().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, fakeBackend, makePki, startProxy, within } from './harness.js';
import type { FakeBackend, Pki, Running } from './harness.js';
import { createProxy } from '../../src/native.js';
import { defaultGroups, HYBRID_GROUP, tlsLibrary } from '../../src/tls-library.js';

const lib = tlsLibrary();
const hybrid = lib.hasGroup(HYBRID_GROUP);

let pki: Pki;
let backend: FakeBackend;
let px: Running;

beforeAll(async () => {
  pki = makePki();
  backend = await fakeBackend('* OK backend ready\r\n');
  px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
});

afterAll(async () => {
  px?.stop();
  await backend?.close();
  pki?.cleanup();
});

/** One handshake offering only <curve>; the group the data plane recorded for it. */
async function groupFor(curve: string): Promise<string> {
  const before = px.records().length;
  const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ecdhCurve: curve });
  await c.waitData((d) => d.includes('backend ready'));
  c.socket.end();
  await within(c.closed, 3000, 'close');
  const recs = await px.waitRecords(before + 1);
  return recs[before]!.group;
}

describe('key-exchange groups', () => {
  it('offers the hybrid group exactly when the library has ML-KEM (OpenSSL 3.5+)', () => {
    expect(hybrid).toBe(lib.versionNumber >= 0x30500000);
    expect(defaultGroups(lib)).toBe(hybrid ? 'X25519MLKEM768:X25519:P-256' : 'X25519:P-256');
  });

  it('records the classical group a classical-only client used', async () => {
    expect(await groupFor('X25519')).toBe('X25519');
    expect(await groupFor('P-256')).toBe('P-256');
  });

  it('records X25519MLKEM768 for a client offering only the hybrid group; refuses it where the library lacks it', async () => {
    if (hybrid) {
      expect(await groupFor(HYBRID_GROUP)).toBe(HYBRID_GROUP);
    } else {
      const proxy = createProxy(1, () => {});
      const snap = buildSnapshot(pki, { servers: [backend.address], groups: `${HYBRID_GROUP}:X25519` });
      expect(() => proxy.apply(snap)).toThrow(/tls\.groups "X25519MLKEM768:X25519"/);
      proxy.stop();
    }
  });

  it('serves only the configured groups: a client without one of them fails the handshake', async () => {
    const only384 = startProxy(buildSnapshot(pki, { servers: [backend.address], groups: 'P-384' }));
    try {
      await expect(connectTls(only384.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', ecdhCurve: 'X25519' })).rejects.toThrow();
      const [rec] = await only384.waitRecords(1);
      expect(rec!.reason).toBe('handshake_failed');
      expect(rec!.group).toBe('');
    } finally {
      only384.stop();
    }
  });
});
