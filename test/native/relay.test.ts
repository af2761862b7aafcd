// imaps relay: greeting, large transfers both ways with a slow reader, the
// connection record, half-closes both ways, unavailable backends and failover.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, deadAddress, fakeBackend, makePki, sleep, startProxy, waitFor, within } from './harness.js';
import type { Pki } from './harness.js';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const GREETING = '* OK [CAPABILITY IMAP4rev1] backend ready\r\n';

describe('relay', () => {
  it('moves 10 MiB each way intact with a slow reader, and records it', async () => {
    const SIZE = 10 * 1024 * 1024;
    const up = randomBytes(SIZE);
    const down = randomBytes(SIZE);
    // The backend greets, sends 10 MiB, reads 10 MiB, then closes.
    const backend = await fakeBackend(GREETING, (s) => {
      s.write(down);
      // Slow backend reader too: the proxy must hold back the client.
      s.pause();
      setTimeout(() => s.resume(), 300);
      let got = 0;
      s.on('data', (d) => {
        got += d.length;
        if (got >= SIZE) s.end();
      });
    });
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      const clientPort = c.socket.localPort;
      // Slow reader: pause for a while so the proxy has to hold back the backend.
      c.socket.pause();
      c.socket.write(up);
      await sleep(300);
      c.socket.resume();
      const { error } = await within(c.closed, 20_000, 'transfer');
      expect(error).toBeUndefined();
      const got = Buffer.from(c.data(), 'latin1');
      expect(got.length).toBe(GREETING.length + SIZE);
      expect(got.subarray(0, GREETING.length).toString()).toBe(GREETING);
      expect(sha(got.subarray(GREETING.length))).toBe(sha(down));
      expect(sha(Buffer.concat(backend.received[0]!))).toBe(sha(up));

      const [rec] = await px.waitRecords(1);
      expect(rec!.bytesIn).toBe(SIZE);
      expect(rec!.bytesOut).toBe(GREETING.length + SIZE);
      expect(rec!.sni).toBe('mail.a.example');
      expect(rec!.tlsVersion).toBe('TLSv1.3');
      expect(rec!.cipher).toMatch(/^TLS_/);
      expect(rec!.server).toBe(backend.address);
      expect(rec!.pool).toBe('pool');
      expect(rec!.serverLocal).toBe(backend.peers[0]);
      expect(rec!.client).toBe(`127.0.0.1:${clientPort}`);
      expect(rec!.reason).toBe('backend_closed');
      expect(rec!.protocol).toBe('imaps');
      expect(rec!.listener).toBe('l0');
      expect(rec!.durationMs).toBeGreaterThan(0);
      expect(rec!.handshakeMs).toBeGreaterThan(0);

      const st = px.proxy.stats();
      expect(st.workers).toBe(1);
      expect(st.active).toBe(0);
      const l = st.listeners[0]!;
      expect(l.accepted).toBe(1);
      expect(l.handshakes).toBe(1);
      expect(l.bytesIn).toBe(SIZE);
      expect(l.bytesOut).toBe(GREETING.length + SIZE);
      expect(l.active).toBe(0);
    } finally {
      px.stop();
      await backend.close();
    }
  }, 30_000);

  it('serves 500 concurrent connections on one worker, each with its own round trip', async () => {
    const backend = await fakeBackend(GREETING, (s) => s.on('data', (d) => s.write(d)));
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    const N = 500;
    try {
      const clients = await Promise.all(
        Array.from({ length: N }, () => connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.b.example' }, 20_000)),
      );
      await waitFor(() => px.proxy.stats().active === N, 10_000, `${N} active`);
      await Promise.all(
        clients.map(async (c, i) => {
          c.socket.write(`a${i} NOOP\r\n`);
          await c.waitData((d) => d.includes(`a${i} NOOP\r\n`), 15_000);
        }),
      );
      for (const c of clients) c.socket.end();
      await waitFor(() => px.proxy.stats().active === 0, 10_000, 'all closed');
      const recs = await px.waitRecords(N, 10_000);
      expect(recs.filter((r) => r.reason === 'client_closed')).toHaveLength(N);
      expect(px.proxy.stats().listeners[0]!.handshakes).toBe(N);
    } finally {
      px.stop();
      await backend.close();
    }
  }, 60_000);

  it('half-close: the client ends (close_notify) and still gets the whole reply', async () => {
    const reply = Buffer.alloc(300_000, 'r');
    const backend = await fakeBackend(
      GREETING,
      (s) => {
        // Answer only after the client's FIN, then close.
        s.on('end', () => {
          s.write(reply);
          s.end('* BYE done\r\n');
        });
      },
      { halfOpen: true },
    );
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.b.example' });
      await c.waitData((d) => d.includes('backend ready'));
      c.socket.end('a1 LOGOUT\r\n');
      const { error } = await within(c.closed, 5000, 'close');
      expect(error).toBeUndefined();
      expect(c.data()).toBe(GREETING + reply.toString() + '* BYE done\r\n');
      expect(Buffer.concat(backend.received[0]!).toString()).toBe('a1 LOGOUT\r\n');
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('client_closed');
      expect(rec!.bytesIn).toBe(11);
      expect(rec!.bytesOut).toBe(GREETING.length + reply.length + 12);
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('half-close the other way: the backend FIN becomes a close_notify, and the client may still send', async () => {
    let lateData = '';
    const backend = await fakeBackend(
      '',
      (s) => {
        // Says its last word, half-closes, and goes on reading.
        s.end('* BYE going away\r\n');
        s.on('data', (d) => (lateData += d.toString()));
      },
      { halfOpen: true },
    );
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const c = await connectTls(px.port, {
        ca: pki.ca.rootPem,
        servername: 'mail.b.example',
        ...({ allowHalfOpen: true } as object),
      });
      // The close_notify arrives as 'end'; our side is still open.
      await within(new Promise<void>((r) => c.socket.once('end', () => r())), 5000, 'close_notify');
      expect(c.data()).toBe('* BYE going away\r\n');
      c.socket.end('a2 late words\r\n');
      const { error } = await within(c.closed, 5000, 'close');
      expect(error).toBeUndefined();
      await waitFor(() => lateData === 'a2 late words\r\n', 5000, 'late data at the backend');
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('backend_closed');
      expect(rec!.bytesIn).toBe('a2 late words\r\n'.length);
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('the backend closing: the client gets everything, then the close', async () => {
    const backend = await fakeBackend(GREETING, (s) => {
      s.on('data', (d) => {
        if (d.toString().includes('LOGOUT')) s.end('* BYE bye\r\na1 OK LOGOUT completed\r\n');
      });
    });
    const px = startProxy(buildSnapshot(pki, { servers: [backend.address] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.b.example' });
      await c.waitData((d) => d.includes('backend ready'));
      c.socket.write('a1 LOGOUT\r\n');
      const { error } = await within(c.closed, 5000, 'close');
      expect(error).toBeUndefined();
      expect(c.data()).toBe(GREETING + '* BYE bye\r\na1 OK LOGOUT completed\r\n');
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('backend_closed');
    } finally {
      px.stop();
      await backend.close();
    }
  });
});

describe('PROXY protocol', () => {
  for (const version of ['v1', 'v2'] as const) {
    it(`sends a ${version} header with the real client first`, async () => {
      const backend = await fakeBackend(GREETING);
      const px = startProxy(buildSnapshot(pki, { servers: [backend.address], proxyProtocol: version }));
      try {
        const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
        const cport = c.socket.localPort!;
        await c.waitData((d) => d.includes('backend ready'));
        c.socket.write('a1 NOOP\r\n');
        await waitFor(() => Buffer.concat(backend.received[0]!).includes('a1 NOOP'), 3000, 'command');
        const got = Buffer.concat(backend.received[0]!);
        if (version === 'v1') {
          expect(got.toString()).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${cport} ${px.port}\r\na1 NOOP\r\n`);
        } else {
          const h = Buffer.concat([
            Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
            Buffer.from([0x21, 0x11, 0x00, 12, 127, 0, 0, 1, 127, 0, 0, 1, cport >> 8, cport & 255, px.port >> 8, px.port & 255]),
          ]);
          expect(got.subarray(0, h.length).toString('hex')).toBe(h.toString('hex'));
          expect(got.subarray(h.length).toString()).toBe('a1 NOOP\r\n');
        }
        c.socket.end();
        await within(c.closed, 3000, 'close');
        const [rec] = await px.waitRecords(1);
        expect(rec!.bytesIn).toBe(9);
      } finally {
        px.stop();
        await backend.close();
      }
    });
  }
});

describe('backend unavailable', () => {
  it('finishes the handshake, says * BYE [UNAVAILABLE] and closes', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [await deadAddress()] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      const { error } = await within(c.closed, 5000, 'close');
      expect(error).toBeUndefined();
      expect(c.data()).toMatch(/^\* BYE \[UNAVAILABLE\] .+\r\n$/);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('backend_unavailable');
      expect(rec!.server).toBe('');
      expect(rec!.pool).toBe('pool');
      expect(rec!.sni).toBe('mail.a.example');
      expect(px.proxy.stats().listeners[0]!.backendFailures).toBe(1);
    } finally {
      px.stop();
    }
  });

  it('a dead backend stays dead when the proxy listener gets the same port number (the CI flake)', async () => {
    // The kernel may give a port just closed to the next bind(0); here the proxy's
    // own listener takes it on purpose. A "dead" backend on that address would be
    // the proxy itself: its backend connection a silent client, closed only by the
    // handshake timeout, so the client would wait 5 s instead of getting the goodbye.
    const dead = await deadAddress();
    const px = startProxy(buildSnapshot(pki, { servers: [dead] }), 1, `127.0.0.1:${dead.split(':')[1]}`);
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await within(c.closed, 3000, 'close');
      expect(c.data()).toMatch(/^\* BYE \[UNAVAILABLE\]/);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('backend_unavailable');
      // Its backend connect was refused, not accepted by the proxy as a second client.
      expect(px.proxy.stats().listeners[0]!.accepted).toBe(1);
    } finally {
      px.stop();
    }
  });

  it('pop3s says -ERR [SYS/TEMP]', async () => {
    const px = startProxy(buildSnapshot(pki, { protocol: 'pop3s', servers: [await deadAddress()] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await within(c.closed, 5000, 'close');
      expect(c.data()).toMatch(/^-ERR \[SYS\/TEMP\] .+\r\n$/);
    } finally {
      px.stop();
    }
  });

  it('tries the next server of the pool when the first refuses', async () => {
    const dead = await deadAddress();
    const backend = await fakeBackend(GREETING);
    const px = startProxy(buildSnapshot(pki, { servers: [dead, backend.address] }));
    try {
      for (let i = 0; i < 3; i++) {
        const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
        await c.waitData((d) => d.includes('backend ready'));
        c.socket.end();
        await within(c.closed, 3000, 'close');
      }
      const recs = await px.waitRecords(3);
      for (const r of recs) {
        expect(r.server).toBe(backend.address);
        expect(r.reason).toBe('client_closed');
      }
      expect(backend.received.length).toBe(3);
    } finally {
      px.stop();
      await backend.close();
    }
  });

  it('with every server refusing, gives up with the goodbye', async () => {
    const px = startProxy(buildSnapshot(pki, { servers: [await deadAddress(), await deadAddress()] }));
    try {
      const c = await connectTls(px.port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
      await within(c.closed, 5000, 'close');
      expect(c.data()).toMatch(/^\* BYE \[UNAVAILABLE\]/);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('backend_unavailable');
      await waitFor(() => px.proxy.stats().active === 0, 2000, 'inactive');
    } finally {
      px.stop();
    }
  });
});
