// What the report says about the machine and the software under test.
import fs from 'node:fs';
import os from 'node:os';
import { ROOT } from './config.mjs';
import { node24, node24Versions } from './node24.mjs';
import { haproxy34Bin } from './peers.mjs';
import { sh } from './procs.mjs';
import { fmt } from './stats.mjs';

export function versions(peerNames) {
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
    haproxy34: peerNames.includes('haproxy-3.4-awslc')
      ? `${sh(haproxy34Bin(), ['-v']).split('\n')[0]}, ${(sh(haproxy34Bin(), ['-vv']).match(/Running on SSL library version : (.*)/) ?? [])[1] ?? '?'} (${haproxy34Bin()})`
      : undefined,
    stunnel: peerNames.includes('stunnel') ? sh('stunnel4', ['-version']).split('\n').find((l) => l.startsWith('stunnel')) ?? '?' : undefined,
    nginx: peerNames.includes('nginx') ? sh('nginx', ['-v']) : undefined,
    speed: (() => {
      const o = sh('taskset', ['-c', '0', 'openssl', 'speed', '-seconds', '1', 'ecdsap256', 'ecdhx25519']);
      const sign = (o.match(/nistp256\)\s+\S+\s+\S+\s+([\d.]+)/) ?? [])[1];
      const x = (o.match(/X25519\)\s+\S+\s+([\d.]+)/) ?? [])[1];
      return `ECDSA P-256 sign ${fmt(Number(sign))}/s, X25519 ${fmt(Number(x))}/s (Debian's openssl speed, CPU 0)`;
    })(),
    node24: peerNames.includes('mailfront@24') && node24() ? node24Versions() : undefined,
    mailfront: `${sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'native', 'src']) ? ' (+ uncommitted native/src changes)' : ''}`,
  };
}
