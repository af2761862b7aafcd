// Throwaway PKI for the tests: a throwaway CA (root + intermediate) and leaf certificates made with
// the `openssl` CLI, plus Let's Encrypt-shaped trees (live/ symlinks into archive/, like certbot).
// Shared by unit, native and end-to-end tests. (`mailfront demo` makes its own with scripts/demo-certs.sh.)
//
//   const ca = makeCA(path.join(tmp, 'ca'));               // once per test file
//   const leaf = issue(ca, { names: ['mail.example.org'], dir: path.join(tmp, 'leaf1') });
//   makeLetsEncryptTree(path.join(tmp, 'le'), { 'mail-lineage': leaf });
//   // -> tmp/le/live/mail-lineage/{cert,chain,fullchain,privkey}.pem -> ../../archive/mail-lineage/*1.pem
//
// Everything is synchronous (execFileSync) and each issue() uses its own
// scratch database, so calls never race. ECDSA P-256 is the default: key
// generation is ~1 ms; RSA 2048 costs ~50-200 ms each, use it only where needed.
// Leaves are signed with `openssl ca` (not `x509 -req`) so that notBefore and
// notAfter can be put in the past (expired certificates) on OpenSSL 3.0.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync, unlinkSync, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export type KeyType = 'ec' | 'rsa';

export interface CA {
  dir: string;
  rootCertPath: string;
  rootKeyPath: string;
  intermediateCertPath: string;
  intermediateKeyPath: string;
  rootPem: string;
  intermediatePem: string;
}

export interface IssueOptions {
  /** DNS names for subjectAltName (first one is also the CN unless `cn` is given). */
  names: string[];
  /** Where to write the files (created). */
  dir: string;
  keyType?: KeyType;
  /** Validity in days from now (default 90, like Let's Encrypt). */
  days?: number;
  /** Make a certificate that expired yesterday (valid from 90 days ago). */
  expired?: true;
  /** Explicit validity window; overrides days/expired. */
  notBefore?: Date;
  notAfter?: Date;
  /** Subject CN (default: names[0]). */
  cn?: string;
  /** Leave out subjectAltName entirely (to test CN-only certificates). */
  noSan?: true;
  /** RSA key size (default 2048). */
  rsaBits?: number;
}

export interface Issued {
  dir: string;
  names: string[];
  keyType: KeyType;
  /** Leaf only. */
  certPath: string;
  /** Intermediate only (certbot's chain.pem). */
  chainPath: string;
  /** Leaf + intermediate (certbot's fullchain.pem). */
  fullchainPath: string;
  /** PKCS#8 private key. */
  keyPath: string;
  /** fullchain + key in one file (HAProxy crt style). */
  combinedPath: string;
  certPem: string;
  chainPem: string;
  fullchainPem: string;
  keyPem: string;
  combinedPem: string;
  notBefore: Date;
  notAfter: Date;
}

