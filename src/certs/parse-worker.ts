// A worker thread of loadCertificates: parses one share of the candidates (see index.ts).
// Everything it returns is plain data (LoadedCert, CertProblem), copied back to the main thread.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { Candidate } from './sources.js';
import { parseShare } from './parse-share.js';

const { candidates, first, now } = workerData as { candidates: Candidate[]; first: number; now: number };
const read = Object.assign((p: string) => readFile(p), { sync: (p: string) => readFileSync(p) });
const results = await parseShare(candidates, first, read, new Date(now));
parentPort!.postMessage(results);
