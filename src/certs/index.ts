// The certificate store of the control plane: discover, parse, validate, index.
// See docs/certificates.md for the rules; this file only wires the steps together.
import { readFile as fsReadFile } from 'node:fs/promises';
import type { CertProblem, CertSources, CertStore, CertSummary, LoadOptions } from './types.js';
import { discover } from './sources.js';
import { parseCandidate, type LoadedCert, type X509Cache } from './parse.js';
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
  const read = opts.readFile ?? ((p: string) => fsReadFile(p));
  const now = opts.now ?? new Date();
  const problems: CertProblem[] = [];
  const candidates = await discover(sources, problems);
  // Reads overlap with parsing (bounded concurrency); problems keep the load order.
  const x509Cache: X509Cache = new Map();
  const results = await mapBounded(candidates, READ_CONCURRENCY, async (c, i) => {
    const own: CertProblem[] = [];
    return { loaded: await parseCandidate(c, i, read, now, own, x509Cache), problems: own };
  });
  const loaded: LoadedCert[] = [];
  for (const r of results) {
    for (const p of r.problems) problems.push(p);
    if (r.loaded) loaded.push(r.loaded);
  }
  return buildStore(loaded, sources.defaultName, problems, now);
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
