// A Dovecot-to-Cyrus move behind one mailfront: example.com lives on a real
// Cyrus 3.6, example.org on a real Dovecot 2.3 (Debian's packages, run from a
// private mount namespace by scripts/dovecot.sh), on the same listeners,
// routed by SNI. Dovecot reads mailfront's PROXY v2 header with the TLS TLVs
// (proxy_protocol: v2-ssl): its log names the real client and the session as
// secured, and it accepts a plaintext login with disable_plaintext_auth = yes
// left on. A plain v2 pool to the same Dovecot is the control: refused.
// Needs root, Cyrus (scripts/install-deps.sh), sieve-connect, curl, openssl,
// and Debian's mirrors once (the Dovecot packages are cached). Never skipped.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS_DIR, type CyrusInstance, DEFAULT_USERS, imapClient, sieveConnect, startCyrus } from '../helpers/cyrus.js';
import { type DovecotInstance, startDovecot } from '../helpers/dovecot.js';
import { issue, makeCA, makeLetsEncryptTree } from '../helpers/pki.js';
import {
  fingerprint,
  freePorts,
  type LogLine,
  type Mailfront,
  openTls,
  run,
  runCli,
  sClient,
  startMailfront,
  tlsProbe,
} from '../helpers/mailfront.js';

const tmp = mkdtempSync('/tmp/mf-e2e-dv-');
let cyrus: CyrusInstance;
let dovecot: DovecotInstance;
let mf: Mailfront;
let caFile: string;
let caPem: string;
const fp: Record<string, string> = {};
let ports: { imaps: number; imap: number; pop3s: number; pop3: number; sieve: number; imapsV2: number; metrics: number };

const alice = { user: 'alice@example.com', password: 'secret', name: 'mail.example.com', server: /Cyrus IMAP 3\.6/ };
const carol = { user: 'carol@example.org', password: 'secret', name: 'mail.example.org', server: /Dovecot ready/ };
const users = [alice, carol];

/**
 * The configuration of docs/migrating-dovecot-to-cyrus.md: Cyrus by default,
 * example.org still on Dovecot by a route; cutOver() is the same file without
 * that route (the step the guide describes).
 */
function config(cutOver = false): string {
  return `certificates:
  letsencrypt: [${path.join(tmp, 'le')}]
  default: mail.example.com
listeners:
  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${ports.imaps}"], backend: cyrus-imap}
  - {name: imap, protocol: imap, listen: ["127.0.0.1:${ports.imap}"], backend: cyrus-imap}
  - {name: pop3s, protocol: pop3s, listen: ["127.0.0.1:${ports.pop3s}"], backend: cyrus-pop3}
  - {name: pop3, protocol: pop3, listen: ["127.0.0.1:${ports.pop3}"], backend: cyrus-pop3}
  - {name: sieve, protocol: managesieve, listen: ["127.0.0.1:${ports.sieve}"], backend: cyrus-sieve}
  - {name: imaps-v2, protocol: imaps, listen: ["127.0.0.1:${ports.imapsV2}"], backend: cyrus-imap}
backends:
  cyrus-imap: {servers: ["127.0.0.1:${cyrus.imapPort}"]}
  cyrus-pop3: {servers: ["127.0.0.1:${cyrus.pop3Port}"]}
  cyrus-sieve: {servers: ["127.0.0.1:${cyrus.sievePort}"]}
  dovecot-imap: {servers: ["127.0.0.1:${dovecot.imapPort}"], proxy_protocol: v2-ssl, health_check: 1s}
  dovecot-pop3: {servers: ["127.0.0.1:${dovecot.pop3Port}"], proxy_protocol: v2-ssl}
  dovecot-sieve: {servers: ["127.0.0.1:${dovecot.sievePort}"], proxy_protocol: v2-ssl}
  dovecot-imap-v2: {servers: ["127.0.0.1:${dovecot.imapPort}"], proxy_protocol: v2}
${cutOver ? '' : `routes:
  - sni: mail.example.org
    backends: {imaps: dovecot-imap, imap: dovecot-imap, pop3s: dovecot-pop3, pop3: dovecot-pop3, sieve: dovecot-sieve, imaps-v2: dovecot-imap-v2}
`}workers: 2
metrics: {listen: "127.0.0.1:${ports.metrics}"}
log: {level: info}
`;
}

