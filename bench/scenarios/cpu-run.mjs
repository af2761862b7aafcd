// One measured load-generator run against a started peer: the proxy's CPU time is read once it is
// quiet before the measured phase (at loadgen's ready line) and once it is quiet after.
import { loadgen, voids } from '../lib/loadgen.mjs';
import { quiesce } from '../lib/procs.mjs';

/** loadgen's result plus cpu: the proxy's utime+stime over the measured phase, in seconds. */
export async function cpuRun(peer, argv, onReady, lgOpts) {
  let c0 = 0;
  const res = await loadgen(argv, async (ev) => {
    c0 = await quiesce(peer.pid);
    if (onReady) await onReady(ev);
  }, lgOpts);
  const c1 = await quiesce(peer.pid);
  return { ...res, cpu: c1 - c0 };
}

/** The figure of a run, or NaN when a handshake saw the wrong certificate, group or suite. */
export const figure = (r, v) => (voids(r) ? NaN : v);
