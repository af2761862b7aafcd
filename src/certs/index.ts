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
import { PARSE_CHUNK, parseClaimed, parseShare, type ParsedChunk, type ParsedShare } from './parse-share.js';
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
 * node:crypto's parse and checks cost ~0.2-0.3 ms per certificate: with thousands, worker threads
 * (one per spare CPU, at most 3) and this thread take chunks of candidates from a shared counter
 * until none is left. Without the compiled worker (tests run the TypeScript sources), or for the
 * chunks of a worker that failed, the candidates are parsed here: same results, same order.
 */
async function parseParallel(candidates: Candidate[], now: Date): Promise<ParsedShare[]> {
  const read: ReadFile = Object.assign((p: string) => fsReadFile(p), { sync: (p: string) => readFileSync(p) });
  const spare = Math.min(3, availableParallelism() - 1);
  if (candidates.length < PARALLEL_MIN || spare < 1 || !existsSync(fileURLToPath(WORKER_URL))) return parseShare(candidates, 0, read, now);
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const out = new Array<ParsedShare | undefined>(candidates.length);
  const keep = (chunks: ParsedChunk[]) => {
    for (const c of chunks) c.results.forEach((r, k) => (out[c.first + k] = r));
  };
  const inWorker = () =>
    new Promise<void>((resolve, reject) => {
      const w = new Worker(WORKER_URL, { workerData: { candidates, counter, chunk: PARSE_CHUNK, now: now.getTime() } });
      w.once('message', (chunks: ParsedChunk[]) => {
        keep(chunks);
        resolve();
        void w.terminate();
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`certificate parser worker exited (${code})`)));
    }).catch(() => undefined);
  const workers = Array.from({ length: spare }, inWorker);
  keep(await parseClaimed(candidates, counter, PARSE_CHUNK, read, now));
  await Promise.all(workers);
  // Chunks claimed by a worker that failed: parsed here.
  for (let i = 0; i < out.length; i++) if (!out[i]) out[i] = (await parseShare([candidates[i]!], i, read, now))[0];
  return out as ParsedShare[];
}

/** store.certificates grouped by context, in their order; `mailfront check` looks up every name. */
const contextCertificates = new WeakMap<CertStore, { from: CertSummary[]; length: number; map: Map<number, CertSummary[]> }>();
function byContext(store: CertStore): Map<number, CertSummary[]> {
  const hit = contextCertificates.get(store);
  if (hit && hit.from === store.certificates && hit.length === store.certificates.length) return hit.map;
  const map = new Map<number, CertSummary[]>();
  for (const c of store.certificates) {
    const list = map.get(c.context);
    if (list) list.push(c);
    else map.set(c.context, [c]);
  }
  contextCertificates.set(store, { from: store.certificates, length: store.certificates.length, map });
  return map;
}

/** What a name would be served (for `mailfront check` and tests). An empty name means no SNI. */
export function lookup(
  store: CertStore,
  name: string,
): { context: number; certificates: CertSummary[]; match: 'exact' | 'wildcard' | 'default' } {
  const n = name === '' ? null : normalizeName(name);
  const hit = n === null || n.startsWith('*.') ? undefined : resolve(store, n);
  const context = hit?.context ?? store.defaultContext;
  return { context, match: hit?.match ?? 'default', certificates: [...(byContext(store).get(context) ?? [])] };
}