beforeAll(async () => {
  const ca = makeCA(path.join(tmp, 'ca'), { name: 'mailfront dovecot e2e' });
  caPem = ca.rootPem;
  caFile = path.join(tmp, 'ca.pem');
  writeFileSync(caFile, ca.rootPem);
  const com = issue(ca, { names: ['mail.example.com'], dir: path.join(tmp, 'issued', 'com') });
  const org = issue(ca, { names: ['mail.example.org'], dir: path.join(tmp, 'issued', 'org') });
  makeLetsEncryptTree(path.join(tmp, 'le'), { 'mail.example.com': com, 'mail.example.org': org });
  fp[alice.name] = fingerprint(com.certPem);
  fp[carol.name] = fingerprint(org.certPem);
  // carol also has a (migrated, empty) Cyrus account: the cut-over test moves her there.
  // Both assigned even when one fails, so afterAll stops the other.
  const [c, d] = await Promise.allSettled([startCyrus({ users: [...DEFAULT_USERS, { user: carol.user, password: carol.password }] }), startDovecot()]);
  if (c.status === 'fulfilled') cyrus = c.value;
  if (d.status === 'fulfilled') dovecot = d.value;
  if (c.status === 'rejected') throw c.reason;
  if (d.status === 'rejected') throw d.reason;
  const [imaps, imap, pop3s, pop3, sieve, imapsV2, metrics] = (await freePorts(7)) as [number, number, number, number, number, number, number];
  ports = { imaps, imap, pop3s, pop3, sieve, imapsV2, metrics };
  mf = await startMailfront(config());
}, 180_000);

afterAll(async () => {
  await mf?.kill();
  await Promise.allSettled([cyrus?.stop(), dovecot?.stop()]);
  rmSync(tmp, { recursive: true, force: true });
});

function connLine(clientPort: number, mark: number, timeoutMs = 5000): Promise<LogLine> {
  return mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).endsWith(`:${clientPort}`), timeoutMs, mark);
}

const imapsArgs = (u: (typeof users)[number], port = ports.imaps) => [
  '--tls', '--port', String(port), '--cafile', caFile, '--servername', u.name, '--user', u.user, '--password', u.password,
];

