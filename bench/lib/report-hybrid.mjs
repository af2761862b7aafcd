// The report section of the full-hybrid scenario.
import { NAMES, P } from './config.mjs';
import { CLASSICAL, HYBRID, appliesTo } from '../scenarios/full-hybrid.mjs';
import { cell, fmt, med } from './stats.mjs';

const ratioTxt = (a, b, d = 2) => (Number.isFinite(a) && Number.isFinite(b) && b ? `${fmt(a / b, d)}×` : '–');

/** full-hybrid: X25519MLKEM768 against X25519, same proxy process, same client, same repetition. */
export function hybridSection(results, v, peerNames) {
  const out = [`## Hybrid post-quantum key exchange (${HYBRID}) on a full handshake`, ''];
  const names = peerNames.filter(appliesTo);
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
    const full = med(results[n]?.full);
    const vsHaproxy = [['haproxy', 'HAProxy 2.6'], ['haproxy-3.4-awslc', 'HAProxy 3.4 + AWS-LC']].map(([p, label]) => [label, med(results[p]?.full)]).filter(([, v]) => Number.isFinite(v));
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
      vsHaproxy.map(([label, hap]) => ` ${HYBRID} ÷ ${label}'s (classical X25519) full: ${ratioTxt(med(r), hap)}; ${CLASSICAL} (this client) ÷ ${label}: ${ratioTxt(med(r, 'classical'), hap)}.`).join(''));
  }
  out.push('');
  return out;
}
