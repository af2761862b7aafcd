// mailfront's own TLS 1.3 record layer (native/tls13_record.cc): after the
// handshake the SSL is freed and records are protected with the traffic keys.
// Real clients (Node's tls, openssl s_client) through the proxy, on the runtime
// that runs the suite (Node 20: OpenSSL 3.0, test:node24: OpenSSL 3.5): bulk
// both ways per suite, resumption, KeyUpdate, close_notify both ways, and what a
// misbehaving client gets (a tampered record, a CCS, an oversized record).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, fakeBackend, makePki, startProxy, waitFor, within, wrapTls } from './harness.js';
import type { FakeBackend, Pki, Running, SnapshotOptions, TlsClient } from './harness.js';

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

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function withProxy(o: Partial<SnapshotOptions>, fn: (px: Running) => Promise<void>, backend = echo): Promise<void> {
  const px = startProxy(buildSnapshot(pki, { servers: [backend.address], ...o }));
  try {
    await fn(px);
  } finally {
    px.stop();
  }
}

/**
 * A TLS client over a stream we hold: what it writes can be held and sent later in one
 * write (cork), changed (mangle), or joined by raw bytes of our own (inject); and we see
 * whether the TCP connection ended apart from the TLS stream.
 */
interface Wire {
  c: TlsClient;
  tcp: net.Socket;
  tcpEnded: () => boolean;
  cork(): void;
  uncork(): void;
  mangleNext(fn: (b: Buffer) => Buffer): void;
  inject(b: Buffer): void;
  /** On the client's end(): its close_notify goes, the TCP FIN does not. */
  keepTcpOpen(): void;
}

async function connectWire(port: number, extra: tls.ConnectionOptions = {}, beforeSecure?: (w: Wire) => void): Promise<Wire> {
  const tcp = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => tcp.once('connect', r).once('error', j));
  let corked = false;
  let held: Buffer[] = [];
  let mangle: ((b: Buffer) => Buffer) | undefined;
  let keepOpen = false;
  let ended = false;
  tcp.on('end', () => (ended = true));
  tcp.on('error', () => {});
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      let b = chunk;
      if (mangle) {
        b = mangle(b);
        mangle = undefined;
      }
      if (corked) held.push(b);
      else tcp.write(b);
      cb();
    },
    final(cb) {
      if (!keepOpen) tcp.end();
      cb();
    },
  });
  tcp.on('data', (d) => duplex.push(d));
  tcp.on('end', () => duplex.push(null));
  // A TLS socket over a stream of ours closes once that stream is destroyed.
  tcp.on('close', () => duplex.destroy());
  const w: Wire = {
    c: undefined as unknown as TlsClient,
    tcp,
    tcpEnded: () => ended,
    cork: () => (corked = true),
    uncork() {
      corked = false;
      if (held.length) tcp.write(Buffer.concat(held));
      held = [];
    },
    mangleNext: (fn) => (mangle = fn),
    inject: (b) => tcp.write(b),
    keepTcpOpen: () => (keepOpen = true),
  };
  const socket = tls.connect({ socket: duplex, ca: pki.ca.rootPem, servername: 'mail.a.example', ...extra });
  w.c = wrapTls(socket);
  beforeSecure?.(w);
  await within(new Promise<void>((r, j) => socket.once('secureConnect', r).once('error', j)), 5000, 'handshake');
  return w;
}

/** Writes <up> and reads the echo back; the sha of what came back. */
async function roundTrip(c: TlsClient, up: Buffer, before = 0): Promise<void> {
  c.socket.write(up);
  await c.waitData((s) => s.length >= before + up.length, 15_000);
  expect(sha(Buffer.from(c.data(), 'latin1').subarray(before))).toBe(sha(up));
}

function counters(px: Running) {
  const l = px.proxy.stats().listeners[0]!;
  return { mailfront: l.recordLayer, openssl: l.recordLayerDeclined };
}

