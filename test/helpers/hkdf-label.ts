import { createHmac } from 'node:crypto';

/** HKDF-Expand-Label(secret, label, "", length) with <hash> (RFC 8446 7.1), one block: the tests' reference, written with Node's HMAC. */
export function expandLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
  const l = Buffer.from(`tls13 ${label}`);
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, l.length]), l, Buffer.from([0, 1])]);
  return createHmac(hash, secret).update(info).digest().subarray(0, length);
}
