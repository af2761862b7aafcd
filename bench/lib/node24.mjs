// A second runtime for mailfront: Node 24 (OpenSSL 3.5, X25519MLKEM768), pinned and unpacked under
// .runtimes/ by scripts/node-runtime.sh (from the npm registry, once).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, log } from './config.mjs';

let dir;
/** Node 24's folder, or null when it cannot be had. */
export function node24() {
  if (dir !== undefined) return dir;
  try {
    dir = execFileSync('bash', [path.join(ROOT, 'scripts', 'node-runtime.sh'), '24'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop();
    if (!fs.existsSync(path.join(dir, 'bin', 'node'))) throw new Error(`no bin/node in ${dir}`);
  } catch (e) {
    log(`no Node 24 runtime (scripts/node-runtime.sh 24: ${e.message.split('\n')[0]}): mailfront@24 and full-hybrid left out`);
    dir = null;
  }
  return dir;
}

export const node24Bin = () => path.join(node24(), 'bin', 'node');

let versions;
/** { node, openssl } of the Node 24 runtime. */
export const node24Versions = () => (versions ??= JSON.parse(execFileSync(node24Bin(), ['-p', 'JSON.stringify({ node: process.version, openssl: process.versions.openssl })'], { encoding: 'utf8' })));
