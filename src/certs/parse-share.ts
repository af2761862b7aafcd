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
export function parseShare(candidates: readonly Candidate[], first: number, read: ReadFile, now: Date, x509Cache: X509Cache = new Map()): Promise<ParsedShare[]> {
  return mapBounded(candidates, READ_CONCURRENCY, async (c, i) => {
    const own: CertProblem[] = [];
    return { loaded: await parseCandidate(c, first + i, read, now, own, x509Cache), problems: own };
  });
}

/** Candidates a thread takes at a time from the shared counter. */
export const PARSE_CHUNK = 64;

export interface ParsedChunk {
  first: number;
  results: ParsedShare[];
}

/** Takes chunks of `chunk` candidates from `counter` (shared between threads) until none is left. */
export async function parseClaimed(candidates: readonly Candidate[], counter: Int32Array, chunk: number, read: ReadFile, now: Date): Promise<ParsedChunk[]> {
  const out: ParsedChunk[] = [];
  const x509Cache: X509Cache = new Map();
  for (;;) {
    const first = Atomics.add(counter, 0, chunk);
    if (first >= candidates.length) return out;
    out.push({ first, results: await parseShare(candidates.slice(first, first + chunk), first, read, now, x509Cache) });
  }
}
