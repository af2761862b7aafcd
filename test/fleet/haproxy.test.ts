// mailfront behind Debian's HAProxy in TCP mode (send-proxy-v2 and
// send-proxy): the client binds 127.0.0.7, HAProxy connects from 127.0.0.1.
// The connection log line and the PROXY v2 header mailfront sends on to the
// backend carry the ORIGINAL client; a listener that does not trust HAProxy
// refuses it; a malformed header is refused. HAProxy is our own process
// (haproxy -f CFG -db) on loopback ports; the package's service is not used.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, makeTwoDomainPki, startMailfront, type Mailfront, type TwoDomainPki } from '../helpers/mailfront.js';
import { handshake, proxyV2Backend, within } from './helpers.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy'].find((p) => spawnSync(p, ['-v']).status === 0);
const CLIENT_IP = '127.0.0.7';

/** The HAProxy configuration the README shows, with loopback ports. */
function haproxyConfig(p: { v2: number; v1: number; untrusted: number; mf: number; mfUntrusted: number }): string {
  return `global
    maxconn 1000

defaults
    mode tcp
    timeout connect 5s
    timeout client 31m
    timeout server 31m

frontend imaps
    bind 127.0.0.1:${p.v2}
    default_backend mailfront-imaps

backend mailfront-imaps
    server mf1 127.0.0.1:${p.mf} send-proxy-v2

frontend imaps-v1
    bind 127.0.0.1:${p.v1}
    default_backend mailfront-imaps-v1

backend mailfront-imaps-v1
    server mf1 127.0.0.1:${p.mf} send-proxy

frontend untrusted
    bind 127.0.0.1:${p.untrusted}
    default_backend mailfront-untrusted

backend mailfront-untrusted
    server mf1 127.0.0.1:${p.mfUntrusted} send-proxy-v2
`;
}

async function waitListening(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Never skipped: scripts/install-deps.sh installs haproxy; without it these tests fail.
describe('behind HAProxy (send-proxy-v2)', () => {
  let dir: string;
  let pki: TwoDomainPki;
  let backend: Awaited<ReturnType<typeof proxyV2Backend>>;
  let mf: Mailfront;
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  let ports: { v2: number; v1: number; untrusted: number; mf: number; mfUntrusted: number };

  beforeAll(async () => {
    if (!HAPROXY) throw new Error('haproxy is not installed: run scripts/install-deps.sh');
    dir = mkdtempSync('/tmp/mf-haproxy-');
    pki = makeTwoDomainPki(dir);
    backend = await proxyV2Backend();
    const [v2, v1, untrusted, mfPort, mfUntrusted] = (await freePorts(5)) as [number, number, number, number, number];
    ports = { v2, v1, untrusted, mf: mfPort, mfUntrusted };
    mf = await startMailfront(`certificates:
  letsencrypt: [${pki.letsencrypt}]
  default: mail.example.com
listeners:
  - name: imaps
    protocol: imaps
    listen: ["127.0.0.1:${mfPort}"]
    backend: imap
    accept_proxy: true
    trusted_proxies: ["127.0.0.1/32", "::1/128"]
  - name: imaps-untrusted
    protocol: imaps
    listen: ["127.0.0.1:${mfUntrusted}"]
    backend: imap
    accept_proxy: true
    trusted_proxies: ["10.0.0.0/8"]
backends:
  imap: {servers: ["127.0.0.1:${backend.port}"], proxy_protocol: v2}
workers: 2
metrics: false
log: {level: info}
`);
    const cfg = path.join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(ports));
    const check = spawnSync(HAPROXY!, ['-c', '-f', cfg], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    haproxy = spawn(HAPROXY!, ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d) => (haproxyLog += d));
    haproxy.stderr!.on('data', (d) => (haproxyLog += d));
    await waitListening(v2, 10_000);
    await waitListening(untrusted, 10_000);
  }, 60_000);

  afterAll(async () => {
    if (haproxy && haproxy.exitCode === null) {
      haproxy.kill('SIGTERM');
      await within(new Promise((r) => haproxy!.once('exit', r)), 5000, 'haproxy exit').catch(() => haproxy!.kill('SIGKILL'));
    }
    await mf?.kill();
    await backend?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const closedLine = (clientPrefix: string, from = 0) =>
    mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).startsWith(clientPrefix), 10_000, from);

  it('the log line and the backend PROXY header carry the original client (v2 from HAProxy)', async () => {
    const from = mf.lines.length;
    const r = await handshake(ports.v2, pki.ca.rootPem, { localAddress: CLIENT_IP });
    expect(r.greeting, haproxyLog).toContain('fleet backend');
    const client = `${CLIENT_IP}:${r.localPort}`;
    const line = await closedLine(`${client}`, from);
    expect(line).toMatchObject({ listener: 'imaps', client, sni: 'mail.example.com', reason: 'client_closed' });
    const seen = backend.seen.find((s) => s.src === client);
    expect(seen, JSON.stringify(backend.seen)).toBeDefined();
    expect(seen).toMatchObject({ command: 'PROXY', src: client, dst: `127.0.0.1:${ports.v2}` });
    expect(backend.errors).toEqual([]);
  });

  it('also with HAProxy send-proxy (v1)', async () => {
    const from = mf.lines.length;
    const r = await handshake(ports.v1, pki.ca.rootPem, { localAddress: CLIENT_IP });
    const client = `${CLIENT_IP}:${r.localPort}`;
    expect((await closedLine(client, from)).client).toBe(client);
    expect(backend.seen.some((s) => s.src === client && s.dst === `127.0.0.1:${ports.v1}`)).toBe(true);
  });

  it('refuses HAProxy on a listener whose trusted_proxies do not hold it', async () => {
    const from = mf.lines.length;
    const seenBefore = backend.seen.length;
    await expect(handshake(ports.untrusted, pki.ca.rootPem, { localAddress: CLIENT_IP, timeoutMs: 5000 })).rejects.toThrow();
    const line = await mf.waitForLog((l) => l.msg === 'connection closed' && l.reason === 'proxy_header_refused', 10_000, from);
    expect(line).toMatchObject({ listener: 'imaps-untrusted', reason: 'proxy_header_refused' });
    // The refused peer is HAProxy itself, never the client it would have named.
    expect(String(line.client)).toMatch(/^127\.0\.0\.1:/);
    expect(backend.seen.length).toBe(seenBefore);
  });

  it('refuses a malformed header from a trusted address, and a TLS client that skips the balancer', async () => {
    const from = mf.lines.length;
    const raw = net.connect({ host: '127.0.0.1', port: ports.mf });
    raw.on('error', () => {});
    await new Promise<void>((r) => raw.once('connect', () => r()));
    raw.write('PROXY TCP4 127.0.0.7 127.0.0.1 70000 993\r\n');
    await within(new Promise<void>((r) => raw.once('close', () => r())), 5000, 'malformed header closed');
    const bad = await mf.waitForLog((l) => l.msg === 'connection closed' && l.reason === 'proxy_header_malformed', 10_000, from);
    expect(bad).toMatchObject({ listener: 'imaps', detail: 'v1: bad port' });

    const direct = tls.connect({ host: '127.0.0.1', port: ports.mf, servername: 'mail.example.com', ca: pki.ca.rootPem });
    const err = await within(new Promise<Error | undefined>((r) => {
      direct.once('secureConnect', () => r(undefined));
      direct.once('error', (e) => r(e));
    }), 5000, 'direct TLS refused');
    expect(err).toBeDefined();
    await mf.waitForLog((l) => l.reason === 'proxy_header_malformed' && l.detail === 'not a PROXY header', 10_000, from);
  });
});
