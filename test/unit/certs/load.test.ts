import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, readdirSync, writeFileSync, copyFileSync, chmodSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { damagePrivateScalar, makeCA, issue, makeLetsEncryptTree, type CA, type Issued } from '../../helpers/pki.js';
import { loadCertificates, lookup, type CertStore, type CertSources } from '../../../src/certs/index.js';
import { MailfrontError } from '../../../src/errors.js';
import { loadAddon } from '../../../src/native.js';

let tmp: string;
let ca: CA;
let store: CertStore;
let le: string;
let pemDir: string;
const c: Record<string, Issued> = {};

function sources(over: Partial<CertSources> = {}): CertSources {
  return { letsencrypt: [], pemDirs: [], pairs: [], ...over };
}
function leafNames(pem: string): string {
  return new X509Certificate(pem).subjectAltName ?? '';
}
function noKeyMaterial(messages: string[], keys: Issued[]): void {
  for (const m of messages) {
    expect(m).not.toContain('PRIVATE KEY');
    for (const k of keys) {
      const body = k.keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
      for (const line of body) expect(m).not.toContain(line.slice(0, 24));
    }
  }
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'mf-certs-'));
  ca = makeCA(path.join(tmp, 'ca'));
  const d = (n: string) => path.join(tmp, 'issued', n);
  c.mail = issue(ca, { names: ['mail.example.org', 'IMAP.example.org'], dir: d('mail') });
  c.wild = issue(ca, { names: ['*.example.net'], dir: d('wild') });
  c.dualEc = issue(ca, { names: ['dual.example.com', 'sieve.example.com'], dir: d('dualEc') });
  c.dualRsa = issue(ca, { names: ['sieve.example.com', 'dual.example.com'], keyType: 'rsa', dir: d('dualRsa') });
  c.dupShort = issue(ca, { names: ['dup.example.com'], days: 30, dir: d('dupShort') });
  c.dupLong = issue(ca, { names: ['dup.example.com'], days: 80, dir: d('dupLong') });
  c.oldAlone = issue(ca, { names: ['old.example.com'], expired: true, dir: d('oldAlone') });
  c.bothOld = issue(ca, { names: ['both.example.com'], expired: true, dir: d('bothOld') });
  c.bothNew = issue(ca, { names: ['both.example.com'], dir: d('bothNew') });
  c.pem = issue(ca, { names: ['pem.example.com'], dir: d('pem') });
  c.other = issue(ca, { names: ['mismatch.example.com'], dir: d('other') });

  le = path.join(tmp, 'letsencrypt');
  makeLetsEncryptTree(le, {
    // Folder names deliberately unlike the names inside.
    'zz-lineage-0001': c.mail,
    'wildcard': c.wild,
    'dual-ecdsa': c.dualEc,
    'dual-rsa': c.dualRsa,
    'dup-a': c.dupShort,
    'dup-b': c.dupLong,
    'old': c.oldAlone,
    'both-1-old': c.bothOld,
    'both-2-new': c.bothNew,
  });
  // A lineage missing its key.
  mkdirSync(path.join(le, 'live', 'broken-lineage'));
  copyFileSync(c.pem.fullchainPath, path.join(le, 'live', 'broken-lineage', 'fullchain.pem'));

  pemDir = path.join(tmp, 'pems');
  mkdirSync(pemDir);
  copyFileSync(c.pem.combinedPath, path.join(pemDir, 'pem.example.com.pem'));
  writeFileSync(path.join(pemDir, 'README.txt'), 'not a certificate\n');
  // Cert of one pair, key of another.
  writeFileSync(path.join(pemDir, 'mismatch.pem'), c.other.fullchainPem + c.pem.keyPem);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('loadCertificates: a mixed tree', () => {
  beforeAll(async () => {
    store = await loadCertificates(sources({ letsencrypt: [le], pemDirs: [pemDir] }));
  });

  it('indexes by subjectAltName (lowercased), not by the lineage folder name', () => {
    const i = store.exact['mail.example.org'];
    expect(i).toBeTypeOf('number');
    expect(store.exact['imap.example.org']).toBe(i);
    expect(store.exact['zz-lineage-0001']).toBeUndefined();
    const summary = store.certificates.find((s) => s.context === i)!;
    expect(summary.names).toEqual(['mail.example.org', 'imap.example.org']);
    expect(summary.path).toBe(path.join(le, 'live', 'zz-lineage-0001', 'fullchain.pem'));
    expect(summary.keyType).toBe('ec');
    expect(summary.issuer).toContain('intermediate');
    expect(summary.expired).toBe(false);
    // What the addon read from the leaf is what node:crypto reads.
    const leaf = new X509Certificate(c.mail!.certPem);
    expect(summary.fingerprint256).toBe(leaf.fingerprint256);
    expect(summary.serial).toBe(leaf.serialNumber);
    expect(summary.issuer).toBe(leaf.issuer.split('\n').join(', '));
    expect(summary.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime());
    expect(summary.notBefore.getTime()).toBe(new Date(leaf.validFrom).getTime());
    // The context holds the pair the addon checked (a handle, no PEM text in JS).
    expect(store.contexts[i!]!.certs).toHaveLength(1);
    expect(JSON.stringify(store.contexts[i!])).not.toContain('PRIVATE KEY');
  });

  it('puts a wildcard in the wildcard index, one label only', () => {
    const w = store.wildcard['example.net'];
    expect(w).toBeTypeOf('number');
    expect(lookup(store, 'a.example.net')).toMatchObject({ context: w, match: 'wildcard' });
    expect(lookup(store, 'A.Example.NET.')).toMatchObject({ context: w, match: 'wildcard' });
    expect(lookup(store, 'example.net').match).toBe('default');
    expect(lookup(store, 'a.b.example.net').match).toBe('default');
  });

  it('puts ECDSA and RSA certificates for the same names into one context', () => {
    const i = store.exact['dual.example.com']!;
    expect(store.exact['sieve.example.com']).toBe(i);
    const ctx = store.contexts[i]!;
    expect(ctx.certs).toHaveLength(2);
    expect(lookup(store, 'dual.example.com').certificates.map((s) => s.keyType)).toEqual(['ec', 'rsa']);
  });

  it('keeps the certificate that expires last for a duplicate name, and reports the other', () => {
    const r = lookup(store, 'dup.example.com');
    expect(r.match).toBe('exact');
    expect(r.certificates).toHaveLength(1);
    expect(r.certificates[0]!.path).toContain(`${path.sep}dup-b${path.sep}`);
    expect(r.certificates[0]!.notAfter.getTime()).toBe(c.dupLong!.notAfter.getTime());
    const p = store.problems.find((x) => x.path.includes(`${path.sep}dup-a${path.sep}`));
    expect(p).toMatchObject({ level: 'info' });
    expect(store.certificates.some((s) => s.path.includes(`${path.sep}dup-a${path.sep}`))).toBe(false);
  });

  it('loads a combined PEM file and skips other files of a PEM directory at debug level', () => {
    const r = lookup(store, 'pem.example.com');
    expect(r.match).toBe('exact');
    expect(r.certificates[0]!.path).toBe(path.join(pemDir, 'pem.example.com.pem'));
    expect(r.certificates[0]!.keyPath).toBe(path.join(pemDir, 'pem.example.com.pem'));
    expect(store.problems).toContainEqual(expect.objectContaining({ level: 'debug', path: path.join(pemDir, 'README.txt') }));
  });

  it('skips a key that does not match its certificate, naming the path', () => {
    expect(lookup(store, 'mismatch.example.com').match).toBe('default');
    const p = store.problems.find((x) => x.path === path.join(pemDir, 'mismatch.pem') && x.level === 'error');
    expect(p?.level).toBe('error');
    expect(p?.message).toMatch(/does not match/);
    expect(p?.message).toContain(path.join(pemDir, 'mismatch.pem'));
  });

  it('reports a lineage missing privkey.pem and ignores README files', () => {
    const p = store.problems.find((x) => x.path === path.join(le, 'live', 'broken-lineage'));
    expect(p).toMatchObject({ level: 'error' });
    expect(p!.message).toContain('privkey.pem');
    expect(store.problems.some((x) => x.path.endsWith('README'))).toBe(false);
  });

  it('lists lineages on the addon threads as readdir does, and leaves what it cannot list to readdir', () => {
    const live = path.join(tmp, 'lineage-listing');
    mkdirSync(path.join(live, 'both'), { recursive: true });
    for (const f of ['cert.pem', 'fullchain.pem', 'privkey.pem', 'README']) writeFileSync(path.join(live, 'both', f), '');
    mkdirSync(path.join(live, 'no-key'));
    writeFileSync(path.join(live, 'no-key', 'fullchain.pem'), '');
    mkdirSync(path.join(live, 'key-only'));
    symlinkSync('../../missing/privkey1.pem', path.join(live, 'key-only', 'privkey.pem')); // listed, even dangling
    mkdirSync(path.join(live, 'empty'));
    symlinkSync('both', path.join(live, 'linked'));
    writeFileSync(path.join(live, 'README'), '');
    const names = ['both', 'no-key', 'key-only', 'empty', 'linked', 'README', 'gone', '..', 'both/..', ''];
    expect([...loadAddon().lineageFiles(live, names)]).toEqual([3, 1, 2, 0, 3, -1, -1, -1, -1, -1]);
    // The same answers as readdir, for every name it can list.
    for (const name of names.slice(0, 5)) {
      const files = readdirSync(path.join(live, name));
      expect(loadAddon().lineageFiles(live, [name])[0]).toBe((files.includes('fullchain.pem') ? 1 : 0) | (files.includes('privkey.pem') ? 2 : 0));
    }
    // Enough names for the addon's threads (run_in_background: 256 and more).
    const many = Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? 'both' : i % 3 === 1 ? 'no-key' : 'gone'));
    expect([...loadAddon().lineageFiles(live, many)]).toEqual(many.map((n) => (n === 'both' ? 3 : n === 'no-key' ? 1 : -1)));
    expect([...loadAddon().lineageFiles(path.join(tmp, 'no-such-live'), ['both'])]).toEqual([-1]);
  });

  it('serves an expired certificate only when nothing valid covers its names, with a warning', () => {
    const old = lookup(store, 'old.example.com');
    expect(old.match).toBe('exact');
    expect(old.certificates[0]!.expired).toBe(true);
    expect(store.problems).toContainEqual(
      expect.objectContaining({ level: 'warning', path: path.join(le, 'live', 'old', 'fullchain.pem'), message: expect.stringMatching(/expired on .*served anyway/) }),
    );
    const both = lookup(store, 'both.example.com');
    expect(both.certificates).toHaveLength(1);
    expect(both.certificates[0]!.expired).toBe(false);
    expect(both.certificates[0]!.path).toContain('both-2-new');
    expect(store.certificates.some((s) => s.path.includes('both-1-old'))).toBe(false);
  });

  it('falls back to the first loaded certificate (sorted by path) as default, and says so', () => {
    expect(store.defaultFrom).toBe('first-loaded');
    const first = store.certificates.find((s) => s.context === store.defaultContext)!;
    // Sorted by path, live/both-2-new/ is the first loaded that is served (both-1-old lost to it).
    expect(first.path).toContain(`live${path.sep}both-2-new`);
    expect(store.defaultName).toBe('both.example.com');
    expect(lookup(store, 'unknown.example.org')).toMatchObject({ context: store.defaultContext, match: 'default' });
    expect(lookup(store, '').match).toBe('default');
  });

  it('never puts key material into a problem message', () => {
    expect(store.problems.length).toBeGreaterThan(0);
    noKeyMaterial(store.problems.map((p) => p.message), Object.values(c));
  });

  it('has consistent indexes', () => {
    for (const i of [...Object.values(store.exact), ...Object.values(store.wildcard)]) {
      expect(i).toBeGreaterThanOrEqual(0);
      expect(i).toBeLessThan(store.contexts.length);
    }
    expect(new Set(store.certificates.map((s) => s.context)).size).toBe(store.contexts.length);
  });
});

