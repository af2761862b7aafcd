// Backend health checks against small fake servers: greeting, refusal, silence, nothing listening.
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { checkServer, startHealthChecks } from '../../src/health.js';
import { parseConfig } from '../../src/config/load.js';

const servers: net.Server[] = [];
async function serve(onConn: (s: net.Socket) => void): Promise<string> {
  const srv = net.createServer(onConn);
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}
afterAll(() => servers.forEach((s) => s.close()));

describe('checkServer', () => {
  it('is up when the server greets, down with the reason otherwise', async () => {
    expect(await checkServer(await serve((s) => s.end('* OK ready\r\n')), 1000)).toBe('');
    expect(await checkServer(await serve((s) => s.end('"IMPLEMENTATION" "x"\r\nOK\r\n')), 1000)).toBe('');
    expect(await checkServer(await serve((s) => s.end('* BYE too many connections\r\n')), 1000)).toBe('refused: * BYE too many connections');
    expect(await checkServer(await serve((s) => s.end('-ERR [SYS/TEMP] busy\r\n')), 1000)).toMatch(/^refused: -ERR/);
    expect(await checkServer(await serve(() => {}), 200)).toBe('no greeting within 200 ms');
    expect(await checkServer(await serve((s) => s.end()), 1000)).toBe('closed before its greeting');
    const dead = await serve(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    expect(await checkServer(dead, 1000)).toMatch(/ECONNREFUSED/);
  });
});

describe('checkServer behind a PROXY-protocol pool', () => {
  /** Like a server with haproxy=yes: silent until a PROXY header, then greets (or says what it got). */
  const proxyServer = () =>
    serve((s) => {
      let got = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 15) s.end(got.subarray(0, 5).toString('latin1') === 'PROXY' || got[12] === 0x20 ? '* OK\r\n' : '* BYE no PROXY header\r\n');
      });
    });
  it.each(['v1', 'v2', 'v2-ssl'] as const)('%s: sends the LOCAL header first, so the server greets', async (pp) => {
    expect(await checkServer(await proxyServer(), 1000, pp)).toBe('');
  });
  it('off: sends nothing, and such a server never greets', async () => {
    expect(await checkServer(await proxyServer(), 200)).toBe('no greeting within 200 ms');
  });
});

describe('startHealthChecks', () => {
  it('reports each server once when it comes up, and again when it goes down', async () => {
    let greet = true;
    const up = await serve((s) => (greet ? s.end('* OK\r\n') : s.end('* BYE maintenance\r\n')));
    const config = parseConfig(
      `certificates: {pairs: [{cert: /x.pem, key: /x.key}]}
listeners: [{name: imaps, protocol: imaps, listen: ["127.0.0.1:0"], backend: pool}]
backends:
  pool: {servers: ["${up}"], health_check: 100ms}
  quiet: {servers: ["${up}"]}
`,
      '/tmp/health.yaml',
    );
    const changes: [string, string, boolean, string][] = [];
    const checks = startHealthChecks(config, (...c) => changes.push(c));
    try {
      await new Promise((r) => setTimeout(r, 350));
      expect(changes).toEqual([['pool', up, true, '']]);
      greet = false;
      await new Promise((r) => setTimeout(r, 350));
      expect(changes).toEqual([
        ['pool', up, true, ''],
        ['pool', up, false, 'refused: * BYE maintenance'],
      ]);
    } finally {
      checks.stop();
    }
  });
});
