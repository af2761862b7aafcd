// Two workers on two cores: mailfront with `workers: 2` allowed on CPUs 0 and 1 (taskset -c 0,1)
// against `workers: 1` pinned to CPU 0 as in the main table (and, with --workers2-floating, against
// `workers: 1` allowed on both CPUs too); full and resumed handshakes per proxy CPU-second, in slices
// taken in turn within each repetition (bench/lib/slices.mjs) and paired per repetition.
// The load generator and the backend stay pinned to CPU 1, as in every scenario: the second worker
// shares that core with the client, which lowers raw rates, less so the figure per proxy CPU-second.
// Issue 17's target: workers: 2 within 10% of workers: 1.
import fs from 'node:fs';
import { CLK_TCK, P, args, log } from '../lib/config.mjs';
import { startPeer } from '../lib/peers.mjs';
import { stop } from '../lib/procs.mjs';
import { rotate, runSliced } from '../lib/slices.mjs';
import { cell, fmt, pairedRatios, ratioCell, spread } from '../lib/stats.mjs';
import full from './full.mjs';
import { resumed } from './resumed.mjs';

export const SECTION_WORKERS2 = 'Two workers on two cores';
// w1both (--workers2-floating) separates "two workers" from "a worker that may move between cores".
const CONFIGS = [
  { key: 'w1', label: 'workers: 1 on CPU 0 (as in the main table)', workers: 1, cpus: '0', instance: 'workers-1' },
  ...(args['workers2-floating'] ? [{ key: 'w1both', label: 'workers: 1 on CPUs 0-1', workers: 1, cpus: '0,1', instance: 'workers-1' }] : []),
  { key: 'w2', label: 'workers: 2 on CPUs 0-1', workers: 2, cpus: '0,1', instance: 'workers-2' },
];
const KINDS = { full, resumed };

/** The mailfront peer it runs: --workers2-peer, else mailfront@24 when among the peers, else mailfront. */
export const workers2Peer = (peerNames) => args['workers2-peer'] ?? (peerNames.includes('mailfront@24') ? 'mailfront@24' : 'mailfront');

/** CPU seconds of each thread of pid, by tid. */
function threadCpu(pid) {
  const out = new Map();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.set(tid, (Number(f[11]) + Number(f[12])) / CLK_TCK);
    } catch {}
  }
  return out;
}

/** The scenario's run, plus the CPU seconds of the two busiest threads over it (are both workers busy?). */
async function measured(kind, peer, seconds) {
  const t0 = threadCpu(peer.pid);
  const r = await KINDS[kind](peer, undefined, seconds);
  const t1 = threadCpu(peer.pid);
  const busiest = [...t1].map(([tid, c]) => c - (t0.get(tid) ?? 0)).sort((a, b) => b - a).slice(0, 2);
  return { ...r, busiest };
}

/** Each repetition starts every config at once, then runs them in slices in turn, as the main table (lib/slices.mjs). */
export async function workers2Bench(name, errors) {
  const runs = Object.fromEntries(CONFIGS.map((c) => [c.key, { full: [], resumed: [] }]));
  for (let rep = 0; rep < P.reps; rep++) {
    const started = [];
    try {
      for (const c of rotate(CONFIGS, rep)) {
        try {
          started.push({ c, peer: await startPeer(name, { instance: c.instance, workers: c.workers, cpus: c.cpus }) });
        } catch (e) {
          errors.push(`workers2 rep ${rep + 1} ${c.label}: ${e.message}`);
          log(`ERROR workers2 ${c.key}: ${e.message}`);
        }
      }
      for (const kind of Object.keys(KINDS)) {
        let failed = false;
        const figures = await runSliced(started, {
          slices: P.slices,
          seconds: P.hsSeconds,
          rotation: rep,
          key: ({ c }) => c.key,
          run: ({ peer }, seconds) => measured(kind, peer, seconds),
          onError: ({ c }, e) => {
            failed = true;
            errors.push(`workers2 rep ${rep + 1} ${c.key} ${kind}: ${e.message}`);
            log(`ERROR workers2 ${c.key} ${kind}: ${e.message}`);
          },
        });
        if (failed) continue; // no figure for any config of this repetition: they would not be paired
        for (const [key, r] of figures) {
          runs[key][kind].push({ ...r, rep });
          log(`workers2 rep ${rep + 1}/${P.reps} ${key.padEnd(6)} ${kind.padEnd(7)} ${fmt(r.value)} per CPU-s (raw ${fmt(r.raw)}/s, cpu ${r.cpu.toFixed(2)} s, ` +
            `busiest threads ${r.busiest.map((x) => x.toFixed(2)).join(' + ')} s)${r.failures ? ` FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''}`);
        }
      }
    } finally {
      for (const { peer } of started) await stop(peer.child);
    }
  }
  return { name, runs };
}

/** Ratio workers: 2 ÷ workers: 1 (on CPU 0, or `base`) of handshakes per proxy CPU-second, paired per repetition. */
export const workers2Ratio = (w, kind, base = 'w1') => spread(pairedRatios(w.runs.w2[kind], w.runs[base][kind]));

export function workers2Section(w, label) {
  const out = [`## ${SECTION_WORKERS2}`, ''];
  out.push(`${label} with \`workers: 2\` started with \`taskset -c 0,1\` (the proxy may run on both cores), against \`workers: 1\` pinned to CPU 0 as in the main table` +
    `${w.runs.w1both ? ', and `workers: 1` with `taskset -c 0,1` too' : ''}. bench/loadgen and the backend stay pinned to CPU 1 as in every scenario, so the second worker shares CPU 1 with the client. ` +
    `Full and resumed handshakes as in the main table (32 concurrent, ${P.hsSeconds} s), per proxy CPU-second (all threads), ` +
    `${P.reps} repetition(s); in each, the configs started together and run in ${P.slices} slice(s) of ${fmt(P.hsSeconds / P.slices, 1)} s each, in turn; ratios paired per repetition: median (min-max, ±).`, '');
  out.push('| config | full hs / CPU-s | resumed hs / CPU-s | raw full hs/s | busiest two threads\' CPU in full (s) | failures |');
  out.push('| --- | --- | --- | --- | --- | --- |');
  for (const c of CONFIGS) {
    const r = w.runs[c.key];
    const threads = r.full.map((x) => x.busiest.map((t) => t.toFixed(1)).join(' + ')).join('; ');
    const fails = [...r.full, ...r.resumed].reduce((a, x) => a + (x.failures ?? 0), 0);
    out.push(`| ${c.label} | ${cell(r.full)} | ${cell(r.resumed)} | ${cell(r.full, 'raw')} | ${threads || '–'} | ${fails} |`);
  }
  out.push('');
  const f = workers2Ratio(w, 'full'), s = workers2Ratio(w, 'resumed');
  out.push(`- workers: 2 on CPUs 0-1 ÷ workers: 1 on CPU 0, per proxy CPU-second: full ${ratioCell(f)}, resumed ${ratioCell(s)}. ` +
    `Target: within 10% (≥ 0.90×): full ${verdict(f)}, resumed ${verdict(s)}.`);
  if (w.runs.w1both) out.push(`- workers: 2 ÷ workers: 1, both on CPUs 0-1: full ${ratioCell(workers2Ratio(w, 'full', 'w1both'))}, resumed ${ratioCell(workers2Ratio(w, 'resumed', 'w1both'))}.`);
  out.push('');
  return out.join('\n');
}

const verdict = (s) => (!s ? 'not measured' : s.median >= 0.9 ? (s.min >= 0.9 ? '**met**' : '**met** (median; the spread reaches below 0.90)') : '**NOT met**');
