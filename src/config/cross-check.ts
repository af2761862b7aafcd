// Checks that need the whole document: unique names, references between
// listeners, backend pools and routes, and option combinations.
import { NAME_RE, NAME_RULE } from './fields.js';
import { unknownRef } from './suggest.js';

export interface SchemaIssue {
  /** Path into the YAML document (keys and list indexes). */
  path: (string | number)[];
  message: string;
  /** Point at the key itself rather than its value (unknown or misnamed keys). */
  atKey?: boolean;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Checks that need the whole document: unique names, references between
 * listeners, backends and routes, and option combinations. Runs on the raw
 * parsed YAML, defensively, so that its findings are reported together with
 * the schema's own.
 */
export function crossCheck(raw: unknown): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  if (!isObj(raw)) return out;
  const backends = isObj(raw.backends) ? raw.backends : undefined;
  const backendNames = new Set(backends ? Object.keys(backends) : []);
  if (backends) {
    for (const k of Object.keys(backends)) {
      if (!NAME_RE.test(k)) out.push({ path: ['backends', k], atKey: true, message: `"${k}" is not a valid backend name (${NAME_RULE})` });
    }
  }
  const listeners = Array.isArray(raw.listeners) ? raw.listeners : [];
  const listenerNames = new Map<string, number>();
  const bound = new Map<string, string>();
  listeners.forEach((l, i) => {
    if (!isObj(l)) return;
    if (typeof l.name === 'string') {
      const first = listenerNames.get(l.name);
      if (first !== undefined) out.push({ path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}" (also listeners[${first}])` });
      else listenerNames.set(l.name, i);
    }
    if (typeof l.backend === 'string' && backends && !backendNames.has(l.backend)) {
      out.push({ path: ['listeners', i, 'backend'], message: unknownRef('backend', l.backend, backendNames) });
    }
    const addrs = Array.isArray(l.listen) ? l.listen : typeof l.listen === 'string' ? [l.listen] : [];
    addrs.forEach((a, j) => {
      if (typeof a !== 'string' || a.endsWith(':0')) return;
      const owner = bound.get(a);
      const p: (string | number)[] = Array.isArray(l.listen) ? ['listeners', i, 'listen', j] : ['listeners', i, 'listen'];
      if (owner !== undefined) out.push({ path: p, message: `"${a}" is already used by ${owner}` });
      else bound.set(a, `listeners[${i}]`);
    });
    if (l.accept_proxy === true) {
      const t = l.trusted_proxies;
      if (t === undefined || t === null || (Array.isArray(t) && t.length === 0)) {
        out.push({
          path: ['listeners', i, 'accept_proxy'],
          message: 'accept_proxy needs trusted_proxies: the address blocks of the balancers allowed to name the client (e.g. ["10.0.0.0/8"])',
        });
      }
    }
    if (l.sieve_capabilities !== undefined && l.protocol !== 'managesieve') {
      out.push({ path: ['listeners', i, 'sieve_capabilities'], atKey: true, message: 'only a managesieve listener takes sieve_capabilities' });
    }
  });
  const routes = Array.isArray(raw.routes) ? raw.routes : [];
  routes.forEach((r, i) => {
    if (!isObj(r) || !isObj(r.backends)) return;
    for (const [ln, bn] of Object.entries(r.backends)) {
      if (!listenerNames.has(ln)) {
        out.push({ path: ['routes', i, 'backends', ln], atKey: true, message: unknownRef('listener', ln, new Set(listenerNames.keys())) });
      }
      if (typeof bn === 'string' && backends && !backendNames.has(bn)) {
        out.push({ path: ['routes', i, 'backends', ln], message: unknownRef('backend', bn, backendNames) });
      }
    }
  });
  const tls = isObj(raw.tls) ? raw.tls : undefined;
  if (tls && tls.ciphers === 'modern' && tls.min_version === 'TLSv1.2') {
    out.push({ path: ['tls', 'min_version'], message: 'ciphers: modern means TLS 1.3 only; set min_version to TLSv1.3 or remove it' });
  }
  const certs = isObj(raw.certificates) ? raw.certificates : undefined;
  const hasSource = certs && ['letsencrypt', 'pem_dirs', 'pairs'].some((k) => {
    const v = certs[k];
    return Array.isArray(v) ? v.length > 0 : typeof v === 'string';
  });
  if (!hasSource) {
    out.push({
      path: certs ? ['certificates'] : [],
      atKey: true,
      message: 'no certificate source: list at least one of certificates.letsencrypt, certificates.pem_dirs, certificates.pairs',
    });
  }
  return out;
}
