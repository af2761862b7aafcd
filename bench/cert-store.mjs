#!/usr/bin/env node
// Certificate store benchmark: time and memory to load 10,000 certificates, start time, and
// reload under load (a pause in accepting?). See bench/README.md ("Certificate store").
//
//   node bench/cert-store.mjs [--count 10000] [--reps 3] [--phases load,check,start,reload] [--reloads 20] [--settle 2000]
//                             [--out bench/RESULTS.md] [--profile] [--perf] [--nice -10] [--node PATH]
//   node bench/run.mjs --scenarios store            (from the orchestrator: Node 24 with 20 reloads, then Node 20's load)
//
// Certificates: bench/work/bin/gencerts makes a certbot-shaped tree of COUNT lineages (ECDSA
// P-256, one distinct name each, root + intermediate + leaf) once, cached in bench/work/store-COUNT/.
//
// load:   a fresh `node` process per repetition runs what `mailfront check` runs, timed in steps:
//         discovery (src/certs/sources.ts discover), read + check + index (the rest of
//         loadCertificates: read, the addon's one parse and check of each pair, SAN index), native
//         apply (the default context's SSL_CTX built, the others' pairs proved: each SSL_CTX is built
//         on its name's first handshake, native/ctx_cache.h); RSS and CPU time after each step.
// check:  wall time of `mailfront check --config ...` (exit 0 required).
// start:  wall time from spawning `mailfront run` to its "mailfront ready" log line, and RSS then.
// reload: mailfront pinned to CPU 0, bench/loadgen (CPU 1) opens new connections at a steady rate
//         (full TLS 1.3 handshake + greeting, SNI rotating over all COUNT names, leaf checked
//         against the SNI) while SIGHUP is sent RELOADS times (each one after the previous
//         "reloaded" line + SETTLE ms; RSS is read just before the next SIGHUP). Failed handshakes are counted; the longest gap between completed
//         connections inside a reload window (SIGHUP .. "reloaded" + 200 ms) is compared with the
//         longest gap outside the windows: a pause in accepting shows as a long gap.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { waitPort } from './lib/wait-port.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const WORK = path.join(BENCH, 'work');
const BIN = path.join(WORK, 'bin');
const LOGS = path.join(WORK, 'logs');
const DIST = path.join(ROOT, 'dist');
const SNI_FMT = 'mail.s%05d.store.test';
const nameOf = (i) => `mail.s${String(i).padStart(5, '0')}.store.test`;
const PORT = 24601; // mailfront listener
const BACKEND = 24602; // echo backend of this scenario
export const SECTION = 'Certificate store (10,000 certificates)';

