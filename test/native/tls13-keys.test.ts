// The TLS 1.3 key schedule of mailfront's record layer (native/tls13_keys.cc): the traffic
// key and IV of a secret (RFC 8446 7.3) and the next secret of a KeyUpdate (7.2), against
// RFC 8448's trace and against HKDF-Expand-Label written out with Node's HMAC. Several
// derivations in a row and across suites: the HMAC contexts are kept per thread.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { expandLabel } from '../helpers/hkdf-label.js';
import { loadTestingAddon } from '../helpers/testing-addon.js';

const addon = loadTestingAddon();

const suites = [
  { id: 0x1301, name: 'TLS_AES_128_GCM_SHA256', hash: 'sha256', secretLen: 32, keyLen: 16 },
  { id: 0x1302, name: 'TLS_AES_256_GCM_SHA384', hash: 'sha384', secretLen: 48, keyLen: 32 },
  { id: 0x1303, name: 'TLS_CHACHA20_POLY1305_SHA256', hash: 'sha256', secretLen: 32, keyLen: 32 },
];

describe('TLS 1.3 traffic keys', () => {
  it("RFC 8448 3: the server's application traffic key and IV", () => {
    const secret = Buffer.from('a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643', 'hex');
    const k = addon.testTrafficKey(0x1301, secret);
    expect(k.key.toString('hex')).toBe('9f02283b6c9c07efc26bb9f2ac92e356');
    expect(k.iv.toString('hex')).toBe('cf782b88dd83549aadf1e984');
  });

  it.each(suites.map((s) => [s.name, s] as const))('%s: key, IV and next secret as HKDF-Expand-Label gives them, 20 in a row', (_, s) => {
    let secret = randomBytes(s.secretLen);
    for (let i = 0; i < 20; i++) {
      const k = addon.testTrafficKey(s.id, secret);
      expect(k.key.toString('hex')).toBe(expandLabel(s.hash, secret, 'key', s.keyLen).toString('hex'));
      expect(k.iv.toString('hex')).toBe(expandLabel(s.hash, secret, 'iv', 12).toString('hex'));
      const next = expandLabel(s.hash, secret, 'traffic upd', s.secretLen);
      expect(k.next.toString('hex')).toBe(next.toString('hex'));
      secret = next;
    }
  });

  it('suites taken in turn do not disturb each other', () => {
    const secrets = suites.map((s) => randomBytes(s.secretLen));
    for (let round = 0; round < 3; round++) {
      suites.forEach((s, i) => {
        expect(addon.testTrafficKey(s.id, secrets[i]!).key.toString('hex')).toBe(expandLabel(s.hash, secrets[i]!, 'key', s.keyLen).toString('hex'));
      });
    }
  });

  it('refuses a suite it does not carry and a secret of the wrong length', () => {
    expect(() => addon.testTrafficKey(0x1304, randomBytes(32))).toThrow(/testTrafficKey/);
    expect(() => addon.testTrafficKey(0x1302, randomBytes(32))).toThrow(/testTrafficKey/);
  });
});
