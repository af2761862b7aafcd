// The certificate store of the control plane: discover, read, check (in the addon), index.
// See docs/certificates.md for the rules; this file only wires the steps together.
import { readFileSync } from 'node:fs';
import type { CertProblem, CertSources, CertStore, CertSummary, LoadOptions } from './types.js';
import { discover, type Candidate } from './sources.js';
import { readCandidate, type ReadCandidate, type ReadFile } from './read.js';
import { acceptChecked, checkCandidates, checkFiles, type LoadedCert, type PairCheck } from './parse.js';
import { mapBounded, READ_CONCURRENCY } from './bounded.js';
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
  // Files are a few KiB: read synchronously unless a test injects its own reader.
  const read: ReadFile = opts.readFile ?? Object.assign(async (p: string) => readFileSync(p), { sync: (p: string) => readFileSync(p) });
  const now = opts.now ?? new Date();
  const problems: CertProblem[] = [];
  const candidates = await discover(sources, problems);
  // Each candidate's problems in its own list: the read and the check add to it, and the lists
  // are joined in load order.
  const own = candidates.map((): CertProblem[] => []);
  const checks = await oneAtATime(() => readAndCheck(candidates, read, own, !!opts.readFile));
  // The steps left run on the JS thread (~0.1-0.3 s each for 10,000 pairs): an event-loop turn
  // before each, so that they do not add up to one block with the results' conversion.
  await loopTurn();
  const loaded: LoadedCert[] = [];
  candidates.forEach((c, order) => {
    const check = checks[order];
    const l = check && acceptChecked(c, check, order, now, own[order]!);
    if (l) loaded.push(l);
  });
  for (const list of own) problems.push(...list);
  await loopTurn();
  return buildStore(loaded, sources.defaultName, problems, now);
}

/**
 * The addon reads the files on its check threads (the plain case, native/pem_files.h); what it
 * leaves unread, and everything when a test brings its own reader, read.ts reads here. Both
 * checks run off the JS thread. undefined: not checked (read.ts worded why in `own`).
 */
async function readAndCheck(candidates: Candidate[], read: ReadFile, own: CertProblem[][], ownReader: boolean): Promise<(PairCheck | undefined)[]> {
  const byFiles = ownReader ? [] : await checkFiles(candidates);
  const checks: (PairCheck | undefined)[] = candidates.map((_, i) => {
    const c = byFiles[i];
    return c && !('unread' in c) ? c : undefined;
  });
  const slow = candidates.flatMap((_, i) => (checks[i] ? [] : [i]));
  const texts = await mapBounded(slow, READ_CONCURRENCY, (i) => readCandidate(candidates[i]!, read, own[i]!));
  const ready: { text: ReadCandidate; order: number }[] = [];
  texts.forEach((text, k) => text && ready.push({ text, order: slow[k]! }));
  (await checkCandidates(ready.map((r) => r.text), byFiles.length > 0)).forEach((c, k) => (checks[ready[k]!.order] = c));
  return checks;
}

const loopTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

// The addon remembers one load's passed pairs for the next (native/cert_check.h), and a load's
// second check adds to its first's: two loads' checks must not interleave (a reload beside
// `mailfront check`'s load, or tests). Each waits for the one before it.
let lastCheck: Promise<unknown> = Promise.resolve();
function oneAtATime<T>(step: () => Promise<T>): Promise<T> {
  const run = lastCheck.then(step, step);
  lastCheck = run.catch(() => undefined);
  return run;
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
