// A real Dovecot 2.3 (Debian's packages, unpacked, never installed) for
// end-to-end tests: starts scripts/dovecot.sh in a fresh folder under /tmp.
// Its imap, pop3 and sieve ports want a PROXY header from 127.0.0.1
// (haproxy = yes); the *Direct ports take clients as they are.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from './mailfront.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DOVECOT_SCRIPT = path.resolve(here, '../../scripts/dovecot.sh');

export interface DovecotUser {
  user: string;
  password: string;
}

export interface DovecotInstance {
  dir: string;
  imapPort: number;
  pop3Port: number;
  sievePort: number;
  imapDirectPort: number;
  sieveDirectPort: number;
  users: DovecotUser[];
  logFile: string;
  /** The Debian package version that runs. */
  version: string;
  /** The whole log so far. */
  log(): string;
  /** The first log line (from byte `from`) that matches, within timeoutMs; rejects with the log's tail. */
  waitForLog(re: RegExp, timeoutMs: number, from?: number): Promise<string>;
  stop(): Promise<void>;
}

export const DOVECOT_USERS: DovecotUser[] = [{ user: 'carol@example.org', password: 'secret' }];

function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [DOVECOT_SCRIPT, ...args], { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === -1 ? `\n${err.message}` : '') });
    });
  });
}

const live = new Set<string>();
process.once('exit', () => {
  for (const dir of live) spawnSync('bash', [DOVECOT_SCRIPT, 'stop', dir, '--clean'], { timeout: 15_000, stdio: 'ignore' });
});

/** Five consecutive free loopback ports (the script takes BASE..BASE+4). */
async function freeBlock(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const [p] = (await freePorts(1)) as [number];
    if (p > 65000) continue;
    const probe = await Promise.all([1, 2, 3, 4].map((k) => portFree(p + k)));
    if (probe.every(Boolean)) return p;
  }
  throw new Error('no block of 5 free loopback ports');
}

function portFree(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Starts a Dovecot (the first start on a machine also fetches the packages: a few seconds). */
export async function startDovecot(opts: { users?: DovecotUser[]; timeoutMs?: number } = {}): Promise<DovecotInstance> {
  const users = opts.users ?? DOVECOT_USERS;
  const dir = mkdtempSync('/tmp/mf-dv-');
  const env = { ...process.env, DOVECOT_USERS: users.map((u) => `${u.user}:${u.password}`).join(' ') };
  let r: { code: number; stdout: string; stderr: string } | undefined;
  // Another test may take the block between the probe and dovecot's bind: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    r = await runScript(['start', dir, String(await freeBlock())], env, opts.timeoutMs ?? 120_000);
    if (r.code === 0 || !/already in use|Address already in use/.test(r.stderr)) break;
  }
  if (!r || r.code !== 0) {
    await runScript(['stop', dir, '--clean'], env, 20_000);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dovecot.sh start failed (exit ${r?.code}):\n${r?.stderr}\n${r?.stdout}`);
  }
  live.add(dir);
  const keys = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  const num = (k: string) => {
    const v = Number(keys.get(k));
    if (!Number.isInteger(v) || v <= 0) throw new Error(`dovecot.sh printed no ${k}:\n${r!.stdout}`);
    return v;
  };
  const logFile = keys.get('LOG_FILE')!;
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  let stopped = false;
  return {
    dir,
    imapPort: num('IMAP_PORT'),
    pop3Port: num('POP3_PORT'),
    sievePort: num('SIEVE_PORT'),
    imapDirectPort: num('IMAP_DIRECT_PORT'),
    sieveDirectPort: num('SIEVE_DIRECT_PORT'),
    users,
    logFile,
    version: keys.get('VERSION') ?? '',
    log,
    async waitForLog(re, timeoutMs, from = 0) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = log().slice(from);
        const line = text.split('\n').find((l) => re.test(l));
        if (line) return line;
        if (Date.now() > deadline) throw new Error(`no Dovecot log line matching ${re} within ${timeoutMs} ms; log since mark:\n${text.slice(-4000)}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const keep = process.env.MF_KEEP_DOVECOT === '1';
      const s = await runScript(keep ? ['stop', dir] : ['stop', dir, '--clean'], env, 30_000);
      live.delete(dir);
      if (s.code !== 0) throw new Error(`dovecot.sh stop ${dir} failed (exit ${s.code}):\n${s.stderr}`);
    },
  };
}