describe('loadCertificates: edge cases', () => {
  it('resolves a configured default name, exact then wildcard', async () => {
    const s1 = await loadCertificates(sources({ letsencrypt: [le], defaultName: 'IMAP.example.org.' }));
    expect(s1.defaultFrom).toBe('configured');
    expect(s1.defaultContext).toBe(s1.exact['imap.example.org']);
    expect(s1.defaultName).toBe('imap.example.org');
    const s2 = await loadCertificates(sources({ letsencrypt: [le], defaultName: 'mx.example.net' }));
    expect(s2.defaultContext).toBe(s2.wildcard['example.net']);
    const s3 = await loadCertificates(sources({ letsencrypt: [le], defaultName: 'nowhere.example' }));
    expect(s3.defaultFrom).toBe('first-loaded');
    expect(s3.problems).toContainEqual(expect.objectContaining({ level: 'warning', message: expect.stringContaining('nowhere.example') }));
  });

  it('throws MF_CERT_NONE listing why when nothing can be served', async () => {
    const bad = path.join(tmp, 'bad-pems');
    mkdirSync(bad, { recursive: true });
    writeFileSync(path.join(bad, 'mismatch.pem'), c.other!.fullchainPem + c.pem!.keyPem);
    const err = await loadCertificates(sources({ pemDirs: [bad], letsencrypt: [path.join(tmp, 'missing')] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MailfrontError);
    expect((err as MailfrontError).code).toBe('MF_CERT_NONE');
    expect((err as MailfrontError).message).toContain('mismatch.pem');
    expect((err as MailfrontError).message).toContain(path.join(tmp, 'missing', 'live'));
    noKeyMaterial([(err as Error).message], [c.pem!]);
    const none = await loadCertificates(sources()).catch((e: unknown) => e);
    expect((none as MailfrontError).code).toBe('MF_CERT_NONE');
  });

  it('explicit pairs: a cert without a chain loads with a warning; swapped files are explained', async () => {
    const s = await loadCertificates(sources({ pairs: [{ cert: c.mail!.certPath, key: c.mail!.keyPath }, { cert: c.pem!.keyPath, key: c.pem!.certPath }] }));
    expect(lookup(s, 'mail.example.org').match).toBe('exact');
    expect(s.problems).toContainEqual(expect.objectContaining({ level: 'warning', message: expect.stringMatching(/no intermediate/) }));
    expect(s.problems).toContainEqual(expect.objectContaining({ level: 'error', path: c.pem!.keyPath, message: expect.stringMatching(/swapped/) }));
    noKeyMaterial(s.problems.map((p) => p.message), [c.pem!, c.mail!]);
  });

  it('indexes by CN only when there is no subjectAltName', async () => {
    const cn = issue(ca, { names: ['cn-only.example.org'], noSan: true, dir: path.join(tmp, 'issued', 'cn') });
    const s = await loadCertificates(sources({ pairs: [{ cert: cn.fullchainPath, key: cn.keyPath }] }));
    expect(s.exact['cn-only.example.org']).toBe(0);
    // With a SAN, the CN is not indexed.
    const san = issue(ca, { names: ['san.example.org'], cn: 'cn.example.org', dir: path.join(tmp, 'issued', 'san') });
    const s2 = await loadCertificates(sources({ pairs: [{ cert: san.fullchainPath, key: san.keyPath }] }));
    expect(Object.keys(s2.exact)).toEqual(['san.example.org']);
  });

  it('skips a key whose private half was altered (public half kept), by path, in PKCS#8 and SEC1 form', async () => {
    const dir = path.join(tmp, 'damaged');
    mkdirSync(dir, { recursive: true });
    const sec1 = (pem: string) => createPrivateKey(pem).export({ type: 'sec1', format: 'pem' }) as string;
    const pkcs8Bad = path.join(dir, 'mail-pkcs8.key'); // read by fastEcKey (parse.ts)
    const sec1Bad = path.join(dir, 'wild-sec1.key'); // read by createPrivateKey
    const sec1Good = path.join(dir, 'pem-sec1.key');
    writeFileSync(pkcs8Bad, damagePrivateScalar(c.mail!.keyPem));
    writeFileSync(sec1Bad, damagePrivateScalar(sec1(c.wild!.keyPem)));
    writeFileSync(sec1Good, sec1(c.pem!.keyPem));
    // What the old check saw: the public halves still match.
    for (const [cert, key] of [[c.mail!, pkcs8Bad], [c.wild!, sec1Bad]] as const) {
      expect(new X509Certificate(cert.fullchainPem).checkPrivateKey(createPrivateKey(readFileSync(key)))).toBe(true);
    }
    const s = await loadCertificates(
      sources({
        pairs: [
          { cert: c.mail!.fullchainPath, key: pkcs8Bad },
          { cert: c.wild!.fullchainPath, key: sec1Bad },
          { cert: c.pem!.fullchainPath, key: sec1Good },
        ],
      }),
    );
    expect(s.certificates.map((x) => x.path)).toEqual([c.pem!.fullchainPath]);
    expect(lookup(s, 'mail.example.org').certificates.map((x) => x.path)).toEqual([c.pem!.fullchainPath]);
    expect(lookup(s, 'x.example.net').match).toBe('default');
    for (const [cert, key] of [[c.mail!.fullchainPath, pkcs8Bad], [c.wild!.fullchainPath, sec1Bad]]) {
      expect(s.problems).toContainEqual({
        level: 'error',
        path: cert,
        message: `the private key ${key} does not work with the certificate ${cert}: its public half matches, but a signature made with it does not verify (a damaged key?); skipped`,
      });
    }
    noKeyMaterial(s.problems.map((p) => p.message), [c.mail!, c.wild!, c.pem!]);
  });

  it('skips an RSA key under 2048 bits (OpenSSL security level 2) by path, instead of failing the whole snapshot', async () => {
    const weak = issue(ca, { names: ['weak.example.org'], keyType: 'rsa', rsaBits: 1024, dir: path.join(tmp, 'issued', 'weak') });
    const s = await loadCertificates(sources({ pairs: [{ cert: weak.fullchainPath, key: weak.keyPath }, { cert: c.dualRsa!.fullchainPath, key: c.dualRsa!.keyPath }] }));
    expect(s.certificates.map((x) => x.path)).toEqual([c.dualRsa!.fullchainPath]);
    expect(lookup(s, 'weak.example.org').match).toBe('default');
    expect(s.problems).toContainEqual({
      level: 'error',
      path: weak.fullchainPath,
      message: `the private key ${weak.keyPath} is too weak for OpenSSL's security level 2, which mailfront runs at (RSA, 1024 bits; 2048 or more needed); skipped`,
    });
  });

  it('the addon zeroes the key bytes it is given, and refuses nothing for being a Buffer', () => {
    const key = Buffer.from(c.pem!.keyPem);
    const certs = c.pem!.fullchainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!.map((b) => Buffer.from(b));
    const [r] = loadAddon().checkCertificates([{ certs, keys: [key] }]);
    expect(r).toMatchObject({ sanDns: ['pem.example.com'], keyType: 'ec', chain: -2, chainLength: 2 });
    expect(key.every((b) => b === 0)).toBe(true);
    expect(certs[0]!.toString()).toContain('BEGIN CERTIFICATE');
  });

  it('the addon reads plain pairs by path and leaves every other case to read.ts (unread)', () => {
    const dir = path.join(tmp, 'by-path');
    mkdirSync(dir);
    const file = (name: string, text: string, mode = 0o600) => {
      const p = path.join(dir, name);
      writeFileSync(p, text, { mode });
      chmodSync(p, mode);
      return p;
    };
    const chain = file('fullchain.pem', c.pem!.fullchainPem, 0o644);
    const key = file('privkey.pem', c.pem!.keyPem);
    const [plain, viaBlocks] = [
      loadAddon().checkCertificates([{ certPath: chain, keyPath: key, combined: false }])[0]!,
      loadAddon().checkCertificates([{ certs: c.pem!.fullchainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)!, keys: [c.pem!.keyPem] }])[0]!,
    ];
    expect(plain).toMatchObject({ sanDns: ['pem.example.com'], chainLength: 2 });
    expect(plain).toMatchObject({ fingerprint256: (viaBlocks as { fingerprint256: string }).fingerprint256 });
    const unread = [
      { certPath: chain, keyPath: file('readable.pem', c.pem!.keyPem, 0o644), combined: false }, // read.ts warns
      { certPath: chain, keyPath: path.join(dir, 'missing.pem'), combined: false },
      { certPath: dir, keyPath: key, combined: false }, // a directory
      { certPath: key, keyPath: chain, combined: false }, // swapped
      { certPath: chain, keyPath: file('encrypted.pem', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n'), combined: false },
      { certPath: chain, keyPath: chain, combined: true }, // combined without a key
    ];
    expect(loadAddon().checkCertificates(unread)).toEqual(unread.map(() => ({ unread: true })));
    const combined = file('combined.pem', c.pem!.fullchainPem + c.pem!.keyPem);
    expect(loadAddon().checkCertificates([{ certPath: combined, keyPath: combined, combined: true }])[0]).toMatchObject({ sanDns: ['pem.example.com'] });
  });

  it('reports a broken key file by path without its contents', async () => {
    const dir = path.join(tmp, 'broken-key');
    mkdirSync(dir, { recursive: true });
    const keyPath = path.join(dir, 'privkey.pem');
    // A damaged key: body cut in half.
    const lines = c.mail!.keyPem.trim().split('\n');
    writeFileSync(keyPath, [lines[0], lines[1], lines[2]!.slice(0, 20), lines[lines.length - 1]].join('\n') + '\n');
    const err = await loadCertificates(sources({ pairs: [{ cert: c.mail!.fullchainPath, key: keyPath }] })).catch((e: unknown) => e);
    expect((err as MailfrontError).code).toBe('MF_CERT_NONE');
    const problems = (err as { problems: { path: string; message: string }[] }).problems;
    const p = problems.find((x) => x.path === keyPath && x.message.includes('cannot be parsed'))!;
    expect(p.message).toContain(keyPath);
    expect(p.message).toMatch(/cannot be parsed/);
    noKeyMaterial([p.message, (err as Error).message], [c.mail!]);
  });

  it('explains EACCES on a key (injected read function)', async () => {
    const read = async (p: string): Promise<Buffer> => {
      if (p.endsWith('privkey.pem')) throw Object.assign(new Error(`EACCES: permission denied, open '${p}'`), { code: 'EACCES' });
      const { readFile } = await import('node:fs/promises');
      return readFile(p);
    };
    const s = await loadCertificates(sources({ letsencrypt: [le], pemDirs: [pemDir] }), { readFile: read });
    const p = s.problems.find((x) => x.path === path.join(le, 'live', 'dual-rsa', 'privkey.pem'))!;
    expect(p.level).toBe('error');
    expect(p.message).toContain(path.join(le, 'live', 'dual-rsa', 'privkey.pem'));
    expect(p.message).toContain(path.join(le, 'archive', 'dual-rsa', 'privkey1.pem'));
    expect(p.message).toMatch(/permission denied.*service user.*read access/s);
    expect(p.message).toContain('0640');
    // Only the PEM-dir certificates remain.
    expect(Object.keys(s.exact)).toEqual(['pem.example.com']);
  });

  it('explains EACCES for real: loads as user nobody with a root-only key', async () => {
    // npm test runs as root (Cyrus needs it); as root this test can drop to nobody.
    expect(process.getuid?.(), 'run the tests as root').toBe(0);
    // Bundle the module to one .mjs (esbuild, as vitest uses it) so a plain node child can run it.
    const { build } = await import('esbuild');
    const out = path.join(tmp, 'child', 'certs.mjs');
    await build({ entryPoints: [path.resolve('src/certs/index.ts')], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'silent' });
    // Names are checked by the addon's host-name rule: the child loads a copy it can read.
    const addonCopy = path.join(tmp, 'child', 'mailfront.node');
    copyFileSync(process.env.MAILFRONT_ADDON ?? path.resolve('build/Release/mailfront.node'), addonCopy);
    const tree = path.join(tmp, 'nobody-le');
    makeLetsEncryptTree(tree, { readable: c.pem!, locked: c.mail! });
    // Everything readable by others except archive/locked/privkey1.pem (certbot's 0600 root).
    execFileSync('chmod', ['-R', 'go+rX', tmp]);
    chmodSync(path.join(tree, 'archive', 'locked', 'privkey1.pem'), 0o600);
    const script = `import { loadCertificates } from ${JSON.stringify(out)};
const s = await loadCertificates({ letsencrypt: [${JSON.stringify(tree)}], pemDirs: [], pairs: [] });
process.stdout.write(JSON.stringify({ names: Object.keys(s.exact), problems: s.problems }));`;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, cwd: '/', encoding: 'utf8', env: { ...process.env, MAILFRONT_ADDON: addonCopy } });
    const r = JSON.parse(stdout) as { names: string[]; problems: { level: string; path: string; message: string }[] };
    expect(r.names).toEqual(['pem.example.com']);
    // go+rX made the readable lineage's key world-readable: that is warned about.
    expect(r.problems).toContainEqual(expect.objectContaining({ level: 'warning', path: path.join(tree, 'live', 'readable', 'privkey.pem'), message: expect.stringMatching(/readable by every user/) }));
    const p = r.problems.find((x) => x.path === path.join(tree, 'live', 'locked', 'privkey.pem'))!;
    expect(p.level).toBe('error');
    expect(p.message).toMatch(/permission denied \(EACCES\)/);
    expect(p.message).toMatch(/service user nobody \(uid 65534\)/);
    noKeyMaterial(r.problems.map((x) => x.message), [c.mail!]);
  });
});
