// `mailfront check --config FILE` as administrators run it (node dist/cli.js):
// exit codes and what it prints for a good config, a typo, a missing file and
// a broken certificate. No Cyrus needed (the sieve probe falls back). Never skipped.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { e2eConfig, e2ePorts, makeTwoDomainPki, runCli, type E2ePorts, type TwoDomainPki } from '../helpers/mailfront.js';
import { damagePrivateScalar, issue, renewLineage, sha1Signed } from '../helpers/pki.js';
import { defaultGroups, opensslShortVersion, runtimeSupport, tlsLibrary } from '../../src/tls-library.js';

const tmp = mkdtempSync('/tmp/mf-e2e-check-');
let pki: TwoDomainPki;
let ports: E2ePorts;
let good: string;
// Nothing listens there: check must not need the backends.
const a = { imapPort: 1, pop3Port: 1, sievePort: 1 };
const b = { imapPort: 1, pop3Port: 1, sievePort: 1 };

beforeAll(async () => {
  pki = makeTwoDomainPki(path.join(tmp, 'pki'));
  ports = await e2ePorts();
  good = e2eConfig({ letsencrypt: pki.letsencrypt, ports, a, b, extra: 'timeouts: {connect: 1s, drain: 2s}\n' });
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('mailfront check', () => {
  it('exits 0 for a good config and prints a line per name, listener and route', async () => {
    const file = path.join(tmp, 'good.yaml');
    writeFileSync(file, good);
    const r = await runCli(['check', '--config', file]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    expect(out).toContain(`configuration ${file}: ok`);
    expect(out).toContain(`listener imaps: imaps on 127.0.0.1:${ports.imaps} -> a-imap`);
    expect(out).toContain(`listener sieve: managesieve on 127.0.0.1:${ports.sieve} -> a-sieve`);
    expect(out).toContain('route *.example.net: imaps -> b-imap, sieve -> b-sieve');
    const names = out.filter((l) => l.startsWith('name '));
    expect(names.map((l) => /^name (\S+):/.exec(l)![1]).sort()).toEqual(['*.example.net', 'example.net', 'imap.example.com', 'mail.example.com']);
    // indexed by subjectAltName, found in the lineage folder named unlike them
    const mail = names.find((l) => l.startsWith('name mail.example.com:'))!;
    expect(mail).toContain(path.join(pki.letsencrypt, 'live', pki.comLineage));
    expect(mail).toMatch(/until \d{4}-\d{2}-\d{2}/);
    expect(mail).not.toContain('EXPIRED');
    expect(names.find((l) => l.startsWith('name *.example.net:'))).toContain(path.join('live', pki.netLineage));
    expect(out).toContain('default (no SNI, unknown names): mail.example.com');
  });

  it('names the runtime and its key-exchange groups, and flags an OpenSSL past its end of support', async () => {
    const file = path.join(tmp, 'good.yaml');
    writeFileSync(file, good);
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(0);
    const lib = tlsLibrary();
    const runtime = runtimeSupport(lib);
    const groups = defaultGroups(lib);
    expect(r.stdout.split('\n')).toContain(`runtime: Node ${process.version} with OpenSSL ${opensslShortVersion(lib)}${runtime.problems.length ? ' (out of support)' : ''}; key exchange groups ${groups}`);
    if (runtime.problems.length) {
      expect(r.stderr).toContain(`warning: OpenSSL ${opensslShortVersion(lib)} is out of support`);
      expect(r.stderr).toContain('warning: run mailfront on Node 24');
    } else {
      expect(r.stderr).not.toContain('warning:');
    }
  });

  it('prints what is valid but probably not meant as warning lines on stderr, and still exits 0', async () => {
    const file = path.join(tmp, 'idle.yaml');
    writeFileSync(file, good.replace('timeouts: {connect: 1s, drain: 2s}', 'timeouts: {connect: 1s, drain: 2s, idle: 5m}'));
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`configuration ${file}: ok`);
    expect(r.stderr).toMatch(/^warning: timeouts\.idle is under 30m: IMAP IDLE clients \(listeners imaps/m);
  });

  it('takes tls.groups X25519MLKEM768 where the OpenSSL has ML-KEM, refuses it (exit 78, with the version) where it has not', async () => {
    const file = path.join(tmp, 'hybrid.yaml');
    writeFileSync(file, good + 'tls: {groups: "X25519MLKEM768:X25519"}\n');
    const r = await runCli(['check', '--config', file]);
    const lib = tlsLibrary();
    if (lib.hasGroup('X25519MLKEM768')) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('key exchange groups X25519MLKEM768:X25519');
    } else {
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(new RegExp(`${file}:\\d+:\\d+: tls\\.groups: group "X25519MLKEM768" is not offered by OpenSSL ${opensslShortVersion(lib).replace(/\./g, '\\.')}`));
      expect(r.stdout).not.toContain(': ok');
    }
  });

  it('exits 78 (EX_CONFIG) for an unknown key, pointing at FILE:LINE:COL', async () => {
    const file = path.join(tmp, 'typo.yaml');
    const lines = good.split('\n');
    expect(lines[2]).toMatch(/^ {2}default: /);
    lines.splice(3, 0, '  colour: blue'); // line 4, column 3, inside certificates:
    writeFileSync(file, lines.join('\n'));
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${file}:4:3:`);
    expect(r.stderr).toContain('colour');
    expect(r.stdout).not.toContain(': ok');
  });

  it('exits 78 for a tls.ciphers that lets in weak suites, naming them at FILE:LINE:COL', async () => {
    const file = path.join(tmp, 'ciphers.yaml');
    const text = good + 'tls: {ciphers: "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:@SECLEVEL=0"}\n';
    writeFileSync(file, text);
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(78);
    const line = text.split('\n').findIndex((l) => l.startsWith('tls:')) + 1;
    expect(r.stderr).toContain(`${file}:${line}:16: tls.ciphers: "@SECLEVEL=0" is refused: mailfront runs OpenSSL at security level 2`);
    expect(r.stderr).toContain(
      `${file}:${line}:16: tls.ciphers: "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA:@SECLEVEL=0" gives suites that are not ECDHE with an AEAD cipher: AES128-SHA (RSA key transport, no forward secrecy, not AEAD)`,
    );
    expect(r.stdout).not.toContain(': ok');
  });

  it('exits 66 (EX_NOINPUT) for a missing config file', async () => {
    const file = path.join(tmp, 'nowhere', 'mailfront.yaml');
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(66);
    expect(r.stderr).toContain(file);
  });

  it('exits 78 and names the path when a key does not match its certificate', async () => {
    const broken = makeTwoDomainPki(path.join(tmp, 'broken-pki'));
    const cert = issue(broken.ca, { names: ['mail.example.com'], dir: path.join(tmp, 'broken-pki', 'issued', 'com-2') });
    const other = issue(broken.ca, { names: ['other.example.org'], dir: path.join(tmp, 'broken-pki', 'issued', 'other') });
    renewLineage(broken.letsencrypt, broken.comLineage, { ...cert, keyPem: other.keyPem }, 2);
    const file = path.join(tmp, 'broken.yaml');
    writeFileSync(file, e2eConfig({ letsencrypt: broken.letsencrypt, ports, a, b, extra: 'timeouts: {connect: 1s}\n' }));
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(path.join(broken.letsencrypt, 'live', broken.comLineage));
  });

  it('exits 78 and names the path for a certificate signed with SHA-1, on every runtime (OpenSSL 3.5 would load it, 3.0 not)', async () => {
    const weak = makeTwoDomainPki(path.join(tmp, 'sha1-pki'));
    renewLineage(weak.letsencrypt, weak.netLineage, sha1Signed(weak.ca, weak.net), 2);
    const file = path.join(tmp, 'sha1.yaml');
    writeFileSync(file, e2eConfig({ letsencrypt: weak.letsencrypt, ports, a, b, extra: 'timeouts: {connect: 1s}\n' }));
    const r = await runCli(['check', '--config', file]);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(r.code).toBe(78);
    const live = path.join(weak.letsencrypt, 'live', weak.netLineage);
    expect(r.stderr).toContain(`certificate #1 in ${live}/fullchain.pem is signed with SHA1, 63-bit security; 112 or more needed: too weak for OpenSSL's security level 2`);
  });

  it('exits 78 and names the path when an EC key has a damaged private half (its public half still matches)', async () => {
    const damaged = makeTwoDomainPki(path.join(tmp, 'damaged-pki'));
    renewLineage(damaged.letsencrypt, damaged.netLineage, { ...damaged.net, keyPem: damagePrivateScalar(damaged.net.keyPem) }, 2);
    const file = path.join(tmp, 'damaged.yaml');
    writeFileSync(file, e2eConfig({ letsencrypt: damaged.letsencrypt, ports, a, b, extra: 'timeouts: {connect: 1s}\n' }));
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(78);
    const live = path.join(damaged.letsencrypt, 'live', damaged.netLineage);
    expect(r.stderr).toContain(
      `${live}/fullchain.pem: the private key ${live}/privkey.pem does not work with the certificate ${live}/fullchain.pem: its public half matches, but a signature made with it does not verify`,
    );
    expect(r.stderr).not.toContain('PRIVATE KEY');
    // Not served: its names fall to the default certificate.
    expect(r.stdout).not.toContain('name *.example.net:');
    expect(r.stdout).toContain(`name mail.example.com: exact -> ec ${path.join(damaged.letsencrypt, 'live', damaged.comLineage)}/fullchain.pem`);
  });
});
