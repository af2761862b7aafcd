// Proves the real-Cyrus harness (scripts/cyrus.sh + test/helpers/cyrus.ts)
// directly against Cyrus, without mailfront: IMAP, POP3, LMTP, ManageSieve,
// IDLE push through idled, two independent instances, clean stop.
// Needs root and the packages of scripts/install-deps.sh. Never skipped.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENTS_DIR,
  CYRUS_SCRIPT,
  type CyrusInstance,
  imapClient,
  sieveConnect,
  startCyrus,
} from '../helpers/cyrus.js';

let one: CyrusInstance;
let two: CyrusInstance;
const tmp = mkdtempSync('/tmp/mf-harness-');

beforeAll(async () => {
  one = await startCyrus();
  two = await startCyrus(); // the next free block of ports
});

afterAll(async () => {
  await one?.stop();
  await two?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function greeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no greeting on ${port}: ${JSON.stringify(data)}`));
    }, 5000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      data += d;
      // sieve's greeting ends with an OK line; the others are one line
      if (/\r\n$/.test(data) && (!data.startsWith('"') || /^OK/m.test(data))) {
        clearTimeout(t);
        s.destroy();
        resolve(data);
      }
    });
    s.on('error', reject);
  });
}

const alice = { user: 'alice@example.com', password: 'secret' };
const bob = { user: 'bob@example.net', password: 'secret' };
const imapArgs = (c: CyrusInstance, u: { user: string; password: string }, ...rest: string[]): string[] => [
  '--port', String(c.imapPort), '--user', u.user, '--password', u.password, ...rest,
];

describe('cyrus.sh instance', () => {
  it('listens on four loopback ports derived from the base port and greets on each', async () => {
    expect(one.pop3Port).toBe(one.imapPort + 1);
    expect(one.sievePort).toBe(one.imapPort + 2);
    expect(one.lmtpPort).toBe(one.imapPort + 3);
    expect(one.dir).toMatch(/^\/tmp\/mf-cyrus-/);
    expect(one.users.map((u) => u.user)).toEqual([alice.user, bob.user]);

    const imap = await greeting(one.imapPort);
    expect(imap).toMatch(/^\* OK \[CAPABILITY [^\]]*AUTH=PLAIN AUTH=LOGIN[^\]]*\] mf-cyrus-\d+ Cyrus IMAP 3\.6/);
    // sasl_mech_list: PLAIN LOGIN took effect, and no STARTTLS (no certificate)
    expect(imap).not.toMatch(/AUTH=(DIGEST-MD5|CRAM-MD5|SCRAM)/);
    expect(imap).not.toContain('STARTTLS');
    expect(await greeting(one.pop3Port)).toMatch(/^\+OK mf-cyrus-\d+ Cyrus POP3 3\.6/);
    const sieve = await greeting(one.sievePort);
    expect(sieve).toMatch(/^"IMPLEMENTATION" "Cyrus timsieved/m);
    expect(sieve).toMatch(/^"SASL" "PLAIN LOGIN"/m);
    expect(sieve).toMatch(/^"SIEVE" "/m);
    expect(sieve).not.toMatch(/^"STARTTLS"/m);
    expect(await greeting(one.lmtpPort)).toMatch(/^220 mf-cyrus-\d+ Cyrus LMTP 3\.6/);
  });

  it('binds only 127.0.0.1', async () => {
    const tcp = readFileSync('/proc/net/tcp', 'utf8') + readFileSync('/proc/net/tcp6', 'utf8');
    for (const port of [one.imapPort, one.pop3Port, one.sievePort, one.lmtpPort]) {
      const hex = port.toString(16).toUpperCase().padStart(4, '0');
      const listening = tcp.split('\n').filter((l) => l.includes(`:${hex} `) && / 0A /.test(l));
      expect(listening.length).toBeGreaterThan(0);
      for (const l of listening) expect(l.trim().split(/\s+/)[1]).toBe(`0100007F:${hex}`);
    }
  });

  it('status reports RUNNING=yes and the same ports; a second start is a no-op', async () => {
    const st = await run('bash', [CYRUS_SCRIPT, 'status', one.dir]);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain('RUNNING=yes');
    expect(st.stdout).toContain(`IMAP_PORT=${one.imapPort}`);
    expect(st.stdout).toContain(`LMTP_PORT=${one.lmtpPort}`);
    const pid = /MASTER_PID=(\d+)/.exec(st.stdout)?.[1];
    expect(pid).toBeDefined();

    const again = await run('bash', [CYRUS_SCRIPT, 'start', one.dir]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`already running in ${one.dir} (master pid ${pid})`);
    expect(again.stdout).toContain(`SIEVE_PORT=${one.sievePort}`);
  });
});

describe('IMAP (python imaplib)', () => {
  it.each([alice, bob])('$user logs in, appends, selects and fetches', async (u) => {
    const subject = `harness ${u.user} ${Date.now()}`;
    const r = await imapClient(imapArgs(one, u, '--append-subject', subject, '--body', 'body of the test\r\n', '--subject', subject));
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.login).toBe('OK');
    expect(r.appended).toMatch(/^\[APPENDUID \d+ \d+\]/);
    expect(r.mailbox).toBe('INBOX');
    expect(r.exists).toBeGreaterThanOrEqual(1);
    expect(r.messages).toHaveLength(1);
    expect(r.messages![0]).toMatchObject({ subject, from: u.user, body: 'body of the test\r\n' });
  });

  it('refuses a wrong password', async () => {
    const r = await imapClient(imapArgs(one, { user: alice.user, password: 'wrong' }));
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/authentication failure|Login failed/i);
  });

  it('the admin user can log in (and has no INBOX of its own)', async () => {
    const r = await imapClient(imapArgs(one, one.admin));
    expect(r.login).toBe('OK');
    expect(r.error).toMatch(/Mailbox does not exist/);
  });
});

describe('LMTP delivery', () => {
  it('a delivered message appears in the INBOX', async () => {
    const subject = `lmtp ${Date.now()}`;
    await one.deliver(bob.user, `From: carol@example.org\r\nTo: ${bob.user}\r\nSubject: ${subject}\r\n\r\n.leading dot\r\nline two\r\n`);
    const r = await imapClient(imapArgs(one, bob, '--subject', subject));
    expect(r.ok).toBe(true);
    expect(r.messages).toHaveLength(1);
    expect(r.messages![0]).toMatchObject({ subject, from: 'carol@example.org', body: '.leading dot\r\nline two\r\n' });
  });

  it('throws with the server reply for an unknown recipient', async () => {
    await expect(one.deliver('nobody@example.net', 'Subject: x\r\n\r\nx\r\n')).rejects.toThrow(/RCPT TO: expected 250, got: 550/);
  });

  it('is visible over POP3', async () => {
    const subject = `pop ${Date.now()}`;
    await one.deliver(alice.user, `Subject: ${subject}\r\n\r\nfor pop\r\n`);
    const r = await run('python3', [
      path.join(CLIENTS_DIR, 'pop3_client.py'), '--port', String(one.pop3Port), '--user', alice.user, '--password', alice.password, '--retr-last',
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { greeting: string; count: number; last: { subject: string; body: string } };
    expect(out.greeting).toMatch(/^\+OK /);
    expect(out.count).toBeGreaterThanOrEqual(1);
    expect(out.last.subject).toBe(subject);
    expect(out.last.body).toMatch(/^for pop(\r\n)?$/); // poplib drops the last line end
  });
});

describe('IMAP IDLE through idled', () => {
  it('pushes EXISTS at once after an LMTP delivery', async () => {
    const s = net.connect({ host: '127.0.0.1', port: one.imapPort });
    s.setEncoding('utf8');
    let data = '';
    s.on('data', (d: string) => (data += d));
    const waitFor = (re: RegExp, ms: number): Promise<string> =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const tick = (): void => {
          const m = re.exec(data);
          if (m) return resolve(m[0]);
          if (Date.now() - started > ms) return reject(new Error(`no ${re} within ${ms} ms; got:\n${data}`));
          setTimeout(tick, 20);
        };
        tick();
      });
    try {
      await waitFor(/^\* OK .*\r\n/m, 5000);
      s.write(`a LOGIN ${alice.user} ${alice.password}\r\n`);
      await waitFor(/^a OK .*\r\n/m, 5000);
      s.write('b SELECT INBOX\r\n');
      const before = Number(/^\* (\d+) EXISTS/m.exec(await waitFor(/^\* \d+ EXISTS\r\n(?:[^]*?)^b OK .*\r\n/m, 5000))![1]);
      s.write('c IDLE\r\n');
      await waitFor(/^\+ idling\r\n/m, 5000);
      data = '';
      const t0 = Date.now();
      await one.deliver(alice.user, `Subject: idle ${t0}\r\n\r\npush\r\n`);
      // Without idled, imapd would poll every imapidlepoll (60 s).
      await waitFor(new RegExp(`^\\* ${before + 1} EXISTS\\r\\n`, 'm'), 3000);
      expect(Date.now() - t0).toBeLessThan(3000);
      s.write('DONE\r\n');
      await waitFor(/^c OK .*\r\n/m, 5000);
    } finally {
      s.destroy();
    }
  });
});

describe('ManageSieve (sieve-connect, no TLS)', () => {
  it('uploads, activates, lists and downloads a script', async () => {
    const local = path.join(tmp, 'vacation.sieve');
    const script = 'require ["fileinto"];\nif header :contains "subject" "spam" { fileinto "INBOX"; }\nkeep;\n';
    writeFileSync(local, script);
    const up = await sieveConnect(one.sievePort, alice.user, alice.password, ['--upload', '--localsieve', local, '--remotesieve', 'harness']);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const act = await sieveConnect(one.sievePort, alice.user, alice.password, ['--activate', '--remotesieve', 'harness']);
    expect(act.code).toBe(0);
    const list = await sieveConnect(one.sievePort, alice.user, alice.password, ['--list']);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split('\n')).toContain('"harness" ACTIVE');
    const back = path.join(tmp, 'back.sieve');
    const down = await sieveConnect(one.sievePort, alice.user, alice.password, ['--download', '--remotesieve', 'harness', '--localsieve', back]);
    expect(down.code).toBe(0);
    expect(readFileSync(back, 'utf8')).toBe(script);
  });

  it('refuses a wrong password', async () => {
    const r = await sieveConnect(one.sievePort, bob.user, 'wrong', ['--list']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Authentication refused by server/);
  });
});

describe('two independent instances', () => {
  it('have their own ports, users and mail', async () => {
    expect(two.imapPort).not.toBe(one.imapPort);
    expect(two.dir).not.toBe(one.dir);
    const subject = `only-in-two ${Date.now()}`;
    await two.deliver(bob.user, `Subject: ${subject}\r\n\r\nsecond pool\r\n`);
    const inTwo = await imapClient(imapArgs(two, bob, '--subject', subject));
    expect(inTwo.messages?.map((m) => m.subject)).toEqual([subject]);
    expect(inTwo.greeting).toContain(`mf-cyrus-${two.imapPort} `);
    const inOne = await imapClient(imapArgs(one, bob, '--subject', subject));
    expect(inOne.ok).toBe(true);
    expect(inOne.messages).toEqual([]);
  });
});

describe('syslog catcher', () => {
  it("routes this instance's login lines to its own log file", async () => {
    const catcherOwnsDevLog = existsSync('/tmp/mf-syslog/catcher.pid');
    expect(one.syslogFile).toBe(`${one.dir}/log/syslog.log`);
    if (!catcherOwnsDevLog) {
      // Someone else listens on /dev/log: Cyrus lines go there; the file stays empty.
      expect(existsSync(one.syslogFile) ? readFileSync(one.syslogFile, 'utf8') : '').toBe('');
      return;
    }
    await imapClient(imapArgs(one, alice));
    const deadline = Date.now() + 3000;
    let text = '';
    while (Date.now() < deadline) {
      text = readFileSync(one.syslogFile, 'utf8');
      if (/\/imap\[\d+\]: login: localhost \[127\.0\.0\.1\] alice@example\.com plaintext User logged in/.test(text)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(text).toMatch(/\/imap\[\d+\]: login: localhost \[127\.0\.0\.1\] alice@example\.com plaintext User logged in/);
    // the other instance's lines do not leak in
    expect(text).not.toContain(`mfc${two.imapPort}/`);
  });
});

describe('stop', () => {
  it('kills master and every child, frees the ports and removes the folder', async () => {
    const extra = await startCyrus();
    const st = await run('bash', [CYRUS_SCRIPT, 'status', extra.dir]);
    const pid = Number(/MASTER_PID=(\d+)/.exec(st.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    await extra.stop();

    expect(existsSync(extra.dir)).toBe(false);
    // no process still runs with this instance's config
    const left = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(extra.dir);
        } catch {
          return false;
        }
      });
    expect(left).toEqual([]);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    for (const port of [extra.imapPort, extra.pop3Port, extra.sievePort, extra.lmtpPort]) {
      await expect(
        new Promise((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port }, () => {
            s.destroy();
            resolve('connected');
          });
          s.on('error', (e: NodeJS.ErrnoException) => reject(e));
        }),
      ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    }
    const after = await run('bash', [CYRUS_SCRIPT, 'status', extra.dir]);
    expect(after.code).toBe(3);
    expect(after.stdout).toContain('RUNNING=no');
  });
});
