// mailfront's lifecycle against a real Cyrus: SIGHUP reload of a renewed
// Let's Encrypt lineage (new connections get the new certificate, live ones
// keep working), a broken renewal (the previous certificate stays), and the
// SIGTERM drain (listeners closed at once, exit 0 within timeouts.drain).
// Needs root and Cyrus (scripts/install-deps.sh). Never skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CyrusInstance, imapClient, startCyrus } from '../helpers/cyrus.js';
import {
  e2eConfig,
  e2ePorts,
  fingerprint,
  makeTwoDomainPki,
  type E2ePorts,
  type Mailfront,
  openTls,
  run,
  type TlsSession,
  startMailfront,
  tlsProbe,
  type TwoDomainPki,
} from '../helpers/mailfront.js';
import { issue, renewLineage } from '../helpers/pki.js';

let a: CyrusInstance;
let mf: Mailfront;
let pki: TwoDomainPki;
let ports: E2ePorts;
const tmp = mkdtempSync('/tmp/mf-e2e-life-');
const alice = { user: 'alice@example.com', password: 'secret', name: 'mail.example.com' };
const bob = { user: 'bob@example.net', password: 'secret', name: 'imap.example.net' };
const DRAIN_MS = 2000;

beforeAll(async () => {
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  a = await startCyrus();
  ports = await e2ePorts();
  mf = await startMailfront(e2eConfig({ letsencrypt: pki.letsencrypt, ports, a, extra: `timeouts: {drain: ${DRAIN_MS / 1000}s}\n` }));
});

