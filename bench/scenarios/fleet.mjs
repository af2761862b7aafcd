// Fleet: two mailfront instances sharing one tls.ticket_keys file behind a plain TCP balancer; its
// own section of RESULTS.md.
import fs from 'node:fs';
import path from 'node:path';
import { CONF, FLEET_PORTS, P, ROOT, log } from '../lib/config.mjs';
import { loadgen, voids } from '../lib/loadgen.mjs';
import { startPeer } from '../lib/peers.mjs';
import { assertPortFree, cpuBetween, cpuSnapshot, quiesce, sh, start, stop, waitPort } from '../lib/procs.mjs';
import { cell, fmt, med, median } from '../lib/stats.mjs';

export const SECTION_FLEET = 'Fleet: two instances, one ticket-key file';
const FLEET_NAMES = 99; // odd: with round-robin over 2 instances, consecutive uses of a name alternate instances

/**
 * Fleet: mailfront instances behind a plain TCP round-robin balancer (HAProxy `mode tcp`, no TLS,
 * pinned to CPU 1 with the load generator, so its CPU is not counted). The instances (workers: 1 each)
 * share CPU 0 like a single proxy. Resumed handshakes (`loadgen --mode resumed`, each ticket once)
 * through the balancer; SNI over FLEET_NAMES (odd) names, so a name's next connection lands on the
 * other instance and its ticket must be opened by the instance that did not issue it.
 * Rate = handshakes / (sum of the instances' utime+stime).
 */
export async function fleetRun({ instances, shared, names: nNames = FLEET_NAMES }) {
  const keyFile = path.join(CONF, 'fleet-ticket-keys');
  if (shared && !fs.existsSync(keyFile)) {
    // One fresh key per bench run (base64 of 80 bytes, like `openssl rand -base64 80` on one line).
    const { randomBytes } = await import('node:crypto');
    fs.writeFileSync(keyFile, `# mailfront bench, made ${new Date().toISOString()}\n${randomBytes(80).toString('base64')}\n`, { mode: 0o600 });
  }
  const names = ['a', 'b'].slice(0, instances);
  const mfs = [];
  let lb;
  try {
    for (const n of names) {
      const peer = await startPeer('mailfront', { port: FLEET_PORTS[n], instance: `mailfront-fleet-${n}`, ...(shared ? { ticketKeys: keyFile } : {}) });
      mfs.push(peer);
    }
    const cfg = path.join(CONF, 'fleet-lb.cfg');
    fs.writeFileSync(cfg, [
      'global', '  nbthread 1', '  maxconn 9800',
      'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 30m', '  timeout server 30m',
      'frontend fe_fleet', `  bind 127.0.0.1:${FLEET_PORTS.lb}`, '  default_backend be_fleet',
      'backend be_fleet', '  balance roundrobin',
      ...names.map((n) => `  server mf_${n} 127.0.0.1:${FLEET_PORTS[n]}`), '',
    ].join('\n'));
    await assertPortFree(FLEET_PORTS.lb);
    lb = start('fleet-lb', 1, 'haproxy', ['-db', '-f', cfg]);
    await waitPort(FLEET_PORTS.lb);
    let c0 = [];
    const res = await loadgen(['--port', FLEET_PORTS.lb, '--mode', 'resumed', '--names', nNames, '-c', 32, '-t', P.hsSeconds], async () => {
      c0 = [];
      for (const m of mfs) await quiesce(m.pid);
      for (const m of mfs) c0.push(cpuSnapshot(m.pid));
    });
    for (const m of mfs) await quiesce(m.pid);
    const per = mfs.map((m, i) => cpuBetween(c0[i], cpuSnapshot(m.pid)));
    const cpu = per.reduce((a, x) => a + x, 0);
    return {
      value: voids(res) ? NaN : res.ok / cpu, resumedPerCpu: voids(res) ? NaN : res.resumed / cpu, raw: res.rate, cpu, perInstanceCpu: per,
      resumedShare: res.ok ? res.resumed / res.ok : 0, ok: res.ok, failures: res.failures, errors: res.first_errors,
    };
  } finally {
    if (lb) await stop(lb);
    for (const m of mfs) await stop(m.child);
  }
}

