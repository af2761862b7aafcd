// Diagnostics that write no figures to RESULTS.md: a perf profile of one scenario run, and the
// syscalls per connection of 2,000 full handshakes.
import fs from 'node:fs';
import path from 'node:path';
import { WORK, log, sleep } from './config.mjs';
import { loadgen } from './loadgen.mjs';
import { withPeer } from './peers.mjs';
import { sh, spawnTool, stop } from './procs.mjs';
import { fmt } from './stats.mjs';
import { perRep } from '../scenarios/index.mjs';

/** spec PEER[:scenario]: perf record -g of the peer during one run -> work/perf-PEER-SCENARIO.{data,txt}. */
export async function profile(spec) {
  const [name, scen = 'full'] = spec.split(':');
  if (!perRep[scen]) throw new Error(`--profile ${spec}: unknown scenario "${scen}"; known: ${Object.keys(perRep).join(', ')}`);
  const data = path.join(WORK, `perf-${name}-${scen}.data`);
  const rep = path.join(WORK, `perf-${name}-${scen}.txt`);
  const r = await withPeer(name, undefined, async (peer) => {
    let perf;
    try {
      return await perRep[scen](peer, async () => {
        perf = spawnTool('perf', ['record', '-F', '999', '-g', '-o', data, '-p', String(peer.pid)]);
        await sleep(500);
      });
    } finally {
      await stop(perf, 'SIGINT', 60000); // perf writes its data on SIGINT
    }
  });
  const report = (more) => sh('perf', ['report', '-i', data, ...more]);
  const flat = report(['--no-children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '0.5']);
  const dso = report(['--no-children', '--sort', 'dso', '--stdio', '-g', 'none', '--percent-limit', '0.5']);
  const tree = report(['--children', '--sort', 'sym', '--stdio', '-g', 'caller,0.5,callee', '--percent-limit', '3']);
  fs.writeFileSync(rep, `# ${name} ${scen}: ${JSON.stringify(r)}\n\n## by dso\n${dso}\n\n## self, by symbol\n${flat}\n\n## with children\n${tree}\n`);
  log(`${name} ${scen}: ${fmt(r.value)} per CPU-s; profile in ${rep}`);
}

/** strace -c -f of the peer over 2,000 full handshakes -> work/strace-PEER.txt, with calls per connection. */
export async function straceCount(name) {
  const rep = path.join(WORK, `strace-${name}.txt`);
  const r = await withPeer(name, undefined, async (peer) => {
    const st = spawnTool('strace', ['-c', '-f', '-o', rep, '-p', String(peer.pid)]);
    try {
      await sleep(1000);
      const res = await loadgen(['--port', peer.port, '--mode', 'full', '-c', 32, '-n', 2000, '-t', 60]);
      await sleep(500);
      return res;
    } finally {
      await stop(st, 'SIGINT');
    }
  });
  const text = fs.readFileSync(rep, 'utf8');
  const rows = text.split('\n').filter((l) => /^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+/.test(l) && !/ total\s*$/.test(l)).map((l) => {
    const f = l.trim().split(/\s+/);
    return { calls: Number(f[3]), name: f[f.length - 1] };
  });
  const total = rows.reduce((a, x) => a + x.calls, 0);
  const per = rows.sort((a, b) => b.calls - a.calls).map((x) => `${x.name} ${(x.calls / r.ok).toFixed(2)}`).join(', ');
  fs.appendFileSync(rep, `\n# ${r.ok} connections (SIGHUP-free full handshakes + greeting): ${(total / r.ok).toFixed(1)} syscalls per connection: ${per}\n`);
  log(`${name}: ${(total / r.ok).toFixed(1)} syscalls per connection: ${per}`);
}