afterAll(async () => {
  await mf?.kill();
  await a?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function loggedIn(u: { user: string; password: string; name: string } = alice): Promise<TlsSession> {
  const s = await openTls(ports.imaps, u.name, pki.ca.rootPem);
  await s.waitFor(/^\* OK .*\r\n/m, 5000);
  s.send(`a LOGIN ${u.user} ${u.password}`);
  await s.waitFor(/^a OK .*\r\n/m, 5000);
  s.send('b SELECT INBOX');
  await s.waitFor(/^b OK .*\r\n/m, 5000);
  return s;
}

const probe = async (name: string) => {
  const p = await tlsProbe(ports.imaps, name, pki.ca.rootPem);
  expect(p.authorizationError, `${name} was served a certificate for ${p.subjectaltname}`).toBeUndefined();
  expect(p.data).toMatch(/^\* OK /);
  return p;
};

describe('SIGHUP reload', () => {
  it('serves a renewed lineage to new connections; a connection opened before keeps working', async () => {
    expect((await probe(alice.name)).fingerprint256).toBe(fingerprint(pki.com.certPem));
    const before = await loggedIn();
    try {
      const renewed = issue(pki.ca, { names: ['mail.example.com', 'imap.example.com'], dir: path.join(tmp, 'pki', 'issued', 'com-2') });
      renewLineage(pki.letsencrypt, pki.comLineage, renewed, 2);
      const mark = mf.lines.length;
      mf.signal('SIGHUP');
      const reloaded = await mf.waitForLog((l) => l.msg === 'reloaded' || /reload failed/.test(l.msg), 10_000, mark);
      expect(reloaded).toMatchObject({ msg: 'reloaded', why: 'SIGHUP' });

      const after = await probe(alice.name);
      expect(after.fingerprint256).toBe(fingerprint(renewed.certPem));
      expect(after.fingerprint256).not.toBe(fingerprint(pki.com.certPem));
      expect(after.serial).not.toBe((await probe('imap.example.net')).serial);
      // the other lineage is untouched
      expect((await probe('imap.example.net')).fingerprint256).toBe(fingerprint(pki.net.certPem));

      // the connection from before the reload still has the old certificate and still works
      expect(before.socket.getPeerCertificate().fingerprint256).toBe(fingerprint(pki.com.certPem));
      const mark2 = before.data().length;
      before.send('c NOOP');
      await before.waitFor(/^c OK .*\r\n/m, 5000, mark2);
      before.send('d SELECT INBOX');
      await before.waitFor(/^d OK \[READ-WRITE\].*\r\n/m, 5000, mark2);
      before.send('e LOGOUT');
      await before.waitFor(/^e OK .*\r\n/m, 5000, mark2);

      // and a full client session over the renewed certificate
      const r = await imapClient(['--tls', '--port', String(ports.imaps), '--cafile', pki.caFile, '--servername', alice.name,
        '--user', alice.user, '--password', alice.password]);
      expect(r.error).toBeUndefined();
      expect(r.login).toBe('OK');
      pki.com = renewed;
    } finally {
      before.close();
    }
  });

  it('a broken renewal (key does not match) is reported and the previous valid certificate stays', async () => {
    const good = pki.com;
    const bad = issue(pki.ca, { names: ['mail.example.com', 'imap.example.com'], dir: path.join(tmp, 'pki', 'issued', 'com-3') });
    const otherKey = issue(pki.ca, { names: ['unrelated.example.org'], dir: path.join(tmp, 'pki', 'issued', 'other') }).keyPem;
    renewLineage(pki.letsencrypt, pki.comLineage, { ...bad, keyPem: otherKey }, 3);
    const mark = mf.lines.length;
    mf.signal('SIGHUP');
    const outcome = await mf.waitForLog((l) => l.msg === 'reloaded' || /reload failed/.test(l.msg), 10_000, mark);
    const since = mf.lines.slice(mark);
    // either the pair was reported by path and left out, or the whole reload was refused
    const complaint = since.find(
      (l) => (l.level === 'error' || l.level === 'warn') && (String(l.path ?? '').includes(pki.comLineage) || /reload failed/.test(l.msg)),
    );
    expect(complaint, JSON.stringify(since, null, 1)).toBeDefined();
    expect(['reloaded', 'reload failed: still serving the previous configuration']).toContain(outcome.msg);

    const p = await probe(alice.name);
    expect(p.authorized).toBe(true);
    expect(p.fingerprint256).toBe(fingerprint(good.certPem));
    expect((await probe('imap.example.net')).fingerprint256).toBe(fingerprint(pki.net.certPem));
    const r = await imapClient(['--tls', '--port', String(ports.imaps), '--cafile', pki.caFile, '--servername', alice.name,
      '--user', alice.user, '--password', alice.password]);
    expect(r.error).toBeUndefined();
    expect(r.login).toBe('OK');
  });
});

function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const t = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 2000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

// Last in this file: it stops mailfront.
describe('SIGTERM drain', () => {
  it('refuses new connections at once, ends the idle client and exits 0 within timeouts.drain', async () => {
    const idle = await loggedIn(bob); // example.net: whatever the reload tests left of example.com
    const clientPort = idle.socket.localPort!;
    const mark = idle.data().length;
    idle.send('c IDLE');
    await idle.waitFor(/^\+ .*\r\n/m, 5000, mark);

    const t0 = Date.now();
    mf.signal('SIGTERM');
    await mf.waitForLog((l) => l.msg === 'stopping', 5000);
    // new connections are refused on every listener while the idle one is still being drained
    for (const [name, port] of Object.entries(ports)) {
      let outcome = '';
      for (const deadline = Date.now() + 1000; Date.now() < deadline; ) {
        outcome = await connectOutcome(port);
        if (outcome === 'ECONNREFUSED') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      // on failure, say who listens there (a port taken over by another process is not mailfront's fault)
      const who = outcome === 'ECONNREFUSED' ? '' : (await run('ss', ['-ltnp', `sport = :${port}`])).stdout;
      expect(outcome, `${name} port ${port} still accepts after SIGTERM; listening:\n${who}`).toBe('ECONNREFUSED');
    }
    expect(idle.isClosed()).toBe(false);

    const exit = await mf.stop(DRAIN_MS + 8000); // already signalled: waits for the exit
    const elapsed = Date.now() - t0;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(DRAIN_MS + 3000);
    expect(elapsed).toBeGreaterThanOrEqual(DRAIN_MS - 200); // the idle client was given the drain time

    await Promise.race([idle.closed, new Promise((r) => setTimeout(r, 3000))]);
    expect(idle.isClosed()).toBe(true);

    const line = mf.lines.findLast((l) => l.msg === 'connection closed' && l.client === `127.0.0.1:${clientPort}`);
    expect(line, JSON.stringify(mf.lines.slice(-10), null, 1)).toBeDefined();
    expect(line!.reason).toBe('shutdown');
    // The idle client at least (a connection of an earlier test may still be closing).
    expect(mf.lines.find((l) => l.msg === 'draining')?.active).toBeGreaterThanOrEqual(1);
    expect(mf.lines.find((l) => l.msg === 'stopped')).toBeDefined();
  });
});
