// STARTTLS front-ends live: openssl s_client -starttls verifies the certificate
// picked by SNI (two names, one port); after TLS the backend greeting is
// swallowed (imap, pop3) or re-issued without STARTTLS (managesieve); and the
// STARTTLS command injection (CVE-2011-0411) never reaches the backend.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, connectRaw, fakeBackend, makePki, sClient, startProxy, waitFor, within, wrapTls } from './harness.js';
import type { FakeBackend, Pki, Running } from './harness.js';
import type { Protocol } from '../../src/native.js';

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki?.cleanup());

const BACKEND_GREETING: Record<string, string> = {
  imap: '* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE AUTH=PLAIN SASL-IR] cyrus ready\r\n',
  pop3: '+OK cyrus pop3 ready <1.2@x>\r\n',
  // timsieved after STARTTLS: Cyrus behind mailfront advertises no STARTTLS, but strip one anyway.
  managesieve:
    '"IMPLEMENTATION" "Cyrus timsieved v3.8"\r\n"SASL" "PLAIN"\r\n"SIEVE" "fileinto reject"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\nOK\r\n',
};

/** Echo-ish backend: answers the first command it sees with a recognisable line. */
function answer(protocol: string, line: string): string {
  if (protocol === 'imap') return `${line.split(' ')[0]} OK backend-answer\r\n`;
  if (protocol === 'pop3') return '+OK backend-answer\r\n';
  return 'OK "backend-answer"\r\n';
}

const STARTTLS_FLAG: Record<string, string> = { imap: 'imap', pop3: 'pop3', managesieve: 'sieve' };
const COMMAND: Record<string, string> = { imap: 'a1 NOOP', pop3: 'NOOP', managesieve: 'NOOP' };

for (const protocol of ['imap', 'pop3', 'managesieve'] as const) {
  describe(`${protocol} STARTTLS`, () => {
    let backend: FakeBackend;
    let px: Running;
    beforeAll(async () => {
      backend = await fakeBackend(BACKEND_GREETING[protocol]!, (s) => {
        let buf = '';
        s.on('data', (d) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            s.write(answer(protocol, line));
          }
        });
      });
      px = startProxy(buildSnapshot(pki, { protocol, servers: [backend.address] }));
    });
    afterAll(async () => {
      px?.stop();
      await backend?.close();
    });

    for (const name of ['mail.a.example', 'mail.b.example']) {
      it(`openssl s_client -starttls ${STARTTLS_FLAG[protocol]} verifies ${name}`, async () => {
        const r = await sClient(px.port, [
          '-starttls',
          STARTTLS_FLAG[protocol]!,
          '-servername',
          name,
          '-verify_hostname',
          name,
          '-CAfile',
          pki.rootPath,
          '-verify_return_error',
          '-quiet',
          '-no_ign_eof',
        ], COMMAND[protocol] + '\r\n', { delayMs: 600, until: /backend-answer/ });
        expect(r.stderr).not.toMatch(/verify error/);
        expect(r.stdout).toContain('backend-answer');
        expect(r.code).toBe(0);
      });
    }

    it('negative control: the other name does not verify', async () => {
      const r = await sClient(px.port, [
        '-starttls',
        STARTTLS_FLAG[protocol]!,
        '-servername',
        'mail.a.example',
        '-verify_hostname',
        'mail.b.example',
        '-CAfile',
        pki.rootPath,
        '-verify_return_error',
        '-quiet',
        '-no_ign_eof',
      ], COMMAND[protocol] + '\r\n', { delayMs: 600 });
      expect(r.stderr).toMatch(/verify error|hostname mismatch/i);
      expect(r.stdout).not.toContain('backend-answer');
    });

    it('after the handshake: greeting swallowed (imap, pop3) or capabilities without STARTTLS (sieve)', async () => {
      const raw = await connectRaw(px.port);
      const clientPort = raw.socket.localPort;
      const starttls = protocol === 'imap' ? 'a0 STARTTLS\r\n' : protocol === 'pop3' ? 'STLS\r\n' : 'STARTTLS\r\n';
      const ok = protocol === 'imap' ? 'a0 OK' : protocol === 'pop3' ? '+OK Begin' : 'OK "Begin';
      await raw.waitData((d) => /ready/.test(d));
      raw.socket.write(starttls);
      await raw.waitData((d) => d.includes(ok));
      raw.socket.removeAllListeners('data');
      const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example' });
      const c = wrapTls(t);
      await within(new Promise((r) => t.once('secureConnect', r)), 5000, 'handshake');
      expect(t.authorized).toBe(true);
      if (protocol === 'managesieve') {
        const caps = await c.waitData((d) => d.includes('OK\r\n'));
        expect(caps).toBe(
          '"IMPLEMENTATION" "Cyrus timsieved v3.8"\r\n"SASL" "PLAIN"\r\n"SIEVE" "fileinto reject"\r\n"VERSION" "1.0"\r\nOK\r\n',
        );
        t.write('NOOP\r\n');
        await c.waitData((d) => d.endsWith('OK "backend-answer"\r\n'));
      } else {
        t.write(COMMAND[protocol] + '\r\n');
        const got = await c.waitData((d) => d.includes('backend-answer'));
        expect(got).toBe(answer(protocol, COMMAND[protocol]!));
      }
      t.end();
      await within(c.closed, 3000, 'close');
      const mine = () => px.records().findLast((r) => r.client === `127.0.0.1:${clientPort}`);
      await waitFor(() => mine() !== undefined, 3000, 'record');
      const rec = mine()!;
      expect(rec.protocol).toBe(protocol);
      expect(rec.sni).toBe('mail.a.example');
      expect(rec.reason).toBe('client_closed');
      expect(rec.bytesIn).toBe(COMMAND[protocol]!.length + 2);
    });

    it('STARTTLS injection (CVE-2011-0411): pipelined plaintext never reaches the backend', async () => {
      const before = backend.received.length;
      const raw = await connectRaw(px.port);
      await raw.waitData((d) => /ready/.test(d));
      const inject =
        protocol === 'imap'
          ? 'a STARTTLS\r\nb LOGIN evil evil\r\n'
          : protocol === 'pop3'
            ? 'STLS\r\nUSER evil\r\nPASS evil\r\n'
            : 'STARTTLS\r\nAUTHENTICATE "PLAIN" "AGV2aWwAZXZpbA=="\r\n';
      raw.socket.write(inject);
      await raw.waitData((d) => /Begin TLS/.test(d));
      raw.socket.removeAllListeners('data');
      const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.b.example' });
      const c = wrapTls(t);
      await within(new Promise((r) => t.once('secureConnect', r)), 5000, 'handshake');
      t.write(COMMAND[protocol] + '\r\n');
      await c.waitData((d) => d.includes('backend-answer'));
      t.end();
      await within(c.closed, 3000, 'close');
      expect(backend.received.length).toBe(before + 1);
      const seen = Buffer.concat(backend.received[before]!).toString();
      expect(seen).toBe(COMMAND[protocol] + '\r\n');
      expect(seen).not.toMatch(/evil|ZXZpbA/);
    });
  });
}