function openssl(args: string[], cwd?: string): string {
  try {
    return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

function genKey(keyPath: string, keyType: KeyType, rsaBits = 2048): void {
  if (keyType === 'ec') openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyPath]);
  else openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${rsaBits}`, '-out', keyPath]);
}

/** OpenSSL `ca -startdate/-enddate` format (GeneralizedTime, UTC). */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

const DAY = 86_400_000;

/** Root (10 years) + intermediate (5 years), ECDSA P-256, in `dir` (created). */
export function makeCA(dir: string, opts: { name?: string } = {}): CA {
  const name = opts.name ?? 'mailfront test';
  mkdirSync(dir, { recursive: true });
  const rootKeyPath = path.join(dir, 'root.key');
  const rootCertPath = path.join(dir, 'root.pem');
  const intermediateKeyPath = path.join(dir, 'intermediate.key');
  const intermediateCertPath = path.join(dir, 'intermediate.pem');
  const ext = path.join(dir, 'ca-ext.cnf');
  writeFileSync(
    ext,
    [
      '[root]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[intermediate]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  genKey(rootKeyPath, 'ec');
  openssl(['req', '-x509', '-new', '-key', rootKeyPath, '-out', rootCertPath, '-days', '3650', '-subj', `/O=${name}/CN=${name} root`,
    '-config', ext, '-extensions', 'root', '-set_serial', '1']);
  genKey(intermediateKeyPath, 'ec');
  const csr = path.join(dir, 'intermediate.csr');
  openssl(['req', '-new', '-key', intermediateKeyPath, '-out', csr, '-subj', `/O=${name}/CN=${name} intermediate`]);
  openssl(['x509', '-req', '-in', csr, '-CA', rootCertPath, '-CAkey', rootKeyPath, '-set_serial', '2', '-days', '1825',
    '-extfile', ext, '-extensions', 'intermediate', '-out', intermediateCertPath]);
  return {
    dir,
    rootCertPath,
    rootKeyPath,
    intermediateCertPath,
    intermediateKeyPath,
    rootPem: readFileSync(rootCertPath, 'utf8'),
    intermediatePem: readFileSync(intermediateCertPath, 'utf8'),
  };
}

/** A leaf for `names`, signed by the intermediate; writes cert/chain/fullchain/privkey/combined .pem into opts.dir. */
export function issue(ca: CA, opts: IssueOptions): Issued {
  const keyType = opts.keyType ?? 'ec';
  const dir = opts.dir;
  mkdirSync(dir, { recursive: true });
  const now = Date.now();
  let notBefore: Date;
  let notAfter: Date;
  if (opts.notBefore || opts.notAfter) {
    notBefore = opts.notBefore ?? new Date(now - DAY);
    notAfter = opts.notAfter ?? new Date(notBefore.getTime() + 90 * DAY);
  } else if (opts.expired) {
    notBefore = new Date(now - 90 * DAY);
    notAfter = new Date(now - DAY);
  } else {
    notBefore = new Date(now - 60_000);
    notAfter = new Date(now + (opts.days ?? 90) * DAY);
  }
  // Whole seconds: what the certificate can hold.
  notBefore = new Date(Math.floor(notBefore.getTime() / 1000) * 1000);
  notAfter = new Date(Math.floor(notAfter.getTime() / 1000) * 1000);

  const keyPath = path.join(dir, 'privkey.pem');
  const certPath = path.join(dir, 'cert.pem');
  const chainPath = path.join(dir, 'chain.pem');
  const fullchainPath = path.join(dir, 'fullchain.pem');
  const combinedPath = path.join(dir, 'combined.pem');
  genKey(keyPath, keyType, opts.rsaBits);

  // Scratch `openssl ca` database, private to this call.
  const work = path.join(dir, `.ca-${randomBytes(4).toString('hex')}`);
  mkdirSync(work);
  try {
    writeFileSync(path.join(work, 'index.txt'), '');
    writeFileSync(path.join(work, 'serial'), randomBytes(12).toString('hex').replace(/^./, '4') + '\n');
    const keyUsage = keyType === 'rsa' ? 'digitalSignature, keyEncipherment' : 'digitalSignature';
    const lines = [
      '[ca]',
      'default_ca = test_ca',
      '[test_ca]',
      `database = ${path.join(work, 'index.txt')}`,
      `new_certs_dir = ${work}`,
      `serial = ${path.join(work, 'serial')}`,
      'default_md = sha256',
      'policy = policy_any',
      'unique_subject = no',
      'copy_extensions = none',
      'email_in_dn = no',
      '[policy_any]',
      'commonName = optional',
      '[leaf]',
      'basicConstraints = critical, CA:FALSE',
      `keyUsage = critical, ${keyUsage}`,
      'extendedKeyUsage = serverAuth',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
    ];
    if (!opts.noSan) lines.push(`subjectAltName = ${opts.names.map((n) => `DNS:${n}`).join(', ')}`);
    const cnf = path.join(work, 'ca.cnf');
    writeFileSync(cnf, lines.join('\n') + '\n');
    const cn = opts.cn ?? opts.names[0] ?? 'unnamed';
    const csr = path.join(work, 'leaf.csr');
    openssl(['req', '-new', '-key', keyPath, '-out', csr, '-subj', `/CN=${cn}`]);
    openssl(['ca', '-batch', '-notext', '-config', cnf, '-extensions', 'leaf', '-in', csr, '-out', certPath,
      '-cert', ca.intermediateCertPath, '-keyfile', ca.intermediateKeyPath,
      '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter)]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }

  const certPem = pemOnly(readFileSync(certPath, 'utf8'));
  writeFileSync(certPath, certPem);
  const chainPem = ca.intermediatePem;
  const fullchainPem = certPem + chainPem;
  const keyPem = readFileSync(keyPath, 'utf8');
  const combinedPem = fullchainPem + keyPem;
  writeFileSync(chainPath, chainPem);
  writeFileSync(fullchainPath, fullchainPem);
  writeFileSync(combinedPath, combinedPem);
  return {
    dir, names: opts.names, keyType, certPath, chainPath, fullchainPath, keyPath, combinedPath,
    certPem, chainPem, fullchainPem, keyPem, combinedPem, notBefore, notAfter,
  };
}

function pemOnly(text: string): string {
  const m = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/);
  if (!m) throw new Error('openssl produced no certificate');
  return m[0].endsWith('\n') ? m[0] : m[0] + '\n';
}

const LE_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

function writeArchiveVersion(root: string, lineage: string, cert: Issued, version: number): void {
  const archive = path.join(root, 'archive', lineage);
  const live = path.join(root, 'live', lineage);
  mkdirSync(archive, { recursive: true, mode: 0o700 });
  mkdirSync(live, { recursive: true, mode: 0o700 });
  const pems: Record<(typeof LE_FILES)[number], string> = {
    cert: cert.certPem, chain: cert.chainPem, fullchain: cert.fullchainPem, privkey: cert.keyPem,
  };
  for (const f of LE_FILES) {
    writeFileSync(path.join(archive, `${f}${version}.pem`), pems[f], { mode: f === 'privkey' ? 0o600 : 0o644 });
    // Replace the symlink atomically, as certbot does.
    const link = path.join(live, `${f}.pem`);
    const tmp = `${link}.tmp-${process.pid}`;
    if (existsSync(tmp)) unlinkSync(tmp);
    symlinkSync(path.join('..', '..', 'archive', lineage, `${f}${version}.pem`), tmp);
    renameSync(tmp, link);
  }
}

/**
 * A certbot-shaped tree under `root`: live/<lineage>/{cert,chain,fullchain,privkey}.pem as
 * relative symlinks to archive/<lineage>/<file>1.pem, live/README, renewal/<lineage>.conf.
 * Returns the live paths per lineage.
 */
export function makeLetsEncryptTree(
  root: string,
  lineages: Record<string, Issued>,
): Record<string, { fullchain: string; privkey: string; live: string }> {
  mkdirSync(path.join(root, 'live'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(root, 'archive'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(root, 'renewal'), { recursive: true });
  writeFileSync(path.join(root, 'live', 'README'), 'This directory contains your keys and certificates.\n');
  const out: Record<string, { fullchain: string; privkey: string; live: string }> = {};
  for (const [lineage, cert] of Object.entries(lineages)) {
    writeArchiveVersion(root, lineage, cert, 1);
    writeFileSync(path.join(root, 'live', lineage, 'README'), 'certbot README\n');
    writeFileSync(path.join(root, 'renewal', `${lineage}.conf`), `# renew_before_expiry = 30 days\nversion = 2.0.0\n`);
    const live = path.join(root, 'live', lineage);
    out[lineage] = { live, fullchain: path.join(live, 'fullchain.pem'), privkey: path.join(live, 'privkey.pem') };
  }
  return out;
}