const log = (...a) => console.error(`[store ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const monoS = () => Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC, like loadgen's now_s()
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');
const cell = (v, d = 0) => (v.length === 1 ? fmt(v[0], d) : `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)})`);
function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

// ---------------------------------------------------------------- child: the load, in steps

async function childLoad(configPath) {
  const imp = (f) => import(pathToFileURL(path.join(DIST, f)).href);
  const [{ loadConfig }, { discover }, { loadCertificates }, { buildSnapshot }, { createProxy }] = await Promise.all([
    imp('config/load.js'), imp('certs/sources.js'), imp('certs/index.js'), imp('snapshot.js'), imp('native.js'),
  ]);
  const rss = () => Math.round(process.memoryUsage.rss() / 1024);
  const config = await loadConfig(configPath);
  const sources = {
    letsencrypt: [...config.certificates.letsencrypt],
    pemDirs: [...config.certificates.pemDirs],
    pairs: config.certificates.pairs.map((p) => ({ ...p })),
    defaultName: config.certificates.default,
  };
  createProxy(1, () => {}); // load the addon (and OpenSSL) before the clock starts
  const rss0 = rss();
  // CPU time of every thread of the process: on a shared machine wall time says little.
  const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const c0 = cpuMs();
  const t0 = performance.now();
  const cands = await discover(sources, []);
  const t1 = performance.now();
  // The control plane's logs, /metrics and signals wait while the JS thread is blocked: its longest block.
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const store = await loadCertificates(sources); // discovery again (cached dentries), then parse, validate, index
  const t2 = performance.now();
  loopDelay.disable();
  const c2 = cpuMs();
  const discoverMs2 = await (async () => { const a = performance.now(); await discover(sources, []); return performance.now() - a; })();
  const rssLoaded = rss();
  const snapshot = buildSnapshot(config, store, undefined, []);
  const proxy = createProxy(1, () => {});
  const t3 = performance.now();
  const c3 = cpuMs();
  proxy.apply(snapshot);
  const t4 = performance.now();
  const c4 = cpuMs();
  globalThis.gc?.();
  const rssApplied = rss();
  const errors = store.problems.filter((p) => p.level === 'error').length;
  return {
    candidates: cands.length, certificates: store.certificates.length, contexts: store.contexts.length, errors,
    discoverMs: t1 - t0,
    // loadCertificates ran discovery again: count it once (the second discovery is timed alone, warm).
    parseMs: t2 - t1 - discoverMs2,
    applyMs: t4 - t3,
    totalMs: t1 - t0 + (t2 - t1 - discoverMs2) + (t4 - t3),
    loadCpuMs: c2 - c0, applyCpuMs: c4 - c3, loopBlockMs: loopDelay.max / 1e6,
    rss0, rssLoaded, rssApplied, heapUsedKiB: Math.round(process.memoryUsage().heapUsed / 1024),
  };
}

// ---------------------------------------------------------------- certificates and config

export function ensureStore(count) {
  const dir = path.join(WORK, `store-${count}`);
  if (fs.existsSync(path.join(dir, 'done'))) return dir;
  execFileSync('make', ['-s', '-C', BENCH], { stdio: 'inherit' });
  log(`making ${fmt(count)} ECDSA P-256 lineages in ${dir} (once, cached)`);
  fs.rmSync(dir, { recursive: true, force: true });
  execFileSync(path.join(BIN, 'gencerts'), ['--out', dir, '--count', String(count), '--fmt', SNI_FMT], { stdio: 'inherit' });
  fs.writeFileSync(path.join(dir, 'done'), new Date().toISOString() + '\n');
  return dir;
}

function writeConfig(dir, logLevel) {
  const cfg = path.join(dir, `mailfront-${logLevel}.yaml`);
  fs.writeFileSync(cfg, [
    'certificates:',
    `  letsencrypt: [${path.join(dir, 'le')}]`,
    `  default: ${nameOf(0)}`,
    'listeners:',
    `  - {name: imaps, protocol: imaps, listen: ["127.0.0.1:${PORT}"], backend: echo}`,
    'backends:',
    `  echo: {servers: ["127.0.0.1:${BACKEND}"]}`,
    // A connection rate no load reaches (one client address makes all of it), as bench/run.mjs's mailfront peer.
    'limits: {connections: 200000, per_client: 200000, connection_rate: 10000000}',
    'timeouts: {drain: 1s}',
    'workers: 1',
    'metrics: false',
    `log: {level: ${logLevel}}`,
    '',
  ].join('\n'));
  return cfg;
}

// ---------------------------------------------------------------- phases

// --nice N: mailfront, backend and loadgen run at nice N (root: below 0), so that other work on a
// shared host cannot preempt them for tens of ms and the gaps are mailfront's own. Under Linux's
// autogroup scheduler nice counts only within a session, so the bench's session (its autogroup,
// which the children share) gets nice N too (scripts/low-priority.sh does the same the other way).
let NICE;
// --node PATH: the runtime that runs mailfront (load, check, start, reload); default this one.
let NODE = process.execPath;

function niceSession(n) {
  try {
    fs.writeFileSync('/proc/self/autogroup', String(n));
    return true;
  } catch {
    return false; // no autogroup, or not root: the processes' own nice still applies
  }
}

function spawnLogged(name, argv, { cpu, env } = {}) {
  fs.mkdirSync(LOGS, { recursive: true });
  const niced = NICE === undefined ? argv : ['nice', '-n', String(NICE), ...argv];
  const cmd = cpu === undefined ? niced : ['taskset', '-c', String(cpu), ...niced];
  const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const out = fs.createWriteStream(path.join(LOGS, `${name}.log`), { flags: 'a' });
  child.stderr.pipe(out, { end: false });
  return { child, out };
}

async function stop(child, sig = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill(sig);
  const t = setTimeout(() => child.kill('SIGKILL'), 10000);
  await done;
  clearTimeout(t);
}

async function phaseLoad(cfg, { profile, perf } = {}) {
  const nodeArgs = ['--expose-gc'];
  if (profile) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', path.join(WORK, 'prof'));
  if (perf) nodeArgs.push('--perf-basic-prof');
  let argv = [NODE, ...nodeArgs, fileURLToPath(import.meta.url), '--child-load', cfg];
  const perfData = path.join(WORK, 'perf-store-load.data');
  if (perf) argv = ['perf', 'record', '-F', '1999', '-g', '-o', perfData, '--', ...argv];
  const out = execFileSync(argv[0], argv.slice(1), { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const r = JSON.parse(out.trim().split('\n').pop());
  if (perf) {
    const rep = path.join(WORK, 'perf-store-load.txt');
    const sh = (a) => { try { return execFileSync('perf', a, { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] }); } catch (e) { return String(e.stdout ?? e); } };
    fs.writeFileSync(rep, `# ${JSON.stringify(r)}\n\n## by dso\n${sh(['report', '-i', perfData, '--no-children', '--sort', 'dso', '--stdio', '-g', 'none', '--percent-limit', '0.5'])}\n` +
      `## self, by symbol\n${sh(['report', '-i', perfData, '--no-children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '0.3'])}\n`);
    log(`perf report in ${rep}`);
  }
  if (profile) {
    const dir = path.join(WORK, 'prof');
    const newest = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(dir, f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    const rep = path.join(WORK, 'prof-store-load.txt');
    fs.writeFileSync(rep, summarizeProfile(newest));
    log(`cpu profile ${newest}; top self time in ${rep}`);
  }
  return r;
}

