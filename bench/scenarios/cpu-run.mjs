// One measured load-generator run against a started peer: the proxy's CPU time is read once it is
// quiet before the measured phase (at loadgen's ready line) and once it is quiet after.
import { loadgen, voids } from '../lib/loadgen.mjs';
import { cpuBetween, cpuSnapshot, quiesce } from '../lib/procs.mjs';

/** loadgen's result plus cpu: the proxy's utime+stime over the measured phase, in seconds. */
export async function cpuRun(peer, argv, onReady, lgOpts) {
  let c0;
  const res = await loadgen(argv, async (ev) => {
    await quiesce(peer.pid);
    c0 = cpuSnapshot(peer.pid);
    if (onReady) await onReady(ev);
  }, lgOpts);
  await quiesce(peer.pid);
  const c1 = cpuSnapshot(peer.pid);
  return { ...res, cpu: cpuBetween(c0, c1), cpuTicks: c1.ticks - c0.ticks };
}

/** The figure of a run, or NaN when a handshake saw the wrong certificate, group or suite. */
export const figure = (r, v) => (voids(r) ? NaN : v);
