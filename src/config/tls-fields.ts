// TLS settings: protocol version, cipher lists and key-exchange groups.
import { z } from './zod.js';
import { describe, enumOf, fail } from './fields.js';

/**
 * Mozilla "intermediate" TLS 1.2 suites (server-side TLS guidelines 5.7 list,
 * ECDHE only). The DHE suites of older revisions are left out on purpose: they
 * need a dhparam file, cost far more CPU per handshake than ECDHE, and every
 * client of the intermediate profile's baseline speaks ECDHE.
 */
export const INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** TLS 1.3 suites; AES-128 first: cheapest with AES-NI, same security margin in practice. */
export const DEFAULT_CIPHERSUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
const TLS13_SUITES = new Set([
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_CCM_SHA256',
]);
// Its 8-byte tag makes it "not recommended" in the IANA TLS registry (RFC 8447).
const REFUSED_TLS13_SUITES = new Set(['TLS_AES_128_CCM_8_SHA256']);

export const minVersion = enumOf(['TLSv1.2', 'TLSv1.3'] as const, 'TLSv1.2', (v) => {
  if (typeof v === 'number') return `write the version as a string: TLSv1.2 or TLSv1.3`;
  if (typeof v !== 'string') return undefined;
  const n = v.toLowerCase().replace(/[^a-z0-9.]/g, '');
  if (/^(ssl|sslv)[23]|^(tlsv?)?1(\.0)?$|^(tlsv?)?1\.1$/.test(n)) {
    return `${v} is refused: SSL, TLS 1.0 and TLS 1.1 are broken and deprecated (RFC 8996); use TLSv1.2 or TLSv1.3`;
  }
  if (/^(tlsv?)?1\.2$/.test(n)) return `write "TLSv1.2"`;
  if (/^(tlsv?)?1\.3$/.test(n)) return `write "TLSv1.3"`;
  return undefined;
});

/**
 * Who carries a TLS 1.3 connection after its handshake: mailfront's own record layer (the SSL
 * object freed: ~12 KiB less per idle connection), or OpenSSL to the end (the way back, should a
 * client misbehave with ours). TLS 1.2 connections stay on OpenSSL either way.
 */
export const recordLayer = enumOf(['mailfront', 'openssl'] as const, 'mailfront');

export const ciphers = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string => {
    if (v === undefined) return 'intermediate';
    if (typeof v !== 'string' || v.trim() === '') return fail(ctx, `expected intermediate, modern or an OpenSSL cipher string, got ${describe(v)}`);
    if (v === 'intermediate' || v === 'modern') return v;
    if (/^(intermediate|modern|old)$/i.test(v)) {
      return fail(ctx, v.toLowerCase() === 'old' ? `the "old" profile is not offered: use intermediate` : `write "${v.toLowerCase()}"`);
    }
    if (!/^[A-Za-z0-9!+\-:@=_.,]+$/.test(v)) return fail(ctx, `"${v}" is not an OpenSSL cipher string`);
    if (v.split(/[:,]/).some((c) => TLS13_SUITES.has(c))) {
      return fail(ctx, `TLS 1.3 suites (TLS_AES_...) belong in tls.ciphersuites; tls.ciphers is for TLS 1.2`);
    }
    return v;
  });

export const ciphersuites = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string => {
    if (v === undefined) return DEFAULT_CIPHERSUITES;
    if (typeof v !== 'string' || v === '') return fail(ctx, `expected a list such as ${DEFAULT_CIPHERSUITES}, got ${describe(v)}`);
    const refused = v.split(':').filter((s) => REFUSED_TLS13_SUITES.has(s));
    if (refused.length) return fail(ctx, `${refused.join(', ')} is refused: its 8-byte tag is marked not recommended for TLS 1.3 (RFC 8447); use ${DEFAULT_CIPHERSUITES}`);
    const bad = v.split(':').filter((s) => !TLS13_SUITES.has(s));
    if (bad.length) return fail(ctx, `unknown TLS 1.3 suite ${bad.map((b) => `"${b}"`).join(', ')} (known: ${[...TLS13_SUITES].join(', ')})`);
    return v;
  });

const GROUP_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** tls.groups: the syntax here; whether the running OpenSSL has each group is checked at load (load.ts). */
export const groups = z
  .any()
  .optional()
  .transform((v: unknown, ctx): string | undefined => {
    if (v === undefined) return undefined;
    if (Array.isArray(v)) return fail(ctx, `write the groups as one OpenSSL list separated by ":", e.g. "${v.join(':')}"`);
    if (typeof v !== 'string' || v.trim() === '') return fail(ctx, `expected an OpenSSL group list such as X25519MLKEM768:X25519:P-256, got ${describe(v)}`);
    const names = v.split(':');
    const bad = names.filter((n) => !GROUP_NAME.test(n));
    if (bad.length) return fail(ctx, `${bad.map((b) => `"${b}"`).join(', ')} is not a group name: list names separated by ":" (OpenSSL's "?", "*" and "/" forms are not accepted)`);
    const seen = new Set<string>();
    const dup = names.find((n) => seen.size === seen.add(n.toLowerCase()).size);
    if (dup) return fail(ctx, `group "${dup}" is listed twice`);
    if (names.length > 16) return fail(ctx, `${names.length} groups: at most 16`);
    return v;
  });

