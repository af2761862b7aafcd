// Bulk: 4 connections writing 16 KiB records to a discarding backend; MB per proxy CPU-second.
import { P } from '../lib/config.mjs';
import { cpuRun, figure } from './cpu-run.mjs';

export default async function bulk(peer, hook, seconds = P.bulkSeconds) {
  const r = await cpuRun(peer, ['--port', peer.port + 1, '--mode', 'bulk', '-c', 4, '-t', seconds], hook);
  return { value: figure(r, r.bytes / 1e6 / r.cpu), raw: r.mb_per_s, cpu: r.cpu, cpuTicks: r.cpuTicks, failures: r.failures, cipher: r.cipher, errors: r.first_errors };
}