describe('one domain on Cyrus, one on Dovecot, on the same listeners', () => {
  it.each(users)('IMAPS: $user gets the certificate of $name and its own server, logs in, appends, fetches', async (u) => {
    const p = await tlsProbe(ports.imaps, u.name, caPem);
    expect(p.authorized).toBe(true);
    expect(p.fingerprint256).toBe(fp[u.name]);
    expect(p.data).toMatch(u.server);
    const subject = `imaps ${u.user} ${Date.now()}`;
    const r = await imapClient([...imapsArgs(u), '--append-subject', subject, '--subject', subject]);
    expect(r.error).toBeUndefined();
    expect(r.greeting).toMatch(u.server);
    expect(r.login).toBe('OK');
    expect(r.messages?.map((m) => m.subject)).toEqual([subject]);
  });

  it.each(users)('IMAP STARTTLS: $user logs in after STARTTLS with SNI $name (login allowed, no second STARTTLS)', async (u) => {
    const s = await sClient(ports.imap, u.name, caFile, 'imap', 'a LOGOUT\r\n');
    expect(s.verified).toBe(true);
    expect(fingerprint(s.leafPem!)).toBe(fp[u.name]);
    const r = await imapClient(['--starttls', '--port', String(ports.imap), '--cafile', caFile, '--servername', u.name,
      '--user', u.user, '--password', u.password]);
    expect(r.error).toBeUndefined();
    expect(r.login).toBe('OK');
    expect(r.capabilities).toContain('AUTH=PLAIN');
    expect(r.capabilities).not.toContain('LOGINDISABLED');
    expect(r.capabilities).not.toContain('STARTTLS');
  });

  it.each(users)('POP3 STLS and POP3S: $user retrieves the last message from its own server', async (u) => {
    const subject = `pop3 ${u.user} ${Date.now()}`;
    // Put the message in directly: LMTP for Cyrus, IMAP APPEND on Dovecot's direct port.
    if (u === alice) await cyrus.deliver(u.user, `Subject: ${subject}\r\n\r\nvia pop3\r\n`);
    else expect((await imapClient(['--port', String(dovecot.imapDirectPort), '--user', u.user, '--password', u.password, '--append-subject', subject])).login).toBe('OK');
    for (const mode of ['--stls', '--tls']) {
      const r = await run('python3', [path.join(CLIENTS_DIR, 'pop3_client.py'), mode, '--port', String(mode === '--tls' ? ports.pop3s : ports.pop3),
        '--cafile', caFile, '--servername', u.name, '--user', u.user, '--password', u.password, '--retr-last']);
      const out = JSON.parse(r.stdout) as { error?: string; greeting: string; last: { subject: string } };
      expect(out.error, mode).toBeUndefined();
      expect(out.last.subject).toBe(subject);
      if (mode === '--tls') expect(out.greeting).toMatch(u === alice ? /Cyrus POP3/ : /Dovecot ready/);
    }
    const s = await sClient(ports.pop3, u.name, caFile, 'pop3', 'QUIT\r\n');
    expect(fingerprint(s.leafPem!)).toBe(fp[u.name]);
  });

  it.each(users)('ManageSieve STARTTLS: sieve-connect uploads and activates a script for $user on its own server', async (u) => {
    const tlsArgs = ['--tlshostname', u.name, '--tlscafile', caFile];
    const s = await sClient(ports.sieve, u.name, caFile, 'sieve', 'LOGOUT\r\n');
    expect(s.verified).toBe(true);
    expect(fingerprint(s.leafPem!)).toBe(fp[u.name]);
    const local = path.join(tmp, `${u.user}.sieve`);
    const script = `require ["fileinto"];\nif header :contains "subject" "moved" { fileinto "INBOX"; }\nkeep;\n`;
    writeFileSync(local, script);
    const name = `mf-${u.user.split('@')[1]!.replace('.', '-')}`;
    const up = await sieveConnect(ports.sieve, u.user, u.password, ['--upload', '--localsieve', local, '--remotesieve', name], tlsArgs);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const act = await sieveConnect(ports.sieve, u.user, u.password, ['--activate', '--remotesieve', name], tlsArgs);
    expect(act.stderr).toBe('');
    expect(act.code).toBe(0);
    // Asked on the backend itself: the script is there, active, and only there.
    const own = u === alice ? cyrus.sievePort : dovecot.sieveDirectPort;
    const list = await sieveConnect(own, u.user, u.password, ['--list']);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split('\n')).toContain(`"${name}" ACTIVE`);
    const back = path.join(tmp, `${u.user}-back.sieve`);
    const down = await sieveConnect(own, u.user, u.password, ['--download', '--remotesieve', name, '--localsieve', back]);
    expect(down.code).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe(script);
  });

  it("mailfront's log names each domain's pool", async () => {
    const mark = mf.lines.length;
    for (const u of users) {
      const p = await tlsProbe(ports.imaps, u.name, caPem);
      const line = await connLine(p.localPort, mark);
      expect(line).toMatchObject({ listener: 'imaps', sni: u.name, pool: u === alice ? 'cyrus-imap' : 'dovecot-imap' });
    }
  });
});

