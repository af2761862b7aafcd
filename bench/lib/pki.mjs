// The throwaway PKI every peer serves: a root, an intermediate and NAMES ECDSA P-256 leaves, as a
// Let's Encrypt tree (mailfront) and as combined PEM files (the other peers). Made once, cached.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NAMES, PKI, ROOT, log, nameOf } from './config.mjs';

export const pems = () => path.join(PKI, 'pems');
export const pemOf = (i) => path.join(pems(), `${nameOf(i)}.pem`);
export const rootPem = () => path.join(PKI, 'ca.pem');
export const letsEncryptDir = () => path.join(PKI, 'letsencrypt');

export async function ensurePki() {
  const marker = path.join(PKI, 'done');
  if (fs.existsSync(marker) && fs.existsSync(rootPem())) return; // rootPem: this layout, not an older cache's
  log(`making a throwaway CA and ${NAMES} ECDSA P-256 certificates in ${PKI} (once, cached)`);
  fs.rmSync(PKI, { recursive: true, force: true });
  // The demo's certificate maker (openssl CLI, certbot's layout): one lineage per name.
  const lineages = Array.from({ length: NAMES }, (_, i) => `${nameOf(i)}=${nameOf(i)}`);
  execFileSync('bash', [path.join(ROOT, 'scripts', 'demo-certs.sh'), PKI, ...lineages], { stdio: ['ignore', 'ignore', 'inherit'] });
  fs.mkdirSync(pems(), { recursive: true });
  for (let i = 0; i < NAMES; i++) {
    const archive = path.join(letsEncryptDir(), 'archive', nameOf(i));
    const combined = ['fullchain1.pem', 'privkey1.pem'].map((f) => fs.readFileSync(path.join(archive, f), 'utf8')).join('');
    fs.writeFileSync(pemOf(i), combined, { mode: 0o600 });
  }
  fs.writeFileSync(marker, new Date().toISOString() + '\n');
}
