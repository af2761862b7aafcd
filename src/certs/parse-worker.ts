// A worker thread of loadCertificates: parses chunks of the candidates (see index.ts).
// Everything it returns is plain data (LoadedCert, CertProblem), copied back to the main thread.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import type { Candidate } from './sources.js';
import { parseClaimed } from './parse-share.js';

const { candidates, counter, chunk, now } = workerData as { candidates: Candidate[]; counter: Int32Array; chunk: number; now: number };
const read = Object.assign((p: string) => readFile(p), { sync: (p: string) => readFileSync(p) });
parentPort!.postMessage(await parseClaimed(candidates, counter, chunk, read, new Date(now)));
