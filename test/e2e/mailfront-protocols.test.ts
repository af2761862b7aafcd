// mailfront (node dist/cli.js run) in front of two real Cyrus IMAP 3.6
// instances: IMAPS, IMAP IDLE, ManageSieve/IMAP/POP3 STARTTLS, POP3S, with a
// certificate per domain chosen by SNI on the same ports, the connection log
// line, and routing *.example.net to a second Cyrus (then losing it).
// Needs root, Cyrus (scripts/install-deps.sh), sieve-connect, curl, openssl. Never skipped.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
function connLine(clientPort: number, timeoutMs = 5000): Promise<LogLine> {
  return mf.waitForLog((l) => l.msg === 'connection closed' && String(l.client).endsWith(`:${clientPort}`), timeoutMs);
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
