// A real Cyrus IMAP 3.6 for end-to-end tests: starts scripts/cyrus.sh in a
// fresh folder under /tmp and talks LMTP to it. Needs root and the Debian
// packages from scripts/install-deps.sh (plus cyrus-pop3d).
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CYRUS_SCRIPT = path.resolve(here, '../../scripts/cyrus.sh');
export const CLIENTS_DIR = path.resolve(here, 'clients');

export interface CyrusUser {
  user: string;
  password: string;
}

export interface CyrusInstance {
  dir: string;
  imapPort: number;
  sievePort: number;
  lmtpPort: number;
  pop3Port: number;
  users: CyrusUser[];
  /** The global admin (unqualified name, listed in `admins:`). */
  admin: CyrusUser;
  /** Where this instance's syslog lines land (empty when another listener owns /dev/log). */
  syslogFile: string;
  /** Stops master and its children; removes the folder when startCyrus made it. */
  stop(): Promise<void>;
  /** Delivers one message over LMTP; throws with the server's reply on any non-2xx/354 answer. */
  deliver(to: string, message: string, from?: string): Promise<void>;
}

export interface StartCyrusOptions {
  /** Ports are basePort..basePort+3 (imap, pop3, sieve, lmtp). Default: the first free block from 21100 up. */
  basePort?: number;
  /** Instance folder; default a new /tmp/mf-cyrus-XXXXXX, removed by stop(). */
  dir?: string;
  /** Default alice@example.com and bob@example.net with password "secret". */
  users?: CyrusUser[];
  /** Keep the folder after stop() (also: MF_KEEP_CYRUS=1). */
  keepDir?: boolean;
  /** Bound on the whole start, in ms. Default 60 s. */
  timeoutMs?: number;
}

export const DEFAULT_USERS: CyrusUser[] = [
  { user: 'alice@example.com', password: 'secret' },
  { user: 'bob@example.net', password: 'secret' },
];

const ADMIN: CyrusUser = { user: 'cyrus', password: 'secret' };

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile('bash', [CYRUS_SCRIPT, ...args], { env, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === -1 ? `\n${err.message}` : '') });
    });
  });
}

