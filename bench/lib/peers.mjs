// The proxies under test: how each is configured and started, and startPeer(), which checks a fresh
// peer's certificates and never leaves it running when that check (or its start) fails.
import fs from 'node:fs';
import path from 'node:path';
import { BACKEND_ECHO, BACKEND_SINK, BENCH, CONF, LOGS, NAMES, PORTS, ROOT, args, nameOf } from './config.mjs';
import { loadgen } from './loadgen.mjs';
import { node24, node24Bin, node24Versions } from './node24.mjs';
import { letsEncryptDir, pemOf, pems, rootPem } from './pki.mjs';
import { assertPortFree, sh, start, stop, waitPort } from './procs.mjs';

export const isMailfront = (name) => name === 'mailfront' || name === 'mailfront-noauth' || name.startsWith('mailfront@');
export const haproxy34Bin = () => path.join(args['peers-dir'], 'haproxy-3.4-awslc');
const haproxy34Present = () => fs.existsSync(haproxy34Bin());

/** Default peers: mailfront on Node 20 and 24, Debian's HAProxy 2.6, HAProxy 3.4 + AWS-LC when present. */
export const defaultPeers = () => ['mailfront', ...(node24() ? ['mailfront@24'] : []), 'haproxy', ...(haproxy34Present() ? ['haproxy-3.4-awslc'] : [])];

/**
 * mailfront run by `nodeBin` (the same dist/ and build/Release addon for every runtime).
 * start options: instance (config and log name), ticketKeys (tls.ticket_keys FILE), workers (default 1),
 * cpus (taskset list, default 0), logLevel. groups: tls.groups, written only when given (mailfront@24:
 * --mailfront24-groups); by default mailfront's own default applies (on OpenSSL 3.5 X25519MLKEM768 first).
 */
function mailfrontPeer(label, nodeBin, defaultInstance, extra = {}) {
  return {
    get label() { return typeof label === 'function' ? label() : label; },
    ...extra,
    start(port, { logLevel = 'warn', instance = defaultInstance, ticketKeys, workers = 1, cpus = 0 } = {}) {
      const cfg = path.join(CONF, `${instance}.yaml`);
      fs.writeFileSync(cfg, [
        'certificates:',
        `  letsencrypt: [${letsEncryptDir()}]`,
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
        `workers: ${workers}`,
        'metrics: false',
        `log: {level: ${logLevel}}`,
        '',
      ].join('\n'));
      return start(instance, cpus, nodeBin(), [path.join(ROOT, 'dist', 'cli.js'), 'run', '--config', cfg]);
    },
  };
}

/** HAProxy `mode tcp`, a crt directory, nbthread 1: the same config for Debian's 2.6 and 3.4 + AWS-LC. */
function haproxyPeer(label, name, bin) {
  return {
    label,
    bin,
    start(port) {
      const cfg = path.join(CONF, `${name}.cfg`);
      fs.writeFileSync(cfg, [
        'global', '  nbthread 1', '  maxconn 9800',
        'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 30m', '  timeout server 30m',
        'frontend fe_echo', `  bind 127.0.0.1:${port} ssl crt ${pems()}/`, '  default_backend be_echo',
        'frontend fe_sink', `  bind 127.0.0.1:${port + 1} ssl crt ${pems()}/`, '  default_backend be_sink',
        'backend be_echo', `  server s1 127.0.0.1:${BACKEND_ECHO}`,
        'backend be_sink', `  server s1 127.0.0.1:${BACKEND_SINK}`, '',
      ].join('\n'));
      return start(name, 0, bin(), ['-db', '-f', cfg]);
    },
  };
}

export const peers = {
  mailfront: mailfrontPeer(`mailfront (workers: 1; Node ${process.version}, OpenSSL ${process.versions.openssl})`, () => process.execPath, 'mailfront'),
  // The same with login tracking off (no login parsing, no ban table at accept): on/off in one run.
  'mailfront-noauth': mailfrontPeer(`mailfront, login tracking off (workers: 1; Node ${process.version})`, () => process.execPath, 'mailfront-noauth', { noauth: true }),
  // hybrid: the server's OpenSSL has X25519MLKEM768 (3.5), so the full-hybrid scenario applies.
  'mailfront@24': mailfrontPeer(() => `mailfront@24 (workers: 1; Node ${node24Versions().node}, OpenSSL ${node24Versions().openssl})`, node24Bin, 'mailfront-node24', { hybrid: true, groups: args['mailfront24-groups'] }),
  haproxy: haproxyPeer('HAProxy 2.6, Debian (OpenSSL 3.0; mode tcp, crt dir, nbthread 1)', 'haproxy', () => 'haproxy'),
  'haproxy-3.4-awslc': haproxyPeer('HAProxy 3.4 + AWS-LC 5.5 (mode tcp, crt dir, nbthread 1)', 'haproxy-3.4-awslc', haproxy34Bin),
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

/** Throws when a peer named in --peers cannot run here, naming why. */
export function checkPeers(names) {
  for (const n of names) {
    if (!peers[n]) throw new Error(`--peers: unknown peer "${n}"; known: ${Object.keys(peers).join(', ')}`);
    if (n.endsWith('@24') && !node24()) throw new Error(`${n} needs Node 24: bash scripts/node-runtime.sh 24 failed (see above)`);
    if (n === 'haproxy-3.4-awslc' && !haproxy34Present()) throw new Error(`${n}: no binary at ${haproxy34Bin()} (--peers-dir)`);
  }
}

// Another engineer may rebuild mailfront while the bench runs: note the build each mailfront start uses.
const ADDON = path.join(ROOT, 'build', 'Release', 'mailfront.node');
export const buildId = () => {
  try {
    const st = fs.statSync(ADDON);
    return `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}, addon built ${st.mtime.toISOString().slice(11, 19)} UTC`;
  } catch { return 'no addon'; }
};
export const builds = new Set();

/**
 * Starts peer `name` (opts: port, and the mailfront start options), waits for both ports, checks the
 * chain and the names once (200 handshakes with full verification against the root) and returns
 * { name, child, pid, port, check }. On any failure the peer is stopped before the error is thrown.
 */
export async function startPeer(name, opts) {
  const port = opts?.port ?? PORTS[opts?.instance] ?? PORTS[name];
  await Promise.all([assertPortFree(port), assertPortFree(port + 1)]);
  if (isMailfront(name)) builds.add(fs.statSync(ADDON).mtimeMs + '|' + buildId());
  const child = peers[name].start(port, opts);
  try {
    const exited = new Promise((_, rej) => child.once('exit', (c) => rej(new Error(`${name} exited (${c}) at start: see ${LOGS}`))));
    exited.catch(() => {});
    await Promise.race([Promise.all([waitPort(port), waitPort(port + 1)]), exited]);
    const check = await loadgen(['--port', port, '--mode', 'full', '-c', 8, '-n', 200, '-t', 20, '--ca', rootPem()]);
    if (check.failures > 0 || check.ok !== 200) throw new Error(`${name}: certificate check failed: ${JSON.stringify(check.first_errors)}`);
    return { name, child, pid: child.pid, port, check };
  } catch (e) {
    await stop(child);
    throw e;
  }
}

/** Runs fn(peer) on a freshly started peer and stops it afterwards, whatever happens. */
export async function withPeer(name, opts, fn) {
  const peer = await startPeer(name, opts);
  try { return await fn(peer); } finally { await stop(peer.child); }
}
