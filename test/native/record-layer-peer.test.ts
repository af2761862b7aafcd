// What a hostile or unusual client can put in records after the handshake, sealed
// here with the client's own traffic secret (Node's 'keylog' event) and injected
// under a real TLS client: empty records and KeyUpdates without end (each costs the
// worker a decryption, a KeyUpdate a key schedule, none moves data), and the
// user_canceled alert. Where OpenSSL has a rule, mailfront's record layer and
// OpenSSL's (tls.recordLayer openssl) are run side by side.
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandLabel as expandHkdfLabel } from '../helpers/hkdf-label.js';
import { buildSnapshot, fakeBackend, makePki, startProxy, waitFor, within, wrapTls } from './harness.js';
import type { FakeBackend, Pki, TlsClient } from './harness.js';

let pki: Pki;
let echo: FakeBackend;
beforeAll(async () => {
  pki = makePki();
  echo = await fakeBackend('', (s) => s.on('data', (d) => s.write(d)));
});
afterAll(async () => {
  await echo?.close();
  pki?.cleanup();
});

const expandLabel = (secret: Buffer, label: string, len: number) => expandHkdfLabel('sha256', secret, label, len);

/** The client's side of TLS_AES_128_GCM_SHA256 from its CLIENT_TRAFFIC_SECRET_0, sequence 0 on. */
class ClientSealer {
  private secret: Buffer;
  private key!: Buffer;
  private iv!: Buffer;
  private seq = 0n;
  constructor(secret: Buffer) {
    this.secret = secret;
    this.setKey();
  }
  private setKey() {
    this.key = expandLabel(this.secret, 'key', 16);
    this.iv = expandLabel(this.secret, 'iv', 12);
    this.seq = 0n;
  }
  seal(type: number, content: Buffer): Buffer {
    const inner = Buffer.concat([content, Buffer.from([type])]);
    const header = Buffer.from([23, 3, 3, (inner.length + 16) >> 8, (inner.length + 16) & 0xff]);
    const nonce = Buffer.from(this.iv);
    for (let i = 0; i < 8; i++) nonce[11 - i]! ^= Number((this.seq >> BigInt(8 * i)) & 0xffn);
    this.seq++;
    const c = createCipheriv('aes-128-gcm', this.key, nonce);
    c.setAAD(header);
    const body = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
    return Buffer.concat([header, body]);
  }
  /** A KeyUpdate (update_not_requested), then the next key. */
  keyUpdate(): Buffer {
    const rec = this.seal(22, Buffer.from([24, 0, 0, 1, 0]));
    this.secret = expandLabel(this.secret, 'traffic upd', 32);
    this.setKey();
    return rec;
  }
}

interface Peer {
  c: TlsClient;
  sealer: ClientSealer;
  /** Raw bytes onto the TCP connection, behind the TLS client's back. */
  inject(b: Buffer): void;
  /** From now on the TLS client's own writes (its close_notify too) are dropped. */
  mute(): void;
  /** Bytes that came over TCP so far. */
  received(): number;
  /** The first bytes the server sent (its ServerHello, or HelloRetryRequest). */
  first(): Buffer;
}

async function connectPeer(port: number, extra: tls.ConnectionOptions = {}): Promise<Peer> {
  const tcp = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => tcp.once('connect', r).once('error', j));
  tcp.on('error', () => {});
  let muted = false;
  let received = 0;
  let first: Buffer | undefined;
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _e, cb) {
      if (!muted) tcp.write(chunk);
      cb();
    },
    final(cb) {
      tcp.end();
      cb();
    },
  });
  tcp.on('data', (d: Buffer) => {
    received += d.length;
    first ??= d;
    duplex.push(d);
  });
  tcp.on('end', () => duplex.push(null));
  tcp.on('close', () => duplex.destroy());
  const socket = tls.connect({ socket: duplex, ca: pki.ca.rootPem, servername: 'mail.a.example', ciphers: 'TLS_AES_128_GCM_SHA256', maxVersion: 'TLSv1.3', minVersion: 'TLSv1.3', ...extra });
  let secret: Buffer | undefined;
  socket.on('keylog', (line: Buffer) => {
    const m = /^CLIENT_TRAFFIC_SECRET_0 \S+ ([0-9a-fA-F]+)/.exec(line.toString());
    if (m) secret = Buffer.from(m[1]!, 'hex');
  });
  const c = wrapTls(socket);
  await within(new Promise<void>((r, j) => socket.once('secureConnect', r).once('error', j)), 5000, 'handshake');
  expect(secret).toBeDefined();
  return { c, sealer: new ClientSealer(secret!), inject: (b) => tcp.write(b), mute: () => (muted = true), received: () => received, first: () => first! };
}

const layers = ['mailfront', 'openssl'] as const;

