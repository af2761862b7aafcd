// PROXY protocol header WRITTEN to backends, v2-ssl (HAProxy's
// send-proxy-v2-ssl): bytes checked against the layout of proxy-protocol.txt
// (2.2: TLVs; 2.2.3: CRC32C; 2.2.5: PP2_TYPE_SSL), the CRC32C check values,
// the round trip through mailfront's own reader, and the live path (imaps and
// an IMAP STARTTLS listener whose backend connect starts during the handshake).
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestingAddon } from '../helpers/testing-addon.js';
import { buildSnapshot, connectTls, fakeBackend, makePki, startProxy, waitFor, within } from './harness.js';
import type { Pki } from './harness.js';

const addon = loadTestingAddon();
const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const GREETING = '* OK [CAPABILITY IMAP4rev1] backend ready\r\n';

/** CRC32C bit by bit (RFC 4960 Appendix B): independent of the C++ table. */
function crc32cBits(b: Buffer): number {
  let c = 0xffffffff;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const tlv = (type: number, value: Buffer) => {
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
};

/** The spec's header, built here field by field, CRC filled in last. */
function expected(fam: number, addrs: Buffer, t: { version: string; cipher: string; sni?: string }, cmd = 0x21): Buffer {
  const crc = tlv(0x03, Buffer.alloc(4));
  const authority = t.sni ? tlv(0x02, Buffer.from(t.sni)) : Buffer.alloc(0);
  const ssl = tlv(0x20, Buffer.concat([
    Buffer.from([0x01]), // client: PP2_CLIENT_SSL
    Buffer.from([0, 0, 0, 1]), // verify: non-zero, no client certificate verified
    tlv(0x21, Buffer.from(t.version)), // PP2_SUBTYPE_SSL_VERSION
    tlv(0x23, Buffer.from(t.cipher)), // PP2_SUBTYPE_SSL_CIPHER
  ]));
  const body = Buffer.concat([addrs, crc, authority, ssl]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  const h = Buffer.concat([SIG, Buffer.from([cmd, fam]), len, body]);
  h.writeUInt32BE(crc32cBits(h), 16 + addrs.length + 3);
  return h;
}

/** The TLVs after <from>, as a reader following the spec sees them. */
function tlvs(h: Buffer, from: number): { type: number; value: Buffer }[] {
  const out: { type: number; value: Buffer }[] = [];
  const end = 16 + h.readUInt16BE(14);
  for (let i = from; i < end;) {
    const len = h.readUInt16BE(i + 1);
    expect(i + 3 + len).toBeLessThanOrEqual(end);
    out.push({ type: h[i]!, value: h.subarray(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  return out;
}

/** PP2_TYPE_SSL's sub-TLVs, after its client byte and verify word. */
function subTlvs(ssl: Buffer): Map<number, string> {
  const out = new Map<number, string>();
  for (let i = 5; i < ssl.length;) {
    const len = ssl.readUInt16BE(i + 1);
    expect(i + 3 + len).toBeLessThanOrEqual(ssl.length);
    out.set(ssl[i]!, ssl.subarray(i + 3, i + 3 + len).toString());
    i += 3 + len;
  }
  return out;
}

const T13 = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', sni: 'mail.example.com' };

describe('CRC32C (Castagnoli)', () => {
  // "123456789" is the usual check value; the 32-byte vectors are RFC 3720 B.4's (as numbers).
  const cases: [string, Buffer, number][] = [
    ['"123456789"', Buffer.from('123456789'), 0xe3069283],
    ['32 zero bytes', Buffer.alloc(32), 0x8a9136aa],
    ['32 bytes of 0xff', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
    ['nothing', Buffer.alloc(0), 0],
  ];
  it.each(cases)('%s', (_n, input, want) => {
    expect(addon.testCrc32c(input)).toBe(want);
    expect(crc32cBits(input)).toBe(want);
  });
});

describe('v2-ssl header bytes (proxy-protocol.txt layout)', () => {
  it('TCP over IPv4: addresses, CRC32C, AUTHORITY, SSL with version and cipher', () => {
    const h = addon.testProxyHeader('v2-ssl', '192.0.2.7:51234', '198.51.100.1:993', T13);
    const addrs = Buffer.from([192, 0, 2, 7, 198, 51, 100, 1, 51234 >> 8, 51234 & 255, 0x03, 0xe1]);
    expect(h.toString('hex')).toBe(expected(0x11, addrs, T13).toString('hex'));
    // Read back as a receiver would.
    const list = tlvs(h, 28);
    expect(list.map((t) => t.type)).toEqual([0x03, 0x02, 0x20]);
    expect(list[1]!.value.toString()).toBe('mail.example.com');
    const ssl = list[2]!.value;
    expect(ssl[0]).toBe(0x01);
    expect(ssl.readUInt32BE(1)).not.toBe(0);
    expect([...subTlvs(ssl)]).toEqual([[0x21, 'TLSv1.3'], [0x23, 'TLS_AES_256_GCM_SHA384']]);
    // The CRC covers the whole header with its own field zeroed.
    const zeroed = Buffer.from(h);
    zeroed.fill(0, 31, 35);
    expect(h.readUInt32BE(31)).toBe(crc32cBits(zeroed));
  });

  it('TCP over IPv6, TLS 1.2, no SNI: no AUTHORITY TLV', () => {
    const t = { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' };
    const h = addon.testProxyHeader('v2-ssl', '[2001:db8::7]:40000', '[2001:db8::1]:4190', t);
    const a6 = (last: number) => Buffer.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), last]);
    const addrs = Buffer.concat([a6(7), a6(1), Buffer.from([40000 >> 8, 40000 & 255, 4190 >> 8, 4190 & 255])]);
    expect(h.toString('hex')).toBe(expected(0x21, addrs, t).toString('hex'));
    expect(tlvs(h, 52).map((x) => x.type)).toEqual([0x03, 0x20]);
  });

  it('mixed families: LOCAL with no addresses, the TLS TLVs still there (as HAProxy does)', () => {
    const h = addon.testProxyHeader('v2-ssl', '192.0.2.7:1', '[2001:db8::1]:993', T13);
    expect(h.toString('hex')).toBe(expected(0x00, Buffer.alloc(0), T13, 0x20).toString('hex'));
  });

  it('an SNI longer than 255 bytes is cut at 255 (a TLV never carries what SNI cannot)', () => {
    const h = addon.testProxyHeader('v2-ssl', '192.0.2.7:1', '198.51.100.1:2', { ...T13, sni: 'a'.repeat(300) });
    expect(tlvs(h, 28)[1]!.value.length).toBe(255);
  });

  it('plain v2 is unchanged: addresses only, no TLV', () => {
    const h = addon.testProxyHeader('v2', '192.0.2.7:51234', '198.51.100.1:993', T13);
    expect(h.length).toBe(28);
    expect(h.readUInt16BE(14)).toBe(12);
  });
});

describe('round trip through the reader (native/proxy_parse.cc)', () => {
  it('reads the addresses, consumes the TLVs, accepts the CRC', () => {
    for (const [c, l] of [['192.0.2.7:51234', '198.51.100.1:993'], ['[2001:db8::7]:40000', '[2001:db8::1]:993']] as const) {
      const h = addon.testProxyHeader('v2-ssl', c, l, T13);
      const after = Buffer.concat([h, Buffer.from([0x16, 3, 1])]);
      expect(addon.testProxyParse(after)).toEqual({ status: 'done', length: h.length, local: false, src: c, dst: l });
    }
    const local = addon.testProxyHeader('v2-ssl', '192.0.2.7:1', '[2001:db8::1]:993', T13);
    expect(addon.testProxyParse(local)).toMatchObject({ status: 'done', local: true, length: local.length });
  });

  it('refuses the header when any byte after the fixed part changes (the CRC no longer matches)', () => {
    const h = addon.testProxyHeader('v2-ssl', '192.0.2.7:51234', '198.51.100.1:993', T13);
    for (const at of [16, 27, 35, 40, h.length - 1]) {
      const bad = Buffer.from(h);
      bad[at]! ^= 0x01;
      expect(addon.testProxyParse(bad), `byte ${at}`).toMatchObject({ status: 'malformed', why: 'v2: CRC32C does not match' });
    }
  });

  it('skips TLVs it does not know and trailing bytes too short for a TLV, as before', () => {
    const body = Buffer.concat([Buffer.from([192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2]), tlv(0x05, Buffer.from('id')), Buffer.from([0x04, 0])]);
    const h = Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0, body.length]), body]);
    expect(addon.testProxyParse(h)).toMatchObject({ status: 'done', length: h.length, src: '192.0.2.7:1' });
  });
});

describe('v2-ssl on the wire', () => {
  let pki: Pki;
  beforeAll(() => {
    pki = makePki();
  });
  afterAll(() => pki?.cleanup());

  /** The header at the start of what the backend got, with its TLVs. */
  function parseSent(got: Buffer) {
    const len = 16 + got.readUInt16BE(14);
    const h = got.subarray(0, len);
    const list = tlvs(h, 28);
    const ssl = list.find((t) => t.type === 0x20)!.value;
    return { h, rest: got.subarray(len), list, client: ssl[0], subs: subTlvs(ssl) };
  }

  it('imaps: the negotiated version and cipher, the SNI, a CRC the reader accepts', async () => {
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], proxyProtocol: 'v2-ssl' }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example', maxVersion: 'TLSv1.2' });
      const cport = c.socket.localPort!;
      const cipher = (c.socket as tls.TLSSocket).getCipher().name;
      await c.waitData((d) => d.includes('backend ready'));
      c.socket.write('a1 NOOP\r\n');
      await waitFor(() => Buffer.concat(backend.received[0]!).includes('a1 NOOP'), 3000, 'command');
      const sent = parseSent(Buffer.concat(backend.received[0]!));
      expect(sent.rest.toString()).toBe('a1 NOOP\r\n');
      expect(addon.testProxyParse(sent.h)).toEqual({ status: 'done', length: sent.h.length, local: false, src: `127.0.0.1:${cport}`, dst: `127.0.0.1:${px.port}` });
      expect(sent.list.find((t) => t.type === 0x02)!.value.toString()).toBe('mail.a.example');
      expect(sent.client).toBe(0x01);
      expect(sent.subs.get(0x21)).toBe('TLSv1.2');
      expect(sent.subs.get(0x23)).toBe(cipher);
      c.socket.end();
      await within(c.closed, 3000, 'close');
      const [rec] = await px.waitRecords(1);
      expect(rec!.tlsVersion).toBe('TLSv1.2');
      expect(rec!.cipher).toBe(cipher);
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('IMAP STARTTLS (connect started in the servername callback): TLS 1.3 facts, after the handshake', async () => {
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address], proxyProtocol: 'v2-ssl', protocol: 'imap' }));
    try {
      const raw = net.connect(px.port, '127.0.0.1');
      let plain = '';
      raw.setEncoding('latin1');
      const onData = (d: string) => (plain += d);
      raw.on('data', onData);
      await waitFor(() => plain.includes('\r\n'), 3000, 'pre-TLS greeting');
      raw.write('s STARTTLS\r\n');
      await waitFor(() => /^s OK/m.test(plain), 3000, 'STARTTLS answer');
      raw.off('data', onData);
      const cport = raw.localPort!;
      const s = tls.connect({ socket: raw, ca: pki.ca.rootPem, servername: 'mail.b.example' });
      await within(new Promise((r) => s.once('secureConnect', r)), 5000, 'handshake');
      const cipher = s.getCipher().name;
      s.write('a1 NOOP\r\n');
      await waitFor(() => backend.received.length > 0 && Buffer.concat(backend.received[0]!).includes('a1 NOOP'), 3000, 'command');
      const sent = parseSent(Buffer.concat(backend.received[0]!));
      expect(addon.testProxyParse(sent.h)).toMatchObject({ status: 'done', src: `127.0.0.1:${cport}` });
      expect(sent.list.find((t) => t.type === 0x02)!.value.toString()).toBe('mail.b.example');
      expect(sent.subs.get(0x21)).toBe('TLSv1.3');
      expect(sent.subs.get(0x23)).toBe(cipher);
      expect(sent.rest.toString()).toBe('a1 NOOP\r\n');
      s.destroy();
    } finally {
      px.stop();
      await backend.close();
    }
  });
});
