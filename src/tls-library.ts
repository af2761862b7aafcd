// What the running TLS library can do, and whether the runtime is still supported.
// mailfront's data plane uses the OpenSSL inside the Node that runs it, so both
// questions are asked of the library itself (through the addon), never inferred
// from the Node version string.
import { loadAddon, type CipherList } from './native.js';

export interface TlsLibrary {
  /** "OpenSSL 3.5.9 29 Sep 2026". */
  version: string;
  /** OpenSSL_version_num() of the running library: 0xMNN00PP0. */
  versionNumber: number;
  /** Does the library offer this key-exchange group? ("X25519MLKEM768", "P-256") */
  hasGroup(name: string): boolean;
  /** The suites a TLS 1.2 cipher string expands to, or why the library refuses it ("no cipher match"). */
  cipherList(list: string): CipherList | { error: string };
}

/** OpenSSL's security level of every TLS context of the data plane (native/tls.h kSecurityLevel). */
export const SECURITY_LEVEL = 2;

/** The OpenSSL the data plane runs on. */
export function tlsLibrary(): TlsLibrary {
  const addon = loadAddon();
  return {
    version: addon.opensslVersion,
    versionNumber: addon.opensslVersionNumber,
    hasGroup: (n) => addon.tlsGroupKnown(n),
    cipherList: (list) => {
      try {
        return addon.tlsCipherList(list);
      } catch (err) {
        // "error:0A0000B9:SSL routines::no cipher match" -> "no cipher match"
        return { error: (err as Error).message.split(':').pop()?.trim() || 'refused' };
      }
    },
  };
}

/** The hybrid post-quantum group (ML-KEM-768 with X25519, draft-ietf-tls-ecdhe-mlkem), OpenSSL 3.5+. */
export const HYBRID_GROUP = 'X25519MLKEM768';

/**
 * tls.groups when the config names none: the hybrid group first where the
 * library has it (mail is kept for years: "harvest now, decrypt later"), then
 * the classical groups every client offers. P-384 and X448 add nothing a
 * client needs. A client sending only an X25519 key share still gets X25519
 * without a retry: OpenSSL 3.5 prefers a group the client sent a share for.
 */
export function defaultGroups(lib: TlsLibrary): string {
  return lib.hasGroup(HYBRID_GROUP) ? `${HYBRID_GROUP}:X25519:P-256` : 'X25519:P-256';
}

/** "OpenSSL 3.0.19 27 Jan 2026" -> "3.0.19"; the number is the fallback. */
export function opensslShortVersion(lib: TlsLibrary): string {
  const m = /OpenSSL (\d+\.\d+\.\d+)/.exec(lib.version);
  if (m?.[1]) return m[1];
  const n = lib.versionNumber;
  return `${Math.floor(n / 0x10000000)}.${Math.floor(n / 0x100000) % 0x100}.${Math.floor(n / 0x10) % 0x100}`;
}

// End of support, from the projects' own release policies (openssl-library.org
// "Release Strategy", nodejs.org "Releases"). A series not listed is newer than
// this table: nothing is said about it.
const OPENSSL_END: Record<string, string> = {
  '3.0': '2026-09-07',
  '3.1': '2025-03-14',
  '3.2': '2025-11-23',
  '3.3': '2026-04-09',
  '3.4': '2026-10-22',
  '3.5': '2030-04-08',
  '3.6': '2026-11-01',
};
const NODE_END: Record<number, string> = {
  18: '2025-04-30',
  19: '2023-06-01',
  20: '2026-04-30',
  21: '2024-06-01',
  22: '2027-04-30',
  23: '2025-06-01',
  24: '2028-04-30',
  25: '2026-06-01',
  26: '2029-04-30',
};

export const RECOMMENDED_NODE = 24;

export interface RuntimeSupport {
  /** "Node v24.22.3 with OpenSSL 3.5.9". */
  summary: string;
  /** One sentence per part past its end of support; empty when all is well. */
  problems: string[];
  /** What to do about them, with the problems. */
  advice?: string;
}

/** Is the runtime (Node and the OpenSSL the data plane uses) still supported on <now>? */
export function runtimeSupport(lib: TlsLibrary, nodeVersion = process.version, now = new Date()): RuntimeSupport {
  const openssl = opensslShortVersion(lib);
  const series = openssl.split('.').slice(0, 2).join('.');
  const major = Number(/^v?(\d+)/.exec(nodeVersion)?.[1]);
  const today = now.toISOString().slice(0, 10);
  const problems: string[] = [];
  const sslEnd = OPENSSL_END[series];
  if (sslEnd && sslEnd <= today) problems.push(`OpenSSL ${openssl} is out of support (OpenSSL ${series} ended on ${sslEnd}): every TLS connection runs on a library that gets no more security fixes`);
  const nodeEnd = NODE_END[major];
  if (nodeEnd && nodeEnd <= today) problems.push(`Node ${nodeVersion} is out of support (Node ${major} ended on ${nodeEnd})`);
  const summary = `Node ${nodeVersion} with OpenSSL ${openssl}`;
  if (!problems.length) return { summary, problems };
  return { summary, problems, advice: `run mailfront on Node ${RECOMMENDED_NODE} (OpenSSL 3.5, supported until ${OPENSSL_END['3.5']})` };
}
