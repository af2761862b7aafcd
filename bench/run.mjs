#!/usr/bin/env node
// `npm run bench`: mailfront against HAProxy, stunnel, nginx and plain Node, per proxy CPU-second.
// Method: /work/shared/BENCHMARKS.md (proxy on CPU 0, load generator + backend on CPU 1, peers
// interleaved per repetition, medians with min-max). See bench/README.md.
//
//   node bench/run.mjs [--quick] [--peers mailfront,haproxy,...] [--scenarios full,resumed,...] [--reps N]
//   node bench/run.mjs --scenarios store   (10,000 certificates: load time, memory, start, reload under load; bench/cert-store.mjs)
//   node bench/run.mjs --quick --peers mailfront,mailfront@24,haproxy --scenarios full,resumed,bulk,full-hybrid
//     (mailfront@24: mailfront run by Node 24's binary from scripts/node-runtime.sh 24, OpenSSL 3.5;
//      full-hybrid: its full handshakes with a client offering only X25519MLKEM768, beside X25519)
//   BENCH_QUICK=1 npm run bench      (~1 minute smoke run)
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const WORK = path.join(BENCH, 'work');
const BIN = path.join(WORK, 'bin');
const PKI = path.join(WORK, 'pki');
const CONF = path.join(WORK, 'conf');
const LOGS = path.join(WORK, 'logs');
const NAMES = 100;
const SECTION_STORE = 'Certificate store (10,000 certificates)';
const SECTION_FLEET = 'Fleet: two instances, one ticket-key file';
const SNI_FMT = 'mail.d%02d.bench.test';
const nameOf = (i) => `mail.d${String(i).padStart(2, '0')}.bench.test`;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: process.env.BENCH_QUICK === '1' },
    peers: { type: 'string', default: process.env.BENCH_PEERS }, // default: see PEERS below
    scenarios: { type: 'string', default: process.env.BENCH_SCENARIOS ?? 'full,resumed,reuse,bulk,rtt,full-hybrid,idle,reload,fleet,store' },
    // tls.groups in mailfront@24's config, e.g. X25519MLKEM768:X25519:P-256; unset (the default): mailfront's own default.
    'mailfront24-groups': { type: 'string', default: process.env.BENCH_MAILFRONT24_GROUPS },
    reps: { type: 'string', default: process.env.BENCH_REPS },
    idle: { type: 'string', default: process.env.BENCH_IDLE },
    out: { type: 'string', default: process.env.BENCH_OUT },
    profile: { type: 'string' },
    strace: { type: 'string' }, // PEER,...: syscalls per connection (strace -c -f) over 2,000 full handshakes -> work/strace-PEER.txt // PEER[:scenario]: perf record -g the peer during one run, report to work/perf-PEER-SCENARIO.txt
  },
});
const QUICK = args.quick;
// A smoke run never overwrites the committed figures.
args.out ??= QUICK ? path.join(WORK, 'RESULTS-quick.md') : path.join(BENCH, 'RESULTS.md');
const P = {
  reps: Number(args.reps ?? (QUICK ? 1 : 3)),
  hsSeconds: QUICK ? 2 : 6,
  bulkSeconds: QUICK ? 2 : 6,
  rttCount: QUICK ? 1000 : 5000,
  idleConns: (args.idle ?? (QUICK ? '1000' : '5000')).split(',').map(Number),
  reloadSeconds: QUICK ? 6 : 12,
  reloadRate: 200,
  reloads: QUICK ? 5 : 10,
};
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

