// The report writer: RESULTS.md's header, per-peer table, paired ratios with their spread, issue 17's
// targets, details, idle memory, reload and failures. Scenario sections (hybrid, workers2, fleet,
// store) come from their own writers.
import fs from 'node:fs';
import { NAMES, P, QUICK, args } from './config.mjs';
import { isMailfront, peers } from './peers.mjs';
import { hybridSection } from './report-hybrid.mjs';
import { cell, fmt, med, pairedRatios, ratioCell, spread } from './stats.mjs';
import { versions } from './versions.mjs';
import { workers2Ratio } from '../scenarios/workers2.mjs';

const AWSLC = 'haproxy-3.4-awslc';
const RATIO_SCENARIOS = [['full', 'full hs'], ['resumed', 'resumed hs'], ['reuse', 'resumed, ticket reused'], ['bulk', 'bulk']];

/** Pairs A ÷ B worth a row: each mailfront peer against each other peer, and the like-for-like pairs. */
export function ratioPairs(names) {
  const has = (n) => names.includes(n);
  const pairs = [];
  for (const a of names.filter(isMailfront)) for (const b of names.filter((n) => !isMailfront(n))) pairs.push([a, b]);
  if (has('mailfront@24') && has('mailfront')) pairs.push(['mailfront@24', 'mailfront']);
  if (has('mailfront-noauth') && has('mailfront')) pairs.push(['mailfront-noauth', 'mailfront']);
  if (has(AWSLC) && has('haproxy')) pairs.push([AWSLC, 'haproxy']);
  return pairs;
}

const ratioOf = (results, a, b, s, key = 'value') => spread(pairedRatios(results[a]?.[s], results[b]?.[s], key));

/** "A ÷ B scenario ±x%" of every full/resumed/bulk ratio whose ± is above target (a fraction). */
export function wideRatios(results, names, target) {
  const wide = [];
  for (const [a, b] of ratioPairs(names))
    for (const s of ['full', 'resumed', 'bulk']) {
      const r = ratioOf(results, a, b, s);
      if (r && r.pm > target) wide.push(`${a} ÷ ${b} ${s} ±${fmt(r.pm * 100, 1)}%`);
    }
  return wide;
}

function ratioTable(results, idle, names) {
  const out = ['## Ratios, paired per repetition', ''];
  out.push(`A ÷ B of the per proxy CPU-second figures, computed in each repetition from the two peers' runs of that repetition, then the median of those ratios ` +
    `(a distribution-free confidence interval for that median from the order statistics, min-max for 5-7 repetitions, ≥ 93% coverage; ±: its farther end from the median). Above 1: A does more per CPU-second. RTT p50 and idle memory: below 1 = A is lower (better); ` +
    `idle memory is one measurement per peer, no spread.`, '');
  out.push(`| A ÷ B | ${RATIO_SCENARIOS.map(([, h]) => h).join(' | ')} | RTT p50 | KiB per idle conn |`);
  out.push(`| --- | ${RATIO_SCENARIOS.map(() => '---').join(' | ')} | --- | --- |`);
  const idleN = P.idleConns[0];
  const worst = [];
  const reps = Math.max(0, ...Object.values(results).flatMap((sc) => Object.values(sc).flat().map((r) => r.rep + 1)));
  for (const [a, b] of ratioPairs(names)) {
    const cells = RATIO_SCENARIOS.map(([s]) => {
      const r = ratioOf(results, a, b, s);
      if (r && r.n > 1 && s !== 'reuse') worst.push([r.pm, `${a} ÷ ${b} ${s}`]);
      return ratioCell(r);
    });
    const ia = idle[`${a}:${idleN}`]?.value, ib = idle[`${b}:${idleN}`]?.value;
    out.push(`| ${a} ÷ ${b} | ${cells.join(' | ')} | ${ratioCell(ratioOf(results, a, b, 'rtt'))} | ${Number.isFinite(ia / ib) ? `${fmt(ia / ib, 2)}×` : '–'} |`);
  }
  out.push('');
  if (worst.length) {
    worst.sort((x, y) => y[0] - x[0]);
    const within = worst.filter(([pm]) => pm <= 0.05).length;
    out.push(`Spread: ${within} of ${worst.length} full/resumed/bulk ratios lie within ±5% (${reps} repetitions of ${P.hsSeconds} s; ` +
      `${P.reps} planned, up to ${P.maxReps} while a ratio was wider than ±${fmt(P.spreadTarget * 100, 1)}%); the widest: ` +
      `${worst.slice(0, 3).map(([pm, w]) => `${w} ±${fmt(pm * 100, 1)}%`).join(', ')}.`, '');
  }
  return out;
}