describe("Dovecot reads mailfront's PROXY v2 TLVs", () => {
  it('logs the real client (rip, rport = the client\'s own port, lport = mailfront\'s listener) and the session as secured', async () => {
    const from = dovecot.log().length;
    const s = await openTls(ports.imaps, carol.name, caPem);
    const clientPort = s.socket.localPort!;
    try {
      const greeting = await s.waitFor(/^\* OK (.*)\r\n/m, 5000);
      // Secured: the plaintext mechanisms are offered, LOGINDISABLED is not.
      expect(greeting[1]).toContain('AUTH=PLAIN');
      expect(greeting[1]).not.toContain('LOGINDISABLED');
      s.send('a AUTHENTICATE PLAIN ' + Buffer.from(`\0${carol.user}\0${carol.password}`).toString('base64'));
      await s.waitFor(/^a OK .*\r\n/m, 5000);
      s.send('b LOGOUT');
      await s.waitFor(/^b OK .*\r\n/m, 5000);
    } finally {
      s.close();
    }
    const login = await dovecot.waitForLog(/imap-login: Info: Login: user=<carol@example\.org>/, 5000, from);
    expect(login).toContain(`rip=127.0.0.1, rport=${clientPort}, lip=127.0.0.1, lport=${ports.imaps},`);
    expect(login).toMatch(/, method=PLAIN, /);
    expect(login).toMatch(/, secured, /);
    // mailfront's own line ties the same client port to the Dovecot pool.
    const line = await connLine(clientPort, 0);
    expect(line).toMatchObject({ pool: 'dovecot-imap', backend: `127.0.0.1:${dovecot.imapPort}` });
    // And it kept Dovecot's default: plaintext logins need a secured connection.
    expect(readFileSync(path.join(dovecot.dir, 'dovecot.conf'), 'utf8')).toMatch(/^disable_plaintext_auth = yes$/m);
  });

  it('ManageSieve and POP3 logins through mailfront are secured too, with their client ports', async () => {
    const from = dovecot.log().length;
    const list = await sieveConnect(ports.sieve, carol.user, carol.password, ['--list'], ['--tlshostname', carol.name, '--tlscafile', caFile]);
    expect(list.code).toBe(0);
    const sieveLogin = await dovecot.waitForLog(/managesieve-login: Info: Login: user=<carol@example\.org>/, 5000, from);
    expect(sieveLogin).toMatch(new RegExp(`rip=127\\.0\\.0\\.1, rport=\\d+, lip=127\\.0\\.0\\.1, lport=${ports.sieve},.* secured, `));
    const r = await run('python3', [path.join(CLIENTS_DIR, 'pop3_client.py'), '--tls', '--port', String(ports.pop3s), '--cafile', caFile,
      '--servername', carol.name, '--user', carol.user, '--password', carol.password]);
    expect(JSON.parse(r.stdout).error).toBeUndefined();
    const popLogin = await dovecot.waitForLog(/pop3-login: Info: Login: user=<carol@example\.org>/, 5000, from);
    expect(popLogin).toMatch(new RegExp(`lport=${ports.pop3s},.* secured, `));
  });

  it('health checks of a PROXY-protocol pool send the LOCAL header first: Dovecot (haproxy = yes) greets them and the pool is up', async () => {
    const up = await mf.waitForLog((l) => l.msg === 'backend server up' && l.pool === 'dovecot-imap', 5000, 0);
    expect(up.server).toBe(`127.0.0.1:${dovecot.imapPort}`);
    expect(await metricLines('mailfront_backend_up{')).toContain(`mailfront_backend_up{pool="dovecot-imap",server="127.0.0.1:${dovecot.imapPort}"} 1`);
    expect(mf.lines.some((l) => l.msg === 'backend server down' && l.pool === 'dovecot-imap')).toBe(false);
  });

  it('the control: plain v2 (addresses only) to the same Dovecot is not secured, and the plaintext login is refused', async () => {
    const from = dovecot.log().length;
    const s = await openTls(ports.imapsV2, carol.name, caPem);
    const clientPort = s.socket.localPort!;
    try {
      const greeting = await s.waitFor(/^\* OK (.*)\r\n/m, 5000);
      expect(greeting[1]).toContain('LOGINDISABLED');
      s.send(`a LOGIN ${carol.user} ${carol.password}`);
      const no = await s.waitFor(/^a NO (.*)\r\n/m, 5000);
      expect(no[1]).toMatch(/^\[PRIVACYREQUIRED\] Plaintext authentication disallowed/);
      s.send('b LOGOUT');
      await s.waitFor(/^b OK .*\r\n/m, 5000);
    } finally {
      s.close();
    }
    const gone = await dovecot.waitForLog(new RegExp(`imap-login: Info: .*rport=${clientPort},`), 5000, from);
    expect(gone).not.toMatch(/, secured,/);
    expect(gone).toMatch(/auth failed|disallowed plaintext auth/);
    expect(dovecot.log().slice(from)).not.toMatch(/imap-login: Info: Login: user=<carol/);
  });
});

/** The metric lines whose name starts with <prefix> (what `curl ... | grep` shows). */
async function metricLines(prefix: string): Promise<string[]> {
  const r = await run('curl', ['-sS', '--max-time', '5', `http://127.0.0.1:${ports.metrics}/metrics`]);
  expect(r.code).toBe(0);
  return r.stdout.split('\n').filter((l) => l.startsWith(prefix));
}

const connectCount = async (pool: string) => {
  const line = (await metricLines('mailfront_backend_connect_duration_seconds_count')).find((l) => l.includes(`pool="${pool}"`));
  return line ? Number(line.split(' ').pop()) : 0;
};

/** The count once it reaches <atLeast>: a connection's record reaches the metrics a batch (<= 50 ms) after it closed. */
const connectCountReaching = async (pool: string, atLeast: number, ms = 5000) => {
  const deadline = Date.now() + ms;
  let n = await connectCount(pool);
  while (n < atLeast && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = await connectCount(pool);
  }
  return n;
};

