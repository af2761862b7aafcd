// A hand-built TLS 1.3 ClientHello, for what real clients never send: a
// ClientHello followed by silence, one without a key share (the server answers
// with a HelloRetryRequest), a second ClientHello with another name.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { waitFor } from './harness.js';

export const GROUP = { x25519: 0x001d, p256: 0x0017, p384: 0x0018 } as const;

export interface HelloOptions {
  /** Server name; none without. */
  sni?: string;
  /** supported_groups, in order (default: X25519 only). */
  groups?: number[];
  /** Groups with a key share (random bytes of the right size); default none: the server must retry. */
  shares?: number[];
  /** Kept equal between the two ClientHellos of one connection, as RFC 8446 4.1.2 asks. */
  random?: Buffer;
  sessionId?: Buffer;
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
const shareSize: Record<number, number> = { [GROUP.x25519]: 32, [GROUP.p256]: 65, [GROUP.p384]: 97 };

function share(group: number): Buffer {
  const key = randomBytes(shareSize[group] ?? 32);
  if (group !== GROUP.x25519) key[0] = 4; // uncompressed point marker (the value itself is never used)
  return Buffer.concat([u16(group), u16(key.length), key]);
}

/** One TLS record holding a TLS 1.3 ClientHello. */
export function clientHello(o: HelloOptions = {}): Buffer {
  const groups = o.groups ?? [GROUP.x25519];
  const exts: Buffer[] = [];
  if (o.sni !== undefined) {
    const name = Buffer.from(o.sni, 'latin1');
    exts.push(ext(0, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])));
  }
  exts.push(ext(10, Buffer.concat([u16(groups.length * 2), ...groups.map(u16)])));
  // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
  exts.push(ext(13, Buffer.from([0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01])));
  exts.push(ext(43, Buffer.from([2, 0x03, 0x04])));
  exts.push(ext(45, Buffer.from([1, 1])));
  const shares = Buffer.concat((o.shares ?? []).map(share));
  exts.push(ext(51, Buffer.concat([u16(shares.length), shares])));
  const all = Buffer.concat(exts);
  const sid = o.sessionId ?? randomBytes(32);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    o.random ?? randomBytes(32),
    Buffer.from([sid.length]),
    sid,
    u16(6),
    Buffer.from([0x13, 0x01, 0x13, 0x02, 0x13, 0x03]),
    Buffer.from([1, 0]),
    u16(all.length),
    all,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

/** The random of a HelloRetryRequest (RFC 8446 4.1.3). */
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

export interface RawTls {
  socket: net.Socket;
  /**
   * The n-th record from the server (0-based, ChangeCipherSpec records skipped), once complete:
   * "hrr", "server_hello", "alert_<description>", "closed" (none before the close), or "other_<hex>".
   */
  reply(n: number, ms?: number): Promise<string>;
  closed: Promise<void>;
}

export async function rawTls(port: number): Promise<RawTls> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  let ended = false;
  socket.on('data', (d) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.on('close', () => ((ended = true), r())));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const describe = (n: number): string | undefined => {
    const d = Buffer.concat(chunks);
    for (let at = 0, i = 0; ; ) {
      if (d.length < at + 5 || d.length < at + 5 + d.readUInt16BE(at + 3)) return ended ? 'closed' : undefined;
      const type = d[at]!;
      if (type !== 0x14 && i++ === n) {
        if (type === 0x15) return `alert_${d[at + 6]}`;
        if (type === 0x16 && d[at + 5] === 2) return d.subarray(at + 11, at + 43).equals(HRR_RANDOM) ? 'hrr' : 'server_hello';
        return `other_${d.subarray(at, at + 8).toString('hex')}`;
      }
      at += 5 + d.readUInt16BE(at + 3);
    }
  };
  return {
    socket,
    closed,
    async reply(n, ms = 3000) {
      let out: string | undefined;
      await waitFor(() => (out = describe(n)) !== undefined, ms, `server record ${n}`);
      return out!;
    },
  };
}
