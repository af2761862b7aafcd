// mailfront (node dist/cli.js run) in front of two real Cyrus IMAP 3.6
// instances: IMAPS, IMAP IDLE, ManageSieve/IMAP/POP3 STARTTLS, POP3S, with a
// certificate per domain chosen by SNI on the same ports, the connection log
// line, and routing *.example.net to a second Cyrus (then losing it).
// Needs root, Cyrus (scripts/install-deps.sh), sieve-connect, curl, openssl. Never skipped.
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CyrusInstance, imapClient, sieveConnect, startCyrus, CLIENTS_DIR } from '../helpers/cyrus.js';
import {
  e2eConfig,
  e2ePorts,
  fingerprint,
  makeTwoDomainPki,
  type E2ePorts,
  type LogLine,
  type Mailfront,
  openTls,
  run,
  sClient,
  startMailfront,
  tlsProbe,
  type TwoDomainPki,
} from '../helpers/mailfront.js';

let a: CyrusInstance;
let b: CyrusInstance;
let mf: Mailfront;
let pki: TwoDomainPki;
let ports: E2ePorts;
const tmp = mkdtempSync('/tmp/mf-e2e-proto-');

const alice = { user: 'alice@example.com', password: 'secret', name: 'mail.example.com', domain: 'com' as const };
const bob = { user: 'bob@example.net', password: 'secret', name: 'imap.example.net', domain: 'net' as const };
const users = [alice, bob];

beforeAll(async () => {
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  a = await startCyrus();
  b = await startCyrus();
  ports = await e2ePorts();
  mf = await startMailfront(e2eConfig({ letsencrypt: pki.letsencrypt, ports, a, b }));
});

afterAll(async () => {
  await mf?.kill();
  await a?.stop();
  await b?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const leafFp = (u: { domain: 'com' | 'net' }) => fingerprint((u.domain === 'com' ? pki.com : pki.net).certPem);

/** The "connection closed" line of the connection whose client port is `clientPort`. */
/**
 * The connection line of a client, among the lines logged since <mark> (taken
 * before it connected): an ephemeral port may have served an earlier connection.
 */
function connLine(clientPort: number, mark: number, timeoutMs = 5000): Promise<LogLine> {
  return mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).endsWith(`:${clientPort}`), timeoutMs, mark);
}

const imapsArgs = (u: (typeof users)[number], ...rest: string[]) => [
  '--tls', '--port', String(ports.imaps), '--cafile', pki.caFile, '--servername', u.name,
  '--user', u.user, '--password', u.password, ...rest,
];

describe('IMAPS through mailfront', () => {
  it.each(users)('$user (SNI $name, hostname verified) logs in, appends, selects and fetches', async (u) => {
    const subject = `imaps ${u.user} ${Date.now()}`;
    const r = await imapClient(imapsArgs(u, '--append-subject', subject, '--subject', subject, '--body', 'through mailfront\r\n'));
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.greeting).toMatch(/^\* OK .*Cyrus IMAP 3\.6/);
    expect(r.login).toBe('OK');
    expect(r.appended).toMatch(/^\[APPENDUID \d+ \d+\]/);
    expect(r.mailbox).toBe('INBOX');
    expect(r.exists).toBeGreaterThanOrEqual(1);
    expect(r.messages).toHaveLength(1);
    expect(r.messages![0]).toMatchObject({ subject, from: u.user, body: 'through mailfront\r\n' });
  });

  it('each name gets its own certificate on the same port', async () => {
    for (const u of users) {
      const p = await tlsProbe(ports.imaps, u.name, pki.ca.rootPem);
      expect(p.authorizationError).toBeUndefined();
      expect(p.authorized).toBe(true);
      expect(p.fingerprint256).toBe(leafFp(u));
      expect(p.data).toMatch(/^\* OK /);
    }
    // the wildcard covers other example.net names too, and no SNI gets the default
    const other = await tlsProbe(ports.imaps, 'mx.example.net', pki.ca.rootPem);
    expect(other.authorized).toBe(true);
    expect(other.fingerprint256).toBe(leafFp(bob));
  });

  it('curl reads alice\'s INBOX over imaps with hostname verification', async () => {
    const subject = `curl ${Date.now()}`;
    await a.deliver(alice.user, `From: carol@example.org\r\nSubject: ${subject}\r\n\r\nhello curl\r\n`);
    const base = ['-sS', '--max-time', '15', '--cacert', pki.caFile, '--connect-to', `${alice.name}:${ports.imaps}:127.0.0.1:${ports.imaps}`,
      '-u', `${alice.user}:${alice.password}`];
    const search = await run('curl', [...base, `imaps://${alice.name}:${ports.imaps}/INBOX`, '-X', `SEARCH SUBJECT "${subject}"`]);
    expect(search.stderr).toBe('');
    expect(search.code).toBe(0);
    const uids = /^\* SEARCH ((?:\d+ ?)+)\r?$/m.exec(search.stdout)?.[1]?.trim().split(' ');
    expect(uids).toHaveLength(1);
    const fetched = await run('curl', [...base, `imaps://${alice.name}:${ports.imaps}/INBOX;MAILINDEX=${uids![0]}`]);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout).toContain(`Subject: ${subject}`);
    expect(fetched.stdout).toContain('hello curl');
  });
});

