// mailfront as a child process for end-to-end tests: `node dist/cli.js run
// --config FILE`, its JSON log lines read from stdout, signals, a clean stop.
// Also: free loopback ports, the CLI for `check`, a throwaway two-domain PKI,
// and small TLS/openssl probes. Every wait here is bounded.
//
//   const ports = await freePorts(3);
//   const mf = await startMailfront(yaml);          // resolves on "mailfront ready"
//   await mf.waitForLog((l) => l.msg === 'connection closed', 5000);
//   expect(await mf.stop()).toEqual({ code: 0, signal: null });
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { issue, makeCA, makeLetsEncryptTree, type CA, type Issued } from './pki.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'cli.js');
export const ADDON = path.join(ROOT, 'build', 'Release', 'mailfront.node');

// ---------------------------------------------------------------- ports

/**
 * n distinct free loopback ports, taken below the kernel's ephemeral range
 * (net.ipv4.ip_local_port_range). A port 0 bind returns an ephemeral port, and
 * the kernel may hand that same port to any outgoing connect() (or another
 * port-0 listener, such as a proxy under test) between our close and the
 * test's bind; below the range only an explicit bind can take it.
 */
export async function freePorts(n: number): Promise<number[]> {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const top = Math.min(low ?? 32768, 32768) - 1;
  const bottom = 10_000;
  const held: net.Server[] = [];
  try {
    let port = bottom + Math.floor(Math.random() * (top - bottom));
    for (let tried = 0; held.length < n && tried < top - bottom; tried++, port = port >= top ? bottom : port + 1) {
      if (port >= 21_100 && port < 21_200) continue; // the Cyrus test servers' blocks (test/helpers/cyrus.ts)
      if (port >= 24_000 && port < 25_000) continue; // bench/run.mjs's peers and cert-store.mjs
      const s = await listenOn(port);
      if (s) held.push(s);
    }
    if (held.length < n) throw new Error(`freePorts: fewer than ${n} free loopback ports in ${bottom}-${top}`);
    return held.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

function listenOn(port: number): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(null));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(s));
  });
}

// ---------------------------------------------------------------- build

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * dist/cli.js present and not older than src/ (tsc when it is), and the addon
 * present (another engineer may be rebuilding it: wait up to waitMs for it).
 */
export async function ensureBuilt(waitMs = 120_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!existsSync(ADDON)) {
    if (Date.now() > deadline) throw new Error(`${ADDON} is missing (run npx node-gyp rebuild -j 2)`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!existsSync(CLI) || statSync(CLI).mtimeMs < newestMtime(path.join(ROOT, 'src'))) {
    // tsc emits even with type errors (someone else's edit in progress): only a missing output is fatal.
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
    } catch (err) {
      if (!existsSync(CLI)) throw new Error(`tsc did not produce ${CLI}: ${(err as { stdout?: Buffer }).stdout?.toString() ?? err}`);
    }
  }
}

// ---------------------------------------------------------------- the process

