// Backend server health belongs to the engine, keyed by address, not to a snapshot:
// a server marked down is still skipped after a reload (apply), and a server the
// configuration dropped is forgotten (back in a later snapshot, it starts healthy).
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectTls, deadAddress, fakeBackend, makePki, startProxy, within } from './harness.js';
import type { FakeBackend, Pki } from './harness.js';

// ServerHealth::kBackoffMs: how long a failed server is skipped.
const BACKOFF_MS = 2000;

let pki: Pki;
let healthy: FakeBackend;

beforeAll(async () => {
  pki = makePki();
  healthy = await fakeBackend('* OK healthy\r\n');
});

afterAll(async () => {
  await healthy?.close();
  pki?.cleanup();
});

async function greeting(port: number): Promise<string> {
  const c = await connectTls(port, { ca: pki.ca.rootPem, servername: 'mail.a.example' });
  const g = await c.waitData((d) => d.includes('\r\n'));
  c.socket.end();
  await within(c.closed, 3000, 'close');
  return g;
}

/** A server on <address> ("127.0.0.2:port") greeting with "* OK revived". */
async function revive(address: string): Promise<net.Server> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const s = net.createServer((c) => {
    c.on('error', () => {});
    c.end('* OK revived\r\n');
  });
  await new Promise<void>((r) => s.listen(port, host, r));
  return s;
}

/**
 * One round: the first server refuses, so it is marked down; it then comes back at once, and
 * what the next connections get (after reloads) shows whether the mark was kept. The marks
 * last BACKOFF_MS: a round that took longer proves nothing and is run again (bounded).
 */
async function round(steps: (ctx: { port: number; reload: (servers: string[]) => void; dead: string }) => Promise<string[]>): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const dead = await deadAddress();
    const px = startProxy(buildSnapshot(pki, { servers: [dead, healthy.address] }));
    let revived: net.Server | undefined;
    try {
      const started = Date.now();
      expect(await greeting(px.port)).toBe('* OK healthy\r\n'); // the first server refused: marked down
      revived = await revive(dead);
      const seen = await steps({ port: px.port, reload: (servers) => px.proxy.apply(buildSnapshot(pki, { servers, useA2: true })), dead });
      if (Date.now() - started < BACKOFF_MS * 0.75) return seen;
      if (attempt === 3) throw new Error(`three rounds each took longer than ${BACKOFF_MS * 0.75} ms: the machine is too busy for this test`);
    } finally {
      px.stop();
      if (revived) await new Promise((r) => revived!.close(r));
    }
  }
}

describe('server health across reloads', () => {
  it('a server marked down stays skipped after a reload that keeps it', async () => {
    const seen = await round(async ({ port, reload, dead }) => {
      reload([dead, healthy.address]);
      return [await greeting(port)];
    });
    // Without the reload's memory the revived first server would answer.
    expect(seen).toEqual(['* OK healthy\r\n']);
  });

  it('a server the configuration dropped is forgotten: back in a later snapshot, it is tried first again', async () => {
    const seen = await round(async ({ port, reload, dead }) => {
      reload([healthy.address]);
      reload([dead, healthy.address]);
      return [await greeting(port)];
    });
    expect(seen).toEqual(['* OK revived\r\n']);
  });
});
