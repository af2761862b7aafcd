// Shared helpers for the native data-plane tests: a hand-built NativeSnapshot
// from throwaway certificates, a running Proxy with its events collected, fake
// backends on node:net, TLS clients, and `openssl s_client` runs. Loopback and
// port 0 only; every wait is bounded in time.
import net from 'node:net';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createProxy, loadAddon } from '../../src/native.js';
import { defaultGroups, tlsLibrary } from '../../src/tls-library.js';
import type { CertCheck, ConnectionRecord, NativeCertPair, NativeEvent, NativeListenerPolicy, NativeProxy, NativeSnapshot, Protocol } from '../../src/native.js';
import { issue, makeCA } from '../helpers/pki.js';
import { loadTestingAddon } from '../helpers/testing-addon.js';
import type { CA, Issued } from '../helpers/pki.js';

export interface Pki {
  dir: string;
  ca: CA;
  rootPath: string;
  /** default.example (served without SNI and for unknown names). */
  def: Issued;
  /** mail.a.example, a.example */
  a: Issued;
  /** mail.b.example */
  b: Issued;
  /** *.w.example */
  w: Issued;
  /** mail.a.example again, a second certificate (for apply() tests). */
  a2: Issued;
  cleanup(): void;
}

export function makePki(): Pki {
  const dir = mkdtempSync(path.join(tmpdir(), 'mf-native-'));
  const ca = makeCA(path.join(dir, 'ca'));
  const rootPath = path.join(dir, 'root.pem');
  writeFileSync(rootPath, ca.rootPem);
  const def = issue(ca, { names: ['default.example'], dir: path.join(dir, 'def') });
  const a = issue(ca, { names: ['mail.a.example', 'a.example'], dir: path.join(dir, 'a') });
  const b = issue(ca, { names: ['mail.b.example'], dir: path.join(dir, 'b') });
  const w = issue(ca, { names: ['*.w.example'], dir: path.join(dir, 'w') });
  const a2 = issue(ca, { names: ['mail.a.example', 'second.a.example'], dir: path.join(dir, 'a2') });
  return { dir, ca, rootPath, def, a, b, w, a2, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const ALPN: Record<Protocol, string> = { imaps: 'imap', imap: 'imap', pop3s: 'pop3', pop3: 'pop3', managesieve: 'managesieve' };

export const CAPS: Record<Protocol, string> = {
  imaps: '',
  pop3s: '',
  imap: 'IMAP4rev1 STARTTLS LOGINDISABLED',
  pop3: 'TOP\r\nUIDL\r\nSTLS\r\nPIPELINING\r\n',
  managesieve: '"IMPLEMENTATION" "mailfront"\r\n"SIEVE" "fileinto"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\n',
};

export interface SnapshotOptions {
  protocol?: Protocol;
  /** Backend servers ("127.0.0.1:port"). */
  servers: string[];
  unknownSni?: 'default' | 'reject';
  timeouts?: Partial<NativeSnapshot['timeouts']>;
  limits?: Partial<NativeSnapshot['limits']>;
  /** Replace the context for mail.a.example with pki.a2. */
  useA2?: boolean;
  ciphers?: string;
  /** tls.groups; default: the running library's default (hybrid first on OpenSSL 3.5). */
  groups?: string;
  badKey?: boolean;
  /** tls.recordLayer; default mailfront, as in the config. */
  recordLayer?: 'mailfront' | 'openssl';
  /** tls.minVersion; default TLSv1.2. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  proxyProtocol?: 'off' | 'v1' | 'v2' | 'v2-ssl';
}

/** The addon's check of a chain (PEM, leaf first) and a key, as the certificate store asks for it. */
export function checkPair(chainPem: string, keyPem: string): CertCheck {
  const certs = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
  return loadAddon().checkCertificates([{ certs, keys: [keyPem] }])[0]!;
}

/** A checked pair for a snapshot's context; throws when the addon refuses it. */
export function checkedPair(chainPem: string, keyPem: string): NativeCertPair {
  const r = checkPair(chainPem, keyPem);
  if ('error' in r || 'unread' in r) throw new Error(`checkCertificates refused the pair: ${'error' in r ? r.error : 'unread'}`);
  return r.pair;
}

/** A listener policy with every field (native has no defaults): no routes, no PROXY header. */
export function listenerPolicy(name: string, protocol: Protocol, backend = 0): NativeListenerPolicy {
  return { name, protocol, backend, routes: [], capabilities: CAPS[protocol], alpn: ALPN[protocol], acceptProxy: false, trustedProxies: [] };
}

/** Contexts: 0 default, 1 a (or a2), 2 b, 3 wildcard. */
export function buildSnapshot(pki: Pki, o: SnapshotOptions): NativeSnapshot {
  const protocol = o.protocol ?? 'imaps';
  const pair = (i: Issued) => ({ certs: [checkedPair(i.fullchainPem, i.keyPem)] });
  const aCert = o.useA2 ? pki.a2 : pki.a;
  const contexts = [pair(pki.def), pair(aCert), pair(pki.b), pair(pki.w)];
  // Not a pair the addon passed (its check refuses b's certificate with a's key): apply() must refuse it.
  if (o.badKey) contexts[2] = { certs: [{} as NativeCertPair] };
  const exact: Record<string, number> = { 'default.example': 0, 'mail.b.example': 2 };
  for (const n of aCert.names) exact[n] = 1;
  return {
    contexts,
    exact,
    wildcard: { 'w.example': 3 },
    defaultContext: 0,
    unknownSni: o.unknownSni ?? 'default',
    tls: {
      minVersion: o.minVersion ?? 'TLSv1.2',
      ciphers: o.ciphers ?? 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
      ciphersuites: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      groups: o.groups ?? defaultGroups(tlsLibrary()),
      recordLayer: o.recordLayer ?? 'mailfront',
      ticketKeys: [],
    },
    backends: [{ name: 'pool', servers: o.servers, proxyProtocol: o.proxyProtocol ?? 'off', balance: 'first' }],
    listeners: [listenerPolicy('l0', protocol)],
    timeouts: { handshakeMs: 5000, pretlsMs: 5000, connectMs: 2000, idleMs: 30_000, ...o.timeouts },
    // No connection rate by default: every test client is on loopback (test/native/bans.test.ts sets one).
    limits: {
      connections: 1000,
      perClient: 1000,
      lineBytes: 8192,
      loginTracking: true,
      loginFailures: { count: 10, windowMs: 600_000, banMs: 900_000 },
      connectionRate: 0,
      ipv6Prefix: 64,
      exempt: [],
      ...o.limits,
    },
  };
}

export interface Running {
  proxy: NativeProxy;
  /** The port of the first listener. */
  port: number;
  /** One port per listener of the snapshot, in its order. */
  ports: number[];
  events: NativeEvent[];
  records(): ConnectionRecord[];
  /** Wait for the n-th (1-based) connection record, bounded. */
  waitRecords(n: number, ms?: number): Promise<ConnectionRecord[]>;
  stop(): void;
}

/** A proxy with the snapshot's listeners, the first on <address> (default: a free loopback port), the others on free ports. */
export function startProxy(snapshot: NativeSnapshot, workers = 1, address = '127.0.0.1:0'): Running {
  const events: NativeEvent[] = [];
  const proxy = createProxy(workers, (batch) => events.push(...batch));
  proxy.apply(snapshot);
  const bound = proxy.start(
    snapshot.listeners.map((l, i) => ({ name: l.name, protocol: l.protocol, addresses: [i === 0 ? address : '127.0.0.1:0'] })),
  );
  const ports = bound.map((b) => Number(b.addresses[0]!.split(':').pop()));
  const port = ports[0]!;
  let stopped = false;
  const records = () => events.filter((e) => e.kind === 'connection').map((e) => e.record!);
  return {
    proxy,
    port,
    ports,
    events,
    records,
    async waitRecords(n, ms = 5000) {
      await waitFor(() => records().length >= n, ms, `${n} connection record(s); have ${JSON.stringify(records())}`);
      return records();
    },
    stop() {
      if (!stopped) proxy.stop();
      stopped = true;
    },
  };
}

export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- fake backends ----

export interface FakeBackend {
  server: net.Server;
  port: number;
  address: string;
  /** Everything each accepted connection sent, in order of acceptance. */
  received: Buffer[][];
  sockets: net.Socket[];
  /** "ip:port" of each accepted connection's peer (the proxy's backend-side socket). */
  peers: string[];
  close(): Promise<void>;
}

/** A backend that writes <greeting> on accept and then runs <onConn> (if any). */
export async function fakeBackend(
  greeting: string,
  onConn?: (s: net.Socket, index: number) => void,
  opts: { halfOpen?: boolean } = {},
): Promise<FakeBackend> {
  const received: Buffer[][] = [];
  const sockets: net.Socket[] = [];
  const peers: string[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const i = received.length;
    peers.push(`${s.remoteAddress}:${s.remotePort}`);
    const chunks: Buffer[] = [];
    received.push(chunks);
    sockets.push(s);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    // Like a mail server: the client's FIN ends the session (unless the test answers after it).
    if (!opts.halfOpen) s.on('end', () => s.end());
    if (greeting) s.write(greeting);
    onConn?.(s, i);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    server,
    port,
    address: `127.0.0.1:${port}`,
    received,
    sockets,
    peers,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * A backend address where nothing listens: connects are refused. On 127.0.0.2,
 * where no test listens (proxies and fake backends use 127.0.0.1): a port just
 * closed may be the next one the kernel gives to a bind(0), and on 127.0.0.1
 * that was once the proxy's own listener, so the "dead" backend was the proxy
 * itself and the client waited for the handshake timeout (relay.test.ts).
 */
export async function deadAddress(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.2', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.2:${port}`;
}

// ---- clients ----

export interface TlsClient {
  socket: tls.TLSSocket;
  /** The last session (ticket) the server sent. */
  session(): Buffer | undefined;
  /** All plaintext received so far. */
  data(): string;
  /** Resolves when the socket closed (with whether it saw an error). */
  closed: Promise<{ error?: Error }>;
  waitData(pred: (s: string) => boolean, ms?: number): Promise<string>;
}

export function wrapTls(socket: tls.TLSSocket): TlsClient {
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  let session: Buffer | undefined;
  socket.on('session', (s: Buffer) => (session = s));
  let error: Error | undefined;
  socket.on('error', (e) => (error = e));
  const closed = new Promise<{ error?: Error }>((r) => socket.on('close', () => r({ error })));
  const data = () => Buffer.concat(chunks).toString('latin1');
  return {
    socket,
    session: () => session,
    data,
    closed,
    async waitData(pred, ms = 5000) {
      await waitFor(() => pred(data()), ms, `client data; have ${JSON.stringify(data().slice(0, 500))}`);
      return data();
    },
  };
}

export function tlsOptions(pki: Pki, servername?: string, extra: tls.ConnectionOptions = {}): tls.ConnectionOptions {
  return {
    ca: pki.ca.rootPem,
    servername,
    // Without SNI node still checks the name; check against what we expect instead.
    checkServerIdentity: () => undefined,
    ...extra,
  };
}

/** Connect and finish the handshake (rejects on a handshake failure). */
export function connectTls(port: number, opts: tls.ConnectionOptions, ms = 5000): Promise<TlsClient> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...opts });
    const c = wrapTls(socket);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('TLS connect timed out'));
    }, ms);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(c);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The SAN of the certificate served for <servername>, once the backend's greeting ("backend ready") came through; the client then closes. */
