// The name index: group loaded certificates into contexts and map names to them.
//
// Rules (docs/certificates.md):
// 1. Grouping: a context is keyed by the certificate's sorted name list. Certificates with
//    exactly the same names share one context, one per key type (an ECDSA and an RSA
//    certificate for the same names -> one context with both; OpenSSL picks by the client's
//    signature algorithms). Same names and same key type: the usable one wins, then the one
//    that expires last (ties: first by path); the other is reported (info).
//    In a context with a usable certificate, expired ones are left out.
// 2. Names: each name (exact, or "*.suffix") goes to one context. Usable contexts first; among
//    them the one whose certificate expires last (ties: more key types, then first by path).
//    An exact name of an expired certificate is not indexed when a usable wildcard covers it.
//    A context that ends up with no name is dropped (info).
// 3. Expired (or not yet valid) certificates are served only for names nothing usable covers,
//    with a warning.
// 4. Default: the configured name (exact, then wildcard), else the context holding the first
//    loaded certificate (by path).
import { loadAddon, type NativeCertContext } from '../native.js';
import { MailfrontError } from '../errors.js';
import type { LoadedCert } from './parse.js';
import type { CertProblem, CertStore, CertSummary } from './types.js';
import { normalizeName, parentOf } from './names.js';

interface Group {
  key: string;
  names: string[];
  /** One per key type, after dedup. */
  certs: LoadedCert[];
  usable: boolean;
  /** Latest notAfter of its (kept) certificates, in ms. */
  expires: number;
  /** Smallest load order of its certificates. */
  order: number;
}

const KEY_TYPE_ORDER = ['ec', 'rsa', 'rsa-pss', 'ed25519', 'ed448'];
function keyTypeRank(t: string): number {
  const i = KEY_TYPE_ORDER.indexOf(t);
  return i < 0 ? KEY_TYPE_ORDER.length : i;
}

/** a better than b for the same names and key type: usable, then expires last, then first loaded. */
function betterCert(a: LoadedCert, b: LoadedCert): boolean {
  if (a.usable !== b.usable) return a.usable;
  const ea = a.summary.notAfter.getTime();
  const eb = b.summary.notAfter.getTime();
  if (ea !== eb) return ea > eb;
  // Same expiry (often the very same certificate, e.g. cert.pem and fullchain.pem): the fuller chain.
  if (a.chainLength !== b.chainLength) return a.chainLength > b.chainLength;
  return a.order < b.order;
}

function betterGroup(a: Group, b: Group): boolean {
  if (a.usable !== b.usable) return a.usable;
  if (a.expires !== b.expires) return a.expires > b.expires;
  if (a.certs.length !== b.certs.length) return a.certs.length > b.certs.length;
  return a.order < b.order;
}

function iso(d: Date): string {
  return d.toISOString().replace(/\.000Z$/, 'Z');
}

function validityText(c: LoadedCert, now: Date): string {
  return c.summary.notBefore.getTime() > now.getTime()
    ? `not valid before ${iso(c.summary.notBefore)}`
    : `expired on ${iso(c.summary.notAfter)}`;
}

