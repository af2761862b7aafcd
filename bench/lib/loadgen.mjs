// Runs bench/loadgen (or its Node-24 build) on CPU 1 and returns its final JSON line.
import path from 'node:path';
import { BENCH, BIN, LOGS, args } from './config.mjs';
import { node24Bin } from './node24.mjs';
import { start } from './procs.mjs';

/**
 * Runs the load generator on CPU 1, offering --ciphersuites (every peer then ends on the same suite;
 * loadgen counts a handshake on another suite as a failure). onReady runs at its {"event":"ready"}
 * line (then it gets "go").
 * client 'node24': the same loadgen.c built as a Node-API addon and run by Node 24's node, on the OpenSSL 3.5
 * inside it (bench/loadgen-node.mjs); needed for --groups X25519MLKEM768 (Debian's libssl 3.0 has no ML-KEM).
 */
export function loadgen(argv, onReady, { client = 'debian' } = {}) {
  const [cmd, pre] = client === 'node24' ? [node24Bin(), [path.join(BENCH, 'loadgen-node.mjs')]] : [path.join(BIN, 'loadgen'), []];
  const child = start('loadgen', 1, cmd, [...pre, ...argv, '--ciphersuites', args.ciphersuites, '--sync'], { pipeStdout: true });
  return new Promise((resolve, reject) => {
    let buf = '';
    const events = [];
    child.stdout.on('data', async (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let ev;
        try { ev = JSON.parse(line); } catch { continue; }
        events.push(ev);
        if (ev.event === 'ready') {
          try { if (onReady) await onReady(ev); } catch (e) { reject(e); }
          child.stdin.write('go\n');
        }
      }
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 15 * 60 * 1000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      const done = events.find((e) => e.event === 'done');
      if (!done) reject(new Error(`loadgen ${argv.join(' ')} exited ${code} without a result (see ${LOGS}/loadgen.log)`));
      else resolve({ ...done, events });
    });
  });
}

/** Failure kinds that make a run's figure meaningless: wrong certificate, group or suite. */
export const voids = (r) => ['verify', 'group', 'cipher'].some((k) => r.failure_kinds?.[k]);