describe('records a client may send without end', () => {
  for (const layer of layers) {
    it(`${layer}: 32 empty application data records in a row pass, and data after them`, async () => {
      const px = startProxy(buildSnapshot(pki, { servers: [echo.address], recordLayer: layer }));
      try {
        const p = await connectPeer(px.port);
        const recs = Array.from({ length: 32 }, () => p.sealer.seal(23, Buffer.alloc(0)));
        p.inject(Buffer.concat([...recs, p.sealer.seal(23, Buffer.from('after\n'))]));
        await p.c.waitData((s) => s === 'after\n');
        p.c.socket.destroy();
      } finally {
        px.stop();
      }
    });

    it(`${layer}: the 33rd empty record in a row ends the connection with unexpected_message, as OpenSSL's MAX_EMPTY_RECORDS`, async () => {
      const px = startProxy(buildSnapshot(pki, { servers: [echo.address], recordLayer: layer }));
      try {
        const p = await connectPeer(px.port);
        p.inject(Buffer.concat(Array.from({ length: 33 }, () => p.sealer.seal(23, Buffer.alloc(0)))));
        const { error } = await within(p.c.closed, 5000, 'close');
        expect(String(error)).toMatch(/alert number 10\b/);
        const [rec] = await px.waitRecords(1);
        expect(rec!.reason).toBe('client_error');
        if (layer === 'mailfront') expect(rec!.detail).toMatch(/^unexpected_message: /);
      } finally {
        px.stop();
      }
    });

    it(`${layer}: user_canceled is ignored (RFC 8446 6.1), data after it relays`, async () => {
      const px = startProxy(buildSnapshot(pki, { servers: [echo.address], recordLayer: layer }));
      try {
        const p = await connectPeer(px.port);
        p.inject(Buffer.concat([p.sealer.seal(21, Buffer.from([1, 90])), p.sealer.seal(23, Buffer.from('still\n'))]));
        await p.c.waitData((s) => s === 'still\n');
        p.c.socket.destroy();
      } finally {
        px.stop();
      }
    });
  }

  it('mailfront: 32 KeyUpdates in a row pass; the 33rd without application data between ends it (BoringSSL kMaxKeyUpdates)', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [echo.address] }));
    try {
      const p = await connectPeer(px.port);
      const updates = () => Buffer.concat(Array.from({ length: 32 }, () => p.sealer.keyUpdate()));
      p.inject(Buffer.concat([updates(), p.sealer.seal(23, Buffer.from('one\n'))]));
      await p.c.waitData((s) => s === 'one\n');
      p.inject(Buffer.concat([updates(), p.sealer.keyUpdate()]));
      const { error } = await within(p.c.closed, 5000, 'close');
      expect(String(error)).toMatch(/alert number 10\b/);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('client_error');
      expect(rec!.detail).toMatch(/^unexpected_message: /);
    } finally {
      px.stop();
    }
  });
});

// The random of a HelloRetryRequest (RFC 8446 4.1.3): SHA-256("HelloRetryRequest").
const HRR_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

describe('the hand-over', () => {
  it('after a HelloRetryRequest (its records in the clear are not counted): our records open at the right sequence, the client\'s too', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [echo.address] }));
    try {
      // A key share for P-384 only, which the server does not take: it asks again for P-256.
      const p = await connectPeer(px.port, { ecdhCurve: 'P-384:P-256' });
      expect(p.first().subarray(11, 43).equals(HRR_RANDOM)).toBe(true);
      p.c.socket.write('from the client\n');
      await p.c.waitData((s) => s === 'from the client\n');
      expect(px.proxy.stats().listeners[0]!.recordLayer).toBe(1);
      p.c.socket.destroy();
    } finally {
      px.stop();
    }
  });

  it('a client that negotiated max_fragment_length (RFC 6066; s_client -maxfraglen 512) gets records no longer than that', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [echo.address] }));
    try {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${px.port}`, '-servername', 'mail.a.example', '-CAfile', pki.rootPath, '-tls1_3', '-maxfraglen', '512'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      const kill = setTimeout(() => p.kill('SIGKILL'), 15_000);
      const closed = new Promise<number | null>((r) => p.on('close', r));
      try {
        await waitFor(() => /Verify return code: 0/.test(out), 5000, `handshake; have ${out}`);
        // Sent in 512-byte records, echoed by the backend in one piece: 2000 bytes to seal.
        const line = 'x'.repeat(2000);
        p.stdin.write(`${line}\n`);
        await waitFor(() => out.includes(line) || /error|overflow/i.test(out.split('Verify return code')[1] ?? ''), 5000, `the echo; have ${out.slice(-300)}`);
        expect(out.split('Verify return code')[1]).not.toMatch(/overflow|error/i);
        expect(out).toContain(line);
        p.stdin.end();
        await within(closed, 5000, 's_client exit');
      } finally {
        clearTimeout(kill);
        p.kill('SIGKILL');
      }
      expect(px.proxy.stats().listeners[0]!.recordLayerDeclined).toBe(1);
    } finally {
      px.stop();
    }
  }, 30_000);
});

describe('after our close_notify', () => {
  for (const layer of layers) {
    it(`${layer}: nothing more goes to the client, not even the shutdown goodbye (RFC 8446 6.1)`, async () => {
      const closer = await fakeBackend('', (s) => s.on('data', () => s.end()));
      const px = startProxy(buildSnapshot(pki, { servers: [closer.address], recordLayer: layer }));
      try {
        const p = await connectPeer(px.port);
        const ended = new Promise<void>((r) => p.c.socket.once('end', r));
        await new Promise<void>((r) => p.c.socket.write('a LOGOUT\r\n', () => r()));
        p.mute(); // the client lingers: no close_notify back, the TCP connection stays
        await within(ended, 5000, 'our close_notify');
        const before = p.received();
        px.stop(); // shutdown: a goodbye to every client still relaying
        await within(p.c.closed, 5000, 'close');
        expect(p.received() - before).toBe(0);
      } finally {
        px.stop();
        await closer.close();
      }
    });
  }
});
