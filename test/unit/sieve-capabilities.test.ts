import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_SIEVE_CAPABILITIES,
  preTlsSieveCapabilities,
  probeSieveCapabilities,
  probeSieveListeners,
  splitGreeting,
} from '../../src/frontends/sieve-capabilities.js';
import { parseConfig } from '../../src/config/load.js';

const CYRUS_36 =
  '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n' +
  '"SASL" "PLAIN LOGIN"\r\n' +
  '"SIEVE" "comparator-i;ascii-numeric fileinto reject vacation vacation-seconds imapflags notify envelope relational regex subaddress copy"\r\n' +
  '"NOTIFY" "mailto"\r\n' +
  '"STARTTLS"\r\n' +
  '"UNAUTHENTICATE"\r\n' +
  '"VERSION" "1.0"\r\n' +
  'OK\r\n';

describe('preTlsSieveCapabilities', () => {
  const table: [string, string, string][] = [
    [
      'Cyrus 3.6 greeting (with STARTTLS and OK line)',
      CYRUS_36,
      '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n' +
        '"SASL" ""\r\n' +
        '"SIEVE" "comparator-i;ascii-numeric fileinto reject vacation vacation-seconds imapflags notify envelope relational regex subaddress copy"\r\n' +
        '"NOTIFY" "mailto"\r\n' +
        '"STARTTLS"\r\n' +
        '"UNAUTHENTICATE"\r\n' +
        '"VERSION" "1.0"\r\n',
    ],
    [
      'plaintext backend without STARTTLS: added before VERSION',
      '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n"SASL" "PLAIN"\r\n"SIEVE" "fileinto"\r\n"VERSION" "1.0"\r\nOK\r\n',
      '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n"SASL" ""\r\n"SIEVE" "fileinto"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n',
    ],
    [
      'no SASL line: an empty one after IMPLEMENTATION; no VERSION: STARTTLS last',
      '"IMPLEMENTATION" "x"\n"SIEVE" "fileinto"\n',
      '"IMPLEMENTATION" "x"\r\n"SASL" ""\r\n"SIEVE" "fileinto"\r\n"STARTTLS"\r\n',
    ],
    [
      'case-insensitive names, duplicate STARTTLS/SASL dropped, OK with text dropped',
      '"implementation" "y"\r\n"Sasl" "GSSAPI"\r\n"starttls"\r\n"SASL" "PLAIN"\r\n"StartTLS"\r\n"VERSION" "1.0"\r\nOK "ready"\r\n',
      '"implementation" "y"\r\n"SASL" ""\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n',
    ],
    [
      'built-in default',
      DEFAULT_SIEVE_CAPABILITIES,
      '"IMPLEMENTATION" "mailfront"\r\n"SASL" ""\r\n' +
        '"SIEVE" "fileinto reject envelope vacation imapflags notify subaddress relational regex"\r\n' +
        '"STARTTLS"\r\n"VERSION" "1.0"\r\n',
    ],
  ];
  it.each(table)('%s', (_name, input, expected) => {
    const out = preTlsSieveCapabilities(input);
    expect(out).toBe(expected);
    // Idempotent: transforming the output again changes nothing.
    expect(preTlsSieveCapabilities(out)).toBe(out);
  });

  it('splitGreeting waits for the status line', () => {
    expect(splitGreeting('"IMPLEMENTATION" "x"\r\n"VERS')).toBeUndefined();
    expect(splitGreeting('"IMPLEMENTATION" "x"\r\nOK "hi"\r\n')).toEqual({
      capabilities: '"IMPLEMENTATION" "x"\r\n',
      status: 'OK',
      statusLine: 'OK "hi"',
    });
    expect(splitGreeting('BYE "busy"\r\n')?.status).toBe('BYE');
  });
});

