// Read one candidate's files and find its PEM blocks: no parsing here (that is the addon's,
// native/cert_check.cc), only what the text shows (no certificate, no key, swapped, encrypted).
// Problems name paths, never contents: no message may carry key material.
import { statSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { Candidate } from './sources.js';
import type { CertProblem } from './types.js';
import { describeFsError } from './fs-errors.js';
import { loadAddon } from '../native.js';

/**
 * Reads a file. With `sync` (the bulk loader's default), stat and read are done synchronously:
 * a chain or key is a few KiB, and handing each read to the libuv pool and back gains nothing.
 */
export type ReadFile = ((path: string) => Promise<Buffer>) & { sync?: (path: string) => Buffer };

/**
 * A candidate whose files hold certificates and a key, ready for the addon's check. The blocks
 * are views into the bytes read (no string copies for the garbage collector to find after a
 * reload of thousands); the addon zeroes the key blocks once it has them.
 */
export interface ReadCandidate {
  certPath: string;
  /** Where the key came from (the certificate file itself when combined, or its companion). */
  keyPath: string;
  /** PEM blocks, leaf first. */
  certs: Buffer[];
  /** Private key PEM blocks (usually one). Never logged. */
  keys: Buffer[];
}

/** Largest file we read: a chain is a few KiB; this only guards against pointing at the wrong file. */
const MAX_BYTES = 1 << 20;

interface PemBlock {
  label: string;
  pem: Buffer;
  key: boolean;
}

/** The addon's PEM block rule (native/pem_files.h, which also reads plain pairs on its threads), as views into <buf>. */
function pemBlocks(buf: Buffer): PemBlock[] {
  return loadAddon()
    .pemBlocks(buf)
    .map((b) => ({ label: b.label, pem: buf.subarray(b.start, b.end), key: b.key }));
}

function statOrNull(file: string): Stats | null {
  try {
    return statSync(file);
  } catch {
    return null;
  }
}

async function readBytes(read: ReadFile, file: string, what: string, problems: CertProblem[], holdsKey = false): Promise<Buffer | null> {
  try {
    const st = read.sync ? statOrNull(file) : await stat(file).catch(() => null);
    if (st && st.isFile() && st.size > MAX_BYTES) {
      problems.push({ level: 'error', path: file, message: `${what} ${file} is ${st.size} bytes, more than a PEM chain can be: skipped` });
      return null;
    }
    const text = read.sync ? read.sync(file) : await read(file);
    if (holdsKey && st && (st.mode & 0o004) !== 0 && text.indexOf('PRIVATE KEY-----') >= 0) {
      problems.push({ level: 'warning', path: file, message: `${file} holds a private key and is readable by every user (mode ${(st.mode & 0o777).toString(8)}): chmod o-rwx` });
    }
    return text;
  } catch (err) {
    const resolved = await realpath(file).catch(() => undefined);
    problems.push({ level: 'error', path: file, message: `${describeFsError(err, file, what, resolved)}; skipped` });
    return null;
  }
}

/** Read and split one candidate; null (with an error problem naming the path) when it cannot be served. */
export async function readCandidate(c: Candidate, read: ReadFile, problems: CertProblem[]): Promise<ReadCandidate | null> {
  const certPath = c.certPath;
  const certText = await readBytes(read, certPath, c.combined ? 'certificate file' : 'certificate', problems, c.combined);
  if (certText === null) return null;
  const certBlocks = pemBlocks(certText);
  const certs = certBlocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) {
    const hasKey = certBlocks.some((b) => b.key);
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
    keyBlocks = certBlocks.filter((b) => b.key);
    if (keyBlocks.length === 0 && c.keyCompanion) {
      keyPath = c.keyCompanion;
      const t = await readBytes(read, keyPath, 'private key', problems, true);
      if (t === null) return null;
      keyBlocks = pemBlocks(t).filter((b) => b.key);
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
    const t = await readBytes(read, keyPath, 'private key', problems, true);
    if (t === null) return null;
    const blocks = pemBlocks(t);
    keyBlocks = blocks.filter((b) => b.key);
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
  for (const b of keyBlocks) {
    if (b.label === 'ENCRYPTED PRIVATE KEY') {
      problems.push({ level: 'error', path: keyPath, message: `private key in ${keyPath} is encrypted (passphrase protected): mailfront needs an unencrypted key readable only by its user; skipped` });
      return null;
    }
    // A traditional PEM key under a passphrase ("Proc-Type: 4,ENCRYPTED" header).
    if (b.pem.indexOf('Proc-Type: 4,ENCRYPTED') >= 0) {
      problems.push({ level: 'error', path: keyPath, message: `private key in ${keyPath} cannot be parsed (it is encrypted (passphrase protected)); skipped` });
      return null;
    }
  }
  return { certPath, keyPath, certs: certs.map((b) => b.pem), keys: keyBlocks.map((b) => b.pem) };
}
