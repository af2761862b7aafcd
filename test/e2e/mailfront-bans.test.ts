// Login bans in front of a real Cyrus IMAP 3.6: wrong passwords from python's
// imaplib and poplib (each from its own loopback address) and from
// sieve-connect (127.0.0.1: it cannot choose its source) ban the client
// network after N tries; while the ban lasts that address gets no ServerHello
// (and the STARTTLS listener its short refusal line), another address is
// served; the ban ends on time; a good login in between resets nothing; no
// password reaches the log. Needs root, Cyrus, sieve-connect. Never skipped.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS_DIR, type CyrusInstance, sieveConnect, startCyrus } from '../helpers/cyrus.js';
import { readPlain, sendHello } from '../helpers/client-hello.js';
import { e2eConfig, e2ePorts, freePorts, makeTwoDomainPki, type E2ePorts, type LogLine, type Mailfront, startMailfront, type TwoDomainPki } from '../helpers/mailfront.js';

const BAN_S = 6;
const WRONG = { imap: 'Wr0ng-imap-Pw', pop3: 'Wr0ng-pop3-Pw', sieve: 'Wr0ng-sieve-Pw' };
const alice = { user: 'alice@example.com', password: 'secret' };

let cyrus: CyrusInstance;
let mf: Mailfront;
let pki: TwoDomainPki;
let ports: E2ePorts;
let metricsPort: number;
const tmp = mkdtempSync('/tmp/mf-e2e-bans-');

beforeAll(async () => {
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  cyrus = await startCyrus();
  ports = await e2ePorts();
  [metricsPort] = (await freePorts(1)) as [number];
  const yaml = e2eConfig({
    letsencrypt: pki.letsencrypt,
    ports,
    a: cyrus,
    extra: `limits:\n  login_failures: {count: 3, window: 60s, ban: ${BAN_S}s}\n  connection_rate: 600\n`,
  }).replace('metrics: false', `metrics: {listen: "127.0.0.1:${metricsPort}"}`);
  mf = await startMailfront(yaml);
}, 120_000);

afterAll(async () => {
  await mf?.kill();
  await cyrus?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** python3 login_tries.py: each try a new implicit-TLS connection from <source>; the password goes over fd 3. */
function triesFd(proto: 'imap' | 'pop3', source: string, password: string, n = 1): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const port = proto === 'imap' ? ports.imaps : ports.pop3s;
    const child = spawn('python3', [path.join(CLIENTS_DIR, 'login_tries.py'), '--proto', proto, '--port', String(port), '--source', source,
      '--user', alice.user, '--password-fd', '3', '--tries', String(n)], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const pw = child.stdio[3] as NodeJS.WritableStream;
    pw.on('error', () => {});
    pw.end(`${password}\n`);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', () => {
      clearTimeout(timer);
      try {
        resolve((JSON.parse(stdout) as { results: string[] }).results);
      } catch {
        reject(new Error(`login_tries.py gave no JSON:\n${stdout}\n${stderr}`));
      }
    });
  });
}

