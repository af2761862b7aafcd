// Turn the addon's check of each pair (native/cert_check.cc: parse, key match, security level,
// signature, chain, names) into what the store keeps, and word its findings. The addon is the
// only parser: the pairs it passes go into the snapshot as handles, not PEM text.
// Problems name paths, never contents: no message may carry key material.
import { loadAddon, type CertCheck, type NativeCertPair } from '../native.js';
import type { ReadCandidate } from './read.js';
import type { Candidate } from './sources.js';
import type { CertProblem, CertSummary } from './types.js';
import { normalizeName } from './names.js';

export interface LoadedCert {
  summary: Omit<CertSummary, 'context'>;
  /** The parsed pair, for the snapshot. */
  pair: NativeCertPair;
  /** Certificates in the file, leaf included (the fuller chain wins a tie). */
  chainLength: number;
  /** Within notBefore..notAfter at load time. */
  usable: boolean;
  /** Position in the load order (sorted by path). */
  order: number;
}

/** An OpenSSL reason cut to its first line, with anything PEM-like removed. */
export function safeMessage(msg: string): string {
  return (msg.split('\n')[0] ?? '')
    .replace(/-----BEGIN[\s\S]*?(-----END[^-]*-----|$)/g, '[PEM]')
    .replace(/[A-Za-z0-9+/=]{40,}/g, '[…]')
    .slice(0, 200);
}

/** A check of a pair whose files were read (by the addon or by read.ts). */
export type PairCheck = Exclude<CertCheck, { unread: true }>;

/**
 * Reads and checks every candidate in one call to the addon, on its threads: reading overlaps
 * checking, and no file text (no key) enters the JS heap. A candidate whose files are not plain
 * (native/pem_files.h) comes back `{ unread: true }`, for read.ts and checkCandidates.
 * The JS thread runs on meanwhile (logs, /metrics, signals during a reload).
 */
export async function checkFiles(candidates: readonly Candidate[]): Promise<CertCheck[]> {
  return candidates.length === 0 ? [] : loadAddon().checkCertificatesAsync(candidates.map((c) => ({ certPath: c.certPath, keyPath: c.keyPath, combined: c.combined })));
}

/**
 * Checks every read candidate in one call to the addon (which spreads them over its threads),
 * off the JS thread as checkFiles. `afterFiles`: checkFiles ran first in this load, and its pairs
 * stay remembered for the next.
 */
export async function checkCandidates(read: readonly ReadCandidate[], afterFiles = false): Promise<PairCheck[]> {
  if (read.length === 0) return [];
  const checks = await loadAddon().checkCertificatesAsync(read.map((r) => ({ certs: r.certs, keys: r.keys })), afterFiles);
  return checks.map((c) => {
    if ('unread' in c) throw new Error('checkCertificates: a pair given as PEM blocks came back unread');
    return c;
  });
}

/** The addon's refusal of one pair as a problem. */
function refusal(r: Pick<ReadCandidate, 'certPath' | 'keyPath'>, c: Extract<CertCheck, { error: string }>): CertProblem {
  const { certPath, keyPath } = r;
  switch (c.error) {
    case 'cert-parse':
      return { level: 'error', path: certPath, message: `certificate #${c.at + 1} in ${certPath} cannot be parsed (${safeMessage(c.detail ?? '')}); skipped` };
    case 'key-parse':
      return { level: 'error', path: keyPath, message: `private key in ${keyPath} cannot be parsed (${safeMessage(c.detail ?? '')}); skipped` };
    case 'mismatch':
      return {
        level: 'error',
        path: certPath,
        message:
          c.at > 0
            ? `the private key ${keyPath} matches certificate #${c.at + 1} in ${certPath}, not the first: the server certificate must come first; skipped`
            : `the private key ${keyPath} does not match the certificate ${certPath} (key: ${c.keyType}, certificate: ${c.certType}); skipped`,
      };
    case 'weak':
      return {
        level: 'error',
        path: certPath,
        message: `${c.at === 0 ? `the private key ${keyPath}` : `the key of certificate #${c.at + 1} in ${certPath}`} is too weak for OpenSSL's security level 2, which mailfront runs at (${c.detail}); skipped`,
      };
    case 'weak-signature':
      return {
        level: 'error',
        path: certPath,
        message: `certificate #${c.at + 1} in ${certPath} is ${c.detail}: too weak for OpenSSL's security level 2, which mailfront runs at; skipped`,
      };
    case 'signature':
      return {
        level: 'error',
        path: certPath,
        message: `the private key ${keyPath} does not work with the certificate ${certPath}: its public half matches, but a signature made with it does not verify (a damaged key?); skipped`,
      };
  }
}

/** What the store keeps of one checked candidate; null (with an error problem naming the path) when it cannot be served. */
export function acceptChecked(r: Pick<ReadCandidate, 'certPath' | 'keyPath'>, c: PairCheck, order: number, now: Date, problems: CertProblem[]): LoadedCert | null {
  if ('error' in c) {
    problems.push(refusal(r, c));
    return null;
  }
  const { certPath, keyPath } = r;
  // Names: SAN dNSNames; the CN only when there is no SAN dNSName at all (RFC 6125).
  const rawNames = [...c.sanDns];
  const fromCN = rawNames.length === 0;
  if (fromCN && c.cn) rawNames.push(c.cn);
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
  if (c.chain === -1) {
    problems.push({ level: 'warning', path: certPath, message: `certificate ${certPath} is self-signed: clients will not trust it unless told to` });
  } else if (c.chain === 0) {
    problems.push({
      level: 'warning',
      path: certPath,
      message: `no intermediate certificate after the leaf in ${certPath}: clients that lack the issuer will fail to verify (use fullchain.pem, not cert.pem)`,
    });
  } else if (c.chain > 0) {
    problems.push({ level: 'warning', path: certPath, message: `chain in ${certPath}: certificate #${c.chain + 1} did not issue #${c.chain} (wrong or out-of-order intermediate); served as is` });
  }
  if (c.ca) problems.push({ level: 'warning', path: certPath, message: `the first certificate in ${certPath} is a CA certificate, not a server certificate` });
  if (!c.serverAuth) problems.push({ level: 'warning', path: certPath, message: `certificate ${certPath} is not for TLS servers (extendedKeyUsage lacks serverAuth)` });

  const notBefore = new Date(c.notBefore);
  const notAfter = new Date(c.notAfter);
  const usable = c.notBefore <= now.getTime() && now.getTime() <= c.notAfter;
  return {
    summary: {
      path: certPath,
      keyPath,
      names,
      keyType: c.keyType,
      notBefore,
      notAfter,
      fingerprint256: c.fingerprint256,
      serial: c.serial,
      expired: !usable,
      issuer: c.issuer,
    },
    pair: c.pair,
    chainLength: c.chainLength,
    usable,
    order,
  };
}