/** Self time per function (and per url) of a .cpuprofile, top 40. */
function summarizeProfile(file) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? `${path.basename(cf.url)}:${cf.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40);
  return `# ${file}: ${(total / 1000).toFixed(0)} ms sampled\n` + rows.map(([k, v]) => `${(v / 1000).toFixed(1).padStart(8)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n') + '\n';
}

async function phaseCheck(cfg) {
  const t0 = performance.now();
  const r = await spawnSyncQuiet([NODE, path.join(DIST, 'cli.js'), 'check', '--config', cfg]);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`mailfront check exited ${r.code}: ${r.stderr.slice(0, 500)}`);
  return { ms, lines: r.lines };
}

function spawnSyncQuiet(argv) {
  return new Promise((resolve) => {
    const c = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let stderr = '';
    c.stdout.on('data', (d) => { for (const b of d) if (b === 10) lines++; });
    c.stderr.on('data', (d) => { stderr += d; });
    c.on('exit', (code) => resolve({ code, lines, stderr }));
  });
}

/** Spawns `mailfront run`; resolves at its "mailfront ready" line. */
async function startMailfront(cfg, cpu) {
  const t0 = performance.now();
  const { child, out } = spawnLogged('mailfront-store', [NODE, path.join(DIST, 'cli.js'), 'run', '--config', cfg], { cpu });
  const lines = [];
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    out.write(d);
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const at = monoS();
      lines.push({ at, line });
      for (const w of [...waiters]) if (w.re.test(line)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(at); }
    }
  });
  const exited = new Promise((_, rej) => child.once('exit', (c) => rej(new Error(`mailfront exited (${c}): see ${LOGS}/mailfront-store.log`))));
  exited.catch(() => {});
  const waitFor = (re, ms) => Promise.race([
    new Promise((resolve, reject) => {
      const w = { re, resolve };
      waiters.push(w);
      setTimeout(() => { const i = waiters.indexOf(w); if (i >= 0) { waiters.splice(i, 1); reject(new Error(`no ${re} within ${ms} ms`)); } }, ms);
    }),
    exited,
  ]);
  try {
    await waitFor(/"msg":"mailfront ready"/, 120000);
  } catch (e) {
    await stop(child);
    throw e;
  }
  const readyMs = performance.now() - t0;
  return { child, pid: child.pid, readyMs, rss: rssKiB(child.pid), lines, waitFor };
}