function parseKeys(stdout: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

async function findFreeBlock(from: number): Promise<number> {
  for (let base = from; base < from + 400; base += 10) {
    const free = await Promise.all([0, 1, 2, 3].map((i) => portFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free block of 4 loopback ports between ${from} and ${from + 400}`);
}

// Instances still running when the process exits are stopped synchronously.
const live = new Set<string>();
process.once('exit', () => {
  for (const dir of live) spawnSync('bash', [CYRUS_SCRIPT, 'stop', dir], { timeout: 15_000, stdio: 'ignore' });
});

export async function startCyrus(opts: StartCyrusOptions = {}): Promise<CyrusInstance> {
  const users = opts.users ?? DEFAULT_USERS;
  const made = !opts.dir;
  const dir = opts.dir ?? mkdtempSync('/tmp/mf-cyrus-');
  const keepDir = opts.keepDir ?? process.env.MF_KEEP_CYRUS === '1';
  const env = {
    ...process.env,
    CYRUS_USERS: users.map((u) => `${u.user}:${u.password}`).join(' '),
    CYRUS_ADMIN: ADMIN.user,
    CYRUS_ADMIN_PASSWORD: ADMIN.password,
  };
  const timeoutMs = opts.timeoutMs ?? 60_000;

  // Without a fixed basePort, pick a free block; another test run may grab the
  // same block between the probe and master's bind, so retry a few times.
  let next = opts.basePort ?? 21100;
  let result: RunResult | undefined;
  for (let attempt = 0; attempt < (opts.basePort ? 1 : 4); attempt++) {
    const base = opts.basePort ?? (await findFreeBlock(next));
    result = await runScript(['start', dir, String(base)], env, timeoutMs);
    if (result.code === 0) break;
    if (!/already in use|bind|Address in use/i.test(result.stderr)) break;
    await runScript(['stop', dir], env, 20_000);
    next = base + 10;
  }
  if (!result || result.code !== 0) {
    await runScript(['stop', dir], env, 20_000);
    if (made && !keepDir) rmSync(dir, { recursive: true, force: true });
    throw new Error(`cyrus.sh start ${dir} failed (exit ${result?.code}):\n${result?.stderr}\n${result?.stdout}`);
  }
  live.add(dir);

  const keys = parseKeys(result.stdout);
  const num = (k: string): number => {
    const v = Number(keys.get(k));
    if (!Number.isInteger(v) || v <= 0) throw new Error(`cyrus.sh printed no ${k}:\n${result!.stdout}`);
    return v;
  };
  const lmtpPort = num('LMTP_PORT');
  let stopped = false;

  return {
    dir: keys.get('DIR') ?? dir,
    imapPort: num('IMAP_PORT'),
    pop3Port: num('POP3_PORT'),
    sievePort: num('SIEVE_PORT'),
    lmtpPort,
    users,
    admin: ADMIN,
    syslogFile: keys.get('SYSLOG_FILE') ?? '',
    async stop() {
      if (stopped) return;
      stopped = true;
      const clean = made && !keepDir;
      const r = await runScript(clean ? ['stop', dir, '--clean'] : ['stop', dir], env, 30_000);
      live.delete(dir);
      if (r.code !== 0) throw new Error(`cyrus.sh stop ${dir} failed (exit ${r.code}):\n${r.stderr}`);
    },
    deliver: (to, message, from) => lmtpDeliver(lmtpPort, to, message, from),
  };
}

/** Speaks LMTP to 127.0.0.1:port: LHLO, MAIL FROM, RCPT TO, DATA, QUIT. */
export function lmtpDeliver(
  port: number,
  to: string,
  message: string,
  from = 'e2e-sender@mailfront.test',
  timeoutMs = 15_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let waiter: ((reply: string) => void) | null = null;
    const transcript: string[] = [];
    const timer = setTimeout(() => fail(new Error(`LMTP to port ${port} timed out after ${timeoutMs} ms`)), timeoutMs);

    function fail(err: Error): void {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }

    // A reply is complete at a line "NNN text" (a "NNN-text" line continues it).
    function takeReply(): string | null {
      let start = 0;
      for (;;) {
        const nl = buf.indexOf('\n', start);
        if (nl < 0) return null;
        const line = buf.slice(start, nl).replace(/\r$/, '');
        start = nl + 1;
        if (/^\d{3}(?: |$)/.test(line)) {
          const reply = buf.slice(0, start).replace(/\r?\n$/, '');
          buf = buf.slice(start);
          return reply;
        }
      }
    }

    function readReply(): Promise<string> {
      return new Promise((res) => {
        const r = takeReply();
        if (r !== null) res(r);
        else waiter = res;
      });
    }

    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (waiter) {
        const r = takeReply();
        if (r !== null) {
          const w = waiter;
          waiter = null;
          w(r);
        }
      }
    });
    sock.on('error', (err) => fail(new Error(`LMTP to port ${port}: ${err.message}`)));
    sock.on('close', () => {
      if (waiter) fail(new Error(`LMTP server closed the connection; transcript:\n${transcript.join('\n')}`));
    });

    async function expect(code: string, what: string): Promise<void> {
      const reply = await readReply();
      transcript.push(`S: ${reply}`);
      if (!reply.startsWith(code)) {
        throw new Error(`LMTP ${what}: expected ${code}, got: ${reply}\ntranscript:\n${transcript.join('\n')}`);
      }
    }
    function send(line: string): void {
      transcript.push(`C: ${line}`);
      sock.write(`${line}\r\n`);
    }

    (async () => {
      await expect('220', 'greeting');
      send('LHLO mailfront.test');
      await expect('250', 'LHLO');
      send(`MAIL FROM:<${from}>`);
      await expect('250', 'MAIL FROM');
      send(`RCPT TO:<${to}>`);
      await expect('250', 'RCPT TO');
      send('DATA');
      await expect('354', 'DATA');
      // CRLF line ends, dot-stuffing, and the terminating "."
      const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      sock.write(body.endsWith('\r\n') ? body : `${body}\r\n`);
      transcript.push(`C: <${body.length} bytes>`);
      send('.');
      await expect('250', 'end of DATA'); // LMTP: one reply per accepted recipient
      send('QUIT');
      await expect('221', 'QUIT');
    })().then(
      () => {
        clearTimeout(timer);
        sock.end();
        resolve();
      },
      (err: Error) => fail(err),
    );
  });
}

export interface ImapClientResult {
  ok: boolean;
  error?: string;
  greeting?: string;
  capabilities?: string[];
  login?: string;
  appended?: string;
  mailbox?: string;
  exists?: number;
  messages?: { uid: number; subject: string; from: string; to: string; body: string }[];
}

/** Runs test/helpers/clients/imap_client.py with the given flags and parses its JSON. */
export function imapClient(args: string[], timeoutMs = 30_000): Promise<ImapClientResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'python3',
      [path.join(CLIENTS_DIR, 'imap_client.py'), ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        try {
          resolve(JSON.parse(String(stdout)) as ImapClientResult);
        } catch {
          reject(new Error(`imap_client.py gave no JSON (${err?.message ?? 'exit 0'}):\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

export interface RunOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs sieve-connect against 127.0.0.1:port, handing the password over fd 3
 * (never on the command line). Extra args select the action, e.g.
 * ['--list'] or ['--upload', '--localsieve', file, '--remotesieve', name].
 * `--notlsverify` lets it speak without TLS when the server offers none
 * (a bare Cyrus offers no STARTTLS); pass tlsArgs to replace it.
 */
export function sieveConnect(
  port: number,
  user: string,
  password: string,
  args: string[],
  tlsArgs: string[] = ['--notlsverify'],
  timeoutMs = 20_000,
): Promise<RunOutput> {
  return new Promise((resolve) => {
    const child = spawn(
      'sieve-connect',
      ['--nosrv', '-s', '127.0.0.1', '-p', String(port), '-u', user, '-m', 'PLAIN', '--passwordfd', '3', ...tlsArgs, ...args],
      { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pw = child.stdio[3] as NodeJS.WritableStream;
    pw.on('error', () => {});
    pw.end(`${password}\n`);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