/** "met" / "NOT met" of a ratio's median against a floor, saying when the spread straddles it. */
function verdict(s, floor, extraOk = true) {
  if (!s) return 'not measured';
  if (s.median >= floor && extraOk) return s.n > 1 && s.min < floor ? '**met** (median; the spread reaches below)' : '**met**';
  return s.n > 1 && s.max >= floor && extraOk ? '**NOT met** (median; the spread reaches above)' : '**NOT met**';
}

function targets(results, idle, names, w2, storeRows = []) {
  const subject = names.includes('mailfront@24') ? 'mailfront@24' : 'mailfront';
  const beside = subject === 'mailfront@24' && names.includes('mailfront') ? 'mailfront' : undefined;
  const idleN = P.idleConns[0];
  const rows = [];
  const both = (fn) => [fn(subject), beside ? fn(beside) : '–'];
  const awslc = (s) => (n) => ratioCell(ratioOf(results, n, AWSLC, s));
  const share = (n) => (results[n]?.resumed?.length ? Math.min(...results[n].resumed.map((x) => x.resumedShare)) : NaN);
  rows.push(['full handshakes ≥ 1.0× HAProxy 3.4 + AWS-LC', ...both(awslc('full')), verdict(ratioOf(results, subject, AWSLC, 'full'), 1.0)]);
  rows.push(['resumed handshakes ≥ 1.0× HAProxy 3.4 + AWS-LC, ≥ 95% resumed', ...both((n) => `${awslc('resumed')(n)}; ${fmt(share(n) * 100, 1)}% resumed (lowest run)`),
    verdict(ratioOf(results, subject, AWSLC, 'resumed'), 1.0, share(subject) >= 0.95)]);
  const bulk = (b) => (n) => ratioCell(ratioOf(results, n, b, 'bulk'));
  rows.push(['bulk ≥ 1.15× HAProxy 3.4 + AWS-LC', ...both(bulk(AWSLC)), verdict(ratioOf(results, subject, AWSLC, 'bulk'), 1.15)]);
  rows.push(['bulk ≥ 1.15× HAProxy 2.6', ...both(bulk('haproxy')), verdict(ratioOf(results, subject, 'haproxy', 'bulk'), 1.15)]);
  const kib = (n) => idle[`${n}:${idleN}`]?.value;
  const kibOk = [subject, beside].filter(Boolean).map(kib);
  rows.push([`idle memory ≤ 12 KiB per connection (${fmt(idleN)} idle), Node 24 and Node 20`, ...both((n) => (Number.isFinite(kib(n)) ? `${fmt(kib(n), 1)} KiB` : '–')),
    kibOk.every(Number.isFinite) ? (kibOk.every((v) => v <= 12) ? '**met**' : '**NOT met**') : 'not measured']);
  if (w2) {
    const f = workers2Ratio(w2, 'full'), s = workers2Ratio(w2, 'resumed');
    rows.push([`workers: 2 on CPUs 0-1 within 10% of workers: 1 on CPU 0 (${w2.name}; full / resumed hs per CPU-s)`, `${ratioCell(f)} / ${ratioCell(s)}`, '–',
      `full ${verdict(f, 0.9)}, resumed ${verdict(s, 0.9)}`]);
  }
  // The certificate store's rows (bench/cert-store.mjs): its subject is Node 24 too when it can be had.
  rows.push(...storeRows);
  const out = ['## Targets (issue 17)', ''];
  out.push(`Per proxy CPU-second, ratios paired per repetition: median (min-max, ±). The verdict is on ${subject}'s median; "the spread reaches" says the other side of the floor is within the spread.`, '');
  out.push(`| target | ${subject} | ${beside ?? '–'} | verdict (${subject}) |`, '| --- | --- | --- | --- |');
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  out.push('');
  return out;
}