function startBackend() {
  const { child } = spawnLogged('backend-store', [path.join(BIN, 'backend'), '--port', String(BACKEND), '--max-seconds', '1800'], { cpu: 1 });
  return child;
}

/** Runs loadgen on CPU 1; onReady at its ready line (then "go"). */
function loadgen(argv, onReady, boundSeconds = 600) {
  const { child } = spawnLogged('loadgen-store', [path.join(BIN, 'loadgen'), ...argv.map(String), '--sync'], { cpu: 1 });
  return new Promise((resolve, reject) => {
    let buf = '';
    let done;
    child.stdout.on('data', async (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let ev;
        try { ev = JSON.parse(line); } catch { continue; }
        if (ev.event === 'ready') {
          try { if (onReady) await onReady(ev); } catch (e) { reject(e); }
          child.stdin.write('go\n');
        } else if (ev.event === 'done') done = ev;
      }
    });
    // Past its own time bound (-t) with room to finish: a slow first load makes that over 10 min.
    const killer = setTimeout(() => child.kill('SIGKILL'), (boundSeconds + 60) * 1000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      if (!done) reject(new Error(`loadgen exited ${code} without a result (see ${LOGS}/loadgen-store.log)`));
      else resolve(done);
    });
  });
}

async function phaseReload(cfg, { count, reloads, rate, expectSeconds, settleMs }) {
  const backend = startBackend();
  let mf;
  try {
    await waitPort(BACKEND);
    mf = await startMailfront(cfg, 0);
    await waitPort(PORT);
    // Every name once before the measured run: each context's SSL_CTX is built on its name's
    // first handshake (native/ctx_cache.h), so RSS after a reload compares like with like.
    await loadgen(['--port', PORT, '--mode', 'full', '-c', 32, '-n', count, '-t', 120, '--names', count, '--sni-fmt', SNI_FMT, '--conn-timeout', 10], null, 120);
    const warmRss = rssKiB(mf.pid);
    const windows = [];
    const rssAfter = [];
    const reloadMs = [];
    // Enough time for every reload (measured load time x 2 + 3 s each), bounded.
    const seconds = Math.min(1800, Math.ceil(3 + reloads * (2 * expectSeconds + settleMs / 1000) + 2));
    let plan;
    const r = await loadgen(['--port', PORT, '--mode', 'full', '-c', 64, '--rate', rate, '-t', seconds, '--names', count, '--sni-fmt', SNI_FMT, '--times', '--conn-timeout', 10], async () => {
      plan = (async () => {
        await sleep(3000);
        for (let i = 0; i < reloads; i++) {
          const from = mf.lines.length;
          const t = monoS();
          process.kill(mf.pid, 'SIGHUP');
          const end = await mf.waitFor(/"msg":"(reloaded|reload failed)/, 120000);
          const line = mf.lines.slice(from).find((l) => /"msg":"(reloaded|reload failed)/.test(l.line))?.line ?? '';
          if (/reload failed/.test(line)) throw new Error(`reload failed: ${line.slice(0, 300)}`);
          reloadMs.push(Number((line.match(/"ms":(\d+)/) ?? [])[1]));
          windows.push([t, end + 0.2]);
          // RSS once the reload has settled (just before the next SIGHUP): the level it leaves.
          await sleep(settleMs);
          rssAfter.push(rssKiB(mf.pid));
        }
      })();
    }, seconds);
    await plan;
    if (windows.length < reloads) throw new Error(`only ${windows.length} of ${reloads} reloads finished within the ${seconds} s load`);
    // Gaps between consecutive completions; a gap belongs to a reload when it overlaps its window.
    const done = r.done_t;
    const t0 = done[0] + 1; // skip the first second (ramp-up)
    let inMax = 0, outMax = 0;
    const outGaps = [];
    for (let i = 1; i < done.length; i++) {
      const a = done[i - 1], b = done[i], g = b - a;
      if (a < t0) continue;
      if (windows.some(([s, e]) => b > s && a < e)) inMax = Math.max(inMax, g);
      else { outMax = Math.max(outMax, g); outGaps.push(g); }
    }
    const failsIn = r.fail_t.filter((t) => windows.some(([s, e]) => t >= s && t <= e)).length;
    outGaps.sort((x, y) => x - y);
    return {
      seconds, rate, attempted: r.started, ok: r.ok, failures: r.failures, failsIn, kinds: r.failure_kinds, errors: r.first_errors,
      reloads: windows.length, reloadMs, windowMs: windows.map(([s, e]) => (e - s - 0.2) * 1000),
      gapInMs: inMax * 1000, gapOutMs: outMax * 1000, gapOutP99Ms: (outGaps[Math.floor(outGaps.length * 0.99)] ?? NaN) * 1000,
      connP99Ms: r.conn_us.p99 / 1000, rssStart: mf.rss, warmRss, rssAfter, settleMs, nice: NICE,
      // Target: RSS after the last reload within 10% of its level after the second.
      rssGrowthPct: rssAfter.length >= 3 ? (100 * (rssAfter[rssAfter.length - 1] - rssAfter[1])) / rssAfter[1] : NaN,
    };
  } finally {
    await stop(mf?.child);
    await stop(backend);
  }
}

// ---------------------------------------------------------------- report

/** The runtime a result was measured on, e.g. "Node v24.22.3 (OpenSSL 3.5.9)". */
const runtimeOf = (res) => `Node ${res.runtime.node} (OpenSSL ${res.runtime.openssl})`;

/** The section for one result, or for several runtimes' results (the first is the subject). */
export function section(results, command) {
  const list = Array.isArray(results) ? results : [results];
  const { count, date, build } = list[0];
  const reps = list[0].load?.length ?? 0;
  const out = [`## ${SECTION}`, ''];
  out.push(`Generated by \`${command}\` on ${date}; mailfront ${build}; ${os.cpus().length} CPUs (${(os.cpus()[0]?.model ?? '?').trim()}); ${list.map(runtimeOf).join(', then ')}.`, '');
  out.push(`${fmt(count)} Let's Encrypt-shaped lineages (\`live/<name>/{fullchain,privkey}.pem\` symlinks into \`archive/\`), ECDSA P-256, one distinct name each, chain root + intermediate + leaf, made by bench/gencerts.c (cached in bench/work/store-${count}/). Page cache warm (the files were read before). Medians of ${reps} fresh processes (min-max); load and start not pinned (both CPUs).`, '');
  for (const res of list) {
    if (list.length > 1) out.push(`### ${runtimeOf(res)}`, '');
    out.push(...runtimeTables(res, list.length > 1 ? '####' : '###'));
  }
  out.push(BEFORE, '');
  return out.join('\n');
}

function runtimeTables(res, h) {
  const { count, load, check, start, reload } = res;
  const out = [];
  if (load?.length) {
    const col = (k) => load.map((r) => r[k]);
    out.push('| step | ms |', '| --- | --- |');
    out.push(`| discovery (live/ read, every lineage listed on the addon's threads) | ${cell(col('discoverMs'))} |`);
    out.push(`| read + check + index (read, the addon's parse and check of each pair, SAN index) | ${cell(col('parseMs'))} |`);
    out.push(`| native apply (${fmt(load[0].contexts)} contexts: the default built, the others proved; each SSL_CTX is built on its first handshake) | ${cell(col('applyMs'))} |`);
    out.push(`| **total load** (target < 3,000) | **${cell(col('totalMs'))}** |`);
    out.push(`| CPU time of the load (all threads: discovery, read, check, index; then apply) | ${cell(col('loadCpuMs'))}; ${cell(col('applyCpuMs'))} |`);
    if (load[0].loopBlockMs !== undefined) out.push(`| longest JS-thread block during loadCertificates (event-loop delay, max; logs, /metrics and signals wait that long) | ${cell(col('loopBlockMs'))} |`);
    if (check?.length) out.push(`| \`mailfront check\` wall time (process start to exit, prints ${fmt(check[0].lines)} lines) | ${cell(check.map((c) => c.ms))} |`);
    if (start?.length) out.push(`| \`mailfront run\` to "mailfront ready" (process start included) | ${cell(start.map((s) => s.readyMs))} |`);
    out.push('');
    out.push(`RSS (MiB): ${cell(col('rss0').map((k) => k / 1024), 0)} with the addon loaded, ${cell(col('rssLoaded').map((k) => k / 1024), 0)} after loadCertificates, ` +
      `${cell(col('rssApplied').map((k) => k / 1024), 0)} after apply (+ gc)` +
      `${start?.length ? `; \`mailfront run\` at ready: ${cell(start.map((s) => s.rss / 1024), 0)}` : ''}. ` +
      `Certificates loaded ${fmt(load[0].certificates)} in ${fmt(load[0].contexts)} contexts, ${load[0].errors} errors.`, '');
  }
  if (reload) {
    out.push(`${h} Reload of ${fmt(count)} certificates under load`, '');
    out.push(`mailfront (\`workers: 1\`, log level info) on CPU 0, bench/loadgen on CPU 1${reload.nice === undefined ? '' : ` (both and the backend at nice ${reload.nice})`}: new connections at ${reload.rate}/s (full TLS 1.3 handshake + greeting, SNI over all ${fmt(count)} names, leaf checked against the SNI) for ${reload.seconds} s; ` +
      `${reload.reloads} SIGHUPs, each ${fmt(reload.settleMs / 1000, 1)} s after the previous "reloaded" (RSS read just before the next). Gap = longest time between two completed connections.`, '');
    out.push('| | value |', '| --- | --- |');
    out.push(`| reload time (SIGHUP to "reloaded"), ms | ${reload.windowMs.map((m) => fmt(m)).join(', ')} |`);
    out.push(`| connections attempted / completed / **failed** | ${fmt(reload.attempted)} / ${fmt(reload.ok)} / **${reload.failures}**${reload.failures ? ` (${reload.failsIn} during reloads; ${JSON.stringify(reload.kinds)} ${JSON.stringify(reload.errors)})` : ''} |`);
    out.push(`| **longest gap during a reload**, ms | **${fmt(reload.gapInMs, 1)}** |`);
    out.push(`| longest gap outside reloads, ms (p99 of gaps outside) | ${fmt(reload.gapOutMs, 1)} (${fmt(reload.gapOutP99Ms, 1)}); at ${reload.rate}/s the mean is ${fmt(1000 / reload.rate, 1)} |`);
    out.push(`| connect-to-greeting p99 over the whole run, ms | ${fmt(reload.connP99Ms, 1)} |`);
    out.push(`| RSS at start, after one handshake per name (every SSL_CTX built), after each reload, MiB | ${fmt(reload.rssStart / 1024)}; ${fmt(reload.warmRss / 1024)}; ${reload.rssAfter.map((k) => fmt(k / 1024)).join(', ')} |`);
    out.push(`| **RSS after reload ${reload.rssAfter.length} against after reload 2** (target within 10%) | **${Number.isFinite(reload.rssGrowthPct) ? `${reload.rssGrowthPct >= 0 ? '+' : ''}${fmt(reload.rssGrowthPct, 1)}%` : '–'}** |`);
    out.push('');
  }
  return out;
}

const loadMs = (res) => (res?.load?.length ? median(res.load.map((r) => r.totalMs)) : NaN);
const pct = (g) => (Number.isFinite(g) ? `${g >= 0 ? '+' : ''}${fmt(g, 1)}%` : '–');
const verdict = (ok, measured = true) => (measured ? (ok ? '**met**' : '**NOT met**') : 'not measured');

/**
 * The three certificate targets of issue 17 as rows [target, subject, beside, verdict] (the
 * verdict on the subject, the first runtime measured), for RESULTS.md's targets table.
 */
export function targetRows(subject, beside) {
  const cellOf = (res, f) => (res ? f(res) : '–');
  const rows = [];
  const load = (res) => (res.load?.length ? `${fmt(loadMs(res))} ms` : '–');
  rows.push([`${fmt(subject.count)} certificates load < 3 s (median of ${subject.load?.length ?? 0})`, load(subject), cellOf(beside, load),
    verdict(loadMs(subject) < 3000, Number.isFinite(loadMs(subject)))]);
  const rl = subject.reload;
  const rss = (res) => (res.reload ? `${pct(res.reload.rssGrowthPct)} after reload ${res.reload.rssAfter.length}` : '–');
  rows.push(['20 reloads of those: RSS within 10% of its level after reload 2', rss(subject), cellOf(beside, rss),
    verdict(rl?.reloads >= 20 && Math.abs(rl.rssGrowthPct) <= 10, Number.isFinite(rl?.rssGrowthPct)) + (rl && rl.reloads < 20 ? ` (only ${rl.reloads} reloads)` : '')]);
  const gap = (res) => (res.reload ? `${fmt(res.reload.gapInMs, 1)} ms (outside reloads ${fmt(res.reload.gapOutMs, 1)}); ${res.reload.failures} failed of ${fmt(res.reload.attempted)}` : '–');
  rows.push(['a reload pauses accepting ≤ 25 ms (longest gap between completed connections)', gap(subject), cellOf(beside, gap),
    verdict(rl?.gapInMs <= 25 && rl.failures === 0, Boolean(rl))]);
  return rows;
}

/** The same targets, one line each (printed at the end of a cert-store run). */
export const targets = (subject, beside) => targetRows(subject, beside).map(([t, v, , ok]) => `${t}: ${v}: ${ok.replaceAll('*', '')}`);

// Measured once on the commit before the certificate-store work (same machine, same tree).
const BEFORE = 'Before the certificate-store changes (ca2535a; `node bench/cert-store.mjs --reps 1 --reloads 2` in a worktree, same machine and tree, 2026-11-25): ' +
  'total load 19,153 ms (discovery 490, parse + validate + index 12,761, apply 5,901), `mailfront check` 25,535 ms, `mailfront run` to ready 19,029 ms, RSS after apply 400 MiB; ' +
  'reload 18,449 and 18,710 ms, 0 failed of 17,600, **longest gap during a reload 385.8 ms** vs 16.4 ms outside.';

/** Replaces the section in `file` (or appends it). */
export function writeSection(file, md) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const head = `## ${SECTION}`;
  const i = text.indexOf(head);
  let next;
  if (i < 0) next = text.replace(/\n*$/, '\n\n') + md + '\n';
  else {
    const j = text.indexOf('\n## ', i + head.length);
    next = text.slice(0, i) + md + '\n' + (j < 0 ? '' : text.slice(j + 1));
  }
  fs.writeFileSync(file, next);
}

export async function runStore({ count = 10000, reps = 3, phases = ['load', 'check', 'start', 'reload'], reloads = 20, rate = 200, settleMs = 2000, profile, perf, node, nice } = {}) {
  NODE = node ?? process.execPath;
  if (nice !== undefined && nice !== NICE) {
    NICE = nice;
    log(`nice ${NICE} for mailfront, backend and loadgen${niceSession(NICE) ? ', and for this session (autogroup)' : ''}`);
  }
  if (!fs.existsSync(path.join(DIST, 'cli.js'))) throw new Error('mailfront is not built: npx node-gyp rebuild -j 2 && npx tsc -p tsconfig.json');
  execFileSync('make', ['-s', '-C', BENCH], { stdio: 'inherit' });
  const dir = ensureStore(count);
  const cfgWarn = writeConfig(dir, 'warn');
  const cfgInfo = writeConfig(dir, 'info');
  const sh = (c, a) => { try { return execFileSync(c, a, { encoding: 'utf8' }).trim(); } catch { return '?'; } };
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'native', 'src']);
  const runtime = JSON.parse(execFileSync(NODE, ['-p', 'JSON.stringify({ node: process.version, openssl: process.versions.openssl })'], { encoding: 'utf8' }));
  log(`mailfront on Node ${runtime.node} (${NODE})`);
  const res = { count, runtime, date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC', build: `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${dirty ? ' (+ uncommitted native/src changes)' : ''}` };
  // Warm the page cache once (the figures are for a warm cache: a reload reads the same files).
  if (phases.includes('load') || phases.includes('check') || phases.includes('start')) await phaseLoad(cfgWarn);
  for (let i = 0; i < reps; i++) {
    if (phases.includes('load')) {
      const r = await phaseLoad(cfgWarn, { profile: profile && i === 0, perf: perf && i === 0 });
      (res.load ??= []).push(r);
      log(`load ${i + 1}/${reps}: discovery ${fmt(r.discoverMs)} ms, read+check ${fmt(r.parseMs)} ms, apply ${fmt(r.applyMs)} ms = ${fmt(r.totalMs)} ms; JS thread blocked ${fmt(r.loopBlockMs)} ms at most; CPU ${fmt(r.loadCpuMs)} + ${fmt(r.applyCpuMs)} ms; RSS ${fmt(r.rssApplied / 1024)} MiB; ${r.certificates} certs, ${r.errors} errors`);
    }
    if (phases.includes('check')) {
      const r = await phaseCheck(cfgWarn);
      (res.check ??= []).push(r);
      log(`check ${i + 1}/${reps}: ${fmt(r.ms)} ms`);
    }
    if (phases.includes('start')) {
      const backend = startBackend();
      try {
        const mf = await startMailfront(cfgInfo); // "mailfront ready" is an info line
        (res.start ??= []).push({ readyMs: mf.readyMs, rss: mf.rss });
        log(`start ${i + 1}/${reps}: ready after ${fmt(mf.readyMs)} ms, RSS ${fmt(mf.rss / 1024)} MiB`);
        await stop(mf.child);
      } finally {
        await stop(backend);
      }
    }
  }
  if (phases.includes('reload')) {
    const expectSeconds = res.load ? median(res.load.map((r) => r.totalMs)) / 1000 : 10;
    res.reload = await phaseReload(cfgInfo, { count, reloads, rate, expectSeconds, settleMs });
    const rl = res.reload;
    log(`reload: ${rl.failures} failed of ${rl.attempted}; reloads ${rl.windowMs.map((m) => fmt(m)).join(', ')} ms; longest gap ${fmt(rl.gapInMs, 1)} ms during reloads vs ${fmt(rl.gapOutMs, 1)} ms outside`);
  }
  fs.writeFileSync(path.join(WORK, 'results-store.json'), JSON.stringify(res, null, 1));
  return res;
}

