// Full TLS 1.3 handshakes: 32 concurrent, SNI over 100 names, greeting read through the proxy, close.
import { P } from '../lib/config.mjs';
import { cpuRun, figure } from './cpu-run.mjs';

export default async function full(peer, hook, seconds = P.hsSeconds) {
  const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'full', '-c', 32, '-t', seconds], hook);
  return { value: figure(r, r.ok / r.cpu), raw: r.rate, cpu: r.cpu, cpuTicks: r.cpuTicks, failures: r.failures, cipher: r.cipher, group: r.group, errors: r.first_errors, p99_ms: r.conn_us.p99 / 1000 };
}
