// Reload under load (mailfront): new connections at a steady rate while SIGHUPs are spread over the
// run; failed handshakes counted, "reloaded" log lines counted.
import fs from 'node:fs';
import path from 'node:path';
import { LOGS, P } from '../lib/config.mjs';
import { loadgen } from '../lib/loadgen.mjs';
import { withPeer } from '../lib/peers.mjs';

export default function reloadUnderLoad() {
  const logFile = path.join(LOGS, 'mailfront.log');
  const timers = [];
  let sent = 0;
  return withPeer('mailfront', { logLevel: 'info' }, async (peer) => {
    const offset = fs.statSync(logFile).size;
    try {
      const r = await loadgen(['--port', peer.port, '--mode', 'full', '-c', 64, '--rate', P.reloadRate, '-t', P.reloadSeconds], async () => {
        const every = ((P.reloadSeconds - 2) * 1000) / P.reloads;
        for (let i = 0; i < P.reloads; i++)
          timers.push(setTimeout(() => { try { process.kill(peer.pid, 'SIGHUP'); sent++; } catch {} }, 1000 + i * every));
      });
      const text = fs.readFileSync(logFile, 'utf8').slice(offset);
      const reloaded = (text.match(/"msg":"reloaded"/g) ?? []).length;
      const failedReloads = (text.match(/reload failed/g) ?? []).length;
      return { attempted: r.started, ok: r.ok, failures: r.failures, kinds: r.failure_kinds, errors: r.first_errors, sighups: sent, reloaded, failedReloads, rate: r.rate };
    } finally {
      timers.forEach(clearTimeout);
    }
  });
}