const sieveTls = () => ['--tlshostname', 'mail.example.com', '--tlscafile', pki.caFile];
const isLogin = (l: LogLine, result: string, ip: string) => l.msg.startsWith('login') && l.result === result && String(l.client).startsWith(`${ip}:`);
const count = (pred: (l: LogLine) => boolean) => mf.lines.filter(pred).length;

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('login bans in front of Cyrus', () => {
  it('imaplib: 3 wrong passwords ban 127.0.0.2; no ServerHello while banned; 127.0.0.3 served; the ban ends on time', async () => {
    expect(await triesFd('imap', '127.0.0.2', WRONG.imap, 3)).toEqual(['no', 'no', 'no']);
    const ban = await mf.waitForLog((l) => l.msg === 'client network banned' && l.network === '127.0.0.2', 5000);
    const bannedAt = Date.now();
    expect(ban).toMatchObject({ level: 'warn', failures: 3, ban_s: BAN_S, listener: 'imaps' });
    expect(count((l) => isLogin(l, 'failure', '127.0.0.2'))).toBe(3);
    expect(mf.lines.find((l) => isLogin(l, 'failure', '127.0.0.2'))).toMatchObject({
      msg: 'login failed', listener: 'imaps', protocol: 'imaps', sni: 'mail.example.com', user: alice.user, mech: 'LOGIN', network: '127.0.0.2',
    });

    // While banned: closed before the handshake, on every listener; other addresses are served.
    const hello = await sendHello(ports.imaps, '127.0.0.2');
    expect(hello).toEqual({ bytes: Buffer.alloc(0), closed: true });
    expect((await sendHello(ports.pop3s, '127.0.0.2')).bytes.length).toBe(0);
    expect((await triesFd('imap', '127.0.0.2', alice.password))[0]).toMatch(/^refused/);
    expect((await sendHello(ports.imaps, '127.0.0.3')).bytes.length).toBeGreaterThan(0);
    expect(await triesFd('imap', '127.0.0.3', alice.password)).toEqual(['ok']);
    expect(await triesFd('pop3', '127.0.0.3', alice.password)).toEqual(['ok']);
    expect(await metric('mailfront_auth_total{listener="imaps",result="failure"}')).toBe(3);
    expect(await metric('mailfront_connections_rejected_total{listener="imaps",kind="banned"}')).toBeGreaterThanOrEqual(2);

    // The ban ends on time (within a sweep of a second), logged once.
    const ended = await mf.waitForLog((l) => l.msg === 'client network ban ended' && l.network === '127.0.0.2', (BAN_S + 5) * 1000);
    const took = Date.now() - bannedAt;
    expect(took).toBeGreaterThan((BAN_S - 1) * 1000);
    expect(took).toBeLessThan((BAN_S + 3) * 1000);
    expect(ended.level).toBe('info');
    expect(await triesFd('imap', '127.0.0.2', alice.password)).toEqual(['ok']);
    expect(count((l) => l.msg === 'client network banned' && l.network === '127.0.0.2')).toBe(1);
    expect(count((l) => l.msg === 'client network ban ended' && l.network === '127.0.0.2')).toBe(1);
    // The successful session's own connection line says it authenticated, and as whom.
    const conn = await mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).startsWith('127.0.0.2:') && l.authenticated === true, 5000);
    expect(conn).toMatchObject({ login: 'success', user: alice.user, login_failures: 0 });
  }, 120_000);

  it('poplib: a good login between wrong ones resets nothing: the third failure still bans 127.0.0.4', async () => {
    expect(await triesFd('pop3', '127.0.0.4', WRONG.pop3, 2)).toEqual(['no', 'no']);
    expect(await triesFd('pop3', '127.0.0.4', alice.password)).toEqual(['ok']);
    expect(count((l) => l.msg === 'client network banned' && l.network === '127.0.0.4')).toBe(0);
    expect(await triesFd('pop3', '127.0.0.4', WRONG.pop3)).toEqual(['no']);
    await mf.waitForLog((l) => l.msg === 'client network banned' && l.network === '127.0.0.4', 5000);
    expect((await sendHello(ports.pop3s, '127.0.0.4')).bytes.length).toBe(0);
    expect(mf.lines.filter((l) => l.msg.startsWith('login') && String(l.client).startsWith('127.0.0.4:')).map((l) => `${l.result} ${l.mech}`))
      .toEqual(['failure USER', 'failure USER', 'success USER', 'failure USER']);
    expect(await triesFd('pop3', '127.0.0.5', alice.password)).toEqual(['ok']);
  }, 120_000);

  it('sieve-connect: 3 wrong passwords ban 127.0.0.1 (loopback is not exempt unless listed); the STARTTLS listener says why', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await sieveConnect(ports.sieve, alice.user, WRONG.sieve, ['--list'], sieveTls());
      expect(r.code).not.toBe(0);
    }
    await mf.waitForLog((l) => l.msg === 'client network banned' && l.network === '127.0.0.1', 5000);
    expect(count((l) => isLogin(l, 'failure', '127.0.0.1') && l.listener === 'sieve' && l.mech === 'PLAIN' && l.user === alice.user)).toBe(3);
    const refusal = await readPlain(ports.sieve, '127.0.0.1');
    expect(refusal.closed).toBe(true);
    expect(refusal.bytes.toString()).toBe('BYE (TRYLATER) "Too many failed logins from your network, try again later"\r\n');
    expect((await sendHello(ports.imaps, '127.0.0.1')).bytes.length).toBe(0);
    const again = await sieveConnect(ports.sieve, alice.user, alice.password, ['--list'], sieveTls());
    expect(again.code).not.toBe(0);
    // Another address is still served by the same Cyrus.
    expect(await triesFd('imap', '127.0.0.6', alice.password)).toEqual(['ok']);
    await mf.waitForLog((l) => l.msg === 'client network ban ended' && l.network === '127.0.0.1', (BAN_S + 5) * 1000);
    const ok = await sieveConnect(ports.sieve, alice.user, alice.password, ['--list'], sieveTls());
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    await mf.waitForLog((l) => isLogin(l, 'success', '127.0.0.1') && l.listener === 'sieve', 5000);
  }, 120_000);

  it('no password or SASL payload reaches the log', () => {
    const text = JSON.stringify(mf.lines) + mf.rawStdout.join('\n') + mf.stderr();
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    for (const pw of [...Object.values(WRONG), alice.password]) {
      expect(text).not.toContain(pw);
      for (const authz of ['', alice.user]) expect(text).not.toContain(b64(`${authz}\0${alice.user}\0${pw}`));
    }
    expect(count((l) => l.msg.startsWith('login'))).toBeGreaterThan(10);
  });
});
