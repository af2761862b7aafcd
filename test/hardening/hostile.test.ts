// Hostile input: slowloris (handshake and pre-TLS dialog), the per-client
// limit, bad SNI, renegotiation, old protocols and weak ciphers, ALPACA.
// The proxy is built by the real control-plane path (YAML -> prepare()), so
// the shipped TLS defaults are what is tested. Opt-in: MF_HARDENING=1.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor, within } from '../native/harness.js';
import { freePorts, makeTwoDomainPki } from '../helpers/mailfront.js';
import type { TwoDomainPki } from '../helpers/mailfront.js';
import { IMAP_GREETING, KINDS, closesWithin, connectKind, echoBackends, echoRoundTrip, hardeningConfig, sha, startInProcess } from './util.js';
import type { Backends, InProcess, Kind, Ports } from './util.js';
import { randomBytes } from 'node:crypto';

// Part of npm test; MF_HARDENING=1 also prints the figures for docs/hardening-report.md.
const ON = process.env.MF_HARDENING === '1';
const figures: Record<string, unknown> = {};

let dir: string;
let two: TwoDomainPki;
let b: Backends;

beforeAll(async () => {
  dir = mkdtempSync('/tmp/mf-hard-hostile-');
  two = makeTwoDomainPki(dir);
  b = await echoBackends();
});
afterAll(async () => {
  await b?.close();
  rmSync(dir, { recursive: true, force: true });
  if (ON) console.log(`HARDENING-FIGURES hostile ${JSON.stringify(figures)}`);
});

async function start(extra: string, name: string, workers = 2): Promise<{ px: InProcess; ports: Ports }> {
  const [imaps, pop3s, imap, pop3, sieve] = (await freePorts(5)) as [number, number, number, number, number];
  const ports: Ports = { imaps, pop3s, imap, pop3, sieve };
  const cfg = path.join(dir, `${name}.yaml`);
  writeFileSync(cfg, hardeningConfig({ letsencrypt: two.letsencrypt, ports, b, extra }));
  return { px: await startInProcess(cfg, workers), ports };
}

const GREET: Record<Kind, number> = {
  imaps: IMAP_GREETING.length,
  pop3s: '+OK fake pop3 ready\r\n'.length,
  imap: 0, // the backend greeting is swallowed after STARTTLS
  pop3: 0,
  sieve: -1, // capabilities re-issued: measured at run time
};

/** A legitimate client: TLS (STARTTLS by hand where needed), greeting, a 16 KiB echo round trip. */
async function legit(kind: Kind, port: number, localAddress = '127.0.0.3', ms = 3000): Promise<number> {
  const t0 = Date.now();
  const s = await connectKind(kind, port, { servername: 'mail.example.com', ca: two.ca.rootPem, localAddress }, ms);
  try {
    let skip = GREET[kind];
    if (skip === -1) {
      // ManageSieve: wait for the capabilities ending in OK.
      let buf = '';
      await within(new Promise<void>((r) => s.on('data', function f(d: Buffer) {
        buf += d.toString('latin1');
        if (/^OK.*\r\n/m.test(buf)) { s.off('data', f); r(); }
      })), ms, 'sieve capabilities');
      skip = 0;
    }
    const p = randomBytes(16 * 1024);
    const e = await echoRoundTrip(s, p, skip, ms);
    expect(sha(e)).toBe(sha(p));
    return Date.now() - t0;
  } finally {
    s.destroy();
  }
}

/** openssl s_client, bounded; returns all its output. */
function sclient(port: number, args: string[], input = '', ms = 8000, delayMs = 400): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'mail.example.com', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.stdin.on('error', () => {});
    const kill = setTimeout(() => p.kill('SIGKILL'), ms);
    setTimeout(() => {
      if (input) p.stdin.write(input);
      setTimeout(() => p.stdin.end(), input ? 1500 : 300);
    }, delayMs);
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, out });
    });
  });
}

const STARTTLS_ARG: Record<Kind, string[]> = { imaps: [], pop3s: [], imap: ['-starttls', 'imap'], pop3: ['-starttls', 'pop3'], sieve: ['-starttls', 'sieve'] };
/** The handshake completed (s_client prints a negotiated cipher). */
const negotiated = (out: string) => /New, TLSv1\.[0-3], Cipher is (?!\(NONE\))/.test(out);

