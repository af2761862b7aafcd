// Login outcomes, bans and the connection rate in the data plane, with a fake
// IMAP backend and clients on several loopback addresses (127.0.0.0/8): a
// banned network is refused at accept with no ServerHello while another
// address is served, the ban ends on time and is reported once.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoginRecord, NativeEvent, NativeSnapshot, Protocol } from '../../src/native.js';
import { readPlain, sendHello } from '../helpers/client-hello.js';
import { buildSnapshot, fakeBackend, makePki, sleep, startProxy, waitFor, within, type FakeBackend, type Pki, type Running } from './harness.js';

const PW = 'n0t-the-Password';
let pki: Pki;
let imap: FakeBackend;

// IMAP that accepts only the password "good" and answers each LOGIN at once.
beforeAll(async () => {
  pki = makePki();
  imap = await fakeBackend('* OK [CAPABILITY IMAP4rev1] fake ready\r\n', (s) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const [tag, cmd, , pw] = line.split(' ');
        if (cmd?.toUpperCase() === 'LOGIN') s.write(pw === 'good' ? `${tag} OK logged in\r\n` : `${tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n`);
        else if (cmd?.toUpperCase() === 'LOGOUT') s.end(`* BYE\r\n${tag} OK\r\n`);
        else if (tag) s.write(`${tag} OK done\r\n`);
      }
    });
  });
});

afterAll(async () => {
  await imap?.close();
  pki?.cleanup();
});

function start(limits: Partial<NativeSnapshot['limits']>, protocol: Protocol = 'imaps'): Running {
  const snap = buildSnapshot(pki, { servers: [imap.address], protocol, limits });
  return startProxy(snap, 2);
}

/** A TLS session from <localAddress> that sends LOGIN lines and collects the answers. */
async function session(port: number, localAddress: string) {
  const s = tls.connect({ host: '127.0.0.1', port, localAddress, servername: 'mail.a.example', ca: pki.ca.rootPem, checkServerIdentity: () => undefined });
  let data = '';
  let closed = false;
  s.setEncoding('latin1');
  s.on('data', (d: string) => (data += d));
  s.on('error', () => {});
  s.on('close', () => (closed = true));
  await within(new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  }), 5000, `TLS from ${localAddress}`);
  await waitFor(() => data.includes('* OK'), 5000, 'greeting');
  let n = 0;
  return {
    async login(user: string, pw: string): Promise<string> {
      const tag = `t${++n}`;
      const from = data.length;
      s.write(`${tag} LOGIN ${user} ${pw}\r\n`);
      await waitFor(() => new RegExp(`^${tag} `, 'm').test(data.slice(from)) || closed, 5000, `answer to ${tag}`);
      return data.slice(from);
    },
    closed: () => closed,
    data: () => data,
    end: () => s.end(),
  };
}

const logins = (r: Running): LoginRecord[] => r.events.filter((e) => e.kind === 'login').map((e) => e.login!);
const of = (r: Running, kind: NativeEvent['kind']) => r.events.filter((e) => e.kind === kind);

