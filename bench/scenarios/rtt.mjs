// Small round trips: one connection, `aNNN NOOP` echoed by the backend; p50 and p99 in µs.
import { P } from '../lib/config.mjs';
import { cpuRun, figure } from './cpu-run.mjs';

export default async function rtt(peer) {
  const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'rtt', '-n', P.rttCount, '-t', 20]);
  return { value: figure(r, r.rtt_us.p50), p99: figure(r, r.rtt_us.p99), cpu: r.cpu, failures: r.failures, cipher: r.cipher, errors: r.first_errors };
}
