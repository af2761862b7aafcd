// Full handshakes with the hybrid post-quantum group: the load generator on Node 24's OpenSSL 3.5
// offers X25519MLKEM768 only, and, on the same proxy process in the same repetition, X25519 only (the
// same client otherwise), so the difference is the key exchange alone. Order alternates between
// repetitions. Every handshake must negotiate the offered group (loadgen's check): a hybrid run with
// any failure gives no figure. value: hybrid full hs per proxy CPU-second; classical: the X25519 one.
import { P } from '../lib/config.mjs';
import { peers } from '../lib/peers.mjs';
import { cpuRun } from './cpu-run.mjs';

export const HYBRID = 'X25519MLKEM768';
export const CLASSICAL = 'X25519';
let turn = 0;

/** Peers whose TLS library has ML-KEM. */
export const appliesTo = (name) => Boolean(peers[name]?.hybrid);

export default async function fullHybrid(peer, hook) {
  const one = async (group, h) => {
    const r = await cpuRun(peer, ['--port', peer.port, '--mode', 'full', '-c', 32, '-t', P.hsSeconds, '--groups', group], h, { client: 'node24' });
    return { value: r.failures ? NaN : r.ok / r.cpu, ok: r.ok, raw: r.rate, cpu: r.cpu, failures: r.failures, group: r.group, cipher: r.cipher, negotiated: r.groups_negotiated, errors: r.first_errors, openssl: r.openssl };
  };
  const first = turn++ % 2 === 0 ? HYBRID : CLASSICAL;
  const runs = {};
  for (const g of first === HYBRID ? [HYBRID, CLASSICAL] : [CLASSICAL, HYBRID]) runs[g] = await one(g, g === HYBRID ? hook : undefined);
  const h = runs[HYBRID], c = runs[CLASSICAL];
  return {
    value: h.value, classical: c.value, raw: h.raw, classicalRaw: c.raw, cpu: h.cpu, classicalCpu: c.cpu, first,
    usPerHs: 1e6 / h.value, classicalUsPerHs: 1e6 / c.value, ratio: h.value / c.value, extraUs: 1e6 / h.value - 1e6 / c.value,
    failures: h.failures + c.failures, hybridFailures: h.failures, classicalFailures: c.failures, cipher: h.cipher,
    group: h.group, classicalGroup: c.group, negotiated: h.negotiated, classicalNegotiated: c.negotiated, clientOpenssl: h.openssl,
    errors: { ...(h.failures ? { [HYBRID]: h.errors } : {}), ...(c.failures ? { [CLASSICAL]: c.errors } : {}) },
  };
}