describe('hostile input', () => {
  it('slowloris on the handshake and the pre-TLS dialog (500 + 500 conns, 1 byte/s) is cut at the timeouts; legit clients served throughout', async () => {
    const { px, ports } = await start('timeouts: {handshake: 3s, pretls: 3s}\nlimits: {connections: 2000, per_client: 1000, connection_rate: off}\n', 'slowloris');
    const N = 500;
    const attackers: net.Socket[] = [];
    try {
      // A ClientHello dribbled one byte a second never completes; a pre-TLS line without CRLF neither.
      const hello = Buffer.from('16030100c8010000c40303', 'hex');
      const mk = (port: number) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
        s.on('error', () => {});
        s.on('data', () => {});
        attackers.push(s);
        return s;
      };
      for (let i = 0; i < N; i++) mk(ports.imaps);
      for (let i = 0; i < N; i++) mk(ports.imap);
      await waitFor(() => px.proxy.stats().active >= 2 * N, 5000, `attack established: ${px.proxy.stats().active}`);
      const t0 = Date.now();
      let tick = 0;
      const drip = setInterval(() => {
        for (const [i, s] of attackers.entries()) if (!s.destroyed) s.write(i < N ? hello.subarray(tick % hello.length, (tick % hello.length) + 1) : 'a');
        tick++;
      }, 1000);
      // Legitimate clients, every kind, from another address, while the attack holds 1,000 slots.
      const legitMs: number[] = [];
      for (let round = 0; round < 2; round++) for (const k of KINDS) legitMs.push(await legit(k, ports[k]));
      const closed = await Promise.all(attackers.map((s) => closesWithin(s, 8000)));
      clearInterval(drip);
      const cutAfter = Date.now() - t0;
      expect(closed.filter((c) => !c).length, 'attackers still open after the timeouts').toBe(0);
      const recs = await px.waitRecords((r) => r.length >= 2 * N + 10, 5000, 'records');
      const reasons = recs.reduce<Record<string, number>>((m, r) => ((m[r.reason] = (m[r.reason] ?? 0) + 1), m), {});
      expect(reasons.handshake_timeout).toBe(N);
      expect(reasons.pretls_timeout).toBe(N);
      await waitFor(() => px.proxy.stats().active === 0, 5000, 'active 0');
      // And after the attack, still served.
      legitMs.push(await legit('imaps', ports.imaps));
      figures.slowloris = { attackers: 2 * N, cutAfterMs: cutAfter, reasons, legitServed: legitMs.length, legitMaxMs: Math.max(...legitMs) };
    } finally {
      for (const s of attackers) s.destroy();
      px.stop();
    }
  }, 60_000);

  it('per-client limit: 127.0.0.2 is capped at per_client, 127.0.0.3 is served, a freed slot is reusable', async () => {
    const { px, ports } = await start('limits: {connections: 1000, per_client: 5}\n', 'perclient');
    const held: tls.TLSSocket[] = [];
    try {
      for (let i = 0; i < 5; i++) held.push(await connectKind('imaps', ports.imaps, { servername: 'mail.example.com', localAddress: '127.0.0.2' }));
      // The 6th..15th from the same address are closed without a handshake.
      let refused = 0;
      for (let i = 0; i < 10; i++) {
        try {
          const s = await connectKind('imaps', ports.imaps, { servername: 'mail.example.com', localAddress: '127.0.0.2' }, 2000);
          s.destroy();
        } catch {
          refused++;
        }
      }
      expect(refused).toBe(10);
      // STARTTLS listeners share the per-address table.
      await expect(connectKind('imap', ports.imap, { servername: 'mail.example.com', localAddress: '127.0.0.2' }, 2000)).rejects.toThrow();
      expect(px.counters('imaps').rejectedPerClient).toBe(10);
      for (const k of KINDS) await legit(k, ports[k], '127.0.0.3');
      held.shift()!.destroy();
      await waitFor(() => px.proxy.stats().active === 4, 3000, 'slot released');
      held.push(await connectKind('imaps', ports.imaps, { servername: 'mail.example.com', localAddress: '127.0.0.2' }));
      figures.perClient = { limit: 5, refused: px.counters('imaps').rejectedPerClient + px.counters('imap').rejectedPerClient };
    } finally {
      for (const s of held) s.destroy();
      px.stop();
    }
  });

  it('over-long (300 bytes) and malformed SNI (bad characters, IP literal): default or reject per unknown_sni, never a crash', async () => {
    // A hand-made TLS 1.2 ClientHello: node and openssl refuse to send a 300-byte name.
    const hello = (sni: Buffer) => {
      const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
      const ext = (type: number, body: Buffer) => Buffer.concat([u16(type), u16(body.length), body]);
      const sniExt = ext(0, Buffer.concat([u16(sni.length + 3), Buffer.from([0]), u16(sni.length), sni]));
      const groups = ext(10, Buffer.from([0, 4, 0, 0x1d, 0, 0x17]));
      const points = ext(11, Buffer.from([1, 0]));
      const sigalgs = ext(13, Buffer.from([0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]));
      const exts = Buffer.concat([sniExt, groups, points, sigalgs]);
      const body = Buffer.concat([
        Buffer.from([3, 3]), randomBytes(32), Buffer.from([0]),
        u16(4), Buffer.from([0xc0, 0x2b, 0xc0, 0x2f]), Buffer.from([1, 0]), u16(exts.length), exts,
      ]);
      const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]);
      return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
    };
    const probe = async (port: number, sni: Buffer): Promise<string> => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      const chunks: Buffer[] = [];
      s.on('data', (d) => chunks.push(d));
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write(hello(sni));
      await within(new Promise<void>((r) => {
        const t = setInterval(() => Buffer.concat(chunks).length >= 7 && (clearInterval(t), r()), 10);
        s.once('close', () => (clearInterval(t), r()));
      }), 3000, 'server reply');
      s.destroy();
      const d = Buffer.concat(chunks);
      if (d[0] === 0x16 && d[5] === 2) return 'server_hello';
      if (d[0] === 0x15) return `alert_${d[6]}`;
      return `other_${d.subarray(0, 8).toString('hex')}`;
    };
    const cases: Record<string, Buffer> = {
      long300: Buffer.from('a'.repeat(60) + '.' + 'b'.repeat(60) + '.' + 'c'.repeat(60) + '.' + 'd'.repeat(60) + '.' + 'e'.repeat(48) + '.example'),
      badChars: Buffer.from('mail.exa mple!$.com'),
      ipLiteral: Buffer.from('127.0.0.1'),
      ipv6Literal: Buffer.from('[::1]'),
      nonAscii: Buffer.from('m\u00e4il.example.com', 'utf8'),
      controlChar: Buffer.from('mail\x01.example.com', 'latin1'),
      justDots: Buffer.from('...'),
      knownName: Buffer.from('mail.example.com'),
    };
    expect(cases.long300!.length).toBe(300);
    const result: Record<string, Record<string, string>> = {};
    for (const mode of ['default', 'reject'] as const) {
      const cfg = path.join(dir, `sni-${mode}.yaml`);
      const [p1, p2, p3, p4, p5] = (await freePorts(5)) as [number, number, number, number, number];
      const ps: Ports = { imaps: p1, pop3s: p2, imap: p3, pop3: p4, sieve: p5 };
      writeFileSync(cfg, hardeningConfig({ letsencrypt: two.letsencrypt, ports: ps, b }).replace('default: mail.example.com', `default: mail.example.com\n  unknown_sni: ${mode}`));
      const px2 = await startInProcess(cfg, 2);
      try {
        result[mode] = {};
        for (const [name, sni] of Object.entries(cases)) result[mode]![name] = await probe(ps.imaps, sni);
        // Still alive and serving.
        await legit('imaps', ps.imaps);
        expect(result[mode]!.knownName).toBe('server_hello');
        // 112 = unrecognized_name; OpenSSL itself refuses a name over 255 bytes and one with a NUL.
        expect(result[mode]!.long300).toMatch(/^(server_hello|alert_112|alert_50)$/);
        for (const k of ['badChars', 'ipLiteral', 'ipv6Literal', 'nonAscii', 'controlChar', 'justDots'])
          expect(result[mode]![k], `${mode} ${k}`).toBe(mode === 'default' ? 'server_hello' : 'alert_112');
        if (mode === 'default') {
          // The default certificate is what an IP literal gets.
          const s = await connectKind('imaps', ps.imaps, { servername: '', ca: two.ca.rootPem });
          expect(s.getPeerCertificate().subjectaltname).toMatch(/mail\.example\.com/);
          s.destroy();
        }
        expect(px2.counters('imaps').sniUnknown).toBeGreaterThanOrEqual(6);
      } finally {
        px2.stop();
      }
    }
    figures.sni = result;
  });

  it('TLS 1.2 renegotiation is refused (client-initiated R), and mailfront keeps serving', async () => {
    const { px, ports } = await start('', 'reneg');
    try {
      const outcomes: Record<string, string> = {};
      for (const k of KINDS) {
        const before = px.counters(k).handshakes;
        const r = await sclient(ports[k], ['-tls1_2', ...STARTTLS_ARG[k]], 'R\n', 8000, 800);
        expect(negotiated(r.out), r.out).toBe(true);
        expect(r.out).toMatch(/RENEGOTIATING/);
        // A renegotiation that went through would print a second handshake summary or "verify return" lines again.
        expect(r.out, r.out).toMatch(/no renegotiation|alert|error/i);
        expect(px.counters(k).handshakes - before).toBe(1);
        outcomes[k] = (/(SSL alert number \d+|[^\n]*no renegotiation[^\n]*)/i.exec(r.out)?.[0] ?? 'closed').trim();
        await legit(k, ports[k]);
      }
      figures.renegotiation = outcomes;
    } finally {
      px.stop();
    }
  }, 60_000);

  it('TLS 1.0/1.1, SSLv3 and weak cipher lists are refused on every listener', async () => {
    const { px, ports } = await start('', 'weak');
    // @SECLEVEL=0 so that the local openssl is willing to offer them at all.
    const probes: Record<string, string[]> = {
      tls1: ['-tls1', '-cipher', 'ALL:@SECLEVEL=0'],
      tls1_1: ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0'],
      rc4: ['-tls1_2', '-cipher', 'RC4:@SECLEVEL=0'],
      '3des': ['-tls1_2', '-cipher', '3DES:@SECLEVEL=0'],
      null: ['-tls1_2', '-cipher', 'eNULL:NULL:@SECLEVEL=0'],
      export: ['-tls1_2', '-cipher', 'EXP:EXPORT:@SECLEVEL=0'],
      aNULL: ['-tls1_2', '-cipher', 'aNULL:@SECLEVEL=0'],
      cbcOnly: ['-tls1_2', '-cipher', 'AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384:DHE-RSA-AES128-SHA:CAMELLIA:ARIA:@SECLEVEL=0'],
      staticRsa: ['-tls1_2', '-cipher', 'kRSA:@SECLEVEL=0'],
      dhe: ['-tls1_2', '-cipher', 'kDHE:@SECLEVEL=0'],
      psk: ['-tls1_2', '-cipher', 'PSK:@SECLEVEL=0'],
      md5sha1: ['-tls1_2', '-cipher', 'MD5:@SECLEVEL=0'],
    };
    const seen: Record<string, string> = {};
    try {
      // Control: the defaults do negotiate.
      for (const k of KINDS) expect(negotiated((await sclient(ports[k], ['-tls1_2', ...STARTTLS_ARG[k]])).out)).toBe(true);
      for (const [name, args] of Object.entries(probes)) {
        for (const k of KINDS) {
          const r = await sclient(ports[k], [...args, ...STARTTLS_ARG[k]]);
          expect(negotiated(r.out), `${name} on ${k}:\n${r.out}`).toBe(false);
          const why = /no (ciphers|protocols) available|no cipher match/.exec(r.out)
            ? 'client cannot offer it (local openssl)'
            : /alert number (\d+)|alert ([a-z ]+)/.exec(r.out)?.[0] ?? 'closed';
          seen[`${name}/${k}`] = why;
        }
      }
      // Still serving.
      for (const k of KINDS) await legit(k, ports[k]);
      figures.weak = seen;
    } finally {
      px.stop();
    }
  }, 120_000);

  it('ALPACA: ALPN "http/1.1" only is refused with no_application_protocol on every listener kind', async () => {
    const { px, ports } = await start('', 'alpaca');
    const seen: Record<string, string> = {};
    try {
      for (const k of KINDS) {
        const bad = await sclient(ports[k], ['-alpn', 'http/1.1', ...STARTTLS_ARG[k]]);
        expect(negotiated(bad.out), bad.out).toBe(false);
        expect(bad.out).toMatch(/no application protocol|alert number 120/);
        seen[k] = 'no_application_protocol';
        // The listener's own id and no ALPN at all are fine.
        const own = { imaps: 'imap', imap: 'imap', pop3s: 'pop3', pop3: 'pop3', sieve: 'managesieve' }[k];
        const good = await sclient(ports[k], ['-alpn', own, ...STARTTLS_ARG[k]]);
        expect(negotiated(good.out), good.out).toBe(true);
        expect(good.out).toMatch(new RegExp(`ALPN protocol: ${own}`));
        const none = await sclient(ports[k], STARTTLS_ARG[k]);
        expect(negotiated(none.out)).toBe(true);
      }
      await sleep(200);
      const rejected = px.records().filter((r) => r.reason === 'alpn_rejected').map((r) => r.listener).sort();
      expect(rejected).toEqual([...KINDS].sort());
      figures.alpaca = seen;
    } finally {
      px.stop();
    }
  }, 60_000);
});