export interface LogLine {
  level: string;
  msg: string;
  component?: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Mailfront {
  pid: number;
  dir: string;
  configPath: string;
  /** Every JSON line of stdout so far, in order. */
  lines: LogLine[];
  /** stdout lines that were not JSON, and all of stderr. */
  rawStdout: string[];
  stderr(): string;
  /** Resolves with the first line (from index `from`) that matches, or rejects after timeoutMs with the log. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, from?: number): Promise<LogLine>;
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  /** SIGTERM (unless signal('SIGTERM') sent it already), then waits up to timeoutMs for the exit (SIGKILL and reject past that). */
  stop(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL if still running (cleanup in afterAll). */
  kill(): Promise<void>;
  /** Rewrites the config file (for reload tests). */
  writeConfig(yaml: string): void;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** The environment without systemd's variables (the test runner may itself run under systemd). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['NOTIFY_SOCKET', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete env[k];
  return env;
}

export interface StartMailfrontOptions {
  /** Folder for the config (default: a new /tmp/mf-e2e-XXXXXX, removed by stop()/kill()). */
  dir?: string;
  readyTimeoutMs?: number;
}

export async function startMailfront(configYaml: string, opts: StartMailfrontOptions = {}): Promise<Mailfront> {
  await ensureBuilt();
  const made = !opts.dir;
  const dir = opts.dir ?? mkdtempSync('/tmp/mf-e2e-');
  const configPath = path.join(dir, 'mailfront.yaml');
  writeFileSync(configPath, configYaml);

  const child = spawn(process.execPath, [CLI, 'run', '--config', configPath], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv(),
  });
  children.add(child);
  const lines: LogLine[] = [];
  const rawStdout: string[] = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        rawStdout.push(text);
      }
    }
    wake();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (stderr += d));
  let done = false;
  let termSent = false;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      children.delete(child);
      resolve({ code, signal });
      wake();
    });
  });

  const dump = () =>
    `log:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstdout (not JSON):\n${rawStdout.join('\n')}\nstderr:\n${stderr}`;

  function waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let i = from;
      const check = (): boolean => {
        for (; i < lines.length; i++) {
          if (pred(lines[i]!)) {
            finish();
            resolve(lines[i]!);
            return true;
          }
        }
        if (done) {
          finish();
          reject(new Error(`mailfront exited before the awaited log line\n${dump()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no matching mailfront log line within ${timeoutMs} ms\n${dump()}`));
      }, timeoutMs);
      const waiter = () => void check();
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
      check();
    });
  }

  const cleanupDir = () => {
    if (made) rmSync(dir, { recursive: true, force: true });
  };

  const mf: Mailfront = {
    pid: child.pid!,
    dir,
    configPath,
    lines,
    rawStdout,
    stderr: () => stderr,
    waitForLog,
    signal: (sig) => {
      if (sig === 'SIGTERM') termSent = true;
      if (!done) child.kill(sig);
    },
    exited,
    async stop(timeoutMs = 15_000) {
      // One SIGTERM only: mailfront drops its handlers while draining, so a second one kills it.
      if (!done && !termSent) child.kill('SIGTERM');
      termSent = true;
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
      const r = await Promise.race([exited, timer]);
      if (r === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        cleanupDir();
        throw new Error(`mailfront did not exit within ${timeoutMs} ms of SIGTERM\n${dump()}`);
      }
      cleanupDir();
      return r;
    },
    async kill() {
      if (!done) child.kill('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      cleanupDir();
    },
    writeConfig: (yaml) => writeFileSync(configPath, yaml),
  };

  try {
    await waitForLog((l) => l.msg === 'mailfront ready', opts.readyTimeoutMs ?? 20_000);
  } catch (err) {
    await mf.kill();
    throw err;
  }
  return mf;
}

// ---------------------------------------------------------------- the CLI

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a bounded time; never rejects. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, killSignal: 'SIGKILL', cwd: ROOT }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin?.end();
  });
}

/** `node dist/cli.js ...args` */
export async function runCli(args: string[], timeoutMs = 20_000): Promise<RunResult> {
  await ensureBuilt();
  return run(process.execPath, [CLI, ...args], { timeoutMs });
}

// ---------------------------------------------------------------- PKI

export interface TwoDomainPki {
  dir: string;
  ca: CA;
  /** The root certificate, for clients (--cafile / -CAfile). */
  caFile: string;
  /** Let's Encrypt-shaped tree: live/<lineage>/... */
  letsencrypt: string;
  /** Lineage folder names, deliberately unlike the names they hold. */
  comLineage: string;
  netLineage: string;
  com: Issued;
  net: Issued;
}

/**
 * A test CA and a Let's Encrypt tree with two lineages: mail.example.com
 * (+ imap.example.com) and *.example.net (+ example.net).
 */
