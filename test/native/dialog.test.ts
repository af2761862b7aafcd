// The pre-TLS dialogs (IMAP, POP3, ManageSieve) as a table, through the
// addon's pure testDialog(protocol, capabilities, chunks[], maxLine?).
import { describe, expect, it } from 'vitest';
import { CAPS, testDialog } from './harness.js';

const IMAP_GREETING = '* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mailfront ready\r\n';
const POP3_GREETING = '+OK mailfront ready\r\n';
const SIEVE_CAPS = CAPS.managesieve;
const SIEVE_GREETING = SIEVE_CAPS + 'OK "mailfront ready"\r\n';

interface Row {
  name: string;
  chunks: string[];
  output: string;
  next: 'continue' | 'starttls' | 'close';
  maxLine?: number;
}

const imap: Row[] = [
  { name: 'greeting only', chunks: [], output: '', next: 'continue' },
  {
    name: 'CAPABILITY',
    chunks: ['a1 CAPABILITY\r\n'],
    output: '* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK CAPABILITY completed\r\n',
    next: 'continue',
  },
  { name: 'lowercase, bare LF', chunks: ['a1 capability\n'], output: '* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK CAPABILITY completed\r\n', next: 'continue' },
  { name: 'NOOP', chunks: ['x NOOP\r\n'], output: 'x OK NOOP completed\r\n', next: 'continue' },
  { name: 'LOGOUT closes', chunks: ['a9 LOGOUT\r\n', 'a10 NOOP\r\n'], output: '* BYE Logging out\r\na9 OK LOGOUT completed\r\n', next: 'close' },
  { name: 'STARTTLS', chunks: ['s STARTTLS\r\n'], output: 's OK Begin TLS negotiation now\r\n', next: 'starttls' },
  {
    name: 'STARTTLS: pipelined commands discarded (CVE-2011-0411)',
    chunks: ['s STARTTLS\r\nb LOGIN evil evil\r\nc NOOP\r\n'],
    output: 's OK Begin TLS negotiation now\r\n',
    next: 'starttls',
  },
  { name: 'STARTTLS with an argument', chunks: ['s STARTTLS now\r\n'], output: 's BAD STARTTLS takes no arguments\r\n', next: 'continue' },
  { name: 'LOGIN refused', chunks: ['a LOGIN u p\r\n'], output: 'a NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS\r\n', next: 'continue' },
  {
    name: 'AUTHENTICATE refused',
    chunks: ['a AUTHENTICATE PLAIN\r\n'],
    output: 'a NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS\r\n',
    next: 'continue',
  },
  { name: 'unknown command', chunks: ['a SELECT INBOX\r\n'], output: 'a BAD Command not allowed before STARTTLS\r\n', next: 'continue' },
  { name: 'invalid tag', chunks: ['* NOOP\r\n'], output: '* BAD Invalid tag\r\n', next: 'continue' },
  { name: 'empty line ignored', chunks: ['\r\n'], output: '', next: 'continue' },
  {
    name: 'split over chunks',
    chunks: ['a1 CAP', 'ABILI', 'TY\r', '\n'],
    output: '* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK CAPABILITY completed\r\n',
    next: 'continue',
  },
  {
    name: 'pipelined commands answered in order',
    chunks: ['a NOOP\r\nb NOOP\r\nc STARTTLS\r\n'],
    output: 'a OK NOOP completed\r\nb OK NOOP completed\r\nc OK Begin TLS negotiation now\r\n',
    next: 'starttls',
  },
  { name: 'line too long closes', chunks: ['a NOOP ' + 'x'.repeat(100) + '\r\n'], output: '* BYE Line too long\r\n', next: 'close', maxLine: 64 },
  { name: 'line too long without LF closes', chunks: ['a', 'x'.repeat(70)], output: '* BYE Line too long\r\n', next: 'close', maxLine: 64 },
  {
    name: '{n+} literal skipped: its bytes are never commands',
    chunks: ['a LOGIN {13+}\r\nb STARTTLS\r\n x\r\n'],
    output: 'a NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS\r\n',
    next: 'continue',
  },
  {
    name: '{n+} literal over chunks',
    chunks: ['a LOGIN {13+}\r\nb STA', 'RTTLS\r\n', ' x\r\nc NOOP\r\n'],
    output: 'a NO [PRIVACYREQUIRED] Authentication requires TLS: use STARTTLS\r\nc OK NOOP completed\r\n',
    next: 'continue',
  },
  {
    name: '{n} sync literal refused (no continuation)',
    chunks: ['a LOGIN {5}\r\n'],
    output: 'a BAD Literals are not accepted before STARTTLS\r\n',
    next: 'continue',
  },
  { name: 'huge literal closes', chunks: ['a LOGIN {999999+}\r\n'], output: '* BYE Literal too large before STARTTLS\r\n', next: 'close' },
];

