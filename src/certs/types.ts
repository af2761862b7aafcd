// Types of the certificate store (src/certs/). Re-exported by src/certs/index.ts.
import type { NativeCertContext } from '../native.js';

export interface CertSources {
  /** Let's Encrypt (certbot) config dirs holding live/<lineage>/ (e.g. /etc/letsencrypt). */
  letsencrypt: string[];
  /** Directories of combined PEM files (chain + key in one file, HAProxy `crt` dir style). */
  pemDirs: string[];
  /** Explicit pairs: cert is a PEM chain (leaf first), key a PEM private key. */
  pairs: { cert: string; key: string }[];
  /** Name served without SNI and for unknown names; resolved exact, then wildcard. */
  defaultName?: string;
}

export interface CertSummary {
  /** Certificate (chain) file as configured or discovered (not symlink-resolved). */
  path: string;
  /** Private key file (same as path for a combined PEM file). */
  keyPath: string;
  /** DNS names the certificate is indexed by: SAN dNSNames (or the CN when there is no SAN), lowercase. */
  names: string[];
  keyType: 'ec' | 'rsa' | 'ed25519' | string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  serial: string;
  /** Outside its validity window (expired, or not yet valid) at load time. */
  expired: boolean;
  /** Issuer DN on one line ("O=..., CN=..."). */
  issuer: string;
  /** Index into CertStore.contexts. */
  context: number;
}

/** 'debug' is used for files skipped on purpose (e.g. non-PEM files in a PEM dir). */
export interface CertProblem {
  level: 'error' | 'warning' | 'info' | 'debug';
  path: string;
  message: string;
}

export interface CertStore {
  contexts: NativeCertContext[];
  exact: Record<string, number>;
  wildcard: Record<string, number>;
  defaultContext: number;
  /** The configured default name, or the first name of the default context's first certificate. */
  defaultName: string;
  /** Why this default: the configured name resolved, or the first loaded certificate (by path). */
  defaultFrom: 'configured' | 'first-loaded';
  /** One per certificate in a context, with its context index; ordered by context, then ec before rsa. */
  certificates: CertSummary[];
  problems: CertProblem[];
}

export interface LoadOptions {
  /** Reads a file; injectable for tests. Default: fs.promises.readFile. */
  readFile?: (path: string) => Promise<Buffer>;
  /** Clock for validity checks (default: new Date()). */
  now?: Date;
}