function details(results, names) {
  const out = ['## Details', ''];
  out.push('Raw rates are the client core\'s limit as much as the proxy\'s (one OpenSSL client core does about 600 full handshakes/s); they are shown only to judge load and noise.', '');
  out.push('| peer | full hs/s raw | resumed hs/s raw | resumed share | resumed share, ticket reused | bulk MB/s raw | proxy CPU in full run (s) | failures (all runs) | suite negotiated | group negotiated (full) |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const name of names) {
    const r = results[name] ?? {};
    const all = Object.values(r).flat();
    const fails = all.reduce((s, x) => s + (x.failures ?? 0), 0);
    const cipher = [...new Set(all.map((x) => x.cipher).filter(Boolean))].join(', ');
    const group = [...new Set((r.full ?? []).map((x) => x.group).filter(Boolean))].join(', ');
    out.push(`| ${name} | ${cell(r.full, 'raw')} | ${cell(r.resumed, 'raw')} | ${cell(r.resumed, 'resumedShare', 2)} | ${cell(r.reuse, 'resumedShare', 2)} | ${cell(r.bulk, 'raw')} | ${cell(r.full, 'cpu', 2)} | ${fails} | ${cipher || '–'} | ${group || '–'} |`);
  }
  out.push('');
  const partial = names.filter((n) => med(results[n]?.resumed, 'resumedShare') < 0.9);
  if (partial.length)
    out.push(`Resumed share below 1 (${partial.join(', ')}): the client uses each ticket once (RFC 8446 C.4) and keeps the newest per name; ` +
      'a server that issues no new ticket on a resumed handshake makes every other connection a full handshake, so that peer\'s "resumed" figure is a mix of full and resumed handshakes.', '');
  out.push('RTT p99 on this shared machine swings between runs for every peer (about 0.13 ms to 4 ms: scheduler ticks, other tenants); compare p50, and p99 only across repeated runs.', '');
  return out;
}

