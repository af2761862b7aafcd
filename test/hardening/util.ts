// Helpers for the hardening suites (faults, hostile input, testssl, soak).
// Everything on 127.0.0.0/8, every wait bounded. The suites are opt-in:
// MF_HARDENING=1 (npm run test:faults), MF_TESTSSL=1, MF_SOAK=1, so that
// `npm test` (vitest over test/**) does not pick them up unasked.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { createProxy } from '../../src/native.js';
import type { ConnectionRecord, NativeEvent, NativeProxy } from '../../src/native.js';
import { prepare } from '../../src/service.js';
import { nativeListeners } from '../../src/snapshot.js';
import { createLogger } from '../../src/log.js';
import { fakeBackend, waitFor } from '../native/harness.js';
import type { FakeBackend } from '../native/harness.js';
import { ROOT } from '../helpers/mailfront.js';

export const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export const IMAP_GREETING = '* OK [CAPABILITY IMAP4rev1] fake backend ready\r\n';
export const POP3_GREETING = '+OK fake pop3 ready\r\n';
export const SIEVE_GREETING = '"IMPLEMENTATION" "fake sieve"\r\n"SIEVE" "fileinto"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\nOK\r\n';

/** A backend that greets and echoes every byte back. */
export function echoBackend(greeting: string): Promise<FakeBackend> {
  return fakeBackend(greeting, (s) => s.on('data', (d) => s.write(d)));
}

export interface Backends {
  imap: FakeBackend;
  pop3: FakeBackend;
  sieve: FakeBackend;
  close(): Promise<void>;
}

export async function echoBackends(): Promise<Backends> {
  const imap = await echoBackend(IMAP_GREETING);
  const pop3 = await echoBackend(POP3_GREETING);
  const sieve = await echoBackend(SIEVE_GREETING);
  return { imap, pop3, sieve, close: async () => void (await Promise.all([imap.close(), pop3.close(), sieve.close()])) };
}

export type Kind = 'imaps' | 'pop3s' | 'imap' | 'pop3' | 'sieve';
export const KINDS: Kind[] = ['imaps', 'pop3s', 'imap', 'pop3', 'sieve'];
export type Ports = Record<Kind, number>;

/** The five listeners of a real mailfront config (listener name = kind). */
export function hardeningConfig(o: { letsencrypt: string; ports: Ports; b: Backends; extra?: string }): string {
  const { ports, b } = o;
  return `certificates:
  letsencrypt: [${o.letsencrypt}]
  default: mail.example.com
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${ports.imaps}"], backend: imap}
  - {name: imap, protocol: imap, listen: ["127.0.0.1:${ports.imap}"], backend: imap}
  - {name: pop3s, protocol: pop3s, listen: ["127.0.0.1:${ports.pop3s}"], backend: pop3}
  - {name: pop3, protocol: pop3, listen: ["127.0.0.1:${ports.pop3}"], backend: pop3}
  - {name: sieve, protocol: managesieve, listen: ["127.0.0.1:${ports.sieve}"], backend: sieve}
backends:
  imap: {servers: ["${b.imap.address}"]}
  pop3: {servers: ["${b.pop3.address}"]}
  sieve: {servers: ["${b.sieve.address}"]}
metrics: false
log: {level: warn}
${o.extra ?? ''}`;
}

/**
 * The real control-plane path, in process: a YAML file -> prepare() (config
 * schema, certificate store, snapshot with the shipped TLS defaults) ->
 * createProxy/apply/start. Gives stats() and the connection records.
 */
export interface InProcess {
  proxy: NativeProxy;
  events: NativeEvent[];
  records(listener?: string): ConnectionRecord[];
  waitRecords(pred: (r: ConnectionRecord[]) => boolean, ms: number, what: string): Promise<ConnectionRecord[]>;
  counters(listener: string): ReturnType<NativeProxy['stats']>['listeners'][number];
  stop(): void;
}

export async function startInProcess(configPath: string, workers = 2): Promise<InProcess> {
  const log = createLogger({ level: 'silent' });
  const gen = await prepare(configPath, log);
  const events: NativeEvent[] = [];
  const proxy = createProxy(workers, (batch) => events.push(...batch));
  proxy.apply(gen.snapshot);
  proxy.start(nativeListeners(gen.config));
  let stopped = false;
  const records = (listener?: string) =>
    events.filter((e) => e.kind === 'connection' && (!listener || e.record!.listener === listener)).map((e) => e.record!);
  return {
    proxy,
    events,
    records,
    async waitRecords(pred, ms, what) {
      await waitFor(() => pred(records()), ms, what);
      return records();
    },
    counters(listener) {
      const l = proxy.stats().listeners.find((x) => x.name === listener);
      if (!l) throw new Error(`no listener ${listener}`);
      return l;
    },
    stop() {
      if (!stopped) proxy.stop();
      stopped = true;
    },
  };
}

