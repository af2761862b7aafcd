#!/usr/bin/env node
// `npm run bench`: mailfront against HAProxy (Debian's 2.6, and 3.4 + AWS-LC), and optionally stunnel,
// nginx and plain Node, per proxy CPU-second. Method: /work/shared/BENCHMARKS.md (proxy on CPU 0, load
// generator + backend on CPU 1, peers interleaved per repetition, ratios paired per repetition with
// their spread). See bench/README.md.
//
//   node bench/run.mjs [--quick] [--peers mailfront,haproxy,...] [--scenarios full,resumed,...] [--reps N] [--seconds S]
//                      [--max-reps N] [--spread-target PCT] [--ciphersuites LIST] [--port-offset N]
//   node bench/run.mjs --scenarios store      (10,000 certificates on Node 24, then Node 20: bench/cert-store.mjs)
//   node bench/run.mjs --scenarios workers2   (workers: 2 against workers: 1 on two cores)
//   BENCH_QUICK=1 npm run bench               (smoke run, a few minutes)
//
// Files: lib/config.mjs (options, ports, run lengths), lib/procs.mjs (process control, /proc),
// lib/peers.mjs (the proxies), scenarios/*.mjs (one per scenario), lib/report.mjs (RESULTS.md).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BACKEND_ECHO, BACKEND_SINK, BENCH, BIN, P, QUICK, ROOT, SCEN, WORK, args, command, log, nowUtc } from './lib/config.mjs';
import { profile, straceCount } from './lib/diagnose.mjs';
import { loadSummary, startLoadSampling } from './lib/machine-load.mjs';
import { node24, node24Bin } from './lib/node24.mjs';
import { buildId, builds, checkPeers, defaultPeers, startPeer } from './lib/peers.mjs';
import { ensurePki } from './lib/pki.mjs';
import { assertPortFree, installExitHandlers, start, stop, stopAll, waitPort } from './lib/procs.mjs';
import { replaceSection, report, wideRatios } from './lib/report.mjs';
import { fmt } from './lib/stats.mjs';
import { rotate, runSliced, SLICED } from './lib/slices.mjs';
import { SECTION_FLEET, fleetBench, fleetSection } from './scenarios/fleet.mjs';
import { CLASSICAL, HYBRID } from './scenarios/full-hybrid.mjs';
import idleMemory from './scenarios/idle.mjs';
import { PHASES, applies, perRep } from './scenarios/index.mjs';
import reloadUnderLoad from './scenarios/reload.mjs';
import { SECTION_WORKERS2, workers2Bench, workers2Peer, workers2Section } from './scenarios/workers2.mjs';

const PEERS = args.peers ? args.peers.split(',') : defaultPeers();
const CPU_SCENARIOS = Object.keys(perRep).filter((s) => SCEN.has(s));

function build() {
  execFileSync('make', ['-s', '-C', BENCH], { stdio: 'inherit' });
  // full-hybrid's client: loadgen built against Node 24's OpenSSL 3.5.
  const wants24 = PEERS.some((p) => p.endsWith('@24')) || (args.profile ?? '').includes('@24');
  if (wants24 && (SCEN.has('full-hybrid') || (args.profile ?? '').includes('full-hybrid')))
    execFileSync('make', ['-s', '-C', BENCH, `NODE24=${node24()}`, 'work/bin/loadgen-node24.node'], { stdio: 'inherit' });
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js')) || !fs.readdirSync(path.join(ROOT, 'build', 'Release')).some((f) => f.endsWith('.node')))
    throw new Error('mailfront is not built: npx node-gyp rebuild -j 2 && npx tsc -p tsconfig.json');
}

async function startBackends() {
  await Promise.all([assertPortFree(BACKEND_ECHO), assertPortFree(BACKEND_SINK)]);
  start('backend-echo', 1, path.join(BIN, 'backend'), ['--port', BACKEND_ECHO, '--max-seconds', 1800]);
  start('backend-sink', 1, path.join(BIN, 'backend'), ['--port', BACKEND_SINK, '--discard', '--max-seconds', 1800]);
  await Promise.all([waitPort(BACKEND_ECHO), waitPort(BACKEND_SINK)]);
}