export function buildStore(loaded: LoadedCert[], defaultName: string | undefined, problems: CertProblem[], now: Date): CertStore {
  // 1. Group by identical name sets, one certificate per key type.
  const byKey = new Map<string, Group>();
  for (const c of [...loaded].sort((a, b) => a.order - b.order)) {
    const names = [...c.summary.names].sort();
    const key = names.join(' ');
    let g = byKey.get(key);
    if (!g) {
      g = { key, names, certs: [], usable: false, expires: 0, order: c.order };
      byKey.set(key, g);
    }
    const same = g.certs.findIndex((o) => o.summary.keyType === c.summary.keyType);
    if (same < 0) {
      g.certs.push(c);
      continue;
    }
    const other = g.certs[same]!;
    const [keep, drop] = betterCert(c, other) ? [c, other] : [other, c];
    g.certs[same] = keep;
    const identical = keep.summary.fingerprint256 === drop.summary.fingerprint256;
    problems.push({
      level: 'info',
      path: drop.summary.path,
      message: identical
        ? `${drop.summary.path} is the same certificate as ${keep.summary.path}: loaded once`
        : `${drop.summary.path} (${drop.summary.keyType}, ${drop.usable ? `expires ${iso(drop.summary.notAfter)}` : validityText(drop, now)}) not used: ` +
          `${keep.summary.path} has the same names and key type and ${keep.usable && !drop.usable ? 'is valid' : `expires later (${iso(keep.summary.notAfter)})`}`,
    });
  }
  const groups = [...byKey.values()];
  for (const g of groups) {
    g.usable = g.certs.some((c) => c.usable);
    if (g.usable) {
      for (const c of g.certs.filter((x) => !x.usable)) {
        problems.push({
          level: 'warning',
          path: c.summary.path,
          message: `${c.summary.path} (${c.summary.keyType}) ${validityText(c, now)}: not used, a valid certificate covers the same names`,
        });
      }
      g.certs = g.certs.filter((c) => c.usable);
    }
    g.certs.sort((a, b) => keyTypeRank(a.summary.keyType) - keyTypeRank(b.summary.keyType) || a.order - b.order);
    g.expires = Math.max(...g.certs.map((c) => c.summary.notAfter.getTime()));
    g.order = Math.min(...g.certs.map((c) => c.order));
  }

  // 2. Assign every name to one group.
  const candidates = new Map<string, Group[]>();
  for (const g of groups) for (const n of g.names) candidates.set(n, [...(candidates.get(n) ?? []), g]);
  const usableWildcards = new Set<string>();
  for (const g of groups) if (g.usable) for (const n of g.names) if (n.startsWith('*.')) usableWildcards.add(n.slice(2));

  const assigned = new Map<string, Group>();
  const expiredServes = new Map<Group, string[]>();
  const wildcardCovers = new Map<Group, string[]>();
  for (const name of [...candidates.keys()].sort()) {
    const gs = candidates.get(name)!;
    let best = gs[0]!;
    for (const g of gs.slice(1)) if (betterGroup(g, best)) best = g;
    if (!best.usable) {
      const parent = name.startsWith('*.') ? null : parentOf(name);
      if (parent !== null && usableWildcards.has(parent)) {
        // A valid *.parent serves it: exact names win over wildcards, so don't index the expired one.
        wildcardCovers.set(best, [...(wildcardCovers.get(best) ?? []), name]);
        continue;
      }
      expiredServes.set(best, [...(expiredServes.get(best) ?? []), name]);
    }
    assigned.set(name, best);
    for (const g of gs) {
      if (g === best) continue;
      const overlap = g.certs.filter((c) => best.certs.some((b) => b.summary.keyType === c.summary.keyType));
      problems.push({
        level: 'info',
        path: g.certs[0]!.summary.path,
        message:
          `${name} is also in ${g.certs.map((c) => c.summary.path).join(' and ')}; served from ${best.certs.map((c) => c.summary.path).join(' and ')}` +
          (best.usable && !g.usable ? ' (valid)' : overlap.length > 0 ? ' (expires later)' : ''),
      });
    }
  }

  // Contexts: groups with at least one name, in load order.
  const assignedGroups = new Set(assigned.values());
  const used = groups.filter((g) => assignedGroups.has(g)).sort((a, b) => a.order - b.order);
  for (const g of groups) {
    if (assignedGroups.has(g)) continue;
    const covered = wildcardCovers.get(g);
    for (const c of g.certs) {
      problems.push({
        level: 'info',
        path: c.summary.path,
        message: covered
          ? `${c.summary.path} ${validityText(c, now)}: not used, valid wildcard certificates cover ${covered.join(', ')}`
          : `${c.summary.path} not used: each of its names is served by another certificate`,
      });
    }
  }
  for (const [g, names] of expiredServes) {
    for (const c of g.certs) {
      problems.push({
        level: 'warning',
        path: c.summary.path,
        message: `${c.summary.path} ${validityText(c, now)}; served anyway for ${names.join(', ')}: no valid certificate covers ${names.length > 1 ? 'them' : 'it'}`,
      });
    }
  }

  if (used.length === 0) {
    const errors = problems.filter((p) => p.level === 'error');
    const why = errors.length > 0 ? errors.map((p) => `- ${p.message}`).join('\n') : '- no certificate found in the configured sources';
    const err = new MailfrontError('MF_CERT_NONE', `no usable certificate:\n${why}`);
    Object.assign(err, { problems });
    throw err;
  }

  const index = new Map<Group, number>(used.map((g, i) => [g, i]));
  const contexts: NativeCertContext[] = used.map((g) => ({ certs: g.certs.map((c) => c.pair) }));
  // Null prototype: a name can never collide with Object.prototype ("__proto__", "constructor").
  const exact: Record<string, number> = Object.create(null) as Record<string, number>;
  const wildcard: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [name, g] of [...assigned.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (name.startsWith('*.')) wildcard[name.slice(2)] = index.get(g)!;
    else exact[name] = index.get(g)!;
  }
  const certificates: CertSummary[] = used.flatMap((g) => g.certs.map((c) => ({ ...c.summary, names: [...c.summary.names], context: index.get(g)! })));

  // 4. Default.
  let defaultContext = 0;
  let resolvedName = certificates.find((c) => c.context === 0)!.names[0]!;
  let defaultFrom: CertStore['defaultFrom'] = 'first-loaded';
  if (defaultName !== undefined && defaultName.trim() !== '') {
    const n = normalizeName(defaultName);
    const hit = n === null ? undefined : resolve({ exact, wildcard }, n);
    if (n !== null && hit !== undefined) {
      defaultContext = hit.context;
      resolvedName = n;
      defaultFrom = 'configured';
    } else {
      problems.push({
        level: 'warning',
        path: '',
        message: `default name ${JSON.stringify(defaultName)} is not covered by any loaded certificate: serving ${resolvedName} (first loaded) instead`,
      });
    }
  }
  return { contexts, exact, wildcard, defaultContext, defaultName: resolvedName, defaultFrom, certificates, problems };
}

/**
 * Exact, then one-label wildcard ("*.example.org" covers "a.example.org", not
 * "example.org" nor "a.b.example.org"): the data plane's own lookup
 * (native/snapshot.h match_name), so that check and reports say what the SNI
 * callback does.
 */
export function resolve(
  index: { exact: Record<string, number>; wildcard: Record<string, number> },
  name: string,
): { context: number; match: 'exact' | 'wildcard' } | undefined {
  return loadAddon().findContext(index, name) ?? undefined;
}
