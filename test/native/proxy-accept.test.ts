// PROXY protocol ACCEPTED on a listener (accept_proxy): the reader's table
// (testProxyParse), trusted_proxies matching (testCidrMatch), and the live
// path: the header's client replaces the peer in the record, in the PROXY
// header to the backend and for the per-client limit; untrusted senders,
// malformed and unfinished headers are closed at once.
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTestingAddon } from '../helpers/testing-addon.js';
import { loadAddon, type NativeSnapshot } from '../../src/native.js';
import { buildSnapshot, connectRaw, fakeBackend, makePki, startProxy, within, wrapTls } from './harness.js';
import type { Pki, SnapshotOptions } from './harness.js';

const addon = loadTestingAddon();
const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(cmd: number, fam: number, body: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([SIG, Buffer.from([0x20 | cmd, fam]), len, body]);
}
const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
const port = (p: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(p);
  return b;
};
const v2tcp4 = (src: string, dst: string, sp: number, dp: number, tlv = Buffer.alloc(0)) =>
  v2(1, 0x11, Buffer.concat([ip4(src), ip4(dst), port(sp), port(dp), tlv]));
const v6bytes = (last: number) => {
  const b = Buffer.alloc(16);
  b[0] = 0x20;
  b[1] = 0x01;
  b[2] = 0x0d;
  b[3] = 0xb8;
  b[15] = last;
  return b;
};

describe('parse_proxy_header (table)', () => {
  const cases: [string, Buffer, Record<string, unknown>][] = [
    ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 51234 993\r\n'), { status: 'done', length: 45, local: false, src: '192.0.2.7:51234', dst: '198.51.100.1:993' }],
    ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n'), { status: 'done', src: '[2001:db8::7]:65535', dst: '[2001:db8::1]:0' }],
    ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), { status: 'done', length: 15, local: true }],
    ['v1 UNKNOWN with ignored fields', Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2 3 4\r\n'), { status: 'done', local: true }],
    ['v1 followed by a ClientHello', Buffer.concat([Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), Buffer.from([0x16, 3, 1])]), { status: 'done', length: 32 }],
    ['v1 prefix only', Buffer.from('PRO'), { status: 'more' }],
    ['v1 without CRLF yet', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2'), { status: 'more' }],
    ['v1 CR at the end', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r'), { status: 'more' }],
    ['v1 CR without LF', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), { status: 'malformed' }],
    ['v1 bare LF', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nX'), { status: 'malformed' }],
    ['v1 108 bytes without CRLF', Buffer.from(`PROXY TCP6 ${'a'.repeat(102)}`), { status: 'malformed', why: 'v1: no CRLF within 107 bytes' }],
    // Found by fuzz_proxy_parse: a CR at byte 107 made a 108-byte header.
    ['v1 CRLF ending at byte 108', Buffer.from(`PROXY UNKNOWN ${'a'.repeat(92)}\r\n`), { status: 'malformed', why: 'v1: no CRLF within 107 bytes' }],
    ['v1 CRLF ending at byte 107', Buffer.from(`PROXY UNKNOWN ${'a'.repeat(91)}\r\n`), { status: 'done', local: true, length: 107 }],
    ['v1 lowercase', Buffer.from('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), { status: 'malformed' }],
    ['v1 TCP5', Buffer.from('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'), { status: 'malformed' }],
    ['v1 v6 address under TCP4', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), { status: 'malformed' }],
    ['v1 double space', Buffer.from('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), { status: 'malformed' }],
    ['v1 port 65536', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), { status: 'malformed' }],
    ['v1 port with sign', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n'), { status: 'malformed' }],
    ['v1 missing field', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), { status: 'malformed' }],
    ['v1 extra field', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), { status: 'malformed' }],
    ['v1 NUL in line', Buffer.from('PROXY TCP4 1.2.3.4\0'), { status: 'malformed' }],
    ['v2 TCP4', v2tcp4('192.0.2.7', '198.51.100.1', 51234, 993), { status: 'done', length: 28, local: false, src: '192.0.2.7:51234', dst: '198.51.100.1:993' }],
    ['v2 TCP4 with TLVs', v2tcp4('192.0.2.7', '198.51.100.1', 1, 2, Buffer.from([0x04, 0, 3, 1, 2, 3])), { status: 'done', length: 34, src: '192.0.2.7:1' }],
    ['v2 TCP6', v2(1, 0x21, Buffer.concat([v6bytes(7), v6bytes(1), port(40000), port(993)])), { status: 'done', length: 52, src: '[2001:db8::7]:40000', dst: '[2001:db8::1]:993' }],
    ['v2 LOCAL', v2(0, 0x00, Buffer.alloc(0)), { status: 'done', length: 16, local: true }],
    ['v2 LOCAL with addresses', v2(0, 0x11, Buffer.alloc(12)), { status: 'done', length: 28, local: true }],
    ['v2 PROXY UNSPEC', v2(1, 0x00, Buffer.alloc(0)), { status: 'done', local: true }],
    ['v2 PROXY unix', v2(1, 0x31, Buffer.alloc(216)), { status: 'done', length: 232, local: true }],
    ['v2 signature only', SIG, { status: 'more' }],
    ['v2 partial signature', SIG.subarray(0, 5), { status: 'more' }],
    ['v2 body still coming', v2tcp4('1.2.3.4', '5.6.7.8', 1, 2).subarray(0, 20), { status: 'more' }],
    ['v2 bad signature', Buffer.concat([SIG.subarray(0, 11), Buffer.from('X')]), { status: 'malformed' }],
    ['v2 version 1', Buffer.concat([SIG, Buffer.from([0x11, 0x11, 0, 12]), Buffer.alloc(12)]), { status: 'malformed' }],
    ['v2 command 2', Buffer.concat([SIG, Buffer.from([0x22, 0x11, 0, 12]), Buffer.alloc(12)]), { status: 'malformed' }],
    ['v2 UDP', v2(1, 0x12, Buffer.alloc(12)), { status: 'malformed' }],
    ['v2 family 4', v2(1, 0x41, Buffer.alloc(12)), { status: 'malformed' }],
    ['v2 TCP4 too short', v2(1, 0x11, Buffer.alloc(8)), { status: 'malformed' }],
    ['v2 TCP6 too short', v2(1, 0x21, Buffer.alloc(12)), { status: 'malformed' }],
    ['v2 longer than 536', Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x02, 0x09])]), { status: 'malformed', why: 'v2: header longer than 536 bytes' }],
    ['v2 exactly 536', v2(1, 0x11, Buffer.alloc(520)), { status: 'done', length: 536 }],
    ['a ClientHello without a header', Buffer.from([0x16, 3, 1, 0, 200, 1]), { status: 'malformed', why: 'not a PROXY header' }],
    ['an IMAP command without a header', Buffer.from('a CAPABILITY\r\n'), { status: 'malformed' }],
    ['nothing yet', Buffer.alloc(0), { status: 'more' }],
  ];
  it.each(cases)('%s', (_name, input, want) => {
    expect(addon.testProxyParse(input)).toMatchObject(want);
  });

  it('never asks for more past the bounds (every prefix of a long junk stream decides within 536 bytes)', () => {
    for (const junk of [Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0x02, 0x08]), Buffer.alloc(600, 0x41)]), Buffer.from(`PROXY ${'1'.repeat(200)}`)]) {
      expect(addon.testProxyParse(junk.subarray(0, 536)).status).not.toBe('more');
    }
  });
});