describe('login bans', () => {
  it('failures ban the network: the failing session ends, new connections get no ServerHello, another address is served, the ban ends on time, once', async () => {
    const r = start({ loginFailures: { count: 3, windowMs: 10_000, banMs: 2500 }, connectionRate: 0 });
    try {
      const a = await session(r.port, '127.0.0.2');
      expect(await a.login('alice', PW)).toMatch(/^t1 NO /m);
      // A good login from the same network resets nothing.
      const good = await session(r.port, '127.0.0.2');
      expect(await good.login('alice', 'good')).toMatch(/^t1 OK /m);
      good.end();
      expect(await a.login('alice', PW)).toMatch(/^t2 NO /m);
      const third = await a.login('bob', PW);
      expect(third).toMatch(/^t3 NO /m);
      expect(third).toMatch(/^\* BYE \[UNAVAILABLE\] Too many failed logins/m);
      const bannedAt = Date.now();
      await waitFor(() => a.closed(), 3000, 'the session that reached the limit to close');

      const refused = await sendHello(r.port, '127.0.0.2');
      expect(refused.closed).toBe(true);
      expect(refused.bytes.length).toBe(0);
      // Another address is served throughout.
      const other = await session(r.port, '127.0.0.3');
      expect(await other.login('carol', 'good')).toMatch(/^t1 OK /m);
      other.end();

      // Events come in batches (every 50 ms): wait for the ban's.
      await waitFor(() => of(r, 'ban').length > 0, 2000, 'the ban event');
      const bans = of(r, 'ban');
      expect(bans).toHaveLength(1);
      expect(bans[0]).toMatchObject({ network: '127.0.0.2', failures: 3, listener: 'l0' });
      expect(bans[0]!.banMs).toBeGreaterThan(2000);
      expect(r.proxy.stats().bannedNetworks).toBe(1);
      expect(r.proxy.stats().listeners[0]!.rejectedBanned).toBe(1);

      // Still banned just before the end; served after it, and the end is reported once.
      await sleep(Math.max(0, bannedAt + 1500 - Date.now()));
      expect((await sendHello(r.port, '127.0.0.2', 1000)).bytes.length).toBe(0);
      await waitFor(() => of(r, 'ban_ended').length > 0, 4000, 'ban_ended');
      expect(Date.now() - bannedAt).toBeGreaterThanOrEqual(2400);
      const back = await session(r.port, '127.0.0.2');
      expect(await back.login('alice', 'good')).toMatch(/^t1 OK /m);
      back.end();
      await sleep(1200);
      expect(of(r, 'ban_ended')).toEqual([{ kind: 'ban_ended', network: '127.0.0.2' }]);

      const outcomes = logins(r).map((l) => `${l.client.split(':')[0]} ${l.user} ${l.result}`);
      expect(outcomes).toEqual([
        '127.0.0.2 alice failure', '127.0.0.2 alice success', '127.0.0.2 alice failure', '127.0.0.2 bob failure',
        '127.0.0.3 carol success', '127.0.0.2 alice success',
      ]);
      await r.waitRecords(4); // refused connections leave no record: they are counted
      const rec = r.records().find((x) => x.reason === 'banned')!;
      expect(rec).toMatchObject({ login: 'failure', loginFailures: 3, user: 'bob' });
      expect(r.records().filter((x) => x.login === 'success').every((x) => x.loginFailures === 0)).toBe(true);
      expect(JSON.stringify(r.events)).not.toContain(PW);
    } finally {
      r.stop();
    }
  }, 30_000);

  it('exempt networks are never banned; failures are still reported', async () => {
    const r = start({ loginFailures: { count: 2, windowMs: 10_000, banMs: 60_000 }, exempt: ['127.0.0.4/32'] });
    try {
      const a = await session(r.port, '127.0.0.4');
      for (let i = 1; i <= 3; i++) expect(await a.login('alice', PW)).toMatch(new RegExp(`^t${i} NO `, 'm'));
      expect(a.closed()).toBe(false);
      a.end();
      await r.waitRecords(1); // events come in batches: the login events are out by now
      expect(logins(r).filter((l) => l.result === 'failure')).toHaveLength(3);
      expect(of(r, 'ban')).toHaveLength(0);
    } finally {
      r.stop();
    }
  }, 20_000);

  it('login tracking off: no login events, no bans, records say "off"', async () => {
    const r = start({ loginTracking: false, loginFailures: { count: 1, windowMs: 10_000, banMs: 60_000 } });
    try {
      const a = await session(r.port, '127.0.0.5');
      expect(await a.login('alice', PW)).toMatch(/^t1 NO /m);
      expect(await a.login('alice', PW)).toMatch(/^t2 NO /m);
      a.end();
      const [rec] = await r.waitRecords(1);
      expect(rec).toMatchObject({ login: 'off', loginFailures: 0, user: '' });
      expect(logins(r)).toHaveLength(0);
      expect(of(r, 'ban')).toHaveLength(0);
    } finally {
      r.stop();
    }
  }, 20_000);
});

describe('connection rate', () => {
  it('refuses a network over limits.connection_rate at accept (no ServerHello), others are served', async () => {
    const r = start({ connectionRate: 3, loginFailures: { count: 0, windowMs: 1000, banMs: 1000 } });
    try {
      for (let i = 0; i < 3; i++) {
        const ok = await sendHello(r.port, '127.0.0.6', 1500);
        expect(ok.bytes.length).toBeGreaterThan(0); // a ServerHello
      }
      const over = await sendHello(r.port, '127.0.0.6');
      expect(over.closed).toBe(true);
      expect(over.bytes.length).toBe(0);
      expect((await sendHello(r.port, '127.0.0.7', 1500)).bytes.length).toBeGreaterThan(0);
      expect(r.proxy.stats().listeners[0]!.rejectedRate).toBe(1);
    } finally {
      r.stop();
    }
  }, 20_000);

  it('a STARTTLS listener says its short refusal line first', async () => {
    const r = start({ connectionRate: 1 }, 'imap');
    try {
      const first = await readPlain(r.port, '127.0.0.8', 500);
      expect(first.bytes.toString()).toMatch(/^\* OK /);
      const second = await readPlain(r.port, '127.0.0.8');
      expect(second.closed).toBe(true);
      expect(second.bytes.toString()).toBe('* BYE [UNAVAILABLE] Too many connections from your network, try again later\r\n');
    } finally {
      r.stop();
    }
  }, 20_000);
});
