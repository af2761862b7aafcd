// The throwaway PKI every peer serves: a root, an intermediate and NAMES ECDSA P-256 leaves, as a
// Let's Encrypt tree (mailfront) and as combined PEM files (the other peers). Made once, cached.
import fs from 'node:fs';
import path from 'node:path';
import { NAMES, PKI, ROOT, log, nameOf } from './config.mjs';

export const pems = () => path.join(PKI, 'pems');
export const pemOf = (i) => path.join(pems(), `${nameOf(i)}.pem`);
export const rootPem = () => path.join(PKI, 'ca', 'root.pem');
export const letsEncryptDir = () => path.join(PKI, 'le');

export async function ensurePki() {
  const marker = path.join(PKI, 'done');
  if (fs.existsSync(marker)) return;
  log(`making a throwaway CA and ${NAMES} ECDSA P-256 certificates in ${PKI} (once, cached)`);
  fs.rmSync(PKI, { recursive: true, force: true });
  const { makeCA, issue, makeLetsEncryptTree } = await import(path.join(ROOT, 'dist', 'pki.js'));
  const ca = makeCA(path.join(PKI, 'ca'), { name: 'mailfront bench' });
  const lineages = {};
  fs.mkdirSync(pems(), { recursive: true });
  for (let i = 0; i < NAMES; i++) {
    const name = nameOf(i);
    const leaf = issue(ca, { names: [name], dir: path.join(PKI, 'leaves', name) });
    lineages[name] = leaf;
    fs.writeFileSync(pemOf(i), leaf.combinedPem, { mode: 0o600 });
  }
  makeLetsEncryptTree(letsEncryptDir(), lineages);
  fs.writeFileSync(marker, new Date().toISOString() + '\n');
}