describe('IMAP IDLE through mailfront', () => {
  it('the idling client sees the EXISTS push within a few seconds of an LMTP delivery', async () => {
    const s = await openTls(ports.imaps, alice.name, pki.ca.rootPem);
    try {
      await s.waitFor(/^\* OK .*\r\n/m, 5000);
      s.send(`a LOGIN ${alice.user} ${alice.password}`);
      await s.waitFor(/^a OK .*\r\n/m, 5000);
      s.send('b SELECT INBOX');
      const sel = await s.waitFor(/^\* (\d+) EXISTS\r\n[^]*?^b OK .*\r\n/m, 5000);
      const before = Number(sel[1]);
      s.send('c IDLE');
      await s.waitFor(/^\+ .*\r\n/m, 5000);
      const mark = s.data().length;
      const t0 = Date.now();
      await a.deliver(alice.user, `Subject: idle push ${t0}\r\n\r\npushed\r\n`);
      await s.waitFor(new RegExp(`^\\* ${before + 1} EXISTS\\r\\n`, 'm'), 5000, mark);
      expect(Date.now() - t0).toBeLessThan(5000);
      s.send('DONE');
      await s.waitFor(/^c OK .*\r\n/m, 5000, mark);
      s.send('d LOGOUT');
      await s.waitFor(/^\* BYE .*\r\n/m, 5000, mark);
    } finally {
      s.close();
    }
  });
});

describe('ManageSieve STARTTLS through mailfront (sieve-connect)', () => {
  it.each(users)('$user (--tlshostname $name, verified) uploads, lists and activates a script', async (u) => {
    const tlsArgs = ['--tlshostname', u.name, '--tlscafile', pki.caFile];
    const local = path.join(tmp, `${u.domain}.sieve`);
    const script = `require ["fileinto"];\nif header :contains "subject" "${u.domain}-spam" { fileinto "INBOX"; }\nkeep;\n`;
    writeFileSync(local, script);
    const name = `mf-${u.domain}`;
    const mark = mf.lines.length;
    const up = await sieveConnect(ports.sieve, u.user, u.password, ['--upload', '--localsieve', local, '--remotesieve', name], tlsArgs);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    // sieve-connect resets the connection after LOGOUT: an ordinary end, logged at info.
    const line = await mf.waitForLog((l) => l.msg === 'connection closed' && l.listener === 'sieve', 5000, mark);
    expect(line.level).toBe('info');
    expect(line.reason).toMatch(/^(backend|client)_closed$/);
    const before = await sieveConnect(ports.sieve, u.user, u.password, ['--list'], tlsArgs);
    expect(before.code).toBe(0);
    expect(before.stdout.trim().split('\n')).toContain(`"${name}"`);
    const act = await sieveConnect(ports.sieve, u.user, u.password, ['--activate', '--remotesieve', name], tlsArgs);
    expect(act.stderr).toBe('');
    expect(act.code).toBe(0);
    const list = await sieveConnect(ports.sieve, u.user, u.password, ['--list'], tlsArgs);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split('\n')).toContain(`"${name}" ACTIVE`);
    const back = path.join(tmp, `${u.domain}-back.sieve`);
    const down = await sieveConnect(ports.sieve, u.user, u.password, ['--download', '--remotesieve', name, '--localsieve', back], tlsArgs);
    expect(down.code).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe(script);
  });

  it('sieve-connect refuses a name the certificate does not cover (hostname checking is on)', async () => {
    const r = await sieveConnect(ports.sieve, alice.user, alice.password, ['--list'], ['--tlshostname', 'mail.example.org', '--tlscafile', pki.caFile]);
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('ACTIVE');
  });
});