const describe = (s, r) => (s === 'rtt' ? `p50 ${fmt(r.value, 1)} µs p99 ${fmt(r.p99, 1)} µs`
  : s === 'full-hybrid' ? `${HYBRID} ${fmt(r.value)} per CPU-s (${fmt(r.usPerHs)} µs/hs, raw ${fmt(r.raw)}/s, negotiated ${JSON.stringify(r.negotiated)}), ` +
    `${CLASSICAL} ${fmt(r.classical)} per CPU-s (${fmt(r.classicalUsPerHs)} µs/hs, raw ${fmt(r.classicalRaw)}/s); ratio ${fmt(r.ratio, 2)}, +${fmt(r.extraUs)} µs`
  : `${fmt(r.value)} per CPU-s (raw ${fmt(r.raw)}/s, cpu ${r.cpu.toFixed(2)} s${r.cipher ? `, ${r.cipher}` : ''})`);

/**
 * Every repetition: every peer started fresh (order rotated), then each scenario in turn; a sliced
 * scenario (lib/slices.mjs) runs every peer for P.slices short slices in rotation, the others one
 * run per peer. results[peer][scenario] = runs with .rep.
 */
async function repetitions(results, errors) {
  for (let rep = 0; rep < P.maxReps && CPU_SCENARIOS.length; rep++) {
    if (rep >= P.reps) {
      const wide = wideRatios(results, PEERS, P.spreadTarget);
      if (!wide.length) break;
      log(`repetition ${rep + 1} (of at most ${P.maxReps}): wider than ±${fmt(P.spreadTarget * 100, 1)}%: ${wide.join(', ')}`);
    }
    const started = [];
    try {
      for (const name of rotate(PEERS, rep)) {
        try {
          started.push(await startPeer(name));
        } catch (e) {
          errors.push(`rep ${rep + 1} ${name}: ${e.message}`);
          log(`ERROR ${name}: ${e.message}`);
        }
      }
      for (const s of CPU_SCENARIOS) {
        const figures = await runSliced(started.filter((peer) => applies(s, peer.name)), {
          slices: SLICED.has(s) ? P.slices : 1,
          seconds: SLICED.has(s) ? P.hsSeconds : undefined,
          rotation: rep,
          key: (peer) => peer.name,
          run: (peer, seconds) => perRep[s](peer, undefined, seconds),
          onError: (peer, e) => {
            errors.push(`rep ${rep + 1} ${peer.name} ${s}: ${e.message}`);
            log(`ERROR ${peer.name} ${s}: ${e.message}`);
          },
        });
        for (const [name, figure] of figures) {
          const r = { ...figure, rep };
          ((results[name] ??= {})[s] ??= []).push(r);
          log(`rep ${rep + 1}/${rep < P.reps ? P.reps : P.maxReps} ${name.padEnd(17)} ${s.padEnd(7)} ${describe(s, r)}${r.failures ? ` FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''}`);
        }
      }
    } finally {
      for (const peer of started) await stop(peer.child);
    }
  }
}

async function idlePhase(idle, errors) {
  for (const n of P.idleConns)
    for (const name of PEERS) {
      try {
        const r = await idleMemory(name, n);
        idle[`${name}:${n}`] = r;
        log(`idle ${name.padEnd(17)} ${n}: ${fmt(r.value, 1)} KiB/conn (RSS ${r.before} -> ${r.after} KiB, ${r.established} established${r.failures ? `, FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''})`);
      } catch (e) {
        errors.push(`idle ${name} ${n}: ${e.message}`);
        log(`ERROR idle ${name}: ${e.message}`);
      }
    }
}

async function main() {
  installExitHandlers();
  for (const s of SCEN) if (!perRep[s] && !PHASES.includes(s)) throw new Error(`--scenarios: unknown scenario "${s}"; known: ${[...Object.keys(perRep), ...PHASES].join(', ')}`);
  startLoadSampling();
  const t0 = Date.now();
  log(`${QUICK ? 'QUICK smoke run' : 'full run'}: ${P.reps} rep(s) of ${P.hsSeconds} s; suites offered ${args.ciphersuites}; peers ${PEERS.join(', ')}; scenarios ${[...SCEN].join(', ')}`);
  checkPeers(PEERS);
  build();
  await ensurePki();
  await startBackends();
  if (args.profile || args.strace) {
    for (const spec of (args.profile ?? '').split(',').filter(Boolean)) await profile(spec);
    for (const name of (args.strace ?? '').split(',').filter(Boolean)) await straceCount(name);
    return;
  }

  // Fleet, workers2 and the certificate store have their own sections; a run of only those replaces just their sections in --out.
  const onlyOwn = [...SCEN].every((x) => ['fleet', 'store', 'workers2'].includes(x));
  const results = {}, idle = {}, errors = [];
  let reload, workers2;
  const sections = [];
  const own = (head, md) => {
    if (onlyOwn) { replaceSection(args.out, head, md); log(`wrote the "${head}" section of ${args.out}`); }
    sections.push(md);
    console.log(md);
  };
  await repetitions(results, errors);
  if (SCEN.has('idle')) await idlePhase(idle, errors);
  if (SCEN.has('reload') && PEERS.includes('mailfront')) {
    try {
      reload = await reloadUnderLoad();
      log(`reload: ${reload.failures} failed of ${reload.attempted}; ${reload.sighups} SIGHUPs, ${reload.reloaded} reloads logged`);
    } catch (e) {
      errors.push(`reload: ${e.message}`);
      log(`ERROR reload: ${e.message}`);
    }
  }
  if (SCEN.has('workers2')) {
    const name = workers2Peer(PEERS);
    checkPeers([name]);
    workers2 = await workers2Bench(name, errors);
    fs.writeFileSync(path.join(WORK, 'results-workers2.json'), JSON.stringify(workers2, null, 1));
    own(SECTION_WORKERS2, workers2Section(workers2, name));
  }
  if (SCEN.has('fleet')) {
    const fleetErrors = [];
    const fleet = await fleetBench(fleetErrors);
    fs.writeFileSync(path.join(WORK, 'results-fleet.json'), JSON.stringify(fleet, null, 1));
    own(SECTION_FLEET, fleetSection(fleet, command(), nowUtc()) + (fleetErrors.length ? `\n### Fleet errors\n\n${fleetErrors.map((e) => `- ${e}`).join('\n')}\n` : ''));
  }
  let storeRows;
  if (SCEN.has('store')) {
    // bench/cert-store.mjs: its own processes and section writer. The recommended runtime (Node 24)
    // takes every target; Node 20's load is measured beside it. As root its processes run at nice -10
    // (cert-store's --nice): the reload gap is an absolute time, which other work on the host stretches.
    const { runStore, section, targetRows, targets, writeSection } = await import('./cert-store.mjs');
    const nice = process.getuid?.() === 0 ? -10 : undefined;
    const runs = [];
    try {
      if (node24()) runs.push(await runStore({ reps: P.ownReps, reloads: QUICK ? 3 : 20, node: node24Bin(), nice }));
      runs.push(await runStore({ reps: P.ownReps, reloads: QUICK ? 3 : 20, nice, phases: runs.length ? ['load', 'check', 'start'] : undefined }));
    } catch (e) {
      errors.push(`store: ${e.message}`);
      log(`ERROR store: ${e.message}`);
    }
    if (runs.length) {
      storeRows = targetRows(runs[0], runs[1]);
      for (const line of targets(runs[0], runs[1])) log(line);
      const md = section(runs, command());
      if (onlyOwn) writeSection(args.out, md);
      sections.push(md);
      console.log(md);
    }
  }
  if (onlyOwn) {
    log(`done in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
    return;
  }
  await stopAll();
  const meta = {
    load: loadSummary(),
    command: command(),
    date: nowUtc(),
    minutes: (Date.now() - t0) / 60000,
    errors,
    buildId: buildId().split(', ')[1],
    builds: [...new Set([...builds].map((b) => b.split('|')[0]))].length > 1 ? [...builds].map((b) => b.split('|')[1]) : [],
  };
  fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ P, args, results, idle, reload, workers2, meta }, null, 1));
  const md = [report({ names: PEERS, cpuScenarios: CPU_SCENARIOS, results, idle, reload, workers2, storeRows, meta }), ...sections].join('\n');
  fs.writeFileSync(args.out, md);
  console.log(md);
  log(`wrote ${args.out} in ${meta.minutes.toFixed(1)} min`);
}

main()
  .catch((e) => { console.error(e); process.exitCode = 1; })
  .finally(() => stopAll());
