// The login parser (native/login.cc) on both directions of real exchanges:
// outcomes, user names, where watching stops. Every case is also fed one byte
// at a time, and no outcome may carry a password.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Protocol } from '../../src/native.js';
import { loadTestingAddon } from '../helpers/testing-addon.js';

type Step = ['c' | 's', string];
const addon = loadTestingAddon();
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
const PW = 'Pa55-w0rd!';
const CORPUS = path.resolve(__dirname, '../../native/fuzz/corpus/login');

function run(protocol: Protocol, steps: Step[], bound?: number) {
  const whole = addon.testLogin(protocol, steps, bound);
  // The same bytes split into single-byte reads give the same result.
  const bytes: Step[] = steps.flatMap(([d, s]) => [...s].map((ch): Step => [d, ch]));
  expect(addon.testLogin(protocol, bytes, bound)).toEqual(whole);
  expect(JSON.stringify(whole)).not.toContain(PW);
  expect(JSON.stringify(whole)).not.toContain(b64(PW).slice(0, 8));
  return whole;
}

const IMAP_GREETING: Step = ['s', '* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN AUTH=LOGIN] mail ready\r\n'];

describe('IMAP', () => {
  it('LOGIN with an atom, a quoted string and literals; NO, then OK ends watching', () => {
    const r = run('imaps', [
      IMAP_GREETING,
      ['c', `a1 LOGIN alice@example.com ${PW}\r\n`],
      ['s', 'a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
      ['c', `a2 LOGIN "bob \\"b\\" smith" "${PW}"\r\n`],
      ['s', 'a2 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
      ['c', 'a3 LOGIN {5}\r\n'],
      ['s', '+ go ahead\r\n'],
      ['c', `carol {${PW.length}}\r\n`],
      ['s', '+ go ahead\r\n'],
      ['c', `${PW}\r\n`],
      ['s', 'a3 NO nope\r\n'],
      ['c', `a4 LOGIN {4+}\r\ndave {${PW.length}+}\r\n${PW}\r\n`],
      ['s', 'a4 OK [CAPABILITY IMAP4rev1] User logged in\r\n'],
      ['c', 'a5 LOGIN eve wrong\r\n'],
      ['s', 'a5 NO not seen: watching ended at the success\r\n'],
    ]);
    expect(r.outcomes).toEqual([
      { result: 'failure', user: 'alice@example.com', mech: 'LOGIN' },
      { result: 'failure', user: 'bob "b" smith', mech: 'LOGIN' },
      { result: 'failure', user: 'carol', mech: 'LOGIN' },
      { result: 'success', user: 'dave', mech: 'LOGIN' },
    ]);
    expect(r.state).toBe('authenticated');
  });

  it('AUTHENTICATE PLAIN with SASL-IR, then without (a continuation), LOGIN mechanism, cancel, BAD', () => {
    const r = run('imaps', [
      IMAP_GREETING,
      ['c', `t1 AUTHENTICATE PLAIN ${b64(`\0alice\0${PW}`)}\r\n`],
      ['s', 't1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
      ['c', 't2 AUTHENTICATE PLAIN\r\n'],
      ['s', '+ \r\n'],
      ['c', `${b64(`admin\0bob\0${PW}`)}\r\n`],
      ['s', 't2 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
      ['c', 't3 AUTHENTICATE LOGIN\r\n'],
      ['s', `+ ${b64('Username:')}\r\n`],
      ['c', `${b64('carol')}\r\n`],
      ['s', `+ ${b64('Password:')}\r\n`],
      ['c', `${b64(PW)}\r\n`],
      ['s', 't3 NO failed\r\n'],
      ['c', 't4 AUTHENTICATE PLAIN\r\n'],
      ['s', '+ \r\n'],
      ['c', '*\r\n'],
      ['s', 't4 BAD [CANCELED] canceled\r\n'],
      ['c', 't5 AUTHENTICATE GSSAPI\r\n'],
      ['s', '+ \r\n'],
      ['c', 'YIIBcwYJKoZIhvcSAQICAQBuggFiMIIBXqADAgEFoQMCAQ6iBwMFACAAAACjgdBhgc0wgcqgAwIBBaEOGwxFWEFNUExFLkNPTaI=\r\n'],
      ['s', 't5 OK logged in\r\n'],
    ]);
    expect(r.outcomes).toEqual([
      { result: 'failure', user: 'alice', mech: 'PLAIN' },
      { result: 'failure', user: 'bob', mech: 'PLAIN' },
      { result: 'failure', user: 'carol', mech: 'LOGIN' },
      { result: 'error', user: '', mech: 'PLAIN' },
      { result: 'success', user: '', mech: 'GSSAPI' },
    ]);
    expect(r.state).toBe('authenticated');
  });

  it('commands pipelined after AUTHENTICATE with SASL-IR are commands, not SASL responses', () => {
    const r = run('imaps', [
      IMAP_GREETING,
      ['c', `p1 AUTHENTICATE PLAIN ${b64(`\0alice\0${PW}`)}\r\np2 LOGIN bob ${PW}\r\np3 CAPABILITY\r\np4 LOGIN carol x\r\n`],
      ['s', 'p1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
      ['s', 'p2 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n* CAPABILITY IMAP4rev1\r\np3 OK done\r\np4 NO nope\r\n'],
    ]);
    expect(r.outcomes.map((o) => `${o.result} ${o.user}`)).toEqual(['failure alice', 'failure bob', 'failure carol']);
    expect(r.state).toBe('watching');
  });

  it('server literals and a tagged answer that refuses a literal keep the parser in step', () => {
    const r = run('imaps', [
      IMAP_GREETING,
      ['c', 'i1 ID ("name" "x")\r\n'],
      ['s', '* ID ("name" {5}\r\ni1 OK)\r\ni1 OK done\r\n'],
      ['c', 'i2 LOGIN alice {99999}\r\n'],
      ['s', 'i2 NO [TOOBIG] literal too big\r\n'],
      ['c', `i3 LOGIN alice ${PW}\r\n`],
      ['s', 'i3 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n'],
    ]);
    // i2's literal was refused: no password was tried, and i3 is read as a command again.
    expect(r.outcomes.map((o) => `${o.result} ${o.user} ${o.mech}`)).toEqual(['failure alice LOGIN']);
  });

  it('PREAUTH ends watching at once; so does the byte bound', () => {
    expect(run('imaps', [['s', '* PREAUTH welcome\r\n'], ['c', 'a LOGIN x y\r\n'], ['s', 'a NO\r\n']])).toEqual({ outcomes: [], state: 'authenticated' });
    const r = run('imaps', [IMAP_GREETING, ['c', `a NOOP {100}\r\n${'x'.repeat(100)}\r\n`], ['c', 'b LOGIN x y\r\n'], ['s', 'b NO\r\n']], 120);
    expect(r).toEqual({ outcomes: [], state: 'bound' });
  });

  it('control bytes in a user name are not logged as such; long names are cut', () => {
    const r = run('imaps', [IMAP_GREETING, ['c', `a LOGIN "x\ty\x01z${'u'.repeat(300)}" ${PW}\r\n`], ['s', 'a NO\r\n']]);
    expect(r.outcomes[0]!.user).toMatch(/^x\?y\?zu+$/);
    expect(r.outcomes[0]!.user.length).toBe(128);
  });
});

describe('out of step with a broken server', () => {
  it('F4 (found by fuzz_login): a LOGIN-mechanism password is never taken as the user', () => {
    const b = (s: string) => Buffer.from(s).toString('base64');
    const r = run('managesieve', [
      ['s', '"SASL" "PLAIN LOGIN"\r\nOK\r\n'],
      ['c', 'AUTHENTICATE "PLAIN" "x"\r\n'],
      // A literal longer than its data swallows the next challenge ("Username:").
      ['s', 'NO {40}\r\nAuthentication Error\r\n'],
      ['c', 'AUTHENTICATE "LOGIN"\r\n'],
      ['s', `"${b('Username:')}"\r\n`],
      ['c', `"${b('carol')}"\r\n`],
      ['s', `{12}\r\n${b('Password:')}\r\n`],
      ['c', `{${b(PW).length}+}\r\n${b(PW)}\r\n`],
      ['s', 'BYE "too many"\r\n'],
    ]);
    expect(r.outcomes.every((o) => o.user !== PW)).toBe(true);
    expect(r.outcomes.map((o) => o.mech)).toContain('LOGIN');
    // The kept corpus input (fuzz_login's format: protocol byte, seed byte, then
    // records of a length byte, bit 7 for the server) replayed: its password is "Zq9!pw".
    const input = readFileSync(path.join(CORPUS, 'regression-login-F4-password-as-user'));
    const steps: ['c' | 's', Buffer][] = [];
    for (let i = 2; i < input.length;) {
      const len = Math.min(input[i]! & 0x7f, input.length - i - 1);
      steps.push([input[i]! & 0x80 ? 's' : 'c', input.subarray(i + 1, i + 1 + len)]);
      i += 1 + len;
    }
    const replay = addon.testLogin('managesieve', steps);
    expect(replay.outcomes.length).toBeGreaterThan(0);
    expect(replay.outcomes.map((o) => o.user)).not.toContain('Zq9!pw');
  });
});

describe('POP3', () => {
  it('USER/PASS, APOP, AUTH with SASL-IR and with a continuation, CAPA between, pipelined', () => {
    const r = run('pop3s', [
      ['s', '+OK mail.example.org Cyrus POP3 server ready <1896.697170952@mail>\r\n'],
      ['c', `CAPA\r\nUSER alice@example.com\r\nPASS ${PW}\r\n`],
      ['s', '+OK List of capabilities follows\r\nSASL PLAIN LOGIN\r\nUSER\r\n.\r\n+OK Name is a valid mailbox\r\n-ERR [AUTH] Invalid login\r\n'],
      ['c', 'APOP bob c4c9334bac560ecc979e58001b3e22fb\r\n'],
      ['s', '-ERR [AUTH] authentication failure\r\n'],
      ['c', `AUTH PLAIN ${b64(`\0carol\0${PW}`)}\r\n`],
      ['s', '-ERR [AUTH] authentication failure\r\n'],
      ['c', 'AUTH PLAIN\r\n'],
      ['s', '+ \r\n'],
      ['c', `${b64(`\0dave\0${PW}`)}\r\n`],
      ['s', '+OK Mailbox locked and ready\r\n'],
    ]);
    expect(r.outcomes).toEqual([
      { result: 'failure', user: 'alice@example.com', mech: 'USER' },
      { result: 'failure', user: 'bob', mech: 'APOP' },
      { result: 'failure', user: 'carol', mech: 'PLAIN' },
      { result: 'success', user: 'dave', mech: 'PLAIN' },
    ]);
    expect(r.state).toBe('authenticated');
  });

  it('a cancelled AUTH and a refused USER are no login outcome', () => {
    const r = run('pop3s', [
      ['s', '+OK ready\r\n'],
      ['c', 'USER nobody\r\n'],
      ['s', '-ERR no such user\r\n'],
      ['c', 'AUTH LOGIN\r\n'],
      ['s', `+ ${b64('Username:')}\r\n`],
      ['c', '*\r\n'],
      ['s', '-ERR [AUTH] cancelled\r\n'],
    ]);
    expect(r.outcomes).toEqual([{ result: 'failure', user: '', mech: 'LOGIN' }]);
  });
});

describe('ManageSieve', () => {
  const greeting: Step = ['s', '"IMPLEMENTATION" "Cyrus timsieved v3.6.1"\r\n"SASL" "PLAIN LOGIN"\r\n"SIEVE" "fileinto"\r\n"VERSION" "1.0"\r\nOK\r\n'];

  it('AUTHENTICATE with a quoted initial response, a literal one, a challenge; NO, BYE, OK', () => {
    const lit = b64(`\0bob\0${PW}`);
    const r = run('managesieve', [
      greeting,
      ['c', `NOOP "STARTTLS-RESYNC-CAPA"\r\nAUTHENTICATE "PLAIN" "${b64(`\0alice\0${PW}`)}"\r\n`],
      ['s', 'OK (TAG "STARTTLS-RESYNC-CAPA") "Done"\r\nNO "Authentication Error"\r\n'],
      ['c', `AUTHENTICATE "PLAIN" {${lit.length}+}\r\n${lit}\r\n`],
      ['s', 'NO {20}\r\nAuthentication Error\r\n'],
      ['c', 'AUTHENTICATE "LOGIN"\r\n'],
      ['s', `"${b64('Username:')}"\r\n`],
      ['c', `"${b64('carol')}"\r\n`],
      ['s', `{${b64('Password:').length}}\r\n${b64('Password:')}\r\n`],
      ['c', `{${b64(PW).length}+}\r\n${b64(PW)}\r\n`],
      ['s', 'BYE "Too many failures"\r\n'],
      ['c', `AUTHENTICATE "PLAIN" "${b64(`\0dave\0${PW}`)}"\r\n`],
      ['s', 'OK "Logged in"\r\n'],
    ]);
    expect(r.outcomes).toEqual([
      { result: 'failure', user: 'alice', mech: 'PLAIN' },
      { result: 'failure', user: 'bob', mech: 'PLAIN' },
      { result: 'error', user: 'carol', mech: 'LOGIN' },
      { result: 'success', user: 'dave', mech: 'PLAIN' },
    ]);
    expect(r.state).toBe('authenticated');
  });
});

describe('client networks', () => {
  it.each([
    ['203.0.113.7:993', 64, '203.0.113.7'],
    ['[::ffff:203.0.113.7]:993', 64, '203.0.113.7'],
    ['[2002:cb00:7107::1]:993', 64, '203.0.113.7'],
    ['[64:ff9b::cb00:7107]:993', 64, '203.0.113.7'],
    ['[2001:0:4136:e378:8000:63bf:34ff:8ef8]:993', 64, '203.0.113.7'],
    ['[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:993', 64, '2001:db8:1:2::/64'],
    ['[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:993', 56, '2001:db8:1::/56'],
    ['[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:993', 128, '2001:db8:1:2:aaaa:bbbb:cccc:dddd/128'],
    ['[::1]:993', 64, '::/64'],
  ])('%s (/%i) counts as %s', (addr, prefix, net) => {
    expect(addon.testClientNetwork(addr, prefix)).toBe(net);
  });
});