export function makeTwoDomainPki(dir: string): TwoDomainPki {
  const ca = makeCA(path.join(dir, 'ca'), { name: 'mailfront e2e' });
  const com = issue(ca, { names: ['mail.example.com', 'imap.example.com'], dir: path.join(dir, 'issued', 'com-1') });
  const net_ = issue(ca, { names: ['*.example.net', 'example.net'], dir: path.join(dir, 'issued', 'net-1') });
  const letsencrypt = path.join(dir, 'letsencrypt');
  const comLineage = 'zz-lineage-0001';
  const netLineage = 'aa-other-lineage';
  makeLetsEncryptTree(letsencrypt, { [comLineage]: com, [netLineage]: net_ });
  const caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, ca.rootPem);
  return { dir, ca, caFile, letsencrypt, comLineage, netLineage, com, net: net_ };
}

export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

export function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber.toUpperCase();
}

// ---------------------------------------------------------------- clients

export interface TlsProbe {
  authorized: boolean;
  authorizationError?: string;
  /** Leaf certificate as seen by the client. */
  fingerprint256: string;
  serial: string;
  subjectaltname: string;
  /** Everything read after the handshake until the predicate matched, or the connection ended. */
  data: string;
  /** Whether the server ended the connection (vs. we closed it). */
  ended: boolean;
  localPort: number;
}

/**
 * Connects with implicit TLS (SNI = servername, verified against ca with
 * hostname checking), reads until `until` matches the text so far (default:
 * one CRLF line) or the server closes, then closes.
 */
export function tlsProbe(
  port: number,
  servername: string,
  ca: string,
  opts: { until?: RegExp; timeoutMs?: number; write?: string } = {},
): Promise<TlsProbe> {
  const until = opts.until ?? /\r\n/;
  return new Promise((resolve, reject) => {
    let data = '';
    let settled = false;
    let ended = false;
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false });
    const timer = setTimeout(() => fail(new Error(`tlsProbe ${servername}@${port}: timed out; read ${JSON.stringify(data)}`)), opts.timeoutMs ?? 10_000);
    function fail(err: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(err);
    }
    function done() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const cert = s.getPeerCertificate();
      resolve({
        authorized: s.authorized,
        authorizationError: s.authorizationError ? String(s.authorizationError) : undefined,
        fingerprint256: cert.fingerprint256,
        serial: String(cert.serialNumber).toUpperCase(),
        subjectaltname: cert.subjectaltname ?? '',
        data,
        ended,
        localPort: s.localPort ?? 0,
      });
      s.destroy();
    }
    s.setEncoding('utf8');
    s.once('secureConnect', () => {
      if (opts.write) s.write(opts.write);
    });
    s.on('data', (d: string) => {
      data += d;
      if (until.test(data)) done();
    });
    s.on('end', () => {
      ended = true;
      done();
    });
    s.on('close', () => {
      ended = true;
      done();
    });
    s.on('error', (e) => (data && s.authorized !== undefined ? done() : fail(e)));
  });
}

/** A line-oriented TLS client kept open across steps (IDLE, reload, drain). */
export interface TlsSession {
  socket: tls.TLSSocket;
  /** Everything received so far. */
  data(): string;
  /** Waits until the text received since `from` matches re. */
  waitFor(re: RegExp, timeoutMs: number, from?: number): Promise<RegExpExecArray>;
  send(line: string): void;
  /** Resolves when the connection is closed (by either side). */
  closed: Promise<void>;
  isClosed(): boolean;
  close(): void;
}