const pop3: Row[] = [
  { name: 'greeting only', chunks: [], output: '', next: 'continue' },
  { name: 'CAPA', chunks: ['CAPA\r\n'], output: '+OK Capability list follows\r\n' + CAPS.pop3 + '.\r\n', next: 'continue' },
  { name: 'QUIT closes', chunks: ['QUIT\r\n'], output: '+OK Bye\r\n', next: 'close' },
  { name: 'STLS', chunks: ['stls\r\n'], output: '+OK Begin TLS negotiation now\r\n', next: 'starttls' },
  { name: 'STLS: pipelined discarded', chunks: ['STLS\r\nUSER evil\r\nPASS evil\r\n'], output: '+OK Begin TLS negotiation now\r\n', next: 'starttls' },
  { name: 'USER refused', chunks: ['USER joe\r\n'], output: '-ERR [AUTH] Authentication requires TLS: use STLS\r\n', next: 'continue' },
  { name: 'PASS refused', chunks: ['PASS x\r\n'], output: '-ERR [AUTH] Authentication requires TLS: use STLS\r\n', next: 'continue' },
  { name: 'AUTH refused', chunks: ['AUTH PLAIN\r\n'], output: '-ERR [AUTH] Authentication requires TLS: use STLS\r\n', next: 'continue' },
  { name: 'unknown command', chunks: ['STAT\r\n'], output: '-ERR Command not allowed before STLS\r\n', next: 'continue' },
  { name: 'line too long closes', chunks: ['USER ' + 'x'.repeat(100) + '\r\n'], output: '-ERR Line too long\r\n', next: 'close', maxLine: 64 },
  { name: 'no literals in POP3', chunks: ['USER {5}\r\n'], output: '-ERR [AUTH] Authentication requires TLS: use STLS\r\n', next: 'continue' },
  { name: 'no {n+} literals in POP3', chunks: ['USER {5+}\r\nSTLS\r\n'], output: '-ERR [AUTH] Authentication requires TLS: use STLS\r\n+OK Begin TLS negotiation now\r\n', next: 'starttls' },
];

const sieve: Row[] = [
  { name: 'greeting only', chunks: [], output: '', next: 'continue' },
  { name: 'CAPABILITY', chunks: ['CAPABILITY\r\n'], output: SIEVE_CAPS + 'OK "Capability completed"\r\n', next: 'continue' },
  { name: 'NOOP', chunks: ['NOOP\r\n'], output: 'OK "Done"\r\n', next: 'continue' },
  { name: 'NOOP with a tag', chunks: ['NOOP "abc"\r\n'], output: 'OK (TAG "abc") "Done"\r\n', next: 'continue' },
  { name: 'LOGOUT closes', chunks: ['LOGOUT\r\n'], output: 'OK "Logout completed"\r\n', next: 'close' },
  { name: 'STARTTLS', chunks: ['StartTls\r\n'], output: 'OK "Begin TLS negotiation now"\r\n', next: 'starttls' },
  {
    name: 'STARTTLS: pipelined discarded',
    chunks: ['STARTTLS\r\nAUTHENTICATE "PLAIN" "AGV2aWwAZXZpbA=="\r\n'],
    output: 'OK "Begin TLS negotiation now"\r\n',
    next: 'starttls',
  },
  {
    name: 'AUTHENTICATE refused',
    chunks: ['AUTHENTICATE "PLAIN" "AGEAYg=="\r\n'],
    output: 'NO (ENCRYPT-NEEDED) "Authentication requires TLS: use STARTTLS"\r\n',
    next: 'continue',
  },
  {
    name: 'AUTHENTICATE with a {n+} literal: literal skipped',
    chunks: ['AUTHENTICATE "PLAIN" {10+}\r\nSTARTTLS\r\n\r\n'],
    output: 'NO (ENCRYPT-NEEDED) "Authentication requires TLS: use STARTTLS"\r\n',
    next: 'continue',
  },
  { name: 'unknown command', chunks: ['PUTSCRIPT "a" {1+}\r\nx\r\n'], output: 'NO "Command not allowed before STARTTLS"\r\n', next: 'continue' },
  { name: 'line too long closes', chunks: ['NOOP "' + 'x'.repeat(100) + '"\r\n'], output: 'BYE "Line too long"\r\n', next: 'close', maxLine: 64 },
];

const greetings = { imap: IMAP_GREETING, pop3: POP3_GREETING, managesieve: SIEVE_GREETING } as const;

for (const [protocol, rows] of [
  ['imap', imap],
  ['pop3', pop3],
  ['managesieve', sieve],
] as const) {
  describe(`${protocol} pre-TLS dialog`, () => {
    for (const row of rows) {
      it(row.name, () => {
        const r = testDialog(protocol, CAPS[protocol], row.chunks, row.maxLine);
        expect(r.output).toBe(greetings[protocol] + row.output);
        expect(r.next).toBe(row.next);
      });
    }
  });
}