describe("the PROXY header of mailfront's own connections (health checks, the sieve probe)", () => {
  it.each([
    ['v1', Buffer.from('PROXY UNKNOWN\r\n')],
    ['v2', v2(0, 0x00, Buffer.alloc(0))],
    ['v2-ssl', v2(0, 0x00, Buffer.alloc(0))], // no TLS on a check: plain LOCAL, no SSL TLV
  ] as const)('%s: the LOCAL form, which our own reader takes as local', (version, want) => {
    const h = loadAddon().localProxyHeader(version);
    expect(h).toEqual(want);
    expect(addon.testProxyParse(h!)).toMatchObject({ status: 'done', length: want.length, local: true });
  });
  it('off: none; anything else is a TypeError', () => {
    expect(loadAddon().localProxyHeader('off')).toBeNull();
    expect(() => loadAddon().localProxyHeader('v3' as 'v1')).toThrow(TypeError);
  });
});

describe('trusted_proxies matching', () => {
  const m = (cidrs: string[], a: string) => addon.testCidrMatch(cidrs, a);
  it('matches v4 and v6 blocks, bare addresses and v4-mapped peers', () => {
    expect(m(['10.0.0.0/8'], '10.200.1.2:1')).toBe(true);
    expect(m(['10.0.0.0/8'], '11.0.0.1:1')).toBe(false);
    expect(m(['127.0.0.1/32'], '127.0.0.1:5')).toBe(true);
    expect(m(['127.0.0.1/32'], '127.0.0.2:5')).toBe(false);
    expect(m(['127.0.0.1'], '127.0.0.1:5')).toBe(true);
    expect(m(['192.168.4.0/22'], '192.168.7.255:1')).toBe(true);
    expect(m(['192.168.4.0/22'], '192.168.8.0:1')).toBe(false);
    expect(m(['::1/128'], '[::1]:1')).toBe(true);
    expect(m(['::1/128'], '127.0.0.1:1')).toBe(false);
    expect(m(['2001:db8::/32'], '[2001:db8:ffff::1]:1')).toBe(true);
    expect(m(['2001:db8::/32'], '[2001:db9::1]:1')).toBe(false);
    expect(m(['10.0.0.0/8'], '[::ffff:10.1.2.3]:1')).toBe(true);
    expect(m(['0.0.0.0/0'], '203.0.113.9:1')).toBe(true);
    expect(m([], '127.0.0.1:1')).toBe(false);
    expect(() => m(['10.0.0.0/33'], '10.0.0.1:1')).toThrow();
  });
});

