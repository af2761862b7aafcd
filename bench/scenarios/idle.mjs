// Idle memory: a fresh proxy, 200 verified + 300 warm-up handshakes, RSS sampled, then N connections
// that completed the handshake (and read the greeting) held idle, RSS sampled again.
import { sleep } from '../lib/config.mjs';
import { loadgen } from '../lib/loadgen.mjs';
import { withPeer } from '../lib/peers.mjs';
import { quiesce, rssKiB } from '../lib/procs.mjs';

export default function idleMemory(name, n) {
  return withPeer(name, undefined, async (peer) => {
    await loadgen(['--port', peer.port, '--mode', 'full', '-c', 16, '-n', 300, '-t', 20]);
    await quiesce(peer.pid);
    await sleep(500);
    const before = rssKiB(peer.pid);
    let after = 0;
    const r = await loadgen(['--port', peer.port, '--mode', 'idle', '-c', 64, '-n', n, '-t', 60, '--conn-timeout', 30], async () => {
      await quiesce(peer.pid);
      await sleep(500);
      after = rssKiB(peer.pid);
    });
    const ready = r.events.find((e) => e.event === 'ready') ?? {};
    const established = ready.ok ?? 0;
    return { n, before, after, established, failures: r.failures, errors: r.first_errors, value: established > 0 ? (after - before) / established : NaN };
  });
}
