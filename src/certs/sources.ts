// Discovery: turn the configured sources into candidate (certificate, key) files.
// Nothing is parsed here; every path that cannot be listed becomes a problem.
import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { CertProblem, CertSources } from './types.js';
import { describeFsError } from './fs-errors.js';
import { loadAddon } from '../native.js';

export interface Candidate {
  source: 'letsencrypt' | 'pemdir' | 'pair';
  /** PEM chain, leaf first (for a combined file: chain and key). */
  certPath: string;
  /** PEM private key; equal to certPath for a combined file. */
  keyPath: string;
  combined: boolean;
  /** Combined file without a key: HAProxy-style companion "<base>.key" / "<file>.key", if present. */
  keyCompanion?: string;
}

const PEM_FILE = /\.(pem|crt)$/i;

/** Every candidate of every source, sorted by certificate path (the load order). */
export async function discover(sources: CertSources, problems: CertProblem[]): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const dir of sources.letsencrypt) out.push(...(await letsEncrypt(dir, problems)));
  for (const dir of sources.pemDirs) out.push(...(await pemDir(dir, problems)));
  for (const p of sources.pairs) out.push({ source: 'pair', certPath: p.cert, keyPath: p.key, combined: p.cert === p.key });
  // Same files named twice (e.g. a pair that points into a Let's Encrypt tree that is also listed): once.
  // One directory alone cannot name a file twice (its entries differ).
  if (sources.letsencrypt.length + sources.pemDirs.length + sources.pairs.length <= 1) return out.sort(byCertPath);
  const seen = new Set<string>();
  const unique = out.filter((c) => {
    const k = `${path.resolve(c.certPath)}\0${path.resolve(c.keyPath)}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return unique.sort(byCertPath);
}

const byCertPath = (a: Candidate, b: Candidate): number => (a.certPath < b.certPath ? -1 : a.certPath > b.certPath ? 1 : 0);

/** `<dir>/live/<lineage>/{fullchain,privkey}.pem`; `dir` may also be the live/ directory itself. */
async function letsEncrypt(dir: string, problems: CertProblem[]): Promise<Candidate[]> {
  const live = path.basename(path.resolve(dir)) === 'live' ? dir : path.join(dir, 'live');
  let entries;
  try {
    entries = await readdir(live, { withFileTypes: true });
  } catch (err) {
    problems.push({ level: 'error', path: live, message: describeFsError(err, live, "Let's Encrypt live/ directory") });
    return [];
  }
  const out: Candidate[] = [];
  const names = entries.map((e) => e.name).sort();
  // Every lineage directory is listed by the addon on its threads (no JS array per directory);
  // one it cannot list is listed again here, so that the error (or the skip of a file) is readdir's.
  const bits = loadAddon().lineageFiles(live, names);
  for (const [i, name] of names.entries()) {
    const lineage = path.join(live, name);
    let has = bits[i]!;
    if (has < 0) {
      try {
        const files = readdirSync(lineage);
        has = (files.includes('fullchain.pem') ? 1 : 0) | (files.includes('privkey.pem') ? 2 : 0);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTDIR') continue; // README and other files in live/
        problems.push({ level: 'error', path: lineage, message: describeFsError(err, lineage, 'lineage directory') });
        continue;
      }
    }
    const missing = (['fullchain.pem', 'privkey.pem'] as const).filter((_, bit) => (has & (1 << bit)) === 0);
    if (missing.length > 0) {
      problems.push({ level: 'error', path: lineage, message: `lineage ${name} has no ${missing.join(' and no ')}: skipped` });
      continue;
    }
    out.push({
      source: 'letsencrypt',
      // path.join's result: <lineage> is normalized and has no trailing slash (a name is never "" or "..").
      certPath: `${lineage}/fullchain.pem`,
      keyPath: `${lineage}/privkey.pem`,
      combined: false,
    });
  }
  if (out.length === 0 && !problems.some((p) => p.path.startsWith(live))) {
    problems.push({ level: 'warning', path: live, message: 'no lineage found (no live/<name>/ directory)' });
  }
  return out;
}

/** HAProxy `crt` directory: every *.pem / *.crt file holds a chain and a key. */
async function pemDir(dir: string, problems: CertProblem[]): Promise<Candidate[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    problems.push({ level: 'error', path: dir, message: describeFsError(err, dir, 'PEM directory') });
    return [];
  }
  const all = new Set(entries.map((e) => e.name));
  const out: Candidate[] = [];
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const file = path.join(dir, e.name);
    if (e.name.startsWith('.')) {
      problems.push({ level: 'debug', path: file, message: 'skipped: hidden file' });
      continue;
    }
    if (e.isDirectory()) {
      problems.push({ level: 'debug', path: file, message: 'skipped: directory (PEM directories are not searched recursively)' });
      continue;
    }
    if (!PEM_FILE.test(e.name)) {
      const companion = /\.key$/i.test(e.name) && (all.has(e.name.slice(0, -4)) || [...all].some((n) => PEM_FILE.test(n) && n.replace(PEM_FILE, '') === e.name.slice(0, -4)));
      problems.push({ level: 'debug', path: file, message: companion ? 'companion key file, read only if its certificate file holds no key' : 'skipped: not a .pem or .crt file' });
      continue;
    }
    const base = e.name.replace(PEM_FILE, '');
    const companion = [`${e.name}.key`, `${base}.key`].find((n) => all.has(n));
    out.push({ source: 'pemdir', certPath: file, keyPath: file, combined: true, ...(companion ? { keyCompanion: path.join(dir, companion) } : {}) });
  }
  return out;
}