describe('backend greeting arriving in pieces', () => {
  for (const protocol of ['imap', 'managesieve'] as const) {
    it(`${protocol}: filtered correctly when it trickles in byte by byte`, async () => {
      const greeting = BACKEND_GREETING[protocol]!;
      const backend = await fakeBackend('', (s) => {
        let i = 0;
        const tick = () => {
          if (s.destroyed) return;
          if (i < greeting.length) {
            s.write(greeting[i++]!);
            setTimeout(tick, 2);
          } else {
            s.write(protocol === 'imap' ? '* 1 EXISTS\r\n' : 'OK "after"\r\n');
          }
        };
        tick();
      });
      const px = startProxy(buildSnapshot(pki, { protocol, servers: [backend.address] }));
      try {
        const raw = await connectRaw(px.port);
        await raw.waitData((d) => /ready/.test(d));
        raw.socket.write(protocol === 'imap' ? 'a STARTTLS\r\n' : 'STARTTLS\r\n');
        await raw.waitData((d) => /Begin TLS/.test(d));
        raw.socket.removeAllListeners('data');
        const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example' });
        const c = wrapTls(t);
        await within(new Promise((r) => t.once('secureConnect', r)), 5000, 'handshake');
        if (protocol === 'imap') {
          expect(await c.waitData((d) => d.includes('EXISTS'))).toBe('* 1 EXISTS\r\n');
        } else {
          expect(await c.waitData((d) => d.includes('after'))).toBe(
            '"IMPLEMENTATION" "Cyrus timsieved v3.8"\r\n"SASL" "PLAIN"\r\n"SIEVE" "fileinto reject"\r\n"VERSION" "1.0"\r\nOK\r\nOK "after"\r\n',
          );
        }
        t.destroy();
      } finally {
        px.stop();
        await backend.close();
      }
    });
  }

  it('imap: a backend refusal (BYE) passes through unchanged', async () => {
    const backend = await fakeBackend('* BYE [UNAVAILABLE] too busy\r\n', (s) => s.end());
    const px = startProxy(buildSnapshot(pki, { protocol: 'imap', servers: [backend.address] }));
    try {
      const raw = await connectRaw(px.port);
      await raw.waitData((d) => /ready/.test(d));
      raw.socket.write('a STARTTLS\r\n');
      await raw.waitData((d) => /Begin TLS/.test(d));
      raw.socket.removeAllListeners('data');
      const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example' });
      const c = wrapTls(t);
      await within(c.closed, 5000, 'close');
      expect(c.data()).toBe('* BYE [UNAVAILABLE] too busy\r\n');
    } finally {
      px.stop();
      await backend.close();
    }
  });
});