describe('record layer', () => {
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    it(`${suite}: 2 MiB each way in full-size records, then the client's close_notify`, async () => {
      await withProxy({}, async (px) => {
        const w = await connectWire(px.port, { ciphers: suite });
        await roundTrip(w.c, randomBytes(2 * 1024 * 1024));
        w.c.socket.end();
        await within(w.c.closed, 5000, 'close');
        const [rec] = await px.waitRecords(1);
        expect(rec!.cipher).toBe(suite);
        expect(rec!.tlsVersion).toBe('TLSv1.3');
        expect(rec!.reason).toBe('client_closed');
        expect(rec!.bytesIn).toBe(2 * 1024 * 1024);
        expect(rec!.bytesOut).toBe(2 * 1024 * 1024);
        expect(counters(px)).toEqual({ mailfront: 1, openssl: 0 });
      });
    }, 30_000);
  }

  it('a resumed handshake (which sends a ticket too) hands over and relays', async () => {
    await withProxy({}, async (px) => {
      const first = await connectWire(px.port);
      await roundTrip(first.c, Buffer.from('first\r\n'));
      await waitFor(() => first.c.session() !== undefined, 5000, 'a ticket');
      first.c.socket.end();
      const again = await connectWire(px.port, { session: first.c.session() });
      expect(again.c.socket.isSessionReused()).toBe(true);
      await roundTrip(again.c, randomBytes(300_000));
      again.c.socket.end();
      const recs = await px.waitRecords(2);
      expect(recs.map((r) => r.resumed).sort()).toEqual([false, true]);
      expect(counters(px)).toEqual({ mailfront: 2, openssl: 0 });
    });
  }, 20_000);

  it('a client whose first data rides in the same write as its Finished: read sequence 0 from the bytes read ahead', async () => {
    await withProxy({}, async (px) => {
      const pipelined = await new Promise<string>((resolve, reject) => {
        const tcp = net.connect({ host: '127.0.0.1', port: px.port });
        let corked = false;
        let held: Buffer[] = [];
        const duplex = new Duplex({
          read() {},
          write(chunk: Buffer, _e, cb) {
            if (corked) held.push(chunk);
            else tcp.write(chunk);
            cb();
          },
        });
        tcp.on('data', (d) => {
          corked = true; // everything after the ClientHello waits
          duplex.push(d);
        });
        tcp.on('error', reject);
        const s = tls.connect({ socket: duplex, ca: pki.ca.rootPem, servername: 'mail.a.example' });
        s.on('error', reject);
        let got = '';
        s.on('data', (d) => {
          got += d;
          if (got.includes('pipelined\n')) {
            s.destroy();
            tcp.destroy();
            resolve(got);
          }
        });
        // The client's Finished waits in held; its data joins it, and both leave in one write.
        s.once('secureConnect', () => {
          s.write('pipelined\n', () => {
            tcp.write(Buffer.concat(held));
            held = [];
            corked = false;
          });
        });
      });
      expect(pipelined).toBe('pipelined\n');
      await px.waitRecords(1);
      expect(counters(px)).toEqual({ mailfront: 1, openssl: 0 });
    });
  }, 20_000);

  it('the backend closes: the client gets our close_notify before any FIN', async () => {
    const closer = await fakeBackend('* OK hello\r\n', (s) => s.on('data', () => s.end()));
    try {
      await withProxy(
        {},
        async (px) => {
          const w = await connectWire(px.port);
          const ended = new Promise<void>((r) => w.c.socket.once('end', r));
          w.c.socket.write('a LOGOUT\r\n');
          await within(ended, 5000, 'close_notify');
          expect(w.tcpEnded()).toBe(false); // the TLS stream ended, the TCP connection did not
          w.tcp.destroy();
          const [rec] = await px.waitRecords(1);
          expect(rec!.reason).toBe('backend_closed');
          expect(counters(px)).toEqual({ mailfront: 1, openssl: 0 });
        },
        closer,
      );
    } finally {
      await closer.close();
    }
  });

  it("the client's close_notify alone (no FIN) ends its side: the backend gets a FIN", async () => {
    let backendEnded = false;
    const sink = await fakeBackend('', (s) => s.on('end', () => (backendEnded = true)), { halfOpen: true });
    try {
      await withProxy(
        {},
        async (px) => {
          const w = await connectWire(px.port);
          await waitFor(() => sink.sockets.length === 1, 5000, 'backend connect');
          w.keepTcpOpen();
          w.c.socket.end();
          await waitFor(() => backendEnded, 5000, 'the FIN to the backend');
          expect(w.tcpEnded()).toBe(false);
          sink.sockets[0]!.end();
          const [rec] = await px.waitRecords(1);
          expect(rec!.reason).toBe('client_closed');
          w.tcp.destroy();
        },
        sink,
      );
    } finally {
      await sink.close();
    }
  });

  const misbehaving: [string, (w: Wire) => void, number, RegExp][] = [
    ['a tampered record', (w) => { w.mangleNext((b) => { const m = Buffer.from(b); m[m.length - 1]! ^= 1; return m; }); w.c.socket.write('x'); }, 20, /^bad_record_mac/],
    ['a ChangeCipherSpec after the handshake', (w) => w.inject(Buffer.from([20, 3, 3, 0, 1, 1])), 10, /^unexpected_message/],
    ['a record over 2^14 + 256 bytes', (w) => w.inject(Buffer.from([23, 3, 3, 0x41, 0x01])), 22, /^record_overflow/],
  ];
  for (const [what, act, alert, detail] of misbehaving) {
    it(`${what}: our alert ${alert}, encrypted, and the reason in the record`, async () => {
      await withProxy({}, async (px) => {
        const w = await connectWire(px.port);
        await roundTrip(w.c, Buffer.from('before\r\n'));
        act(w);
        const { error } = await within(w.c.closed, 5000, 'close');
        expect(String(error)).toMatch(new RegExp(`alert number ${alert}\\b`));
        const [rec] = await px.waitRecords(1);
        expect(rec!.reason).toBe('client_error');
        expect(rec!.detail).toMatch(detail);
      });
    });
  }

  it('TLS 1.2 stays on OpenSSL to the end', async () => {
    await withProxy({}, async (px) => {
      const w = await connectWire(px.port, { maxVersion: 'TLSv1.2' });
      await roundTrip(w.c, randomBytes(500_000));
      w.c.socket.end();
      const [rec] = await px.waitRecords(1);
      expect(rec!.tlsVersion).toBe('TLSv1.2');
      expect(counters(px)).toEqual({ mailfront: 0, openssl: 1 });
    });
  }, 20_000);

  it('tls.recordLayer openssl: OpenSSL carries TLS 1.3 to the end, nothing counted', async () => {
    await withProxy({ recordLayer: 'openssl' }, async (px) => {
      const w = await connectWire(px.port);
      await roundTrip(w.c, randomBytes(500_000));
      w.c.socket.end();
      const [rec] = await px.waitRecords(1);
      expect(rec!.tlsVersion).toBe('TLSv1.3');
      expect(counters(px)).toEqual({ mailfront: 0, openssl: 0 });
    });
  }, 20_000);

  it('openssl s_client: KeyUpdate (k) and KeyUpdate with update_requested (K), the relay goes on both ways after each', async () => {
    await withProxy({}, async (px) => {
      const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${px.port}`, '-servername', 'mail.a.example', '-CAfile', pki.rootPath, '-tls1_3'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (out += d));
      const kill = setTimeout(() => p.kill('SIGKILL'), 15_000);
      const closed = new Promise<number | null>((r) => p.on('close', r));
      try {
        const step = async (line: string, expectOut: RegExp) => {
          p.stdin.write(line);
          await waitFor(() => expectOut.test(out), 5000, `${JSON.stringify(line)}: ${expectOut}; have ${out.slice(-400)}`);
        };
        await waitFor(() => /Verify return code: 0/.test(out), 5000, `handshake; have ${out}`);
        await step('one\n', /^one$/m);
        await step('k\n', /KEYUPDATE/);
        await step('two\n', /^two$/m);
        await step('K\n', /KEYUPDATE[\s\S]*KEYUPDATE/);
        await step('three\n', /^three$/m);
        await step('K\n', /(KEYUPDATE[\s\S]*){3}/);
        await step('four\n', /^four$/m);
        p.stdin.end();
        await within(closed, 5000, 's_client exit');
      } finally {
        clearTimeout(kill);
        p.kill('SIGKILL');
      }
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('client_closed');
      expect(rec!.bytesIn).toBe('one\ntwo\nthree\nfour\n'.length);
      expect(rec!.bytesOut).toBe(rec!.bytesIn);
      expect(counters(px)).toEqual({ mailfront: 1, openssl: 0 });
    });
  }, 30_000);
});