/** `extra`: more tls.connect options (ecdhCurve: the key-exchange groups offered, ...). */
export function openTls(port: number, servername: string, ca: string, timeoutMs = 10_000, extra: tls.ConnectionOptions = {}): Promise<TlsSession> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let isClosed = false;
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, checkServerIdentity: tls.checkServerIdentity, ...extra });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`openTls ${servername}@${port}: no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    const closed = new Promise<void>((r) => s.once('close', () => {
      isClosed = true;
      r();
    }));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (buf += d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve({
        socket: s,
        data: () => buf,
        waitFor: (re, ms, from = 0) =>
          new Promise((res, rej) => {
            const started = Date.now();
            const tick = () => {
              const m = re.exec(buf.slice(from));
              if (m) return res(m);
              if (Date.now() - started > ms) return rej(new Error(`no ${re} within ${ms} ms; got:\n${buf.slice(from)}`));
              if (isClosed) return rej(new Error(`connection closed before ${re}; got:\n${buf.slice(from)}`));
              setTimeout(tick, 20);
            };
            tick();
          }),
        send: (line) => s.write(`${line}\r\n`),
        closed,
        isClosed: () => isClosed,
        close: () => s.destroy(),
      });
    });
  });
}

export interface SClientResult extends RunResult {
  /** Leaf certificate PEM printed by s_client, if any. */
  leafPem?: string;
  verified: boolean;
}

/**
 * openssl s_client with SNI, hostname verification and -verify_return_error;
 * `starttls` is sieve/imap/pop3 or undefined for implicit TLS. Sends `input`
 * (default: nothing) and lets the connection close.
 */
export async function sClient(
  port: number,
  servername: string,
  caFile: string,
  starttls?: 'sieve' | 'imap' | 'pop3',
  input = '',
  timeoutMs = 15_000,
): Promise<SClientResult> {
  const args = [
    's_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-verify_hostname', servername,
    '-CAfile', caFile, '-verify_return_error', '-ign_eof',
  ];
  if (starttls) args.push('-starttls', starttls);
  const r = await run('openssl', args, { timeoutMs, input });
  const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(r.stdout)?.[0];
  return { ...r, leafPem, verified: /Verify return code: 0 \(ok\)/.test(r.stdout) };
}

// ---------------------------------------------------------------- config

export interface E2ePorts {
  imaps: number;
  imap: number;
  pop3s: number;
  pop3: number;
  sieve: number;
}

export async function e2ePorts(): Promise<E2ePorts> {
  const [imaps, imap, pop3s, pop3, sieve] = (await freePorts(5)) as [number, number, number, number, number];
  return { imaps, imap, pop3s, pop3, sieve };
}

interface BackendPorts {
  imapPort: number;
  pop3Port: number;
  sievePort: number;
}

/**
 * The e2e configuration: five listeners on loopback (imaps, imap, pop3s, pop3,
 * sieve) to Cyrus instance `a`; with `b`, a route *.example.net -> b for imaps
 * and sieve. `extra` is appended verbatim (timeouts:, log:, ...).
 */
export function e2eConfig(o: { letsencrypt: string; ports: E2ePorts; a: BackendPorts; b?: BackendPorts; extra?: string }): string {
  const { ports, a, b } = o;
  let y = `certificates:
  letsencrypt: [${o.letsencrypt}]
  default: mail.example.com
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${ports.imaps}"], backend: a-imap}
  - {name: imap, protocol: imap, listen: ["127.0.0.1:${ports.imap}"], backend: a-imap}
  - {name: pop3s, protocol: pop3s, listen: ["127.0.0.1:${ports.pop3s}"], backend: a-pop3}
  - {name: pop3, protocol: pop3, listen: ["127.0.0.1:${ports.pop3}"], backend: a-pop3}
  - {name: sieve, protocol: managesieve, listen: ["127.0.0.1:${ports.sieve}"], backend: a-sieve}
backends:
  a-imap: {servers: ["127.0.0.1:${a.imapPort}"]}
  a-pop3: {servers: ["127.0.0.1:${a.pop3Port}"]}
  a-sieve: {servers: ["127.0.0.1:${a.sievePort}"]}
`;
  if (b) {
    y += `  b-imap: {servers: ["127.0.0.1:${b.imapPort}"], health_check: 500ms}
  b-sieve: {servers: ["127.0.0.1:${b.sievePort}"]}
routes:
  - sni: "*.example.net"
    backends: {imaps: b-imap, sieve: b-sieve}
`;
  }
  y += `workers: 2
metrics: false
log: {level: info}
`;
  return y + (o.extra ?? '');
}
