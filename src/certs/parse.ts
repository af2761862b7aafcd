// Parse and validate one candidate (chain + key) with node:crypto.
// Problems name paths, never contents: no message may carry key material.
import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import { statSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { Candidate } from './sources.js';
import type { CertProblem, CertSummary } from './types.js';
import { describeFsError } from './fs-errors.js';
import { normalizeName } from './names.js';

export interface LoadedCert {
  summary: Omit<CertSummary, 'context'>;
  /** Leaf first, normalized PEM (re-encoded by node:crypto). */
  chainPem: string;
  /** PKCS#8 PEM. Never logged. */
  keyPem: string;
  /** Within notBefore..notAfter at load time. */
  usable: boolean;
  /** Position in the load order (sorted by path). */
  order: number;
}

/**
 * Reads a file. With `sync` (set by the bulk loader only, see parse-share.ts), stat and read are
 * done synchronously: a chain or key is a few KiB, and a thread that is busy parsing thousands of
 * them gains nothing from handing each read to the libuv pool and back.
 */
export type ReadFile = ((path: string) => Promise<Buffer>) & { sync?: (path: string) => Buffer };

/**
 * Parsed issuer certificates by PEM text, shared by the candidates of one load: every lineage of a
 * CA repeats the same intermediate, and node:crypto's parse costs ~0.1 ms (OpenSSL 3.0 decoders).
 * X509Certificate objects are immutable, so sharing them changes nothing.
 */
export type X509Cache = Map<string, X509Certificate>;

/** Largest file we read: a chain is a few KiB; this only guards against pointing at the wrong file. */
const MAX_BYTES = 1 << 20;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

interface PemBlock {
  label: string;
  pem: string;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(PEM_RE)].map((m) => ({ label: m[1] ?? '', pem: m[0] + '\n' }));
}

/** An error message from node:crypto, cut to its first line, with anything PEM-like removed. */
export function safeMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? '')
    .replace(/-----BEGIN[\s\S]*?(-----END[^-]*-----|$)/g, '[PEM]')
    .replace(/[A-Za-z0-9+/=]{40,}/g, '[…]')
    .slice(0, 200);
}

function statOrNull(file: string): Stats | null {
  try {
    return statSync(file);
  } catch {
    return null;
  }
}

async function readText(read: ReadFile, file: string, what: string, problems: CertProblem[], holdsKey = false): Promise<string | null> {
  try {
    const st = read.sync ? statOrNull(file) : await stat(file).catch(() => null);
    if (st && st.isFile() && st.size > MAX_BYTES) {
      problems.push({ level: 'error', path: file, message: `${what} ${file} is ${st.size} bytes, more than a PEM chain can be: skipped` });
      return null;
    }
    const text = (read.sync ? read.sync(file) : await read(file)).toString('utf8');
    if (holdsKey && st && (st.mode & 0o004) !== 0 && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
      problems.push({ level: 'warning', path: file, message: `${file} holds a private key and is readable by every user (mode ${(st.mode & 0o777).toString(8)}): chmod o-rwx` });
    }
    return text;
  } catch (err) {
    const resolved = await realpath(file).catch(() => undefined);
    problems.push({ level: 'error', path: file, message: `${describeFsError(err, file, what, resolved)}; skipped` });
    return null;
  }
}

// ---- EC keys without OpenSSL 3.0's decoder
// createPrivateKey on a PEM (or DER) key costs ~0.3 ms in Node 20's OpenSSL 3.0 (it builds a
// decoder context each time); the same key as a JWK takes ~0.05 ms. A PKCS#8 EC key (what certbot
// writes) is read here with a strict DER reader; anything unexpected returns null and the key goes
// through createPrivateKey as before (same result, same errors).

const EC_CURVES: Record<string, { crv: string; size: number }> = {
  '2a8648ce3d030107': { crv: 'P-256', size: 32 },
  '2b81040022': { crv: 'P-384', size: 48 },
  '2b81040023': { crv: 'P-521', size: 66 },
};
const OID_EC_PUBLIC_KEY = '2a8648ce3d0201';

/** One DER TLV at `at` (tag, value start, end), or null when malformed. */
function tlv(d: Buffer, at: number, end: number): { tag: number; start: number; end: number } | null {
  if (at + 2 > end) return null;
  const tag = d[at]!;
  let len = d[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 2 || start + n > end) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | d[start + i]!;
    start += n;
  }
  return start + len <= end ? { tag, start, end: start + len } : null;
}