describe('openssl s_client: the right certificate per name on the same STARTTLS port', () => {
  const cases = [
    { starttls: 'sieve' as const, port: () => ports.sieve, input: 'LOGOUT\r\n', reply: /^OK/m },
    { starttls: 'imap' as const, port: () => ports.imap, input: 'a LOGOUT\r\n', reply: /^\* BYE/m },
    { starttls: 'pop3' as const, port: () => ports.pop3, input: 'QUIT\r\n', reply: /^\+OK/m },
  ];
  for (const c of cases) {
    it.each(users)(`-starttls ${c.starttls} -servername $name verifies and shows that name's certificate`, async (u) => {
      const r = await sClient(c.port(), u.name, pki.caFile, c.starttls, c.input);
      expect(r.stdout).toContain('Verify return code: 0 (ok)');
      expect(r.verified).toBe(true);
      expect(r.code).toBe(0);
      expect(r.leafPem).toBeDefined();
      expect(fingerprint(r.leafPem!)).toBe(leafFp(u));
      // the protocol continues inside TLS: the backend answered our command
      expect(r.stdout.slice(r.stdout.indexOf('Verify return code'))).toMatch(c.reply);
    });
  }

  it('imaps (implicit TLS) too', async () => {
    for (const u of users) {
      const r = await sClient(ports.imaps, u.name, pki.caFile, undefined, 'a LOGOUT\r\n');
      expect(r.verified).toBe(true);
      expect(fingerprint(r.leafPem!)).toBe(leafFp(u));
    }
  });
});

describe('IMAP STARTTLS, POP3S and POP3 STLS through mailfront (imaplib, poplib)', () => {
  it.each(users)('IMAP STARTTLS: $user logs in and fetches', async (u) => {
    const subject = `starttls ${u.user} ${Date.now()}`;
    await a.deliver(u.user, `Subject: ${subject}\r\n\r\nvia starttls\r\n`);
    const r = await imapClient([
      '--starttls', '--port', String(ports.imap), '--cafile', pki.caFile, '--servername', u.name,
      '--user', u.user, '--password', u.password, '--subject', subject,
    ]);
    expect(r.error).toBeUndefined();
    // imaplib re-reads CAPABILITY after STARTTLS: now Cyrus's, with login allowed and no second STARTTLS
    expect(r.capabilities).toContain('AUTH=PLAIN');
    expect(r.capabilities).not.toContain('STARTTLS');
    expect(r.capabilities).not.toContain('LOGINDISABLED');
    expect(r.messages?.map((m) => m.subject)).toEqual([subject]);
  });

  it.each(users)('POP3S: $user retrieves the last message (SNI $name, verified)', async (u) => {
    const subject = `pop3s ${u.user} ${Date.now()}`;
    await a.deliver(u.user, `Subject: ${subject}\r\n\r\nvia pop3s\r\n`);
    const r = await run('python3', [
      path.join(CLIENTS_DIR, 'pop3_client.py'), '--tls', '--port', String(ports.pop3s), '--cafile', pki.caFile,
      '--servername', u.name, '--user', u.user, '--password', u.password, '--retr-last',
    ]);
    const out = JSON.parse(r.stdout) as { ok: boolean; error?: string; greeting: string; count: number; last: { subject: string; body: string } };
    expect(out.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(out.greeting).toMatch(/^\+OK .*Cyrus POP3 3\.6/);
    expect(out.count).toBeGreaterThanOrEqual(1);
    expect(out.last.subject).toBe(subject);
    expect(out.last.body).toMatch(/^via pop3s(\r\n)?$/);
  });

  it('POP3 STLS: bob retrieves the last message', async () => {
    const subject = `stls ${Date.now()}`;
    await a.deliver(bob.user, `Subject: ${subject}\r\n\r\nvia stls\r\n`);
    const r = await run('python3', [
      path.join(CLIENTS_DIR, 'pop3_client.py'), '--stls', '--port', String(ports.pop3), '--cafile', pki.caFile,
      '--servername', bob.name, '--user', bob.user, '--password', bob.password, '--retr-last',
    ]);
    const out = JSON.parse(r.stdout) as { ok: boolean; error?: string; capabilities: string[]; last: { subject: string } };
    expect(out.error).toBeUndefined();
    expect(out.capabilities).toContain('STLS');
    expect(out.last.subject).toBe(subject);
  });
});

/** Established TCP connections whose local port is `port`: remote port -> socket inode. */
function establishedTo(port: number): Map<number, string> {
  const out = new Map<number, string>();
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[1] !== `0100007F:${hex}` || f[3] !== '01') continue;
    out.set(parseInt(f[2]!.split(':')[1]!, 16), f[9]!);
  }
  return out;
}

