// The throwaway PKI lives in src/pki.ts (the demo uses it too).
export * from '../../src/pki.js';

/**
 * <keyPem> (an EC key, PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY") with its private scalar
 * changed (last bit flipped) and its public point kept: the public halves of key and certificate
 * still match, but nothing it signs verifies.
 */
export function damagePrivateScalar(keyPem: string): string {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]+?)-----END \1-----/.exec(keyPem);
  if (!m) throw new Error('not a PEM key');
  const der = Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64');
  // ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING, ... }
  const at = der.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04]));
  if (at < 0) throw new Error('no ECPrivateKey in this PEM');
  const len = der[at + 4]!;
  der[at + 5 + len - 1]! ^= 0x01;
  return `-----BEGIN ${m[1]}-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${m[1]}-----\n`;
}