// ---- STARTTLS by hand (node) ----

const STARTTLS: Record<'imap' | 'pop3' | 'sieve', { greet: RegExp; cmd: string; ok: RegExp }> = {
  imap: { greet: /\* OK[^\r\n]*\r\n/, cmd: 'a1 STARTTLS\r\n', ok: /a1 OK[^\r\n]*\r\n/ },
  pop3: { greet: /\+OK[^\r\n]*\r\n/, cmd: 'STLS\r\n', ok: /\+OK[^\r\n]*\r\n[\s\S]*\+OK[^\r\n]*\r\n/ },
  sieve: { greet: /\r\nOK[^\r\n]*\r\n/, cmd: 'STARTTLS\r\n', ok: /\r\nOK[^\r\n]*\r\n[\s\S]*OK[^\r\n]*\r\n/ },
};

/** A TLS connection to any listener kind (STARTTLS dialog done by hand), bounded. */
export function connectKind(
  kind: Kind,
  port: number,
  opts: tls.ConnectionOptions & { localAddress?: string },
  ms = 5000,
): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error(`${kind}@${port}: no TLS within ${ms} ms`));
    }, ms);
    const fail = (e: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(e);
    };
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
    raw.on('error', fail);
    const goTls = () => {
      raw.removeAllListeners('data');
      raw.removeListener('error', fail);
      const s = tls.connect({ socket: raw, rejectUnauthorized: false, ...opts });
      s.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', fail);
    };
    if (kind === 'imaps' || kind === 'pop3s') return raw.once('connect', goTls);
    const d = STARTTLS[kind];
    let buf = '';
    let sent = false;
    raw.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      if (!sent && d.greet.test(buf)) {
        sent = true;
        raw.write(d.cmd);
      }
      if (sent && d.ok.test(buf)) goTls();
    });
    raw.on('close', () => fail(new Error(`${kind}@${port}: closed in the dialog: ${JSON.stringify(buf)}`)));
  });
}

/** Write <payload> and read the same number of bytes back (echo backend), bounded. */
export function echoRoundTrip(s: tls.TLSSocket, payload: Buffer, skip: number, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const want = skip + payload.length;
    const timer = setTimeout(() => done(new Error(`echo: ${have}/${want} bytes within ${ms} ms`)), ms);
    const onData = (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have >= want) done();
    };
    const onClose = () => done(new Error(`echo: closed after ${have}/${want} bytes`));
    function done(err?: Error) {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).subarray(skip, want));
    }
    s.on('data', onData);
    s.once('close', onClose);
    s.write(payload);
  });
}

/** Resolves true when the socket closes within ms, false otherwise. */
export function closesWithin(s: net.Socket, ms: number): Promise<boolean> {
  if (s.destroyed || s.closed) return Promise.resolve(true);
  return new Promise((r) => {
    const t = setTimeout(() => r(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      r(true);
    });
  });
}

// ---- small C clients (bench's load generator and echo backend, and our churn) ----

export const WORK = path.join(ROOT, 'tmp', 'hardening');

function buildIfStale(out: string, src: string, libs: string[]): string {
  mkdirSync(path.dirname(out), { recursive: true });
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('cc', ['-O2', '-Wall', '-o', out, src, ...libs], { stdio: 'pipe', timeout: 120_000 });
  }
  return out;
}

export const loadgenBin = () => buildIfStale(path.join(WORK, 'bin', 'loadgen'), path.join(ROOT, 'bench', 'loadgen.c'), ['-lssl', '-lcrypto']);
export const backendBin = () => buildIfStale(path.join(WORK, 'bin', 'backend'), path.join(ROOT, 'bench', 'backend.c'), []);
export const churnBin = () => buildIfStale(path.join(WORK, 'bin', 'churn'), path.join(ROOT, 'test', 'hardening', 'churn.c'), ['-lssl', '-lcrypto']);

// ---- /proc sampling ----

export function procSample(pid: number): { rssKb: number; fds: number; threads: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { rssKb, fds: readdirSync(`/proc/${pid}/fd`).length, threads };
}

export function writeText(file: string, text: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
}