describe('STARTTLS: the handshake starts right after the reply', () => {
  it('a client that never sends STARTTLS does not reach the backend', async () => {
    const backend = await fakeBackend(BACKEND_GREETING.imap!);
    const px = startProxy(buildSnapshot(pki, { protocol: 'imap' as Protocol, servers: [backend.address] }));
    try {
      const raw = await connectRaw(px.port);
      await raw.waitData((d) => d.includes('mailfront ready'));
      raw.socket.write('a LOGIN x y\r\nb LOGOUT\r\n');
      await within(raw.closed, 3000, 'close');
      expect(raw.data()).toContain('a NO [PRIVACYREQUIRED]');
      expect(raw.data()).toContain('b OK LOGOUT completed');
      expect(backend.received.length).toBe(0);
      const [rec] = await px.waitRecords(1);
      expect(rec!.reason).toBe('pretls_closed');
    } finally {
      px.stop();
      await backend.close();
    }
  });
});


describe('after STARTTLS, capability lists lose STARTTLS until the client logs in', () => {
  // A backend with a certificate of its own: it offers STARTTLS in every capability list.
  const caps = {
    imap: (tag: string) => `* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n${tag} OK Completed\r\n`,
    pop3: () => '+OK\r\nTOP\r\nSTLS\r\nUSER\r\n.\r\n',
    managesieve: () => '"IMPLEMENTATION" "Cyrus timsieved"\r\n"STARTTLS"\r\n"VERSION" "1.0"\r\nOK\r\n',
  };
  const login = {
    imap: (tag: string) => `${tag} OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in\r\n`,
    pop3: () => '+OK\r\n',
    managesieve: () => 'OK\r\n',
  };
  const greeting = { imap: '* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n', pop3: '+OK ready\r\n', managesieve: caps.managesieve() };
  const capaCommand = { imap: 'a1 CAPABILITY', pop3: 'CAPA', managesieve: 'CAPABILITY' };
  const loginCommand = { imap: 'a2 LOGIN alice secret', pop3: 'USER alice', managesieve: 'AUTHENTICATE "PLAIN" "AGFsaWNlAHNlY3JldA=="' };
  const starttls = { imap: 'a0 STARTTLS', pop3: 'STLS', managesieve: 'STARTTLS' };

  for (const protocol of ['imap', 'pop3', 'managesieve'] as const) {
    it(`${protocol}: filtered in a response arriving byte by byte, untouched once the client authenticates`, async () => {
      const backend = await fakeBackend(greeting[protocol], (s) => {
        let buf = '';
        s.on('data', (d) => {
          buf += d.toString();
          for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) {
            const line = buf.slice(0, nl).trim();
            const tag = line.split(' ')[0]!;
            const isCapa = /^(\S+ )?(CAPABILITY|CAPA)$/i.test(line);
            const reply = isCapa ? caps[protocol](tag) : login[protocol](tag);
            // Capability lists trickle in, one byte at a time.
            const trickle = (i: number): void => void (i < reply.length && !s.destroyed && (s.write(reply[i]!), setTimeout(() => trickle(i + 1), 1)));
            if (isCapa) trickle(0);
            else s.write(reply);
          }
        });
      });
      const px = startProxy(buildSnapshot(pki, { protocol, servers: [backend.address] }));
      try {
        const raw = await connectRaw(px.port);
        await raw.waitData((d) => /ready/.test(d));
        raw.socket.write(`${starttls[protocol]}\r\n`);
        await raw.waitData((d) => /Begin TLS/i.test(d));
        raw.socket.removeAllListeners('data');
        const t = tls.connect({ socket: raw.socket, ca: pki.ca.rootPem, servername: 'mail.a.example' });
        const c = wrapTls(t);
        await within(new Promise((r) => t.once('secureConnect', r)), 5000, 'handshake');
        const sieveGreeting = protocol === 'managesieve' ? caps.managesieve().replace('"STARTTLS"\r\n', '') : '';
        const expected = caps[protocol]('a1').replace(/ STARTTLS|STLS\r\n|"STARTTLS"\r\n/, '');
        t.write(`${capaCommand[protocol]}\r\n`);
        expect(await c.waitData((d) => d.length >= sieveGreeting.length + expected.length)).toBe(sieveGreeting + expected);
        // Authentication starts: from here on the backend's bytes pass as they are.
        t.write(`${loginCommand[protocol]}\r\n`);
        const afterLogin = sieveGreeting + expected + login[protocol]('a2');
        expect(await c.waitData((d) => d.length >= afterLogin.length)).toBe(afterLogin);
        t.write(`${protocol === 'imap' ? 'again CAPABILITY' : capaCommand[protocol]}\r\n`);
        const untouched = afterLogin + caps[protocol]('again');
        expect(await c.waitData((d) => d.length >= untouched.length)).toBe(untouched);
        t.destroy();
      } finally {
        px.stop();
        await backend.close();
      }
    });
  }
});
