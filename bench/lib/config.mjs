// The bench's options, paths, ports and run lengths: parsed once from argv and the environment.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const BENCH = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const ROOT = path.dirname(BENCH);
export const WORK = path.join(BENCH, 'work');
export const BIN = path.join(WORK, 'bin');
export const PKI = path.join(WORK, 'pki');
export const CONF = path.join(WORK, 'conf');
export const LOGS = path.join(WORK, 'logs');
for (const d of [WORK, CONF, LOGS]) fs.mkdirSync(d, { recursive: true });

export const NAMES = 100;
export const nameOf = (i) => `mail.d${String(i).padStart(2, '0')}.bench.test`;
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

// The default scenarios (reuse, a diagnostic of ticket policy, runs when named).
export const DEFAULT_SCENARIOS = 'full,resumed,bulk,rtt,full-hybrid,idle,reload,workers2,fleet,store';

export const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
    peers: { type: 'string', default: process.env.BENCH_PEERS }, // default: see peers.mjs defaultPeers()
    scenarios: { type: 'string', default: process.env.BENCH_SCENARIOS ?? DEFAULT_SCENARIOS },
    // tls.groups in mailfront@24's config, e.g. X25519MLKEM768:X25519:P-256; unset (the default): mailfront's own default.
    'mailfront24-groups': { type: 'string', default: process.env.BENCH_MAILFRONT24_GROUPS },
    // The TLS 1.3 suites every load generator offers (one suite: every peer ends on the same one).
    ciphersuites: { type: 'string', default: process.env.BENCH_CIPHERSUITES ?? 'TLS_AES_256_GCM_SHA384' },
    reps: { type: 'string', default: process.env.BENCH_REPS },
    seconds: { type: 'string', default: process.env.BENCH_SECONDS }, // each peer's full/resumed/reuse/bulk time per repetition
    slices: { type: 'string', default: process.env.BENCH_SLICES }, // ... in this many slices, peers in rotation (lib/slices.mjs)
    // After --reps, more repetitions (up to --max-reps) while a full/resumed/bulk ratio's ± is above --spread-target %.
    'max-reps': { type: 'string', default: process.env.BENCH_MAX_REPS },
    'spread-target': { type: 'string', default: process.env.BENCH_SPREAD_TARGET ?? '5' },
    idle: { type: 'string', default: process.env.BENCH_IDLE },
    out: { type: 'string', default: process.env.BENCH_OUT },
    // Shifts every port of this bench (not cert-store's), to run beside another bench on the same machine.
    'port-offset': { type: 'string', default: process.env.BENCH_PORT_OFFSET ?? '0' },
    // The mailfront peer the workers2 scenario runs (default: mailfront@24 when it is a peer, else mailfront).
    'workers2-peer': { type: 'string', default: process.env.BENCH_WORKERS2_PEER },
    // workers2 also runs workers: 1 allowed on both CPUs (floating), beside workers: 1 on CPU 0 and workers: 2.
    'workers2-floating': { type: 'boolean', default: process.env.BENCH_WORKERS2_FLOATING === '1' },
    // Folder with prebuilt peers (haproxy-3.4-awslc); default ../shared/peers beside the checkout.
    'peers-dir': { type: 'string', default: process.env.BENCH_PEERS_DIR },
    profile: { type: 'string' }, // PEER[:scenario],...: perf record -g the peer during one run -> work/perf-PEER-SCENARIO.txt
    strace: { type: 'string' }, // PEER,...: syscalls per connection (strace -c -f) over 2,000 full handshakes -> work/strace-PEER.txt
  },
});

export const QUICK = args.quick;
// A smoke run never overwrites the committed figures.
args.out ??= QUICK ? path.join(WORK, 'RESULTS-quick.md') : path.join(BENCH, 'RESULTS.md');
args['peers-dir'] ??= path.resolve(ROOT, '..', 'shared', 'peers');

/**
 * Run lengths. The full run's reps and seconds are what gave every ratio a spread within about ±5%
 * on a quiet machine in about 15 minutes with the default peers (bench/README.md, "Spread").
 * Five repetitions: the min-max of five per-repetition ratios is a 94% confidence interval for
 * their median, whatever their distribution (1 - 2/2^5).
 */
const seconds = Number(args.seconds ?? (QUICK ? 2 : 4));
export const P = {
  reps: Number(args.reps ?? (QUICK ? 1 : 5)),
  maxReps: Number(args['max-reps'] ?? args.reps ?? (QUICK ? 1 : 8)),
  spreadTarget: Number(args['spread-target']) / 100,
  hsSeconds: seconds,
  slices: Number(args.slices ?? (QUICK ? 2 : 4)),
  bulkSeconds: seconds,
  rttCount: QUICK ? 1000 : 3000,
  idleConns: (args.idle ?? (QUICK ? '1000' : '5000')).split(',').map(Number),
  reloadSeconds: QUICK ? 6 : 12,
  reloadRate: 200,
  reloads: QUICK ? 5 : 10,
  // Fleet and certificate store have their own sections and are not ratios of peers: 3 repetitions.
  ownReps: Number(args.reps ?? (QUICK ? 1 : 3)),
};
if (!(P.reps >= 1 && P.hsSeconds > 0 && P.maxReps >= 1 && P.spreadTarget > 0 && Number.isInteger(P.slices) && P.slices >= 1))
  throw new Error(`--reps ${args.reps} / --seconds ${args.seconds} / --max-reps ${args['max-reps']} / --spread-target ${args['spread-target']} / --slices ${args.slices}: a positive number is needed`);
if (P.hsSeconds / P.slices < 0.5) throw new Error(`--seconds ${P.hsSeconds} in --slices ${P.slices}: slices under 0.5 s measure loadgen's start more than the proxy`);
P.maxReps = Math.max(P.maxReps, P.reps);

// Ports: backend echo / discard; each peer listens on base (echo) and base+1 (discard).
const OFFSET = Number(args['port-offset']);
if (!Number.isInteger(OFFSET) || OFFSET < 0 || OFFSET > 30000) throw new Error(`--port-offset ${args['port-offset']}: an integer 0-30000`);
const shift = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v + OFFSET]));
export const BACKEND_ECHO = 24001 + OFFSET;
export const BACKEND_SINK = 24002 + OFFSET;
export const PORTS = shift({
  mailfront: 24101, 'mailfront@24': 24111, 'mailfront-noauth': 24121, 'workers-1': 24131, 'workers-2': 24141,
  haproxy: 24201, 'haproxy-3.4-awslc': 24251, stunnel: 24301, nginx: 24401, node: 24501,
});
// Fleet: mailfront instances A and B (each on base and base+1) behind a plain TCP balancer.
export const FLEET_PORTS = shift({ a: 24601, b: 24611, lb: 24701 });

export const SCEN = new Set(args.scenarios.split(','));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
/** The command line that reproduces this run, for the report. */
export const command = () => `${QUICK && !process.argv.includes('--quick') ? 'BENCH_QUICK=1 ' : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
export const nowUtc = () => new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