describe('probeSieveCapabilities', () => {
  const servers: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A fake timsieved: sends `greeting` in small pieces and records what it receives. */
  async function fake(greeting: string, listenOn?: string): Promise<{ addr: string; received: Promise<string> }> {
    let gotIt!: (s: string) => void;
    const received = new Promise<string>((r) => (gotIt = r));
    const server = net.createServer((sock) => {
      let data = '';
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => (data += d));
      sock.on('end', () => {
        gotIt(data);
        sock.end();
      });
      sock.on('error', () => {});
      for (let i = 0; i < greeting.length; i += 7) sock.write(greeting.slice(i, i + 7));
    });
    servers.push(server);
    await new Promise<void>((r) => (listenOn ? server.listen(listenOn, r) : server.listen(0, '127.0.0.1', r)));
    const a = server.address();
    return { addr: typeof a === 'string' ? a : `127.0.0.1:${a!.port}`, received };
  }

  it('reads the greeting up to OK, says LOGOUT, returns the capability lines', async () => {
    const { addr, received } = await fake(CYRUS_36);
    const caps = await probeSieveCapabilities(addr, 2000);
    expect(caps).toBe(CYRUS_36.replace('OK\r\n', ''));
    expect(await received).toBe('LOGOUT\r\n');
  });

  it('sends a pool\'s PROXY header (LOCAL form) before LOGOUT', async () => {
    const { addr, received } = await fake(CYRUS_36);
    expect(await probeSieveCapabilities(addr, 2000, 'v1')).toBe(CYRUS_36.replace('OK\r\n', ''));
    expect(await received).toBe('PROXY UNKNOWN\r\nLOGOUT\r\n');
  });

  it('works over a unix socket', async () => {
    const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'mf-sieve-')), 's.sock');
    const { addr } = await fake(CYRUS_36, sock);
    expect(addr).toBe(sock);
    expect(await probeSieveCapabilities(sock, 2000)).toMatch(/^"IMPLEMENTATION" "Cyrus timsieved v3\.6\.1"\r\n/);
  });

  it('errors name the server: refused, NO greeting, too long, too slow', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(probeSieveCapabilities(`127.0.0.1:${port}`, 2000)).rejects.toMatchObject({
      code: 'MF_BACKEND',
      message: expect.stringMatching(new RegExp(`^sieve probe of 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`)),
    });

    const no = await fake('NO "Service unavailable"\r\n');
    await expect(probeSieveCapabilities(no.addr, 2000)).rejects.toThrow(`sieve probe of ${no.addr}: the server refused: "NO \\"Service unavailable\\""`);

    const long = await fake(`"SIEVE" "${'x'.repeat(20_000)}"\r\nOK\r\n`);
    await expect(probeSieveCapabilities(long.addr, 2000)).rejects.toThrow(/greeting longer than 16384 bytes/);

    const slow = await fake('"IMPLEMENTATION" "x"\r\n');
    const t0 = Date.now();
    await expect(probeSieveCapabilities(slow.addr, 200)).rejects.toThrow(`sieve probe of ${slow.addr}: no complete greeting within 200 ms`);
    expect(Date.now() - t0).toBeLessThan(1500);

    await expect(probeSieveCapabilities('nonsense', 200)).rejects.toThrow(/^sieve probe of nonsense: /);
  });

  it('probeSieveListeners: first server that answers, per managesieve listener', async () => {
    const good = await fake(CYRUS_36);
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadAddr = `127.0.0.1:${(dead.address() as net.AddressInfo).port}`;
    await new Promise((r) => dead.close(r));
    const config = parseConfig(
      `certificates: {pem_dirs: [/p]}
listeners:
  - {name: sieve, protocol: managesieve, listen: ["127.0.0.1:0"], backend: s}
  - {name: sieve2, protocol: managesieve, listen: ["127.0.0.1:0"], backend: d}
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:0"], backend: s}
backends:
  s: {servers: ["${deadAddr}", "${good.addr}"]}
  d: {servers: ["${deadAddr}"]}
`,
      'p.yaml',
    );
    const { capabilities, errors } = await probeSieveListeners(config, 1000);
    expect([...capabilities.keys()]).toEqual(['sieve']);
    expect(capabilities.get('sieve')).toBe(CYRUS_36.replace('OK\r\n', ''));
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((e) => e.code === 'MF_BACKEND' && e.message.includes(deadAddr))).toBe(true);
  });
});