/** Simulate a certbot renewal of one lineage: writes archive/<lineage>/*<version>.pem and re-points live/ symlinks. */
export function renewLineage(root: string, lineage: string, cert: Issued, version: number): void {
  writeArchiveVersion(root, lineage, cert, version);
}

/**
 * <leaf> signed again by <ca>'s intermediate with SHA-1 (for 30 days): the same names and key,
 * which the control plane takes, but OpenSSL refuses it at mailfront's security level 2
 * ("md too weak") when it builds the context.
 */
export function sha1Signed(ca: CA, leaf: Issued): Issued {
  const openssl = (args: string[], input: string) => execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
  const request = openssl(['x509', '-x509toreq', '-key', leaf.keyPath, '-copy_extensions', 'copyall'], leaf.certPem);
  const certPem = openssl(['x509', '-req', '-CA', ca.intermediateCertPath, '-CAkey', ca.intermediateKeyPath, '-sha1', '-days', '30', '-copy_extensions', 'copyall'], request);
  return { ...leaf, certPem, fullchainPem: certPem + leaf.chainPem, combinedPem: certPem + leaf.chainPem + leaf.keyPem };
}

/**
 * <keyPem> (an EC key, PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY") with its private scalar
 * changed (last bit flipped) and its public point kept: the public halves of key and certificate
 * still match, but nothing it signs verifies.
 */
export function damagePrivateScalar(keyPem: string): string {
  const m = /-----BEGIN ([A-Z ]+)-----([\s\S]+?)-----END \1-----/.exec(keyPem);
  if (!m) throw new Error('not a PEM key');
  const der = Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64');
  // ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING, ... }
  const at = der.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04]));
  if (at < 0) throw new Error('no ECPrivateKey in this PEM');
  const len = der[at + 4]!;
  der[at + 5 + len - 1]! ^= 0x01;
  return `-----BEGIN ${m[1]}-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${m[1]}-----\n`;
}