export async function fleetBench(errors) {
  const configs = [
    { key: 'two', label: 'two instances, shared ticket-key file', instances: 2, shared: true },
    { key: 'one', label: 'one instance (same balancer, same key file)', instances: 1, shared: true },
    // Diagnostic: the same two instances, but an even number of names, so each name keeps landing on
    // the instance that issued its ticket: separates "two processes share CPU 0" from "cross-instance tickets".
    { key: 'sticky', label: 'two instances, each name stays on one instance', instances: 2, shared: true, names: FLEET_NAMES + 1 },
  ];
  fs.rmSync(path.join(CONF, 'fleet-ticket-keys'), { force: true });
  const runs = { two: [], one: [], sticky: [], control: [] };
  const runOne = async (c, tag) => {
    try {
      const r = await fleetRun(c);
      runs[c.key].push(r);
      log(`fleet ${tag} ${c.key.padEnd(7)} ${fmt(r.value)} hs per CPU-s (${fmt(r.resumedPerCpu)} resumed), resumed share ${fmt(r.resumedShare * 100, 1)}%, ` +
        `cpu ${r.perInstanceCpu.map((x) => x.toFixed(2)).join(' + ')} s, raw ${fmt(r.raw)}/s${r.failures ? ` FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''}`);
    } catch (e) {
      errors.push(`fleet ${tag} ${c.key}: ${e.message}`);
      log(`ERROR fleet ${c.key}: ${e.message}`);
    }
  };
  for (let rep = 0; rep < P.ownReps; rep++)
    for (let i = 0; i < configs.length; i++) await runOne(configs[(i + rep) % configs.length], `rep ${rep + 1}/${P.ownReps}`);
  // Control: two instances, each with its own in-memory key (no ticket_keys), one repetition.
  await runOne({ key: 'control', label: 'two instances, no shared key file (control)', instances: 2, shared: false }, 'control');
  return { runs, configs, names: FLEET_NAMES };
}

export function fleetSection(fleet, command, date) {
  const { runs } = fleet;
  const out = [`## ${SECTION_FLEET}`, ''];
  out.push(`Generated by \`${command}\` on ${date}; mailfront ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, Node ${process.version}.`, '');
  out.push(`Two mailfront processes (\`workers: 1\` each, both pinned to CPU 0 like a single proxy) with the same \`tls.ticket_keys\` file (one fresh key, base64 of 80 bytes), ` +
    `behind Debian's HAProxy as a plain TCP balancer (\`mode tcp\`, \`balance roundrobin\`, no TLS, no PROXY header) pinned to CPU 1 with bench/loadgen and the backend, so its CPU is not counted. ` +
    `\`loadgen --mode resumed\` through the balancer: 32 concurrent, ${P.hsSeconds} s, each ticket used once (the newest per name), SNI over ${fleet.names} names — an odd count, ` +
    `so with round-robin a name's next connection goes to the other instance and resumes a ticket the other instance issued. ` +
    `Rate = handshakes completed ÷ the sum of the instances' utime+stime. Compared with ONE instance behind the same balancer (same key file), ` +
    `interleaved in the same run, ${P.ownReps} repetition(s), median (min-max). Control: two instances without \`ticket_keys\` (each its own in-memory key), one repetition.`, '');
  out.push('| setup | handshakes / mailfront CPU-s | resumed handshakes / mailfront CPU-s | resumed share | CPU split between instances (s) | raw hs/s | failures |');
  out.push('| --- | --- | --- | --- | --- | --- | --- |');
  const rows = [
    ['two instances, one ticket-key file', runs.two],
    ['one instance, same balancer and key file', runs.one],
    [`diagnostic: two instances, ${FLEET_NAMES + 1} names (each name stays on the instance that issued its ticket)`, runs.sticky],
    ['control: two instances, no shared key file', runs.control],
  ];
  for (const [label, r] of rows) {
    const split = r.map((x) => x.perInstanceCpu.map((c) => c.toFixed(2)).join(' + ')).join('; ');
    const share = (() => {
      const v = r.map((x) => x.resumedShare * 100);
      if (!v.length) return '–';
      return v.length === 1 ? `${fmt(v[0], 1)}%` : `${fmt(median(v), 1)}% (${fmt(Math.min(...v), 1)}-${fmt(Math.max(...v), 1)})`;
    })();
    out.push(`| ${label} | ${cell(r)} | ${cell(r, 'resumedPerCpu')} | ${share} | ${split || '–'} | ${cell(r, 'raw')} | ${r.reduce((a, x) => a + (x.failures ?? 0), 0)} |`);
  }
  out.push('');
  const two = med(runs.two), one = med(runs.one);
  const shareTwo = runs.two.length ? Math.min(...runs.two.map((x) => x.resumedShare)) : NaN;
  const shareCtl = runs.control.length ? runs.control[0].resumedShare : NaN;
  if (Number.isFinite(two) && Number.isFinite(one))
    out.push(`- Two instances ÷ one instance, handshakes per mailfront CPU-second: **${fmt(two / one, 2)}×** (medians; 1.00× = a ticket issued by one instance and resumed on the other costs the same as on one instance).`);
  const sticky = med(runs.sticky);
  if (Number.isFinite(sticky) && Number.isFinite(two) && Number.isFinite(one))
    out.push(`- Diagnostic: two instances with ${FLEET_NAMES + 1} names (a name's tickets stay on one instance) ÷ one instance: ${fmt(sticky / one, 2)}×; ` +
      `cross-instance (${FLEET_NAMES} names) ÷ same-instance (${FLEET_NAMES + 1} names), both with two instances: ${fmt(two / sticky, 2)}×. ` +
      `The first is what running two processes on one core costs; the second is what resuming another instance's ticket costs. Run-to-run noise here is about ±5%, so ratios within 0.95-1.05× are no difference.`);
  if (Number.isFinite(shareTwo))
    out.push(`- Resumed share with the shared key file: lowest of the repetitions ${fmt(shareTwo * 100, 1)}% — the ≥ 95% requirement is **${shareTwo >= 0.95 ? 'met' : 'NOT met'}**.`);
  if (Number.isFinite(shareCtl))
    out.push(`- Control without the shared file: ${fmt(shareCtl * 100, 1)}% resumed (${shareCtl <= 0.5 ? 'collapsed, as expected: a ticket from the other instance cannot be opened, so it costs a full handshake and a new ticket' : 'did NOT collapse to ≤ 50%: connections did not alternate instances as expected'}); ` +
      `that is what the balancer's alternation does to resumption, and what the shared key file removes.`);
  out.push('');
  return out.join('\n');
}
