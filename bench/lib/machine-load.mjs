// Other work on the machine: every 10 s, CPU used by processes that are not this bench's (nor its
// children), so a report made while the machine was busy says so.
import fs from 'node:fs';
import { statFields } from './procs.mjs';
import { CLK_TCK } from './config.mjs';

function procSnapshot() {
  const snap = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const { comm, f } = statFields(d);
      snap.set(Number(d), { comm, ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK });
    } catch {}
  }
  return snap;
}

const busy = { samples: 0, busySamples: 0, maxPct: 0, sumPct: 0, names: new Map(), timer: null, prev: null, prevT: 0 };

function sample() {
  const snap = procSnapshot();
  const t = Date.now();
  if (busy.prev) {
    const ours = (pid) => { for (let p = pid, i = 0; p > 1 && i < 50; i++) { if (p === process.pid) return true; p = snap.get(p)?.ppid ?? busy.prev.get(p)?.ppid ?? 0; } return false; };
    let other = 0;
    const by = new Map();
    for (const [pid, x] of snap) {
      if (ours(pid)) continue;
      const d = x.cpu - (busy.prev.get(pid)?.cpu ?? (x.ppid && busy.prev.has(pid) ? x.cpu : 0));
      if (d <= 0) continue;
      other += d;
      by.set(x.comm, (by.get(x.comm) ?? 0) + d);
    }
    const pct = (other / ((t - busy.prevT) / 1000)) * 100; // % of one CPU
    busy.samples++;
    busy.sumPct += pct;
    busy.maxPct = Math.max(busy.maxPct, pct);
    if (pct >= 20) busy.busySamples++;
    for (const [k, v] of by) busy.names.set(k, (busy.names.get(k) ?? 0) + v);
  }
  busy.prev = snap;
  busy.prevT = t;
}

export function startLoadSampling() {
  sample();
  busy.timer = setInterval(sample, 10000);
  busy.timer.unref();
}

/** Stops sampling; one sentence on the other processes' CPU use, or undefined without samples. */
export function loadSummary() {
  clearInterval(busy.timer);
  sample();
  if (!busy.samples) return undefined;
  const top = [...busy.names].filter(([, v]) => v >= 1).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ');
  const avg = busy.sumPct / busy.samples;
  return `other processes (not this bench) used on average ${avg.toFixed(0)}% of one CPU, at most ${busy.maxPct.toFixed(0)}% over a 10 s sample; ` +
    `${busy.busySamples} of ${busy.samples} samples at ≥ 20%${busy.busySamples ? ' — **the machine was visibly busy with other work during part of the run**' : ' (quiet)'}; top: ${top || 'none'}.`;
}