function idleAndReload(idle, reload) {
  const out = [];
  if (Object.keys(idle).length) {
    out.push('### Idle memory', '');
    out.push('Fresh proxy, 200 verified + 300 warm-up handshakes, RSS sampled, then N connections that completed the handshake (and read the greeting) held idle, RSS sampled again.', '');
    out.push('| peer | N | established | RSS before KiB | RSS with N KiB | KiB per conn | failures |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const [k, im] of Object.entries(idle))
      out.push(`| ${k.split(':')[0]} | ${fmt(im.n)} | ${fmt(im.established)} | ${fmt(im.before)} | ${fmt(im.after)} | ${fmt(im.value, 1)} | ${im.failures}${im.failures ? ` ${JSON.stringify(im.errors)}` : ''} |`);
    out.push('');
  }
  if (reload) {
    out.push('### Reload under load (mailfront)', '');
    out.push(`New connections at ${P.reloadRate}/s for ${P.reloadSeconds} s (full handshake + greeting each), ${P.reloads} SIGHUPs spread over the run, log level info.`, '');
    out.push(`- connections attempted ${reload.attempted}, completed ${reload.ok}, **failed ${reload.failures}**${reload.failures ? ` (${JSON.stringify(reload.kinds)} ${JSON.stringify(reload.errors)})` : ''}`);
    out.push(`- SIGHUPs sent ${reload.sighups}; "reloaded" log lines ${reload.reloaded} (reloads that overlap coalesce); failed reloads ${reload.failedReloads}`, '');
  }
  return out;
}

/** RESULTS.md's main part. run: { names, cpuScenarios, results, idle, reload, workers2, storeRows, meta }. */
export function report({ names, cpuScenarios, results, idle, reload, workers2, storeRows, meta }) {
  const v = versions(names);
  const out = ['# mailfront benchmark results', ''];
  out.push(`Generated by \`${meta.command}\` on ${meta.date} in ${meta.minutes.toFixed(1)} min${QUICK ? ' (**quick smoke run: short runs; not figures to quote**)' : ''}.`, '');
  out.push(`- Machine: ${v.cpu}, ${v.cpus} CPUs, ${v.memGiB} GiB, Linux ${v.kernel}, Debian ${v.debian}; shared with other work, so absolute rates are noisy: quote the ratios.`);
  out.push(`- mailfront ${v.mailfront} (${meta.builds.length ? 'several builds, see below' : meta.buildId}), Node ${v.node} (OpenSSL ${v.nodeOpenssl} inside Node), \`workers: 1\`, log level warn, default TLS settings.`);
  if (v.node24)
    out.push(`- mailfront@24: the same dist/ and build/Release addon (Node-API), run by Node ${v.node24.node} (OpenSSL ${v.node24.openssl} inside Node; pinned, from \`bash scripts/node-runtime.sh 24\`), same config; ` +
      `tls.groups ${args['mailfront24-groups'] ? `set to \`${args['mailfront24-groups']}\` (--mailfront24-groups)` : 'not set (mailfront\'s default)'}.`);
  out.push(`- ${[v.haproxy, v.haproxy34, v.stunnel, v.nginx].filter(Boolean).join('; ')}; Debian libssl3 ${v.libssl3}.`);
  if (meta.load) out.push(`- Machine load: ${meta.load}`);
  out.push(`- Crypto calibration: ${v.speed}; BENCHMARKS.md's machine did 26,066 and 17,337/s, so absolute rates here are not comparable with its table, ratios are.`);
  out.push(`- Method: /work/shared/BENCHMARKS.md. Proxy pinned to CPU 0, bench/loadgen + bench/backend to CPU 1, 127.0.0.1 only. ` +
    `Rates are divided by the proxy's CPU time (utime+stime of the whole process from /proc/PID/stat, before/after each run). ` +
    `${P.reps} to ${P.maxReps} repetition(s) (more while a ratio's ± was above ${fmt(P.spreadTarget * 100, 1)}%); in each, every peer started fresh, then full, resumed and bulk ` +
    `${P.slices > 1 ? `in ${P.slices} slices of ${fmt(P.hsSeconds / P.slices, 1)} s per peer, the peers in turn (order rotated each round), a peer's figure the sum of its slices (bench/lib/slices.mjs: the host's speed swings for tens of seconds at a time)` : `in one ${P.hsSeconds} s run per peer`}; median (min-max).`);
  out.push(`- Client: TLS 1.3 only, X25519 only, offering only \`${args.ciphersuites}\` (--ciphersuites; every handshake on another suite is a failure, not a figure), SNI rotating over ${NAMES} names, each leaf checked against the SNI (X509_check_host); ` +
    `every peer start is also checked with full chain verification (200 handshakes). full/resumed: 32 concurrent, ${P.hsSeconds} s, read the greeting through the proxy, close_notify, close. ` +
    `resumed: each ticket used once, the newest per name (RFC 8446 C.4); "ticket reused": the client keeps resuming with a name's newest ticket until a newer one arrives. ` +
    `bulk: 4 connections writing 16 KiB records for ${P.bulkSeconds} s to a discarding backend. RTT: one connection, ${P.rttCount} \`aNNN NOOP\` round trips.` +
    (cpuScenarios.includes('full-hybrid') ? ' full-hybrid (peers whose OpenSSL has ML-KEM): see its section; its client is loadgen on Node 24\'s OpenSSL.' : ''));
  out.push('');
  out.push('## Per proxy CPU-second', '');
  out.push('| peer | full hs / CPU-s | resumed hs / CPU-s | resumed, ticket reused / CPU-s | bulk MB / CPU-s | RTT p50 µs | RTT p99 µs | KiB per idle conn |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const idleN = P.idleConns[0];
  for (const name of names) {
    const r = results[name] ?? {};
    const im = idle[`${name}:${idleN}`];
    out.push(`| ${peers[name].label} | ${cell(r.full)} | ${cell(r.resumed)} | ${cell(r.reuse)} | ${cell(r.bulk)} | ${cell(r.rtt, 'value', 1)} | ${cell(r.rtt, 'p99', 1)} | ${im ? fmt(im.value, 1) : '–'} |`);
  }
  out.push('');
  out.push(...ratioTable(results, idle, names));
  if (names.some(isMailfront)) out.push(...targets(results, idle, names, workers2, storeRows));
  if (cpuScenarios.includes('full-hybrid')) out.push(...hybridSection(results, v, names));
  out.push(...details(results, names), ...idleAndReload(idle, reload));
  const errs = [];
  for (const name of names) for (const [s, runs] of Object.entries(results[name] ?? {})) for (const r of runs) if (r.failures) errs.push(`- ${name} ${s} rep ${r.rep + 1}: ${r.failures} failures ${JSON.stringify(r.errors)}`);
  for (const e of meta.errors) errs.push(`- ${e}`);
  if (meta.builds.length) errs.push(`- **mailfront was rebuilt during the run**: its figures mix builds (${meta.builds.join('; ')}); rerun for clean figures.`);
  if (errs.length) out.push('### Failures and errors', '', ...errs, '');
  out.push('Raw per-run figures: bench/work/results.json (not committed).', '');
  return out.join('\n');
}

/** Replaces the section headed `## head` in file (or appends it). */
export function replaceSection(file, head, md) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const i = text.indexOf(`## ${head}`);
  let next;
  if (i < 0) next = text.replace(/\n*$/, '\n\n') + md + '\n';
  else {
    const j = text.indexOf('\n## ', i + head.length + 3);
    next = text.slice(0, i) + md + '\n' + (j < 0 ? '' : text.slice(j + 1));
  }
  fs.writeFileSync(file, next);
}