// ---------------------------------------------------------------- main

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values: args } = parseArgs({
    options: {
      'child-load': { type: 'string' },
      count: { type: 'string', default: '10000' },
      reps: { type: 'string', default: '3' },
      phases: { type: 'string', default: 'load,check,start,reload' },
      reloads: { type: 'string', default: '20' },
      settle: { type: 'string', default: '2000' },
      rate: { type: 'string', default: '200' },
      out: { type: 'string' },
      profile: { type: 'boolean', default: false },
      perf: { type: 'boolean', default: false },
      nice: { type: 'string' },
      node: { type: 'string' }, // the runtime that runs mailfront (default: this one)
    },
  });
  if (args['child-load']) {
    childLoad(args['child-load']).then((r) => { console.log(JSON.stringify(r)); process.exit(0); }, (e) => { console.error(e); process.exit(1); });
  } else {
    const opts = { count: Number(args.count), reps: Number(args.reps), phases: args.phases.split(','), reloads: Number(args.reloads), settleMs: Number(args.settle), rate: Number(args.rate), profile: args.profile, perf: args.perf, node: args.node,
      nice: args.nice === undefined ? undefined : Number(args.nice) };
    runStore(opts).then((res) => {
      const md = section(res, `node bench/cert-store.mjs${process.argv.length > 2 ? ' ' + process.argv.slice(2).join(' ') : ''}`);
      console.log(md);
      for (const l of targets(res)) log(l);
      if (args.out) { writeSection(args.out, md); log(`wrote the section to ${args.out}`); }
    }, (e) => { console.error(e); process.exit(1); });
  }
}