// ---- live ----

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

function proxiedSnapshot(o: SnapshotOptions & { trusted?: string[] }): NativeSnapshot {
  const s = buildSnapshot(pki, o);
  s.listeners[0]!.acceptProxy = true;
  s.listeners[0]!.trustedProxies = o.trusted ?? ['127.0.0.1/32'];
  return s;
}

/** A raw socket that sends <header> first, then a TLS client over the same socket. */
async function tlsAfterHeader(proxyPort: number, header: Buffer, servername = 'mail.a.example') {
  const raw = net.connect({ host: '127.0.0.1', port: proxyPort });
  raw.on('error', () => {});
  await new Promise<void>((r, j) => {
    raw.once('connect', () => r());
    raw.once('error', j);
  });
  raw.write(header);
  const socket = tls.connect({ socket: raw, servername, ca: pki.ca.rootPem, checkServerIdentity: () => undefined });
  const c = wrapTls(socket);
  await within(new Promise<void>((r, j) => {
    socket.once('secureConnect', () => r());
    socket.once('error', j);
  }), 5000, 'TLS after a PROXY header');
  return { c, localPort: raw.localPort! };
}

/** The PROXY v2 TCP4 header a backend received: src and dst "ip:port". */
function readV2(b: Buffer): { src: string; dst: string; rest: Buffer } {
  expect(b.subarray(0, 12).equals(SIG)).toBe(true);
  expect(b[12]).toBe(0x21);
  expect(b[13]).toBe(0x11);
  const ip = (o: number) => [...b.subarray(o, o + 4)].join('.');
  return { src: `${ip(16)}:${b.readUInt16BE(24)}`, dst: `${ip(20)}:${b.readUInt16BE(26)}`, rest: b.subarray(28) };
}

const GREETING = '* OK backend ready\r\n';