/** The pid holding the socket with this inode, if any. */
function pidOfSocket(inode: string): number | undefined {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return Number(pid);
      }
    } catch {
      /* gone or not ours */
    }
  }
  return undefined;
}

describe('the connection log line', () => {
  it('ties the client address and port to backend_local, the address Cyrus sees for that login', async () => {
    const mark = mf.lines.length;
    const s = await openTls(ports.imaps, alice.name, pki.ca.rootPem);
    const clientPort = s.socket.localPort!;
    let cyrusSide: Map<number, string>;
    const pids = new Map<number, number | undefined>();
    try {
      await s.waitFor(/^\* OK .*\r\n/m, 5000);
      s.send(`a LOGIN ${alice.user} ${alice.password}`);
      await s.waitFor(/^a OK .*\r\n/m, 5000);
      // While the session is open: every connection Cyrus's imapd holds, by the peer port it sees.
      cyrusSide = establishedTo(a.imapPort);
      for (const [port, inode] of cyrusSide) pids.set(port, pidOfSocket(inode));
      s.send('b LOGOUT');
      await s.waitFor(/^b OK .*\r\n/m, 5000);
    } finally {
      s.close();
    }
    const line = await connLine(clientPort, mark);
    expect(line).toMatchObject({
      level: 'info',
      component: 'conn',
      listener: 'imaps',
      protocol: 'imaps',
      client: `127.0.0.1:${clientPort}`,
      backend: `127.0.0.1:${a.imapPort}`,
      pool: 'a-imap',
      sni: alice.name,
    });
    expect(['client_closed', 'backend_closed']).toContain(line.reason);
    expect(line.tls_version).toMatch(/^TLSv1\.[23]$/);
    expect(line.bytes_in).toBeGreaterThan(0);
    expect(line.bytes_out).toBeGreaterThan(0);
    const m = /^127\.0\.0\.1:(\d+)$/.exec(String(line.backend_local));
    expect(m, `backend_local ${String(line.backend_local)}`).not.toBeNull();
    const backendPort = Number(m![1]);
    expect(backendPort).not.toBe(clientPort);
    // Cyrus 3.6's login line carries no port ("login: localhost [127.0.0.1] alice@example.com ..."), so the
    // port is matched through the kernel: imapd held a connection whose peer was exactly backend_local...
    expect([...cyrusSide!.keys()]).toContain(backendPort);
    // ...and, when the syslog catcher runs, that imapd process logged alice's login.
    const pid = pids.get(backendPort);
    expect(pid).toBeGreaterThan(0);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('imapd');
    if (a.syslogFile && existsSync(a.syslogFile)) {
      const re = new RegExp(`/imap\\[${pid}\\]: login: localhost \\[127\\.0\\.0\\.1\\] alice@example\\.com plaintext User logged in`);
      const deadline = Date.now() + 3000;
      while (!re.test(readFileSync(a.syslogFile, 'utf8')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(readFileSync(a.syslogFile, 'utf8')).toMatch(re);
    }
  });
});

// Last in this file: it stops instance B.
describe('routing *.example.net to a second Cyrus', () => {
  it("bob's mail and sieve scripts live on instance B, reached through mailfront by SNI", async () => {
    const subject = `only-on-b ${Date.now()}`;
    await b.deliver(bob.user, `From: carol@example.org\r\nSubject: ${subject}\r\n\r\nsecond pool\r\n`);
    const via = await imapClient(imapsArgs(bob, '--subject', subject));
    expect(via.error).toBeUndefined();
    expect(via.greeting).toContain(`mf-cyrus-${b.imapPort} `);
    expect(via.messages?.map((m) => m.subject)).toEqual([subject]);
    // instance A does not have it (asked directly)
    const onA = await imapClient(['--port', String(a.imapPort), '--user', bob.user, '--password', bob.password, '--subject', subject]);
    expect(onA.ok).toBe(true);
    expect(onA.messages).toEqual([]);
    // example.com stays on A
    const aliceVia = await imapClient(imapsArgs(alice));
    expect(aliceVia.greeting).toContain(`mf-cyrus-${a.imapPort} `);
    // a script uploaded through mailfront's sieve listener lands on B for bob, on A for alice
    const local = path.join(tmp, 'route.sieve');
    writeFileSync(local, 'keep;\n');
    for (const u of users) {
      const up = await sieveConnect(ports.sieve, u.user, u.password, ['--upload', '--localsieve', local, '--remotesieve', `route-${u.domain}`],
        ['--tlshostname', u.name, '--tlscafile', pki.caFile]);
      expect(up.code).toBe(0);
    }
    const bBob = await sieveConnect(b.sievePort, bob.user, bob.password, ['--list']);
    expect(bBob.code).toBe(0);
    expect(bBob.stdout.trim().split('\n')).toContain('"route-net"');
    const aBob = await sieveConnect(a.sievePort, bob.user, bob.password, ['--list']);
    expect(aBob.code).toBe(0);
    expect(aBob.stdout).not.toContain('route-net');
    const aAlice = await sieveConnect(a.sievePort, alice.user, alice.password, ['--list']);
    expect(aAlice.stdout.trim().split('\n')).toContain('"route-com"');
    // and the log names the pool
    const mark = mf.lines.length;
    const p = await tlsProbe(ports.imaps, bob.name, pki.ca.rootPem);
    const line = await connLine(p.localPort, mark);
    expect(line).toMatchObject({ pool: 'b-imap', backend: `127.0.0.1:${b.imapPort}`, sni: bob.name });
  });

  it('with instance B stopped: example.net clients get a clean goodbye, example.com keeps working', async () => {
    // The pool's health check (health_check: 500ms) saw it up, and sees it go down.
    await mf.waitForLog((l) => l.msg === 'backend server up' && l.pool === 'b-imap', 5000);
    await b.stop();
    const down = await mf.waitForLog((l) => l.msg === 'backend server down' && l.pool === 'b-imap', 5000);
    expect(down).toMatchObject({ server: `127.0.0.1:${b.imapPort}`, level: 'warn' });
    const mark = mf.lines.length;
    const p = await tlsProbe(ports.imaps, bob.name, pki.ca.rootPem, { until: /^\* BYE .*\r\n/m });
    expect(p.authorized).toBe(true);
    expect(p.data).toMatch(/^\* BYE \[UNAVAILABLE\][^\r\n]*\r\n/);
    const line = await connLine(p.localPort, mark);
    expect(line).toMatchObject({ listener: 'imaps', sni: bob.name, pool: 'b-imap', reason: 'backend_unavailable', level: 'warn' });

    // the server closes after the BYE
    const closed = await tlsProbe(ports.imaps, bob.name, pki.ca.rootPem, { until: /$^/ });
    expect(closed.ended).toBe(true);
    expect(closed.data).toMatch(/^\* BYE \[UNAVAILABLE\]/);

    // ManageSieve for example.net: the protocol's own goodbye after STARTTLS
    const sv = await sClient(ports.sieve, bob.name, pki.caFile, 'sieve', '');
    expect(sv.verified).toBe(true);
    expect(sv.stdout.slice(sv.stdout.indexOf('Verify return code'))).toMatch(/^BYE /m);

    const r = await imapClient(imapsArgs(alice));
    expect(r.error).toBeUndefined();
    expect(r.login).toBe('OK');
    const sieve = await sieveConnect(ports.sieve, alice.user, alice.password, ['--list'], ['--tlshostname', alice.name, '--tlscafile', pki.caFile]);
    expect(sieve.code).toBe(0);
    expect(sieve.stdout.trim().split('\n')).toContain('"route-com"');
  });
});
