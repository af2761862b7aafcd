// The certificate store of the control plane: discover, parse, validate, index.
// See docs/certificates.md for the rules; this file only wires the steps together.
import { existsSync, readFileSync } from 'node:fs';
import { readFile as fsReadFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { CertProblem, CertSources, CertStore, CertSummary, LoadOptions } from './types.js';
import { discover } from './sources.js';
import type { LoadedCert, ReadFile } from './parse.js';
import { parseShare, type ParsedShare } from './parse-share.js';
import type { Candidate } from './sources.js';
import { buildStore, resolve } from './index-names.js';
import { normalizeName } from './names.js';

export type { CertProblem, CertSources, CertStore, CertSummary, LoadOptions } from './types.js';
export { watchCertificates, type WatchOptions } from './watch.js';
export { normalizeName } from './names.js';

/**
 * Load every source, keep what can be served, index it by name.
 * Throws MailfrontError MF_CERT_NONE (with `problems` attached) when nothing can be served.
 */
export async function loadCertificates(sources: CertSources, opts: LoadOptions = {}): Promise<CertStore> {
  const read = opts.readFile ?? ((p: string) => fsReadFile(p));
  const now = opts.now ?? new Date();
  const problems: CertProblem[] = [];
  const candidates = await discover(sources, problems);
  // Reads overlap with parsing (bounded concurrency); many candidates are also split between
  // this thread and worker threads. Problems keep the load order either way.
  const results = opts.readFile ? await parseShare(candidates, 0, read, now) : await parseParallel(candidates, now);
  const loaded: LoadedCert[] = [];
  for (const r of results) {
    for (const p of r.problems) problems.push(p);
    if (r.loaded) loaded.push(r.loaded);
  }
  return buildStore(loaded, sources.defaultName, problems, now);
}

/** Below this many candidates one thread is faster than starting workers (~50 ms each). */
const PARALLEL_MIN = 400;
const WORKER_URL = new URL('./parse-worker.js', import.meta.url);

/**
 * node:crypto's parse and checks cost ~0.3 ms per certificate on one thread: with thousands,
 * shares go to worker threads (one per spare CPU, at most 3) while this thread parses the first.
 * Without the compiled worker (tests run the TypeScript sources) or if a worker fails, its share
 * is parsed here: same results.
 */
async function parseParallel(candidates: Candidate[], now: Date): Promise<ParsedShare[]> {
  const read: ReadFile = Object.assign((p: string) => fsReadFile(p), { sync: (p: string) => readFileSync(p) });
  const spare = Math.min(3, availableParallelism() - 1);
  if (candidates.length < PARALLEL_MIN || spare < 1 || !existsSync(fileURLToPath(WORKER_URL))) return parseShare(candidates, 0, read, now);
  const shares = spare + 1;
  const size = Math.ceil(candidates.length / shares);
  const parts = Array.from({ length: shares }, (_, k) => ({ first: k * size, items: candidates.slice(k * size, (k + 1) * size) })).filter((p) => p.items.length > 0);
  const inWorker = (part: { first: number; items: Candidate[] }) =>
    new Promise<ParsedShare[]>((resolve, reject) => {
      const w = new Worker(WORKER_URL, { workerData: { candidates: part.items, first: part.first, now: now.getTime() } });
      w.once('message', (r: ParsedShare[]) => { resolve(r); void w.terminate(); });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`certificate parser worker exited (${code})`)));
    }).catch(() => parseShare(part.items, part.first, read, now));
  const done = await Promise.all(parts.map((p, k) => (k === 0 ? parseShare(p.items, p.first, read, now) : inWorker(p))));
  return done.flat();
}

/** What a name would be served (for `mailfront check` and tests). An empty name means no SNI. */
export function lookup(
  store: CertStore,
  name: string,
): { context: number; certificates: CertSummary[]; match: 'exact' | 'wildcard' | 'default' } {
  const n = name === '' ? null : normalizeName(name);
  const hit = n === null || n.startsWith('*.') ? undefined : resolve(store, n);
  const context = hit?.context ?? store.defaultContext;
  return { context, match: hit?.match ?? 'default', certificates: store.certificates.filter((c) => c.context === context) };
}