// Last in this file: it moves example.org to Cyrus.
describe('cutting example.org over to Cyrus (docs/migrating-dovecot-to-cyrus.md)', () => {
  it('moves the sieve scripts, drops the route, SIGHUP: new sessions reach Cyrus, a session already open stays on Dovecot', async () => {
    const tlsArgs = ['--tlshostname', carol.name, '--tlscafile', caFile];
    // 1. Before: carol's scripts, downloaded through mailfront (still Dovecot's).
    const listed = await sieveConnect(ports.sieve, carol.user, carol.password, ['--list'], tlsArgs);
    expect(listed.code).toBe(0);
    const active = /^"([^"]+)" ACTIVE$/m.exec(listed.stdout)?.[1];
    expect(active).toBe('mf-example-org');
    const saved = path.join(tmp, 'carol-saved.sieve');
    const down = await sieveConnect(ports.sieve, carol.user, carol.password, ['--download', '--remotesieve', active!, '--localsieve', saved], tlsArgs);
    expect(down.code).toBe(0);

    // 2. A session that started before the cut-over.
    const old = await openTls(ports.imaps, carol.name, caPem);
    const oldPort = old.socket.localPort!;
    await old.waitFor(/^\* OK .*Dovecot ready.*\r\n/m, 5000);
    old.send(`a LOGIN ${carol.user} ${carol.password}`);
    await old.waitFor(/^a OK .*\r\n/m, 5000);
    const cyrusBefore = await connectCount('cyrus-imap');
    const dovecotBefore = await connectCount('dovecot-imap');

    // 3. The route goes, `mailfront check`, then SIGHUP (systemctl reload mailfront).
    mf.writeConfig(config(true));
    const check = await runCli(['check', '--config', mf.configPath]);
    expect(check.code, check.stderr).toBe(0);
    const mark = mf.lines.length;
    mf.signal('SIGHUP');
    await mf.waitForLog((l) => l.msg === 'reloaded', 10_000, mark);
    expect(await metricLines('mailfront_last_reload_successful')).toEqual(['mailfront_last_reload_successful 1']);

    // 4. A new session for carol reaches Cyrus, with the same certificate.
    const p = await tlsProbe(ports.imaps, carol.name, caPem);
    expect(p.fingerprint256).toBe(fp[carol.name]);
    expect(p.data).toMatch(/Cyrus IMAP 3\.6/);
    expect((await connLine(p.localPort, mark)).pool).toBe('cyrus-imap');
    const r = await imapClient(imapsArgs(carol));
    expect(r.greeting).toMatch(/Cyrus IMAP/);
    expect(r.login).toBe('OK');
    expect(await connectCountReaching('cyrus-imap', cyrusBefore + 2)).toBeGreaterThanOrEqual(cyrusBefore + 2);
    expect(await connectCount('dovecot-imap')).toBe(dovecotBefore);

    // 5. The old session still talks to Dovecot, and its log line says so when it ends.
    old.send('b SELECT INBOX');
    await old.waitFor(/^b OK .*\r\n/m, 5000);
    old.send('c LOGOUT');
    await old.waitFor(/^c OK .*\r\n/m, 5000);
    old.close();
    expect(await connLine(oldPort, 0)).toMatchObject({ pool: 'dovecot-imap', sni: carol.name });
    // The guide's check over the log since the reload: new sessions on Cyrus, the old one on Dovecot.
    const since = path.join(tmp, 'since-reload.log');
    writeFileSync(since, mf.lines.slice(mark).map((l) => JSON.stringify(l)).join('\n') + '\n');
    const pools = await run('bash', ['-c', `grep '"sni":"mail.example.org"' ${since} | grep -o '"pool":"[^"]*"' | sort | uniq -c`]);
    const counts = Object.fromEntries(pools.stdout.trim().split('\n').map((l) => /(\d+) "pool":"([^"]+)"/.exec(l)!).map((m) => [m[2]!, Number(m[1])]));
    expect(counts['dovecot-imap']).toBe(1);
    expect(counts['cyrus-imap']).toBeGreaterThanOrEqual(2);

    // 6. The scripts go up through mailfront again, now to Cyrus, and the saved one is active there.
    const up = await sieveConnect(ports.sieve, carol.user, carol.password, ['--upload', '--localsieve', saved, '--remotesieve', active!], tlsArgs);
    expect(up.code, up.stderr).toBe(0);
    const act = await sieveConnect(ports.sieve, carol.user, carol.password, ['--activate', '--remotesieve', active!], tlsArgs);
    expect(act.code, act.stderr).toBe(0);
    const onCyrus = await sieveConnect(cyrus.sievePort, carol.user, carol.password, ['--list']);
    expect(onCyrus.stdout.trim().split('\n')).toContain(`"${active}" ACTIVE`);
  });
});