describe('accept_proxy (live)', () => {
  it('v2 header: the named client reaches the record and the backend header; the ClientHello after it is untouched', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address], proxyProtocol: 'v2' }));
    try {
      const { c } = await tlsAfterHeader(px.port, v2tcp4('203.0.113.7', '198.51.100.1', 40001, 993));
      await c.waitData((d) => d.includes('backend ready'));
      c.socket.write('a1 NOOP\r\n');
      await within(new Promise<void>((r) => { const t = setInterval(() => { if (Buffer.concat(be.received[0] ?? []).includes('a1 NOOP')) { clearInterval(t); r(); } }, 10); }), 5000, 'backend data');
      const h = readV2(Buffer.concat(be.received[0]!));
      expect(h.src).toBe('203.0.113.7:40001');
      expect(h.dst).toBe('198.51.100.1:993');
      expect(h.rest.toString()).toBe('a1 NOOP\r\n');
      c.socket.end();
      const [r] = await px.waitRecords(1);
      expect(r!.client).toBe('203.0.113.7:40001');
      expect(r!.sni).toBe('mail.a.example');
      expect(r!.reason).toBe('client_closed');
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('v1 header on a STARTTLS listener: the greeting comes after the header; LOCAL keeps the socket address', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address], protocol: 'imap' }));
    try {
      const a = await connectRaw(px.port);
      // The header and the first command in one segment: the command must survive.
      a.socket.write('PROXY TCP4 192.0.2.9 192.0.2.1 5555 143\r\na CAPABILITY\r\n');
      await a.waitData((d) => d.includes('a OK'));
      expect(a.data()).toMatch(/^\* OK /);
      a.socket.write('b LOGOUT\r\n');
      await within(a.closed, 5000, 'logout');
      const b = await connectRaw(px.port);
      b.socket.write(v2(0, 0, Buffer.alloc(0)));
      await b.waitData((d) => d.startsWith('* OK'));
      b.socket.end('c LOGOUT\r\n');
      await within(b.closed, 5000, 'logout');
      const recs = await px.waitRecords(2);
      expect(recs.map((r) => r.client.split(':')[0]).sort()).toEqual(['127.0.0.1', '192.0.2.9']);
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('refuses a sender outside trusted_proxies unread, and counts it', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address], trusted: ['10.0.0.0/8', '::1/128'] }));
    try {
      const a = await connectRaw(px.port);
      a.socket.write(v2tcp4('203.0.113.7', '198.51.100.1', 1, 993));
      await within(a.closed, 5000, 'refused');
      const [r] = await px.waitRecords(1);
      expect(r!.reason).toBe('proxy_header_refused');
      expect(r!.client).toMatch(/^127\.0\.0\.1:/);
      expect(px.proxy.stats().listeners[0]!.proxyRefused).toBe(1);
      expect(be.received.length).toBe(0);
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('closes a malformed header at once, and a ClientHello sent without one', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address] }));
    try {
      const a = await connectRaw(px.port);
      a.socket.write('PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n');
      await within(a.closed, 5000, 'malformed');
      const direct = tls.connect({ host: '127.0.0.1', port: px.port, servername: 'mail.a.example', ca: pki.ca.rootPem });
      const d = wrapTls(direct);
      const { error } = await within(d.closed, 5000, 'direct TLS');
      expect(error).toBeDefined();
      const recs = await px.waitRecords(2);
      expect(recs.map((r) => r.reason)).toEqual(['proxy_header_malformed', 'proxy_header_malformed']);
      expect(recs.map((r) => r.detail).sort()).toEqual(['not a PROXY header', 'v1: bad address']);
      expect(px.proxy.stats().listeners[0]!.proxyMalformed).toBe(2);
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('a header trickling in byte by byte is read whole; an unfinished one times out with the handshake timeout', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address], timeouts: { handshakeMs: 600 } }));
    try {
      const raw = net.connect({ host: '127.0.0.1', port: px.port });
      raw.on('error', () => {});
      await new Promise<void>((r) => raw.once('connect', () => r()));
      raw.setNoDelay(true);
      const h = v2tcp4('198.51.100.20', '198.51.100.1', 7, 993);
      for (const byte of h) {
        raw.write(Buffer.from([byte]));
        await new Promise((r) => setTimeout(r, 5));
      }
      const s = tls.connect({ socket: raw, servername: 'mail.a.example', ca: pki.ca.rootPem });
      const c = wrapTls(s);
      await c.waitData((d) => d.includes('backend ready'));
      s.end();
      const stalled = await connectRaw(px.port);
      stalled.socket.write('PROXY TCP4 1.2.3.4');
      await within(stalled.closed, 3000, 'header timeout');
      const recs = await px.waitRecords(2);
      const byReason = Object.fromEntries(recs.map((r) => [r.reason, r]));
      expect(byReason.client_closed!.client).toBe('198.51.100.20:7');
      expect(byReason.proxy_header_timeout).toBeDefined();
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('per_client counts the client the header names, not the balancer', async () => {
    const be = await fakeBackend(GREETING);
    const px = startProxy(proxiedSnapshot({ servers: [be.address], limits: { perClient: 1 } }));
    try {
      const one = await tlsAfterHeader(px.port, v2tcp4('192.0.2.1', '192.0.2.100', 1000, 993));
      const two = await tlsAfterHeader(px.port, v2tcp4('192.0.2.2', '192.0.2.100', 1000, 993));
      await one.c.waitData((d) => d.includes('backend ready'));
      await two.c.waitData((d) => d.includes('backend ready'));
      // The same client again, through the same balancer: over its limit.
      const raw = await connectRaw(px.port);
      raw.socket.write(v2tcp4('192.0.2.1', '192.0.2.100', 1001, 993));
      await within(raw.closed, 5000, 'per-client refusal');
      const [r] = await px.waitRecords(1);
      expect(r!.reason).toBe('per_client_limit');
      expect(r!.client).toBe('192.0.2.1:1001');
      expect(px.proxy.stats().listeners[0]!.rejectedPerClient).toBe(1);
      one.c.socket.end();
      two.c.socket.end();
      await px.waitRecords(3);
      // Slots are released: the client may come back.
      const again = await tlsAfterHeader(px.port, v2tcp4('192.0.2.1', '192.0.2.100', 1002, 993));
      await again.c.waitData((d) => d.includes('backend ready'));
      again.c.socket.end();
      await px.waitRecords(4);
    } finally {
      px.stop();
      await be.close();
    }
  });

  it('refuses a snapshot with acceptProxy and no trustedProxies, or a bad block', () => {
    const s = buildSnapshot(pki, { servers: ['127.0.0.1:1'] });
    s.listeners[0]!.acceptProxy = true;
    const px = startProxy(buildSnapshot(pki, { servers: ['127.0.0.1:1'] }));
    try {
      expect(() => px.proxy.apply(s)).toThrow(/acceptProxy without trustedProxies/);
      s.listeners[0]!.trustedProxies = ['10.0.0.0/40'];
      expect(() => px.proxy.apply(s)).toThrow(/trustedProxies/);
    } finally {
      px.stop();
    }
  });
});