// A second runtime for mailfront: Node 24 (OpenSSL 3.5, X25519MLKEM768), pinned and unpacked under .runtimes/
// by scripts/node-runtime.sh (from the npm registry, once). Its folder, or null when it cannot be had.
let node24Dir;
function node24() {
  if (node24Dir !== undefined) return node24Dir;
  try {
    node24Dir = execFileSync('bash', [path.join(ROOT, 'scripts', 'node-runtime.sh'), '24'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop();
    if (!fs.existsSync(path.join(node24Dir, 'bin', 'node'))) throw new Error(`no bin/node in ${node24Dir}`);
  } catch (e) {
    log(`no Node 24 runtime (scripts/node-runtime.sh 24: ${e.message.split('\n')[0]}): mailfront@24 and full-hybrid left out`);
    node24Dir = null;
  }
  return node24Dir;
}
const node24Bin = () => path.join(node24(), 'bin', 'node');
let node24Ver;
/** { node, openssl } of the Node 24 runtime. */
const node24Versions = () => (node24Ver ??= JSON.parse(execFileSync(node24Bin(), ['-p', 'JSON.stringify({ node: process.version, openssl: process.versions.openssl })'], { encoding: 'utf8' })));
const PEERS = (args.peers ?? ['mailfront', ...(node24() ? ['mailfront@24'] : []), 'haproxy', 'stunnel', 'nginx', 'node'].join(',')).split(',');
const SCEN = new Set(args.scenarios.split(','));
const CPU_SCENARIOS = ['full', 'resumed', 'reuse', 'bulk', 'rtt', 'full-hybrid'].filter((s) => SCEN.has(s));
const isMailfront = (name) => name === 'mailfront' || name === 'mailfront-noauth' || name.startsWith('mailfront@');
// The hybrid post-quantum group the full-hybrid scenario offers (alone), and its classical counterpart.
const HYBRID = 'X25519MLKEM768';
const CLASSICAL = 'X25519';

// Ports: backend echo / discard; each peer listens on base (echo) and base+1 (discard).
const BACKEND_ECHO = 24001;
const BACKEND_SINK = 24002;
const PORTS = { mailfront: 24101, 'mailfront@24': 24111, 'mailfront-noauth': 24121, haproxy: 24201, stunnel: 24301, nginx: 24401, node: 24501 };
// Fleet: mailfront instances A and B (each on base and base+1) behind a plain TCP balancer.
const FLEET_PORTS = { a: 24601, b: 24611, lb: 24701 };
const FLEET_NAMES = 99; // odd: with round-robin over 2 instances, consecutive uses of a name alternate instances

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (const d of [WORK, CONF, LOGS]) fs.mkdirSync(d, { recursive: true });

// ---------------------------------------------------------------- processes

const NOFILE = 200000;
/** Spawns `cmd` pinned to `cpu` with a raised fd limit; the returned pid is the program's own (exec). */
function start(name, cpu, cmd, argv, opts = {}) {
  const out = fs.openSync(path.join(LOGS, `${name}.log`), 'a');
  const quoted = [cmd, ...argv].map((s) => `'${String(s).replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('bash', ['-c', `ulimit -Hn ${NOFILE} 2>/dev/null; ulimit -n ${NOFILE} 2>/dev/null || ulimit -n $(ulimit -Hn); exec taskset -c ${cpu} ${quoted}`], {
    cwd: opts.cwd ?? ROOT,
    stdio: ['pipe', opts.pipeStdout ? 'pipe' : out, out],
    env: { ...process.env, ...(opts.env ?? {}) },
  });
  child.on('exit', () => fs.closeSync(out));
  child.name = name;
  return child;
}

async function stop(child, sig = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill(sig);
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

function waitPort(port, ms = 20000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} not listening after ${ms} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** utime+stime of the whole process (all threads, live and exited), in seconds. */
function cpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
}
function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}
/** Waits until the proxy stops burning CPU (tail of the relay, closes), bounded. */
async function quiesce(pid) {
  let last = cpuSeconds(pid);
  for (let i = 0, still = 0; i < 30 && still < 2; i++) {
    await sleep(100);
    const c = cpuSeconds(pid);
    still = c === last ? still + 1 : 0;
    last = c;
  }
  return last;
}

/**
 * Runs the load generator on CPU 1. onReady runs at its {"event":"ready"} line (then it gets "go").
 * client 'node24': the same loadgen.c built as a Node-API addon and run by Node 24's node, on the OpenSSL 3.5
 * inside it (bench/loadgen-node.mjs); needed for --groups X25519MLKEM768 (Debian's libssl 3.0 has no ML-KEM).
 */
function loadgen(argv, onReady, { client = 'debian' } = {}) {
  const [cmd, pre] = client === 'node24' ? [node24Bin(), [path.join(BENCH, 'loadgen-node.mjs')]] : [path.join(BIN, 'loadgen'), []];
  const child = start('loadgen', 1, cmd, [...pre, ...argv, '--sync'], { pipeStdout: true });
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

// ---------------------------------------------------------------- certificates

async function ensurePki() {
  const marker = path.join(PKI, 'done');
  if (fs.existsSync(marker)) return;
  log(`making a throwaway CA and ${NAMES} ECDSA P-256 certificates in ${PKI} (once, cached)`);
  fs.rmSync(PKI, { recursive: true, force: true });
  const { makeCA, issue, makeLetsEncryptTree } = await import(path.join(ROOT, 'dist', 'pki.js'));
  const ca = makeCA(path.join(PKI, 'ca'), { name: 'mailfront bench' });
  const lineages = {};
  fs.mkdirSync(path.join(PKI, 'pems'), { recursive: true });
  for (let i = 0; i < NAMES; i++) {
    const name = nameOf(i);
    const leaf = issue(ca, { names: [name], dir: path.join(PKI, 'leaves', name) });
    lineages[name] = leaf;
    fs.writeFileSync(path.join(PKI, 'pems', `${name}.pem`), leaf.combinedPem, { mode: 0o600 });
  }
  makeLetsEncryptTree(path.join(PKI, 'le'), lineages);
  fs.writeFileSync(marker, new Date().toISOString() + '\n');
}

// ---------------------------------------------------------------- peers

const pems = () => path.join(PKI, 'pems');
const pemOf = (i) => path.join(pems(), `${nameOf(i)}.pem`);

/**
 * mailfront run by `nodeBin` (the same dist/ and build/Release addon for every runtime).
 * instance: a second name for the fleet scenario (own config and log file); ticketKeys: tls.ticket_keys FILE.
 * groups: tls.groups, written only when given (mailfront@24: --mailfront24-groups); by default mailfront's own
 * default applies (on OpenSSL 3.5 it puts X25519MLKEM768 first).
 */
function mailfrontPeer(label, nodeBin, defaultInstance, extra = {}) {
  return {
    get label() { return typeof label === 'function' ? label() : label; },
    ...extra,
    start(port, { logLevel = 'warn', instance = defaultInstance, ticketKeys } = {}) {
      const cfg = path.join(CONF, `${instance}.yaml`);
      fs.writeFileSync(cfg, [
        'certificates:',
        `  letsencrypt: [${path.join(PKI, 'le')}]`,
        `  default: ${nameOf(0)}`,
        'listeners:',
        `  - {name: echo, protocol: imaps, listen: ["127.0.0.1:${port}"], backend: echo}`,
        `  - {name: sink, protocol: imaps, listen: ["127.0.0.1:${port + 1}"], backend: sink}`,
        'backends:',
        `  echo: {servers: ["127.0.0.1:${BACKEND_ECHO}"]}`,
        `  sink: {servers: ["127.0.0.1:${BACKEND_SINK}"]}`,
        // One client address makes every connection: a connection rate it never reaches, so the
        // table is still asked at each accept. mailfront-noauth: login tracking, bans and rate off.
        `limits: {connections: 200000, per_client: 200000, ${this.noauth ? 'connection_rate: off, login_tracking: false, login_failures: off' : 'connection_rate: 10000000'}}`,
        'timeouts: {drain: 1s}',
        ...(ticketKeys || this.groups ? ['tls:'] : []),
        ...(ticketKeys ? [`  ticket_keys: ${ticketKeys}`] : []),
        ...(this.groups ? [`  groups: "${this.groups}"`] : []),
        'workers: 1',
        'metrics: false',
        `log: {level: ${logLevel}}`,
        '',
      ].join('\n'));
      return start(instance, 0, nodeBin(), [path.join(ROOT, 'dist', 'cli.js'), 'run', '--config', cfg]);
    },
  };
}

const peers = {
  mailfront: mailfrontPeer(`mailfront (workers: 1; Node ${process.version}, OpenSSL ${process.versions.openssl})`, () => process.execPath, 'mailfront'),
  // The same with login tracking off (no login parsing, no ban table at accept): on/off in one run.
  'mailfront-noauth': mailfrontPeer(`mailfront, login tracking off (workers: 1; Node ${process.version})`, () => process.execPath, 'mailfront-noauth', { noauth: true }),
  // hybrid: the server's OpenSSL has X25519MLKEM768 (3.5), so the full-hybrid scenario applies.
  'mailfront@24': mailfrontPeer(() => `mailfront@24 (workers: 1; Node ${node24Versions().node}, OpenSSL ${node24Versions().openssl})`, node24Bin, 'mailfront-node24', { hybrid: true, groups: args['mailfront24-groups'] }),
  haproxy: {
    label: 'HAProxy (mode tcp, crt dir, nbthread 1)',
    start(port) {
      const cfg = path.join(CONF, 'haproxy.cfg');
      fs.writeFileSync(cfg, [
        'global', '  nbthread 1', '  maxconn 9800',
        'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 30m', '  timeout server 30m',
        'frontend fe_echo', `  bind 127.0.0.1:${port} ssl crt ${pems()}/`, '  default_backend be_echo',
        'frontend fe_sink', `  bind 127.0.0.1:${port + 1} ssl crt ${pems()}/`, '  default_backend be_sink',
        'backend be_echo', `  server s1 127.0.0.1:${BACKEND_ECHO}`,
        'backend be_sink', `  server s1 127.0.0.1:${BACKEND_SINK}`, '',
      ].join('\n'));
      return start('haproxy', 0, 'haproxy', ['-db', '-f', cfg]);
    },
  },
  stunnel: {
    label: 'stunnel (thread per connection)',
    start(port) {
      const cfg = path.join(CONF, 'stunnel.conf');
      const lines = ['foreground = yes', 'pid =', 'syslog = no', 'debug = 3'];
      for (const [svc, p, b] of [['echo', port, BACKEND_ECHO], ['sink', port + 1, BACKEND_SINK]]) {
        lines.push(`[${svc}]`, `accept = 127.0.0.1:${p}`, `connect = 127.0.0.1:${b}`, `cert = ${pemOf(0)}`);
        for (let i = 0; i < NAMES; i++)
          lines.push(`[${svc}-${i}]`, `sni = ${svc}:${nameOf(i)}`, `connect = 127.0.0.1:${b}`, `cert = ${pemOf(i)}`);
      }
      fs.writeFileSync(cfg, lines.join('\n') + '\n');
      return start('stunnel', 0, 'stunnel4', [cfg]);
    },
  },
  nginx: {
    label: 'nginx stream (ssl_certificate $ssl_server_name)',
    start(port) {
      const dir = path.join(CONF, 'nginx');
      fs.mkdirSync(dir, { recursive: true });
      const cfg = path.join(dir, 'nginx.conf');
      fs.writeFileSync(cfg, [
        'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
        'daemon off;', 'master_process off;', 'worker_processes 1;', `pid ${dir}/nginx.pid;`,
        `error_log ${LOGS}/nginx.log error;`, 'worker_rlimit_nofile 20000;',
        'events { worker_connections 19000; }',
        'stream {',
        `  ssl_certificate ${pems()}/$ssl_server_name.pem;`,
        `  ssl_certificate_key ${pems()}/$ssl_server_name.pem;`,
        '  ssl_protocols TLSv1.2 TLSv1.3;',
        `  server { listen 127.0.0.1:${port} ssl; proxy_pass 127.0.0.1:${BACKEND_ECHO}; }`,
        `  server { listen 127.0.0.1:${port + 1} ssl; proxy_pass 127.0.0.1:${BACKEND_SINK}; }`,
        '}', '',
      ].join('\n'));
      return start('nginx', 0, 'nginx', ['-e', 'stderr', '-p', dir, '-c', cfg]);
    },
  },
  node: {
    label: `Node ${process.version} (tls.createServer + SNICallback + pipe)`,
    start(port) {
      return start('node-proxy', 0, process.execPath, [path.join(BENCH, 'node-proxy.mjs'), '--pems', pems(), '--default', nameOf(0),
        '--listen', `${port}:${BACKEND_ECHO}`, '--listen', `${port + 1}:${BACKEND_SINK}`]);
    },
  },
};

// Another engineer may rebuild mailfront while the bench runs: note the build each mailfront start uses.
const ADDON = path.join(ROOT, 'build', 'Release', 'mailfront.node');
const buildId = () => {
  try {
    const st = fs.statSync(ADDON);
    return `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, addon built ${st.mtime.toISOString().slice(11, 19)} UTC`;
  } catch { return 'no addon'; }
};
const builds = new Set();

async function startPeer(name, opts) {
  const port = opts?.port ?? PORTS[name];
  if (isMailfront(name)) builds.add(fs.statSync(ADDON).mtimeMs + '|' + buildId());
  const child = peers[name].start(port, opts);
  const exited = new Promise((_, rej) => child.once('exit', (c) => rej(new Error(`${name} exited (${c}) at start: see ${LOGS}`))));
  await Promise.race([Promise.all([waitPort(port), waitPort(port + 1)]), exited]);
  // Check the chain and the names once (full verification against the root), then warm up.
  const check = await loadgen(['--port', port, '--mode', 'full', '-c', 8, '-n', 200, '-t', 20, '--ca', path.join(PKI, 'ca', 'root.pem')]);
  if (check.failures > 0 || check.ok !== 200) throw new Error(`${name}: certificate check failed: ${JSON.stringify(check.first_errors)}`);
  return { name, child, pid: child.pid, port, check };
}

// ---------------------------------------------------------------- scenarios

async function cpuRun(peer, argv, onReady, lgOpts) {
  let c0 = 0;
  const res = await loadgen(argv, async (ev) => {
    c0 = await quiesce(peer.pid);
    if (onReady) await onReady(ev);
  }, lgOpts);
  const c1 = await quiesce(peer.pid);
  return { ...res, cpu: c1 - c0 };
}

const scenarios = {
  async full(peer, hook) {
    const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'full', '-c', 32, '-t', P.hsSeconds], hook);
    return { value: r.ok / r.cpu, raw: r.rate, cpu: r.cpu, failures: r.failures, cipher: r.cipher, group: r.group, errors: r.first_errors, p99_ms: r.conn_us.p99 / 1000 };
  },
  async resumed(peer, hook) {
    const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'resumed', '-c', 32, '-t', P.hsSeconds], hook);
    return { value: r.ok / r.cpu, raw: r.rate, cpu: r.cpu, failures: r.failures, resumedShare: r.ok ? r.resumed / r.ok : 0, errors: r.first_errors };
  },
  async reuse(peer, hook) {
    const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'resumed', '--reuse-tickets', '-c', 32, '-t', P.hsSeconds], hook);
    return { value: r.ok / r.cpu, raw: r.rate, cpu: r.cpu, failures: r.failures, resumedShare: r.ok ? r.resumed / r.ok : 0, errors: r.first_errors };
  },
  async bulk(peer, hook) {
    const r = await cpuRun(peer, ['--port', peer.port + 1, '--mode', 'bulk', '-c', 4, '-t', P.bulkSeconds], hook);
    return { value: r.bytes / 1e6 / r.cpu, raw: r.mb_per_s, cpu: r.cpu, failures: r.failures, cipher: r.cipher, errors: r.first_errors };
  },
  async rtt(peer) {
    const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'rtt', '-n', P.rttCount, '-t', 20]);
    return { value: r.rtt_us.p50, p99: r.rtt_us.p99, cpu: r.cpu, failures: r.failures, errors: r.first_errors };
  },
  // Full handshakes with the hybrid post-quantum group: the load generator on Node 24's OpenSSL 3.5 offers
  // X25519MLKEM768 only, and, on the same proxy process in the same repetition, X25519 only (the same
  // client otherwise), so the difference is the key exchange alone. Order alternates between repetitions.
  // Every handshake must negotiate the offered group (loadgen's check): a hybrid run with any failure
  // gives no figure. value: hybrid full hs per proxy CPU-second; classical: the X25519 one.
  'full-hybrid': Object.assign(async function fullHybrid(peer, hook) {
    const one = async (group, h) => {
      const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'full', '-c', 32, '-t', P.hsSeconds, '--groups', group], h, { client: 'node24' });
      return { value: r.failures ? NaN : r.ok / r.cpu, ok: r.ok, raw: r.rate, cpu: r.cpu, failures: r.failures, group: r.group, negotiated: r.groups_negotiated, errors: r.first_errors, openssl: r.openssl };
    };
    const first = hybridTurn++ % 2 === 0 ? HYBRID : CLASSICAL;
    const runs = {};
    for (const g of first === HYBRID ? [HYBRID, CLASSICAL] : [CLASSICAL, HYBRID]) runs[g] = await one(g, g === HYBRID ? hook : undefined);
    const h = runs[HYBRID], c = runs[CLASSICAL];
    return {
      value: h.value, classical: c.value, raw: h.raw, classicalRaw: c.raw, cpu: h.cpu, classicalCpu: c.cpu, first,
      usPerHs: 1e6 / h.value, classicalUsPerHs: 1e6 / c.value, ratio: h.value / c.value, extraUs: 1e6 / h.value - 1e6 / c.value,
      failures: h.failures + c.failures, hybridFailures: h.failures, classicalFailures: c.failures,
      group: h.group, classicalGroup: c.group, negotiated: h.negotiated, classicalNegotiated: c.negotiated, clientOpenssl: h.openssl,
      errors: { ...(h.failures ? { [HYBRID]: h.errors } : {}), ...(c.failures ? { [CLASSICAL]: c.errors } : {}) },
    };
  }, { applies: (name) => Boolean(peers[name]?.hybrid) }),
};
let hybridTurn = 0;

async function idleMemory(name, n) {
  const peer = await startPeer(name);
  try {
    // startPeer already made 200 full handshakes; a few hundred more, then let it settle.
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
    const established = (ready.ok ?? 0) - (ready.failures ?? 0) >= 0 ? ready.ok ?? 0 : 0;
    return {
      n, before, after, established, failures: r.failures, errors: r.first_errors,
      value: established > 0 ? (after - before) / established : NaN,
    };
  } finally {
    await stop(peer.child);
  }
}

async function reloadUnderLoad() {
  const peer = await startPeer('mailfront', { logLevel: 'info' });
  const logFile = path.join(LOGS, 'mailfront.log');
  const offset = fs.statSync(logFile).size;
  const timers = [];
  let sent = 0;
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
    await stop(peer.child);
  }
}

// ---------------------------------------------------------------- fleet

/**
 * Fleet: mailfront instances behind a plain TCP round-robin balancer (HAProxy `mode tcp`, no TLS,
 * pinned to CPU 1 with the load generator, so its CPU is not counted). The instances (workers: 1 each)
 * share CPU 0 like a single proxy. Resumed handshakes (`loadgen --mode resumed`, each ticket once)
 * through the balancer; SNI over FLEET_NAMES (odd) names, so a name's next connection lands on the
 * other instance and its ticket must be opened by the instance that did not issue it.
 * Rate = handshakes / (sum of the instances' utime+stime).
 */
async function fleetRun({ instances, shared, names: nNames = FLEET_NAMES }) {
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
      children.add(peer.child);
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
    lb = start('fleet-lb', 1, 'haproxy', ['-db', '-f', cfg]);
    children.add(lb);
    await waitPort(FLEET_PORTS.lb);
    let c0 = [];
    const res = await loadgen(['--port', FLEET_PORTS.lb, '--mode', 'resumed', '--names', nNames, '-c', 32, '-t', P.hsSeconds], async () => {
      c0 = [];
      for (const m of mfs) c0.push(await quiesce(m.pid));
    });
    const per = [];
    for (const [i, m] of mfs.entries()) per.push((await quiesce(m.pid)) - c0[i]);
    const cpu = per.reduce((a, x) => a + x, 0);
    return {
      value: res.ok / cpu, resumedPerCpu: res.resumed / cpu, raw: res.rate, cpu, perInstanceCpu: per,
      resumedShare: res.ok ? res.resumed / res.ok : 0, ok: res.ok, failures: res.failures, errors: res.first_errors,
    };
  } finally {
    if (lb) { await stop(lb); children.delete(lb); }
    for (const m of mfs) { await stop(m.child); children.delete(m.child); }
  }
}

async function fleetBench(errors) {
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
  for (let rep = 0; rep < P.reps; rep++)
    for (let i = 0; i < configs.length; i++) await runOne(configs[(i + rep) % configs.length], `rep ${rep + 1}/${P.reps}`);
  // Control: two instances, each with its own in-memory key (no ticket_keys), one repetition.
  await runOne({ key: 'control', label: 'two instances, no shared key file (control)', instances: 2, shared: false }, 'control');
  return { runs, configs, names: FLEET_NAMES };
}

function fleetSection(fleet, command, date) {
  const { runs } = fleet;
  const out = [`## ${SECTION_FLEET}`, ''];
  out.push(`Generated by \`${command}\` on ${date}; mailfront ${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, Node ${process.version}.`, '');
  out.push(`Two mailfront processes (\`workers: 1\` each, both pinned to CPU 0 like a single proxy) with the same \`tls.ticket_keys\` file (one fresh key, base64 of 80 bytes), ` +
    `behind Debian's HAProxy as a plain TCP balancer (\`mode tcp\`, \`balance roundrobin\`, no TLS, no PROXY header) pinned to CPU 1 with bench/loadgen and the backend, so its CPU is not counted. ` +
    `\`loadgen --mode resumed\` through the balancer: 32 concurrent, ${P.hsSeconds} s, each ticket used once (the newest per name), SNI over ${fleet.names} names — an odd count, ` +
    `so with round-robin a name's next connection goes to the other instance and resumes a ticket the other instance issued. ` +
    `Rate = handshakes completed ÷ the sum of the instances' utime+stime. Compared with ONE instance behind the same balancer (same key file), ` +
    `interleaved in the same run, ${P.reps} repetition(s), median (min-max). Control: two instances without \`ticket_keys\` (each its own in-memory key), one repetition.`, '');
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

function replaceSection(file, head, md) {
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

// ---------------------------------------------------------------- report

const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–');
function cell(runs, key = 'value', d = 0) {
  const v = (runs ?? []).map((r) => r[key]).filter(Number.isFinite);
  if (!v.length) return '–';
  if (v.length === 1) return fmt(v[0], d);
  return `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)})`;
}
const med = (runs, key = 'value') => { const v = (runs ?? []).map((r) => r[key]).filter(Number.isFinite); return v.length ? median(v) : NaN; };

function sh(cmd, argv) {
  try { return execFileSync('bash', ['-c', '"$@" 2>&1', '-', cmd, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(); }
  catch (e) { return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim(); }
}
function versions() {
  const lscpu = sh('lscpu', []);
  return {
    cpu: (lscpu.match(/Model name:\s+(.*)/) ?? [])[1] ?? '?',
    cpus: os.cpus().length,
    memGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    debian: fs.existsSync('/etc/debian_version') ? fs.readFileSync('/etc/debian_version', 'utf8').trim() : '?',
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    libssl3: sh('dpkg-query', ['-W', '-f=${Version}', 'libssl3']),
    haproxy: sh('haproxy', ['-v']).split('\n')[0],
    stunnel: sh('stunnel4', ['-version']).split('\n').find((l) => l.startsWith('stunnel')) ?? '?',
    nginx: sh('nginx', ['-v']),
    speed: (() => {
      const o = sh('taskset', ['-c', '0', 'openssl', 'speed', '-seconds', '1', 'ecdsap256', 'ecdhx25519']);
      const sign = (o.match(/nistp256\)\s+\S+\s+\S+\s+([\d.]+)/) ?? [])[1];
      const x = (o.match(/X25519\)\s+\S+\s+([\d.]+)/) ?? [])[1];
      return `ECDSA P-256 sign ${fmt(Number(sign))}/s, X25519 ${fmt(Number(x))}/s (Debian's openssl speed, CPU 0)`;
    })(),
    node24: PEERS.includes('mailfront@24') && node24() ? node24Versions() : undefined,
    mailfront: `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'native', 'src']) ? ' (+ uncommitted native/src changes)' : ''}`,
  };
}

const ratioTxt = (a, b, d = 2) => (Number.isFinite(a) && Number.isFinite(b) && b ? `${fmt(a / b, d)}×` : '–');

/** mailfront on Node 20 and on Node 24, side by side, each as a ratio to HAProxy measured in the same run. */
function runtimeSection(results, v) {
  const out = ['## mailfront on Node 24 (OpenSSL 3.5) beside Node 20 (OpenSSL 3.0)', ''];
  out.push(`The same mailfront (dist/ and the build/Release addon) run by two runtimes: Node ${v.node} (OpenSSL ${v.nodeOpenssl}) and ` +
    `Node ${v.node24?.node ?? '24'} (OpenSSL ${v.node24?.openssl ?? '3.5'}); same config, same client (Debian's libssl, X25519). Per proxy CPU-second, medians (min-max); ` +
    `"× HAProxy" = ÷ HAProxy's median in this run.`, '');
  out.push('| runtime | full hs / CPU-s | × HAProxy | resumed hs / CPU-s | × HAProxy | resumed share (lowest run) | bulk MB / CPU-s | × HAProxy |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const h = results.haproxy ?? {};
  for (const [name, label] of [['mailfront', `mailfront, Node ${v.node} (OpenSSL ${v.nodeOpenssl})`], ['mailfront@24', `mailfront@24, Node ${v.node24?.node ?? '24'} (OpenSSL ${v.node24?.openssl ?? '?'})`]]) {
    if (!PEERS.includes(name)) continue;
    const r = results[name] ?? {};
    const share = r.resumed?.length ? `${fmt(Math.min(...r.resumed.map((x) => x.resumedShare)) * 100, 1)}%` : '–';
    out.push(`| ${label} | ${cell(r.full)} | ${ratioTxt(med(r.full), med(h.full))} | ${cell(r.resumed)} | ${ratioTxt(med(r.resumed), med(h.resumed))} | ${share} | ${cell(r.bulk)} | ${ratioTxt(med(r.bulk), med(h.bulk))} |`);
  }
  out.push('');
  if (!PEERS.includes('haproxy')) out.push('HAProxy was not among the peers of this run: no ratios.', '');
  const m = results.mailfront ?? {}, m24 = results['mailfront@24'] ?? {};
  if (PEERS.includes('mailfront'))
    out.push(`Node 24 ÷ Node 20 (medians): full ${ratioTxt(med(m24.full), med(m.full))}, resumed ${ratioTxt(med(m24.resumed), med(m.resumed))}, bulk ${ratioTxt(med(m24.bulk), med(m.bulk))}. ` +
      `Run-to-run noise on this machine is about ±5-7%, so ratios within 0.93-1.07× are no difference.`, '');
  return out;
}

/** full-hybrid: X25519MLKEM768 against X25519, same proxy process, same client, same repetition. */
function hybridSection(results, v) {
  const out = [`## Hybrid post-quantum key exchange (${HYBRID}) on a full handshake`, ''];
  const names = PEERS.filter((p) => scenarios['full-hybrid'].applies(p));
  const client = names.map((n) => results[n]?.['full-hybrid']?.[0]?.clientOpenssl).find(Boolean) ?? `OpenSSL ${v.node24?.openssl ?? '3.5'}`;
  out.push(`Full handshakes as in \`full\` (TLS 1.3, ECDSA P-256 chain, SNI over ${NAMES} names, greeting, close; 32 concurrent, ${P.hsSeconds} s each), ` +
    `but the client is bench/loadgen built as a Node-API addon and run by Node ${v.node24?.node ?? '24'} (bench/loadgen-node.mjs: ${client} inside Node; Debian's libssl 3.0 has no ML-KEM). ` +
    `It offers one group only: \`--groups ${HYBRID}\`, then (or first: the order alternates between repetitions) \`--groups ${CLASSICAL}\`, on the same proxy process. ` +
    `Every handshake must negotiate the group offered (loadgen's check, like the certificate check): a run with any failure gives no figure. ` +
    `Only peers whose TLS library has ML-KEM (${names.join(', ') || 'none among this run\'s peers'}). ` +
    `µs per handshake = 1,000,000 ÷ (handshakes per proxy CPU-second): all the proxy's CPU for one connection (kernel, relay, greeting included).`, '');
  if (!names.length) return out;
  out.push(`| peer | ${CLASSICAL} hs / CPU-s | ${HYBRID} hs / CPU-s | µs per hs, ${CLASSICAL} | µs per hs, ${HYBRID} | ${HYBRID} ÷ ${CLASSICAL} (paired) | extra µs per hybrid hs (paired) | groups negotiated | failures |`);
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const n of names) {
    const r = results[n]?.['full-hybrid'] ?? [];
    const neg = [...new Set(r.flatMap((x) => [...Object.keys(x.negotiated ?? {}), ...Object.keys(x.classicalNegotiated ?? {})]))].join(', ');
    const fails = r.map((x) => `${x.hybridFailures}/${x.classicalFailures}`).join('; ');
    out.push(`| ${n} | ${cell(r, 'classical')} | ${cell(r)} | ${cell(r, 'classicalUsPerHs')} | ${cell(r, 'usPerHs')} | ${cell(r, 'ratio', 2)} | ${cell(r, 'extraUs')} | ${neg || '–'} | ${fails || '–'} (${HYBRID}/${CLASSICAL}) |`);
  }
  out.push('');
  for (const n of names) {
    const r = results[n]?.['full-hybrid'] ?? [];
    const full = med(results[n]?.full), hap = med(results.haproxy?.full);
    if (r.some((x) => x.hybridFailures)) {
      const e = r.find((x) => x.hybridFailures)?.errors?.[HYBRID];
      out.push(`- ${n}: **the ${HYBRID} runs failed** (${r.filter((x) => x.hybridFailures).length} of ${r.length}): ${JSON.stringify(e)}. ` +
        `A server that does not offer ${HYBRID} (e.g. mailfront before \`tls.groups\` defaults to it on OpenSSL 3.5) refuses a client that offers nothing else: no figure.`);
      continue;
    }
    const ratio = med(r, 'ratio'), extra = med(r, 'extraUs');
    out.push(`- ${n}: a full handshake with ${HYBRID} costs the proxy **${fmt(extra)} µs more CPU** than with ${CLASSICAL} ` +
      `(${fmt(med(r, 'usPerHs'))} against ${fmt(med(r, 'classicalUsPerHs'))} µs), i.e. **${fmt(ratio, 2)}×** the ${CLASSICAL} rate per CPU-second (paired medians).` +
      (Number.isFinite(full) ? ` For reference, its \`full\` figure with Debian's client (X25519): ${fmt(full)} hs / CPU-s.` : '') +
      (Number.isFinite(hap) ? ` ${HYBRID} ÷ HAProxy's (classical X25519) full: ${ratioTxt(med(r), hap)}; ${CLASSICAL} (this client) ÷ HAProxy: ${ratioTxt(med(r, 'classical'), hap)}.` : ''));
  }
  out.push('');
  return out;
}

function report(results, idle, reload, meta) {
  const v = versions();
  const out = [];
  out.push('# mailfront benchmark results', '');
  out.push(`Generated by \`${meta.command}\` on ${meta.date} in ${meta.minutes.toFixed(1)} min${QUICK ? ' (**BENCH_QUICK smoke run: short runs, 1 repetition; not figures to quote**)' : ''}.`, '');
  out.push(`- Machine: ${v.cpu}, ${v.cpus} CPUs, ${v.memGiB} GiB, Linux ${v.kernel}, Debian ${v.debian}; shared with other work, so absolute rates are noisy: quote the ratios.`);
  out.push(`- mailfront ${v.mailfront} (${meta.builds.length ? 'several builds, see below' : buildId().split(', ')[1]}), Node ${v.node} (OpenSSL ${v.nodeOpenssl} inside Node), \`workers: 1\`, log level warn, default TLS settings.`);
  if (PEERS.includes('mailfront@24') && v.node24)
    out.push(`- mailfront@24: the same dist/ and build/Release addon (built against Node ${v.node}'s headers; Node-API), run by Node ${v.node24.node} ` +
      `(OpenSSL ${v.node24.openssl} inside Node; pinned, from \`bash scripts/node-runtime.sh 24\`), same config; ` +
      `tls.groups ${args['mailfront24-groups'] ? `set to \`${args['mailfront24-groups']}\` (--mailfront24-groups)` : 'not set (mailfront\'s default)'}.`);
  out.push(`- ${v.haproxy}; ${v.stunnel}; ${v.nginx}; Debian libssl3 ${v.libssl3}.`);
  if (meta.load) out.push(`- Machine load: ${meta.load}`);
  out.push(`- Crypto calibration: ${v.speed}; BENCHMARKS.md's machine did 26,066 and 17,337/s, so absolute rates here are not comparable with its table, ratios are.`);
  out.push(`- Method: /work/shared/BENCHMARKS.md. Proxy pinned to CPU 0, bench/loadgen + bench/backend to CPU 1, 127.0.0.1 only. ` +
    `Rates are divided by the proxy's CPU time (utime+stime of the whole process from /proc/PID/stat, before/after each run). ` +
    `${P.reps} repetition(s), peers interleaved (each repetition: each peer started fresh, every scenario); median (min-max).`);
  out.push(`- Client: TLS 1.3 only, X25519 only, OpenSSL's default client cipher order, SNI rotating over ${NAMES} names, each leaf checked against the SNI (X509_check_host); ` +
    `every peer start is also checked with full chain verification (200 handshakes). full/resumed: 32 concurrent, ${P.hsSeconds} s, read the greeting through the proxy, close_notify, close. ` +
    `resumed: each ticket used once, the newest per name (RFC 8446 C.4); "ticket reused": the client keeps resuming with a name's newest ticket until a newer one arrives. ` +
    `bulk: 4 connections writing 16 KiB records for ${P.bulkSeconds} s to a discarding backend. RTT: one connection, ${P.rttCount} \`aNNN NOOP\` round trips.` +
    (CPU_SCENARIOS.includes('full-hybrid') ? ` full-hybrid (peers whose OpenSSL has ML-KEM): see its section; its client is loadgen on Node 24's OpenSSL.` : ''));
  out.push('');
  out.push('## Per proxy CPU-second', '');
  out.push('| peer | full hs / CPU-s | resumed hs / CPU-s | resumed, ticket reused / CPU-s | bulk MB / CPU-s | RTT p50 µs | RTT p99 µs | KiB per idle conn |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  const idleN = P.idleConns[0];
  for (const name of PEERS) {
    const r = results[name] ?? {};
    const im = idle[`${name}:${idleN}`];
    out.push(`| ${peers[name].label} | ${cell(r.full)} | ${cell(r.resumed)} | ${cell(r.reuse)} | ${cell(r.bulk)} | ${cell(r.rtt, 'value', 1)} | ${cell(r.rtt, 'p99', 1)} | ${im ? fmt(im.value, 1) : '–'} |`);
  }
  out.push('');
  if (PEERS.includes('mailfront@24')) out.push(...runtimeSection(results, v));
  if (CPU_SCENARIOS.includes('full-hybrid')) out.push(...hybridSection(results, v));
  const competitors = PEERS.filter((p) => !isMailfront(p));
  if (PEERS.includes('mailfront') && competitors.length) {
    out.push('## mailfront relative to each peer (medians)', '');
    out.push('Per CPU-second columns: mailfront ÷ peer (above 1 = mailfront does more per CPU-second). RTT and memory: mailfront ÷ peer (below 1 = mailfront is lower, i.e. better).', '');
    out.push('| vs | full hs | resumed hs | resumed, ticket reused | bulk | RTT p50 | RTT p99 | KiB per idle conn |');
    out.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
    const m = results.mailfront ?? {};
    const mi = idle[`mailfront:${idleN}`];
    for (const name of competitors) {
      const r = results[name] ?? {};
      const pi = idle[`${name}:${idleN}`];
      const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b ? `${fmt(a / b, 2)}×` : '–');
      out.push(`| ${name} | ${ratio(med(m.full), med(r.full))} | ${ratio(med(m.resumed), med(r.resumed))} | ${ratio(med(m.reuse), med(r.reuse))} | ${ratio(med(m.bulk), med(r.bulk))} | ` +
        `${ratio(med(m.rtt), med(r.rtt))} | ${ratio(med(m.rtt, 'p99'), med(r.rtt, 'p99'))} | ${ratio(mi?.value, pi?.value)} |`);
    }
    out.push('');
  }
  if (PEERS.includes('mailfront')) {
    const m = results.mailfront ?? {};
    const h = results.haproxy ?? {};
    const mi = idle[`mailfront:${idleN}`];
    const rows = [];
    const verdict = (ok) => (ok === undefined ? 'not measured' : ok ? '**met**' : '**NOT met**');
    const r2 = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b ? a / b : NaN);
    const chk = (v, pred) => (Number.isFinite(v) ? pred(v) : undefined);
    const full = r2(med(m.full), med(h.full));
    rows.push(['full handshakes ≥ 1.3× HAProxy per CPU-s', `${fmt(full, 2)}×`, verdict(chk(full, (x) => x >= 1.3))]);
    const res = r2(med(m.resumed), med(h.resumed));
    const share = m.resumed?.length ? Math.min(...m.resumed.map((x) => x.resumedShare)) : NaN;
    rows.push(['resumed handshakes ≥ 1.2× HAProxy per CPU-s, with ≥ 95% resumed', `${fmt(res, 2)}×, ${fmt(share * 100, 1)}% resumed (lowest run)`,
      verdict(chk(res, (x) => x >= 1.2 && share >= 0.95))]);
    const bulk = r2(med(m.bulk), med(h.bulk));
    rows.push(['bulk ≥ 1.1× HAProxy per CPU-s', `${fmt(bulk, 2)}×`, verdict(chk(bulk, (x) => x >= 1.1))]);
    const others = competitors.map((p) => [p, med(results[p]?.rtt, 'p99')]).filter(([, v]) => Number.isFinite(v));
    const best = others.sort((a, b) => a[1] - b[1])[0];
    const mp99 = med(m.rtt, 'p99');
    rows.push(['RTT p99 no worse than the best peer', best ? `${fmt(mp99, 1)} µs vs ${best[0]} ${fmt(best[1], 1)} µs` : '–',
      verdict(best ? chk(mp99, (x) => x <= best[1]) : undefined)]);
    rows.push([`idle memory ≤ 14 KiB per connection (${fmt(idleN)} idle)`, mi ? `${fmt(mi.value, 1)} KiB` : '–', verdict(mi ? chk(mi.value, (x) => x <= 14) : undefined)]);
    out.push('## Targets', '');
    out.push('| target | this run (medians) | |', '| --- | --- | --- |');
    for (const r of rows) out.push(`| ${r.join(' | ')} |`);
    out.push('');
  }
  out.push('## Details', '');
  out.push('Raw rates are the client core\'s limit as much as the proxy\'s (one OpenSSL client core does about 600 full handshakes/s); they are shown only to judge load and noise.', '');
  out.push('| peer | full hs/s raw | resumed hs/s raw | resumed share | resumed share, ticket reused | bulk MB/s raw | proxy CPU in full run (s) | failures (all runs) | cipher negotiated | group negotiated (full) |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const name of PEERS) {
    const r = results[name] ?? {};
    const all = Object.values(r).flat();
    const fails = all.reduce((s, x) => s + (x.failures ?? 0), 0);
    const cipher = [...new Set(all.map((x) => x.cipher).filter(Boolean))].join(', ');
    const group = [...new Set((r.full ?? []).map((x) => x.group).filter(Boolean))].join(', ');
    out.push(`| ${name} | ${cell(r.full, 'raw')} | ${cell(r.resumed, 'raw')} | ${cell(r.resumed, 'resumedShare', 2)} | ${cell(r.reuse, 'resumedShare', 2)} | ${cell(r.bulk, 'raw')} | ${cell(r.full, 'cpu', 2)} | ${fails} | ${cipher || '–'} | ${group || '–'} |`);
  }
  out.push('');
  const partial = PEERS.filter((n) => Number.isFinite(med(results[n]?.resumed, 'resumedShare')) && med(results[n]?.resumed, 'resumedShare') < 0.9);
  if (partial.length)
    out.push(`Resumed share below 1 (${partial.join(', ')}): the client uses each ticket once (RFC 8446 C.4) and keeps the newest per name; ` +
      'a server that issues no new ticket on a resumed handshake makes every other connection a full handshake, so that peer\'s "resumed" figure is a mix of full and resumed handshakes.', '');
  out.push('RTT p99 on this shared machine swings between runs for every peer (about 0.13 ms to 4 ms: scheduler ticks, other tenants); compare p50, and p99 only across repeated runs.', '');
  if (Object.keys(idle).length) {
    out.push('### Idle memory', '');
    out.push('Fresh proxy, 200 verified + 300 warm-up handshakes, RSS sampled, then N connections that completed the handshake (and read the greeting) held idle, RSS sampled again.', '');
    out.push('| peer | N | established | RSS before KiB | RSS with N KiB | KiB per conn | failures |');
    out.push('| --- | --- | --- | --- | --- | --- | --- |');
    for (const [k, im] of Object.entries(idle))
      out.push(`| ${k.split(':')[0]} | ${fmt(im.n)} | ${fmt(im.established)} | ${fmt(im.before)} | ${fmt(im.after)} | ${fmt(im.value, 1)} | ${im.failures}${im.failures ? ` ${JSON.stringify(im.errors)}` : ''} |`);
    out.push('');
  }
  if (reload) {
    out.push('### Reload under load (mailfront)', '');
    out.push(`New connections at ${P.reloadRate}/s for ${P.reloadSeconds} s (full handshake + greeting each), ${P.reloads} SIGHUPs spread over the run, log level info.`, '');
    out.push(`- connections attempted ${reload.attempted}, completed ${reload.ok}, **failed ${reload.failures}**${reload.failures ? ` (${JSON.stringify(reload.kinds)} ${JSON.stringify(reload.errors)})` : ''}`);
    out.push(`- SIGHUPs sent ${reload.sighups}; "reloaded" log lines ${reload.reloaded} (reloads that overlap coalesce); failed reloads ${reload.failedReloads}`);
    out.push('');
  }
  const errs = [];
  for (const name of PEERS) for (const [s, runs] of Object.entries(results[name] ?? {})) for (const r of runs) if (r.failures) errs.push(`- ${name} ${s}: ${r.failures} failures ${JSON.stringify(r.errors)}`);
  for (const e of meta.errors) errs.push(`- ${e}`);
  if (meta.builds.length > 1) errs.push(`- **mailfront was rebuilt during the run**: its figures mix builds (${meta.builds.join('; ')}); rerun for clean figures.`);
  if (errs.length) out.push('### Failures and errors', '', ...errs, '');
  out.push('Raw per-run figures: bench/work/results.json (not committed).', '');
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function profile(spec) {
  const [name, scen = 'full'] = spec.split(':');
  const peer = await startPeer(name);
  children.add(peer.child);
  const data = path.join(WORK, `perf-${name}-${scen}.data`);
  const rep = path.join(WORK, `perf-${name}-${scen}.txt`);
  let perf;
  const r = await scenarios[scen](peer, async () => {
    perf = spawn('perf', ['record', '-F', '999', '-g', '-o', data, '-p', String(peer.pid)], { stdio: ['ignore', 'ignore', 'ignore'] });
    await sleep(500);
  });
  perf.kill('SIGINT');
  await new Promise((res) => perf.once('exit', res));
  await stop(peer.child);
  children.delete(peer.child);
  const flat = sh('perf', ['report', '-i', data, '--no-children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '0.5']);
  const dso = sh('perf', ['report', '-i', data, '--no-children', '--sort', 'dso', '--stdio', '-g', 'none', '--percent-limit', '0.5']);
  const tree = sh('perf', ['report', '-i', data, '--children', '--sort', 'sym', '--stdio', '-g', 'caller,0.5,callee', '--percent-limit', '3']);
  fs.writeFileSync(rep, `# ${name} ${scen}: ${JSON.stringify(r)}\n\n## by dso\n${dso}\n\n## self, by symbol\n${flat}\n\n## with children\n${tree}\n`);
  log(`${name} ${scen}: ${fmt(r.value)} per CPU-s; profile in ${rep}`);
}

async function straceCount(name) {
  const peer = await startPeer(name);
  children.add(peer.child);
  const rep = path.join(WORK, `strace-${name}.txt`);
  const st = spawn('strace', ['-c', '-f', '-o', rep, '-p', String(peer.pid)], { stdio: 'ignore' });
  await sleep(1000);
  const n = 2000;
  const r = await loadgen(['--port', peer.port, '--mode', 'full', '-c', 32, '-n', n, '-t', 60]);
  await sleep(500);
  st.kill('SIGINT');
  await new Promise((res) => st.once('exit', res));
  await stop(peer.child);
  children.delete(peer.child);
  const text = fs.readFileSync(rep, 'utf8');
  const rows = text.split('\n').filter((l) => /^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+/.test(l) && !/ total\s*$/.test(l)).map((l) => {
    const f = l.trim().split(/\s+/);
    return { calls: Number(f[3]), errors: /^\d+$/.test(f[4]) && f.length > 5 ? Number(f[4]) : 0, name: f[f.length - 1] };
  });
  const total = rows.reduce((a, x) => a + x.calls, 0);
  const per = rows.sort((a, b) => b.calls - a.calls).map((x) => `${x.name} ${(x.calls / r.ok).toFixed(2)}`).join(', ');
  fs.appendFileSync(rep, `\n# ${r.ok} connections (SIGHUP-free full handshakes + greeting): ${(total / r.ok).toFixed(1)} syscalls per connection: ${per}\n`);
  log(`${name}: ${(total / r.ok).toFixed(1)} syscalls per connection: ${per}`);
}

// Other work on the machine: every 10 s, CPU used by processes that are not this bench's (nor its children).
function procSnapshot() {
  const snap = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const t = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = t.slice(t.indexOf('(') + 1, t.lastIndexOf(')'));
      const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
      snap.set(Number(d), { comm, ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK });
    } catch {}
  }
  return snap;
}
const busy = { samples: 0, busySamples: 0, maxPct: 0, sumPct: 0, names: new Map(), timer: null, prev: null, prevT: 0 };
function sampleBusy() {
  const snap = procSnapshot();
  const t = Date.now();
  if (busy.prev) {
    const ours = (pid) => { for (let p = pid, i = 0; p > 1 && i < 50; i++) { if (p === process.pid) return true; p = snap.get(p)?.ppid ?? busy.prev.get(p)?.ppid ?? 0; } return false; };
    let other = 0;
    const by = new Map();
    for (const [pid, x] of snap) {
      if (ours(pid)) continue;
      const d = x.cpu - (busy.prev.get(pid)?.cpu ?? (x.ppid && busy.prev.has(pid) ? x.cpu : 0));
      if (d <= 0) continue;
      other += d;
      by.set(x.comm, (by.get(x.comm) ?? 0) + d);
    }
    const pct = (other / ((t - busy.prevT) / 1000)) * 100; // % of one CPU
    busy.samples++;
    busy.sumPct += pct;
    busy.maxPct = Math.max(busy.maxPct, pct);
    if (pct >= 20) busy.busySamples++;
    for (const [k, v] of by) busy.names.set(k, (busy.names.get(k) ?? 0) + v);
  }
  busy.prev = snap;
  busy.prevT = t;
}
function busySummary() {
  if (!busy.samples) return undefined;
  const top = [...busy.names].filter(([, v]) => v >= 1).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ');
  const avg = busy.sumPct / busy.samples;
  return `other processes (not this bench) used on average ${avg.toFixed(0)}% of one CPU, at most ${busy.maxPct.toFixed(0)}% over a 10 s sample; ` +
    `${busy.busySamples} of ${busy.samples} samples at ≥ 20%${busy.busySamples ? ' — **the machine was visibly busy with other work during part of the run**' : ' (quiet)'}; top: ${top || 'none'}.`;
}

const children = new Set();
async function main() {
  sampleBusy();
  busy.timer = setInterval(sampleBusy, 10000);
  busy.timer.unref();
  const t0 = Date.now();
  log(`building bench/loadgen and bench/backend; ${QUICK ? 'QUICK smoke run' : 'full run'}; peers ${PEERS.join(', ')}; scenarios ${[...SCEN].join(', ')}`);
  execFileSync('make', ['-s', '-C', BENCH], { stdio: 'inherit' });
  // Node 24: mailfront@24 needs its node; full-hybrid also needs loadgen built against its OpenSSL 3.5.
  const wants24 = PEERS.some((p) => p.endsWith('@24')) || (args.profile ?? '').includes('@24');
  if (wants24 && !node24()) throw new Error('mailfront@24 needs Node 24: bash scripts/node-runtime.sh 24 failed (see above)');
  if (wants24 && (SCEN.has('full-hybrid') || (args.profile ?? '').includes('full-hybrid')))
    execFileSync('make', ['-s', '-C', BENCH, `NODE24=${node24()}`, 'work/bin/loadgen-node24.node'], { stdio: 'inherit' });
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js')) || !fs.readdirSync(path.join(ROOT, 'build', 'Release')).some((f) => f.endsWith('.node')))
    throw new Error('mailfront is not built: npx node-gyp rebuild -j 2 && npx tsc -p tsconfig.json');
  await ensurePki();
  const echo = start('backend-echo', 1, path.join(BIN, 'backend'), ['--port', BACKEND_ECHO, '--max-seconds', 1800]);
  const sink = start('backend-sink', 1, path.join(BIN, 'backend'), ['--port', BACKEND_SINK, '--discard', '--max-seconds', 1800]);
  children.add(echo).add(sink);
  await Promise.all([waitPort(BACKEND_ECHO), waitPort(BACKEND_SINK)]);
  if (args.profile || args.strace) {
    for (const spec of (args.profile ?? '').split(',').filter(Boolean)) await profile(spec);
    for (const name of (args.strace ?? '').split(',').filter(Boolean)) await straceCount(name);
    for (const c of children) await stop(c);
    return;
  }

  const command = `${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const nowUtc = () => new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  // Fleet and certificate store: their own sections; a run of only those replaces just their sections in --out.
  const ownSections = ['fleet', 'store'];
  const onlyOwn = [...SCEN].every((x) => ownSections.includes(x));
  let fleetMd;
  if (SCEN.has('fleet')) {
    const fleetErrors = [];
    const fleet = await fleetBench(fleetErrors);
    fleetMd = fleetSection(fleet, command, nowUtc()) + (fleetErrors.length ? `\n### Fleet errors\n\n${fleetErrors.map((e) => `- ${e}`).join('\n')}\n` : '');
    fs.writeFileSync(path.join(WORK, 'results-fleet.json'), JSON.stringify(fleet, null, 1));
    if (onlyOwn) {
      replaceSection(args.out, SECTION_FLEET, fleetMd);
      console.log(fleetMd);
      log(`wrote the "${SECTION_FLEET}" section of ${args.out}`);
    }
  }
  // Certificate store (bench/cert-store.mjs): its own section; alone, it only replaces that section in --out.
  let storeMd;
  if (SCEN.has('store')) {
    const { runStore, section, writeSection } = await import('./cert-store.mjs');
    const res = await runStore({ reps: P.reps, reloads: QUICK ? 1 : 3 });
    storeMd = section(res, `${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`);
    if (onlyOwn) {
      for (const c of children) await stop(c);
      writeSection(args.out, storeMd);
      console.log(storeMd);
      log(`wrote the "${SECTION_STORE}" section of ${args.out} in ${((Date.now() - t0) / 60000).toFixed(1)} min`);
      return;
    }
  }
  if (onlyOwn) {
    for (const c of children) await stop(c);
    return;
  }

  const results = {};
  const idle = {};
  const errors = [];
  let reload;
  for (let rep = 0; rep < P.reps && CPU_SCENARIOS.length; rep++) {
    const order = PEERS.map((_, i) => PEERS[(i + rep) % PEERS.length]);
    for (const name of order) {
      let peer;
      try {
        peer = await startPeer(name);
        children.add(peer.child);
        for (const s of CPU_SCENARIOS) {
          if (scenarios[s].applies && !scenarios[s].applies(name)) continue;
          const r = await scenarios[s](peer);
          ((results[name] ??= {})[s] ??= []).push(r);
          const what = s === 'rtt' ? `p50 ${fmt(r.value, 1)} µs p99 ${fmt(r.p99, 1)} µs`
            : s === 'full-hybrid' ? `${HYBRID} ${fmt(r.value)} per CPU-s (${fmt(r.usPerHs)} µs/hs, raw ${fmt(r.raw)}/s, negotiated ${JSON.stringify(r.negotiated)}), ` +
              `${CLASSICAL} ${fmt(r.classical)} per CPU-s (${fmt(r.classicalUsPerHs)} µs/hs, raw ${fmt(r.classicalRaw)}/s); ratio ${fmt(r.ratio, 2)}, +${fmt(r.extraUs)} µs`
            : `${fmt(r.value)} per CPU-s (raw ${fmt(r.raw)}/s, cpu ${r.cpu.toFixed(2)} s)`;
          log(`rep ${rep + 1}/${P.reps} ${name.padEnd(12)} ${s.padEnd(7)} ${what}${r.failures ? ` FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''}`);
        }
      } catch (e) {
        errors.push(`rep ${rep + 1} ${name}: ${e.message}`);
        log(`ERROR ${name}: ${e.message}`);
      } finally {
        if (peer) { await stop(peer.child); children.delete(peer.child); }
      }
    }
  }
  if (SCEN.has('idle'))
    for (const n of P.idleConns)
      for (const name of PEERS) {
        try {
          const r = await idleMemory(name, n);
          idle[`${name}:${n}`] = r;
          log(`idle ${name.padEnd(9)} ${n}: ${fmt(r.value, 1)} KiB/conn (RSS ${r.before} -> ${r.after} KiB, ${r.established} established${r.failures ? `, FAILURES ${r.failures} ${JSON.stringify(r.errors)}` : ''})`);
        } catch (e) {
          errors.push(`idle ${name} ${n}: ${e.message}`);
          log(`ERROR idle ${name}: ${e.message}`);
        }
      }
  if (SCEN.has('reload') && PEERS.includes('mailfront')) {
    try {
      reload = await reloadUnderLoad();
      log(`reload: ${reload.failures} failed of ${reload.attempted}; ${reload.sighups} SIGHUPs, ${reload.reloaded} reloads logged`);
    } catch (e) {
      errors.push(`reload: ${e.message}`);
      log(`ERROR reload: ${e.message}`);
    }
  }
  for (const c of children) await stop(c);
  clearInterval(busy.timer);
  sampleBusy();
  const meta = {
    load: busySummary(),
    command: `${QUICK ? 'BENCH_QUICK=1 ' : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    minutes: (Date.now() - t0) / 60000,
    errors,
    builds: [...new Set([...builds].map((b) => b.split('|')[0]))].length > 1 ? [...builds].map((b) => b.split('|')[1]) : [],
  };
  fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ P, results, idle, reload, meta }, null, 1));
  const md = report(results, idle, reload, meta) + (fleetMd ? `\n${fleetMd}\n` : '') + (storeMd ? `\n${storeMd}\n` : '');
  fs.writeFileSync(args.out, md);
  console.log(md);
  log(`wrote ${args.out} in ${meta.minutes.toFixed(1)} min`);
}

const cleanup = () => { for (const c of children) try { c.kill('SIGKILL'); } catch {} };
process.on('SIGINT', () => { cleanup(); process.exit(130); });
process.on('SIGTERM', () => { cleanup(); process.exit(143); });
main().catch((e) => { console.error(e); cleanup(); process.exit(1); });
