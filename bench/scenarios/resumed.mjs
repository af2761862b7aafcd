// Resumed TLS 1.3 handshakes (tickets, psk_dhe_ke): each ticket used once, the newest per name
// (RFC 8446 C.4); reuse: the client keeps offering a name's newest ticket until a newer one arrives,
// which separates a server's resumption cost from its ticket-issuing policy.
import { P } from '../lib/config.mjs';
import { cpuRun, figure } from './cpu-run.mjs';

async function resumedRun(peer, hook, extra, seconds = P.hsSeconds) {
  const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'resumed', ...extra, '-c', 32, '-t', seconds], hook);
  return { value: figure(r, r.ok / r.cpu), raw: r.rate, cpu: r.cpu, cpuTicks: r.cpuTicks, failures: r.failures, cipher: r.cipher, resumedShare: r.ok ? r.resumed / r.ok : 0, errors: r.first_errors };
}

export const resumed = (peer, hook, seconds) => resumedRun(peer, hook, [], seconds);
export const reuse = (peer, hook, seconds) => resumedRun(peer, hook, ['--reuse-tickets'], seconds);
