// Parse a run of candidates with bounded read concurrency; used inline and by parse-worker.ts.
import type { Candidate } from './sources.js';
import type { CertProblem } from './types.js';
import { parseCandidate, type LoadedCert, type ReadFile, type X509Cache } from './parse.js';
import { mapBounded, READ_CONCURRENCY } from './bounded.js';

export interface ParsedShare {
  loaded: LoadedCert | null;
  /** This candidate's problems, in the order parseCandidate reported them. */
  problems: CertProblem[];
}

/** `first`: load order of candidates[0]. Results in the order of `candidates`. */
export function parseShare(candidates: readonly Candidate[], first: number, read: ReadFile, now: Date): Promise<ParsedShare[]> {
  const x509Cache: X509Cache = new Map();
  return mapBounded(candidates, READ_CONCURRENCY, async (c, i) => {
    const own: CertProblem[] = [];
    return { loaded: await parseCandidate(c, first + i, read, now, own, x509Cache), problems: own };
  });
}