export async function servedSan(port: number, pki: Pki, servername: string | undefined): Promise<string> {
  const c = await connectTls(port, { ca: pki.ca.rootPem, servername, checkServerIdentity: () => undefined });
  const san = peerSan(c);
  await c.waitData((d) => d.includes('backend ready'));
  c.socket.end();
  await within(c.closed, 3000, 'close');
  return san;
}

/** The SAN of the certificate the server presented. */
export function peerSan(c: TlsClient): string {
  return c.socket.getPeerCertificate().subjectaltname ?? '';
}

export interface RawClient {
  socket: net.Socket;
  data(): string;
  closed: Promise<void>;
  waitData(pred: (s: string) => boolean, ms?: number): Promise<string>;
}

export async function connectRaw(port: number): Promise<RawClient> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (d) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const data = () => Buffer.concat(chunks).toString('latin1');
  return {
    socket,
    data,
    closed,
    async waitData(pred, ms = 5000) {
      await waitFor(() => pred(data()), ms, `raw data; have ${JSON.stringify(data().slice(0, 500))}`);
      return data();
    },
  };
}

/** Bounded wait for a promise. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- openssl s_client ----

export interface OpensslResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `openssl s_client -connect 127.0.0.1:PORT ...args`, writes <input> to its
 * stdin after <delayMs>, closes stdin at once (or, with <until>, once stdout
 * matches it), and kills it after <ms>.
 */
export function sClient(
  port: number,
  args: string[],
  input = '',
  opts: { delayMs?: number; ms?: number; until?: RegExp } = {},
): Promise<OpensslResult> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let ended = false;
    const endStdin = () => {
      if (!ended) p.stdin.end();
      ended = true;
    };
    p.stdout.on('data', (d) => {
      stdout += d;
      if (opts.until && opts.until.test(stdout)) endStdin();
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.on('error', () => {});
    const kill = setTimeout(() => p.kill('SIGKILL'), opts.ms ?? 5000);
    setTimeout(() => {
      if (input && !ended) p.stdin.write(input);
      if (!opts.until) endStdin();
    }, opts.delayMs ?? 300);
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

export function testDialog(protocol: Protocol, capabilities: string, chunks: string[], maxLine?: number): { output: string; next: string } {
  return loadTestingAddon().testDialog(protocol, capabilities, chunks, maxLine);
}