function fastEcKey(b: PemBlock): KeyObject | null {
  if (b.label !== 'PRIVATE KEY') return null;
  const body = b.pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  const d = Buffer.from(body, 'base64');
  if (d.toString('base64') !== body) return null;
  // PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey, namedCurve }, OCTET STRING ECPrivateKey }
  const top = tlv(d, 0, d.length);
  if (!top || top.tag !== 0x30 || top.end !== d.length) return null;
  const ver = tlv(d, top.start, top.end);
  if (!ver || ver.tag !== 0x02 || ver.end - ver.start !== 1 || d[ver.start] !== 0) return null;
  const alg = tlv(d, ver.end, top.end);
  if (!alg || alg.tag !== 0x30) return null;
  const oid = tlv(d, alg.start, alg.end);
  if (!oid || oid.tag !== 0x06 || d.toString('hex', oid.start, oid.end) !== OID_EC_PUBLIC_KEY) return null;
  const curveOid = tlv(d, oid.end, alg.end);
  if (!curveOid || curveOid.tag !== 0x06 || curveOid.end !== alg.end) return null;
  const curve = EC_CURVES[d.toString('hex', curveOid.start, curveOid.end)];
  if (!curve) return null;
  const oct = tlv(d, alg.end, top.end);
  if (!oct || oct.tag !== 0x04 || oct.end !== top.end) return null;
  // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters OPTIONAL, [1] publicKey BIT STRING }
  const ecpk = tlv(d, oct.start, oct.end);
  if (!ecpk || ecpk.tag !== 0x30 || ecpk.end !== oct.end) return null;
  const v1 = tlv(d, ecpk.start, ecpk.end);
  if (!v1 || v1.tag !== 0x02 || v1.end - v1.start !== 1 || d[v1.start] !== 1) return null;
  const priv = tlv(d, v1.end, ecpk.end);
  if (!priv || priv.tag !== 0x04 || priv.end - priv.start !== curve.size) return null;
  let next = tlv(d, priv.end, ecpk.end);
  if (next && next.tag === 0xa0) {
    const p = tlv(d, next.start, next.end);
    if (!p || p.tag !== 0x06 || p.end !== next.end || !d.subarray(p.start, p.end).equals(d.subarray(curveOid.start, curveOid.end))) return null;
    next = tlv(d, next.end, ecpk.end);
  }
  if (!next || next.tag !== 0xa1 || next.end !== ecpk.end) return null;
  const bits = tlv(d, next.start, next.end);
  // Uncompressed point: 0 unused bits, 0x04, X, Y.
  if (!bits || bits.tag !== 0x03 || bits.end !== next.end || bits.end - bits.start !== 2 + 2 * curve.size) return null;
  if (d[bits.start] !== 0 || d[bits.start + 1] !== 0x04) return null;
  const x = bits.start + 2;
  const b64u = (from: number, to: number) => d.toString('base64url', from, to);
  try {
    return createPrivateKey({
      key: { kty: 'EC', crv: curve.crv, d: b64u(priv.start, priv.end), x: b64u(x, x + curve.size), y: b64u(x + curve.size, x + 2 * curve.size) },
      format: 'jwk',
    });
  } catch {
    return null; // e.g. a point not on the curve: createPrivateKey on the PEM reports it
  }
}

const PROBE = Buffer.from('mailfront: does this key sign for its certificate?');

/**
 * checkPrivateKey (like OpenSSL's X509_check_private_key and SSL_CTX_use_cert_and_key) compares
 * the public halves only: a key whose private half is damaged still "matches", and every handshake
 * then fails at signing. One signature, checked with the certificate's public key, proves the pair
 * the way a client will (about 0.1 ms of CPU for a P-256 key, 0.4 ms for RSA-2048).
 */
function signsFor(key: KeyObject, cert: X509Certificate): boolean {
  const digest = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
  try {
    return verify(digest, PROBE, cert.publicKey, sign(digest, PROBE, key));
  } catch {
    return false;
  }
}

/**
 * A key OpenSSL refuses at security level 2 (112-bit), the level of every context (native/tls.h
 * kSecurityLevel): RSA and DSA under 2048 bits, EC curves under 224 bits. Refused here, by path,
 * so that one weak certificate does not make the data plane refuse the whole snapshot.
 */
function weakKey(k: KeyObject): string | undefined {
  const type = k.asymmetricKeyType ?? 'unknown';
  const d = k.asymmetricKeyDetails ?? {};
  if ((type === 'rsa' || type === 'rsa-pss' || type === 'dsa') && (d.modulusLength ?? 0) < 2048) {
    return `${type.toUpperCase()}, ${d.modulusLength} bits; 2048 or more needed`;
  }
  // OpenSSL's curve names carry their size: prime192v1, secp224r1, sect163k1, brainpoolP160r1.
  const curveBits = Number(/\d{3}/.exec(d.namedCurve ?? '')?.[0]);
  if (type === 'ec' && curveBits < 224) return `EC on ${d.namedCurve}; a curve of 224 bits or more needed`;
  return undefined;
}

function singleLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

/** dNSName entries of a subjectAltName string as node:crypto prints it ('DNS:a, DNS:"quoted", IP Address:…'). */
function sanDnsNames(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  const re = /(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (const m of san.matchAll(re)) {
    let v = m[1] ?? '';
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    out.push(v);
  }
  return out;
}

function subjectCN(subject: string): string | undefined {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return undefined;
}

/** Parse and check one candidate; null (with an error problem naming the path) when it cannot be served. */
export async function parseCandidate(
  c: Candidate,
  order: number,
  read: ReadFile,
  now: Date,
  problems: CertProblem[],
  x509Cache: X509Cache = new Map(),
): Promise<LoadedCert | null> {
  const certPath = c.certPath;
  const certText = await readText(read, certPath, c.combined ? 'certificate file' : 'certificate', problems, c.combined);
  if (certText === null) return null;
  const certBlocks = pemBlocks(certText);
  const certs = certBlocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) {
    const hasKey = certBlocks.some((b) => KEY_LABELS.has(b.label));
    problems.push({
      level: 'error',
      path: certPath,
      message: `no PEM certificate in ${certPath}${hasKey && !c.combined ? ' (it holds a private key: are cert and key swapped?)' : ''}; skipped`,
    });
    return null;
  }

  // The key: from the same file (combined), its companion .key, or the key file.
  let keyPath = c.keyPath;
  let keyBlocks: PemBlock[];
  if (c.combined) {
    keyBlocks = certBlocks.filter((b) => KEY_LABELS.has(b.label));
    if (keyBlocks.length === 0 && c.keyCompanion) {
      keyPath = c.keyCompanion;
      const t = await readText(read, keyPath, 'private key', problems, true);
      if (t === null) return null;
      keyBlocks = pemBlocks(t).filter((b) => KEY_LABELS.has(b.label));
    }
    if (keyBlocks.length === 0) {
      problems.push({
        level: 'error',
        path: certPath,
        message: `no private key in ${certPath}: a file in a PEM directory holds the chain and the key (or add ${certPath.replace(/\.(pem|crt)$/i, '')}.key); skipped`,
      });
      return null;
    }
  } else {
    const t = await readText(read, keyPath, 'private key', problems, true);
    if (t === null) return null;
    const blocks = pemBlocks(t);
    keyBlocks = blocks.filter((b) => KEY_LABELS.has(b.label));
    if (keyBlocks.length === 0) {
      const hasCert = blocks.some((b) => b.label === 'CERTIFICATE');
      problems.push({
        level: 'error',
        path: keyPath,
        message: `no PEM private key in ${keyPath}${hasCert ? ' (it holds a certificate: are cert and key swapped?)' : ''}; skipped`,
      });
      return null;
    }
  }

  const x509: X509Certificate[] = [];
  for (const [i, b] of certs.entries()) {
    try {
      let x = x509Cache.get(b.pem);
      if (!x) {
        x = new X509Certificate(b.pem);
        if (i > 0) x509Cache.set(b.pem, x); // issuers repeat; leaves rarely do (and would all stay in memory)
      }
      x509.push(x);
    } catch (err) {
      problems.push({ level: 'error', path: certPath, message: `certificate #${i + 1} in ${certPath} cannot be parsed (${safeMessage(err)}); skipped` });
      return null;
    }
  }
  const keys: KeyObject[] = [];
  for (const b of keyBlocks) {
    if (b.label === 'ENCRYPTED PRIVATE KEY') {
      problems.push({ level: 'error', path: keyPath, message: `private key in ${keyPath} is encrypted (passphrase protected): mailfront needs an unencrypted key readable only by its user; skipped` });
      return null;
    }
    try {
      keys.push(fastEcKey(b) ?? createPrivateKey({ key: b.pem, format: 'pem' }));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ERR_MISSING_PASSPHRASE' ? 'it is encrypted (passphrase protected)' : safeMessage(err);
      problems.push({ level: 'error', path: keyPath, message: `private key in ${keyPath} cannot be parsed (${why}); skipped` });
      return null;
    }
  }

  const leaf = x509[0]!;
  const key = keys.find((k) => leaf.checkPrivateKey(k));
  if (!key) {
    const other = x509.findIndex((x, i) => i > 0 && keys.some((k) => x.checkPrivateKey(k)));
    const keyType = keys[0]?.asymmetricKeyType ?? 'unknown';
    const certType = leaf.publicKey.asymmetricKeyType ?? 'unknown';
    problems.push({
      level: 'error',
      path: certPath,
      message:
        other > 0
          ? `the private key ${keyPath} matches certificate #${other + 1} in ${certPath}, not the first: the server certificate must come first; skipped`
          : `the private key ${keyPath} does not match the certificate ${certPath} (key: ${keyType}, certificate: ${certType}); skipped`,
    });
    return null;
  }

  const weak = [key, ...x509.slice(1).map((x) => x.publicKey)].map(weakKey);
  const weakAt = weak.findIndex((w) => w !== undefined);
  if (weakAt >= 0) {
    problems.push({
      level: 'error',
      path: certPath,
      message: `${weakAt === 0 ? `the private key ${keyPath}` : `the key of certificate #${weakAt + 1} in ${certPath}`} is too weak for OpenSSL's security level 2, which mailfront runs at (${weak[weakAt]}); skipped`,
    });
    return null;
  }

  if (!signsFor(key, leaf)) {
    problems.push({
      level: 'error',
      path: certPath,
      message: `the private key ${keyPath} does not work with the certificate ${certPath}: its public half matches, but a signature made with it does not verify (a damaged key?); skipped`,
    });
    return null;
  }

  // Names: SAN dNSNames; the CN only when there is no SAN dNSName at all (RFC 6125).
  const rawNames = sanDnsNames(leaf.subjectAltName);
  const fromCN = rawNames.length === 0;
  if (fromCN) {
    const cn = subjectCN(leaf.subject);
    if (cn) rawNames.push(cn);
  }
  const names: string[] = [];
  for (const raw of rawNames) {
    const n = normalizeName(raw);
    if (n === null) {
      problems.push({ level: 'warning', path: certPath, message: `name ${JSON.stringify(raw)}${fromCN ? ' (CN)' : ''} in ${certPath} is not a host name or a one-label wildcard: not indexed` });
    } else if (!names.includes(n)) names.push(n);
  }
  if (names.length === 0) {
    problems.push({ level: 'error', path: certPath, message: `certificate ${certPath} has no usable DNS name (subjectAltName or CN): it cannot be selected by SNI; skipped` });
    return null;
  }
  if (fromCN) problems.push({ level: 'info', path: certPath, message: `certificate ${certPath} has no subjectAltName: indexed by its CN ${names[0]} (modern clients ignore the CN)` });

  // Chain: warn, don't refuse (self-signed and test certificates have none).
  const chain = x509.slice(1);
  if (chain.length === 0) {
    const selfSigned = leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey);
    problems.push({
      level: 'warning',
      path: certPath,
      message: selfSigned
        ? `certificate ${certPath} is self-signed: clients will not trust it unless told to`
        : `no intermediate certificate after the leaf in ${certPath}: clients that lack the issuer will fail to verify (use fullchain.pem, not cert.pem)`,
    });
  } else {
    for (let i = 0; i < x509.length - 1; i++) {
      const child = x509[i]!;
      const parent = x509[i + 1]!;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
        problems.push({ level: 'warning', path: certPath, message: `chain in ${certPath}: certificate #${i + 2} did not issue #${i + 1} (wrong or out-of-order intermediate); served as is` });
        break;
      }
    }
  }
  if (leaf.ca) problems.push({ level: 'warning', path: certPath, message: `the first certificate in ${certPath} is a CA certificate, not a server certificate` });
  const eku = leaf.keyUsage;
  if (Array.isArray(eku) && eku.length > 0 && !eku.includes(SERVER_AUTH)) {
    problems.push({ level: 'warning', path: certPath, message: `certificate ${certPath} is not for TLS servers (extendedKeyUsage lacks serverAuth)` });
  }

  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  const usable = notBefore.getTime() <= now.getTime() && now.getTime() <= notAfter.getTime();
  const chainPem = x509.map((x) => { const p = x.toString(); return p.endsWith('\n') ? p : p + '\n'; }).join('');
  // A PKCS#8 PEM block is already what native wants: skip the re-encoding (~50 µs each).
  const keyBlock = keyBlocks[keys.indexOf(key)];
  const keyPem =
    keyBlock && keyBlock.label === 'PRIVATE KEY' && !keyBlock.pem.includes('\r')
      ? keyBlock.pem
      : (key.export({ format: 'pem', type: 'pkcs8' }) as string);
  return {
    summary: {
      path: certPath,
      keyPath,
      names,
      keyType: leaf.publicKey.asymmetricKeyType ?? 'unknown',
      notBefore,
      notAfter,
      fingerprint256: leaf.fingerprint256,
      serial: leaf.serialNumber,
      expired: !usable,
      issuer: singleLine(leaf.issuer),
    },
    chainPem,
    keyPem,
    usable,
    order,
  };
}
